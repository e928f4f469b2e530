// Per-peer timers of the WireGuard whitepaper (section 6), as the Linux
// module arranges them. The packet path only calls the named hooks below,
// which stamp deadlines; expire() runs whatever fell due and says what the
// caller must send.
//
//   timer                 armed by                           on expiry
//   retransmit_handshake  an initiation is sent              resend it (REKEY_TIMEOUT +
//                         (REKEY_TIMEOUT + jitter)           jitter), give up after
//                                                            MAX_TIMER_HANDSHAKES
//   send_keepalive        data received, nothing sent back   send a keepalive
//                         (KEEPALIVE_TIMEOUT)
//   new_handshake         data sent, nothing received        start a new handshake
//                         (KEEPALIVE + REKEY_TIMEOUT)
//   zero_key_material     a session is derived, or a         erase every key
//                         handshake gave up (3 x REJECT)
//   persistent_keepalive  any authenticated packet sent or   send a keepalive
//                         received (peer's interval)
//
// Deadlines are absolute monotonic nanoseconds; 0 means not armed. The
// core is clock-injected, so tests move `now` by hand.
#pragma once

#include <cstddef>
#include <cstdint>

#include "wireguard/constants.h"

namespace moongate::wg {

struct TimerActions {
  bool send_initiation = false;  // start (or retry) a handshake
  bool retry = false;            // ... as a retransmission, keeping the attempt count
  bool send_keepalive = false;
  bool purge_staged = false;     // the handshake gave up: drop queued packets
  bool zero_keys = false;        // erase keypairs and handshake state
};

class PeerTimers {
 public:
  // --- hooks called by the packet and handshake paths ---
  // (The per-packet ones are inline, defined below the class.)
  void data_sent(Nanos now) noexcept;
  void data_received(Nanos now) noexcept;
  void any_authenticated_packet_sent() noexcept { send_keepalive_ = 0; }
  void any_authenticated_packet_received() noexcept { new_handshake_ = 0; }
  void any_authenticated_packet_traversal(Nanos now) noexcept;
  void handshake_initiated(Nanos now, Nanos jitter) noexcept;
  void handshake_complete() noexcept;
  void session_derived(Nanos now) noexcept;
  // Starts counting handshake attempts afresh (a new handshake, not a retry).
  void reset_attempts() noexcept { handshake_attempts_ = 0; }

  // Runs every timer whose deadline is <= now.
  TimerActions expire(Nanos now) noexcept;

  // Earliest armed deadline, or 0 when none: for the caller's timer wheel.
  Nanos next_deadline() const noexcept;

  // The host's own wake-up for this peer (the data plane's timer-wheel
  // entry), mirrored here because these lines are the ones every packet
  // already touches: after each hook, deciding whether the host must move
  // its entry reads nothing else (at 100 000 peers, every other line is a
  // cache miss). The host arms lazily: only a deadline that came EARLIER
  // than the one it is armed for moves the entry; one that moved later
  // (each packet pushes the keepalives back) costs nothing, and the entry
  // then fires early and re-arms.
  //   arm_earlier(now, at): true when the host must (re)arm its entry at
  //                    `at` (recorded as armed); false when it may stay.
  //   host_disarmed(): the host's entry went off or was cancelled.
  // `at` is on a tick of kArmTick (~1 ms), so the armed time fits in 32
  // bits: rounded up from a deadline (the entry never goes off before
  // it, at most a tick after; the host's wheel turns every 4 ms anyway).
  // While a per-packet deadline is armed, the entry is armed no later than
  // now + the shortest interval a packet arms (packet_floor()): a later
  // packet can then never bring a deadline earlier than the entry, so an
  // active peer's entry moves once per time it goes off, not each time
  // traffic turns from sending (new handshake in 15 s) to receiving
  // (keepalive in 10 s). Moving it relinks the wheel's list, which at
  // 100 000 peers is several cache misses on other peers' entries
  // (docs/perf.md, "One line per message received, one relink per fire").
  // The price is an entry that goes off up to 5 s before a
  // new-handshake deadline, and re-arms.
  // The two handshake deadlines (retransmit, zero keys) are armed only by
  // handshake events, never by a data message; arm_earlier reads them only
  // after one of those changed them or the entry went off (until then the
  // armed entry is already no later than they are), so the per-packet
  // decision reads only the fields from kPacketOffset on, which a caller
  // can give a cache line of their own (Peer does).
  bool arm_earlier(Nanos now, Nanos& at) noexcept {
    Nanos due = packet_deadline();
    const bool active = due != 0;
    if (handshake_changed_) {
      handshake_changed_ = false;
      due = earliest(earliest(due, retransmit_handshake_), zero_key_material_);
    }
    // Armed at tick T (time T x kArmTick exactly) is no later than due
    // when T <= due's tick rounded down; in serial-number arithmetic, as
    // the tick count wraps.
    if (due == 0 || (host_armed_ != 0 &&
                     static_cast<std::int32_t>(host_armed_ - static_cast<std::uint32_t>(due >> kArmShift)) <= 0))
      return false;
    // The floor rounds down (a later packet's deadline is then never
    // before it); a deadline rounds up.
    Nanos tick = active && due > now + packet_floor() ? (now + packet_floor()) >> kArmShift
                                                       : (due + kArmTick - 1) >> kArmShift;
    if (static_cast<std::uint32_t>(tick) == 0) ++tick;  // 0 is "not armed": a tick later, once in 52 days
    host_armed_ = static_cast<std::uint32_t>(tick);
    at = tick << kArmShift;
    return true;
  }
  void host_disarmed() noexcept {
    host_armed_ = 0;
    handshake_changed_ = true;
  }
  bool host_armed() const noexcept { return host_armed_ != 0; }
  // The armed time (0: not armed), from its 32 bits and a time `near` it
  // (within ~26 days): for tests and diagnostics.
  Nanos host_armed_at(Nanos near) const noexcept {
    if (host_armed_ == 0) return 0;
    const auto base = static_cast<std::int64_t>(near >> kArmShift);
    const auto d = static_cast<std::int32_t>(host_armed_ - static_cast<std::uint32_t>(base));
    return static_cast<Nanos>(base + d) << kArmShift;
  }
  static constexpr unsigned kArmShift = 20;
  static constexpr Nanos kArmTick = Nanos{1} << kArmShift;  // 1.048576 ms

