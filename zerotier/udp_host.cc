// The kernel-socket host (loop in udp_host.h).
#include "zerotier/udp_host.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <poll.h>
#include <sys/eventfd.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>

#include "crypto/secret.h"

namespace moongate::zerotier {

namespace {

Endpoint from_sockaddr(const sockaddr_storage& ss) noexcept {
  Endpoint e;
  if (ss.ss_family == AF_INET) {
    const auto* s4 = reinterpret_cast<const sockaddr_in*>(&ss);
    e.family = 4;
    std::memcpy(e.ip.data(), &s4->sin_addr, 4);
    e.port = ntohs(s4->sin_port);
  } else if (ss.ss_family == AF_INET6) {
    const auto* s6 = reinterpret_cast<const sockaddr_in6*>(&ss);
    // A v4-mapped source on the dual-stack socket is an IPv4 peer: keep it
    // IPv4 so RENDEZVOUS and OK(HELLO) show the address the client knows.
    if (IN6_IS_ADDR_V4MAPPED(&s6->sin6_addr)) {
      e.family = 4;
      std::memcpy(e.ip.data(), s6->sin6_addr.s6_addr + 12, 4);
    } else {
      e.family = 6;
      std::memcpy(e.ip.data(), &s6->sin6_addr, 16);
    }
    e.port = ntohs(s6->sin6_port);
  }
  return e;
}

socklen_t to_sockaddr(const Endpoint& e, int socket_family, sockaddr_storage& ss) noexcept {
  std::memset(&ss, 0, sizeof ss);
  if (socket_family == AF_INET) {
    if (e.family != 4) return 0;
    auto* s4 = reinterpret_cast<sockaddr_in*>(&ss);
    s4->sin_family = AF_INET;
    std::memcpy(&s4->sin_addr, e.ip.data(), 4);
    s4->sin_port = htons(e.port);
    return sizeof(sockaddr_in);
  }
  auto* s6 = reinterpret_cast<sockaddr_in6*>(&ss);
  s6->sin6_family = AF_INET6;
  if (e.family == 4) {
    s6->sin6_addr.s6_addr[10] = 0xff;
    s6->sin6_addr.s6_addr[11] = 0xff;
    std::memcpy(s6->sin6_addr.s6_addr + 12, e.ip.data(), 4);
  } else if (e.family == 6) {
    std::memcpy(&s6->sin6_addr, e.ip.data(), 16);
  } else {
    return 0;
  }
  s6->sin6_port = htons(e.port);
  return sizeof(sockaddr_in6);
}

}  // namespace

UdpHost::~UdpHost() {
  if (worker_.joinable()) {
    {
      std::lock_guard<std::mutex> lock(mu_);
      quit_ = true;
    }
    cv_.notify_one();
    worker_.join();
  }
  // Jobs carry peer keys: wipe what is left in the rings.
  crypto::secure_wipe(todo_.jobs.data(), sizeof todo_.jobs);
  crypto::secure_wipe(done_.jobs.data(), sizeof done_.jobs);
  if (efd_ >= 0) close(efd_);
  if (fd_ >= 0) close(fd_);
}

void UdpHost::worker_loop() noexcept {
  Job job;
  for (;;) {
    {
      std::unique_lock<std::mutex> lock(mu_);
      cv_.wait(lock, [&] { return quit_ || todo_.count > 0; });
      if (quit_) break;
      job = todo_.jobs[todo_.head];
      crypto::secure_wipe(&todo_.jobs[todo_.head], sizeof(Job));
      todo_.head = (todo_.head + 1) % kJobs;
      --todo_.count;
    }
    job.run(job);
    {
      std::lock_guard<std::mutex> lock(mu_);
      // done_ cannot overflow: at most kJobs jobs exist between the rings.
      done_.jobs[(done_.head + done_.count++) % kJobs] = job;
    }
    const std::uint64_t one = 1;
    if (write(efd_, &one, sizeof one) < 0) {
      // The counter cannot overflow at this rate; nothing else can fail.
    }
  }
  crypto::secure_wipe(&job, sizeof job);
}

void UdpHost::hand_off_jobs() noexcept {
  bool any = false;
  {
    std::lock_guard<std::mutex> lock(mu_);
    Job job;
    while (todo_.count + done_.count < kJobs && service_.take_job(job)) {
      todo_.jobs[(todo_.head + todo_.count++) % kJobs] = job;
      any = true;
    }
    crypto::secure_wipe(&job, sizeof job);
  }
  if (any) cv_.notify_one();
}

void UdpHost::finish_jobs(std::uint64_t now) noexcept {
  std::uint64_t n;
  if (read(efd_, &n, sizeof n) < 0) return;
  for (;;) {
    Job job;
    {
      std::lock_guard<std::mutex> lock(mu_);
      if (done_.count == 0) break;
      job = done_.jobs[done_.head];
      crypto::secure_wipe(&done_.jobs[done_.head], sizeof(Job));
      done_.head = (done_.head + 1) % kJobs;
      --done_.count;
    }
    if (tx_.room() < TxBatch::kRoomPerReceive) flush();
    service_.finish_job(job, now, tx_);
    crypto::secure_wipe(&job, sizeof job);
  }
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
  efd_ = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
  if (efd_ < 0) {
    error = std::string("eventfd: ") + std::strerror(errno);
    return false;
  }
  worker_ = std::thread([this] { worker_loop(); });
  return true;
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
  pollfd p[2] = {{fd_, POLLIN, 0}, {efd_, POLLIN, 0}};
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
  hand_off_jobs();
  if (now - last_tick_ms_ >= static_cast<std::uint64_t>(kTickMs)) {
    last_tick_ms_ = now;
    ticked_ = true;
    service_.tick(now, tx_);
  }
  if (tx_.size() > 0) flush();
}

}  // namespace moongate::zerotier
