// libFuzzer target: the ZeroTier moon (zerotier/) on arbitrary datagrams.
//
// A Moon with a generated identity and two clients A and B preloaded
// (add_verified_peer). data[0] % 4 picks how the rest becomes a datagram,
// so the fuzzer reaches past the MAC check without having to forge it:
//   0  raw: the bytes as received (fragments, garbage, truncation)
//   1  A -> moon, verb data[1], payload data[2..], sealed with A's key
//      (suite 1): the verb handlers on arbitrary payloads
//   2  A -> moon HELLO (suite 0, MAC'd with A's key), body data[1..]: the
//      HELLO parser and its encrypted moon list on a known identity
//   3  A -> B with hops data[1] & 7, payload data[2..]: relaying
// The datagram is copied to a heap buffer of exactly its size so ASan sees
// any read past it. The clock advances 7 ms per input and tick() runs every
// 1000 inputs.
//
// Oracles (abort on violation): every datagram out is 16..kMaxDatagram
// bytes and goes to A or B; a relayed packet (mode 3) is the input with the
// hop count one higher and nothing else changed; rx_datagrams counts every
// input.
#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <vector>

#include "zerotier/moon.h"

using namespace moongate::zerotier;

namespace {

#define CHECK(c)                                                    \
  do {                                                              \
    if (!(c)) {                                                     \
      std::fprintf(stderr, "fuzz_moon: check failed: %s\n", #c);    \
      std::abort();                                                 \
    }                                                               \
  } while (0)

struct World_ {
  Identity moon_id, a, b;
  PeerKey ka, kab;
  Endpoint ea, eb;
  Moon* moon = nullptr;
  std::uint64_t now = 1000, inputs = 0;

  World_() {
    AddressHashScratch scratch;
    moon_id = Identity::generate(scratch);
    moongate::crypto::Secret<64> seed;
    for (Identity* c : {&a, &b}) {
      seed.randomize();
      *c = Identity::from_seed(seed.span());
    }
    a.address = 0x0a0a0a0a0aull;
    b.address = 0x0b0b0b0b0bull;
    seed.randomize();
    const Identity signer = Identity::from_seed(seed.span());
    World w;
    w.id = moon_id.address;
    w.timestamp = 5;
    w.update_key = signer.pub;
    WorldRoot r;
    r.identity = moon_id;
    Endpoint e;
    e.parse("192.0.2.1/9993");
    r.endpoints.push_back(e);
    w.roots.push_back(r);
    w.sign(signer);
    MoonConfig cfg;
    cfg.max_peers = 64;
    cfg.max_multicast_groups = 64;
    moon = new Moon(moon_id, w, cfg);
    ea.parse("198.51.100.1/1000");
    eb.parse("198.51.100.2/2000");
    CHECK(moon->add_verified_peer(a, ea, now));
    CHECK(moon->add_verified_peer(b, eb, now));
    CHECK(a.agree(moon_id.pub, ka));
    CHECK(a.agree(b.pub, kab));
  }
};

World_& world() {
  static World_* w = new World_();  // never destroyed: libFuzzer exits without unwinding
  return *w;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  if (size < 1 || size > kMaxDatagram + 2) return 0;
  World_& w = world();
  const unsigned mode = data[0] % 4;
  std::vector<std::uint8_t> d;
  if (mode == 0) {
    d.assign(data + 1, data + size);
  } else if (mode == 1 || mode == 3) {
    if (size < 2) return 0;
    const bool relay = mode == 3;
    d.resize(kIdxPayload + size - 2);
    write_header(d.data(), w.inputs, relay ? w.b.address : w.moon_id.address, w.a.address,
                 relay ? Verb::kFrame : static_cast<Verb>(data[1]));
    std::memcpy(d.data() + kIdxPayload, data + 2, size - 2);
    if (relay) d[kIdxFlags] = data[1] & kHopsMask;
    armor(d, relay ? w.kab.data() : w.ka.data(), true);
  } else {
    d.resize(kIdxPayload + size - 1);
    write_header(d.data(), w.inputs, w.moon_id.address, w.a.address, Verb::kHello);
    std::memcpy(d.data() + kIdxPayload, data + 1, size - 1);
    armor(d, w.ka.data(), false);
  }
  if (d.size() > kMaxDatagram + 64) return 0;
  // Exactly-sized heap copy for ASan.
  std::uint8_t* buf = static_cast<std::uint8_t*>(std::malloc(d.size() ? d.size() : 1));
  if (!d.empty()) std::memcpy(buf, d.data(), d.size());
  const Endpoint& from = w.ea;
  TxBatch out;
  const std::uint64_t rx0 = w.moon->counters().rx_datagrams;
  const std::uint64_t relayed0 = w.moon->counters().relayed;
  w.moon->receive(std::span<const std::uint8_t>(buf, d.size()), from, w.now, out);
  CHECK(w.moon->counters().rx_datagrams == rx0 + 1);
  for (std::size_t i = 0; i < out.size(); ++i) {
    CHECK(out[i].len >= kFragHeaderLength && out[i].len <= kMaxDatagram);
    CHECK(out[i].to == w.ea || out[i].to == w.eb);
  }
  if (mode == 3 && w.moon->counters().relayed == relayed0 + 1) {
    CHECK(out.size() >= 1 && out[0].len == d.size() && out[0].to == w.eb);
    for (std::size_t i = 0; i < d.size(); ++i)
      if (i != kIdxFlags) CHECK(out[0].bytes[i] == d[i]);
    CHECK((out[0].bytes[kIdxFlags] & kHopsMask) == (d[kIdxFlags] & kHopsMask) + 1);
    CHECK((out[0].bytes[kIdxFlags] & ~kHopsMask) == (d[kIdxFlags] & ~kHopsMask));
  }
  std::free(buf);
  w.now += 7;
  if (++w.inputs % 1000 == 0) {
    out.clear();
    w.moon->tick(w.now, out);
    // Keep A and B known: the fuzzer may run past the idle expiry.
    w.moon->add_verified_peer(w.a, w.ea, w.now);
    w.moon->add_verified_peer(w.b, w.eb, w.now);
  }
  return 0;
}
