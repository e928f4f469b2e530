// A moon's settings, shared by its hosts (moongate-moon, moongate-relay):
//   1. the `moon:` YAML section and/or flags of the same names fill
//      MoonSettings (apply_moon_setting / load_moon_yaml); relative paths
//      in a file are relative to that file;
//   2. open_moon() reads the identity (it must hold its secret) and the
//      World (signature checked), refuses a World that does not list the
//      identity as a root, and parses `listen`.
// Errors are whole messages ("file:line:col: moon.key: ..."), which the
// host prints after its own name.
#pragma once

#include <optional>
#include <string>

#include "zerotier/identity.h"
#include "zerotier/moon.h"
#include "zerotier/wire.h"
#include "zerotier/world.h"

namespace moongate::zerotier {

struct MoonSettings {
  std::string identity_path, world_path, listen = "0.0.0.0/9993", stats;
  MoonConfig config;
};

// Keys: identity, world, listen, stats, verify_per_second, verify_burst,
// verify_per_source, max_peers, max_hops. False if unknown or out of range.
bool apply_moon_setting(MoonSettings& st, const std::string& key, const std::string& value);

// Reads the `moon:` section of a YAML file into `st`; false with every
// problem in `error`, one per line.
bool load_moon_yaml(const std::string& path, MoonSettings& st, std::string& error);

struct OpenedMoon {
  Identity identity;
  World world;
  Endpoint listen;
};
// Step 2. std::nullopt with `error` on any problem.
std::optional<OpenedMoon> open_moon(const MoonSettings& st, std::string& error);

}  // namespace moongate::zerotier
