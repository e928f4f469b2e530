// Peers by static public key: the lookup a responder does after decrypting
// the initiator's static key, and the one configuration does. Open
// addressing on a keyed hash of the key (SipHash keyed with a random
// seed so a configuration cannot be crafted to collide), allocated once
// for the configured capacity and never resized.
//
// The hash is SipHash-2-4 (libsodium crypto_shorthash) under a 16-byte key
// drawn from the CSPRNG per table. Removal leaves tombstones, purged by an
// in-place rehash once they exceed a quarter of the slots.
#pragma once

#include <array>
#include <cstddef>
#include <cstdint>
#include <memory>

namespace moongate::wg {

class Peer;
using PublicKeyBytes = std::array<std::uint8_t, 32>;

class PeerTable {
 public:
  explicit PeerTable(std::size_t max_peers);
  ~PeerTable();
  PeerTable(const PeerTable&) = delete;
  PeerTable& operator=(const PeerTable&) = delete;

  // False when the key is already present or the table is full. A null
  // `peer` is refused too, as find() uses nullptr to mean "absent".
  [[nodiscard]] bool insert(const PublicKeyBytes& key, Peer* peer) noexcept;
  Peer* find(const PublicKeyBytes& key) const noexcept;
  // Returns the removed peer, or nullptr when absent.
  Peer* remove(const PublicKeyBytes& key) noexcept;

  std::size_t size() const noexcept { return live_; }
  std::size_t capacity() const noexcept { return max_peers_; }
  // Diagnostics (tests, stats): slot array size and tombstones currently held.
  std::size_t slot_count() const noexcept { return mask_ + 1; }
  std::size_t tombstones() const noexcept { return tombstones_; }

  // Visits every live (key, peer) pair; f(const PublicKeyBytes&, Peer*).
  // f must not insert or remove: a removal may rehash under the iteration.
  template <class F>
  void for_each(F&& f) const {
    for (std::size_t i = 0; i <= mask_; ++i)
      if (slots_[i].state == State::kLive) f(slots_[i].key, slots_[i].peer);
  }

 private:
  enum class State : std::uint8_t { kFree = 0, kLive, kTombstone };
  struct Slot {
    PublicKeyBytes key{};
    Peer* peer = nullptr;
    State state = State::kFree;
  };
  static constexpr std::size_t kNotFound = ~std::size_t{0};
  std::size_t hash(const PublicKeyBytes& key) const noexcept;
  std::size_t find_slot(const PublicKeyBytes& key) const noexcept;  // kNotFound when absent
  void rebuild_if_needed() noexcept;  // purge tombstones when they pile up

  std::unique_ptr<Slot[]> slots_;
  std::unique_ptr<std::uint64_t[]> pending_;  // rebuild scratch: 1 bit per slot
  std::size_t mask_ = 0;
  std::size_t max_peers_ = 0;
  std::size_t live_ = 0;
  std::size_t tombstones_ = 0;
  std::uint64_t seed_[2] = {0, 0};  // SipHash key
};

}  // namespace moongate::wg
