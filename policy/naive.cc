#include "policy/naive.h"

namespace moongate::policy {

bool flat_matches(const FlatRule& r, const Packet& p) noexcept {
  auto in_prefix = [](std::uint32_t a, std::uint32_t net, std::uint8_t len) {
    return len == 0 || (a >> (32 - len)) == (net >> (32 - len));
  };
  if (r.proto != kProtoAny && r.proto != p.proto) return false;
  if (r.peer != 0 && r.peer != p.peer) return false;
  if (!in_prefix(p.src, r.src, r.src_len)) return false;
  if (!in_prefix(p.dst, r.dst, r.dst_len)) return false;
  return p.dport >= r.dport_lo && p.dport <= r.dport_hi;
}

int naive_match(const CompiledPolicy& policy, const Packet& p) noexcept {
  int best = -1;
  for (const FlatRule& r : policy.flat)
    if ((best < 0 || r.rule < static_cast<std::uint32_t>(best)) && flat_matches(r, p))
      best = static_cast<int>(r.rule);
  return best;
}

}  // namespace moongate::policy
