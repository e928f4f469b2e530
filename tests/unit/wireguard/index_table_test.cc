// IndexTable: indices that name their slot, the slot as a keypair's receive
// line (key, replay head, expiry, flags), free slots reused as late as
// possible, tags, capacity, and a differential run against std::unordered_map.
#include "wireguard/index_table.h"

#include <gtest/gtest.h>

#include <cstddef>
#include <cstdint>
#include <random>
#include <unordered_map>
#include <unordered_set>
#include <vector>

namespace moongate::wg {
namespace {

// Peer and Keypair are opaque here: the table stores the pointers (a Peer's
// with flags in its low bits, so the stand-ins are 64-byte aligned like a
// Peer) and never dereferences them.
struct alignas(64) Stand {
  unsigned char bytes[64];
};
class FakeObjects {
 public:
  explicit FakeObjects(std::size_t n) : peers_(n), keypairs_(n) {}
  Peer* peer(std::size_t i) { return reinterpret_cast<Peer*>(&peers_.at(i)); }
  Keypair* keypair(std::size_t i) { return reinterpret_cast<Keypair*>(&keypairs_.at(i)); }

 private:
  std::vector<Stand> peers_;
  std::vector<Stand> keypairs_;
};

crypto::SecretKey key_of_byte(std::uint8_t b) {
  crypto::SecretKey k;
  for (std::size_t i = 0; i < k.size(); ++i) k.data()[i] = static_cast<std::uint8_t>(b + i);
  return k;
}

constexpr Nanos kTick = Nanos{1} << IndexSlot::kTickShift;

TEST(IndexTable, SlotSizing) {
  EXPECT_EQ(IndexTable(0).slot_count(), 16U);
  EXPECT_EQ(IndexTable(16).slot_count(), 16U);
  EXPECT_EQ(IndexTable(17).slot_count(), 32U);
  // A Device of 100 000 peers: 4 per peer and 16 spare.
  IndexTable big(400016);
  EXPECT_EQ(big.slot_count(), 524288U);
  EXPECT_EQ(big.capacity(), 524288U);
  EXPECT_EQ(big.size(), 0U);
}

TEST(IndexTable, TheIndexNamesItsSlot) {
  FakeObjects obj(2);
  IndexTable t(16);
  std::uint32_t a = 0, b = 0;
  IndexSlot* sa = t.insert(obj.peer(0), a);
  IndexSlot* sb = t.insert(obj.peer(1), b);
  ASSERT_NE(sa, nullptr);
  ASSERT_NE(sb, nullptr);
  EXPECT_NE(a, 0U);
  EXPECT_NE(a, b);
  EXPECT_EQ(t.find(a), sa);
  EXPECT_EQ(t.find(b), sb);
  // Same low bits, other high bits: another index, not this slot's.
  EXPECT_EQ(t.find(a ^ 0x100U), nullptr);
  EXPECT_EQ(t.find(a ^ 0x80000000U), nullptr);
  EXPECT_EQ(sa->peer(), obj.peer(0));
  EXPECT_EQ(sa->index, a);
  EXPECT_FALSE(sa->is_keypair());  // a handshake until make_keypair
  EXPECT_EQ(t.keypair_of(*sa), nullptr);
  EXPECT_EQ(t.size(), 2U);
  t.remove(a);
  EXPECT_EQ(t.find(a), nullptr);
  EXPECT_EQ(t.find(b), sb);
  EXPECT_EQ(t.size(), 1U);
  t.remove(a);  // absent: no-op
  EXPECT_EQ(t.size(), 1U);
}

TEST(IndexTable, MakeKeypairFillsTheReceiveLine) {
  FakeObjects obj(1);
  IndexTable t(16);
  std::uint32_t index = 0;
  IndexSlot* s = t.insert(obj.peer(0), index);
  ASSERT_NE(s, nullptr);
  const Nanos birth = 1000 * kSecond;
  const crypto::SecretKey key = key_of_byte(7);
  EXPECT_EQ(t.make_keypair(index ^ 0x100U, obj.keypair(0), key, birth, true), nullptr);  // not a live index
  ASSERT_EQ(t.make_keypair(index, obj.keypair(0), key, birth, true), s);  // the line is the slot
  EXPECT_TRUE(s->is_keypair());
  EXPECT_TRUE(s->has(IndexSlot::kInitiator));
  EXPECT_FALSE(s->has(IndexSlot::kCurrent));
  EXPECT_FALSE(s->has(IndexSlot::kNext));
  EXPECT_EQ(s->peer(), obj.peer(0));  // the flags do not disturb the pointer
  EXPECT_TRUE(crypto::ct_equal(s->recv_key.data(), key.data(), 32));
  EXPECT_EQ(s->replay.next_expected(), 0U);
  EXPECT_EQ(t.keypair_of(*s), obj.keypair(0));
  // Once only: a keypair's slot is not a handshake's any more.
  EXPECT_EQ(t.make_keypair(index, obj.keypair(0), key, birth, true), nullptr);

  s->set(IndexSlot::kCurrent, true);
  EXPECT_TRUE(s->has(IndexSlot::kCurrent));
  EXPECT_EQ(s->peer(), obj.peer(0));
  s->set(IndexSlot::kCurrent, false);
  EXPECT_FALSE(s->has(IndexSlot::kCurrent));

  // Freed: the key is wiped in place (the slot array stays where it is).
  t.remove(index);
  EXPECT_TRUE(s->recv_key.is_zero());
  EXPECT_EQ(s->index, 0U);
  EXPECT_EQ(s->peer_bits, 0U);
  EXPECT_EQ(t.find(index), nullptr);
}

TEST(IndexTable, ExpiryNeverLateAtMostOneTickEarly) {
  FakeObjects obj(1);
  IndexTable t(16);
  // Births around the tick counter's wrap (2^56 ns) too: serial arithmetic.
  for (const Nanos birth : {Nanos{1000} * kSecond, (Nanos{1} << 56) - 100 * kSecond,
                            (Nanos{1} << 56) - 170 * kSecond, Nanos{3} << 58}) {
    SCOPED_TRACE(birth);
    std::uint32_t index = 0;
    IndexSlot* s = t.insert(obj.peer(0), index);
    ASSERT_NE(s, nullptr);
    ASSERT_EQ(t.make_keypair(index, obj.keypair(0), key_of_byte(1), birth, false), s);
    EXPECT_FALSE(s->expired(birth));
    EXPECT_FALSE(s->expired(birth + kRejectAfterTime - 2 * kTick));
    EXPECT_TRUE(s->expired(birth + kRejectAfterTime));
    EXPECT_TRUE(s->expired(birth + kRejectAfterTime + kSecond));
    EXPECT_TRUE(s->expired(birth + 1000 * kRejectAfterTime));
    // The last-minute rekey's age, to within a tick.
    const Nanos lastminute = kRejectAfterTime - kKeepaliveTimeout - kRekeyTimeout;
    EXPECT_FALSE(s->older_than(birth + lastminute - 2 * kTick, lastminute));
    EXPECT_TRUE(s->older_than(birth + lastminute + 2 * kTick, lastminute));
    EXPECT_FALSE(s->older_than(birth, lastminute));
    t.remove(index);
  }
}

TEST(IndexTable, FullTableRefusesAndFreedSlotsComeBackLast) {
  FakeObjects obj(16);
  IndexTable t(16);
  std::vector<std::uint32_t> idx(16);
  std::unordered_set<const IndexSlot*> slots;
  for (std::size_t i = 0; i < 16; ++i) {
    IndexSlot* s = t.insert(obj.peer(i), idx[i]);
    ASSERT_NE(s, nullptr) << i;
    EXPECT_TRUE(slots.insert(s).second) << "slot handed out twice";
  }
  std::uint32_t extra = 12345;
  EXPECT_EQ(t.insert(obj.peer(0), extra), nullptr);
  EXPECT_EQ(extra, 12345U);  // untouched on failure
  EXPECT_EQ(t.size(), 16U);

  // Freed in the order 3, 9: handed out again in that order.
  IndexSlot* s3 = t.find(idx[3]);
  IndexSlot* s9 = t.find(idx[9]);
  t.remove(idx[3]);
  t.remove(idx[9]);
  std::uint32_t n1 = 0, n2 = 0;
  EXPECT_EQ(t.insert(obj.peer(0), n1), s3);
  EXPECT_EQ(t.insert(obj.peer(0), n2), s9);
  // A message for the old session does not find the new one (the bits
  // above the slot number were drawn again).
  if (n1 != idx[3]) {
    EXPECT_EQ(t.find(idx[3]), nullptr);
  }
  if (n2 != idx[9]) {
    EXPECT_EQ(t.find(idx[9]), nullptr);
  }
}

TEST(IndexTable, AFreedSlotWaitsForEveryOtherFreeSlot) {
  FakeObjects obj(1);
  IndexTable t(16);
  std::unordered_set<const IndexSlot*> seen;
  // One live entry at a time: each insert takes the next free slot, so 16
  // inserts visit all 16 slots before any comes back.
  for (int i = 0; i < 16; ++i) {
    std::uint32_t index = 0;
    IndexSlot* s = t.insert(obj.peer(0), index);
    ASSERT_NE(s, nullptr);
    EXPECT_TRUE(seen.insert(s).second) << "slot reused after " << i << " inserts";
    t.remove(index);
  }
  EXPECT_EQ(seen.size(), 16U);
}

TEST(IndexTable, IndexZeroIsNeverUsed) {
  FakeObjects obj(1);
  IndexTable t(16);
  EXPECT_EQ(t.find(0), nullptr);
  for (int i = 0; i < 2000; ++i) {
    std::uint32_t index = 0;
    ASSERT_NE(t.insert(obj.peer(0), index), nullptr);
    EXPECT_NE(index, 0U);
    EXPECT_EQ(t.find(0), nullptr);  // slot 0 live or not
    t.remove(index);
  }
}

TEST(IndexTable, TaggedIndicesCarryTheOwnerBits) {
  FakeObjects obj(1);
  IndexTable t(4000);
  EXPECT_FALSE(t.set_tag(0xFFU, 1));  // the slot number's bits: refused
  ASSERT_TRUE(t.set_tag(0xe0000000u, 0x40000000u));
  std::uint32_t ored = 0, anded = ~0u;
  for (int i = 0; i < 3000; ++i) {
    std::uint32_t idx = 0;
    ASSERT_NE(t.insert(obj.peer(0), idx), nullptr);
    EXPECT_EQ(idx & 0xe0000000u, 0x40000000u);
    ored |= idx;
    anded &= idx;
  }
  // Every untagged bit took both values (slot number and random bits).
  EXPECT_EQ((ored ^ anded) & ~0xe0000000u, ~0xe0000000u);
}

// Random inserts, keypair conversions and removals with the table near
// full, against a map: every live index finds its slot with the right
// contents, every removed one finds nothing.
TEST(IndexTable, DifferentialAgainstUnorderedMap) {
  for (const std::size_t cap : {std::size_t{16}, std::size_t{1024}, std::size_t{4096}}) {
    SCOPED_TRACE(cap);
    FakeObjects obj(cap);
    IndexTable t(cap);
    std::mt19937_64 rng(cap);
    struct Want {
      Peer* peer;
      Keypair* keypair;  // nullptr: a handshake
    };
    std::unordered_map<std::uint32_t, Want> ref;
    std::vector<std::uint32_t> live, removed;
    for (std::size_t step = 0; step < 20 * cap; ++step) {
      const unsigned op = static_cast<unsigned>(rng() % 3);
      if (op == 0 || live.empty()) {
        std::uint32_t index = 0;
        const std::size_t who = rng() % cap;
        IndexSlot* s = t.insert(obj.peer(who), index);
        if (live.size() == t.capacity()) {
          EXPECT_EQ(s, nullptr);
          continue;
        }
        ASSERT_NE(s, nullptr);
        ASSERT_EQ(ref.count(index), 0U) << "index handed out twice";
        ref[index] = Want{obj.peer(who), nullptr};
        live.push_back(index);
      } else if (op == 1) {
        const std::uint32_t index = live[rng() % live.size()];
        Want& w = ref[index];
        const bool ok = t.make_keypair(index, obj.keypair(rng() % cap), key_of_byte(1), kSecond, false) != nullptr;
        EXPECT_EQ(ok, w.keypair == nullptr);
        if (ok) w.keypair = t.keypair_of(*t.find(index));
      } else {
        const std::size_t at = rng() % live.size();
        const std::uint32_t index = live[at];
        t.remove(index);
        ref.erase(index);
        live[at] = live.back();
        live.pop_back();
        removed.push_back(index);
      }
    }
    EXPECT_EQ(t.size(), ref.size());
    for (const auto& [index, w] : ref) {
      const IndexSlot* s = t.find(index);
      ASSERT_NE(s, nullptr) << index;
      EXPECT_EQ(s->index, index);
      EXPECT_EQ(s->peer(), w.peer);
      EXPECT_EQ(s->is_keypair(), w.keypair != nullptr);
      EXPECT_EQ(t.keypair_of(*s), w.keypair);
    }
    for (std::uint32_t index : removed) {
      if (ref.count(index) == 0) {
        EXPECT_EQ(t.find(index), nullptr) << index;
      }
    }
  }
}

TEST(IndexTable, HundredThousandPeers) {
  constexpr std::size_t kEntries = 400016;  // what a Device of 100 000 peers asks for
  FakeObjects obj(1);
  IndexTable t(kEntries);
  std::vector<std::uint32_t> idx(kEntries);
  for (std::size_t i = 0; i < kEntries; ++i) ASSERT_NE(t.insert(obj.peer(0), idx[i]), nullptr) << i;
  std::unordered_set<std::uint32_t> unique(idx.begin(), idx.end());
  EXPECT_EQ(unique.size(), kEntries);
  for (std::size_t i = 0; i < kEntries; ++i) ASSERT_NE(t.find(idx[i]), nullptr) << i;
  for (std::size_t i = 0; i < kEntries; i += 2) t.remove(idx[i]);
  for (std::size_t i = 0; i < kEntries; ++i) EXPECT_EQ(t.find(idx[i]) != nullptr, i % 2 == 1) << i;
  EXPECT_EQ(t.size(), kEntries / 2);
}

}  // namespace
}  // namespace moongate::wg
