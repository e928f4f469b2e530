// The data plane of one site: WAN and LAN ports, the WireGuard device, the
// allowed-IPs table and the run-to-completion loop.
//
// Loop (one iteration):
//   1. WAN rx burst -> classify each frame:
//        ARP -> answer / learn; ICMP echo to us -> reply;
//        UDP to our listen port -> WireGuard: data to the decrypt batch,
//        handshakes to the bounded handshake queue; anything else: counted drop.
//      One AeadBurst::decrypt over the batch; then per packet: replay
//      window + timers (Device::complete_receive), allowed-IPs source check,
//      route the inner packet: to a LAN next hop, or (hub) to another peer
//      through the encrypt batch.
//      Handshakes wait in a bounded queue (kHandshakeQueue), consumed at
//      most kHandshakeBudget per iteration; when it runs 1/8 full the
//      device answers with cookies (wg::LoadDetector), when it is full
//      they are dropped and counted.
//   2. LAN rx burst -> ARP / ICMP echo to us; IPv4 -> allowed-IPs LPM on the
//      destination -> the peer -> the encrypt batch.
//   3. Encrypt batch -> Device::prepare_send per packet (no session: the
//      packet is staged on its peer and a handshake starts) -> one
//      AeadBurst::encrypt -> UDP/IPv4/Ethernet to the peer's endpoint.
//   4. TX flush per port; timers of due peers; idle back-off.
//
// Ownership: today one worker lcore owns every peer (multi-lcore with peer
// hand-off over rings is the next step); nothing here is shared between
// threads except the stop flag.
#pragma once

#include <rte_ether.h>

#include <atomic>
#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "crypto/aead_burst.h"
#include "dataplane/counters.h"
#include "dataplane/neighbor.h"
#include "dataplane/port.h"
#include "wireguard/clock.h"
#include "wireguard/device.h"
#include "wireguard/load.h"

struct rte_ipv4_hdr;
struct rte_lpm;
struct rte_lpm6;
struct rte_mbuf;
struct rte_mempool;

namespace moongate::net {
struct Ipv4Header;
}

namespace moongate::dp {

inline constexpr std::uint16_t kBurst = 32;
// Handshake messages wait in a bounded queue across loop iterations; each
// iteration consumes at most kHandshakeBudget (DH work is ~100 us each), so
// a flood fills the queue, trips cookie mode, then is dropped and counted.
inline constexpr std::uint16_t kHandshakeQueue = 256;
inline constexpr std::uint16_t kHandshakeBudget = 16;
inline constexpr std::uint16_t kMaxStaged = 32;

struct PeerSettings {
  crypto::PublicKey public_key{};
  crypto::SecretKey preshared_key;
  bool has_psk = false;
  std::vector<std::pair<std::uint32_t, std::uint8_t>> allowed_v4;  // addr (network order), len
  std::vector<std::pair<Ipv6Bytes, std::uint8_t>> allowed_v6;
  wg::Endpoint endpoint;
  std::uint16_t persistent_keepalive = 0;
};

// A static route toward a LAN next hop (config `routes`).
struct StaticRoute {
  Ipv4Iface prefix;          // addr + length
  std::uint32_t via = 0;     // network order
  std::size_t port_index = 0;
};

struct Settings {
  crypto::SecretKey private_key;
  std::uint16_t listen_port = 51820;
  std::uint16_t tunnel_mtu = 1420;
  std::vector<Port> ports;
  std::vector<PeerSettings> peers;
  std::vector<StaticRoute> routes;
  std::uint32_t max_peers = 100000;
  bool busy_poll = false;
};

class Gateway final : public wg::DeviceHost {
 public:
  Gateway();
  ~Gateway() override;
  Gateway(const Gateway&) = delete;
  Gateway& operator=(const Gateway&) = delete;

  // Opens the ports and builds the tables; an operator-readable error or "".
  std::string init(Settings settings);
  // Runs the loop on the calling lcore until stop() (signal handler safe).
  void run();
  // One iteration of the loop, without the idle back-off (benchmarks, tests
  // that drive the data plane step by step). True when anything arrived.
  bool run_once();
  static void stop() noexcept { stop_.store(true, std::memory_order_relaxed); }
  // Asks the loop to write status() to the status file (SIGUSR1; signal safe).
  static void request_status() noexcept { status_requested_.store(true, std::memory_order_relaxed); }
  void set_status_file(std::string path) { status_file_ = std::move(path); }

  const LcoreCounters& counters() const noexcept { return counters_; }
  const std::vector<Port>& ports() const noexcept { return settings_.ports; }
  const std::array<std::uint64_t, wg::kDropCount>& wg_drop_counters() const noexcept {
    return device_->drop_counters();
  }
  std::size_t peer_count() const noexcept { return peers_.size(); }
  const wg::Peer& peer(std::size_t i) const noexcept { return *peers_[i]->peer; }
  wg::Device& device() noexcept { return *device_; }
  const char* aead_arch() const noexcept { return aead_->arch_name(); }
  // A human-readable dump of ports, peers and counters (SIGUSR1, exit).
  std::string status() const;

 private:
  struct PeerCtx {
    std::uint32_t id = 0;
    wg::Peer* peer = nullptr;
    rte_mbuf* staged[kMaxStaged] = {};
    std::uint16_t staged_head = 0;
    std::uint16_t staged_count = 0;
  };
  struct TxBuffer {
    rte_mbuf* pkts[kBurst * 4] = {};
    std::uint16_t count = 0;
  };

