// The moon's frames on the wan port (dataplane/moon_wire.h): reply headers
// written for IPv4 and IPv6 parse back with the same addresses, ports and
// payload, and their checksums verify with the net library's independent
// checks; what the moon thread must not take (fragments, IPv6 extension
// headers, other protocols, lying lengths) is refused.
#include <gtest/gtest.h>

#include <cstring>
#include <vector>

#include "dataplane/moon_wire.h"
#include "dataplane/net/ipv4.h"
#include "dataplane/net/ipv6.h"
#include "dataplane/net/udp.h"

namespace moongate::dp {
namespace {

using zerotier::Endpoint;

// A reply from `src` (ours) to `to`, wrapped in Ethernet, as the wire
// would carry it; the payload is 0, 1, 2, ...
std::vector<std::uint8_t> frame(const std::uint8_t* src, const Endpoint& to, std::size_t payload,
                                std::uint16_t src_port = 9993) {
  const std::size_t hdr = moon_header_len(to.family);
  std::vector<std::uint8_t> f(14 + hdr + payload);
  f[12] = to.family == 6 ? 0x86 : 0x08;
  f[13] = to.family == 6 ? 0xdd : 0x00;
  for (std::size_t i = 0; i < payload; ++i) f[14 + hdr + i] = static_cast<std::uint8_t>(i);
  EXPECT_EQ(write_moon_headers(f.data() + 14, f.size() - 14, src, src_port, to, payload), hdr + payload);
  return f;
}

Endpoint v6(std::uint8_t last, std::uint16_t port) {
  Endpoint e;
  e.family = 6;
  e.ip = {0x20, 0x01, 0x0d, 0xb8, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, last};
  e.port = port;
  return e;
}

TEST(MoonWire, Ipv4RoundTripAndChecksums) {
  const std::uint8_t ours[4] = {192, 0, 2, 2};
  const Endpoint client = Endpoint::v4(0xc000020a, 40000);  // 192.0.2.10
  std::vector<std::uint8_t> f = frame(ours, client, 300);
  net::Ipv4Header h;
  ASSERT_EQ(net::parse_ipv4(f.data() + 14, f.size() - 14, h), net::Ipv4Status::kOk);  // header checksum too
  EXPECT_EQ(h.protocol, 17);
  EXPECT_TRUE(h.dont_fragment);
  EXPECT_EQ(h.ttl, 64);
  EXPECT_EQ(h.total_len, 20 + 8 + 300);
  EXPECT_TRUE(net::udp_checksum_valid_v4(f.data() + 34, 308, h.src, h.dst));
  EXPECT_NE(f[34 + 6] | f[34 + 7], 0);  // computed, not left out
  // Read back as if it came in: the source is "ours", port 9993.
  MoonDatagram d;
  ASSERT_TRUE(parse_moon_frame(f.data(), f.size(), d));
  EXPECT_EQ(d.from, Endpoint::v4(0xc0000202, 9993));
  EXPECT_EQ(d.offset, 14 + 28);
  EXPECT_EQ(d.length, 300);
  EXPECT_EQ(f[d.offset + 299], static_cast<std::uint8_t>(299));
  // Ethernet padding after the datagram is not payload.
  f.resize(f.size() + 10, 0xee);
  ASSERT_TRUE(parse_moon_frame(f.data(), f.size(), d));
  EXPECT_EQ(d.length, 300);
}

TEST(MoonWire, Ipv6RoundTripAndChecksums) {
  const Endpoint ours = v6(2, 0), client = v6(10, 41000);
  std::vector<std::uint8_t> f = frame(ours.ip.data(), client, 1400, 19993);
  net::Ipv6Header h;
  ASSERT_EQ(net::parse_ipv6(f.data() + 14, f.size() - 14, h), net::Ipv6Status::kOk);
  EXPECT_EQ(h.protocol, 17);
  EXPECT_EQ(h.hop_limit, 64);
  EXPECT_EQ(h.payload_len, 8 + 1400);
  EXPECT_TRUE(net::udp_checksum_valid_v6(f.data() + 54, 1408, h.src, h.dst));
  MoonDatagram d;
  ASSERT_TRUE(parse_moon_frame(f.data(), f.size(), d));
  EXPECT_EQ(d.from, v6(2, 19993));
  EXPECT_EQ(d.offset, 14 + 48);
  EXPECT_EQ(d.length, 1400);
  // A corrupted payload byte fails the checksum (it covers the payload).
  f[100] ^= 1;
  EXPECT_FALSE(net::udp_checksum_valid_v6(f.data() + 54, 1408, h.src, h.dst));
}

TEST(MoonWire, WriteRefusesWhatDoesNotFit) {
  const std::uint8_t ours[16] = {};
  std::uint8_t buf[64] = {};
  EXPECT_EQ(write_moon_headers(buf, sizeof buf, ours, 9993, Endpoint::v4(1, 2), 37), 0u);  // 28 + 37 > 64
  EXPECT_EQ(write_moon_headers(buf, sizeof buf, ours, 9993, Endpoint::v4(1, 2), 36), 64u);
  EXPECT_EQ(write_moon_headers(buf, sizeof buf, ours, 9993, v6(1, 2), 17), 0u);  // 48 + 17 > 64
  EXPECT_EQ(write_moon_headers(buf, sizeof buf, ours, 9993, Endpoint{}, 0), 0u);  // no family
  std::vector<std::uint8_t> big(70000);
  EXPECT_EQ(write_moon_headers(big.data(), big.size(), ours, 9993, Endpoint::v4(1, 2), 65600), 0u);
}

TEST(MoonWire, ParseRefusesWhatTheMoonMustNotTake) {
  const std::uint8_t ours[4] = {192, 0, 2, 2};
  const Endpoint client = Endpoint::v4(0xc000020a, 40000);
  MoonDatagram d;
  {  // a fragment (MF set; header checksum fixed so only the flag differs)
    std::vector<std::uint8_t> f = frame(ours, client, 40);
    f[14 + 6] |= 0x20;
    f[14 + 10] = f[14 + 11] = 0;
    std::uint32_t sum = 0;
    for (int i = 0; i < 20; i += 2) sum += static_cast<std::uint32_t>(f[14 + i] << 8 | f[14 + i + 1]);
    sum = (sum & 0xffff) + (sum >> 16);
    sum = (sum & 0xffff) + (sum >> 16);
    f[14 + 10] = static_cast<std::uint8_t>(~sum >> 8);
    f[14 + 11] = static_cast<std::uint8_t>(~sum);
    net::Ipv4Header h;
    ASSERT_EQ(net::parse_ipv4(f.data() + 14, f.size() - 14, h), net::Ipv4Status::kOk);
    EXPECT_FALSE(parse_moon_frame(f.data(), f.size(), d));
  }
  {  // the UDP length claims more than the IP packet holds
    std::vector<std::uint8_t> f = frame(ours, client, 40);
    f[34 + 4] = 0x01;  // 256 + 48
    EXPECT_FALSE(parse_moon_frame(f.data(), f.size(), d));
  }
  {  // a bad IPv4 header checksum
    std::vector<std::uint8_t> f = frame(ours, client, 40);
    f[14 + 10] ^= 0xff;
    EXPECT_FALSE(parse_moon_frame(f.data(), f.size(), d));
  }
  {  // IPv6 with a Destination Options header before UDP
    const Endpoint o6 = v6(2, 0);
    std::vector<std::uint8_t> f = frame(o6.ip.data(), v6(10, 41000), 40);
    std::vector<std::uint8_t> g(f.begin(), f.begin() + 54);
    g[14 + 6] = 60;  // next header: destination options
    const std::uint8_t opts[8] = {17, 0, 1, 4, 0, 0, 0, 0};  // next UDP, PadN
    g.insert(g.end(), opts, opts + 8);
    g.insert(g.end(), f.begin() + 54, f.end());
    g[14 + 5] = static_cast<std::uint8_t>(g[14 + 5] + 8);
    net::Ipv6Header h;
    ASSERT_EQ(net::parse_ipv6(g.data() + 14, g.size() - 14, h), net::Ipv6Status::kOk);
    ASSERT_EQ(h.protocol, 17);
    EXPECT_FALSE(parse_moon_frame(g.data(), g.size(), d));
  }
  {  // not UDP, not IP, too short
    std::vector<std::uint8_t> f = frame(ours, client, 40);
    f[14 + 9] = 6;
    EXPECT_FALSE(parse_moon_frame(f.data(), f.size(), d));
    f = frame(ours, client, 40);
    f[12] = 0x08, f[13] = 0x06;  // ARP
    EXPECT_FALSE(parse_moon_frame(f.data(), f.size(), d));
    EXPECT_FALSE(parse_moon_frame(f.data(), 13, d));
    f[12] = 0x08, f[13] = 0x00;
    EXPECT_FALSE(parse_moon_frame(f.data(), 14 + 20 + 4, d));  // truncated UDP header
  }
}

}  // namespace
}  // namespace moongate::dp
