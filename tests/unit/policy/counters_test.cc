// RuleCounters: sized once with room to spare, restarted when the rules of
// the policy in force change (per-rule counts from zero; denied and
// established go on), never past the room it was made with.
#include "policy/counters.h"

#include <gtest/gtest.h>

namespace moongate::policy {
namespace {

TEST(RuleCounters, RestartZeroesThePerRuleCountsOnly) {
  RuleCounters c(2, 8);
  EXPECT_EQ(c.rules(), 2u);
  EXPECT_EQ(c.capacity(), 8u);
  c.accept(0);
  c.accept(1);
  c.accept(1);
  c.deny();
  c.established();
  EXPECT_EQ(c.accepted(1), 2u);
  // A policy of five rules: more than before, within the room.
  c.restart(5);
  EXPECT_EQ(c.rules(), 5u);
  for (std::size_t r = 0; r < 5; ++r) EXPECT_EQ(c.accepted(r), 0u) << r;
  EXPECT_EQ(c.denied(), 1u);
  EXPECT_EQ(c.established_count(), 1u);
  c.accept(4);
  EXPECT_EQ(c.accepted(4), 1u);
  // Beyond the room: held to it.
  c.restart(100);
  EXPECT_EQ(c.rules(), 8u);
  EXPECT_EQ(c.accepted(4), 0u);
}

TEST(RuleCounters, WithoutRoomItIsThePolicysSize) {
  RuleCounters c(3);
  EXPECT_EQ(c.capacity(), 3u);
  c.restart(0);
  EXPECT_EQ(c.rules(), 0u);
}

}  // namespace
}  // namespace moongate::policy
