// ARP: Linux's request and reply, our request (which Linux answered), the
// request -> reply pair, every rejected field, every truncation.
#include "dataplane/net/arp.h"

#include <gtest/gtest.h>

#include "dataplane/net/bytes.h"
#include "tests/unit/net/packet_util.h"
#include "tests/unit/net/vectors.h"

namespace moongate::net {
namespace {

using test::Bytes;
using test::hex;

const MacAddress kLinuxMac{{2, 0, 0, 0, 0, 1}};
const MacAddress kOurMac{{2, 0, 0, 0, 0, 2}};

TEST(Arp, ParsesLinuxRequest) {
  const Bytes f = hex(test::vectors::kLinuxArpRequest);
  ArpPacket a;
  ASSERT_TRUE(parse_arp(f.data() + 14, f.size() - 14, a));
  EXPECT_EQ(a.op, ArpOp::kRequest);
  EXPECT_EQ(a.sender_mac, kLinuxMac);
  EXPECT_EQ(a.sender_ip, test::v4(10, 7, 0, 1));
  EXPECT_TRUE(a.target_mac.is_zero());
  EXPECT_EQ(a.target_ip, test::v4(10, 7, 0, 3));
}

TEST(Arp, RepliesToARequestForOurAddress) {
  const Bytes f = hex(test::vectors::kLinuxArpRequest);
  ArpPacket req;
  ASSERT_TRUE(parse_arp(f.data() + 14, f.size() - 14, req));
  Bytes out(kArpFrameLen, 0xee);
  ASSERT_EQ(build_arp_reply(out.data(), out.size(), req, kOurMac, test::v4(10, 7, 0, 3)), 60U);
  // Unicast to the requester; "10.7.0.3 is at 02:..:02"; zero padding to 60.
  EXPECT_EQ(out, hex("020000000001 020000000002 0806"
                     "0001 0800 06 04 0002 020000000002 0a070003 020000000001 0a070001"
                     "000000000000000000000000000000000000"));
  ArpPacket rep;
  ASSERT_TRUE(parse_arp(out.data() + 14, out.size() - 14, rep));
  EXPECT_EQ(rep.op, ArpOp::kReply);
  EXPECT_EQ(rep.sender_mac, kOurMac);
  EXPECT_EQ(rep.sender_ip, test::v4(10, 7, 0, 3));
  EXPECT_EQ(rep.target_mac, kLinuxMac);
  EXPECT_EQ(rep.target_ip, test::v4(10, 7, 0, 1));
}

TEST(Arp, DoesNotReplyForOtherAddressesOrReplies) {
  const Bytes f = hex(test::vectors::kLinuxArpRequest);
  ArpPacket req;
  ASSERT_TRUE(parse_arp(f.data() + 14, f.size() - 14, req));
  Bytes out(kArpFrameLen);
  EXPECT_EQ(build_arp_reply(out.data(), out.size(), req, kOurMac, test::v4(10, 7, 0, 4)), 0U);
  EXPECT_EQ(build_arp_reply(out.data(), 59, req, kOurMac, test::v4(10, 7, 0, 3)), 0U) << "cap";
  const Bytes r = hex(test::vectors::kLinuxArpReply);
  ArpPacket rep;
  ASSERT_TRUE(parse_arp(r.data() + 14, r.size() - 14, rep));
  EXPECT_EQ(build_arp_reply(out.data(), out.size(), rep, kOurMac, rep.target_ip), 0U);
}

TEST(Arp, BuildsTheRequestLinuxAnswered) {
  Bytes out(kArpFrameLen);
  ASSERT_EQ(build_arp_request(out.data(), out.size(), kOurMac, test::v4(10, 7, 0, 2),
                              test::v4(10, 7, 0, 1)),
            60U);
  EXPECT_EQ(out, hex(test::vectors::kOurArpRequest));
  EXPECT_EQ(build_arp_request(out.data(), 59, kOurMac, test::v4(10, 7, 0, 2), test::v4(10, 7, 0, 1)),
            0U);
  // Linux's answer, learned from.
  const Bytes r = hex(test::vectors::kLinuxArpReply);
  ArpPacket rep;
  ASSERT_TRUE(parse_arp(r.data() + 14, r.size() - 14, rep));
  EXPECT_EQ(rep.op, ArpOp::kReply);
  EXPECT_EQ(rep.sender_ip, test::v4(10, 7, 0, 1));
  EXPECT_EQ(rep.sender_mac, kLinuxMac);
  EXPECT_EQ(rep.target_mac, kOurMac);
}

TEST(Arp, RequestReplyPairBetweenTwoHosts) {
  const MacAddress mac_a{{0x00, 0x16, 0x3e, 1, 2, 3}}, mac_b{{0x00, 0x16, 0x3e, 4, 5, 6}};
  const Ipv4Address ip_a = test::v4(192, 0, 2, 1), ip_b = test::v4(192, 0, 2, 2);
  Bytes req(kArpFrameLen), rep(kArpFrameLen);
  ASSERT_EQ(build_arp_request(req.data(), req.size(), mac_a, ip_a, ip_b), 60U);
  EthernetHeader eth;
  ASSERT_TRUE(parse_ethernet(req.data(), req.size(), eth));
  EXPECT_TRUE(eth.dst.is_broadcast());
  EXPECT_EQ(eth.ethertype, kEtherTypeArp);
  ArpPacket parsed;
  ASSERT_TRUE(parse_arp(req.data() + eth.header_len, req.size() - eth.header_len, parsed));
  ASSERT_EQ(build_arp_reply(rep.data(), rep.size(), parsed, mac_b, ip_b), 60U);
  ASSERT_TRUE(parse_ethernet(rep.data(), rep.size(), eth));
  EXPECT_EQ(eth.dst, mac_a);
  EXPECT_EQ(eth.src, mac_b);
  ArpPacket answer;
  ASSERT_TRUE(parse_arp(rep.data() + 14, rep.size() - 14, answer));
  EXPECT_EQ(answer.op, ArpOp::kReply);
  EXPECT_EQ(answer.sender_mac, mac_b);
  EXPECT_EQ(answer.sender_ip, ip_b);
  EXPECT_EQ(answer.target_mac, mac_a);
  EXPECT_EQ(answer.target_ip, ip_a);
}

TEST(Arp, GratuitousAndProbe) {
  Bytes out(kArpFrameLen);
  const Ipv4Address ip = test::v4(192, 0, 2, 9);
  ASSERT_EQ(build_arp_request(out.data(), out.size(), kOurMac, ip, ip), 60U);
  ArpPacket a;
  ASSERT_TRUE(parse_arp(out.data() + 14, 46, a));
  EXPECT_EQ(a.sender_ip, a.target_ip);
  // RFC 5227 probe: sender 0.0.0.0 is accepted, and answered.
  ASSERT_EQ(build_arp_request(out.data(), out.size(), kOurMac, test::v4(0, 0, 0, 0), ip), 60U);
  ASSERT_TRUE(parse_arp(out.data() + 14, 46, a));
  Bytes rep(kArpFrameLen);
  EXPECT_EQ(build_arp_reply(rep.data(), rep.size(), a, kLinuxMac, ip), 60U);
}

TEST(Arp, RejectsForeignOrSpoofedPackets) {
  const Bytes good = test::slice(hex(test::vectors::kLinuxArpRequest), 14);
  ArpPacket a;
  ASSERT_TRUE(parse_arp(good.data(), good.size(), a));
  struct Mutation {
    std::size_t offset;
    std::uint8_t value;
    const char* what;
  } mutations[] = {
      {1, 6, "hardware type 6 (IEEE 802)"}, {2, 0x86, "protocol type 0x86dd"},
      {4, 8, "hardware length"},             {5, 16, "protocol length"},
      {7, 3, "opcode 3 (RARP)"},             {7, 0, "opcode 0"},
      {8, 0x01, "multicast sender MAC"},     {8, 0xff, "broadcast sender MAC"},
  };
  for (const Mutation& m : mutations) {
    Bytes p = good;
    p[m.offset] = m.value;
    if (m.offset == 8 && m.value == 0xff) std::fill(p.begin() + 8, p.begin() + 14, 0xff);
    EXPECT_FALSE(parse_arp(p.data(), p.size(), a)) << m.what;
  }
  Bytes zero_sender = good;
  std::fill(zero_sender.begin() + 8, zero_sender.begin() + 14, 0);
  EXPECT_FALSE(parse_arp(zero_sender.data(), zero_sender.size(), a)) << "zero sender MAC";
}

TEST(Arp, EveryTruncationRejected) {
  const Bytes good = test::slice(hex(test::vectors::kLinuxArpRequest), 14);
  for (std::size_t n = 0; n < good.size(); ++n) {
    test::Exact e(good, n);
    ArpPacket a;
    EXPECT_FALSE(parse_arp(e.data(), n, a)) << n;
  }
}

}  // namespace
}  // namespace moongate::net
