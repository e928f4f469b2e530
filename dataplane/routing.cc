// Building the per-generation lookup tables; routing.h.
#include "dataplane/routing.h"

#include <rte_errno.h>
#include <rte_lpm.h>
#include <rte_lpm6.h>

#include <arpa/inet.h>

#include <algorithm>

namespace moongate::dp {

Routing::~Routing() {
  if (allowed_v4 != nullptr) rte_lpm_free(allowed_v4);
  if (allowed_v6 != nullptr) rte_lpm6_free(allowed_v6);
}

std::unique_ptr<Routing> build_routing(std::uint64_t generation, const std::vector<RoutedPeer>& peers,
                                       std::vector<StaticRoute> routes, std::vector<StaticRoute6> routes6,
                                       std::uint16_t listen_port, int socket, std::string& error) {
  auto r = std::make_unique<Routing>();
  r->generation = generation;
  r->routes = std::move(routes);
  r->routes6 = std::move(routes6);
  r->listen_port = listen_port;
  std::uint32_t rules = 16, rules6 = 16;
  for (const auto& p : peers) {
    rules += static_cast<std::uint32_t>(p.settings->allowed_v4.size());
    rules6 += static_cast<std::uint32_t>(p.settings->allowed_v6.size());
  }
  const std::string name4 = "mg_v4_" + std::to_string(generation);
  rte_lpm_config lc{};
  lc.max_rules = rules;
  lc.number_tbl8s = std::min<std::uint32_t>(std::max<std::uint32_t>(256, rules), 65535);
  r->allowed_v4 = rte_lpm_create(name4.c_str(), socket, &lc);
  if (r->allowed_v4 == nullptr) {
    error = std::string("allowed-ips table: ") + rte_strerror(rte_errno);
    return nullptr;
  }
  const std::string name6 = "mg_v6_" + std::to_string(generation);
  rte_lpm6_config lc6{};
  lc6.max_rules = rules6;
  lc6.number_tbl8s = std::min<std::uint32_t>(std::max<std::uint32_t>(256, rules6 * 4), 1 << 20);
  r->allowed_v6 = rte_lpm6_create(name6.c_str(), socket, &lc6);
  if (r->allowed_v6 == nullptr) {
    error = std::string("allowed-ips table (IPv6): ") + rte_strerror(rte_errno);
    return nullptr;
  }
  for (const auto& p : peers) {
    for (const auto& [addr, len] : p.settings->allowed_v4) {
      if (int rc = rte_lpm_add(r->allowed_v4, ntohl(addr), len, p.id); rc < 0) {
        char b[INET_ADDRSTRLEN];
        inet_ntop(AF_INET, &addr, b, sizeof b);
        error = std::string("allowed-ips ") + b + "/" + std::to_string(len) + ": " + rte_strerror(-rc);
        return nullptr;
      }
    }
    for (const auto& [addr, len] : p.settings->allowed_v6) {
      if (int rc = rte_lpm6_add(r->allowed_v6, addr.data(), len, p.id); rc < 0) {
        char b[INET6_ADDRSTRLEN];
        inet_ntop(AF_INET6, addr.data(), b, sizeof b);
        error = std::string("allowed-ips ") + b + "/" + std::to_string(len) + ": " + rte_strerror(-rc);
        return nullptr;
      }
    }
  }
  return r;
}

}  // namespace moongate::dp
