// The netmap: what the control process decides and the data plane applies
// while it forwards — our key and port, the peers (keys, allowed IPs,
// endpoints, keepalives, exit_node, names and tags) and the static
// routes, and the access policy (as written: the data plane compiles it
// against the peers' names and tags). Ports, lcores and memory are not in it: changing those needs a
// data-plane restart.
//
// The control process builds it from the YAML (config/) and from changes
// made through the WireGuard UAPI; it crosses to the data plane as an
// immutable snapshot with a generation number (snapshot.h, segment.h).
#pragma once

#include <cstdint>
#include <optional>
#include <vector>

#include "config/config.h"

namespace moongate::netmap {

struct Netmap {
  std::uint64_t generation = 0;  // set by the publisher; increases by one per snapshot
  config::SecretKey private_key;
  bool has_private_key = false;
  std::uint16_t listen_port = config::kDefaultListenPort;
  std::vector<config::Peer> peers;
  std::vector<config::Route> routes;
  std::optional<policy::PolicySpec> policy;  // the YAML's `policy:`; none: everything routed passes

  friend bool operator==(const Netmap&, const Netmap&) noexcept;
};

// The dynamic part of a loaded configuration.
Netmap from_config(const config::Config& cfg);

}  // namespace moongate::netmap
