// The moon hosted by the data plane (dataplane/moon_host.h), driven one step
// at a time under an EAL without hugepages: the wan port is a ring ethdev
// (192.0.2.2/24 via 192.0.2.1, 2001:db8::2/64), one worker (dp::Gateway),
// the MoonHost's loop body (run_once) called in between; the test plays the
// wan gateway and an on-link IPv6 client, answering ARP and ND. Checked:
//  - a packet relayed between two IPv4 clients leaves the wan port to the
//    gateway's MAC, from 192.0.2.2:9993 to the client, UDP checksum valid,
//    the ZeroTier bytes unchanged but for the hop count, with RENDEZVOUS
//    to both;
//  - a packet from an IPv6 client is relayed to an IPv4 one; one to it
//    is held while the worker solicits its address, then leaves to its
//    MAC with a valid IPv6 UDP checksum;
//  - a worker whose ring to the moon is full drops and counts
//    (moon_queue_full) instead of waiting, and what was queued is relayed.
#include <gtest/gtest.h>
#include <rte_eal.h>
#include <rte_eth_ring.h>
#include <rte_ethdev.h>
#include <rte_mbuf.h>
#include <rte_ring.h>

#include <cstring>
#include <memory>
#include <vector>

#include "dataplane/gateway.h"
#include "dataplane/moon_host.h"
#include "dataplane/moon_wire.h"
#include "dataplane/net/ipv4.h"
#include "dataplane/net/ipv6.h"
#include "dataplane/net/ndp.h"
#include "dataplane/net/udp.h"
#include "tests/support/eal_main.h"
#include "tests/unit/zerotier/test_util.h"

namespace moongate::dp {
namespace {

using zerotier::Endpoint;

constexpr std::uint16_t kMoonPort = 9993;
constexpr std::size_t kEth = 14;
const rte_ether_addr kGwMac = {{0x02, 0, 0, 0, 0, 0x01}};
const rte_ether_addr kV6Mac = {{0x02, 0, 0, 0, 0, 0x10}};

Endpoint v6_client() {
  Endpoint e;
  e.parse("2001:db8::10/4003");
  return e;
}

// The data plane, its moon and three clients, made once per process (the
// EAL objects have fixed names).
struct World {
  rte_ring* rx = nullptr;
  rte_ring* tx = nullptr;
  rte_mempool* pool = nullptr;
  std::uint16_t port = 0;
  rte_ether_addr wan_mac{};
  std::unique_ptr<Gateway> gw;
  std::unique_ptr<MoonHost> host;
  std::vector<zerotier::Identity> clients;  // 0, 1: IPv4 behind the gateway; 2: IPv6 on-link
  std::vector<Endpoint> eps;
  std::uint64_t now_ms = 1000;

