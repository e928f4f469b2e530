// bench_moon_dataplane: relayed ZeroTier packets per second through the
// moon hosted by the data plane (dataplane/moon_host.h), without the kernel.
//
// One ethdev made by rte_eth_from_rings() is the wan port (192.0.2.2/24,
// gateway 192.0.2.1, moon on 9993); one worker (dp::Gateway) and the
// MoonHost are driven in turn on this one core (the host's thread is not
// started: MoonHost::run_once is the thread's loop body). The benchmark
// plays N clients behind the wan gateway (198.51.100.x), preloaded in the
// Moon as verified peers, and answers the gateway's ARP for 192.0.2.1.
//   frames   K UDP/IPv4 frames to 192.0.2.2:9993, each a ZeroTier packet of
//            --size bytes from one client to another (random pairs, sealed
//            with the pair's key as clients would), built beforehand.
//   warm-up  every frame once: ARP resolves, every pair gets its RENDEZVOUS
//            (at most once per 30 s per pair), so the timed rounds relay.
//   timed    rounds of W frames copied into fresh mbufs and put on the wan
//            rx ring (untimed), then Gateway::run_once + MoonHost::run_once
//            until W relayed frames have left the wan tx ring (timed with
//            rte_rdtsc around those calls only; the benchmark's own
//            dequeuing and freeing is not). Each relayed frame is checked:
//            IPv4/UDP from 192.0.2.2:9993 to a client, hop count 1.
// The path measured is the whole data-plane side: the worker's classify
// and ring hand-off, the moon thread's parse + Moon::receive + mbuf
// allocation + IP/UDP headers and checksum + ring back, the worker's
// neighbour look-up and tx. On a machine with cores to spare the worker
// and the moon thread run on two cores; here both costs are on one, so
// the number is the cost per relayed packet of the two together.
//
// Usage: bench_moon_dataplane [--clients N] [--size BYTES] [--rounds R] [--window W]
// Prints a Markdown table row (the columns of bench_moon).
#include <arpa/inet.h>
#include <rte_arp.h>
#include <rte_cycles.h>
#include <rte_eal.h>
#include <rte_errno.h>
#include <rte_eth_ring.h>
#include <rte_ethdev.h>
#include <rte_ip.h>
#include <rte_mbuf.h>
#include <rte_ring.h>
#include <rte_udp.h>

#include <algorithm>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <memory>
#include <random>
#include <string>
#include <vector>

#include "crypto/secret.h"
#include "dataplane/gateway.h"
#include "dataplane/moon_host.h"
#include "zerotier/armor.h"
#include "zerotier/moon.h"
#include "zerotier/packet.h"

using namespace moongate;
using namespace moongate::zerotier;

namespace {

constexpr std::uint16_t kMoonPort = 9993;
constexpr unsigned kRingSize = 4096;
const std::uint32_t kWanIp = htonl(0xC0000202);  // 192.0.2.2
const std::uint32_t kWanGw = htonl(0xC0000201);  // 192.0.2.1
const rte_ether_addr kGwMac = {{0x02, 0, 0, 0, 0, 0x01}};

[[noreturn]] void die(const std::string& why) {
  std::fprintf(stderr, "bench_moon_dataplane: %s\n", why.c_str());
  std::exit(1);
}

Endpoint client_endpoint(std::size_t i) {
  return Endpoint::v4(0xC6336400u + static_cast<std::uint32_t>(i % 250) + 1, static_cast<std::uint16_t>(10000 + i));
}

struct Options {
  std::size_t clients = 1000;
  std::size_t size = 1400;
  unsigned rounds = 200;
  unsigned window = 512;
};

}  // namespace

