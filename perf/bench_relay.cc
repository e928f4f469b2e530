// Load generator for moongate-relay (perf/run-relay.sh).
//
//   bench_relay load --port P --key HEX --pid PID [--tls] [--pairs N]
//                    [--seconds S] [--size BYTES] [--window W] [--suite TLS_...]
//                    [--bind-port B] [--warmup S]
//     N sender/receiver pairs on loopback, each sender keeping at most W
//     packets in flight to its receiver; reports packets/s and the relay's
//     CPU per relayed packet (utime+stime of PID from /proc/PID/stat), and
//     the packets the relay dropped (lost=: its per-client queues drop the
//     oldest when a burst outruns the socket).
//     Each packet carries its sequence number (the payload's first 8
//     bytes), and a packet counts as no longer in flight once it or a later
//     one arrived: DERP keeps a pair's order, so a gap is a drop. Counting
//     arrivals instead would shrink the window by every drop for the rest
//     of the run (32 drops while a split pair was moved left W = 64 at 32,
//     and the pair in a lock-step with the client that cost the relay
//     ~40 % more CPU per packet: docs/perf.md).
//     --bind-port: pair i connects from ports B+2i and B+2i+1, so that with
//     the relay on a fixed port SO_REUSEPORT puts them on the same shards
//     in every run (its hash of the addresses is fixed until reboot): A/B
//     comparisons of a cross-shard (or same-shard) pair.
//     --warmup: seconds of load before the measured ones (default 1); a
//     relay moving a split pair to one shard does so within ~2 s.
//   bench_relay idle --port P --key HEX --pid PID [--tls] [--conns N] [--sources K]
//                    [--procs M] [--hold S]
//     N connections through the handshake, from 127.0.0.1..127.0.0.K (one
//     source address has ~28 000 ephemeral ports towards the relay's one
//     address and port), then held; reports the relay's VmRSS growth per
//     connection. The connections are spread over M client processes
//     (default: as few as fit under RLIMIT_NOFILE's hard limit, less 1 000,
//     each): one process cannot hold more descriptors than that.
//
// One thread per process, epoll, non-blocking sockets; the DERP framing is
// the project's derp/ codec, the crypto libsodium's.
#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <openssl/err.h>
#include <openssl/ssl.h>
#include <sodium.h>
#include <sys/epoll.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <poll.h>
#include <time.h>
#include <unistd.h>

#include <cerrno>
#include <algorithm>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <memory>
#include <sstream>
#include <string>
#include <vector>

#include "derp/frame.h"
#include "derp/handshake.h"

using namespace moongate;

namespace {

double mono() {
  timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return static_cast<double>(ts.tv_sec) + static_cast<double>(ts.tv_nsec) / 1e9;
}

// utime + stime of a process, in seconds.
double cpu_of(int pid) {
  std::ifstream f("/proc/" + std::to_string(pid) + "/stat");
  std::string s((std::istreambuf_iterator<char>(f)), std::istreambuf_iterator<char>());
  const std::size_t close = s.rfind(')');
  std::istringstream in(s.substr(close + 2));
  std::string field;
  unsigned long long ut = 0, st = 0;
  for (int i = 3; i <= 15; ++i) {
    in >> field;
    if (i == 14) ut = std::stoull(field);
    if (i == 15) st = std::stoull(field);
  }
  return static_cast<double>(ut + st) / static_cast<double>(sysconf(_SC_CLK_TCK));
}

long rss_kib(int pid) {
  std::ifstream f("/proc/" + std::to_string(pid) + "/status");
  std::string line;
  while (std::getline(f, line))
    if (line.rfind("VmRSS:", 0) == 0) return std::stol(line.substr(6));
  return -1;
}

struct Conn {
  int fd = -1;
  SSL* ssl = nullptr;
  bool tls_done = false;
  bool ready = false;  // ServerInfo seen
  crypto::SecretKey priv;
  derp::Key pub{};
  std::string out;
  std::string in;
  std::uint64_t received = 0;  // RecvPacket frames that arrived
  std::uint64_t through = 0;   // the highest sequence number received, plus 1
  std::uint64_t sent = 0;
  bool want_out = false;
};

struct Bench {
  int port = 0;
  derp::Key server_key{};
  bool tls = false;
  SSL_CTX* ctx = nullptr;
  int ep = -1;
  std::vector<std::unique_ptr<Conn>> conns;

