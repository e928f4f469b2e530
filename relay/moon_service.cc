// The moon on moongate-relay's shard 0 (flow in moon_service.h).
#include "relay/moon_service.h"

#include <arpa/inet.h>

#include <stdexcept>

#include "crypto/secret.h"
#include "zerotier/sockaddr.h"

namespace moongate::relay {

using zerotier::Endpoint;
using zerotier::Job;
using zerotier::TxBatch;

namespace {

constexpr std::uint64_t kMoonTickMs = 1000;

std::uint64_t to_ms(std::uint64_t now_ns) noexcept { return now_ns / 1'000'000; }

// The address part of an Endpoint as the shard's bind_socket wants it.
std::string ip_string(const Endpoint& e) {
  char buf[INET6_ADDRSTRLEN] = {};
  inet_ntop(e.family == 6 ? AF_INET6 : AF_INET, e.ip.data(), buf, sizeof buf);
  return buf;
}

#define MOONGATE_HR_NAME(name) #name,
const char* const kMoonNames[] = {MOONGATE_ZT_COUNTERS(MOONGATE_HR_NAME)};
#undef MOONGATE_HR_NAME
const char* const kHostNames[] = {"host_rx_datagrams", "host_rx_truncated", "host_tx_datagrams",
                                  "host_tx_dropped", "host_tx_errors"};

}  // namespace

MoonService::MoonService(std::unique_ptr<zerotier::Moon> moon, const Endpoint& listen)
    : moon_(std::move(moon)),
      listen_(listen),
      // bind_socket makes an IPv4 socket for an IPv4 address, else a
      // dual-stack IPv6 one (which reaches IPv4 peers v4-mapped).
      family_(listen.family == 4 ? AF_INET : AF_INET6),
      tx_(std::make_unique<TxBatch>()) {}

std::unique_ptr<MoonService> MoonService::open(zerotier::MoonSettings settings, std::string& error) {
  // The hashes run on the JobRunner's worker, never on the shard.
  settings.config.defer_verification = true;
  auto opened = zerotier::open_moon(settings, error);
  if (!opened) return nullptr;
  std::unique_ptr<zerotier::Moon> moon;
  try {
    moon = std::make_unique<zerotier::Moon>(std::move(opened->identity), std::move(opened->world), settings.config);
  } catch (const std::exception& e) {
    error = e.what();
    return nullptr;
  }
  return host(std::move(moon), opened->listen, error);
}

std::unique_ptr<MoonService> MoonService::host(std::unique_ptr<zerotier::Moon> moon, const Endpoint& listen,
                                               std::string& error) {
  std::unique_ptr<MoonService> s(new MoonService(std::move(moon), listen));
  if (!s->jobs_.start(error)) return nullptr;
  return s;
}

UdpServiceSpec MoonService::spec(std::unique_ptr<MoonService> service) {
  UdpServiceSpec spec;
  spec.name = "moon";
  spec.bind = ip_string(service->listen_);
  spec.port = service->listen_.port;
  spec.shard0_only = true;
  // std::function must be copyable: the service waits in a shared holder
  // for the one call (shard 0's init).
  auto holder = std::make_shared<std::unique_ptr<MoonService>>(std::move(service));
  spec.factory = [holder](unsigned) -> std::unique_ptr<UdpService> { return std::move(*holder); };
  return spec;
}

void MoonService::flush(UdpOut& out) noexcept {
  sockaddr_storage ss;
  for (std::size_t i = 0; i < tx_->size(); ++i) {
    const zerotier::Datagram& d = (*tx_)[i];
    const socklen_t len = zerotier::to_sockaddr(d.to, family_, ss);
    if (len == 0) {
      ++host_.tx_errors;
    } else if (out.send({d.bytes.data(), d.len}, ss, len)) {
      ++host_.tx_datagrams;
    } else {
      ++host_.tx_dropped;
    }
  }
  tx_->clear();
}

void MoonService::on_datagram(std::span<const std::uint8_t> datagram, const sockaddr_storage& from, socklen_t,
                              std::uint64_t now_ns, UdpOut& out) {
  ++host_.rx_datagrams;
  if (datagram.size() > zerotier::kMaxDatagram) {
    ++host_.rx_truncated;
    return;
  }
  // The batch is empty here (flushed after every call), so it has room.
  moon_->receive(datagram, zerotier::from_sockaddr(from), to_ms(now_ns), *tx_);
  flush(out);
  jobs_.hand_off(*moon_);
}

void MoonService::finish_jobs(std::uint64_t now_ms, UdpOut& out) noexcept {
  jobs_.clear_event();
  Job job;
  while (jobs_.take_done(job)) {
    moon_->finish_job(job, now_ms, *tx_);
    flush(out);
  }
  crypto::secure_wipe(&job, sizeof job);
}

void MoonService::on_event(std::uint64_t now_ns, UdpOut& out) { finish_jobs(to_ms(now_ns), out); }

void MoonService::on_tick(std::uint64_t now_ns, UdpOut& out) {
  const std::uint64_t now = to_ms(now_ns);
  finish_jobs(now, out);
  jobs_.hand_off(*moon_);  // what a full worker left with the moon
  if (now - last_tick_ms_ >= kMoonTickMs) {
    last_tick_ms_ = now;
    moon_->tick(now, *tx_);
    flush(out);
  }
  publish();
}

void MoonService::publish() noexcept {
  std::size_t i = 0;
  moon_->counters().for_each(
      [&](const char*, std::uint64_t v) { pub_moon_[i++].store(v, std::memory_order_relaxed); });
  const std::uint64_t host[kHostCounters] = {host_.rx_datagrams, host_.rx_truncated, host_.tx_datagrams,
                                             host_.tx_dropped, host_.tx_errors};
  for (std::size_t k = 0; k < kHostCounters; ++k) pub_host_[k].store(host[k], std::memory_order_relaxed);
  pub_peers_.store(moon_->peer_count(), std::memory_order_relaxed);
}

void MoonService::metrics(std::string& out, unsigned) const {
  out += "# TYPE moongate_moon_peers gauge\nmoongate_moon_peers " +
         std::to_string(pub_peers_.load(std::memory_order_relaxed)) + "\n";
  // The moon's counter list (the names moongate-moon's --stats writes).
  for (std::size_t k = 0; k < kMoonCounters; ++k)
    out += std::string("moongate_moon_") + kMoonNames[k] + "_total " +
           std::to_string(pub_moon_[k].load(std::memory_order_relaxed)) + "\n";
  for (std::size_t k = 0; k < kHostCounters; ++k)
    out += std::string("moongate_moon_") + kHostNames[k] + "_total " +
           std::to_string(pub_host_[k].load(std::memory_order_relaxed)) + "\n";
}

}  // namespace moongate::relay
