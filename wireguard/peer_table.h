// Peers by static public key: the lookup a responder does after decrypting
// the initiator's static key, and the one configuration does. Open
// addressing on a keyed hash of the key (SipHash keyed with a random
// seed so a configuration cannot be crafted to collide), allocated once
// for the configured capacity and never resized.
//
// The hash is SipHash-2-4 (libsodium crypto_shorthash) under a 16-byte key
// drawn from the CSPRNG per table. Removal frees the slot and shifts the
// rest of its cluster back (OpenTable's backward-shift deletion, which
// re-hashes each entry it walks over): no tombstones and no periodic rehash.
#pragma once

#include <array>
#include <cstddef>
#include <cstdint>
#include <cstring>

#include "wireguard/open_table.h"

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

  std::size_t size() const noexcept { return table_.size(); }
  std::size_t capacity() const noexcept { return table_.capacity(); }
  // Diagnostics (tests, stats): slot array size, and how many slots the
  // latest insert or remove examined (see OpenTable::last_slots_touched).
  std::size_t slot_count() const noexcept { return table_.slot_count(); }
  std::size_t last_slots_touched() const noexcept { return table_.last_slots_touched(); }

  // Visits every live (key, peer) pair; f(const PublicKeyBytes&, Peer*).
  // f must not insert or remove: a removal moves entries under the iteration.
  template <class F>
  void for_each(F&& f) const {
    table_.for_each([&f](const Slot& s) { f(s.key, s.peer); });
  }

 private:
  enum class State : std::uint8_t { kFree = 0, kLive };
  struct Slot {
    PublicKeyBytes key{};
    Peer* peer = nullptr;
    State state = State::kFree;
  };
  struct Traits {
    using Key = PublicKeyBytes;
    static constexpr bool is_free(const Slot& s) noexcept { return s.state == State::kFree; }
    static constexpr const PublicKeyBytes& key_of(const Slot& s) noexcept { return s.key; }
    // Public keys are not secret and a lookup reveals only whether a peer is
    // configured, so an early-exit comparison is fine here.
    static bool same_key(const PublicKeyBytes& a, const PublicKeyBytes& b) noexcept {
      return std::memcmp(a.data(), b.data(), a.size()) == 0;
    }
    std::size_t hash(const PublicKeyBytes& key) const noexcept;  // SipHash-2-4 under seed
    static Traits random_seeded() noexcept;

    std::uint64_t seed[2] = {0, 0};  // SipHash key
  };

  using Table = OpenTable<Slot, Traits>;
  Table table_;
};

}  // namespace moongate::wg
