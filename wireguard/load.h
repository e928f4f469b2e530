// When is a responder "under load"? Under load, handshakes without a valid
// mac2 get a cookie reply instead of DH work (cookie.h).
//
// The decision belongs to whoever queues handshake messages (the data
// plane's slow-path ring, the harness's socket batch): it sees the queue.
// The rule is wireguard-go's: under load while the handshake queue is at
// least 1/8 full, and for one second after it last was, so the mode does
// not flap with every burst.
#pragma once

#include <cstddef>

#include "wireguard/constants.h"

namespace moongate::wg {

class LoadDetector {
 public:
  static constexpr Nanos kHold = kSecond;

  // Reports the queue depth seen at `now`; returns whether we are under load.
  bool update(std::size_t queue_depth, std::size_t queue_capacity, Nanos now) noexcept {
    if (queue_capacity != 0 && queue_depth * 8 >= queue_capacity) {
      loaded_until_ = now + kHold;
      return true;
    }
    return loaded_until_ != 0 && now < loaded_until_;
  }

 private:
  Nanos loaded_until_ = 0;
};

}  // namespace moongate::wg
