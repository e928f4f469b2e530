// Token buckets for new-identity work (policy in identity_verifier.h).
#include "zerotier/identity_verifier.h"

namespace moongate::zerotier {

IdentityVerifier::IdentityVerifier(const VerifierLimits& limits) : limits_(limits) {}

bool IdentityVerifier::take(Bucket& b, std::uint64_t now_ms, std::uint32_t rate, std::uint32_t burst) noexcept {
  const std::uint64_t cap = std::uint64_t{burst} * 1000;
  if (!b.used) {
    b.used = true;
    b.milli_tokens = cap;
    b.last_ms = now_ms;
  } else if (now_ms > b.last_ms) {
    // rate tokens per second = rate milli-tokens per millisecond.
    const std::uint64_t add = (now_ms - b.last_ms) * rate;
    b.milli_tokens = b.milli_tokens + add > cap ? cap : b.milli_tokens + add;
    b.last_ms = now_ms;
  }
  if (b.milli_tokens < 1000) return false;
  b.milli_tokens -= 1000;
  return true;
}

bool IdentityVerifier::admit(const Endpoint& source, std::uint64_t now_ms) noexcept {
  Bucket& s = sources_[source.hash() % kSourceBuckets];
  // Peek the global bucket first so a source over its own budget does not
  // also drain the shared one, then charge both.
  Bucket g = global_;
  if (!take(g, now_ms, limits_.per_second, limits_.burst)) {
    global_ = g;
    return false;
  }
  if (!take(s, now_ms, limits_.per_source_per_second, limits_.per_source_burst)) return false;
  global_ = g;
  return true;
}

}  // namespace moongate::zerotier
