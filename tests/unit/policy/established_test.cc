// The established-flow hook on a manual clock: replies of a noted flow pass,
// other packets do not; the timeout refreshes on traffic either way and
// runs out; a full table refuses new notes (counted) and keeps old ones.
// The same for IPv6 5-tuples (Established6). And the per-rule counters.
#include "policy/established.h"

#include <gtest/gtest.h>

#include "policy/counters.h"

namespace moongate::policy {
namespace {

constexpr std::uint64_t kS = 1'000'000'000ULL;

TEST(Established, RepliesOfNotedFlowsOnlyUntilTimeout) {
  std::uint64_t now = 1000 * kS;
  Established e(16, 60 * kS, 1, now);
  const Packet fwd{1, 0x0a000002, 0x0a010505, 6, 40000, 22};
  const Packet reply{0, 0x0a010505, 0x0a000002, 6, 22, 40000};
  EXPECT_FALSE(e.is_reply(reply, now));
  ASSERT_TRUE(e.note(fwd, now));
  EXPECT_TRUE(e.is_reply(reply, now));
  EXPECT_FALSE(e.is_reply(fwd, now));  // the same direction is no reply
  Packet other = reply;
  other.sport = 23;
  EXPECT_FALSE(e.is_reply(other, now));
  other = reply;
  other.initiating = true;  // never a reply, whatever the tuple
  EXPECT_FALSE(e.is_reply(other, now));
  now += 59 * kS;
  EXPECT_TRUE(e.is_reply(reply, now));  // refreshes
  now += 59 * kS;
  EXPECT_EQ(e.expire(now), 0u);
  EXPECT_TRUE(e.is_reply(reply, now));
  now += 61 * kS;
  EXPECT_EQ(e.expire(now), 1u);
  EXPECT_FALSE(e.is_reply(reply, now));
  EXPECT_EQ(e.size(), 0u);
}

TEST(Established, FullTableRefusesNewFlowsKeepsOld) {
  std::uint64_t now = 1000 * kS;
  Established e(4, 60 * kS, 1, now);
  for (std::uint16_t i = 0; i < 4; ++i) ASSERT_TRUE(e.note({1, 1, 2, 17, i, 53}, now));
  EXPECT_FALSE(e.note({1, 1, 2, 17, 99, 53}, now));
  EXPECT_EQ(e.full_drops(), 1u);
  for (std::uint16_t i = 0; i < 4; ++i) EXPECT_TRUE(e.is_reply({0, 2, 1, 17, 53, i}, now));
  EXPECT_FALSE(e.is_reply({0, 2, 1, 17, 53, 99}, now));
}

// The burst hints read only: present and absent keys, both directions,
// protocol 0; the answers and the size are those without them.
TEST(Established, PrefetchHintsChangeNothing) {
  const std::uint64_t now = 1000 * kS;
  Established e(8, 60 * kS, 1, now);
  const Packet fwd{1, 0x0a000002, 0x0a010505, 17, 40000, 53};
  const Packet reply{0, 0x0a010505, 0x0a000002, 17, 53, 40000};
  const Packet none{0, 1, 2, 0, 0, 0};
  for (const Packet& p : {fwd, reply, none})
    for (bool r : {false, true}) {
      e.prefetch(p, r);
      e.prefetch_entry(p, r);
    }
  EXPECT_EQ(e.size(), 0u);
  ASSERT_TRUE(e.note(fwd, now));
  for (const Packet& p : {fwd, reply, none})
    for (bool r : {false, true}) {
      e.prefetch(p, r);
      e.prefetch_entry(p, r);
    }
  EXPECT_EQ(e.size(), 1u);
  EXPECT_TRUE(e.is_reply(reply, now));
  EXPECT_FALSE(e.is_reply(fwd, now));
}

TEST(Established6, RepliesOfNotedFlowsOnlyUntilTimeout) {
  std::uint64_t now = 1000 * kS;
  Established6 e(16, 60 * kS, 1, now);
  const Addr6 alice{0x20010db8, 0x00010000, 0, 0x10};
  const Addr6 host{0x20010db8, 0x00ff0000, 0, 0x1};
  const Packet6 fwd{1, alice, host, 17, 40000, 7};
  const Packet6 reply{0, host, alice, 17, 7, 40000};
  EXPECT_FALSE(e.is_reply(reply, now));
  ASSERT_TRUE(e.note(fwd, now));
  EXPECT_EQ(e.size(), 1u);
  EXPECT_TRUE(e.is_reply(reply, now));
  EXPECT_FALSE(e.is_reply(fwd, now));
  // Every word of both addresses is part of the key: a reply from an
  // address differing in any one word (or to one) is not this flow's.
  for (int w = 0; w < 4; ++w) {
    Packet6 other = reply;
    other.src[w] ^= 1;
    EXPECT_FALSE(e.is_reply(other, now)) << "src word " << w;
    other = reply;
    other.dst[w] ^= 0x80000000u;
    EXPECT_FALSE(e.is_reply(other, now)) << "dst word " << w;
  }
  Packet6 other = reply;
  other.proto = 6;
  EXPECT_FALSE(e.is_reply(other, now));
  // ICMPv6 echo: no ports, the addresses and the protocol make the flow.
  // The host's echo reply is a reply; its own echo request to alice is
  // not, though it has the same tuple (no ports to tell them apart).
  const Packet6 ping{1, alice, host, kProtoIcmpv6, 0, 0, true};
  ASSERT_TRUE(e.note(ping, now));
  EXPECT_TRUE(e.is_reply({0, host, alice, kProtoIcmpv6, 0, 0}, now));
  const Packet6 their_ping{0, host, alice, kProtoIcmpv6, 0, 0, true};
  EXPECT_FALSE(e.is_reply(their_ping, now));
  e.prefetch(their_ping, true);  // nothing to look up
  e.prefetch_entry(their_ping, true);
  now += 59 * kS;
  EXPECT_TRUE(e.is_reply(reply, now));  // refreshes the UDP flow only
  now += 30 * kS;
  EXPECT_EQ(e.expire(now), 1u);  // the ping's
  EXPECT_FALSE(e.is_reply({0, host, alice, kProtoIcmpv6, 0, 0}, now));
  EXPECT_TRUE(e.is_reply(reply, now));
  now += 61 * kS;
  EXPECT_EQ(e.expire(now), 1u);
  EXPECT_FALSE(e.is_reply(reply, now));
  EXPECT_EQ(e.size(), 0u);
}

TEST(Established6, FullTableRefusesNewFlowsKeepsOld) {
  const std::uint64_t now = 1000 * kS;
  Established6 e(4, 60 * kS, 7, now);
  const Addr6 a{0xfd000000, 0, 0, 1}, b{0xfd000000, 0, 0, 2};
  for (std::uint16_t i = 0; i < 4; ++i) ASSERT_TRUE(e.note({1, a, b, 6, i, 443}, now));
  EXPECT_FALSE(e.note({1, a, b, 6, 99, 443}, now));
  EXPECT_EQ(e.full_drops(), 1u);
  for (std::uint16_t i = 0; i < 4; ++i) EXPECT_TRUE(e.is_reply({0, b, a, 6, 443, i}, now));
  EXPECT_FALSE(e.is_reply({0, b, a, 6, 443, 99}, now));
  for (bool r : {false, true}) {  // the hints read only
    e.prefetch({1, a, b, 6, 99, 443}, r);
    e.prefetch_entry({1, a, b, 6, 0, 443}, r);
  }
  EXPECT_EQ(e.size(), 4u);
}

}  // namespace
}  // namespace moongate::policy

namespace moongate::policy {
namespace {

TEST(RuleCounters, CountPerRuleDeniedAndEstablished) {
  RuleCounters c(3);
  c.accept(0);
  c.accept(2);
  c.accept(2);
  c.deny();
  c.established();
  c.established();
  EXPECT_EQ(c.rules(), 3u);
  EXPECT_EQ(c.accepted(0), 1u);
  EXPECT_EQ(c.accepted(1), 0u);
  EXPECT_EQ(c.accepted(2), 2u);
  EXPECT_EQ(c.denied(), 1u);
  EXPECT_EQ(c.established_count(), 2u);
}

}  // namespace
}  // namespace moongate::policy
