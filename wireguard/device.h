// A WireGuard device: our identity, the peers, the index table, the cookie
// checker, and the flows between them. I/O-free: messages come in as
// bytes with the time; what must go out is handed to a DeviceHost.
//
// Receive flow (per UDP payload):
//   1. classify_message(): handshake types go to receive_handshake(), data
//      to the three-phase path below; anything else is a counted drop.
//   2. receive_handshake(): mac1 (and under load mac2, else a cookie
//      reply), then Noise; a response completes our handshake, an
//      initiation is answered at once through DeviceHost::send_handshake.
//   3. Data: prepare_receive() finds the receive line the receiver index
//      names and pre-checks expiry and replay -> the caller decrypts the whole burst
//      (crypto::AeadBurst) -> complete_receive() records the counter,
//      confirms a pending keypair, updates the endpoint (roaming), timers
//      and counters (or, for a burst: accept_receive() per message, then
//      received() once per peer).
// Send flow (per plaintext packet for a peer):
//   1. prepare_send() hands out the keypair and the next counter, or
//      kNoSession after asking for a handshake (the caller stages the
//      packet and is told to flush through DeviceHost::flush_staged).
//   2. The caller writes the header, pads, encrypts the burst.
//   3. complete_send() once per peer per burst: counters, timers, and a
//      new handshake when the keys are getting old.
// Timers: expire_timers(peer, now) whenever peer.timers.next_deadline()
// has passed.
//
// Threading: none inside. On the data plane each peer is owned by one
// lcore, which alone calls these functions for it.
#pragma once

#include <array>
#include <cstddef>
#include <cstdint>
#include <memory>
#include <unordered_map>

#include "crypto/secret.h"
#include "crypto/x25519.h"
#include "wireguard/clock.h"
#include "wireguard/cookie.h"
#include "wireguard/endpoint.h"
#include "wireguard/index_table.h"
#include "wireguard/messages.h"
#include "wireguard/noise.h"
#include "wireguard/peer.h"
#include "wireguard/peer_table.h"

namespace moongate::wg {

// What the core asks its caller to do (upcalls, as VPP's noise callbacks).
class DeviceHost {
 public:
  virtual ~DeviceHost() = default;
  // Sends a handshake message or cookie reply; true when it was handed to
  // the network (only then is it counted in the peer's tx_bytes). `peer` is
  // null for cookie replies to unauthenticated senders.
  virtual bool send_handshake(Peer* peer, const Endpoint& to, const std::uint8_t* msg,
                              std::size_t len) = 0;
  // A session with `peer` became usable: send its staged packets, and if
  // there are none and keepalive_if_empty, a keepalive (an empty data
  // message) so the responder learns the session is confirmed.
  virtual void flush_staged(Peer& peer, bool keepalive_if_empty) = 0;
  // The handshake gave up: drop staged packets for this peer.
  virtual void purge_staged(Peer& peer) = 0;
};

// How a multi-lcore host routes handshakes between per-lcore devices (each
// device holds only the peers its lcore owns). The lcore that receives an
// initiation runs it through its own device first: MACs and cookie mode
// apply there (the sender's cookie is bound to that lcore's secret, and RSS
// keeps a sender on one lcore); if the initiator belongs to another lcore,
// its static key comes back in `foreign_initiator` and the message is handed
// to the owner, which processes it with `macs_checked` set.
struct HandshakeRouting {
  // The receiving lcore already checked mac1 and, under load, mac2.
  bool macs_checked = false;
  // Out: for an initiation from a key this device does not hold, the
  // decrypted static key; the result is then kUnknownPeer, not counted
  // (the host counts it if no lcore owns the key).
  crypto::PublicKey* foreign_initiator = nullptr;
  bool foreign = false;  // out: foreign_initiator was filled
  // Out: the peer an authenticated initiation or response concerned (its
  // timers may have moved: the host re-arms its timer wheel entry).
  Peer* peer = nullptr;
};

// A data message to send: the session's send line (key, remote index)
// and the nonce.
struct TxSlot {
  const SendLine* send = nullptr;
  std::uint64_t counter = 0;
};

// A data message received: which keypair (its receive line, the index
// slot), which nonce.
struct RxSlot {
  IndexSlot* line = nullptr;
  Peer* peer = nullptr;  // the line's peer
  std::uint64_t counter = 0;
};

class Device {
 public:
  // max_peers sizes the peer and index tables once; they never grow.
  Device(std::size_t max_peers, DeviceHost& host);
  ~Device();
  Device(const Device&) = delete;
  Device& operator=(const Device&) = delete;

