// Helpers for the ZeroTier unit tests: identities generated once per
// process (the address hash is slow under ASan) and a tiny client that
// speaks to a Moon in memory.
#pragma once

#include <sodium.h>

#include <cstring>
#include <deque>
#include <vector>

#include "zerotier/armor.h"
#include "zerotier/identity.h"
#include "zerotier/moon.h"
#include "zerotier/packet.h"

namespace moongate::zerotier::test {

// A valid identity, the n-th of a per-process cache.
inline const Identity& valid_identity(std::size_t n) {
  static std::deque<Identity> ids;  // deque: references stay valid as it grows
  static AddressHashScratch scratch;
  while (ids.size() <= n) ids.push_back(Identity::generate(scratch));
  return ids[n];
}

// Fresh keys with any (unverified) address.
inline Identity unchecked_identity(Address a) {
  crypto::Secret<64> seed;
  seed.randomize();
  Identity id = Identity::from_seed(seed.span());
  id.address = a;
  return id;
}

inline World make_world(const Identity& root, std::uint64_t ts, Identity* signer_out = nullptr) {
  crypto::Secret<64> seed;
  seed.randomize();
  Identity signer = Identity::from_seed(seed.span());
  World w;
  w.id = root.address;
  w.timestamp = ts;
  w.update_key = signer.pub;
  WorldRoot r;
  r.identity = root;
  Endpoint e;
  e.parse("192.0.2.1/9993");
  r.endpoints.push_back(e);
  w.roots.push_back(r);
  w.sign(signer);
  if (signer_out) *signer_out = signer;
  return w;
}

struct Client {
  Identity id;
  Address moon;
  PublicKey moon_pub;
  Endpoint ep;
  PeerKey key;

  Client(const Identity& me, const Identity& moon_id, const char* endpoint)
      : id(me), moon(moon_id.address), moon_pub(moon_id.pub) {
    ep.parse(endpoint);
    if (!id.agree(moon_pub, key)) std::abort();
  }

  // A HELLO listing `moons` (world id, timestamp) in its encrypted tail.
  std::vector<std::uint8_t> hello(std::uint64_t pid, std::uint64_t ts,
                                  std::vector<std::pair<std::uint64_t, std::uint64_t>> moons = {}) const {
    std::vector<std::uint8_t> p(kMaxPacket);
    Writer w(p.data(), p.size());
    write_header(w.grow(kIdxPayload), pid, moon, id.address, Verb::kHello);
    w.u8(11);
    w.u8(1);
    w.u8(14);
    w.u16(2);
    w.u64(ts);
    id.serialize(w);
    Endpoint to;
    to.parse("192.0.2.1/9993");
    w.endpoint(to);
    w.u64(0x8056c2e21c000001ull);
    w.u64(1);
    const std::size_t tail = w.size();
    w.u16(static_cast<std::uint16_t>(moons.size()));
    for (auto& m : moons) {
      w.u8(0x7F);
      w.u64(m.first);
      w.u64(m.second);
    }
    p.resize(w.size());
    crypt_field(p, tail, key.data());
    armor(p, key.data(), false);
    return p;
  }

  std::vector<std::uint8_t> packet(Address dest, Verb verb, const std::vector<std::uint8_t>& payload,
                                   const std::uint8_t* k, std::uint64_t pid = 77, unsigned hops = 0) const {
    std::vector<std::uint8_t> p(kIdxPayload + payload.size());
    write_header(p.data(), pid, dest, id.address, verb);
    p[kIdxFlags] = static_cast<std::uint8_t>(hops);
    std::memcpy(p.data() + kIdxPayload, payload.data(), payload.size());
    armor(p, k, true);
    return p;
  }
  std::vector<std::uint8_t> to_moon(Verb verb, const std::vector<std::uint8_t>& payload, std::uint64_t pid = 77) const {
    return packet(moon, verb, payload, key.data(), pid);
  }

  // Dearmours a datagram addressed to us with the moon key; empty if not.
  std::vector<std::uint8_t> open(const Datagram& d) const {
    std::vector<std::uint8_t> p(d.bytes.begin(), d.bytes.begin() + d.len);
    if (p.size() < kMinPacketLength || load_address(p.data() + kIdxDest) != id.address) return {};
    if (!dearmor(p, key.data())) return {};
    return p;
  }
};

}  // namespace moongate::zerotier::test
