// The kernel-socket host (loop in udp_host.h).
#include "zerotier/udp_host.h"

#include <netinet/in.h>
#include <poll.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>

#include "crypto/secret.h"
#include "zerotier/sockaddr.h"

namespace moongate::zerotier {

UdpHost::~UdpHost() {
  if (fd_ >= 0) close(fd_);
}

void UdpHost::finish_jobs(std::uint64_t now) noexcept {
  jobs_.clear_event();
  Job job;
  while (jobs_.take_done(job)) {
    if (tx_.room() < TxBatch::kRoomPerReceive) flush();
    service_.finish_job(job, now, tx_);
  }
  crypto::secure_wipe(&job, sizeof job);
}

std::uint64_t UdpHost::now_ms() noexcept {
  timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return static_cast<std::uint64_t>(ts.tv_sec) * 1000 + static_cast<std::uint64_t>(ts.tv_nsec) / 1000000;
}

bool UdpHost::bind(const Endpoint& local, std::string& error) {
  family_ = local.family == 6 ? AF_INET6 : AF_INET;
  fd_ = socket(family_, SOCK_DGRAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
  if (fd_ < 0) {
    error = std::string("socket: ") + std::strerror(errno);
    return false;
  }
  if (family_ == AF_INET6) {
    const int off = 0;
    setsockopt(fd_, IPPROTO_IPV6, IPV6_V6ONLY, &off, sizeof off);
  }
  const int buf = 4 << 20;
  setsockopt(fd_, SOL_SOCKET, SO_RCVBUF, &buf, sizeof buf);
  setsockopt(fd_, SOL_SOCKET, SO_SNDBUF, &buf, sizeof buf);
  sockaddr_storage ss;
  const socklen_t len = to_sockaddr(local, family_, ss);
  if (::bind(fd_, reinterpret_cast<sockaddr*>(&ss), len) != 0) {
    error = "bind " + local.to_string() + ": " + std::strerror(errno);
    return false;
  }
  socklen_t sl = sizeof ss;
  getsockname(fd_, reinterpret_cast<sockaddr*>(&ss), &sl);
  port_ = from_sockaddr(ss).port;
  last_tick_ms_ = now_ms();
  return jobs_.start(error);
}

void UdpHost::flush() noexcept {
  mmsghdr msgs[TxBatch::kCapacity];
  iovec iov[TxBatch::kCapacity];
  sockaddr_storage addrs[TxBatch::kCapacity];
  unsigned n = 0;
  for (std::size_t i = 0; i < tx_.size(); ++i) {
    const socklen_t sl = to_sockaddr(tx_[i].to, family_, addrs[n]);
    if (sl == 0) {
      ++counters_.tx_errors;  // an IPv6 destination on an IPv4 socket
      continue;
    }
    iov[n] = {tx_[i].bytes.data(), tx_[i].len};
    msgs[n] = {};
    msgs[n].msg_hdr.msg_name = &addrs[n];
    msgs[n].msg_hdr.msg_namelen = sl;
    msgs[n].msg_hdr.msg_iov = &iov[n];
    msgs[n].msg_hdr.msg_iovlen = 1;
    ++n;
  }
  unsigned sent = 0;
  while (sent < n) {
    const int r = sendmmsg(fd_, msgs + sent, n - sent, 0);
    if (r < 0) {
      if (errno == EINTR) continue;
      // EAGAIN (socket buffer full) or a per-destination error: count the
      // first datagram as lost and carry on with the rest.
      ++counters_.tx_errors;
      ++sent;
      continue;
    }
    sent += static_cast<unsigned>(r);
    counters_.tx_datagrams += static_cast<unsigned>(r);
  }
  tx_.clear();
}

void UdpHost::poll_once(int timeout_ms) noexcept {
  pollfd p[2] = {{fd_, POLLIN, 0}, {jobs_.event_fd(), POLLIN, 0}};
  const std::uint64_t now0 = now_ms();
  const int until_tick = static_cast<int>(last_tick_ms_ + kTickMs > now0 ? last_tick_ms_ + kTickMs - now0 : 0);
  poll(p, 2, timeout_ms < until_tick ? timeout_ms : until_tick);
  if (p[1].revents & POLLIN) finish_jobs(now_ms());

  static thread_local std::uint8_t bufs[kBurst][kMaxDatagram + 1];
  mmsghdr msgs[kBurst];
  iovec iov[kBurst];
  sockaddr_storage addrs[kBurst];
  for (unsigned i = 0; i < kBurst; ++i) {
    iov[i] = {bufs[i], sizeof bufs[i]};
    msgs[i] = {};
    msgs[i].msg_hdr.msg_name = &addrs[i];
    msgs[i].msg_hdr.msg_namelen = sizeof addrs[i];
    msgs[i].msg_hdr.msg_iov = &iov[i];
    msgs[i].msg_hdr.msg_iovlen = 1;
  }
  const int got = recvmmsg(fd_, msgs, kBurst, MSG_DONTWAIT, nullptr);
  const std::uint64_t now = now_ms();
  for (int i = 0; i < got; ++i) {
    ++counters_.rx_datagrams;
    if (msgs[i].msg_len > kMaxDatagram || (msgs[i].msg_hdr.msg_flags & MSG_TRUNC)) {
      ++counters_.rx_truncated;
      continue;
    }
    if (tx_.room() < TxBatch::kRoomPerReceive) flush();
    service_.receive(std::span<const std::uint8_t>(bufs[i], msgs[i].msg_len), from_sockaddr(addrs[i]), now, tx_);
  }
  jobs_.hand_off(service_);
  if (now - last_tick_ms_ >= static_cast<std::uint64_t>(kTickMs)) {
    last_tick_ms_ = now;
    ticked_ = true;
    service_.tick(now, tx_);
  }
  if (tx_.size() > 0) flush();
}

}  // namespace moongate::zerotier
