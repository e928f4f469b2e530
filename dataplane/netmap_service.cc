// Following the control process's netmap; netmap_service.h has the order.
#include "dataplane/netmap_service.h"

#include <rte_hash.h>
#include <rte_lcore.h>
#include <rte_rcu_qsbr.h>
#include <rte_ring.h>

#include <time.h>
#include <unistd.h>

#include <algorithm>
#include <cstdio>
#include <cstring>

#include "config/key.h"
#include "crypto/x25519.h"
#include "dataplane/gateway.h"
#include "dataplane/routing.h"
#include "policy/compile.h"

namespace moongate::dp {
namespace {

std::uint64_t mono_ns() {
  timespec ts{};
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return static_cast<std::uint64_t>(ts.tv_sec) * 1'000'000'000ULL + static_cast<std::uint64_t>(ts.tv_nsec);
}

std::uint32_t v4_of(const config::IpAddress& a) {
  std::uint32_t v = 0;
  std::memcpy(&v, a.bytes, 4);
  return v;
}

void log(const std::string& s) {
  std::fprintf(stderr, "moongate-dataplane: netmap: %s\n", s.c_str());
  std::fflush(stderr);
}

// A peer as the policy sees it: key, name, tags.
config::Peer labels_of(const config::Peer& p) {
  config::Peer l;
  l.public_key = p.public_key;
  l.name = p.name;
  l.tags = p.tags;
  return l;
}

// Ids of removed peers wait this long before reuse: a packet handed over
// on a ring under the old id has long been consumed by then.
constexpr std::uint64_t kIdQuarantineNs = 2'000'000'000ULL;

}  // namespace

PeerSettings peer_settings(const config::Peer& p) {
  PeerSettings ps;
  ps.public_key = p.public_key;
  if (p.preshared_key) {
    ps.preshared_key = *p.preshared_key;
    ps.has_psk = true;
  }
  for (const auto& a : p.allowed_ips) {
    if (a.addr.is_v4()) {
      ps.allowed_v4.emplace_back(v4_of(a.addr), a.len);
    } else {
      Ipv6Bytes b{};
      std::memcpy(b.data(), a.addr.bytes, 16);
      ps.allowed_v6.emplace_back(b, a.len);
    }
  }
  if (p.endpoint)
    ps.endpoint = p.endpoint->addr.is_v4() ? wg::Endpoint::v4(p.endpoint->addr.bytes, p.endpoint->port)
                                           : wg::Endpoint::v6(p.endpoint->addr.bytes, p.endpoint->port);
  ps.persistent_keepalive = p.persistent_keepalive;
  ps.exit_node = p.exit_node;
  return ps;
}

void route_settings(const std::vector<config::Route>& routes, const std::vector<Port>& ports,
                    std::vector<StaticRoute>& v4, std::vector<StaticRoute6>& v6) {
  v4.clear();
  v6.clear();
  for (const auto& r : routes) {
    if (r.port_index >= ports.size() || ports[r.port_index].role != PortRole::kLan) {
      std::fprintf(stderr, "moongate-dataplane: route %s not toward a lan port: ignored (routes lead to LANs)\n",
                   r.prefix.to_string().c_str());
      continue;
    }
    if (r.prefix.addr.is_v4()) {
      v4.push_back(StaticRoute{Ipv4Iface{v4_of(r.prefix.addr), r.prefix.len}, v4_of(r.via), r.port_index});
    } else {
      StaticRoute6 r6;
      std::memcpy(r6.prefix.addr.data(), r.prefix.addr.bytes, 16);
      r6.prefix.prefix_len = r.prefix.len;
      std::memcpy(r6.via.data(), r.via.bytes, 16);
      r6.port_index = r.port_index;
      v6.push_back(r6);
    }
  }
}

NetmapService::NetmapService(Gateway& gw, std::unique_ptr<netmap::Segment> segment, netmap::Netmap initial)
    : gw_(gw), shared_(gw.shared()), segment_(std::move(segment)), current_(std::move(initial)) {
  std::vector<PeerSettings> initial_settings;
  std::vector<RoutedPeer> routed;
  for (std::uint32_t i = 0; i < current_.peers.size(); ++i) {
    ids_[current_.peers[i].public_key] = i;
    initial_settings.push_back(peer_settings(current_.peers[i]));
  }
  for (std::uint32_t i = 0; i < current_.peers.size(); ++i) routed.push_back({i, &initial_settings[i]});
  current_content_ = routing_content(routed);  // what Gateway::init built
  // The spare exists from the start, the size of what Gateway::init built,
  // so even the first change is applied by updating tables rather than
  // making them.
  const Routing* published = shared_.routing.load(std::memory_order_acquire);
  policy_ = published->policy;
  policy_basis_.policy = current_.policy;
  for (const auto& p : current_.peers) policy_basis_.peers.push_back(labels_of(p));
  remake_spare(published->v4_capacity, published->v6_capacity);
  issued_.assign(gw.worker_count(), 0);
  pending_adds_.assign(gw.worker_count(), 0);
  for (std::size_t w = 0; w < gw.worker_count(); ++w) issued_[w] = gw.worker(w).commands_done();
  applied_ = current_.generation;
  shared_.segment = segment_.get();
}

NetmapService::~NetmapService() {
  stop();
  join_spare();
  shared_.segment = nullptr;
}

void NetmapService::remake_spare(std::uint32_t v4_rules, std::uint32_t v6_rules) {
  join_spare();
  spare_.reset();  // before making the next: only two sets of tables at a time
  spare_content_ = {};
  spare_maker_ = std::thread([this, v4_rules, v6_rules, content = current_content_]() mutable {
    std::string err;
    std::unique_ptr<Routing> r = make_routing_tables(v4_rules, v6_rules, static_cast<int>(rte_socket_id()), err);
    if (r && !update_routing(*r, {}, content)) {
      err = "the published rules do not fit";
      r.reset();
    }
    if (!r) {
      log("no spare routing tables (" + err + "): the next change builds new ones");
      return;
    }
    spare_ = std::move(r);
    spare_content_ = std::move(content);
  });
}

void NetmapService::join_spare() {
  if (spare_maker_.joinable()) spare_maker_.join();
}

void NetmapService::start() {
  // A DPDK control thread: its CPUs are the process's minus the worker
  // lcores (a std::thread would inherit the main lcore's, and every netmap
  // change would take time from worker 0). The table builders it starts
  // inherit the same CPUs.
  const int rc = rte_ctrl_thread_create(
      &thread_, "mg-netmap", nullptr,
      [](void* self) -> void* {
        static_cast<NetmapService*>(self)->loop();
        return nullptr;
      },
      this);
  if (rc != 0) {
    log(std::string("no control thread (") + std::strerror(rc) + "): following the netmap from the main lcore's CPU");
    std::thread([this] { loop(); }).swap(fallback_);
    return;
  }
  started_ = true;
}

void NetmapService::stop() {
  stop_ = true;
  if (started_) {
    pthread_join(thread_, nullptr);
    started_ = false;
  }
  if (fallback_.joinable()) fallback_.join();
}

void NetmapService::loop() {
  while (!stop_.load(std::memory_order_relaxed)) {
    netmap::Netmap next;
    std::string err;
    switch (segment_->read(current_.generation, next, err)) {
      case netmap::Segment::Read::kNew: {
        const std::uint64_t gen = next.generation;
        const std::uint64_t t0 = mono_ns();
        if (std::string e = apply(std::move(next)); !e.empty())
          log("generation " + std::to_string(gen) + " applied in part: " + e);
        log("generation " + std::to_string(gen) + " applied in " + std::to_string((mono_ns() - t0) / 1000) +
            " us (" + timing_ + "; " + std::to_string(current_.peers.size()) + " peers)");
        break;
      }
      case netmap::Segment::Read::kBad:
        // Keep forwarding with what we have; a later generation may be fine.
        log("snapshot refused, keeping generation " + std::to_string(current_.generation) + ": " + err);
        current_.generation = segment_->published_generation();
        break;
      default:
        break;
    }
    segment_->dataplane_alive(static_cast<std::uint32_t>(getpid()), mono_ns(), applied_.load());
    // A look at one word of the segment: 2 ms keeps a change's pick-up
    // delay below the cost of applying it, for ~500 cheap wake-ups a second
    // on a non-worker thread.
    usleep(2'000);
  }
}

namespace {

// Same peers (by key) with the same names and tags: what the policy's
// peer, group and tag references resolve to.
bool same_identities(const netmap::Netmap& a, const netmap::Netmap& b) {
  if (a.peers.size() != b.peers.size()) return false;
  std::unordered_map<std::string, const config::Peer*> by_key;
  for (const auto& p : a.peers) by_key[std::string(p.public_key.begin(), p.public_key.end())] = &p;
  for (const auto& p : b.peers) {
    const auto it = by_key.find(std::string(p.public_key.begin(), p.public_key.end()));
    if (it == by_key.end() || it->second->name != p.name || it->second->tags != p.tags) return false;
  }
  return true;
}

}  // namespace

std::shared_ptr<const PolicyState> NetmapService::next_policy(const netmap::Netmap& next, int socket,
                                                              std::string& problems) {
  if (!next.policy) return nullptr;
  const bool rules_changed = !policy_ || next.policy != policy_basis_.policy;
  if (!rules_changed && same_identities(policy_basis_, next)) return policy_;
  const std::uint64_t t0 = mono_ns();
  std::vector<policy::PeerInfo> peers;
  for (const auto& p : next.peers) {
    const auto it = ids_.find(p.public_key);
    if (it == ids_.end()) continue;  // refused (more than max_peers): nothing to name
    peers.push_back({it->second + 1, p.name, config::encode_key(p.public_key.data()), p.tags});
  }
  policy::CompileResult compiled = policy::compile(*next.policy, peers);
  auto state = std::make_shared<PolicyState>();
  state->rules = next.policy->rules.size();
  if (!compiled.ok()) {
    // Only a `wg` change can get here (moongate-control refuses a YAML
    // whose policy does not compile): fail closed.
    problems += "policy does not compile (" + compiled.errors.front().path + ": " + compiled.errors.front().message +
                "): denying everything but established replies until one that does; ";
    compiled.policy = {};
    state->rules = 0;
  }
  std::string why;
  state->acl = policy::AclClassifier::build(compiled.policy, socket, why);
  if (!state->acl) {
    problems += "policy not changed: " + why + "; ";
    return policy_;
  }
  state->epoch = rules_changed || !compiled.ok() ? ++policy_epoch_ : policy_epoch_;
  log("policy compiled: " + std::to_string(state->rules) + " rules, " + std::to_string(compiled.policy.flat.size()) +
      " flat rules, epoch " + std::to_string(state->epoch) + (rules_changed ? " (new rules)" : " (new peers or labels)") +
      " in " + std::to_string((mono_ns() - t0) / 1000) + " us");
  return state;
}

std::uint16_t NetmapService::least_loaded() const {
  std::uint16_t best = 0;
  std::size_t load = ~std::size_t{0};
  for (std::uint16_t w = 0; w < gw_.worker_count(); ++w) {
    const std::size_t l = gw_.worker(w).owned_peers() + pending_adds_[w];
    if (l < load) {
      load = l;
      best = w;
    }
  }
  return best;
}

bool NetmapService::send(std::uint16_t worker, void* command) {
  // The ring holds 65 536; a worker drains it between bursts. Waiting here
  // is the back-pressure of a very large netmap change.
  while (rte_ring_sp_enqueue(shared_.commands[worker], command) != 0) {
    if (stop_.load()) {
      delete static_cast<Worker::Command*>(command);
      return false;
    }
    usleep(100);
  }
  ++issued_[worker];
  return true;
}

bool NetmapService::wait_for_workers(const char* what) {
  const std::uint64_t deadline = mono_ns() + 30'000'000'000ULL;
  for (std::size_t w = 0; w < gw_.worker_count(); ++w)
    while (gw_.worker(w).commands_done() < issued_[w]) {
      if (stop_.load() || mono_ns() > deadline) {
        log(std::string("workers did not apply ") + what + " in time");
        return false;
      }
      usleep(50);
    }
  return true;
}

bool NetmapService::alloc_id(std::uint32_t& id, std::uint32_t& slots) {
  const std::uint64_t now = mono_ns();
  while (!quarantine_.empty() && quarantine_.front().second <= now) {
    free_ids_.push_back(quarantine_.front().first);
    quarantine_.pop_front();
  }
  if (!free_ids_.empty()) {
    id = free_ids_.back();
    free_ids_.pop_back();
    return true;
  }
  // `slots` is the caller's running count: peer_slots is published only
  // after the whole change, so every new peer of one change needs its own.
  if (slots >= shared_.peers.size()) return false;
  id = slots++;
  return true;
}

std::string NetmapService::apply(netmap::Netmap next) {
  const std::uint64_t t_start = mono_ns();
  std::string problems;
  const std::uint16_t workers = static_cast<std::uint16_t>(gw_.worker_count());
  const int socket = static_cast<int>(rte_socket_id());
  std::fill(pending_adds_.begin(), pending_adds_.end(), 0);

  // 1. Our key.
  const bool key_changed =
      next.has_private_key && (!current_.has_private_key ||
                               !crypto::ct_equal(next.private_key.data(), current_.private_key.data(), 32));
  if (key_changed)
    for (std::uint16_t w = 0; w < workers; ++w) {
      auto* c = new Worker::Command{Worker::Command::Kind::kSetPrivateKey, nullptr, {}, false, next.private_key};
      send(w, c);
    }

  // 2. Added and changed peers: ids first (the routing needs them), then,
  //    while another thread builds the routing (5a), the DH for each new
  //    peer — done here, not by the worker that forwards — and the commands.
  std::unordered_map<crypto::PublicKey, const config::Peer*, KeyHash> before;
  for (const auto& p : current_.peers) before[p.public_key] = &p;
  std::vector<PeerSettings> settings(next.peers.size());
  std::vector<crypto::PublicKey> added;
  std::vector<std::pair<std::size_t, PeerCtx*>> to_add;
  std::vector<std::pair<std::size_t, bool>> to_update;  // index, endpoint changed (or keepalive, psk, exit_node)
  std::uint32_t slots = shared_.peer_slots.load(std::memory_order_relaxed);
  for (std::size_t i = 0; i < next.peers.size(); ++i) {
    const config::Peer& p = next.peers[i];
    settings[i] = peer_settings(p);
    const auto old = before.find(p.public_key);
    if (old == before.end()) {
      std::uint32_t id = 0;
      if (!alloc_id(id, slots)) {
        problems += "peer " + config::encode_key(p.public_key.data()) + ": more than max_peers; ";
        continue;
      }
      // A slot is made once and reused in place after its quarantine
      // (readers on other threads may still hold a pointer to it); its
      // previous owner emptied it and took it off its timer wheel.
      auto& slot = shared_.peers[id];
      if (!slot) slot = std::make_unique<PeerCtx>();
      slot->id = id;
      slot->owner = least_loaded();
      slot->exit_node = settings[i].exit_node;
      slot->peer = nullptr;
      slot->staged_count = slot->staged_head = 0;
      slot->stats_rx = slot->stats_tx = slot->stats_handshakes = slot->stats_last_handshake_ns = 0;
      slot->stats_endpoint = wg::Endpoint{};
      // The LAN path's view of the slot (shared.h, PeerRef), written like the
      // slot before the Routing that refers to the id is published; the
      // owner fills in `peer` when it adds the peer.
      shared_.refs[id] = PeerRef{slot.get(), nullptr, slot->owner};
      ++pending_adds_[slot->owner];
      ids_[p.public_key] = id;
      slots = std::max(slots, id + 1);
      added.push_back(p.public_key);
      to_add.emplace_back(i, slot.get());
      continue;
    }
    const config::Peer& o = *old->second;
    const bool psk_changed =
        o.preshared_key.has_value() != p.preshared_key.has_value() ||
        (p.preshared_key && !crypto::ct_equal(o.preshared_key->data(), p.preshared_key->data(), 32));
    const bool endpoint_changed = o.endpoint != p.endpoint;
    // exit_node too: the owner, the only lcore that reads it for the peer's
    // packets, changes it between bursts (a reload that turns it off takes
    // effect at once for new packets; NAT flows already made stay until
    // they expire, their return traffic still reaching the peer).
    if (psk_changed || endpoint_changed || o.persistent_keepalive != p.persistent_keepalive ||
        o.exit_node != p.exit_node)
      to_update.emplace_back(i, endpoint_changed && p.endpoint.has_value());
  }

  // 5a. The new routing, built (or the spare updated) on its own thread
  //     while the DH work and the workers' adds go on: nothing reads it
  //     until 5b.
  const std::uint64_t t_routing = mono_ns();
  join_spare();  // only if a change came right after one that outgrew the spare
  const std::uint64_t t_spare = mono_ns();
  std::vector<RoutedPeer> routed;
  for (std::size_t i = 0; i < next.peers.size(); ++i) {
    const auto it = ids_.find(next.peers[i].public_key);
    // New peers are routed too: the Routing is published only after their
    // owners added them (one refused, e.g. our own key, routes to a drop).
    if (it != ids_.end()) routed.push_back({it->second, &settings[i]});
  }
  std::vector<StaticRoute> r4;
  std::vector<StaticRoute6> r6;
  route_settings(next.routes, shared_.settings.ports, r4, r6);
  RoutingContent content;
  std::string err;
  std::unique_ptr<Routing> routing;
  std::uint64_t t_built = 0;
  // Reads only the allowed-IPs fields of `settings`; the DH below writes
  // only static_static.
  std::thread builder([&] {
    content = routing_content(routed);
    if (spare_ && update_routing(*spare_, spare_content_, content)) {
      routing = std::move(spare_);
      routing->generation = next.generation;
      routing->routes = std::move(r4);
      routing->routes6 = std::move(r6);
      routing->listen_port = next.listen_port;
    } else {
      spare_.reset();
      routing = build_routing(next.generation, routed, std::move(r4), std::move(r6), next.listen_port, socket, err);
    }
    t_built = mono_ns();
  });
  for (const auto& [i, slot] : to_add) {
    if (next.has_private_key && crypto::x25519(settings[i].static_static, next.private_key, next.peers[i].public_key))
      settings[i].has_static_static = true;
    send(slot->owner, new Worker::Command{Worker::Command::Kind::kAddPeer, slot, settings[i], false, {}});
  }
  for (const auto& [i, endpoint_changed] : to_update) {
    PeerCtx* ctx = shared_.peers[ids_.at(next.peers[i].public_key)].get();
    send(ctx->owner, new Worker::Command{Worker::Command::Kind::kUpdatePeer, ctx, settings[i], endpoint_changed, {}});
  }
  const std::uint64_t t_sent = mono_ns();
  // 4. The policy, here while the tables are built (nothing reads it
  //    before the Routing that carries it is published).
  std::shared_ptr<const PolicyState> policy = next_policy(next, socket, problems);
  const std::uint64_t t_policy = mono_ns();
  builder.join();
  if (routing) routing->policy = policy;
  wait_for_workers("new peers");
  const std::uint64_t t_peers = mono_ns();

  // 3. The directory, before anything routes to the new ids.
  for (const auto& k : added) {
    const std::uint32_t id = ids_.at(k);
    if (shared_.peers[id]->peer == nullptr) {  // refused (e.g. our own key)
      problems += "peer " + config::encode_key(k.data()) + " refused by the data plane; ";
      continue;
    }
    rte_hash_add_key_data(shared_.by_key, k.data(), reinterpret_cast<void*>(static_cast<std::uintptr_t>(id)));
  }
  shared_.peer_slots.store(slots, std::memory_order_release);

  // 5b. Publish it (and the policy with it).
  if (!routing) {
    // rte_lpm and rte_lpm6 each take ~64 MiB; during a change the old
    // tables live next to the new ones.
    problems += "routing not changed: " + err +
                " (a netmap change builds new allowed-IPs tables, ~130 MiB, next to the old ones: raise "
                "dataplane.memory_mb); ";
  } else {
    const Routing* old = shared_.routing.exchange(routing.release(), std::memory_order_acq_rel);
    if (policy != policy_) {
      // What the published policy was made from (only labels count).
      policy_basis_.policy = next.policy;
      policy_basis_.peers.clear();
      for (const auto& p : next.peers) policy_basis_.peers.push_back(labels_of(p));
    }
    policy_ = std::move(policy);
    // Every worker has left the old routing once each passed a quiescent
    // point; it becomes the spare for the next generation, unless the new
    // one outgrew it.
    rte_rcu_qsbr_synchronize(shared_.rcu, RTE_QSBR_THRID_INVALID);
    std::unique_ptr<Routing> retired(const_cast<Routing*>(old));  // ours again: no worker reads it
    const Routing* now = shared_.routing.load(std::memory_order_relaxed);
    const bool outgrown = retired->v4_capacity < now->v4_capacity || retired->v6_capacity < now->v6_capacity;
    std::swap(current_content_, content);  // content: what the retired one holds
    if (outgrown) {
      retired.reset();
      remake_spare(now->v4_capacity, now->v6_capacity);
    } else {
      spare_ = std::move(retired);
      spare_->policy.reset();  // the retired classifier, if it was the last to hold it
      spare_content_ = std::move(content);
    }
  }

  const std::uint64_t t_swapped = mono_ns();
  timing_ = "diff and DH " + std::to_string((t_sent - t_start) / 1000) + " us, spare ready after " +
            std::to_string((t_spare - t_routing) / 1000) + " us, tables " +
            std::to_string((t_built - t_spare) / 1000) + " us (alongside), policy " +
            std::to_string((t_policy - t_sent) / 1000) + " us (alongside), waiting for workers " +
            std::to_string((t_peers - std::max(t_built, t_policy)) / 1000) + " us, publish " +
            std::to_string((t_swapped - t_peers) / 1000) + " us";

  // 6. Removed peers.
  std::unordered_map<crypto::PublicKey, bool, KeyHash> keep;
  for (const auto& p : next.peers) keep[p.public_key] = true;
  std::vector<std::int32_t> positions;
  std::vector<std::uint32_t> removed_ids;
  for (const auto& p : current_.peers) {
    if (keep.count(p.public_key)) continue;
    const auto it = ids_.find(p.public_key);
    if (it == ids_.end()) continue;
    const std::int32_t pos = rte_hash_del_key(shared_.by_key, p.public_key.data());
    if (pos >= 0) positions.push_back(pos);
    PeerCtx* ctx = shared_.peers[it->second].get();
    send(ctx->owner, new Worker::Command{Worker::Command::Kind::kRemovePeer, ctx, {}, false, {}});
    removed_ids.push_back(it->second);
    ids_.erase(it);
  }
  if (!removed_ids.empty()) {
    wait_for_workers("removed peers");
    rte_rcu_qsbr_synchronize(shared_.rcu, RTE_QSBR_THRID_INVALID);
    for (std::int32_t pos : positions) rte_hash_free_key_with_position(shared_.by_key, pos);
    const std::uint64_t reuse_at = mono_ns() + kIdQuarantineNs;
    for (std::uint32_t id : removed_ids) quarantine_.emplace_back(id, reuse_at);
  }

  // 7. Done.
  current_ = std::move(next);
  applied_.store(current_.generation, std::memory_order_release);
  segment_->dataplane_alive(static_cast<std::uint32_t>(getpid()), mono_ns(), current_.generation);
  return problems;
}

}  // namespace moongate::dp
