// The moon's files on disk:
//   identity.secret   <address>:0:<public hex>:<secret hex>  (mode 0600)
//   <id 16 hex>.moon  the signed World, exactly as clients put it in moons.d/
#pragma once

#include <optional>
#include <string>

#include "zerotier/identity.h"
#include "zerotier/world.h"

namespace moongate::zerotier {

std::optional<Identity> read_identity_file(const std::string& path, std::string& error);
// Refuses to overwrite an existing file; the secret file is created 0600.
bool write_identity_file(const std::string& path, const Identity& id, bool include_secret, std::string& error);

// Reads and checks a .moon file: parses whole, signature verifies.
std::optional<World> read_world_file(const std::string& path, std::string& error);
bool write_world_file(const std::string& path, const World& world, std::string& error);

}  // namespace moongate::zerotier
