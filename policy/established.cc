// Established flows; established.h has the flow and the lcore rule.
#include "policy/established.h"

#include <stdexcept>

namespace moongate::policy {

std::size_t Established::Traits::hash(const Key& k) const noexcept {
  const std::uint64_t x = (std::uint64_t{k.a} << 32) | k.b;
  const std::uint64_t y = (std::uint64_t{k.pa} << 24) | (std::uint64_t{k.pb} << 8) | k.proto;
  return wg::seeded_tuple_hash(x, y, seed);
}

Established::Established(std::size_t capacity, std::uint64_t timeout_ns, std::uint64_t seed,
                         std::uint64_t now_ns)
    : capacity_(capacity == 0 ? throw std::invalid_argument("policy: capacity 0") : capacity),
      timeout_(timeout_ns),
      entries_(std::make_unique<Entry[]>(capacity)),
      free_(std::make_unique<std::uint32_t[]>(capacity)),
      free_count_(capacity),
      table_(capacity, "policy established flows", Traits{seed}),
      wheel_(100'000'000, 4096, now_ns) {
  for (std::size_t i = 0; i < capacity; ++i)
    free_[i] = static_cast<std::uint32_t>(capacity - 1 - i);
}

Established::Key Established::key_of(const Packet& p) noexcept {
  // Protocol 0 would read as a free slot: no protocol worth tracking uses it.
  return {p.src, p.dst, p.sport, p.dport, p.proto};
}

Established::Entry* Established::find(const Key& k, std::uint64_t now) noexcept {
  const Slot* s = table_.find(k);
  if (s == nullptr) return nullptr;
  Entry& e = entries_[s->entry];
  if (e.expires > now) return &e;
  release(e);
  return nullptr;
}

void Established::release(Entry& e) noexcept {
  wheel_.cancel(e);
  if (const Slot* s = table_.find(e.key)) table_.erase(*s);
  e.key = Key{};
  free_[free_count_++] = static_cast<std::uint32_t>(&e - entries_.get());
}

bool Established::note(const Packet& p, std::uint64_t now_ns) noexcept {
  const Key k = key_of(p);
  if (k.proto == 0) return false;
  if (Entry* e = find(k, now_ns)) {
    e->expires = now_ns + timeout_;  // the wheel re-arms it lazily
    return true;
  }
  if (free_count_ == 0) {
    ++full_;
    return false;
  }
  const std::uint32_t idx = free_[free_count_ - 1];
  if (table_.insert({k, idx}) != decltype(table_)::InsertResult::kInserted) return false;
  --free_count_;
  Entry& e = entries_[idx];
  e.key = k;
  e.expires = now_ns + timeout_;
  wheel_.schedule(e, e.expires);
  return true;
}

bool Established::is_reply(const Packet& p, std::uint64_t now_ns) noexcept {
  // The reverse of the accepted direction.
  const Key k{p.dst, p.src, p.dport, p.sport, p.proto};
  if (k.proto == 0) return false;
  Entry* e = find(k, now_ns);
  if (e == nullptr) return false;
  e->expires = now_ns + timeout_;
  return true;
}

std::size_t Established::expire(std::uint64_t now_ns, std::size_t budget) noexcept {
  std::size_t freed = 0;
  wheel_.advance(
      now_ns,
      [&](dp::TimerNode& n) {
        Entry& e = static_cast<Entry&>(n);
        if (e.expires > now_ns) {
          wheel_.schedule(e, e.expires);
        } else {
          release(e);
          ++freed;
        }
      },
      budget);
  return freed;
}

}  // namespace moongate::policy
