// moongate-moon: a ZeroTier moon on a kernel UDP socket.
//
//   moongate-moon --identity identity.secret --world 000000xxxxxxxxxx.moon
//                 [--listen 0.0.0.0/9993] [--stats FILE]
//                 [--verify-per-second N] [--verify-burst N]
//                 [--verify-per-source N] [--max-peers N] [--max-hops N]
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
               "                     [--max-peers N] [--max-hops N]\n");
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

}  // namespace

int main(int argc, char** argv) {
  std::string identity_path, world_path, listen = "0.0.0.0/9993", stats;
  MoonConfig config;
  config.defer_verification = true;  // UdpHost runs the hashes on its worker thread
  for (int i = 1; i < argc; ++i) {
    const std::string a = argv[i];
    if (i + 1 >= argc) return usage();
    const std::string v = argv[++i];
    std::uint64_t n = 0;
    if (a == "--identity") identity_path = v;
    else if (a == "--world") world_path = v;
    else if (a == "--listen") listen = v;
    else if (a == "--stats") stats = v;
    else if (a == "--verify-per-second" && number(v, 1, 100000, n)) config.verify.per_second = static_cast<std::uint32_t>(n);
    else if (a == "--verify-burst" && number(v, 1, 100000, n)) config.verify.burst = static_cast<std::uint32_t>(n);
    else if (a == "--verify-per-source" && number(v, 1, 100000, n)) {
      config.verify.per_source_per_second = static_cast<std::uint32_t>(n);
      config.verify.per_source_burst = static_cast<std::uint32_t>(2 * n);
    } else if (a == "--max-peers" && number(v, 16, 10000000, n)) config.max_peers = n;
    else if (a == "--max-hops" && number(v, 0, 7, n)) config.max_hops = static_cast<unsigned>(n);
    else {
      std::fprintf(stderr, "moongate-moon: bad option %s %s\n", a.c_str(), v.c_str());
      return usage();
    }
  }
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
  if (!local.parse(listen, true)) {
    std::fprintf(stderr, "moongate-moon: --listen %s: expected IP/PORT\n", listen.c_str());
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
