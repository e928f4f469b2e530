// A token bucket on the caller's clock: `per_second` tokens a second, at
// most `burst` saved up. One per worker (single writer, no atomics).
//
// Used for the ICMP errors the data plane originates (time exceeded,
// fragmentation needed, packet too big): RFC 1812 section 4.3.2.8 and RFC
// 4443 section 2.4 (f) ask a router to limit them, so a flood of expiring
// or oversize packets cannot make the gateway spend its cycles and its
// uplink on errors. Header-only and clock-injected: unit-tested without DPDK.
#pragma once

#include <algorithm>
#include <cstdint>

namespace moongate::dp {

class TokenBucket {
 public:
  TokenBucket(std::uint32_t per_second, std::uint32_t burst) noexcept
      : interval_ns_(per_second == 0 ? 0 : 1'000'000'000ull / per_second),
        cap_ns_(interval_ns_ * burst),
        credit_ns_(cap_ns_) {}

  // True when a token was taken at `now_ns` (monotonic nanoseconds).
  bool take(std::uint64_t now_ns) noexcept {
    if (interval_ns_ == 0) return false;  // a rate of 0: never
    if (now_ns > last_ns_) {
      credit_ns_ = std::min(cap_ns_, credit_ns_ + (now_ns - last_ns_));
      last_ns_ = now_ns;
    }
    if (credit_ns_ < interval_ns_) return false;
    credit_ns_ -= interval_ns_;
    return true;
  }

 private:
  std::uint64_t interval_ns_;  // the cost of one token
  std::uint64_t cap_ns_;       // burst tokens' worth
  std::uint64_t credit_ns_;
  std::uint64_t last_ns_ = 0;
};

}  // namespace moongate::dp
