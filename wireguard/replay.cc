// RFC 6479-style anti-replay window over a ring of 64-bit blocks. The
// per-packet check and update are inline in replay.h.
#include "wireguard/replay.h"

namespace moongate::wg {

void ReplayWindow::reset() noexcept {
  // greatest_ must be 0 while !any_: the first update slides from block 0.
  greatest_ = 0;
  any_ = false;
  for (auto& block : ring_) block = 0;
}

}  // namespace moongate::wg
