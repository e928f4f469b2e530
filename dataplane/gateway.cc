// Start-up, ownership and the lcore launch; gateway.h describes them.
#include "dataplane/gateway.h"

#include <rte_errno.h>
#include <rte_hash.h>
#include <rte_jhash.h>
#include <rte_lcore.h>
#include <rte_launch.h>
#include <rte_lpm.h>
#include <rte_lpm6.h>
#include <rte_malloc.h>
#include <rte_mbuf.h>
#include <rte_random.h>
#include <rte_rcu_qsbr.h>
#include <rte_ring.h>

#include <arpa/inet.h>

#include <algorithm>
#include <cstdio>
#include <sstream>

#include "dataplane/handoff.h"
#include "dataplane/kernel_interface.h"
#include "dataplane/routing.h"

namespace moongate::dp {

std::atomic<bool> Gateway::stop_{false};
std::atomic<bool> Gateway::status_requested_{false};

namespace {

std::string rte_err() { return rte_strerror(rte_errno); }

}  // namespace

int register_handoff_field() noexcept {
  static const rte_mbuf_dynfield desc = {"moongate_handoff", sizeof(Handoff), alignof(Handoff), 0};
  return rte_mbuf_dynfield_register(&desc);
}

PeerCtx* Shared::peer_by_key(const crypto::PublicKey& key) const noexcept {
  void* data = nullptr;
  if (by_key == nullptr || rte_hash_lookup_data(by_key, key.data(), &data) < 0) return nullptr;
  const auto id = static_cast<std::size_t>(reinterpret_cast<std::uintptr_t>(data));
  return id < peers.size() ? peers[id].get() : nullptr;
}

Gateway::Gateway() = default;

Gateway::~Gateway() {
  workers_.clear();  // frees what they hold (staged packets, batches)
  for (rte_ring* r : shared_.rings) {
    if (r == nullptr) continue;
    void* m = nullptr;
    while (rte_ring_dequeue(r, &m) == 0) rte_pktmbuf_free(static_cast<rte_mbuf*>(m));
    rte_ring_free(r);
  }
  for (auto* rings : {&shared_.moon_rx, &shared_.moon_tx})
    for (rte_ring* r : *rings) {
      void* m = nullptr;
      while (rte_ring_dequeue(r, &m) == 0) rte_pktmbuf_free(static_cast<rte_mbuf*>(m));
      rte_ring_free(r);
    }
  for (rte_ring* r : shared_.commands) {
    if (r == nullptr) continue;
    void* c = nullptr;
    while (rte_ring_dequeue(r, &c) == 0) delete static_cast<Worker::Command*>(c);
    rte_ring_free(r);
  }
  if (shared_.by_key != nullptr) rte_hash_free(shared_.by_key);
  delete shared_.routing.load();
  rte_free(shared_.rcu);
}

std::string Gateway::init(Settings settings) {
  shared_.settings = std::move(settings);
  Settings& s = shared_.settings;
  const std::uint16_t workers = s.workers;
  if (workers == 0 || workers > kMaxWorkers)
    return "between 1 and " + std::to_string(kMaxWorkers) + " worker lcores are supported";
  const int socket = static_cast<int>(rte_socket_id());

  // Every queue's descriptors, the hand-off rings and the per-lcore caches
  // can hold mbufs at once; the pool covers them with room to spare.
  const auto ports = static_cast<std::uint32_t>(s.ports.size());
  const std::uint32_t moon_mbufs = s.moon_port != 0 ? 2u * workers * kMoonRingSize : 0;
  const std::uint32_t nb_mbufs =
      8191 + ports * workers * 2560 + workers * (workers - 1u) * kHandoffRingSize + moon_mbufs;
  shared_.pool = rte_pktmbuf_pool_create("mg_pool", nb_mbufs, 256, 0, mbuf_data_room(s.ports), socket);
  if (shared_.pool == nullptr) return "mbuf pool: " + rte_err();
  shared_.handoff_field = register_handoff_field();
  if (shared_.handoff_field < 0) return "mbuf dynamic field: " + rte_err();

  const std::size_t configured = s.ports.size();
  s.ports.reserve(configured * 2);  // room for the TAPs: Port references stay valid
  for (std::size_t i = 0; i < configured; ++i) {
    Port& p = s.ports[i];
    if (std::string err = open_port(p, workers, shared_.pool); !err.empty()) return "port " + p.name + ": " + err;
  }
  // The exception path: a TAP per port that asks for one, made after the
  // port so it can carry the port's MAC (kernel_interface.h).
  for (std::size_t i = 0; i < configured; ++i) {
    if (s.ports[i].kernel_interface.empty()) continue;
    Port tap;
    tap.name = s.ports[i].kernel_interface;
    tap.role = PortRole::kKernel;
    tap.device = kernel_interface_device(s.ports[i], static_cast<unsigned>(i));
    tap.mtu = s.ports[i].mtu;
    tap.parent = i;
    s.ports[i].kernel = s.ports.size();
    s.ports.push_back(std::move(tap));
    Port& t = s.ports.back();
    if (std::string err = open_port(t, workers, shared_.pool); !err.empty())
      return "port " + s.ports[i].name + ": kernel interface " + t.name + ": " + err;
    if (std::string err = configure_kernel_interface(t.name, s.ports[i], t.mtu); !err.empty())
      return "port " + s.ports[i].name + ": kernel interface " + err;
  }
  const auto wan = std::find_if(s.ports.begin(), s.ports.end(), [](const Port& p) { return p.role == PortRole::kWan; });
  if (wan == s.ports.end()) return "no wan port";
  shared_.wan = static_cast<std::size_t>(wan - s.ports.begin());

  rte_hash_parameters hp{};
  hp.name = "mg_peer_keys";
  hp.entries = std::max<std::uint32_t>(64, s.max_peers);
  hp.key_len = 32;
  hp.hash_func = rte_jhash;
  hp.socket_id = socket;
  // Read by every worker (handshakes) without locks; written by one thread
  // (here, then the netmap service), which frees deleted keys only after a
  // grace period.
  hp.extra_flag = RTE_HASH_EXTRA_FLAGS_RW_CONCURRENCY_LF;
  shared_.by_key = rte_hash_create(&hp);
  if (shared_.by_key == nullptr) return "peer directory: " + rte_err();

  if (workers > 1) {
    shared_.rings.assign(static_cast<std::size_t>(workers) * workers, nullptr);
    for (std::uint16_t from = 0; from < workers; ++from)
      for (std::uint16_t to = 0; to < workers; ++to) {
        if (from == to) continue;
        const std::string name = "mg_ho_" + std::to_string(from) + "_" + std::to_string(to);
        rte_ring* r = rte_ring_create(name.c_str(), kHandoffRingSize, socket, RING_F_SP_ENQ | RING_F_SC_DEQ);
        if (r == nullptr) return "hand-off ring: " + rte_err();
        shared_.rings[static_cast<std::size_t>(from) * workers + to] = r;
      }
  }

  if (s.moon_port != 0) {
    for (std::uint16_t w = 0; w < workers; ++w) {
      for (auto* rings : {&shared_.moon_rx, &shared_.moon_tx}) {
        const std::string name = (rings == &shared_.moon_rx ? "mg_moon_rx_" : "mg_moon_tx_") + std::to_string(w);
        rte_ring* r = rte_ring_create(name.c_str(), kMoonRingSize, socket,
                                      RING_F_SP_ENQ | RING_F_SC_DEQ | RING_F_EXACT_SZ);
        if (r == nullptr) return "moon ring: " + rte_err();
        rings->push_back(r);
      }
    }
  }

  // Netmap changes: a command ring per worker, and the RCU state the
  // workers report quiescent points to (a Routing is freed after all did).
  for (std::uint16_t w = 0; w < workers; ++w) {
    const std::string name = "mg_cmd_" + std::to_string(w);
    rte_ring* r = rte_ring_create(name.c_str(), 65536, socket, RING_F_SP_ENQ | RING_F_SC_DEQ);
    if (r == nullptr) return "command ring: " + rte_err();
    shared_.commands.push_back(r);
  }
  const std::size_t rcu_size = rte_rcu_qsbr_get_memsize(workers);
  shared_.rcu = static_cast<rte_rcu_qsbr*>(rte_zmalloc("mg_rcu", rcu_size, RTE_CACHE_LINE_SIZE));
  if (shared_.rcu == nullptr || rte_rcu_qsbr_init(shared_.rcu, workers) != 0) return "rcu: " + rte_err();

  // One NAT44 per worker (Worker::init), each with its slice of the
  // external ports; the hash and port-choice key (also the policy tables')
  // is random per run so remote hosts cannot predict ports or aim tuples
  // at one table cluster.
  s.nat_config.lcores = workers;
  while (s.nat_config.seed == 0) s.nat_config.seed = rte_rand();
  std::shared_ptr<PolicyState> policy;
  if (s.policy) {
    // One classifier for all workers: classify() only reads it. It goes
    // out with the first Routing below.
    std::string why;
    policy = std::make_shared<PolicyState>();
    policy->acl = policy::AclClassifier::build(s.policy_compiled, socket, why);
    if (!policy->acl) return "policy: " + why;
    policy->rules = s.policy_compiled.rule_count;
    policy->epoch = 1;
  }
  for (std::uint16_t w = 0; w < workers; ++w) {
    workers_.push_back(std::make_unique<Worker>(w, shared_));
    if (std::string err = workers_.back()->init(); !err.empty()) return err;
  }

  if (s.peers.size() > s.max_peers) return std::to_string(s.peers.size()) + " peers, more than max_peers";
  shared_.peers.resize(s.max_peers);
  shared_.refs.resize(s.max_peers);
  std::vector<RoutedPeer> routed;
  for (std::size_t i = 0; i < s.peers.size(); ++i) {
    auto ctx = std::make_unique<PeerCtx>();
    ctx->id = static_cast<std::uint32_t>(i);
    ctx->owner = static_cast<std::uint16_t>(i % workers);
    ctx->exit_node = s.peers[i].exit_node;
    shared_.refs[i] = PeerRef{ctx.get(), nullptr, ctx->owner};  // `peer`: set by add_peer below
    shared_.peers[i] = std::move(ctx);
    routed.push_back(RoutedPeer{static_cast<std::uint32_t>(i), &s.peers[i]});
  }
  shared_.peer_slots.store(static_cast<std::uint32_t>(s.peers.size()));
  // The routing first: adding a peer with a persistent keepalive already
  // sends its first handshake, which needs the listen port.
  std::string err;
  std::unique_ptr<Routing> routing =
      build_routing(0, routed, s.routes, s.routes6, s.listen_port, socket, err);
  if (!routing) return err;
  routing->policy = std::move(policy);
  shared_.routing.store(routing.release(), std::memory_order_release);
  for (auto& w : workers_) w->load_routing();
  for (std::size_t i = 0; i < s.peers.size(); ++i) {
    const PeerSettings& ps = s.peers[i];
    PeerCtx& ctx = *shared_.peers[i];
    if (workers_[ctx.owner]->add_peer(ctx, ps) == nullptr) return "peer refused (duplicate or own key)";
    if (int rc = rte_hash_add_key_data(shared_.by_key, ps.public_key.data(),
                                       reinterpret_cast<void*>(static_cast<std::uintptr_t>(i)));
        rc < 0)
      return "peer directory: " + std::string(rte_strerror(-rc));
  }
  return {};
}

int Gateway::worker_main(void* arg) {
  static_cast<Worker*>(arg)->run(stop_);
  return 0;
}

void Gateway::run() {
  std::size_t next = 1;
  unsigned lcore = 0;
  RTE_LCORE_FOREACH_WORKER(lcore) {
    if (next == workers_.size()) break;
    rte_eal_remote_launch(worker_main, workers_[next++].get(), lcore);
  }
  if (next != workers_.size())
    std::fprintf(stderr, "moongate-dataplane: only %zu of %zu workers have an lcore\n", next, workers_.size());
  workers_.front()->run(
      stop_,
      [](void* self) {
        if (status_requested_.exchange(false, std::memory_order_relaxed))
          static_cast<const Gateway*>(self)->write_status_file();
      },
      this);
  rte_eal_mp_wait_lcore();
}

bool Gateway::run_once() {
  bool busy = false;
  for (auto& w : workers_) busy |= w->run_once();
  if (status_requested_.exchange(false, std::memory_order_relaxed)) write_status_file();
  return busy;
}

LcoreCounters Gateway::totals() const noexcept {
  LcoreCounters t;
  for (const auto& w : workers_) t.add(w->counters());
  return t;
}

std::array<std::uint64_t, wg::kDropCount> Gateway::wg_drops() const noexcept {
  std::array<std::uint64_t, wg::kDropCount> t{};
  for (const auto& w : workers_)
    for (std::size_t i = 0; i < wg::kDropCount; ++i)
      t[i] += __atomic_load_n(&w->device().drop_counters()[i], __ATOMIC_RELAXED);
  return t;
}

void Gateway::write_status_file() const {
  if (status_file_.empty()) return;
  // Written aside and renamed, so a reader never sees half a file; "end"
  // marks it complete.
  const std::string tmp = status_file_ + ".tmp";
  if (FILE* f = std::fopen(tmp.c_str(), "w")) {
    const std::string s = status() + "end\n";
    std::fwrite(s.data(), 1, s.size(), f);
    std::fclose(f);
    std::rename(tmp.c_str(), status_file_.c_str());
  }
}

std::string Gateway::status() const {
  const LcoreCounters c = totals();
  std::ostringstream o;
  o << "aead " << aead_arch() << "\n";
  for (const Port& p : shared_.settings.ports)
    o << "port " << p.name << " id " << p.id
      << (p.role == PortRole::kWan ? " wan" : p.role == PortRole::kLan ? " lan" : " kernel") << " rx "
      << c.rx_packets[p.id % 8] << " tx " << c.tx_packets[p.id % 8] << "\n";
  o << "decrypted " << c.decrypted << " encrypted " << c.encrypted << " handshakes_in " << c.handshakes_in
    << " arp_replies " << c.arp_replies << " icmp_echo_replies " << c.icmp_echo_replies << " icmp_errors "
    << c.icmp_errors << " icmp_errors_limited " << c.icmp_errors_limited << " handoffs " << c.handoffs_out << " to_kernel " << c.to_kernel
    << " read_ahead " << c.read_ahead << "\n";
  for (const auto& w : workers_) {
    const LcoreCounters& l = w->counters();
    o << "worker " << w->id() << " rx " << l.rx_total() << " decrypted " << l.decrypted << " encrypted "
      << l.encrypted << " handshakes_in " << l.handshakes_in << " handoffs_out " << l.handoffs_out
      << " handoffs_in " << l.handoffs_in << "\n";
  }
  for (std::size_t i = 0; i < kDpDropCount; ++i)
    if (c.drops[i]) o << "drop " << dp_drop_name(static_cast<DpDrop>(i)) << " " << c.drops[i] << "\n";
  // The exit node's NAT44, summed over the workers' instances.
  if (shared_.settings.nat) {
    nat::NatCounters n;
    std::size_t flows = 0;
    for (const auto& w : workers_)
      if (const nat::Nat44* x = w->nat()) {
        n.add(x->counters());
        flows += x->flow_count();
      }
    o << "nat flows " << flows << " translated_out " << n.translated_out << " translated_in " << n.translated_in
      << " icmp_errors_in " << n.icmp_errors_in << " flows_created " << n.flows_created << " flows_expired "
      << n.flows_expired << "\n";
    for (std::size_t i = 0; i < nat::kNatDropCount; ++i)
      if (n.drops[i]) o << "nat_drop " << nat::nat_drop_name(static_cast<nat::NatDrop>(i)) << " " << n.drops[i] << "\n";
  }
  // The policy in force (the netmap's may change: its rule count then).
  const Routing* routing = shared_.routing.load(std::memory_order_acquire);
  if (routing != nullptr && routing->policy != nullptr) {
    const std::size_t rules = routing->policy->rules;
    std::uint64_t denied = 0, established = 0;
    std::vector<std::uint64_t> accepted(rules, 0);
    for (const auto& w : workers_)
      if (const policy::RuleCounters* rc = w->rule_counters()) {
        denied += rc->denied();
        established += rc->established_count();
        for (std::size_t r = 0; r < rules && r < rc->rules(); ++r) accepted[r] += rc->accepted(r);
      }
    o << "policy denied " << denied << " established " << established << "\n";
    for (std::size_t r = 0; r < rules; ++r) o << "policy_rule " << r << " accepted " << accepted[r] << "\n";
  }
  if (shared_.settings.moon_port != 0) o << "moon in " << c.moon_in << " out " << c.moon_out << "\n";
  if (extra_status_) o << extra_status_();
  const auto wgd = wg_drops();
  for (std::size_t i = 0; i < wg::kDropCount; ++i)
    if (wgd[i]) o << "wg_drop " << wg::drop_name(static_cast<wg::Drop>(i)) << " " << wgd[i] << "\n";
  // From the stats copies the owners refresh every second: a wg::Peer may
  // be removed by its owner while this runs.
  const std::uint32_t slots = shared_.peer_slots.load(std::memory_order_acquire);
  for (std::uint32_t i = 0; i < slots; ++i) {
    const PeerCtx* p = shared_.peers[i].get();
    if (p == nullptr || p->peer == nullptr) continue;
    o << "peer " << p->id << " worker " << p->owner << " endpoint " << p->stats_endpoint.to_string() << " rx "
      << p->stats_rx << " tx " << p->stats_tx << " handshakes " << p->stats_handshakes << " staged "
      << p->staged_count << "\n";
  }
  return o.str();
}

}  // namespace moongate::dp
