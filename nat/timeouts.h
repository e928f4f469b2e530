// Flow idle timeouts, per protocol and TCP state. The defaults are Linux
// conntrack's (net/netfilter/nf_conntrack_proto_{tcp,udp,icmp}.c, the
// nf_conntrack_*_timeout_* sysctls), so a flow lives here as long as it
// would behind a Linux masquerading router: clients and servers tune their
// keepalives against those numbers.
#pragma once

#include <cstdint>

namespace moongate::nat {

inline constexpr std::uint64_t kNanosPerSecond = 1'000'000'000ULL;

struct Timeouts {  // seconds
  std::uint32_t tcp_syn_sent = 120;
  std::uint32_t tcp_syn_received = 60;
  std::uint32_t tcp_established = 432000;  // 5 days
  std::uint32_t tcp_fin_wait = 120;
  std::uint32_t tcp_close_wait = 60;
  std::uint32_t tcp_last_ack = 30;
  std::uint32_t tcp_time_wait = 120;
  std::uint32_t tcp_close = 10;
  std::uint32_t udp = 30;          // until a reply has been seen
  std::uint32_t udp_stream = 120;  // after traffic both ways
  std::uint32_t icmp = 30;         // echo query id

  friend bool operator==(const Timeouts&, const Timeouts&) = default;
};

}  // namespace moongate::nat
