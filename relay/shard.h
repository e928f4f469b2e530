// One relay shard: a thread with its own io_uring, its own listening
// sockets (SO_REUSEPORT spreads connections and datagrams over the shards),
// its own derp::Server and its own UDP service instances.
//
// Per loop iteration:
//   1. submit queued SQEs and wait (at most 100 ms) for completions
//   2. completions: accept -> new connection (HTTP first), its descriptor
//      a slot of the ring's registered-file table (below); recv -> TLS
//      decrypt -> HTTP head or derp::Server::receive(); send -> next write;
//      eventfd -> drain the inboxes from other shards; UDP -> service
//   3. connections the server asked to write: pull output from the server
//      (only when no send is in flight, so the server's queues hold the
//      backlog and drop the oldest), encrypt, one send each
//   4. timers: paused reads (rate limit), derp tick, write timeouts,
//      metrics published, mesh links redialled
//
// Other shards are routes 0..N-1 of the derp::Server: keys connected there
// are announced through SPSC byte rings (one per ordered pair of shards),
// and packets for them cross the same rings. Mesh links (connections to the
// region's other relays) all live on shard 0 as routes kMeshRouteBase + i.
//
// Migration (relay/migration.h has the rule): a client connection whose
// packets go (almost) all to clients of one other shard moves there (of two
// clients talking, the one with the higher key), so the pair's packets stop
// crossing rings. On the old shard S:
//   1. begin: reading stops (the armed receive is cancelled; bytes it
//      already brought are handled), nothing new is sent; T's connection
//      count is raised at once (the rule's view of T)
//   2. once no receive or send is in flight: the socket goes to T's ring,
//      a direct descriptor by IORING_OP_MSG_RING (IORING_MSG_SEND_FD into a
//      slot T's table allocates, no completion on T: the slot comes back in
//      S's completion), an ordinary descriptor as it is
//   3. derp::Server::detach(): the client's state (partial frame, queued
//      frames, counters) leaves S's server, the key becomes a route to T;
//      the TLS record layer's keys leave S's AEAD contexts; S's slot is
//      closed; a kRecMigrate record hands T the connection (the Conn
//      object itself: TLS and WebSocket state, output not yet sent)
//   4. for a few seconds, packets for the key that other shards had already
//      sent to S are passed on to T (behind the kRecMigrate record)
// On T, at the kRecMigrate record: derp::Server::adopt(), the record
// layer's keys join T's contexts, the route to S is dropped, the other
// shards hear kRecPeerMoved (their route for the key changes from S to T,
// silently), reading resumes and queued output is sent.
// A move that cannot be done (T's table full, a kernel without
// IORING_MSG_SEND_FD: migration then stops on the shard) is counted and
// the connection carries on where it is. What a move keeps: every byte the
// client sent, in order (unread bytes wait in the socket, a partial TLS
// record and partial frame move), every frame queued for it or on its way
// to it (the queues' drop-oldest limits and a full ring's drops apply as
// always), the order of frames to it from any one sender on S. From a
// sender on another shard, frames already on their way to S (passed on in
// step 4) may arrive after newer ones that went straight to T: DERP
// carries datagrams.
//
// Accepted connections are io_uring direct descriptors: accepted into the
// ring's registered-file table (a free slot picked by the kernel), used by
// every operation with IOSQE_FIXED_FILE and closed with close_direct. They
// do not count against RLIMIT_NOFILE's descriptor table and spare the
// kernel a descriptor lookup per operation; the table itself is capped at
// RLIMIT_NOFILE per ring, so shards together hold more. A full table
// refuses the connection (the kernel accepts and closes it; counted). Mesh
// links and, when the kernel cannot register a table, every connection
// use ordinary descriptors.
#pragma once

#include <liburing.h>
#include <sys/socket.h>

#include <array>
#include <atomic>
#include <cstdint>
#include <memory>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include <boost/lockfree/spsc_queue.hpp>

#include "derp/client.h"
#include "derp/server.h"
#include "relay/admission.h"
#include "relay/bootstrap_dns.h"
#include "relay/options.h"
#include "relay/tls.h"
#include "relay/udp_service.h"

