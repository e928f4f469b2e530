// The ICMP error token bucket (dataplane/rate_limit.h) on a manual clock.
#include <gtest/gtest.h>

#include "dataplane/rate_limit.h"

namespace moongate::dp {
namespace {

constexpr std::uint64_t kMs = 1'000'000;

TEST(TokenBucket, BurstThenRate) {
  TokenBucket b(1000, 50);  // 1 per ms, 50 saved up
  std::uint64_t now = 5'000 * kMs;
  int got = 0;
  for (int i = 0; i < 200; ++i) got += b.take(now);
  EXPECT_EQ(got, 50);  // the burst, then nothing at the same instant
  now += 10 * kMs;
  got = 0;
  for (int i = 0; i < 200; ++i) got += b.take(now);
  EXPECT_EQ(got, 10);  // 10 ms later: 10 more
  // A steady second at 5 per ms offered: 1 per ms passes.
  got = 0;
  for (int ms = 1; ms <= 1000; ++ms)
    for (int k = 0; k < 5; ++k) got += b.take(now + static_cast<std::uint64_t>(ms) * kMs);
  EXPECT_EQ(got, 1000);
}

TEST(TokenBucket, IdleRefillsOnlyToTheBurst) {
  TokenBucket b(100, 3);
  std::uint64_t now = 1'000 * kMs;
  for (int i = 0; i < 3; ++i) EXPECT_TRUE(b.take(now));
  EXPECT_FALSE(b.take(now));
  now += 3'600'000 * kMs;  // an hour idle
  int got = 0;
  for (int i = 0; i < 10; ++i) got += b.take(now);
  EXPECT_EQ(got, 3);
}

TEST(TokenBucket, ClockGoingBackIsIgnoredAndZeroRateNeverPasses) {
  TokenBucket b(1000, 1);
  EXPECT_TRUE(b.take(10 * kMs));
  EXPECT_FALSE(b.take(5 * kMs));  // earlier: no credit, no harm
  EXPECT_TRUE(b.take(11 * kMs));
  TokenBucket none(0, 10);
  EXPECT_FALSE(none.take(1));
}

}  // namespace
}  // namespace moongate::dp
