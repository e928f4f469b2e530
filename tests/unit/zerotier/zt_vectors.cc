// Prints test vectors from moongate's ZeroTier code as JSON, for
// check_vectors.py to recompute with its independent Python implementation
// (tests/zerotier/ztref.py). Inputs are fixed (derived from labels), so the
// vectors are reproducible; nothing here decides pass or fail.
#include <sodium.h>

#include <cstdio>
#include <cstring>
#include <string>
#include <vector>

#include "zerotier/armor.h"
#include "zerotier/identity.h"
#include "zerotier/packet.h"
#include "zerotier/world.h"

using namespace moongate::zerotier;

namespace {

std::string hex(const std::uint8_t* p, std::size_t n) {
  static constexpr char d[] = "0123456789abcdef";
  std::string s;
  for (std::size_t i = 0; i < n; ++i) {
    s += d[p[i] >> 4];
    s += d[p[i] & 15];
  }
  return s;
}
template <typename C>
std::string hex(const C& c) {
  return hex(c.data(), c.size());
}

Identity from_label(const char* label) {
  std::uint8_t seed[64];
  crypto_hash_sha512(seed, reinterpret_cast<const std::uint8_t*>(label), std::strlen(label));
  return Identity::from_seed(std::span<const std::uint8_t, 64>(seed, 64));
}

}  // namespace

int main(int argc, char** argv) {
  const bool with_hash = argc > 1 && std::string(argv[1]) == "--hash";
  if (sodium_init() < 0) return 1;
  Identity a = from_label("moongate zerotier vector A");
  Identity b = from_label("moongate zerotier vector B");
  Identity u = from_label("moongate zerotier vector update key");
  a.address = 0x1234567890ull;
  b.address = 0x0abcdef012ull;

  std::printf("{\n");
  std::printf("\"a_secret\": \"%s\",\n", hex(a.secret).c_str());
  std::printf("\"a_public\": \"%s\",\n", hex(a.pub).c_str());
  std::printf("\"b_secret\": \"%s\",\n", hex(b.secret).c_str());
  std::printf("\"b_public\": \"%s\",\n", hex(b.pub).c_str());
  std::printf("\"u_secret\": \"%s\",\n", hex(u.secret).c_str());
  std::printf("\"u_public\": \"%s\",\n", hex(u.pub).c_str());
  if (with_hash) {
    AddressHashScratch scratch;
    std::uint8_t d[64];
    address_digest(a.pub, scratch, d);
    std::printf("\"a_digest\": \"%s\",\n", hex(d, 64).c_str());
  }
  PeerKey k_ab, k_ba;
  if (!a.agree(b.pub, k_ab) || !b.agree(a.pub, k_ba)) return 1;
  std::printf("\"key_ab\": \"%s\",\n", hex(k_ab.data(), k_ab.size()).c_str());
  std::printf("\"key_ba\": \"%s\",\n", hex(k_ba.data(), k_ba.size()).c_str());

  // Packets of several lengths, hops 2, both suites, from A to B.
  std::printf("\"packets\": [\n");
  const std::size_t lengths[] = {0, 1, 36, 63, 64, 65, 300, 1404};
  bool first = true;
  for (std::size_t len : lengths) {
    for (int enc = 0; enc < 2; ++enc) {
      std::vector<std::uint8_t> p(kIdxPayload + len);
      write_header(p.data(), 0x0102030405060708ull + len * 2 + static_cast<unsigned>(enc), b.address, a.address,
                   Verb::kEcho);
      p[kIdxFlags] = 2;  // hops: left out of the key
      for (std::size_t i = 0; i < len; ++i) p[kIdxPayload + i] = static_cast<std::uint8_t>(i * 7 + 3);
      const std::string plain = hex(p);
      moongate::crypto::Secret<32> mk;
      armor(std::span<std::uint8_t>(p), k_ab.data(), enc == 1);
      mangle_key(k_ab.data(), p, mk);
      std::printf("%s{\"plain\": \"%s\", \"encrypt\": %s, \"mangled_key\": \"%s\", \"armored\": \"%s\"}",
                  first ? "" : ",\n", plain.c_str(), enc ? "true" : "false", hex(mk.data(), 32).c_str(),
                  hex(p).c_str());
      first = false;
    }
  }
  std::printf("\n],\n");

  // HELLO's encrypted tail.
  {
    std::vector<std::uint8_t> p(kIdxPayload + 60);
    write_header(p.data(), 0xfedcba9876543217ull, b.address, a.address, Verb::kHello);
    for (std::size_t i = 0; i < 60; ++i) p[kIdxPayload + i] = static_cast<std::uint8_t>(i);
    const std::string plain = hex(p);
    crypt_field(std::span<std::uint8_t>(p), kIdxPayload + 20, k_ab.data());
    std::printf("\"crypt_field\": {\"plain\": \"%s\", \"start\": %zu, \"out\": \"%s\"},\n", plain.c_str(),
                kIdxPayload + 20, hex(p).c_str());
  }

  // A fragmented packet: head + pieces at a small MTU.
  {
    std::vector<std::uint8_t> p(kIdxPayload + 1500);
    write_header(p.data(), 0x1111222233334444ull, b.address, a.address, Verb::kEcho);
    for (std::size_t i = 0; i < 1500; ++i) p[kIdxPayload + i] = static_cast<std::uint8_t>(i);
    p[kIdxFlags] |= kFlagFragmented;
    armor(std::span<std::uint8_t>(p), k_ab.data(), true);
    std::printf("\"fragments\": [");
    bool f1 = true;
    fragment_packet(p.data(), p.size(), 600, [&](const std::uint8_t* q, std::size_t n) {
      std::printf("%s\"%s\"", f1 ? "" : ", ", hex(q, n).c_str());
      f1 = false;
    });
    std::printf("],\n");
  }

  // A moon World with A as its root, signed by U.
  {
    World w;
    w.type = kWorldTypeMoon;
    w.id = a.address;
    w.timestamp = 1700000000123ull;
    w.update_key = u.pub;
    WorldRoot r;
    r.identity = a;
    Endpoint e4, e6;
    e4.parse("192.0.2.1/9993");
    e6.parse("2001:db8::1/9993");
    r.endpoints = {e4, e6};
    w.roots.push_back(r);
    if (!w.sign(u)) return 1;
    std::printf("\"world\": \"%s\",\n", hex(w.serialize()).c_str());
    std::printf("\"world_signed_message\": \"%s\",\n", hex(w.serialize(true)).c_str());
  }
  std::printf("\"a_identity_text\": \"%s\"\n}\n", a.to_string(true).c_str());
  return 0;
}
