// Per-peer timers; see timers.h for the table of what arms what.
#include "wireguard/timers.h"

#include <algorithm>

namespace moongate::wg {

void PeerTimers::handshake_initiated(Nanos now, Nanos jitter) noexcept {
  static_assert(offsetof(PeerTimers, send_keepalive_) == kPacketOffset &&
                    offsetof(PeerTimers, retransmit_handshake_) < kPacketOffset &&
                    offsetof(PeerTimers, zero_key_material_) < kPacketOffset &&
                    offsetof(PeerTimers, handshake_attempts_) < kPacketOffset &&
                    sizeof(PeerTimers) == kPacketOffset + kPacketBytes,
                "the handshake fields come before kPacketOffset, the per-packet ones (kPacketBytes) from it");
  retransmit_handshake_ = now + kRekeyTimeout + jitter;
  handshake_changed_ = true;
}

void PeerTimers::handshake_complete() noexcept {
  retransmit_handshake_ = 0;
  handshake_attempts_ = 0;
}

void PeerTimers::session_derived(Nanos now) noexcept {
  zero_key_material_ = now + 3 * kRejectAfterTime;
  handshake_changed_ = true;
}

void PeerTimers::set_persistent_keepalive(std::uint16_t seconds, Nanos now) noexcept {
  persistent_keepalive_s_ = seconds;
  persistent_keepalive_ = seconds ? now + static_cast<Nanos>(seconds) * kSecond : 0;
}

void PeerTimers::stop() noexcept {
  retransmit_handshake_ = send_keepalive_ = new_handshake_ = 0;
  zero_key_material_ = persistent_keepalive_ = 0;
  handshake_attempts_ = 0;
  need_another_keepalive_ = false;
  // host_armed_ stays: the host's entry is still armed where it was, and
  // fires (early, finding nothing due) like any other.
}

static bool due(Nanos& deadline, Nanos now) noexcept {
  if (deadline == 0 || deadline > now) return false;
  deadline = 0;
  return true;
}

TimerActions PeerTimers::expire(Nanos now) noexcept {
  TimerActions a;
  if (due(retransmit_handshake_, now)) {
    if (handshake_attempts_ > kMaxTimerHandshakes) {
      // REKEY_ATTEMPT_TIME is over: stop trying, drop what waited for the
      // session, and forget the keys later unless a handshake succeeds.
      send_keepalive_ = 0;
      a.purge_staged = true;
      if (zero_key_material_ == 0) {
        zero_key_material_ = now + 3 * kRejectAfterTime;
        handshake_changed_ = true;
      }
    } else {
      ++handshake_attempts_;
      a.send_initiation = true;
      a.retry = true;
    }
  }
  if (due(send_keepalive_, now)) {
    a.send_keepalive = true;
    if (need_another_keepalive_) {
      need_another_keepalive_ = false;
      send_keepalive_ = now + kKeepaliveTimeout;
    }
  }
  if (due(new_handshake_, now)) {
    // We sent data and heard nothing back for KEEPALIVE + REKEY_TIMEOUT.
    a.send_initiation = true;
  }
  if (due(zero_key_material_, now)) a.zero_keys = true;
  if (due(persistent_keepalive_, now)) a.send_keepalive = true;
  return a;
}

}  // namespace moongate::wg
