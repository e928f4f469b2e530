// A configured peer: its identity, handshake, keypairs, timers, endpoint
// and counters. Owned by the Device; on the data plane, by one lcore.
#pragma once

#include <cstddef>
#include <cstdint>

#include "crypto/secret.h"
#include "crypto/x25519.h"
#include "wireguard/cookie.h"
#include "wireguard/endpoint.h"
#include "wireguard/huge_pages.h"
#include "wireguard/prefetch.h"
#include "wireguard/keypair.h"
#include "wireguard/noise.h"
#include "wireguard/timers.h"

namespace moongate::wg {

// Laid out for the packet paths, in cache lines:
//   line 0  handshake bookkeeping, the caller's pointer and the timers'
//           handshake part: no data message reads it
//   line 1  what every data message reads or writes, either way: the
//           timers' per-packet part (with the host's armed wake-up), the
//           endpoint; and what a received one also needs: the caller's
//           id (the source check) and the receive byte counter
//   line 2  what a message sent also needs: the send line (the current
//           session's key, nonce counter, remote index, age) and the send
//           byte counter
//   then    the keypairs, the handshake state and the cookie, used a few
//           times per two minutes
// So a received message touches line 1 of per-peer state besides its
// receive line, and a sent one lines 1-2, at addresses that follow from
// the peer's. At 100 000 peers each is a cache miss (docs/perf.md, "The
// send line on the peer", "One line per message received, one relink per
// fire"). The caller's per-packet needs live here for that reason
// (host_id, PeerTimers::arm_earlier).
// Cache-line aligned so that holds; allocated from a huge-page slab
// (huge_pages.h).
class alignas(64) Peer : public OnHugeSlab<Peer> {
 public:
  explicit Peer(const crypto::PublicKey& public_key) noexcept : public_key_(public_key) {}
  Peer(const Peer&) = delete;
  Peer& operator=(const Peer&) = delete;

  const crypto::PublicKey& public_key() const noexcept { return public_key_; }

  // --- line 0: per handshake ---
  // Free for the caller (its staged-packet queue, route state, ...).
  void* user = nullptr;
  bool sent_lastminute_handshake = false;  // see Device::keep_key_fresh_received
  bool sent_any_handshake = false;
  Nanos last_sent_handshake = 0;             // rate limit: one initiation per REKEY_TIMEOUT
  std::uint64_t last_handshake_wall_ns = 0;  // 0 = never
  std::uint64_t handshakes_completed = 0;

  // --- line 1 (the timers' per-packet part on), both ways ---
  PeerTimers timers;
  Endpoint endpoint;
  // Free for the caller: a number it knows the peer by (the data plane's
  // global id, which its allowed-IPs tables return: the source check of
  // every decrypted packet compares against it).
  std::uint32_t host_id = 0;
  // Counters as `wg show` reports them: UDP payload bytes of every message.
  std::uint64_t rx_bytes = 0;

  // --- line 2: per data message sent ---
  SendLine send;  // the current session's; Keypairs rewrites it
  std::uint64_t tx_bytes = 0;

  // --- per handshake ---
  Keypairs keypairs;
  Handshake handshake;
  CookieMaker cookie;

  // Cache hints for a data message to or from this peer. Burst callers
  // issue them for a whole burst, each where it hides best:
  //   prefetch_message_line(): line 1, which every data message reads or
  //     writes after its AEAD (timers, endpoint; a received one's source
  //     check and byte counter);
  //   prefetch_send_line(): line 2, which a sent message reads before its
  //     AEAD (key, nonce, index) and writes after (byte counter).
  void prefetch_message_line() const noexcept { prefetch_line(reinterpret_cast<const char*>(this) + 64); }
  void prefetch_send_line() const noexcept { prefetch_line(reinterpret_cast<const char*>(this) + 128); }
  // Line 1 into L2 only: for a caller that reads it after other heavy
  // work (decrypt's AEAD), then asks again with prefetch_message_line().
  void prefetch_message_line_l2() const noexcept { prefetch_line_l2(reinterpret_cast<const char*>(this) + 64); }
  // Line 0, for a caller whose path reads `user` too.
  void prefetch_user() const noexcept { prefetch_line(this); }

 private:
  crypto::PublicKey public_key_;
};

// The lines above, checked where the layout is defined (offsetof is only
// conditionally supported on a class that is not standard-layout, hence
// the pragma).
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Winvalid-offsetof"
static_assert(offsetof(Peer, timers) + PeerTimers::kPacketOffset == 64 &&
                  offsetof(Peer, endpoint) >= 64 + PeerTimers::kPacketBytes &&
                  offsetof(Peer, rx_bytes) + sizeof(std::uint64_t) <= 128,
              "line 1: the timers' per-packet part, the endpoint, host_id and rx_bytes");
static_assert(offsetof(Peer, send) == 128 && offsetof(Peer, tx_bytes) + sizeof(std::uint64_t) <= 192,
              "line 2: the send line and the send byte counter");
#pragma GCC diagnostic pop

}  // namespace moongate::wg
