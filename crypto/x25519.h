// X25519 Diffie-Hellman (RFC 7748) through libsodium.
#pragma once

#include <array>
#include <cstdint>

#include "crypto/secret.h"

namespace moongate::crypto {

using PublicKey = std::array<std::uint8_t, 32>;

// A new clamped private key and its public key.
void x25519_generate(SecretKey& private_key, PublicKey& public_key) noexcept;

// Public key of a private key (the private key is clamped by X25519 itself).
void x25519_public(PublicKey& public_key, const SecretKey& private_key) noexcept;

// Shared secret; false when the result is all zeros (a low-order point),
// which WireGuard must reject.
[[nodiscard]] bool x25519(SecretKey& shared, const SecretKey& private_key,
                          const PublicKey& public_key) noexcept;

// Clamps a 32-byte scalar as RFC 7748 section 5 (for keys read from config).
void x25519_clamp(SecretKey& private_key) noexcept;

}  // namespace moongate::crypto
