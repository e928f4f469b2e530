// bench_dataplane: the DPDK data plane (dp::Gateway) without the kernel.
//
// Two ethdevs made by rte_eth_from_rings() (WAN and LAN); the benchmark owns
// the four rings and plays every WireGuard peer (one wg::Device each, with
// its own key) and the LAN host 10.10.0.2 itself:
//   set-up   N real handshakes through the WAN ring (ARP for the WAN
//            gateway and the LAN host answered from the rings), then one
//            data packet per peer so the gateway confirms the session.
//   decrypt  K data messages (round robin over the peers, encrypted by the
//            peers) into the WAN rx ring; the inner packets must all come
//            out of the LAN tx ring.
//   encrypt  K plaintext packets from 10.10.0.2 to the peers' allowed IPs
//            into the LAN rx ring; K data messages must come out on WAN.
//   ceiling  crypto::AeadBurst encrypt/decrypt of the same sizes, bursts of
//            32, in place, hot buffers (as bench_aead), measured in the same
//            run, interleaved repetition by repetition with the data plane.
// Two ways of delivering the K packets (--modes), both every repetition:
//   cold      K distinct packets in K mbufs built beforehand (~150 MB at
//             K = 65 536): every packet is in DRAM when the gateway reads
//             it, as a NIC's DMA into memory no core has touched lately.
//   recycled  rounds of W packets (--recycle, default 2048: a NIC's RX and
//             TX rings) written, untimed, into the mbufs that came out of the
//             previous round (fresh counters, re-encrypted by the peers: the
//             replay window accepts each once). The packets are in this
//             core's L2/L3 when the gateway reads them, as with a NIC whose
//             DMA lands in the last-level cache (Intel DDIO).
// Only Gateway::run_once() is timed (rte_rdtsc around each call): ring
// enqueue/dequeue by the benchmark, mbuf allocation and freeing of what
// comes out are not (a NIC PMD would do part of that inside rx/tx_burst).
// Calls taking over 8x the median call (preempted or interrupted at length:
// the machine is shared) are left out with their packets; the ceiling is
// measured right before each phase and the ratio taken per repetition.
//
// Exit node (--exit F): the peers are exit nodes and the gateway NATs
// (docs/exit-node.md). F flows (F/N per peer, UDP, different source ports)
// to an internet host 203.0.113.10, ports 5201..5264; set-up sends every flow once
// (untimed) and learns its external port from what leaves the WAN.
//   decrypt  data messages whose inner packets leave the WAN NAT'ed
//            (prefetch, prefetch_flow, translate for the burst);
//   encrypt  return traffic from the internet host to the external ports
//            into the WAN rx ring: translated and encrypted to the peers.
// With --policy, a one-rule policy (accept everything) is classified too
// (the decrypt burst through rte_acl, the return-traffic table noted).
//
// IPv6 inner traffic (--ipv6, the plain path only): the LAN port also has
// 2001:db8:a::1/64, the LAN host is 2001:db8:a::2 (its Neighbor
// Solicitations answered from the ring), peer i's allowed IP is
// 2001:db8:b::<i>/128; the inner packets are IPv6/UDP (sizes >= 48), with
// --policy through the IPv6 context and table (policy_flush6 on decrypt,
// policy_encrypt6 on encrypt).
//
// Usage: bench_dataplane [--peers N] [--k K] [--sizes 64,512,1420] [--reps R]
//                        [--exit F] [--policy] [--ipv6]
//                        [--modes cold,recycled] [--recycle W] [--hugepages]
//                        [--ceiling-bursts B] [--lcore L] [--json FILE]
//                        [--no-header] [-- EAL args]
// Default EAL args: --no-huge -m 2048 --no-pci --no-shconf -l <L> --log-level 4;
// with --hugepages: --in-memory --no-pci -l <L> --log-level 4 (2 MB pages
// must have been reserved: perf/run-dataplane.sh does).
#include <arpa/inet.h>
#include <rte_arp.h>
#include <rte_cycles.h>
#include <rte_eal.h>
#include <rte_errno.h>
#include <rte_eth_ring.h>
#include <rte_ethdev.h>
#include <rte_ip.h>
#include <rte_lcore.h>
#include <rte_mbuf.h>
#include <rte_ring.h>
#include <rte_udp.h>
#include <time.h>

#include <algorithm>
#include <array>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <memory>
#include <string>
#include <vector>

#include "crypto/aead_burst.h"
#include "crypto/x25519.h"
#include "dataplane/gateway.h"
#include "dataplane/net/ndp.h"
#include "wireguard/device.h"
#include "wireguard/messages.h"

namespace {

namespace wg = moongate::wg;
namespace dp = moongate::dp;
namespace crypto = moongate::crypto;

constexpr std::uint16_t kListenPort = 51820;
constexpr std::uint16_t kPeerPort = 51820;
constexpr std::uint16_t kTunnelMtu = 1420;
constexpr std::uint16_t kEth = sizeof(rte_ether_hdr);
constexpr std::uint16_t kIp = sizeof(rte_ipv4_hdr);
constexpr std::uint16_t kUdp = sizeof(rte_udp_hdr);
constexpr unsigned kRingSize = 4096;
constexpr unsigned kTopUp = 256;  // packets put in an rx ring at a time

std::uint32_t ip4(unsigned a, unsigned b, unsigned c, unsigned d) {
  return htonl((a << 24) | (b << 16) | (c << 8) | d);
}
const std::uint32_t kWanIp = ip4(192, 0, 2, 2);
const std::uint32_t kWanGw = ip4(192, 0, 2, 1);
const std::uint32_t kLanIp = ip4(10, 10, 0, 1);
const std::uint32_t kLanHost = ip4(10, 10, 0, 2);
const rte_ether_addr kRouterMac = {{0x02, 0, 0, 0, 0, 0x01}};
const rte_ether_addr kHostMac = {{0x02, 0, 0, 0, 0, 0x02}};
const std::uint32_t kInet = ip4(203, 0, 113, 10);  // the internet host (--exit)
constexpr std::uint16_t kInetPort = 5201;
constexpr std::uint16_t kFlowPortBase = 10000;  // a flow's inner source port: base + flow / peers
// A flow's remote port: one external address has ~64 000 ports per remote
// (address, port), so 100 000 flows need more than one remote port.
std::uint16_t inet_port(std::uint32_t flow) { return static_cast<std::uint16_t>(kInetPort + flow % 64); }

// Peer i: allowed IP 10.(128+i/65536).(i/256%256).(i%256)/32, endpoint
// 198.18.0.0/15 + i (off-link: every outer packet goes to the WAN gateway).
std::uint32_t peer_inner(std::uint32_t i) { return ip4(10, 128 + i / 65536, (i / 256) % 256, i % 256); }
std::uint32_t peer_outer(std::uint32_t i) { return htonl((198u << 24 | 18u << 16) + i); }
std::uint32_t peer_of_outer(std::uint32_t addr) { return ntohl(addr) - (198u << 24 | 18u << 16); }

// --ipv6: the LAN's prefix, the LAN host, peer i's inner address.
using V6 = std::array<std::uint8_t, 16>;
constexpr V6 kLanIp6 = {0x20, 0x01, 0x0d, 0xb8, 0, 0x0a, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1};
constexpr V6 kLanHost6 = {0x20, 0x01, 0x0d, 0xb8, 0, 0x0a, 0, 0, 0, 0, 0, 0, 0, 0, 0, 2};
constexpr std::uint16_t kIp6 = 40;
V6 peer_inner6(std::uint32_t i) {
  V6 a = {0x20, 0x01, 0x0d, 0xb8, 0, 0x0b};
  for (int b = 0; b < 4; ++b) a[12 + b] = static_cast<std::uint8_t>(i >> (24 - 8 * b));
  return a;
}

wg::Instant now() {
  timespec m{}, w{};
  clock_gettime(CLOCK_MONOTONIC, &m);
  clock_gettime(CLOCK_REALTIME, &w);
  return wg::Instant{static_cast<wg::Nanos>(m.tv_sec) * 1'000'000'000LL + m.tv_nsec,
                     static_cast<std::uint64_t>(w.tv_sec) * 1'000'000'000ULL +
                         static_cast<std::uint64_t>(w.tv_nsec)};
}

[[noreturn]] void die(const std::string& msg) {
  std::fprintf(stderr, "bench_dataplane: %s\n", msg.c_str());
  std::exit(1);
}


enum class Mode { kCold, kRecycled };

struct Options {
  std::uint32_t peers = 1;
  std::uint32_t k = 65536;
  std::uint32_t recycle = 2048;  // buffers in the recycled mode (a NIC's RX + TX rings)
  std::vector<Mode> modes;
  bool hugepages = false;
  std::vector<std::uint32_t> sizes = {64, 512, 1420};
  int reps = 3;
  std::uint32_t ceiling_bursts = 1024;
  std::uint32_t exit_flows = 0;  // --exit F: 0 = the plain subnet-router path
  bool policy = false;
  bool ipv6 = false;  // --ipv6: IPv6 inner packets
  int lcore = 0;
  std::string json;
  bool header = true;
  std::vector<std::string> eal;

