// Nat44 on a manual clock: UDP, TCP and ICMP echo translated both ways with
// every checksum verified by an independent full computation (packets.h);
// the TCP tracker's timeouts through the whole table; UDP/ICMP timeouts; a
// full table; port ownership by lcore and the hand-off verdict; hostile
// input (spoofed returns, fragments, stray TCP, truncations, random
// mutations) counted and never crashing (run under ASan/UBSan).
#include "nat/nat44.h"

#include <gtest/gtest.h>

#include <random>
#include <set>

#include "nat/tcp_state.h"
#include "tests/unit/nat/packets.h"

namespace moongate::nat {
namespace {

using test::addr;
using test::be16;
using test::be32;
using test::Bytes;
using test::Ip;
using test::verify_checksums;

constexpr std::uint64_t kS = kNanosPerSecond;
const std::uint32_t kInside = addr(10, 0, 0, 2);
const std::uint32_t kInside2 = addr(10, 0, 0, 3);
const std::uint32_t kRemote = addr(198, 51, 100, 7);
const std::uint32_t kWan = addr(203, 0, 113, 1);
const net::Ipv4Address kWanBytes{203, 0, 113, 1};
constexpr std::uint16_t kListenPort = 51820;

Nat44Config config(unsigned lcores = 1, std::size_t max_flows = 1000) {
  Nat44Config c;
  c.pool = {kWanBytes};
  c.lcores = lcores;
  c.max_flows = max_flows;
  c.seed = 42;
  c.reserved_ports = {kListenPort};
  return c;
}

Result run(Nat44& n, Bytes& p, Direction d, std::uint64_t now) {
  return n.translate(p.data(), p.size(), d, now);
}

struct Fixture : ::testing::Test {
  std::uint64_t now = 1000 * kS;
  Nat44 nat{config(), 0, now};

