// FlowTable: create, find, expire. flow_table.h has the layout and the
// expiry scheme.
#include "nat/flow_table.h"

#include <stdexcept>

namespace moongate::nat {

std::size_t FlowTable::Traits::hash(const FlowKey& k) const noexcept {
  const std::uint64_t a = (std::uint64_t{k.our_addr} << 32) | k.remote_addr;
  const std::uint64_t b = (std::uint64_t{k.our_port} << 24) | (std::uint64_t{k.remote_port} << 8) | k.proto;
  return wg::seeded_tuple_hash(a, b, seed);
}

FlowTable::FlowTable(std::size_t capacity, std::uint64_t seed, std::uint64_t now_ns)
    : capacity_(capacity),
      flows_(capacity == 0 || capacity > kMaxCapacity
                 ? throw std::invalid_argument("nat: flow capacity must be 1..2^24 per lcore")
                 : std::make_unique<Flow[]>(capacity)),
      free_(std::make_unique<std::uint32_t[]>(capacity)),
      free_count_(capacity),
      inside_(capacity, "nat inside flows", Traits{seed}),
      outside_(capacity, "nat outside flows", Traits{wg::mix64(seed + 1)}),
      wheel_(kTickNs, kWheelSlots, now_ns) {
  // Hand out low indices first (popped from the top of the stack).
  for (std::size_t i = 0; i < capacity; ++i)
    free_[i] = static_cast<std::uint32_t>(capacity - 1 - i);
}

Flow* FlowTable::find_inside(const FlowKey& k, std::uint64_t now_ns) noexcept {
  return find_live(inside_.find(k), now_ns);
}

Flow* FlowTable::find_outside(const FlowKey& k, std::uint64_t now_ns) noexcept {
  return find_live(outside_.find(k), now_ns);
}

Flow* FlowTable::find_live(const Slot* s, std::uint64_t now_ns) noexcept {
  if (s == nullptr) return nullptr;
  Flow& f = flows_[s->index()];
  if (f.expires > now_ns) return &f;
  // Its time passed before its timer fired: free it now, so the key can be
  // mapped afresh (bounded work: two erases).
  release(f);
  ++expired_early_;
  return nullptr;
}

Flow* FlowTable::create(const Flow& tuple, std::uint64_t expires) noexcept {
  if (free_count_ == 0) return nullptr;
  const std::uint32_t idx = free_[free_count_ - 1];
  const Slot in = Slot::make(tuple.inside_key(), idx);
  if (inside_.insert(in) != Table::InsertResult::kInserted) return nullptr;
  if (outside_.insert(Slot::make(tuple.outside_key(), idx)) != Table::InsertResult::kInserted) {
    inside_.erase(*inside_.find(tuple.inside_key()));
    return nullptr;
  }
  --free_count_;
  Flow& f = flows_[idx];
  f.inside_addr = tuple.inside_addr;
  f.remote_addr = tuple.remote_addr;
  f.ext_addr = tuple.ext_addr;
  f.inside_port = tuple.inside_port;
  f.remote_port = tuple.remote_port;
  f.ext_port = tuple.ext_port;
  f.proto = tuple.proto;
  f.tcp_state = tuple.tcp_state;
  f.inside_closed_first = tuple.inside_closed_first;
  f.replied = false;
  f.expires = expires;
  wheel_.schedule(f, expires);
  return &f;
}

void FlowTable::set_expiry(Flow& f, std::uint64_t expires) noexcept {
  f.expires = expires;
  if (!f.scheduled || expires < f.deadline) wheel_.schedule(f, expires);
}

void FlowTable::release(Flow& f) noexcept {
  wheel_.cancel(f);
  if (const Slot* s = inside_.find(f.inside_key())) inside_.erase(*s);
  if (const Slot* s = outside_.find(f.outside_key())) outside_.erase(*s);
  f.proto = 0;
  free_[free_count_++] = index_of(f);
}

std::size_t FlowTable::expire(std::uint64_t now_ns, std::size_t budget) noexcept {
  std::size_t freed = expired_early_;
  expired_early_ = 0;
  wheel_.advance(
      now_ns,
      [&](dp::TimerNode& n) {
        Flow& f = static_cast<Flow&>(n);
        if (f.expires > now_ns) {
          wheel_.schedule(f, f.expires);  // refreshed since it was armed
        } else {
          release(f);
          ++freed;
        }
      },
      budget);
  return freed;
}

}  // namespace moongate::nat
