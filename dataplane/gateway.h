// The data plane of one site: opens the ports (one queue pair per worker
// lcore), builds what the workers share (shared.h: allowed-IPs tables, the
// peer directory, the hand-off rings), gives each peer to one worker, and
// runs the workers' loops (worker.h) on the EAL lcores.
//
// Peer ownership: peer i (configuration order) belongs to worker
// i % workers; peers the control process adds later go to the worker with
// the fewest (netmap_service.h). The owner alone touches the peer's keys, counters, replay
// window and timers; packets for it that another worker receives are
// handed over on a ring (handoff.h).
#pragma once

#include <array>
#include <atomic>
#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "dataplane/counters.h"
#include "dataplane/shared.h"
#include "dataplane/worker.h"
#include "policy/acl.h"

namespace moongate::dp {

class Gateway {
 public:
  Gateway();
  ~Gateway();
  Gateway(const Gateway&) = delete;
  Gateway& operator=(const Gateway&) = delete;

  // Opens the ports and builds the tables; an operator-readable error or "".
  std::string init(Settings settings);
  // Runs worker 0 on the calling (main) lcore and worker i on the i-th EAL
  // worker lcore, until stop() (signal handler safe).
  void run();
  // One iteration of every worker in turn on the calling thread, without
  // idle back-off (benchmarks, tests that step the data plane). True when
  // anything arrived.
  bool run_once();
  static void stop() noexcept { stop_.store(true, std::memory_order_relaxed); }
  // Asks the loop to write status() to the status file (SIGUSR1; signal safe).
  static void request_status() noexcept { status_requested_.store(true, std::memory_order_relaxed); }
  void set_status_file(std::string path) { status_file_ = std::move(path); }
  // Lines added to status() by a service beside the workers (the moon);
  // called from whichever thread writes the status.
  void set_extra_status(std::function<std::string()> f) { extra_status_ = std::move(f); }

  // Sums over the workers (a slightly stale view while they run).
  LcoreCounters totals() const noexcept;
  std::array<std::uint64_t, wg::kDropCount> wg_drops() const noexcept;
  const std::vector<Port>& ports() const noexcept { return shared_.settings.ports; }
  // Peer slots in use (ids below this); a slot may be empty or removed.
  std::size_t peer_slots() const noexcept { return shared_.peer_slots.load(std::memory_order_acquire); }
  const PeerCtx* peer(std::size_t i) const noexcept { return shared_.peers[i].get(); }
  Shared& shared() noexcept { return shared_; }
  std::size_t worker_count() const noexcept { return workers_.size(); }
  Worker& worker(std::size_t i) noexcept { return *workers_[i]; }
  const Worker& worker(std::size_t i) const noexcept { return *workers_[i]; }
  const char* aead_arch() const noexcept { return workers_.front()->aead_arch(); }
  // A human-readable dump of ports, workers, peers and counters (SIGUSR1, exit).
  std::string status() const;

 private:
  static int worker_main(void* arg);
  void write_status_file() const;

  Shared shared_;  // declared first: the workers point into it
  std::vector<std::unique_ptr<Worker>> workers_;
  std::string status_file_;
  std::function<std::string()> extra_status_;
  static std::atomic<bool> stop_;
  static std::atomic<bool> status_requested_;
};

}  // namespace moongate::dp
