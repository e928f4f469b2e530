// Secret key material that wipes itself.
//
// Every private key, chaining key, session key and cookie secret in moongate
// lives in a Secret<N>: the bytes are zeroed (with a store the compiler may
// not elide) when the object is destroyed, cleared or overwritten by a move.
#pragma once

#include <array>
#include <cstddef>
#include <cstdint>
#include <span>

namespace moongate::crypto {

// Zeroes n bytes in a way the optimiser cannot remove (sodium_memzero).
void secure_wipe(void* p, std::size_t n) noexcept;

// Constant-time comparison; true when the n bytes are equal.
bool ct_equal(const void* a, const void* b, std::size_t n) noexcept;

// Constant-time test for all-zero bytes.
bool ct_is_zero(const void* p, std::size_t n) noexcept;

// Fills n bytes from the system CSPRNG (libsodium randombytes).
void random_bytes(void* p, std::size_t n) noexcept;
// Uniform integer in [0, upper) from the CSPRNG.
std::uint32_t random_uniform(std::uint32_t upper) noexcept;

template <std::size_t N>
class Secret {
 public:
  static constexpr std::size_t kSize = N;

  Secret() noexcept = default;
  explicit Secret(std::span<const std::uint8_t, N> bytes) noexcept { assign(bytes); }
  Secret(const Secret& o) noexcept : bytes_(o.bytes_) {}
  Secret& operator=(const Secret& o) noexcept {
    if (this != &o) bytes_ = o.bytes_;
    return *this;
  }
  // A moved-from secret is wiped so the key exists in one place only.
  Secret(Secret&& o) noexcept : bytes_(o.bytes_) { o.clear(); }
  Secret& operator=(Secret&& o) noexcept {
    if (this != &o) {
      bytes_ = o.bytes_;
      o.clear();
    }
    return *this;
  }
  ~Secret() { clear(); }

  void assign(std::span<const std::uint8_t, N> bytes) noexcept {
    for (std::size_t i = 0; i < N; ++i) bytes_[i] = bytes[i];
  }
  void clear() noexcept { secure_wipe(bytes_.data(), N); }
  bool is_zero() const noexcept { return ct_is_zero(bytes_.data(), N); }
  void randomize() noexcept { random_bytes(bytes_.data(), N); }

  std::uint8_t* data() noexcept { return bytes_.data(); }
  const std::uint8_t* data() const noexcept { return bytes_.data(); }
  static constexpr std::size_t size() noexcept { return N; }
  std::span<std::uint8_t, N> span() noexcept { return std::span<std::uint8_t, N>(bytes_); }
  std::span<const std::uint8_t, N> span() const noexcept {
    return std::span<const std::uint8_t, N>(bytes_);
  }

 private:
  std::array<std::uint8_t, N> bytes_{};
};

using SecretKey = Secret<32>;

}  // namespace moongate::crypto