  void set_persistent_keepalive(std::uint16_t seconds, Nanos now) noexcept;
  std::uint16_t persistent_keepalive() const noexcept { return persistent_keepalive_s_; }
  unsigned handshake_attempts() const noexcept { return handshake_attempts_; }

  // Stops everything (peer removed or keys zeroed).
  void stop() noexcept;

  // Visible for tests.
  Nanos retransmit_handshake_at() const noexcept { return retransmit_handshake_; }
  Nanos send_keepalive_at() const noexcept { return send_keepalive_; }
  Nanos new_handshake_at() const noexcept { return new_handshake_; }
  Nanos zero_key_material_at() const noexcept { return zero_key_material_; }
  Nanos persistent_keepalive_at() const noexcept { return persistent_keepalive_; }

  // Where the fields a data message reads and writes begin (the handshake
  // deadlines and attempt count come first): Peer puts this offset at a
  // cache-line boundary, and the kPacketBytes from it on that line.
  static constexpr std::size_t kPacketOffset = 24;
  static constexpr std::size_t kPacketBytes = 32;

 private:
  static Nanos earliest(Nanos a, Nanos b) noexcept { return a == 0 || (b != 0 && b < a) ? b : a; }
  // The soonest a packet hook arms a deadline after its `now`: the
  // keepalive's 10 s (the new handshake's is 15 s), or the persistent
  // keepalive's interval when that is shorter.
  Nanos packet_floor() const noexcept {
    const Nanos pk = static_cast<Nanos>(persistent_keepalive_s_) * kSecond;
    return persistent_keepalive_s_ != 0 && pk < kKeepaliveTimeout ? pk : kKeepaliveTimeout;
  }
  // The per-packet deadlines' earliest (0: none armed).
  Nanos packet_deadline() const noexcept {
    return earliest(earliest(send_keepalive_, new_handshake_), persistent_keepalive_);
  }

  // --- handshake (see arm_earlier) ---
  Nanos retransmit_handshake_ = 0;
  Nanos zero_key_material_ = 0;
  unsigned handshake_attempts_ = 0;
  // --- per data message (from kPacketOffset, kPacketBytes) ---
  Nanos send_keepalive_ = 0;
  Nanos new_handshake_ = 0;
  Nanos persistent_keepalive_ = 0;
  // arm_earlier(): the host's armed time in ticks of kArmTick, modulo
  // 2^32 (wraps every ~52 days; compared in serial-number arithmetic,
  // sound while it and a deadline are less than ~26 days apart: deadlines
  // are at most 3 x REJECT_AFTER_TIME ahead, and the entry is disarmed
  // when it goes off). 0: the host's entry is not armed. 32 bits, not 64,
  // so that the data plane's per-packet fields fit one cache line
  // (wg::Peer).
  std::uint32_t host_armed_ = 0;
  std::uint16_t persistent_keepalive_s_ = 0;
  bool need_another_keepalive_ = false;
  // A handshake deadline was armed or moved earlier since arm_earlier last
  // looked at them (or the host's entry went off).
  bool handshake_changed_ = false;
};

inline void PeerTimers::data_sent(Nanos now) noexcept {
  // We sent data and expect an answer; if none comes, the session may be
  // dead on the other side and a new handshake is due.
  if (new_handshake_ == 0) new_handshake_ = now + kKeepaliveTimeout + kRekeyTimeout;
}

inline void PeerTimers::data_received(Nanos now) noexcept {
  // Answer with a keepalive unless we send something ourselves in time.
  if (send_keepalive_ == 0)
    send_keepalive_ = now + kKeepaliveTimeout;
  else
    need_another_keepalive_ = true;
}

inline void PeerTimers::any_authenticated_packet_traversal(Nanos now) noexcept {
  if (persistent_keepalive_s_ != 0)
    persistent_keepalive_ = now + static_cast<Nanos>(persistent_keepalive_s_) * kSecond;
}

inline Nanos PeerTimers::next_deadline() const noexcept {
  return earliest(earliest(packet_deadline(), retransmit_handshake_), zero_key_material_);
}

}  // namespace moongate::wg
