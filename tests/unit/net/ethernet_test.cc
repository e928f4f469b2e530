// Ethernet: MAC address classes and formatting, header parse with and
// without an 802.1Q tag, write and swap.
#include "dataplane/net/ethernet.h"

#include <gtest/gtest.h>

#include "tests/unit/net/packet_util.h"
#include "tests/unit/net/vectors.h"

namespace moongate::net {
namespace {

using test::Bytes;
using test::hex;

TEST(MacAddress, Classes) {
  EXPECT_TRUE(kBroadcastMac.is_broadcast());
  EXPECT_TRUE(kBroadcastMac.is_multicast());
  EXPECT_FALSE(kBroadcastMac.is_unicast());
  const MacAddress mcast{{0x33, 0x33, 0xff, 0, 0, 1}};
  EXPECT_TRUE(mcast.is_multicast());
  EXPECT_FALSE(mcast.is_broadcast());
  const MacAddress uni{{0x02, 0, 0, 0, 0, 1}};
  EXPECT_FALSE(uni.is_multicast());
  EXPECT_TRUE(uni.is_unicast());
  EXPECT_TRUE(MacAddress{}.is_zero());
  EXPECT_FALSE(MacAddress{}.is_unicast());
}

TEST(MacAddress, Format) {
  const MacAddress m{{0x00, 0x16, 0x3e, 0x0b, 0x6b, 0xd2}};
  EXPECT_EQ(m.to_string(), "00:16:3e:0b:6b:d2");
  char buf[18];
  kBroadcastMac.format(buf);
  EXPECT_STREQ(buf, "ff:ff:ff:ff:ff:ff");
}

TEST(MacAddress, LoadStoreUnaligned) {
  Bytes b = hex("ee 00 16 3e 0b 6b d2 ee");
  const MacAddress m = MacAddress::load(b.data() + 1);
  EXPECT_EQ(m.to_string(), "00:16:3e:0b:6b:d2");
  Bytes out(8, 0);
  m.store(out.data() + 1);
  EXPECT_EQ(out, hex("00 00 16 3e 0b 6b d2 00"));
}

TEST(MacAddress, Ipv6MulticastMapping) {
  // RFC 2464 7: 33:33 + the last four bytes of the group.
  EXPECT_EQ(ipv6_multicast_mac(ipv6_solicited_node(test::v6("fd00 0000 0000 0000 0000 0000 1234 5678"))),
            (MacAddress{{0x33, 0x33, 0xff, 0x34, 0x56, 0x78}}));
  EXPECT_EQ(ipv6_multicast_mac(kIpv6AllNodes), (MacAddress{{0x33, 0x33, 0, 0, 0, 1}}));
}

TEST(Ethernet, ParseUntagged) {
  const Bytes f = hex(test::vectors::kLinuxArpRequest);
  EthernetHeader h;
  ASSERT_TRUE(parse_ethernet(f.data(), f.size(), h));
  EXPECT_TRUE(h.dst.is_broadcast());
  EXPECT_EQ(h.src.to_string(), "02:00:00:00:00:01");
  EXPECT_EQ(h.ethertype, kEtherTypeArp);
  EXPECT_FALSE(h.has_vlan);
  EXPECT_EQ(h.header_len, 14);
}

TEST(Ethernet, ParseVlanTagged) {
  const Bytes f = hex("ffffffffffff 020000000001 8100 a07b 86dd 60");
  EthernetHeader h;
  ASSERT_TRUE(parse_ethernet(f.data(), f.size(), h));
  EXPECT_TRUE(h.has_vlan);
  EXPECT_EQ(h.vlan_tci, 0xa07b);
  EXPECT_EQ(h.vlan_id(), 0x07b);
  EXPECT_EQ(h.ethertype, kEtherTypeIpv6);
  EXPECT_EQ(h.header_len, 18);
}

TEST(Ethernet, SecondTagAndQinQAreReportedNotUnwrapped) {
  const Bytes double_tag = hex("ffffffffffff 020000000001 8100 0001 8100 0002 0800");
  EthernetHeader h;
  ASSERT_TRUE(parse_ethernet(double_tag.data(), double_tag.size(), h));
  EXPECT_EQ(h.ethertype, kEtherTypeVlan);
  EXPECT_EQ(h.vlan_id(), 1);
  const Bytes qinq = hex("ffffffffffff 020000000001 88a8 0001 8100 0002 0800");
  ASSERT_TRUE(parse_ethernet(qinq.data(), qinq.size(), h));
  EXPECT_FALSE(h.has_vlan);
  EXPECT_EQ(h.ethertype, kEtherTypeQinQ);
}

TEST(Ethernet, ReportsLengthFieldsAsIs) {
  const Bytes f = hex("ffffffffffff 020000000001 0026");  // 802.3 length
  EthernetHeader h;
  ASSERT_TRUE(parse_ethernet(f.data(), f.size(), h));
  EXPECT_EQ(h.ethertype, 0x0026);
}

TEST(Ethernet, EveryTruncationRejected) {
  const Bytes tagged = hex("ffffffffffff 020000000001 8100 a07b 86dd");
  EthernetHeader h;
  for (std::size_t n = 0; n < tagged.size(); ++n) {
    test::Exact e(tagged, n);
    EXPECT_FALSE(parse_ethernet(e.data(), n, h)) << n;
  }
  const Bytes untagged = hex("ffffffffffff 020000000001 0800");
  for (std::size_t n = 0; n < untagged.size(); ++n) {
    test::Exact e(untagged, n);
    EXPECT_FALSE(parse_ethernet(e.data(), n, h)) << n;
  }
}

TEST(Ethernet, WriteAndSwap) {
  Bytes f(14, 0);
  const MacAddress a{{2, 0, 0, 0, 0, 1}}, b{{2, 0, 0, 0, 0, 2}};
  EXPECT_EQ(write_ethernet(f.data(), 13, a, b, kEtherTypeIpv4), 0U);
  ASSERT_EQ(write_ethernet(f.data(), f.size(), a, b, kEtherTypeIpv4), 14U);
  EXPECT_EQ(f, hex("020000000001 020000000002 0800"));
  ASSERT_TRUE(swap_ethernet_addresses(f.data(), f.size()));
  EXPECT_EQ(f, hex("020000000002 020000000001 0800"));
  test::Exact short_frame(f, 11);
  EXPECT_FALSE(swap_ethernet_addresses(short_frame.data(), 11));
  EXPECT_EQ(short_frame.bytes(), test::slice(f, 0, 11));
}

}  // namespace
}  // namespace moongate::net
