// Per-packet keys and the MAC: how a packet is "armoured" for one peer.
//
// 1. The peer key is SHA-512(X25519(a, B))[0..47]; Salsa20 uses bytes 0..31.
// 2. Per packet, the key is mangled with the packet's own header: bytes 0..17
//    XOR the packet id and both addresses, byte 18 XOR (flags & 0xf8: the hop
//    count is left out because relays change it), bytes 19..20 XOR the whole
//    packet length (little-endian). So A->B and B->A, and every length, use
//    different keys.
// 3. Salsa20/12 with the mangled key and the packet id as nonce: keystream
//    bytes 0..31 are the one-time Poly1305 key; suite 1 encrypts verb and
//    payload with the keystream from byte 64 on (the MAC key's block is not
//    reused).
// 4. MAC = the first 8 bytes of Poly1305 over verb..end (after encryption).
//
// HELLO additionally hides its moon list with crypt_field(): Salsa20/12 with
// the unmangled key and the packet id (low 3 bits cleared) as nonce.
#pragma once

#include <cstddef>
#include <cstdint>
#include <span>

#include "crypto/secret.h"
#include "zerotier/packet.h"

namespace moongate::zerotier {

// A peer key as stored (wiped by its owner) and as passed to the functions
// below: 48 bytes, of which Salsa20 uses the first 32.
using PeerKey = crypto::Secret<48>;
inline constexpr std::size_t kPeerKeyLength = 48;

// The mangled Salsa20 key for one packet (step 2).
void mangle_key(const std::uint8_t* key, std::span<const std::uint8_t> packet,
                crypto::Secret<32>& out) noexcept;

// Sets the cipher suite bits, then MACs (and for suite 1 encrypts) in place.
void armor(std::span<std::uint8_t> packet, const std::uint8_t* key, bool encrypt) noexcept;

// Checks the MAC and decrypts in place when the suite is 1. False, with the
// packet unchanged, on a wrong MAC or a suite other than 0/1.
[[nodiscard]] bool dearmor(std::span<std::uint8_t> packet, const std::uint8_t* key) noexcept;

// HELLO's encrypted tail: XOR packet[start..) with Salsa20/12 under the plain
// 32-byte key, nonce = packet id with the low 3 bits of its last byte cleared.
void crypt_field(std::span<std::uint8_t> packet, std::size_t start, const std::uint8_t* key) noexcept;

}  // namespace moongate::zerotier