  // Sends an outbound packet; returns the external port it got.
  std::uint16_t out(Bytes p, std::uint16_t port_field = 20) {
    EXPECT_EQ(run(nat, p, Direction::kOutbound, now).verdict, Verdict::kTranslated);
    EXPECT_EQ(verify_checksums(p), "");
    EXPECT_EQ(be32(&p[12]), kWan);
    return be16(&p[port_field]);
  }
  Result in(Bytes& p) { return run(nat, p, Direction::kInbound, now); }
};

using Nat = Fixture;

TEST_F(Nat, UdpBothWays) {
  Bytes p = test::udp({kInside, kRemote}, 5000, 53);
  ASSERT_EQ(run(nat, p, Direction::kOutbound, now).verdict, Verdict::kTranslated);
  EXPECT_EQ(verify_checksums(p), "");
  EXPECT_EQ(be32(&p[12]), kWan);
  EXPECT_EQ(be32(&p[16]), kRemote);
  const std::uint16_t ext = be16(&p[20]);
  EXPECT_TRUE(nat.partition().range_of(0).contains(ext));
  EXPECT_NE(ext, kListenPort);
  EXPECT_EQ(be16(&p[22]), 53);
  EXPECT_EQ(nat.flow_count(), 1u);

  // The same flow keeps its port.
  EXPECT_EQ(out(test::udp({kInside, kRemote}, 5000, 53, 100)), ext);
  EXPECT_EQ(nat.flow_count(), 1u);

  Bytes r = test::udp({kRemote, kWan}, 53, ext, 40);
  ASSERT_EQ(in(r).verdict, Verdict::kTranslated);
  EXPECT_EQ(verify_checksums(r), "");
  EXPECT_EQ(be32(&r[12]), kRemote);
  EXPECT_EQ(be32(&r[16]), kInside);
  EXPECT_EQ(be16(&r[20]), 53);
  EXPECT_EQ(be16(&r[22]), 5000);
  EXPECT_EQ(nat.counters().translated_out, 2u);
  EXPECT_EQ(nat.counters().translated_in, 1u);
  EXPECT_EQ(nat.counters().flows_created, 1u);
}

TEST_F(Nat, PreParsedHeaderGivesTheSameResult) {
  Bytes a = test::udp({kInside, kRemote}, 5002, 53);
  Bytes b = a;
  net::Ipv4Header h;
  ASSERT_EQ(net::parse_ipv4(b.data(), b.size(), h), net::Ipv4Status::kOk);
  nat.prefetch(a.data(), a.size(), Direction::kOutbound);
  ASSERT_EQ(run(nat, a, Direction::kOutbound, now).verdict, Verdict::kTranslated);
  ASSERT_EQ(nat.translate(b.data(), h, Direction::kOutbound, now).verdict, Verdict::kTranslated);
  EXPECT_EQ(a, b);  // same flow, same rewrite
  EXPECT_EQ(nat.flow_count(), 1u);
}

TEST_F(Nat, UdpWithoutChecksumStaysWithout) {
  Bytes p = test::udp({kInside, kRemote}, 5001, 53);
  p[26] = p[27] = 0;
  ASSERT_EQ(run(nat, p, Direction::kOutbound, now).verdict, Verdict::kTranslated);
  EXPECT_EQ(be16(&p[26]), 0);
  EXPECT_EQ(verify_checksums(p), "");
}

TEST_F(Nat, IcmpEchoBothWays) {
  Bytes p = test::icmp_echo({kInside, kRemote}, 8, 0x1234, 7);
  const std::uint16_t ext = out(p, 24);
  EXPECT_TRUE(nat.partition().range_of(0).contains(ext));
  Bytes r = test::icmp_echo({kRemote, kWan}, 0, ext, 7);
  ASSERT_EQ(in(r).verdict, Verdict::kTranslated);
  EXPECT_EQ(verify_checksums(r), "");
  EXPECT_EQ(be32(&r[16]), kInside);
  EXPECT_EQ(be16(&r[24]), 0x1234);
  EXPECT_EQ(be16(&r[26]), 7);  // sequence untouched
}

TEST_F(Nat, IcmpEchoRequestFromTheInternetIsTheGatewaysOwn) {
  Bytes r = test::icmp_echo({kRemote, kWan}, 8, 5000);
  EXPECT_EQ(in(r).verdict, Verdict::kNotNat);
  EXPECT_EQ(nat.owner_of(kWanBytes, 1, 5000), 0);
}

TEST_F(Nat, TcpFullLifeOnTheManualClock) {
  const Ip o{kInside, kRemote};
  const std::uint16_t ext = out(test::tcp(o, 40000, 443, test::kSyn));
  auto back = [&](std::uint8_t flags) {
    Bytes r = test::tcp({kRemote, kWan}, 443, ext, flags, 10);
    const Result res = in(r);
    if (res.verdict == Verdict::kTranslated) {
      EXPECT_EQ(verify_checksums(r), "");
      EXPECT_EQ(be32(&r[16]), kInside);
      EXPECT_EQ(be16(&r[22]), 40000);
    }
    return res.verdict;
  };
  EXPECT_EQ(back(test::kSyn | test::kAck), Verdict::kTranslated);
  out(test::tcp(o, 40000, 443, test::kAck, 100));
  // Established: 5 days without a packet.
  now += 432000 * kS - 1;
  EXPECT_EQ(back(test::kAck), Verdict::kTranslated);  // refreshes
  now += 432000 * kS - 1;
  out(test::tcp(o, 40000, 443, test::kFin | test::kAck));  // FIN_WAIT, 120 s
  now += 119 * kS;
  EXPECT_EQ(back(test::kAck), Verdict::kTranslated);  // CLOSE_WAIT, 60 s
  now += 59 * kS;
  EXPECT_EQ(back(test::kFin | test::kAck), Verdict::kTranslated);  // LAST_ACK, 30 s
  now += 29 * kS;
  out(test::tcp(o, 40000, 443, test::kAck));  // TIME_WAIT, 120 s
  now += 119 * kS;
  EXPECT_EQ(nat.expire(now, 100), 0u);
  EXPECT_EQ(nat.flow_count(), 1u);
  now += 2 * kS;
  EXPECT_EQ(nat.expire(now, 100), 1u);
  EXPECT_EQ(nat.flow_count(), 0u);
  EXPECT_EQ(back(test::kAck), Verdict::kDrop);
  EXPECT_EQ(nat.counters().dropped(NatDrop::kNoFlow), 1u);
  EXPECT_EQ(nat.counters().flows_expired, 1u);
}

TEST_F(Nat, TcpSynSentTimesOutAfter120s) {
  const std::uint16_t ext = out(test::tcp({kInside, kRemote}, 40001, 80, test::kSyn));
  now += 119 * kS;
  EXPECT_EQ(nat.expire(now), 0u);
  now += 2 * kS;
  EXPECT_EQ(nat.expire(now), 1u);
  Bytes r = test::tcp({kRemote, kWan}, 80, ext, test::kSyn | test::kAck);
  EXPECT_EQ(in(r).verdict, Verdict::kDrop);
}

TEST_F(Nat, RstShortensToTenSecondsFromEitherSide) {
  for (bool remote_resets : {false, true}) {
    const std::uint16_t sport = remote_resets ? 40003 : 40002;
    const std::uint16_t ext = out(test::tcp({kInside, kRemote}, sport, 80, test::kSyn));
    Bytes sa = test::tcp({kRemote, kWan}, 80, ext, test::kSyn | test::kAck);
    ASSERT_EQ(in(sa).verdict, Verdict::kTranslated);
    out(test::tcp({kInside, kRemote}, sport, 80, test::kAck));
    if (remote_resets) {
      Bytes rst = test::tcp({kRemote, kWan}, 80, ext, test::kRst);
      ASSERT_EQ(in(rst).verdict, Verdict::kTranslated);
    } else {
      out(test::tcp({kInside, kRemote}, sport, 80, test::kRst | test::kAck));
    }
    now += 9 * kS;
    EXPECT_EQ(nat.expire(now), 0u);
    Bytes late = test::tcp({kRemote, kWan}, 80, ext, test::kAck);
    EXPECT_EQ(in(late).verdict, Verdict::kTranslated);  // stragglers still pass...
    now += 9 * kS;
    EXPECT_EQ(nat.expire(now), 0u);  // ...and, like conntrack, refresh the 10 s
    now += 2 * kS;
    EXPECT_EQ(nat.expire(now), 1u);
    Bytes gone = test::tcp({kRemote, kWan}, 80, ext, test::kAck);
    EXPECT_EQ(in(gone).verdict, Verdict::kDrop);
  }
}

TEST_F(Nat, TcpWithoutFlowNeedsASyn) {
  for (std::uint8_t flags : {test::kAck, std::uint8_t(test::kSyn | test::kAck), test::kRst,
                             std::uint8_t(test::kFin | test::kAck)}) {
    Bytes p = test::tcp({kInside, kRemote}, 40004, 80, flags);
    const Result r = run(nat, p, Direction::kOutbound, now);
    EXPECT_EQ(r.verdict, Verdict::kDrop);
    EXPECT_EQ(r.drop, NatDrop::kTcpNotSyn);
  }
  EXPECT_EQ(nat.counters().dropped(NatDrop::kTcpNotSyn), 4u);
  EXPECT_EQ(nat.flow_count(), 0u);
}

TEST_F(Nat, UdpThirtySecondsUnrepliedTwoMinutesOnceReplied) {
  out(test::udp({kInside, kRemote}, 6000, 123));
  now += 29 * kS;
  EXPECT_EQ(nat.expire(now), 0u);
  now += 2 * kS;
  EXPECT_EQ(nat.expire(now), 1u);

  const std::uint16_t ext = out(test::udp({kInside, kRemote}, 6001, 123));
  Bytes r = test::udp({kRemote, kWan}, 123, ext);
  ASSERT_EQ(in(r).verdict, Verdict::kTranslated);
  now += 119 * kS;
  EXPECT_EQ(nat.expire(now), 0u);
  Bytes r2 = test::udp({kRemote, kWan}, 123, ext);
  ASSERT_EQ(in(r2).verdict, Verdict::kTranslated);  // refreshed: 120 s more
  now += 119 * kS;
  EXPECT_EQ(nat.expire(now), 0u);
  now += 2 * kS;
  EXPECT_EQ(nat.expire(now), 1u);
}

TEST_F(Nat, IcmpQueryThirtySeconds) {
  out(test::icmp_echo({kInside, kRemote}, 8, 99), 24);
  now += 29 * kS;
  EXPECT_EQ(nat.expire(now), 0u);
  now += 2 * kS;
  EXPECT_EQ(nat.expire(now), 1u);
}

TEST_F(Nat, ExpiredFlowIsNotMatchedBeforeItsTimerFires) {
  const std::uint16_t ext = out(test::udp({kInside, kRemote}, 6002, 123));
  now += 31 * kS;  // no expire() call
  Bytes r = test::udp({kRemote, kWan}, 123, ext);
  EXPECT_EQ(in(r).verdict, Verdict::kDrop);
  EXPECT_EQ(nat.flow_count(), 0u);  // freed by the lookup
  EXPECT_EQ(nat.expire(now), 1u);   // and counted once
  EXPECT_EQ(nat.counters().flows_expired, 1u);
}

TEST(NatTable, FullTableDropsNewFlowsWhileExistingOnesContinue) {
  std::uint64_t now = 1000 * kS;
  Nat44 nat(config(1, 8), 0, now);
  std::vector<std::uint16_t> ext;
  for (std::uint16_t i = 0; i < 8; ++i) {
    Bytes p = test::udp({kInside, kRemote}, static_cast<std::uint16_t>(7000 + i), 53);
    ASSERT_EQ(run(nat, p, Direction::kOutbound, now).verdict, Verdict::kTranslated);
    ext.push_back(be16(&p[20]));
  }
  for (int k = 0; k < 3; ++k) {
    Bytes p = test::udp({kInside2, kRemote}, 9000, 53);
    const Result r = run(nat, p, Direction::kOutbound, now);
    EXPECT_EQ(r.verdict, Verdict::kDrop);
    EXPECT_EQ(r.drop, NatDrop::kTableFull);
  }
  EXPECT_EQ(nat.counters().dropped(NatDrop::kTableFull), 3u);
  for (std::uint16_t i = 0; i < 8; ++i) {
    Bytes p = test::udp({kInside, kRemote}, static_cast<std::uint16_t>(7000 + i), 53);
    ASSERT_EQ(run(nat, p, Direction::kOutbound, now).verdict, Verdict::kTranslated);
    EXPECT_EQ(be16(&p[20]), ext[i]);
    Bytes r = test::udp({kRemote, kWan}, 53, ext[i]);
    ASSERT_EQ(run(nat, r, Direction::kInbound, now).verdict, Verdict::kTranslated);
  }
  // Once flows expire there is room again.
  now += 121 * kS;
  EXPECT_EQ(nat.expire(now, 100), 8u);
  Bytes p = test::udp({kInside2, kRemote}, 9000, 53);
  EXPECT_EQ(run(nat, p, Direction::kOutbound, now).verdict, Verdict::kTranslated);
}

TEST(NatTable, ExpiryWorkIsBoundedPerCall) {
  std::uint64_t now = 1000 * kS;
  Nat44 nat(config(1, 1000), 0, now);
  for (std::uint16_t i = 0; i < 500; ++i) {
    Bytes p = test::udp({kInside, kRemote}, static_cast<std::uint16_t>(2000 + i), 53);
    ASSERT_EQ(run(nat, p, Direction::kOutbound, now).verdict, Verdict::kTranslated);
  }
  now += 31 * kS;
  std::size_t calls = 0, freed = 0;
  while (nat.flow_count() > 0) {
    const std::size_t n = nat.expire(now, 64);
    EXPECT_LE(n, 64u);
    freed += n;
    ASSERT_LT(++calls, 100u);
  }
  EXPECT_EQ(freed, 500u);
  EXPECT_EQ(calls, 8u);  // ceil(500 / 64)
}

TEST(NatTable, PortsRunOutPerDestinationNotPerTable) {
  std::uint64_t now = 1000 * kS;
  Nat44Config c = config(1, 1000);
  c.port_min = 2000;
  c.port_max = 2063;  // 64 ports
  Nat44 nat(c, 0, now);
  std::set<std::uint16_t> ports;
  for (std::uint16_t i = 0; i < 64; ++i) {
    Bytes p = test::udp({kInside, kRemote}, static_cast<std::uint16_t>(10000 + i), 53);
    ASSERT_EQ(run(nat, p, Direction::kOutbound, now).verdict, Verdict::kTranslated) << i;
    ports.insert(be16(&p[20]));
  }
  EXPECT_EQ(ports.size(), 64u);
  EXPECT_EQ(*ports.begin(), 2000);
  EXPECT_EQ(*ports.rbegin(), 2063);
  // Every port is taken towards 198.51.100.7:53 ...
  Bytes more = test::udp({kInside, kRemote}, 20000, 53);
  const Result r = run(nat, more, Direction::kOutbound, now);
  EXPECT_EQ(r.verdict, Verdict::kDrop);
  EXPECT_EQ(r.drop, NatDrop::kNoPort);
  EXPECT_EQ(nat.counters().dropped(NatDrop::kNoPort), 1u);
  // ... but the same ports serve another destination (5-tuple mapping).
  Bytes other = test::udp({kInside, kRemote}, 20000, 123);
  EXPECT_EQ(run(nat, other, Direction::kOutbound, now).verdict, Verdict::kTranslated);
}

TEST(NatOwnership, PortSlicesNameTheOwnerAndReturnsAreHandedOff) {
  std::uint64_t now = 1000 * kS;
  const Nat44Config c = config(3, 3000);
  Nat44 n0(c, 0, now), n1(c, 1, now), n2(c, 2, now);
  Nat44* nats[3] = {&n0, &n1, &n2};
  const PortPartition& part = n0.partition();
  // Slices: consecutive, disjoint, covering 1024..65535.
  EXPECT_EQ(part.range_of(0).first, 1024);
  EXPECT_EQ(part.range_of(2).last, 65535);
  EXPECT_EQ(part.range_of(0).last + 1, part.range_of(1).first);
  EXPECT_EQ(part.range_of(1).last + 1, part.range_of(2).first);
  for (unsigned l = 0; l < 3; ++l) {
    const PortRange r = part.range_of(l);
    for (std::uint16_t port : {r.first, r.last, static_cast<std::uint16_t>((r.first + r.last) / 2)})
      for (std::uint8_t proto : {std::uint8_t{6}, std::uint8_t{17}, std::uint8_t{1}})
        EXPECT_EQ(part.owner_of(kWanBytes, proto, port), static_cast<int>(l));
  }
  EXPECT_EQ(part.owner_of(kWanBytes, 17, 1023), kNoOwner);
  EXPECT_EQ(part.owner_of({203, 0, 113, 2}, 17, 5000), kNoOwner);
  EXPECT_EQ(part.owner_of(kWanBytes, 47, 5000), kNoOwner);

  for (unsigned l = 0; l < 3; ++l) {
    std::set<std::uint16_t> ports;
    for (std::uint16_t i = 0; i < 200; ++i) {
      Bytes p = test::udp({kInside, kRemote}, static_cast<std::uint16_t>(3000 + i), 53);
      ASSERT_EQ(run(*nats[l], p, Direction::kOutbound, now).verdict, Verdict::kTranslated);
      const std::uint16_t ext = be16(&p[20]);
      EXPECT_TRUE(part.range_of(l).contains(ext));
      ports.insert(ext);
      // The reply, wherever it lands, reaches the owner.
      Bytes r = test::udp({kRemote, kWan}, 53, ext);
      EXPECT_EQ(n0.inbound_owner(r.data(), r.size()), static_cast<int>(l));
      for (unsigned other = 0; other < 3; ++other) {
        if (other == l) continue;
        const Bytes before = r;
        const Result res = run(*nats[other], r, Direction::kInbound, now);
        EXPECT_EQ(res.verdict, Verdict::kHandOff);
        EXPECT_EQ(res.owner, static_cast<int>(l));
        EXPECT_EQ(r, before);  // untouched for the hand-off
      }
      ASSERT_EQ(run(*nats[l], r, Direction::kInbound, now).verdict, Verdict::kTranslated);
      EXPECT_EQ(be16(&r[22]), 3000 + i);
    }
    EXPECT_EQ(ports.size(), 200u);  // same remote, distinct external ports
  }
}

TEST(NatPool, OneExternalAddressPerInsideHost) {
  std::uint64_t now = 1000 * kS;
  Nat44Config c = config();
  c.pool = {{203, 0, 113, 10}, {203, 0, 113, 11}, {203, 0, 113, 12}};
  Nat44 nat(c, 0, now);
  std::set<std::uint32_t> used;
  for (std::uint8_t host = 1; host < 60; ++host) {
    std::set<std::uint32_t> per_host;
    for (std::uint16_t i = 0; i < 4; ++i) {
      Bytes p = test::udp({addr(10, 0, 1, host), kRemote}, static_cast<std::uint16_t>(4000 + i), 53);
      ASSERT_EQ(run(nat, p, Direction::kOutbound, now).verdict, Verdict::kTranslated);
      EXPECT_EQ(verify_checksums(p), "");
      per_host.insert(be32(&p[12]));
      // The reply comes back to that pool address.
      Bytes r = test::udp({kRemote, be32(&p[12])}, 53, be16(&p[20]));
      ASSERT_EQ(run(nat, r, Direction::kInbound, now).verdict, Verdict::kTranslated);
      EXPECT_EQ(be32(&r[16]), addr(10, 0, 1, host));
    }
    EXPECT_EQ(per_host.size(), 1u);
    used.insert(*per_host.begin());
  }
  EXPECT_EQ(used.size(), 3u);
}

TEST_F(Nat, SpoofedReturnTrafficIsCountedOrNotOurs) {
  const std::uint16_t ext = out(test::udp({kInside, kRemote}, 5000, 53));
  const PortRange r0 = nat.partition().range_of(0);
  const std::uint16_t free_port = ext == r0.first ? r0.last : r0.first;

  Bytes unallocated = test::udp({kRemote, kWan}, 53, free_port);
  EXPECT_EQ(in(unallocated).drop, NatDrop::kNoFlow);
  Bytes wrong_remote_port = test::udp({kRemote, kWan}, 54, ext);
  EXPECT_EQ(in(wrong_remote_port).drop, NatDrop::kNoFlow);
  Bytes wrong_remote = test::udp({addr(198, 51, 100, 8), kWan}, 53, ext);
  EXPECT_EQ(in(wrong_remote).drop, NatDrop::kNoFlow);
  Bytes tcp_to_udp_port = test::tcp({kRemote, kWan}, 53, ext, test::kAck);
  EXPECT_EQ(in(tcp_to_udp_port).drop, NatDrop::kNoFlow);
  Bytes echo_reply = test::icmp_echo({kRemote, kWan}, 0, free_port);
  EXPECT_EQ(in(echo_reply).drop, NatDrop::kNoFlow);
  EXPECT_EQ(nat.counters().dropped(NatDrop::kNoFlow), 5u);

  // The gateway's own: below the range, the listen port, another address.
  Bytes ssh = test::tcp({kRemote, kWan}, 50000, 22, test::kSyn);
  EXPECT_EQ(in(ssh).verdict, Verdict::kNotNat);
  Bytes wg = test::udp({kRemote, kWan}, 50000, kListenPort);
  EXPECT_EQ(in(wg).verdict, Verdict::kNotNat);
  EXPECT_EQ(nat.inbound_owner(wg.data(), wg.size()), kNoOwner);
  Bytes other = test::udp({kRemote, addr(203, 0, 113, 99)}, 53, ext);
  EXPECT_EQ(in(other).verdict, Verdict::kNotNat);
  Bytes gre = test::ipv4({kRemote, kWan}, 47, Bytes(24, 0));
  EXPECT_EQ(in(gre).verdict, Verdict::kNotNat);
  EXPECT_EQ(nat.counters().dropped(NatDrop::kNoFlow), 5u);
}

TEST_F(Nat, FragmentsAreCountedDrops) {
  Ip first{kInside, kRemote};
  first.frag = 0x2000;  // MF
  Bytes a = test::udp(first, 5000, 53);
  EXPECT_EQ(run(nat, a, Direction::kOutbound, now).drop, NatDrop::kFragment);
  Ip later{kRemote, kWan};
  later.frag = 185;  // offset 1480
  Bytes b = test::ipv4(later, 17, Bytes(100, 1));
  EXPECT_EQ(in(b).drop, NatDrop::kFragment);
  Ip last_in{kRemote, kWan};
  last_in.frag = 0x2000;
  Bytes c = test::udp(last_in, 53, 5000);
  EXPECT_EQ(in(c).drop, NatDrop::kFragment);
  EXPECT_EQ(nat.counters().dropped(NatDrop::kFragment), 3u);
  EXPECT_EQ(nat.flow_count(), 0u);
}

TEST_F(Nat, OutboundProtocolsItCannotTranslateAreDropped) {
  Bytes gre = test::ipv4({kInside, kRemote}, 47, Bytes(24, 0));
  EXPECT_EQ(run(nat, gre, Direction::kOutbound, now).drop, NatDrop::kUnsupportedProtocol);
  Bytes reply = test::icmp_echo({kInside, kRemote}, 0, 77);
  EXPECT_EQ(run(nat, reply, Direction::kOutbound, now).drop, NatDrop::kUnsupportedIcmp);
  Bytes timestamp = test::icmp_echo({kInside, kRemote}, 13, 77);
  EXPECT_EQ(run(nat, timestamp, Direction::kOutbound, now).drop, NatDrop::kUnsupportedIcmp);
}

TEST_F(Nat, TruncatedAndBadHeadersAreMalformed) {
  Bytes p = test::tcp({kInside, kRemote}, 40000, 443, test::kSyn);
  for (std::size_t len = 0; len < p.size(); ++len) {
    Bytes cut(p.begin(), p.begin() + static_cast<std::ptrdiff_t>(len));
    // The IPv4 total length still says 40: parse_ipv4 refuses it.
    const Result r = run(nat, cut, Direction::kOutbound, now);
    EXPECT_EQ(r.drop, NatDrop::kMalformed) << len;
  }
  // A consistent but short TCP header (12 bytes).
  Bytes short_tcp = test::ipv4({kInside, kRemote}, 6, Bytes(12, 0));
  EXPECT_EQ(run(nat, short_tcp, Direction::kOutbound, now).drop, NatDrop::kMalformed);
  Bytes bad = test::udp({kInside, kRemote}, 5000, 53);
  bad[10] ^= 1;
  EXPECT_EQ(run(nat, bad, Direction::kOutbound, now).drop, NatDrop::kMalformed);
  EXPECT_EQ(nat.flow_count(), 0u);
}

// Random mutations of valid packets in exact-size buffers, both ways:
// under ASan this proves no read or write outside the packet; every
// verdict is one of the four, and a translated packet keeps valid
// checksums when it had them.
TEST(NatRobustness, RandomMutationsNeverCrash) {
  std::uint64_t now = 1000 * kS;
  Nat44 nat(config(2, 1000), 0, now);
  std::mt19937 rng(7);
  std::vector<Bytes> seeds = {
      test::udp({kInside, kRemote}, 5000, 53), test::tcp({kInside, kRemote}, 40000, 80, test::kSyn),
      test::icmp_echo({kInside, kRemote}, 8, 9)};
  // Their returns and errors about them.
  for (std::size_t i = 0; i < 3; ++i) {
    Bytes p = seeds[i];
    ASSERT_EQ(run(nat, p, Direction::kOutbound, now).verdict, Verdict::kTranslated);
    Bytes te = test::icmp_error({addr(192, 0, 2, 1), kWan}, 11, 0, p);
    seeds.push_back(te);
    seeds.push_back(test::udp({kRemote, kWan}, 53, be16(&p[20])));
  }
  for (int iter = 0; iter < 20000; ++iter) {
    Bytes p = seeds[rng() % seeds.size()];
    const int edits = 1 + static_cast<int>(rng() % 4);
    for (int e = 0; e < edits; ++e) p[rng() % p.size()] = static_cast<std::uint8_t>(rng());
    if (rng() % 4 == 0) p.resize(rng() % (p.size() + 1));
    const Direction d = rng() % 2 ? Direction::kInbound : Direction::kOutbound;
    nat.prefetch(p.data(), p.size(), d);  // both read only what they may
    nat.prefetch_flow(p.data(), p.size(), d);
    const Result r = nat.translate(p.data(), p.size(), d, now);
    ASSERT_LE(static_cast<int>(r.verdict), static_cast<int>(Verdict::kHandOff));
    if (iter % 1000 == 0) nat.expire(now += kS);
  }
}

}  // namespace
}  // namespace moongate::nat
