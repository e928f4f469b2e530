// Identities: the memory-hard address hash, key agreement, signatures and the
// text/binary forms (formats in identity.h).
#include "zerotier/identity.h"

#include <sodium.h>

#include <cstring>

#include "crypto/sodium_init.h"

namespace moongate::zerotier {

AddressHashScratch::AddressHashScratch() : mem(new std::uint8_t[kAddressHashMemory]) {}

void address_digest(const PublicKey& pub, AddressHashScratch& scratch, std::uint8_t digest[64]) noexcept {
  crypto::ensure_sodium();
  crypto_hash_sha512(digest, pub.data(), pub.size());
  std::uint8_t key[32];
  std::uint8_t nonce[8];
  std::memcpy(key, digest, 32);
  std::memcpy(nonce, digest + 32, 8);

  // 1. Fill the memory with Salsa20/20 keystream chained block to block
  //    (block i = block i-1 XOR keystream block i), so it cannot be computed
  //    out of order the way plain counter-mode keystream could.
  std::uint8_t* const mem = scratch.mem.get();
  constexpr std::size_t kBlocks = kAddressHashMemory / 64;
  crypto_stream_salsa20(mem, kAddressHashMemory, nonce, key);
  for (std::size_t i = 64; i < kAddressHashMemory; ++i) mem[i] ^= mem[i - 64];

  // 2. Walk the memory two words at a time: the first picks one of the
  //    digest's eight words, the second one of the memory's words; swap them,
  //    then XOR the digest with the next keystream block. Words move as raw
  //    bytes; only the index reads interpret them (big-endian).
  constexpr std::size_t kWords = kAddressHashMemory / 8;
  std::uint64_t counter = kBlocks;
  for (std::size_t i = 0; i < kWords; i += 2) {
    const std::size_t idx1 = static_cast<std::size_t>(load_be64(mem + 8 * i) % 8);
    const std::size_t idx2 = static_cast<std::size_t>(load_be64(mem + 8 * (i + 1)) % kWords);
    std::uint8_t tmp[8];
    std::memcpy(tmp, mem + 8 * idx2, 8);
    std::memcpy(mem + 8 * idx2, digest + 8 * idx1, 8);
    std::memcpy(digest + 8 * idx1, tmp, 8);
    crypto_stream_salsa20_xor_ic(digest, digest, 64, nonce, counter++, key);
  }
  sodium_memzero(key, sizeof key);
}

Identity Identity::from_seed(std::span<const std::uint8_t, 64> seed) {
  crypto::ensure_sodium();
  Identity id;
  id.secret.assign(seed);
  id.has_secret = true;
  crypto_scalarmult_base(id.pub.data(), seed.data());
  std::uint8_t sk[crypto_sign_SECRETKEYBYTES];
  crypto_sign_seed_keypair(id.pub.data() + 32, sk, seed.data() + 32);
  sodium_memzero(sk, sizeof sk);
  return id;
}

Identity Identity::generate(AddressHashScratch& scratch) {
  for (;;) {
    crypto::Secret<64> seed;
    seed.randomize();
    Identity id = from_seed(seed.span());
    std::uint8_t d[64];
    address_digest(id.pub, scratch, d);
    if (d[0] >= kAddressHashFirstByteLimit) continue;
    id.address = load_address(d + 59);
    if (!address_reserved(id.address)) return id;
  }
}

bool Identity::locally_validate(AddressHashScratch& scratch) const noexcept {
  if (address_reserved(address)) return false;
  std::uint8_t d[64];
  address_digest(pub, scratch, d);
  return d[0] < kAddressHashFirstByteLimit && load_address(d + 59) == address;
}

bool Identity::agree(const PublicKey& their_pub, PeerKey& out) const noexcept {
  if (!has_secret) return false;
  crypto::Secret<32> shared;
  // crypto_scalarmult refuses an all-zero result (a low-order public key).
  if (crypto_scalarmult(shared.data(), secret.data(), their_pub.data()) != 0) return false;
  crypto::Secret<64> h;
  crypto_hash_sha512(h.data(), shared.data(), 32);
  std::memcpy(out.data(), h.data(), 48);
  return true;
}

Signature Identity::sign(std::span<const std::uint8_t> message) const noexcept {
  Signature sig{};
  std::uint8_t digest[64];
  crypto_hash_sha512(digest, message.data(), message.size());
  std::uint8_t pk[32];
  crypto::Secret<64> sk;
  crypto_sign_seed_keypair(pk, sk.data(), secret.data() + 32);
  crypto_sign_detached(sig.data(), nullptr, digest, 32, sk.data());
  std::memcpy(sig.data() + 64, digest, 32);
  return sig;
}

bool Identity::verify(const PublicKey& pub, std::span<const std::uint8_t> message,
                      const Signature& sig) noexcept {
  crypto::ensure_sodium();
  std::uint8_t digest[64];
  crypto_hash_sha512(digest, message.data(), message.size());
  if (std::memcmp(sig.data() + 64, digest, 32) != 0) return false;
  return crypto_sign_verify_detached(sig.data(), digest, 32, pub.data() + 32) == 0;
}

namespace {

std::string hex(const std::uint8_t* p, std::size_t n) {
  static constexpr char kDigits[] = "0123456789abcdef";
  std::string s;
  for (std::size_t i = 0; i < n; ++i) {
    s.push_back(kDigits[p[i] >> 4]);
    s.push_back(kDigits[p[i] & 15]);
  }
  return s;
}

bool unhex(const std::string& s, std::uint8_t* out, std::size_t n) {
  if (s.size() != 2 * n) return false;
  auto nib = [](char c) -> int {
    if (c >= '0' && c <= '9') return c - '0';
    if (c >= 'a' && c <= 'f') return c - 'a' + 10;
    if (c >= 'A' && c <= 'F') return c - 'A' + 10;
    return -1;
  };
  for (std::size_t i = 0; i < n; ++i) {
    const int hi = nib(s[2 * i]), lo = nib(s[2 * i + 1]);
    if (hi < 0 || lo < 0) return false;
    out[i] = static_cast<std::uint8_t>(hi << 4 | lo);
  }
  return true;
}

}  // namespace

std::string Identity::to_string(bool include_secret) const {
  std::string s = address_hex(address) + ":0:" + hex(pub.data(), pub.size());
  if (include_secret && has_secret) s += ":" + hex(secret.data(), secret.size());
  return s;
}

std::optional<Identity> Identity::from_string(const std::string& text) {
  std::string t = text;
  while (!t.empty() && (t.back() == '\n' || t.back() == '\r' || t.back() == ' ')) t.pop_back();
  std::string f[5];
  std::size_t nf = 0, start = 0;
  for (;;) {
    const auto c = t.find(':', start);
    if (nf == 5) return std::nullopt;
    f[nf++] = t.substr(start, c == std::string::npos ? std::string::npos : c - start);
    if (c == std::string::npos) break;
    start = c + 1;
  }
  if (nf < 3 || nf > 4 || f[1] != "0") return std::nullopt;
  Identity id;
  std::uint8_t a[5];
  if (!unhex(f[0], a, 5) || !unhex(f[2], id.pub.data(), id.pub.size())) return std::nullopt;
  id.address = load_address(a);
  if (address_reserved(id.address)) return std::nullopt;
  if (nf == 4) {
    if (!unhex(f[3], id.secret.data(), id.secret.size())) return std::nullopt;
    id.has_secret = true;
    // The secret must be the public key's: a mismatched file would make a
    // moon that nobody can talk to.
    const Identity check = from_seed(id.secret.span());
    if (check.pub != id.pub) return std::nullopt;
  }
  return id;
}

void Identity::serialize(Writer& w) const noexcept {
  w.address(address);
  w.u8(0);
  w.bytes(pub.data(), pub.size());
  w.u8(0);
}

Identity Identity::parse(Reader& r, bool keep_secret) noexcept {
  Identity id;
  id.address = r.address();
  if (r.u8() != 0) r.take(r.remaining() + 1);  // only type 0 exists in protocol 11
  if (const auto* p = r.take(kPublicKeyLength)) std::memcpy(id.pub.data(), p, kPublicKeyLength);
  const std::uint8_t sl = r.u8();
  if (sl != 0) {
    const auto* s = r.take(sl);
    if (sl != kSecretKeyLength) {
      r.take(r.remaining() + 1);
    } else if (s && keep_secret) {
      std::memcpy(id.secret.data(), s, kSecretKeyLength);
      id.has_secret = true;
    }
  }
  return id;
}

}  // namespace moongate::zerotier
