// Counter names and sums; counters.h holds the list.
#include "dataplane/counters.h"

namespace moongate::dp {

const char* dp_drop_name(DpDrop d) noexcept {
  switch (d) {
#define MOONGATE_X(name, str) \
  case DpDrop::name:          \
    return str;
    MOONGATE_DP_DROP_REASONS(MOONGATE_X)
#undef MOONGATE_X
    case DpDrop::kCount:
      break;
  }
  return "unknown";
}

// Workers write their counters without atomics; a relaxed atomic load keeps
// each read whole while the owner keeps counting.
void LcoreCounters::add(const LcoreCounters& o) noexcept {
  auto rd = [](const std::uint64_t& v) { return __atomic_load_n(&v, __ATOMIC_RELAXED); };
  for (std::size_t i = 0; i < 8; ++i) {
    rx_packets[i] += rd(o.rx_packets[i]);
    tx_packets[i] += rd(o.tx_packets[i]);
  }
  decrypted += rd(o.decrypted);
  encrypted += rd(o.encrypted);
  handshakes_in += rd(o.handshakes_in);
  arp_replies += rd(o.arp_replies);
  icmp_echo_replies += rd(o.icmp_echo_replies);
  icmp_errors += rd(o.icmp_errors);
  icmp_errors_limited += rd(o.icmp_errors_limited);
  handoffs_out += rd(o.handoffs_out);
  handoffs_in += rd(o.handoffs_in);
  to_kernel += rd(o.to_kernel);
  moon_in += rd(o.moon_in);
  moon_out += rd(o.moon_out);
  read_ahead += rd(o.read_ahead);
  for (std::size_t i = 0; i < kDpDropCount; ++i) drops[i] += rd(o.drops[i]);
}

}  // namespace moongate::dp
