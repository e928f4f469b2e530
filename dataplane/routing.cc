// Building the per-generation lookup tables; routing.h.
#include "dataplane/routing.h"

#include <rte_errno.h>
#include <rte_lpm.h>
#include <rte_lpm6.h>

#include <arpa/inet.h>

#include <algorithm>
#include <atomic>

namespace moongate::dp {

Routing::~Routing() {
  if (allowed_v4 != nullptr) rte_lpm_free(allowed_v4);
  if (allowed_v6 != nullptr) rte_lpm6_free(allowed_v6);
}

std::unique_ptr<Routing> make_routing_tables(std::uint32_t v4_rules, std::uint32_t v6_rules, int socket,
                                             std::string& error) {
  static std::atomic<std::uint64_t> made{0};
  const std::uint64_t n = made.fetch_add(1, std::memory_order_relaxed);
  auto r = std::make_unique<Routing>();
  r->v4_capacity = v4_rules;
  r->v6_capacity = v6_rules;
  const std::string name4 = "mg_v4_" + std::to_string(n);
  rte_lpm_config lc{};
  lc.max_rules = v4_rules;
  lc.number_tbl8s = std::min<std::uint32_t>(v4_rules, 65535);
  r->allowed_v4 = rte_lpm_create(name4.c_str(), socket, &lc);
  if (r->allowed_v4 == nullptr) {
    error = std::string("allowed-ips table: ") + rte_strerror(rte_errno);
    return nullptr;
  }
  const std::string name6 = "mg_v6_" + std::to_string(n);
  rte_lpm6_config lc6{};
  lc6.max_rules = v6_rules;
  lc6.number_tbl8s = std::min<std::uint32_t>(v6_rules * 4, 1 << 20);
  r->allowed_v6 = rte_lpm6_create(name6.c_str(), socket, &lc6);
  if (r->allowed_v6 == nullptr) {
    error = std::string("allowed-ips table (IPv6): ") + rte_strerror(rte_errno);
    return nullptr;
  }
  return r;
}

std::unique_ptr<Routing> build_routing(std::uint64_t generation, const std::vector<RoutedPeer>& peers,
                                       std::vector<StaticRoute> routes, std::vector<StaticRoute6> routes6,
                                       std::uint16_t listen_port, int socket, std::string& error) {
  // Room to grow: a retired Routing is updated in place for the next
  // generation (update_routing) as long as the rules fit.
  std::uint32_t rules = 0, rules6 = 0;
  for (const auto& p : peers) {
    rules += static_cast<std::uint32_t>(p.settings->allowed_v4.size());
    rules6 += static_cast<std::uint32_t>(p.settings->allowed_v6.size());
  }
  auto r = make_routing_tables(std::max<std::uint32_t>(4096, rules * 2), std::max<std::uint32_t>(1024, rules6 * 2),
                               socket, error);
  if (!r) return nullptr;
  r->generation = generation;
  r->routes = std::move(routes);
  r->routes6 = std::move(routes6);
  r->listen_port = listen_port;
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

RoutingContent routing_content(const std::vector<RoutedPeer>& peers) {
  RoutingContent c;
  for (const auto& p : peers) {
    for (const auto& [addr, len] : p.settings->allowed_v4) c.v4[{addr, len}] = p.id;
    for (const auto& [addr, len] : p.settings->allowed_v6) c.v6[{addr, len}] = p.id;
  }
  return c;
}

bool update_routing(Routing& r, const RoutingContent& have, const RoutingContent& want) {
  if (want.v4.size() > r.v4_capacity || want.v6.size() > r.v6_capacity) return false;
  for (const auto& [k, id] : have.v4)
    if (!want.v4.count(k) && rte_lpm_delete(r.allowed_v4, ntohl(k.first), k.second) < 0) return false;
  for (const auto& [k, id] : want.v4) {
    const auto h = have.v4.find(k);
    if (h != have.v4.end() && h->second == id) continue;
    if (rte_lpm_add(r.allowed_v4, ntohl(k.first), k.second, id) < 0) return false;  // tbl8s exhausted
  }
  // rte_lpm6 rebuilds its whole table on delete: one bulk delete per change.
  std::vector<std::uint8_t> ips;
  std::vector<std::uint8_t> depths;
  for (const auto& [k, id] : have.v6)
    if (!want.v6.count(k)) {
      ips.insert(ips.end(), k.first.begin(), k.first.end());
      depths.push_back(k.second);
    }
  if (!depths.empty()) {
    if (rte_lpm6_delete_bulk_func(r.allowed_v6, reinterpret_cast<std::uint8_t(*)[RTE_LPM6_IPV6_ADDR_SIZE]>(ips.data()),
                                  depths.data(), static_cast<unsigned>(depths.size())) < 0)
      return false;
  }
  for (const auto& [k, id] : want.v6) {
    const auto h = have.v6.find(k);
    if (h != have.v6.end() && h->second == id) continue;
    if (rte_lpm6_add(r.allowed_v6, k.first.data(), k.second, id) < 0) return false;
  }
  return true;
}

}  // namespace moongate::dp
