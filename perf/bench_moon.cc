// Relayed packets per second per core for the ZeroTier moon.
//
//   core  the I/O-free Moon alone: N clients preloaded, a ring of valid
//         packets between random pairs of them (sealed by the senders'
//         pair keys, as real clients would), fed to receive() with the
//         TxBatch drained by clearing it. One thread, one core.
//   udp   the same Moon behind UdpHost on 127.0.0.1: the generator is a
//         thread with one UDP socket per client sending with sendmmsg, the
//         host on its own thread; relayed packets go back to the clients'
//         sockets (left unread: the kernel drops them when full, which costs
//         the host nothing). Counted: the Moon's `relayed` over the window.
//         On a 2-vCPU machine generator and host share the CPUs.
//
//   relay the same Moon hosted by moongate-relay (relay/moon_service.h) on
//         shard 0 of two in-process io_uring shards, same generator.
//
//   hash  identity checks (the memory-hard address hash) per second, one core.
//
// Usage: bench_moon [--clients N] [--size BYTES] [--seconds S] [--mode core|udp|relay|both|hash]
// Prints a Markdown table row per run.
#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <random>
#include <string>
#include <thread>
#include <vector>

#include "zerotier/moon.h"
#include "relay/moon_service.h"
#include "relay/shard.h"
#include "zerotier/udp_host.h"

using namespace moongate::zerotier;
using Clock = std::chrono::steady_clock;

namespace {

struct Setup {
  Identity moon_id;
  World world;
  std::vector<Identity> clients;
};

// Client identities need not hash-validate: add_verified_peer() trusts them,
// which keeps the setup to seconds for thousands of clients.
Setup make_setup(std::size_t n) {
  Setup s;
  AddressHashScratch scratch;
  s.moon_id = Identity::generate(scratch);
  moongate::crypto::Secret<64> seed;
  seed.randomize();
  Identity signer = Identity::from_seed(seed.span());
  s.world.id = s.moon_id.address;
  s.world.timestamp = 1;
  s.world.update_key = signer.pub;
  WorldRoot r;
  r.identity = s.moon_id;
  Endpoint e;
  e.parse("127.0.0.1/9993");
  r.endpoints.push_back(e);
  s.world.roots.push_back(r);
  s.world.sign(signer);
  for (std::size_t i = 0; i < n; ++i) {
    seed.randomize();
    Identity c = Identity::from_seed(seed.span());
    c.address = 0x0100000000ull + i * 7919;
    s.clients.push_back(c);
  }
  return s;
}

// `count` packets of `size` bytes between random pairs, MAC'd with the pair key.
std::vector<std::vector<std::uint8_t>> make_packets(const Setup& s, std::size_t count, std::size_t size,
                                                   std::vector<std::size_t>* senders = nullptr) {
  std::mt19937_64 rng(42);
  std::vector<std::vector<std::uint8_t>> out;
  for (std::size_t i = 0; i < count; ++i) {
    const std::size_t a = rng() % s.clients.size();
    std::size_t b = rng() % s.clients.size();
    if (b == a) b = (b + 1) % s.clients.size();
    PeerKey k;
    if (!s.clients[a].agree(s.clients[b].pub, k)) std::abort();
    std::vector<std::uint8_t> p(size);
    write_header(p.data(), rng(), s.clients[b].address, s.clients[a].address, Verb::kFrame);
    for (std::size_t j = kIdxPayload; j < size; ++j) p[j] = static_cast<std::uint8_t>(rng());
    armor(p, k.data(), true);
    out.push_back(std::move(p));
    if (senders) senders->push_back(a);
  }
  return out;
}

Endpoint client_endpoint(std::size_t i) {
  return Endpoint::v4(0xC6336400u + static_cast<std::uint32_t>(i % 250) + 1, static_cast<std::uint16_t>(10000 + i));
}

void run_core(const Setup& s, std::size_t size, double seconds) {
  MoonConfig cfg;
  cfg.max_peers = s.clients.size() * 2 + 16;
  Moon moon(s.moon_id, s.world, cfg);
  for (std::size_t i = 0; i < s.clients.size(); ++i)
    if (!moon.add_verified_peer(s.clients[i], client_endpoint(i), 0)) std::abort();
  std::vector<std::size_t> senders;
  const auto packets = make_packets(s, 8192, size, &senders);
  TxBatch out;
  // Warm-up pass: every pair's first relay also sends its RENDEZVOUS; the
  // timed loop keeps `now` within the 30 s interval, so it measures relaying.
  for (std::size_t i = 0; i < packets.size(); ++i) {
    if (out.room() < TxBatch::kRoomPerReceive) out.clear();
    moon.receive(packets[i], client_endpoint(senders[i]), 1000, out);
  }
  const std::uint64_t relayed0 = moon.counters().relayed;
  const std::uint64_t rv0 = moon.counters().rendezvous_sent;
  std::uint64_t n = 0;
  const auto t0 = Clock::now();
  const auto until = t0 + std::chrono::duration<double>(seconds);
  while (Clock::now() < until) {
    for (std::size_t i = 0; i < packets.size(); ++i) {
      if (out.room() < TxBatch::kRoomPerReceive) out.clear();
      moon.receive(packets[i], client_endpoint(senders[i]), 2000, out);
    }
    n += packets.size();
  }
  const double dt = std::chrono::duration<double>(Clock::now() - t0).count();
  const std::uint64_t relayed = moon.counters().relayed - relayed0;
  if (relayed != n) std::fprintf(stderr, "warning: %llu of %llu relayed\n", static_cast<unsigned long long>(relayed),
                                 static_cast<unsigned long long>(n));
  std::printf("| core (Moon::receive) | %zu | %zu | %.2f | %.1f | %.0f | RENDEZVOUS in the timed loop: %llu |\n",
              s.clients.size(), size, static_cast<double>(relayed) / dt / 1e6,
              static_cast<double>(relayed * size * 8) / dt / 1e9, dt * 1e9 / static_cast<double>(relayed),
              static_cast<unsigned long long>(moon.counters().rendezvous_sent - rv0));
}

// Client i lives on socket i % nsock (loopback addresses 127.0.0.x).
struct Generator {
  std::vector<int> socks;
  std::vector<Endpoint> eps;
  std::vector<std::vector<std::uint8_t>> packets;
  std::vector<std::vector<std::size_t>> by_sock;  // packets by their sender's socket
  std::uint64_t sent = 0;

