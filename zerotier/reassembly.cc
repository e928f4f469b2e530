// Fixed-pool fragment reassembly (limits in reassembly.h).
#include "zerotier/reassembly.h"

#include <cstring>

namespace moongate::zerotier {

Reassembler::Slot* Reassembler::find_or_claim(std::uint64_t id, std::uint64_t now_ms, bool& evicted) noexcept {
  Slot* free_slot = nullptr;
  Slot* oldest = &slots_[0];
  for (Slot& s : slots_) {
    if (s.used && s.id == id) {
      if (now_ms - s.created_ms <= kReassemblyTimeoutMs) return &s;
      s.used = false;  // a stale slot with a recycled id starts over
    }
    if (!s.used && !free_slot) free_slot = &s;
    if (s.used && s.created_ms < oldest->created_ms) oldest = &s;
  }
  Slot* s = free_slot;
  if (!s) {
    s = oldest;
    evicted = true;
  }
  s->used = true;
  s->id = id;
  s->created_ms = now_ms;
  s->total = 0;
  s->have = 0;
  return s;
}

Reassembler::Result Reassembler::store(Slot& s, unsigned n, std::span<const std::uint8_t> bytes, bool evicted,
                                       std::uint8_t* out, std::size_t* out_len) noexcept {
  if (bytes.size() > kMaxPiece) {
    s.used = false;
    return Result::kTooBig;
  }
  std::memcpy(s.piece[n].data(), bytes.data(), bytes.size());
  s.len[n] = static_cast<std::uint16_t>(bytes.size());
  s.have |= 1u << n;
  if (s.total == 0 || s.have != (1u << s.total) - 1) return evicted ? Result::kEvicted : Result::kIncomplete;
  std::size_t total_len = 0;
  for (unsigned i = 0; i < s.total; ++i) total_len += s.len[i];
  s.used = false;
  if (total_len > kMaxPacket) return Result::kTooBig;
  std::size_t off = 0;
  for (unsigned i = 0; i < s.total; ++i) {
    std::memcpy(out + off, s.piece[i].data(), s.len[i]);
    off += s.len[i];
  }
  // The "fragmented" flag stays set: the sender set it before computing the
  // MAC (it is part of the per-packet key).
  *out_len = off;
  return Result::kComplete;
}

Reassembler::Result Reassembler::add_head(std::span<const std::uint8_t> head, std::uint64_t now_ms,
                                          std::uint8_t* out, std::size_t* out_len) noexcept {
  if (head.size() < kMinPacketLength) return Result::kMalformed;
  bool evicted = false;
  Slot* s = find_or_claim(load_be64(head.data()), now_ms, evicted);
  if (s->have & 1u) return Result::kMalformed;  // duplicate head
  return store(*s, 0, head, evicted, out, out_len);
}

Reassembler::Result Reassembler::add_fragment(std::span<const std::uint8_t> frag, std::uint64_t now_ms,
                                              std::uint8_t* out, std::size_t* out_len) noexcept {
  if (frag.size() <= kFragHeaderLength) return Result::kMalformed;
  const FragmentView f{frag.data(), frag.size()};
  const unsigned total = f.total(), n = f.number();
  if (total < 2 || total > kMaxPieces || n == 0 || n >= total) return Result::kMalformed;
  bool evicted = false;
  Slot* s = find_or_claim(f.id(), now_ms, evicted);
  if ((s->total != 0 && s->total != total) || (s->have & (1u << n))) {
    s->used = false;  // inconsistent or duplicated pieces: give up on the packet
    return Result::kMalformed;
  }
  s->total = total;
  return store(*s, n, f.payload(), evicted, out, out_len);
}

std::size_t Reassembler::expire(std::uint64_t now_ms) noexcept {
  std::size_t n = 0;
  for (Slot& s : slots_)
    if (s.used && now_ms - s.created_ms > kReassemblyTimeoutMs) {
      s.used = false;
      ++n;
    }
  return n;
}

std::size_t Reassembler::in_use() const noexcept {
  std::size_t n = 0;
  for (const Slot& s : slots_) n += s.used ? 1 : 0;
  return n;
}

}  // namespace moongate::zerotier
