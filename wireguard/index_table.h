// Receiver-index table: the 32-bit index in every handshake response,
// cookie reply and data message names one of our handshakes or keypairs.
//
// The index names its slot directly: its low bits are the slot's number,
// the bits above are drawn at random each time the slot is handed out (and
// the caller's tag, set_tag, fixes the top ones). A look-up is a mask and
// one compare, with no probing. The slot of a keypair is that keypair's
// receive line: the receive key, the replay window's head, the expiry and
// the peer sit in the one cache line the index names, so receiving a data
// message reads one line of per-session state before the AEAD, not two
// (a hash slot, then the keypair's line). At 100 000 peers every such line
// is a cache miss; docs/perf.md measures what one line per message costs.
//
// Slots are handed out from a FIFO of free slot numbers, so a freed slot is
// reused as late as possible; with the random bits besides, a message
// addressed to a session that ended does not find its successor (and if it
// did, the successor's key would not open it). Sized once for the
// configured capacity (4 slots per peer: a handshake and the previous,
// current and next keypairs), never resized; nothing allocates after
// construction.
//
// Index 0 is never handed out: a zeroed index field elsewhere can then mean
// "none", and find(0) is always nullptr.
#pragma once

#include <cstddef>
#include <cstdint>

#include "crypto/secret.h"
#include "wireguard/constants.h"
#include "wireguard/huge_pages.h"
#include "wireguard/prefetch.h"
#include "wireguard/replay.h"

namespace moongate::wg {

class Peer;
struct Keypair;

// One slot, one cache line. For a keypair it is the receive line: all a
// data message needs before and after its AEAD, besides the peer's lines.
// For a handshake only the index and the peer are used.
struct alignas(64) IndexSlot {
  crypto::SecretKey recv_key;  // keypair slots; wiped when the slot is freed
  ReplayHead replay;           // the window's head; its ring is the keypair's
  // The peer, with the flags below in the low bits (a Peer is 64-byte
  // aligned): the line has no room for another word.
  std::uintptr_t peer_bits = 0;
  std::uint32_t index = 0;  // 0: the slot is free
  // When the keypair stops being accepted (REJECT_AFTER_TIME after its
  // birth), in ticks of kTickShift nanoseconds, compared in serial-number
  // arithmetic (the key is erased long before half the range: ~1.1 years).
  std::uint32_t reject_tick = 0;

  // Flags in peer_bits.
  static constexpr std::uintptr_t kKeypair = 1;    // a keypair, not a handshake
  static constexpr std::uintptr_t kCurrent = 2;    // the peer's current keypair
  static constexpr std::uintptr_t kNext = 4;       // the peer's unconfirmed next keypair
  static constexpr std::uintptr_t kInitiator = 8;  // we initiated its handshake
  static constexpr std::uintptr_t kFlagMask = 63;
  static constexpr unsigned kTickShift = 24;  // 16.8 ms

  Peer* peer() const noexcept { return reinterpret_cast<Peer*>(peer_bits & ~kFlagMask); }
  bool has(std::uintptr_t flag) const noexcept { return (peer_bits & flag) != 0; }
  void set(std::uintptr_t flag, bool on) noexcept { peer_bits = on ? peer_bits | flag : peer_bits & ~flag; }
  bool is_keypair() const noexcept { return has(kKeypair); }

  static std::uint32_t tick_of(Nanos t) noexcept { return static_cast<std::uint32_t>(t >> kTickShift); }
  // Past REJECT_AFTER_TIME: never accept under it. The tick is rounded
  // down, so a key is refused at most one tick early, never late.
  bool expired(Nanos now) const noexcept {
    return static_cast<std::int32_t>(tick_of(now) - reject_tick) >= 0;
  }
  // At least `age` old (the last-minute rekey), to within a tick.
  bool older_than(Nanos now, Nanos age) const noexcept {
    const std::uint32_t born = reject_tick - tick_of(kRejectAfterTime);
    return static_cast<std::int32_t>(tick_of(now) - born) >= static_cast<std::int32_t>(tick_of(age));
  }

  // Asks the cache for the line (a hint).
  void prefetch() const noexcept { prefetch_line(this); }
};
static_assert(sizeof(IndexSlot) == 64, "a slot is one cache line");

class IndexTable {
 public:
  // Room for `max_entries` live entries: the slot array is the next power
  // of two >= max_entries (at least 16).
  explicit IndexTable(std::size_t max_entries);
  ~IndexTable();
  IndexTable(const IndexTable&) = delete;
  IndexTable& operator=(const IndexTable&) = delete;

  // Takes a free slot for a handshake of `peer` and draws its index.
  // nullptr when the table is full. The table never dereferences `peer`.
  IndexSlot* insert(Peer* peer, std::uint32_t& index_out) noexcept;

  // Turns the handshake slot of `index` into the receive line of `keypair`
  // (its handshake keeps the index, as the peer will address data to it):
  // the receive key, a fresh replay window, the expiry from `birth`, and
  // the initiator flag. Returns that line; nullptr if `index` is not a
  // live handshake slot.
  IndexSlot* make_keypair(std::uint32_t index, Keypair* keypair, const crypto::SecretKey& recv_key, Nanos birth,
                    bool initiator) noexcept;

  // nullptr when absent. Inline: called for every data packet. The slot
  // stays where it is until remove().
  IndexSlot* find(std::uint32_t index) const noexcept {
    IndexSlot* s = &slots_[index & slot_mask_];
    return s->index == index && index != 0 ? s : nullptr;
  }

  // Starts loading `index`'s slot. For a caller that looks up a burst of
  // indices: prefetch all of them first, then find() each, so the cache
  // misses on a large table overlap instead of queueing. Only a hint.
  void prefetch(std::uint32_t index) const noexcept { slots_[index & slot_mask_].prefetch(); }

  // The keypair a keypair slot belongs to (its replay ring, its send
  // side). Off the receive line: read only when the ring is needed.
  Keypair* keypair_of(const IndexSlot& s) const noexcept { return owners_[slot_number(s)]; }

  // Frees the slot (its key wiped); no-op when absent.
  void remove(std::uint32_t index) noexcept;

  // Fixes the index bits under `mask` to `value` in every index handed out
  // from now on. A multi-lcore host tags each lcore's device with its number
  // in the high bits, so any lcore can tell from a message's receiver index
  // which lcore owns the session without a shared lookup. False (and no
  // change) when the mask overlaps the slot number's bits: the table is too
  // large for that many tag bits.
  [[nodiscard]] bool set_tag(std::uint32_t mask, std::uint32_t value) noexcept;

  std::size_t size() const noexcept { return slot_count_ - free_count_; }
  std::size_t capacity() const noexcept { return slot_count_; }
  std::size_t slot_count() const noexcept { return slot_count_; }

 private:
  std::size_t slot_number(const IndexSlot& s) const noexcept {
    return static_cast<std::size_t>(&s - slots_.get());
  }

  std::size_t slot_count_;
  std::uint32_t slot_mask_;
  HugeArray<IndexSlot> slots_;
  HugeArray<Keypair*> owners_;       // per slot: the keypair, for keypair slots
  HugeArray<std::uint32_t> free_;    // FIFO ring of free slot numbers
  std::size_t free_head_ = 0;        // next to hand out
  std::size_t free_count_ = 0;
  std::uint32_t tag_mask_ = 0;
  std::uint32_t tag_value_ = 0;
};

}  // namespace moongate::wg
