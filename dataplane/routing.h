// What the workers look up for every packet and the control process may
// change while they run: the allowed-IPs tables (prefix -> global peer id),
// the static routes and the listen port. A Routing is immutable once
// published; a new netmap brings a new one (netmap_service.h), swapped in
// with one atomic store and freed after every worker has passed a quiescent
// point (rte_rcu_qsbr), so lookups take no lock.
#pragma once

#include <cstdint>
#include <map>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "dataplane/shared.h"
#include "policy/acl.h"

struct rte_lpm;
struct rte_lpm6;

namespace moongate::dp {

// The access policy as the workers apply it: one rte_acl classifier for
// all of them (classify() only reads it), built off the worker lcores (by
// the Gateway at start, by the netmap service on a change) and published
// inside a Routing, so that it and the peer ids it names change together
// and it is freed only after every worker passed a quiescent point.
struct PolicyState {
  std::unique_ptr<policy::AclClassifier> acl;
  std::size_t rules = 0;    // the policy's rules (per-rule counters)
  std::uint64_t epoch = 0;  // changes with the rules as written (not with the peers behind them)
};

// One entry per peer to route to: its global id and its allowed IPs.
struct RoutedPeer {
  std::uint32_t id;
  const PeerSettings* settings;
};

struct Routing {
  Routing() = default;
  ~Routing();
  Routing(const Routing&) = delete;
  Routing& operator=(const Routing&) = delete;

  std::uint64_t generation = 0;
  rte_lpm* allowed_v4 = nullptr;
  rte_lpm6* allowed_v6 = nullptr;
  std::vector<StaticRoute> routes;
  std::vector<StaticRoute6> routes6;
  std::uint16_t listen_port = 51820;
  // The policy in force; nullptr: none. Shared between the published
  // Routing and the spare (only the netmap service copies the pointer).
  std::shared_ptr<const PolicyState> policy;
  std::uint32_t v4_capacity = 0;  // rules the tables were made for
  std::uint32_t v6_capacity = 0;
};

// The allowed-IPs rules of a Routing, kept by the netmap service so that a
// retired Routing can be brought up to date with only the differences.
struct RoutingContent {
  std::map<std::pair<std::uint32_t, std::uint8_t>, std::uint32_t> v4;  // (addr network order, len) -> id
  std::map<std::pair<Ipv6Bytes, std::uint8_t>, std::uint32_t> v6;
};
RoutingContent routing_content(const std::vector<RoutedPeer>& peers);

// Turns `r` (holding `have`, read by no worker) into `want` by deleting and
// adding only the rules that differ. False (r unusable) when the tables
// are too small: build a new one then.
bool update_routing(Routing& r, const RoutingContent& have, const RoutingContent& want);


// Empty tables with room for `v4_rules` and `v6_rules` allowed-IPs rules
// (DPDK table names are global: each gets a name of its own). nullptr and
// `error` (operator-readable) on failure.
std::unique_ptr<Routing> make_routing_tables(std::uint32_t v4_rules, std::uint32_t v6_rules, int socket,
                                             std::string& error);

// Builds the tables with room to grow (twice the rules, at least 4096 IPv4
// and 1024 IPv6 rules). nullptr and `error` (operator-readable) on failure.
std::unique_ptr<Routing> build_routing(std::uint64_t generation, const std::vector<RoutedPeer>& peers,
                                       std::vector<StaticRoute> routes, std::vector<StaticRoute6> routes6,
                                       std::uint16_t listen_port, int socket, std::string& error);

}  // namespace moongate::dp
