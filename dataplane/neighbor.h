// Neighbours of one port: IPv4 (ARP, 4-byte keys) or IPv6 (ND, 16-byte
// keys): resolved MACs, and one packet held per unresolved neighbour while
// its ARP request / neighbour solicitation is out.
//
// Lookups are on the packet path: an rte_hash keyed by the address, whose
// position indexes a flat entry array. Owned by one lcore.
#pragma once

#include <rte_ether.h>

#include <cstdint>

struct rte_hash;
struct rte_mbuf;

namespace moongate::dp {

class NeighborTable {
 public:
  struct Entry {
    rte_ether_addr mac{};
    bool resolved = false;
    rte_mbuf* pending = nullptr;     // one packet waiting for the answer
    std::uint64_t requested_tsc = 0; // last ARP request sent
  };

  NeighborTable() = default;
  ~NeighborTable();
  NeighborTable(const NeighborTable&) = delete;
  NeighborTable& operator=(const NeighborTable&) = delete;

  // Creates the hash for `capacity` neighbours with addresses of key_len
  // bytes (4 or 16); false with rte_errno set.
  bool init(const char* name, std::uint32_t capacity, int socket, std::uint32_t key_len = 4);

  // The entry for an address (network order), created if absent; nullptr
  // when full.
  Entry* get(const void* addr) noexcept;
  Entry* get(std::uint32_t ip) noexcept { return get(&ip); }
  const Entry* find(const void* addr) const noexcept;

 private:
  rte_hash* hash_ = nullptr;
  Entry* entries_ = nullptr;
  std::uint32_t capacity_ = 0;
};

}  // namespace moongate::dp
