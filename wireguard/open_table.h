// OpenTable: the fixed-size open-addressing hash table behind IndexTable
// and PeerTable. Linear probing over a slot array sized to a power of two,
// allocated once for the configured capacity and never resized; removal
// leaves tombstones, purged by an in-place rehash (using a pending-bit array
// allocated with the table) once they exceed a quarter of the slots. No
// operation allocates after construction, and none is virtual: the whole
// table is inline templates, so a lookup compiles to a plain probe loop.
//
// The slot type is the caller's entry itself (key, payload and slot state
// together), so find() hands out a pointer into the slot array. What the
// table needs to know about a slot comes from Traits (all noexcept):
//
//   using Key = ...;
//   static constexpr bool is_free(const Slot&);  // Slot{} must be free
//   static constexpr bool is_live(const Slot&);  // neither = tombstone
//   static void make_tombstone(Slot&);           // applied to a Slot{}
//   static Key or const Key& key_of(const Slot&);  // of a live slot
//   static bool same_key(const Key&, const Key&);
//   std::size_t hash(const Key&) const;  // may use per-table state (a seed)
//
// A Traits object is stored in the table (taking no room when empty), so a
// keyed hash can carry its key.
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

namespace moongate::wg {

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
                      std::is_nothrow_copy_assignable_v<Slot> && std::is_nothrow_swappable_v<Slot>,
                  "slots are moved around by noexcept operations");
    static_assert(Traits::is_free(Slot{}), "a value-initialized Slot must be a free slot");
    if (max_entries > std::numeric_limits<std::size_t>::max() / 4)
      throw std::length_error(std::string(owner) + ": capacity too large");
    const std::size_t slots = std::bit_ceil(std::max(kMinSlots, 2 * max_entries));
    // At 100 000 peers the index table is ~24 MB probed at random by every
    // data message: on huge pages when that large (huge_pages.h).
    slots_ = HugeArray<Slot>(slots);
    pending_ = std::make_unique<std::uint64_t[]>((slots + 63) / 64);
    mask_ = slots - 1;
  }
  OpenTable(const OpenTable&) = delete;
  OpenTable& operator=(const OpenTable&) = delete;

  // The live slot holding `key`, or nullptr. Through the non-const overload
  // the caller may change a slot's payload, but not its key nor make it
  // anything other than live.
  const Slot* find(const Key& key) const noexcept {
    // Terminates: live + tombstones <= 3/4 of the slots, so a free slot exists.
    for (std::size_t i = home(key);; i = (i + 1) & mask_) {
      const Slot& s = slots_[i];
      if (Traits::is_free(s)) return nullptr;
      if (Traits::is_live(s) && Traits::same_key(Traits::key_of(s), key)) return &s;
    }
  }
  Slot* find(const Key& key) noexcept {
    return const_cast<Slot*>(std::as_const(*this).find(key));
  }

  // A cache hint for find(key): the home slot (both lines, when a slot
  // straddles two), where the probe starts and nearly always ends.
  void prefetch(const Key& key) const noexcept {
    const Slot* s = &slots_[home(key)];
    __builtin_prefetch(s);
    __builtin_prefetch(reinterpret_cast<const char*>(s + 1) - 1);
  }

  // Stores `entry`, which must be live, under its key: kDuplicate when the
  // key is already present, kFull when size() == capacity().
  InsertResult insert(const Slot& entry) noexcept {
    const Key& key = Traits::key_of(entry);
    // Walk the whole chain to rule out a duplicate, remembering the first
    // reusable slot so tombstones get recycled.
    std::size_t target = kNotFound;
    for (std::size_t i = home(key);; i = (i + 1) & mask_) {
      const Slot& s = slots_[i];
      if (Traits::is_free(s)) {
        if (target == kNotFound) target = i;
        break;
      }
      if (!Traits::is_live(s)) {
        if (target == kNotFound) target = i;
        continue;
      }
      if (Traits::same_key(Traits::key_of(s), key)) return InsertResult::kDuplicate;
    }
    if (live_ >= max_entries_) return InsertResult::kFull;

    if (is_tombstone(slots_[target])) --tombstones_;
    slots_[target] = entry;
    ++live_;
    return InsertResult::kInserted;
  }

  // Removes a live slot obtained from find().
  void erase(const Slot& slot) noexcept {
    const auto i = static_cast<std::size_t>(&slot - slots_.get());
    --live_;
    slots_[i] = Slot{};
    if (Traits::is_free(slots_[(i + 1) & mask_])) {
      // No probe chain continues past i, so neither i nor the tombstones just
      // before it are needed to keep anything reachable: free them instead
      // of leaving tombstones behind. Stops at the latest at i (now free).
      for (std::size_t j = (i - 1) & mask_; is_tombstone(slots_[j]); j = (j - 1) & mask_) {
        slots_[j] = Slot{};
        --tombstones_;
      }
      return;
    }
    Traits::make_tombstone(slots_[i]);
    ++tombstones_;
    rebuild_if_needed();
  }

  // Visits every live slot; f(const Slot&). f must not insert or erase: an
  // erase may rehash under the iteration.
  template <class F>
  void for_each(F&& f) const {
    for (std::size_t i = 0; i <= mask_; ++i)
      if (Traits::is_live(slots_[i])) f(slots_[i]);
  }

  std::size_t size() const noexcept { return live_; }
  std::size_t capacity() const noexcept { return max_entries_; }
  std::size_t slot_count() const noexcept { return mask_ + 1; }
  std::size_t tombstones() const noexcept { return tombstones_; }

 private:
  static constexpr std::size_t kMinSlots = 16;
  static constexpr std::size_t kNotFound = ~std::size_t{0};

  static bool is_tombstone(const Slot& s) noexcept {
    return !Traits::is_free(s) && !Traits::is_live(s);
  }
  std::size_t home(const Key& key) const noexcept { return traits_.hash(key) & mask_; }

  bool pending(std::size_t i) const noexcept { return ((pending_[i / 64] >> (i % 64)) & 1U) != 0; }
  void set_pending(std::size_t i) noexcept { pending_[i / 64] |= std::uint64_t{1} << (i % 64); }
  void clear_pending(std::size_t i) noexcept {
    pending_[i / 64] &= ~(std::uint64_t{1} << (i % 64));
  }

  // In-place rehash (the DELETED/EMPTY scheme of Swiss tables, on linear
  // probing): tombstones become free, every live entry is marked pending,
  // then each pending entry is moved to the first free-or-pending slot of its
  // probe sequence, swapping with a pending occupant. Slots that hold a placed
  // entry never change again, so chains built so far stay intact, and each
  // step places one entry: O(slots) hashes overall with no allocation.
  void rebuild_if_needed() noexcept {
    const std::size_t slots = mask_ + 1;
    if (tombstones_ * 4 <= slots) return;

    for (std::size_t i = 0; i < slots; ++i) {
      if (Traits::is_live(slots_[i]))
        set_pending(i);
      else if (!Traits::is_free(slots_[i]))
        slots_[i] = Slot{};
    }
    tombstones_ = 0;

    for (std::size_t i = 0; i < slots; ++i) {
      while (pending(i)) {
        std::size_t j = home(Traits::key_of(slots_[i]));
        while (!Traits::is_free(slots_[j]) && !pending(j)) j = (j + 1) & mask_;
        if (j == i) {
          clear_pending(i);
        } else if (Traits::is_free(slots_[j])) {
          slots_[j] = slots_[i];
          slots_[i] = Slot{};
          clear_pending(i);
        } else {
          // j holds another pending entry: it takes i's place and is
          // processed next round of this loop.
          using std::swap;
          swap(slots_[i], slots_[j]);
          clear_pending(j);
        }
      }
    }
  }

  HugeArray<Slot> slots_;
  std::unique_ptr<std::uint64_t[]> pending_;  // rebuild scratch: 1 bit per slot
  std::size_t mask_ = 0;
  std::size_t max_entries_ = 0;
  std::size_t live_ = 0;
  std::size_t tombstones_ = 0;
  [[no_unique_address]] Traits traits_;
};

}  // namespace moongate::wg
