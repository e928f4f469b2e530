// IndexTable: operations, capacity, churn, scale, differential vs
// std::unordered_map; and the OpenTable underneath it on chosen home slots:
// backward-shift removal keeps every entry reachable (clusters wrapping
// around the end of the slot array included) and no operation touches more
// than the cluster it works in.
#include "wireguard/index_table.h"

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

using Kind = IndexEntry::Kind;

// Peer and Keypair are opaque here: the table only stores the pointers, so
// distinct addresses inside byte arenas stand in for them (never dereferenced).
class FakeObjects {
 public:
  explicit FakeObjects(std::size_t n) : peers_(n), keypairs_(n) {}
  Peer* peer(std::size_t i) { return reinterpret_cast<Peer*>(&peers_.at(i)); }
  Keypair* keypair(std::size_t i) { return reinterpret_cast<Keypair*>(&keypairs_.at(i)); }

 private:
  std::vector<unsigned char> peers_;
  std::vector<unsigned char> keypairs_;
};

struct Expected {
  Kind kind;
  Peer* peer;
  Keypair* keypair;
};

// Every expected entry is found with the right contents, and the sizes agree.
::testing::AssertionResult matches(const IndexTable& t,
                                   const std::unordered_map<std::uint32_t, Expected>& ref) {
  if (t.size() != ref.size())
    return ::testing::AssertionFailure() << "size " << t.size() << " != " << ref.size();
  for (const auto& [index, e] : ref) {
    const IndexEntry* got = t.find(index);
    if (got == nullptr) return ::testing::AssertionFailure() << "index " << index << " not found";
    if (got->index != index || got->kind != e.kind || got->peer != e.peer ||
        got->keypair != e.keypair)
      return ::testing::AssertionFailure() << "index " << index << " has wrong contents";
  }
  return ::testing::AssertionSuccess();
}

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

TEST(IndexTable, SlotSizing) {
  EXPECT_EQ(IndexTable(0).slot_count(), 16U);
  EXPECT_EQ(IndexTable(1).slot_count(), 16U);
  EXPECT_EQ(IndexTable(8).slot_count(), 16U);
  EXPECT_EQ(IndexTable(9).slot_count(), 32U);
  EXPECT_EQ(IndexTable(400000).slot_count(), 1048576U);
  EXPECT_EQ(IndexTable(400000).capacity(), 400000U);
}

TEST(IndexTable, InsertFindReplaceRemove) {
  FakeObjects obj(4);
  IndexTable t(8);
  EXPECT_EQ(t.size(), 0U);

  std::uint32_t hs = 0;
  ASSERT_TRUE(t.insert(Kind::kHandshake, obj.peer(0), nullptr, hs));
  EXPECT_NE(hs, 0U);
  EXPECT_EQ(t.size(), 1U);
  const IndexEntry* e = t.find(hs);
  ASSERT_NE(e, nullptr);
  EXPECT_EQ(e->index, hs);
  EXPECT_EQ(e->kind, Kind::kHandshake);
  EXPECT_EQ(e->peer, obj.peer(0));
  EXPECT_EQ(e->keypair, nullptr);

  // The handshake's index is handed over to the keypair it produced.
  EXPECT_TRUE(t.replace(hs, Kind::kKeypair, obj.peer(0), obj.keypair(0)));
  e = t.find(hs);
  ASSERT_NE(e, nullptr);
  EXPECT_EQ(e->kind, Kind::kKeypair);
  EXPECT_EQ(e->peer, obj.peer(0));
  EXPECT_EQ(e->keypair, obj.keypair(0));
  EXPECT_EQ(t.size(), 1U);

  std::uint32_t kp = 0;
  ASSERT_TRUE(t.insert(Kind::kKeypair, obj.peer(1), obj.keypair(1), kp));
  EXPECT_NE(kp, hs);
  EXPECT_EQ(t.size(), 2U);

  t.remove(hs);
  EXPECT_EQ(t.find(hs), nullptr);
  EXPECT_FALSE(t.replace(hs, Kind::kKeypair, obj.peer(0), obj.keypair(0)));
  EXPECT_EQ(t.size(), 1U);
  t.remove(hs);  // absent: no-op
  EXPECT_EQ(t.size(), 1U);
  ASSERT_NE(t.find(kp), nullptr);
  EXPECT_EQ(t.find(kp)->keypair, obj.keypair(1));
}

