// A relay shard's io_uring loop (flow in shard.h).
#include "relay/shard.h"

#include <arpa/inet.h>
#include <netdb.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <sys/eventfd.h>
#include <sys/mman.h>
#include <sys/resource.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cstdio>
#include <malloc.h>
#include <cstring>

#include "relay/debug_vars.h"
#include "relay/http.h"
#include "relay/websocket.h"

namespace moongate::relay {
namespace {

constexpr std::uint32_t kNone = ~0u;
constexpr unsigned kRingEntries = 4096;
constexpr unsigned kBufCount = 1024;         // provided receive buffers per shard
constexpr std::size_t kBufSize = 16 << 10;   // one TLS record
constexpr unsigned kBufGroup = 0;
constexpr std::size_t kUdpSendSlots = 256;
// drain_udp's buffers: kUdpBurst datagrams of up to 64 KiB (UDP's limit, as
// the io_uring receive's buffer), so nothing is truncated; 1 MiB per shard,
// made when a shard first drains a socket.
constexpr std::size_t kUdpBurstBytes = 65536;
constexpr std::size_t kMeshMaxBacklog = 16 << 20;
constexpr std::uint64_t kTickNs = 100'000'000;
// A connection's next send batch while one is in flight (Shard::stage).
constexpr std::size_t kStageMax = 128 << 10;
constexpr std::uint64_t kWriteTimeoutNs = 2 * derp::kSecond;
// How long a shard passes on packets for a key that moved away: those other
// shards sent before they heard of the move (ring latency, far below this).
constexpr std::uint64_t kMovedForwardNs = 5 * derp::kSecond;

std::uint64_t mono_ns() {
  timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return static_cast<std::uint64_t>(ts.tv_sec) * 1'000'000'000ull + static_cast<std::uint64_t>(ts.tv_nsec);
}

// Cross-shard record types: [u32 length of the rest][u8 type][payload].
enum Rec : std::uint8_t {
  kRecPeerAdd = 1,     // key, ip(16), port(2), flags(1)   (route = the sender)
  kRecPeerRemove,      // key                             (route = the sender)
  kRecForward,         // src, dst, data: deliver locally
  kRecForwardMesh,     // route(4), src, dst, data: to a mesh link (shard 0)
  kRecMeshAdd,         // route(4), key, ip, port, flags
  kRecMeshRemove,      // route(4), key
  kRecRouteDown,       // route(4)
  kRecClosePeer,       // key: a mesh peer's ClosePeer
  kRecMigrate,         // Move* (host order): a connection moved here (shard.h, Migration)
  kRecPeerMoved,       // key, ip(16), port(2), flags(1), from(4): the key moved from shard `from` to the sender
  kRecDropSlot,        // slot(4): a table slot a move filled here, for a connection that closed meanwhile
};

derp::IpPort ipport_of(const sockaddr_storage& ss) {
  derp::IpPort a;
  if (ss.ss_family == AF_INET) {
    const auto& s4 = reinterpret_cast<const sockaddr_in&>(ss);
    a.ip[10] = a.ip[11] = 0xff;
    std::memcpy(a.ip.data() + 12, &s4.sin_addr, 4);
    a.port = ntohs(s4.sin_port);
  } else if (ss.ss_family == AF_INET6) {
    const auto& s6 = reinterpret_cast<const sockaddr_in6&>(ss);
    std::memcpy(a.ip.data(), &s6.sin6_addr, 16);
    a.port = ntohs(s6.sin6_port);
  }
  return a;
}

std::string ip_string(const derp::IpPort& a) {
  char buf[INET6_ADDRSTRLEN];
  static constexpr std::uint8_t kMapped[12] = {0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff};
  if (std::memcmp(a.ip.data(), kMapped, 12) == 0) inet_ntop(AF_INET, a.ip.data() + 12, buf, sizeof buf);
  else inet_ntop(AF_INET6, a.ip.data(), buf, sizeof buf);
  return buf;
}

bool is_loopback(const derp::IpPort& a) {
  static constexpr std::uint8_t kMapped[12] = {0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff};
  if (std::memcmp(a.ip.data(), kMapped, 12) == 0) return a.ip[12] == 127;
  for (int i = 0; i < 15; ++i)
    if (a.ip[i]) return false;
  return a.ip[15] == 1;
}

}  // namespace

int bind_socket(int type, const std::string& addr, std::uint16_t port, std::string& error) {
  sockaddr_storage ss{};
  socklen_t len;
  int family;
  in_addr a4;
  in6_addr a6;
  if (!addr.empty() && inet_pton(AF_INET, addr.c_str(), &a4) == 1) {
    auto& s4 = reinterpret_cast<sockaddr_in&>(ss);
    s4.sin_family = AF_INET;
    s4.sin_addr = a4;
    s4.sin_port = htons(port);
    len = sizeof s4;
    family = AF_INET;
  } else if (addr.empty() || inet_pton(AF_INET6, addr.c_str(), &a6) == 1) {
    auto& s6 = reinterpret_cast<sockaddr_in6&>(ss);
    s6.sin6_family = AF_INET6;
    s6.sin6_addr = addr.empty() ? in6addr_any : a6;
    s6.sin6_port = htons(port);
    len = sizeof s6;
    family = AF_INET6;
  } else {
    error = "not an IP address: " + addr;
    return -1;
  }
  const int fd = socket(family, type | SOCK_CLOEXEC, 0);
  if (fd < 0) {
    error = std::string("socket: ") + std::strerror(errno);
    return -1;
  }
  const int one = 1, zero = 0;
  setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
  setsockopt(fd, SOL_SOCKET, SO_REUSEPORT, &one, sizeof one);
  if (family == AF_INET6) setsockopt(fd, IPPROTO_IPV6, IPV6_V6ONLY, &zero, sizeof zero);
  // Accepted sockets inherit it (the unit test Listener.AcceptedSocketsInheritNoDelay
  // shows it): a direct descriptor cannot be given to setsockopt().
  if (type == SOCK_STREAM) setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
  if (bind(fd, reinterpret_cast<sockaddr*>(&ss), len) != 0) {
    error = "bind " + (addr.empty() ? std::string("*") : addr) + ":" + std::to_string(port) + ": " +
            std::strerror(errno);
    ::close(fd);
    return -1;
  }
  if (type == SOCK_STREAM && listen(fd, 4096) != 0) {
    error = std::string("listen: ") + std::strerror(errno);
    ::close(fd);
    return -1;
  }
  return fd;
}

namespace {

std::uint16_t bound_port(int fd) {
  sockaddr_storage ss{};
  socklen_t len = sizeof ss;
  getsockname(fd, reinterpret_cast<sockaddr*>(&ss), &len);
  return ipport_of(ss).port;
}

}  // namespace

struct Shard::Conn {
  int fd = -1;  // a registered-file slot when `direct`, else a descriptor
  std::uint32_t slot = 0, gen = 0;
  enum Phase : std::uint8_t { kHttp, kDerp, kMesh } phase = kHttp;
  bool plain_port = false;
  bool closing = false;
  bool recv_armed = false;
  bool send_armed = false;
  bool close_after_send = false;
  bool flush_queued = false;
  bool connecting = false;
  bool paused = false;
  bool mesh_head_done = false;
  bool reap_queued = false;
  bool stage_failed = false;  // make_room() could not seal: flush() closes it
  std::uint32_t derp = kNone;
  int link = -1;
  std::uint64_t resume_at = 0;
  std::uint64_t send_since = 0;
  std::uint64_t last_rx = 0;
  bool idle_released = false;  // buffers given back since the last read
  bool tls_counted = false;  // handshake end counted (lean or OpenSSL)
  // Here, in the padding before addr, they cost no bytes per connection.
  bool direct = false;  // fd is a slot of the ring's registered-file table
  bool shutdown_armed = false;
  bool moving = false;     // migration begun (shard.h): no reads, no new sends
  bool move_sent = false;  // the descriptor's transfer to move_to is in flight
  std::uint32_t move_to = 0;
  std::uint64_t last_move = 0;
  derp::IpPort addr;
  std::unique_ptr<TlsConn> tls;
  std::unique_ptr<WsReader> ws;  // DERP inside WebSocket (browser clients)
  std::string http_in;
  std::string tx_pending;
  std::string tx_inflight;
  std::size_t tx_off = 0;
};

// A connection on its way from one shard to another (kRecMigrate).
struct Shard::Move {
  std::unique_ptr<Conn> conn;
  derp::MovedClient client;
  int fd = -1;  // on the target: its table slot when conn->direct, else the descriptor
};

struct Shard::UdpSock {
  int fd = -1;
  std::size_t service = 0;
  msghdr msg{};
  iovec iov{};
  sockaddr_storage from{};
  std::vector<std::uint8_t> buf = std::vector<std::uint8_t>(65536);
};

struct Shard::UdpSend {
  msghdr msg{};
  iovec iov{};
  sockaddr_storage to{};
  std::vector<std::uint8_t> data;
};

struct Shard::MeshLink : derp::ClientHandler {
  Shard* shard = nullptr;
  MeshPeer peer;
  derp::Route route = 0;
  std::uint32_t slot = kNone;
  bool up = false;
  std::uint64_t redial_at = 0;
  std::uint64_t backoff = derp::kSecond;
  sockaddr_storage sa{};
  socklen_t salen = 0;
  std::unique_ptr<derp::Client> client;
  std::uint64_t dropped = 0;

