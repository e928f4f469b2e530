// The data plane's side of the netmap: a service thread (not a worker
// lcore) that follows the snapshots moongate-control publishes in the shared
// segment and applies each new one while traffic flows, touching only what
// changed. Unchanged peers keep their sessions, counters and owners.
//
// Applying generation N (one at a time, in this order, so that a worker
// never looks up something that is not there yet or no longer there):
//   1. a new private key: every worker's device takes it (sessions end)
//   2. new peers get a global id and a PeerCtx, and the least-loaded
//      worker adds them to its device (a command on its ring, applied
//      between bursts, a few per iteration); changed peers (preshared key,
//      endpoint, keepalive, exit_node) are updated by their owners; wait
//      for all
//   3. the new peers' keys enter the peer directory (rte_hash, lock-free
//      readers)
//   4. the access policy, when it or the names and tags of the peers
//      changed (any peer added or removed too: ids change hands): compiled
//      against the peers' ids and built into a new rte_acl classifier on
//      this thread, then carried by the new Routing. A policy that does not
//      compile (a peer it names went away through `wg`) fails closed: a
//      classifier with no rules, everything but established replies denied
//   5. a new Routing (allowed IPs -> ids, static routes, listen port, the
//      policy) is published with one atomic store; after every worker has passed a
//      quiescent point (rte_rcu_qsbr) the old one is retired. Routings
//      alternate: the retired one is brought up to date with only the rules
//      that changed and published next time, so a change costs a few table
//      updates, not ~130 MiB of new tables. When a change outgrows the
//      spare, new tables are built for it; the retired ones are then too
//      small to be the next spare, so a spare of the new size is made in
//      the background (remake_spare) and the next change updates it again
//      instead of building once more
//   6. removed peers: out of the directory, removed from their owners'
//      devices (keys wiped), their ids quarantined before reuse
//   7. the generation is reported as applied in the segment's heartbeat
// Per-peer counters and per-lcore counters flow back as events, sent by the
// workers themselves (Worker::report).
//
// If the control process goes away the data plane keeps the last netmap;
// when it comes back and republishes, the next generation is applied as
// usual (an identical netmap changes nothing).
#pragma once

#include <pthread.h>

#include <atomic>
#include <cstdint>
#include <deque>
#include <memory>
#include <string>
#include <thread>
#include <unordered_map>
#include <vector>

#include "config/config.h"
#include "dataplane/routing.h"
#include "dataplane/shared.h"
#include "netmap/netmap.h"
#include "netmap/segment.h"

namespace moongate::dp {

class Gateway;

// The data plane's forms of netmap entries (also used for the YAML).
PeerSettings peer_settings(const config::Peer& p);
// Static routes toward LAN ports; routes naming a WAN port are left out
// with a warning on stderr.
void route_settings(const std::vector<config::Route>& routes, const std::vector<Port>& ports,
                    std::vector<StaticRoute>& v4, std::vector<StaticRoute6>& v6);

class NetmapService {
 public:
  // `initial` is the netmap the Gateway was built from (its peers have ids
  // 0..n-1 in order).
  NetmapService(Gateway& gw, std::unique_ptr<netmap::Segment> segment, netmap::Netmap initial);
  ~NetmapService();
  void start();
  void stop();
  std::uint64_t applied() const noexcept { return applied_.load(std::memory_order_acquire); }

 private:
  struct KeyHash {
    std::size_t operator()(const crypto::PublicKey& k) const noexcept {
      std::size_t h;
      std::memcpy(&h, k.data(), sizeof h);
      return h;
    }
  };
  void loop();
  std::string apply(netmap::Netmap next);
  std::uint16_t least_loaded() const;
  bool send(std::uint16_t worker, void* command);
  bool wait_for_workers(const char* what);
  bool alloc_id(std::uint32_t& id, std::uint32_t& slots);
  // Starts making, on a thread of its own, a spare of the published
  // Routing's size holding current_content_; join_spare() waits for it.
  void remake_spare(std::uint32_t v4_rules, std::uint32_t v6_rules);
  void join_spare();
  // The policy for `next` (step 4): the current one when nothing it reads
  // changed, nullptr when next has none. Problems go to `problems`.
  std::shared_ptr<const PolicyState> next_policy(const netmap::Netmap& next, int socket, std::string& problems);

  Gateway& gw_;
  Shared& shared_;
  std::unique_ptr<netmap::Segment> segment_;
  netmap::Netmap current_;
  std::unordered_map<crypto::PublicKey, std::uint32_t, KeyHash> ids_;
  std::vector<std::uint64_t> issued_;  // commands sent, per worker
  std::vector<std::size_t> pending_adds_;
  std::deque<std::pair<std::uint32_t, std::uint64_t>> quarantine_;  // id, reusable after (ns)
  std::vector<std::uint32_t> free_ids_;
  std::atomic<std::uint64_t> applied_{0};
  std::string timing_;  // of the last apply, for the log
  std::unique_ptr<Routing> spare_;  // the retired Routing, holding spare_content_
  RoutingContent spare_content_;
  RoutingContent current_content_;  // what the published Routing holds
  std::shared_ptr<const PolicyState> policy_;  // the one the published Routing carries
  std::uint64_t policy_epoch_ = 1;             // Gateway::init's is 1
  // What policy_ was compiled from: the spec and the peers' keys, names and
  // tags (a change the data plane could not publish is retried next time).
  netmap::Netmap policy_basis_;
  std::thread spare_maker_;  // writes spare_ and spare_content_ until joined
  std::atomic<bool> stop_{false};
  pthread_t thread_{};  // rte_ctrl_thread_create
  bool started_ = false;
  std::thread fallback_;  // if no control thread could be made
};

}  // namespace moongate::dp
