// Reading one burst ahead (dataplane/worker.cc, "Reading ahead"), driven
// one iteration at a time under an EAL without hugepages: one worker
// (dp::Gateway), a wan and a lan port on ring ethdevs, the test on the other
// side of both. Echo requests to the port's own address are answered in
// place, one reply per request, so what a port received and in which order
// can be read off its tx ring. Checked, on each port:
//  - a full burst of large frames has the next burst read in the same
//    iteration (the port's rx counter is ahead of the replies by one
//    burst), and every request is answered once, in order, with the
//    counter counting each once;
//  - small frames are read a burst per iteration;
//  - a burst read ahead is processed in the next iteration even when the
//    queue is then empty: nothing is stranded and the loop reports work;
//  - the gateway frees a burst it holds when it is destroyed.
#include <gtest/gtest.h>
#include <rte_eal.h>
#include <rte_eth_ring.h>
#include <rte_ethdev.h>
#include <rte_ip.h>
#include <rte_mbuf.h>
#include <rte_ring.h>

#include <arpa/inet.h>

#include <cstring>
#include <memory>
#include <vector>

#include "dataplane/gateway.h"
#include "dataplane/net/ipv4.h"
#include "tests/support/eal_main.h"

namespace moongate::dp {
namespace {

constexpr std::size_t kEth = 14;
constexpr std::uint16_t kBurstSize = 32;  // the data plane's burst (worker.h kBurst)
constexpr unsigned kPoolSize = 4095;
constexpr std::uint16_t kLarge = 1000;  // ICMP payload bytes: frames well over the read-ahead threshold
constexpr std::uint16_t kSmall = 32;
const rte_ether_addr kHostMac = {{0x02, 0, 0, 0, 0, 0x01}};

struct Side {
  rte_ring* rx = nullptr;
  rte_ring* tx = nullptr;
  std::uint16_t port = 0;
  std::uint32_t addr = 0;  // the gateway's address on it (host order)
  std::uint32_t host = 0;  // the test's
  rte_ether_addr mac{};
};

struct World {
  rte_mempool* pool = nullptr;
  Side wan, lan;
  std::unique_ptr<Gateway> gw;

  World() {
    const int socket = static_cast<int>(rte_socket_id());
    pool = rte_pktmbuf_pool_create("ra_pool", kPoolSize, 0, 0, RTE_MBUF_DEFAULT_BUF_SIZE, socket);
    EXPECT_NE(pool, nullptr);
    open(wan, "wan", 0xC0000202, 0xC0000201, 0x02);
    open(lan, "lan", 0x0A0A0001, 0x0A0A0002, 0x03);
    Settings s;
    crypto::PublicKey unused;
    crypto::x25519_generate(s.private_key, unused);
    s.max_peers = 4;
    s.ports = {port_settings(wan, "wan", PortRole::kWan), port_settings(lan, "lan", PortRole::kLan)};
    gw = std::make_unique<Gateway>();
    EXPECT_EQ(gw->init(std::move(s)), "");
    gw->shared().settings.ports[0].mac = wan.mac;
    gw->shared().settings.ports[1].mac = lan.mac;
  }

  void open(Side& side, const char* name, std::uint32_t addr, std::uint32_t host, std::uint8_t mac) {
    const int socket = static_cast<int>(rte_socket_id());
    const std::string n = name;
    side.rx = rte_ring_create(("ra_" + n + "_rx").c_str(), 1024, socket, RING_F_SP_ENQ | RING_F_SC_DEQ);
    side.tx = rte_ring_create(("ra_" + n + "_tx").c_str(), 1024, socket, RING_F_SP_ENQ | RING_F_SC_DEQ);
    const int id = rte_eth_from_rings(("ra" + n).c_str(), &side.rx, 1, &side.tx, 1, static_cast<unsigned>(socket));
    EXPECT_GE(id, 0);
    side.port = static_cast<std::uint16_t>(id);
    side.addr = addr;
    side.host = host;
    side.mac = {{0x02, 0, 0, 0, 0, mac}};
  }

  static Port port_settings(const Side& side, const char* name, PortRole role) {
    char dev[RTE_ETH_NAME_MAX_LEN];
    rte_eth_dev_get_name_by_port(side.port, dev);
    Port p;
    p.name = name;
    p.role = role;
    p.device = dev;
    p.v4 = {Ipv4Iface{htonl(side.addr), 24}};
    return p;
  }

