// moongatectl moon: the operator's side of a ZeroTier moon.
//
//   moon identity SECRET [PUBLIC]     new identity -> SECRET (0600) [+ PUBLIC]
//   moon init SECRET|PUBLIC [IP/PORT...]
//                                     a moon definition (YAML, stdout): the
//                                     identity as its one root, its stable
//                                     endpoints, a fresh signing key
//   moon gen DEFINITION [DIR]         sign the World (timestamp = now) and
//                                     write DIR/<id 16 hex>.moon
//   moon show FILE.moon               print a .moon file, verify its signature
//
// The definition holds the signing key's secret: whoever has it can publish
// a World that clients of this moon will accept. Keep it off the moon itself
// if you can; the moon only needs identity.secret and the .moon file.
#include "control/moon_cmd.h"

#include <yaml-cpp/yaml.h>

#include <chrono>
#include <cstdio>

#include "crypto/secret.h"
#include "zerotier/moon_files.h"

namespace moongate::control {

namespace {

using namespace moongate::zerotier;

int usage() {
  std::fprintf(stderr,
               "usage: moongatectl moon identity SECRET_FILE [PUBLIC_FILE]\n"
               "       moongatectl moon init IDENTITY_FILE [IP/PORT ...] > moon.yaml\n"
               "       moongatectl moon gen moon.yaml [DIR]\n"
               "       moongatectl moon show FILE.moon\n");
  return 2;
}

std::string hex(const std::uint8_t* p, std::size_t n) {
  static constexpr char d[] = "0123456789abcdef";
  std::string s;
  for (std::size_t i = 0; i < n; ++i) {
    s += d[p[i] >> 4];
    s += d[p[i] & 15];
  }
  return s;
}

int cmd_identity(const std::vector<std::string>& a) {
  if (a.size() < 2 || a.size() > 3) return usage();
  AddressHashScratch scratch;
  const Identity id = Identity::generate(scratch);
  std::string error;
  if (!write_identity_file(a[1], id, true, error) || (a.size() == 3 && !write_identity_file(a[2], id, false, error))) {
    std::fprintf(stderr, "moongatectl: %s\n", error.c_str());
    return 1;
  }
  std::printf("%s\n", address_hex(id.address).c_str());
  return 0;
}

int cmd_init(const std::vector<std::string>& a) {
  if (a.size() < 2) return usage();
  std::string error;
  auto id = read_identity_file(a[1], error);
  if (!id) {
    std::fprintf(stderr, "moongatectl: %s\n", error.c_str());
    return 1;
  }
  std::vector<std::string> eps;
  for (std::size_t i = 2; i < a.size(); ++i) {
    Endpoint e;
    if (!e.parse(a[i])) {
      std::fprintf(stderr, "moongatectl: %s: expected IP/PORT (e.g. 203.0.113.5/9993)\n", a[i].c_str());
      return 1;
    }
    eps.push_back(e.to_string());
  }
  if (eps.size() > kWorldMaxEndpoints) {
    std::fprintf(stderr, "moongatectl: at most %zu endpoints per root\n", kWorldMaxEndpoints);
    return 1;
  }
  crypto::Secret<64> seed;
  seed.randomize();
  const Identity signer = Identity::from_seed(seed.span());
  YAML::Emitter y;
  y << YAML::BeginMap;
  y << YAML::Key << "id" << YAML::Value << address_hex(id->address);
  y << YAML::Key << "signing_key" << YAML::Value << hex(signer.pub.data(), signer.pub.size());
  y << YAML::Key << "signing_key_secret" << YAML::Value << hex(signer.secret.data(), signer.secret.size());
  y << YAML::Key << "roots" << YAML::Value << YAML::BeginSeq;
  y << YAML::BeginMap << YAML::Key << "identity" << YAML::Value << id->to_string(false);
  y << YAML::Key << "stable_endpoints" << YAML::Value << YAML::Flow << eps << YAML::EndMap;
  y << YAML::EndSeq << YAML::EndMap;
  std::printf("# moon definition for %s: keep it private, it holds the World signing key.\n"
              "# Edit stable_endpoints (IP/PORT the clients can reach), add up to 4 roots,\n"
              "# then: moongatectl moon gen THIS_FILE [DIR]\n%s\n",
              address_hex(id->address).c_str(), y.c_str());
  return 0;
}

bool unhex(const std::string& s, std::uint8_t* out, std::size_t n) {
  if (s.size() != 2 * n) return false;
  for (std::size_t i = 0; i < n; ++i) {
    unsigned v = 0;
    if (std::sscanf(s.c_str() + 2 * i, "%2x", &v) != 1) return false;
    out[i] = static_cast<std::uint8_t>(v);
  }
  return true;
}

int cmd_gen(const std::vector<std::string>& a) {
  if (a.size() < 2 || a.size() > 3) return usage();
  const std::string& path = a[1];
  World w;
  Identity signer;
  try {
    const YAML::Node y = YAML::LoadFile(path);
    auto fail = [&](const std::string& what) {
      std::fprintf(stderr, "moongatectl: %s: %s\n", path.c_str(), what.c_str());
      return 1;
    };
    const std::string id = y["id"] ? y["id"].as<std::string>() : "";
    std::uint8_t idb[5];
    if (!unhex(id, idb, 5)) return fail("id: expected 10 hex digits (the moon's address)");
    w.id = load_address(idb);
    const std::string pk = y["signing_key"] ? y["signing_key"].as<std::string>() : "";
    const std::string sk = y["signing_key_secret"] ? y["signing_key_secret"].as<std::string>() : "";
    crypto::Secret<64> seed;
    if (!unhex(pk, w.update_key.data(), w.update_key.size()) || !unhex(sk, seed.data(), seed.size()))
      return fail("signing_key / signing_key_secret: expected 128 hex digits each");
    signer = Identity::from_seed(seed.span());
    if (signer.pub != w.update_key) return fail("signing_key_secret is not signing_key's secret");
    const YAML::Node roots = y["roots"];
    if (!roots || !roots.IsSequence() || roots.size() == 0 || roots.size() > kWorldMaxRoots)
      return fail("roots: expected a list of 1 to 4 roots");
    for (std::size_t i = 0; i < roots.size(); ++i) {
      const std::string where = "roots[" + std::to_string(i) + "]";
      auto ident = Identity::from_string(roots[i]["identity"] ? roots[i]["identity"].as<std::string>() : "");
      if (!ident) return fail(where + ".identity: expected address:0:public");
      WorldRoot r;
      r.identity = *ident;
      r.identity.has_secret = false;
      const YAML::Node eps = roots[i]["stable_endpoints"];
      if (eps && !eps.IsSequence()) return fail(where + ".stable_endpoints: expected a list of IP/PORT");
      for (std::size_t j = 0; eps && j < eps.size(); ++j) {
        Endpoint e;
        if (!e.parse(eps[j].as<std::string>())) return fail(where + ".stable_endpoints: " + eps[j].as<std::string>() + ": expected IP/PORT");
        r.endpoints.push_back(e);
      }
      if (r.endpoints.empty()) return fail(where + ".stable_endpoints: a root needs at least one (clients only use those)");
      if (r.endpoints.size() > kWorldMaxEndpoints) return fail(where + ".stable_endpoints: at most 32");
      w.roots.push_back(std::move(r));
    }
  } catch (const YAML::Exception& e) {
    std::fprintf(stderr, "moongatectl: %s: %s\n", path.c_str(), e.what());
    return 1;
  }
  // A newer timestamp is what makes clients take an updated World.
  w.timestamp = static_cast<std::uint64_t>(
      std::chrono::duration_cast<std::chrono::milliseconds>(std::chrono::system_clock::now().time_since_epoch()).count());
  if (!w.sign(signer)) {
    std::fprintf(stderr, "moongatectl: signing failed\n");
    return 1;
  }
  const std::string out = (a.size() == 3 ? a[2] + "/" : std::string()) + World::file_name(w.id);
  std::string error;
  if (!write_world_file(out, w, error)) {
    std::fprintf(stderr, "moongatectl: %s\n", error.c_str());
    return 1;
  }
  std::printf("%s\n", out.c_str());
  return 0;
}

int cmd_show(const std::vector<std::string>& a) {
  if (a.size() != 2) return usage();
  std::string error;
  auto w = read_world_file(a[1], error);
  if (!w) {
    std::fprintf(stderr, "moongatectl: %s\n", error.c_str());
    return 1;
  }
  std::printf("type: %s\nid: %016llx\ntimestamp: %llu\nsigning_key: %s\nsignature: valid\nroots:\n",
              w->type == kWorldTypeMoon ? "moon" : "planet", static_cast<unsigned long long>(w->id),
              static_cast<unsigned long long>(w->timestamp), hex(w->update_key.data(), w->update_key.size()).c_str());
  for (const auto& r : w->roots) {
    std::printf("  - identity: %s\n    stable_endpoints: [", r.identity.to_string(false).c_str());
    for (std::size_t i = 0; i < r.endpoints.size(); ++i)
      std::printf("%s%s", i ? ", " : "", r.endpoints[i].to_string().c_str());
    std::printf("]\n");
  }
  return 0;
}

}  // namespace

int moon_command(const std::vector<std::string>& args) {
  if (args.empty()) return usage();
  if (args[0] == "identity") return cmd_identity(args);
  if (args[0] == "init") return cmd_init(args);
  if (args[0] == "gen") return cmd_gen(args);
  if (args[0] == "show") return cmd_show(args);
  return usage();
}

}  // namespace moongate::control