int main(int argc, char** argv) {
  Options opt;
  for (int i = 1; i + 1 < argc; i += 2) {
    const std::string k = argv[i];
    const unsigned long v = std::strtoul(argv[i + 1], nullptr, 10);
    if (k == "--clients") opt.clients = std::max<unsigned long>(v, 2);
    else if (k == "--size") opt.size = std::clamp<unsigned long>(v, kIdxPayload + 16, kUdpMtu);
    else if (k == "--rounds") opt.rounds = static_cast<unsigned>(std::max<unsigned long>(v, 1));
    else if (k == "--window") opt.window = static_cast<unsigned>(std::clamp<unsigned long>(v, 32, 1024));
    else die("usage: bench_moon_dataplane [--clients N] [--size BYTES] [--rounds R] [--window W]");
  }
  const char* eal[] = {"bench_moon_dataplane", "--no-huge", "-m", "512", "--no-pci", "--no-shconf",
                       "--file-prefix=bench-moon-dataplane", "--no-telemetry", "-l", "0", "--log-level", "4"};
  if (rte_eal_init(static_cast<int>(std::size(eal)), const_cast<char**>(eal)) < 0)
    die(std::string("EAL: ") + rte_strerror(rte_errno));
  const int socket = static_cast<int>(rte_socket_id());

  // The wan port: two rings, the benchmark on their other ends.
  rte_ring* rx = rte_ring_create("mb_wan_rx", kRingSize, socket, RING_F_SP_ENQ | RING_F_SC_DEQ);
  rte_ring* tx = rte_ring_create("mb_wan_tx", kRingSize, socket, RING_F_SP_ENQ | RING_F_SC_DEQ);
  if (rx == nullptr || tx == nullptr) die("rings");
  const int port_id = rte_eth_from_rings("mbwan", &rx, 1, &tx, 1, static_cast<unsigned>(socket));
  if (port_id < 0) die(std::string("rte_eth_from_rings: ") + rte_strerror(rte_errno));
  char devname[RTE_ETH_NAME_MAX_LEN];
  rte_eth_dev_get_name_by_port(static_cast<std::uint16_t>(port_id), devname);
  rte_mempool* pool = rte_pktmbuf_pool_create("mb_pool", 2 * kRingSize + 4096, 256, 0, RTE_MBUF_DEFAULT_BUF_SIZE,
                                              socket);
  if (pool == nullptr) die("pool");

  dp::Settings s;
  crypto::PublicKey unused;
  crypto::x25519_generate(s.private_key, unused);
  s.busy_poll = true;
  s.max_peers = 16;
  s.moon_port = kMoonPort;
  dp::Port w;
  w.name = "wan";
  w.role = dp::PortRole::kWan;
  w.device = devname;
  w.v4 = {dp::Ipv4Iface{kWanIp, 24}};
  w.gateway_v4 = kWanGw;
  s.ports = {w};
  auto gw = std::make_unique<dp::Gateway>();
  if (std::string err = gw->init(std::move(s)); !err.empty()) die("gateway: " + err);
  rte_ether_addr wan_mac;
  rte_eth_macaddr_get(static_cast<std::uint16_t>(port_id), &wan_mac);

  // The moon and its clients (as bench_moon: clients need not hash-validate,
  // add_verified_peer trusts them).
  std::fprintf(stderr, "bench_moon_dataplane: moon identity and %zu clients...\n", opt.clients);
  AddressHashScratch scratch;
  Identity moon_id = Identity::generate(scratch);
  crypto::Secret<64> seed;
  seed.randomize();
  Identity signer = Identity::from_seed(seed.span());
  World world;
  world.id = moon_id.address;
  world.timestamp = 1;
  world.update_key = signer.pub;
  WorldRoot root;
  root.identity = moon_id;
  root.endpoints.push_back(Endpoint::v4(0xC0000202, kMoonPort));
  world.roots.push_back(root);
  world.sign(signer);
  std::vector<Identity> clients;
  for (std::size_t i = 0; i < opt.clients; ++i) {
    seed.randomize();
    Identity c = Identity::from_seed(seed.span());
    c.address = 0x0100000000ull + i * 7919;
    clients.push_back(c);
  }
  MoonConfig cfg;
  cfg.max_peers = opt.clients * 2 + 16;
  cfg.defer_verification = true;
  auto moon = std::make_unique<Moon>(moon_id, world, cfg);
  for (std::size_t i = 0; i < clients.size(); ++i)
    if (!moon->add_verified_peer(clients[i], client_endpoint(i), 0)) die("add_verified_peer");
  auto host = std::make_unique<dp::MoonHost>(gw->shared(), std::move(moon));

  // The frames: Ethernet + IPv4 + UDP + a relayed packet between a random pair.
  const std::size_t kFrames = 4096;
  std::vector<std::vector<std::uint8_t>> frames;
  std::mt19937_64 rng(42);
  for (std::size_t i = 0; i < kFrames; ++i) {
    const std::size_t a = rng() % clients.size();
    std::size_t b = rng() % clients.size();
    if (b == a) b = (b + 1) % clients.size();
    PeerKey k;
    if (!clients[a].agree(clients[b].pub, k)) die("agree");
    std::vector<std::uint8_t> f(14 + 28 + opt.size);
    std::uint8_t* p = f.data() + 42;
    write_header(p, rng(), clients[b].address, clients[a].address, Verb::kFrame);
    for (std::size_t j = kIdxPayload; j < opt.size; ++j) p[j] = static_cast<std::uint8_t>(rng());
    armor({p, opt.size}, k.data(), true);
    std::memcpy(f.data(), wan_mac.addr_bytes, 6);
    std::memcpy(f.data() + 6, kGwMac.addr_bytes, 6);
    f[12] = 0x08;
    f[13] = 0x00;
    auto* ip = reinterpret_cast<rte_ipv4_hdr*>(f.data() + 14);
    ip->version_ihl = RTE_IPV4_VHL_DEF;
    ip->total_length = htons(static_cast<std::uint16_t>(28 + opt.size));
    ip->time_to_live = 64;
    ip->next_proto_id = IPPROTO_UDP;
    const Endpoint from = client_endpoint(a);
    std::memcpy(&ip->src_addr, from.ip.data(), 4);
    ip->dst_addr = kWanIp;
    ip->hdr_checksum = rte_ipv4_cksum(ip);
    auto* udp = reinterpret_cast<rte_udp_hdr*>(ip + 1);
    udp->src_port = htons(from.port);
    udp->dst_port = htons(kMoonPort);
    udp->dgram_len = htons(static_cast<std::uint16_t>(8 + opt.size));
    frames.push_back(std::move(f));
  }

  std::size_t next = 0;
  auto feed = [&](unsigned n) {
    for (unsigned i = 0; i < n; ++i) {
      const auto& f = frames[next++ % frames.size()];
      rte_mbuf* m = rte_pktmbuf_alloc(pool);
      if (m == nullptr) die("benchmark pool empty");
      std::memcpy(rte_pktmbuf_append(m, static_cast<std::uint16_t>(f.size())), f.data(), f.size());
      if (rte_ring_sp_enqueue(rx, m) != 0) die("wan rx ring full");
    }
  };
  // Drains the wan tx ring: answers ARP for the gateway, counts and checks
  // relayed frames (RENDEZVOUS and the rest just counted as `other`).
  std::uint64_t relayed = 0, other = 0, bad = 0;
  auto drain = [&]() {
    rte_mbuf* out[64];
    unsigned n;
    while ((n = rte_ring_sc_dequeue_burst(tx, reinterpret_cast<void**>(out), 64, nullptr)) != 0) {
      for (unsigned i = 0; i < n; ++i) {
        rte_mbuf* m = out[i];
        const auto* f = rte_pktmbuf_mtod(m, const std::uint8_t*);
        if (f[12] == 0x08 && f[13] == 0x06) {
          const auto* req = reinterpret_cast<const rte_arp_hdr*>(f + 14);
          rte_mbuf* r = rte_pktmbuf_alloc(pool);
          auto* eth = reinterpret_cast<rte_ether_hdr*>(rte_pktmbuf_append(r, 14 + sizeof(rte_arp_hdr)));
          eth->dst_addr = req->arp_data.arp_sha;
          eth->src_addr = kGwMac;
          eth->ether_type = htons(RTE_ETHER_TYPE_ARP);
          auto* arp = reinterpret_cast<rte_arp_hdr*>(eth + 1);
          *arp = *req;
          arp->arp_opcode = htons(RTE_ARP_OP_REPLY);
          arp->arp_data.arp_sha = kGwMac;
          arp->arp_data.arp_sip = req->arp_data.arp_tip;
          arp->arp_data.arp_tha = req->arp_data.arp_sha;
          arp->arp_data.arp_tip = req->arp_data.arp_sip;
          if (rte_ring_sp_enqueue(rx, r) != 0) rte_pktmbuf_free(r);
        } else if (rte_pktmbuf_data_len(m) == 42 + opt.size && f[12] == 0x08 && f[23] == IPPROTO_UDP &&
                   std::memcmp(f + 26, &kWanIp, 4) == 0 && (f[34] << 8 | f[35]) == kMoonPort &&
                   std::memcmp(f, kGwMac.addr_bytes, 6) == 0) {
          if ((f[42 + kIdxFlags] & 7) == 1) ++relayed;
          else ++bad;
        } else {
          ++other;
        }
        rte_pktmbuf_free(m);
      }
    }
  };
  const std::uint64_t now_ms = 1000;  // fixed: no expiry, RENDEZVOUS once per pair
  auto step = [&]() {
    gw->run_once();
    host->run_once(now_ms);
    gw->run_once();
  };

  // Warm-up: one frame until it comes back (the gateway's ARP resolved:
  // meanwhile a neighbour holds one packet, the rest are neighbor_pending),
  // then every frame once (every pair's RENDEZVOUS), until all came back.
  feed(1);
  for (int spins = 0; relayed == 0 && spins < 100000; ++spins) {
    step();
    drain();
  }
  for (std::size_t done = 0; done < frames.size(); done += opt.window) {
    feed(opt.window);
    const std::uint64_t want = relayed + opt.window;
    for (int spins = 0; relayed < want && spins < 100000; ++spins) {
      step();
      drain();
    }
    if (relayed < want) {
      const dp::LcoreCounters c = gw->totals();
      std::string why = "warm-up: " + std::to_string(relayed) + " relayed, " + std::to_string(other) + " other, " +
                        std::to_string(bad) + " bad; moon_in " + std::to_string(c.moon_in) + " moon_out " +
                        std::to_string(c.moon_out) + "; moon relayed " +
                        std::to_string(host->moon().counters().relayed) + ";";
      for (std::size_t d = 0; d < dp::kDpDropCount; ++d)
        if (c.drops[d]) why += std::string(" ") + dp::dp_drop_name(static_cast<dp::DpDrop>(d)) + " " + std::to_string(c.drops[d]);
      host->moon().counters().for_each([&](const char* name, std::uint64_t v) {
        if (v) why += std::string(" ") + name + " " + std::to_string(v);
      });
      die(why);
    }
  }
  const std::uint64_t rv0 = host->moon().counters().rendezvous_sent;
  relayed = other = 0;
  std::uint64_t cycles = 0;
  for (unsigned r = 0; r < opt.rounds; ++r) {
    feed(opt.window);
    const std::uint64_t want = relayed + opt.window;
    for (int spins = 0; relayed < want && spins < 100000; ++spins) {
      const std::uint64_t t0 = rte_rdtsc();
      step();
      cycles += rte_rdtsc() - t0;
      drain();
    }
    if (relayed < want) die("round " + std::to_string(r) + ": relayed frames did not all come back");
  }
  const double secs = static_cast<double>(cycles) / static_cast<double>(rte_get_tsc_hz());
  const dp::LcoreCounters c = gw->totals();
  std::printf("| data plane host (worker + moon thread, one core) | %zu | %zu | %.2f | %.1f | %.0f | "
              "%llu relayed in %.3f s of run_once; RENDEZVOUS in the timed loop: %llu; bad %llu; drops "
              "moon_queue_full %llu tx_full %llu |\n",
              opt.clients, opt.size, static_cast<double>(relayed) / secs / 1e6,
              static_cast<double>(relayed * opt.size * 8) / secs / 1e9, secs * 1e9 / static_cast<double>(relayed),
              static_cast<unsigned long long>(relayed), secs,
              static_cast<unsigned long long>(host->moon().counters().rendezvous_sent - rv0),
              static_cast<unsigned long long>(bad),
              static_cast<unsigned long long>(c.drops[static_cast<std::size_t>(dp::DpDrop::kMoonQueueFull)]),
              static_cast<unsigned long long>(c.drops[static_cast<std::size_t>(dp::DpDrop::kTxFull)]));
  // The EAL leaves its (empty) runtime directory behind: ours alone.
  const std::string runtime_dir = rte_eal_get_runtime_dir();
  host.reset();
  gw.reset();
  rte_eal_cleanup();
  std::error_code ignored;
  std::filesystem::remove_all(runtime_dir, ignored);
  return bad == 0 ? 0 : 1;
}
