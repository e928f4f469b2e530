// Receiver-index table: the 32-bit index in every handshake response,
// cookie reply and data message names one of our handshakes or keypairs.
//
// Indices are chosen at random by us (they are ours to receive on), so they
// are unpredictable to an attacker and spread evenly: the table is open
// addressing on the index's low bits with linear probing, allocated once
// for the configured capacity (4 entries per peer: a handshake and the
// previous/current/next keypairs) and never resized, so lookups on the
// packet path touch one or two cache lines and never allocate.
//
// Index 0 is never handed out: a zeroed index field elsewhere can then mean
// "none", and find(0) is always nullptr.
//
// Removal frees the slot and shifts the rest of its cluster back
// (OpenTable's backward-shift deletion): no tombstones, so no periodic
// rehash, and every insert, lookup and removal costs the length of one short
// cluster. The lcore that owns the table never stalls on it.
#pragma once

#include <cstddef>
#include <cstdint>

#include "wireguard/open_table.h"

namespace moongate::wg {

class Peer;
struct Keypair;

// 32 bytes (24 used), so slots never straddle two cache lines (at 24 a
// quarter of them did): a data message's look-up is one line.
struct alignas(32) IndexEntry {
  // kFree is the slot state of an empty slot, not an entry kind.
  enum class Kind : std::uint8_t { kFree = 0, kHandshake, kKeypair };
  std::uint32_t index = 0;
  Kind kind = Kind::kFree;
  Peer* peer = nullptr;
  Keypair* keypair = nullptr;  // for kKeypair
};
static_assert(sizeof(IndexEntry) == 32, "an index slot is a power-of-two fraction of a cache line");

class IndexTable {
 public:
  // Room for `max_entries` live entries; the slot array is the next power of
  // two >= 2 * max_entries so probe sequences stay short.
  explicit IndexTable(std::size_t max_entries);
  ~IndexTable();
  IndexTable(const IndexTable&) = delete;
  IndexTable& operator=(const IndexTable&) = delete;

  // Picks a fresh random index not in use and records the entry. Returns
  // false when the table is full (or `kind` is kFree, which is a slot state
  // rather than an entry kind).
  // The table never dereferences `peer` or `keypair`.
  [[nodiscard]] bool insert(IndexEntry::Kind kind, Peer* peer, Keypair* keypair,
                            std::uint32_t& index_out) noexcept;

  // Re-points an existing index (a handshake whose index becomes a keypair's
  // keeps the index, as the peer will address data to it). False if absent
  // (or `kind` is kFree).
  bool replace(std::uint32_t index, IndexEntry::Kind kind, Peer* peer, Keypair* keypair) noexcept;

  // nullptr when absent. Inline: called for every data packet. The pointer
  // is valid until the next remove() (which may move entries), so hold on
  // to what it points to, not to the pointer.
  const IndexEntry* find(std::uint32_t index) const noexcept {
    return index == 0 ? nullptr : table_.find(index);
  }

  // Starts loading the cache line of `index`'s home slot, where find()
  // starts. For a caller that looks up a burst of indices (an rx burst of
  // 32 data messages): prefetch all of them first, then find() each, so the
  // cache misses on a large table overlap instead of queueing. Only a hint:
  // cheap (a mask and a prefetch instruction; nothing waits on the slot),
  // harmless for absent indices or index 0, never needed for correctness.
  void prefetch(std::uint32_t index) const noexcept { table_.prefetch(index); }

  // Removes the entry; no-op when absent.
  void remove(std::uint32_t index) noexcept;

  // Fixes the index bits under `mask` to `value` in every index handed out
  // from now on. A multi-lcore host tags each lcore's device with its number
  // in the high bits, so any lcore can tell from a message's receiver index
  // which lcore owns the session without a shared lookup. The remaining
  // bits stay random (the table hashes on the low bits).
  void set_tag(std::uint32_t mask, std::uint32_t value) noexcept {
    tag_mask_ = mask;
    tag_value_ = value & mask;
  }

  std::size_t size() const noexcept { return table_.size(); }
  std::size_t capacity() const noexcept { return table_.capacity(); }
  // Diagnostics (tests, stats): slot array size, and how many slots the
  // latest insert or remove examined (see OpenTable::last_slots_touched;
  // for insert, the last index drawn).
  std::size_t slot_count() const noexcept { return table_.slot_count(); }
  std::size_t last_slots_touched() const noexcept { return table_.last_slots_touched(); }

 private:
  // The entry is the slot; its kind doubles as the slot state.
  struct Traits {
    using Key = std::uint32_t;
    static constexpr bool is_free(const IndexEntry& e) noexcept {
      return e.kind == IndexEntry::Kind::kFree;
    }
    static constexpr std::uint32_t key_of(const IndexEntry& e) noexcept { return e.index; }
    static constexpr bool same_key(std::uint32_t a, std::uint32_t b) noexcept { return a == b; }
    // Indices are uniformly random, so their low bits already spread evenly.
    constexpr std::size_t hash(std::uint32_t index) const noexcept { return index; }
  };

  using Table = OpenTable<IndexEntry, Traits>;
  Table table_;
  std::uint32_t tag_mask_ = 0;
  std::uint32_t tag_value_ = 0;
};

}  // namespace moongate::wg
