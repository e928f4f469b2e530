// IPv6 header: known packets, the extension-header walk and its limits,
// build/parse round trip, hop-limit decrement, every truncation.
#include "dataplane/net/ipv6.h"

#include <gtest/gtest.h>

#include <random>

#include "dataplane/net/bytes.h"
#include "dataplane/net/ip_protocol.h"
#include "tests/unit/net/packet_util.h"
#include "tests/unit/net/vectors.h"

namespace moongate::net {
namespace {

using test::Bytes;
using test::hex;

const Ipv6Address kA = test::v6("fd00 0000 0000 0000 0000 0000 0000 0001");
const Ipv6Address kB = test::v6("fd00 0000 0000 0000 0000 0000 0000 0002");

// An IPv6 packet with the given extension headers (each given whole, its
// first byte = next header is patched to chain) then `proto` + `l4`.
Bytes with_extensions(const std::vector<std::pair<std::uint8_t, Bytes>>& exts, std::uint8_t proto,
                      const Bytes& l4) {
  Bytes body;
  for (std::size_t i = 0; i < exts.size(); ++i) {
    Bytes e = exts[i].second;
    e[0] = i + 1 < exts.size() ? exts[i + 1].first : proto;
    body.insert(body.end(), e.begin(), e.end());
  }
  body.insert(body.end(), l4.begin(), l4.end());
  Bytes p(40);
  Ipv6Params params;
  params.src = kA;
  params.dst = kB;
  params.next_header = exts.empty() ? proto : exts[0].first;
  params.payload_len = static_cast<std::uint16_t>(body.size());
  write_ipv6_header(p.data(), p.size(), params);
  p.insert(p.end(), body.begin(), body.end());
  return p;
}

Bytes opts(std::size_t units) {  // HBH / Dest Options of (units + 1) * 8 bytes
  Bytes e((units + 1) * 8, 0);
  e[1] = static_cast<std::uint8_t>(units);
  e[2] = 1;  // PadN covering the rest
  e[3] = static_cast<std::uint8_t>(e.size() - 4);
  return e;
}

Bytes frag(std::uint16_t offset_bytes, bool more) {
  Bytes e(8, 0);
  store_be16(e.data() + 2, static_cast<std::uint16_t>(offset_bytes | (more ? 1 : 0)));
  store_be32(e.data() + 4, 0xabcdef01);
  return e;
}

TEST(Ipv6, ParsesScapyPackets) {
  const Bytes udp = test::slice(hex(test::vectors::kScapyIpv6Udp), 14);
  Ipv6Header h;
  ASSERT_EQ(parse_ipv6(udp.data(), udp.size(), h), Ipv6Status::kOk);
  EXPECT_EQ(h.payload_len, 9);
  EXPECT_EQ(h.next_header, kIpProtoUdp);
  EXPECT_EQ(h.protocol, kIpProtoUdp);
  EXPECT_EQ(h.l4_offset, 40U);
  EXPECT_EQ(h.l4_len(), 9U);
  EXPECT_EQ(h.hop_limit, 64);
  EXPECT_TRUE(ipv6_is_loopback(h.src));
  EXPECT_FALSE(h.is_fragment);

  const Bytes echo = test::slice(hex(test::vectors::kLinuxEchoRequestV6), 14);
  ASSERT_EQ(parse_ipv6(echo.data(), echo.size(), h), Ipv6Status::kOk);
  EXPECT_EQ(h.traffic_class, 0x00);
  EXPECT_EQ(h.flow_label, 0xc1f96U);
  EXPECT_EQ(h.src, kA);
  EXPECT_EQ(h.dst, kB);
}

TEST(Ipv6, WalksExtensionHeaders) {
  const Bytes l4 = hex("0035 0035 0009 0000 78");
  const Bytes p = with_extensions({{kIpProtoHopByHop, opts(0)},
                                   {kIpProtoDestOpts, opts(1)},
                                   {kIpProtoRouting, opts(2)},
                                   {kIpProtoFragment, frag(0, true)}},
                                  kIpProtoUdp, l4);
  Ipv6Header h;
  ASSERT_EQ(parse_ipv6(p.data(), p.size(), h), Ipv6Status::kOk);
  EXPECT_EQ(h.next_header, kIpProtoHopByHop);
  EXPECT_EQ(h.protocol, kIpProtoUdp);
  EXPECT_EQ(h.l4_offset, 40U + 8 + 16 + 24 + 8);
  EXPECT_EQ(h.l4_len(), l4.size());
  EXPECT_TRUE(h.is_fragment);
  EXPECT_TRUE(h.more_fragments);
  EXPECT_EQ(h.fragment_offset, 0);
}

TEST(Ipv6, NonInitialFragmentStopsTheWalk) {
  const Bytes p = with_extensions({{kIpProtoFragment, frag(1448, false)}}, kIpProtoTcp,
                                  Bytes(100, 0x11));
  Ipv6Header h;
  ASSERT_EQ(parse_ipv6(p.data(), p.size(), h), Ipv6Status::kOk);
  EXPECT_TRUE(h.is_fragment);
  EXPECT_FALSE(h.more_fragments);
  EXPECT_EQ(h.fragment_offset, 1448);
  EXPECT_EQ(h.protocol, kIpProtoTcp);
  EXPECT_EQ(h.l4_offset, 48U);
}

TEST(Ipv6, StopsAtEspAhAndNoNext) {
  for (std::uint8_t proto : {kIpProtoEsp, kIpProtoAh, kIpProtoNoNext, std::uint8_t{253}}) {
    const Bytes p = with_extensions({{kIpProtoDestOpts, opts(0)}}, proto, Bytes(16, 0));
    Ipv6Header h;
    ASSERT_EQ(parse_ipv6(p.data(), p.size(), h), Ipv6Status::kOk);
    EXPECT_EQ(h.protocol, proto);
    EXPECT_EQ(h.l4_offset, 48U);
  }
}

TEST(Ipv6, RejectsBadExtensionChains) {
  Ipv6Header h;
  // Hop-by-Hop not first.
  Bytes p = with_extensions({{kIpProtoDestOpts, opts(0)}, {kIpProtoHopByHop, opts(0)}}, kIpProtoUdp,
                            Bytes(8, 0));
  EXPECT_EQ(parse_ipv6(p.data(), p.size(), h), Ipv6Status::kBadExtensionHeader);
  // More than kIpv6MaxExtensionHeaders.
  std::vector<std::pair<std::uint8_t, Bytes>> many(kIpv6MaxExtensionHeaders + 1,
                                                   {kIpProtoDestOpts, opts(0)});
  p = with_extensions(many, kIpProtoUdp, Bytes(8, 0));
  EXPECT_EQ(parse_ipv6(p.data(), p.size(), h), Ipv6Status::kBadExtensionHeader);
  many.pop_back();
  p = with_extensions(many, kIpProtoUdp, Bytes(8, 0));
  EXPECT_EQ(parse_ipv6(p.data(), p.size(), h), Ipv6Status::kOk) << "exactly the maximum";
  // Header length runs past the payload (but not past the buffer: padding).
  p = with_extensions({{kIpProtoDestOpts, opts(0)}}, kIpProtoUdp, Bytes(8, 0));
  p[41] = 2;  // claims 24 bytes, 16 remain
  p.resize(p.size() + 64, 0);
  EXPECT_EQ(parse_ipv6(p.data(), p.size(), h), Ipv6Status::kBadExtensionHeader);
  // Fragment header cut short.
  p = with_extensions({}, kIpProtoFragment, Bytes(6, 0));
  EXPECT_EQ(parse_ipv6(p.data(), p.size(), h), Ipv6Status::kBadExtensionHeader);
}

TEST(Ipv6, RejectsBadFixedHeader) {
  const Bytes good = test::slice(hex(test::vectors::kScapyIpv6Udp), 14);
  Ipv6Header h;
  Bytes p = good;
  p[0] = 0x40;
  EXPECT_EQ(parse_ipv6(p.data(), p.size(), h), Ipv6Status::kBadVersion);
  p = good;
  store_be16(p.data() + 4, 10);
  EXPECT_EQ(parse_ipv6(p.data(), p.size(), h), Ipv6Status::kBadPayloadLength);
  EXPECT_STREQ(to_string(Ipv6Status::kBadExtensionHeader), "bad extension header");
}

TEST(Ipv6, BuildParseRoundTrip) {
  std::mt19937 rng(8200);
  for (int i = 0; i < 2000; ++i) {
    Ipv6Params params;
    for (auto& b : params.src) b = static_cast<std::uint8_t>(rng());
    for (auto& b : params.dst) b = static_cast<std::uint8_t>(rng());
    params.next_header = kIpProtoUdp;
    params.payload_len = static_cast<std::uint16_t>(rng() % 1500);
    params.hop_limit = static_cast<std::uint8_t>(rng());
    params.traffic_class = static_cast<std::uint8_t>(rng());
    params.flow_label = static_cast<std::uint32_t>(rng());
    Bytes p(40 + params.payload_len);
    ASSERT_EQ(write_ipv6_header(p.data(), p.size(), params), 40U);
    Ipv6Header h;
    ASSERT_EQ(parse_ipv6(p.data(), p.size(), h), Ipv6Status::kOk);
    EXPECT_EQ(h.src, params.src);
    EXPECT_EQ(h.dst, params.dst);
    EXPECT_EQ(h.payload_len, params.payload_len);
    EXPECT_EQ(h.hop_limit, params.hop_limit);
    EXPECT_EQ(h.traffic_class, params.traffic_class);
    EXPECT_EQ(h.flow_label, params.flow_label & 0xfffff);
  }
  Bytes small(39);
  EXPECT_EQ(write_ipv6_header(small.data(), small.size(), Ipv6Params{}), 0U);
}

TEST(Ipv6, HopLimitDecrement) {
  Bytes p = test::slice(hex(test::vectors::kScapyIpv6Udp), 14);
  ASSERT_TRUE(ipv6_decrement_hop_limit(p.data(), p.size()));
  EXPECT_EQ(p[7], 63);
  for (std::uint8_t hl : {0, 1}) {
    p[7] = hl;
    const Bytes before = p;
    EXPECT_FALSE(ipv6_decrement_hop_limit(p.data(), p.size()));
    EXPECT_EQ(p, before);
  }
  EXPECT_FALSE(ipv6_decrement_hop_limit(p.data(), 39));
}

TEST(Ipv6, EveryTruncationRejected) {
  const Bytes packets[] = {
      test::slice(hex(test::vectors::kScapyIpv6Tcp), 14),
      test::slice(hex(test::vectors::kLinuxNs), 14),
      with_extensions({{kIpProtoHopByHop, opts(0)}, {kIpProtoFragment, frag(0, true)}}, kIpProtoUdp,
                      Bytes(8, 0)),
  };
  for (const Bytes& p : packets) {
    for (std::size_t n = 0; n < p.size(); ++n) {
      test::Exact e(p, n);
      Ipv6Header h;
      EXPECT_NE(parse_ipv6(e.data(), n, h), Ipv6Status::kOk) << n;
    }
  }
}

}  // namespace
}  // namespace moongate::net
