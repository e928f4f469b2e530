// One worker lcore's run-to-completion loop. Each worker polls its own
// queue of every port, owns a share of the peers (its own wg::Device) and
// its own neighbour tables, TX buffers and counters; what it shares with the
// other workers is read-only (shared.h) or an SPSC ring (handoff.h).
//
// Loop (one iteration):
//   0. Hand-off rings in: packets other workers passed to this one.
//   1. WAN rx burst (its mbufs and first data lines prefetched, or, when
//      it was read ahead, what of them is still to ask for) -> classify
//      each frame:
//        ARP -> answer / learn (and a copy to the other workers);
//        ICMP echo to us -> reply;
//        UDP to our listen port -> WireGuard: data and responses to the
//        owner named by the receiver index (this worker: the decrypt batch,
//        the receive line the index names prefetched), initiations to the bounded
//        handshake queue;
//        UDP to a wan address on the moon's port -> the moon thread's
//        ring (moon_host.h; full: moon_queue_full);
//        other IPv4 to a NAT address (exit node) -> Nat44 inbound: the
//        owner of the port slice translates it (others hand the frame
//        over, kNatReturn) -> the peer's encrypt batch, no policy check;
//        IPv6 to a routed prefix -> the peer holding the address (with a
//        policy: classified on its owner's encrypt path, as from a LAN);
//        anything else: the TAP or a counted drop.
//      A full burst of large frames: the port's next burst is read now
//      and its lines asked for a few packets at a time between this
//      burst's AEAD calls (worker.cc, "Reading ahead").
//      Decrypt batch (flush_rx, decrypt_flush): expiry and replay
//      pre-checks (Device::prepare_receive, on the receive line; then the
//      peers' two lines for the burst, into L2) -> AeadBurst::decrypt
//      (one call, or calls of kAheadChunk while a burst read ahead waits)
//      -> the inner sources and destinations looked up
//      in the allowed-IPs LPM together -> per packet: the replay window
//      (Device::accept_receive), the source check (Peer::host_id), TTL
//      -> with a policy, the burst classified by rte_acl (policy_flush,
//      IPv6 in its own batch and context: policy_flush6: accept and note,
//      a reply of a noted flow, or policy_denied) -> route the inner packet:
//      (hub) to another peer (through the encrypt batch, or to its owner),
//      to a LAN next hop, or the exit: an exit_node peer's packet to an
//      internet destination out of the WAN, IPv4 NAT'ed as a burst
//      (exit_flush: prefetch, prefetch_flow, translate), IPv6 routed;
//      per run of packets from one peer: endpoint,
//      counters, timers (Device::received) and the timer-wheel entry.
//      Handshakes wait in a bounded queue (kHandshakeQueue), consumed at
//      most kHandshakeBudget per iteration; when it runs 1/8 full the
//      device answers with cookies (wg::LoadDetector), when it is full
//      they are dropped and counted. An initiation from a peer another
//      worker owns is handed to it once its static key is decrypted.
//   2. LAN rx burst (prefetched, with the headroom the outer headers will
//      use) -> ARP / ND / ICMP echo to us; other traffic to us -> the port's
//      TAP (exception path, kernel_interface.h); IPv4 -> allowed-IPs LPM on
//      the destinations of the whole burst -> the peer (its lines
//      prefetched when this worker owns it) -> its owner -> the encrypt
//      batch (a full burst of large frames: the next one read ahead, as on
//      the WAN). TAP rx -> out of its port as it is.
//   3. Encrypt batch -> with a policy, LAN packets classified (source peer
//      0; IPv4 and IPv6) and hub packets noted on this, the destination peer's, lcore
//      (policy_encrypt) -> Device::prepare_send per packet (keypairs
//      prefetched a few packets ahead; no session: the packet is staged on
//      its peer and a handshake starts) -> AeadBurst::encrypt (one call;
//      calls of 8 for a batch to many peers, of 4 while a burst read ahead
//      waits) ->
//      UDP/IPv4/Ethernet to the peer's endpoint; Device::complete_send and
//      the timer-wheel entry once per run of packets to one peer.
//   4. Timers of due peers (a per-lcore timer wheel); NAT and policy flow
//      expiry (bounded); the moon's packets to send (moon_drain:
//      Ethernet through the neighbour tables); hand-off rings out; TX
//      flush per port; idle back-off.
//
// Nothing here allocates, locks or throws per packet. The prefetches are
// hints: at 100 000 peers every packet's per-peer state (the receive line
// or the PeerRef, and two lines of the peer each way) is a cache miss, and asking
// for a whole burst's lines a stage ahead lets those misses overlap
// (docs/perf.md). The PeerCtx is not read per packet: what the packet paths
// need of it (the global id, the armed timer deadline) is kept on the
// peer's lines; it is touched to stage a packet, to move the timer entry,
// and on the exit, policy and hub paths.
#pragma once

