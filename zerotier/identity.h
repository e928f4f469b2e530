// Type-0 ZeroTier identities.
//
// public key (64) = X25519 public (32) ‖ Ed25519 public (32); the secret is
// X25519 private (32) ‖ Ed25519 seed (32). The 40-bit address is bytes 59..63
// of a memory-hard digest of the public key (address_digest()), and an
// identity is valid only if that digest's first byte is below 17 and the
// address is not reserved. Computing it costs tens of milliseconds and 2 MiB,
// which is why the moon never does it on demand (see identity_verifier.h).
//
// Text:   <address 10 hex>:0:<public 128 hex>[:<secret 128 hex>]
// Binary: address(5) type 0(1) public(64) secret length(1) [secret(64)]
// Signature (96) = Ed25519 over SHA-512(message)[0..31], then those 32 bytes.
#pragma once

#include <array>
#include <cstddef>
#include <cstdint>
#include <memory>
#include <optional>
#include <span>
#include <string>

#include "crypto/secret.h"
#include "zerotier/armor.h"
#include "zerotier/wire.h"

namespace moongate::zerotier {

inline constexpr std::size_t kPublicKeyLength = 64;
inline constexpr std::size_t kSecretKeyLength = 64;
inline constexpr std::size_t kSignatureLength = 96;
inline constexpr std::size_t kIdentityWireLength = 71;  // without secret
inline constexpr std::size_t kAddressHashMemory = 2u << 20;
inline constexpr std::uint8_t kAddressHashFirstByteLimit = 17;

using PublicKey = std::array<std::uint8_t, kPublicKeyLength>;
using Signature = std::array<std::uint8_t, kSignatureLength>;

// Scratch memory for the address hash; allocate once and reuse (2 MiB).
struct AddressHashScratch {
  AddressHashScratch();
  std::unique_ptr<std::uint8_t[]> mem;
};

// The memory-hard digest of a public key (64 bytes).
void address_digest(const PublicKey& pub, AddressHashScratch& scratch, std::uint8_t digest[64]) noexcept;

struct Identity {
  Address address = 0;
  PublicKey pub{};
  crypto::Secret<kSecretKeyLength> secret;
  bool has_secret = false;

  // A new identity with a valid address (about 15 tries of the hash).
  static Identity generate(AddressHashScratch& scratch);
  // Keys from a 64-byte seed (X25519 private ‖ Ed25519 seed), address unset.
  static Identity from_seed(std::span<const std::uint8_t, 64> seed);

  // Recomputes the address from the public key: true if it matches and the
  // identity is valid (the expensive check).
  bool locally_validate(AddressHashScratch& scratch) const noexcept;

  // Peer key: SHA-512(X25519(our X25519 private, their X25519 public))[0..47].
  [[nodiscard]] bool agree(const PublicKey& their_pub, PeerKey& out) const noexcept;

  Signature sign(std::span<const std::uint8_t> message) const noexcept;
  static bool verify(const PublicKey& pub, std::span<const std::uint8_t> message,
                     const Signature& sig) noexcept;

  std::string to_string(bool include_secret) const;
  static std::optional<Identity> from_string(const std::string& text);

  // Binary form without the secret (71 bytes).
  void serialize(Writer& w) const noexcept;
  // Parses the binary form; a secret, if present, is skipped unless
  // keep_secret. Sets the reader not-ok on a malformed identity.
  static Identity parse(Reader& r, bool keep_secret = false) noexcept;

  bool same_key(const Identity& o) const noexcept { return address == o.address && pub == o.pub; }
};

}  // namespace moongate::zerotier
