// Neighbours of one port: IPv4 (ARP, 4-byte keys) or IPv6 (ND, 16-byte
// keys): resolved MACs, and one packet held per unresolved neighbour while
// its ARP request / neighbour solicitation is out.
//
// Lookups are on the packet path: an rte_hash keyed by the address, whose
// position indexes a flat entry array. Owned by one lcore.
#pragma once

#include <rte_ether.h>

#include <cstdint>
#include <cstring>

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
  // when full. The last address asked for is remembered with its entry:
  // nearly every packet out of a port goes to the same next hop (the WAN
  // gateway, a LAN router), which then costs a compare instead of a hash
  // lookup. Entries are never removed, so the remembered pointer stays
  // valid; whoever adds removal must forget it there.
  Entry* get(const void* addr) noexcept {
    if (last_ != nullptr && is_last(addr)) return last_;
    return get_slow(addr);
  }
  Entry* get(std::uint32_t ip) noexcept { return get(&ip); }
  const Entry* find(const void* addr) const noexcept;

 private:
  Entry* get_slow(const void* addr) noexcept;
  // Fixed-size compares, so they compile to one or two loads.
  bool is_last(const void* addr) const noexcept {
    if (key_len_ == 4) return std::memcmp(addr, last_key_, 4) == 0;
    return std::memcmp(addr, last_key_, 16) == 0;
  }

  Entry* last_ = nullptr;           // the entry of last_key_
  std::uint8_t last_key_[16] = {};  // key_len_ bytes used
  std::uint32_t key_len_ = 4;
  rte_hash* hash_ = nullptr;
  Entry* entries_ = nullptr;
  std::uint32_t capacity_ = 0;
};

}  // namespace moongate::dp