#include <rte_ether.h>

#include <array>
#include <atomic>
#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "crypto/aead_burst.h"
#include "dataplane/counters.h"
#include "dataplane/handoff.h"
#include "dataplane/neighbor.h"
#include "dataplane/net/ipv6.h"
#include "dataplane/port.h"
#include "dataplane/rate_limit.h"
#include "dataplane/routing.h"
#include "dataplane/shared.h"
#include "dataplane/timer_wheel.h"
#include "nat/nat44.h"
#include "policy/acl.h"
#include "policy/counters.h"
#include "policy/established.h"
#include "wireguard/clock.h"
#include "wireguard/device.h"
#include "wireguard/load.h"

struct rte_ipv4_hdr;

namespace moongate::net {
struct Ipv4Header;
}

namespace moongate::dp {

// Where a packet bound for a peer came from, for the access policy on the
// peer owner's encrypt path (encrypt_flush): a LAN packet is classified
// there (source peer 0), a peer's packet (hub, already accepted on its
// decrypting lcore) only noted so the reply is recognised on this lcore;
// kChecked needs nothing (NAT returns, staged packets, keepalives). IPv6
// from the wan port to a routed prefix counts as kLan: it is not a NAT
// return, so it meets the policy like a LAN host's packet.
enum class Origin : std::uint8_t { kChecked, kLan, kPeer };

class Worker final : public wg::DeviceHost {
 public:
  Worker(std::uint16_t id, Shared& shared);
  ~Worker() override;
  Worker(const Worker&) = delete;
  Worker& operator=(const Worker&) = delete;

  // Builds the device and the neighbour tables; an operator-readable error
  // or "". Peers are added by the Gateway (add_peer) before the loop runs.
  std::string init();
  wg::Peer* add_peer(PeerCtx& ctx, const PeerSettings& ps);

  // One iteration of the loop, without the idle back-off. True when
  // anything arrived.
  bool run_once();
  // Takes the current Routing (done at the top of every iteration; the
  // Gateway calls it once before adding the configured peers).
  // Loads the published Routing and, with it, the policy in force.
  void load_routing() noexcept;

  // A change from the netmap service (netmap_service.h), applied by the
  // worker between bursts; the worker owns `cmd` from then on.
  struct Command {
    enum class Kind : std::uint8_t { kAddPeer, kUpdatePeer, kRemovePeer, kSetPrivateKey } kind;
    PeerCtx* peer = nullptr;
    PeerSettings settings;   // kAddPeer, kUpdatePeer (psk, endpoint, keepalive)
    bool endpoint_changed = false;
    crypto::SecretKey private_key;  // kSetPrivateKey
  };
  // Commands applied so far (the service waits for its count).
  std::uint64_t commands_done() const noexcept { return commands_done_.load(std::memory_order_acquire); }
  std::size_t owned_peers() const noexcept { return owned_count_.load(std::memory_order_relaxed); }
  // Runs until `stop` is set, backing off when idle (unless busy_poll);
  // `housekeeping(arg)` (if given) runs once per iteration (status file).
  void run(const std::atomic<bool>& stop, void (*housekeeping)(void*) = nullptr, void* arg = nullptr);

