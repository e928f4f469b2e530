// Nat44: the NAT44 core of one lcore (masquerade to the WAN address or an
// address pool, connection tracking, ICMP error translation). I/O-free and
// clock-injected: an IPv4 packet, a direction and `now` in, a verdict out;
// the packet is translated in place. No DPDK, no allocation after
// construction, no exceptions and no lock on the packet path.
//
// One instance per worker lcore, each with its own flow table and its own
// slice of every external address's ports (port_partition.h), so no state
// is shared between lcores. The data plane calls it on two paths:
//
//   outbound  a decrypted packet from a peer allowed to use the exit, to
//             an "internet" destination: always handled by the lcore that
//             owns the peer (it received it), which creates the flow
//   inbound   a WAN packet to an external address that is not WireGuard:
//             owned by the lcore whose port slice holds the destination
//             port (or the quoted source port of an ICMP error); any other
//             lcore gets kHandOff with the owner and passes the packet over
//             its hand-off ring unchanged
#pragma once

#include <cstddef>
#include <cstdint>
#include <vector>

#include "dataplane/net/address.h"
#include "dataplane/net/ipv4.h"
#include "nat/drops.h"
#include "nat/flow_table.h"
#include "nat/packet.h"
#include "nat/port_partition.h"
#include "nat/timeouts.h"

namespace moongate::nat {

inline constexpr std::size_t kDefaultMaxFlows = 1'000'000;

struct Nat44Config {
  std::vector<net::Ipv4Address> pool;  // external addresses; masquerade: the WAN address
  std::uint16_t port_min = kDefaultPortMin;
  std::uint16_t port_max = kDefaultPortMax;
  // Ports of the gateway's own services inside [port_min, port_max] (the
  // WireGuard listen port): never allocated, and inbound traffic to them
  // or ICMP errors about them are kNotNat.
  std::vector<std::uint16_t> reserved_ports;
  Timeouts timeouts;
  std::size_t max_flows = kDefaultMaxFlows;  // over all lcores
  unsigned lcores = 1;
  std::uint64_t seed = 0;  // hash and port-choice key; random in production
};

enum class Direction : std::uint8_t {
  kOutbound,  // tunnel -> internet
  kInbound,   // internet -> tunnel
};

enum class Verdict : std::uint8_t {
  kTranslated,  // rewritten in place: forward it
  kDrop,        // `drop` says why (already counted)
  kNotNat,      // inbound only: not NAT traffic (the gateway's own); untouched
  kHandOff,     // inbound only: belongs to lcore `owner`; untouched
};

struct Result {
  Verdict verdict = Verdict::kDrop;
  NatDrop drop = NatDrop::kCount;
  int owner = kNoOwner;  // kHandOff
};

class Nat44 {
 public:
  // Preallocates ceil(max_flows / lcores) flows for lcore `lcore`. Throws
  // std::invalid_argument on a bad configuration.
  Nat44(const Nat44Config& config, unsigned lcore, std::uint64_t now_ns);
  Nat44(const Nat44&) = delete;
  Nat44& operator=(const Nat44&) = delete;

  // `ip`: an IPv4 packet (the header at ip[0]), `len` bytes of buffer
  // (bytes past the IPv4 total length are ignored, and kept).
  Result translate(std::uint8_t* ip, std::size_t len, Direction dir, std::uint64_t now_ns) noexcept;
  // The same for a header the caller has already validated with
  // net::parse_ipv4 (the data plane does on receive): saves parsing and
  // checksumming it again.
  Result translate(std::uint8_t* ip, const net::Ipv4Header& h, Direction dir,
                   std::uint64_t now_ns) noexcept;

  // Starts loading the table slot `ip`'s lookup will read. A worker with a
  // burst calls this for every packet first, then translate() for each, so
  // the cache misses of the burst overlap instead of queueing (with
  // 100 000 flows the tables are far larger than the cache). Reads only
  // the first bytes it needs; a short or odd packet is simply skipped.
  void prefetch(const std::uint8_t* ip, std::size_t len, Direction dir) const noexcept;
  // Second stage, after prefetch() of the whole burst: finds the slot (now
  // in cache) and starts loading the flow record it names.
  void prefetch_flow(const std::uint8_t* ip, std::size_t len, Direction dir) const noexcept;

  // Frees expired flows: bounded work per call (`budget` timer fires);
  // call on every loop iteration. Returns the flows freed.
  std::size_t expire(std::uint64_t now_ns, std::size_t budget = 64) noexcept;

  // The lcore owning an external (address, proto, port): PortPartition.
  int owner_of(const net::Ipv4Address& addr, std::uint8_t proto, std::uint16_t port) const noexcept {
    return partition_.owner_of(addr, proto, port);
  }
  // The owner for an inbound packet (its destination port, or an ICMP
  // error's quoted source port), or kNoOwner when it is not NAT traffic.
  // Reads only: for a worker sorting a burst before any translation.
  int inbound_owner(const std::uint8_t* ip, std::size_t len) const noexcept;

  const PortPartition& partition() const noexcept { return partition_; }
  const NatCounters& counters() const noexcept { return counters_; }
  const FlowTable& flows() const noexcept { return table_; }
  std::size_t flow_count() const noexcept { return table_.size(); }
  unsigned lcore() const noexcept { return lcore_; }

 private:
  // The table key translate() will look up first, read from the first
  // bytes only; false for packets not worth a prefetch.
  bool lookup_key(const std::uint8_t* ip, std::size_t len, Direction dir, FlowKey& key) const noexcept;
  Result drop(NatDrop d) noexcept {
    counters_.drop(d);
    return {Verdict::kDrop, d, kNoOwner};
  }
  Result outbound(std::uint8_t* ip, std::size_t ihl, std::size_t total, std::uint8_t proto,
                  std::uint64_t now) noexcept;
  Result inbound(std::uint8_t* ip, std::size_t ihl, std::size_t total, std::uint8_t proto,
                 std::uint64_t now) noexcept;
  Result outbound_icmp_error(std::uint8_t* ip, std::size_t ihl, std::size_t total,
                             std::uint64_t now) noexcept;
  Result inbound_icmp_error(std::uint8_t* ip, std::size_t ihl, std::size_t total,
                            std::uint64_t now) noexcept;
  Flow* create_flow(const L4Tuple& t, std::uint64_t now, NatDrop& why) noexcept;
  // Updates state and expiry for a packet of `f`.
  void track(Flow& f, std::uint8_t tcp_flags, bool outbound, std::uint64_t now) noexcept;
  std::uint64_t timeout_ns(const Flow& f) const noexcept;

  PortPartition partition_;
  Timeouts timeouts_;
  unsigned lcore_;
  PortRange ports_;
  // Whether a (host-order) address is one of ours: a scan of a few words.
  bool is_external(std::uint32_t addr) const noexcept {
    for (std::uint32_t a : pool_)
      if (a == addr) return true;
    return false;
  }
  bool reserved(std::uint16_t port) const noexcept {
    for (std::uint16_t r : reserved_) if (r == port) return true;
    return false;
  }

  std::vector<std::uint32_t> pool_;  // host order, same order as the partition's
  std::vector<std::uint16_t> reserved_;
  std::uint64_t seed_;
  std::uint64_t allocations_ = 0;
  FlowTable table_;
  NatCounters counters_;
};

}  // namespace moongate::nat
