// Time as the protocol core sees it: handed in by the caller, never read.
#pragma once

#include <cstdint>

#include "wireguard/constants.h"

namespace moongate::wg {

struct Instant {
  Nanos mono = 0;            // monotonic: timers, key ages. Never 0 in use.
  std::uint64_t wall = 0;    // Unix ns: TAI64N timestamps, last handshake time
};

// A clock that moves only when told to: tests step it past REKEY_AFTER_TIME
// and friends in microseconds of real time.
class ManualClock {
 public:
  explicit ManualClock(Nanos start_mono = 1000 * kSecond,
                       std::uint64_t start_wall = 1'700'000'000ULL * kSecond) noexcept
      : now_{start_mono, start_wall} {}
  Instant now() const noexcept { return now_; }
  void advance(Nanos d) noexcept {
    now_.mono += d;
    now_.wall += d;
  }

 private:
  Instant now_;
};

}  // namespace moongate::wg
