// Single-message ChaCha20-Poly1305 (WireGuard nonce) and XChaCha20-Poly1305
// through libsodium, for the handshake and cookie replies.
#include "crypto/aead.h"

#include <sodium.h>

#include "crypto/sodium_init.h"

namespace moongate::crypto {
namespace {

static_assert(crypto_aead_chacha20poly1305_ietf_ABYTES == kAeadTagLen);
static_assert(crypto_aead_chacha20poly1305_ietf_KEYBYTES == kAeadKeyLen);
static_assert(crypto_aead_chacha20poly1305_ietf_NPUBBYTES == 12);
static_assert(crypto_aead_xchacha20poly1305_ietf_NPUBBYTES == kXAeadNonceLen);

struct Nonce12 {
  unsigned char bytes[12];
};

// WireGuard: 32 zero bits, then the counter little-endian (not RFC 8439's
// big-endian-looking constant || IV layout).
Nonce12 wireguard_nonce(std::uint64_t counter) noexcept {
  Nonce12 n{};
  for (int i = 0; i < 8; ++i) n.bytes[4 + i] = static_cast<unsigned char>(counter >> (8 * i));
  return n;
}

}  // namespace

void chacha20poly1305_encrypt(std::uint8_t* dst, const std::uint8_t* src, std::size_t len,
                              const std::uint8_t* ad, std::size_t ad_len, std::uint64_t counter,
                              const std::uint8_t key[32]) noexcept {
  ensure_sodium();
  const Nonce12 nonce = wireguard_nonce(counter);
  // Detached so the tag lands right after the ciphertext even when dst == src.
  crypto_aead_chacha20poly1305_ietf_encrypt_detached(dst, dst + len, nullptr, src, len, ad, ad_len,
                                                     nullptr, nonce.bytes, key);
}

bool chacha20poly1305_decrypt(std::uint8_t* dst, const std::uint8_t* src, std::size_t len,
                              const std::uint8_t* ad, std::size_t ad_len, std::uint64_t counter,
                              const std::uint8_t key[32]) noexcept {
  ensure_sodium();
  const Nonce12 nonce = wireguard_nonce(counter);
  return crypto_aead_chacha20poly1305_ietf_decrypt_detached(dst, nullptr, src, len, src + len, ad,
                                                            ad_len, nonce.bytes, key) == 0;
}

void xchacha20poly1305_encrypt(std::uint8_t* dst, const std::uint8_t* src, std::size_t len,
                               const std::uint8_t* ad, std::size_t ad_len,
                               const std::uint8_t nonce[24], const std::uint8_t key[32]) noexcept {
  ensure_sodium();
  crypto_aead_xchacha20poly1305_ietf_encrypt_detached(dst, dst + len, nullptr, src, len, ad, ad_len,
                                                      nullptr, nonce, key);
}

bool xchacha20poly1305_decrypt(std::uint8_t* dst, const std::uint8_t* src, std::size_t len,
                               const std::uint8_t* ad, std::size_t ad_len,
                               const std::uint8_t nonce[24], const std::uint8_t key[32]) noexcept {
  ensure_sodium();
  return crypto_aead_xchacha20poly1305_ietf_decrypt_detached(dst, nullptr, src, len, src + len, ad,
                                                             ad_len, nonce, key) == 0;
}

}  // namespace moongate::crypto
