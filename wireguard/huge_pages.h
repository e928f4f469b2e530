// Memory for per-peer state on 2 MB pages (transparent huge pages).
//
// Why: at 100 000 peers every data message touches a different Peer,
// Keypair, index-table slot (receive line) and PeerCtx. On malloc's 4 KiB pages each of
// those is also a TLB miss (in a VM a two-dimensional page walk); the burst
// prefetches (device.h) hide cache misses but a page walk still stalls
// them. With the same objects packed into 2 MB chunks that the kernel is
// asked to back with huge pages (madvise MADV_HUGEPAGE), one TLB entry
// covers ~1800 keypairs. Measured in docs/perf.md (data plane section).
//
// - huge_alloc / huge_free: a zeroed, 2 MB-aligned mapping of at least
//   `bytes` (big tables: the index and peer tables).
// - HugeSlab: fixed-size objects carved from 2 MB chunks, with a free list.
//   Peer, Keypair and the data plane's PeerCtx use one each through their
//   class operator new/delete (OnHugeSlab). Objects are allocated on the control and
//   handshake paths only, never per packet; a mutex guards the free list
//   (the glibc arena lock that plain `new` takes is no cheaper). Chunks are
//   never given back: the slab's size follows the most objects ever alive.
//   Objects sit an odd number of cache lines apart (padded by one line when
//   needed), so their first lines use every cache set (huge_pages.cc).
// Where the kernel has transparent huge pages off ("never"), this is plain
// 4 KiB memory, as before. Under AddressSanitizer the slab forwards to the
// global operator new, so use-after-free and leaks stay visible.
#pragma once

#include <cstddef>
#include <mutex>
#include <new>

namespace moongate::wg {

inline constexpr std::size_t kHugePageSize = std::size_t{2} << 20;

// nullptr when the mapping fails. Memory is zeroed (fresh anonymous pages).
void* huge_alloc(std::size_t bytes) noexcept;
void huge_free(void* p, std::size_t bytes) noexcept;

class HugeSlab {
 public:
  // Objects of `size` bytes aligned to `align` (a power of two <= 4096).
  HugeSlab(std::size_t size, std::size_t align) noexcept;
  HugeSlab(const HugeSlab&) = delete;
  HugeSlab& operator=(const HugeSlab&) = delete;

  // nullptr when no chunk can be mapped.
  void* allocate() noexcept;
  void release(void* p) noexcept;

  // A slab that lives until the process ends (objects may be freed by
  // static destructors after any ordinary static would be gone).
  static HugeSlab& forever(std::size_t size, std::size_t align) {
    return *new HugeSlab(size, align);
  }

 private:
  struct FreeNode {
    FreeNode* next;
  };
  std::mutex mu_;
  FreeNode* free_ = nullptr;
  char* bump_ = nullptr;  // the current chunk's unused tail
  char* end_ = nullptr;
  std::size_t stride_;
};

#if defined(__SANITIZE_ADDRESS__)
#define MOONGATE_HUGE_SLAB_ASAN 1
#elif defined(__has_feature)
#if __has_feature(address_sanitizer)
#define MOONGATE_HUGE_SLAB_ASAN 1
#endif
#endif
#ifndef MOONGATE_HUGE_SLAB_ASAN
#define MOONGATE_HUGE_SLAB_ASAN 0
#endif

// A base that gives T class-level operator new/delete from its own
// HugeSlab: `class alignas(64) Peer : public OnHugeSlab<Peer>`. Objects of
// another size (a derived class) and ASan builds use the global operators.
template <class T>
struct OnHugeSlab {
  static HugeSlab& slab() {
    static HugeSlab& s = HugeSlab::forever(sizeof(T), alignof(T));
    return s;
  }
  static void* operator new(std::size_t n, std::align_val_t al, const std::nothrow_t& nt) noexcept {
    if (MOONGATE_HUGE_SLAB_ASAN || n != sizeof(T)) return ::operator new(n, al, nt);
    return slab().allocate();
  }
  static void* operator new(std::size_t n, const std::nothrow_t& nt) noexcept {
    return operator new(n, std::align_val_t{alignof(T)}, nt);
  }
  static void* operator new(std::size_t n, std::align_val_t al) {
    void* p = operator new(n, al, std::nothrow);
    if (p == nullptr) throw std::bad_alloc();
    return p;
  }
  static void* operator new(std::size_t n) { return operator new(n, std::align_val_t{alignof(T)}); }
  static void operator delete(void* p, std::size_t n, std::align_val_t al) noexcept {
    if (p == nullptr) return;
    if (MOONGATE_HUGE_SLAB_ASAN || n != sizeof(T))
      ::operator delete(p, al);
    else
      slab().release(p);
  }
  static void operator delete(void* p, std::size_t n) noexcept {
    operator delete(p, n, std::align_val_t{alignof(T)});
  }
  // Matching the nothrow forms (used only if a constructor throws).
  static void operator delete(void* p, std::align_val_t al, const std::nothrow_t&) noexcept {
    operator delete(p, sizeof(T), al);
  }
  static void operator delete(void* p, const std::nothrow_t&) noexcept {
    operator delete(p, sizeof(T), std::align_val_t{alignof(T)});
  }
  static void* operator new[](std::size_t) = delete;
  static void operator delete[](void*) = delete;
};

// A fixed array of T on huge_alloc memory when it is large (at least one
// huge page), else on the ordinary heap. T must be nothrow default
// constructible; elements are value-initialised.
template <class T>
class HugeArray {
 public:
  HugeArray() = default;
  explicit HugeArray(std::size_t n) : n_(n) {
    const std::size_t bytes = n * sizeof(T);
    if (bytes >= kHugePageSize) {
      void* p = huge_alloc(bytes);
      if (p == nullptr) throw std::bad_alloc();
      data_ = static_cast<T*>(p);
      huge_ = true;
      for (std::size_t i = 0; i < n; ++i) new (data_ + i) T();
    } else {
      data_ = new T[n]();
    }
  }
  ~HugeArray() { reset(); }
  HugeArray(const HugeArray&) = delete;
  HugeArray& operator=(const HugeArray&) = delete;
  HugeArray(HugeArray&& o) noexcept : data_(o.data_), n_(o.n_), huge_(o.huge_) {
    o.data_ = nullptr;
    o.n_ = 0;
  }
  HugeArray& operator=(HugeArray&& o) noexcept {
    if (this != &o) {
      reset();
      data_ = o.data_;
      n_ = o.n_;
      huge_ = o.huge_;
      o.data_ = nullptr;
      o.n_ = 0;
    }
    return *this;
  }

  T* get() const noexcept { return data_; }
  T& operator[](std::size_t i) const noexcept { return data_[i]; }

 private:
  void reset() noexcept {
    if (data_ == nullptr) return;
    if (huge_) {
      for (std::size_t i = 0; i < n_; ++i) data_[i].~T();
      huge_free(data_, n_ * sizeof(T));
    } else {
      delete[] data_;
    }
    data_ = nullptr;
  }

  T* data_ = nullptr;
  std::size_t n_ = 0;
  bool huge_ = false;
};

}  // namespace moongate::wg
