// RFC 6479-style anti-replay window over a ring of 64-bit blocks.
#include "wireguard/replay.h"

namespace moongate::wg {

namespace {

constexpr std::uint64_t kRingMask = ReplayWindow::kRingBlocks - 1;
static_assert((ReplayWindow::kRingBlocks & kRingMask) == 0, "ring size must be a power of two");
static_assert(ReplayWindow::kBlockBits == 64, "blocks are std::uint64_t");
constexpr unsigned kBlockShift = 6;  // log2(kBlockBits)

constexpr std::uint64_t block_of(std::uint64_t counter) noexcept { return counter >> kBlockShift; }
constexpr std::uint64_t bit_of(std::uint64_t counter) noexcept {
  return std::uint64_t{1} << (counter & (ReplayWindow::kBlockBits - 1));
}

}  // namespace

void ReplayWindow::reset() noexcept {
  // greatest_ must be 0 while !any_: the first update slides from block 0.
  greatest_ = 0;
  any_ = false;
  for (auto& block : ring_) block = 0;
}

bool ReplayWindow::check(std::uint64_t counter, std::uint64_t limit) const noexcept {
  if (counter >= limit) return false;
  if (!any_ || counter > greatest_) return true;
  // counter <= greatest_ here, so the subtraction cannot wrap.
  if (greatest_ - counter >= kWindowSize) return false;
  return (ring_[block_of(counter) & kRingMask] & bit_of(counter)) == 0;
}

bool ReplayWindow::check_and_update(std::uint64_t counter, std::uint64_t limit) noexcept {
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
