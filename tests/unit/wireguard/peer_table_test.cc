// PeerTable: operations, capacity, for_each, churn, scale, differential vs
// std::map, and no update sweeping the table (the SipHash seed is random per
// table, so home slots are unknown here: the bound is a coarse one; the exact
// per-cluster bound is tested on chosen homes in index_table_test.cc).
#include "wireguard/peer_table.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <map>
#include <random>
#include <vector>

namespace moongate::wg {
namespace {

// Peer is opaque here: the table only stores the pointer, so distinct
// addresses inside a byte arena stand in for peers (never dereferenced).
class FakePeers {
 public:
  explicit FakePeers(std::size_t n) : bytes_(n) {}
  Peer* operator[](std::size_t i) { return reinterpret_cast<Peer*>(&bytes_.at(i)); }

 private:
  std::vector<unsigned char> bytes_;
};

PublicKeyBytes random_key(std::mt19937_64& rng) {
  PublicKeyBytes k;
  for (std::size_t i = 0; i < k.size(); i += 8) {
    const std::uint64_t v = rng();
    for (std::size_t j = 0; j < 8; ++j) k[i + j] = static_cast<std::uint8_t>(v >> (8 * j));
  }
  return k;
}

std::vector<PublicKeyBytes> distinct_keys(std::size_t n, std::uint64_t seed) {
  std::mt19937_64 rng(seed);
  std::map<PublicKeyBytes, int> seen;
  std::vector<PublicKeyBytes> keys;
  keys.reserve(n);
  while (keys.size() < n) {
    const PublicKeyBytes k = random_key(rng);
    if (seen.emplace(k, 0).second) keys.push_back(k);
  }
  return keys;
}

std::map<PublicKeyBytes, Peer*> contents(const PeerTable& t) {
  std::map<PublicKeyBytes, Peer*> out;
  std::size_t visits = 0;
  t.for_each([&](const PublicKeyBytes& k, Peer* p) {
    ++visits;
    out.emplace(k, p);
  });
  EXPECT_EQ(visits, out.size()) << "for_each visited a key twice";
  return out;
}

::testing::AssertionResult matches(const PeerTable& t, const std::map<PublicKeyBytes, Peer*>& ref) {
  if (t.size() != ref.size())
    return ::testing::AssertionFailure() << "size " << t.size() << " != " << ref.size();
  for (const auto& [k, p] : ref)
    if (t.find(k) != p)
      return ::testing::AssertionFailure() << "key with first byte " << int{k[0]} << " mismatched";
  if (contents(t) != ref)
    return ::testing::AssertionFailure() << "for_each differs from the live set";
  return ::testing::AssertionSuccess();
}

TEST(PeerTable, SlotSizing) {
  EXPECT_EQ(PeerTable(0).slot_count(), 16U);
  EXPECT_EQ(PeerTable(8).slot_count(), 16U);
  EXPECT_EQ(PeerTable(9).slot_count(), 32U);
  EXPECT_EQ(PeerTable(100000).slot_count(), 262144U);
  EXPECT_EQ(PeerTable(100000).capacity(), 100000U);
}

TEST(PeerTable, InsertFindRemove) {
  FakePeers peers(3);
  const auto keys = distinct_keys(3, 7);
  PeerTable t(4);
  EXPECT_EQ(t.find(keys[0]), nullptr);
  EXPECT_EQ(t.remove(keys[0]), nullptr);

  ASSERT_TRUE(t.insert(keys[0], peers[0]));
  ASSERT_TRUE(t.insert(keys[1], peers[1]));
  EXPECT_EQ(t.size(), 2U);
  EXPECT_EQ(t.find(keys[0]), peers[0]);
  EXPECT_EQ(t.find(keys[1]), peers[1]);
  EXPECT_EQ(t.find(keys[2]), nullptr);

  EXPECT_EQ(t.remove(keys[0]), peers[0]);
  EXPECT_EQ(t.size(), 1U);
  EXPECT_EQ(t.find(keys[0]), nullptr);
  EXPECT_EQ(t.remove(keys[0]), nullptr);
  EXPECT_EQ(t.find(keys[1]), peers[1]);

  // A removed key can come back, bound to another peer.
  ASSERT_TRUE(t.insert(keys[0], peers[2]));
  EXPECT_EQ(t.find(keys[0]), peers[2]);
}

TEST(PeerTable, DuplicateAndNullRefused) {
  FakePeers peers(2);
  const auto keys = distinct_keys(2, 8);
  PeerTable t(4);
  ASSERT_TRUE(t.insert(keys[0], peers[0]));
  EXPECT_FALSE(t.insert(keys[0], peers[1]));
  EXPECT_EQ(t.find(keys[0]), peers[0]);
  EXPECT_EQ(t.size(), 1U);
  EXPECT_FALSE(t.insert(keys[1], nullptr));
  EXPECT_EQ(t.size(), 1U);
}

TEST(PeerTable, FullTableRefuses) {
  constexpr std::size_t kCap = 100;
  FakePeers peers(kCap + 1);
  const auto keys = distinct_keys(kCap + 1, 9);
  PeerTable t(kCap);
  for (std::size_t i = 0; i < kCap; ++i) ASSERT_TRUE(t.insert(keys[i], peers[i]));
  EXPECT_FALSE(t.insert(keys[kCap], peers[kCap]));
  EXPECT_EQ(t.find(keys[kCap]), nullptr);
  EXPECT_EQ(t.size(), kCap);
  EXPECT_EQ(t.remove(keys[3]), peers[3]);
  EXPECT_TRUE(t.insert(keys[kCap], peers[kCap]));
  EXPECT_EQ(t.find(keys[kCap]), peers[kCap]);
}

// Keys differing in one byte anywhere must all be told apart.
TEST(PeerTable, KeysDifferingInOneByte) {
  constexpr std::size_t kN = 32 * 8;
  FakePeers peers(kN);
  PeerTable t(kN);
  std::map<PublicKeyBytes, Peer*> ref;
  for (std::size_t i = 0; i < kN; ++i) {
    PublicKeyBytes k{};
    k[i / 8] = static_cast<std::uint8_t>(1U << (i % 8));
    ASSERT_TRUE(t.insert(k, peers[i]));
    ref.emplace(k, peers[i]);
  }
  EXPECT_EQ(t.find(PublicKeyBytes{}), nullptr);
  EXPECT_TRUE(matches(t, ref));
}

// The hash key is drawn per table, so two tables lay the same keys out
// differently (identical order for 1000 keys would be a ~1/1000! fluke).
TEST(PeerTable, HashIsSeededPerTable) {
  constexpr std::size_t kN = 1000;
  FakePeers peers(kN);
  const auto keys = distinct_keys(kN, 10);
  PeerTable a(kN);
  PeerTable b(kN);
  for (std::size_t i = 0; i < kN; ++i) {
    ASSERT_TRUE(a.insert(keys[i], peers[i]));
    ASSERT_TRUE(b.insert(keys[i], peers[i]));
  }
  std::vector<Peer*> order_a;
  std::vector<Peer*> order_b;
  a.for_each([&](const PublicKeyBytes&, Peer* p) { order_a.push_back(p); });
  b.for_each([&](const PublicKeyBytes&, Peer* p) { order_b.push_back(p); });
  ASSERT_EQ(order_a.size(), kN);
  ASSERT_EQ(order_b.size(), kN);
  EXPECT_NE(order_a, order_b);
}

TEST(PeerTable, HundredThousandPeers) {
  constexpr std::size_t kN = 100000;
  FakePeers peers(kN);
  const auto keys = distinct_keys(kN + 1000, 11);
  PeerTable t(kN);
  for (std::size_t i = 0; i < kN; ++i) ASSERT_TRUE(t.insert(keys[i], peers[i])) << i;
  EXPECT_EQ(t.size(), kN);
  EXPECT_FALSE(t.insert(keys[kN], peers[0]));
  for (std::size_t i = 0; i < kN; ++i) ASSERT_EQ(t.find(keys[i]), peers[i]) << i;
  for (std::size_t i = kN; i < kN + 1000; ++i) ASSERT_EQ(t.find(keys[i]), nullptr) << i;
  for (std::size_t i = 0; i < kN; i += 97)
    ASSERT_FALSE(t.insert(keys[i], peers[(i + 1) % kN])) << i;

  // Removals shift clusters back; at this load clusters are tens of slots
  // long at most, so any removal sweeping the table (a rehash) would show.
  std::size_t max_touched = 0;
  auto remove = [&](std::size_t i) {
    Peer* const p = t.remove(keys[i]);
    max_touched = std::max(max_touched, t.last_slots_touched());
    return p;
  };
  for (std::size_t i = 0; i < kN; i += 2) ASSERT_EQ(remove(i), peers[i]) << i;
  EXPECT_EQ(t.size(), kN / 2);
  EXPECT_LT(max_touched, t.slot_count() / 64);
  std::map<PublicKeyBytes, Peer*> ref;
  for (std::size_t i = 0; i < kN; ++i) {
    if (i % 2 == 0) {
      ASSERT_EQ(t.find(keys[i]), nullptr) << i;
    } else {
      ASSERT_EQ(t.find(keys[i]), peers[i]) << i;
      ref.emplace(keys[i], peers[i]);
    }
  }
  EXPECT_EQ(contents(t), ref);

  // Remove another quarter: 75 000 removals in all, well past the point
  // where the old tombstone scheme rehashed the whole table.
  for (std::size_t i = 1; i < kN; i += 4) ASSERT_EQ(remove(i), peers[i]) << i;
  EXPECT_EQ(t.size(), kN / 4);
  EXPECT_LT(max_touched, t.slot_count() / 64);
  for (std::size_t i = 0; i < kN; ++i) {
    ASSERT_EQ(t.find(keys[i]), i % 4 == 3 ? peers[i] : nullptr) << i;
  }
}

// Cycles 10x the capacity through a full table so removals shift entries
// back all the time; no update may sweep the table meanwhile.
TEST(PeerTable, ChurnKeepsEverythingReachable) {
  for (const std::size_t cap :
       {std::size_t{8}, std::size_t{64}, std::size_t{1000}, std::size_t{3000}}) {
    SCOPED_TRACE(cap);
    FakePeers peers(cap);
    const auto keys = distinct_keys(11 * cap, cap);
    PeerTable t(cap);
    std::mt19937_64 rng(cap + 1);
    std::map<PublicKeyBytes, Peer*> ref;
    std::vector<std::size_t> live;
    std::size_t next = 0;
    std::size_t max_touched = 0;

    while (next < keys.size()) {
      if (live.size() < cap) {
        ASSERT_TRUE(t.insert(keys[next], peers[next % cap]));
        ref.emplace(keys[next], peers[next % cap]);
        live.push_back(next++);
      } else {
        ASSERT_FALSE(t.insert(keys[next], peers[0]));
        const std::size_t pos = rng() % live.size();
        const std::size_t victim = live[pos];
        live[pos] = live.back();
        live.pop_back();
        ASSERT_EQ(t.remove(keys[victim]), peers[victim % cap]);
        ref.erase(keys[victim]);
      }
      max_touched = std::max(max_touched, t.last_slots_touched());
      if (next % (cap / 8 + 1) == 0) {
        ASSERT_TRUE(matches(t, ref)) << "after key " << next;
      }
    }
    ASSERT_TRUE(matches(t, ref));
    for (const auto& k : keys)
      if (ref.count(k) == 0) {
        ASSERT_EQ(t.find(k), nullptr);
      }
    // At least one update worked in a cluster (a collision); and in the
    // larger tables, none came near a sweep (clusters at load 1/2 stay far
    // below a quarter of 2048 or 8192 slots; a rehash touches them all).
    EXPECT_GT(max_touched, 1U);
    if (t.slot_count() >= 2048) {
      EXPECT_LT(max_touched, t.slot_count() / 4);
    }
  }
}

TEST(PeerTable, DifferentialAgainstMap) {
  for (const std::uint64_t seed : {1ULL, 2ULL, 0xfeedULL}) {
    SCOPED_TRACE(testing::Message() << "seed=" << seed);
    constexpr std::size_t kCap = 300;
    // A key universe much larger than the table: inserts land on fresh
    // slots, so removals keep shifting clusters back, and the table runs
    // full so inserts are also refused.
    constexpr std::size_t kKeys = 6000;
    FakePeers peers(kKeys);
    const auto keys = distinct_keys(kKeys, seed);
    PeerTable t(kCap);
    std::map<PublicKeyBytes, Peer*> ref;
    std::vector<std::size_t> live;  // key ids in ref, for picking live keys
    std::mt19937_64 rng(seed);
    auto random_live = [&]() -> std::size_t {
      return live.empty() ? rng() % kKeys : live[rng() % live.size()];
    };

    for (int step = 0; step < 100000; ++step) {
      const unsigned op = static_cast<unsigned>(rng() % 100);
      if (op < 35) {
        const std::size_t k = rng() % kKeys;
        const bool expect = ref.count(keys[k]) == 0 && ref.size() < kCap;
        ASSERT_EQ(t.insert(keys[k], peers[k]), expect) << "step " << step;
        if (expect) {
          ref.emplace(keys[k], peers[k]);
          live.push_back(k);
        }
      } else if (op < 65) {
        const std::size_t k = op < 60 ? random_live() : rng() % kKeys;
        const auto it = ref.find(keys[k]);
        ASSERT_EQ(t.remove(keys[k]), it == ref.end() ? nullptr : it->second) << "step " << step;
        if (it != ref.end()) {
          ref.erase(it);
          live.erase(std::find(live.begin(), live.end(), k));
        }
      } else {
        const std::size_t k = op < 80 ? random_live() : rng() % kKeys;
        const auto it = ref.find(keys[k]);
        ASSERT_EQ(t.find(keys[k]), it == ref.end() ? nullptr : it->second) << "step " << step;
      }
      ASSERT_EQ(t.size(), ref.size());
      // Clusters at load <= 1/2 in 1024 slots stay far below this; a sweep
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