namespace moongate::relay {

inline constexpr derp::Route kMeshRouteBase = 1000;
// Bytes of each shard-to-shard ring.
inline constexpr std::size_t kShardRingBytes = 8 << 20;
// Datagrams read with one recvmmsg after a UDP receive completion.
inline constexpr unsigned kUdpBurst = 16;
// Single-shot accepts kept in flight per listener, each with its own
// address buffer: a multishot accept into the table would report no peer
// address, and getpeername() needs an ordinary descriptor.
inline constexpr unsigned kAcceptsInFlight = 8;

// A TCP listener as the shards make theirs (SO_REUSEPORT, TCP_NODELAY that
// accepted connections inherit, backlog 4096), or a UDP socket; -1 with
// `error`. Exposed for the unit test of what accepted sockets inherit.
int bind_socket(int type, const std::string& addr, std::uint16_t port, std::string& error);

class Shard;

// What all shards share, read-only after start-up (except the rings, which
// are single-producer single-consumer, and the published metrics).
struct Relay {
  Options opts;
  crypto::SecretKey private_key;
  derp::Key public_key{};
  std::optional<derp::Key> mesh_key;
  std::unique_ptr<TlsContext> tls;       // nullptr in plain mode
  std::unique_ptr<TlsContext> mesh_tls;  // client side for mesh links
  std::unique_ptr<Admitter> admitter;
  // /bootstrap-dns; main replaces it with the configured one before the shards start.
  std::unique_ptr<BootstrapDns> bootstrap_dns = std::make_unique<BootstrapDns>(BootstrapDnsConfig{});
  std::vector<std::unique_ptr<Shard>> shards;
  // rings[from * n + to]
  std::vector<std::unique_ptr<boost::lockfree::spsc_queue<std::uint8_t>>> rings;
  std::atomic<bool> stop{false};
  std::uint16_t bound_port = 0;        // the DERP port actually bound
  std::uint16_t bound_http_port = 0;
  std::vector<std::uint16_t> bound_udp_ports;

  boost::lockfree::spsc_queue<std::uint8_t>& ring(unsigned from, unsigned to) {
    return *rings[from * shards.size() + to];
  }
  std::string metrics() const;
  void tls_metrics(std::string& out) const;
};

class Shard final : public derp::Events, public UdpOut {
 public:
  Shard(Relay& relay, unsigned index);
  ~Shard() override;
  // Sets up the ring and binds the sockets; "" or an error. Shard 0 binds
  // first (an ephemeral port is then shared by the others).
  std::string init();
  void start();
  void join();
  void wake();  // from another thread: drain the inbox
  // Once every shard has stopped: connections still on their way to this
  // shard, or waiting to leave it, are freed.
  void free_moves_in_flight();
  // After pushing to this shard's rings: wake it only if it is (about to
  // be) asleep; a busy shard drains its rings every loop iteration.
  void wake_if_sleeping();

  // Published every ~100 ms for /debug/varz (read by any thread).
  std::array<std::atomic<std::uint64_t>, static_cast<std::size_t>(derp::Counter::kCount)> published{};
  // TLS record-layer closes by TlsClose (the last: OpenSSL failures).
  std::array<std::atomic<std::uint64_t>, static_cast<std::size_t>(TlsClose::kCount) + 1> pub_tls_closes{};
  std::atomic<std::uint64_t> pub_tls_lean{0}, pub_tls_openssl{0};
  std::atomic<std::uint64_t> pub_connections{0}, pub_clients{0}, pub_io_conns{0},
      pub_write_timeouts{0}, pub_ring_drops{0}, pub_mesh_links_up{0}, pub_remotes{0},
      pub_table_full{0}, pub_accept_errors{0}, pub_moves{0}, pub_move_refused_full{0},
      pub_move_refused_transfer{0}, pub_passed_on{0};
  // DERP connections on this shard plus moves to it under way: the
  // migration rule's view of the shard's load. Raised by a shard that moves
  // a connection here, lowered by this one when a connection leaves.
  std::atomic<std::uint32_t> load{0};
  // Registered-file slots of this shard (0: ordinary descriptors); set by init().
  unsigned table_slots() const { return table_slots_; }
  std::vector<std::unique_ptr<UdpService>> udp;

  // Admission answers from the admitter's thread.
  void post_admission(std::uint32_t slot, std::uint32_t gen, bool allow);

