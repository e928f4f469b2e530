#include "policy/naive.h"

namespace moongate::policy {

namespace {

bool in_prefix(std::uint32_t a, std::uint32_t net, std::uint8_t len) noexcept {
  return len == 0 || (a >> (32 - len)) == (net >> (32 - len));
}

// Bit by bit, deliberately unlike the classifier's word-wise masks.
bool in_prefix6(const Addr6& a, const Addr6& net, std::uint8_t len) noexcept {
  for (unsigned bit = 0; bit < len; ++bit) {
    const unsigned shift = 31 - bit % 32;
    if (((a[bit / 32] >> shift) & 1u) != ((net[bit / 32] >> shift) & 1u)) return false;
  }
  return true;
}

}  // namespace

bool flat_matches(const FlatRule& r, const Packet& p) noexcept {
  if (r.proto != kProtoAny && r.proto != p.proto) return false;
  if (r.peer != 0 && r.peer != p.peer) return false;
  if (!in_prefix(p.src, r.src, r.src_len)) return false;
  if (!in_prefix(p.dst, r.dst, r.dst_len)) return false;
  return p.dport >= r.dport_lo && p.dport <= r.dport_hi;
}

bool flat_matches6(const FlatRule6& r, const Packet6& p) noexcept {
  if (r.proto != kProtoAny && r.proto != p.proto) return false;
  if (r.peer != 0 && r.peer != p.peer) return false;
  if (!in_prefix6(p.src, r.src, r.src_len)) return false;
  if (!in_prefix6(p.dst, r.dst, r.dst_len)) return false;
  return p.dport >= r.dport_lo && p.dport <= r.dport_hi;
}

int naive_match(const CompiledPolicy& policy, const Packet& p) noexcept {
  int best = -1;
  for (const FlatRule& r : policy.flat)
    if ((best < 0 || r.rule < static_cast<std::uint32_t>(best)) && flat_matches(r, p))
      best = static_cast<int>(r.rule);
  return best;
}

int naive_match6(const CompiledPolicy& policy, const Packet6& p) noexcept {
  int best = -1;
  for (const FlatRule6& r : policy.flat6)
    if ((best < 0 || r.rule < static_cast<std::uint32_t>(best)) && flat_matches6(r, p))
      best = static_cast<int>(r.rule);
  return best;
}

}  // namespace moongate::policy