  std::uint16_t id() const noexcept { return id_; }
  const LcoreCounters& counters() const noexcept { return counters_; }
  wg::Device& device() noexcept { return *device_; }
  const wg::Device& device() const noexcept { return *device_; }
  const char* aead_arch() const noexcept { return aead_->arch_name(); }
  // This worker's NAT44 (nullptr without `nat:`); its counters and flow
  // count are read by status and telemetry (a slightly stale view).
  const nat::Nat44* nat() const noexcept { return nat_.get(); }
  // This worker's per-rule counters (nullptr without a policy).
  const policy::RuleCounters* rule_counters() const noexcept { return rule_counters_.get(); }
  const policy::Established* established() const noexcept { return established_.get(); }
  const policy::Established6* established6() const noexcept { return established6_.get(); }

 private:
  struct TxBuffer {
    rte_mbuf* pkts[kBurst * 4] = {};
    std::uint16_t count = 0;
  };
  struct HandoffBuffer {
    rte_mbuf* pkts[kBurst * 2] = {};
    std::uint16_t count = 0;
  };

  // DeviceHost
  bool send_handshake(wg::Peer* peer, const wg::Endpoint& to, const std::uint8_t* msg,
                      std::size_t len) override;
  void flush_staged(wg::Peer& peer, bool keepalive_if_empty) override;
  void purge_staged(wg::Peer& peer) override;

  Port& port(std::size_t i) noexcept { return shared_.settings.ports[i]; }
  std::size_t port_index(const Port& p) const noexcept {
    return static_cast<std::size_t>(&p - shared_.settings.ports.data());
  }

  // Hand-off (handoff.h).
  void handoff(std::uint16_t to, rte_mbuf* m);
  void handoff_flush();
  void poll_handoff();
  void replicate_neighbor_frame(std::size_t port_index, rte_mbuf* m);

