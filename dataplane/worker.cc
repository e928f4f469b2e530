// The run-to-completion loop of one worker lcore; worker.h lists its phases.
#include "dataplane/worker.h"

#include "netmap/events.h"
#include "netmap/segment.h"

#include "dataplane/net/icmp.h"
#include "dataplane/net/ipv4.h"
#include "dataplane/net/ipv6.h"
#include "dataplane/net/ndp.h"
#include "dataplane/net/tcp_mss.h"
#include "dataplane/net/udp.h"

#include <rte_arp.h>
#include <rte_byteorder.h>
#include <rte_cycles.h>
#include <rte_errno.h>
#include <rte_ethdev.h>
#include <rte_icmp.h>
#include <rte_ip.h>
#include <rte_lcore.h>
#include <rte_lpm.h>
#include <rte_lpm6.h>
#include <rte_mbuf.h>
#include <rte_rcu_qsbr.h>
#include <rte_ring.h>
#include <rte_udp.h>

#include <arpa/inet.h>
#include <time.h>

#include <algorithm>
#include <cstdio>
#include <cstring>
#include <sstream>

namespace moongate::dp {

namespace {

constexpr std::uint16_t kEthLen = sizeof(rte_ether_hdr);
constexpr std::uint16_t kIpLen = sizeof(rte_ipv4_hdr);
constexpr std::uint16_t kUdpLen = sizeof(rte_udp_hdr);
constexpr std::uint64_t kArpRetryNs = 1'000'000'000;
constexpr std::uint32_t kMaxIdleSleepUs = 200;
constexpr std::uint64_t kClockResync = 10'000'000;  // ns between clock reads (update_now)
// Messages per AEAD call in encrypt_flush when a batch goes to many peers:
// the peers' lines read after the AEAD are asked for one chunk at a time,
// just before the chunk's call, so that their misses overlap the AEAD's
// work instead of waiting for fill buffers ahead of it (docs/perf.md, "The
// encrypt path's second line during the AEAD"). The AEAD's cost per
// message does not depend on the burst (bench_aead --bursts 8,16,32), but
// each call has its own overhead: a batch to a few peers (a few lines)
// goes in one call.
constexpr std::uint16_t kAeadChunk = 8;
// Reading ahead (see "Reading ahead" below): a full burst whose frames
// average at least kAheadMinFrame bytes has the port's next burst read
// while it is processed, and its AEAD runs kAheadChunk messages per call,
// each call preceded by asking for kAheadChunk of the next burst's packets.
// Four messages of a few hundred bytes take the AEAD well over an L3 miss;
// for small packets the extra calls cost more than the lines save
// (docs/perf.md, "Reading one burst ahead").
constexpr std::uint32_t kAheadMinFrame = 256;
constexpr std::uint16_t kAheadChunk = 4;

std::uint64_t clock_ns(clockid_t id) {
  timespec ts{};
  clock_gettime(id, &ts);
  return static_cast<std::uint64_t>(ts.tv_sec) * 1'000'000'000ULL +
         static_cast<std::uint64_t>(ts.tv_nsec);
}

// The outer source of a WireGuard message in a frame as received on the WAN
// (already validated there): IPv4 or IPv6 source, UDP source port. Hand-offs
// carry only the message's offset; the owner reads the rest from the frame.
wg::Endpoint outer_source(rte_mbuf* m, std::uint16_t wg_off) {
  const auto* p = rte_pktmbuf_mtod(m, const std::uint8_t*);
  const auto port = static_cast<std::uint16_t>((p[wg_off - 8] << 8) | p[wg_off - 7]);
  const auto* eth = reinterpret_cast<const rte_ether_hdr*>(p);
  if (eth->ether_type == rte_cpu_to_be_16(RTE_ETHER_TYPE_IPV6)) return wg::Endpoint::v6(p + kEthLen + 8, port);
  return wg::Endpoint::v4(p + kEthLen + 12, port);
}

// outer_source() into an existing Endpoint, field by field. Built in a
// temporary and copied, as `e = outer_source(...)`, the copy's wide loads
// span the temporary's narrow stores and wait on store forwarding (~13
// cycles per packet on the decrypt path, perf annotate); here each field is
// one store that the later narrow reads (Endpoint ==) forward from.
inline void outer_source_into(wg::Endpoint& e, const rte_mbuf* m, std::uint16_t wg_off) noexcept {
  const auto* p = rte_pktmbuf_mtod(m, const std::uint8_t*);
  e.port = static_cast<std::uint16_t>((p[wg_off - 8] << 8) | p[wg_off - 7]);
  const auto* eth = reinterpret_cast<const rte_ether_hdr*>(p);
  if (eth->ether_type == rte_cpu_to_be_16(RTE_ETHER_TYPE_IPV6)) {
    e.family = 6;
    std::memcpy(e.addr, p + kEthLen + 8, 16);
  } else {
    e.family = 4;
    std::memcpy(e.addr, p + kEthLen + 12, 4);
    std::memset(e.addr + 4, 0, sizeof e.addr - 4);  // as Endpoint::v4 leaves them
  }
}

// The one's-complement sum of a 20-byte IPv4 header, checksum field
// included, is 0xffff when the checksum is right (RFC 1071). Five 32-bit
// words summed in 64 bits, then folded: a dozen instructions, inline.
inline bool ipv4_header20_sums_ok(const std::uint8_t* p) noexcept {
  std::uint64_t sum = 0;
  for (int i = 0; i < 5; ++i) {
    std::uint32_t w;
    std::memcpy(&w, p + 4 * i, 4);
    sum += w;
  }
  sum = (sum & 0xffffffffu) + (sum >> 32);
  sum = (sum & 0xffffffffu) + (sum >> 32);
  sum = (sum & 0xffffu) + (sum >> 16);
  sum = (sum & 0xffffu) + (sum >> 16);
  return sum == 0xffffu;
}

// The header checksum of the outer IPv4 header send_outer() writes (version
// 4, IHL 5, TOS 0, ID 0, DF, TTL 64, UDP), from the values rather than from
// memory: summing the header just stored would wait on store forwarding
// (the wide loads span several narrow stores), which cost ~20 cycles per
// packet. Arguments in network order, as in the header; so is the result.
inline std::uint16_t outer_ipv4_checksum(std::uint16_t total_len, std::uint32_t src,
                                         std::uint32_t dst) noexcept {
  constexpr std::uint32_t kFixed = 0x4500 + 0x4000 + ((64u << 8) | IPPROTO_UDP);  // words 0, 3, 4
  const std::uint32_t s = rte_be_to_cpu_32(src), d = rte_be_to_cpu_32(dst);
  std::uint32_t sum = kFixed + rte_be_to_cpu_16(total_len);
  sum += (s >> 16) + (s & 0xffff) + (d >> 16) + (d & 0xffff);
  sum = (sum & 0xffff) + (sum >> 16);
  sum = (sum & 0xffff) + (sum >> 16);
  return rte_cpu_to_be_16(static_cast<std::uint16_t>(~sum));
}

// check_ipv4's fast path fills only what the forwarding path reads; the
// NAT reads the rest of the header (protocol, addresses, fragment fields).
void complete_ipv4_header(const std::uint8_t* p, net::Ipv4Header& h) noexcept {
  h.protocol = p[9];
  const auto frag = static_cast<std::uint16_t>((p[6] << 8) | p[7]);
  h.dont_fragment = (frag & 0x4000) != 0;
  h.more_fragments = (frag & 0x2000) != 0;
  h.fragment_offset = static_cast<std::uint16_t>((frag & 0x1fff) * 8);
  h.ttl = p[8];
  std::memcpy(h.src.data(), p + net::kIpv4SrcOffset, 4);
  std::memcpy(h.dst.data(), p + net::kIpv4DstOffset, 4);
}

// Recomputes the IPv4 header checksum (20-60 bytes: cheap next to crypto).
void ipv4_fix_checksum(rte_ipv4_hdr* ip) {
  ip->hdr_checksum = 0;
  ip->hdr_checksum = rte_ipv4_cksum(ip);
}

}  // namespace

Worker::Worker(std::uint16_t id, Shared& shared)
    : id_(id), shared_(shared), settings_(shared.settings), pool_(shared.pool) {}

Worker::~Worker() {
  for (PeerCtx* p : owned_)
    for (std::uint16_t i = 0; i < p->staged_count; ++i)
      rte_pktmbuf_free(p->staged[(p->staged_head + i) % kMaxStaged]);
  for (std::uint16_t i = 0; i < hs_count_; ++i)
    rte_pktmbuf_free(hs_items_[(hs_head_ + i) % kHandshakeQueue].m);
  for (std::uint16_t i = 0; i < rx_count_; ++i) rte_pktmbuf_free(rx_items_[i].m);
  for (auto& t : txbufs_) rte_pktmbuf_free_bulk(t.pkts, t.count);
  for (auto& b : handoff_out_) rte_pktmbuf_free_bulk(b.pkts, b.count);
  for (auto& a : ahead_) rte_pktmbuf_free_bulk(a.pkts, a.n);
}

void Worker::update_now() noexcept {
  // Once per iteration, so it is one rdtsc and a multiply: the monotonic
  // clock is read every kClockResync and the TSC interpolates in between
  // (the calibration error of rte_get_tsc_hz() then stays in the
  // microseconds, far below the 4 ms timer tick). Wall time (TAI64N stamps,
  // last-handshake times) is the monotonic time plus an offset taken at the
  // same read, which follows clock steps closely enough for both uses.
  // now_.mono never goes backwards: a resync that lands behind the
  // interpolation keeps the previous value.
  const std::uint64_t tsc = rte_rdtsc();
  wg::Nanos mono;
  if (resync_tsc_ == 0 || tsc - sync_tsc_ >= resync_tsc_) {
    if (resync_tsc_ == 0) {
      const std::uint64_t hz = std::max<std::uint64_t>(rte_get_tsc_hz(), 1);
      resync_tsc_ = std::max<std::uint64_t>(hz / (wg::kSecond / kClockResync), 1);
      ns_per_tsc_ = (static_cast<std::uint64_t>(wg::kSecond) << 32) / hz;
    }
    sync_tsc_ = tsc;
    sync_mono_ = mono = clock_ns(CLOCK_MONOTONIC);
    wall_offset_ = clock_ns(CLOCK_REALTIME) - mono;
  } else {
    // tsc - sync_tsc_ < resync_tsc_ = hz / 100, so the product stays below
    // 10^7 * 2^32 < 2^56 whatever the TSC rate.
    mono = sync_mono_ + (((tsc - sync_tsc_) * ns_per_tsc_) >> 32);
  }
  now_.mono = std::max(mono, now_.mono);
  now_.wall = now_.mono + wall_offset_;
}

std::string Worker::init() {
  update_now();
  wheel_ = std::make_unique<TimerWheel>(kTimerTick, kTimerSlots, now_.mono);
  const int socket = static_cast<int>(rte_socket_id());
  try {
    aead_ = std::make_unique<crypto::AeadBurst>();
  } catch (const std::exception& e) {
    return e.what();
  }
  device_ = std::make_unique<wg::Device>(settings_.max_peers, *this);
  device_->set_private_key(settings_.private_key);
  // Our receiver indices name this worker, so any worker can route a
  // response or data message to us without a shared table.
  if (!device_->set_index_tag(kWorkerTagMask, worker_tag(id_)))
    throw std::runtime_error("max_peers " + std::to_string(settings_.max_peers) +
                             " is too large: receiver indices need their top " +
                             std::to_string(kWorkerTagBits) + " bits for the worker");

  txbufs_.resize(settings_.ports.size());
  ahead_.resize(settings_.ports.size());
  handoff_out_.resize(shared_.workers());
  for (std::size_t i = 0; i < settings_.ports.size(); ++i) {
    auto nt = std::make_unique<NeighborTable>();
    const std::string hname = "mg_nb" + std::to_string(id_) + "_" + std::to_string(i);
    if (!nt->init(hname.c_str(), 4096, socket))
      return "neighbour table: " + std::string(rte_strerror(rte_errno));
    neighbors_.push_back(std::move(nt));
    auto nt6 = std::make_unique<NeighborTable>();
    const std::string hname6 = "mg_nb6" + std::to_string(id_) + "_" + std::to_string(i);
    if (!nt6->init(hname6.c_str(), 4096, socket, 16))
      return "neighbour table (IPv6): " + std::string(rte_strerror(rte_errno));
    neighbors6_.push_back(std::move(nt6));
  }
  wan_ = &port(shared_.wan);
  wan_neigh_ = neighbors_[shared_.wan].get();
  if (settings_.nat) {
    try {
      nat_ = std::make_unique<nat::Nat44>(settings_.nat_config, id_, now_.mono);
    } catch (const std::exception& e) {
      return std::string("nat: ") + e.what();
    }
    for (const net::Ipv4Address& a : settings_.nat_config.pool) {
      std::uint32_t v = 0;
      std::memcpy(&v, a.data(), 4);
      nat_pool_.push_back(v);
    }
  }
  // With a policy, or when the netmap may bring one (--control): the flow
  // table and the counters exist from the start, so that a policy arriving
  // later allocates nothing on this lcore (load_routing).
  if (settings_.policy || settings_.policy_from_netmap) {
    try {
      const std::uint64_t seed = (settings_.nat_config.seed ^ 0x5bd1e9955bd1e995ULL) + id_;
      established_ = std::make_unique<policy::Established>(settings_.policy_flows, settings_.policy_timeout_ns,
                                                           seed, now_.mono);
      established6_ = std::make_unique<policy::Established6>(settings_.policy_flows, settings_.policy_timeout_ns,
                                                             seed ^ 0x9e3779b97f4a7c15ULL, now_.mono);
      rule_counters_ = std::make_unique<policy::RuleCounters>(settings_.policy_compiled.rule_count,
                                                              settings_.policy_rule_capacity);
    } catch (const std::exception& e) {
      return std::string("policy: ") + e.what();
    }
  }
  return {};
}

wg::Peer* Worker::add_peer(PeerCtx& ctx, const PeerSettings& ps) {
  wg::Peer* peer = device_->add_peer(ps.public_key, ps.has_static_static ? &ps.static_static : nullptr);
  if (peer == nullptr) return nullptr;
  ctx.owner = id_;
  ctx.peer = peer;
  shared_.refs[ctx.id].peer = peer;  // the LAN path's copy (shared.h, PeerRef)
  peer->user = &ctx;
  peer->host_id = ctx.id;
  if (ps.has_psk) device_->set_preshared_key(*peer, ps.preshared_key);
  peer->endpoint = ps.endpoint;
  owned_.push_back(&ctx);
  owned_count_.store(owned_.size(), std::memory_order_relaxed);
  device_->set_persistent_keepalive(*peer, ps.persistent_keepalive, now_);
  rearm(*peer);
  return peer;
}

// --- packet helpers ----------------------------------------------------------

void Worker::drop(rte_mbuf* m, DpDrop reason) noexcept {
  counters_.drop(reason);
  rte_pktmbuf_free(m);
}

// Validates the IPv4 header at p (len bytes up to the end of the frame);
// drops and counts m when it is not sound. `nic_checked`: p is the header
// the NIC received (not a decrypted inner one), so a checksum the PMD
// reports good (RTE_MBUF_F_RX_IP_CKSUM_GOOD) need not be summed again.
//
// The common header (20 bytes, no options) is checked inline here with the
// same rules as net::parse_ipv4; only then are header_len, total_len and
// dont_fragment filled (all the callers read). Anything else, including
// every failure, goes through parse_ipv4, which decides how it is counted.
// Inline (with the callers below, all in this file): it runs two or three
// times per forwarded packet.
[[gnu::always_inline]] inline bool Worker::check_ipv4(rte_mbuf* m, const std::uint8_t* p, std::size_t len,
                                                      net::Ipv4Header& h, bool nic_checked) noexcept {
  if (len >= net::kIpv4HeaderLen && p[0] == 0x45) {
    const auto total = static_cast<std::uint16_t>((p[2] << 8) | p[3]);
    if (total >= net::kIpv4HeaderLen && total <= len &&
        ((nic_checked && (m->ol_flags & RTE_MBUF_F_RX_IP_CKSUM_MASK) == RTE_MBUF_F_RX_IP_CKSUM_GOOD) ||
         ipv4_header20_sums_ok(p))) {
      h.header_len = net::kIpv4HeaderLen;
      h.total_len = total;
      h.dont_fragment = (p[6] & 0x40) != 0;
      return true;
    }
  }
  return check_ipv4_slow(m, p, len, h);
}

bool Worker::check_ipv4_slow(rte_mbuf* m, const std::uint8_t* p, std::size_t len, net::Ipv4Header& h) noexcept {
  switch (net::parse_ipv4(p, len, h)) {
    case net::Ipv4Status::kOk:
      return true;
    case net::Ipv4Status::kBadChecksum:  // RFC 1812 5.2.2: routers verify it
      drop(m, DpDrop::kBadIpChecksum);
      return false;
    default:
      drop(m, DpDrop::kMalformed);
      return false;
  }
}

// Inline into the encrypt loop (and the handshake path): once per packet.
[[gnu::always_inline]] inline bool Worker::send_outer(rte_mbuf* m, const wg::Endpoint& to) {
  const std::uint16_t wg_len = rte_pktmbuf_data_len(m);
  if (to.family == 4 && !wan_->v4.empty()) {
    auto* ip = reinterpret_cast<rte_ipv4_hdr*>(rte_pktmbuf_prepend(m, kIpLen + kUdpLen));
    if (ip == nullptr) {
      drop(m, DpDrop::kMalformed);
      return false;
    }
    std::uint32_t dst = 0;
    std::memcpy(&dst, to.addr, 4);
    ip->version_ihl = RTE_IPV4_VHL_DEF;
    ip->type_of_service = 0;
    ip->total_length = rte_cpu_to_be_16(static_cast<std::uint16_t>(kIpLen + kUdpLen + wg_len));
    ip->packet_id = 0;
    ip->fragment_offset = rte_cpu_to_be_16(RTE_IPV4_HDR_DF_FLAG);
    ip->time_to_live = 64;
    ip->next_proto_id = IPPROTO_UDP;
    ip->src_addr = wan_->primary_v4();
    ip->dst_addr = dst;
    ip->hdr_checksum = outer_ipv4_checksum(ip->total_length, ip->src_addr, dst);
    auto* udp = reinterpret_cast<rte_udp_hdr*>(ip + 1);
    udp->src_port = rte_cpu_to_be_16(routing_->listen_port);
    udp->dst_port = rte_cpu_to_be_16(to.port);
    udp->dgram_len = rte_cpu_to_be_16(static_cast<std::uint16_t>(kUdpLen + wg_len));
    udp->dgram_cksum = 0;  // optional over IPv4; the AEAD protects the payload
    send_ipv4_inline(*wan_, *wan_neigh_, m, wan_->next_hop(dst));
    return true;
  }
  if (to.family == 6 && !wan_->v6.empty()) {
    constexpr std::uint16_t kHdr = net::kIpv6HeaderLen + kUdpLen;
    auto* p = reinterpret_cast<std::uint8_t*>(rte_pktmbuf_prepend(m, kHdr));
    if (p == nullptr) {
      drop(m, DpDrop::kMalformed);
      return false;
    }
    net::Ipv6Params ip6;
    std::memcpy(ip6.src.data(), wan_->v6.front().addr.data(), 16);
    std::memcpy(ip6.dst.data(), to.addr, 16);
    ip6.next_header = IPPROTO_UDP;
    ip6.payload_len = static_cast<std::uint16_t>(kUdpLen + wg_len);
    net::write_ipv6_header(p, net::kIpv6HeaderLen, ip6);
    // Mandatory over IPv6 (RFC 8200 8.1): computed in software for now.
    net::write_udp_v6(p + net::kIpv6HeaderLen, kUdpLen + wg_len, ip6.src, ip6.dst, routing_->listen_port,
                      to.port, wg_len, net::UdpChecksum::kFull);
    const std::uint8_t* next_hop = wan_->on_link_v6(to.addr) ? to.addr
                                   : wan_->has_gateway_v6     ? wan_->gateway_v6.data()
                                                              : nullptr;
    if (next_hop == nullptr) {
      drop(m, DpDrop::kNoUnderlay);
      return false;
    }
    send_ipv6(*wan_, *neighbors6_[shared_.wan], m, next_hop);
    return true;
  }
  drop(m, DpDrop::kNoUnderlay);
  return false;
}

[[gnu::always_inline]] inline void Worker::tx(Port& port, rte_mbuf* m) {
  TxBuffer& b = txbufs_[port_index(port)];
  if (b.count == std::size(b.pkts)) tx_flush();
  b.pkts[b.count++] = m;
}

void Worker::tx_flush() {
  for (std::size_t i = 0; i < txbufs_.size(); ++i) {
    TxBuffer& b = txbufs_[i];
    if (b.count == 0) continue;
    const Port& p = settings_.ports[i];
    const std::uint16_t sent = rte_eth_tx_burst(p.id, id_, b.pkts, b.count);
    if (p.id < 8) counters_.tx_packets[p.id] += sent;
    for (std::uint16_t k = sent; k < b.count; ++k) {
      drop(b.pkts[k], DpDrop::kTxFull);
    }
    b.count = 0;
  }
}

void Worker::send_arp_request(Port& port, std::uint32_t target) {
  rte_mbuf* m = rte_pktmbuf_alloc(pool_);
  if (m == nullptr) {
    counters_.drop(DpDrop::kNoMbuf);
    return;
  }
  auto* eth = reinterpret_cast<rte_ether_hdr*>(
      rte_pktmbuf_append(m, kEthLen + sizeof(rte_arp_hdr)));
  std::memset(&eth->dst_addr, 0xff, RTE_ETHER_ADDR_LEN);
  rte_ether_addr_copy(&port.mac, &eth->src_addr);
  eth->ether_type = rte_cpu_to_be_16(RTE_ETHER_TYPE_ARP);
  auto* arp = reinterpret_cast<rte_arp_hdr*>(eth + 1);
  arp->arp_hardware = rte_cpu_to_be_16(RTE_ARP_HRD_ETHER);
  arp->arp_protocol = rte_cpu_to_be_16(RTE_ETHER_TYPE_IPV4);
  arp->arp_hlen = RTE_ETHER_ADDR_LEN;
  arp->arp_plen = 4;
  arp->arp_opcode = rte_cpu_to_be_16(RTE_ARP_OP_REQUEST);
  rte_ether_addr_copy(&port.mac, &arp->arp_data.arp_sha);
  arp->arp_data.arp_sip = port.primary_v4();
  std::memset(&arp->arp_data.arp_tha, 0, RTE_ETHER_ADDR_LEN);
  arp->arp_data.arp_tip = target;
  tx(port, m);
}

// m starts at an IP header; prepends Ethernet and sends it to the
// neighbour next_hop (an address of the table's family), or holds it (one
// per neighbour) while the address resolves. True when the caller should
// send a solicitation now (ARP request / NS): the neighbour is unresolved
// and was not asked in the last second.
// Inline into the packet paths for a resolved neighbour; the rest is
// send_to_neighbor_slow.
[[gnu::always_inline]] inline bool Worker::send_to_neighbor(Port& port, NeighborTable& neigh, rte_mbuf* m,
                                                            const void* next_hop, std::uint16_t ether_type) {
  auto* eth = reinterpret_cast<rte_ether_hdr*>(rte_pktmbuf_prepend(m, kEthLen));
  if (eth == nullptr) {
    drop(m, DpDrop::kMalformed);
    return false;
  }
  rte_ether_addr_copy(&port.mac, &eth->src_addr);
  eth->ether_type = rte_cpu_to_be_16(ether_type);
  NeighborTable::Entry* e = neigh.get(next_hop);
  if (e != nullptr && e->resolved) [[likely]] {
    rte_ether_addr_copy(&e->mac, &eth->dst_addr);
    tx(port, m);
    return false;
  }
  return send_to_neighbor_slow(e, m);
}

bool Worker::send_to_neighbor_slow(NeighborTable::Entry* e, rte_mbuf* m) {
  if (e == nullptr) {
    drop(m, DpDrop::kNoLanRoute);
    return false;
  }
  if (e->pending != nullptr) drop(e->pending, DpDrop::kNeighborPending);
  e->pending = m;
  if (e->requested_tsc != 0 && now_.mono - e->requested_tsc < kArpRetryNs) return false;
  e->requested_tsc = now_.mono;
  return true;
}

// An answer (ARP, NA, or a solicitation carrying its sender's address)
// taught us mac for a neighbour: record it and send what waited for it.
void Worker::learn_neighbor(Port& port, NeighborTable& neigh, const void* addr,
                             const rte_ether_addr& mac) {
  NeighborTable::Entry* e = neigh.get(addr);
  if (e == nullptr) return;
  e->mac = mac;
  e->resolved = true;
  if (rte_mbuf* held = e->pending) {
    e->pending = nullptr;
    rte_ether_addr_copy(&e->mac, &rte_pktmbuf_mtod(held, rte_ether_hdr*)->dst_addr);
    tx(port, held);
  }
}

[[gnu::always_inline]] inline void Worker::send_ipv4_inline(Port& port, NeighborTable& neigh, rte_mbuf* m,
                                                             std::uint32_t next_hop) {
  if (next_hop == 0) {
    drop(m, DpDrop::kNoLanRoute);
    return;
  }
  if (send_to_neighbor(port, neigh, m, &next_hop, RTE_ETHER_TYPE_IPV4))
    send_arp_request(port, next_hop);
}

void Worker::send_ipv4(Port& port, NeighborTable& neigh, rte_mbuf* m, std::uint32_t next_hop) {
  send_ipv4_inline(port, neigh, m, next_hop);
}

// learn_only: a copy another worker received (replicate_neighbor_frame);
// it teaches this worker's table, the receiver already answered.
void Worker::handle_arp(Port& port, NeighborTable& neigh, rte_mbuf* m, bool learn_only) {
  if (rte_pktmbuf_data_len(m) < kEthLen + sizeof(rte_arp_hdr)) {
    drop(m, DpDrop::kMalformed);
    return;
  }
  auto* eth = rte_pktmbuf_mtod(m, rte_ether_hdr*);
  auto* arp = reinterpret_cast<rte_arp_hdr*>(eth + 1);
  if (arp->arp_hardware != rte_cpu_to_be_16(RTE_ARP_HRD_ETHER) ||
      arp->arp_protocol != rte_cpu_to_be_16(RTE_ETHER_TYPE_IPV4) ||
      arp->arp_hlen != RTE_ETHER_ADDR_LEN || arp->arp_plen != 4) {
    drop(m, DpDrop::kMalformed);
    return;
  }
  const std::uint32_t sip = arp->arp_data.arp_sip;
  const std::uint32_t tip = arp->arp_data.arp_tip;
  // Learn the sender if it is on one of our subnets (requests and replies
  // alike), and release what waited for it.
  bool on_link = false;
  for (const auto& a : port.v4) on_link |= a.contains(sip) && sip != a.addr;
  if (on_link) {
    if (!learn_only) replicate_neighbor_frame(port_index(port), m);
    learn_neighbor(port, neigh, &sip, arp->arp_data.arp_sha);
  }
  if (!learn_only && arp->arp_opcode == rte_cpu_to_be_16(RTE_ARP_OP_REQUEST) && port.owns(tip)) {
    // Turn the request into the reply in place.
    arp->arp_opcode = rte_cpu_to_be_16(RTE_ARP_OP_REPLY);
    arp->arp_data.arp_tha = arp->arp_data.arp_sha;
    arp->arp_data.arp_tip = sip;
    rte_ether_addr_copy(&port.mac, &arp->arp_data.arp_sha);
    arp->arp_data.arp_sip = tip;
    eth->dst_addr = eth->src_addr;
    rte_ether_addr_copy(&port.mac, &eth->src_addr);
    ++counters_.arp_replies;
    tx(port, m);
    return;
  }
  // An answer to the kernel's own request (exception path): its neighbour
  // cache needs it too.
  if (!learn_only && port.kernel != kNoPort && arp->arp_opcode == rte_cpu_to_be_16(RTE_ARP_OP_REPLY) &&
      port.owns(tip)) {
    to_kernel(port, m);
    return;
  }
  rte_pktmbuf_free(m);
}

// The exception path (kernel_interface.h): the port's TAP, if it has one.
void Worker::to_kernel(Port& port, rte_mbuf* m) {
  if (port.kernel == kNoPort) {
    drop(m, DpDrop::kLocalUnhandled);
    return;
  }
  ++counters_.to_kernel;
  tx(this->port(port.kernel), m);
}

// What the kernel sends out of a TAP leaves through its port as it is.
void Worker::poll_kernel(Port& tap) {
  rte_mbuf* pkts[kBurst];
  const std::uint16_t n = rte_eth_rx_burst(tap.id, id_, pkts, kBurst);
  if (n == 0) return;
  if (tap.id < 8) counters_.rx_packets[tap.id] += n;
  Port& out = port(tap.parent);
  for (std::uint16_t i = 0; i < n; ++i) tx(out, pkts[i]);
}

// ARP and ICMP echo addressed to the appliance. True when m was consumed.
bool Worker::handle_local(Port& port, NeighborTable& neigh, rte_mbuf* m) {
  auto* eth = rte_pktmbuf_mtod(m, rte_ether_hdr*);
  if (eth->ether_type == rte_cpu_to_be_16(RTE_ETHER_TYPE_ARP)) {
    handle_arp(port, neigh, m, false);
    return true;
  }
  auto* ip = reinterpret_cast<rte_ipv4_hdr*>(eth + 1);
  if (!port.owns(ip->dst_addr)) return false;
  const std::uint16_t ihl = static_cast<std::uint16_t>(rte_ipv4_hdr_len(ip));
  const std::uint16_t total = rte_be_to_cpu_16(ip->total_length);
  const bool fragment = (rte_be_to_cpu_16(ip->fragment_offset) &
                         (RTE_IPV4_HDR_MF_FLAG | RTE_IPV4_HDR_OFFSET_MASK)) != 0;
  if (!fragment && ip->next_proto_id == IPPROTO_ICMP && total >= ihl + sizeof(rte_icmp_hdr) &&
      rte_pktmbuf_data_len(m) >= kEthLen + total) {
    auto* icmp = reinterpret_cast<rte_icmp_hdr*>(reinterpret_cast<std::uint8_t*>(ip) + ihl);
    if (icmp->icmp_type == RTE_IP_ICMP_ECHO_REQUEST && icmp->icmp_code == 0) {
      // Echo reply in place: swap addresses, type 8 -> 0 (checksum +8<<8).
      icmp->icmp_type = RTE_IP_ICMP_ECHO_REPLY;
      std::uint32_t sum = static_cast<std::uint16_t>(~rte_be_to_cpu_16(icmp->icmp_cksum)) +
                          static_cast<std::uint32_t>(~(RTE_IP_ICMP_ECHO_REQUEST << 8) & 0xffff) +
                          (RTE_IP_ICMP_ECHO_REPLY << 8);
      sum = (sum & 0xffff) + (sum >> 16);
      sum = (sum & 0xffff) + (sum >> 16);
      icmp->icmp_cksum = rte_cpu_to_be_16(static_cast<std::uint16_t>(~sum));
      const std::uint32_t from = ip->src_addr;
      ip->src_addr = ip->dst_addr;
      ip->dst_addr = from;
      ip->time_to_live = 64;
      ipv4_fix_checksum(ip);
      std::swap(eth->src_addr, eth->dst_addr);
      ++counters_.icmp_echo_replies;
      tx(port, m);
      return true;
    }
  }
  return false;
}

// --- WAN: decrypt path ---------------------------------------------------------

void Worker::poll_wan() {
  rte_mbuf* pkts[kBurst];
  const std::uint16_t n = receive(*wan_, pkts, false);
  if (n == 0) return;
  if (nat_) nat_prefetch(pkts, n);
  std::uint32_t bytes = 0;
  for (std::uint16_t i = 0; i < n; ++i) {
    rte_mbuf* m = pkts[i];
    const std::uint16_t len = rte_pktmbuf_data_len(m);
    bytes += len;
    if (len < kEthLen) {
      drop(m, DpDrop::kMalformed);
      continue;
    }
    auto* eth = rte_pktmbuf_mtod(m, rte_ether_hdr*);
    if (eth->ether_type == rte_cpu_to_be_16(RTE_ETHER_TYPE_ARP)) {
      handle_arp(*wan_, *wan_neigh_, m, false);
      continue;
    }
    if (eth->ether_type == rte_cpu_to_be_16(RTE_ETHER_TYPE_IPV6)) {
      wan_v6(m);
      continue;
    }
    if (eth->ether_type != rte_cpu_to_be_16(RTE_ETHER_TYPE_IPV4)) {
      drop(m, DpDrop::kNotIp);
      continue;
    }
    auto* ip = reinterpret_cast<rte_ipv4_hdr*>(eth + 1);
    net::Ipv4Header h;
    if (!check_ipv4(m, reinterpret_cast<const std::uint8_t*>(ip), len - kEthLen, h, true)) continue;
    const std::uint16_t ihl = h.header_len;
    const std::uint16_t total = h.total_len;
    if (!wan_->owns(ip->dst_addr) && !nat_pool(ip->dst_addr)) {
      drop(m, DpDrop::kNotForUs);
      continue;
    }
    // NAT return traffic (nat_in) after ARP, echo to us and WireGuard, and
    // before the exception path.
    if (ip->next_proto_id != IPPROTO_UDP) {
      if (!handle_local(*wan_, *wan_neigh_, m) && !nat_in(m, h, false)) to_kernel(*wan_, m);
      continue;
    }
    if ((rte_be_to_cpu_16(ip->fragment_offset) &
         (RTE_IPV4_HDR_MF_FLAG | RTE_IPV4_HDR_OFFSET_MASK)) != 0) {
      if (!nat_in(m, h, false)) drop(m, DpDrop::kUnsupported);  // the NAT counts its own
      continue;
    }
    auto* udp = reinterpret_cast<rte_udp_hdr*>(reinterpret_cast<std::uint8_t*>(ip) + ihl);
    const std::uint16_t udp_len = total >= ihl + kUdpLen ? rte_be_to_cpu_16(udp->dgram_len) : 0;
    if (udp_len < kUdpLen || udp_len > total - ihl) {
      drop(m, DpDrop::kMalformed);
      continue;
    }
    if (settings_.moon_port != 0 && udp->dst_port == rte_cpu_to_be_16(settings_.moon_port) &&
        wan_->owns(ip->dst_addr)) {
      moon_in(m);
      continue;
    }
    if (udp->dst_port != rte_cpu_to_be_16(routing_->listen_port)) {
      if (!nat_in(m, h, false)) to_kernel(*wan_, m);
      continue;
    }
    wireguard_in(m, static_cast<std::uint16_t>(kEthLen + ihl + kUdpLen),
                 static_cast<std::uint16_t>(udp_len - kUdpLen), false);
  }
  read_ahead(*wan_, false, n, bytes);
  flush_rx();
}

// IPv6 on the WAN: the underlay for peers with IPv6 endpoints. ND and
// ICMPv6 echo answered here, UDP to the listen port is WireGuard, the rest
// addressed to us goes to the kernel (exception path).
void Worker::wan_v6(rte_mbuf* m) {
  auto* p = rte_pktmbuf_mtod_offset(m, std::uint8_t*, kEthLen);
  const std::size_t len = rte_pktmbuf_data_len(m) - kEthLen;
  net::Ipv6Header h;
  if (net::parse_ipv6(p, len, h) != net::Ipv6Status::kOk) {
    drop(m, DpDrop::kMalformed);
    return;
  }
  if (h.protocol == IPPROTO_ICMPV6 && h.l4_offset == 40 && len > 40 &&
      (p[40] == net::kIcmpv6NeighborSolicitation || p[40] == net::kIcmpv6NeighborAdvertisement)) {
    handle_nd(*wan_, m, false);
    return;
  }
  if (!wan_->owns_v6(h.dst.data()) && !settings_.routed_v6.empty()) {
    // Routed exit traffic coming back (or any traffic) to a peer's address
    // in a routed prefix: to that peer, unchanged but for the hop limit.
    bool routed = false;
    for (const Ipv6Iface& r : settings_.routed_v6) routed |= r.contains(h.dst.data());
    if (routed) {
      PeerCtx* to = peer_for_v6(h.dst.data());
      if (to == nullptr) {
        drop(m, DpDrop::kNoRoute);
        return;
      }
      // Not a NAT return: unsolicited inbound IPv6 must meet the policy on
      // the peer's owner, like a LAN host's packet (policy_encrypt).
      forward_v6_to_peer(*wan_, *to, m, p, 40 + h.payload_len);
      return;
    }
  }
  if (!wan_->owns_v6(h.dst.data())) {
    const bool link_scope = (h.dst[0] == 0xfe && (h.dst[1] & 0xc0) == 0x80) ||
                            (h.dst[0] == 0xff && (h.dst[1] & 0x0f) == 0x02);
    if (link_scope && wan_->kernel != kNoPort)
      to_kernel(*wan_, m);
    else
      drop(m, DpDrop::kNotForUs);
    return;
  }
  if (h.protocol == IPPROTO_UDP && !h.is_fragment) {
    if (h.l4_len() < kUdpLen) {
      drop(m, DpDrop::kMalformed);
      return;
    }
    const std::uint8_t* udp = p + h.l4_offset;
    const auto udp_len = static_cast<std::uint16_t>((udp[4] << 8) | udp[5]);
    if (udp_len < kUdpLen || udp_len > h.l4_len()) {
      drop(m, DpDrop::kMalformed);
      return;
    }
    // The UDP checksum is not verified: WireGuard authenticates every
    // message itself (the AEAD tag, mac1), which is stronger.
    if (settings_.moon_port != 0 && ((udp[2] << 8) | udp[3]) == settings_.moon_port &&
        h.l4_offset == net::kIpv6HeaderLen) {
      moon_in(m);
      return;
    }
    if (((udp[2] << 8) | udp[3]) == routing_->listen_port) {
      wireguard_in(m, static_cast<std::uint16_t>(kEthLen + h.l4_offset + kUdpLen),
                   static_cast<std::uint16_t>(udp_len - kUdpLen), false);
      return;
    }
  }
  if (h.protocol == IPPROTO_ICMPV6 && net::icmpv6_echo_to_reply(p, len) == net::EchoStatus::kReplied) {
    auto* eth = rte_pktmbuf_mtod(m, rte_ether_hdr*);
    std::swap(eth->src_addr, eth->dst_addr);
    ++counters_.icmp_echo_replies;
    tx(*wan_, m);
    return;
  }
  to_kernel(*wan_, m);
}

void Worker::run_handshakes() {
  // A queue at least 1/8 full switches the device to cookie replies
  // (wireguard-go's rule): cheap answers instead of DH work.
  device_->set_under_load(load_.update(hs_count_, kHandshakeQueue, now_.mono));
  for (std::uint16_t done = 0; done < kHandshakeBudget && hs_count_ != 0; ++done) {
    HsItem& h = hs_items_[hs_head_];
    hs_head_ = static_cast<std::uint16_t>((hs_head_ + 1) % kHandshakeQueue);
    --hs_count_;
    crypto::PublicKey initiator{};
    wg::HandshakeRouting routing;
    routing.macs_checked = h.macs_checked;
    routing.foreign_initiator = &initiator;
    device_->receive_handshake(rte_pktmbuf_mtod_offset(h.m, std::uint8_t*, h.wg_off), h.wg_len,
                               h.src, now_, &routing);
    ++counters_.handshakes_in;
    if (routing.peer != nullptr) rearm(*routing.peer);
    if (routing.foreign) {
      // Another worker owns this initiator: it completes the handshake,
      // trusting the MAC and cookie checks done here.
      PeerCtx* owner = shared_.peer_by_key(initiator);
      if (owner == nullptr || owner->owner == id_) {
        device_->count(wg::Drop::kUnknownPeer);
        rte_pktmbuf_free(h.m);
        continue;
      }
      Handoff* f = handoff_of(h.m, shared_.handoff_field);
      f->kind = HandoffKind::kHandshake;
      f->arg = 1;
      f->wg_off = h.wg_off;
      f->wg_len = h.wg_len;
      handoff(owner->owner, h.m);
      continue;
    }
    rte_pktmbuf_free(h.m);
  }
}

// A WireGuard message received on the WAN. Data, responses and cookie
// replies belong to the worker named by their receiver index; `routed` says
// another worker already sent it here (no second look at the tag).
// Inline into its two callers (once per WAN packet).
[[gnu::always_inline]] inline void Worker::wireguard_in(rte_mbuf* m, std::uint16_t wg_off, std::uint16_t wg_len,
                                                        bool routed) {
  const std::uint8_t* msg = rte_pktmbuf_mtod_offset(m, std::uint8_t*, wg_off);
  const wg::MessageType type = wg::classify_message(msg, wg_len);
  if (type == wg::MessageType::kInvalid) {
    device_->count(wg::Drop::kMalformed);
    rte_pktmbuf_free(m);
    return;
  }
  if (!routed && shared_.workers() > 1 && type != wg::MessageType::kInitiation) {
    // The receiver index: after the type for data and cookie replies, after
    // the sender index for responses.
    const std::size_t at = type == wg::MessageType::kResponse ? 8 : 4;
    const std::uint32_t owner = worker_of_index(wg::load_le32(msg + at));
    if (owner != id_ && owner < shared_.workers()) {
      Handoff* f = handoff_of(m, shared_.handoff_field);
      f->kind = type == wg::MessageType::kData ? HandoffKind::kData : HandoffKind::kHandshake;
      f->arg = 0;
      f->wg_off = wg_off;
      f->wg_len = wg_len;
      handoff(static_cast<std::uint16_t>(owner), m);
      return;
    }
  }
  if (type == wg::MessageType::kData) {
    // Collected for the burst (flush_rx); its receive line is asked for now.
    if (rx_count_ == kBurst) flush_rx();
    device_->prefetch_receive_index(msg);
    rx_items_[rx_count_++] = RxItem{m, {}, wg_off, wg_len};
    return;
  }
  queue_handshake(m, outer_source(m, wg_off), wg_off, wg_len, false);
}

void Worker::queue_handshake(rte_mbuf* m, const wg::Endpoint& src, std::uint16_t wg_off,
                             std::uint16_t wg_len, bool macs_checked) {
  if (hs_count_ == kHandshakeQueue) {
    drop(m, DpDrop::kHandshakeQueueFull);
    return;
  }
  hs_items_[(hs_head_ + hs_count_) % kHandshakeQueue] = HsItem{m, src, wg_off, wg_len, macs_checked};
  ++hs_count_;
}

// --- hand-off between workers (handoff.h) --------------------------------------

void Worker::handoff(std::uint16_t to, rte_mbuf* m) {
  HandoffBuffer& b = handoff_out_[to];
  if (b.count == std::size(b.pkts)) handoff_flush();
  b.pkts[b.count++] = m;
  ++counters_.handoffs_out;
}

void Worker::handoff_flush() {
  for (std::uint16_t to = 0; to < handoff_out_.size(); ++to) {
    HandoffBuffer& b = handoff_out_[to];
    if (b.count == 0) continue;
    const unsigned sent = rte_ring_sp_enqueue_burst(shared_.ring(id_, to),
                                                    reinterpret_cast<void* const*>(b.pkts), b.count,
                                                    nullptr);
    for (unsigned k = sent; k < b.count; ++k) drop(b.pkts[k], DpDrop::kHandoffFull);
    b.count = 0;
  }
}

void Worker::poll_handoff() {
  for (std::uint16_t from = 0; from < shared_.workers(); ++from) {
    if (from == id_) continue;
    rte_mbuf* pkts[kBurst];
    const unsigned n = rte_ring_sc_dequeue_burst(shared_.ring(from, id_), reinterpret_cast<void**>(pkts),
                                                 kBurst, nullptr);
    counters_.handoffs_in += n;
    for (unsigned i = 0; i < n; ++i) {
      rte_mbuf* m = pkts[i];
      const Handoff f = *handoff_of(m, shared_.handoff_field);
      switch (f.kind) {
        case HandoffKind::kData:
          wireguard_in(m, f.wg_off, f.wg_len, true);
          break;
        case HandoffKind::kHandshake:
          queue_handshake(m, outer_source(m, f.wg_off), f.wg_off, f.wg_len, f.arg != 0);
          break;
        case HandoffKind::kInner:
          // The peer may have been removed while the packet was on the ring
          // (PeerRef::peer is this owner's to write and read).
          if (const PeerRef* to = f.peer < shared_.refs.size() ? &shared_.refs[f.peer] : nullptr;
              to != nullptr && to->owner == id_ && to->peer != nullptr)
            tunnel_out(*to->peer, m, static_cast<Origin>(f.arg));
          else
            drop(m, DpDrop::kNoRoute);
          break;
        case HandoffKind::kNatReturn: {
          // As received on the WAN (Ethernet first), checked there.
          net::Ipv4Header h;
          const std::size_t len = rte_pktmbuf_data_len(m);
          if (len < kEthLen ||
              !check_ipv4(m, rte_pktmbuf_mtod_offset(m, const std::uint8_t*, kEthLen), len - kEthLen, h, false))
            break;
          if (!nat_in(m, h, true)) drop(m, DpDrop::kNotForUs);
          break;
        }
        case HandoffKind::kNeighbor: {
          const std::size_t pi = f.arg;
          auto* eth = rte_pktmbuf_mtod(m, rte_ether_hdr*);
          if (pi >= settings_.ports.size())
            rte_pktmbuf_free(m);
          else if (eth->ether_type == rte_cpu_to_be_16(RTE_ETHER_TYPE_ARP))
            handle_arp(port(pi), *neighbors_[pi], m, true);
          else
            handle_nd(port(pi), m, true);
          break;
        }
      }
    }
  }
  flush_rx();
}

// Each worker keeps its own neighbour tables (no shared writes on the packet
// path); what one worker learns from ARP / ND reaches the others as a copy.
// Neighbour traffic is rare next to data, so the copies are cheap.
void Worker::replicate_neighbor_frame(std::size_t port_index, rte_mbuf* m) {
  for (std::uint16_t to = 0; to < shared_.workers(); ++to) {
    if (to == id_) continue;
    rte_mbuf* c = rte_pktmbuf_copy(m, pool_, 0, UINT32_MAX);
    if (c == nullptr) {
      counters_.drop(DpDrop::kNoMbuf);
      continue;
    }
    Handoff* f = handoff_of(c, shared_.handoff_field);
    f->kind = HandoffKind::kNeighbor;
    f->arg = static_cast<std::uint8_t>(port_index);
    handoff(to, c);
  }
}

// The data messages collected from this burst (wireguard_in asked for
// their receive lines, the index slots): each stage below asks for what the
// next one reads, so at 100 000 peers the cache misses of the whole burst
// (receive lines; then the peers' lines, read after the AEAD) overlap, one
// burst after the other, instead of queueing packet by packet.
void Worker::flush_rx() {
  if (rx_count_ == 0) return;
  // Expiry and replay pre-checks on each message's receive line (asked
  // for by wireguard_in); what fails is freed (counted by the device) and
  // the rest moves up.
  std::uint16_t kept = 0;
  for (std::uint16_t i = 0; i < rx_count_; ++i) {
    RxItem& it = rx_items_[i];
    const std::uint8_t* msg = rte_pktmbuf_mtod_offset(it.m, std::uint8_t*, it.wg_off);
    if (device_->prepare_receive(msg, it.wg_len, now_.mono, it.slot) != wg::Drop::kOk) {
      rte_pktmbuf_free(it.m);
      continue;
    }
    if (kept != i) rx_items_[kept] = it;
    ++kept;
  }
  rx_count_ = kept;
  decrypt_flush();
}

void Worker::decrypt_flush() {
  if (rx_count_ == 0) return;
  // The peers' receive lines (wg::Peer line 1), read after the AEAD
  // (endpoint, counters, timers, source check): the AEAD's hundreds of
  // cycles per message cover their misses. Into L2 only: more lines in L1
  // during the AEAD pushed out what the AEAD itself reads, which then cost
  // it ~25 cycles per message at 100 000 peers (docs/perf.md); they move
  // to L1 once the AEAD is done. For the whole batch here, before a single
  // AEAD call; with calls of a few messages (a burst read ahead), a call's
  // peers just before it, so that the fill buffers are not all taken at
  // once (docs/perf.md, "Reading one burst ahead").
  std::uint32_t bytes = 0;
  for (std::uint16_t i = 0; i < rx_count_; ++i) bytes += rx_items_[i].wg_len - wg::kDataMinLen;
  const std::uint16_t chunk = aead_chunk(bytes, rx_count_, 0);
  if (chunk >= rx_count_)
    for (std::uint16_t i = 0; i < rx_count_; ++i) rx_items_[i].slot.peer->prefetch_message_line_l2();
  crypto::AeadOp ops[kBurst];
  bool ok[kBurst];
  for (std::uint16_t i = 0; i < rx_count_; ++i) {
    RxItem& it = rx_items_[i];
    std::uint8_t* msg = rte_pktmbuf_mtod_offset(it.m, std::uint8_t*, it.wg_off);
    const std::uint32_t ct_len = it.wg_len - wg::kDataMinLen;
    ops[i] = crypto::AeadOp{msg + wg::kDataHeaderLen, ct_len, msg + wg::kDataHeaderLen + ct_len,
                            it.slot.line->recv_key.data(), it.slot.counter, nullptr, 0};
  }
  for (std::uint16_t a = 0; a < rx_count_; a = static_cast<std::uint16_t>(a + chunk)) {
    const std::uint16_t b = std::min<std::uint16_t>(rx_count_, static_cast<std::uint16_t>(a + chunk));
    if (chunk < rx_count_)
      for (std::uint16_t i = a; i < b; ++i) rx_items_[i].slot.peer->prefetch_message_line_l2();
    ask_ahead(chunk);
    aead_->decrypt(ops + a, b - a, ok + a);
  }
  // The peers' lines, in L2 since before the AEAD: into L1 while the look-ups
  // below run. An exit node's packets also read the peer's PeerCtx
  // (exit_out), through line 0.
  for (std::uint16_t i = 0; i < rx_count_; ++i) rx_items_[i].slot.peer->prefetch_message_line();
  if (nat_ || !settings_.routed_v6.empty())
    for (std::uint16_t i = 0; i < rx_count_; ++i) rx_items_[i].slot.peer->prefetch_user();
  // Inner IPv4 sources (cryptokey routing) and destinations (hub) looked
  // up together; other packets look up 0.0.0.0, which route_inner ignores.
  std::uint32_t addrs[2 * kBurst];
  std::uint32_t ids[2 * kBurst];
  for (std::uint16_t i = 0; i < rx_count_; ++i) {
    const std::uint8_t* inner = ops[i].data;
    const bool v4 = ok[i] && ops[i].len >= net::kIpv4HeaderLen && (inner[0] >> 4) == 4;
    addrs[2 * i] = 0;
    addrs[2 * i + 1] = 0;
    if (v4) {
      std::memcpy(&addrs[2 * i], inner + net::kIpv4SrcOffset, 4);
      std::memcpy(&addrs[2 * i + 1], inner + net::kIpv4DstOffset, 4);
    }
  }
  lookup_v4(addrs, ids, 2u * rx_count_);
  // Each message's counter goes into the replay window (accept_receive);
  // the rest of receiving (endpoint, byte counter, key confirmation, timers
  // and their wheel entry) once per run of messages under one keypair.
  wg::IndexSlot* run_line = nullptr;
  wg::Peer* run_peer = nullptr;
  std::size_t run_bytes = 0;
  std::size_t run_data = 0;
  wg::Endpoint run_src;  // the run's last outer source (roaming)
  auto finish_run = [&] {
    if (run_line == nullptr) return;
    device_->received(*run_peer, *run_line, run_bytes, run_data, run_src, now_);
    rearm(*run_peer);
    run_line = nullptr;
  };
  for (std::uint16_t i = 0; i < rx_count_; ++i) {
    RxItem& it = rx_items_[i];
    if (!ok[i]) {
      device_->count(wg::Drop::kDataAuth);
      rte_pktmbuf_free(it.m);
      continue;
    }
    if (device_->accept_receive(it.slot) != wg::Drop::kOk) {
      rte_pktmbuf_free(it.m);  // a duplicate inside the burst, counted by the device
      continue;
    }
    if (it.slot.line != run_line) {
      finish_run();
      run_line = it.slot.line;
      run_peer = it.slot.peer;
      run_bytes = 0;
      run_data = 0;
    }
    const std::uint32_t pt_len = ops[i].len;
    run_bytes += it.wg_len;
    run_data += pt_len != 0 ? 1 : 0;
    // Read back from the frame: carrying it in RxItem cost a copy that
    // stalled on store forwarding (so does building it in a temporary).
    outer_source_into(run_src, it.m, it.wg_off);
    ++counters_.decrypted;
    if (pt_len == 0) {  // keepalive
      rte_pktmbuf_free(it.m);
      continue;
    }
    // Strip outer headers and the WireGuard header; the tag and padding go
    // once the inner length is known.
    rte_pktmbuf_adj(it.m, static_cast<std::uint16_t>(it.wg_off + wg::kDataHeaderLen));
    route_inner(*it.slot.peer, it.m, ids[2 * i], ids[2 * i + 1]);
  }
  finish_run();
  rx_count_ = 0;
  policy_flush();
  policy_flush6();
  exit_flush();
}

// src_id, dst_id: the allowed-IPs look-ups of an IPv4 packet's source and
// destination (kNoPeer when none matched), done for the burst by the caller.
// route_inner and forward_inner inline into the decrypt loop (and the
// policy stage): a call each per decrypted packet was measurable at 64 B.
// What this reads of the sending peer per packet is on its wg::Peer's
// receive line (host_id); its PeerCtx (ctx_of: the peer's line 0, then the
// PeerCtx's own, cold lines at 100 000 peers) only on the paths that need
// more (exit, errors).
[[gnu::always_inline]] inline void Worker::route_inner(wg::Peer& from_peer, rte_mbuf* m, std::uint32_t src_id,
                                                       std::uint32_t dst_id) {
  auto* ip = rte_pktmbuf_mtod(m, rte_ipv4_hdr*);
  // The plaintext still ends with the tag (and padding): not part of the packet.
  const std::uint16_t avail = static_cast<std::uint16_t>(rte_pktmbuf_data_len(m) - wg::kTagLen);
  if ((ip->version_ihl >> 4) == 6) {
    route_inner_v6(from_peer, m);
    return;
  }
  net::Ipv4Header h;
  if (!check_ipv4(m, reinterpret_cast<const std::uint8_t*>(ip), avail, h, false)) return;
  rte_pktmbuf_trim(m, static_cast<std::uint16_t>(rte_pktmbuf_data_len(m) - h.total_len));
  // Cryptokey routing: the inner source must be one the peer may use.
  if (src_id != from_peer.host_id) {
    drop(m, DpDrop::kBadInnerSource);
    return;
  }
  if (!net::ipv4_decrement_ttl(reinterpret_cast<std::uint8_t*>(ip), h.total_len)) {
    tunnel_time_exceeded(ctx_of(from_peer), reinterpret_cast<const std::uint8_t*>(ip), h.total_len, false);
    drop(m, DpDrop::kTtlExpired);
    return;
  }
  if (policy_) {  // the access policy: classified with the burst (policy_flush)
    complete_ipv4_header(reinterpret_cast<const std::uint8_t*>(ip), h);
    if (policy_count_ == kBurst) policy_flush();
    policy_items_[policy_count_++] = PolicyItem{m, &from_peer, h, dst_id};
    return;
  }
  forward_inner(from_peer, m, h, dst_id);
}

[[gnu::always_inline]] inline void Worker::forward_inner(wg::Peer& from, rte_mbuf* m, net::Ipv4Header& h,
                                                         std::uint32_t dst_id) {
  auto* ip = rte_pktmbuf_mtod(m, rte_ipv4_hdr*);
  // Hub: another peer's allowed IPs win over the LAN (tunnel <-> tunnel).
  if (dst_id != kNoPeer) {
    to_peer(*shared_.peers[dst_id], m, Origin::kPeer);
    return;
  }
  // A SYN out of the tunnel carries the far host's MSS (its own MTU): clamp
  // it too, so the LAN host never sends segments the tunnel cannot carry.
  // (The clamp parses the header again: only TCP is worth that.)
  if (ip->next_proto_id == IPPROTO_TCP)
    net::clamp_tcp_mss_ipv4(reinterpret_cast<std::uint8_t*>(ip), h.total_len,
                            net::tcp_mss_for_mtu_v4(settings_.tunnel_mtu));
  std::uint32_t next_hop = 0;
  if (Port* lan = lan_route(ip->dst_addr, next_hop)) {
    send_ipv4_inline(*lan, *neighbors_[port_index(*lan)], m, next_hop);
    return;
  }
  exit_out(ctx_of(from), m, h);
}

// --- access policy (docs/exit-node.md) ------------------------------------------

policy::Packet Worker::policy_packet(const std::uint8_t* ip, const net::Ipv4Header& h,
                                     std::uint32_t peer) noexcept {
  policy::Packet p;
  p.peer = peer;
  p.src = net::load_be32(h.src.data());
  p.dst = net::load_be32(h.dst.data());
  p.proto = h.protocol;
  // Ports of TCP and UDP only, and only where the header is (not in a
  // later fragment): anything else matches rules with ports "*" only.
  if ((p.proto == IPPROTO_TCP || p.proto == IPPROTO_UDP) && !h.is_fragment() &&
      h.total_len >= h.header_len + 4u) {
    const std::uint8_t* l4 = ip + h.header_len;
    p.sport = static_cast<std::uint16_t>((l4[0] << 8) | l4[1]);
    p.dport = static_cast<std::uint16_t>((l4[2] << 8) | l4[3]);
  }
  // An echo request is never return traffic (policy::Packet::initiating).
  p.initiating = p.proto == IPPROTO_ICMP && !h.is_fragment() && h.total_len > h.header_len &&
                 ip[h.header_len] == net::kIcmpEchoRequest;
  return p;
}

// The decrypt path's packets from peers, classified together (one
// rte_acl call for the burst): a rule accepts (counted per rule, the flow
// noted for its replies), or the packet is the reply of a flow this lcore
// noted (counted as established), or it is dropped (denied).
void Worker::policy_flush() {
  if (policy_count_ == 0) return;
  const std::uint16_t n = policy_count_;
  policy_count_ = 0;
  policy::Packet pk[kBurst];
  policy::AclInput in[kBurst];
  const policy::AclInput* ptr[kBurst];
  int rule[kBurst];
  for (std::uint16_t i = 0; i < n; ++i) {
    const PolicyItem& it = policy_items_[i];
    pk[i] = policy_packet(rte_pktmbuf_mtod(it.m, const std::uint8_t*), it.h, it.from->host_id + 1);
    in[i] = policy::make_acl_input(pk[i]);
    ptr[i] = &in[i];
  }
  policy_->acl->classify(ptr, n, rule);
  // The return-traffic table's slots, then entries, for the whole burst
  // (established.h): most of the policy's cost is these misses.
  for (std::uint16_t i = 0; i < n; ++i) established_->prefetch(pk[i], rule[i] < 0);
  for (std::uint16_t i = 0; i < n; ++i) established_->prefetch_entry(pk[i], rule[i] < 0);
  for (std::uint16_t i = 0; i < n; ++i) {
    PolicyItem& it = policy_items_[i];
    if (!policy_verdict(rule[i], pk[i], *established_)) {
      drop(it.m, DpDrop::kPolicyDenied);
      continue;
    }
    forward_inner(*it.from, it.m, it.h, it.dst_id);
  }
}

policy::Packet6 Worker::policy_packet6(const std::uint8_t* ip, const net::Ipv6Header& h,
                                       std::uint32_t peer) noexcept {
  policy::Packet6 p;
  p.peer = peer;
  for (std::size_t w = 0; w < 4; ++w) {
    p.src[w] = net::load_be32(h.src.data() + 4 * w);
    p.dst[w] = net::load_be32(h.dst.data() + 4 * w);
  }
  // The upper-layer protocol past the extension headers; ports as for
  // IPv4: TCP and UDP, no fragment, the header there.
  p.proto = h.protocol;
  if ((p.proto == IPPROTO_TCP || p.proto == IPPROTO_UDP) && !h.is_fragment &&
      h.l4_offset + 4u <= h.total_len()) {
    const std::uint8_t* l4 = ip + h.l4_offset;
    p.sport = static_cast<std::uint16_t>((l4[0] << 8) | l4[1]);
    p.dport = static_cast<std::uint16_t>((l4[2] << 8) | l4[3]);
  }
  p.initiating = p.proto == IPPROTO_ICMPV6 && !h.is_fragment && h.l4_offset < h.total_len() &&
                 ip[h.l4_offset] == net::kIcmpv6EchoRequest;
  return p;
}

// policy_flush for IPv6: its own rte_acl context and return-traffic table,
// the same rule counters (a rule's IPv4 and IPv6 entries are one rule).
void Worker::policy_flush6() {
  if (policy6_count_ == 0) return;
  const std::uint16_t n = policy6_count_;
  policy6_count_ = 0;
  policy::Packet6 pk[kBurst];
  policy::AclInput6 in[kBurst];
  const policy::AclInput6* ptr[kBurst];
  int rule[kBurst];
  for (std::uint16_t i = 0; i < n; ++i) {
    const PolicyItem6& it = policy6_items_[i];
    pk[i] = policy_packet6(rte_pktmbuf_mtod(it.m, const std::uint8_t*), it.h, it.from->host_id + 1);
    in[i] = policy::make_acl_input6(pk[i]);
    ptr[i] = &in[i];
  }
  policy_->acl->classify6(ptr, n, rule);
  for (std::uint16_t i = 0; i < n; ++i) established6_->prefetch(pk[i], rule[i] < 0);
  for (std::uint16_t i = 0; i < n; ++i) established6_->prefetch_entry(pk[i], rule[i] < 0);
  for (std::uint16_t i = 0; i < n; ++i) {
    PolicyItem6& it = policy6_items_[i];
    if (!policy_verdict(rule[i], pk[i], *established6_)) {
      drop(it.m, DpDrop::kPolicyDenied);
      continue;
    }
    forward_inner_v6(*it.from, it.m, it.h);
  }
}

// The encrypt path's IPv6 half (policy_encrypt has the rule): IPv6 from a
// LAN or the wan port (a routed prefix) classified with source peer 0,
// IPv6 from another peer noted. Marks the denied in `denied`.
void Worker::policy_encrypt6(std::uint16_t n, bool* denied) noexcept {
  policy::Packet6 pk[kBurst];
  policy::AclInput6 in[kBurst];
  const policy::AclInput6* ptr[kBurst];
  int rule[kBurst];
  std::uint16_t at[kBurst];
  std::uint16_t i = 0;
  while (i < n) {
    std::uint16_t k = 0;  // IPv6 LAN packets of this chunk
    for (; i < n && k < kBurst; ++i) {
      TxItem& it = enc_items_[i];
      if (it.origin == Origin::kChecked) continue;
      const std::uint8_t* ip = rte_pktmbuf_mtod(it.m, const std::uint8_t*);
      const std::uint16_t len = rte_pktmbuf_data_len(it.m);
      if (len < 1 || (ip[0] >> 4) != 6) continue;
      net::Ipv6Header h;
      if (net::parse_ipv6(ip, len, h) != net::Ipv6Status::kOk) {  // checked on the way in: not expected
        rule_counters_->deny();
        denied[i] = true;
        continue;
      }
      if (it.origin == Origin::kPeer) {
        established6_->note(policy_packet6(ip, h, 0), now_.mono);
        continue;
      }
      pk[k] = policy_packet6(ip, h, 0);
      in[k] = policy::make_acl_input6(pk[k]);
      ptr[k] = &in[k];
      at[k++] = i;
    }
    if (k == 0) continue;
    policy_->acl->classify6(ptr, k, rule);
    // The table's slots, then entries, for the chunk (as policy_flush6).
    for (std::uint16_t j = 0; j < k; ++j) established6_->prefetch(pk[j], rule[j] < 0);
    for (std::uint16_t j = 0; j < k; ++j) established6_->prefetch_entry(pk[j], rule[j] < 0);
    for (std::uint16_t j = 0; j < k; ++j)
      if (!policy_verdict(rule[j], pk[j], *established6_)) denied[at[j]] = true;
  }
}

// The encrypt path's policy stage, on the destination peer's owner (where
// that peer's replies are decrypted and checked): a packet from a LAN (or,
// IPv6, from the wan port's routed prefixes) is classified with source
// peer 0 (accepted: noted; else a reply or denied); one from another peer
// was accepted on its decrypting lcore and is only noted here. IPv4 here,
// IPv6 in policy_encrypt6.
std::uint16_t Worker::policy_encrypt(std::uint16_t n) noexcept {
  policy::Packet pk[kBurst];
  policy::AclInput in[kBurst];
  const policy::AclInput* ptr[kBurst];
  int rule[kBurst];
  std::uint16_t at[kBurst];
  bool denied[sizeof(enc_items_) / sizeof(enc_items_[0])] = {};
  std::uint16_t i = 0;
  while (i < n) {
    std::uint16_t k = 0;  // LAN packets of this chunk
    for (; i < n && k < kBurst; ++i) {
      TxItem& it = enc_items_[i];
      if (it.origin == Origin::kChecked) continue;
      const std::uint8_t* ip = rte_pktmbuf_mtod(it.m, const std::uint8_t*);
      const std::uint16_t len = rte_pktmbuf_data_len(it.m);
      if (len < net::kIpv4HeaderLen || (ip[0] >> 4) != 4) continue;
      net::Ipv4Header h;
      h.header_len = static_cast<std::uint8_t>((ip[0] & 0x0f) * 4);
      h.total_len = len;  // trimmed to the IP total length on the way here
      complete_ipv4_header(ip, h);
      if (it.origin == Origin::kPeer) {
        established_->note(policy_packet(ip, h, 0), now_.mono);
        continue;
      }
      pk[k] = policy_packet(ip, h, 0);
      in[k] = policy::make_acl_input(pk[k]);
      ptr[k] = &in[k];
      at[k++] = i;
    }
    if (k == 0) continue;
    policy_->acl->classify(ptr, k, rule);
    for (std::uint16_t j = 0; j < k; ++j)
      if (!policy_verdict(rule[j], pk[j], *established_)) denied[at[j]] = true;
  }
  policy_encrypt6(n, denied);
  std::uint16_t kept = 0;
  for (std::uint16_t j = 0; j < n; ++j) {
    if (denied[j]) {
      drop(enc_items_[j].m, DpDrop::kPolicyDenied);
      continue;
    }
    enc_items_[kept++] = enc_items_[j];
  }
  return kept;
}

// --- exit node: NAT44 (docs/exit-node.md) ----------------------------------------

bool Worker::internet(std::uint32_t dst) const noexcept {
  if (settings_.internet_v4.empty()) return true;
  for (const Ipv4Iface& p : settings_.internet_v4)
    if (p.contains(dst)) return true;
  return false;
}

// The route lookup found no peer, LAN or static route: the packet would
// leave through the wan port. Only an exit-node peer's packet to an
// internet destination may, and only through the NAT.
void Worker::exit_out(PeerCtx& from, rte_mbuf* m, net::Ipv4Header& h) {
  if (!nat_) {
    drop(m, DpDrop::kNoLanRoute);  // not an exit node: as before
    return;
  }
  const auto* p = rte_pktmbuf_mtod(m, const std::uint8_t*);
  std::uint32_t dst = 0;
  std::memcpy(&dst, p + net::kIpv4DstOffset, 4);
  if (!from.exit_node || !internet(dst) || wan_->v4.empty()) {
    drop(m, DpDrop::kNotExit);
    return;
  }
  complete_ipv4_header(p, h);
  if (exit_count_ == kBurst) exit_flush();
  exit_items_[exit_count_++] = ExitItem{m, h};
}

// The exit batch, NAT'ed as a burst: every packet's table slot is asked
// for, then every flow record, then each is translated, so with many flows
// the cache misses overlap (perf/README.md: ~3x one at a time).
void Worker::exit_flush() {
  if (exit_count_ == 0) return;
  const std::uint16_t n = exit_count_;
  exit_count_ = 0;
  for (std::uint16_t i = 0; i < n; ++i)
    nat_->prefetch(rte_pktmbuf_mtod(exit_items_[i].m, const std::uint8_t*), exit_items_[i].h.total_len,
                   nat::Direction::kOutbound);
  for (std::uint16_t i = 0; i < n; ++i)
    nat_->prefetch_flow(rte_pktmbuf_mtod(exit_items_[i].m, const std::uint8_t*), exit_items_[i].h.total_len,
                        nat::Direction::kOutbound);
  for (std::uint16_t i = 0; i < n; ++i) {
    rte_mbuf* m = exit_items_[i].m;
    auto* ip = rte_pktmbuf_mtod(m, std::uint8_t*);
    const nat::Result r = nat_->translate(ip, exit_items_[i].h, nat::Direction::kOutbound, now_.mono);
    if (r.verdict != nat::Verdict::kTranslated) {
      rte_pktmbuf_free(m);  // counted by the NAT (NatCounters)
      continue;
    }
    std::uint32_t dst = 0;
    std::memcpy(&dst, ip + net::kIpv4DstOffset, 4);
    send_ipv4(*wan_, *wan_neigh_, m, wan_->next_hop(dst));
  }
}

// The burst's likely NAT return traffic (IPv4 to a NAT address, not to
// the listen port): its table slots for the whole burst, then its flow
// records, before poll_wan translates the packets one by one, so with
// many flows their two cache misses each overlap (the exit_flush stages,
// inbound). Only hints: nothing is checked here that nat_in relies on.
void Worker::nat_prefetch(rte_mbuf* const* pkts, std::uint16_t n) noexcept {
  const std::uint8_t* ips[kBurst];
  std::size_t lens[kBurst];
  std::uint16_t k = 0;
  for (std::uint16_t i = 0; i < n && k < kBurst; ++i) {
    const std::size_t len = rte_pktmbuf_data_len(pkts[i]);
    const auto* f = rte_pktmbuf_mtod(pkts[i], const std::uint8_t*);
    if (len < kEthLen + net::kIpv4HeaderLen + 8u || f[12] != 0x08 || f[13] != 0x00) continue;
    const std::uint8_t* ip = f + kEthLen;
    const std::size_t ihl = static_cast<std::size_t>(ip[0] & 0x0f) * 4;
    if (len < kEthLen + ihl + 4) continue;
    if (ip[9] == IPPROTO_UDP && ((ip[ihl + 2] << 8) | ip[ihl + 3]) == routing_->listen_port) continue;
    std::uint32_t dst = 0;
    std::memcpy(&dst, ip + net::kIpv4DstOffset, 4);
    if (!nat_pool(dst)) continue;
    nat_->prefetch(ip, len - kEthLen, nat::Direction::kInbound);
    ips[k] = ip;
    lens[k++] = len - kEthLen;
  }
  for (std::uint16_t j = 0; j < k; ++j) nat_->prefetch_flow(ips[j], lens[j], nat::Direction::kInbound);
}

// A WAN frame (Ethernet first) whose IPv4 header h was checked: return
// traffic of a NAT flow is translated here when this lcore owns the flow's
// port slice, or handed to the owner unchanged; a translated packet goes
// to its peer's encrypt batch (the flow was made by the peer's owner, so
// normally this lcore; to_peer hands it on otherwise). No policy check: a
// translated return is established by construction.
bool Worker::nat_in(rte_mbuf* m, net::Ipv4Header& h, bool routed) {
  if (!nat_) return false;
  auto* ip = rte_pktmbuf_mtod_offset(m, std::uint8_t*, kEthLen);
  complete_ipv4_header(ip, h);
  const nat::Result r = nat_->translate(ip, h, nat::Direction::kInbound, now_.mono);
  switch (r.verdict) {
    case nat::Verdict::kNotNat:
      return false;
    case nat::Verdict::kDrop:
      rte_pktmbuf_free(m);  // counted by the NAT
      return true;
    case nat::Verdict::kHandOff: {
      if (routed || r.owner < 0 || r.owner >= static_cast<int>(shared_.workers()) || r.owner == id_) {
        drop(m, DpDrop::kNotForUs);  // never passed on twice
        return true;
      }
      Handoff* f = handoff_of(m, shared_.handoff_field);
      f->kind = HandoffKind::kNatReturn;
      handoff(static_cast<std::uint16_t>(r.owner), m);
      return true;
    }
    case nat::Verdict::kTranslated:
      break;
  }
  const std::uint16_t total = h.total_len;
  rte_pktmbuf_adj(m, kEthLen);
  rte_pktmbuf_trim(m, static_cast<std::uint16_t>(rte_pktmbuf_data_len(m) - total));
  ip = rte_pktmbuf_mtod(m, std::uint8_t*);
  if (!net::ipv4_decrement_ttl(ip, total)) {
    drop(m, DpDrop::kTtlExpired);
    return true;
  }
  std::uint32_t dst = 0, id = kNoPeer;
  std::memcpy(&dst, ip + net::kIpv4DstOffset, 4);
  lookup_v4(&dst, &id, 1);
  if (id == kNoPeer) {
    drop(m, DpDrop::kNoRoute);
    return true;
  }
  to_peer(*shared_.peers[id], m, Origin::kChecked);
  return true;
}

// n addresses (network order) at once, four to a vector look-up
// (rte_lpm_lookupx4: the table reads of four addresses are issued
// together). It replaced a prefetch pass over the burst's tbl24 entries
// and one rte_lpm_lookup per address: 64 addresses per burst of 32
// decrypted packets (source and destination), and ~6 cycles less per
// packet (docs/perf.md). The tbl24 entries of allowed IPs are few and hot;
// the tbl8 lines, where per-peer /32s live, are known only once tbl24 is
// read, and that is the step the vector look-up overlaps.
void Worker::lookup_v4(const std::uint32_t* addrs, std::uint32_t* ids, unsigned n) const noexcept {
  const rte_lpm* lpm = routing_->allowed_v4;
  // Network to host order in each 32-bit lane.
  const __m128i swap = _mm_set_epi8(12, 13, 14, 15, 8, 9, 10, 11, 4, 5, 6, 7, 0, 1, 2, 3);
  unsigned i = 0;
  for (; i + 4 <= n; i += 4) {
    const __m128i a = _mm_loadu_si128(reinterpret_cast<const __m128i*>(addrs + i));
    rte_lpm_lookupx4(lpm, _mm_shuffle_epi8(a, swap), ids + i, kNoPeer);
  }
  for (; i < n; ++i) {
    std::uint32_t id = 0;
    ids[i] = rte_lpm_lookup(lpm, rte_be_to_cpu_32(addrs[i]), &id) == 0 ? id : kNoPeer;
  }
}

// The burst's packets: their mbufs, then their data up to `lines` lines
// (kPrefetchLines: the headers every stage reads, and all of a small
// packet: the AEAD reads the payload and writes the tag after it), and with
// `encrypt` the line before the data, where the outer headers go, and the
// tag's room after the packet. Longer payloads are left to the hardware
// prefetcher, which follows the AEAD's sequential reads.
void Worker::prefetch_burst(rte_mbuf* const* pkts, std::uint16_t n, bool encrypt, std::size_t lines) noexcept {
  for (std::uint16_t i = 0; i < n; ++i) rte_prefetch0(pkts[i]);
  for (std::uint16_t i = 0; i < n; ++i) {
    const auto* d = rte_pktmbuf_mtod(pkts[i], const char*);
    std::size_t end = rte_pktmbuf_data_len(pkts[i]);
    if (encrypt) {
      end += wg::kDataHeaderLen + wg::kTagLen;  // padding and tag (the header moves the data)
      if (rte_pktmbuf_headroom(pkts[i]) >= RTE_CACHE_LINE_SIZE)
        rte_prefetch0(d - RTE_CACHE_LINE_SIZE);
    }
    end = std::min<std::size_t>(end, lines * RTE_CACHE_LINE_SIZE);
    for (std::size_t off = 0; off < end; off += RTE_CACHE_LINE_SIZE) rte_prefetch0(d + off);
  }
}

// --- Reading ahead -------------------------------------------------------------
//
// With packets of a few hundred bytes and more, a burst's frames are not
// in L1 or L2 when it is read: the NIC (DDIO) left them in L3, and the
// packets of a 2048-deep ring do not fit in L2. Asking for their mbuf and
// header lines at the start of the burst (prefetch_burst) then waits for
// fill buffers: at 1420 B, ~30 cycles per packet before the first one is
// looked at, and more in the stages that read them. Asked for anywhere
// else in one go, the same wait just moves there.
//
// So a port whose burst is full of such packets (the queue likely holds
// more) has its next burst read right after classifying this one
// (read_ahead). This burst's AEAD then runs in calls of kAheadChunk
// messages (aead_chunk), and before each call kAheadChunk of the next
// burst's packets have their mbuf and header lines asked for (ask_ahead):
// a few lines at a time, each group arriving while the AEAD works. Only
// the data's first line: prefetch_burst's four per packet overran the
// fill buffers again and slowed the AEAD they overlap; the payload is
// left to the hardware prefetcher, as for any long packet. The next poll
// of the port takes that burst (receive) and asks for whatever was not
// asked yet.
//
// A burst waits one iteration at most, and only when the queue had a full
// burst before it: the packets would have waited in the NIC's ring. It is
// counted as received when read, so the loop does not back off while one
// is held.

std::uint16_t Worker::receive(Port& port, rte_mbuf** pkts, bool encrypt) {
  RxAhead& a = ahead_[port_index(port)];
  if (a.n != 0) {
    const std::uint16_t n = a.n;
    std::memcpy(pkts, a.pkts, n * sizeof(pkts[0]));
    if (a.asked < n) prefetch_burst(pkts + a.asked, static_cast<std::uint16_t>(n - a.asked), encrypt);
    a.n = 0;
    if (asking_ == &a) asking_ = nullptr;
    return n;
  }
  const std::uint16_t n = rte_eth_rx_burst(port.id, id_, pkts, kBurst);
  if (n == 0) return 0;
  if (port.id < 8) counters_.rx_packets[port.id] += n;
  prefetch_burst(pkts, n, encrypt);
  return n;
}

// n, bytes: the burst just classified (frames, their bytes). Only a full
// one of large frames: the queue likely holds more, and their AEAD is long
// enough to cover the lines asked for between its calls.
void Worker::read_ahead(Port& port, bool encrypt, std::uint16_t n, std::uint32_t bytes) {
  if (n != kBurst || bytes < kBurst * kAheadMinFrame) return;
  RxAhead& a = ahead_[port_index(port)];
  if (a.n != 0) return;  // not expected: receive() took it
  a.n = rte_eth_rx_burst(port.id, id_, a.pkts, kBurst);
  if (a.n == 0) return;
  if (port.id < 8) counters_.rx_packets[port.id] += a.n;
  ++counters_.read_ahead;
  a.asked = 0;
  a.encrypt = encrypt;
  asking_ = &a;
}

void Worker::ask_ahead(std::uint16_t count) noexcept {
  if (asking_ == nullptr) return;
  RxAhead& a = *asking_;
  const std::uint16_t end = std::min<std::uint16_t>(a.n, static_cast<std::uint16_t>(a.asked + count));
  prefetch_burst(a.pkts + a.asked, static_cast<std::uint16_t>(end - a.asked), a.encrypt, 1);
  a.asked = end;
  if (end == a.n) asking_ = nullptr;
}

// Messages per AEAD call: kAheadChunk while a burst read ahead waits for
// its lines and these messages are large enough to cover them; kAeadChunk
// when the batch goes to many peers (encrypt_flush: their second lines);
// else all in one call.
std::uint16_t Worker::aead_chunk(std::uint32_t bytes, std::uint16_t n, std::uint16_t runs) const noexcept {
  // bytes: the AEAD's, all n messages together.
  if (asking_ != nullptr && bytes >= n * (kAheadMinFrame - kEthLen - kIpLen - kUdpLen - wg::kDataMinLen))
    return kAheadChunk;
  if (runs > kAeadChunk / 2) return kAeadChunk;
  return std::max<std::uint16_t>(n, 1);
}

PeerCtx* Worker::peer_for_v6(const std::uint8_t* addr) const noexcept {
  std::uint32_t id = 0;
  if (rte_lpm6_lookup(routing_->allowed_v6, addr, &id) != 0) return nullptr;
  return shared_.peers[id].get();
}

[[gnu::always_inline]] inline Port* Worker::lan_route(std::uint32_t dst, std::uint32_t& next_hop) noexcept {
  if (lan_memo_.port != nullptr && lan_memo_.dst == dst) [[likely]] {
    next_hop = lan_memo_.next_hop;
    return lan_memo_.port;
  }
  Port* p = lan_port_for(dst, next_hop);
  if (p != nullptr) lan_memo_ = LanRouteMemo{p, dst, next_hop};
  return p;
}

Port* Worker::lan_port_for(std::uint32_t dst, std::uint32_t& next_hop) noexcept {
  // On-link subnets first, then the longest matching static route, then a
  // LAN port's default gateway. (A handful of routes: a scan; rte_lpm when
  // sites bring hundreds.)
  const StaticRoute* best = nullptr;
  for (const StaticRoute& r : routing_->routes)
    if (r.prefix.contains(dst) && (best == nullptr || r.prefix.prefix_len > best->prefix.prefix_len))
      best = &r;
  Port* fallback = nullptr;
  for (Port& p : settings_.ports) {
    if (p.role != PortRole::kLan) continue;
    for (const auto& a : p.v4)
      if (a.contains(dst)) {
        next_hop = dst;
        return &p;
      }
    if (fallback == nullptr && p.gateway_v4 != 0) fallback = &p;
  }
  if (best != nullptr) {
    next_hop = best->via;
    return &settings_.ports[best->port_index];
  }
  if (fallback != nullptr) next_hop = fallback->gateway_v4;
  return fallback;
}

// --- LAN: encrypt path ---------------------------------------------------------

void Worker::poll_lan(Port& port, NeighborTable& neigh) {
  rte_mbuf* pkts[kBurst];
  const std::uint16_t n = receive(port, pkts, true);
  if (n == 0) return;
  // Pass 1: validate; what is ours or not IPv4 is handled here, IPv4 to
  // forward waits for the allowed-IPs look-up of the whole burst.
  struct Fwd {
    rte_mbuf* m;
    std::uint16_t total;
    bool dont_fragment;
  };
  Fwd fwd[kBurst];
  std::uint32_t dst[kBurst];
  std::uint16_t nf = 0;
  std::uint32_t bytes = 0;
  for (std::uint16_t i = 0; i < n; ++i) {
    rte_mbuf* m = pkts[i];
    const std::uint16_t len = rte_pktmbuf_data_len(m);
    bytes += len;
    if (len < kEthLen + kIpLen) {
      if (len >= kEthLen && rte_pktmbuf_mtod(m, rte_ether_hdr*)->ether_type ==
                                rte_cpu_to_be_16(RTE_ETHER_TYPE_ARP)) {
        handle_arp(port, neigh, m, false);
      } else {
        drop(m, DpDrop::kMalformed);
      }
      continue;
    }
    auto* eth = rte_pktmbuf_mtod(m, rte_ether_hdr*);
    if (eth->ether_type == rte_cpu_to_be_16(RTE_ETHER_TYPE_ARP)) {
      handle_arp(port, neigh, m, false);
      continue;
    }
    if (eth->ether_type == rte_cpu_to_be_16(RTE_ETHER_TYPE_IPV6)) {
      lan_v6(port, m);
      continue;
    }
    if (eth->ether_type != rte_cpu_to_be_16(RTE_ETHER_TYPE_IPV4)) {
      drop(m, DpDrop::kNotIp);
      continue;
    }
    auto* ip = reinterpret_cast<rte_ipv4_hdr*>(eth + 1);
    net::Ipv4Header h;
    if (!check_ipv4(m, reinterpret_cast<const std::uint8_t*>(ip), len - kEthLen, h, true)) continue;
    // To us: an echo request (handle_local), else the exception path.
    // (handle_local does nothing for other destinations: asked only here.)
    if (port.owns(ip->dst_addr)) {
      if (!handle_local(port, neigh, m)) to_kernel(port, m);
      continue;
    }
    fwd[nf] = Fwd{m, h.total_len, h.dont_fragment};
    dst[nf++] = ip->dst_addr;
  }
  read_ahead(port, true, n, bytes);
  if (nf == 0) return;
  // Pass 2: the destinations' peers, and the lines encryption will read of
  // the ones this worker owns.
  std::uint32_t ids[kBurst];
  lookup_v4(dst, ids, nf);
  // The PeerRef slots first (at 100 000 peers a miss each), then, reading
  // them, the peer's send line, which encryption reads first (key, nonce,
  // index); the line read after the AEAD is asked for during it
  // (encrypt_flush).
  for (std::uint16_t k = 0; k < nf; ++k)
    if (ids[k] != kNoPeer) rte_prefetch0(&shared_.refs[ids[k]]);
  for (std::uint16_t k = 0; k < nf; ++k) {
    if (ids[k] == kNoPeer) continue;
    const PeerRef& r = shared_.refs[ids[k]];
    if (r.owner != id_ || r.peer == nullptr) continue;
    r.peer->prefetch_send_line();
  }
  // Pass 3: MTU, TTL, to the peer's owner.
  for (std::uint16_t k = 0; k < nf; ++k) {
    rte_mbuf* m = fwd[k].m;
    auto* ip = rte_pktmbuf_mtod_offset(m, std::uint8_t*, kEthLen);
    const std::uint16_t total = fwd[k].total;
    if (ids[k] == kNoPeer) {
      drop(m, DpDrop::kNoRoute);
      continue;
    }
    if (total > settings_.tunnel_mtu) {
      // Path MTU discovery: a DF packet gets "fragmentation needed" with the
      // tunnel MTU (we do not fragment); either way it is counted.
      if (fwd[k].dont_fragment) send_frag_needed(port, neigh, ip, total);
      drop(m, DpDrop::kTooBig);
      continue;
    }
    if (!net::ipv4_decrement_ttl(ip, total)) {
      send_time_exceeded(port, neigh, ip, total);
      drop(m, DpDrop::kTtlExpired);
      continue;
    }
    rte_pktmbuf_adj(m, kEthLen);
    rte_pktmbuf_trim(m, static_cast<std::uint16_t>(rte_pktmbuf_data_len(m) - total));
    const PeerRef& r = shared_.refs[ids[k]];
    if (r.owner != id_)
      to_peer(*r.ctx, m, Origin::kLan);
    else if (r.peer != nullptr)
      tunnel_out(*r.peer, m, Origin::kLan);
    else
      drop(m, DpDrop::kNoRoute);  // its device refused it (netmap_service.h)
  }
}

// --- IPv6 inside the tunnel ---------------------------------------------------
//
// LAN side: ND (answer solicitations for our addresses, learn neighbours,
// solicit next hops), ICMPv6 echo to us, then the same steps as IPv4:
// allowed-IPs (rte_lpm6) -> hop limit -> MTU ("packet too big") -> MSS
// clamp -> the encrypt batch. Tunnel side: the source check, hop limit,
// MSS clamp, then another peer (hub) or the on-link LAN neighbour.

// Neighbour discovery on a LAN port: answer solicitations for our
// addresses, learn neighbours from solicitations and advertisements (and
// pass what we learn to the other workers). learn_only: such a copy.
void Worker::handle_nd(Port& port, rte_mbuf* m, bool learn_only) {
  NeighborTable& neigh6 = *neighbors6_[port_index(port)];
  auto* p = rte_pktmbuf_mtod_offset(m, std::uint8_t*, kEthLen);
  const std::size_t len = rte_pktmbuf_data_len(m) - kEthLen;
  const std::uint8_t type = len > 40 ? p[40] : 0;
  if (type == net::kIcmpv6NeighborSolicitation) {
    net::NeighborSolicitation ns;
    if (!net::parse_neighbor_solicitation(p, len, ns)) {
      drop(m, DpDrop::kMalformed);
      return;
    }
    if (ns.source_mac && !ns.is_dad()) {
      if (!learn_only) replicate_neighbor_frame(port_index(port), m);
      rte_ether_addr mac;
      ns.source_mac->store(mac.addr_bytes);
      learn_neighbor(port, neigh6, ns.src.data(), mac);
    }
    if (!learn_only && port.owns_v6(ns.target.data())) {
      rte_mbuf* r = rte_pktmbuf_alloc(pool_);
      if (r == nullptr) {
        drop(m, DpDrop::kNoMbuf);
        return;
      }
      const net::MacAddress src_mac = net::MacAddress::load(rte_pktmbuf_mtod(m, std::uint8_t*) + 6);
      net::MacAddress ours = net::MacAddress::load(port.mac.addr_bytes);
      const std::size_t n = net::build_na_reply(rte_pktmbuf_mtod(r, std::uint8_t*), rte_pktmbuf_tailroom(r),
                                                ns, src_mac, ours, ns.target, true);
      if (n == 0) {
        rte_pktmbuf_free(r);
      } else {
        rte_pktmbuf_append(r, static_cast<std::uint16_t>(n));
        ++counters_.arp_replies;
        tx(port, r);
      }
    }
  } else if (type == net::kIcmpv6NeighborAdvertisement) {
    net::NeighborAdvertisement na;
    if (net::parse_neighbor_advertisement(p, len, na) && na.target_mac) {
      if (!learn_only) replicate_neighbor_frame(port_index(port), m);
      rte_ether_addr mac;
      na.target_mac->store(mac.addr_bytes);
      learn_neighbor(port, neigh6, na.target.data(), mac);
    }
    if (!learn_only && port.kernel != kNoPort) {  // it may answer the kernel's solicitation
      to_kernel(port, m);
      return;
    }
  }
  rte_pktmbuf_free(m);
}

void Worker::lan_v6(Port& port, rte_mbuf* m) {
  auto* p = rte_pktmbuf_mtod_offset(m, std::uint8_t*, kEthLen);
  const std::size_t len = rte_pktmbuf_data_len(m) - kEthLen;
  net::Ipv6Header h;
  if (net::parse_ipv6(p, len, h) != net::Ipv6Status::kOk) {
    drop(m, DpDrop::kMalformed);
    return;
  }
  if (h.protocol == IPPROTO_ICMPV6 && h.l4_offset == 40 && len >= 41 &&
      (p[40] == net::kIcmpv6NeighborSolicitation || p[40] == net::kIcmpv6NeighborAdvertisement)) {
    handle_nd(port, m, false);
    return;
  }
  if (port.owns_v6(h.dst.data())) {
    if (net::icmpv6_echo_to_reply(p, len) == net::EchoStatus::kReplied) {
      auto* eth = rte_pktmbuf_mtod(m, rte_ether_hdr*);
      std::swap(eth->src_addr, eth->dst_addr);
      ++counters_.icmp_echo_replies;
      tx(port, m);
      return;
    }
    to_kernel(port, m);
    return;
  }
  // Link-local unicast (fe80::/10) and link-scope multicast (ff02::/16) are
  // never forwarded: with an exception path they are the kernel's (its
  // link-local address, MLD, router advertisements).
  if (port.kernel != kNoPort && ((h.dst[0] == 0xfe && (h.dst[1] & 0xc0) == 0x80) ||
                                 (h.dst[0] == 0xff && (h.dst[1] & 0x0f) == 0x02))) {
    to_kernel(port, m);
    return;
  }
  PeerCtx* peer = peer_for_v6(h.dst.data());
  if (peer == nullptr) {
    drop(m, DpDrop::kNoRoute);
    return;
  }
  forward_v6_to_peer(port, *peer, m, p, 40 + h.payload_len);
}

// An IPv6 packet from a port (p: its IPv6 header, `total` bytes) into the
// tunnel to `peer`: Packet Too Big past the tunnel MTU, the hop limit, the
// Ethernet header off, then the peer's owner (checked there against the
// policy as a LAN host's packet).
void Worker::forward_v6_to_peer(Port& port, PeerCtx& peer, rte_mbuf* m, std::uint8_t* p, std::size_t total) {
  if (total > settings_.tunnel_mtu) {
    send_packet_too_big(port, p, total);
    drop(m, DpDrop::kTooBig);
    return;
  }
  if (!net::ipv6_decrement_hop_limit(p, total)) {
    send_time_exceeded_v6(port, p, total);
    drop(m, DpDrop::kTtlExpired);
    return;
  }
  rte_pktmbuf_adj(m, kEthLen);
  rte_pktmbuf_trim(m, static_cast<std::uint16_t>(rte_pktmbuf_data_len(m) - total));
  to_peer(peer, m, Origin::kLan);
}

void Worker::route_inner_v6(wg::Peer& from, rte_mbuf* m) {
  auto* p = rte_pktmbuf_mtod(m, std::uint8_t*);
  const std::size_t avail = rte_pktmbuf_data_len(m) - wg::kTagLen;
  net::Ipv6Header h;
  if (net::parse_ipv6(p, avail, h) != net::Ipv6Status::kOk) {
    drop(m, DpDrop::kMalformed);
    return;
  }
  const std::size_t total = 40 + h.payload_len;
  rte_pktmbuf_trim(m, static_cast<std::uint16_t>(rte_pktmbuf_data_len(m) - total));
  std::uint32_t src_id = 0;
  if (rte_lpm6_lookup(routing_->allowed_v6, h.src.data(), &src_id) != 0 || src_id != from.host_id) {
    drop(m, DpDrop::kBadInnerSource);
    return;
  }
  if (!net::ipv6_decrement_hop_limit(p, total)) {
    tunnel_time_exceeded(ctx_of(from), p, total, true);
    drop(m, DpDrop::kTtlExpired);
    return;
  }
  if (policy_) {  // the access policy: classified with the burst (policy_flush6)
    if (policy6_count_ == kBurst) policy_flush6();
    policy6_items_[policy6_count_++] = PolicyItem6{m, &from, h};
    return;
  }
  forward_inner_v6(from, m, h);
}

void Worker::forward_inner_v6(wg::Peer& from, rte_mbuf* m, const net::Ipv6Header& h) {
  auto* p = rte_pktmbuf_mtod(m, std::uint8_t*);
  const std::size_t total = h.total_len();
  if (PeerCtx* to = peer_for_v6(h.dst.data())) {
    to_peer(*to, m, Origin::kPeer);
    return;
  }
  if (h.protocol == IPPROTO_TCP)
    net::clamp_tcp_mss_ipv6(p, total, net::tcp_mss_for_mtu_v6(settings_.tunnel_mtu));
  for (std::size_t i = 0; i < settings_.ports.size(); ++i) {
    Port& port = settings_.ports[i];
    if (port.role != PortRole::kLan) continue;
    if (port.on_link_v6(h.dst.data())) {
      send_ipv6(port, *neighbors6_[i], m, h.dst.data());
      return;
    }
  }
  // Then the longest static route, then a LAN port's default gateway.
  const StaticRoute6* best = nullptr;
  for (const StaticRoute6& r : routing_->routes6)
    if (r.prefix.contains(h.dst.data()) && (best == nullptr || r.prefix.prefix_len > best->prefix.prefix_len))
      best = &r;
  if (best != nullptr) {
    send_ipv6(port(best->port_index), *neighbors6_[best->port_index], m, best->via.data());
    return;
  }
  for (std::size_t i = 0; i < settings_.ports.size(); ++i) {
    Port& lan = settings_.ports[i];
    if (lan.role == PortRole::kLan && lan.has_gateway_v6) {
      send_ipv6(lan, *neighbors6_[i], m, lan.gateway_v6.data());
      return;
    }
  }
  // The exit (docs/exit-node.md): routed unchanged out of the wan port (its
  // source is the peer's address from the routed prefix), no NAT66.
  if (settings_.routed_v6.empty()) {
    drop(m, DpDrop::kNoLanRoute);  // no IPv6 exit configured: as before
    return;
  }
  bool internet = settings_.internet_v6_all;
  for (const Ipv6Iface& r : settings_.internet_v6) internet |= r.contains(h.dst.data());
  const std::uint8_t* next_hop = wan_->on_link_v6(h.dst.data()) ? h.dst.data()
                                 : wan_->has_gateway_v6          ? wan_->gateway_v6.data()
                                                                 : nullptr;
  if (!ctx_of(from).exit_node || !internet || next_hop == nullptr) {
    drop(m, DpDrop::kNotExit);
    return;
  }
  send_ipv6(*wan_, *neighbors6_[shared_.wan], m, next_hop);
}

void Worker::send_ipv6(Port& port, NeighborTable& neigh, rte_mbuf* m, const std::uint8_t* next_hop) {
  if (send_to_neighbor(port, neigh, m, next_hop, RTE_ETHER_TYPE_IPV6) && !port.v6.empty()) {
    rte_mbuf* ns = rte_pktmbuf_alloc(pool_);
    if (ns == nullptr) {
      counters_.drop(DpDrop::kNoMbuf);
      return;
    }
    net::Ipv6Address target{};
    std::memcpy(target.data(), next_hop, 16);
    net::Ipv6Address ours{};
    std::memcpy(ours.data(), port.v6.front().addr.data(), 16);
    const std::size_t n = net::build_neighbor_solicitation(
        rte_pktmbuf_mtod(ns, std::uint8_t*), rte_pktmbuf_tailroom(ns),
        net::MacAddress::load(port.mac.addr_bytes), ours, target);
    if (n == 0) {
      rte_pktmbuf_free(ns);
      return;
    }
    rte_pktmbuf_append(ns, static_cast<std::uint16_t>(n));
    tx(port, ns);
  }
}

void Worker::send_packet_too_big(Port& port, const std::uint8_t* offending, std::size_t len) {
  if (port.v6.empty()) return;
  rte_mbuf* e = icmp_error([&](std::uint8_t* out, std::size_t cap) {
    return net::build_icmpv6_packet_too_big(out, cap, offending, len, port.v6.front().addr, settings_.tunnel_mtu);
  });
  if (e != nullptr) send_icmpv6_error(port, e, offending + 8);  // the offender's source address
}

void Worker::send_icmpv6_error(Port& port, rte_mbuf* e, const std::uint8_t* src) {
  ++counters_.icmp_errors;
  NeighborTable& neigh = *neighbors6_[port_index(port)];
  if (port.on_link_v6(src))
    send_ipv6(port, neigh, e, src);
  else if (port.has_gateway_v6)
    send_ipv6(port, neigh, e, port.gateway_v6.data());
  else
    drop(e, DpDrop::kNoLanRoute);
}

void Worker::send_time_exceeded_v6(Port& port, const std::uint8_t* offending, std::size_t len) {
  if (port.v6.empty()) return;
  rte_mbuf* e = icmp_error([&](std::uint8_t* out, std::size_t cap) {
    return net::build_icmpv6_time_exceeded(out, cap, offending, len, port.v6.front().addr);
  });
  if (e != nullptr) send_icmpv6_error(port, e, offending + 8);
}

// IPv4 errors out of `port`, from its first address, to the offender's
// next hop.
void Worker::send_icmpv4_error(Port& port, NeighborTable& neigh, rte_mbuf* e, const std::uint8_t* offending) {
  std::uint32_t src = 0;
  std::memcpy(&src, offending + net::kIpv4SrcOffset, 4);
  ++counters_.icmp_errors;
  send_ipv4(port, neigh, e, port.next_hop(src));
}

void Worker::send_frag_needed(Port& port, NeighborTable& neigh, const std::uint8_t* offending,
                               std::size_t len) {
  const net::Ipv4Address us = v4_bytes(port.primary_v4());
  rte_mbuf* e = icmp_error([&](std::uint8_t* out, std::size_t cap) {
    return net::build_icmpv4_frag_needed(out, cap, offending, len, us, settings_.tunnel_mtu);
  });
  if (e != nullptr) send_icmpv4_error(port, neigh, e, offending);
}

void Worker::send_time_exceeded(Port& port, NeighborTable& neigh, const std::uint8_t* offending,
                                 std::size_t len) {
  if (port.v4.empty()) return;
  const net::Ipv4Address us = v4_bytes(port.primary_v4());
  rte_mbuf* e = icmp_error([&](std::uint8_t* out, std::size_t cap) {
    return net::build_icmpv4_time_exceeded(out, cap, offending, len, us);
  });
  if (e != nullptr) send_icmpv4_error(port, neigh, e, offending);
}

// The source is the gateway's own tunnel address (interface.addresses) of
// the family, else its first LAN address, else the wan's: the peer must
// accept it (WireGuard checks inner sources against the gateway's allowed
// IPs on the peer's side), and a tunnel address is what peers route to us.
void Worker::tunnel_time_exceeded(PeerCtx& from, const std::uint8_t* offending, std::size_t len, bool v6) {
  if (v6 ? !settings_.self_v6 : settings_.self_v4 == 0) return;
  const net::Ipv4Address us = v4_bytes(settings_.self_v4);
  rte_mbuf* e = icmp_error([&](std::uint8_t* out, std::size_t cap) {
    return v6 ? net::build_icmpv6_time_exceeded(out, cap, offending, len, *settings_.self_v6)
              : net::build_icmpv4_time_exceeded(out, cap, offending, len, us);
  });
  if (e == nullptr) return;
  ++counters_.icmp_errors;
  // Our own packet about the peer's own: no policy stage (kChecked).
  to_peer(from, e, Origin::kChecked);
}

void Worker::to_peer(PeerCtx& peer, rte_mbuf* m, Origin origin) {
  if (peer.owner == id_) {
    if (peer.peer == nullptr) {  // its device refused it (netmap_service.h)
      drop(m, DpDrop::kNoRoute);
      return;
    }
    tunnel_out(*peer.peer, m, origin);
    return;
  }
  Handoff* f = handoff_of(m, shared_.handoff_field);
  f->kind = HandoffKind::kInner;
  f->arg = static_cast<std::uint8_t>(origin);
  f->peer = peer.id;
  handoff(peer.owner, m);
}

// Inline: once per packet into a tunnel (poll_lan's loop above all).
[[gnu::always_inline]] inline void Worker::tunnel_out(wg::Peer& peer, rte_mbuf* m, Origin origin) {
  // TCP toward a tunnel: clamp the SYN's MSS so segments fit the tunnel MTU
  // without fragmentation (idempotent, so staged packets may pass twice).
  // The clamp parses (and checksums) the header again, so it is skipped
  // when the next header shows the packet cannot be TCP: UDP, ICMP(v6).
  if (const std::uint16_t len = rte_pktmbuf_data_len(m); len >= net::kIpv4HeaderLen) {
    std::uint8_t* p = rte_pktmbuf_mtod(m, std::uint8_t*);
    if ((p[0] >> 4) == 6) {
      if (len >= net::kIpv6HeaderLen && p[6] != IPPROTO_UDP && p[6] != IPPROTO_ICMPV6)
        net::clamp_tcp_mss_ipv6(p, len, net::tcp_mss_for_mtu_v6(settings_.tunnel_mtu));
    } else if (p[9] == IPPROTO_TCP) {
      net::clamp_tcp_mss_ipv4(p, len, net::tcp_mss_for_mtu_v4(settings_.tunnel_mtu));
    }
  }
  if (enc_count_ == sizeof(enc_items_) / sizeof(enc_items_[0])) {
    if (in_encrypt_flush_) {  // cannot flush from inside a flush: wait on the peer
      // Only flush_staged (a handshake completing inside the flush) gets
      // here, with packets already past the policy (kChecked).
      stage(peer, m);
      return;
    }
    encrypt_flush();
  }
  enc_items_[enc_count_++] = TxItem{m, &peer, origin};
}

void Worker::stage(wg::Peer& peer, rte_mbuf* m) {
  PeerCtx& p = ctx_of(peer);
  if (p.staged_count == kMaxStaged) {
    // Oldest gives way, as the Linux module's staged queue does.
    drop(p.staged[p.staged_head], DpDrop::kStagedOverflow);
    p.staged_head = static_cast<std::uint16_t>((p.staged_head + 1) % kMaxStaged);
    --p.staged_count;
  }
  p.staged[(p.staged_head + p.staged_count) % kMaxStaged] = m;
  ++p.staged_count;
}

void Worker::encrypt_flush() {
  if (enc_count_ == 0 || in_encrypt_flush_) return;
  in_encrypt_flush_ = true;
  constexpr std::size_t kMax = sizeof(enc_items_) / sizeof(enc_items_[0]);
  crypto::AeadOp ops[kMax];
  TxItem ready[kMax];
  std::uint16_t plain_len[kMax];
  std::uint16_t n = 0;
  std::uint16_t runs = 0;  // runs of messages to one peer in ready[]
  std::uint32_t bytes = 0;  // the AEAD's
  const std::uint16_t count = policy_ ? policy_encrypt(enc_count_) : enc_count_;
  enc_count_ = 0;
  // The peers' send lines for the whole batch, all that building the
  // messages reads: at 100 000 peers these misses overlap instead of
  // queueing packet by packet. poll_lan asked for them already; packets
  // handed over by other lcores, or staged, arrive without.
  for (std::uint16_t i = 0; i < count; ++i) enc_items_[i].peer->prefetch_send_line();
  for (std::uint16_t i = 0; i < count; ++i) {
    TxItem it = enc_items_[i];
    wg::Peer& peer = *it.peer;
    // The session first: it needs only the send line. The endpoint (the
    // other line) is looked at here only when there is none, to tell a
    // peer never heard from (dropped) from one waiting for a handshake
    // (staged); a session's peer has an endpoint (the handshake's source,
    // or the one it was sent to), which the send loop checks again, with
    // the WAN's address family, once that line has come in.
    wg::TxSlot slot;
    if (device_->prepare_send(peer, now_, slot) != wg::Drop::kOk) {
      if (!peer.endpoint.valid()) {
        device_->count(wg::Drop::kNoEndpoint);
        rte_pktmbuf_free(it.m);
        continue;
      }
      stage(peer, it.m);
      rearm(peer);  // a handshake may have started: its retransmit timer
      continue;
    }
    const std::uint16_t len = rte_pktmbuf_data_len(it.m);
    const std::uint16_t padded = static_cast<std::uint16_t>(
        wg::padded_length(len, std::max<std::size_t>(settings_.tunnel_mtu, len)));
    char* tail = rte_pktmbuf_append(it.m, static_cast<std::uint16_t>(padded - len + wg::kTagLen));
    auto* hdr = reinterpret_cast<std::uint8_t*>(rte_pktmbuf_prepend(it.m, wg::kDataHeaderLen));
    if (tail == nullptr || hdr == nullptr) {
      drop(it.m, DpDrop::kMalformed);
      continue;
    }
    if (padded != len) std::memset(tail, 0, padded - len);
    wg::write_data_header(hdr, slot.send->remote_index, slot.counter);
    ops[n] = crypto::AeadOp{hdr + wg::kDataHeaderLen, padded, hdr + wg::kDataHeaderLen + padded,
                            slot.send->key.data(), slot.counter, nullptr, 0};
    plain_len[n] = len;
    bytes += padded;
    if (n == 0 || ready[n - 1].peer != it.peer) ++runs;
    ready[n++] = it;
  }
  const std::uint16_t chunk = aead_chunk(bytes, n, runs);
  for (std::uint16_t a = 0; a < n; a = static_cast<std::uint16_t>(a + chunk)) {
    const std::uint16_t b = std::min<std::uint16_t>(n, static_cast<std::uint16_t>(a + chunk));
    for (std::uint16_t i = a; i < b; ++i) ready[i].peer->prefetch_message_line();
    ask_ahead(chunk);
    aead_->encrypt(ops + a, b - a);
  }
  // complete_send() and the timer re-arm once per run of packets to the same
  // peer (device.h: once per peer per burst), not once per packet.
  wg::Peer* run = nullptr;
  std::size_t run_bytes = 0;
  std::uint16_t run_sent = 0;
  bool run_data = false;
  auto finish_run = [&] {
    if (run == nullptr || run_sent == 0) return;
    device_->complete_send(*run, now_, run_bytes, run_data);
    rearm(*run);
  };
  for (std::uint16_t i = 0; i < n; ++i) {
    rte_mbuf* m = ready[i].m;
    if (ready[i].peer != run) {
      finish_run();
      run = ready[i].peer;
      run_bytes = 0;
      run_sent = 0;
      run_data = false;
    }
    const std::uint16_t wg_len = rte_pktmbuf_data_len(m);
    // Encrypted already, so its nonce is spent: a gap the receiver's
    // replay window does not mind. (Not expected: see above.)
    if (!run->endpoint.valid()) [[unlikely]] {
      device_->count(wg::Drop::kNoEndpoint);
      rte_pktmbuf_free(m);
      continue;
    }
    if (!send_outer(m, run->endpoint)) continue;  // no underlay of its family: counted
    ++counters_.encrypted;
    run_bytes += wg_len;
    ++run_sent;
    run_data |= plain_len[i] != 0;
  }
  finish_run();
  in_encrypt_flush_ = false;
  // Handshake completions during this flush may have queued more.
  if (enc_count_ != 0) encrypt_flush();
}

// --- DeviceHost --------------------------------------------------------------

bool Worker::send_handshake(wg::Peer*, const wg::Endpoint& to, const std::uint8_t* msg,
                             std::size_t len) {
  rte_mbuf* m = rte_pktmbuf_alloc(pool_);
  if (m == nullptr) {
    counters_.drop(DpDrop::kNoMbuf);
    return false;
  }
  auto* p = rte_pktmbuf_append(m, static_cast<std::uint16_t>(len));
  if (p == nullptr) {
    drop(m, DpDrop::kNoMbuf);
    return false;
  }
  std::memcpy(p, msg, len);
  return send_outer(m, to);
}

void Worker::flush_staged(wg::Peer& peer, bool keepalive_if_empty) {
  PeerCtx* p = &ctx_of(peer);
  if (p->staged_count == 0) {
    if (!keepalive_if_empty) return;
    rte_mbuf* m = rte_pktmbuf_alloc(pool_);
    if (m == nullptr) {
      counters_.drop(DpDrop::kNoMbuf);
      return;
    }
    tunnel_out(peer, m, Origin::kChecked);  // an empty packet: a keepalive
  } else {
    while (p->staged_count) {
      rte_mbuf* m = p->staged[p->staged_head];
      p->staged_head = static_cast<std::uint16_t>((p->staged_head + 1) % kMaxStaged);
      --p->staged_count;
      tunnel_out(peer, m, Origin::kChecked);
    }
  }
  encrypt_flush();
}

void Worker::purge_staged(wg::Peer& peer) {
  PeerCtx* p = &ctx_of(peer);
  while (p->staged_count) {
    rte_pktmbuf_free(p->staged[p->staged_head]);
    p->staged_head = static_cast<std::uint16_t>((p->staged_head + 1) % kMaxStaged);
    --p->staged_count;
  }
}

// --- loop --------------------------------------------------------------------

// Timers run from the per-lcore wheel (timer_wheel.h), armed lazily: after
// every device call for a peer, rearm() moves its entry only when the peer's
// next deadline came EARLIER; an entry that fires early just re-arms. The
// decision reads the peer's own lines (PeerTimers::arm_earlier keeps the
// armed deadline there): the entry, in the PeerCtx, is touched only when it
// moves, which for a peer with traffic is once per time it goes off.
[[gnu::always_inline]] inline void Worker::rearm(wg::Peer& peer) noexcept {
  wg::Nanos at = 0;
  if (peer.timers.arm_earlier(now_.mono, at)) wheel_->schedule(ctx_of(peer), at);
}

void Worker::run_timers() {
  wheel_->advance(
      now_.mono,
      [this](TimerNode& node) {
        wg::Peer& peer = *static_cast<PeerCtx&>(node).peer;
        peer.timers.host_disarmed();
        const wg::Nanos due = peer.timers.next_deadline();
        if (due != 0 && due <= now_.mono) device_->expire_timers(peer, now_);
        rearm(peer);
      },
      kTimerBudget);
}

void Worker::load_routing() noexcept {
  const Routing* r = shared_.routing.load(std::memory_order_acquire);
  // (No ABA: the old Routing is freed only after this worker's next
  // quiescent point, so a new one at its address is seen as a change.)
  if (r != routing_) lan_memo_ = {};
  routing_ = r;
  // The policy travels with the Routing (netmap_service.h): the classifier
  // and the ids it names change together with the tables. New rules (a new
  // epoch) restart this lcore's per-rule counts; the same rules with other
  // peers behind them (a peer added, renamed, retagged) keep counting. The
  // return-traffic table is kept either way (docs/exit-node.md).
  const PolicyState* p = routing_->policy.get();
  if (p == policy_) return;
  policy_ = p;
  if (p != nullptr && p->epoch != counters_epoch_) {
    rule_counters_->restart(p->rules);
    counters_epoch_ = p->epoch;
  }
}

bool Worker::run_once() {
  // A quiescent point: this worker holds no Routing or peer from before.
  if (rcu_online_) rte_rcu_qsbr_quiescent(shared_.rcu, id_);
  load_routing();
  update_now();
  const std::uint64_t before = counters_.rx_total() + counters_.handoffs_in;
  // Pending commands keep the loop from backing off: a large netmap change
  // is applied at full speed between bursts.
  const bool commands = poll_commands();
  poll_handoff();
  poll_wan();
  for (std::size_t i = 0; i < settings_.ports.size(); ++i) {
    if (settings_.ports[i].role == PortRole::kLan) poll_lan(settings_.ports[i], *neighbors_[i]);
    if (settings_.ports[i].role == PortRole::kKernel) poll_kernel(settings_.ports[i]);
  }
  encrypt_flush();
  run_handshakes();
  encrypt_flush();
  run_timers();
  if (nat_) nat_->expire(now_.mono, 64);
  if (established_) established_->expire(now_.mono, 64);
  if (established6_) established6_->expire(now_.mono, 64);
  report();
  const bool moon = settings_.moon_port != 0 && moon_drain();
  handoff_flush();
  tx_flush();
  return commands || moon || counters_.rx_total() + counters_.handoffs_in != before || hs_count_ != 0;
}

void Worker::run(const std::atomic<bool>& stop, void (*housekeeping)(void*), void* arg) {
  if (shared_.rcu != nullptr) {
    rte_rcu_qsbr_thread_register(shared_.rcu, id_);
    rte_rcu_qsbr_thread_online(shared_.rcu, id_);
    rcu_online_ = true;
  }
  std::uint32_t idle_us = 0;
  while (!stop.load(std::memory_order_relaxed)) {
    const bool busy = run_once();
    if (housekeeping != nullptr) housekeeping(arg);
    if (!busy && !settings_.busy_poll) {
      // Idle: back off progressively so a VM's shared cores (and the test
      // peers on this machine) get CPU; a packet resets it.
      idle_us = idle_us == 0 ? 1 : std::min(idle_us * 2, kMaxIdleSleepUs);
      rte_delay_us_sleep(idle_us);
    } else {
      idle_us = 0;
    }
  }
  if (rcu_online_) {
    rte_rcu_qsbr_thread_offline(shared_.rcu, id_);
    rte_rcu_qsbr_thread_unregister(shared_.rcu, id_);
    rcu_online_ = false;
  }
}

// --- netmap changes (netmap_service.h) -----------------------------------------

bool Worker::poll_commands() {
  if (shared_.commands.empty()) return false;
  // A few per iteration: adding a peer costs a DH (tens of microseconds),
  // and traffic must keep flowing while thousands are added.
  void* c[8];
  const unsigned n = rte_ring_sc_dequeue_burst(shared_.commands[id_], c, 8, nullptr);
  for (unsigned i = 0; i < n; ++i) {
    std::unique_ptr<Command> cmd(static_cast<Command*>(c[i]));
    apply(*cmd);
    commands_done_.fetch_add(1, std::memory_order_release);
  }
  return n != 0;
}

void Worker::apply(Command& c) {
  switch (c.kind) {
    case Command::Kind::kAddPeer:
      if (add_peer(*c.peer, c.settings) == nullptr) counters_.drop(DpDrop::kPeerRefused);
      break;
    case Command::Kind::kUpdatePeer: {
      wg::Peer* peer = c.peer->peer;
      if (peer == nullptr) break;
      if (c.settings.has_psk)
        device_->set_preshared_key(*peer, c.settings.preshared_key);
      else
        device_->set_preshared_key(*peer, crypto::SecretKey{});
      if (c.endpoint_changed) peer->endpoint = c.settings.endpoint;
      c.peer->exit_node = c.settings.exit_node;  // read only here, by the owner
      if (peer->timers.persistent_keepalive() != c.settings.persistent_keepalive)
        device_->set_persistent_keepalive(*peer, c.settings.persistent_keepalive, now_);
      rearm(*peer);
      break;
    }
    case Command::Kind::kRemovePeer: {
      PeerCtx& p = *c.peer;
      if (p.peer == nullptr) break;
      purge_staged(*p.peer);
      wheel_->cancel(p);
      device_->remove_peer(p.peer);  // wipes its keys and forgets its indices
      p.peer = nullptr;
      shared_.refs[p.id].peer = nullptr;
      owned_.erase(std::find(owned_.begin(), owned_.end(), &p));
      owned_count_.store(owned_.size(), std::memory_order_relaxed);
      report_cursor_ = 0;
      break;
    }
    case Command::Kind::kSetPrivateKey:
      device_->set_private_key(c.private_key);  // sessions under the old key end
      break;
  }
}

void Worker::report() {
  if (!report_sweep_) {
    if (now_.mono < next_report_) return;
    next_report_ = now_.mono + wg::kSecond;
    report_sweep_ = true;
    report_cursor_ = 0;
    report_counters();
  }
  // A slice per iteration keeps the loop's worst case flat at 100 000 peers.
  const std::size_t end = std::min(owned_.size(), report_cursor_ + 256);
  for (; report_cursor_ < end; ++report_cursor_) {
    PeerCtx& p = *owned_[report_cursor_];
    const wg::Peer& peer = *p.peer;
    const bool changed = peer.rx_bytes != p.stats_rx || peer.tx_bytes != p.stats_tx ||
                         peer.handshakes_completed != p.stats_handshakes || !(peer.endpoint == p.stats_endpoint);
    if (!changed) continue;
    p.stats_rx = peer.rx_bytes;
    p.stats_tx = peer.tx_bytes;
    p.stats_handshakes = peer.handshakes_completed;
    p.stats_last_handshake_ns = peer.last_handshake_wall_ns;
    p.stats_endpoint = peer.endpoint;
    if (shared_.segment == nullptr) continue;
    netmap::Event e;
    e.type = netmap::EventType::kPeerStats;
    e.worker = id_;
    std::memcpy(e.key, peer.public_key().data(), 32);
    e.family = peer.endpoint.family;
    std::memcpy(e.addr, peer.endpoint.addr, 16);
    e.port = peer.endpoint.port;
    e.v0 = peer.rx_bytes;
    e.v1 = peer.tx_bytes;
    e.v2 = peer.last_handshake_wall_ns;
    e.v3 = peer.handshakes_completed;
    if (!shared_.segment->push(id_, e)) {
      // The control process is away or slow: try this peer again next second.
      p.stats_rx = ~std::uint64_t{0};
    }
  }
  if (report_cursor_ >= owned_.size()) report_sweep_ = false;
}

void Worker::report_counters() {
  if (shared_.segment == nullptr) return;
  auto send = [&](std::string_view name, std::uint64_t v) {
    netmap::Event e;
    e.type = netmap::EventType::kCounter;
    e.worker = id_;
    e.set_name(name);
    e.v0 = v;
    shared_.segment->push(id_, e);
  };
  for (const Port& p : settings_.ports)
    if (p.id < 8) {
      send("rx_" + p.name, counters_.rx_packets[p.id]);
      send("tx_" + p.name, counters_.tx_packets[p.id]);
    }
  send("decrypted", counters_.decrypted);
  send("encrypted", counters_.encrypted);
  send("handshakes_in", counters_.handshakes_in);
  send("handoffs_out", counters_.handoffs_out);
  send("to_kernel", counters_.to_kernel);
  send("icmp_errors", counters_.icmp_errors);
  send("icmp_errors_limited", counters_.icmp_errors_limited);
  if (settings_.moon_port != 0) {
    send("moon_in", counters_.moon_in);
    send("moon_out", counters_.moon_out);
  }
  for (std::size_t i = 0; i < kDpDropCount; ++i)
    if (counters_.drops[i]) send(std::string("drop_") + dp_drop_name(static_cast<DpDrop>(i)), counters_.drops[i]);
  if (nat_) {
    const nat::NatCounters& c = nat_->counters();
    send("nat_flows", nat_->flow_count());
    send("nat_translated_out", c.translated_out);
    send("nat_translated_in", c.translated_in);
    send("nat_icmp_errors_in", c.icmp_errors_in);
    send("nat_flows_created", c.flows_created);
    send("nat_flows_expired", c.flows_expired);
    for (std::size_t i = 0; i < nat::kNatDropCount; ++i)
      if (c.drops[i]) send(std::string("nat_drop_") + nat::nat_drop_name(static_cast<nat::NatDrop>(i)), c.drops[i]);
  }
  // Once a policy has been in force (with --control the counters exist
  // from the start, a policy perhaps never comes).
  if (rule_counters_ && counters_epoch_ != 0) {
    send("policy_denied", rule_counters_->denied());
    send("policy_established", rule_counters_->established_count());
    send("policy_flows", established_->size() + established6_->size());
    // How many rule counters follow (the rules of the policy in force; 0
    // without one): the control process shows no rule beyond it.
    send("policy_rules", policy_ ? rule_counters_->rules() : 0);
    send("policy_epoch", counters_epoch_);
    for (std::size_t r = 0; r < rule_counters_->rules(); ++r)
      send("policy_rule_" + std::to_string(r) + "_accepted", rule_counters_->accepted(r));
  }
  for (std::size_t i = 1; i < wg::kDropCount; ++i)
    if (device_->drop_counters()[i])
      send(std::string("wg_drop_") + wg::drop_name(static_cast<wg::Drop>(i)), device_->drop_counters()[i]);
}

}  // namespace moongate::dp