TEST(IndexTable, IndexZeroIsNeverUsed) {
  IndexTable t(4);
  EXPECT_EQ(t.find(0), nullptr);
  t.remove(0);
  EXPECT_FALSE(t.replace(0, Kind::kHandshake, nullptr, nullptr));
  EXPECT_EQ(t.find(0), nullptr);  // a free slot's zeroed index must not match
}

TEST(IndexTable, TaggedIndicesCarryTheOwnerBits) {
  // A multi-lcore host puts the owning lcore in the high bits.
  IndexTable t(4000);
  FakeObjects o(4000);
  t.set_tag(0xe0000000u, 0x60000000u);
  std::unordered_set<std::uint32_t> seen;
  for (std::size_t i = 0; i < 4000; ++i) {
    std::uint32_t idx = 0;
    ASSERT_TRUE(t.insert(Kind::kHandshake, o.peer(i), nullptr, idx));
    EXPECT_EQ(idx & 0xe0000000u, 0x60000000u);
    EXPECT_TRUE(seen.insert(idx).second);
  }
  for (std::uint32_t idx : seen) ASSERT_NE(t.find(idx), nullptr);
  // The untagged bits still vary (random, not a counter).
  std::uint32_t ored = 0, anded = ~0u;
  for (std::uint32_t idx : seen) {
    ored |= idx;
    anded &= idx;
  }
  EXPECT_EQ((ored ^ anded) & ~0xe0000000u, ~0xe0000000u);
}

TEST(IndexTable, SlotStatesAreNotEntryKinds) {
  FakeObjects obj(1);
  IndexTable t(4);
  std::uint32_t index = 0;
  // The free state, and a value outside the enumerators (3 was once a
  // tombstone): neither is an entry kind.
  const auto bogus = static_cast<Kind>(3);
  EXPECT_FALSE(t.insert(Kind::kFree, obj.peer(0), nullptr, index));
  EXPECT_FALSE(t.insert(bogus, obj.peer(0), nullptr, index));
  EXPECT_EQ(t.size(), 0U);
  ASSERT_TRUE(t.insert(Kind::kHandshake, obj.peer(0), nullptr, index));
  EXPECT_FALSE(t.replace(index, bogus, nullptr, nullptr));
  EXPECT_FALSE(t.replace(index, Kind::kFree, nullptr, nullptr));
  ASSERT_NE(t.find(index), nullptr);
  EXPECT_EQ(t.find(index)->kind, Kind::kHandshake);
}

TEST(IndexTable, IndicesUniqueAndFullTableRefuses) {
  constexpr std::size_t kCap = 1000;
  FakeObjects obj(kCap);
  IndexTable t(kCap);
  std::unordered_set<std::uint32_t> seen;
  for (std::size_t i = 0; i < kCap; ++i) {
    std::uint32_t index = 0;
    ASSERT_TRUE(t.insert(Kind::kHandshake, obj.peer(i), nullptr, index)) << i;
    EXPECT_NE(index, 0U);
    EXPECT_TRUE(seen.insert(index).second) << "duplicate index " << index;
  }
  EXPECT_EQ(t.size(), kCap);

  std::uint32_t extra = 12345;
  EXPECT_FALSE(t.insert(Kind::kHandshake, obj.peer(0), nullptr, extra));
  EXPECT_EQ(extra, 12345U);  // untouched on failure
  EXPECT_EQ(t.size(), kCap);

  const std::uint32_t victim = *seen.begin();
  t.remove(victim);
  EXPECT_EQ(t.size(), kCap - 1);
  ASSERT_TRUE(t.insert(Kind::kKeypair, obj.peer(1), obj.keypair(1), extra));
  EXPECT_EQ(t.size(), kCap);
  EXPECT_FALSE(t.insert(Kind::kKeypair, obj.peer(1), obj.keypair(1), extra));
}

