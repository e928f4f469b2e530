// A World: the signed list of roots a client trusts. A moon is a World of
// type 0x7f whose id is normally its own address; clients install it as
// moons.d/<id as 16 hex digits>.moon (the file is exactly serialize()).
//
//   type(1) id(8) timestamp(8, ms) update key(64) signature(96)
//   root count(1, <= 4), per root: identity(71) endpoint count(1, <= 32)
//   endpoints (InetAddress form); moons end with a 2-byte dictionary
//   length (always 0).
//
// The signature covers 0x7f x8 ‖ the same bytes without the signature ‖
// 0xf7 x8, signed by the update key (an Ed25519 identity-style key pair kept
// by the operator). Clients accept a newer World for the same id only if it
// is signed by the update key they already have.
#pragma once

#include <cstdint>
#include <optional>
#include <span>
#include <string>
#include <vector>

#include "zerotier/identity.h"
#include "zerotier/wire.h"

namespace moongate::zerotier {

inline constexpr std::uint8_t kWorldTypePlanet = 0x01;
inline constexpr std::uint8_t kWorldTypeMoon = 0x7F;
inline constexpr std::size_t kWorldMaxRoots = 4;
inline constexpr std::size_t kWorldMaxEndpoints = 32;
inline constexpr std::size_t kWorldMaxSize = 4096;

struct WorldRoot {
  Identity identity;  // public part only is serialized
  std::vector<Endpoint> endpoints;
};

struct World {
  std::uint8_t type = kWorldTypeMoon;
  std::uint64_t id = 0;
  std::uint64_t timestamp = 0;
  PublicKey update_key{};
  Signature signature{};
  std::vector<WorldRoot> roots;

  // The wire/file form; empty on overflow (too many roots or endpoints).
  std::vector<std::uint8_t> serialize(bool for_signing = false) const;
  static std::optional<World> parse(std::span<const std::uint8_t> bytes, std::size_t* used = nullptr);

  // Signs with the update key's secret (an Identity with has_secret whose pub
  // equals update_key).
  bool sign(const Identity& update_signer);
  bool verify() const;

  static std::string file_name(std::uint64_t id);  // "%016llx.moon"
};

}  // namespace moongate::zerotier
