// What every worker lcore reads: the settings, the current Routing (allowed
// IPs -> global peer ids, routes; routing.h), the peer directory (id ->
// owner and context, public key -> id) and the hand-off rings. Built by
// Gateway::init before the workers start; afterwards only the netmap
// service (netmap_service.h) changes the routing and the directory, in an
// order that lets the workers read without locks.
//
// Per-peer state that changes per packet lives in the owner's wg::Device
// and PeerCtx and is touched by the owner alone (handoff.h).
#pragma once

#include <array>
#include <atomic>
#include <cstdint>
#include <memory>
#include <optional>
#include <utility>
#include <vector>

#include "crypto/secret.h"
#include "dataplane/net/address.h"
#include "dataplane/port.h"
#include "nat/nat44.h"
#include "policy/compile.h"
#include "dataplane/timer_wheel.h"
#include "wireguard/endpoint.h"
#include "wireguard/huge_pages.h"
#include "wireguard/peer.h"

struct rte_hash;
struct rte_mbuf;
struct rte_mempool;
struct rte_rcu_qsbr;
struct rte_ring;

namespace moongate::policy {
class AclClassifier;
}

namespace moongate::netmap {
class Segment;
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
  // May use the gateway as its exit to the internet (docs/exit-node.md).
  bool exit_node = false;
  // DH(our private key, public_key), when the netmap service computed it off
  // the workers (wg::Device::add_peer).
  crypto::SecretKey static_static;
  bool has_static_static = false;
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
  // The gateway's own address toward its peers, per family (network order;
  // 0 / nullopt: none): the first of interface.addresses, else the first
  // LAN port's, else the wan's. The source of ICMP errors sent into a
  // tunnel (Worker::tunnel_time_exceeded).
  std::uint32_t self_v4 = 0;
  std::optional<net::Ipv6Address> self_v6;
  std::vector<Port> ports;
  std::vector<PeerSettings> peers;
  std::vector<StaticRoute> routes;
  std::vector<StaticRoute6> routes6;
  std::uint32_t max_peers = 100000;
  std::uint16_t workers = 1;  // worker lcores; each polls one queue of every port
  bool busy_poll = false;
  // Exit node (docs/exit-node.md): NAT44 for exit-node peers' IPv4 traffic
  // routed out of the wan port, when set. `lcores` and `seed` are filled by
  // the Gateway; the pool by the caller (the wan address when masquerading).
  bool nat = false;
  nat::Nat44Config nat_config;
  // The wan port's `internet` prefixes (IPv4); empty: everything.
  std::vector<Ipv4Iface> internet_v4;
  // IPv6 exit (routed, no NAT66): the wan port's `routed_prefixes` (return
  // traffic to them goes to the peer whose allowed IPs hold the address)
  // and its IPv6 `internet` prefixes (`internet_v6_all`: not restricted).
  std::vector<Ipv6Iface> routed_v6;
  std::vector<Ipv6Iface> internet_v6;
  bool internet_v6_all = true;
  // The access policy (docs/exit-node.md), when set: compiled with source
  // peer ids = the data plane's global id + 1 (0: not from a peer). Each
  // worker keeps its own return-traffic table of `policy_flows` entries.
  bool policy = false;
  policy::CompiledPolicy policy_compiled;
  // --control: the policy is the netmap's and may come, change or go with
  // any generation; workers then size their per-rule counters for
  // `policy_rule_capacity` rules once (netmap::kSnapshotMaxRules).
  bool policy_from_netmap = false;
  std::size_t policy_rule_capacity = 0;
  std::size_t policy_flows = 65536;
  std::uint64_t policy_timeout_ns = 600'000'000'000ULL;  // idle, either way
  // The ZeroTier moon (moon_host.h): UDP to the wan port's addresses on
  // this port goes to it. 0: no moon.
  std::uint16_t moon_port = 0;
};

// Each direction of the moon's per-worker rings holds this many mbufs
// (moon_host.h): a worker's rx burst is 32, the moon thread drains every
// ring once per pass, so this absorbs a pass's stall of ~1 ms at line rate
// for the moon's traffic; beyond it frames are dropped and counted
// (moon_queue_full), never waited for.
inline constexpr unsigned kMoonRingSize = 1024;