  void poll_wan();
  // The moon (moon_host.h, worker_moon.cc): a frame to its UDP port goes to
  // the moon thread's ring; its replies come back as IP packets to send out
  // of the wan port. moon_drain returns true when it sent any.
  void moon_in(rte_mbuf* m);
  bool moon_drain();
  void poll_lan(Port& port, NeighborTable& neigh);
  bool handle_local(Port& port, NeighborTable& neigh, rte_mbuf* m);  // ARP, ICMP echo to us
  void handle_arp(Port& port, NeighborTable& neigh, rte_mbuf* m, bool learn_only);
  void handle_nd(Port& port, rte_mbuf* m, bool learn_only);
  void to_kernel(Port& port, rte_mbuf* m);  // the exception path
  void poll_kernel(Port& tap);
  void wan_v6(rte_mbuf* m);
  // m's message at wg_off (its outer source is read back from the frame,
  // outer_source() in worker.cc, where needed).
  inline void wireguard_in(rte_mbuf* m, std::uint16_t wg_off, std::uint16_t wg_len, bool routed);
  // m starts at a WireGuard message: adds UDP and IP (v4 or v6, as `to`) from
  // our WAN address and listen port, and sends it toward `to`. False (m
  // freed, counted) when the WAN has no address of that family.
  inline bool send_outer(rte_mbuf* m, const wg::Endpoint& to);
  void queue_handshake(rte_mbuf* m, const wg::Endpoint& src, std::uint16_t wg_off,
                       std::uint16_t wg_len, bool macs_checked);
  void flush_rx();
  void decrypt_flush();
  inline void route_inner(wg::Peer& from, rte_mbuf* m, std::uint32_t src_id, std::uint32_t dst_id);
  // After the checks of route_inner (and the policy): to a peer, a LAN or
  // the exit.
  inline void forward_inner(wg::Peer& from, rte_mbuf* m, net::Ipv4Header& h, std::uint32_t dst_id);
  // The decrypt path's policy stage: the packets route_inner queued,
  // classified as a burst, then accepted (noted), let through as replies,
  // or dropped (policy_denied).
  void policy_flush();
  // The policy's view of an IPv4 packet (h completed by the caller).
  static policy::Packet policy_packet(const std::uint8_t* ip, const net::Ipv4Header& h,
                                      std::uint32_t peer) noexcept;
  // The encrypt path's policy stage over enc_items_[0, n): returns the
  // count kept (denied packets freed and counted). Its IPv6 half marks
  // the IPv6 packets it denies in `denied`.
  std::uint16_t policy_encrypt(std::uint16_t n) noexcept;
  void policy_encrypt6(std::uint16_t n, bool* denied) noexcept;
  void route_inner_v6(wg::Peer& from, rte_mbuf* m);
  // After the checks of route_inner_v6 (and the policy): to a peer, a LAN,
  // a static route or the exit.
  void forward_inner_v6(wg::Peer& from, rte_mbuf* m, const net::Ipv6Header& h);
  // The IPv6 policy stage of the decrypt path (as policy_flush).
  void policy_flush6();
  static policy::Packet6 policy_packet6(const std::uint8_t* ip, const net::Ipv6Header& h,
                                        std::uint32_t peer) noexcept;
  // Exit node (docs/exit-node.md). exit_out: a decrypted IPv4 packet no
  // peer, LAN or route claims: checked (exit_node peer, internet
  // destination) and queued for exit_flush, which translates the queue as
  // a burst (prefetch, prefetch_flow, translate) and sends it out of the
  // wan port. nat_in: an IPv4 frame received on the wan port (or handed
  // over, `routed`) that may be NAT return traffic; false when it is not
  // (the caller's local handling goes on), true when consumed.
  void exit_out(PeerCtx& from, rte_mbuf* m, net::Ipv4Header& h);
  void exit_flush();
  bool nat_in(rte_mbuf* m, net::Ipv4Header& h, bool routed);
  void nat_prefetch(rte_mbuf* const* pkts, std::uint16_t n) noexcept;
  bool nat_pool(std::uint32_t addr) const noexcept {
    for (std::uint32_t a : nat_pool_) if (a == addr) return true;
    return false;
  }
  bool internet(std::uint32_t dst) const noexcept;
  void lan_v6(Port& port, rte_mbuf* m);
  void send_ipv6(Port& port, NeighborTable& neigh, rte_mbuf* m, const std::uint8_t* next_hop);
  void send_packet_too_big(Port& port, const std::uint8_t* offending, std::size_t len);
  void forward_v6_to_peer(Port& port, PeerCtx& peer, rte_mbuf* m, std::uint8_t* p, std::size_t total);
  // Allowed-IPs look-ups of n IPv4 addresses: peer ids, kNoPeer for none.
  static constexpr std::uint32_t kNoPeer = UINT32_MAX;
  void lookup_v4(const std::uint32_t* addrs, std::uint32_t* ids, unsigned n) const noexcept;
  // Lines of each received packet's data asked for at once.
  static constexpr std::size_t kPrefetchLines = 4;
  static void prefetch_burst(rte_mbuf* const* pkts, std::uint16_t n, bool encrypt,
                             std::size_t lines = kPrefetchLines) noexcept;
  // Reading one burst ahead (worker.cc, "Reading ahead").
  std::uint16_t receive(Port& port, rte_mbuf** pkts, bool encrypt);
  void read_ahead(Port& port, bool encrypt, std::uint16_t n, std::uint32_t bytes);
  void ask_ahead(std::uint16_t count) noexcept;
  std::uint16_t aead_chunk(std::uint32_t bytes, std::uint16_t n, std::uint16_t runs) const noexcept;
  PeerCtx* peer_for_v6(const std::uint8_t* dst) const noexcept;
  // m starts at the inner IP header: to the encrypt batch, or to the owner.
  void to_peer(PeerCtx& peer, rte_mbuf* m, Origin origin);
  inline void tunnel_out(wg::Peer& peer, rte_mbuf* m, Origin origin);
  void send_frag_needed(Port& port, NeighborTable& neigh, const std::uint8_t* offending,
                        std::size_t len);
  // ICMP time exceeded for a packet whose TTL / hop limit ran out here:
  // out of the port it came in on, or back through the tunnel of the peer
  // it came from (what a traceroute shows as the gateway's hop).
  void send_time_exceeded(Port& port, NeighborTable& neigh, const std::uint8_t* offending, std::size_t len);
  void send_time_exceeded_v6(Port& port, const std::uint8_t* offending, std::size_t len);
  void tunnel_time_exceeded(PeerCtx& from, const std::uint8_t* offending, std::size_t len, bool v6);
  // The ICMP error budget (rate_limit.h): false (and counted) when spent.
  // The policy's verdict on one classified packet (rule: the first
  // matching rule, or < 0), counted: accepted (and noted for its replies),
  // a reply of a noted flow, or denied (false). Either family's table.
  template <typename Packet, typename Table>
  bool policy_verdict(int rule, const Packet& pk, Table& established) noexcept {
    if (rule >= 0) {
      rule_counters_->accept(rule);
      established.note(pk, now_.mono);
      return true;
    }
    if (established.is_reply(pk, now_.mono)) {
      rule_counters_->established();
      return true;
    }
    rule_counters_->deny();
    return false;
  }
  bool may_send_icmp_error() noexcept {
    if (icmp_budget_.take(now_.mono)) return true;
    ++counters_.icmp_errors_limited;
    return false;
  }
  // An ICMP error the data plane originates, in a fresh mbuf: within the
  // budget, `build(out, cap)` writes the IP packet and returns its length
  // (0: the RFCs forbid an error for this packet). nullptr when there is
  // nothing to send (budget spent, no mbuf: counted, or nothing built).
  template <typename Build>
  rte_mbuf* icmp_error(Build&& build) noexcept {
    if (!may_send_icmp_error()) return nullptr;
    rte_mbuf* e = rte_pktmbuf_alloc(pool_);
    if (e == nullptr) {
      counters_.drop(DpDrop::kNoMbuf);
      return nullptr;
    }
    const std::size_t n = build(rte_pktmbuf_mtod(e, std::uint8_t*), rte_pktmbuf_tailroom(e));
    if (n == 0) {
      rte_pktmbuf_free(e);
      return nullptr;
    }
    rte_pktmbuf_append(e, static_cast<std::uint16_t>(n));
    return e;
  }
  static net::Ipv4Address v4_bytes(std::uint32_t addr) noexcept {  // network order in, bytes out
    net::Ipv4Address a{};
    std::memcpy(a.data(), &addr, 4);
    return a;
  }
  void send_icmpv4_error(Port& port, NeighborTable& neigh, rte_mbuf* e, const std::uint8_t* offending);
  // ICMPv6 errors out of `port` go to the offender directly when on-link,
  // else to the port's IPv6 gateway.
  void send_icmpv6_error(Port& port, rte_mbuf* e, const std::uint8_t* offender);
  void encrypt_flush();
  void stage(wg::Peer& peer, rte_mbuf* m);
  void send_ipv4(Port& port, NeighborTable& neigh, rte_mbuf* m, std::uint32_t next_hop);
  // send_ipv4 for the packet paths of worker.cc: inlined there (a resolved
  // next hop is a few stores and the TX buffer); send_ipv4 is its
  // out-of-line copy for the other callers.
  inline void send_ipv4_inline(Port& port, NeighborTable& neigh, rte_mbuf* m, std::uint32_t next_hop);
  inline bool send_to_neighbor(Port& port, NeighborTable& neigh, rte_mbuf* m, const void* next_hop,
                        std::uint16_t ether_type);
  // send_to_neighbor's rare cases, Ethernet already prepended: no entry
  // (e == nullptr), or a neighbour not resolved yet.
  bool send_to_neighbor_slow(NeighborTable::Entry* e, rte_mbuf* m);
  void learn_neighbor(Port& port, NeighborTable& neigh, const void* addr, const rte_ether_addr& mac);
  void send_arp_request(Port& port, std::uint32_t target);
  inline void tx(Port& port, rte_mbuf* m);  // these inline ones: defined in worker.cc, used there alone
  void tx_flush();
  void run_handshakes();
  void run_timers();
  inline void rearm(wg::Peer& peer) noexcept;
  // A peer's PeerCtx (wg::Peer::user, on the peer's line 0, which data
  // messages otherwise do not read).
  static PeerCtx& ctx_of(const wg::Peer& peer) noexcept { return *static_cast<PeerCtx*>(peer.user); }
  bool poll_commands();  // true when any was applied
  void apply(Command& c);
  // Refreshes the peers' stats copies (PeerCtx::stats_*) in slices, and
  // sends what changed, plus this worker's counters, to the control process.
  void report();
  void report_counters();
  void drop(rte_mbuf* m, DpDrop reason) noexcept;
  // The common header inline; anything else, every failure included, in
  // check_ipv4_slow.
  bool check_ipv4_slow(rte_mbuf* m, const std::uint8_t* p, std::size_t len, net::Ipv4Header& h) noexcept;
  inline bool check_ipv4(rte_mbuf* m, const std::uint8_t* p, std::size_t len, net::Ipv4Header& h,
                  bool nic_checked) noexcept;