  // DeviceHost
  bool send_handshake(wg::Peer* peer, const wg::Endpoint& to, const std::uint8_t* msg,
                      std::size_t len) override;
  void flush_staged(wg::Peer& peer, bool keepalive_if_empty) override;
  void purge_staged(wg::Peer& peer) override;

  void poll_wan();
  void poll_lan(Port& port, NeighborTable& neigh);
  bool handle_local(Port& port, NeighborTable& neigh, rte_mbuf* m);  // ARP, ICMP echo to us
  void handle_arp(Port& port, NeighborTable& neigh, rte_mbuf* m);
  void wireguard_in(rte_mbuf* m, std::uint32_t src_ip, std::uint16_t src_port,
                    std::uint16_t wg_off, std::uint16_t wg_len);
  void decrypt_flush();
  void route_inner(PeerCtx& from, rte_mbuf* m);
  void route_inner_v6(PeerCtx& from, rte_mbuf* m);
  void lan_v6(Port& port, std::size_t port_index, rte_mbuf* m);
  void send_ipv6(Port& port, NeighborTable& neigh, rte_mbuf* m, const std::uint8_t* next_hop);
  void send_packet_too_big(Port& port, std::size_t port_index, const std::uint8_t* offending,
                           std::size_t len);
  PeerCtx* peer_for_v6(const std::uint8_t* dst) const noexcept;
  void tunnel_out(PeerCtx& peer, rte_mbuf* m);  // m starts at the inner IP header
  void send_frag_needed(Port& port, NeighborTable& neigh, const std::uint8_t* offending,
                        std::size_t len);
  void encrypt_flush();
  void stage(PeerCtx& peer, rte_mbuf* m);
  void send_ipv4(Port& port, NeighborTable& neigh, rte_mbuf* m, std::uint32_t next_hop);
  bool send_to_neighbor(Port& port, NeighborTable& neigh, rte_mbuf* m, const void* next_hop,
                        std::uint16_t ether_type);
  void learn_neighbor(Port& port, NeighborTable& neigh, const void* addr, const rte_ether_addr& mac);
  void send_arp_request(Port& port, std::uint32_t target);
  void tx(Port& port, rte_mbuf* m);
  void tx_flush();
  void run_timers();
  PeerCtx* peer_for_v4(std::uint32_t dst) const noexcept;
  void drop(rte_mbuf* m, DpDrop reason) noexcept;
  bool check_ipv4(rte_mbuf* m, const std::uint8_t* p, std::size_t len, net::Ipv4Header& h) noexcept;
  void write_outer(rte_ipv4_hdr* ip, std::uint32_t dst, std::uint16_t dst_port,
                   std::uint16_t payload_len) noexcept;
  Port* lan_port_for(std::uint32_t dst, std::uint32_t& next_hop) noexcept;
  wg::Instant now() const noexcept { return now_; }
  void update_now() noexcept;

  Settings settings_;
  rte_mempool* pool_ = nullptr;
  std::unique_ptr<crypto::AeadBurst> aead_;
  std::unique_ptr<wg::Device> device_;
  wg::LoadDetector load_;
  rte_lpm* allowed_v4_ = nullptr;
  std::vector<std::unique_ptr<PeerCtx>> peers_;
  std::vector<std::unique_ptr<NeighborTable>> neighbors_;  // per port, same index
  std::vector<std::unique_ptr<NeighborTable>> neighbors6_; // per port, same index
  rte_lpm6* allowed_v6_ = nullptr;
  std::vector<TxBuffer> txbufs_;                           // per port
  Port* wan_ = nullptr;
  NeighborTable* wan_neigh_ = nullptr;
  wg::Instant now_{};
  std::uint64_t wall_offset_ = 0;          // CLOCK_REALTIME - CLOCK_MONOTONIC
  std::uint64_t wall_offset_refresh_ = 0;
  std::uint64_t next_timer_scan_ = 0;
  std::size_t timer_cursor_ = 0;
  LcoreCounters counters_;

  // Decrypt batch.
  struct RxItem {
    rte_mbuf* m;
    wg::RxSlot slot;
    wg::Endpoint src;
    std::uint16_t wg_off;
    std::uint16_t wg_len;
  };
  RxItem rx_items_[kBurst];
  std::uint16_t rx_count_ = 0;
  // Handshake queue (slow path, bounded).
  struct HsItem {
    rte_mbuf* m;
    wg::Endpoint src;
    std::uint16_t wg_off;
    std::uint16_t wg_len;
  };
  HsItem hs_items_[kHandshakeQueue];  // ring
  std::uint16_t hs_head_ = 0;
  std::uint16_t hs_count_ = 0;
  void run_handshakes();
  // Encrypt batch.
  struct TxItem {
    rte_mbuf* m;
    PeerCtx* peer;
  };
  TxItem enc_items_[kBurst * 2];
  std::uint16_t enc_count_ = 0;
  bool in_encrypt_flush_ = false;

  void write_status_file() const;

  std::string status_file_;
  static std::atomic<bool> stop_;
  static std::atomic<bool> status_requested_;
};

}  // namespace moongate::dp
