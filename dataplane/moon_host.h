// The ZeroTier moon (zerotier::Moon, docs/moon.md) hosted by the data
// plane on the wan port: UDP to the wan addresses on the moon's port
// (9993 by default, config `moon:`), no kernel socket.
//
// Flow:
//   1. A worker's WAN rx classifies UDP to one of the wan port's own
//      addresses (IPv4 not fragmented, IPv6 without extension headers) on
//      the moon port and puts the frame, as received, on its SP/SC ring to
//      the moon thread (Worker::moon_in; full: dropped, moon_queue_full).
//   2. The moon thread (a DPDK control thread) drains every worker's ring,
//      reads the client's address and the datagram out of each frame
//      (moon_wire.h), calls Moon::receive, frees the frame.
//   3. New identities' memory-hard hashes go to a JobRunner thread
//      (zerotier/job_runner.h), as in the other hosts; its eventfd is what
//      the moon thread sleeps on when idle, so a finished hash is answered
//      at once. Moon::tick once a second.
//   4. Each datagram out becomes an mbuf holding IP + UDP (from the wan
//      port's first address of the client's family, source port the moon
//      port) and goes on the ring to worker hash(destination) % workers,
//      so one client's packets keep their order.
//   5. That worker (Worker::moon_drain, once per loop iteration) adds
//      Ethernet through its neighbour tables (ARP / ND as for WireGuard)
//      and sends it with its own wan TX queue.
//
// Why a thread of its own, not a worker: a Moon is single-threaded and
// owns one peer table, and relaying needs the destination's entry, so the
// moon cannot be split by RSS across workers (docs/moon.md); pinning it to
// worker 0 would make every other worker hand frames over anyway and put
// the moon's per-packet Salsa20/Poly1305 work (HELLO, WHOIS) and its
// reassembly on a WireGuard lcore. A control thread runs on the cores the
// EAL leaves to the system, so it never takes a worker's core, and it
// backs off (sleeps on the JobRunner's eventfd, 1..200 us) when idle. The
// rings keep the workers' side lock- and allocation-free.
//
// Counters: the workers count what they queued, sent and dropped
// (LcoreCounters::moon_in / moon_out, drop moon_queue_full); the moon's
// own (zerotier/counters.h) and this host's are copied to atomics every
// 100 ms for telemetry (/moongate/moon) and the status file.
#pragma once

#include <pthread.h>

#include <array>
#include <atomic>
#include <cstdint>
#include <memory>
#include <string>

#include "dataplane/shared.h"
#include "zerotier/counters.h"
#include "zerotier/job_runner.h"
#include "zerotier/moon.h"

namespace moongate::dp {

#define MOONGATE_DP_MOON_HOST_COUNTERS(X)                                        \
  X(rx_frames)        /* frames taken from the workers' rings */                \
  X(rx_malformed)     /* not a UDP datagram after all (cannot happen: counted) */ \
  X(tx_datagrams)     /* datagrams put on a worker's ring */                    \
  X(tx_no_address)    /* to a family the wan port has no address of */          \
  X(tx_no_mbuf)       /* the mbuf pool was empty */                             \
  X(tx_too_big)       /* a datagram that does not fit an mbuf */                \
  X(tx_ring_full)     /* the worker's ring back was full */

struct MoonHostCounters {
#define MOONGATE_X(name) std::uint64_t name = 0;
  MOONGATE_DP_MOON_HOST_COUNTERS(MOONGATE_X)
#undef MOONGATE_X
};

class MoonHost {
 public:
  // `moon` must have been made with defer_verification. The Gateway must
  // have been initialised with Settings::moon_port (it made the rings).
  MoonHost(Shared& shared, std::unique_ptr<zerotier::Moon> moon);
  ~MoonHost();  // stop()
  MoonHost(const MoonHost&) = delete;
  MoonHost& operator=(const MoonHost&) = delete;

  // Starts the hash worker and the moon thread; an error or "".
  std::string start();
  // Stops and joins the moon thread (the JobRunner goes with the object).
  void stop();

  // The published copies (any thread).
  std::uint64_t peers() const noexcept { return pub_peers_.load(std::memory_order_relaxed); }
  template <typename F>
  void for_each_counter(F&& f) const {
    std::size_t i = 0;
#define MOONGATE_X(name) f(#name, pub_moon_[i++].load(std::memory_order_relaxed));
    MOONGATE_ZT_COUNTERS(MOONGATE_X)
#undef MOONGATE_X
    i = 0;
#define MOONGATE_X(name) f("host_" #name, pub_host_[i++].load(std::memory_order_relaxed));
    MOONGATE_DP_MOON_HOST_COUNTERS(MOONGATE_X)
#undef MOONGATE_X
  }
  // "moon ..." lines for the status file.
  std::string status() const;
  const zerotier::Moon& moon() const noexcept { return *moon_; }

  // One pass of the moon thread's loop (steps 2-4), for tests and
  // benchmarks that drive it without the thread. True when it did work.
  bool run_once(std::uint64_t now_ms) noexcept;

 private:
#define MOONGATE_X(name) +1
  static constexpr std::size_t kMoonCounters = 0 MOONGATE_ZT_COUNTERS(MOONGATE_X);
  static constexpr std::size_t kHostCounters = 0 MOONGATE_DP_MOON_HOST_COUNTERS(MOONGATE_X);
#undef MOONGATE_X

  static void* thread_main(void* self);
  void loop() noexcept;
  void flush() noexcept;
  void finish_jobs(std::uint64_t now_ms) noexcept;
  void publish() noexcept;

  Shared& shared_;
  std::unique_ptr<zerotier::Moon> moon_;
  std::unique_ptr<zerotier::TxBatch> tx_;
  MoonHostCounters host_;
  std::uint64_t last_tick_ms_ = 0, last_publish_ms_ = 0;
  pthread_t thread_{};
  bool running_ = false;
  std::atomic<bool> stop_{false};
  std::array<std::atomic<std::uint64_t>, kMoonCounters> pub_moon_{};
  std::array<std::atomic<std::uint64_t>, kHostCounters> pub_host_{};
  std::atomic<std::uint64_t> pub_peers_{0};
  // Last member: its worker is joined before the moon it hashes for goes.
  zerotier::JobRunner jobs_;
};

// /moongate/moon: the moon's counters and this host's (nullptr: none).
void register_moon_telemetry(const MoonHost* host);

}  // namespace moongate::dp
