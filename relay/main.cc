// moongate-relay: a DERP relay and STUN server for stock Tailscale clients.
//
//   1. flags (relay/options.h); the server key from --key-file (made when
//      missing); the mesh key; TLS (files, or self-signed with its pin);
//      the UDP services: STUN on every shard, the ZeroTier moon
//      (--moon-config, relay/moon_service.h) on shard 0 only
//   2. shards: shard 0 binds first (its ports, ephemeral or not, are then
//      shared through SO_REUSEPORT), then the others; the lines tests and
//      operators read are printed ("derp ...", "stun ...", "pin ...")
//   3. the /bootstrap-dns resolver thread starts (lookups never run on a
//      shard); the main thread waits for SIGINT/SIGTERM and stops the shards
#include <signal.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sodium.h>
#include <unistd.h>

#include <cstdio>
#include <fstream>
#include <sstream>
#include <thread>

#include "derp/handshake.h"
#include "relay/moon_service.h"
#include "relay/shard.h"
#include "relay/stun_service.h"

#include <fcntl.h>

using namespace moongate;
using namespace moongate::relay;

namespace {

std::string read_file(const std::string& path, bool& ok) {
  std::ifstream f(path);
  std::stringstream ss;
  ss << f.rdbuf();
  ok = static_cast<bool>(f);
  return ss.str();
}

std::string strip(std::string s) {
  while (!s.empty() && std::isspace(static_cast<unsigned char>(s.back()))) s.pop_back();
  std::size_t i = 0;
  while (i < s.size() && std::isspace(static_cast<unsigned char>(s[i]))) ++i;
  return s.substr(i);
}

bool load_key(const std::string& path, crypto::SecretKey& priv, std::string& error) {
  if (path.empty()) {
    priv.randomize();
    return true;
  }
  struct stat st;
  if (stat(path.c_str(), &st) != 0) {
    priv.randomize();
    derp::Key k;
    std::memcpy(k.data(), priv.data(), 32);
    const std::string hex = "privkey:" + derp::key_hex(k) + "\n";
    crypto::secure_wipe(k.data(), k.size());
    const int fd = ::open(path.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
    if (fd < 0 || write(fd, hex.data(), hex.size()) != static_cast<ssize_t>(hex.size())) {
      error = "cannot write key file " + path;
      if (fd >= 0) ::close(fd);
      return false;
    }
    ::close(fd);
    return true;
  }
  bool ok;
  std::string s = strip(read_file(path, ok));
  if (s.rfind("privkey:", 0) == 0) s = s.substr(8);
  derp::Key k;
  if (!ok || !derp::key_from_hex(s, k)) {
    error = path + ": want 64 hex digits (optionally privkey:<hex>)";
    return false;
  }
  priv.assign(k);
  crypto::secure_wipe(k.data(), k.size());
  crypto::secure_wipe(s.data(), s.size());
  return true;
}

// Take as many descriptors as allowed (root may lift the hard limit up to
// fs.nr_open): the soft limit caps each shard's registered-file table (the
// kernel's rule), and without a table every connection is a descriptor.
void raise_nofile() {
  rlimit r{1 << 20, 1 << 20};
  if (setrlimit(RLIMIT_NOFILE, &r) == 0) return;
  if (getrlimit(RLIMIT_NOFILE, &r) == 0 && r.rlim_cur < r.rlim_max) {
    r.rlim_cur = r.rlim_max;
    setrlimit(RLIMIT_NOFILE, &r);
  }
}

std::string world_hex(std::uint64_t id) {
  char buf[17];
  std::snprintf(buf, sizeof buf, "%016llx", static_cast<unsigned long long>(id));
  return buf;
}

}  // namespace

int main(int argc, char** argv) {
  if (sodium_init() < 0) {
    std::fprintf(stderr, "moongate-relay: libsodium failed to initialise\n");
    return 1;
  }
  auto relay = std::make_unique<Relay>();
  Options& o = relay->opts;
  std::string error;
  if (!parse_options(argc, argv, o, error)) {
    if (error == "help") {
      std::fputs(usage().c_str(), stdout);
      return 0;
    }
    std::fprintf(stderr, "moongate-relay: %s\n%s", error.c_str(), usage().c_str());
    return 2;
  }
  if (o.check) {
    // The files the flags name are read at start-up; the moon's is a
    // configuration of its own, so it is checked here too.
    zerotier::MoonSettings ms;
    if (!o.moon_config.empty() && !zerotier::load_moon_yaml(o.moon_config, ms, error)) {
      std::fprintf(stderr, "moongate-relay: --moon-config: %s\n", error.c_str());
      return 2;
    }
    std::printf("moongate-relay: configuration ok\n");
    return 0;
  }
  raise_nofile();
  if (!load_key(o.key_file, relay->private_key, error)) {
    std::fprintf(stderr, "moongate-relay: %s\n", error.c_str());
    return 1;
  }
  crypto_scalarmult_base(relay->public_key.data(), relay->private_key.data());
  if (!o.mesh_key_file.empty()) {
    bool ok;
    std::string s = strip(read_file(o.mesh_key_file, ok));
    derp::Key mk;
    if (!ok || !derp::key_from_hex(s, mk)) {
      std::fprintf(stderr, "moongate-relay: %s: want 64 hex digits\n", o.mesh_key_file.c_str());
      return 1;
    }
    relay->mesh_key = mk;
  }
  if (!o.mesh_with.empty() && !relay->mesh_key) {
    std::fprintf(stderr, "moongate-relay: --mesh-with needs --mesh-key-file\n");
    return 2;
  }
  if (!o.plain) {
    relay->tls = TlsContext::server(o.certdir, o.hostname, error, derp::key_hex(relay->public_key));
    if (!relay->tls) {
      std::fprintf(stderr, "moongate-relay: TLS: %s\n", error.c_str());
      return 1;
    }
  }
  relay->mesh_tls = TlsContext::client(!o.mesh_insecure, error);
  if (!relay->mesh_tls) {
    std::fprintf(stderr, "moongate-relay: TLS client: %s\n", error.c_str());
    return 1;
  }
  relay->admitter = std::make_unique<Admitter>(o.admission);
  error = relay->admitter->start();
  if (!error.empty()) {
    std::fprintf(stderr, "moongate-relay: %s\n", error.c_str());
    return 1;
  }
  if (o.stun_port >= 0) {
    UdpServiceSpec stun;
    stun.name = "stun";
    stun.port = static_cast<std::uint16_t>(o.stun_port);
    stun.factory = [](unsigned) { return std::make_unique<StunService>(); };
    o.udp_services.push_back(std::move(stun));
  }

  // The moon: one instance on shard 0, its hashes on its own worker thread.
  std::string moon_line;
  if (!o.moon_config.empty()) {
    zerotier::MoonSettings ms;
    if (!zerotier::load_moon_yaml(o.moon_config, ms, error)) {
      std::fprintf(stderr, "moongate-relay: --moon-config: %s\n", error.c_str());
      return 1;
    }
    if (!ms.stats.empty())
      std::fprintf(stderr, "moongate-relay: %s: moon.stats is not written by moongate-relay: the counters are "
                   "moongate_moon_* in /debug/varz\n", o.moon_config.c_str());
    auto moon = MoonService::open(std::move(ms), error);
    if (!moon) {
      std::fprintf(stderr, "moongate-relay: moon: %s\n", error.c_str());
      return 1;
    }
    moon_line = "moongate-relay: moon " + zerotier::address_hex(moon->moon().identity().address) + " serving world " +
                world_hex(moon->moon().world().id) + "\n";
    o.udp_services.push_back(MoonService::spec(std::move(moon)));
  }

  // /bootstrap-dns: lookups on a thread of their own (started with the
  // shards, signals blocked), never on a shard.
  relay->bootstrap_dns = std::make_unique<BootstrapDns>(o.bootstrap_dns);

  const unsigned n = o.shards ? o.shards : std::max(1u, std::thread::hardware_concurrency());
  for (unsigned i = 0; i < n; ++i) relay->shards.push_back(std::make_unique<Shard>(*relay, i));
  for (unsigned i = 0; i < n * n; ++i)
    relay->rings.push_back(std::make_unique<boost::lockfree::spsc_queue<std::uint8_t>>(kShardRingBytes));
  for (unsigned i = 0; i < n; ++i) {
    error = relay->shards[i]->init();
    if (!error.empty()) {
      std::fprintf(stderr, "moongate-relay: shard %u: %s\n", i, error.c_str());
      return 1;
    }
  }

  // Signals go to this thread only: block them before the shards start.
  sigset_t set;
  sigemptyset(&set);
  sigaddset(&set, SIGINT);
  sigaddset(&set, SIGTERM);
  pthread_sigmask(SIG_BLOCK, &set, nullptr);
  signal(SIGPIPE, SIG_IGN);
  relay->bootstrap_dns->start();
  for (auto& s : relay->shards) s->start();

  std::printf("moongate-relay: derp %s port %u (%s), %u shards\n", o.addr.empty() ? "*" : o.addr.c_str(),
              relay->bound_port, o.plain ? "plain HTTP, debug mode" : "TLS", n);
  std::printf("moongate-relay: public key %s\n", derp::key_hex(relay->public_key).c_str());
  // What caps the connections: the table of each shard, or descriptors.
  if (const unsigned slots = relay->shards[0]->table_slots())
    std::printf("moongate-relay: connections in io_uring file tables, %u per shard\n", slots);
  else
    std::printf("moongate-relay: connections on ordinary descriptors\n");
  if (relay->tls && relay->tls->self_signed())
    std::printf("moongate-relay: self-signed certificate; derpMap CertName: \"%s\"\n",
                relay->tls->pin().c_str());
  if (o.http_port >= 0) std::printf("moongate-relay: http port %u\n", relay->bound_http_port);
  for (std::size_t i = 0; i < o.udp_services.size(); ++i)
    std::printf("moongate-relay: %s udp port %u\n", o.udp_services[i].name.c_str(),
                relay->bound_udp_ports[i]);
  std::fputs(moon_line.c_str(), stdout);
  if (relay->bootstrap_dns->enabled())
    std::printf("moongate-relay: bootstrap-dns %zu names, %zu unpublished\n", o.bootstrap_dns.names.size(),
                o.bootstrap_dns.unpublished.size());
  std::printf("moongate-relay: ready\n");
  std::fflush(stdout);

  int sig = 0;
  sigwait(&set, &sig);
  relay->stop = true;
  for (auto& s : relay->shards) s->wake();
  for (auto& s : relay->shards) s->join();
  for (auto& s : relay->shards) s->free_moves_in_flight();
  return 0;
}
