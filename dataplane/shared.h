// What every worker lcore reads and nobody writes while traffic flows: the
// settings, the allowed-IPs tables (global peer ids), the peer directory
// (id -> owner and context, public key -> id) and the hand-off rings.
// Built by Gateway::init before the workers start.
//
// Per-peer state that changes per packet lives in the owner's wg::Device
// and PeerCtx and is touched by the owner alone (handoff.h).
#pragma once

#include <array>
#include <cstdint>
#include <memory>
#include <utility>
#include <vector>

#include "crypto/secret.h"
#include "dataplane/port.h"
#include "dataplane/timer_wheel.h"
#include "wireguard/endpoint.h"
#include "wireguard/huge_pages.h"
#include "wireguard/peer.h"

struct rte_hash;
struct rte_lpm;
struct rte_lpm6;
struct rte_mbuf;
struct rte_mempool;
struct rte_ring;

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

struct StaticRoute6 {
  Ipv6Iface prefix;
  Ipv6Bytes via{};
  std::size_t port_index = 0;
};

struct Settings {
  crypto::SecretKey private_key;
  std::uint16_t listen_port = 51820;
  std::uint16_t tunnel_mtu = 1420;
  std::vector<Port> ports;
  std::vector<PeerSettings> peers;
  std::vector<StaticRoute> routes;
  std::vector<StaticRoute6> routes6;
  std::uint32_t max_peers = 100000;
  std::uint16_t workers = 1;  // worker lcores; each polls one queue of every port
  bool busy_poll = false;
};

// One per configured peer. `owner` and `peer` are fixed at init; the rest
// (the staged packets, the owner's timer wheel entry) belongs to the owner.
// Cache-line aligned: the timer node, id, owner and peer (what every packet
// reads) share the first line; the staged ring is for sessions in the making.
// Allocated from a huge-page slab (wireguard/huge_pages.h).
struct alignas(64) PeerCtx : TimerNode, wg::OnHugeSlab<PeerCtx> {
  std::uint32_t id = 0;      // global id: what the allowed-IPs tables return
  std::uint16_t owner = 0;   // worker index
  wg::Peer* peer = nullptr;  // in the owner's device
  // Packets waiting for a session (oldest first, ring of kMaxStaged).
  rte_mbuf* staged[kMaxStaged] = {};
  std::uint16_t staged_head = 0;
  std::uint16_t staged_count = 0;
};

// What the LAN path needs of a peer to route to it, in a flat array by id:
// one look-up gives the owner and both objects to prefetch, without first
// waiting for the PeerCtx line (at 100 000 peers, a cache miss).
struct PeerRef {
  PeerCtx* ctx = nullptr;
  wg::Peer* peer = nullptr;  // in the owner's device: only the owner touches it
  std::uint16_t owner = 0;
};

struct Shared {
  Settings settings;
  rte_mempool* pool = nullptr;
  std::size_t wan = 0;  // index of the WAN port in settings.ports
  rte_lpm* allowed_v4 = nullptr;
  rte_lpm6* allowed_v6 = nullptr;
  std::vector<std::unique_ptr<PeerCtx>> peers;  // by global id
  std::vector<PeerRef> refs;                    // by global id
  rte_hash* by_key = nullptr;                   // public key -> global id
  std::vector<rte_ring*> rings;                 // [from * workers + to]
  int handoff_field = -1;                       // mbuf dynfield offset

  std::uint16_t workers() const noexcept { return settings.workers; }
  rte_ring* ring(std::uint16_t from, std::uint16_t to) const noexcept {
    return rings[static_cast<std::size_t>(from) * settings.workers + to];
  }
  // The peer with this public key, or nullptr (handshake slow path).
  PeerCtx* peer_by_key(const crypto::PublicKey& key) const noexcept;
};

}  // namespace moongate::dp
