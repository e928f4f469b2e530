// Frame buffers for the relay's packet path, recycled through free lists so
// the steady state allocates nothing.
//
// Two size classes: small buffers hold a typical relayed frame (a WireGuard
// packet of up to ~1 900 bytes plus the DERP header and key), large ones the
// largest frame this server reads. Free lists are capped so a burst does not
// pin its peak memory forever (idle connections must stay small).
#pragma once

#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <new>

#include "derp/frame.h"

namespace moongate::derp {

struct Buf {
  Buf* next;
  std::uint32_t cap;
  std::uint32_t len;
  // The bytes follow the header in the same allocation.
  std::uint8_t* data() noexcept { return reinterpret_cast<std::uint8_t*>(this + 1); }
};

class BufferPool {
 public:
  static constexpr std::uint32_t kSmallCap = 2048 - sizeof(Buf);
  static constexpr std::uint32_t kLargeCap = kHeaderLen + kMaxFramePayload;

  explicit BufferPool(std::size_t max_free_small = 8192, std::size_t max_free_large = 16)
      : max_free_{max_free_small, max_free_large} {}
  ~BufferPool() {
    for (Buf*& head : free_)
      while (head) {
        Buf* n = head->next;
        std::free(head);
        head = n;
      }
  }
  BufferPool(const BufferPool&) = delete;
  BufferPool& operator=(const BufferPool&) = delete;

  // A buffer of at least `need` bytes (len 0); nullptr if need > kLargeCap or
  // the system is out of memory.
  Buf* get(std::size_t need) noexcept {
    if (need > kLargeCap) return nullptr;
    const int c = need <= kSmallCap ? 0 : 1;
    Buf* b = free_[c];
    if (b) {
      free_[c] = b->next;
      --nfree_[c];
    } else {
      const std::uint32_t cap = c == 0 ? kSmallCap : kLargeCap;
      b = static_cast<Buf*>(std::malloc(sizeof(Buf) + cap));
      if (!b) return nullptr;
      b->cap = cap;
      ++allocated_;
    }
    b->next = nullptr;
    b->len = 0;
    ++in_use_;
    return b;
  }
  void put(Buf* b) noexcept {
    if (!b) return;
    --in_use_;
    const int c = b->cap == kSmallCap ? 0 : 1;
    if (nfree_[c] >= max_free_[c]) {
      std::free(b);
      --allocated_;
      return;
    }
    b->next = free_[c];
    free_[c] = b;
    ++nfree_[c];
  }
  std::size_t in_use() const noexcept { return in_use_; }
  std::size_t allocated() const noexcept { return allocated_; }

 private:
  Buf* free_[2] = {nullptr, nullptr};
  std::size_t nfree_[2] = {0, 0};
  std::size_t max_free_[2];
  std::size_t in_use_ = 0;
  std::size_t allocated_ = 0;
};

}  // namespace moongate::derp
