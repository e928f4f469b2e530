// Internal to crypto/: libsodium must be initialised before use (it picks
// its CPU-specific implementations in sodium_init()).
#pragma once

namespace moongate::crypto {

// Initialises libsodium once, thread-safely; aborts if it cannot (nothing
// in moongate can run without its CSPRNG). Every later call is one load.
void ensure_sodium() noexcept;

}  // namespace moongate::crypto
