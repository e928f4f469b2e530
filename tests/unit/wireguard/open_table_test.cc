// OpenTable (the table behind PeerTable) on chosen home slots: backward-
// shift removal keeps every entry reachable (clusters wrapping around the
// end of the slot array included) and no operation touches more than the
// cluster it works in.
#include "wireguard/open_table.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <random>
#include <unordered_map>
#include <unordered_set>
#include <vector>

namespace moongate::wg {
namespace {

// The slots a linear-probing table occupies, given the home slot of each
// entry it holds. That set does not depend on the order of insertion, nor
// on past removals as long as every entry is still reachable from its home
// (no free slot between the two): any such layout is what inserting its
// entries run by run, left to right, produces. So a plain simulation gives
// the clusters an operation on the real table may walk.
std::vector<bool> occupancy(std::size_t slots, const std::vector<std::size_t>& homes) {
  std::vector<bool> occ(slots, false);
  for (std::size_t h : homes) {
    std::size_t i = h % slots;
    while (occ[i]) i = (i + 1) % slots;
    occ[i] = true;
  }
  return occ;
}

// Length of the run of occupied slots containing `slot` (0 when it is free),
// runs wrapping around the end of the array included.
std::size_t cluster_length(const std::vector<bool>& occ, std::size_t slot) {
  const std::size_t n = occ.size();
  if (!occ[slot]) return 0;
  std::size_t len = 1;
  for (std::size_t i = (slot + 1) % n; occ[i] && i != slot; i = (i + 1) % n) ++len;
  for (std::size_t i = (slot + n - 1) % n; occ[i] && len < n; i = (i + n - 1) % n) ++len;
  return len;
}

TEST(Occupancy, ModelOfTheSlotsInUse) {
  // Homes 14, 14, 15, 0 in 16 slots: a cluster wrapping around the end.
  const std::vector<bool> occ = occupancy(16, {14, 15, 14, 0, 5});
  std::vector<bool> want(16, false);
  for (std::size_t i : {14, 15, 0, 1, 5}) want[i] = true;
  EXPECT_EQ(occ, want);
  EXPECT_EQ(cluster_length(occ, 15), 4U);
  EXPECT_EQ(cluster_length(occ, 0), 4U);
  EXPECT_EQ(cluster_length(occ, 5), 1U);
  EXPECT_EQ(cluster_length(occ, 2), 0U);
}

// --- OpenTable on chosen homes --------------------------------------------
// Test slots whose key carries its home slot in the low 16 bits (and an id
// above), so clusters can be built at will.

struct TestSlot {
  std::uint32_t key = 0;
  std::uint32_t value = 0;
  bool live = false;
};

struct TestTraits {
  using Key = std::uint32_t;
  static constexpr bool is_free(const TestSlot& s) noexcept { return !s.live; }
  static constexpr std::uint32_t key_of(const TestSlot& s) noexcept { return s.key; }
  static constexpr bool same_key(std::uint32_t a, std::uint32_t b) noexcept { return a == b; }
  constexpr std::size_t hash(std::uint32_t key) const noexcept { return key & 0xffffU; }
};

using TestTable = OpenTable<TestSlot, TestTraits>;

constexpr std::uint32_t make_key(std::uint32_t id, std::size_t home) {
  return (id << 16) | static_cast<std::uint32_t>(home);
}
constexpr std::size_t home_of(std::uint32_t key, std::size_t slots) { return (key & 0xffffU) % slots; }

// The table holds exactly `ref` (key -> value): every key found with its
// value, size() agrees, and for_each sees each live slot once (a stale copy
// left behind by a shift would be an extra one).
::testing::AssertionResult holds_exactly(const TestTable& t,
                                         const std::unordered_map<std::uint32_t, std::uint32_t>& ref) {
  if (t.size() != ref.size())
    return ::testing::AssertionFailure() << "size " << t.size() << " != " << ref.size();
  for (const auto& [key, value] : ref) {
    const TestSlot* s = t.find(key);
    if (s == nullptr) return ::testing::AssertionFailure() << "key " << std::hex << key << " unreachable";
    if (s->key != key || s->value != value)
      return ::testing::AssertionFailure() << "key " << std::hex << key << " has wrong contents";
  }
  std::size_t visited = 0;
  bool all_known = true;
  t.for_each([&](const TestSlot& s) {
    ++visited;
    if (ref.count(s.key) == 0) all_known = false;
  });
  if (visited != ref.size())
    return ::testing::AssertionFailure() << "for_each saw " << visited << " live slots, want " << ref.size();
  if (!all_known) return ::testing::AssertionFailure() << "a live slot holds a removed key";
  return ::testing::AssertionSuccess();
}

std::vector<std::size_t> homes_of(const std::unordered_map<std::uint32_t, std::uint32_t>& ref,
                                  std::size_t slots) {
  std::vector<std::size_t> homes;
  homes.reserve(ref.size());
  for (const auto& kv : ref) homes.push_back(home_of(kv.first, slots));
  return homes;
}

// Fills tables with entries whose homes crowd into a random window (often
// straddling the end of the slot array, so clusters wrap around), then
// removes them one by one in random order: after every removal each
// remaining entry must still be found from its home, the removed one not at
// all, and the removal must have walked no further than its cluster.
TEST(OpenTable, RemovalNeverMovesAnEntryOutOfReach) {
  for (const std::size_t cap : {std::size_t{8}, std::size_t{32}, std::size_t{200}}) {
    SCOPED_TRACE(testing::Message() << "capacity " << cap);
    TestTable t(cap, "test");
    const std::size_t slots = t.slot_count();
    ASSERT_GE(slots, 2 * cap);
    std::mt19937_64 rng(cap);
    std::uint32_t next_id = 1;
    std::size_t wrapped = 0;  // trials whose window crossed the end

    const int trials = cap <= 32 ? 3000 : 200;
    for (int trial = 0; trial < trials; ++trial) {
      // Window of candidate homes: a third of the trials end-aligned so a
      // cluster surely wraps, the rest anywhere.
      const std::size_t width = 1 + rng() % std::max<std::size_t>(1, cap);
      const std::size_t start =
          trial % 3 == 0 ? slots - 1 - rng() % std::max<std::size_t>(1, width) : rng() % slots;
      if (start + width > slots) ++wrapped;
      const std::size_t n = 1 + rng() % cap;

      std::unordered_map<std::uint32_t, std::uint32_t> ref;
      std::vector<std::uint32_t> keys;
      for (std::size_t i = 0; i < n; ++i) {
        const std::uint32_t key = make_key(next_id++ & 0x7fff, (start + rng() % width) % slots);
        if (ref.count(key) != 0) continue;
        const auto value = static_cast<std::uint32_t>(rng());
        ASSERT_EQ(t.insert(TestSlot{key, value, true}), TestTable::InsertResult::kInserted);
        ref.emplace(key, value);
        keys.push_back(key);
      }
      ASSERT_TRUE(holds_exactly(t, ref)) << "trial " << trial << " after filling";

      std::shuffle(keys.begin(), keys.end(), rng);
      for (const std::uint32_t key : keys) {
        const std::vector<bool> occ = occupancy(slots, homes_of(ref, slots));
        const TestSlot* s = t.find(key);
        ASSERT_NE(s, nullptr);
        t.erase(*s);
        ref.erase(key);
        ASSERT_LE(t.last_slots_touched(), cluster_length(occ, home_of(key, slots)) + 1)
            << "trial " << trial << ": removal walked past its cluster";
        ASSERT_EQ(t.find(key), nullptr) << "trial " << trial;
        ASSERT_TRUE(holds_exactly(t, ref)) << "trial " << trial << " after removing " << std::hex << key;
      }
      ASSERT_EQ(t.size(), 0U);
    }
    EXPECT_GT(wrapped, static_cast<std::size_t>(trials) / 4);
  }
}

// Differential against std::unordered_map on a small table whose keys all
// home into eight slots around the end of the slot array (one long cluster
// wrapping from the last slots into the first), and a few anywhere: inserts
// (fresh, duplicate, refused when full), removals and lookups, every update
// bounded by its cluster.
TEST(OpenTable, DifferentialWithCrowdedHomes) {
  for (const std::uint64_t seed : {3ULL, 4ULL, 0xc0ffeeULL}) {
    SCOPED_TRACE(testing::Message() << "seed=" << seed);
    constexpr std::size_t kCap = 32;
    TestTable t(kCap, "test");
    const std::size_t slots = t.slot_count();
    std::unordered_map<std::uint32_t, std::uint32_t> ref;
    std::vector<std::uint32_t> universe;  // a small key set, so keys recur
    std::mt19937_64 rng(seed);
    for (std::uint32_t id = 1; id <= 3 * kCap; ++id) {
      const std::size_t home = id % 8 == 0 ? rng() % slots : (slots - 4 + rng() % 8) % slots;
      universe.push_back(make_key(id, home));
    }
    std::size_t full_refusals = 0, duplicates = 0, max_touched = 0;

    for (int step = 0; step < 200000; ++step) {
      const std::uint32_t key = universe[rng() % universe.size()];
      const std::size_t home = home_of(key, slots);
      const unsigned op = static_cast<unsigned>(rng() % 100);
      if (op < 45) {
        const std::vector<bool> occ = occupancy(slots, homes_of(ref, slots));
        const auto value = static_cast<std::uint32_t>(rng());
        const auto got = t.insert(TestSlot{key, value, true});
        const auto want = ref.count(key) != 0      ? TestTable::InsertResult::kDuplicate
                          : ref.size() >= kCap ? TestTable::InsertResult::kFull
                                               : TestTable::InsertResult::kInserted;
        ASSERT_EQ(got, want) << "step " << step;
        if (want == TestTable::InsertResult::kInserted) ref.emplace(key, value);
        if (want == TestTable::InsertResult::kFull) ++full_refusals;
        if (want == TestTable::InsertResult::kDuplicate) ++duplicates;
        ASSERT_LE(t.last_slots_touched(), cluster_length(occ, home) + 1) << "step " << step;
        max_touched = std::max(max_touched, t.last_slots_touched());
      } else if (op < 85) {
        const TestSlot* s = t.find(key);
        ASSERT_EQ(s != nullptr, ref.count(key) != 0) << "step " << step;
        if (s != nullptr) {
          const std::vector<bool> occ = occupancy(slots, homes_of(ref, slots));
          t.erase(*s);
          ref.erase(key);
          ASSERT_LE(t.last_slots_touched(), cluster_length(occ, home) + 1) << "step " << step;
          max_touched = std::max(max_touched, t.last_slots_touched());
        }
      } else {
        const TestSlot* s = t.find(key);
        const auto it = ref.find(key);
        ASSERT_EQ(s != nullptr, it != ref.end()) << "step " << step;
        if (s != nullptr) {
          ASSERT_EQ(s->value, it->second) << "step " << step;
        }
      }
      if (step % 64 == 0) {
        ASSERT_TRUE(holds_exactly(t, ref)) << "step " << step;
      }
    }
    ASSERT_TRUE(holds_exactly(t, ref));
    // The run exercised what it meant to: a full table, duplicates, and
    // clusters long enough that a shift had something to move.
    EXPECT_GT(full_refusals, 0U);
    EXPECT_GT(duplicates, 0U);
    EXPECT_GT(max_touched, 8U);
  }
}

}  // namespace
}  // namespace moongate::wg
