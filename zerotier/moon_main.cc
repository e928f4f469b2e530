// moongate-moon: a ZeroTier moon on a kernel UDP socket.
//
//   moongate-moon --identity identity.secret --world 000000xxxxxxxxxx.moon
//                 [--listen 0.0.0.0/9993] [--stats FILE]
//                 [--verify-per-second N] [--verify-burst N]
//                 [--verify-per-source N] [--max-peers N] [--max-hops N]
//   moongate-moon --config moon.yaml [options above override the file]
//
// The YAML file has one `moon:` section with the same settings
// (identity, world, listen, stats, verify_per_second, verify_burst,
// verify_per_source, max_peers, max_hops); relative paths are relative to
// the file (docs/moon.md).
//
// The identity and the World come from `moongatectl moon` (docs/moon.md).
// --stats rewrites FILE (atomically) every second and at exit with one
// "name value" line per counter. SIGINT/SIGTERM stop it.
#include <signal.h>
#include <unistd.h>

#include <atomic>
#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <string>

#include <yaml-cpp/yaml.h>

#include "zerotier/moon.h"
#include "zerotier/moon_files.h"
#include "zerotier/udp_host.h"

namespace {

using namespace moongate::zerotier;

std::atomic<bool> g_stop{false};

void on_signal(int) { g_stop.store(true); }

int usage() {
  std::fprintf(stderr,
               "usage: moongate-moon --identity FILE --world FILE.moon [--listen IP/PORT] [--stats FILE]\n"
               "                     [--verify-per-second N] [--verify-burst N] [--verify-per-source N]\n"
               "                     [--max-peers N] [--max-hops N]\n"
               "       moongate-moon --config moon.yaml [options]\n");
  return 2;
}

bool number(const std::string& s, std::uint64_t lo, std::uint64_t hi, std::uint64_t& out) {
  if (s.empty() || s.size() > 10 || s.find_first_not_of("0123456789") != std::string::npos) return false;
  out = std::strtoull(s.c_str(), nullptr, 10);
  return out >= lo && out <= hi;
}

void write_stats(const std::string& path, const Moon& moon, const UdpHost& host) {
  if (path.empty()) return;
  const std::string tmp = path + ".tmp";
  {
    std::ofstream f(tmp, std::ios::trunc);
    f << "port " << host.local_port() << "\n";
    f << "peers " << moon.peer_count() << "\n";
    f << "host_rx_datagrams " << host.counters().rx_datagrams << "\n";
    f << "host_tx_datagrams " << host.counters().tx_datagrams << "\n";
    f << "host_tx_errors " << host.counters().tx_errors << "\n";
    f << "host_rx_truncated " << host.counters().rx_truncated << "\n";
    moon.counters().for_each([&](const char* name, std::uint64_t v) { f << name << " " << v << "\n"; });
  }
  std::rename(tmp.c_str(), path.c_str());
}

struct Settings {
  std::string identity_path, world_path, listen = "0.0.0.0/9993", stats;
  MoonConfig config;
};

// Applies one setting (from a flag or the YAML file); false if invalid.
bool apply(Settings& st, const std::string& key, const std::string& v) {
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

// Reads the `moon:` section of a YAML file; errors as "file:line:col: moon.key: message".
bool load_config(const std::string& path, Settings& st) {
  try {
    const YAML::Node root = YAML::LoadFile(path);
    const YAML::Node m = root["moon"];
    if (!m || !m.IsMap()) {
      std::fprintf(stderr, "moongate-moon: %s: expected a `moon:` section\n", path.c_str());
      return false;
    }
    const std::string dir = path.find('/') == std::string::npos ? "" : path.substr(0, path.rfind('/') + 1);
    bool ok = true;
    for (const auto& kv : m) {
      const std::string key = kv.first.as<std::string>();
      const auto mark = kv.second.Mark();
      std::string v = kv.second.IsScalar() ? kv.second.as<std::string>() : "";
      if ((key == "identity" || key == "world" || key == "stats") && !v.empty() && v[0] != '/') v = dir + v;
      if (!kv.second.IsScalar() || !apply(st, key, v)) {
        std::fprintf(stderr, "%s:%d:%d: moon.%s: %s\n", path.c_str(), mark.line + 1, mark.column + 1, key.c_str(),
                     kv.second.IsScalar() ? "unknown setting or value out of range" : "expected a single value");
        ok = false;
      }
    }
    return ok;
  } catch (const YAML::Exception& e) {
    std::fprintf(stderr, "moongate-moon: %s: %s\n", path.c_str(), e.what());
    return false;
  }
}

}  // namespace

int main(int argc, char** argv) {
  Settings st;
  st.config.defer_verification = true;  // UdpHost runs the hashes on its worker thread
  // The file first, so flags override it wherever they appear.
  for (int i = 1; i + 1 < argc; i += 2)
    if (std::string(argv[i]) == "--config" && !load_config(argv[i + 1], st)) return 1;
  for (int i = 1; i < argc; ++i) {
    const std::string a = argv[i];
    if (i + 1 >= argc) return usage();
    const std::string v = argv[++i];
    std::string key = a.rfind("--", 0) == 0 ? a.substr(2) : a;
    for (char& ch : key)
      if (ch == '-') ch = '_';
    if (key == "config") continue;
    if (!apply(st, key, v)) {
      std::fprintf(stderr, "moongate-moon: bad option %s %s\n", a.c_str(), v.c_str());
      return usage();
    }
  }
  const std::string& identity_path = st.identity_path;
  const std::string& world_path = st.world_path;
  const std::string& stats = st.stats;
  const MoonConfig& config = st.config;
  if (identity_path.empty() || world_path.empty()) return usage();

  std::string error;
  auto id = read_identity_file(identity_path, error);
  if (!id || !id->has_secret) {
    std::fprintf(stderr, "moongate-moon: %s\n", id ? (identity_path + ": no secret key").c_str() : error.c_str());
    return 1;
  }
  auto world = read_world_file(world_path, error);
  if (!world) {
    std::fprintf(stderr, "moongate-moon: %s\n", error.c_str());
    return 1;
  }
  bool listed = false;
  for (const auto& r : world->roots) listed |= r.identity.same_key(*id);
  if (!listed) {
    std::fprintf(stderr, "moongate-moon: %s is not a root of the World in %s\n", address_hex(id->address).c_str(),
                 world_path.c_str());
    return 1;
  }
  Endpoint local;
  if (!local.parse(st.listen, true)) {
    std::fprintf(stderr, "moongate-moon: listen %s: expected IP/PORT\n", st.listen.c_str());
    return 1;
  }

  try {
    Moon moon(std::move(*id), std::move(*world), config);
    UdpHost host(moon);
    if (!host.bind(local, error)) {
      std::fprintf(stderr, "moongate-moon: %s\n", error.c_str());
      return 1;
    }
    struct sigaction sa {};
    sa.sa_handler = on_signal;
    sigaction(SIGINT, &sa, nullptr);
    sigaction(SIGTERM, &sa, nullptr);
    std::printf("moongate-moon: %s serving world %016llx on port %u\n", address_hex(moon.identity().address).c_str(),
                static_cast<unsigned long long>(moon.world().id), host.local_port());
    std::fflush(stdout);
    write_stats(stats, moon, host);
    host.run(g_stop, [&](std::uint64_t) { write_stats(stats, moon, host); });
    write_stats(stats, moon, host);
  } catch (const std::exception& e) {
    std::fprintf(stderr, "moongate-moon: %s\n", e.what());
    return 1;
  }
  return 0;
}
