// Single-message AEADs used by the handshake (libsodium):
// ChaCha20-Poly1305 (RFC 8439) with WireGuard's nonce (32 zero bits then a
// little-endian 64-bit counter) and XChaCha20-Poly1305 for cookie replies.
// Bulk data messages go through AeadBurst (aead_burst.h) instead.
#pragma once

#include <cstddef>
#include <cstdint>

namespace moongate::crypto {

inline constexpr std::size_t kAeadTagLen = 16;
inline constexpr std::size_t kAeadKeyLen = 32;
inline constexpr std::size_t kXAeadNonceLen = 24;

// dst receives len + 16 bytes (ciphertext then tag). dst may equal src.
void chacha20poly1305_encrypt(std::uint8_t* dst, const std::uint8_t* src, std::size_t len,
                              const std::uint8_t* ad, std::size_t ad_len, std::uint64_t counter,
                              const std::uint8_t key[32]) noexcept;

// src holds len bytes of ciphertext followed by the 16-byte tag; dst
// receives len bytes. False (dst unspecified) when the tag does not verify.
[[nodiscard]] bool chacha20poly1305_decrypt(std::uint8_t* dst, const std::uint8_t* src,
                                            std::size_t len, const std::uint8_t* ad,
                                            std::size_t ad_len, std::uint64_t counter,
                                            const std::uint8_t key[32]) noexcept;

void xchacha20poly1305_encrypt(std::uint8_t* dst, const std::uint8_t* src, std::size_t len,
                               const std::uint8_t* ad, std::size_t ad_len,
                               const std::uint8_t nonce[24], const std::uint8_t key[32]) noexcept;

[[nodiscard]] bool xchacha20poly1305_decrypt(std::uint8_t* dst, const std::uint8_t* src,
                                             std::size_t len, const std::uint8_t* ad,
                                             std::size_t ad_len, const std::uint8_t nonce[24],
                                             const std::uint8_t key[32]) noexcept;

}  // namespace moongate::crypto
