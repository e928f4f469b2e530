// The ZeroTier moon (zerotier::Moon) hosted by moongate-relay on a kernel
// UDP socket, for relay-only machines (docs/relay.md, docs/moon.md).
//
// Flow, all on shard 0's thread (the spec says shard0_only: the moon has
// one peer table, and SO_REUSEPORT would spread its clients over shards
// that do not see each other):
//   1. on_datagram: sockaddr -> Endpoint, Moon::receive into the TxBatch,
//      each datagram out -> UdpOut (io_uring sendmsg); then the moon's
//      deferred identity hashes go to the JobRunner's worker thread;
//   2. on_event (the JobRunner's eventfd, polled by the shard's io_uring):
//      finished hashes go back to the moon, whose OK(HELLO) for a new
//      identity leaves at once — the hash time plus one ring round trip,
//      not the shard's 100 ms tick;
//   3. on_tick (~100 ms): Moon::tick once a second (expiry), finished jobs
//      missed by an event, and the counters published for /debug/varz.
// Counters: the moon's own (an X-macro list) and the host's, copied into
// atomics at each tick, so /debug/varz on any shard reads them without a
// race; names `moongate_moon_<counter>_total`, gauge `moongate_moon_peers`.
#pragma once

#include <array>
#include <atomic>
#include <cstdint>
#include <memory>
#include <string>

#include "relay/udp_service.h"
#include "zerotier/counters.h"
#include "zerotier/job_runner.h"
#include "zerotier/moon.h"
#include "zerotier/moon_config.h"

namespace moongate::relay {

struct MoonHostCounters {
  std::uint64_t rx_datagrams = 0;
  std::uint64_t rx_truncated = 0;  // larger than kMaxDatagram: dropped
  std::uint64_t tx_datagrams = 0;
  std::uint64_t tx_dropped = 0;  // the shard's send slots were full
  std::uint64_t tx_errors = 0;   // an IPv6 destination on an IPv4 socket
};

class MoonService final : public UdpService {
 public:
  // Opens the moon of `settings` (identity, World listing it as a root,
  // listen address) and starts the hash worker; nullptr with `error`.
  static std::unique_ptr<MoonService> open(zerotier::MoonSettings settings, std::string& error);
  // Hosts a Moon made elsewhere (benchmarks preload its peers); it must
  // have been made with defer_verification. Starts the hash worker.
  static std::unique_ptr<MoonService> host(std::unique_ptr<zerotier::Moon> moon, const zerotier::Endpoint& listen,
                                           std::string& error);

  // The spec to add to Options::udp_services: bound by shard 0 only. The
  // service moves into the spec's factory (called once, by shard 0).
  static UdpServiceSpec spec(std::unique_ptr<MoonService> service);

  void on_datagram(std::span<const std::uint8_t> datagram, const sockaddr_storage& from, socklen_t from_len,
                   std::uint64_t now_ns, UdpOut& out) override;
  void on_tick(std::uint64_t now_ns, UdpOut& out) override;
  int event_fd() const override { return jobs_.event_fd(); }
  void on_event(std::uint64_t now_ns, UdpOut& out) override;
  void metrics(std::string& out, unsigned shard) const override;

  const zerotier::Moon& moon() const noexcept { return *moon_; }
  const zerotier::Endpoint& listen() const noexcept { return listen_; }
  const MoonHostCounters& host_counters() const noexcept { return host_; }

 private:
  MoonService(std::unique_ptr<zerotier::Moon> moon, const zerotier::Endpoint& listen);
  void flush(UdpOut& out) noexcept;
  void finish_jobs(std::uint64_t now_ms, UdpOut& out) noexcept;
  void publish() noexcept;

#define MOONGATE_HR_ONE(name) +1
  static constexpr std::size_t kMoonCounters = 0 MOONGATE_ZT_COUNTERS(MOONGATE_HR_ONE);
#undef MOONGATE_HR_ONE
  static constexpr std::size_t kHostCounters = 5;

  std::unique_ptr<zerotier::Moon> moon_;
  zerotier::Endpoint listen_;
  int family_;  // of the socket the shard binds for listen_
  std::unique_ptr<zerotier::TxBatch> tx_;
  MoonHostCounters host_;
  std::uint64_t last_tick_ms_ = 0;
  // Published copies (written by shard 0 at each tick, read by any shard).
  std::array<std::atomic<std::uint64_t>, kMoonCounters> pub_moon_{};
  std::array<std::atomic<std::uint64_t>, kHostCounters> pub_host_{};
  std::atomic<std::uint64_t> pub_peers_{0};
  // Last member: its worker is joined before the moon it hashes for goes.
  zerotier::JobRunner jobs_;
};

}  // namespace moongate::relay
