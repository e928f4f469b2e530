// Netmap equality and its construction from a configuration.
#include "netmap/netmap.h"

#include "crypto/secret.h"

namespace moongate::netmap {

bool operator==(const Netmap& a, const Netmap& b) noexcept {
  return a.generation == b.generation && a.has_private_key == b.has_private_key &&
         (!a.has_private_key ||
          crypto::ct_equal(a.private_key.data(), b.private_key.data(), a.private_key.size())) &&
         a.listen_port == b.listen_port && a.peers == b.peers && a.routes == b.routes &&
         a.policy == b.policy;
}

Netmap from_config(const config::Config& cfg) {
  Netmap n;
  n.private_key = cfg.interface.private_key;
  n.has_private_key = true;
  n.listen_port = cfg.interface.listen_port;
  n.peers = cfg.peers;
  // The netmap holds values, not where they came from: key file names and
  // route port names stay with the configuration.
  for (auto& p : n.peers) p.preshared_key_file.clear();
  n.routes = cfg.routes;
  for (auto& r : n.routes) r.port.clear();
  n.policy = cfg.policy;
  return n;
}

}  // namespace moongate::netmap