  Conn* open(const char* source, int source_port = 0) {
    auto c = std::make_unique<Conn>();
    crypto_box_keypair(c->pub.data(), c->priv.data());
    c->fd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (c->fd < 0) {
      std::perror("socket");
      std::exit(1);
    }
    const int one = 1;
    setsockopt(c->fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    sockaddr_in sa{};
    sa.sin_family = AF_INET;
    if (source_port) {
      // A fixed port: the previous run's connection may be in TIME_WAIT
      // (loopback may reuse it: net.ipv4.tcp_tw_reuse).
      setsockopt(c->fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
      inet_pton(AF_INET, "127.0.0.1", &sa.sin_addr);
      sa.sin_port = htons(static_cast<std::uint16_t>(source_port));
      if (bind(c->fd, reinterpret_cast<sockaddr*>(&sa), sizeof sa) != 0) {
        std::perror("bind");
        std::exit(1);
      }
      sa.sin_port = 0;
    } else if (source) {
      // The port is picked at connect() for the whole 4-tuple, not at
      // bind() for the address alone: each source address then has the
      // whole ephemeral range towards the relay.
      setsockopt(c->fd, IPPROTO_IP, IP_BIND_ADDRESS_NO_PORT, &one, sizeof one);
      inet_pton(AF_INET, source, &sa.sin_addr);
      if (bind(c->fd, reinterpret_cast<sockaddr*>(&sa), sizeof sa) != 0) {
        std::perror("bind");
        std::exit(1);
      }
    }
    inet_pton(AF_INET, "127.0.0.1", &sa.sin_addr);
    sa.sin_port = htons(static_cast<std::uint16_t>(port));
    if (connect(c->fd, reinterpret_cast<sockaddr*>(&sa), sizeof sa) != 0 && errno != EINPROGRESS) {
      std::perror("connect");
      std::exit(1);
    }
    // Fast start: the upgrade and ClientInfo go out together.
    c->out = "GET /derp HTTP/1.1\r\nHost: bench\r\nUpgrade: DERP\r\nConnection: Upgrade\r\n"
             "Derp-Fast-Start: 1\r\n\r\n";
    derp::ClientInfo ci;
    ci.version = 2;
    c->out += derp::seal_client_info(c->priv, c->pub, server_key, ci);
    if (tls) {
      c->ssl = SSL_new(ctx);
      SSL_set_fd(c->ssl, c->fd);
      SSL_set_connect_state(c->ssl);
    }
    epoll_event ev{};
    ev.events = EPOLLIN | EPOLLOUT | EPOLLET;
    ev.data.ptr = c.get();
    epoll_ctl(ep, EPOLL_CTL_ADD, c->fd, &ev);
    conns.push_back(std::move(c));
    return conns.back().get();
  }

  // Returns false when the connection broke.
  bool pump_out(Conn& c) {
    if (c.ssl && !c.tls_done) {
      const int r = SSL_do_handshake(c.ssl);
      if (r != 1) {
        const int e = SSL_get_error(c.ssl, r);
        return e == SSL_ERROR_WANT_READ || e == SSL_ERROR_WANT_WRITE;
      }
      c.tls_done = true;
    }
    while (!c.out.empty()) {
      long n;
      if (c.ssl) {
        n = SSL_write(c.ssl, c.out.data(), static_cast<int>(std::min<std::size_t>(c.out.size(), 1 << 20)));
        if (n <= 0) {
          const int e = SSL_get_error(c.ssl, static_cast<int>(n));
          return e == SSL_ERROR_WANT_WRITE || e == SSL_ERROR_WANT_READ;
        }
      } else {
        n = send(c.fd, c.out.data(), c.out.size(), MSG_NOSIGNAL);
        if (n < 0) return errno == EAGAIN;
      }
      c.out.erase(0, static_cast<std::size_t>(n));
    }
    return true;
  }

  bool pump_in(Conn& c) {
    if (c.ssl && !c.tls_done) return pump_out(c);
    char buf[256 << 10];
    for (;;) {
      long n;
      if (c.ssl) {
        n = SSL_read(c.ssl, buf, sizeof buf);
        if (n <= 0) {
          const int e = SSL_get_error(c.ssl, static_cast<int>(n));
          if (e == SSL_ERROR_WANT_READ || e == SSL_ERROR_WANT_WRITE) break;
          return false;
        }
      } else {
        n = recv(c.fd, buf, sizeof buf, 0);
        if (n == 0) return false;
        if (n < 0) {
          if (errno == EAGAIN) break;
          return false;
        }
      }
      c.in.append(buf, static_cast<std::size_t>(n));
    }
    std::size_t off = 0;
    while (c.in.size() - off >= derp::kHeaderLen) {
      const auto h = derp::get_header(reinterpret_cast<const std::uint8_t*>(c.in.data()) + off);
      if (c.in.size() - off < derp::kHeaderLen + h.length) break;
      if (h.type == derp::FrameType::kServerInfo) c.ready = true;
      if (h.type == derp::FrameType::kRecvPacket && h.length >= derp::kKeyLen + 8) {
        ++c.received;
        std::uint64_t seq;
        std::memcpy(&seq, c.in.data() + off + derp::kHeaderLen + derp::kKeyLen, 8);
        c.through = std::max(c.through, seq + 1);
      }
      off += derp::kHeaderLen + h.length;
    }
    c.in.erase(0, off);
    return true;
  }

  void poll(int timeout_ms) {
    epoll_event evs[512];
    const int n = epoll_wait(ep, evs, 512, timeout_ms);
    for (int i = 0; i < n; ++i) {
      Conn& c = *static_cast<Conn*>(evs[i].data.ptr);
      bool ok = true;
      if (evs[i].events & (EPOLLIN | EPOLLHUP | EPOLLERR)) ok = pump_in(c);
      if (ok && (evs[i].events & EPOLLOUT)) ok = pump_out(c);
      if (!ok) {
        std::fprintf(stderr, "bench_relay: a connection broke\n");
        std::exit(1);
      }
    }
  }
};

// The descriptors this process may have open.
long raise_nofile() {
  rlimit r{1 << 20, 1 << 20};
  if (setrlimit(RLIMIT_NOFILE, &r) != 0) {
    getrlimit(RLIMIT_NOFILE, &r);
    r.rlim_cur = r.rlim_max;
    setrlimit(RLIMIT_NOFILE, &r);
  }
  getrlimit(RLIMIT_NOFILE, &r);
  return r.rlim_cur == RLIM_INFINITY ? (1l << 30) : static_cast<long>(r.rlim_cur);
}

// One client process of `idle`: connections first .. first+conns-1 through
// the handshake (source address 127.0.0.(1 + i % sources)), then "ready\n"
// on ready_fd, then held (the relay's keepalives read) until stop_fd says
// stop (EOF). Exits 1 if a connection breaks.
[[noreturn]] void idle_child(Bench& b, int first, int conns, int sources, int ready_fd, int stop_fd) {
  b.ep = epoll_create1(EPOLL_CLOEXEC);
  const double t0 = mono();
  int opened = 0;
  std::size_t ready = 0;
  char src[32];
  while (ready < static_cast<std::size_t>(conns)) {
    // At most 512 handshakes outstanding per process: the relay's accept
    // backlog and our own CPU stay out of the measurement.
    while (opened < conns && opened - static_cast<int>(ready) < 512) {
      std::snprintf(src, sizeof src, "127.0.0.%d", 1 + (first + opened) % sources);
      b.open(src);
      ++opened;
    }
    b.poll(10);
    ready = 0;
    for (auto& c : b.conns) ready += c->ready;
    if (mono() - t0 > 600) {
      std::fprintf(stderr, "bench_relay: only %zu of %d handshakes in 600 s\n", ready, conns);
      std::_Exit(1);
    }
  }
  if (write(ready_fd, "ready\n", 6) != 6) std::_Exit(1);
  for (;;) {
    pollfd p{stop_fd, POLLIN, 0};
    if (::poll(&p, 1, 0) > 0) std::_Exit(0);  // the parent closed it (or died)
    b.poll(100);
  }
}

}  // namespace

int main(int argc, char** argv) {
  if (argc < 2 || sodium_init() < 0) {
    std::fprintf(stderr, "usage: bench_relay load|idle --port P --key HEX --pid PID [...]\n");
    return 2;
  }
  const std::string mode = argv[1];
  Bench b;
  int pid = 0, pairs = 1, conns = 1000, sources = 1, window = 64;
  int procs = 0;  // idle: 0 = as few as the descriptor limit allows
  int bind_port = 0;  // load: 0 = ephemeral source ports
  double seconds = 5, hold = 0, warmup = 1;
  std::string suite;  // TLS 1.3 suite to offer alone; default: OpenSSL's offer
  std::size_t size = 1200;
  for (int i = 2; i < argc; ++i) {
    const std::string a = argv[i];
    auto next = [&]() -> std::string { return i + 1 < argc ? argv[++i] : ""; };
    if (a == "--port") b.port = std::atoi(next().c_str());
    else if (a == "--key") {
      if (!derp::key_from_hex(next(), b.server_key)) return 2;
    } else if (a == "--pid") pid = std::atoi(next().c_str());
    else if (a == "--tls") b.tls = true;
    else if (a == "--pairs") pairs = std::atoi(next().c_str());
    else if (a == "--conns") conns = std::atoi(next().c_str());
    else if (a == "--sources") sources = std::atoi(next().c_str());
    else if (a == "--seconds") seconds = std::atof(next().c_str());
    else if (a == "--warmup") warmup = std::atof(next().c_str());
    else if (a == "--size") size = static_cast<std::size_t>(std::atol(next().c_str()));
    else if (a == "--window") window = std::atoi(next().c_str());
    else if (a == "--hold") hold = std::atof(next().c_str());
    else if (a == "--procs") procs = std::atoi(next().c_str());
    else if (a == "--bind-port") bind_port = std::atoi(next().c_str());
    else if (a == "--suite") suite = next();
    else return 2;
  }
  if (mode == "load" && size < 8) {
    std::fprintf(stderr, "bench_relay: --size must be at least 8 (the packet's sequence number)\n");
    return 2;
  }
  const long nofile = raise_nofile();
  if (b.tls) {
    b.ctx = SSL_CTX_new(TLS_client_method());
    SSL_CTX_set_verify(b.ctx, SSL_VERIFY_NONE, nullptr);
    SSL_CTX_set_mode(b.ctx, SSL_MODE_ENABLE_PARTIAL_WRITE | SSL_MODE_ACCEPT_MOVING_WRITE_BUFFER |
                                SSL_MODE_RELEASE_BUFFERS);
    if (!suite.empty() && SSL_CTX_set_ciphersuites(b.ctx, suite.c_str()) != 1) {
      std::fprintf(stderr, "bench_relay: unknown TLS 1.3 suite %s\n", suite.c_str());
      return 2;
    }
  }

  if (mode == "idle") {
    // Each process keeps 1 000 descriptors spare (epoll, pipes, stdio).
    const long per_proc_max = std::max(1l, nofile - 1000);
    if (procs <= 0) procs = static_cast<int>((conns + per_proc_max - 1) / per_proc_max);
    if ((conns + procs - 1) / procs > per_proc_max) {
      std::fprintf(stderr, "bench_relay: %d connections in %d processes: more than %ld each (RLIMIT_NOFILE)\n",
                   conns, procs, per_proc_max);
      return 2;
    }
    const long rss0 = rss_kib(pid);
    const double t0 = mono();
    int stop[2];
    if (pipe2(stop, O_CLOEXEC) != 0) return 1;
    std::vector<int> ready_fds;
    std::vector<pid_t> kids;
    for (int k = 0, first = 0; k < procs; ++k) {
      const int n = conns / procs + (k < conns % procs ? 1 : 0);
      int rp[2];
      if (pipe2(rp, O_CLOEXEC) != 0) return 1;
      const pid_t kid = fork();
      if (kid < 0) return 1;
      if (kid == 0) {
        ::close(rp[0]);
        ::close(stop[1]);
        idle_child(b, first, n, sources, rp[1], stop[0]);
      }
      ::close(rp[1]);
      ready_fds.push_back(rp[0]);
      kids.push_back(kid);
      first += n;
    }
    ::close(stop[0]);
    // Every process says ready (or dies: EOF on its pipe).
    bool ok = true;
    for (int fd : ready_fds) {
      char buf[8];
      ok = ok && read(fd, buf, sizeof buf) == 6;
      ::close(fd);
    }
    const double t_ready = mono();
    if (ok) {
      // Let the relay settle (its per-second housekeeping gives idle
      // connections' buffers back), then measure.
      struct timespec settle{2, 0};
      nanosleep(&settle, nullptr);
      const long rss1 = rss_kib(pid);
      std::printf("idle conns=%d tls=%d procs=%d sources=%d handshake_s=%.1f rss_before_kib=%ld "
                  "rss_after_kib=%ld per_conn_bytes=%.0f\n",
                  conns, b.tls ? 1 : 0, procs, sources, t_ready - t0, rss0, rss1,
                  static_cast<double>(rss1 - rss0) * 1024.0 / conns);
      std::fflush(stdout);
      // --hold: keep the connections open a while longer, to look inside
      // the relay (heap statistics) while they are.
      const double hold_until = mono() + hold;
      while (mono() < hold_until) {
        struct timespec tick{0, 100'000'000};
        nanosleep(&tick, nullptr);
      }
    } else {
      std::fprintf(stderr, "bench_relay: a client process failed\n");
    }
    ::close(stop[1]);  // the children stop
    int failed = 0;
    for (pid_t kid : kids) {
      int st = 0;
      waitpid(kid, &st, 0);
      failed += !(WIFEXITED(st) && WEXITSTATUS(st) == 0);
    }
    return ok && failed == 0 ? 0 : 1;
  }

  b.ep = epoll_create1(EPOLL_CLOEXEC);
  // load
  std::vector<std::pair<Conn*, Conn*>> p;
  for (int i = 0; i < pairs; ++i) {
    Conn* sender = b.open(nullptr, bind_port ? bind_port + 2 * i : 0);
    p.emplace_back(sender, b.open(nullptr, bind_port ? bind_port + 2 * i + 1 : 0));
  }
  const double t_ready = mono() + 20;
  for (;;) {
    bool all = true;
    for (auto& c : b.conns) all = all && c->ready;
    if (all) break;
    if (mono() > t_ready) {
      std::fprintf(stderr, "bench_relay: handshakes did not finish\n");
      return 1;
    }
    b.poll(10);
  }
  std::vector<std::uint8_t> payload(size, 0x5a);
  std::string frame(derp::kHeaderLen + derp::kKeyLen + size, '\0');
  char* const seq_at = frame.data() + derp::kHeaderLen + derp::kKeyLen;
  auto run = [&](double dur) {
    const double end = mono() + dur;
    while (mono() < end) {
      for (auto& [s, r] : p) {
        if (s->out.size() > (1 << 20)) continue;
        const std::uint64_t inflight = s->sent - r->through;
        if (inflight >= static_cast<std::uint64_t>(window)) continue;
        derp::encode_packet(reinterpret_cast<std::uint8_t*>(frame.data()), derp::FrameType::kSendPacket,
                            r->pub, payload);
        for (std::uint64_t k = inflight; k < static_cast<std::uint64_t>(window); ++k) {
          std::memcpy(seq_at, &s->sent, 8);
          s->out += frame;
          ++s->sent;
        }
        b.pump_out(*s);
      }
      b.poll(1);
    }
  };
  run(warmup);
  std::uint64_t r0 = 0, through0 = 0;
  for (auto& pr : p) r0 += pr.second->received, through0 += pr.second->through;
  const double c0 = cpu_of(pid), t0 = mono();
  run(seconds);
  std::uint64_t r1 = 0, through1 = 0;
  for (auto& pr : p) r1 += pr.second->received, through1 += pr.second->through;
  const double c1 = cpu_of(pid), t1 = mono();
  const double pkts = static_cast<double>(r1 - r0);
  // Dropped by the relay (sent, a later one arrived, never arrived
  // itself): in the whole run, warm-up included, and in the measured part.
  std::uint64_t lost = 0;
  for (auto& [s, r] : p) lost += r->through - r->received;
  const std::uint64_t lost_measured = (through1 - through0) - (r1 - r0);
  std::printf("load pairs=%d tls=%d size=%zu seconds=%.1f packets=%.0f pps=%.0f server_cpu_s=%.2f "
              "us_per_packet=%.3f lost=%llu lost_measured=%llu\n",
              pairs, b.tls ? 1 : 0, size, t1 - t0, pkts, pkts / (t1 - t0), c1 - c0,
              (c1 - c0) * 1e6 / pkts, static_cast<unsigned long long>(lost),
              static_cast<unsigned long long>(lost_measured));
  return 0;
}
