// Established flows; established.h has the flow and the lcore rule.
#include "policy/established.h"

#include <stdexcept>

namespace moongate::policy {

namespace {

std::uint64_t ports_word(std::uint16_t pa, std::uint16_t pb, std::uint8_t proto) noexcept {
  return (std::uint64_t{pa} << 24) | (std::uint64_t{pb} << 8) | proto;
}

std::size_t hash_tuple(std::uint32_t a, std::uint32_t b, std::uint64_t ports, std::uint64_t seed) noexcept {
  return wg::seeded_tuple_hash((std::uint64_t{a} << 32) | b, ports, seed);
}

// IPv6: the two addresses folded into the seed of the final mix, each
// through the same seeded mixer, so no word cancels another.
std::size_t hash_tuple(const Addr6& a, const Addr6& b, std::uint64_t ports, std::uint64_t seed) noexcept {
  auto hi = [](const Addr6& x) { return (std::uint64_t{x[0]} << 32) | x[1]; };
  auto lo = [](const Addr6& x) { return (std::uint64_t{x[2]} << 32) | x[3]; };
  const std::uint64_t ha = wg::seeded_tuple_hash(hi(a), lo(a), seed);
  const std::uint64_t hb = wg::seeded_tuple_hash(hi(b), lo(b), ha);
  return wg::seeded_tuple_hash(ports, ha, hb);
}

}  // namespace

template <class Pkt>
std::size_t BasicEstablished<Pkt>::Traits::hash(const Key& k) const noexcept {
  return hash_tuple(k.a, k.b, ports_word(k.pa, k.pb, k.proto), seed);
}

template <class Pkt>
BasicEstablished<Pkt>::BasicEstablished(std::size_t capacity, std::uint64_t timeout_ns, std::uint64_t seed,
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

template <class Pkt>
typename BasicEstablished<Pkt>::Key BasicEstablished<Pkt>::key_of(const Pkt& p) noexcept {
  // Protocol 0 would read as a free slot: no protocol worth tracking uses it.
  return {p.src, p.dst, p.sport, p.dport, p.proto};
}

template <class Pkt>
typename BasicEstablished<Pkt>::Entry* BasicEstablished<Pkt>::find(const Key& k, std::uint64_t now) noexcept {
  const Slot* s = table_.find(k);
  if (s == nullptr) return nullptr;
  Entry& e = entries_[s->entry];
  if (e.expires > now) return &e;
  release(e);
  return nullptr;
}

template <class Pkt>
void BasicEstablished<Pkt>::release(Entry& e) noexcept {
  wheel_.cancel(e);
  if (const Slot* s = table_.find(e.key)) table_.erase(*s);
  e.key = Key{};
  free_[free_count_++] = static_cast<std::uint32_t>(&e - entries_.get());
}

template <class Pkt>
bool BasicEstablished<Pkt>::note(const Pkt& p, std::uint64_t now_ns) noexcept {
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

template <class Pkt>
bool BasicEstablished<Pkt>::is_reply(const Pkt& p, std::uint64_t now_ns) noexcept {
  // The reverse of the accepted direction.
  const Key k{p.dst, p.src, p.dport, p.sport, p.proto};
  if (k.proto == 0 || p.initiating) return false;
  Entry* e = find(k, now_ns);
  if (e == nullptr) return false;
  e->expires = now_ns + timeout_;
  return true;
}

template <class Pkt>
std::size_t BasicEstablished<Pkt>::expire(std::uint64_t now_ns, std::size_t budget) noexcept {
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

template class BasicEstablished<Packet>;
template class BasicEstablished<Packet6>;

}  // namespace moongate::policy
