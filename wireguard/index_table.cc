// Receiver-index table: fixed-size open addressing with linear probing and tombstones.
#include "wireguard/index_table.h"

#include <algorithm>
#include <bit>
#include <limits>
#include <stdexcept>
#include <utility>

#include "crypto/secret.h"

namespace moongate::wg {

namespace {

using Kind = IndexEntry::Kind;

constexpr std::size_t kMinSlots = 16;
// A random 32-bit index collides with a live one with probability
// live / 2^32; needing this many draws means the CSPRNG is broken, and
// failing the insert beats spinning on the packet path.
constexpr int kMaxIndexDraws = 64;

constexpr bool is_entry_kind(Kind k) noexcept {
  return k == Kind::kHandshake || k == Kind::kKeypair;
}
constexpr bool is_live(Kind k) noexcept { return is_entry_kind(k); }

}  // namespace

IndexTable::IndexTable(std::size_t max_entries) : max_entries_(max_entries) {
  if (max_entries > std::numeric_limits<std::size_t>::max() / 4)
    throw std::length_error("IndexTable: capacity too large");
  const std::size_t slots = std::bit_ceil(std::max(kMinSlots, 2 * max_entries));
  slots_ = std::make_unique<IndexEntry[]>(slots);
  pending_ = std::make_unique<std::uint64_t[]>((slots + 63) / 64);
  mask_ = slots - 1;
}

IndexTable::~IndexTable() = default;

// Indices are uniformly random, so their low bits already spread evenly.
std::size_t IndexTable::slot_of(std::uint32_t index) const noexcept {
  return static_cast<std::size_t>(index) & mask_;
}

std::size_t IndexTable::find_slot(std::uint32_t index) const noexcept {
  if (index == 0) return kNotFound;
  // Terminates: live + tombstones <= 3/4 of the slots, so a free slot exists.
  for (std::size_t i = slot_of(index);; i = (i + 1) & mask_) {
    const IndexEntry& s = slots_[i];
    if (s.kind == Kind::kFree) return kNotFound;
    if (is_live(s.kind) && s.index == index) return i;
  }
}

bool IndexTable::insert(IndexEntry::Kind kind, Peer* peer, Keypair* keypair,
                        std::uint32_t& index_out) noexcept {
  if (!is_entry_kind(kind) || live_ >= max_entries_) return false;

  for (int draw = 0; draw < kMaxIndexDraws; ++draw) {
    std::uint32_t index = 0;
    crypto::random_bytes(&index, sizeof index);
    if (index == 0) continue;

    // Walk the whole chain to rule out a duplicate, remembering the first
    // reusable slot so tombstones get recycled.
    std::size_t target = kNotFound;
    bool taken = false;
    for (std::size_t i = slot_of(index);; i = (i + 1) & mask_) {
      const IndexEntry& s = slots_[i];
      if (s.kind == Kind::kFree) {
        if (target == kNotFound) target = i;
        break;
      }
      if (s.kind == Kind::kTombstone) {
        if (target == kNotFound) target = i;
        continue;
      }
      if (s.index == index) {
        taken = true;
        break;
      }
    }
    if (taken) continue;

    if (slots_[target].kind == Kind::kTombstone) --tombstones_;
    IndexEntry& e = slots_[target];
    e.index = index;
    e.kind = kind;
    e.peer = peer;
    e.keypair = keypair;
    ++live_;
    index_out = index;
    return true;
  }
  return false;
}

bool IndexTable::replace(std::uint32_t index, IndexEntry::Kind kind, Peer* peer,
                         Keypair* keypair) noexcept {
  if (!is_entry_kind(kind)) return false;
  const std::size_t i = find_slot(index);
  if (i == kNotFound) return false;
  IndexEntry& e = slots_[i];
  e.kind = kind;
  e.peer = peer;
  e.keypair = keypair;
  return true;
}

const IndexEntry* IndexTable::find(std::uint32_t index) const noexcept {
  const std::size_t i = find_slot(index);
  return i == kNotFound ? nullptr : &slots_[i];
}

void IndexTable::remove(std::uint32_t index) noexcept {
  const std::size_t i = find_slot(index);
  if (i == kNotFound) return;
  --live_;
  slots_[i] = IndexEntry{};
  if (slots_[(i + 1) & mask_].kind == Kind::kFree) {
    // No probe chain continues past i, so neither i nor the tombstones just
    // before it are needed to keep anything reachable: free them instead
    // of leaving tombstones behind. Stops at the latest at i (now free).
    for (std::size_t j = (i - 1) & mask_; slots_[j].kind == Kind::kTombstone; j = (j - 1) & mask_) {
      slots_[j] = IndexEntry{};
      --tombstones_;
    }
    return;
  }
  slots_[i].kind = Kind::kTombstone;
  ++tombstones_;
  rebuild_if_needed();
}

// In-place rehash (the DELETED/EMPTY scheme of Swiss tables, on linear
// probing): tombstones become free, every live entry is marked pending,
// then each pending entry is moved to the first free-or-pending slot of its
// probe sequence, swapping with a pending occupant. Slots that hold a placed
// entry never change again, so chains built so far stay intact, and each
// step places one entry: O(slots) overall with no allocation.
void IndexTable::rebuild_if_needed() noexcept {
  const std::size_t slots = mask_ + 1;
  if (tombstones_ * 4 <= slots) return;

  auto pending = [this](std::size_t i) { return (pending_[i / 64] >> (i % 64)) & 1U; };
  auto set_pending = [this](std::size_t i) { pending_[i / 64] |= std::uint64_t{1} << (i % 64); };
  auto clear_pending = [this](std::size_t i) {
    pending_[i / 64] &= ~(std::uint64_t{1} << (i % 64));
  };

  for (std::size_t i = 0; i < slots; ++i) {
    if (slots_[i].kind == Kind::kTombstone)
      slots_[i] = IndexEntry{};
    else if (slots_[i].kind != Kind::kFree)
      set_pending(i);
  }
  tombstones_ = 0;

  for (std::size_t i = 0; i < slots; ++i) {
    while (pending(i)) {
      std::size_t j = slot_of(slots_[i].index);
      while (slots_[j].kind != Kind::kFree && !pending(j)) j = (j + 1) & mask_;
      if (j == i) {
        clear_pending(i);
      } else if (slots_[j].kind == Kind::kFree) {
        slots_[j] = slots_[i];
        slots_[i] = IndexEntry{};
        clear_pending(i);
      } else {
        // j holds another pending entry: it takes i's place and is
        // processed next round of this loop.
        std::swap(slots_[i], slots_[j]);
        clear_pending(j);
      }
    }
  }
}

}  // namespace moongate::wg
