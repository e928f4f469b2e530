// ICMP errors about translated flows, both ways: time exceeded (traceroute
// over UDP and over ICMP echo), port unreachable, fragmentation needed
// quoting a TCP header cut after 8 bytes; the outer header, the quoted
// header and port/id, and every checksum (outer IPv4, ICMP, quoted IPv4,
// quoted L4 when the whole datagram is quoted) checked by an independent
// full computation. Errors quoting unknown flows, with bad checksums, or
// about the gateway's own packets are counted or left to the gateway.
#include <gtest/gtest.h>

#include "nat/nat44.h"
#include "tests/unit/nat/packets.h"

namespace moongate::nat {
namespace {

using test::addr;
using test::be16;
using test::be32;
using test::Bytes;
using test::verify_checksums;

constexpr std::uint64_t kS = kNanosPerSecond;
const std::uint32_t kInside = addr(10, 0, 0, 2);
const std::uint32_t kRemote = addr(198, 51, 100, 7);
const std::uint32_t kRouter = addr(192, 0, 2, 1);
const std::uint32_t kWan = addr(203, 0, 113, 1);

struct IcmpErrors : ::testing::Test {
  std::uint64_t now = 1000 * kS;
  Nat44 nat{[] {
              Nat44Config c;
              c.pool = {{203, 0, 113, 1}};
              c.lcores = 2;
              c.max_flows = 100;
              c.reserved_ports = {51820};
              return c;
            }(),
            0, now};