  std::string eal_line() const {
    std::string l;
    for (const auto& a : eal) l += (l.empty() ? "" : " ") + a;
    return l;
  }
};

std::vector<std::uint32_t> parse_list(const std::string& s) {
  std::vector<std::uint32_t> v;
  std::size_t pos = 0;
  while (pos <= s.size()) {
    const std::size_t comma = s.find(',', pos);
    const std::string item = s.substr(pos, comma == std::string::npos ? std::string::npos : comma - pos);
    if (!item.empty()) v.push_back(static_cast<std::uint32_t>(std::stoul(item)));
    if (comma == std::string::npos) break;
    pos = comma + 1;
  }
  return v;
}

[[noreturn]] void usage(const char* msg) {
  std::fprintf(stderr,
               "bench_dataplane: %s\n"
               "usage: bench_dataplane [--peers N] [--k K] [--sizes 64,512,1420] [--reps R]\n"
               "                       [--modes cold,recycled] [--recycle W] [--hugepages]\n"
               "                       [--ceiling-bursts B] [--lcore L] [--json FILE] [--no-header]\n"
               "                       [-- EAL args]\n",
               msg);
  std::exit(2);
}

Options parse(int argc, char** argv) {
  Options o;
  int i = 1;
  for (; i < argc; ++i) {
    const std::string a = argv[i];
    if (a == "--") {
      ++i;
      break;
    }
    auto value = [&]() -> std::string {
      if (i + 1 >= argc) usage(("missing value for " + a).c_str());
      return argv[++i];
    };
    if (a == "--peers") o.peers = static_cast<std::uint32_t>(std::stoul(value()));
    else if (a == "--k") o.k = static_cast<std::uint32_t>(std::stoul(value()));
    else if (a == "--sizes") o.sizes = parse_list(value());
    else if (a == "--reps") o.reps = std::max(1, std::stoi(value()));
    else if (a == "--ceiling-bursts") o.ceiling_bursts = static_cast<std::uint32_t>(std::stoul(value()));
    else if (a == "--lcore") o.lcore = std::stoi(value());
    else if (a == "--recycle") o.recycle = static_cast<std::uint32_t>(std::stoul(value()));
    else if (a == "--hugepages") o.hugepages = true;
    else if (a == "--exit") o.exit_flows = static_cast<std::uint32_t>(std::stoul(value()));
    else if (a == "--policy") o.policy = true;
    else if (a == "--ipv6") o.ipv6 = true;
    else if (a == "--modes") {
      const std::string v = value();
      o.modes.clear();
      std::size_t pos = 0;
      while (pos <= v.size()) {
        const std::size_t comma = v.find(',', pos);
        const std::string m = v.substr(pos, comma == std::string::npos ? std::string::npos : comma - pos);
        if (m == "cold") o.modes.push_back(Mode::kCold);
        else if (m == "recycled") o.modes.push_back(Mode::kRecycled);
        else usage(("unknown mode " + m).c_str());
        if (comma == std::string::npos) break;
        pos = comma + 1;
      }
    }
    else if (a == "--json") o.json = value();
    else if (a == "--no-header") o.header = false;
    else if (a == "-h" || a == "--help") usage("help");
    else usage(("unknown argument " + a).c_str());
  }
  for (; i < argc; ++i) o.eal.emplace_back(argv[i]);
  if (o.peers == 0 || o.peers > 131072) usage("--peers must be 1..131072");
  if (o.k == 0) usage("--k must be > 0");
  if (o.recycle == 0 || o.recycle > 8192) usage("--recycle must be 1..8192");
  if (o.modes.empty()) o.modes = {Mode::kCold, Mode::kRecycled};
  if (o.exit_flows != 0 && (o.exit_flows < o.peers || o.exit_flows % o.peers != 0 || o.exit_flows / o.peers > 50000))
    usage("--exit F: a multiple of --peers, at most 50 000 flows per peer");
  if (o.ipv6 && o.exit_flows != 0) usage("--ipv6 is for the plain path (no --exit)");
  for (std::uint32_t s : o.sizes) {
    if (!o.ipv6 && (s < kIp + kUdp || s > kTunnelMtu)) usage("sizes must be 28..1420 (inner IPv4 packet bytes)");
    if (o.ipv6 && (s < kIp6 + kUdp || s > kTunnelMtu)) usage("--ipv6: sizes must be 48..1420 (inner IPv6 packet bytes)");
  }
  // Hugepages: memory taken from the hugepage pool as needed (in-memory: no
  // hugetlbfs mount or files needed). Without: 4 KiB pages.
  if (o.eal.empty() && o.hugepages)
    o.eal = {"--in-memory", "--no-pci", "-l", std::to_string(o.lcore), "--log-level", "4"};
  if (o.eal.empty())
    o.eal = {"--no-huge", "-m", "2048", "--no-pci", "--no-shconf", "-l", std::to_string(o.lcore),
             "--log-level", "4"};
  return o;
}

// --- frames --------------------------------------------------------------------

void write_ipv4(rte_ipv4_hdr* ip, std::uint32_t src, std::uint32_t dst, std::uint16_t total,
                std::uint8_t proto) {
  ip->version_ihl = RTE_IPV4_VHL_DEF;
  ip->type_of_service = 0;
  ip->total_length = htons(total);
  ip->packet_id = 0;
  ip->fragment_offset = htons(RTE_IPV4_HDR_DF_FLAG);
  ip->time_to_live = 64;
  ip->next_proto_id = proto;
  ip->src_addr = src;
  ip->dst_addr = dst;
  ip->hdr_checksum = 0;
  ip->hdr_checksum = rte_ipv4_cksum(ip);
}

// An inner IPv4/UDP packet of `total` bytes at p.
void write_inner(std::uint8_t* p, std::uint32_t src, std::uint32_t dst, std::uint16_t total,
                 std::uint32_t seq) {
  auto* ip = reinterpret_cast<rte_ipv4_hdr*>(p);
  write_ipv4(ip, src, dst, total, IPPROTO_UDP);
  auto* udp = reinterpret_cast<rte_udp_hdr*>(ip + 1);
  udp->src_port = htons(40000);
  udp->dst_port = htons(5201);
  udp->dgram_len = htons(static_cast<std::uint16_t>(total - kIp));
  udp->dgram_cksum = 0;
  std::uint8_t* payload = reinterpret_cast<std::uint8_t*>(udp + 1);
  const std::size_t n = total - kIp - kUdp;
  std::memset(payload, 0x5a, n);
  if (n >= 4) std::memcpy(payload, &seq, 4);
}

// An inner IPv6/UDP packet of `total` bytes at p. (UDP checksum 0: the
// gateway forwards without reading it.)
void write_inner6(std::uint8_t* p, const V6& src, const V6& dst, std::uint16_t total, std::uint32_t seq) {
  const auto payload_len = static_cast<std::uint16_t>(total - kIp6);
  p[0] = 0x60;
  p[1] = p[2] = p[3] = 0;
  p[4] = static_cast<std::uint8_t>(payload_len >> 8);
  p[5] = static_cast<std::uint8_t>(payload_len);
  p[6] = IPPROTO_UDP;
  p[7] = 64;
  std::memcpy(p + 8, src.data(), 16);
  std::memcpy(p + 24, dst.data(), 16);
  auto* udp = reinterpret_cast<rte_udp_hdr*>(p + kIp6);
  udp->src_port = htons(40000);
  udp->dst_port = htons(5201);
  udp->dgram_len = htons(payload_len);
  udp->dgram_cksum = 0;
  std::uint8_t* payload = reinterpret_cast<std::uint8_t*>(udp + 1);
  const std::size_t n = total - kIp6 - kUdp;
  std::memset(payload, 0x5a, n);
  if (n >= 4) std::memcpy(payload, &seq, 4);
}

// Ethernet + IPv4 + UDP frame with room for `payload` bytes; returns the
// payload pointer through `out`.
// `reuse`: an mbuf to write the frame into (reset first), as a NIC refills
// its ring with buffers it had before; nullptr takes a new one from `pool`.
rte_mbuf* udp_frame(rte_mempool* pool, const rte_ether_addr& dst_mac, std::uint32_t src,
                    std::uint32_t dst, std::uint16_t sport, std::uint16_t dport, std::uint16_t payload,
                    std::uint8_t** out, rte_mbuf* reuse = nullptr) {
  rte_mbuf* m = reuse;
  if (m != nullptr) rte_pktmbuf_reset(m);
  else m = rte_pktmbuf_alloc(pool);
  if (m == nullptr) die("benchmark mbuf pool exhausted");
  char* p = rte_pktmbuf_append(m, static_cast<std::uint16_t>(kEth + kIp + kUdp + payload));
  if (p == nullptr) die("frame does not fit an mbuf");
  auto* eth = reinterpret_cast<rte_ether_hdr*>(p);
  eth->dst_addr = dst_mac;
  eth->src_addr = kRouterMac;
  eth->ether_type = htons(RTE_ETHER_TYPE_IPV4);
  auto* ip = reinterpret_cast<rte_ipv4_hdr*>(eth + 1);
  write_ipv4(ip, src, dst, static_cast<std::uint16_t>(kIp + kUdp + payload), IPPROTO_UDP);
  auto* udp = reinterpret_cast<rte_udp_hdr*>(ip + 1);
  udp->src_port = htons(sport);
  udp->dst_port = htons(dport);
  udp->dgram_len = htons(static_cast<std::uint16_t>(kUdp + payload));
  udp->dgram_cksum = 0;
  *out = reinterpret_cast<std::uint8_t*>(udp + 1);
  return m;
}

void enqueue_all(rte_ring* r, rte_mbuf** pkts, unsigned n) {
  unsigned done = 0;
  while (done < n) {
    const unsigned k = rte_ring_enqueue_burst(r, reinterpret_cast<void* const*>(pkts + done), n - done, nullptr);
    if (k == 0) die("rx ring full during set-up");
    done += k;
  }
}

// --- the benchmark's world -------------------------------------------------------

struct PeerSide {
  std::unique_ptr<wg::Device> dev;
  wg::Peer* gw = nullptr;  // the gateway, as this peer's device sees it
  std::uint32_t index = 0;
  bool ready = false;      // handshake complete (flush_staged was called)
};

class World;

// Upcalls of every peer-side device.
class PeerHost final : public wg::DeviceHost {
 public:
  explicit PeerHost(World& w) : w_(w) {}
  bool send_handshake(wg::Peer* peer, const wg::Endpoint& to, const std::uint8_t* msg,
                      std::size_t len) override;
  void flush_staged(wg::Peer& peer, bool) override { static_cast<PeerSide*>(peer.user)->ready = true; }
  void purge_staged(wg::Peer&) override {}
  bool capture = true;             // handshake messages go onto the WAN rx ring
  std::uint64_t discarded = 0;     // ...or are dropped (rekeys during the data phases)

