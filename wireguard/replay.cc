// RFC 6479-style anti-replay window over a ring of 64-bit blocks. The
// per-packet check and update are inline in replay.h.
#include "wireguard/replay.h"

namespace moongate::wg {

void ReplayWindow::reset() noexcept {
  next_ = 0;
  top_ = 0;
  for (auto& block : ring_) block = 0;
}

}  // namespace moongate::wg