  World() {
    const int socket = static_cast<int>(rte_socket_id());
    rx = rte_ring_create("mt_wan_rx", 4096, socket, RING_F_SP_ENQ | RING_F_SC_DEQ);
    tx = rte_ring_create("mt_wan_tx", 4096, socket, RING_F_SP_ENQ | RING_F_SC_DEQ);
    pool = rte_pktmbuf_pool_create("mt_pool", 8191, 256, 0, RTE_MBUF_DEFAULT_BUF_SIZE, socket);
    const int id = rte_eth_from_rings("mtwan", &rx, 1, &tx, 1, static_cast<unsigned>(socket));
    EXPECT_GE(id, 0);
    port = static_cast<std::uint16_t>(id);
    char dev[RTE_ETH_NAME_MAX_LEN];
    rte_eth_dev_get_name_by_port(port, dev);

    Settings s;
    crypto::PublicKey unused;
    crypto::x25519_generate(s.private_key, unused);
    s.max_peers = 4;
    s.moon_port = kMoonPort;
    Port w;
    w.name = "wan";
    w.role = PortRole::kWan;
    w.device = dev;
    w.v4 = {Ipv4Iface{htonl(0xC0000202), 24}};
    w.gateway_v4 = htonl(0xC0000201);
    Ipv6Iface a6;
    Endpoint ours;
    ours.parse("2001:db8::2/1");
    std::memcpy(a6.addr.data(), ours.ip.data(), 16);
    a6.prefix_len = 64;
    w.v6 = {a6};
    s.ports = {w};
    gw = std::make_unique<Gateway>();
    const std::string err = gw->init(std::move(s));
    EXPECT_EQ(err, "");
    // The ring PMD's MAC is all zeros (and cannot be set), which ND refuses
    // as a link-layer address: the port gets one, as a NIC has.
    wan_mac = {{0x02, 0, 0, 0, 0, 0x02}};
    gw->shared().settings.ports[0].mac = wan_mac;
    // The gateway asks for us first (as a router does before forwarding the
    // clients' datagrams): the worker learns its MAC from the request.
    rte_mbuf* m = rte_pktmbuf_alloc(pool);
    auto* f = reinterpret_cast<std::uint8_t*>(rte_pktmbuf_append(m, 42));
    const std::uint8_t req[42] = {0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x02, 0, 0, 0, 0, 0x01, 0x08, 0x06,
                                  0, 1, 0x08, 0, 6, 4, 0, 1, 0x02, 0, 0, 0, 0, 0x01, 192, 0, 2, 1,
                                  0, 0, 0, 0, 0, 0, 192, 0, 2, 2};
    std::memcpy(f, req, sizeof req);
    EXPECT_EQ(rte_ring_sp_enqueue(rx, m), 0);
    gw->run_once();
    std::size_t replies = 0;
    void* mv;
    while (rte_ring_sc_dequeue(tx, &mv) == 0) {
      ++replies;
      rte_pktmbuf_free(static_cast<rte_mbuf*>(mv));
    }
    EXPECT_EQ(replies, 1u);

    const zerotier::Identity& self = zerotier::test::valid_identity(0);
    zerotier::MoonConfig cfg;
    cfg.defer_verification = true;
    auto moon = std::make_unique<zerotier::Moon>(self, zerotier::test::make_world(self, 1), cfg);
    eps = {Endpoint::v4(0xC6336401, 4001), Endpoint::v4(0xC6336402, 4002), v6_client()};
    for (std::size_t i = 0; i < eps.size(); ++i) {
      clients.push_back(zerotier::test::unchecked_identity(0x0100000000ull + i * 7919));
      EXPECT_TRUE(moon->add_verified_peer(clients.back(), eps[i], now_ms));
    }
    host = std::make_unique<MoonHost>(gw->shared(), std::move(moon));
  }
  ~World() {
    host.reset();
    gw.reset();
  }

  // A packet from client a to client b, sealed with their pair key.
  std::vector<std::uint8_t> relay_packet(std::size_t a, std::size_t b, std::size_t size, std::uint64_t id) {
    zerotier::PeerKey k;
    EXPECT_TRUE(clients[a].agree(clients[b].pub, k));
    std::vector<std::uint8_t> p(size);
    zerotier::write_header(p.data(), id, clients[b].address, clients[a].address, zerotier::Verb::kFrame);
    for (std::size_t j = zerotier::kIdxPayload; j < size; ++j) p[j] = static_cast<std::uint8_t>(j * 7 + id);
    zerotier::armor(p, k.data(), true);
    return p;
  }