 private:
  World& w_;
};

struct Ports {
  rte_ring* rx = nullptr;  // the benchmark enqueues, the gateway receives
  rte_ring* tx = nullptr;  // the gateway transmits, the benchmark dequeues
  std::uint16_t id = 0;
  rte_ether_addr mac{};
  std::string name;  // the ethdev's name
};

class World {
 public:
  explicit World(const Options& o) : opt(o), host(*this) {}
  const Options& opt;
  rte_mempool* pool = nullptr;
  Ports wan, lan;
  dp::Gateway gw;
  crypto::PublicKey gw_public{};
  PeerHost host;
  std::vector<PeerSide> peers;
  std::unique_ptr<crypto::AeadBurst> aead;  // the peers' and the ceiling's
  std::uint64_t lan_out = 0;  // IPv4 (--ipv6: IPv6) data frames seen on the LAN tx ring (set-up)
  std::vector<std::uint16_t> ext_port;  // --exit: flow -> its external port (learnt in set-up)

  void setup_ports();
  void setup_gateway();
  void handshakes();
  // Drains both tx rings: answers ARP requests, hands handshake answers to
  // the peers, counts IPv4 frames on the LAN. Frees everything.
  void service();
  void answer_arp(Ports& port, const rte_arp_hdr* req);
  rte_mbuf* data_message(PeerSide& p, const std::uint8_t* inner, std::uint16_t len);
  void encrypt_messages(std::vector<rte_mbuf*>& ms, std::vector<crypto::AeadOp>& ops);
  std::string drop_summary();
};

bool PeerHost::send_handshake(wg::Peer* peer, const wg::Endpoint&, const std::uint8_t* msg,
                              std::size_t len) {
  if (!capture || peer == nullptr) {
    ++discarded;
    return true;
  }
  const auto* side = static_cast<PeerSide*>(peer->user);
  std::uint8_t* payload = nullptr;
  rte_mbuf* m = udp_frame(w_.pool, w_.wan.mac, peer_outer(side->index), kWanIp, kPeerPort, kListenPort,
                          static_cast<std::uint16_t>(len), &payload);
  std::memcpy(payload, msg, len);
  enqueue_all(w_.wan.rx, &m, 1);
  return true;
}

void World::setup_ports() {
  const unsigned socket = rte_socket_id();
  const std::uint32_t nb = opt.k + opt.recycle + 3 * kRingSize + 8192;
  pool = rte_pktmbuf_pool_create("bench_pool", nb, 256, 0, RTE_MBUF_DEFAULT_BUF_SIZE,
                                 static_cast<int>(socket));
  if (pool == nullptr) die(std::string("bench mbuf pool: ") + rte_strerror(rte_errno));
  auto make = [&](Ports& p, const char* name) {
    const std::string n = name;
    p.rx = rte_ring_create((n + "_rx").c_str(), kRingSize, static_cast<int>(socket), RING_F_SP_ENQ | RING_F_SC_DEQ);
    p.tx = rte_ring_create((n + "_tx").c_str(), kRingSize, static_cast<int>(socket), RING_F_SP_ENQ | RING_F_SC_DEQ);
    if (p.rx == nullptr || p.tx == nullptr) die(std::string("ring: ") + rte_strerror(rte_errno));
    const int id = rte_eth_from_rings(name, &p.rx, 1, &p.tx, 1, socket);
    if (id < 0) die(std::string("rte_eth_from_rings: ") + rte_strerror(rte_errno));
    p.id = static_cast<std::uint16_t>(id);
    // The ring PMD names the ethdev net_ring_<name>: what open_port() looks up.
    char dev[RTE_ETH_NAME_MAX_LEN];
    if (rte_eth_dev_get_name_by_port(p.id, dev) != 0) die("ring ethdev has no name");
    p.name = dev;
  };
  make(wan, "wan");
  make(lan, "lan");
}

void World::setup_gateway() {
  dp::Settings s;
  crypto::x25519_generate(s.private_key, gw_public);
  s.listen_port = kListenPort;
  s.tunnel_mtu = kTunnelMtu;
  s.max_peers = std::max<std::uint32_t>(opt.peers, 1);
  s.busy_poll = true;
  dp::Port w;
  w.name = "wan";
  w.role = dp::PortRole::kWan;
  w.device = wan.name;
  w.v4 = {dp::Ipv4Iface{kWanIp, 24}};
  w.gateway_v4 = kWanGw;
  dp::Port l;
  l.name = "lan";
  l.role = dp::PortRole::kLan;
  l.device = lan.name;
  l.v4 = {dp::Ipv4Iface{kLanIp, 24}};
  if (opt.ipv6) l.v6 = {dp::Ipv6Iface{kLanIp6, 64}};
  s.ports = {w, l};

  peers.resize(opt.peers);
  std::fprintf(stderr, "bench_dataplane: %u peer keys...\n", opt.peers);
  for (std::uint32_t i = 0; i < opt.peers; ++i) {
    PeerSide& p = peers[i];
    p.index = i;
    crypto::SecretKey sk;
    crypto::PublicKey pk;
    crypto::x25519_generate(sk, pk);
    p.dev = std::make_unique<wg::Device>(1, host);
    p.dev->set_private_key(sk);
    p.gw = p.dev->add_peer(gw_public);
    if (p.gw == nullptr) die("peer device refused the gateway");
    p.gw->user = &p;
    p.gw->endpoint = wg::Endpoint::v4(reinterpret_cast<const std::uint8_t*>(&kWanIp), kListenPort);
    dp::PeerSettings ps;
    ps.public_key = pk;
    ps.allowed_v4 = {{peer_inner(i), 32}};
    if (opt.ipv6) ps.allowed_v6 = {{peer_inner6(i), 128}};
    const std::uint32_t outer = peer_outer(i);
    ps.endpoint = wg::Endpoint::v4(reinterpret_cast<const std::uint8_t*>(&outer), kPeerPort);
    ps.exit_node = opt.exit_flows != 0;
    s.peers.push_back(std::move(ps));
  }
  if (opt.exit_flows) {
    s.nat = true;
    moongate::net::Ipv4Address a{};
    std::memcpy(a.data(), &kWanIp, 4);
    s.nat_config.pool = {a};
    s.nat_config.reserved_ports = {kListenPort};
    s.nat_config.max_flows = 2 * static_cast<std::size_t>(opt.exit_flows);
    s.nat_config.timeouts.udp = s.nat_config.timeouts.udp_stream = 3600;  // nothing expires mid-run
  }
  if (opt.policy) {
    s.policy = true;
    s.policy_compiled.rule_count = 1;
    s.policy_compiled.flat = {moongate::policy::FlatRule{}};  // rule 0, any source, *:*, any protocol
    s.policy_compiled.flat6 = {moongate::policy::FlatRule6{}};  // the same rule's IPv6 half (as "*:*" compiles)
    s.policy_flows = 2 * static_cast<std::size_t>(std::max<std::uint32_t>(opt.exit_flows, opt.peers));
  }
  if (std::string err = gw.init(std::move(s)); !err.empty()) die("gateway init: " + err);
  rte_eth_macaddr_get(wan.id, &wan.mac);
  rte_eth_macaddr_get(lan.id, &lan.mac);
  aead = std::make_unique<crypto::AeadBurst>();
}

void World::answer_arp(Ports& port, const rte_arp_hdr* req) {
  const std::uint32_t tip = req->arp_data.arp_tip;
  const rte_ether_addr& mac = tip == kWanGw ? kRouterMac : kHostMac;
  if (tip != kWanGw && tip != kLanHost) return;
  rte_mbuf* m = rte_pktmbuf_alloc(pool);
  if (m == nullptr) die("benchmark mbuf pool exhausted");
  auto* eth = reinterpret_cast<rte_ether_hdr*>(rte_pktmbuf_append(m, kEth + sizeof(rte_arp_hdr)));
  eth->dst_addr = req->arp_data.arp_sha;
  eth->src_addr = mac;
  eth->ether_type = htons(RTE_ETHER_TYPE_ARP);
  auto* arp = reinterpret_cast<rte_arp_hdr*>(eth + 1);
  arp->arp_hardware = htons(RTE_ARP_HRD_ETHER);
  arp->arp_protocol = htons(RTE_ETHER_TYPE_IPV4);
  arp->arp_hlen = RTE_ETHER_ADDR_LEN;
  arp->arp_plen = 4;
  arp->arp_opcode = htons(RTE_ARP_OP_REPLY);
  arp->arp_data.arp_sha = mac;
  arp->arp_data.arp_sip = tip;
  arp->arp_data.arp_tha = req->arp_data.arp_sha;
  arp->arp_data.arp_tip = req->arp_data.arp_sip;
  enqueue_all(port.rx, &m, 1);
}

void World::service() {
  rte_mbuf* pkts[64];
  for (Ports* port : {&wan, &lan}) {
    unsigned n;
    while ((n = rte_ring_dequeue_burst(port->tx, reinterpret_cast<void**>(pkts), 64, nullptr)) != 0) {
      for (unsigned i = 0; i < n; ++i) {
        rte_mbuf* m = pkts[i];
        const auto* eth = rte_pktmbuf_mtod(m, const rte_ether_hdr*);
        const std::uint16_t len = rte_pktmbuf_data_len(m);
        if (eth->ether_type == htons(RTE_ETHER_TYPE_ARP)) {
          const auto* arp = reinterpret_cast<const rte_arp_hdr*>(eth + 1);
          if (arp->arp_opcode == htons(RTE_ARP_OP_REQUEST)) answer_arp(*port, arp);
        } else if (eth->ether_type == htons(RTE_ETHER_TYPE_IPV6) && port == &lan) {
          // --ipv6: the LAN host answers the gateway's Neighbor
          // Solicitations (built directly: this harness trusts what the
          // gateway sends); the rest is data.
          const auto* ip6 = reinterpret_cast<const std::uint8_t*>(eth + 1);
          if (len >= kEth + kIp6 + moongate::net::kNdpMessageLen && ip6[6] == IPPROTO_ICMPV6 &&
              ip6[kIp6] == moongate::net::kIcmpv6NeighborSolicitation &&
              std::memcmp(ip6 + kIp6 + 8, kLanHost6.data(), 16) == 0) {
            rte_mbuf* r = rte_pktmbuf_alloc(pool);
            if (r == nullptr) die("benchmark mbuf pool exhausted");
            auto* out = reinterpret_cast<std::uint8_t*>(rte_pktmbuf_append(r, moongate::net::kNdpFrameLen));
            moongate::net::Ipv6Address gw_ip{};
            std::memcpy(gw_ip.data(), ip6 + 8, 16);
            moongate::net::NaFlags flags;
            flags.solicited = true;
            moongate::net::build_neighbor_advertisement(
                out, moongate::net::kNdpFrameLen, moongate::net::MacAddress::load(eth->src_addr.addr_bytes),
                moongate::net::MacAddress::load(kHostMac.addr_bytes), kLanHost6, gw_ip, kLanHost6, flags);
            enqueue_all(lan.rx, &r, 1);
          } else {
            ++lan_out;
          }
        } else if (eth->ether_type == htons(RTE_ETHER_TYPE_IPV4)) {
          if (port == &lan ||
              (opt.exit_flows && reinterpret_cast<const rte_ipv4_hdr*>(eth + 1)->dst_addr == kInet)) {
            ++lan_out;  // a data packet out (to the internet host with --exit)
          } else if (len > kEth + kIp + kUdp) {
            const auto* ip = reinterpret_cast<const rte_ipv4_hdr*>(eth + 1);
            const std::uint32_t idx = peer_of_outer(ip->dst_addr);
            const std::uint8_t* msg = reinterpret_cast<const std::uint8_t*>(ip) + kIp + kUdp;
            const std::size_t mlen = len - kEth - kIp - kUdp;
            const wg::MessageType t = wg::classify_message(msg, mlen);
            if (idx < peers.size() && t != wg::MessageType::kData && t != wg::MessageType::kInvalid)
              peers[idx].dev->receive_handshake(msg, mlen, peers[idx].gw->endpoint, now());
          }
        }
        rte_pktmbuf_free(m);
      }
    }
  }
}

// One data message from peer p carrying `inner` (len bytes), not yet
// encrypted: returns the mbuf with header, padded plaintext and tag room,
// and appends the AEAD op for it.
struct Pending {
  rte_mbuf* m;
  crypto::AeadOp op;
};

Pending make_message(World& w, PeerSide& p, std::uint16_t inner_len, std::uint32_t seq, wg::Instant t,
                     rte_mbuf* reuse = nullptr) {
  wg::TxSlot slot;
  if (p.dev->prepare_send(*p.gw, t, slot) != wg::Drop::kOk) die("peer has no session");
  const auto padded = static_cast<std::uint16_t>(wg::padded_length(inner_len, kTunnelMtu));
  const auto wg_len = static_cast<std::uint16_t>(wg::kDataHeaderLen + padded + wg::kTagLen);
  std::uint8_t* msg = nullptr;
  rte_mbuf* m =
      udp_frame(w.pool, w.wan.mac, peer_outer(p.index), kWanIp, kPeerPort, kListenPort, wg_len, &msg, reuse);
  wg::write_data_header(msg, slot.send->remote_index, slot.counter);
  std::uint8_t* pt = msg + wg::kDataHeaderLen;
  if (inner_len != 0 && w.opt.ipv6) {
    write_inner6(pt, peer_inner6(p.index), kLanHost6, inner_len, seq);
  } else if (inner_len != 0) {  // else a keepalive
    write_inner(pt, peer_inner(p.index), w.opt.exit_flows ? kInet : kLanHost, inner_len, seq);
    if (w.opt.exit_flows) {  // flow `seq`: its source port; the payload starts with seq
      auto* udp = reinterpret_cast<rte_udp_hdr*>(pt + kIp);
      udp->src_port = htons(static_cast<std::uint16_t>(kFlowPortBase + seq / w.opt.peers));
      udp->dst_port = htons(inet_port(seq));
    }
  }
  std::memset(pt + inner_len, 0, padded - inner_len);
  p.dev->complete_send(*p.gw, t, wg_len, inner_len != 0);
  return Pending{m, crypto::AeadOp{pt, padded, pt + padded, slot.send->key.data(), slot.counter, nullptr, 0}};
}

// K encrypted data messages, round robin over the peers (starting at
// `first`), each carrying an inner packet of `size` bytes to the LAN host.
// Written into the mbufs of `reuse` when given (k of them), else new ones.
std::vector<rte_mbuf*> make_messages(World& w, std::uint32_t k, std::uint16_t size, std::uint32_t first,
                                     rte_mbuf* const* reuse = nullptr) {
  std::vector<rte_mbuf*> out;
  out.reserve(k);
  std::vector<crypto::AeadOp> ops;
  const wg::Instant t = now();
  for (std::uint32_t i = 0; i < k; ++i) {
    PeerSide& p = w.peers[(first + i) % w.peers.size()];
    // Exit: packet i is flow (first + i) mod F, whose peer is flow mod N.
    const std::uint32_t seq = w.opt.exit_flows ? (first + i) % w.opt.exit_flows : i;
    Pending pm = make_message(w, p, size, seq, t, reuse != nullptr ? reuse[i] : nullptr);
    out.push_back(pm.m);
    ops.push_back(pm.op);
    if (ops.size() == 32 || i + 1 == k) {
      if (w.aead->encrypt(ops.data(), static_cast<std::uint32_t>(ops.size())) != ops.size())
        die("peer-side encryption failed");
      ops.clear();
    }
  }
  return out;
}

void World::handshakes() {
  const std::uint32_t n = static_cast<std::uint32_t>(peers.size());
  std::uint32_t done = 0;
  const std::uint64_t t0 = rte_rdtsc();
  std::uint64_t last_report = t0;
  while (done < n) {
    // The first batch is one peer so that ARP for the WAN gateway and the
    // LAN host resolves before more than one packet waits on it; then as
    // many as the gateway consumes per iteration (kHandshakeBudget), which
    // keeps its queue below the 1/8 that turns on cookie mode.
    const std::uint32_t batch = done == 0 ? 1 : std::min<std::uint32_t>(dp::kHandshakeBudget, n - done);
    const wg::Instant t = now();
    for (std::uint32_t i = done; i < done + batch; ++i)
      if (peers[i].dev->initiate_handshake(*peers[i].gw, t) != wg::Drop::kOk) die("initiate_handshake");
    int spins = 0;
    auto all_ready = [&] {
      for (std::uint32_t i = done; i < done + batch; ++i)
        if (!peers[i].ready) return false;
      return true;
    };
    while (!all_ready()) {
      gw.run_once();
      service();
      if (++spins > 10000) die("handshake " + std::to_string(done) + " did not complete: " + drop_summary());
    }
    // One data packet per peer: the gateway's keypair is confirmed by it.
    const std::uint64_t want = lan_out + batch;
    const wg::Instant t2 = now();
    for (std::uint32_t i = done; i < done + batch; ++i) {
      Pending pm = make_message(*this, peers[i], 64, i, t2);
      if (aead->encrypt(&pm.op, 1) != 1) die("peer-side encryption failed");
      enqueue_all(wan.rx, &pm.m, 1);
    }
    spins = 0;
    while (lan_out < want) {
      gw.run_once();
      service();
      if (++spins > 10000) die("confirmation of peer " + std::to_string(done) + " lost: " + drop_summary());
    }
    done += batch;
    const std::uint64_t c = rte_rdtsc();
    if (c - last_report > rte_get_tsc_hz() * 5 || done == n) {
      last_report = c;
      std::fprintf(stderr, "bench_dataplane: %u/%u handshakes (%.1f s)\n", done, n,
                   static_cast<double>(c - t0) / static_cast<double>(rte_get_tsc_hz()));
    }
  }
}

std::string World::drop_summary() {
  std::string s;
  const dp::LcoreCounters& c = gw.totals();
  for (std::size_t i = 0; i < dp::kDpDropCount; ++i)
    if (c.drops[i]) s += std::string(dp::dp_drop_name(static_cast<dp::DpDrop>(i))) + "=" + std::to_string(c.drops[i]) + " ";
  const auto d = gw.wg_drops();
  for (std::size_t i = 0; i < wg::kDropCount; ++i)
    if (d[i]) s += std::string("wg_") + wg::drop_name(static_cast<wg::Drop>(i)) + "=" + std::to_string(d[i]) + " ";
  s += "(rx wan " + std::to_string(c.rx_packets[wan.id % 8]) + " lan " + std::to_string(c.rx_packets[lan.id % 8]) +
       ", tx wan " + std::to_string(c.tx_packets[wan.id % 8]) + " lan " + std::to_string(c.tx_packets[lan.id % 8]) +
       ", handshakes_in " + std::to_string(c.handshakes_in) + ", decrypted " + std::to_string(c.decrypted) +
       ", encrypted " + std::to_string(c.encrypted) + ")";
  return s;
}

// --- measurements ------------------------------------------------------------------

struct Phase {
  std::uint64_t cycles = 0;  // inside run_once() only
  std::uint64_t out = 0;     // data packets that came out the far side
  std::uint64_t calls = 0;
  // The same over the calls that were not interrupted (see uninterrupted()).
  std::uint64_t kept_cycles = 0;
  std::uint64_t kept_out = 0;
  std::uint64_t dropped_calls = 0;
  std::vector<std::uint64_t> call_cycles;  // per run_once() call
  std::vector<std::uint32_t> call_out;