TEST(IndexTable, ZeroCapacityRefusesEverything) {
  IndexTable t(0);
  std::uint32_t index = 0;
  EXPECT_FALSE(t.insert(Kind::kHandshake, nullptr, nullptr, index));
  EXPECT_EQ(t.size(), 0U);
}

// Keeps the table at or near capacity while cycling 10x its capacity
// through it, so removals shift entries back all the time (in tables this
// small, clusters often wrap around the end of the slot array).
TEST(IndexTable, ChurnKeepsEverythingReachable) {
  for (const std::size_t cap :
       {std::size_t{8}, std::size_t{64}, std::size_t{1000}, std::size_t{3000}}) {
    SCOPED_TRACE(cap);
    FakeObjects obj(cap);
    IndexTable t(cap);
    std::mt19937_64 rng(cap);
    std::unordered_map<std::uint32_t, Expected> ref;
    std::vector<std::uint32_t> live;
    std::vector<std::uint32_t> removed;

    for (std::size_t step = 0; step < 10 * cap + cap; ++step) {
      if (live.size() < cap) {
        const std::size_t k = step % cap;
        std::uint32_t index = 0;
        const Expected e{Kind::kKeypair, obj.peer(k), obj.keypair(k)};
        ASSERT_TRUE(t.insert(e.kind, e.peer, e.keypair, index));
        ASSERT_TRUE(ref.emplace(index, e).second) << "index reused while live";
        live.push_back(index);
      }
      if (live.size() == cap) {
        std::uint32_t tmp = 0;
        ASSERT_FALSE(t.insert(Kind::kHandshake, obj.peer(0), nullptr, tmp));
        const std::size_t pos = rng() % live.size();
        const std::uint32_t index = live[pos];
        live[pos] = live.back();
        live.pop_back();
        t.remove(index);
        ref.erase(index);
        removed.push_back(index);
      }
      if (step % (cap / 8 + 1) == 0) {
        ASSERT_TRUE(matches(t, ref)) << "step " << step;
      }
    }
    ASSERT_TRUE(matches(t, ref));
    for (const std::uint32_t index : removed)
      if (ref.count(index) == 0) {
        ASSERT_EQ(t.find(index), nullptr) << index;
      }
  }
}

// What the tombstone scheme got wrong: once tombstones passed a quarter of
// the slots, the remove() that crossed the line rehashed the whole table
// (9 ms at 400 000 entries, on the lcore owning it). Steady churn at full
// capacity, each update checked against the cluster it works in, from a
// model of the occupied slots built from the live indices' home slots (the
// table hashes an index to its low bits): no insert or remove may examine
// more than that cluster plus the free slot ending it.
TEST(IndexTable, NoUpdateWalksPastItsCluster) {
  for (const std::size_t cap : {std::size_t{8}, std::size_t{500}}) {
    SCOPED_TRACE(cap);
    FakeObjects obj(1);
    IndexTable t(cap);
    const std::size_t slots = t.slot_count();
    std::mt19937_64 rng(cap + 7);
    std::vector<std::uint32_t> live;
    auto occ = [&] {
      std::vector<std::size_t> homes;
      homes.reserve(live.size());
      for (const std::uint32_t index : live) homes.push_back(index & (slots - 1));
      return occupancy(slots, homes);
    };
    std::size_t max_touched = 0;
    for (std::size_t step = 0; step < 20 * cap; ++step) {
      if (live.size() == cap) {
        const std::size_t pos = rng() % live.size();
        const std::uint32_t index = live[pos];
        const std::size_t bound = cluster_length(occ(), index & (slots - 1)) + 1;
        live[pos] = live.back();
        live.pop_back();
        t.remove(index);
        ASSERT_LE(t.last_slots_touched(), bound) << "step " << step << ": remove";
        max_touched = std::max(max_touched, t.last_slots_touched());
      }
      const std::vector<bool> before = occ();
      std::uint32_t index = 0;
      ASSERT_TRUE(t.insert(Kind::kKeypair, obj.peer(0), obj.keypair(0), index));
      // A redrawn index (a collision with a live one) would make the bound
      // the new index's cluster anyway: last_slots_touched is the last draw.
      ASSERT_LE(t.last_slots_touched(), cluster_length(before, index & (slots - 1)) + 1)
          << "step " << step << ": insert";
      max_touched = std::max(max_touched, t.last_slots_touched());
      live.push_back(index);
    }
    ASSERT_EQ(t.size(), cap);
    for (const std::uint32_t index : live) ASSERT_NE(t.find(index), nullptr);
    // Beside the exact bound, plainly: nothing near a sweep of the table
    // (clusters at load 1/2 in 1024 slots stay far below a quarter of it).
    if (slots >= 1024) {
      EXPECT_LT(max_touched, slots / 4);
    }
  }
}

