// BLAKE2s and the constructions WireGuard builds on it (through OpenSSL 3):
// HASH (BLAKE2s-256), MAC (keyed BLAKE2s-128), HMAC-BLAKE2s and the HKDF
// chain KDF1/KDF2/KDF3 of the Noise protocol framework.
#pragma once

#include <array>
#include <cstddef>
#include <cstdint>
#include <span>

namespace moongate::crypto {

inline constexpr std::size_t kBlake2sHashLen = 32;
inline constexpr std::size_t kBlake2sMacLen = 16;

using Bytes = std::span<const std::uint8_t>;

// HASH(in) = BLAKE2s-256.
void blake2s256(std::uint8_t out[32], Bytes in) noexcept;
// HASH(a || b), the shape of every Noise MixHash.
void blake2s256(std::uint8_t out[32], Bytes a, Bytes b) noexcept;

// Incremental BLAKE2s-256 (for hashing several pieces without copying).
class Blake2s {
 public:
  Blake2s() noexcept;
  ~Blake2s();
  Blake2s(const Blake2s&) = delete;
  Blake2s& operator=(const Blake2s&) = delete;
  void update(Bytes in) noexcept;
  void final(std::uint8_t out[32]) noexcept;

 private:
  alignas(8) std::uint8_t state_[256];  // opaque; see blake2s.cc
};

// MAC(key, in) = keyed BLAKE2s with a 16-byte output; key is 1..32 bytes
// (32 for mac1 and the cookie, 16 for mac2 which is keyed by a cookie).
void blake2s_mac128(std::uint8_t out[16], Bytes key, Bytes in) noexcept;

// HMAC(key, in) over BLAKE2s-256 (64-byte block), 32-byte output.
void hmac_blake2s(std::uint8_t out[32], Bytes key, Bytes in) noexcept;

// Noise KDFn(ck, input): t0 = HMAC(ck, input); t1 = HMAC(t0, 0x1);
// ti = HMAC(t0, t(i-1) || i). Any of out2/out3 may be null. Wipes t0.
void kdf(std::uint8_t out1[32], std::uint8_t out2[32], std::uint8_t out3[32],
         const std::uint8_t ck[32], Bytes input) noexcept;

}  // namespace moongate::crypto