  void add(const Phase& o) {
    cycles += o.cycles;
    out += o.out;
    calls += o.calls;
    call_cycles.insert(call_cycles.end(), o.call_cycles.begin(), o.call_cycles.end());
    call_out.insert(call_out.end(), o.call_out.begin(), o.call_out.end());
  }
};

// The machine is shared: a call during which this thread was preempted or
// interrupted at length takes many times the usual. Calls over kOutlier x
// the median call (of those that forwarded packets) are left out with their
// packets, so cycles per packet are uninterrupted single-core cost (as in
// bench_aead, which takes per-burst medians). A busy call of 32 packets is
// ~20 000-100 000 cycles; a preemption is a few hundred thousand or more.
constexpr double kOutlier = 8;

void uninterrupted(Phase& ph) {
  std::vector<std::uint64_t> busy;
  for (std::size_t i = 0; i < ph.call_cycles.size(); ++i)
    if (ph.call_out[i] != 0) busy.push_back(ph.call_cycles[i]);
  if (busy.empty()) return;
  std::nth_element(busy.begin(), busy.begin() + static_cast<std::ptrdiff_t>(busy.size() / 2), busy.end());
  const double limit = kOutlier * static_cast<double>(busy[busy.size() / 2]);
  ph.kept_cycles = ph.kept_out = ph.dropped_calls = 0;
  for (std::size_t i = 0; i < ph.call_cycles.size(); ++i) {
    if (static_cast<double>(ph.call_cycles[i]) > limit) {
      ++ph.dropped_calls;
      continue;
    }
    ph.kept_cycles += ph.call_cycles[i];
    ph.kept_out += ph.call_out[i];
  }
}

// Feeds `in` through the rx ring of `from`, timing run_once(), and counts
// what leaves `to` (frames longer than min_len: keepalives are not data).
// Those frames go to `keep` when given (recycled buffers), else are freed.
Phase drive(World& w, const std::vector<rte_mbuf*>& in, Ports& from, Ports& to, std::uint16_t min_len,
            std::vector<rte_mbuf*>* keep = nullptr) {
  Phase ph;
  std::size_t next = 0;
  rte_mbuf* pkts[64];
  int idle = 0;
  while (idle < 4) {
    if (next < in.size() && rte_ring_count(from.rx) < kTopUp) {
      const auto n = static_cast<unsigned>(std::min<std::size_t>(kTopUp, in.size() - next));
      next += rte_ring_enqueue_burst(from.rx, reinterpret_cast<void* const*>(in.data() + next), n, nullptr);
    }
    const std::uint64_t c0 = rte_rdtsc();
    w.gw.run_once();
    const std::uint64_t c1 = rte_rdtsc();
    ph.cycles += c1 - c0;
    ++ph.calls;
    bool any = false;
    std::uint32_t out = 0;
    for (Ports* p : {&to, &from}) {
      unsigned n;
      while ((n = rte_ring_dequeue_burst(p->tx, reinterpret_cast<void**>(pkts), 64, nullptr)) != 0) {
        any = true;
        for (unsigned i = 0; i < n; ++i) {
          const bool data = p == &to && rte_pktmbuf_data_len(pkts[i]) > min_len;
          out += data;
          if (data && keep != nullptr) keep->push_back(pkts[i]);
          else rte_pktmbuf_free(pkts[i]);
        }
      }
    }
    ph.out += out;
    ph.call_cycles.push_back(c1 - c0);
    ph.call_out.push_back(out);
    // Done when everything was fed and the gateway stays quiet.
    idle = (next == in.size() && rte_ring_count(from.rx) == 0 && !any) ? idle + 1 : 0;
  }
  // The last idle calls are not data-plane work.
  return ph;
}

// K plaintext IPv4/UDP frames from the LAN host to the peers' allowed IPs
// (round robin from `first`), into the mbufs of `reuse` when given.
std::vector<rte_mbuf*> make_plain(World& w, std::uint32_t k, std::uint16_t size, std::uint32_t first,
                                  rte_mbuf* const* reuse = nullptr) {
  std::vector<rte_mbuf*> plain;
  plain.reserve(k);
  for (std::uint32_t i = 0; i < k; ++i) {
    const std::uint32_t peer = (first + i) % w.opt.peers;
    rte_mbuf* m = reuse != nullptr ? reuse[i] : rte_pktmbuf_alloc(w.pool);
    if (m == nullptr) die("benchmark mbuf pool exhausted");
    if (reuse != nullptr) rte_pktmbuf_reset(m);
    auto* eth = reinterpret_cast<rte_ether_hdr*>(rte_pktmbuf_append(m, static_cast<std::uint16_t>(kEth + size)));
    eth->dst_addr = w.lan.mac;
    eth->src_addr = kHostMac;
    if (w.opt.ipv6) {
      eth->ether_type = htons(RTE_ETHER_TYPE_IPV6);
      write_inner6(reinterpret_cast<std::uint8_t*>(eth + 1), kLanHost6, peer_inner6(peer), size, i);
    } else {
      eth->ether_type = htons(RTE_ETHER_TYPE_IPV4);
      write_inner(reinterpret_cast<std::uint8_t*>(eth + 1), kLanHost, peer_inner(peer), size, i);
    }
    plain.push_back(m);
  }
  return plain;
}

// --exit: K frames of return traffic from the internet host to the flows'
// external ports (flows from `first`, mod F), into `reuse` when given.
std::vector<rte_mbuf*> make_returns(World& w, std::uint32_t k, std::uint16_t size, std::uint32_t first,
                                    rte_mbuf* const* reuse = nullptr) {
  std::vector<rte_mbuf*> out;
  out.reserve(k);
  for (std::uint32_t i = 0; i < k; ++i) {
    const std::uint32_t f = (first + i) % w.opt.exit_flows;
    std::uint8_t* payload = nullptr;
    rte_mbuf* m = udp_frame(w.pool, w.wan.mac, kInet, kWanIp, inet_port(f), w.ext_port[f],
                            static_cast<std::uint16_t>(size - kIp - kUdp), &payload,
                            reuse != nullptr ? reuse[i] : nullptr);
    std::memset(payload, 0x5a, size - kIp - kUdp);
    out.push_back(m);
  }
  return out;
}

// --exit: every flow once through the gateway (untimed), learning each
// flow's external port from the NAT'ed packets leaving the WAN (the payload
// starts with the flow id).
void open_flows(World& w) {
  constexpr std::uint32_t kChunk = 4096;
  const std::uint32_t flows = w.opt.exit_flows;
  w.ext_port.assign(flows, 0);
  std::uint32_t learnt = 0;
  for (std::uint32_t done = 0; done < flows; done += kChunk) {
    const std::uint32_t n = std::min(kChunk, flows - done);
    std::vector<rte_mbuf*> kept;
    drive(w, make_messages(w, n, 64, done), w.wan, w.wan, static_cast<std::uint16_t>(kEth + kIp + kUdp + wg::kDataMinLen),
          &kept);
    for (rte_mbuf* m : kept) {
      const auto* eth = rte_pktmbuf_mtod(m, const rte_ether_hdr*);
      const auto* ip = reinterpret_cast<const rte_ipv4_hdr*>(eth + 1);
      const auto* udp = reinterpret_cast<const rte_udp_hdr*>(ip + 1);
      std::uint32_t f = 0;
      std::memcpy(&f, udp + 1, 4);
      if (ip->dst_addr == kInet && ip->src_addr == kWanIp && f < flows && w.ext_port[f] == 0) {
        w.ext_port[f] = ntohs(udp->src_port);
        ++learnt;
      }
      rte_pktmbuf_free(m);
    }
  }
  if (learnt != flows) die("--exit: " + std::to_string(learnt) + " of " + std::to_string(flows) + " flows opened: " +
                           w.drop_summary());
  std::size_t active = 0;
  for (std::size_t i = 0; i < w.gw.worker_count(); ++i) active += w.gw.worker(i).nat()->flow_count();
  std::fprintf(stderr, "bench_dataplane: %zu NAT flows active\n", active);
}

const char* mode_name(Mode m) { return m == Mode::kCold ? "cold" : "recycled"; }

// One direction, K packets of `size` bytes, through the gateway.
//   cold:     K distinct packets built beforehand (K mbufs, ~K x 2.2 KiB).
//   recycled: rounds of `ring` packets, each round rebuilt (fresh counters,
//             re-encrypted by the peers, untimed) in the mbufs that came out
//             of the previous round, as a NIC refills its RX ring from the
//             buffers its TX completions returned.
Phase run_direction(World& w, bool decrypt, std::uint16_t size, std::uint32_t& first, Mode mode,
                    std::uint32_t ring, std::vector<rte_mbuf*>& spare) {
  const bool exit = w.opt.exit_flows != 0;
  Ports& from = decrypt || exit ? w.wan : w.lan;
  Ports& to = decrypt && !exit ? w.lan : w.wan;
  // Keepalives (empty data messages) leaving the WAN are not data.
  const auto min_len = static_cast<std::uint16_t>(decrypt && !exit ? 0 : kEth + kIp + kUdp + wg::kDataMinLen);
  auto build = [&](std::uint32_t n, rte_mbuf* const* reuse) {
    std::vector<rte_mbuf*> v = decrypt ? make_messages(w, n, size, first, reuse)
                               : exit  ? make_returns(w, n, size, first, reuse)
                                       : make_plain(w, n, size, first, reuse);
    first = static_cast<std::uint32_t>((first + n) % (exit ? w.opt.exit_flows : w.opt.peers));
    return v;
  };
  if (mode == Mode::kCold) {
    Phase ph = drive(w, build(w.opt.k, nullptr), from, to, min_len);
    uninterrupted(ph);
    return ph;
  }
  Phase total;
  std::uint32_t done = 0;
  while (done < w.opt.k) {
    const std::uint32_t n = std::min(ring, w.opt.k - done);
    while (spare.size() < n) {  // the first round, or replacements for losses
      rte_mbuf* m = rte_pktmbuf_alloc(w.pool);
      if (m == nullptr) die("benchmark mbuf pool exhausted");
      spare.push_back(m);
    }
    const std::vector<rte_mbuf*> in = build(n, spare.data() + spare.size() - n);
    spare.resize(spare.size() - n);
    total.add(drive(w, in, from, to, min_len, &spare));
    done += n;
  }
  uninterrupted(total);
  return total;
}

// After the set-up every peer has sent one data message and received none:
// the gateway's "keepalive after 10 s of receiving without sending" timer
// is armed for all of them, and at 100 000 peers it would fire inside the
// timed calls. So each peer is sent one packet and answers with a keepalive
// (which arms nothing): no timer is left pending but zeroing the keys.
void settle(World& w) {
  constexpr std::uint32_t kChunk = 2048;
  const auto keepalive_frame = static_cast<std::uint16_t>(kEth + kIp + kUdp + wg::kDataMinLen);
  for (std::uint32_t done = 0; done < w.opt.peers; done += kChunk) {
    const std::uint32_t n = std::min(kChunk, w.opt.peers - done);
    drive(w, make_plain(w, n, 64, done), w.lan, w.wan, keepalive_frame);
    drive(w, make_messages(w, n, 0, done), w.wan, w.lan, 0);
  }
}

struct Result {
  Mode mode;
  std::string dir;
  std::uint32_t size;
  std::vector<double> dp_cyc, ceil_cyc, ratio;  // per repetition
  std::uint64_t lost = 0;
  std::uint64_t calls = 0, dropped_calls = 0;
  std::string drops;
};

double median(std::vector<double> v) {
  std::sort(v.begin(), v.end());
  const std::size_t m = v.size() / 2;
  return v.size() % 2 ? v[m] : (v[m - 1] + v[m]) / 2;
}

// AeadBurst alone: bursts of 32 in place over hot buffers, 32 keys; for
// decryption each burst is re-encrypted untimed first (genuine tags).
// Bursts over kOutlier x the median burst are left out, as the data plane's
// interrupted calls are.
double ceiling(World& w, std::uint32_t size, bool encrypt, std::uint32_t bursts) {
  constexpr std::uint32_t kB = 32;
  static std::vector<std::uint8_t> buf;
  static std::vector<std::uint8_t> keys;
  buf.assign(static_cast<std::size_t>(kB) * (size + 16), 0x33);
  if (keys.empty()) {
    keys.resize(kB * 32);
    for (std::size_t i = 0; i < keys.size(); ++i) keys[i] = static_cast<std::uint8_t>(i * 7 + 1);
  }
  crypto::AeadOp ops[kB];
  bool ok[kB];
  std::uint64_t counter = 0;
  std::vector<std::uint64_t> per_burst;
  per_burst.reserve(bursts);
  for (std::uint32_t b = 0; b < bursts; ++b) {
    for (std::uint32_t i = 0; i < kB; ++i) {
      std::uint8_t* d = buf.data() + static_cast<std::size_t>(i) * (size + 16);
      ops[i] = crypto::AeadOp{d, size, d + size, keys.data() + i * 32, counter++, nullptr, 0};
    }
    if (!encrypt) w.aead->encrypt(ops, kB);
    const std::uint64_t c0 = rte_rdtsc();
    const std::uint32_t done = encrypt ? w.aead->encrypt(ops, kB) : w.aead->decrypt(ops, kB, ok);
    per_burst.push_back(rte_rdtsc() - c0);
    if (done != kB) die("ceiling burst failed");
  }
  std::vector<std::uint64_t> sorted = per_burst;
  std::nth_element(sorted.begin(), sorted.begin() + static_cast<std::ptrdiff_t>(sorted.size() / 2), sorted.end());
  const double limit = kOutlier * static_cast<double>(sorted[sorted.size() / 2]);
  std::uint64_t cycles = 0, kept = 0;
  for (std::uint64_t c : per_burst) {
    if (static_cast<double>(c) > limit) continue;
    cycles += c;
    ++kept;
  }
  return static_cast<double>(cycles) / (static_cast<double>(kept) * kB);
}

}  // namespace