  // Sends `p` out; returns it as it left (what a router would quote).
  Bytes out(Bytes p) {
    EXPECT_EQ(nat.translate(p.data(), p.size(), Direction::kOutbound, now).verdict,
              Verdict::kTranslated);
    return p;
  }
  Result in(Bytes& p) { return nat.translate(p.data(), p.size(), Direction::kInbound, now); }
};

TEST_F(IcmpErrors, TimeExceededQuotingUdpWholeDatagram) {
  test::Ip ip{kInside, kRemote};
  ip.ttl = 1;
  const Bytes sent = out(test::udp(ip, 33434, 33435, 32));
  const std::uint16_t ext = be16(&sent[20]);
  Bytes err = test::icmp_error({kRouter, kWan}, 11, 0, sent);
  ASSERT_EQ(verify_checksums(err), "");
  ASSERT_EQ(nat.inbound_owner(err.data(), err.size()), 0);
  ASSERT_EQ(in(err).verdict, Verdict::kTranslated);
  EXPECT_EQ(verify_checksums(err), "");  // includes the quoted UDP checksum
  EXPECT_EQ(be32(&err[12]), kRouter);
  EXPECT_EQ(be32(&err[16]), kInside);
  const std::uint8_t* q = &err[28];
  EXPECT_EQ(be32(q + 12), kInside);
  EXPECT_EQ(be32(q + 16), kRemote);
  EXPECT_EQ(be16(q + 20), 33434);
  EXPECT_EQ(be16(q + 22), 33435);
  EXPECT_NE(ext, 33434);
  // The quote is now exactly what the inside host sent (TTL aside).
  Bytes original = test::udp(ip, 33434, 33435, 32);
  EXPECT_TRUE(std::equal(original.begin() + 20, original.end(), err.begin() + 48));
  EXPECT_EQ(nat.counters().icmp_errors_in, 1u);
}

TEST_F(IcmpErrors, TimeExceededQuotingIcmpEchoForTraceroute) {
  test::Ip ip{kInside, kRemote};
  ip.ttl = 1;
  const Bytes sent = out(test::icmp_echo(ip, 8, 0x4242, 3));
  ASSERT_NE(be16(&sent[24]), 0x4242);
  // Linux routers quote 28 bytes (IP header + 8).
  Bytes err = test::icmp_error({kRouter, kWan}, 11, 0, sent, 28);
  ASSERT_EQ(in(err).verdict, Verdict::kTranslated);
  EXPECT_EQ(verify_checksums(err), "");
  EXPECT_EQ(be32(&err[16]), kInside);
  EXPECT_EQ(be32(&err[28 + 12]), kInside);
  EXPECT_EQ(be16(&err[48 + 4]), 0x4242);
  // The quoted echo's own checksum is right again for the original id.
  Bytes original = test::icmp_echo(ip, 8, 0x4242, 3);
  EXPECT_EQ(be16(&err[48 + 2]), be16(&original[22]));
}

TEST_F(IcmpErrors, FragmentationNeededQuotingTcpCutAfterEightBytes) {
  const Bytes sent = out(test::tcp({kInside, kRemote}, 40000, 443, test::kSyn, 1400));
  Bytes err = test::icmp_error({kRouter, kWan}, 3, 4, sent, 28, 1280);
  ASSERT_EQ(in(err).verdict, Verdict::kTranslated);
  EXPECT_EQ(verify_checksums(err), "");
  EXPECT_EQ(be16(&err[26]), 1280);  // next-hop MTU kept
  EXPECT_EQ(be32(&err[28 + 12]), kInside);
  EXPECT_EQ(be16(&err[48]), 40000);
  // The quoted sequence number untouched.
  EXPECT_EQ(be32(&err[48 + 4]), 1000u);
}

TEST_F(IcmpErrors, FragmentationNeededQuotingWholeTcpHeader) {
  const Bytes sent = out(test::tcp({kInside, kRemote}, 40001, 443, test::kSyn));
  Bytes err = test::icmp_error({kRouter, kWan}, 3, 4, sent, 0, 1280);
  ASSERT_EQ(in(err).verdict, Verdict::kTranslated);
  EXPECT_EQ(verify_checksums(err), "");  // includes the quoted TCP checksum
}

TEST_F(IcmpErrors, PortUnreachableFromInsideHostAboutAReply) {
  const Bytes sent = out(test::udp({kInside, kRemote}, 5353, 53));
  const std::uint16_t ext = be16(&sent[20]);
  Bytes reply = test::udp({kRemote, kWan}, 53, ext, 20);
  ASSERT_EQ(in(reply).verdict, Verdict::kTranslated);
  // The inside host's socket is gone: it answers port unreachable quoting
  // the reply as it received it.
  Bytes err = test::icmp_error({kInside, kRemote}, 3, 3, reply);
  ASSERT_EQ(nat.translate(err.data(), err.size(), Direction::kOutbound, now).verdict,
            Verdict::kTranslated);
  EXPECT_EQ(verify_checksums(err), "");
  EXPECT_EQ(be32(&err[12]), kWan);
  EXPECT_EQ(be32(&err[28 + 16]), kWan);
  EXPECT_EQ(be16(&err[48 + 2]), ext);
}

TEST_F(IcmpErrors, UnknownQuotedFlowsAreCountedDrops) {
  // A packet we never sent, from our address and a port in our range.
  const Bytes forged = test::udp({kWan, kRemote}, 2000, 53);
  Bytes err = test::icmp_error({kRouter, kWan}, 3, 3, forged);
  EXPECT_EQ(in(err).drop, NatDrop::kIcmpUnknownFlow);
  // A real flow's port, but another destination.
  const Bytes sent = out(test::udp({kInside, kRemote}, 5000, 53));
  const Bytes other = test::udp({kWan, addr(198, 51, 100, 99)}, be16(&sent[20]), 53);
  Bytes err2 = test::icmp_error({kRouter, kWan}, 11, 0, other);
  EXPECT_EQ(in(err2).drop, NatDrop::kIcmpUnknownFlow);
  // Outbound: an inside host's error about a packet that came through no flow.
  Bytes err3 = test::icmp_error({kInside, kRemote}, 3, 3, test::udp({kRemote, kInside}, 53, 9999));
  EXPECT_EQ(nat.translate(err3.data(), err3.size(), Direction::kOutbound, now).drop,
            NatDrop::kIcmpUnknownFlow);
  EXPECT_EQ(nat.counters().dropped(NatDrop::kIcmpUnknownFlow), 3u);
}

TEST_F(IcmpErrors, BadChecksumAndMalformedQuotesAreCounted) {
  const Bytes sent = out(test::udp({kInside, kRemote}, 5001, 53));
  Bytes err = test::icmp_error({kRouter, kWan}, 11, 0, sent);
  err[22] ^= 0xff;
  EXPECT_EQ(in(err).drop, NatDrop::kIcmpBadChecksum);
  // A quote too short to hold the ports (IP header + 4).
  Bytes short_quote = test::icmp_error({kRouter, kWan}, 11, 0, sent, 24);
  EXPECT_EQ(in(short_quote).drop, NatDrop::kMalformed);
  EXPECT_EQ(nat.flow_count(), 1u);
}

TEST_F(IcmpErrors, ErrorsAboutTheGatewaysOwnPacketsAreNotNat) {
  // Our WireGuard packets (listen port) and SSH replies (port 22).
  Bytes wg = test::icmp_error({kRouter, kWan}, 3, 4, test::udp({kWan, kRemote}, 51820, 40000), 28);
  EXPECT_EQ(in(wg).verdict, Verdict::kNotNat);
  EXPECT_EQ(nat.inbound_owner(wg.data(), wg.size()), kNoOwner);
  Bytes ssh = test::icmp_error({kRouter, kWan}, 3, 4, test::tcp({kWan, kRemote}, 22, 40000, test::kAck), 28);
  EXPECT_EQ(in(ssh).verdict, Verdict::kNotNat);
  EXPECT_EQ(nat.counters().dropped(NatDrop::kIcmpUnknownFlow), 0u);
}

TEST_F(IcmpErrors, ErrorForAnotherLcoresFlowIsHandedOff) {
  const PortRange r1 = nat.partition().range_of(1);
  Bytes err = test::icmp_error({kRouter, kWan}, 11, 0, test::udp({kWan, kRemote}, r1.first, 53));
  const Bytes before = err;
  const Result r = in(err);
  EXPECT_EQ(r.verdict, Verdict::kHandOff);
  EXPECT_EQ(r.owner, 1);
  EXPECT_EQ(err, before);
  EXPECT_EQ(nat.inbound_owner(err.data(), err.size()), 1);
}

}  // namespace
}  // namespace moongate::nat
