// A configured peer: its identity, handshake, keypairs, timers, endpoint
// and counters. Owned by the Device; on the data plane, by one lcore.
#pragma once

#include <cstdint>

#include "crypto/secret.h"
#include "crypto/x25519.h"
#include "wireguard/cookie.h"
#include "wireguard/endpoint.h"
#include "wireguard/huge_pages.h"
#include "wireguard/keypair.h"
#include "wireguard/noise.h"
#include "wireguard/timers.h"

namespace moongate::wg {

// Laid out for the packet paths: what every data message reads or writes
// (keypairs, timers, endpoint, byte counters, the caller's pointer) comes
// first and fills the first two cache lines; the handshake state and the
// cookie, used a few times per two minutes, follow. Cache-line aligned so
// that holds; allocated from a huge-page slab (huge_pages.h).
class alignas(64) Peer : public OnHugeSlab<Peer> {
 public:
  explicit Peer(const crypto::PublicKey& public_key) noexcept : public_key_(public_key) {}
  Peer(const Peer&) = delete;
  Peer& operator=(const Peer&) = delete;

  const crypto::PublicKey& public_key() const noexcept { return public_key_; }

  // --- per data message ---
  Keypairs keypairs;
  PeerTimers timers;
  Endpoint endpoint;
  // Counters as `wg show` reports them: UDP payload bytes of every message.
  std::uint64_t rx_bytes = 0;
  std::uint64_t tx_bytes = 0;
  // Free for the caller (its staged-packet queue, route state, ...).
  void* user = nullptr;
  bool sent_lastminute_handshake = false;  // see Device::keep_key_fresh_received

  // --- per handshake ---
  bool sent_any_handshake = false;
  Nanos last_sent_handshake = 0;      // rate limit: one initiation per REKEY_TIMEOUT
  std::uint64_t last_handshake_wall_ns = 0;  // 0 = never
  std::uint64_t handshakes_completed = 0;
  Handshake handshake;
  CookieMaker cookie;

  // A cache hint for a data message to or from this peer: the first two
  // lines (above). Burst callers issue it for a whole burst.
  void prefetch() const noexcept {
    __builtin_prefetch(this);
    __builtin_prefetch(reinterpret_cast<const char*>(this) + 64);
  }

 private:
  crypto::PublicKey public_key_;
};

}  // namespace moongate::wg
