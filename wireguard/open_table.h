// OpenTable: the fixed-size open-addressing hash table behind PeerTable
// (and the data plane's flow tables). Linear probing over a slot array sized to a power of two,
// allocated once for the configured capacity and never resized:
//
//   find    probe from the key's home slot until the key or a free slot
//   insert  the same walk; the entry goes into the free slot that ends it
//   erase   free the slot, then backward-shift: walk the rest of the cluster
//           (the run of occupied slots) and move back into the hole every
//           entry whose probe from its home would otherwise cross it, until
//           a free slot ends the cluster
//
// A slot is either free or live: there are no tombstones, so nothing ever
// has to purge them and no operation touches more than the cluster it works
// in (plus the free slot ending it). At most half the slots are live, so
// clusters stay short and every operation is a few slots, with no periodic
// pause on the lcore that owns the table. No operation allocates after
// construction, and none is virtual: the whole table is inline templates,
// so a lookup compiles to a plain probe loop.
//
// The slot type is the caller's entry itself (key, payload and slot state
// together), so find() hands out a pointer into the slot array. What the
// table needs to know about a slot comes from Traits (all noexcept):
//
//   using Key = ...;
//   static constexpr bool is_free(const Slot&);    // Slot{} must be free;
//                                                  // any other slot is live
//   static Key or const Key& key_of(const Slot&);  // of a live slot
//   static bool same_key(const Key&, const Key&);
//   std::size_t hash(const Key&) const;  // may use per-table state (a seed)
//
// A Traits object is stored in the table (taking no room when empty), so a
// keyed hash can carry its key. erase() hashes the entries it walks over,
// so a costly hash makes removal cost a hash per entry in the cluster tail.
#pragma once

#include <algorithm>
#include <bit>
#include <cstddef>
#include <cstdint>
#include <limits>
#include <memory>
#include <stdexcept>
#include <string>
#include <type_traits>
#include <utility>

#include "wireguard/huge_pages.h"
#include "wireguard/prefetch.h"

namespace moongate::wg {

// A seeded hash of a 5-tuple for Traits::hash of the flow tables (the NAT's
// and the policy's): `addrs` packs both addresses, `ports` both ports and
// the protocol. The murmur3/splitmix finaliser on each half, with a secret
// seed folded in first, so remote hosts cannot predict where their tuples
// land.
constexpr std::uint64_t mix64(std::uint64_t x) noexcept {
  x ^= x >> 33;
  x *= 0xff51afd7ed558ccdULL;
  x ^= x >> 33;
  x *= 0xc4ceb9fe1a85ec53ULL;
  x ^= x >> 33;
  return x;
}
constexpr std::size_t seeded_tuple_hash(std::uint64_t addrs, std::uint64_t ports, std::uint64_t seed) noexcept {
  return static_cast<std::size_t>(mix64(addrs ^ seed) ^ mix64(ports + seed * 0x9e3779b97f4a7c15ULL));
}

template <class Slot, class Traits>
class OpenTable {
 public:
  using Key = typename Traits::Key;
  enum class InsertResult : std::uint8_t { kInserted, kDuplicate, kFull };

  // Room for `max_entries` live entries; the slot array is the next power of
  // two >= 2 * max_entries (at least 16) so probe sequences stay short.
  // Throws std::length_error, naming `owner`, when that cannot be sized.
  OpenTable(std::size_t max_entries, const char* owner, Traits traits = Traits{})
      : max_entries_(max_entries), traits_(std::move(traits)) {
    // Checked here rather than at class scope: Slot and Traits may be nested
    // in the class that holds this table, and are complete only in its members.
    static_assert(std::is_nothrow_default_constructible_v<Slot> &&
                      std::is_nothrow_copy_assignable_v<Slot>,
                  "slots are moved around by noexcept operations");
    static_assert(Traits::is_free(Slot{}), "a value-initialized Slot must be a free slot");
    if (max_entries > std::numeric_limits<std::size_t>::max() / 4)
      throw std::length_error(std::string(owner) + ": capacity too large");
    const std::size_t slots = std::bit_ceil(std::max(kMinSlots, 2 * max_entries));
    // At 100 000 peers the index table is ~24 MB probed at random by every
    // data message: on huge pages when that large (huge_pages.h).
    slots_ = HugeArray<Slot>(slots);
    mask_ = slots - 1;
  }
  OpenTable(const OpenTable&) = delete;
  OpenTable& operator=(const OpenTable&) = delete;

