// ReplayWindow: edge cases plus a differential test against a naive set-based model.
#include "wireguard/replay.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <cstdint>
#include <limits>
#include <random>
#include <set>
#include <sstream>
#include <string>
#include <vector>

namespace moongate::wg {
namespace {

constexpr std::uint64_t kMax = std::numeric_limits<std::uint64_t>::max();
// WireGuard's REJECT_AFTER_MESSAGES.
constexpr std::uint64_t kRejectAfterMessages = kMax - (std::uint64_t{1} << 13);
static_assert(kRejectAfterMessages == kMax - 8192);  // 2^64 - 2^13 - 1
constexpr std::uint64_t kW = ReplayWindow::kWindowSize;

// ---------------------------------------------------------------------------
// Targeted cases

TEST(ReplayWindow, ZeroAcceptedExactlyOnce) {
  ReplayWindow w;
  EXPECT_EQ(w.next_expected(), 0U);
  EXPECT_TRUE(w.check(0, kRejectAfterMessages));
  EXPECT_TRUE(w.check_and_update(0, kRejectAfterMessages));
  EXPECT_EQ(w.next_expected(), 1U);
  EXPECT_FALSE(w.check(0, kRejectAfterMessages));
  EXPECT_FALSE(w.check_and_update(0, kRejectAfterMessages));
  EXPECT_TRUE(w.check_and_update(1, kRejectAfterMessages));
  EXPECT_FALSE(w.check_and_update(0, kRejectAfterMessages));
}

TEST(ReplayWindow, CheckDoesNotRecord) {
  ReplayWindow w;
  for (int i = 0; i < 3; ++i) EXPECT_TRUE(w.check(0, kRejectAfterMessages));
  EXPECT_EQ(w.next_expected(), 0U);
  EXPECT_TRUE(w.check_and_update(0, kRejectAfterMessages));

  ASSERT_TRUE(w.check_and_update(1000, kRejectAfterMessages));
  for (int i = 0; i < 3; ++i) {
    EXPECT_TRUE(w.check(500, kRejectAfterMessages));   // inside the window
    EXPECT_TRUE(w.check(5000, kRejectAfterMessages));  // ahead
  }
  EXPECT_EQ(w.next_expected(), 1001U);
  EXPECT_TRUE(w.check_and_update(500, kRejectAfterMessages));
  EXPECT_FALSE(w.check(500, kRejectAfterMessages));
  EXPECT_TRUE(w.check_and_update(5000, kRejectAfterMessages));
  EXPECT_EQ(w.next_expected(), 5001U);
}

TEST(ReplayWindow, WindowEdge) {
  // Limit 2^64-1 so that top + 1 below stays acceptable even for the largest top.
  constexpr std::uint64_t kLimit = kMax;
  for (const std::uint64_t top :
       {kW - 1, kW, kW + 1, std::uint64_t{100000}, std::uint64_t{1} << 40, kMax - 2}) {
    SCOPED_TRACE(top);
    ReplayWindow w;
    ASSERT_TRUE(w.check_and_update(top, kLimit));
    EXPECT_FALSE(w.check(top, kLimit));
    if (top >= kW) {
      EXPECT_FALSE(w.check(top - kW, kLimit));
      EXPECT_FALSE(w.check_and_update(top - kW, kLimit));
    }
    EXPECT_TRUE(w.check(top - (kW - 1), kLimit));
    // One step forward pushes that (never accepted) edge counter out.
    ASSERT_TRUE(w.check_and_update(top + 1, kLimit));
    EXPECT_FALSE(w.check(top + 1 - kW, kLimit));
    EXPECT_FALSE(w.check_and_update(top + 1 - kW, kLimit));
    EXPECT_TRUE(w.check_and_update(top + 1 - (kW - 1), kLimit));
    EXPECT_FALSE(w.check_and_update(top + 1 - (kW - 1), kLimit));

    // The oldest in-window counter is recorded like any other.
    ReplayWindow w2;
    ASSERT_TRUE(w2.check_and_update(top, kLimit));
    EXPECT_TRUE(w2.check_and_update(top - (kW - 1), kLimit));
    EXPECT_FALSE(w2.check(top - (kW - 1), kLimit));
    EXPECT_FALSE(w2.check_and_update(top - (kW - 1), kLimit));
    EXPECT_EQ(w2.next_expected(), top + 1);
  }
}

TEST(ReplayWindow, LimitIsExclusive) {
  ReplayWindow w;
  EXPECT_FALSE(w.check_and_update(kRejectAfterMessages, kRejectAfterMessages));
  EXPECT_FALSE(w.check_and_update(kMax, kRejectAfterMessages));
  EXPECT_FALSE(w.check_and_update(kMax, kMax));
  EXPECT_EQ(w.next_expected(), 0U);
  EXPECT_TRUE(w.check_and_update(kRejectAfterMessages - 1, kRejectAfterMessages));
  EXPECT_EQ(w.next_expected(), kRejectAfterMessages);
  EXPECT_FALSE(w.check(kRejectAfterMessages, kRejectAfterMessages));

  ReplayWindow top;
  EXPECT_TRUE(top.check_and_update(kMax - 1, kMax));
  EXPECT_EQ(top.next_expected(), kMax);
  EXPECT_FALSE(top.check_and_update(kMax - 1, kMax));
  EXPECT_TRUE(top.check_and_update(kMax - 1 - (kW - 1), kMax));

  ReplayWindow none;
  EXPECT_FALSE(none.check(0, 0));
  EXPECT_FALSE(none.check_and_update(0, 0));
  EXPECT_TRUE(none.check_and_update(0, 1));
  EXPECT_FALSE(none.check_and_update(1, 1));
}

// When the window moves by exactly one ring lap, the new top block reuses
// the ring slot of a block full of old bits; those must not leak through.
TEST(ReplayWindow, SlideClearsReusedBlocks) {
  constexpr std::uint64_t kLap =
      std::uint64_t{ReplayWindow::kRingBlocks} * ReplayWindow::kBlockBits;
  for (const std::uint64_t jump :
       {kLap, kLap - 64, kLap + 64, 2 * kLap, std::uint64_t{1000000000000}}) {
    SCOPED_TRACE(jump);
    ReplayWindow w;
    for (std::uint64_t c = 0; c < 2 * ReplayWindow::kBlockBits; ++c)
      ASSERT_TRUE(w.check_and_update(c, kRejectAfterMessages));
    const std::uint64_t top = jump + 2 * ReplayWindow::kBlockBits - 1;
    ASSERT_TRUE(w.check_and_update(top, kRejectAfterMessages));
    for (std::uint64_t c = top - (kW - 1); c < top; ++c)
      ASSERT_TRUE(w.check_and_update(c, kRejectAfterMessages)) << c;
    for (std::uint64_t c = top - (kW - 1); c <= top; ++c)
      ASSERT_FALSE(w.check(c, kRejectAfterMessages)) << c;
  }
}

// The newest block's bits live in the window's head, the older blocks' in
// the ring: when the newest block moves on, its bits must reach the ring
// (duplicates there are still refused, gaps still accepted), whether it
// moves by one block, by several, or by nearly a whole lap.
TEST(ReplayWindow, NewestBlockMovesToRing) {
  for (const std::uint64_t blocks : {std::uint64_t{1}, std::uint64_t{3}, std::uint64_t{ReplayWindow::kRingBlocks - 2}}) {
    SCOPED_TRACE(blocks);
    ReplayWindow w;
    for (std::uint64_t c = 0; c < ReplayWindow::kBlockBits; c += 2)  // even counters of block 0
      ASSERT_TRUE(w.check_and_update(c, kRejectAfterMessages));
    const std::uint64_t top = blocks * ReplayWindow::kBlockBits + 5;
    ASSERT_TRUE(w.check_and_update(top, kRejectAfterMessages));
    for (std::uint64_t c = 0; c < ReplayWindow::kBlockBits; ++c) {
      EXPECT_EQ(w.check(c, kRejectAfterMessages), c % 2 == 1) << c;
    }
    // Blocks jumped over are empty; the odd counters of block 0 are taken once.
    for (std::uint64_t c = ReplayWindow::kBlockBits; c < top; ++c)
      ASSERT_TRUE(w.check_and_update(c, kRejectAfterMessages)) << c;
    for (std::uint64_t c = 1; c < ReplayWindow::kBlockBits; c += 2) {
      ASSERT_TRUE(w.check_and_update(c, kRejectAfterMessages)) << c;
      ASSERT_FALSE(w.check_and_update(c, kRejectAfterMessages)) << c;
    }
    EXPECT_FALSE(w.check(top, kRejectAfterMessages));
    EXPECT_EQ(w.next_expected(), top + 1);
  }
}

TEST(ReplayWindow, ResetForgetsEverything) {
  ReplayWindow w;
  for (std::uint64_t c = 0; c < 300; ++c) ASSERT_TRUE(w.check_and_update(c, kRejectAfterMessages));
  w.reset();
  EXPECT_EQ(w.next_expected(), 0U);
  for (std::uint64_t c = 0; c < 300; ++c) EXPECT_TRUE(w.check_and_update(c, kRejectAfterMessages));
}

// ---------------------------------------------------------------------------
// Differential test

// Deliberately naive: a set of every accepted counter plus the same window
// rule. Pruning counters that have fallen out of the window only keeps it
// fast; the window rule rejects them before the set is consulted.
class NaiveReplay {
 public:
  bool check(std::uint64_t c, std::uint64_t limit) const {
    if (c >= limit) return false;
    if (!any_ || c > greatest_) return true;
    if (greatest_ - c >= kW) return false;
    return seen_.count(c) == 0;
  }
  bool update(std::uint64_t c, std::uint64_t limit) {
    if (!check(c, limit)) return false;
    seen_.insert(c);
    if (!any_ || c > greatest_) {
      greatest_ = c;
      any_ = true;
    }
    while (!seen_.empty() && greatest_ - *seen_.begin() >= kW) seen_.erase(seen_.begin());
    return true;
  }
  bool any() const { return any_; }
  std::uint64_t greatest() const { return greatest_; }
  std::uint64_t next_expected() const { return any_ ? greatest_ + 1 : 0; }

