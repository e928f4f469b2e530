// Hosts a DatagramService (the moon) on a kernel UDP socket.
//
// Loop (run()):
//   1. poll the socket, waking at least every kTickMs for housekeeping;
//   2. recvmmsg a burst of up to kBurst datagrams;
//   3. hand each to the service with its source and the monotonic clock in
//      milliseconds, draining the TxBatch with sendmmsg whenever it might not
//      have room for another receive;
//   4. once a second, service.tick(now);
//   5. slow work the service defers (the moon's identity hashes) goes to a
//      JobRunner (job_runner.h): one worker thread; its eventfd wakes the
//      poll and the finished jobs are given back on this thread. So a hash
//      never stalls relaying (the kernel socket buffer would overflow
//      behind it during a flood).
// One thread owns the socket and the service. The counters are
// plain integers read by the same thread (the runner prints them from
// there). An IPv6 wildcard socket is dual-stack, so one socket serves both
// families.
#pragma once

#include <atomic>
#include <cstdint>
#include <string>

#include "zerotier/job_runner.h"
#include "zerotier/service.h"
#include "zerotier/wire.h"

namespace moongate::zerotier {

struct UdpHostCounters {
  std::uint64_t rx_datagrams = 0;
  std::uint64_t tx_datagrams = 0;
  std::uint64_t tx_errors = 0;
  std::uint64_t rx_truncated = 0;  // larger than kMaxDatagram: dropped
};

class UdpHost {
 public:
  static constexpr unsigned kBurst = 32;
  static constexpr int kTickMs = 1000;

  explicit UdpHost(DatagramService& service) noexcept : service_(service) {}
  ~UdpHost();
  UdpHost(const UdpHost&) = delete;
  UdpHost& operator=(const UdpHost&) = delete;

  // Binds the socket (port 0: an ephemeral port). False with a message.
  bool bind(const Endpoint& local, std::string& error);
  std::uint16_t local_port() const noexcept { return port_; }

  // One poll + burst + flush; waits at most timeout_ms for traffic.
  void poll_once(int timeout_ms) noexcept;
  // poll_once() until stop is set; on_second(now_ms) runs after each tick.
  template <typename F>
  void run(const std::atomic<bool>& stop, F&& on_second) {
    while (!stop.load(std::memory_order_relaxed)) {
      poll_once(kTickMs);
      if (ticked_) {
        ticked_ = false;
        on_second(last_tick_ms_);
      }
    }
  }

  const UdpHostCounters& counters() const noexcept { return counters_; }
  static std::uint64_t now_ms() noexcept;

 private:
  void flush() noexcept;
  void finish_jobs(std::uint64_t now) noexcept;

  DatagramService& service_;
  int fd_ = -1;
  int family_ = 0;
  std::uint16_t port_ = 0;
  TxBatch tx_;
  UdpHostCounters counters_;
  std::uint64_t last_tick_ms_ = 0;
  bool ticked_ = false;
  // Last member: destroyed (worker joined) before the service's host state.
  JobRunner jobs_;
};

}  // namespace moongate::zerotier
