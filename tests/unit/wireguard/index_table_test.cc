// IndexTable: operations, capacity, churn, scale, differential vs std::unordered_map.
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
  EXPECT_FALSE(t.insert(Kind::kFree, obj.peer(0), nullptr, index));
  EXPECT_FALSE(t.insert(Kind::kTombstone, obj.peer(0), nullptr, index));
  EXPECT_EQ(t.size(), 0U);
  ASSERT_TRUE(t.insert(Kind::kHandshake, obj.peer(0), nullptr, index));
  EXPECT_FALSE(t.replace(index, Kind::kTombstone, nullptr, nullptr));
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
// through it, so tombstones accumulate and rehashes happen repeatedly.
TEST(IndexTable, TombstoneChurnKeepsEverythingReachable) {
  for (const std::size_t cap :
       {std::size_t{8}, std::size_t{64}, std::size_t{1000}, std::size_t{3000}}) {
    SCOPED_TRACE(cap);
    FakeObjects obj(cap);
    IndexTable t(cap);
    std::mt19937_64 rng(cap);
    std::unordered_map<std::uint32_t, Expected> ref;
    std::vector<std::uint32_t> live;
    std::vector<std::uint32_t> removed;

    std::size_t max_tombstones = 0;
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
      ASSERT_LE(t.tombstones() * 4, t.slot_count());
      max_tombstones = std::max(max_tombstones, t.tombstones());
      if (step % (cap / 8 + 1) == 0) {
        ASSERT_TRUE(matches(t, ref)) << "step " << step;
      }
    }
    ASSERT_TRUE(matches(t, ref));
    for (const std::uint32_t index : removed)
      if (ref.count(index) == 0) {
        ASSERT_EQ(t.find(index), nullptr) << index;
      }
    // The churn must actually have produced tombstones to purge.
    EXPECT_GT(max_tombstones, 0U);
  }
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

  for (std::size_t i = 0; i < kEntries; i += 2) t.remove(indices[i]);
  EXPECT_EQ(t.size(), kEntries / 2);
  EXPECT_LE(t.tombstones() * 4, t.slot_count());
  for (std::size_t i = 0; i < kEntries; ++i) {
    if (i % 2 == 0) {
      ASSERT_EQ(t.find(indices[i]), nullptr) << i;
    } else {
      ASSERT_TRUE(check_entry(i));
    }
  }

  // Remove another quarter: enough tombstones to force a rehash at scale.
  for (std::size_t i = 1; i < kEntries; i += 4) t.remove(indices[i]);
  EXPECT_EQ(t.size(), kEntries / 4);
  EXPECT_LE(t.tombstones() * 4, t.slot_count());
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
      ASSERT_LE(t.tombstones() * 4, t.slot_count());
      if (step % 5000 == 0) {
        ASSERT_TRUE(matches(t, ref)) << "step " << step;
      }
    }
    ASSERT_TRUE(matches(t, ref));
  }
}

}  // namespace
}  // namespace moongate::wg