// prefetch() is a hint: any index (live, absent, 0) is fine and nothing changes.
TEST(IndexTable, PrefetchIsOnlyAHint) {
  FakeObjects obj(1);
  IndexTable t(64);
  std::uint32_t live = 0;
  ASSERT_TRUE(t.insert(Kind::kKeypair, obj.peer(0), obj.keypair(0), live));
  for (const std::uint32_t index : {live, live + 1, 0U, ~0U}) t.prefetch(index);
  EXPECT_EQ(t.size(), 1U);
  ASSERT_NE(t.find(live), nullptr);
  EXPECT_EQ(t.find(live)->keypair, obj.keypair(0));
}

// 100 000 peers with a handshake and three keypairs each.
TEST(IndexTable, HundredThousandPeers) {
  constexpr std::size_t kPeers = 100000;
  constexpr std::size_t kEntries = 4 * kPeers;
  FakeObjects obj(kEntries);
  IndexTable t(kEntries);
  std::vector<std::uint32_t> indices(kEntries);

  for (std::size_t i = 0; i < kEntries; ++i) {
    const bool hs = i % 4 == 0;
    ASSERT_TRUE(t.insert(hs ? Kind::kHandshake : Kind::kKeypair, obj.peer(i / 4),
                         hs ? nullptr : obj.keypair(i), indices[i]))
        << i;
  }
  EXPECT_EQ(t.size(), kEntries);
  std::uint32_t tmp = 0;
  EXPECT_FALSE(t.insert(Kind::kHandshake, obj.peer(0), nullptr, tmp));

  std::unordered_set<std::uint32_t> unique(indices.begin(), indices.end());
  EXPECT_EQ(unique.size(), kEntries);
  EXPECT_EQ(unique.count(0), 0U);

  auto check_entry = [&](std::size_t i) -> ::testing::AssertionResult {
    const IndexEntry* e = t.find(indices[i]);
    if (e == nullptr) return ::testing::AssertionFailure() << "entry " << i << " missing";
    const bool hs = i % 4 == 0;
    if (e->index != indices[i] || e->kind != (hs ? Kind::kHandshake : Kind::kKeypair) ||
        e->peer != obj.peer(i / 4) || e->keypair != (hs ? nullptr : obj.keypair(i)))
      return ::testing::AssertionFailure() << "entry " << i << " has wrong contents";
    return ::testing::AssertionSuccess();
  };

  for (std::size_t i = 0; i < kEntries; ++i) ASSERT_TRUE(check_entry(i));

  // Removals shift clusters back; at this load clusters are tens of slots
  // long at most, so any removal sweeping the table (a rehash) would show.
  std::size_t max_touched = 0;
  auto remove = [&](std::uint32_t index) {
    t.remove(index);
    max_touched = std::max(max_touched, t.last_slots_touched());
  };

  for (std::size_t i = 0; i < kEntries; i += 2) remove(indices[i]);
  EXPECT_EQ(t.size(), kEntries / 2);
  EXPECT_LT(max_touched, t.slot_count() / 64);
  for (std::size_t i = 0; i < kEntries; ++i) {
    if (i % 2 == 0) {
      ASSERT_EQ(t.find(indices[i]), nullptr) << i;
    } else {
      ASSERT_TRUE(check_entry(i));
    }
  }

  // Remove another quarter: 300 000 removals in all, far past the point
  // where the old tombstone scheme rehashed the whole table.
  for (std::size_t i = 1; i < kEntries; i += 4) remove(indices[i]);
  EXPECT_EQ(t.size(), kEntries / 4);
  EXPECT_LT(max_touched, t.slot_count() / 64);
  for (std::size_t i = 0; i < kEntries; ++i) {
    if (i % 4 == 3) {
      ASSERT_TRUE(check_entry(i));
    } else {
      ASSERT_EQ(t.find(indices[i]), nullptr) << i;
    }
  }
}