  Generator(const Setup& s, std::size_t size) {
    const std::size_t nsock = s.clients.size() < 256 ? s.clients.size() : 256;
    socks.resize(nsock);
    eps.resize(nsock);
    for (std::size_t i = 0; i < nsock; ++i) {
      socks[i] = socket(AF_INET, SOCK_DGRAM, 0);
      sockaddr_in a{};
      a.sin_family = AF_INET;
      a.sin_addr.s_addr = htonl(0x7F000000u + 2 + static_cast<std::uint32_t>(i));
      if (bind(socks[i], reinterpret_cast<sockaddr*>(&a), sizeof a) != 0) std::abort();
      socklen_t sl = sizeof a;
      getsockname(socks[i], reinterpret_cast<sockaddr*>(&a), &sl);
      eps[i] = Endpoint::v4(ntohl(a.sin_addr.s_addr), ntohs(a.sin_port));
      const int small = 4096;  // relayed packets are not read: keep the waste small
      setsockopt(socks[i], SOL_SOCKET, SO_RCVBUF, &small, sizeof small);
    }
    std::vector<std::size_t> senders;
    packets = make_packets(s, 4096, size, &senders);
    // Grouped by socket, so each sendmmsg is one socket's burst of 32
    // without searching.
    by_sock.resize(nsock);
    for (std::size_t j = 0; j < packets.size(); ++j) by_sock[senders[j] % nsock].push_back(j);
  }
  ~Generator() {
    for (int fd : socks) close(fd);
  }
  void preload(Moon& moon, const Setup& s, std::uint64_t now_ms) const {
    for (std::size_t i = 0; i < s.clients.size(); ++i)
      if (!moon.add_verified_peer(s.clients[i], eps[i % socks.size()], now_ms)) std::abort();
  }
  void send_for(std::uint16_t port, double secs) {
    sockaddr_in to{};
    to.sin_family = AF_INET;
    to.sin_addr.s_addr = htonl(0x7F000001u);
    to.sin_port = htons(port);
    const auto until = Clock::now() + std::chrono::duration<double>(secs);
    std::size_t sock = 0, round = 0;
    mmsghdr m[32];
    iovec iov[32];
    while (Clock::now() < until) {
      const auto& mine = by_sock[sock];
      unsigned k = 0;
      for (; k < 32 && !mine.empty(); ++k) {
        const auto& p = packets[mine[(round * 32 + k) % mine.size()]];
        iov[k] = {const_cast<std::uint8_t*>(p.data()), p.size()};
        m[k] = {};
        m[k].msg_hdr.msg_name = &to;
        m[k].msg_hdr.msg_namelen = sizeof to;
        m[k].msg_hdr.msg_iov = &iov[k];
        m[k].msg_hdr.msg_iovlen = 1;
      }
      const int r = k ? sendmmsg(socks[sock], m, k, 0) : 0;
      if (r > 0) sent += static_cast<unsigned>(r);
      if (++sock == socks.size()) {
        sock = 0;
        ++round;
      }
    }
  }
  // Warm-up (RENDEZVOUS for the pairs), then the timed window. The Moon's
  // counters belong to the host's thread; read them racily only as a
  // snapshot of a monotonically growing number (a benchmark, not a test).
  void measure(const char* label, const Moon& moon, std::uint16_t port, std::size_t clients, std::size_t size,
               double seconds) {
    send_for(port, 0.5);
    const std::uint64_t r0 = __atomic_load_n(&moon.counters().relayed, __ATOMIC_RELAXED);
    const std::uint64_t s0 = sent;
    const auto t0 = Clock::now();
    send_for(port, seconds);
    const double dt = std::chrono::duration<double>(Clock::now() - t0).count();
    const std::uint64_t r1 = __atomic_load_n(&moon.counters().relayed, __ATOMIC_RELAXED);
    const double rate = static_cast<double>(r1 - r0) / dt;
    std::printf("| %s | %zu | %zu | %.3f | %.2f | %.0f | (offered %.3f Mpps) |\n", label, clients, size, rate / 1e6,
                rate * static_cast<double>(size) * 8 / 1e9, 1e9 / rate, static_cast<double>(sent - s0) / dt / 1e6);
  }
};

void run_udp(const Setup& s, std::size_t size, double seconds) {
  MoonConfig cfg;
  cfg.max_peers = s.clients.size() * 2 + 16;
  Moon moon(s.moon_id, s.world, cfg);
  UdpHost host(moon);
  Endpoint local;
  local.parse("127.0.0.1/0", true);
  std::string err;
  if (!host.bind(local, err)) {
    std::fprintf(stderr, "%s\n", err.c_str());
    std::exit(1);
  }
  Generator gen(s, size);
  gen.preload(moon, s, UdpHost::now_ms());
  std::atomic<bool> stop{false};
  std::thread host_thread([&] { host.run(stop, [](std::uint64_t) {}); });
  gen.measure("udp (UdpHost, loopback)", moon, host.local_port(), s.clients.size(), size, seconds);
  stop = true;
  host_thread.join();
}

// The same Moon hosted by moongate-relay's shards (MoonService on shard 0
// of 2, io_uring recvmsg/sendmsg), in this process; plain DERP listener on
// an ephemeral port, no STUN.
void run_relay(const Setup& s, std::size_t size, double seconds) {
  using namespace moongate::relay;
  MoonConfig cfg;
  cfg.max_peers = s.clients.size() * 2 + 16;
  cfg.defer_verification = true;
  auto moon = std::make_unique<Moon>(s.moon_id, s.world, cfg);
  Generator gen(s, size);
  gen.preload(*moon, s, UdpHost::now_ms());
  const Moon& moon_ref = *moon;
  Endpoint local;
  local.parse("127.0.0.1/0", true);
  std::string err;
  auto service = MoonService::host(std::move(moon), local, err);
  if (!service) {
    std::fprintf(stderr, "%s\n", err.c_str());
    std::exit(1);
  }
  auto relay = std::make_unique<Relay>();
  relay->opts.addr = "127.0.0.1";
  relay->opts.port = 0;
  relay->opts.plain = true;
  relay->opts.udp_services.push_back(MoonService::spec(std::move(service)));
  relay->private_key.randomize();
  constexpr unsigned kShards = 2;
  for (unsigned i = 0; i < kShards; ++i) relay->shards.push_back(std::make_unique<Shard>(*relay, i));
  for (unsigned i = 0; i < kShards * kShards; ++i)
    relay->rings.push_back(std::make_unique<boost::lockfree::spsc_queue<std::uint8_t>>(1 << 16));
  for (auto& sh : relay->shards) {
    err = sh->init();
    if (!err.empty()) {
      std::fprintf(stderr, "shard: %s\n", err.c_str());
      std::exit(1);
    }
  }
  for (auto& sh : relay->shards) sh->start();
  gen.measure("relay (moongate-relay shard 0, io_uring, loopback)", moon_ref, relay->bound_udp_ports[0],
              s.clients.size(), size, seconds);
  relay->stop = true;
  for (auto& sh : relay->shards) sh->wake();
  for (auto& sh : relay->shards) sh->join();
}

// The cost the verification budget protects: memory-hard address checks per
// second on one core (what a new identity's first HELLO costs the worker).
void run_hash(double seconds) {
  AddressHashScratch scratch;
  const Identity id = Identity::generate(scratch);
  std::uint64_t n = 0;
  bool all_valid = true;
  const auto t0 = Clock::now();
  while (Clock::now() - t0 < std::chrono::duration<double>(seconds)) {
    all_valid &= id.locally_validate(scratch);
    ++n;
  }
  const double dt = std::chrono::duration<double>(Clock::now() - t0).count();
  std::printf("| identity check (address hash) | - | - | - | - | %.0f | %.1f checks/s on one core%s |\n",
              dt * 1e9 / static_cast<double>(n), static_cast<double>(n) / dt, all_valid ? "" : " (INVALID!)");
}

}  // namespace

