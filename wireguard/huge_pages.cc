// 2 MB-page memory for per-peer state (see huge_pages.h).
#include "wireguard/huge_pages.h"

#include <sys/mman.h>

#include <algorithm>
#include <cstdint>

namespace moongate::wg {

namespace {

std::size_t round_up(std::size_t n, std::size_t to) noexcept { return (n + to - 1) / to * to; }

}  // namespace

void* huge_alloc(std::size_t bytes) noexcept {
  const std::size_t len = round_up(std::max<std::size_t>(bytes, 1), kHugePageSize);
  // Over-map by one huge page so an aligned start can be cut out of it; the
  // kernel only backs a range with huge pages when it is 2 MB aligned.
  void* raw = mmap(nullptr, len + kHugePageSize, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
  if (raw == MAP_FAILED) return nullptr;
  const auto start = reinterpret_cast<std::uintptr_t>(raw);
  const std::uintptr_t aligned = round_up(start, kHugePageSize);
  if (aligned != start) munmap(raw, aligned - start);
  const std::uintptr_t end = aligned + len;
  const std::uintptr_t raw_end = start + len + kHugePageSize;
  if (raw_end != end) munmap(reinterpret_cast<void*>(end), raw_end - end);
  auto* p = reinterpret_cast<void*>(aligned);
  // Advice only: where THP is off the range simply stays on 4 KiB pages.
  madvise(p, len, MADV_HUGEPAGE);
  return p;
}

void huge_free(void* p, std::size_t bytes) noexcept {
  if (p != nullptr) munmap(p, round_up(std::max<std::size_t>(bytes, 1), kHugePageSize));
}

HugeSlab::HugeSlab(std::size_t size, std::size_t align) noexcept
    : stride_(round_up(std::max(size, sizeof(FreeNode)), std::max(align, alignof(FreeNode)))) {
  // Objects packed at a stride of an even number of cache lines put their
  // first (hot) lines into every other cache set only: at 100 000 peers
  // those lines then crowd half of L1/L2 and evict what the rest of the
  // burst needs. One line of padding makes the stride odd, so the first
  // lines spread over all sets. Measured: PeerCtx at 6 lines (main's stats
  // copies on perf-wip's 5) cost ~60 cycles per decrypted packet at 100 000
  // peers (docs/perf.md, data plane after the merge).
  constexpr std::size_t kLine = 64;
  if (std::max(align, alignof(FreeNode)) <= kLine && stride_ % (2 * kLine) == 0) stride_ += kLine;
}

void* HugeSlab::allocate() noexcept {
  std::lock_guard<std::mutex> lock(mu_);
  if (free_ != nullptr) {
    FreeNode* n = free_;
    free_ = n->next;
    return n;
  }
  if (bump_ == nullptr || static_cast<std::size_t>(end_ - bump_) < stride_) {
    auto* chunk = static_cast<char*>(huge_alloc(kHugePageSize));
    if (chunk == nullptr) return nullptr;
    bump_ = chunk;
    end_ = chunk + kHugePageSize;
  }
  void* p = bump_;
  bump_ += stride_;
  return p;
}

void HugeSlab::release(void* p) noexcept {
  if (p == nullptr) return;
  std::lock_guard<std::mutex> lock(mu_);
  auto* n = static_cast<FreeNode*>(p);
  n->next = free_;
  free_ = n;
}

}  // namespace moongate::wg
