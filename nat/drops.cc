// Counter names and sums; drops.h holds the list.
#include "nat/drops.h"

namespace moongate::nat {

const char* nat_drop_name(NatDrop d) noexcept {
  switch (d) {
#define MOONGATE_X(name, str) \
  case NatDrop::name:         \
    return str;
    MOONGATE_NAT_DROP_REASONS(MOONGATE_X)
#undef MOONGATE_X
    case NatDrop::kCount:
      break;
  }
  return "unknown";
}

// The owner keeps counting without atomics; a relaxed atomic load keeps each
// read whole.
void NatCounters::add(const NatCounters& o) noexcept {
  auto rd = [](const std::uint64_t& v) { return __atomic_load_n(&v, __ATOMIC_RELAXED); };
  translated_out += rd(o.translated_out);
  translated_in += rd(o.translated_in);
  icmp_errors_in += rd(o.icmp_errors_in);
  flows_created += rd(o.flows_created);
  flows_expired += rd(o.flows_expired);
  for (std::size_t i = 0; i < kNatDropCount; ++i) drops[i] += rd(o.drops[i]);
}

}  // namespace moongate::nat
