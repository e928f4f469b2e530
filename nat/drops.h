// NAT44 counters: one X-macro list of drop reasons generates the enum, the
// per-lcore counter array and the names operators see (telemetry, logs),
// the way dataplane/counters.h does for the data plane's own reasons.
#pragma once

#include <array>
#include <cstddef>
#include <cstdint>

namespace moongate::nat {

#define MOONGATE_NAT_DROP_REASONS(X)                                                   \
  X(kMalformed, "malformed")       /* bad IPv4 header or L4 header cut short */        \
  X(kFragment, "fragment")         /* no reassembly: a fragment has no ports */        \
  X(kUnsupportedProtocol, "unsupported_protocol") /* outbound, not TCP/UDP/ICMP */     \
  X(kUnsupportedIcmp, "unsupported_icmp")  /* outbound ICMP neither echo nor error */  \
  X(kTcpNotSyn, "tcp_not_syn")     /* outbound TCP without a flow and not a SYN */     \
  X(kNoFlow, "no_flow")            /* return traffic to an unallocated port / id */    \
  X(kIcmpUnknownFlow, "icmp_unknown_flow") /* an ICMP error quoting no known flow */    \
  X(kIcmpBadChecksum, "icmp_bad_checksum") /* an ICMP error whose checksum is wrong */  \
  X(kTableFull, "table_full")      /* no free flow on this lcore: new flows only */    \
  X(kNoPort, "no_port")            /* no free external port for that destination */

enum class NatDrop : std::uint8_t {
#define MOONGATE_X(name, str) name,
  MOONGATE_NAT_DROP_REASONS(MOONGATE_X)
#undef MOONGATE_X
      kCount
};
inline constexpr std::size_t kNatDropCount = static_cast<std::size_t>(NatDrop::kCount);
const char* nat_drop_name(NatDrop d) noexcept;

// One per NAT instance (one per worker lcore), written only by it: no
// atomics on the packet path; readers accept a slightly stale view.
struct alignas(64) NatCounters {
  std::uint64_t translated_out = 0;  // tunnel -> internet
  std::uint64_t translated_in = 0;   // internet -> tunnel (ICMP errors included)
  std::uint64_t icmp_errors_in = 0;  // of translated_in: ICMP errors about a flow
  std::uint64_t flows_created = 0;
  std::uint64_t flows_expired = 0;
  std::array<std::uint64_t, kNatDropCount> drops{};

  void drop(NatDrop d) noexcept { ++drops[static_cast<std::size_t>(d)]; }
  std::uint64_t dropped(NatDrop d) const noexcept { return drops[static_cast<std::size_t>(d)]; }
  // Adds another lcore's counters (status, telemetry).
  void add(const NatCounters& o) noexcept;
};

}  // namespace moongate::nat
