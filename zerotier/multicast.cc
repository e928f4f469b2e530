// Multicast likes and gathers (see multicast.h).
#include "zerotier/multicast.h"

namespace moongate::zerotier {

MulticastCache::MulticastCache(std::size_t max_groups) : table_(max_groups, "multicast cache") {}

bool MulticastCache::like(const MulticastGroup& g, Address member, std::uint64_t now_ms) noexcept {
  Slot* s = table_.find(g);
  if (!s) {
    Slot fresh;
    fresh.group = g;
    fresh.live = true;
    if (table_.insert(fresh) != decltype(table_)::InsertResult::kInserted) return false;
    s = table_.find(g);
  }
  Member* stalest = &s->members[0];
  for (Member& m : s->members) {
    if (m.address == member) {
      m.last_ms = now_ms;
      return true;
    }
    if (m.address == 0 || now_ms - m.last_ms > kMulticastLikeExpireMs) {
      stalest = &m;
      if (m.address == 0) break;
    } else if (stalest->address != 0 && m.last_ms < stalest->last_ms) {
      stalest = &m;
    }
  }
  // The member was not present (a break above only happens on an empty
  // entry, after which no later entry can hold it: members fill from 0).
  stalest->address = member;
  stalest->last_ms = now_ms;
  return true;
}

std::size_t MulticastCache::gather(const MulticastGroup& g, Address asker, std::uint64_t now_ms, Address* out,
                                   std::size_t limit, std::uint32_t* total) const noexcept {
  *total = 0;
  const Slot* s = table_.find(g);
  if (!s) return 0;
  std::size_t n = 0;
  for (const Member& m : s->members) {
    if (m.address == 0 || m.address == asker || now_ms - m.last_ms > kMulticastLikeExpireMs) continue;
    ++*total;
    if (n < limit) out[n++] = m.address;
  }
  return n;
}

std::size_t MulticastCache::expire(std::uint64_t now_ms) noexcept {
  MulticastGroup dead[64];
  std::size_t n = 0;
  table_.for_each([&](const Slot& s) {
    bool any = false;
    for (const Member& m : s.members) any |= m.address != 0 && now_ms - m.last_ms <= kMulticastLikeExpireMs;
    if (!any && n < 64) dead[n++] = s.group;
  });
  for (std::size_t i = 0; i < n; ++i)
    if (const Slot* s = table_.find(dead[i])) table_.erase(*s);
  return n;
}

}  // namespace moongate::zerotier