int main(int argc, char** argv) {
  std::size_t clients = 1000, size = 1400;
  double seconds = 3;
  std::string mode = "both";
  for (int i = 1; i + 1 < argc; i += 2) {
    const std::string a = argv[i];
    if (a == "--clients") clients = std::strtoul(argv[i + 1], nullptr, 10);
    else if (a == "--size") size = std::strtoul(argv[i + 1], nullptr, 10);
    else if (a == "--seconds") seconds = std::strtod(argv[i + 1], nullptr);
    else if (a == "--mode") mode = argv[i + 1];
    else {
      std::fprintf(stderr, "usage: bench_moon [--clients N] [--size BYTES] [--seconds S] [--mode core|udp|relay|both|hash]\n");
      return 2;
    }
  }
  if (clients < 2 || size < kIdxPayload + 1 || size > 1500) {
    std::fprintf(stderr, "bench_moon: need >= 2 clients and 29..1500-byte packets\n");
    return 2;
  }
  const Setup s = make_setup(clients);
  if (mode == "core" || mode == "both") run_core(s, size, seconds);
  if (mode == "udp" || mode == "both") run_udp(s, size, seconds);
  if (mode == "relay" || mode == "both") run_relay(s, size, seconds);
  if (mode == "hash") run_hash(seconds);
  return 0;
}