  std::uint64_t received(const Side& side) const { return gw->totals().rx_packets[side.port]; }

  // `count` echo requests from the test's host to the gateway's address on
  // `side`, sequence numbers from `seq`, each with `payload` bytes.
  void send_echoes(const Side& side, std::uint16_t seq, unsigned count, std::uint16_t payload) {
    for (unsigned i = 0; i < count; ++i) {
      rte_mbuf* m = rte_pktmbuf_alloc(pool);
      ASSERT_NE(m, nullptr);
      const auto len = static_cast<std::uint16_t>(kEth + 20 + 8 + payload);
      auto* f = reinterpret_cast<std::uint8_t*>(rte_pktmbuf_append(m, len));
      ASSERT_NE(f, nullptr);
      std::memcpy(f, side.mac.addr_bytes, 6);
      std::memcpy(f + 6, kHostMac.addr_bytes, 6);
      f[12] = 0x08;
      f[13] = 0x00;
      net::Ipv4Params ip;
      const std::uint32_t src = htonl(side.host), dst = htonl(side.addr);
      std::memcpy(ip.src.data(), &src, 4);
      std::memcpy(ip.dst.data(), &dst, 4);
      ip.protocol = IPPROTO_ICMP;
      ip.payload_len = static_cast<std::uint16_t>(8 + payload);
      ASSERT_EQ(net::write_ipv4_header(f + kEth, len - kEth, ip), 20u);
      std::uint8_t* icmp = f + kEth + 20;
      const auto s = static_cast<std::uint16_t>(seq + i);
      const std::uint8_t hdr[8] = {8, 0, 0, 0, 0x12, 0x34, static_cast<std::uint8_t>(s >> 8),
                                   static_cast<std::uint8_t>(s)};
      std::memcpy(icmp, hdr, 8);
      for (std::uint16_t j = 0; j < payload; ++j) icmp[8 + j] = static_cast<std::uint8_t>(s + j);
      const std::uint16_t sum = static_cast<std::uint16_t>(~rte_raw_cksum(icmp, 8u + payload));
      std::memcpy(icmp + 2, &sum, 2);
      ASSERT_EQ(rte_ring_sp_enqueue(side.rx, m), 0);
    }
  }