int main(int argc, char** argv) {
  const Options opt = parse(argc, argv);
  std::vector<std::string> eal_s = {"bench_dataplane"};
  eal_s.insert(eal_s.end(), opt.eal.begin(), opt.eal.end());
  std::vector<char*> eal;
  for (auto& s : eal_s) eal.push_back(s.data());
  if (rte_eal_init(static_cast<int>(eal.size()), eal.data()) < 0)
    die(std::string("EAL: ") + rte_strerror(rte_errno));

  auto world = std::make_unique<World>(opt);
  World& w = *world;
  w.setup_ports();
  w.setup_gateway();
  w.handshakes();
  if (w.gw.totals().decrypted != opt.peers) die("set-up: " + w.drop_summary());
  w.host.capture = false;
  settle(w);
  if (opt.exit_flows) open_flows(w);
  const dp::LcoreCounters before = w.gw.totals();

  const double hz = static_cast<double>(rte_get_tsc_hz());
  std::vector<Result> results;
  std::uint32_t first = 0;
  std::vector<rte_mbuf*> spare;  // the recycled buffers between rounds
  for (std::uint32_t size : opt.sizes) {
    std::vector<Result> rs;
    for (Mode mode : opt.modes) {
      rs.push_back(Result{mode, "decrypt", size, {}, {}, {}, 0, 0, 0, {}});
      rs.push_back(Result{mode, "encrypt", size, {}, {}, {}, 0, 0, 0, {}});
    }
    for (int r = 0; r < opt.reps; ++r) {
      std::uint32_t phase_first = first;
      for (Result& res : rs) {
        // Decrypt runs before encrypt in each mode, over the same peers in
        // the same order: every peer the gateway sends to has just received
        // (no "sent without reply" handshake timer), and every peer that
        // received is sent to right after (no keepalive timer: traffic both
        // ways, as TCP's). At 100 000 peers, phases over different peers
        // made the gateway send ~65 000 keepalives inside the timed calls.
        // The ceiling is measured right before each phase, so the two see
        // the same machine (a shared one, whose speed drifts), and the ratio
        // is taken per repetition.
        const bool decrypt = res.dir == "decrypt";
        if (decrypt) phase_first = first;
        else first = phase_first;
        const double ceil = ceiling(w, size, !decrypt, opt.ceiling_bursts);
        const Phase ph = run_direction(w, decrypt, static_cast<std::uint16_t>(size), first, res.mode,
                                       opt.recycle, spare);
        const double cyc = static_cast<double>(ph.kept_cycles) / static_cast<double>(std::max<std::uint64_t>(ph.kept_out, 1));
        res.ceil_cyc.push_back(ceil);
        res.dp_cyc.push_back(cyc);
        res.ratio.push_back(ceil / cyc);
        res.calls += ph.calls;
        res.dropped_calls += ph.dropped_calls;
        if (ph.out != opt.k) {
          res.lost += opt.k > ph.out ? opt.k - ph.out : 0;
          res.drops = w.drop_summary();
        }
      }
    }
    results.insert(results.end(), rs.begin(), rs.end());
  }
  rte_pktmbuf_free_bulk(spare.data(), static_cast<unsigned>(spare.size()));

  if (opt.header) {
    std::printf("| peers | path | packets | direction | inner B | Mpps | Gbit/s | cyc/pkt | ceiling Mpps | ceiling cyc/pkt | dp/ceiling | lost |\n");
    std::printf("|---:|---|---|---|---:|---:|---:|---:|---:|---:|---:|---:|\n");
  }
  std::FILE* js = opt.json.empty() ? nullptr : std::fopen(opt.json.c_str(), "w");
  if (!opt.json.empty() && js == nullptr) die("cannot write " + opt.json);
  if (js) std::fprintf(js, "{\"aead\":\"%s\",\"tsc_hz\":%.0f,\"peers\":%u,\"k\":%u,\"recycle\":%u,\"reps\":%d,\"eal\":\"%s\",\"rows\":[\n",
                       w.gw.aead_arch(), hz, opt.peers, opt.k, opt.recycle, opt.reps, opt.eal_line().c_str());
  bool any_lost = false;
  std::uint64_t calls = 0, dropped = 0;
  for (std::size_t i = 0; i < results.size(); ++i) {
    const Result& r = results[i];
    const double cyc = median(r.dp_cyc), ccyc = median(r.ceil_cyc), ratio = median(r.ratio);
    const double mpps = hz / cyc / 1e6, cmpps = hz / ccyc / 1e6;
    const double gbps = mpps * r.size * 8 / 1000;
    const std::string packets =
        r.mode == Mode::kCold ? std::to_string(opt.k) + " cold" : std::to_string(opt.recycle) + " recycled";
    std::string path = opt.exit_flows ? "exit, " + std::to_string(opt.exit_flows) + " flows" : "plain";
    if (opt.ipv6) path += " IPv6";
    if (opt.policy) path += " + policy";
    std::printf("| %u | %s | %s | %s | %u | %.2f | %.2f | %.0f | %.2f | %.0f | %.1f%% | %llu |\n", opt.peers,
                path.c_str(), packets.c_str(), r.dir.c_str(), r.size, mpps, gbps, cyc, cmpps, ccyc, 100 * ratio,
                static_cast<unsigned long long>(r.lost));
    calls += r.calls;
    dropped += r.dropped_calls;
    if (r.lost) {
      any_lost = true;
      std::fprintf(stderr, "bench_dataplane: %s %s %u B: %llu packets lost; counters: %s\n", mode_name(r.mode),
                   r.dir.c_str(), r.size, static_cast<unsigned long long>(r.lost), r.drops.c_str());
    }
    if (js)
      std::fprintf(js,
                   "{\"peers\":%u,\"mode\":\"%s\",\"direction\":\"%s\",\"size\":%u,\"mpps\":%.4f,\"gbps\":%.4f,"
                   "\"cycles\":%.1f,\"ceiling_mpps\":%.4f,\"ceiling_cycles\":%.1f,\"ratio\":%.4f,\"lost\":%llu}%s\n",
                   opt.peers, mode_name(r.mode), r.dir.c_str(), r.size, mpps, gbps, cyc, cmpps, ccyc, ratio,
                   static_cast<unsigned long long>(r.lost), i + 1 < results.size() ? "," : "");
  }
  if (js) {
    std::fprintf(js, "],\"calls\":%llu,\"interrupted_calls\":%llu}\n", static_cast<unsigned long long>(calls),
                 static_cast<unsigned long long>(dropped));
    std::fclose(js);
  }
  // What the gateway did besides the measured packets (keepalives and
  // handshakes its timers start fall inside the timed calls).
  std::uint64_t data_sent = 0;
  for (const Result& r : results)
    if (r.dir == "encrypt") data_sent += static_cast<std::uint64_t>(opt.k) * static_cast<std::uint64_t>(opt.reps) - r.lost;
  const dp::LcoreCounters after = w.gw.totals();
  std::fprintf(stderr,
               "bench_dataplane: during the measurement the gateway sent %llu keepalives and received %llu handshakes "
               "beyond the measured packets\n",
               static_cast<unsigned long long>(after.encrypted - before.encrypted - data_sent),
               static_cast<unsigned long long>(after.handshakes_in - before.handshakes_in));
  std::fprintf(stderr, "bench_dataplane: %llu of %llu run_once() calls left out as interrupted (> %.0fx the median)\n",
               static_cast<unsigned long long>(dropped), static_cast<unsigned long long>(calls), kOutlier);
  std::fflush(stdout);
  std::fprintf(stderr,
               "bench_dataplane: aead %s, tsc %.3f GHz, K=%u, recycled ring %u, reps=%d, peer-side rekeys discarded %llu\n",
               w.gw.aead_arch(), hz / 1e9, opt.k, opt.recycle, opt.reps,
               static_cast<unsigned long long>(w.host.discarded));
  // The gateway and its ports are left to process exit (the EAL is not
  // torn down: cheaper, and nothing is persisted with --no-shconf).
  std::_Exit(any_lost ? 1 : 0);
}
