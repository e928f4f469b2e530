// Receiver-index table: a slot array the index names directly, with a FIFO
// of free slots (index_table.h).
#include "wireguard/index_table.h"

#include <algorithm>
#include <bit>
#include <stdexcept>

namespace moongate::wg {

namespace {

std::size_t slots_for(std::size_t max_entries) {
  if (max_entries > (std::size_t{1} << 31)) throw std::length_error("IndexTable: capacity too large");
  return std::bit_ceil(std::max<std::size_t>(max_entries, 16));
}

}  // namespace

IndexTable::IndexTable(std::size_t max_entries)
    : slot_count_(slots_for(max_entries)),
      slot_mask_(static_cast<std::uint32_t>(slot_count_ - 1)),
      slots_(slot_count_),
      owners_(slot_count_),
      free_(slot_count_),
      free_count_(slot_count_) {
  for (std::size_t i = 0; i < slot_count_; ++i) free_[i] = static_cast<std::uint32_t>(i);
}

IndexTable::~IndexTable() = default;  // each slot's key wipes itself

bool IndexTable::set_tag(std::uint32_t mask, std::uint32_t value) noexcept {
  if ((mask & slot_mask_) != 0) return false;
  tag_mask_ = mask;
  tag_value_ = value & mask;
  return true;
}

IndexSlot* IndexTable::insert(Peer* peer, std::uint32_t& index_out) noexcept {
  if (free_count_ == 0) return nullptr;
  const std::uint32_t n = free_[free_head_];
  // The bits above the slot number, drawn afresh, tell this use of the slot
  // from earlier ones. Slot 0 with nothing drawn would be index 0: draw
  // again (only possible untagged; at worst a few draws).
  std::uint32_t index = 0;
  do {
    std::uint32_t r = 0;
    crypto::random_bytes(&r, sizeof r);
    index = (r & ~slot_mask_ & ~tag_mask_) | tag_value_ | n;
  } while (index == 0);
  free_head_ = (free_head_ + 1) & slot_mask_;
  --free_count_;
  // A free slot is all zero (construction, remove()): a handshake's needs
  // only its index and peer.
  IndexSlot& s = slots_[n];
  s.index = index;
  s.peer_bits = reinterpret_cast<std::uintptr_t>(peer);
  index_out = index;
  return &s;
}

IndexSlot* IndexTable::make_keypair(std::uint32_t index, Keypair* keypair, const crypto::SecretKey& recv_key,
                                    Nanos birth, bool initiator) noexcept {
  IndexSlot* s = find(index);
  if (s == nullptr || s->is_keypair()) return nullptr;
  s->recv_key = recv_key;
  s->replay.reset();
  s->reject_tick = IndexSlot::tick_of(birth + kRejectAfterTime);
  s->set(IndexSlot::kKeypair, true);
  s->set(IndexSlot::kInitiator, initiator);
  owners_[slot_number(*s)] = keypair;
  return s;
}

void IndexTable::remove(std::uint32_t index) noexcept {
  IndexSlot* s = find(index);
  if (s == nullptr) return;
  const std::size_t n = slot_number(*s);
  s->recv_key.clear();
  s->replay.reset();
  s->peer_bits = 0;
  s->index = 0;
  s->reject_tick = 0;
  owners_[n] = nullptr;
  free_[(free_head_ + free_count_) & slot_mask_] = static_cast<std::uint32_t>(n);
  ++free_count_;
}

}  // namespace moongate::wg