  // The frame client `a` sends to the moon (IPv4 through the gateway).
  void send(std::size_t a, const std::vector<std::uint8_t>& payload) {
    rte_mbuf* m = rte_pktmbuf_alloc(pool);
    ASSERT_NE(m, nullptr);
    const Endpoint& from = eps[a];
    const bool v6 = from.family == 6;
    const std::size_t hdr = moon_header_len(from.family);
    auto* f = reinterpret_cast<std::uint8_t*>(rte_pktmbuf_append(m, static_cast<std::uint16_t>(kEth + hdr + payload.size())));
    std::memcpy(f, wan_mac.addr_bytes, 6);
    std::memcpy(f + 6, v6 ? kV6Mac.addr_bytes : kGwMac.addr_bytes, 6);
    f[12] = v6 ? 0x86 : 0x08;
    f[13] = v6 ? 0xdd : 0x00;
    std::memcpy(f + kEth + hdr, payload.data(), payload.size());
    // Our own header writer, with the addresses swapped: the client's
    // datagram to the moon's port.
    Endpoint to;
    to.family = from.family;
    if (v6) {
      to.parse("2001:db8::2/9993");
    } else {
      to = Endpoint::v4(0xC0000202, kMoonPort);
    }
    ASSERT_EQ(write_moon_headers(f + kEth, hdr + payload.size(), from.ip.data(), from.port, to, payload.size()),
              hdr + payload.size());
    ASSERT_EQ(rte_ring_sp_enqueue(rx, m), 0);
  }

  // Frames the wan port sent, ARP and ND answered (as the gateway and the
  // IPv6 client would), the rest returned.
  std::vector<std::vector<std::uint8_t>> drain() {
    std::vector<std::vector<std::uint8_t>> out;
    void* mv;
    while (rte_ring_sc_dequeue(tx, &mv) == 0) {
      auto* m = static_cast<rte_mbuf*>(mv);
      const auto* f = rte_pktmbuf_mtod(m, const std::uint8_t*);
      const std::size_t len = rte_pktmbuf_data_len(m);
      if (f[12] == 0x08 && f[13] == 0x06) {
        answer_arp(f);
      } else if (f[12] == 0x86 && f[13] == 0xdd && len > kEth + 40 && f[kEth + 6] == 58 &&
                 f[kEth + 40] == net::kIcmpv6NeighborSolicitation) {
        answer_ns(f, len);
      } else {
        out.emplace_back(f, f + len);
      }
      rte_pktmbuf_free(m);
    }
    return out;
  }
  void answer_arp(const std::uint8_t* req) {
    rte_mbuf* r = rte_pktmbuf_alloc(pool);
    auto* f = reinterpret_cast<std::uint8_t*>(rte_pktmbuf_append(r, 42));
    std::memcpy(f, req + 6, 6);
    std::memcpy(f + 6, kGwMac.addr_bytes, 6);
    std::memcpy(f + 12, req + 12, 2 + 6);  // type, htype, ptype, hlen, plen
    f[20] = 0, f[21] = 2;                  // reply
    std::memcpy(f + 22, kGwMac.addr_bytes, 6);
    std::memcpy(f + 28, req + 38, 4);  // sender: the target asked for
    std::memcpy(f + 32, req + 22, 10);  // target: the asker's MAC and IP
    EXPECT_EQ(rte_ring_sp_enqueue(rx, r), 0);
  }
  void answer_ns(const std::uint8_t* f, std::size_t len) {
    net::NeighborSolicitation ns;
    ASSERT_TRUE(net::parse_neighbor_solicitation(f + kEth, len - kEth, ns)) << [&] {
      std::string hex;
      char b[4];
      for (std::size_t i = 0; i < len; ++i) std::snprintf(b, sizeof b, "%02x", f[i]), hex += b;
      return hex;
    }();
    const Endpoint c = v6_client();
    ASSERT_EQ(std::memcmp(ns.target.data(), c.ip.data(), 16), 0);
    net::Ipv6Address ours{};
    std::memcpy(ours.data(), c.ip.data(), 16);
    rte_mbuf* r = rte_pktmbuf_alloc(pool);
    auto* out = reinterpret_cast<std::uint8_t*>(rte_pktmbuf_append(r, 86));
    ASSERT_EQ(net::build_na_reply(out, 86, ns, net::MacAddress::load(f + 6), net::MacAddress::load(kV6Mac.addr_bytes),
                                  ours, false),
              86u);
    EXPECT_EQ(rte_ring_sp_enqueue(rx, r), 0);
  }

