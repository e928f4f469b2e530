// The port slices of each lcore; port_partition.h explains the rule.
#include "nat/port_partition.h"

#include <algorithm>
#include <stdexcept>

namespace moongate::nat {

namespace {
constexpr std::uint32_t kMinPortsPerLcore = 64;
}

PortPartition::PortPartition(std::vector<net::Ipv4Address> pool, unsigned lcores,
                             std::uint16_t port_min, std::uint16_t port_max)
    : pool_(std::move(pool)), lcores_(lcores), port_min_(port_min), port_max_(port_max) {
  if (pool_.empty()) throw std::invalid_argument("nat: the address pool is empty");
  if (lcores_ == 0) throw std::invalid_argument("nat: no lcores");
  if (port_max_ < port_min_) throw std::invalid_argument("nat: port_max < port_min");
  slice_ = (std::uint32_t{port_max_} - port_min_ + 1) / lcores_;
  if (slice_ < kMinPortsPerLcore)
    throw std::invalid_argument("nat: fewer than 64 ports per lcore");
}

int PortPartition::pool_index(const net::Ipv4Address& addr) const noexcept {
  for (std::size_t i = 0; i < pool_.size(); ++i)
    if (pool_[i] == addr) return static_cast<int>(i);
  return -1;
}

int PortPartition::owner_of(const net::Ipv4Address& addr, std::uint8_t protocol,
                            std::uint16_t port) const noexcept {
  if (protocol != 6 && protocol != 17 && protocol != 1) return kNoOwner;
  if (!in_range(port) || pool_index(addr) < 0) return kNoOwner;
  const std::uint32_t i = (std::uint32_t{port} - port_min_) / slice_;
  return static_cast<int>(std::min<std::uint32_t>(i, lcores_ - 1));
}

PortRange PortPartition::range_of(unsigned lcore) const noexcept {
  PortRange r;
  r.first = static_cast<std::uint16_t>(port_min_ + lcore * slice_);
  r.last = lcore + 1 == lcores_ ? port_max_
                                : static_cast<std::uint16_t>(port_min_ + (lcore + 1) * slice_ - 1);
  return r;
}

}  // namespace moongate::nat
