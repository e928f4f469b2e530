// What the control process knows about each peer at run time, from the
// data plane's events (netmap/events.h): transfer counters, the last
// handshake, the current endpoint. Keyed by public key, so it survives
// netmap changes and is rebuilt within a second after a control restart.
#pragma once

#include <array>
#include <cstdint>
#include <cstring>
#include <optional>
#include <string>
#include <unordered_map>

#include "config/address.h"
#include "crypto/x25519.h"

namespace moongate::control {

struct PeerRuntime {
  std::uint64_t rx_bytes = 0;
  std::uint64_t tx_bytes = 0;
  std::uint64_t last_handshake_ns = 0;  // wall clock; 0 = never
  std::uint64_t handshakes = 0;
  std::optional<config::Endpoint> endpoint;  // as the data plane last saw it
};

struct KeyHash {
  std::size_t operator()(const crypto::PublicKey& k) const noexcept {
    std::size_t h = 0;
    std::memcpy(&h, k.data(), sizeof h);  // keys are uniformly random
    return h;
  }
};

using RuntimeTable = std::unordered_map<crypto::PublicKey, PeerRuntime, KeyHash>;

}  // namespace moongate::control
