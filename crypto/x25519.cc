// X25519 (RFC 7748) through libsodium's crypto_scalarmult.
#include "crypto/x25519.h"

#include <sodium.h>

#include <cstdio>
#include <cstdlib>

#include "crypto/sodium_init.h"

namespace moongate::crypto {

void x25519_clamp(SecretKey& private_key) noexcept {
  std::uint8_t* k = private_key.data();
  k[0] &= 248;
  k[31] &= 127;
  k[31] |= 64;
}

void x25519_generate(SecretKey& private_key, PublicKey& public_key) noexcept {
  private_key.randomize();
  x25519_clamp(private_key);
  x25519_public(public_key, private_key);
}

void x25519_public(PublicKey& public_key, const SecretKey& private_key) noexcept {
  ensure_sodium();
  // crypto_scalarmult_base only fails for a scalar that clamps to a
  // multiple of the group order, which clamping makes impossible.
  if (crypto_scalarmult_base(public_key.data(), private_key.data()) != 0) {
    std::fputs("moongate: crypto_scalarmult_base failed\n", stderr);
    std::abort();
  }
}

bool x25519(SecretKey& shared, const SecretKey& private_key, const PublicKey& public_key) noexcept {
  ensure_sodium();
  // libsodium returns -1 for an all-zero result (and for inputs on its list
  // of small-order points, all of which would produce one).
  if (crypto_scalarmult(shared.data(), private_key.data(), public_key.data()) != 0) {
    shared.clear();  // leave no partial result for a caller that ignores the verdict
    return false;
  }
  return true;
}

}  // namespace moongate::crypto