  // The live slot holding `key`, or nullptr. Through the non-const overload
  // the caller may change a slot's payload, but not its key nor free it.
  // The pointer stays valid until the next erase(), which may move entries.
  const Slot* find(const Key& key) const noexcept {
    // Terminates: live <= max_entries <= half the slots, so a free slot exists.
    for (std::size_t i = home(key);; i = (i + 1) & mask_) {
      const Slot& s = slots_[i];
      if (Traits::is_free(s)) return nullptr;
      if (Traits::same_key(Traits::key_of(s), key)) return &s;
    }
  }
  Slot* find(const Key& key) noexcept {
    return const_cast<Slot*>(std::as_const(*this).find(key));
  }

  // Starts loading `key`'s home slot, where find() begins (both cache
  // lines when a slot straddles two; the probe nearly always ends there): a
  // caller about to look up a burst of keys issues this for all of them
  // first, so the cache misses overlap instead of queueing one by one.
  void prefetch(const Key& key) const noexcept {
    const Slot* s = &slots_[home(key)];
    prefetch_line(s);
    prefetch_line(reinterpret_cast<const char*>(s + 1) - 1);
  }

  // Stores `entry`, which must be live, under its key: kDuplicate when the
  // key is already present, kFull when size() == capacity().
  InsertResult insert(const Slot& entry) noexcept {
    const Key& key = Traits::key_of(entry);
    // The key is in the cluster between its home and the first free slot, if
    // anywhere; that free slot is where it goes otherwise.
    const std::size_t start = home(key);
    std::size_t i = start;
    for (; !Traits::is_free(slots_[i]); i = (i + 1) & mask_) {
      if (Traits::same_key(Traits::key_of(slots_[i]), key)) {
        touched_ = ((i - start) & mask_) + 1;
        return InsertResult::kDuplicate;
      }
    }
    touched_ = ((i - start) & mask_) + 1;
    if (live_ >= max_entries_) return InsertResult::kFull;

    slots_[i] = entry;
    ++live_;
    return InsertResult::kInserted;
  }

  // Removes a live slot obtained from find(). Entries after it in its
  // cluster may move back one or more slots.
  void erase(const Slot& slot) noexcept {
    std::size_t hole = static_cast<std::size_t>(&slot - slots_.get());
    --live_;
    // Every live entry sits at or after its home with no free slot in
    // between (that is what makes find() reach it). Emptying `hole` breaks
    // that for each later entry of the cluster whose home is at or before
    // the hole, cyclically: such an entry moves into the hole, and the slot
    // it left is the new hole. An entry whose home lies after the hole is
    // still reached from its home and stays put. The cluster's end (a free
    // slot) ends the walk: no probe sequence crosses a free slot.
    std::size_t touched = 1;
    for (std::size_t j = (hole + 1) & mask_;; j = (j + 1) & mask_) {
      ++touched;
      const Slot& s = slots_[j];
      if (Traits::is_free(s)) break;
      // Distances going forward (mod the slot count): home -> j and hole -> j.
      // The home is at or before the hole iff it is at least as far from j.
      const std::size_t from_home = (j - home(Traits::key_of(s))) & mask_;
      if (from_home >= ((j - hole) & mask_)) {
        slots_[hole] = s;
        hole = j;
      }
    }
    slots_[hole] = Slot{};
    touched_ = touched;
  }

  // Visits every live slot; f(const Slot&). f must not insert or erase: an
  // erase moves entries back, so the iteration could miss or revisit one.
  template <class F>
  void for_each(F&& f) const {
    for (std::size_t i = 0; i <= mask_; ++i)
      if (!Traits::is_free(slots_[i])) f(slots_[i]);
  }

  std::size_t size() const noexcept { return live_; }
  std::size_t capacity() const noexcept { return max_entries_; }
  std::size_t slot_count() const noexcept { return mask_ + 1; }
  // Diagnostic: how many slots the latest insert() or erase() examined,
  // each counted once (the free slot ending a walk included). insert()
  // walks from the key's home to the first free slot (or the duplicate),
  // erase() from the erased slot to the end of its cluster, so this is at
  // most the length of the cluster the operation worked in, plus one:
  // what tests check to rule out any operation that sweeps the table.
  std::size_t last_slots_touched() const noexcept { return touched_; }

 private:
  static constexpr std::size_t kMinSlots = 16;

  std::size_t home(const Key& key) const noexcept { return traits_.hash(key) & mask_; }

  HugeArray<Slot> slots_;
  std::size_t mask_ = 0;
  std::size_t max_entries_ = 0;
  std::size_t live_ = 0;
  std::size_t touched_ = 0;
  [[no_unique_address]] Traits traits_;
};

}  // namespace moongate::wg
