// Data-plane counters: one X-macro list of drop reasons generates the enum,
// the per-lcore counter array and the names shown to operators (telemetry,
// logs). The protocol core counts its own reasons (wg::Drop) in its Device.
#pragma once

#include <array>
#include <cstddef>
#include <cstdint>

namespace moongate::dp {

#define MOONGATE_DP_DROP_REASONS(X)                                              \
  X(kNotIp, "not_ip")                   /* ethertype we do not route */         \
  X(kMalformed, "malformed")            /* truncated or inconsistent headers */ \
  X(kNotForUs, "not_for_us")            /* WAN traffic to another address */    \
  X(kLocalUnhandled, "local_unhandled") /* to the appliance, not ARP/echo/WireGuard, no TAP */ \
  X(kBadIpChecksum, "bad_ip_checksum")  /* RFC 1812 5.2.2: routers verify it */ \
  X(kNoRoute, "no_route")               /* LAN dst not in any peer's allowed IPs */ \
  X(kNoLanRoute, "no_lan_route")        /* decrypted dst not reachable on a LAN */ \
  X(kBadInnerSource, "bad_inner_source") /* inner src outside the peer's allowed IPs */ \
  X(kTtlExpired, "ttl_expired")                                                  \
  X(kTooBig, "too_big")                 /* inner packet over the tunnel MTU */ \
  X(kNeighborPending, "neighbor_pending") /* replaced while waiting for ARP */  \
  X(kStagedOverflow, "staged_overflow") /* no session and the peer's queue is full */ \
  X(kTxFull, "tx_full")                 /* the port's TX queue refused it */    \
  X(kNoMbuf, "no_mbuf")                                                          \
  X(kUnsupported, "unsupported")        /* IPv6, fragments, options: not yet */ \
  X(kHandshakeQueueFull, "handshake_queue_full")                                \
  X(kHandoffFull, "handoff_full")       /* the owner worker's ring is full */ \
  X(kNoUnderlay, "no_underlay")         /* endpoint family without a WAN address / route */ \
  X(kPeerRefused, "peer_refused")       /* a netmap peer the device refused (table full) */ \
  X(kNotExit, "not_exit")               /* to the wan port: peer not exit_node, or dst not internet */ \
  X(kPolicyDenied, "policy_denied")     /* no policy rule accepts it and it is no reply */ \
  X(kMoonQueueFull, "moon_queue_full")  /* the moon thread's ring from this worker is full */

enum class DpDrop : std::uint8_t {
#define MOONGATE_X(name, str) name,
  MOONGATE_DP_DROP_REASONS(MOONGATE_X)
#undef MOONGATE_X
      kCount
};
inline constexpr std::size_t kDpDropCount = static_cast<std::size_t>(DpDrop::kCount);
const char* dp_drop_name(DpDrop d) noexcept;

// One per worker lcore, written only by it (no atomics on the packet path);
// readers (telemetry) accept a slightly stale view.
struct alignas(64) LcoreCounters {
  std::uint64_t rx_packets[8] = {};  // per port id (ports beyond 8 are not counted)
  std::uint64_t tx_packets[8] = {};
  std::uint64_t decrypted = 0;
  std::uint64_t encrypted = 0;
  std::uint64_t handshakes_in = 0;
  std::uint64_t arp_replies = 0;
  std::uint64_t icmp_echo_replies = 0;
  std::uint64_t icmp_errors = 0;  // sent: time exceeded, fragmentation needed, packet too big
  std::uint64_t icmp_errors_limited = 0;  // not sent: over the worker's ICMP error budget
  std::uint64_t handoffs_out = 0;  // packets passed to the owning worker
  std::uint64_t handoffs_in = 0;
  std::uint64_t to_kernel = 0;  // exception path: packets given to the TAP
  std::uint64_t moon_in = 0;    // frames given to the moon's thread (moon_host.h)
  std::uint64_t moon_out = 0;   // moon packets this worker sent out of the wan port
  // Bursts read ahead (worker.cc, "Reading ahead"): a port's queue had
  // another burst waiting behind a full one of large frames, i.e. the
  // worker ran at full load.
  std::uint64_t read_ahead = 0;
  std::array<std::uint64_t, kDpDropCount> drops{};

  void drop(DpDrop d) noexcept { ++drops[static_cast<std::size_t>(d)]; }
  std::uint64_t rx_total() const noexcept {
    std::uint64_t n = 0;
    for (std::uint64_t v : rx_packets) n += v;
    return n;
  }
  // Adds another worker's counters (status, telemetry).
  void add(const LcoreCounters& o) noexcept;
};

}  // namespace moongate::dp