  void on_ready() override {
    up = true;
    backoff = derp::kSecond;
    std::fprintf(stderr, "moongate-relay: mesh link to %s:%u up\n", peer.host.c_str(), peer.port);
  }
  void on_peer_present(const derp::PeerPresent& p) override {
    // Other relays' own mesh links are not clients to route to.
    if (p.flags & derp::kPresentIsMeshPeer || p.key == shard->relay_.public_key) return;
    const std::uint64_t now = mono_ns();
    shard->server_->add_remote(p.key, route, false, p.addr, p.flags, now);
    std::uint8_t r[4];
    derp::put_be32(r, route);
    std::uint8_t body[32 + 16 + 2 + 1];
    std::memcpy(body, p.key.data(), 32);
    std::memcpy(body + 32, p.addr.ip.data(), 16);
    body[48] = static_cast<std::uint8_t>(p.addr.port >> 8);
    body[49] = static_cast<std::uint8_t>(p.addr.port);
    body[50] = p.flags;
    for (unsigned s = 0; s < shard->relay_.shards.size(); ++s)
      if (s != shard->index_) shard->push_record(s, kRecMeshAdd, r, body, true);
  }
  void on_peer_gone(const derp::Key& k, derp::PeerGoneReason) override {
    shard->server_->remove_remote(k, route, mono_ns());
    std::uint8_t r[4];
    derp::put_be32(r, route);
    for (unsigned s = 0; s < shard->relay_.shards.size(); ++s)
      if (s != shard->index_) shard->push_record(s, kRecMeshRemove, r, k, true);
  }
};

std::string Relay::metrics() const {
  std::string out;
  std::array<std::uint64_t, static_cast<std::size_t>(derp::Counter::kCount)> sum{};
  std::uint64_t conns = 0, clients = 0, io = 0, wto = 0, drops = 0, links = 0, remotes = 0;
  std::uint64_t slots = 0, full = 0, accept_errors = 0, moves = 0, refused_full = 0, refused_transfer = 0,
                passed_on = 0;
  for (const auto& s : shards) {
    for (std::size_t i = 0; i < sum.size(); ++i) sum[i] += s->published[i].load(std::memory_order_relaxed);
    conns += s->pub_connections.load(std::memory_order_relaxed);
    clients += s->pub_clients.load(std::memory_order_relaxed);
    io += s->pub_io_conns.load(std::memory_order_relaxed);
    wto += s->pub_write_timeouts.load(std::memory_order_relaxed);
    drops += s->pub_ring_drops.load(std::memory_order_relaxed);
    links += s->pub_mesh_links_up.load(std::memory_order_relaxed);
    remotes = std::max<std::uint64_t>(remotes, s->pub_remotes.load(std::memory_order_relaxed));
    slots += s->table_slots();
    full += s->pub_table_full.load(std::memory_order_relaxed);
    accept_errors += s->pub_accept_errors.load(std::memory_order_relaxed);
    moves += s->pub_moves.load(std::memory_order_relaxed);
    refused_full += s->pub_move_refused_full.load(std::memory_order_relaxed);
    refused_transfer += s->pub_move_refused_transfer.load(std::memory_order_relaxed);
    passed_on += s->pub_passed_on.load(std::memory_order_relaxed);
  }
  for (std::size_t i = 0; i < sum.size(); ++i) {
    const auto c = static_cast<derp::Counter>(i);
    const std::string name = std::string("moongate_relay_") + derp::counter_name(c) + "_total";
    out += "# HELP " + name + " " + derp::counter_help(c) + "\n# TYPE " + name + " counter\n";
    out += name + " " + std::to_string(sum[i]) + "\n";
  }
  auto gauge = [&](const char* name, const char* help, std::uint64_t v) {
    out += std::string("# HELP ") + name + " " + help + "\n# TYPE " + name + " gauge\n";
    out += std::string(name) + " " + std::to_string(v) + "\n";
  };
  gauge("moongate_relay_derp_connections", "DERP connections (after the upgrade)", conns);
  gauge("moongate_relay_clients", "distinct client keys connected, summed over shards", clients);
  gauge("moongate_relay_tcp_connections", "TCP connections open (any phase)", io);
  gauge("moongate_relay_mesh_links_up", "mesh links with a completed handshake", links);
  gauge("moongate_relay_remote_keys", "keys reachable through other shards or relays", remotes);
  gauge("moongate_relay_shards", "io_uring shards", shards.size());
  out += "moongate_relay_socket_write_timeouts_total " + std::to_string(wto) + "\n";
  out += "moongate_relay_shard_ring_drops_total " + std::to_string(drops) + "\n";
  gauge("moongate_relay_conn_table_slots",
        "io_uring registered-file slots for connections, summed over shards (0: ordinary descriptors)", slots);
  out += "# HELP moongate_relay_accept_refused_total connections not taken, by reason (table_full: "
         "closed by the kernel, every slot in use; error: accept failed, e.g. no descriptor left)\n"
         "# TYPE moongate_relay_accept_refused_total counter\n";
  out += "moongate_relay_accept_refused_total{reason=\"table_full\"} " + std::to_string(full) + "\n";
  out += "moongate_relay_accept_refused_total{reason=\"error\"} " + std::to_string(accept_errors) + "\n";
  out += "# HELP moongate_relay_shard_derp_connections DERP connections per shard\n"
         "# TYPE moongate_relay_shard_derp_connections gauge\n";
  for (unsigned i = 0; i < shards.size(); ++i)
    out += "moongate_relay_shard_derp_connections{shard=\"" + std::to_string(i) + "\"} " +
           std::to_string(shards[i]->pub_connections.load(std::memory_order_relaxed)) + "\n";
  out += "# HELP moongate_relay_migrations_total client connections moved to the shard of their peers\n"
         "# TYPE moongate_relay_migrations_total counter\n";
  out += "moongate_relay_migrations_total " + std::to_string(moves) + "\n";
  out += "# HELP moongate_relay_migrations_refused_total moves the rule asked for and did not get, by "
         "reason (target_full: the shard would hold more than its share plus the margin, counted once "
         "a second per connection; transfer: the socket could not be passed to its ring)\n"
         "# TYPE moongate_relay_migrations_refused_total counter\n";
  out += "moongate_relay_migrations_refused_total{reason=\"target_full\"} " + std::to_string(refused_full) + "\n";
  out += "moongate_relay_migrations_refused_total{reason=\"transfer\"} " + std::to_string(refused_transfer) + "\n";
  out += "# HELP moongate_relay_migration_passed_on_total packets another shard sent for a client that "
         "had just moved away, passed on to its new shard\n"
         "# TYPE moongate_relay_migration_passed_on_total counter\n";
  out += "moongate_relay_migration_passed_on_total " + std::to_string(passed_on) + "\n";
  for (unsigned i = 0; i < shards.size(); ++i)
    for (const auto& u : shards[i]->udp) u->metrics(out, i);
  tls_metrics(out);
  bootstrap_dns->metrics(out);
  return out;
}

// TLS: how handshakes ended up (user-space record layer or OpenSSL) and why
// record-layer connections closed.
void Relay::tls_metrics(std::string& out) const {
  std::array<std::uint64_t, static_cast<std::size_t>(TlsClose::kCount) + 1> closes{};
  std::uint64_t lean = 0, openssl = 0;
  for (const auto& s : shards) {
    for (std::size_t i = 0; i < closes.size(); ++i)
      closes[i] += s->pub_tls_closes[i].load(std::memory_order_relaxed);
    lean += s->pub_tls_lean.load(std::memory_order_relaxed);
    openssl += s->pub_tls_openssl.load(std::memory_order_relaxed);
  }
  out += "# HELP moongate_relay_tls_handshakes_total TLS handshakes completed, by the layer that "
         "carries the records after them\n# TYPE moongate_relay_tls_handshakes_total counter\n";
  out += "moongate_relay_tls_handshakes_total{layer=\"user\"} " + std::to_string(lean) + "\n";
  out += "moongate_relay_tls_handshakes_total{layer=\"openssl\"} " + std::to_string(openssl) + "\n";
  out += "# HELP moongate_relay_tls_closes_total TLS connections ended by the record layer, by "
         "reason (openssl: an OpenSSL failure)\n# TYPE moongate_relay_tls_closes_total counter\n";
  for (std::size_t i = 0; i < closes.size(); ++i) {
    const auto c = static_cast<TlsClose>(i);
    out += std::string("moongate_relay_tls_closes_total{reason=\"") +
           (c == TlsClose::kCount ? "openssl" : tls_close_name(c)) + "\"} " + std::to_string(closes[i]) + "\n";
  }
}

Shard::Shard(Relay& relay, unsigned index) : relay_(relay), index_(index) {}

Shard::~Shard() {
  // Direct descriptors close with the ring (io_uring_queue_exit below).
  for (Conn* c : conns_)
    if (c) {
      if (c->fd >= 0 && !c->direct) ::close(c->fd);
      delete c;
    }
  for (int fd : listeners_) ::close(fd);
  for (auto& u : udp_socks_) ::close(u->fd);
  if (event_fd_ >= 0) ::close(event_fd_);
  if (ring_ok_) io_uring_queue_exit(&ring_);
  if (br_) munmap(br_, kBufCount * sizeof(io_uring_buf));
  std::free(br_mem_);
}

std::string Shard::init() {
  derp::ServerConfig sc;
  sc.private_key = relay_.private_key;
  sc.public_key = relay_.public_key;
  sc.mesh_key = relay_.mesh_key;
  sc.rate_bytes_per_second = relay_.opts.rate_bytes_per_second;
  sc.rate_burst_bytes = relay_.opts.rate_burst_bytes;
  sc.seed = 0x9e3779b97f4a7c15ull * (index_ + 1);
  server_ = std::make_unique<derp::Server>(std::move(sc), *this);

  // Completions run only when the shard asks for them (DEFER_TASKRUN), which
  // needs SINGLE_ISSUER: the ring starts disabled and the shard's thread
  // enables it, so that thread is the issuer (run()). Older kernels get the
  // first set they take.
  constexpr unsigned kSetups[] = {
      IORING_SETUP_CQSIZE | IORING_SETUP_SINGLE_ISSUER | IORING_SETUP_DEFER_TASKRUN |
          IORING_SETUP_TASKRUN_FLAG | IORING_SETUP_R_DISABLED,
      IORING_SETUP_CQSIZE | IORING_SETUP_COOP_TASKRUN,
      IORING_SETUP_CQSIZE,
  };
  int r = -EINVAL;
  for (unsigned flags : kSetups) {
    io_uring_params p{};
    p.flags = flags;
    p.cq_entries = kRingEntries * 4;
    r = io_uring_queue_init_params(kRingEntries, &ring_, &p);
    if (r == 0) {
      ring_disabled_ = (flags & IORING_SETUP_R_DISABLED) != 0;
      break;
    }
  }
  if (r < 0) return std::string("io_uring_queue_init: ") + std::strerror(-r);
  ring_ok_ = true;

  // Provided buffers: a receive takes one only when data arrives, so an idle
  // connection holds no receive buffer at all.
  void* m = mmap(nullptr, kBufCount * sizeof(io_uring_buf), PROT_READ | PROT_WRITE,
                 MAP_ANONYMOUS | MAP_PRIVATE, -1, 0);
  if (m == MAP_FAILED) return "mmap buffer ring failed";
  br_ = static_cast<io_uring_buf_ring*>(m);
  io_uring_buf_reg reg{};
  reg.ring_addr = reinterpret_cast<std::uint64_t>(br_);
  reg.ring_entries = kBufCount;
  reg.bgid = kBufGroup;
  r = io_uring_register_buf_ring(&ring_, &reg, 0);
  if (r < 0) return std::string("io_uring_register_buf_ring: ") + std::strerror(-r);
  io_uring_buf_ring_init(br_);
  br_mem_ = static_cast<std::uint8_t*>(std::aligned_alloc(4096, kBufCount * kBufSize));
  if (!br_mem_) return "out of memory for receive buffers";
  for (unsigned i = 0; i < kBufCount; ++i)
    io_uring_buf_ring_add(br_, br_mem_ + i * kBufSize, kBufSize, static_cast<unsigned short>(i),
                          io_uring_buf_ring_mask(kBufCount), static_cast<int>(i));
  io_uring_buf_ring_advance(br_, kBufCount);
  plain_buf_.resize(64 << 10);
  stage_buf_.resize(kTlsMaxPlain);

  // The registered-file table for accepted connections: sparse (every slot
  // empty), as large as asked but no larger than RLIMIT_NOFILE, the
  // kernel's cap per ring (main has raised the soft limit to the hard one).
  rlimit nofile{};
  getrlimit(RLIMIT_NOFILE, &nofile);
  std::uint64_t want = relay_.opts.conn_table < 0 ? static_cast<std::uint64_t>(kDefaultConnTable)
                                                  : static_cast<std::uint64_t>(relay_.opts.conn_table);
  if (nofile.rlim_cur != RLIM_INFINITY) want = std::min<std::uint64_t>(want, nofile.rlim_cur);
  if (want > 0) {
    r = io_uring_register_files_sparse(&ring_, static_cast<unsigned>(want));
    if (r == 0) {
      table_slots_ = static_cast<unsigned>(want);
    } else {
      // Old kernels (sparse tables came in 5.19) or no memory for the
      // table: ordinary descriptors work, within RLIMIT_NOFILE.
      static std::atomic<bool> said{false};
      if (!said.exchange(true))
        std::fprintf(stderr, "moongate-relay: no io_uring registered-file table (%s): connections use "
                     "ordinary descriptors\n", std::strerror(-r));
    }
  }

  std::string error;
  const std::uint16_t port = index_ == 0 ? relay_.opts.port : relay_.bound_port;
  int fd = bind_socket(SOCK_STREAM, relay_.opts.addr, port, error);
  if (fd < 0) return error;
  listeners_.push_back(fd);
  listener_plain_.push_back(false);
  if (index_ == 0) relay_.bound_port = bound_port(fd);
  if (relay_.opts.http_port >= 0) {
    const std::uint16_t hp =
        index_ == 0 ? static_cast<std::uint16_t>(relay_.opts.http_port) : relay_.bound_http_port;
    fd = bind_socket(SOCK_STREAM, relay_.opts.addr, hp, error);
    if (fd < 0) return error;
    listeners_.push_back(fd);
    listener_plain_.push_back(true);
    if (index_ == 0) relay_.bound_http_port = bound_port(fd);
  }
  // udp[k] and udp_socks_[k] are this shard's k-th hosted service: shard 0
  // has all of them, the others skip the shard0_only ones (so k is not the
  // spec's index there).
  for (std::size_t i = 0; i < relay_.opts.udp_services.size(); ++i) {
    const auto& spec = relay_.opts.udp_services[i];
    if (!binds_on_shard(spec, index_)) continue;
    const std::uint16_t up = index_ == 0 ? spec.port : relay_.bound_udp_ports[i];
    fd = bind_socket(SOCK_DGRAM, spec.bind.empty() ? relay_.opts.addr : spec.bind, up, error);
    if (fd < 0) return spec.name + ": " + error;
    if (index_ == 0) relay_.bound_udp_ports.push_back(bound_port(fd));
    auto u = std::make_unique<UdpSock>();
    u->fd = fd;
    u->service = udp.size();
    udp_socks_.push_back(std::move(u));
    udp.push_back(spec.factory(index_));
    if (!udp.back()) return spec.name + ": no service instance";
  }
  for (std::size_t i = 0; i < kUdpSendSlots; ++i) {
    udp_sends_.push_back(std::make_unique<UdpSend>());
    udp_free_.push_back(static_cast<std::uint32_t>(i));
  }
  event_fd_ = eventfd(0, EFD_CLOEXEC);
  if (event_fd_ < 0) return "eventfd failed";
  dirty_.assign(relay_.shards.size(), false);
  migrate_ok_ = relay_.opts.migrate.enabled && relay_.shards.size() > 1;
  pending_ctrl_.resize(relay_.shards.size());
  if (index_ == 0) {
    for (std::size_t i = 0; i < relay_.opts.mesh_with.size(); ++i) {
      auto l = std::make_unique<MeshLink>();
      l->shard = this;
      l->peer = relay_.opts.mesh_with[i];
      l->route = kMeshRouteBase + static_cast<derp::Route>(i);
      links_.push_back(std::move(l));
    }
  }
  return "";
}

void Shard::start() {
  thread_ = std::thread([this] { run(); });
}
void Shard::join() {
  if (thread_.joinable()) thread_.join();
}
void Shard::wake() {
  const std::uint64_t one = 1;
  if (write(event_fd_, &one, sizeof one) < 0) {
    // The counter cannot overflow in practice; a failed wake is caught by the
    // next loop iteration's inbox check (at most 100 ms later).
  }
}

void Shard::wake_if_sleeping() {
  // Pairs with the fence in run(): our ring pushes happened before this.
  std::atomic_thread_fence(std::memory_order_seq_cst);
  if (sleeping_.load(std::memory_order_relaxed)) wake();
}

bool Shard::inbox_pending() {
  for (unsigned from = 0; from < relay_.shards.size(); ++from)
    if (from != index_ && relay_.ring(from, index_).read_available() > 0) return true;
  return false;
}

void Shard::post_admission(std::uint32_t slot, std::uint32_t gen, bool allow) {
  {
    std::lock_guard<std::mutex> l(mailbox_mu_);
    mailbox_.push_back(AdmitResult{slot, gen, allow});
  }
  wake();
}

io_uring_sqe* Shard::sqe() {
  io_uring_sqe* s = io_uring_get_sqe(&ring_);
  while (!s) {
    io_uring_submit(&ring_);
    s = io_uring_get_sqe(&ring_);
  }
  return s;
}

std::uint32_t Shard::new_slot() {
  if (!free_slots_.empty()) {
    const std::uint32_t slot = free_slots_.back();
    free_slots_.pop_back();
    return slot;
  }
  conns_.push_back(nullptr);
  return static_cast<std::uint32_t>(conns_.size() - 1);
}

Shard::Conn* Shard::new_conn(int fd, bool direct) {
  const std::uint32_t slot = new_slot();
  Conn* c = new Conn;
  c->fd = fd;
  c->direct = direct;
  c->slot = slot;
  c->gen = next_gen_++;  // tells a stale completion from the slot's next owner
  conns_[slot] = c;
  ++io_conns_;
  return c;
}

// The connection behind a DERP connection id (nullptr once it is gone).
Shard::Conn* Shard::conn_of_derp(derp::ConnId id) {
  const std::uint32_t slot = id < of_derp_.size() ? of_derp_[id] : kNone;
  return slot == kNone ? nullptr : conns_[slot];
}

// Flushed at the end of this loop iteration (run()), once however often asked.
void Shard::queue_flush(Conn& c) {
  if (c.flush_queued) return;
  c.flush_queued = true;
  to_flush_.push_back(c.slot);
}

Shard::Conn* Shard::conn_of(std::uint32_t slot, std::uint32_t gen) {
  if (slot >= conns_.size()) return nullptr;
  Conn* c = conns_[slot];
  return c && c->gen == gen ? c : nullptr;
}

void Shard::prep_fd(io_uring_sqe* s, const Conn& c) {
  if (c.direct) s->flags |= IOSQE_FIXED_FILE;
}

void Shard::arm_recv(Conn& c) {
  if (c.recv_armed || c.closing || c.moving) return;
  io_uring_sqe* s = sqe();
  io_uring_prep_recv(s, c.fd, nullptr, 0, 0);
  prep_fd(s, c);
  s->flags |= IOSQE_BUFFER_SELECT;
  s->buf_group = kBufGroup;
  io_uring_sqe_set_data64(s, tag(kRecv, c.slot, c.gen));
  c.recv_armed = true;
}

void Shard::arm_event() {
  io_uring_sqe* s = sqe();
  io_uring_prep_read(s, event_fd_, &event_buf_, sizeof event_buf_, 0);
  io_uring_sqe_set_data64(s, tag(kEvent, 0, 0));
}

void Shard::arm_udp_event(std::size_t service) {
  const int fd = udp[service]->event_fd();
  if (fd < 0) return;
  io_uring_sqe* s = sqe();
  io_uring_prep_poll_add(s, fd, POLLIN);
  io_uring_sqe_set_data64(s, tag(kUdpEvent, static_cast<std::uint32_t>(service), 0));
}

void Shard::arm_udp(UdpSock& u) {
  u.iov = {u.buf.data(), u.buf.size()};
  u.msg = {};
  u.msg.msg_name = &u.from;
  u.msg.msg_namelen = sizeof u.from;
  u.msg.msg_iov = &u.iov;
  u.msg.msg_iovlen = 1;
  io_uring_sqe* s = sqe();
  io_uring_prep_recvmsg(s, u.fd, &u.msg, 0);
  io_uring_sqe_set_data64(s, tag(kUdpRecv, static_cast<std::uint32_t>(u.service), 0));
}

// A completion says the socket is busy: whatever else is queued comes in
// one recvmmsg (a syscall per burst instead of a ring round trip per
// datagram — the moon relays ~4x more this way). One burst per completion,
// so a flooded UDP port cannot starve the shard's DERP connections.
void Shard::drain_udp(UdpSock& u, std::uint64_t now) {
  if (udp_burst_buf_.empty()) udp_burst_buf_.resize(kUdpBurst * kUdpBurstBytes);
  mmsghdr msgs[kUdpBurst];
  iovec iov[kUdpBurst];
  for (unsigned i = 0; i < kUdpBurst; ++i) {
    iov[i] = {udp_burst_buf_.data() + i * kUdpBurstBytes, kUdpBurstBytes};
    msgs[i] = {};
    msgs[i].msg_hdr.msg_name = &udp_burst_from_[i];
    msgs[i].msg_hdr.msg_namelen = sizeof udp_burst_from_[i];
    msgs[i].msg_hdr.msg_iov = &iov[i];
    msgs[i].msg_hdr.msg_iovlen = 1;
  }
  const int n = recvmmsg(u.fd, msgs, kUdpBurst, MSG_DONTWAIT, nullptr);
  for (int i = 0; i < n; ++i) {
    udp[u.service]->on_datagram({static_cast<const std::uint8_t*>(iov[i].iov_base), msgs[i].msg_len},
                                udp_burst_from_[i], msgs[i].msg_hdr.msg_namelen, now, *this);
  }
}

bool Shard::send(std::span<const std::uint8_t> d, const sockaddr_storage& to, socklen_t to_len) {
  if (udp_free_.empty()) return false;
  const std::uint32_t i = udp_free_.back();
  udp_free_.pop_back();
  UdpSend& u = *udp_sends_[i];
  u.data.assign(d.begin(), d.end());
  u.to = to;
  u.iov = {u.data.data(), u.data.size()};
  u.msg = {};
  u.msg.msg_name = &u.to;
  u.msg.msg_namelen = to_len;
  u.msg.msg_iov = &u.iov;
  u.msg.msg_iovlen = 1;
  io_uring_sqe* s = sqe();
  // The socket of the service that is running now: the last datagram's.
  io_uring_prep_sendmsg(s, udp_socks_[current_udp_]->fd, &u.msg, 0);
  io_uring_sqe_set_data64(s, tag(kUdpSend, i, 0));
  return true;
}

// Accept number a (on listener a / kAcceptsInFlight) into a free slot of
// the table the kernel picks, or as an ordinary descriptor.
void Shard::arm_accept(std::uint32_t a) {
  Accept& acc = accepts_[a];
  acc.len = sizeof acc.addr;
  io_uring_sqe* s = sqe();
  const int listener = listeners_[a / kAcceptsInFlight];
  if (table_slots_) {
    // A direct accept takes no SOCK_CLOEXEC (-EINVAL): the slot is never a
    // descriptor to inherit. liburing 2.3's prep_accept_direct adds one to
    // the index it is given, so the "allocate" index is written here.
    io_uring_prep_accept(s, listener, reinterpret_cast<sockaddr*>(&acc.addr), &acc.len, 0);
    s->file_index = IORING_FILE_INDEX_ALLOC;
  } else {
    io_uring_prep_accept(s, listener, reinterpret_cast<sockaddr*>(&acc.addr), &acc.len, SOCK_CLOEXEC);
  }
  io_uring_sqe_set_data64(s, tag(kAccept, a, 0));
}

void Shard::run() {
  // liburing 2.3 declares io_uring_enable_rings() but does not export it.
  if (ring_disabled_) syscall(__NR_io_uring_register, ring_.ring_fd, IORING_REGISTER_ENABLE_RINGS, nullptr, 0);
  accepts_.resize(listeners_.size() * kAcceptsInFlight);
  for (std::uint32_t a = 0; a < accepts_.size(); ++a) arm_accept(a);
  for (auto& u : udp_socks_) arm_udp(*u);
  for (std::size_t k = 0; k < udp.size(); ++k) arm_udp_event(k);
  arm_event();
  std::uint64_t now = mono_ns();
  next_tick_ = now + kTickNs;
  next_second_ = now;
  for (auto& l : links_) mesh_dial(*l, now);

  while (!relay_.stop.load(std::memory_order_relaxed)) {
    __kernel_timespec ts{0, static_cast<long long>(kTickNs)};
    io_uring_cqe* cqe = nullptr;
    // Announce the sleep, then look at the rings once more: a producer
    // either sees `sleeping_` and writes the eventfd, or its record is seen
    // here (the fences order the flag against the rings both ways).
    sleeping_.store(true, std::memory_order_relaxed);
    std::atomic_thread_fence(std::memory_order_seq_cst);
    const unsigned wait_nr = inbox_pending() ? 0 : 1;
    const int r = io_uring_submit_and_wait_timeout(&ring_, &cqe, wait_nr, &ts, nullptr);
    sleeping_.store(false, std::memory_order_relaxed);
    (void)r;  // -ETIME: nothing arrived in time; timers still run below
    now = mono_ns();
    unsigned head, count = 0;
    io_uring_for_each_cqe(&ring_, head, cqe) {
      handle(cqe, now);
      ++count;
    }
    io_uring_cq_advance(&ring_, count);
    drain_inbox(now);
    // Closes asked for by the server, then the writes it asked for.
    while (!to_close_.empty() || !to_flush_.empty()) {
      auto closes = std::move(to_close_);
      to_close_.clear();
      for (const CloseReq& req : closes) {
        const derp::CloseReason reason = req.reason;
        Conn* c = conn_of(req.slot, req.gen);
        if (c) {
          if (relay_.opts.verbose)
            std::fprintf(stderr, "moongate-relay: closing %s: %s\n", ip_string(c->addr).c_str(),
                         derp::close_reason_name(reason));
          // Whatever is queued (e.g. nothing) is abandoned: the peer broke the rules.
          close_conn(*c, "server: see reason above");
        }
      }
      auto flushes = std::move(to_flush_);
      to_flush_.clear();
      for (std::uint32_t slot : flushes) {
        Conn* c = slot < conns_.size() ? conns_[slot] : nullptr;
        if (!c) continue;
        c->flush_queued = false;
        flush(*c);
      }
    }
    if (!recv_retry_.empty()) {
      auto retry = std::move(recv_retry_);
      recv_retry_.clear();
      for (std::uint32_t slot : retry)
        if (slot < conns_.size() && conns_[slot]) arm_recv(*conns_[slot]);
    }
    advance_moves(now);
    reap_closed();
    flush_pending_ctrl();
    for (unsigned s = 0; s < dirty_.size(); ++s)
      if (dirty_[s]) {
        dirty_[s] = false;
        relay_.shards[s]->wake_if_sleeping();
      }
    if (now >= next_tick_) timers(now);
  }
}

void Shard::handle(io_uring_cqe* cqe, std::uint64_t now) {
  const std::uint64_t ud = io_uring_cqe_get_data64(cqe);
  const auto op = static_cast<Op>(ud & 0xff);
  const auto slot = static_cast<std::uint32_t>((ud >> 8) & 0xffffff);
  const auto gen = static_cast<std::uint32_t>(ud >> 32);
  switch (op) {
    case kAccept:
      on_accept(slot, cqe->res, now);
      return;
    case kRecv: {
      Conn* c = conn_of(slot, gen);
      if (!c) {
        // The connection is gone; give a selected buffer back.
        if (cqe->flags & IORING_CQE_F_BUFFER) {
          const unsigned bid = cqe->flags >> IORING_CQE_BUFFER_SHIFT;
          io_uring_buf_ring_add(br_, br_mem_ + bid * kBufSize, kBufSize, static_cast<unsigned short>(bid),
                                io_uring_buf_ring_mask(kBufCount), 0);
          io_uring_buf_ring_advance(br_, 1);
        }
        return;
      }
      on_recv(*c, cqe->res, cqe->flags, now);
      return;
    }
    case kSend: {
      Conn* c = conn_of(slot, gen);
      if (c) on_send(*c, cqe->res, now);
      return;
    }
    case kConnect: {
      Conn* c = conn_of(slot, gen);
      if (!c) return;
      c->connecting = false;
      if (MeshLink* l = link_of(*c)) mesh_on_connect(*l, *c, cqe->res, now);
      else close_conn(*c, "connect completion without a mesh link");
      return;
    }
    case kEvent:
      drain_inbox(now);
      if (!relay_.stop) arm_event();
      return;
    case kUdpRecv: {
      UdpSock& u = *udp_socks_[slot];
      if (cqe->res >= 0) {
        current_udp_ = slot;
        udp[u.service]->on_datagram({u.buf.data(), static_cast<std::size_t>(cqe->res)}, u.from,
                                    u.msg.msg_namelen, now, *this);
        drain_udp(u, now);
      }
      if (!relay_.stop) arm_udp(u);
      return;
    }
    case kUdpSend:
      udp_free_.push_back(slot);
      return;
    case kUdpEvent:
      current_udp_ = slot;  // replies leave from the service's own socket
      if (cqe->res >= 0) udp[slot]->on_event(now, *this);
      if (!relay_.stop) arm_udp_event(slot);
      return;
    case kShutdown: {
      Conn* c = conn_of(slot, gen);
      if (!c) return;
      c->shutdown_armed = false;
      reap(*c);
      return;
    }
    case kMoveFd:
      on_move_fd(slot, gen, cqe->res, now);
      return;
    case kIgnore:
      return;
  }
}

void Shard::on_accept(std::uint32_t a, int res, std::uint64_t) {
  if (res < 0) {
    if (relay_.stop) return;
    if (res == -ENFILE && table_slots_) {
      // Every slot in use: the kernel accepted the connection and closed it.
      ++table_full_;
      arm_accept(a);
      return;
    }
    if (res == -EINVAL && table_slots_) {
      // A kernel with a table but without allocating accepts (before 5.19).
      static std::atomic<bool> said{false};
      if (!said.exchange(true))
        std::fprintf(stderr, "moongate-relay: io_uring cannot accept into its file table: connections use "
                     "ordinary descriptors\n");
      table_slots_ = 0;
      arm_accept(a);
      return;
    }
    // EMFILE and friends leave the connection queued: try again at the
    // next tick rather than spin on the same error.
    ++accept_errors_;
    accept_retry_.push_back(a);
    return;
  }
  Conn* c = new_conn(res, table_slots_ != 0);
  c->plain_port = listener_plain_[a / kAcceptsInFlight];
  c->addr = ipport_of(accepts_[a].addr);
  if (!relay_.stop) arm_accept(a);
  if (relay_.tls && !c->plain_port)
    c->tls = std::make_unique<TlsConn>(relay_.tls->ctx(), true, &c->tx_pending, &ciphers_);
  arm_recv(*c);
}

void Shard::on_recv(Conn& c, int res, std::uint32_t flags, std::uint64_t now) {
  c.recv_armed = false;
  if (res == -ECANCELED && c.moving && !c.closing) return;  // stopped for a move (begin_move)
  if (res == -ENOBUFS) {  // every provided buffer is in use: try again shortly
    recv_retry_.push_back(c.slot);
    return;
  }
  if (res <= 0 || c.closing) {
    if (res > 0 && (flags & IORING_CQE_F_BUFFER)) {
      const unsigned bid = flags >> IORING_CQE_BUFFER_SHIFT;
      io_uring_buf_ring_add(br_, br_mem_ + bid * kBufSize, kBufSize, static_cast<unsigned short>(bid),
                            io_uring_buf_ring_mask(kBufCount), 0);
      io_uring_buf_ring_advance(br_, 1);
    }
    close_conn(c, "eof or receive error");
    return;
  }
  const unsigned bid = flags >> IORING_CQE_BUFFER_SHIFT;
  const std::span<const std::uint8_t> data(br_mem_ + bid * kBufSize, static_cast<std::size_t>(res));
  c.last_rx = now;
  c.idle_released = false;
  if (c.tls) {
    const bool ok = c.tls->receive(data, plain_buf_, [&](std::span<const std::uint8_t> plain) {
      on_plain(c, plain, now);
      return !c.closing;
    });
    if (!ok && !c.closing) tls_fail(c);
    if (!c.tls_counted && c.tls->handshake_done()) {
      c.tls_counted = true;
      if (c.tls->lean()) {
        ++tls_lean_;
        ++tls_lean_since_trim_;
      } else {
        ++tls_openssl_;
      }
    }
  } else {
    on_plain(c, data, now);
  }
  io_uring_buf_ring_add(br_, br_mem_ + bid * kBufSize, kBufSize, static_cast<unsigned short>(bid),
                        io_uring_buf_ring_mask(kBufCount), 0);
  io_uring_buf_ring_advance(br_, 1);
  if (c.closing) {
    reap(c);
    return;
  }
  if (!c.tx_pending.empty()) queue_flush(c);  // TLS handshake records, HTTP responses
  if (c.paused) {
    paused_.push_back(c.slot);
    return;
  }
  if (!c.close_after_send) arm_recv(c);
}

// Appends plaintext to the connection's output, encrypting under TLS.
static bool put_out(std::unique_ptr<TlsConn>& tls, std::string& tx, std::span<const std::uint8_t> p) {
  if (tls) return tls->write(p);
  tx.append(reinterpret_cast<const char*>(p.data()), p.size());
  return true;
}

void Shard::on_plain(Conn& c, std::span<const std::uint8_t> data, std::uint64_t now) {
  switch (c.phase) {
    case Conn::kDerp: {
      std::uint64_t resume = 0;
      if (c.ws) {
        const auto st = c.ws->feed(
            data,
            [&](std::span<const std::uint8_t> d) {
              if (c.derp != kNone) resume = std::max(resume, server_->receive(c.derp, d, now));
            },
            [&](std::uint8_t op, std::span<const std::uint8_t> payload) {
              if (op != kWsPing) return;
              std::uint8_t h[10];
              const std::size_t hl = ws_header(h, kWsPong, payload.size());
              std::string pong(reinterpret_cast<const char*>(h), hl);
              pong.append(reinterpret_cast<const char*>(payload.data()), payload.size());
              if (put_out(c.tls, c.tx_pending, {reinterpret_cast<const std::uint8_t*>(pong.data()), pong.size()}))
                queue_flush(c);
            });
        if (st != WsReader::Status::kOk) {
          close_conn(c, st == WsReader::Status::kClosed ? "websocket close" : "websocket protocol error");
          return;
        }
      } else {
        resume = server_->receive(c.derp, data, now);
      }
      if (resume > now) {
        c.paused = true;
        c.resume_at = resume;
      }
      return;
    }
    case Conn::kMesh: {
      MeshLink* l = link_of(c);
      if (!l) return;
      std::span<const std::uint8_t> d = data;
      if (!c.mesh_head_done) {
        // With fast start the DERP stream begins at once; a server that
        // ignores fast start sends a 101 head first, which is skipped.
        c.http_in.append(reinterpret_cast<const char*>(d.data()), d.size());
        if (c.http_in.rfind("HTTP/", 0) != 0 && c.http_in.size() >= 5) {
          c.mesh_head_done = true;
        } else if (c.http_in.size() < 5) {
          return;
        } else {
          const std::size_t e = c.http_in.find("\r\n\r\n");
          if (e == std::string::npos) {
            if (c.http_in.size() > kMaxRequestHead) close_conn(c, "mesh upgrade head too long");
            return;
          }
          if (c.http_in.compare(0, 12, "HTTP/1.1 101") != 0) {
            close_conn(c, "mesh upgrade refused");
            return;
          }
          c.http_in.erase(0, e + 4);
          c.mesh_head_done = true;
        }
        std::string rest;
        rest.swap(c.http_in);
        if (!l->client->receive({reinterpret_cast<const std::uint8_t*>(rest.data()), rest.size()})) {
          close_conn(c, "mesh stream broken");
          return;
        }
      } else if (!l->client->receive(d)) {
        close_conn(c, "mesh stream broken");
        return;
      }
      if (!l->client->output().empty()) queue_flush(c);
      return;
    }
    case Conn::kHttp:
      c.http_in.append(reinterpret_cast<const char*>(data.data()), data.size());
      on_http(c, now);
      return;
  }
}

void Shard::on_http(Conn& c, std::uint64_t now) {
  Request req;
  std::size_t head_len = 0;
  const Parse p = parse_request(c.http_in, req, head_len);
  if (p == Parse::kIncomplete) return;
  std::string bytes;
  bool upgrade = false;
  if (p == Parse::kBad) {
    bytes = simple_response(400, "Bad Request", "bad request\n");
  } else if (p == Parse::kTooLarge) {
    bytes = simple_response(431, "Request Header Fields Too Large", "request head too large\n");
  } else if (c.plain_port && req.path == "/derp") {
    // Port 80: DERP itself is only offered over TLS.
    bytes = simple_response(400, "Bad Request", "DERP is served over TLS\n");
  } else {
    Response r = route(req, derp::key_hex(relay_.public_key), is_loopback(c.addr));
    if (r.action == Action::kVarz) bytes = varz_response(relay_.metrics());
    else if (r.action == Action::kVars) bytes = vars_response(vars_json(relay_.metrics()));
    else if (r.action == Action::kBootstrapDns) bytes = relay_.bootstrap_dns->respond(req.query);
    else bytes = std::move(r.bytes);
    upgrade = r.action == Action::kUpgradeDerp || r.action == Action::kUpgradeWebSocket;
    if (r.action == Action::kUpgradeWebSocket) c.ws = std::make_unique<WsReader>();
  }
  if (req.method == "HEAD" && !upgrade) {
    if (const std::size_t e = bytes.find("\r\n\r\n"); e != std::string::npos) bytes.resize(e + 4);
  }
  if (!bytes.empty() &&
      !put_out(c.tls, c.tx_pending, {reinterpret_cast<const std::uint8_t*>(bytes.data()), bytes.size()})) {
    tls_fail(c);
    return;
  }
  if (!upgrade) {
    c.close_after_send = true;
    std::string().swap(c.http_in);
    return;
  }
  std::string rest = c.http_in.substr(head_len);
  std::string().swap(c.http_in);
  c.phase = Conn::kDerp;
  c.derp = server_->open(c.addr, now);
  load.fetch_add(1, std::memory_order_relaxed);
  if (of_derp_.size() <= c.derp) of_derp_.resize(c.derp + 1, kNone);
  of_derp_[c.derp] = c.slot;
  // ServerKey was queued inside open(), before the slot was known.
  want_write(c.derp);
  if (!rest.empty()) on_plain(c, {reinterpret_cast<const std::uint8_t*>(rest.data()), rest.size()}, now);
}

void Shard::flush(Conn& c) {
  if (c.stage_failed && !c.closing) {
    tls_fail(c);
    return;
  }
  // A moving connection sends nothing: its output (the server's queues,
  // tx_pending) moves with it.
  if (c.moving) return;
  if (!stage(c)) {
    tls_fail(c);
    return;
  }
  start_send(c);
}

// The server's queued output for c into tx_pending, sealed when TLS: all of
// it when no send is in flight, else as the next send's batch, up to
// kStageMax (the rest waits in the server's queues, which drop the oldest:
// a reader that slow is behind the kernel's buffer too). false: the TLS
// record layer failed (the caller closes).
bool Shard::stage(Conn& c) {
  if (c.closing || c.connecting) return true;
  if (c.send_armed && c.tx_pending.size() >= kStageMax) return true;
  if (c.phase == Conn::kDerp && c.derp != kNone) {
    iovec iov[49];
    std::size_t n = server_->output(c.derp, iov + 1, 48);
    std::size_t total = 0;
    for (std::size_t i = 1; i <= n; ++i) total += iov[i].iov_len;
    std::uint8_t ws_head[10];
    const iovec* first = iov + 1;
    if (c.ws && total) {
      // One binary WebSocket message around everything taken this time.
      iov[0].iov_base = ws_head;
      iov[0].iov_len = ws_header(ws_head, kWsBinary, total);
      first = iov;
      ++n;
    }
    if (c.tls) {
      if (!c.tls->writev(first, n, stage_buf_)) return false;
    } else {
      for (std::size_t i = 0; i < n; ++i)
        c.tx_pending.append(static_cast<const char*>(first[i].iov_base), first[i].iov_len);
    }
    // The bytes now live in tx_pending: the server's buffers can go back.
    if (total) server_->sent(c.derp, total, mono_ns());
  } else if (c.phase == Conn::kMesh) {
    MeshLink* l = link_of(c);
    if (l && l->client && (!c.tls || c.tls->handshake_done())) {
      std::string& out = l->client->output();
      if (!out.empty()) {
        if (!put_out(c.tls, c.tx_pending, {reinterpret_cast<const std::uint8_t*>(out.data()), out.size()}))
          return false;
        out.clear();
      }
    }
  }
  return true;
}

// Called from inside the server (enqueue): nothing here may close c, which
// would free the server's record of it under the caller. A sealing failure
// is left for flush().
void Shard::make_room(derp::ConnId id) {
  Conn* c = conn_of_derp(id);
  if (!c || c->stage_failed) return;
  // A moving connection stages too (no send: start_send() waits for the
  // new shard), so packets arriving during the move are not dropped.
  if (!stage(*c)) {
    c->stage_failed = true;
  } else {
    start_send(*c);
  }
  queue_flush(*c);
}

void Shard::start_send(Conn& c) {
  if (c.send_armed || c.closing || c.moving || c.tx_pending.empty()) return;
  c.tx_inflight.swap(c.tx_pending);
  c.tx_off = 0;
  io_uring_sqe* s = sqe();
  io_uring_prep_send(s, c.fd, c.tx_inflight.data(), c.tx_inflight.size(), MSG_NOSIGNAL);
  prep_fd(s, c);
  io_uring_sqe_set_data64(s, tag(kSend, c.slot, c.gen));
  c.send_armed = true;
  c.send_since = mono_ns();
}

void Shard::on_send(Conn& c, int res, std::uint64_t now) {
  c.send_armed = false;
  if (c.closing) {
    reap(c);
    return;
  }
  if (res < 0) {
    close_conn(c, "send or connect error");
    return;
  }
  c.tx_off += static_cast<std::size_t>(res);
  if (c.tx_off < c.tx_inflight.size()) {  // a short write: send the rest
    io_uring_sqe* s = sqe();
    io_uring_prep_send(s, c.fd, c.tx_inflight.data() + c.tx_off, c.tx_inflight.size() - c.tx_off,
                       MSG_NOSIGNAL);
    prep_fd(s, c);
    io_uring_sqe_set_data64(s, tag(kSend, c.slot, c.gen));
    c.send_armed = true;
    c.send_since = now;
    return;
  }
  c.tx_inflight.clear();
  // Idle connections keep no grown buffers (memory per idle connection).
  if (c.tx_inflight.capacity() > 4096) std::string().swap(c.tx_inflight);
  if (c.close_after_send && c.tx_pending.empty()) {
    close_conn(c, "response sent");
    return;
  }
  flush(c);
  // A moving connection keeps what is staged (flush() sends nothing then):
  // only an empty string gives its capacity back.
  if (!c.send_armed && c.tx_pending.empty() && c.tx_pending.capacity() > 4096) std::string().swap(c.tx_pending);
}

// A TLS failure: the record layer's reason is counted, OpenSSL's are not
// told apart.
void Shard::tls_fail(Conn& c) {
  const TlsClose why = c.tls->close_reason();
  ++tls_closes_[static_cast<std::size_t>(why)];
  close_conn(c, c.tls->error());
}

void Shard::close_conn(Conn& c, const char* why) {
  if (c.closing) {  // a completion of a closing connection: free it once idle
    reap(c);
    return;
  }
  c.closing = true;
  if (c.moving) abort_move(c);
  if (relay_.opts.verbose)
    std::fprintf(stderr, "moongate-relay: shard %u: close %s:%u: %s\n", index_,
                 ip_string(c.addr).c_str(), c.addr.port, why);
  if (c.derp != kNone) {
    const derp::ConnId id = c.derp;
    c.derp = kNone;
    of_derp_[id] = kNone;
    server_->closed(id, mono_ns());
    load.fetch_sub(1, std::memory_order_relaxed);
  }
  if (MeshLink* l = link_of(c)) mesh_down(*l, mono_ns());
  // Wakes a pending receive (it completes with 0) so the slot can be freed.
  if (c.direct) {
    // The kernel runs a shutdown on a worker thread and looks the slot up
    // only there: the slot is closed after it completes, or the shutdown
    // could hit the next connection accepted into the slot.
    io_uring_sqe* s = sqe();
    io_uring_prep_shutdown(s, c.fd, SHUT_RDWR);
    prep_fd(s, c);
    io_uring_sqe_set_data64(s, tag(kShutdown, c.slot, c.gen));
    c.shutdown_armed = true;
  } else {
    shutdown(c.fd, SHUT_RDWR);
  }
  if (c.recv_armed) {
    io_uring_sqe* s = sqe();
    io_uring_prep_cancel64(s, tag(kRecv, c.slot, c.gen), 0);
    io_uring_sqe_set_data64(s, tag(kIgnore, 0, 0));
  }
  reap(c);
}

// A closing connection is freed only at the end of a loop iteration: the
// code that closed it may still be using it (a TLS read loop, a frame
// handler, the list of writes to do).
void Shard::reap(Conn& c) {
  if (c.reap_queued) return;
  c.reap_queued = true;
  to_reap_.push_back(c.slot);
}

void Shard::reap_closed() {
  auto batch = std::move(to_reap_);
  to_reap_.clear();
  for (std::uint32_t slot : batch) {
    Conn* c = slot < conns_.size() ? conns_[slot] : nullptr;
    if (!c) continue;
    c->reap_queued = false;
    // Still in flight: the completion will queue it again.
    if (!c->closing || c->recv_armed || c->send_armed || c->connecting || c->shutdown_armed ||
        c->move_sent)
      continue;
    if (c->direct) {
      // The slot is free once this runs (before the next accept can take
      // it); an operation still holding the file keeps the socket alive.
      io_uring_sqe* s = sqe();
      io_uring_prep_close_direct(s, static_cast<unsigned>(c->fd));
      io_uring_sqe_set_data64(s, tag(kIgnore, 0, 0));
    } else {
      ::close(c->fd);
    }
    conns_[slot] = nullptr;
    free_slots_.push_back(slot);
    --io_conns_;
    delete c;
  }
}

// --- derp::Events ---

void Shard::want_write(derp::ConnId id) {
  if (Conn* c = conn_of_derp(id)) queue_flush(*c);
}

void Shard::close(derp::ConnId id, derp::CloseReason r) {
  if (Conn* c = conn_of_derp(id)) to_close_.push_back(CloseReq{c->slot, c->gen, r});
}

derp::Admission Shard::admit(derp::ConnId id, const derp::Key& client, const derp::ClientInfo&,
                             const derp::IpPort& addr) {
  const std::uint32_t slot = of_derp_[id];
  const std::uint32_t gen = conns_[slot]->gen;
  Shard* self = this;
  return relay_.admitter->check(client, ip_string(addr),
                                [self, slot, gen](bool allow) { self->post_admission(slot, gen, allow); });
}

bool Shard::push_record(unsigned to, std::uint8_t type, std::span<const std::uint8_t> a,
                        std::span<const std::uint8_t> b, bool must) {
  const std::size_t len = 1 + a.size() + b.size();
  rec_buf_.resize(4 + len);
  derp::put_be32(rec_buf_.data(), static_cast<std::uint32_t>(len));
  rec_buf_[4] = type;
  if (!a.empty()) std::memcpy(rec_buf_.data() + 5, a.data(), a.size());
  if (!b.empty()) std::memcpy(rec_buf_.data() + 5 + a.size(), b.data(), b.size());
  auto& q = relay_.ring(index_, to);
  dirty_[to] = true;
  // Control records keep their order behind any that are waiting.
  if ((!must || pending_ctrl_[to].empty()) && q.write_available() >= rec_buf_.size()) {
    q.push(rec_buf_.data(), rec_buf_.size());
    return true;
  }
  if (must) {
    pending_ctrl_[to].emplace_back(reinterpret_cast<const char*>(rec_buf_.data()), rec_buf_.size());
    return true;
  }
  ++ring_drops_;
  return false;
}

void Shard::flush_pending_ctrl() {
  for (unsigned to = 0; to < pending_ctrl_.size(); ++to) {
    auto& v = pending_ctrl_[to];
    std::size_t i = 0;
    auto& q = relay_.ring(index_, to);
    while (i < v.size() && q.write_available() >= v[i].size()) {
      q.push(reinterpret_cast<const std::uint8_t*>(v[i].data()), v[i].size());
      ++i;
      dirty_[to] = true;
    }
    v.erase(v.begin(), v.begin() + static_cast<std::ptrdiff_t>(i));
  }
}

void Shard::forward(derp::Route route, const derp::Key& src, const derp::Key& dst,
                    std::span<const std::uint8_t> data) {
  if (route < relay_.shards.size()) {
    std::uint8_t keys[64];
    std::memcpy(keys, src.data(), 32);
    std::memcpy(keys + 32, dst.data(), 32);
    push_record(route, kRecForward, keys, data, false);
    return;
  }
  if (index_ == 0) {
    mesh_forward(route, src, dst, data);
    return;
  }
  std::uint8_t head[4 + 64];
  derp::put_be32(head, route);
  std::memcpy(head + 4, src.data(), 32);
  std::memcpy(head + 36, dst.data(), 32);
  push_record(0, kRecForwardMesh, head, data, false);
}

void Shard::local_peer(const derp::Key& key, const derp::IpPort& addr, std::uint8_t flags,
                       bool present) {
  std::uint8_t body[32 + 16 + 2 + 1];
  std::memcpy(body, key.data(), 32);
  std::memcpy(body + 32, addr.ip.data(), 16);
  body[48] = static_cast<std::uint8_t>(addr.port >> 8);
  body[49] = static_cast<std::uint8_t>(addr.port);
  body[50] = flags;
  for (unsigned s = 0; s < relay_.shards.size(); ++s) {
    if (s == index_) continue;
    if (present) push_record(s, kRecPeerAdd, body, {}, true);
    else push_record(s, kRecPeerRemove, key, {}, true);
  }
}

void Shard::close_peer_elsewhere(const derp::Key& key) {
  for (unsigned s = 0; s < relay_.shards.size(); ++s)
    if (s != index_) push_record(s, kRecClosePeer, key, {}, true);
}

void Shard::drain_inbox(std::uint64_t now) {
  std::vector<AdmitResult> results;
  {
    std::lock_guard<std::mutex> l(mailbox_mu_);
    results.swap(mailbox_);
  }
  for (const AdmitResult& r : results) {
    Conn* c = conn_of(r.slot, r.gen);
    if (c && c->derp != kNone) server_->admitted(c->derp, r.allow, now);
  }
  static thread_local std::vector<std::uint8_t> in;
  for (unsigned from = 0; from < relay_.shards.size(); ++from) {
    if (from == index_) continue;
    auto& q = relay_.ring(from, index_);
    // Records are pushed whole, so a visible length means a whole record.
    for (int budget = 4096; budget > 0 && q.read_available() >= 5; --budget) {
      std::uint8_t hdr[4];
      q.pop(hdr, 4);
      const std::uint32_t len = derp::get_be32(hdr);
      in.resize(len);
      q.pop(in.data(), len);
      const std::uint8_t type = in[0];
      const std::uint8_t* p = in.data() + 1;
      const std::size_t n = len - 1;
      derp::Key k, k2;
      switch (type) {
        case kRecPeerAdd: {
          std::memcpy(k.data(), p, 32);
          derp::IpPort a;
          std::memcpy(a.ip.data(), p + 32, 16);
          a.port = static_cast<std::uint16_t>(p[48] << 8 | p[49]);
          server_->add_remote(k, from, true, a, p[50], now);
          break;
        }
        case kRecPeerRemove:
          std::memcpy(k.data(), p, 32);
          server_->remove_remote(k, from, now);
          break;
        case kRecForward:
          std::memcpy(k.data(), p, 32);
          std::memcpy(k2.data(), p + 32, 32);
          if (!moved_.empty() && pass_on_moved(k2, {p, 64}, {p + 64, n - 64}, now)) break;
          server_->deliver(k, k2, {p + 64, n - 64}, now, false, from);
          break;
        case kRecForwardMesh:
          std::memcpy(k.data(), p + 4, 32);
          std::memcpy(k2.data(), p + 36, 32);
          mesh_forward(derp::get_be32(p), k, k2, {p + 68, n - 68});
          break;
        case kRecMeshAdd: {
          std::memcpy(k.data(), p + 4, 32);
          derp::IpPort a;
          std::memcpy(a.ip.data(), p + 36, 16);
          a.port = static_cast<std::uint16_t>(p[52] << 8 | p[53]);
          server_->add_remote(k, derp::get_be32(p), false, a, p[54], now);
          break;
        }
        case kRecMeshRemove:
          std::memcpy(k.data(), p + 4, 32);
          server_->remove_remote(k, derp::get_be32(p), now);
          break;
        case kRecRouteDown:
          server_->remove_route(derp::get_be32(p), now);
          break;
        case kRecClosePeer:
          std::memcpy(k.data(), p, 32);
          server_->close_peer(k);
          break;
        case kRecMigrate: {
          Move* m;
          std::memcpy(&m, p, sizeof m);
          adopt(std::unique_ptr<Move>(m), from, now);
          break;
        }
        case kRecPeerMoved: {
          std::memcpy(k.data(), p, 32);
          derp::IpPort a;
          std::memcpy(a.ip.data(), p + 32, 16);
          a.port = static_cast<std::uint16_t>(p[48] << 8 | p[49]);
          server_->move_remote(k, derp::get_be32(p + 51), from, a, p[50]);
          break;
        }
        case kRecDropSlot: {
          io_uring_sqe* s = sqe();
          io_uring_prep_close_direct(s, derp::get_be32(p));
          io_uring_sqe_set_data64(s, tag(kIgnore, 0, 0));
          break;
        }
        default:
          break;
      }
    }
  }
}

void Shard::publish() {
  for (std::size_t i = 0; i < published.size(); ++i)
    published[i].store(server_->counter(static_cast<derp::Counter>(i)), std::memory_order_relaxed);
  pub_connections.store(server_->connections(), std::memory_order_relaxed);
  pub_clients.store(server_->clients(), std::memory_order_relaxed);
  pub_io_conns.store(io_conns_, std::memory_order_relaxed);
  pub_write_timeouts.store(write_timeouts_, std::memory_order_relaxed);
  pub_ring_drops.store(ring_drops_, std::memory_order_relaxed);
  pub_table_full.store(table_full_, std::memory_order_relaxed);
  pub_accept_errors.store(accept_errors_, std::memory_order_relaxed);
  pub_moves.store(moves_, std::memory_order_relaxed);
  pub_move_refused_full.store(move_refused_full_, std::memory_order_relaxed);
  pub_move_refused_transfer.store(move_refused_transfer_, std::memory_order_relaxed);
  pub_passed_on.store(passed_on_, std::memory_order_relaxed);
  pub_remotes.store(server_->remotes(), std::memory_order_relaxed);
  for (std::size_t i = 0; i < tls_closes_.size(); ++i)
    pub_tls_closes[i].store(tls_closes_[i], std::memory_order_relaxed);
  pub_tls_lean.store(tls_lean_, std::memory_order_relaxed);
  pub_tls_openssl.store(tls_openssl_, std::memory_order_relaxed);
  std::uint64_t up = 0;
  for (auto& l : links_) up += l->up;
  pub_mesh_links_up.store(up, std::memory_order_relaxed);
}

void Shard::timers(std::uint64_t now) {
  next_tick_ = now + kTickNs;
  // Reads paused by the rate limit.
  if (!paused_.empty()) {
    std::vector<std::uint32_t> still;
    for (std::uint32_t slot : paused_) {
      Conn* c = slot < conns_.size() ? conns_[slot] : nullptr;
      if (!c || c->closing) continue;
      if (c->resume_at <= now) {
        c->paused = false;
        arm_recv(*c);
      } else {
        still.push_back(slot);
      }
    }
    paused_.swap(still);
  }
  if (!accept_retry_.empty() && !relay_.stop) {
    auto retry = std::move(accept_retry_);
    accept_retry_.clear();
    for (std::uint32_t a : retry) arm_accept(a);
  }
  for (std::size_t k = 0; k < udp.size(); ++k) {
    current_udp_ = k;  // what on_tick sends leaves from the service's socket
    udp[k]->on_tick(now, *this);
  }
  publish();
  if (now < next_second_) return;
  next_second_ = now + derp::kSecond;
  server_->tick(now);
  consider_moves(now);
  // Sends that made no progress for 2 s: the peer stopped reading.
  // Connections quiet for a second give their buffers back (OpenSSL's
  // record buffers, a partial TLS record, output capacity): memory per idle
  // connection. Busy ones keep them.
  std::size_t released = 0;
  for (Conn* c : conns_) {
    if (!c || c->closing) continue;
    if (!c->idle_released && !c->send_armed && now > c->last_rx && now - c->last_rx > derp::kSecond) {
      // The output strings too: the TLS handshake's flight (~2 KiB with the
      // certificates) or a burst would otherwise stay as capacity.
      c->idle_released = (!c->tls || c->tls->release_buffers()) && c->tx_pending.empty();
      if (c->idle_released) {
        std::string().swap(c->tx_pending);
        std::string().swap(c->tx_inflight);
        ++released;
      }
    }
    if (!c->send_armed) continue;
    // send_since may be stamped after `now` was read: compare without wrapping.
    if (now > c->send_since && now - c->send_since > kWriteTimeoutNs) {
      ++write_timeouts_;
      to_close_.push_back(CloseReq{c->slot, c->gen, derp::CloseReason::kWriteTimeout});
    }
  }
  for (auto& l : links_)
    if (l->slot == kNone && now >= l->redial_at) mesh_dial(*l, now);
  // Freed record buffers and SSL objects (lean connections) sit between
  // live objects: hand those pages back.
  if (released + tls_lean_since_trim_ > 64) {
    malloc_trim(0);
    tls_lean_since_trim_ = 0;
  }
}

// --- migration (flow in shard.h) ---

// Once a second: every client connection's tally is rolled, and the rule
// (migration.h) judges the ones that could move.
void Shard::consider_moves(std::uint64_t now) {
  // Keys moved long enough ago: every shard has heard of the move.
  std::erase_if(moved_, [&](const MovedKey& m) { return m.until <= now; });
  // Nothing moves while announcements wait for room in a full shard ring:
  // a key's PeerAdd must reach every shard before the key can move, or it
  // would arrive after the move and point back here.
  bool backlog = false;
  for (const auto& v : pending_ctrl_) backlog = backlog || !v.empty();
  if (!migrate_ok_ || backlog) return;
  loads_.resize(relay_.shards.size());
  for (std::size_t i = 0; i < loads_.size(); ++i)
    loads_[i] = relay_.shards[i]->load.load(std::memory_order_relaxed);
  for (Conn* c : conns_) {
    if (!c || c->closing || c->phase != Conn::kDerp || c->derp == kNone) continue;
    const derp::RouteTally::Window w = server_->roll_tally(c->derp);
    if (c->moving) continue;
    const MoveDecision d = decide_move(relay_.opts.migrate, index_, loads_, w, c->last_move, now);
    if (d.verdict == MoveVerdict::kStay) continue;
    // Only the user-space TLS record layer (or plain TCP) moves: an OpenSSL
    // connection (TLS 1.2, another suite) is left where it is.
    if (c->paused || c->close_after_send || (c->tls && !c->tls->lean()) || !server_->movable(c->derp))
      continue;
    if (d.verdict == MoveVerdict::kRefusedFull) {
      ++move_refused_full_;
      continue;
    }
    ++loads_[d.target];  // the next decisions of this pass see it
    begin_move(*c, d.target);
  }
}

void Shard::begin_move(Conn& c, unsigned to) {
  c.moving = true;
  c.move_to = to;
  relay_.shards[to]->load.fetch_add(1, std::memory_order_relaxed);
  if (c.recv_armed) {
    // Completes with -ECANCELED, or with bytes that arrived first (handled
    // here as usual).
    io_uring_sqe* s = sqe();
    io_uring_prep_cancel64(s, tag(kRecv, c.slot, c.gen), 0);
    io_uring_sqe_set_data64(s, tag(kIgnore, 0, 0));
  }
  moving_.push_back(SlotGen{c.slot, c.gen});
}

// The move is off (the connection closes, or the transfer failed): the
// target's count goes back.
void Shard::abort_move(Conn& c) {
  if (!c.moving) return;
  c.moving = false;
  relay_.shards[c.move_to]->load.fetch_sub(1, std::memory_order_relaxed);
}

void Shard::advance_moves(std::uint64_t now) {
  if (moving_.empty()) return;
  auto batch = std::move(moving_);
  moving_.clear();
  for (const SlotGen& sg : batch) {
    Conn* c = conn_of(sg.slot, sg.gen);
    if (!c || !c->moving || c->closing) continue;
    if (c->recv_armed || c->send_armed) {
      moving_.push_back(sg);
      continue;
    }
    if (!c->direct) {
      finish_move(*c, c->fd, now);  // an ordinary descriptor works on any thread
      continue;
    }
    // IORING_MSG_SEND_FD (kernel 6.0): liburing 2.3 has no helper for it.
    // The target ring allocates the slot and posts nothing; our completion
    // carries the slot.
    io_uring_sqe* s = sqe();
    io_uring_prep_rw(IORING_OP_MSG_RING, s, relay_.shards[c->move_to]->ring_.ring_fd,
                     reinterpret_cast<void*>(static_cast<std::uintptr_t>(IORING_MSG_SEND_FD)), 0, 0);
    s->addr3 = static_cast<std::uint64_t>(c->fd);
    s->file_index = IORING_FILE_INDEX_ALLOC;
    s->msg_ring_flags = IORING_MSG_RING_CQE_SKIP;
    io_uring_sqe_set_data64(s, tag(kMoveFd, c->slot, c->gen));
    c->move_sent = true;
  }
}

void Shard::on_move_fd(std::uint32_t slot, std::uint32_t gen, int res, std::uint64_t now) {
  Conn* c = conn_of(slot, gen);
  if (!c) return;
  c->move_sent = false;
  if (c->closing) {
    // Closed meanwhile: the slot the target filled must not leak.
    if (res >= 0) {
      std::uint8_t b[4];
      derp::put_be32(b, static_cast<std::uint32_t>(res));
      push_record(c->move_to, kRecDropSlot, b, {}, true);
    }
    reap(*c);
    return;
  }
  if (res < 0) {
    ++move_refused_transfer_;
    if (res == -EINVAL || res == -EOPNOTSUPP) {
      // A kernel without IORING_MSG_SEND_FD (before 6.0): no migration here.
      migrate_ok_ = false;
      static std::atomic<bool> said{false};
      if (!said.exchange(true))
        std::fprintf(stderr, "moongate-relay: io_uring cannot pass a connection to another shard (%s): "
                     "no migration\n", std::strerror(-res));
    }
    abort_move(*c);
    arm_recv(*c);
    queue_flush(*c);
    return;
  }
  finish_move(*c, res, now);
}

void Shard::finish_move(Conn& c, int target_fd, std::uint64_t now) {
  const unsigned to = c.move_to;
  auto m = std::make_unique<Move>();
  server_->detach(c.derp, to, m->client);
  of_derp_[c.derp] = kNone;
  c.derp = kNone;
  if (c.tls) c.tls->detach_ciphers();
  if (c.direct) {
    // The target's slot holds the socket now; this one only lets go.
    io_uring_sqe* s = sqe();
    io_uring_prep_close_direct(s, static_cast<unsigned>(c.fd));
    io_uring_sqe_set_data64(s, tag(kIgnore, 0, 0));
  }
  conns_[c.slot] = nullptr;
  free_slots_.push_back(c.slot);
  --io_conns_;
  load.fetch_sub(1, std::memory_order_relaxed);
  const MovedKey mk{m->client.key, to, now + kMovedForwardNs};
  const auto at = std::lower_bound(moved_.begin(), moved_.end(), mk,
                                   [](const MovedKey& a, const MovedKey& b) { return a.key < b.key; });
  if (at != moved_.end() && at->key == mk.key) *at = mk;  // one entry per key: the latest move
  else moved_.insert(at, mk);
  c.moving = false;
  c.last_move = now;
  ++moves_;
  if (relay_.opts.verbose)
    std::fprintf(stderr, "moongate-relay: shard %u: moving %s:%u to shard %u\n", index_,
                 ip_string(c.addr).c_str(), c.addr.port, to);
  m->fd = target_fd;
  m->conn.reset(&c);
  // From the push on the target owns it (it may adopt it at once).
  Move* raw = m.release();
  std::uint8_t ptr[sizeof raw];
  std::memcpy(ptr, &raw, sizeof raw);
  push_record(to, kRecMigrate, ptr, {}, true);
}

void Shard::free_moves_in_flight() {
  auto free_record = [](const std::uint8_t* rec) {
    if (rec[4] != kRecMigrate) return;
    Move* m;
    std::memcpy(&m, rec + 5, sizeof m);
    if (!m->conn->direct && m->fd >= 0) ::close(m->fd);  // a slot closes with its ring
    delete m;
  };
  std::vector<std::uint8_t> rec;
  for (unsigned from = 0; from < relay_.shards.size(); ++from) {
    if (from == index_) continue;
    auto& q = relay_.ring(from, index_);
    while (q.read_available() >= 5) {
      rec.resize(4);
      q.pop(rec.data(), 4);
      const std::uint32_t len = derp::get_be32(rec.data());
      rec.resize(4 + len);
      q.pop(rec.data() + 4, len);
      free_record(rec.data());
    }
  }
  for (auto& v : pending_ctrl_)
    for (const std::string& r : v) free_record(reinterpret_cast<const std::uint8_t*>(r.data()));
  pending_ctrl_.clear();
}

// Packets for a key that moved away, from shards that had not heard yet:
// on to where it went, behind the kRecMigrate record.
bool Shard::pass_on_moved(const derp::Key& dst, std::span<const std::uint8_t> keys,
                          std::span<const std::uint8_t> data, std::uint64_t now) {
  // moved_ is sorted by key (a binary search per packet while it is not
  // empty); the key may also have connected here again since. An entry
  // counts for exactly kMovedForwardNs, no more than the move rule's hold:
  // a packet passed on cannot find its key moved on again, so it cannot loop.
  const auto it = std::lower_bound(moved_.begin(), moved_.end(), dst,
                                   [](const MovedKey& m, const derp::Key& k) { return m.key < k; });
  if (it == moved_.end() || it->key != dst || it->until <= now || server_->is_connected(dst)) return false;
  push_record(it->to, kRecForward, keys, data, !pending_ctrl_[it->to].empty());
  ++passed_on_;
  return true;
}

void Shard::adopt(std::unique_ptr<Move> m, unsigned from, std::uint64_t now) {
  Conn* c = m->conn.release();
  const std::uint32_t slot = new_slot();
  c->fd = m->fd;
  c->slot = slot;
  c->gen = next_gen_++;
  c->recv_armed = c->send_armed = c->flush_queued = c->reap_queued = false;
  c->moving = c->move_sent = false;
  c->last_move = now;
  conns_[slot] = c;
  ++io_conns_;
  if (c->tls) c->tls->attach_ciphers(&ciphers_);
  // Its load was counted here when the move began.
  const derp::Key key = m->client.key;
  const derp::IpPort addr = m->client.addr;
  const std::uint8_t flags =
      static_cast<std::uint8_t>(derp::kPresentIsRegular | (m->client.prober ? derp::kPresentIsProber : 0));
  c->derp = server_->adopt(std::move(m->client), from, now);
  if (of_derp_.size() <= c->derp) of_derp_.resize(c->derp + 1, kNone);
  of_derp_[c->derp] = slot;
  if (!server_->is_active(c->derp)) {
    close_conn(*c, "no memory for a moved connection");
    return;
  }
  std::uint8_t body[32 + 16 + 2 + 1 + 4];
  std::memcpy(body, key.data(), 32);
  std::memcpy(body + 32, addr.ip.data(), 16);
  body[48] = static_cast<std::uint8_t>(addr.port >> 8);
  body[49] = static_cast<std::uint8_t>(addr.port);
  body[50] = flags;
  derp::put_be32(body + 51, from);
  for (unsigned s = 0; s < relay_.shards.size(); ++s)
    if (s != index_ && s != from) push_record(s, kRecPeerMoved, body, {}, true);
  if (c->paused) paused_.push_back(slot);
  else arm_recv(*c);
  queue_flush(*c);  // adopt() cleared flush_queued: what moved with it goes out
}

// --- mesh links (shard 0) ---

Shard::MeshLink* Shard::link_of(const Conn& c) {
  return c.link >= 0 && static_cast<std::size_t>(c.link) < links_.size() ? links_[static_cast<std::size_t>(c.link)].get()
                                                                          : nullptr;
}

void Shard::mesh_dial(MeshLink& l, std::uint64_t now) {
  l.redial_at = now + l.backoff;
  l.backoff = std::min<std::uint64_t>(l.backoff * 2, 30 * derp::kSecond);
  addrinfo hints{};
  hints.ai_socktype = SOCK_STREAM;
  addrinfo* res = nullptr;
  const std::string port = std::to_string(l.peer.port);
  if (getaddrinfo(l.peer.host.c_str(), port.c_str(), &hints, &res) != 0 || !res) return;
  std::memcpy(&l.sa, res->ai_addr, res->ai_addrlen);
  l.salen = res->ai_addrlen;
  const int fd = socket(res->ai_family, SOCK_STREAM | SOCK_CLOEXEC, 0);
  freeaddrinfo(res);
  if (fd < 0) return;
  Conn* c = new_conn(fd, false);  // few and outgoing: ordinary descriptors
  c->phase = Conn::kMesh;
  for (std::size_t i = 0; i < links_.size(); ++i)
    if (links_[i].get() == &l) c->link = static_cast<int>(i);
  c->addr = ipport_of(l.sa);
  c->connecting = true;
  l.slot = c->slot;
  io_uring_sqe* s = sqe();
  io_uring_prep_connect(s, fd, reinterpret_cast<sockaddr*>(&l.sa), l.salen);
  io_uring_sqe_set_data64(s, tag(kConnect, c->slot, c->gen));
}

void Shard::mesh_on_connect(MeshLink& l, Conn& c, int res, std::uint64_t) {
  if (res < 0) {
    close_conn(c, "send or connect error");
    return;
  }
  const int one = 1;
  setsockopt(c.fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
  derp::ClientInfo ci;
  ci.version = static_cast<int>(derp::kProtocolVersion);
  ci.mesh_key = relay_.mesh_key;
  l.client = std::make_unique<derp::Client>(relay_.private_key, relay_.public_key, ci, true, l);
  const std::string req = "GET /derp HTTP/1.1\r\nHost: " + l.peer.host +
                          "\r\nUpgrade: DERP\r\nConnection: Upgrade\r\nDerp-Fast-Start: 1\r\n\r\n";
  l.client->send_raw({reinterpret_cast<const std::uint8_t*>(req.data()), req.size()});
  if (l.peer.tls) {
    c.tls = std::make_unique<TlsConn>(relay_.mesh_tls->ctx(), false, &c.tx_pending);
    c.tls->set_sni(l.peer.host);
    c.tls->handshake();  // the ClientHello goes out now
  }
  arm_recv(c);
  flush(c);
}

void Shard::mesh_down(MeshLink& l, std::uint64_t now) {
  if (l.up)
    std::fprintf(stderr, "moongate-relay: mesh link to %s:%u down\n", l.peer.host.c_str(), l.peer.port);
  l.up = false;
  l.slot = kNone;
  l.client.reset();
  if (l.redial_at < now) l.redial_at = now + derp::kSecond;
  server_->remove_route(l.route, now);
  std::uint8_t r[4];
  derp::put_be32(r, l.route);
  for (unsigned s = 0; s < relay_.shards.size(); ++s)
    if (s != index_) push_record(s, kRecRouteDown, r, {}, true);
}

void Shard::mesh_forward(derp::Route route, const derp::Key& src, const derp::Key& dst,
                         std::span<const std::uint8_t> data) {
  if (route < kMeshRouteBase || route - kMeshRouteBase >= links_.size()) return;
  MeshLink& l = *links_[route - kMeshRouteBase];
  if (!l.up || !l.client || l.client->output().size() > kMeshMaxBacklog) {
    ++l.dropped;
    return;
  }
  l.client->forward_packet(src, dst, data);
  if (Conn* c = l.slot != kNone ? conns_[l.slot] : nullptr) queue_flush(*c);
}

}  // namespace moongate::relay
