// Peers by static public key: fixed-size open addressing on SipHash-2-4 of the key.
#include "wireguard/peer_table.h"

#include <sodium.h>

#include <algorithm>
#include <bit>
#include <cstring>
#include <limits>
#include <stdexcept>
#include <utility>

#include "crypto/secret.h"

namespace moongate::wg {

namespace {

constexpr std::size_t kMinSlots = 16;

static_assert(sizeof(std::uint64_t[2]) == crypto_shorthash_KEYBYTES, "seed_ is the SipHash key");
static_assert(crypto_shorthash_BYTES == sizeof(std::uint64_t));

// Public keys are not secret and a lookup reveals only whether a peer is
// configured, so an early-exit comparison is fine here.
bool same_key(const PublicKeyBytes& a, const PublicKeyBytes& b) noexcept {
  return std::memcmp(a.data(), b.data(), a.size()) == 0;
}

}  // namespace

PeerTable::PeerTable(std::size_t max_peers) : max_peers_(max_peers) {
  if (max_peers > std::numeric_limits<std::size_t>::max() / 4)
    throw std::length_error("PeerTable: capacity too large");
  const std::size_t slots = std::bit_ceil(std::max(kMinSlots, 2 * max_peers));
  slots_ = std::make_unique<Slot[]>(slots);
  pending_ = std::make_unique<std::uint64_t[]>((slots + 63) / 64);
  mask_ = slots - 1;
  crypto::random_bytes(seed_, sizeof seed_);
}

PeerTable::~PeerTable() = default;

std::size_t PeerTable::hash(const PublicKeyBytes& key) const noexcept {
  unsigned char out[crypto_shorthash_BYTES];
  crypto_shorthash(out, key.data(), key.size(), reinterpret_cast<const unsigned char*>(seed_));
  std::uint64_t h = 0;
  std::memcpy(&h, out, sizeof h);
  return static_cast<std::size_t>(h);
}

std::size_t PeerTable::find_slot(const PublicKeyBytes& key) const noexcept {
  // Terminates: live + tombstones <= 3/4 of the slots, so a free slot exists.
  for (std::size_t i = hash(key) & mask_;; i = (i + 1) & mask_) {
    const Slot& s = slots_[i];
    if (s.state == State::kFree) return kNotFound;
    if (s.state == State::kLive && same_key(s.key, key)) return i;
  }
}

bool PeerTable::insert(const PublicKeyBytes& key, Peer* peer) noexcept {
  if (peer == nullptr) return false;

  // Walk the whole chain to rule out a duplicate, remembering the first
  // reusable slot so tombstones get recycled.
  std::size_t target = kNotFound;
  for (std::size_t i = hash(key) & mask_;; i = (i + 1) & mask_) {
    const Slot& s = slots_[i];
    if (s.state == State::kFree) {
      if (target == kNotFound) target = i;
      break;
    }
    if (s.state == State::kTombstone) {
      if (target == kNotFound) target = i;
      continue;
    }
    if (same_key(s.key, key)) return false;
  }
  if (live_ >= max_peers_) return false;

  Slot& s = slots_[target];
  if (s.state == State::kTombstone) --tombstones_;
  s.key = key;
  s.peer = peer;
  s.state = State::kLive;
  ++live_;
  return true;
}

Peer* PeerTable::find(const PublicKeyBytes& key) const noexcept {
  const std::size_t i = find_slot(key);
  return i == kNotFound ? nullptr : slots_[i].peer;
}

Peer* PeerTable::remove(const PublicKeyBytes& key) noexcept {
  const std::size_t i = find_slot(key);
  if (i == kNotFound) return nullptr;
  Peer* const peer = slots_[i].peer;
  --live_;
  slots_[i] = Slot{};
  if (slots_[(i + 1) & mask_].state == State::kFree) {
    // No probe chain continues past i, so neither i nor the tombstones just
    // before it are needed to keep anything reachable: free them instead
    // of leaving tombstones behind. Stops at the latest at i (now free).
    for (std::size_t j = (i - 1) & mask_; slots_[j].state == State::kTombstone;
         j = (j - 1) & mask_) {
      slots_[j] = Slot{};
      --tombstones_;
    }
    return peer;
  }
  slots_[i].state = State::kTombstone;
  ++tombstones_;
  rebuild_if_needed();
  return peer;
}

// In-place rehash, as in IndexTable: tombstones become free, live entries
// are marked pending, and each pending entry moves to the first
// free-or-pending slot of its probe sequence (swapping with a pending
// occupant). Placed slots never change again, so earlier chains stay
// intact; O(slots) hashes, no allocation.
void PeerTable::rebuild_if_needed() noexcept {
  const std::size_t slots = mask_ + 1;
  if (tombstones_ * 4 <= slots) return;

  auto pending = [this](std::size_t i) { return (pending_[i / 64] >> (i % 64)) & 1U; };
  auto set_pending = [this](std::size_t i) { pending_[i / 64] |= std::uint64_t{1} << (i % 64); };
  auto clear_pending = [this](std::size_t i) {
    pending_[i / 64] &= ~(std::uint64_t{1} << (i % 64));
  };

  for (std::size_t i = 0; i < slots; ++i) {
    if (slots_[i].state == State::kTombstone)
      slots_[i] = Slot{};
    else if (slots_[i].state == State::kLive)
      set_pending(i);
  }
  tombstones_ = 0;

  for (std::size_t i = 0; i < slots; ++i) {
    while (pending(i)) {
      std::size_t j = hash(slots_[i].key) & mask_;
      while (slots_[j].state != State::kFree && !pending(j)) j = (j + 1) & mask_;
      if (j == i) {
        clear_pending(i);
      } else if (slots_[j].state == State::kFree) {
        slots_[j] = slots_[i];
        slots_[i] = Slot{};
        clear_pending(i);
      } else {
        // j holds another pending entry: it takes i's place and is
        // processed next round of this loop.
        std::swap(slots_[i], slots_[j]);
        clear_pending(j);
      }
    }
  }
}

}  // namespace moongate::wg