  Port* lan_port_for(std::uint32_t dst, std::uint32_t& next_hop) noexcept;
  inline Port* lan_route(std::uint32_t dst, std::uint32_t& next_hop) noexcept;
  void update_now() noexcept;

  const std::uint16_t id_;
  Shared& shared_;
  Settings& settings_;
  rte_mempool* pool_ = nullptr;
  std::unique_ptr<crypto::AeadBurst> aead_;
  std::unique_ptr<wg::Device> device_;
  wg::LoadDetector load_;
  std::vector<PeerCtx*> owned_;                            // the peers this worker owns
  std::vector<std::unique_ptr<NeighborTable>> neighbors_;  // per port, same index
  std::vector<std::unique_ptr<NeighborTable>> neighbors6_; // per port, same index
  std::vector<TxBuffer> txbufs_;                           // per port
  std::vector<HandoffBuffer> handoff_out_;                 // per destination worker
  Port* wan_ = nullptr;
  NeighborTable* wan_neigh_ = nullptr;
  // The loop's clock (update_now): CLOCK_MONOTONIC read every kClockResync
  // and interpolated with the TSC in between.
  wg::Instant now_{};
  std::uint64_t wall_offset_ = 0;  // CLOCK_REALTIME - CLOCK_MONOTONIC
  std::uint64_t sync_tsc_ = 0;     // TSC at the last clock read
  std::uint64_t sync_mono_ = 0;    // CLOCK_MONOTONIC then
  std::uint64_t resync_tsc_ = 0;   // TSC cycles between clock reads
  std::uint64_t ns_per_tsc_ = 0;   // 32.32 fixed point
  // Peer timers: 4 ms ticks, 4096 slots (a 16 s turn; the 5 s and 10 s
  // WireGuard timers land within one turn, longer ones go round). At most
  // kTimerBudget peers' timers run per iteration.
  static constexpr std::uint64_t kTimerTick = 4 * wg::kMillisecond;
  static constexpr std::size_t kTimerSlots = 4096;
  static constexpr std::size_t kTimerBudget = 1024;
  std::unique_ptr<TimerWheel> wheel_;
  // ICMP errors this worker may originate: 1 000 a second, 50 in a burst
  // (Linux's icmp_msgs_per_sec / icmp_msgs_burst defaults).
  TokenBucket icmp_budget_{1000, 50};
  std::unique_ptr<nat::Nat44> nat_;     // with `nat:`: this lcore's flows and port slice
  std::vector<std::uint32_t> nat_pool_; // its external addresses, network order
  std::unique_ptr<policy::Established> established_;    // with a policy
  std::unique_ptr<policy::Established6> established6_;  // with a policy (or one possible: --control)
  std::unique_ptr<policy::RuleCounters> rule_counters_; // with a policy (or one possible: --control)
  const Routing* routing_ = nullptr;  // this iteration's (loaded once per iteration)
  // lan_port_for's latest answer (lan_route): the packets of a burst
  // mostly go to a few hosts, and the scan of routes and ports was a call
  // and a loop per packet (docs/perf.md). Only routing_'s static routes can
  // change the answer (ports are fixed at start), so load_routing forgets
  // it with a new Routing.
  struct LanRouteMemo {
    Port* port = nullptr;  // nullptr: nothing remembered
    std::uint32_t dst = 0;
    std::uint32_t next_hop = 0;
  } lan_memo_;
  const PolicyState* policy_ = nullptr;  // routing_'s policy; nullptr: none, everything routed passes
  std::uint64_t counters_epoch_ = 0;     // the policy epoch rule_counters_ count for
  std::atomic<std::uint64_t> commands_done_{0};
  std::atomic<std::size_t> owned_count_{0};
  std::uint64_t next_report_ = 0;
  std::size_t report_cursor_ = 0;
  bool report_sweep_ = false;
  bool rcu_online_ = false;
  LcoreCounters counters_;

