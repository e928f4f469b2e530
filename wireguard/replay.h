// Anti-replay window for data message counters (RFC 6479 style).
//
// The receiver of a keypair accepts each counter at most once, tolerating
// reordering within the window: a ring of 64-bit blocks indexed by
// counter / 64. A block is cleared as the window slides over it, so
// advancing costs O(blocks skipped) bounded by the ring size, with no
// shifting of the whole bitmap. Single writer: the lcore that owns the peer.
#pragma once

#include <cstdint>

namespace moongate::wg {

// The window's older blocks: 1 KiB a keypair keeps off its receive line.
// ring[b & kRingMask] holds block b's bits for b in [newest - kRingBlocks + 1,
// newest - 1]; the newest block's own slot is stale (the head holds it)
// until the newest block moves on and writes it back.
struct ReplayRing {
  static constexpr std::uint32_t kBlocks = 128;  // 8192 bits
  std::uint64_t blocks[kBlocks] = {};
  void reset() noexcept {
    for (auto& b : blocks) b = 0;
  }
};

// The head: the 16 bytes that live on the receive line (the index slot,
// index_table.h). A sender counts up, so nearly every message falls in the
// newest block: with that block's bits here rather than in the ring, the
// check and the update reach the ring only when the newest block changes
// (every 64 messages in order) or for a message from an older block. At
// 100 000 peers, where every message's receive line is a cache miss, the
// ring is then a line touched once per 64 messages, not per message.
//
// The ring comes from a callable (`ring()` returns ReplayRing&), called
// only on those paths: its owner may be a cache miss away.
class ReplayHead {
 public:
  static constexpr std::uint32_t kRingBlocks = ReplayRing::kBlocks;
  static constexpr std::uint32_t kBlockBits = 64;
  // Counters this far behind the newest accepted one are still tracked
  // (one block is kept as slack for the block being refilled).
  static constexpr std::uint64_t kWindowSize = (kRingBlocks - 1) * kBlockBits;  // 8128

  // Fresh window (the ring must be reset with it): counter 0 not yet seen.
  void reset() noexcept {
    next_ = 0;
    top_ = 0;
  }

  // True when `counter` could be accepted: not seen, not too old, and below
  // `limit` (REJECT_AFTER_MESSAGES for WireGuard). Does not record it: call
  // before spending work on decryption.
  template <class Ring>
  bool check(std::uint64_t counter, std::uint64_t limit, Ring&& ring) const noexcept;

  // Records `counter` if it passes check(); false otherwise (duplicate, too
  // old, or at/over the limit). Call only after the packet authenticated.
  template <class Ring>
  bool check_and_update(std::uint64_t counter, std::uint64_t limit, Ring&& ring) noexcept;

  // Highest counter accepted so far + 1 (0 when none).
  std::uint64_t next_expected() const noexcept { return next_; }

 private:
  static constexpr std::uint64_t kRingMask = kRingBlocks - 1;
  static_assert((kRingBlocks & kRingMask) == 0, "ring size must be a power of two");
  static_assert(kBlockBits == 64, "blocks are std::uint64_t");
  static constexpr unsigned kBlockShift = 6;  // log2(kBlockBits)
  static constexpr std::uint64_t block_of(std::uint64_t counter) noexcept { return counter >> kBlockShift; }
  static constexpr std::uint64_t bit_of(std::uint64_t counter) noexcept {
    return std::uint64_t{1} << (counter & (kBlockBits - 1));
  }

  std::uint64_t next_ = 0;  // newest accepted counter + 1; 0: none yet
  std::uint64_t top_ = 0;   // bits of the newest block, block_of(next_ - 1)
};
static_assert(sizeof(ReplayHead) == 16, "the head is 16 bytes of the receive line");

// Head and ring together: the window as one object (tests, fuzzing, and
// any user without a receive line to put the head on).
class ReplayWindow {
 public:
  static constexpr std::uint32_t kRingBlocks = ReplayHead::kRingBlocks;
  static constexpr std::uint32_t kBlockBits = ReplayHead::kBlockBits;
  static constexpr std::uint64_t kWindowSize = ReplayHead::kWindowSize;

  void reset() noexcept {
    head_.reset();
    ring_.reset();
  }
  bool check(std::uint64_t counter, std::uint64_t limit) const noexcept {
    return head_.check(counter, limit, [this]() -> const ReplayRing& { return ring_; });
  }
  bool check_and_update(std::uint64_t counter, std::uint64_t limit) noexcept {
    return head_.check_and_update(counter, limit, [this]() -> ReplayRing& { return ring_; });
  }
  std::uint64_t next_expected() const noexcept { return head_.next_expected(); }

 private:
  ReplayHead head_;
  ReplayRing ring_;
};

// Inline: both run for every data message.
template <class Ring>
inline bool ReplayHead::check(std::uint64_t counter, std::uint64_t limit, Ring&& ring) const noexcept {
  if (counter >= limit) return false;
  if (counter >= next_) return true;  // newer than any accepted (or none yet)
  // counter < next_ here, so next_ >= 1 and neither subtraction wraps.
  const std::uint64_t greatest = next_ - 1;
  if (greatest - counter >= kWindowSize) return false;
  const std::uint64_t block = block_of(counter);
  const std::uint64_t bits = block == block_of(greatest) ? top_ : ring().blocks[block & kRingMask];
  return (bits & bit_of(counter)) == 0;
}

template <class Ring>
inline bool ReplayHead::check_and_update(std::uint64_t counter, std::uint64_t limit, Ring&& ring) noexcept {
  if (!check(counter, limit, ring)) return false;
  const std::uint64_t block = block_of(counter);
  if (counter >= next_) {
    // A newer block: the old newest block's bits go to its ring slot, and
    // the blocks jumped over (holding bits of counters from a previous lap
    // of the ring, now out of the window) are cleared before reuse. A jump
    // of a full ring or more clears everything, which bounds the work
    // regardless of the jump size. counter < limit <= 2^64-1, so neither
    // next_ nor top + i wraps. Before the first counter the ring is clear
    // (reset) and top_ is 0, as for a new block.
    if (next_ != 0) {
      const std::uint64_t top = block_of(next_ - 1);
      if (block != top) {
        ReplayRing& r = ring();
        const std::uint64_t advance = block - top;
        if (advance >= kRingBlocks) {
          r.reset();
        } else {
          r.blocks[top & kRingMask] = top_;
          for (std::uint64_t i = 1; i < advance; ++i) r.blocks[(top + i) & kRingMask] = 0;
        }
        top_ = 0;
      }
    }
    next_ = counter + 1;
  }
  if (block == block_of(next_ - 1))
    top_ |= bit_of(counter);
  else
    ring().blocks[block & kRingMask] |= bit_of(counter);
  return true;
}

}  // namespace moongate::wg
