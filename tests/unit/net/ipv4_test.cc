// IPv4 header: known headers, every validation failure, build/parse round
// trips, TTL decrement against full recomputation, every truncation.
#include "dataplane/net/ipv4.h"

#include <gtest/gtest.h>

#include <random>

#include "dataplane/net/bytes.h"
#include "dataplane/net/checksum.h"
#include "dataplane/net/ip_protocol.h"
#include "tests/unit/net/packet_util.h"
#include "tests/unit/net/vectors.h"

namespace moongate::net {
namespace {

using test::Bytes;
using test::hex;

// The Wikipedia header announces 0x73 = 115 bytes: give it its payload.
Bytes wikipedia_packet() {
  Bytes p = hex(test::vectors::kWikipediaIpv4Header);
  p.resize(0x73, 0x5a);
  return p;
}

void refresh_checksum(Bytes& p) {
  const std::size_t ihl = std::size_t{p[0] & 0x0fu} * 4;
  store_be16(p.data() + 10, 0);
  store_be16(p.data() + 10, internet_checksum(p.data(), ihl));
}

TEST(Ipv4, ParsesWikipediaHeader) {
  const Bytes p = wikipedia_packet();
  Ipv4Header h;
  ASSERT_EQ(parse_ipv4(p.data(), p.size(), h), Ipv4Status::kOk);
  EXPECT_EQ(h.header_len, 20);
  EXPECT_EQ(h.total_len, 0x73);
  EXPECT_EQ(h.payload_len(), 0x73 - 20);
  EXPECT_EQ(h.protocol, kIpProtoUdp);
  EXPECT_EQ(h.ttl, 64);
  EXPECT_TRUE(h.dont_fragment);
  EXPECT_FALSE(h.is_fragment());
  EXPECT_EQ(h.src, test::v4(192, 168, 0, 1));
  EXPECT_EQ(h.dst, test::v4(192, 168, 0, 199));
}

TEST(Ipv4, HeaderAloneIsShorterThanItsTotalLength) {
  const Bytes p = hex(test::vectors::kWikipediaIpv4Header);
  Ipv4Header h;
  EXPECT_EQ(parse_ipv4(p.data(), p.size(), h), Ipv4Status::kBadTotalLength);
}

TEST(Ipv4, ParsesOptionsAndIgnoresLinkPadding) {
  Bytes p = test::slice(hex(test::vectors::kScapyIpv4OptsUdp), 14);
  p.resize(p.size() + 13, 0);  // Ethernet minimum-frame padding
  Ipv4Header h;
  ASSERT_EQ(parse_ipv4(p.data(), p.size(), h), Ipv4Status::kOk);
  EXPECT_EQ(h.header_len, 24);
  EXPECT_EQ(h.total_len, 0x21);
  EXPECT_EQ(h.payload_len(), 9);
}

TEST(Ipv4, RejectsEachMalformation) {
  const Bytes good = wikipedia_packet();
  Ipv4Header h;
  {
    Bytes p = good;
    p[0] = 0x65;
    EXPECT_EQ(parse_ipv4(p.data(), p.size(), h), Ipv4Status::kBadVersion);
  }
  {
    Bytes p = good;
    p[0] = 0x44;  // IHL 4
    EXPECT_EQ(parse_ipv4(p.data(), p.size(), h), Ipv4Status::kBadHeaderLength);
  }
  {
    Bytes p = test::slice(good, 0, 40);
    p[0] = 0x4f;  // IHL 15 = 60 bytes > 40
    EXPECT_EQ(parse_ipv4(p.data(), p.size(), h), Ipv4Status::kTruncated);
  }
  {
    Bytes p = good;
    store_be16(p.data() + 2, 19);  // total length below the header
    refresh_checksum(p);
    EXPECT_EQ(parse_ipv4(p.data(), p.size(), h), Ipv4Status::kBadTotalLength);
  }
  {
    Bytes p = good;
    store_be16(p.data() + 2, static_cast<std::uint16_t>(p.size() + 1));
    refresh_checksum(p);
    EXPECT_EQ(parse_ipv4(p.data(), p.size(), h), Ipv4Status::kBadTotalLength);
  }
  {
    Bytes p = good;
    p[10] ^= 0x01;
    EXPECT_EQ(parse_ipv4(p.data(), p.size(), h), Ipv4Status::kBadChecksum);
  }
  {
    Bytes p = good;
    p[8] = 63;  // any header byte covered by the checksum
    EXPECT_EQ(parse_ipv4(p.data(), p.size(), h), Ipv4Status::kBadChecksum);
  }
  EXPECT_STREQ(to_string(Ipv4Status::kBadChecksum), "bad checksum");
}

TEST(Ipv4, ReportsFragments) {
  Bytes p = wikipedia_packet();
  Ipv4Header h;
  store_be16(p.data() + 6, 0x2000);  // MF, offset 0: first fragment
  refresh_checksum(p);
  ASSERT_EQ(parse_ipv4(p.data(), p.size(), h), Ipv4Status::kOk);
  EXPECT_TRUE(h.is_fragment());
  EXPECT_TRUE(h.more_fragments);
  EXPECT_FALSE(h.dont_fragment);
  EXPECT_EQ(h.fragment_offset, 0);
  store_be16(p.data() + 6, 0x00b9);  // last fragment at 185 * 8
  refresh_checksum(p);
  ASSERT_EQ(parse_ipv4(p.data(), p.size(), h), Ipv4Status::kOk);
  EXPECT_TRUE(h.is_fragment());
  EXPECT_FALSE(h.more_fragments);
  EXPECT_EQ(h.fragment_offset, 1480);
}

TEST(Ipv4, BuildsWikipediaHeader) {
  Ipv4Params p;
  p.src = test::v4(192, 168, 0, 1);
  p.dst = test::v4(192, 168, 0, 199);
  p.protocol = kIpProtoUdp;
  p.payload_len = 0x73 - 20;
  p.ttl = 64;
  Bytes out(20);
  ASSERT_EQ(write_ipv4_header(out.data(), out.size(), p), 20U);
  EXPECT_EQ(out, hex(test::vectors::kWikipediaIpv4Header));
}

TEST(Ipv4, BuildRefusesSmallBufferAndOversizePayload) {
  Bytes out(20);
  Ipv4Params p;
  EXPECT_EQ(write_ipv4_header(out.data(), 19, p), 0U);
  p.payload_len = 65535 - 20;
  EXPECT_EQ(write_ipv4_header(out.data(), out.size(), p), 20U);
  p.payload_len = 65535 - 19;
  EXPECT_EQ(write_ipv4_header(out.data(), out.size(), p), 0U);
}

TEST(Ipv4, BuildParseRoundTrip) {
  std::mt19937 rng(791);
  for (int i = 0; i < 2000; ++i) {
    Ipv4Params p;
    for (auto& b : p.src) b = static_cast<std::uint8_t>(rng());
    for (auto& b : p.dst) b = static_cast<std::uint8_t>(rng());
    p.protocol = static_cast<std::uint8_t>(rng());
    p.payload_len = static_cast<std::uint16_t>(rng() % 1500);
    p.ttl = static_cast<std::uint8_t>(rng());
    p.tos = static_cast<std::uint8_t>(rng());
    p.id = static_cast<std::uint16_t>(rng());
    p.dont_fragment = (rng() & 1) != 0;
    Bytes pkt(20 + p.payload_len);
    ASSERT_EQ(write_ipv4_header(pkt.data() , pkt.size(), p), 20U);
    EXPECT_EQ(test::naive_checksum(pkt.data(), 20), 0);
    Ipv4Header h;
    ASSERT_EQ(parse_ipv4(pkt.data(), pkt.size(), h), Ipv4Status::kOk);
    EXPECT_EQ(h.src, p.src);
    EXPECT_EQ(h.dst, p.dst);
    EXPECT_EQ(h.protocol, p.protocol);
    EXPECT_EQ(h.payload_len(), p.payload_len);
    EXPECT_EQ(h.ttl, p.ttl);
    EXPECT_EQ(h.tos, p.tos);
    EXPECT_EQ(h.id, p.id);
    EXPECT_EQ(h.dont_fragment, p.dont_fragment);
    EXPECT_FALSE(h.is_fragment());
  }
}

TEST(Ipv4, TtlDecrementEqualsRecomputeOnRandomHeaders) {
  std::mt19937 rng(1812);
  int decremented = 0;
  for (int i = 0; i < 20000; ++i) {
    const std::size_t ihl = 5 + rng() % 11;
    Bytes p = test::random_bytes(rng, ihl * 4);
    p[0] = static_cast<std::uint8_t>(0x40 | ihl);
    store_be16(p.data() + 2, static_cast<std::uint16_t>(p.size()));
    refresh_checksum(p);
    Ipv4Header before;
    ASSERT_EQ(parse_ipv4(p.data(), p.size(), before), Ipv4Status::kOk);
    const Bytes original = p;
    if (!ipv4_decrement_ttl(p.data(), p.size())) {
      EXPECT_LE(before.ttl, 1);
      EXPECT_EQ(p, original) << "unchanged when refusing";
      continue;
    }
    ++decremented;
    EXPECT_EQ(p[8], before.ttl - 1);
    const std::uint16_t incremental = load_be16(p.data() + 10);
    refresh_checksum(p);
    ASSERT_EQ(incremental, load_be16(p.data() + 10)) << "iteration " << i;
  }
  EXPECT_GT(decremented, 19000);
}

TEST(Ipv4, TtlDecrementStopsBeforeZero) {
  Bytes p = wikipedia_packet();
  for (std::uint8_t ttl : {0, 1}) {
    p[8] = ttl;
    refresh_checksum(p);
    const Bytes before = p;
    EXPECT_FALSE(ipv4_decrement_ttl(p.data(), p.size()));
    EXPECT_EQ(p, before);
  }
  p[8] = 2;
  refresh_checksum(p);
  EXPECT_TRUE(ipv4_decrement_ttl(p.data(), p.size()));
  EXPECT_EQ(p[8], 1);
  Ipv4Header h;
  EXPECT_EQ(parse_ipv4(p.data(), p.size(), h), Ipv4Status::kOk);
  EXPECT_FALSE(ipv4_decrement_ttl(p.data(), 19));
}

TEST(Ipv4, EveryTruncationRejected) {
  const Bytes packets[] = {wikipedia_packet(), test::slice(hex(test::vectors::kScapyIpv4OptsUdp), 14),
                           test::slice(hex(test::vectors::kScapyIpv4TcpTimestamps), 14)};
  for (const Bytes& p : packets) {
    for (std::size_t n = 0; n < p.size(); ++n) {
      test::Exact e(p, n);
      Ipv4Header h;
      EXPECT_NE(parse_ipv4(e.data(), n, h), Ipv4Status::kOk) << n;
      if (n < 20) {
        EXPECT_FALSE(ipv4_decrement_ttl(e.data(), n));
      }
    }
  }
}

}  // namespace
}  // namespace moongate::net