 private:
  struct Conn;
  struct UdpSock;
  struct UdpSend;
  struct MeshLink;
  struct Move;
  enum Op : std::uint8_t { kAccept, kRecv, kSend, kEvent, kUdpRecv, kUdpSend, kUdpEvent, kConnect, kShutdown,
                     kMoveFd, kIgnore };

  // derp::Events
  void want_write(derp::ConnId c) override;
  void close(derp::ConnId c, derp::CloseReason r) override;
  derp::Admission admit(derp::ConnId c, const derp::Key& client, const derp::ClientInfo& info,
                        const derp::IpPort& addr) override;
  void forward(derp::Route route, const derp::Key& src, const derp::Key& dst,
               std::span<const std::uint8_t> data) override;
  void local_peer(const derp::Key& key, const derp::IpPort& addr, std::uint8_t flags,
                  bool present) override;
  void close_peer_elsewhere(const derp::Key& key) override;
  void make_room(derp::ConnId c) override;
  // UdpOut
  bool send(std::span<const std::uint8_t> datagram, const sockaddr_storage& to,
            socklen_t to_len) override;

  void run();
  io_uring_sqe* sqe();
  static std::uint64_t tag(Op op, std::uint32_t slot, std::uint32_t gen) {
    return std::uint64_t{gen} << 32 | std::uint64_t{slot} << 8 | op;
  }
  void handle(io_uring_cqe* cqe, std::uint64_t now);
  void arm_accept(std::uint32_t a);
  void on_accept(std::uint32_t a, int res, std::uint64_t now);
  void prep_fd(io_uring_sqe* s, const Conn& c);
  void on_recv(Conn& c, int res, std::uint32_t flags, std::uint64_t now);
  void on_send(Conn& c, int res, std::uint64_t now);
  void on_plain(Conn& c, std::span<const std::uint8_t> data, std::uint64_t now);
  void on_http(Conn& c, std::uint64_t now);
  void arm_recv(Conn& c);
  void flush(Conn& c);
  bool stage(Conn& c);
  void queue_flush(Conn& c);
  Conn* conn_of_derp(derp::ConnId id);
  void start_send(Conn& c);
  void close_conn(Conn& c, const char* why);
  void tls_fail(Conn& c);
  void reap(Conn& c);
  void reap_closed();
  // A free slot of conns_ (a freed one first), for new_conn() and adopt().
  std::uint32_t new_slot();
  Conn* new_conn(int fd, bool direct);
  Conn* conn_of(std::uint32_t slot, std::uint32_t gen);
  void timers(std::uint64_t now);
  void drain_inbox(std::uint64_t now);
  bool push_record(unsigned to, std::uint8_t type, std::span<const std::uint8_t> a,
                   std::span<const std::uint8_t> b, bool must);
  void flush_pending_ctrl();
  void publish();
  // migration
  void consider_moves(std::uint64_t now);
  void begin_move(Conn& c, unsigned to);
  void abort_move(Conn& c);
  void advance_moves(std::uint64_t now);
  void on_move_fd(std::uint32_t slot, std::uint32_t gen, int res, std::uint64_t now);
  void finish_move(Conn& c, int target_fd, std::uint64_t now);
  void adopt(std::unique_ptr<Move> m, unsigned from, std::uint64_t now);
  bool pass_on_moved(const derp::Key& dst, std::span<const std::uint8_t> keys,
                     std::span<const std::uint8_t> data, std::uint64_t now);
  bool inbox_pending();
  void arm_event();
  void arm_udp(UdpSock& u);
  void arm_udp_event(std::size_t service);
  void drain_udp(UdpSock& u, std::uint64_t now);
  // mesh
  void mesh_dial(MeshLink& l, std::uint64_t now);
  void mesh_on_connect(MeshLink& l, Conn& c, int res, std::uint64_t now);
  void mesh_down(MeshLink& l, std::uint64_t now);
  void mesh_flush(MeshLink& l);
  MeshLink* link_of(const Conn& c);
  void mesh_forward(derp::Route route, const derp::Key& src, const derp::Key& dst,
                    std::span<const std::uint8_t> data);

