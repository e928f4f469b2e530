// World serialization, signing and verification (layout in world.h).
#include "zerotier/world.h"

#include <cstdio>
#include <cstring>

namespace moongate::zerotier {

std::vector<std::uint8_t> World::serialize(bool for_signing) const {
  if (roots.size() > kWorldMaxRoots) return {};
  std::vector<std::uint8_t> buf(kWorldMaxSize + 16);
  Writer w(buf.data(), buf.size());
  if (for_signing) w.u64(0x7f7f7f7f7f7f7f7full);
  w.u8(type);
  w.u64(id);
  w.u64(timestamp);
  w.bytes(update_key.data(), update_key.size());
  if (!for_signing) w.bytes(signature.data(), signature.size());
  w.u8(static_cast<std::uint8_t>(roots.size()));
  for (const WorldRoot& r : roots) {
    if (r.endpoints.size() > kWorldMaxEndpoints) return {};
    r.identity.serialize(w);
    w.u8(static_cast<std::uint8_t>(r.endpoints.size()));
    for (const Endpoint& e : r.endpoints) w.endpoint(e);
  }
  if (type == kWorldTypeMoon) w.u16(0);
  if (for_signing) w.u64(0xf7f7f7f7f7f7f7f7ull);
  if (!w.ok()) return {};
  buf.resize(w.size());
  return buf;
}

std::optional<World> World::parse(std::span<const std::uint8_t> bytes, std::size_t* used) {
  Reader r(bytes.data(), bytes.size());
  World wd;
  wd.type = r.u8();
  if (wd.type != kWorldTypeMoon && wd.type != kWorldTypePlanet) return std::nullopt;
  wd.id = r.u64();
  wd.timestamp = r.u64();
  if (const auto* p = r.take(kPublicKeyLength)) std::memcpy(wd.update_key.data(), p, kPublicKeyLength);
  if (const auto* p = r.take(kSignatureLength)) std::memcpy(wd.signature.data(), p, kSignatureLength);
  const std::size_t nroots = r.u8();
  if (!r.ok() || nroots > kWorldMaxRoots) return std::nullopt;
  for (std::size_t i = 0; i < nroots; ++i) {
    WorldRoot root;
    root.identity = Identity::parse(r);
    const std::size_t neps = r.u8();
    if (!r.ok() || neps > kWorldMaxEndpoints) return std::nullopt;
    for (std::size_t j = 0; j < neps; ++j) {
      const Endpoint e = r.endpoint();
      if (!r.ok() || e.family == 0) return std::nullopt;
      root.endpoints.push_back(e);
    }
    wd.roots.push_back(std::move(root));
  }
  if (wd.type == kWorldTypeMoon) {
    const std::size_t dict = r.u16();
    r.take(dict);
  }
  if (!r.ok()) return std::nullopt;
  if (used) *used = r.pos();
  return wd;
}

bool World::sign(const Identity& signer) {
  if (!signer.has_secret || signer.pub != update_key) return false;
  const auto msg = serialize(true);
  if (msg.empty()) return false;
  signature = signer.sign(msg);
  return true;
}

bool World::verify() const {
  const auto msg = serialize(true);
  return !msg.empty() && Identity::verify(update_key, msg, signature);
}

std::string World::file_name(std::uint64_t world_id) {
  char buf[32];
  std::snprintf(buf, sizeof buf, "%016llx.moon", static_cast<unsigned long long>(world_id));
  return buf;
}

}  // namespace moongate::zerotier
