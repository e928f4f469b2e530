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

class ReplayWindow {
 public:
  static constexpr std::uint32_t kRingBlocks = 128;                // 8192 bits
  static constexpr std::uint32_t kBlockBits = 64;
  // Counters this far behind the newest accepted one are still tracked
  // (one block is kept as slack for the block being refilled).
  static constexpr std::uint64_t kWindowSize = (kRingBlocks - 1) * kBlockBits;  // 8128

  // Fresh window: counter 0 has not been seen.
  ReplayWindow() noexcept { reset(); }
  void reset() noexcept;

  // True when `counter` could be accepted: not seen, not too old, and below
  // `limit` (REJECT_AFTER_MESSAGES for WireGuard). Does not record it: call
  // before spending work on decryption.
  bool check(std::uint64_t counter, std::uint64_t limit) const noexcept;

  // Records `counter` if it passes check(); false otherwise (duplicate, too
  // old, or at/over the limit). Call only after the packet authenticated.
  bool check_and_update(std::uint64_t counter, std::uint64_t limit) noexcept;

  // A cache hint for check()/check_and_update() of `counter`: its bitmap
  // block (the head, greatest_, sits with the keypair's bookkeeping).
  void prefetch(std::uint64_t counter) const noexcept {
    __builtin_prefetch(&ring_[block_of(counter) & kRingMask]);
  }

  // Highest counter accepted so far + 1 (0 when none).
  std::uint64_t next_expected() const noexcept { return greatest_ + (any_ ? 1 : 0); }

 private:
  static constexpr std::uint64_t kRingMask = kRingBlocks - 1;
  static_assert((kRingBlocks & kRingMask) == 0, "ring size must be a power of two");
  static_assert(kBlockBits == 64, "blocks are std::uint64_t");
  static constexpr unsigned kBlockShift = 6;  // log2(kBlockBits)
  static constexpr std::uint64_t block_of(std::uint64_t counter) noexcept { return counter >> kBlockShift; }
  static constexpr std::uint64_t bit_of(std::uint64_t counter) noexcept {
    return std::uint64_t{1} << (counter & (kBlockBits - 1));
  }

  std::uint64_t greatest_ = 0;  // newest accepted counter
  bool any_ = false;            // whether any counter has been accepted
  std::uint64_t ring_[kRingBlocks];
};

// Inline: both run for every data message.
inline bool ReplayWindow::check(std::uint64_t counter, std::uint64_t limit) const noexcept {
  if (counter >= limit) return false;
  if (!any_ || counter > greatest_) return true;
  // counter <= greatest_ here, so the subtraction cannot wrap.
  if (greatest_ - counter >= kWindowSize) return false;
  return (ring_[block_of(counter) & kRingMask] & bit_of(counter)) == 0;
}

inline bool ReplayWindow::check_and_update(std::uint64_t counter, std::uint64_t limit) noexcept {
  if (!check(counter, limit)) return false;

  if (!any_ || counter > greatest_) {
    // Blocks between the old top and the new one hold bits of counters that
    // have now fallen out of the window (from a previous lap of the ring):
    // clear them before reuse. A jump of a full ring or more clears
    // everything, which bounds the work regardless of the jump size.
    // counter < limit <= 2^64-1, so neither block number nor top + i wraps.
    const std::uint64_t top = block_of(greatest_);
    std::uint64_t advance = block_of(counter) - top;
    if (advance > kRingBlocks) advance = kRingBlocks;
    for (std::uint64_t i = 1; i <= advance; ++i) ring_[(top + i) & kRingMask] = 0;
    greatest_ = counter;
    any_ = true;
  }
  ring_[block_of(counter) & kRingMask] |= bit_of(counter);
  return true;
}

}  // namespace moongate::wg
