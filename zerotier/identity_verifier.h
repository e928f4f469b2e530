// The budget for identity work a stranger can make the moon do.
//
// A HELLO from an unknown identity costs one X25519 agreement (to check its
// MAC) and one memory-hard address hash (tens of milliseconds, 2 MiB). A
// flood of fresh identities would otherwise turn the moon into a CPU
// furnace and starve the peers it already knows. So:
//   1. known identities never reach this: the peer table keeps their keys;
//   2. new identities spend a token from a global bucket (rate per second,
//      small burst) AND one from their source IP's bucket (a hashed array of
//      buckets, so a single address cannot use the whole global budget);
//   3. without both tokens the HELLO is dropped and counted (the client
//      retries within seconds); the verification work per second is bounded
//      by the global rate whatever arrives.
// Clock-injected (milliseconds); single-threaded like the moon that owns it.
#pragma once

#include <array>
#include <cstdint>

#include "zerotier/identity.h"

namespace moongate::zerotier {

struct VerifierLimits {
  std::uint32_t per_second = 10;      // global new-identity verifications per second
  std::uint32_t burst = 10;           // global bucket depth
  std::uint32_t per_source_per_second = 2;
  std::uint32_t per_source_burst = 4;
};

class IdentityVerifier {
 public:
  explicit IdentityVerifier(const VerifierLimits& limits = {});

  // Takes a token for verification work on behalf of `source` at now_ms.
  // False: over budget (the caller drops and counts).
  bool admit(const Endpoint& source, std::uint64_t now_ms) noexcept;

  // The expensive check (only after admit()).
  bool validate(const Identity& id) noexcept { return id.locally_validate(scratch_); }

  const VerifierLimits& limits() const noexcept { return limits_; }

 private:
  // Token buckets in milli-tokens so integer refill stays exact.
  struct Bucket {
    std::uint64_t last_ms = 0;
    std::uint64_t milli_tokens = 0;
    bool used = false;
  };
  static bool take(Bucket& b, std::uint64_t now_ms, std::uint32_t rate, std::uint32_t burst) noexcept;

  static constexpr std::size_t kSourceBuckets = 4096;
  VerifierLimits limits_;
  Bucket global_;
  std::array<Bucket, kSourceBuckets> sources_{};
  AddressHashScratch scratch_;
};

}  // namespace moongate::zerotier
