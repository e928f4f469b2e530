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
#include <fstream>
#include <string>

#include "zerotier/moon.h"
#include "zerotier/moon_config.h"
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

}  // namespace

int main(int argc, char** argv) {
  MoonSettings st;
  st.config.defer_verification = true;  // UdpHost runs the hashes on its worker thread
  std::string error;
  // The file first, so flags override it wherever they appear.
  for (int i = 1; i + 1 < argc; i += 2)
    if (std::string(argv[i]) == "--config" && !load_moon_yaml(argv[i + 1], st, error)) {
      std::fprintf(stderr, "moongate-moon: %s\n", error.c_str());
      return 1;
    }
  for (int i = 1; i < argc; ++i) {
    const std::string a = argv[i];
    if (i + 1 >= argc) return usage();
    const std::string v = argv[++i];
    std::string key = a.rfind("--", 0) == 0 ? a.substr(2) : a;
    for (char& ch : key)
      if (ch == '-') ch = '_';
    if (key == "config") continue;
    if (!apply_moon_setting(st, key, v)) {
      std::fprintf(stderr, "moongate-moon: bad option %s %s\n", a.c_str(), v.c_str());
      return usage();
    }
  }
  const std::string& stats = st.stats;
  if (st.identity_path.empty() || st.world_path.empty()) return usage();
  auto opened = open_moon(st, error);
  if (!opened) {
    std::fprintf(stderr, "moongate-moon: %s\n", error.c_str());
    return 1;
  }
  const Endpoint local = opened->listen;

  try {
    Moon moon(std::move(opened->identity), std::move(opened->world), st.config);
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
