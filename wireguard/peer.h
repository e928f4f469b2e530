// A configured peer: its identity, handshake, keypairs, timers, endpoint
// and counters. Owned by the Device; on the data plane, by one lcore.
#pragma once

#include <cstdint>

#include "crypto/secret.h"
#include "crypto/x25519.h"
#include "wireguard/cookie.h"
#include "wireguard/endpoint.h"
#include "wireguard/keypair.h"
#include "wireguard/noise.h"
#include "wireguard/timers.h"

namespace moongate::wg {

class Peer {
 public:
  explicit Peer(const crypto::PublicKey& public_key) noexcept : public_key_(public_key) {}
  Peer(const Peer&) = delete;
  Peer& operator=(const Peer&) = delete;

  const crypto::PublicKey& public_key() const noexcept { return public_key_; }

  Handshake handshake;
  Keypairs keypairs;
  PeerTimers timers;
  CookieMaker cookie;
  Endpoint endpoint;

  Nanos last_sent_handshake = 0;      // rate limit: one initiation per REKEY_TIMEOUT
  bool sent_any_handshake = false;
  bool sent_lastminute_handshake = false;  // see Device::keep_key_fresh_received

  // Counters as `wg show` reports them: UDP payload bytes of every message.
  std::uint64_t rx_bytes = 0;
  std::uint64_t tx_bytes = 0;
  std::uint64_t last_handshake_wall_ns = 0;  // 0 = never
  std::uint64_t handshakes_completed = 0;

  // Free for the caller (its staged-packet queue, route state, ...).
  void* user = nullptr;

 private:
  crypto::PublicKey public_key_;
};

}  // namespace moongate::wg
