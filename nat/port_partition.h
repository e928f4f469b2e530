// Which lcore owns an external (address, protocol, port): the rule that
// lets every worker allocate ports without a lock shared across cores, and
// lets any worker find the owner of a return packet from its header alone.
//
// Every external address's port range [port_min, port_max] (ICMP query ids
// use the same numbers) is cut into `lcores` consecutive slices, lcore i
// taking the i-th (the last one also the remainder):
//
//   ports 1024..65535, 2 lcores:  lcore 0 1024..33279, lcore 1 33280..65535
//
// A worker only ever hands out ports of its own slice, so two workers never
// pick the same (address, port) and neither needs to ask the other. Return
// traffic (or an ICMP error quoting our packet) names the external port, so
// owner_of() tells a worker that received it on the wrong lcore (RSS does
// not know about NAT) which ring to hand it to. The same partition applies
// to every protocol: TCP, UDP and ICMP ids are separate namespaces in the
// flow tables, the slices are just the same numbers.
//
// Immutable after construction; every lcore may read one copy.
#pragma once

#include <cstddef>
#include <cstdint>
#include <vector>

#include "dataplane/net/address.h"

namespace moongate::nat {

inline constexpr std::uint16_t kDefaultPortMin = 1024;  // below: the gateway's own services
inline constexpr std::uint16_t kDefaultPortMax = 65535;
inline constexpr int kNoOwner = -1;

struct PortRange {
  std::uint16_t first = 0;
  std::uint16_t last = 0;  // inclusive
  std::uint32_t size() const noexcept { return std::uint32_t{last} - first + 1; }
  bool contains(std::uint16_t p) const noexcept { return p >= first && p <= last; }
};

class PortPartition {
 public:
  // `pool`: the external addresses (1 for masquerade, a few for a pool).
  // Throws std::invalid_argument when the pool is empty, lcores is 0 or the
  // range gives an lcore fewer than 64 ports.
  PortPartition(std::vector<net::Ipv4Address> pool, unsigned lcores,
                std::uint16_t port_min = kDefaultPortMin, std::uint16_t port_max = kDefaultPortMax);

  // The lcore owning `port` of external address `addr` for `protocol`
  // (6, 17 or 1), or kNoOwner when addr is not ours or the port lies outside
  // the NAT range (such a packet is not NAT traffic: the gateway's own).
  int owner_of(const net::Ipv4Address& addr, std::uint8_t protocol,
               std::uint16_t port) const noexcept;

  // The index of `addr` in the pool, or -1.
  int pool_index(const net::Ipv4Address& addr) const noexcept;
  bool in_range(std::uint16_t port) const noexcept { return port >= port_min_ && port <= port_max_; }

  PortRange range_of(unsigned lcore) const noexcept;
  const std::vector<net::Ipv4Address>& pool() const noexcept { return pool_; }
  unsigned lcores() const noexcept { return lcores_; }

 private:
  std::vector<net::Ipv4Address> pool_;
  unsigned lcores_;
  std::uint16_t port_min_;
  std::uint16_t port_max_;
  std::uint32_t slice_;  // ports per lcore (the last one takes the remainder)
};

}  // namespace moongate::nat