  // The echo replies `side` sent since the last call: their sequence
  // numbers, in order.
  std::vector<std::uint16_t> replies(const Side& side) {
    std::vector<std::uint16_t> seqs;
    void* mv;
    while (rte_ring_sc_dequeue(side.tx, &mv) == 0) {
      auto* m = static_cast<rte_mbuf*>(mv);
      const auto* f = rte_pktmbuf_mtod(m, const std::uint8_t*);
      EXPECT_GE(rte_pktmbuf_data_len(m), kEth + 28u);
      EXPECT_EQ(f[kEth + 20], 0) << "not an echo reply";
      seqs.push_back(static_cast<std::uint16_t>(f[kEth + 26] << 8 | f[kEth + 27]));
      rte_pktmbuf_free(m);
    }
    return seqs;
  }
};

World* g_world = nullptr;

std::vector<std::uint16_t> range(std::uint16_t from, unsigned n) {
  std::vector<std::uint16_t> v(n);
  for (unsigned i = 0; i < n; ++i) v[i] = static_cast<std::uint16_t>(from + i);
  return v;
}

void full_burst_of_large_frames_reads_the_next_one(World& w, Side& s) {
  constexpr unsigned kCount = 3 * kBurstSize + 5;
  const std::uint64_t rx0 = w.received(s);
  const std::uint64_t ahead0 = w.gw->totals().read_ahead;
  w.send_echoes(s, 100, kCount, kLarge);
  EXPECT_TRUE(w.gw->run_once());
  // One burst answered, the next already taken off the queue.
  EXPECT_EQ(w.replies(s), range(100, kBurstSize));
  EXPECT_EQ(w.received(s) - rx0, 2u * kBurstSize);
  EXPECT_EQ(w.gw->totals().read_ahead - ahead0, 1u);
  EXPECT_EQ(rte_ring_count(s.rx), kCount - 2u * kBurstSize);
  std::vector<std::uint16_t> all = range(100, kBurstSize);
  for (int i = 0; i < 10 && all.size() < kCount; ++i) {
    w.gw->run_once();
    const std::vector<std::uint16_t> r = w.replies(s);
    all.insert(all.end(), r.begin(), r.end());
  }
  EXPECT_EQ(all, range(100, kCount));
  EXPECT_EQ(w.received(s) - rx0, kCount);
  // Every burst behind a full one was read ahead: the second, the third
  // and the partial fourth (behind which nothing more is read).
  EXPECT_EQ(w.gw->totals().read_ahead - ahead0, 3u);
}

void small_frames_are_read_a_burst_per_iteration(World& w, Side& s) {
  const std::uint64_t rx0 = w.received(s);
  const std::uint64_t ahead0 = w.gw->totals().read_ahead;
  w.send_echoes(s, 300, 2 * kBurstSize, kSmall);
  EXPECT_TRUE(w.gw->run_once());
  EXPECT_EQ(w.replies(s), range(300, kBurstSize));
  EXPECT_EQ(w.received(s) - rx0, kBurstSize);
  EXPECT_TRUE(w.gw->run_once());
  EXPECT_EQ(w.replies(s), range(300 + kBurstSize, kBurstSize));
  EXPECT_EQ(rte_ring_count(s.rx), 0u);
  EXPECT_EQ(w.gw->totals().read_ahead, ahead0);
}

void burst_read_ahead_is_not_stranded(World& w, Side& s) {
  const std::uint64_t rx0 = w.received(s);
  w.send_echoes(s, 500, 2 * kBurstSize, kLarge);
  EXPECT_TRUE(w.gw->run_once());
  EXPECT_EQ(w.replies(s), range(500, kBurstSize));
  ASSERT_EQ(rte_ring_count(s.rx), 0u);  // the second burst is held by the worker
  // The queue is empty now; the held burst still goes out next iteration.
  w.gw->run_once();
  EXPECT_EQ(w.replies(s), range(500 + kBurstSize, kBurstSize));
  EXPECT_EQ(w.received(s) - rx0, 2u * kBurstSize);
  EXPECT_FALSE(w.gw->run_once());  // and then there is nothing left
  EXPECT_TRUE(w.replies(s).empty());
}

TEST(ReadAhead, WanFullBurstOfLargeFramesReadsTheNextOne) {
  full_burst_of_large_frames_reads_the_next_one(*g_world, g_world->wan);
}
TEST(ReadAhead, LanFullBurstOfLargeFramesReadsTheNextOne) {
  full_burst_of_large_frames_reads_the_next_one(*g_world, g_world->lan);
}
TEST(ReadAhead, WanSmallFramesAreReadABurstPerIteration) {
  small_frames_are_read_a_burst_per_iteration(*g_world, g_world->wan);
}
TEST(ReadAhead, LanSmallFramesAreReadABurstPerIteration) {
  small_frames_are_read_a_burst_per_iteration(*g_world, g_world->lan);
}
TEST(ReadAhead, WanBurstReadAheadIsNotStrandedWhenTheQueueEmpties) {
  burst_read_ahead_is_not_stranded(*g_world, g_world->wan);
}
TEST(ReadAhead, LanBurstReadAheadIsNotStrandedWhenTheQueueEmpties) {
  burst_read_ahead_is_not_stranded(*g_world, g_world->lan);
}

// Last in this file (gtest runs a file's plain TESTs in the order they are
// defined): a gateway destroyed while it holds a burst read ahead frees it.
TEST(ReadAhead, HeldBurstIsFreedWithTheGateway) {
  World& w = *g_world;
  ASSERT_NE(w.gw, nullptr);
  ASSERT_TRUE(w.replies(w.wan).empty());
  ASSERT_EQ(rte_mempool_avail_count(w.pool), kPoolSize);
  w.send_echoes(w.wan, 700, 2 * kBurstSize, kLarge);
  w.gw->run_once();
  EXPECT_EQ(w.replies(w.wan).size(), kBurstSize);
  ASSERT_EQ(rte_ring_count(w.wan.rx), 0u);
  EXPECT_LT(rte_mempool_avail_count(w.pool), kPoolSize);  // the worker holds the second burst
  w.gw.reset();
  EXPECT_EQ(rte_mempool_avail_count(w.pool), kPoolSize);
}

}  // namespace
}  // namespace moongate::dp

int main(int argc, char** argv) {
  return moongate::test::run_with_eal(argc, argv, "unit-read-ahead", [] {
    moongate::dp::World world;
    moongate::dp::g_world = &world;
    const int rc = RUN_ALL_TESTS();
    moongate::dp::g_world = nullptr;
    return rc;
  });
}
