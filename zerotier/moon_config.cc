// The moon's settings and files, checked the same way for every host
// (flow in moon_config.h).
#include "zerotier/moon_config.h"

#include <cstdlib>

#include <yaml-cpp/yaml.h>

#include "zerotier/moon_files.h"

namespace moongate::zerotier {

namespace {

bool number(const std::string& s, std::uint64_t lo, std::uint64_t hi, std::uint64_t& out) {
  if (s.empty() || s.size() > 10 || s.find_first_not_of("0123456789") != std::string::npos) return false;
  out = std::strtoull(s.c_str(), nullptr, 10);
  return out >= lo && out <= hi;
}

}  // namespace

bool apply_moon_setting(MoonSettings& st, const std::string& key, const std::string& v) {
  std::uint64_t n = 0;
  MoonConfig& c = st.config;
  if (key == "identity") st.identity_path = v;
  else if (key == "world") st.world_path = v;
  else if (key == "listen") st.listen = v;
  else if (key == "stats") st.stats = v;
  else if (key == "verify_per_second" && number(v, 1, 100000, n)) c.verify.per_second = static_cast<std::uint32_t>(n);
  else if (key == "verify_burst" && number(v, 1, 100000, n)) c.verify.burst = static_cast<std::uint32_t>(n);
  else if (key == "verify_per_source" && number(v, 1, 100000, n)) {
    c.verify.per_source_per_second = static_cast<std::uint32_t>(n);
    c.verify.per_source_burst = static_cast<std::uint32_t>(2 * n);
  } else if (key == "max_peers" && number(v, 16, 10000000, n)) c.max_peers = n;
  else if (key == "max_hops" && number(v, 0, 7, n)) c.max_hops = static_cast<unsigned>(n);
  else return false;
  return true;
}

bool load_moon_yaml(const std::string& path, MoonSettings& st, std::string& error) {
  try {
    const YAML::Node root = YAML::LoadFile(path);
    const YAML::Node m = root["moon"];
    if (!m || !m.IsMap()) {
      error = path + ": expected a `moon:` section";
      return false;
    }
    const std::string dir = path.find('/') == std::string::npos ? "" : path.substr(0, path.rfind('/') + 1);
    bool ok = true;
    for (const auto& kv : m) {
      const std::string key = kv.first.as<std::string>();
      const auto mark = kv.second.Mark();
      std::string v = kv.second.IsScalar() ? kv.second.as<std::string>() : "";
      if ((key == "identity" || key == "world" || key == "stats") && !v.empty() && v[0] != '/') v = dir + v;
      if (!kv.second.IsScalar() || !apply_moon_setting(st, key, v)) {
        if (!error.empty()) error += "\n";
        error += path + ":" + std::to_string(mark.line + 1) + ":" + std::to_string(mark.column + 1) + ": moon." +
                 key + ": " +
                 (kv.second.IsScalar() ? "unknown setting or value out of range" : "expected a single value");
        ok = false;
      }
    }
    return ok;
  } catch (const YAML::Exception& e) {
    error = path + ": " + e.what();
    return false;
  }
}

std::optional<OpenedMoon> open_moon(const MoonSettings& st, std::string& error) {
  if (st.identity_path.empty() || st.world_path.empty()) {
    error = "the moon needs an identity and a world";
    return std::nullopt;
  }
  auto id = read_identity_file(st.identity_path, error);
  if (!id) return std::nullopt;
  if (!id->has_secret) {
    error = st.identity_path + ": no secret key";
    return std::nullopt;
  }
  auto world = read_world_file(st.world_path, error);
  if (!world) return std::nullopt;
  // Clients only accept a root's answers if the World names it: serving a
  // World that does not list us would fail at every client instead of here.
  bool listed = false;
  for (const auto& r : world->roots) listed |= r.identity.same_key(*id);
  if (!listed) {
    error = address_hex(id->address) + " is not a root of the World in " + st.world_path;
    return std::nullopt;
  }
  Endpoint local;
  if (!local.parse(st.listen, true)) {
    error = "listen " + st.listen + ": expected IP/PORT";
    return std::nullopt;
  }
  return OpenedMoon{std::move(*id), std::move(*world), local};
}

}  // namespace moongate::zerotier
