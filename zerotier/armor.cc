// Salsa20/12 + Poly1305 packet armour (flow in armor.h), on libsodium's
// crypto_stream_salsa2012 and crypto_onetimeauth_poly1305.
#include "zerotier/armor.h"

#include <sodium.h>

#include <cstring>

namespace moongate::zerotier {

namespace {

// Keystream for the MAC key (block 0) and the payload (blocks 1..). One call
// keeps libsodium's counter handling; the buffer covers the largest packet.
struct Keystream {
  std::uint8_t bytes[64 + kMaxPacket];
  ~Keystream() { sodium_memzero(bytes, sizeof bytes); }
};

void keystream(Keystream& ks, std::size_t n, const std::uint8_t* nonce,
               const crypto::Secret<32>& key) noexcept {
  crypto_stream_salsa2012(ks.bytes, n, nonce, key.data());
}

}  // namespace

void mangle_key(const std::uint8_t* key, std::span<const std::uint8_t> packet,
                crypto::Secret<32>& out) noexcept {
  std::uint8_t* o = out.data();
  const std::uint8_t* k = key;
  for (std::size_t i = 0; i < 18; ++i) o[i] = k[i] ^ packet[i];
  o[18] = k[18] ^ (packet[kIdxFlags] & 0xF8);
  o[19] = k[19] ^ static_cast<std::uint8_t>(packet.size() & 0xFF);
  o[20] = k[20] ^ static_cast<std::uint8_t>((packet.size() >> 8) & 0xFF);
  for (std::size_t i = 21; i < 32; ++i) o[i] = k[i];
}

void armor(std::span<std::uint8_t> packet, const std::uint8_t* key, bool encrypt) noexcept {
  std::uint8_t flags = packet[kIdxFlags] & 0x47;  // keep hops and "fragmented"
  flags |= static_cast<std::uint8_t>((encrypt ? 1 : 0) << 3);
  if (encrypt) flags |= kFlagEncryptedLegacy;
  packet[kIdxFlags] = flags;

  crypto::Secret<32> mk;
  mangle_key(key, packet, mk);
  const std::size_t body = packet.size() - kIdxVerb;
  Keystream ks;
  keystream(ks, 64 + (encrypt ? body : 0), packet.data(), mk);
  if (encrypt)
    for (std::size_t i = 0; i < body; ++i) packet[kIdxVerb + i] ^= ks.bytes[64 + i];
  std::uint8_t mac[crypto_onetimeauth_poly1305_BYTES];
  crypto_onetimeauth_poly1305(mac, packet.data() + kIdxVerb, body, ks.bytes);
  std::memcpy(packet.data() + kIdxMac, mac, 8);
}

bool dearmor(std::span<std::uint8_t> packet, const std::uint8_t* key) noexcept {
  if (packet.size() < kMinPacketLength || packet.size() > kMaxPacket) return false;
  const auto suite = static_cast<CipherSuite>((packet[kIdxFlags] >> 3) & 7);
  if (suite != CipherSuite::kPoly1305None && suite != CipherSuite::kPoly1305Salsa2012) return false;
  const bool encrypted = suite == CipherSuite::kPoly1305Salsa2012;

  crypto::Secret<32> mk;
  mangle_key(key, packet, mk);
  const std::size_t body = packet.size() - kIdxVerb;
  Keystream ks;
  keystream(ks, 64 + (encrypted ? body : 0), packet.data(), mk);
  std::uint8_t mac[crypto_onetimeauth_poly1305_BYTES];
  crypto_onetimeauth_poly1305(mac, packet.data() + kIdxVerb, body, ks.bytes);
  if (!crypto::ct_equal(mac, packet.data() + kIdxMac, 8)) return false;
  if (encrypted)
    for (std::size_t i = 0; i < body; ++i) packet[kIdxVerb + i] ^= ks.bytes[64 + i];
  return true;
}

void crypt_field(std::span<std::uint8_t> packet, std::size_t start, const std::uint8_t* key) noexcept {
  if (start >= packet.size()) return;
  std::uint8_t iv[8];
  std::memcpy(iv, packet.data(), 8);
  iv[7] &= 0xF8;
  crypto_stream_salsa2012_xor(packet.data() + start, packet.data() + start, packet.size() - start, iv, key);
}

}  // namespace moongate::zerotier