TEST(IndexTable, DifferentialAgainstUnorderedMap) {
  for (const std::uint64_t seed : {1ULL, 2ULL, 0xdeadbeefULL}) {
    SCOPED_TRACE(testing::Message() << "seed=" << seed);
    constexpr std::size_t kCap = 500;
    FakeObjects obj(kCap);
    IndexTable t(kCap);
    std::unordered_map<std::uint32_t, Expected> ref;
    std::vector<std::uint32_t> keys;  // every index ever handed out, live or not
    std::mt19937_64 rng(seed);

    for (int step = 0; step < 100000; ++step) {
      const std::size_t k = rng() % kCap;
      const Kind kind = rng() % 2 != 0 ? Kind::kHandshake : Kind::kKeypair;
      const unsigned op = static_cast<unsigned>(rng() % 100);
      if (op < 40) {
        std::uint32_t index = 0;
        const bool ok = t.insert(kind, obj.peer(k), obj.keypair(k), index);
        ASSERT_EQ(ok, ref.size() < kCap) << "step " << step;
        if (ok) {
          ASSERT_NE(index, 0U);
          ASSERT_TRUE(ref.emplace(index, Expected{kind, obj.peer(k), obj.keypair(k)}).second);
          keys.push_back(index);
        }
      } else if (op < 75 && !keys.empty()) {
        const std::uint32_t index = keys[rng() % keys.size()];
        t.remove(index);
        ref.erase(index);
      } else if (op < 85 && !keys.empty()) {
        const std::uint32_t index = keys[rng() % keys.size()];
        const bool ok = t.replace(index, kind, obj.peer(k), nullptr);
        const auto it = ref.find(index);
        ASSERT_EQ(ok, it != ref.end()) << "step " << step;
        if (it != ref.end()) it->second = Expected{kind, obj.peer(k), nullptr};
      } else {
        // A known index (live or removed) or a random one.
        const std::uint32_t index = rng() % 2 != 0 && !keys.empty()
                                        ? keys[rng() % keys.size()]
                                        : static_cast<std::uint32_t>(rng());
        const IndexEntry* got = t.find(index);
        const auto it = ref.find(index);
        ASSERT_EQ(got != nullptr, it != ref.end()) << "step " << step << " index " << index;
        if (got != nullptr) {
          ASSERT_EQ(got->index, index);
          ASSERT_EQ(got->kind, it->second.kind);
          ASSERT_EQ(got->peer, it->second.peer);
          ASSERT_EQ(got->keypair, it->second.keypair);
        }
      }
      ASSERT_EQ(t.size(), ref.size());
      // Clusters at load <= 1/2 over 1024 slots stay far below this; a sweep
      // of the table would not.
      ASSERT_LT(t.last_slots_touched(), t.slot_count() / 4) << "step " << step;
      if (step % 5000 == 0) {
        ASSERT_TRUE(matches(t, ref)) << "step " << step;
      }
    }
    ASSERT_TRUE(matches(t, ref));
  }
}

}  // namespace
}  // namespace moongate::wg
