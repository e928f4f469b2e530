// Neighbor Discovery: Linux's NS (normal and duplicate address detection)
// and NA, our NS and NA rebuilt byte for byte against Linux's, the
// NS -> NA pairs, every RFC 4861 7.1 validation, every truncation.
#include "dataplane/net/ndp.h"

#include <gtest/gtest.h>

#include "dataplane/net/bytes.h"
#include "dataplane/net/checksum.h"
#include "dataplane/net/ip_protocol.h"
#include "dataplane/net/ipv6.h"
#include "tests/unit/net/packet_util.h"
#include "tests/unit/net/vectors.h"

namespace moongate::net {
namespace {

using test::Bytes;
using test::hex;

const MacAddress kLinuxMac{{2, 0, 0, 0, 0, 1}};
const MacAddress kOurMac{{2, 0, 0, 0, 0, 2}};
const Ipv6Address kLinuxIp = test::v6("fd00 0000 0000 0000 0000 0000 0000 0001");
const Ipv6Address kOurIp = test::v6("fd00 0000 0000 0000 0000 0000 0000 0002");
const Ipv6Address kThird = test::v6("fd00 0000 0000 0000 0000 0000 0000 0003");

// The IPv6 packet of a captured frame.
Bytes ip_of(std::string_view frame) { return test::slice(hex(frame), 14); }

// Recomputes the ICMPv6 checksum after a test edits a message.
void fix_checksum(Bytes& ip) {
  const std::uint32_t len = load_be16(ip.data() + 4);
  store_be16(ip.data() + 42, 0);
  store_be16(ip.data() + 42, l4_checksum_v6(load_ipv6_address(ip.data() + 8),
                                            load_ipv6_address(ip.data() + 24), kIpProtoIcmpv6,
                                            ip.data() + 40, len));
}

TEST(Ndp, ParsesLinuxSolicitation) {
  const Bytes ip = ip_of(test::vectors::kLinuxNs);
  NeighborSolicitation ns;
  ASSERT_TRUE(parse_neighbor_solicitation(ip.data(), ip.size(), ns));
  EXPECT_EQ(ns.src, kLinuxIp);
  EXPECT_EQ(ns.dst, ipv6_solicited_node(kThird));
  EXPECT_EQ(ns.target, kThird);
  ASSERT_TRUE(ns.source_mac.has_value());
  EXPECT_EQ(*ns.source_mac, kLinuxMac);
  EXPECT_FALSE(ns.is_dad());
}

TEST(Ndp, AnswersLinuxSolicitationForOurAddress) {
  const Bytes ip = ip_of(test::vectors::kLinuxNs);
  NeighborSolicitation ns;
  ASSERT_TRUE(parse_neighbor_solicitation(ip.data(), ip.size(), ns));
  Bytes out(kNdpFrameLen);
  EXPECT_EQ(build_na_reply(out.data(), out.size(), ns, kLinuxMac, kOurMac, kOurIp, true), 0U)
      << "target is not ours";
  ASSERT_EQ(build_na_reply(out.data(), out.size(), ns, kLinuxMac, kOurMac, kThird, true), 86U);
  EthernetHeader eth;
  ASSERT_TRUE(parse_ethernet(out.data(), out.size(), eth));
  EXPECT_EQ(eth.dst, kLinuxMac);
  EXPECT_EQ(eth.src, kOurMac);
  EXPECT_EQ(eth.ethertype, kEtherTypeIpv6);
  NeighborAdvertisement na;
  ASSERT_TRUE(parse_neighbor_advertisement(out.data() + 14, out.size() - 14, na));
  EXPECT_EQ(na.src, kThird);
  EXPECT_EQ(na.dst, kLinuxIp);
  EXPECT_EQ(na.target, kThird);
  ASSERT_TRUE(na.target_mac.has_value());
  EXPECT_EQ(*na.target_mac, kOurMac);
  EXPECT_TRUE(na.solicited);
  EXPECT_TRUE(na.override_flag);
  EXPECT_TRUE(na.router);
  EXPECT_EQ(build_na_reply(out.data(), 85, ns, kLinuxMac, kOurMac, kThird, true), 0U) << "cap";
}

TEST(Ndp, RebuildsLinuxNaByteForByte) {
  Bytes out(kNdpFrameLen);
  NaFlags flags;
  flags.router = true;
  flags.solicited = true;
  flags.override_flag = true;
  ASSERT_EQ(build_neighbor_advertisement(out.data(), out.size(), kOurMac, kLinuxMac, kLinuxIp,
                                         kOurIp, kLinuxIp, flags),
            86U);
  EXPECT_EQ(out, hex(test::vectors::kLinuxNa));
}

TEST(Ndp, RebuildsLinuxNsByteForByte) {
  Bytes out(kNdpFrameLen);
  ASSERT_EQ(build_neighbor_solicitation(out.data(), out.size(), kLinuxMac, kLinuxIp, kThird), 86U);
  EXPECT_EQ(out, hex(test::vectors::kLinuxNs));
  ASSERT_EQ(build_neighbor_solicitation(out.data(), out.size(), kOurMac, kOurIp, kLinuxIp), 86U);
  EXPECT_EQ(out, hex(test::vectors::kOurNs));
  EXPECT_EQ(build_neighbor_solicitation(out.data(), 85, kOurMac, kOurIp, kLinuxIp), 0U);
}

TEST(Ndp, LearnsFromLinuxAdvertisement) {
  const Bytes ip = ip_of(test::vectors::kLinuxNa);
  NeighborAdvertisement na;
  ASSERT_TRUE(parse_neighbor_advertisement(ip.data(), ip.size(), na));
  EXPECT_EQ(na.target, kLinuxIp);
  ASSERT_TRUE(na.target_mac.has_value());
  EXPECT_EQ(*na.target_mac, kLinuxMac);
  EXPECT_TRUE(na.router);
  EXPECT_TRUE(na.solicited);
  EXPECT_TRUE(na.override_flag);
  NeighborSolicitation ns;
  EXPECT_FALSE(parse_neighbor_solicitation(ip.data(), ip.size(), ns)) << "an NA is not an NS";
}

TEST(Ndp, DuplicateAddressDetection) {
  const Bytes ip = ip_of(test::vectors::kLinuxDadNs);
  NeighborSolicitation ns;
  ASSERT_TRUE(parse_neighbor_solicitation(ip.data(), ip.size(), ns)) << "nonce option skipped";
  EXPECT_TRUE(ns.is_dad());
  EXPECT_FALSE(ns.source_mac.has_value());
  const Ipv6Address target = test::v6("fe80 0000 0000 0000 0000 00ff fe00 0001");
  EXPECT_EQ(ns.target, target);
  // Defending the address: to all-nodes, S clear.
  Bytes out(kNdpFrameLen);
  ASSERT_EQ(build_na_reply(out.data(), out.size(), ns, kLinuxMac, kOurMac, target, false), 86U);
  EthernetHeader eth;
  ASSERT_TRUE(parse_ethernet(out.data(), out.size(), eth));
  EXPECT_EQ(eth.dst, (MacAddress{{0x33, 0x33, 0, 0, 0, 1}}));
  NeighborAdvertisement na;
  ASSERT_TRUE(parse_neighbor_advertisement(out.data() + 14, out.size() - 14, na));
  EXPECT_EQ(na.dst, kIpv6AllNodes);
  EXPECT_FALSE(na.solicited);
  EXPECT_TRUE(na.override_flag);
  EXPECT_FALSE(na.router);
}

TEST(Ndp, UnicastSolicitationWithoutSourceAddressUsesTheFrameSource) {
  // A NUD probe: unicast to our address, no source link-layer option.
  Bytes out(kNdpFrameLen);
  ASSERT_EQ(build_neighbor_solicitation(out.data(), out.size(), kLinuxMac, kLinuxIp, kOurIp), 86U);
  Bytes ip = test::slice(out, 14, 40 + 24);
  store_be16(ip.data() + 4, 24);
  std::memcpy(ip.data() + 24, kOurIp.data(), 16);
  fix_checksum(ip);
  NeighborSolicitation ns;
  ASSERT_TRUE(parse_neighbor_solicitation(ip.data(), ip.size(), ns));
  EXPECT_FALSE(ns.source_mac.has_value());
  ASSERT_EQ(build_na_reply(out.data(), out.size(), ns, kLinuxMac, kOurMac, kOurIp, true), 86U);
  EXPECT_EQ(MacAddress::load(out.data()), kLinuxMac);
  // And nothing is sent to a group address taken from the frame.
  EXPECT_EQ(build_na_reply(out.data(), out.size(), ns, kBroadcastMac, kOurMac, kOurIp, true), 0U);
}

TEST(Ndp, RejectsPerRfc4861Section7) {
  const Bytes good = ip_of(test::vectors::kLinuxNs);
  NeighborSolicitation ns;
  ASSERT_TRUE(parse_neighbor_solicitation(good.data(), good.size(), ns));
  auto rejected = [&](Bytes p, bool refix, const char* what) {
    if (refix) fix_checksum(p);
    EXPECT_FALSE(parse_neighbor_solicitation(p.data(), p.size(), ns)) << what;
  };
  {
    Bytes p = good;
    p[7] = 254;  // routed: hop limit not in the pseudo-header, checksum still valid
    rejected(p, false, "hop limit 254");
  }
  {
    Bytes p = good;
    p[42] ^= 0x10;
    rejected(p, false, "bad checksum");
  }
  {
    Bytes p = good;
    p[41] = 1;
    rejected(p, true, "code 1");
  }
  {
    Bytes p = good;
    p[48] = 0xff;  // target ff00::...
    rejected(p, true, "multicast target");
  }
  {
    Bytes p = good;
    p[8] = 0xff;
    rejected(p, true, "multicast source");
  }
  {
    Bytes p = good;
    p[65] = 0;
    rejected(p, true, "option length 0");
  }
  {
    Bytes p = good;
    p[65] = 2;
    rejected(p, true, "option longer than the message");
  }
  {
    Bytes p = good;
    p[66] = 0x01;  // 03:00:.. a group MAC in the source link-layer option
    rejected(p, true, "multicast link-layer address");
  }
  {
    Bytes p = good;
    p.resize(p.size() + 8, 0);  // second 8-byte option: type 1 again, len 2
    store_be16(p.data() + 4, 40);
    p[64] = 1;
    p[65] = 2;  // the first link-layer option is 16 bytes: not Ethernet
    rejected(p, true, "link-layer option of 16 bytes");
  }
  {
    Bytes p = test::slice(good, 0, 40 + 20);
    store_be16(p.data() + 4, 20);
    rejected(p, true, "ICMPv6 shorter than 24");
  }
  {
    // Behind a Destination Options header (RFC 6980 territory): not accepted.
    Bytes p = test::slice(good, 0, 40);
    Bytes ext = hex("3a 00 0104 00000000");
    p.insert(p.end(), ext.begin(), ext.end());
    p.insert(p.end(), good.begin() + 40, good.end());
    p[6] = kIpProtoDestOpts;
    store_be16(p.data() + 4, static_cast<std::uint16_t>(p.size() - 40));
    EXPECT_FALSE(parse_neighbor_solicitation(p.data(), p.size(), ns)) << "extension header";
  }
}

TEST(Ndp, RejectsBadDad) {
  const Bytes dad = ip_of(test::vectors::kLinuxDadNs);
  NeighborSolicitation ns;
  {
    Bytes p = dad;  // to a unicast destination
    std::memcpy(p.data() + 24, kOurIp.data(), 16);
    fix_checksum(p);
    EXPECT_FALSE(parse_neighbor_solicitation(p.data(), p.size(), ns));
  }
  {
    Bytes p = dad;  // with a source link-layer option (the nonce turned into one)
    p[64] = 1;
    p[66] = 0x02;
    fix_checksum(p);
    EXPECT_FALSE(parse_neighbor_solicitation(p.data(), p.size(), ns));
  }
}

TEST(Ndp, RejectsSolicitedAdvertisementToAGroup) {
  Bytes p = ip_of(test::vectors::kLinuxNa);
  std::memcpy(p.data() + 24, kIpv6AllNodes.data(), 16);
  fix_checksum(p);
  NeighborAdvertisement na;
  EXPECT_FALSE(parse_neighbor_advertisement(p.data(), p.size(), na));
  p[44] = 0xa0;  // R, O: unsolicited is fine to a group
  fix_checksum(p);
  ASSERT_TRUE(parse_neighbor_advertisement(p.data(), p.size(), na));
  EXPECT_FALSE(na.solicited);
}

TEST(Ndp, AdvertisementWithoutOptionAndWithUnknownOptions) {
  Bytes p = ip_of(test::vectors::kLinuxNa);
  p[64] = 99;  // unknown option type: skipped
  fix_checksum(p);
  NeighborAdvertisement na;
  ASSERT_TRUE(parse_neighbor_advertisement(p.data(), p.size(), na));
  EXPECT_FALSE(na.target_mac.has_value());
  p = test::slice(p, 0, 64);
  store_be16(p.data() + 4, 24);
  fix_checksum(p);
  ASSERT_TRUE(parse_neighbor_advertisement(p.data(), p.size(), na));
  EXPECT_FALSE(na.target_mac.has_value());
}

TEST(Ndp, EveryTruncationRejected) {
  for (std::string_view frame : {test::vectors::kLinuxNs, test::vectors::kLinuxDadNs,
                                 test::vectors::kOurNs}) {
    const Bytes ip = ip_of(frame);
    for (std::size_t n = 0; n < ip.size(); ++n) {
      test::Exact e(ip, n);
      NeighborSolicitation ns;
      EXPECT_FALSE(parse_neighbor_solicitation(e.data(), n, ns)) << n;
    }
  }
  const Bytes ip = ip_of(test::vectors::kLinuxNa);
  for (std::size_t n = 0; n < ip.size(); ++n) {
    test::Exact e(ip, n);
    NeighborAdvertisement na;
    EXPECT_FALSE(parse_neighbor_advertisement(e.data(), n, na)) << n;
  }
}

}  // namespace
}  // namespace moongate::net
