// Peers by static public key: OpenTable on SipHash-2-4 of the key.
#include "wireguard/peer_table.h"

#include <sodium.h>

#include "crypto/secret.h"

namespace moongate::wg {

PeerTable::PeerTable(std::size_t max_peers)
    : table_(max_peers, "PeerTable", Traits::random_seeded()) {}

PeerTable::~PeerTable() = default;

PeerTable::Traits PeerTable::Traits::random_seeded() noexcept {
  Traits t;
  crypto::random_bytes(t.seed, sizeof t.seed);
  return t;
}

std::size_t PeerTable::Traits::hash(const PublicKeyBytes& key) const noexcept {
  static_assert(sizeof seed == crypto_shorthash_KEYBYTES, "seed is the SipHash key");
  static_assert(crypto_shorthash_BYTES == sizeof(std::uint64_t));
  unsigned char out[crypto_shorthash_BYTES];
  crypto_shorthash(out, key.data(), key.size(), reinterpret_cast<const unsigned char*>(seed));
  std::uint64_t h = 0;
  std::memcpy(&h, out, sizeof h);
  return static_cast<std::size_t>(h);
}

bool PeerTable::insert(const PublicKeyBytes& key, Peer* peer) noexcept {
  if (peer == nullptr) return false;
  return table_.insert(Slot{key, peer, State::kLive}) == Table::InsertResult::kInserted;
}

Peer* PeerTable::find(const PublicKeyBytes& key) const noexcept {
  const Slot* const s = table_.find(key);
  return s == nullptr ? nullptr : s->peer;
}

Peer* PeerTable::remove(const PublicKeyBytes& key) noexcept {
  const Slot* const s = table_.find(key);
  if (s == nullptr) return nullptr;
  Peer* const peer = s->peer;
  table_.erase(*s);
  return peer;
}

}  // namespace moongate::wg