  void step() {
    gw->run_once();
    host->run_once(now_ms);
    gw->run_once();
  }
  // Steps until `n` frames (not ARP/ND) came out, at most `spins` times.
  std::vector<std::vector<std::uint8_t>> collect(std::size_t n, int spins = 2000) {
    std::vector<std::vector<std::uint8_t>> got;
    for (int i = 0; i < spins && got.size() < n; ++i) {
      step();
      for (auto& f : drain()) got.push_back(std::move(f));
    }
    return got;
  }
  std::uint64_t drops(DpDrop d) const { return gw->totals().drops[static_cast<std::size_t>(d)]; }
};

World* g_world = nullptr;

// The ZeroTier bytes of a frame from the moon to `to`, its headers checked.
std::vector<std::uint8_t> from_moon(const std::vector<std::uint8_t>& f, const Endpoint& to,
                                    const rte_ether_addr& mac) {
  EXPECT_EQ(std::memcmp(f.data(), mac.addr_bytes, 6), 0) << "not to the next hop's MAC";
  MoonDatagram d;
  EXPECT_TRUE(parse_moon_frame(f.data(), f.size(), d));
  const std::uint8_t* ip = f.data() + kEth;
  if (to.family == 4) {
    net::Ipv4Header h;
    EXPECT_EQ(net::parse_ipv4(ip, f.size() - kEth, h), net::Ipv4Status::kOk);
    EXPECT_EQ(d.from, Endpoint::v4(0xC0000202, kMoonPort));
    EXPECT_EQ(std::memcmp(h.dst.data(), to.ip.data(), 4), 0);
    EXPECT_TRUE(net::udp_checksum_valid_v4(ip + 20, static_cast<std::uint16_t>(8 + d.length), h.src, h.dst));
  } else {
    net::Ipv6Header h;
    EXPECT_EQ(net::parse_ipv6(ip, f.size() - kEth, h), net::Ipv6Status::kOk);
    Endpoint ours;
    ours.parse("2001:db8::2/9993");
    EXPECT_EQ(d.from, ours);
    EXPECT_EQ(std::memcmp(h.dst.data(), to.ip.data(), 16), 0);
    EXPECT_TRUE(net::udp_checksum_valid_v6(ip + 40, static_cast<std::uint16_t>(8 + d.length), h.src, h.dst));
  }
  EXPECT_EQ((f[d.offset - 6] << 8) | f[d.offset - 5], to.port);
  return {f.begin() + d.offset, f.begin() + d.offset + d.length};
}

TEST(MoonHost, RelaysBetweenIpv4ClientsThroughTheWanPort) {
  World& w = *g_world;
  const auto p = w.relay_packet(0, 1, 300, 1);
  w.send(0, p);
  // The relayed packet and a RENDEZVOUS to each end.
  const auto got = w.collect(3);
  ASSERT_EQ(got.size(), 3u);
  std::size_t relayed = 0, rendezvous = 0;
  for (const auto& f : got) {
    // Which client it is for: its UDP destination port (IPv4, no options).
    const auto dport = static_cast<std::uint16_t>(f[36] << 8 | f[37]);
    const std::size_t to = dport == w.eps[0].port ? 0 : 1;
    ASSERT_EQ(dport, w.eps[to].port);
    const auto z = from_moon(f, w.eps[to], kGwMac);
    ASSERT_GE(z.size(), zerotier::kIdxPayload);
    const zerotier::Address source = zerotier::load_address(z.data() + zerotier::kIdxSource);
    if (source == w.clients[0].address) {
      ++relayed;
      EXPECT_EQ(to, 1u);
      EXPECT_EQ(z[zerotier::kIdxFlags] & 7, 1) << "hop count";
      std::vector<std::uint8_t> expect = p;
      expect[zerotier::kIdxFlags] = static_cast<std::uint8_t>(expect[zerotier::kIdxFlags] + 1);
      EXPECT_EQ(z, expect) << "relayed bytes changed beyond the hop count";
    } else {
      EXPECT_EQ(source, w.host->moon().identity().address);  // the moon's RENDEZVOUS
      ++rendezvous;
    }
  }
  EXPECT_EQ(relayed, 1u);
  EXPECT_EQ(rendezvous, 2u);
  EXPECT_EQ(w.host->moon().counters().relayed, 1u);
}

TEST(MoonHost, RelaysToAndFromAnIpv6Client) {
  World& w = *g_world;
  // C (IPv6, on-link) to A: relayed to A through the gateway (no RENDEZVOUS
  // between paths of different families).
  const auto c_to_a = w.relay_packet(2, 0, 600, 2);
  w.send(2, c_to_a);
  auto got = w.collect(1);
  ASSERT_EQ(got.size(), 1u);
  auto z = from_moon(got[0], w.eps[0], kGwMac);
  std::vector<std::uint8_t> expect = c_to_a;
  expect[zerotier::kIdxFlags] = static_cast<std::uint8_t>(expect[zerotier::kIdxFlags] + 1);
  EXPECT_EQ(z, expect);
  // A to C: the worker solicits C's address, holds the packet, and sends
  // it to C's MAC once the advertisement arrives.
  const auto a_to_c = w.relay_packet(0, 2, 1200, 3);
  w.send(0, a_to_c);
  got = w.collect(1);
  ASSERT_EQ(got.size(), 1u);
  z = from_moon(got[0], v6_client(), kV6Mac);
  expect = a_to_c;
  expect[zerotier::kIdxFlags] = static_cast<std::uint8_t>(expect[zerotier::kIdxFlags] + 1);
  EXPECT_EQ(z, expect);
  EXPECT_EQ(w.drops(DpDrop::kNeighborPending), 0u);
}

TEST(MoonHost, FullRingIsACountedDropNotAWait) {
  World& w = *g_world;
  const std::uint64_t full0 = w.drops(DpDrop::kMoonQueueFull);
  const std::uint64_t in0 = w.gw->totals().moon_in;
  const std::uint64_t relayed0 = w.host->moon().counters().relayed;
  constexpr unsigned kExtra = 7;
  const auto p = w.relay_packet(1, 0, 100, 3);
  for (unsigned i = 0; i < kMoonRingSize + kExtra; ++i) w.send(1, p);
  // Only the worker runs: the moon's thread is "stalled".
  for (int i = 0; i < 1000 && rte_ring_count(w.rx) != 0; ++i) w.gw->run_once();
  ASSERT_EQ(rte_ring_count(w.rx), 0u);
  EXPECT_EQ(w.drops(DpDrop::kMoonQueueFull) - full0, kExtra);
  EXPECT_EQ(w.gw->totals().moon_in - in0, kMoonRingSize);
  // The moon catches up: every queued frame is relayed to A (and, if this
  // test runs alone, the pair's two RENDEZVOUS leave too).
  std::size_t to_a = 0;
  for (int i = 0; i < 20000 && to_a < kMoonRingSize; ++i) {
    w.step();
    for (const auto& f : w.drain()) {
      const std::size_t to = (f[36] << 8 | f[37]) == w.eps[0].port ? 0 : 1;
      to_a += to == 0 && from_moon(f, w.eps[to], kGwMac).size() == p.size() ? 1 : 0;
    }
  }
  EXPECT_EQ(to_a, kMoonRingSize);
  EXPECT_EQ(w.host->moon().counters().relayed - relayed0, kMoonRingSize);
}

}  // namespace
}  // namespace moongate::dp

int main(int argc, char** argv) {
  return moongate::test::run_with_eal(argc, argv, "unit-moon-host", [] {
    moongate::dp::World world;
    moongate::dp::g_world = &world;
    const int rc = RUN_ALL_TESTS();
    moongate::dp::g_world = nullptr;
    return rc;
  });
}