  Relay& relay_;
  const unsigned index_;
  io_uring ring_{};
  bool ring_ok_ = false;
  bool ring_disabled_ = false;  // set up disabled: run() enables it on the shard's thread
  std::unique_ptr<derp::Server> server_;
  std::vector<int> listeners_;       // DERP listener, then the plain-HTTP one
  std::vector<bool> listener_plain_;
  // Accepts in flight: kAcceptsInFlight per listener, accept a on listener
  // a / kAcceptsInFlight; each keeps its peer's address until it completes.
  struct Accept {
    sockaddr_storage addr{};
    socklen_t len = 0;
  };
  std::vector<Accept> accepts_;
  std::vector<std::uint32_t> accept_retry_;  // re-armed at the next tick (EMFILE)
  unsigned table_slots_ = 0;  // registered-file slots; 0 = ordinary descriptors
  std::uint64_t table_full_ = 0, accept_errors_ = 0;
  std::vector<Conn*> conns_;
  std::vector<std::uint32_t> free_slots_;
  std::vector<std::uint32_t> of_derp_;  // derp ConnId -> slot
  std::vector<std::uint32_t> to_flush_;
  struct CloseReq {
    std::uint32_t slot, gen;  // the generation: a slot freed and reused meanwhile is left alone
    derp::CloseReason reason;
  };
  std::vector<CloseReq> to_close_;
  std::vector<std::uint32_t> paused_;
  std::vector<std::uint32_t> recv_retry_;
  std::vector<std::uint32_t> to_reap_;
  std::size_t io_conns_ = 0;
  std::uint32_t next_gen_ = 1;
  std::uint64_t write_timeouts_ = 0;
  std::uint64_t ring_drops_ = 0;
  // migration
  bool migrate_ok_ = false;  // on, 2+ shards, and the kernel took the first transfer
  struct SlotGen {
    std::uint32_t slot, gen;
  };
  std::vector<SlotGen> moving_;  // moves waiting for their receive or send to complete
  struct MovedKey {
    derp::Key key;
    unsigned to;
    std::uint64_t until;
  };
  std::vector<MovedKey> moved_;  // keys moved away lately, sorted: packets for them are passed on
  std::vector<std::uint32_t> loads_;
  std::uint64_t moves_ = 0, move_refused_full_ = 0, move_refused_transfer_ = 0;
  std::uint64_t passed_on_ = 0;  // packets for a key that had moved away, sent after it (pass_on_moved)
  // provided receive buffers
  io_uring_buf_ring* br_ = nullptr;
  std::uint8_t* br_mem_ = nullptr;
  // scratch
  std::vector<std::uint8_t> plain_buf_;
  // OpenSSL-mode TLS gathers a send's frames here (stage()): not in
  // plain_buf_, which holds the record being parsed when make_room() stages
  // from inside a receive.
  std::vector<std::uint8_t> stage_buf_;
  RecordCiphers ciphers_;  // AEAD contexts of the lean TLS connections
  std::array<std::uint64_t, static_cast<std::size_t>(TlsClose::kCount) + 1> tls_closes_{};
  std::uint64_t tls_lean_ = 0, tls_openssl_ = 0, tls_lean_since_trim_ = 0;
  std::string tls_out_;
  // cross-shard
  int event_fd_ = -1;
  std::atomic<bool> sleeping_{false};
  std::uint64_t event_buf_ = 0;
  std::vector<bool> dirty_;
  std::vector<std::vector<std::string>> pending_ctrl_;  // per destination, ring was full
  std::vector<std::uint8_t> rec_buf_;
  std::mutex mailbox_mu_;
  struct AdmitResult {
    std::uint32_t slot, gen;
    bool allow;
  };
  std::vector<AdmitResult> mailbox_;
  // UDP services
  std::vector<std::unique_ptr<UdpSock>> udp_socks_;
  std::vector<std::unique_ptr<UdpSend>> udp_sends_;
  std::vector<std::uint32_t> udp_free_;
  std::size_t current_udp_ = 0;  // the socket whose datagram is being handled
  std::vector<std::uint8_t> udp_burst_buf_;  // drain_udp's buffers
  std::array<sockaddr_storage, kUdpBurst> udp_burst_from_{};
  // mesh links (shard 0)
  std::vector<std::unique_ptr<MeshLink>> links_;
  std::uint64_t next_tick_ = 0, next_second_ = 0;
  std::thread thread_;
};

}  // namespace moongate::relay