  // --- configuration (control path) ---
  // Sets our static key; sessions under the old key are dropped, and a peer
  // whose public key equals our own is refused use (as in the Linux module).
  void set_private_key(const crypto::SecretKey& key) noexcept;
  bool has_private_key() const noexcept { return identity_.has_key; }
  const crypto::PublicKey& public_key() const noexcept { return identity_.public_key; }

  // nullptr when the table is full, the key is present, or it is our own.
  // `static_static`, when given, is DH(our private key, key) computed by the
  // caller (off the packet path: the data plane's netmap service adds
  // thousands of peers without making the owning lcore do the DH work).
  Peer* add_peer(const crypto::PublicKey& key, const crypto::SecretKey* static_static = nullptr) noexcept;
  void remove_peer(Peer* peer) noexcept;
  Peer* find_peer(const crypto::PublicKey& key) const noexcept { return peers_.find(key); }
  void set_preshared_key(Peer& peer, const crypto::SecretKey& psk) noexcept;
  // Sets the persistent keepalive interval (0 = off). Turning it on sends a
  // keepalive at once, as wireguard-go does, so a NAT mapping opens now
  // rather than one interval later.
  void set_persistent_keepalive(Peer& peer, std::uint16_t seconds, Instant now) noexcept;
  std::size_t peer_count() const noexcept { return peers_.size(); }
  template <class F>
  void for_each_peer(F&& f) const {
    peers_.for_each([&](const PublicKeyBytes&, Peer* p) { f(*p); });
  }

  // Under load, handshakes without a valid mac2 get a cookie reply instead
  // of DH work. The caller decides (it sees its handshake queue depth).
  void set_under_load(bool on) noexcept { under_load_ = on; }
  bool under_load() const noexcept { return under_load_; }

  // --- receive ---
  Drop receive_handshake(const std::uint8_t* msg, std::size_t len, const Endpoint& src,
                         Instant now, HandshakeRouting* routing = nullptr) noexcept;
  // Inline: once per data message, and the call was measurable at 64
  // bytes. (received() below stays out of line: inline, it made decrypt at
  // 100 000 peers ~30 cycles per message slower, docs/perf.md.)
  // Everything it reads of the session is the receive line the index
  // names (one cache line; the replay ring only for an older block).
  Drop prepare_receive(const std::uint8_t* msg, std::size_t len, Nanos now, RxSlot& slot) noexcept {
    if (classify_message(msg, len) != MessageType::kData) return drop(Drop::kMalformed);
    IndexSlot* line = indices_.find(load_le32(msg + 4));
    if (line == nullptr || !line->is_keypair()) return drop(Drop::kUnknownIndex);
    const std::uint64_t counter = load_le64(msg + 8);
    if (line->expired(now)) return drop(Drop::kKeypairExpired);
    // Cheap pre-check so replays cost no decryption; the window is updated
    // only once the tag has verified (accept_receive).
    if (!line->replay.check(counter, kRejectAfterMessages, ring_of(*line))) return drop(Drop::kReplay);
    slot.line = line;
    slot.peer = line->peer();
    slot.counter = counter;
    return Drop::kOk;
  }
  // After the AEAD verified: wire_len is the UDP payload length (for
  // rx_bytes), plaintext_len 0 means a keepalive. The two steps below.
  Drop complete_receive(const RxSlot& slot, std::size_t wire_len, std::size_t plaintext_len,
                        const Endpoint& src, Instant now) noexcept;
  // complete_receive() in two steps, for a burst: accept_receive() for every
  // verified message (records its counter; kReplay for a duplicate inside
  // the burst, which is then dropped), and received() once per run of
  // accepted messages under one keypair: their UDP payload bytes, how many
  // carried data (not keepalives), and the last one's source. Endpoint,
  // counters, key confirmation and timers then cost once per peer per burst.
  // Inline: once per data message.
  Drop accept_receive(const RxSlot& slot) noexcept {
    // A duplicate inside the same burst passes prepare_receive twice.
    if (!slot.line->replay.check_and_update(slot.counter, kRejectAfterMessages, ring_of(*slot.line)))
      return drop(Drop::kReplay);
    return Drop::kOk;
  }
  // `line` is the run's receive line, `peer` its peer (RxSlot).
  void received(Peer& peer, IndexSlot& line, std::size_t wire_bytes, std::size_t data_messages,
                const Endpoint& src, Instant now) noexcept;

  // --- burst hints (optional: results are the same without them) ---
  // A caller holding a burst of data messages lets the cache misses of all
  // of them overlap instead of paying them one after the other: for every
  // message prefetch_receive_index() (the receive line, all that
  // prepare_receive() reads), then prepare_receive() for each; the peers
  // of the messages that passed (RxSlot::peer, Peer::prefetch) before
  // complete_receive(). `msg` is a data message (classify_message()). The
  // peer's lines are read only after the AEAD, so asking for them with the
  // receive lines would only crowd the misses the pre-checks wait on
  // (docs/perf.md).
  void prefetch_receive_index(const std::uint8_t* msg) const noexcept {
    indices_.prefetch(load_le32(msg + 4));
  }