 private:
  std::set<std::uint64_t> seen_;
  std::uint64_t greatest_ = 0;
  bool any_ = false;
};

std::uint64_t sat_add(std::uint64_t a, std::uint64_t b) { return a > kMax - b ? kMax : a + b; }
std::uint64_t sat_sub(std::uint64_t a, std::uint64_t b) { return a < b ? 0 : a - b; }

// Counter generators, weighted per scenario.
enum Op : int {
  kNext,        // greatest + 1
  kSmallAhead,  // greatest + [1, 200]
  kInWindow,    // anywhere in the window: reordering and duplicates
  kNearEdge,    // within a few of the window edge
  kBehind,      // well behind the window
  kDuplicate,   // a recently accepted counter again
  kLapJump,     // about one or more ring laps ahead: block reuse
  kFarJump,     // up to 10^12 ahead, or exactly 10^12
  kNearLimit,   // around the limit, including above it
  kUniform,     // any 64-bit value
  kOpCount
};

struct Scenario {
  const char* name;
  std::uint64_t limit;
  std::uint64_t start;  // first counter offered
  int ops;
  int weights[kOpCount];
};

std::string describe(const Scenario& s, std::uint64_t seed, int step, std::uint64_t counter,
                     const NaiveReplay& ref) {
  std::ostringstream o;
  o << "scenario=" << s.name << " seed=" << seed << " step=" << step << " counter=" << counter
    << " limit=" << s.limit << " ref.greatest=" << ref.greatest() << " ref.any=" << ref.any();
  return o.str();
}

// Returns an empty string on success, else a description of the first divergence.
std::string run_scenario(const Scenario& s, std::uint64_t seed) {
  std::mt19937_64 rng(seed);
  auto uniform = [&rng](std::uint64_t lo, std::uint64_t hi) {
    return std::uniform_int_distribution<std::uint64_t>(lo, hi)(rng);
  };
  std::discrete_distribution<int> pick(std::begin(s.weights), std::end(s.weights));
  constexpr std::uint64_t kLap =
      std::uint64_t{ReplayWindow::kRingBlocks} * ReplayWindow::kBlockBits;

  ReplayWindow w;
  NaiveReplay ref;
  std::vector<std::uint64_t> recent(64, s.start);
  std::size_t recent_pos = 0;

  for (int step = 0; step < s.ops; ++step) {
    const std::uint64_t g = ref.any() ? ref.greatest() : s.start;
    std::uint64_t c = 0;
    if (step == 0) {
      c = s.start;
    } else {
      switch (pick(rng)) {
        case kNext: c = sat_add(g, 1); break;
        case kSmallAhead: c = sat_add(g, uniform(1, 200)); break;
        case kInWindow: c = sat_sub(g, uniform(0, kW - 1)); break;
        case kNearEdge: c = sat_sub(g, uniform(kW - 3, kW + 3)); break;
        case kBehind: c = sat_sub(g, uniform(kW, 20 * kW)); break;
        case kDuplicate: c = recent[uniform(0, recent.size() - 1)]; break;
        case kLapJump: c = sat_add(g, uniform(1, 3) * kLap + uniform(0, 140) - 70); break;
        case kFarJump:
          c = sat_add(
              g, uniform(0, 1) != 0 ? std::uint64_t{1000000000000} : uniform(kLap, 1000000000000));
          break;
        case kNearLimit: c = sat_add(sat_sub(s.limit, 2 * kW), uniform(0, 2 * kW + 16)); break;
        case kUniform: c = rng(); break;
        default: break;
      }
    }

    const bool expect_check = ref.check(c, s.limit);
    if (w.check(c, s.limit) != expect_check)
      return "check() mismatch: expected " + std::to_string(expect_check) + " " +
             describe(s, seed, step, c, ref);
    // Sometimes only peek, as the receive path does for packets that then
    // fail authentication; the next offer of the same counter must agree.
    if (uniform(0, 15) == 0) continue;

    const bool expect = ref.update(c, s.limit);
    if (w.check_and_update(c, s.limit) != expect)
      return "check_and_update() mismatch: expected " + std::to_string(expect) + " " +
             describe(s, seed, step, c, ref);
    if (w.next_expected() != ref.next_expected())
      return "next_expected() mismatch: expected " + std::to_string(ref.next_expected()) + " got " +
             std::to_string(w.next_expected()) + " " + describe(s, seed, step, c, ref);
    if (expect) {
      recent[recent_pos] = c;
      recent_pos = (recent_pos + 1) % recent.size();
    }
  }
  return {};
}

// Weights: Next SmallAhead InWindow NearEdge Behind Duplicate LapJump FarJump NearLimit Uniform
const Scenario kScenarios[] = {
    {"sequential", kRejectAfterMessages, 0, 150000, {90, 5, 0, 0, 0, 5, 0, 0, 0, 0}},
    {"reordered", kRejectAfterMessages, 0, 250000, {30, 20, 40, 3, 2, 5, 0, 0, 0, 0}},
    {"duplicates", kRejectAfterMessages, 12345, 150000, {20, 5, 25, 0, 0, 50, 0, 0, 0, 0}},
    {"jumps", kRejectAfterMessages, 0, 150000, {20, 10, 30, 5, 5, 10, 10, 5, 0, 5}},
    {"behind", kRejectAfterMessages, 1000000, 150000, {10, 10, 20, 25, 30, 5, 0, 0, 0, 0}},
    {"near-reject-after",
     kRejectAfterMessages,
     kRejectAfterMessages - 3 * kW,
     150000,
     {20, 10, 30, 5, 5, 10, 2, 1, 15, 2}},
    {"near-2^64", kMax, kMax - 3 * kW, 150000, {20, 10, 30, 5, 5, 10, 2, 1, 15, 2}},
    {"small-limit", 5000, 0, 100000, {25, 10, 25, 5, 5, 10, 2, 1, 15, 2}},
    {"limit-20000", 20000, 0, 100000, {25, 10, 25, 5, 5, 10, 2, 1, 15, 2}},
};

constexpr std::uint64_t kSeeds[] = {0x6d6f6f6e67617465ULL, 1, 20240917};

TEST(ReplayWindowDifferential, MatchesNaiveModel) {
  for (const Scenario& s : kScenarios) {
    for (const std::uint64_t seed : kSeeds) {
      const std::string failure = run_scenario(s, seed);
      ASSERT_TRUE(failure.empty()) << failure;
    }
  }
}

}  // namespace
}  // namespace moongate::wg
