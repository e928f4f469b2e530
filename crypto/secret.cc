// Secret-handling helpers (wiping, constant-time comparison, CSPRNG) on top
// of libsodium.
#include "crypto/secret.h"

#include "crypto/sodium_init.h"

#include <sodium.h>

#include <cstdio>
#include <cstdlib>

namespace moongate::crypto {

// randombytes_* and the constant-time helpers pick their implementations in
// sodium_init(); a function-local static makes the first call thread-safe
// and every later call a single load.
void ensure_sodium() noexcept {
  static const bool ok = [] {
    if (sodium_init() < 0) {
      std::fputs("moongate: sodium_init failed\n", stderr);
      std::abort();
    }
    return true;
  }();
  static_cast<void>(ok);
}

void secure_wipe(void* p, std::size_t n) noexcept { sodium_memzero(p, n); }

bool ct_equal(const void* a, const void* b, std::size_t n) noexcept {
  return sodium_memcmp(a, b, n) == 0;
}

bool ct_is_zero(const void* p, std::size_t n) noexcept {
  return sodium_is_zero(static_cast<const unsigned char*>(p), n) == 1;
}

void random_bytes(void* p, std::size_t n) noexcept {
  ensure_sodium();
  randombytes_buf(p, n);
}

std::uint32_t random_uniform(std::uint32_t upper) noexcept {
  ensure_sodium();
  return randombytes_uniform(upper);
}

}  // namespace moongate::crypto