  // --- send ---
  // Inline for a usable session (once per data message); otherwise a
  // handshake is asked for (prepare_send_slow).
  Drop prepare_send(Peer& peer, Instant now, TxSlot& slot) noexcept {
    SendLine& s = peer.send;
    if (s.can_send(now.mono)) [[likely]] {
      slot.send = &s;
      slot.counter = s.counter++;
      return Drop::kOk;
    }
    return prepare_send_slow(peer, now);
  }
  // wire_bytes: what was actually handed to the network; any_data: whether
  // a non-keepalive message was among it (arms the new-handshake timer).
  void complete_send(Peer& peer, Instant now, std::size_t wire_bytes, bool any_data) noexcept;

  // Starts a handshake now unless one was sent less than REKEY_TIMEOUT ago.
  Drop initiate_handshake(Peer& peer, Instant now, bool retry = false) noexcept;

  // --- timers ---
  void expire_timers(Peer& peer, Instant now) noexcept;

  // --- counters ---
  void count(Drop d) noexcept { ++drops_[static_cast<std::size_t>(d)]; }
  std::uint64_t drops(Drop d) const noexcept { return drops_[static_cast<std::size_t>(d)]; }
  const std::array<std::uint64_t, kDropCount>& drop_counters() const noexcept { return drops_; }
  std::size_t index_count() const noexcept { return indices_.size(); }

  // See IndexTable::set_tag: the receiver indices this device hands out
  // carry `value` in the bits under `mask`. False when the table is too
  // large for that mask (its slot number needs those bits).
  [[nodiscard]] bool set_index_tag(std::uint32_t mask, std::uint32_t value) noexcept {
    return indices_.set_tag(mask, value);
  }

  // Visible for tests and the cookie benchmark.
  CookieChecker& cookie_checker() noexcept { return cookie_checker_; }

 private:
  Drop handle_initiation(const std::uint8_t* msg, const Endpoint& src, Instant now,
                         HandshakeRouting* routing) noexcept;
  Drop handle_response(const std::uint8_t* msg, const Endpoint& src, Instant now,
                       HandshakeRouting* routing) noexcept;
  Drop handle_cookie_reply(const std::uint8_t* msg, Nanos now) noexcept;
  Drop prepare_send_slow(Peer& peer, Instant now) noexcept;
  void keep_key_fresh_sent(Peer& peer, Instant now) noexcept;
  // If we initiated the current session and only receive on it, rekey
  // shortly before it would be rejected: the peer, as responder, will not.
  // Decided on a message received under current (the line's flags and age
  // say all; other messages leave it to the next one under current, as
  // the peer sends under its current, which is ours or our next). The age
  // first: the flag lies off the peer's per-message lines.
  void keep_key_fresh_received(Peer& peer, const IndexSlot& line, Instant now) noexcept {
    if (line.has(IndexSlot::kCurrent) && line.has(IndexSlot::kInitiator) &&
        line.older_than(now.mono, kRejectAfterTime - kKeepaliveTimeout - kRekeyTimeout) &&
        !peer.sent_lastminute_handshake) [[unlikely]]
      send_lastminute_handshake(peer, now);
  }
  // The replay ring of a line's keypair, for ReplayHead (only called when
  // the newest block changes or a message is from an older one).
  struct RingOf {
    const IndexTable* indices;
    const IndexSlot* line;
    ReplayRing& operator()() const noexcept { return indices->keypair_of(*line)->replay_ring; }
  };
  RingOf ring_of(const IndexSlot& line) const noexcept { return RingOf{&indices_, &line}; }
  void send_lastminute_handshake(Peer& peer, Instant now) noexcept;
  // A data message confirmed the next keypair: the handshake is complete.
  void received_next(Peer& peer, Instant now) noexcept;
  void handshake_complete(Peer& peer, Instant now) noexcept;
  Drop start_session(Peer& peer, Instant now) noexcept;
  void clear_handshake_index(Peer& peer) noexcept;
  void zero_key_material(Peer& peer) noexcept;
  void send_to_peer(Peer& peer, std::uint8_t* msg, std::size_t len, Instant now) noexcept;
  Drop drop(Drop d) noexcept {
    count(d);
    return d;
  }

  DeviceHost& host_;
  StaticIdentity identity_;
  CookieChecker cookie_checker_;
  PeerTable peers_;
  IndexTable indices_;
  std::unordered_map<Peer*, std::unique_ptr<Peer>> owned_;  // control path only
  bool under_load_ = false;
  std::array<std::uint64_t, kDropCount> drops_{};
};

}  // namespace moongate::wg