  // Decrypt batch: data messages collected by wireguard_in (slot empty),
  // checked by flush_rx (slot filled), decrypted by decrypt_flush.
  struct RxItem {
    rte_mbuf* m;
    wg::RxSlot slot;
    std::uint16_t wg_off;  // the message in the frame (its outer source: outer_source())
    std::uint16_t wg_len;
  };
  // The next burst of a port, read while the one before it is processed
  // (worker.cc, "Reading ahead"); per port, stable addresses.
  struct RxAhead {
    rte_mbuf* pkts[kBurst];
    std::uint16_t n = 0;
    std::uint16_t asked = 0;  // pkts[0, asked) have had their lines asked for
    bool encrypt = false;     // prefetch_burst's flag for them
  };
  std::vector<RxAhead> ahead_;
  RxAhead* asking_ = nullptr;  // the one whose lines the AEAD calls ask for
  RxItem rx_items_[kBurst];
  std::uint16_t rx_count_ = 0;
  // Handshake queue (slow path, bounded).
  struct HsItem {
    rte_mbuf* m;
    wg::Endpoint src;
    std::uint16_t wg_off;
    std::uint16_t wg_len;
    bool macs_checked;
  };
  HsItem hs_items_[kHandshakeQueue];  // ring
  std::uint16_t hs_head_ = 0;
  std::uint16_t hs_count_ = 0;
  // Encrypt batch.
  struct TxItem {
    rte_mbuf* m;
    wg::Peer* peer;  // its PeerCtx is peer->user
    Origin origin;
  };
  TxItem enc_items_[kBurst * 2];
  // Exit batch: decrypted packets for the internet, NAT'ed together at the
  // end of the decrypt burst (exit_flush). The header as check_ipv4 parsed
  // it, completed (protocol, addresses, fragment fields) for Nat44.
  struct ExitItem {
    rte_mbuf* m;
    net::Ipv4Header h;
  };
  ExitItem exit_items_[kBurst];
  std::uint16_t exit_count_ = 0;
  // Policy batch (decrypt path): checked packets waiting for policy_flush.
  struct PolicyItem {
    rte_mbuf* m;
    wg::Peer* from;
    net::Ipv4Header h;
    std::uint32_t dst_id;
  };
  PolicyItem policy_items_[kBurst];
  std::uint16_t policy_count_ = 0;
  struct PolicyItem6 {
    rte_mbuf* m;
    wg::Peer* from;
    net::Ipv6Header h;
  };
  PolicyItem6 policy6_items_[kBurst];
  std::uint16_t policy6_count_ = 0;
  std::uint16_t enc_count_ = 0;
  bool in_encrypt_flush_ = false;
};

}  // namespace moongate::dp