// One per peer. `id` and `owner` are fixed when the peer is created; `peer`
// is set by the owner when it adds the peer to its device and cleared when
// it removes it; the rest (staged packets, the timer wheel entry, what was
// last reported to the control process) belongs to the owner.
// The packet paths do not read it per packet: the global id and the
// deadline the timer entry is armed for have copies on the wg::Peer's
// per-message lines (Peer::host_id, PeerTimers::arm_earlier), and the LAN
// path finds owner and peer in Shared::refs. It is read to stage a packet,
// to move the timer entry, and by the exit and hub paths.
// Cache-line aligned: the timer node, id, owner and peer share the first
// line; the stats copies and the staged ring come after. Allocated from a
// huge-page slab (wireguard/huge_pages.h).
struct alignas(64) PeerCtx : TimerNode, wg::OnHugeSlab<PeerCtx> {
  std::uint32_t id = 0;      // global id: what the allowed-IPs tables return
  std::uint16_t owner = 0;   // worker index
  bool exit_node = false;    // PeerSettings::exit_node; the owner's (kUpdatePeer changes it)
  wg::Peer* peer = nullptr;  // in the owner's device; nullptr once removed
  // A copy of the peer's counters the owner refreshes about once a second
  // (Worker::report) for readers on other threads — status, telemetry, the
  // control process's events — which must never touch a wg::Peer that its
  // owner may remove at any moment.
  std::uint64_t stats_rx = 0;
  std::uint64_t stats_tx = 0;
  std::uint64_t stats_handshakes = 0;
  std::uint64_t stats_last_handshake_ns = 0;  // wall clock
  wg::Endpoint stats_endpoint;
  // Packets waiting for a session (oldest first, ring of kMaxStaged).
  rte_mbuf* staged[kMaxStaged] = {};
  std::uint16_t staged_head = 0;
  std::uint16_t staged_count = 0;
};

// What the LAN path needs of a peer to route to it, in a flat array by id:
// one look-up gives the owner and both objects to prefetch, without first
// waiting for the PeerCtx line (at 100 000 peers, a cache miss).
// Kept in step with Shared::peers: `ctx` and `owner` are written with the
// slot (Gateway::init, the netmap service when it gives the id out), before
// any Routing refers to the id and so before any worker reads them; `peer`
// is written by the owner alone, with PeerCtx::peer (Worker::add_peer and
// the removal command), and read only by the owner, so it needs no
// ordering with the other threads.
struct PeerRef {
  PeerCtx* ctx = nullptr;
  wg::Peer* peer = nullptr;  // in the owner's device; nullptr when not (yet, or no longer) there
  std::uint16_t owner = 0;
};

struct Routing;

struct Shared {
  Settings settings;
  rte_mempool* pool = nullptr;
  std::size_t wan = 0;  // index of the WAN port in settings.ports
  // The current lookup tables; workers load it once per loop iteration.
  std::atomic<const Routing*> routing{nullptr};
  // By global id, max_peers slots made once (never resized while workers
  // run); a slot is filled before any routing refers to its id.
  std::vector<std::unique_ptr<PeerCtx>> peers;
  std::vector<PeerRef> refs;                 // by global id, as `peers` (PeerRef)
  std::atomic<std::uint32_t> peer_slots{0};  // ids in use are below this
  rte_hash* by_key = nullptr;                // public key -> global id
  std::vector<rte_ring*> rings;              // hand-offs, [from * workers + to]
  std::vector<rte_ring*> commands;           // netmap service -> worker
  rte_rcu_qsbr* rcu = nullptr;               // workers report quiescent states
  netmap::Segment* segment = nullptr;        // events to the control process, if attached
  int handoff_field = -1;                    // mbuf dynfield offset
  // With a moon (Settings::moon_port), per worker: frames for the moon's
  // thread (worker -> moon) and IP packets it sends (moon -> worker, which
  // adds Ethernet through its neighbour tables). SP/SC, made by the Gateway.
  std::vector<rte_ring*> moon_rx, moon_tx;

  std::uint16_t workers() const noexcept { return settings.workers; }
  rte_ring* ring(std::uint16_t from, std::uint16_t to) const noexcept {
    return rings[static_cast<std::size_t>(from) * settings.workers + to];
  }
  // The peer with this public key, or nullptr (handshake slow path).
  PeerCtx* peer_by_key(const crypto::PublicKey& key) const noexcept;
};

}  // namespace moongate::dp
