// The DERP server's state, I/O-free: bytes and `now` in, actions out.
//
// Flow of one connection (the I/O layer owns the socket, this owns the rest):
//   1. open()       the I/O layer accepted a connection (after the HTTP
//                   upgrade); ServerKey is queued
//   2. receive()    bytes read from the socket; whole frames are handled in
//                   place, a partial frame is kept in a pooled buffer
//      ClientInfo   opened with the server key; mesh key or Events::admit()
//                   decides; ServerInfo queued; the client is registered
//                   (newest connection of a key is the active one), watchers
//                   get PeerPresent, sibling shards hear Events::local_peer()
//      SendPacket   -> RecvPacket on the destination's queue (32 packets, 8
//                   disco; full: the oldest is dropped), or Events::forward()
//                   to the route that announced the key, or a counted drop
//                   (+ PeerGone(not here) for disco, rate-limited)
//   3. output() / sent()  the I/O layer takes iovecs of queued frames and
//                   reports how much was written; buffers stay valid until
//                   sent() covers them (io_uring writes are asynchronous)
//   4. tick()       keepalives, the 10 s handshake limit, the 2 s write limit
//   5. closed()     the socket is gone: the client is unregistered, watchers
//                   get PeerGone, peers it sent to get PeerGone(disconnected)
//   or detach()     the connection moves to a sibling shard (relay/shard.h,
//                   Migration): its state leaves as a MovedClient, the key
//                   becomes a route to that shard, nobody is told; the
//                   sibling's adopt() registers it as silently
//
// One Server per shard (thread); nothing here is shared across threads.
// Other shards and mesh peers are "routes": keys they announce are added with
// add_remote(), packets for them leave through Events::forward(), packets
// they bring arrive through deliver() and are never forwarded again.
#pragma once

#include <array>
#include <cstddef>
#include <cstdint>
#include <optional>
#include <span>
#include <string>
#include <unordered_map>
#include <unordered_set>
#include <vector>

#include <sys/uio.h>

#include "crypto/secret.h"
#include "derp/buffer_pool.h"
#include "derp/frame.h"
#include "derp/handshake.h"
#include "derp/route_tally.h"

namespace moongate::derp {

using ConnId = std::uint32_t;
using Route = std::uint32_t;

inline constexpr std::uint64_t kSecond = 1'000'000'000ull;

// Counters: one X-macro list -> enum, array and Prometheus names.
#define MOONGATE_DERP_COUNTERS(X)                                          \
  X(accepts, "connections opened")                                         \
  X(handshakes, "handshakes completed")                                    \
  X(handshake_failures, "ClientInfo that did not open or parse")          \
  X(admission_denied, "clients refused by admission")                      \
  X(handshake_timeouts, "connections without ClientInfo in time")          \
  X(write_timeouts, "connections closed after a blocked write")            \
  X(bad_frames, "connections closed for a malformed or oversize frame")    \
  X(not_permitted, "connections closed for a mesh-only frame")            \
  X(packets_recv, "packets received from clients")                         \
  X(bytes_recv, "packet bytes received from clients")                      \
  X(packets_sent, "packets queued to clients")                             \
  X(bytes_sent, "packet bytes queued to clients")                          \
  X(packets_forwarded_out, "packets forwarded to another shard or relay")  \
  X(packets_forwarded_in, "packets delivered from another shard or relay") \
  X(drop_unknown_dest, "packets dropped: destination not connected")       \
  X(drop_unknown_dest_disco, "disco packets dropped: destination not connected") \
  X(drop_queue_full, "packets dropped: oldest in a full queue")            \
  X(drop_no_memory, "packets dropped: no buffer")                          \
  X(peer_gone_disconnected, "PeerGone(disconnected) frames sent")          \
  X(peer_gone_not_here, "PeerGone(not here) frames sent")                 \
  X(peer_gone_limited, "PeerGone(not here) suppressed by the rate limit")  \
  X(peer_present, "PeerPresent frames sent")                               \
  X(pings, "pings answered")                                               \
  X(pongs_dropped, "pings not answered: the client is not reading")       \
  X(keepalives, "keepalives sent")                                         \
  X(unknown_frames, "frames of unknown type skipped")                      \
  X(rate_limited, "times a client's reading was paused by its rate limit") \
  X(home_changes, "NotePreferred frames")

enum class Counter : std::size_t {
#define X(name, help) name,
  MOONGATE_DERP_COUNTERS(X)
#undef X
      kCount
};
const char* counter_name(Counter c) noexcept;
const char* counter_help(Counter c) noexcept;

enum class CloseReason : std::uint8_t {
  kHandshakeFailed,
  kDenied,
  kHandshakeTimeout,
  kWriteTimeout,
  kBadFrame,
  kNotPermitted,
  kClosedByMesh,
  kNoMemory,
};
const char* close_reason_name(CloseReason r) noexcept;

enum class Admission : std::uint8_t { kAllow, kDeny, kPending };

// A client connection's state on its way to another shard's Server: what
// it is, what it was sending and what was queued for it. Frames are copied
// out of the old server's buffer pool (each Server has its own).
struct MovedClient {
  Key key{};
  IpPort addr;
  ClientInfo info;
  bool prober = false;
  bool preferred = false;
  std::uint64_t created = 0;
  std::uint64_t next_keepalive = 0;
  double tokens = 0;
  std::uint64_t tokens_at = 0;
  double gone_tokens = 0;
  std::uint64_t gone_at = 0;
  std::string rx;    // a partial frame read from the client
  std::string ctrl;  // output not yet taken by the I/O layer: control frames first
  std::vector<std::string> pkts, disco;  // queued RecvPacket frames, oldest first
  // Keys that sent it packets through the old server: when one of them
  // leaves, the new server owes it PeerGone(disconnected), as derper does.
  std::vector<Key> senders;
};

struct ServerConfig {
  crypto::SecretKey private_key;
  Key public_key{};
  std::optional<Key> mesh_key;
  std::uint64_t keepalive_ns = 60 * kSecond;
  std::uint64_t keepalive_jitter_ns = 5 * kSecond;
  std::uint64_t handshake_timeout_ns = 10 * kSecond;
  std::uint64_t write_timeout_ns = 2 * kSecond;
  // Per-client receive token bucket; 0 = no limit. Mesh peers are exempt.
  std::uint32_t rate_bytes_per_second = 0;
  std::uint32_t rate_burst_bytes = 0;
  std::size_t queue_depth = 32;        // regular packets per client (max 32)
  std::size_t disco_queue_depth = 8;   // disco packets per client (max 8)
  // PeerGone(not here) per client: a burst, then one per interval.
  std::uint32_t peer_gone_burst = 3;
  std::uint64_t peer_gone_interval_ns = kSecond;
  std::uint64_t seed = 1;  // keepalive jitter
};

// What the server asks of the I/O layer. Calls are made from inside the
// Server's methods; implementations must not call back into the Server
// except where noted.
class Events {
 public:
  virtual ~Events() = default;
  // The connection's output went from empty to non-empty.
  virtual void want_write(ConnId c) = 0;
  // The server gave up on the connection (it is already unregistered): close
  // the socket, then call Server::closed().
  virtual void close(ConnId c, CloseReason r) = 0;
  // Admission of a non-mesh client. kPending: answer later with admitted().
  virtual Admission admit(ConnId c, const Key& client, const ClientInfo& info,
                          const IpPort& addr) = 0;
  // A packet for a key announced by `route`.
  virtual void forward(Route route, const Key& src, const Key& dst,
                       std::span<const std::uint8_t> data) = 0;
  // A connection of a key arrived (every one: the newest is active across
  // shards) / the last one here left (for siblings).
  virtual void local_peer(const Key& key, const IpPort& addr, std::uint8_t flags, bool present) = 0;
  // A mesh peer sent ClosePeer for a key with no connection here: sibling
  // shards should close theirs (Server::close_peer there).
  virtual void close_peer_elsewhere(const Key& /*key*/) {}
  // c's packet queue is full and a packet for it arrived: the I/O layer may
  // take the queued bytes now (output() and sent(), as for a write), if its
  // own buffer for c has room. Only what it cannot take is dropped (the
  // oldest first): a burst that arrives all at once, such as a batch from
  // another shard's ring, is not a slow reader.
  virtual void make_room(ConnId /*c*/) {}
};

class Server {
 public:
  Server(ServerConfig cfg, Events& events);
  ~Server();
  Server(const Server&) = delete;
  Server& operator=(const Server&) = delete;

  // --- connection life ---
  ConnId open(const IpPort& remote, std::uint64_t now);
  // Handles bytes read from c. Returns 0, or the time before which the I/O
  // layer should not read c again (rate limit).
  std::uint64_t receive(ConnId c, std::span<const std::uint8_t> bytes, std::uint64_t now);
  // Answer to a kPending admission.
  void admitted(ConnId c, bool allow, std::uint64_t now);
  // The socket is closed (EOF, error, or after Events::close). Frees c.
  void closed(ConnId c, std::uint64_t now);

  // --- output ---
  // Fills up to `max` iovecs with c's queued bytes; the same bytes are
  // returned again until sent() covers them.
  std::size_t output(ConnId c, iovec* iov, std::size_t max);
  void sent(ConnId c, std::size_t bytes, std::uint64_t now);
  bool has_output(ConnId c) const noexcept;

  // --- timers ---
  void tick(std::uint64_t now);

  // --- routes (other shards, mesh peers) ---
  // `sibling`: a shard of this relay; its clients count as local to watchers.
  void add_remote(const Key& key, Route route, bool sibling, const IpPort& addr,
                  std::uint8_t flags, std::uint64_t now);
  void remove_remote(const Key& key, Route route, std::uint64_t now);
  // Removes every key of a route (a mesh peer or shard went away).
  void remove_route(Route route, std::uint64_t now);
  // A packet forwarded to this server for a local client; never forwarded
  // to a mesh peer again. `to_sibling`: a client on a sibling shard may take
  // it (one more hop; shards hand over with to_sibling false, so no loops).
  // `from`: the route it came through, for the tally (kOtherRoute: a mesh
  // connection).
  bool deliver(const Key& src, const Key& dst, std::span<const std::uint8_t> data,
               std::uint64_t now, bool to_sibling = true, Route from = kOtherRoute);
  // Closes every local connection of `key` (ClosePeer from a mesh peer).
  void close_peer(const Key& key);
  // Sends `frame` (a whole frame) to every watcher; e.g. a health message.
  void send_ctrl(ConnId c, std::span<const std::uint8_t> frame);

  // --- moving a client to a sibling shard ---
  // An active client connection, not a mesh peer or watcher, and its key's
  // only connection anywhere in the relay (no sibling or mesh route for it).
  bool movable(ConnId c) const;
  // Its packets since the last call (derp/route_tally.h).
  RouteTally::Window roll_tally(ConnId c) noexcept;
  // Takes a movable() connection out: its state into `out`, the key now
  // reached through sibling route `to`. Frees c; nobody is told (the client
  // is still connected, elsewhere).
  void detach(ConnId c, Route to, MovedClient& out);
  // The sibling's side: registers the client (active, writable: the I/O
  // layer asks for output itself) and drops the key's route `from`; nobody
  // is told.
  ConnId adopt(MovedClient&& m, Route from, std::uint64_t now);
  // Another shard passed a client from route `from` to route `to`: the
  // key's route changes, silently.
  void move_remote(const Key& key, Route from, Route to, const IpPort& addr, std::uint8_t flags);

  // --- introspection ---
  std::uint64_t counter(Counter k) const noexcept { return counters_[static_cast<std::size_t>(k)]; }
  std::size_t connections() const noexcept { return live_; }
  std::size_t clients() const noexcept { return clients_.size(); }
  std::size_t watchers() const noexcept { return watchers_.size(); }
  std::size_t remotes() const noexcept { return remote_.size(); }
  bool is_connected(const Key& key) const;
  bool is_active(ConnId c) const noexcept;
  bool is_mesh(ConnId c) const noexcept;
  const Key* client_key(ConnId c) const noexcept;
  const ServerConfig& config() const noexcept { return cfg_; }
  BufferPool& pool() noexcept { return pool_; }

 private:
  struct KeyHash {
    std::uint64_t k0, k1;
    std::size_t operator()(const Key& k) const noexcept;
  };
  struct Conn;
  struct ClientSet {
    std::vector<ConnId> conns;  // newest last: the active one
    // A sibling shard announced a newer connection of this key: it is the
    // active one until it leaves or a newer one arrives here.
    bool superseded = false;
  };
  struct RemoteRoute {
    Route route;
    bool sibling;
    IpPort addr;
    std::uint8_t flags;
  };

  Conn* get(ConnId c) const noexcept;
  bool forward_to_sibling(const Key& src, const Key& dst, std::span<const std::uint8_t> data);
  void count(Counter k, std::uint64_t n = 1) noexcept { counters_[static_cast<std::size_t>(k)] += n; }
  void handle_frame(Conn& c, FrameType t, std::span<const std::uint8_t> payload, std::uint64_t now);
  void handle_client_info(Conn& c, std::span<const std::uint8_t> payload, std::uint64_t now);
  void finish_admission(Conn& c, std::uint64_t now);
  void handle_send(Conn& c, std::span<const std::uint8_t> payload, std::uint64_t now);
  void handle_watch(Conn& c);
  void enqueue_packet(Conn& d, const Key& src, std::span<const std::uint8_t> data);
  void enqueue_ctrl(Conn& c, const std::uint8_t* frame, std::size_t n);
  void note_output(Conn& c);
  // A free slot of conns_ (a freed one first), for open() and adopt().
  ConnId new_id();
  void note_sent_to(Conn& d, const Key& src);
  void fail(Conn& c, CloseReason r, Counter k);
  void unregister(Conn& c, std::uint64_t now);
  void peer_gone_to_watchers(const Key& key);
  void present_to_watchers(const Key& key, const IpPort& addr, std::uint8_t flags);
  void notify_senders_gone(const Key& key);
  void free_queues(Conn& c);
  std::uint8_t present_flags(const Conn& c) const noexcept;
  std::uint64_t next_keepalive(std::uint64_t now) noexcept;

  ServerConfig cfg_;
  Events& events_;
  BufferPool pool_;
  std::vector<Conn*> conns_;       // by ConnId; nullptr = free slot
  std::vector<ConnId> free_ids_;
  std::size_t live_ = 0;
  KeyHash hash_;
  std::unordered_map<Key, ClientSet, KeyHash> clients_;
  std::unordered_map<Key, std::vector<RemoteRoute>, KeyHash> remote_;
  // src key -> keys it sent packets to through this server (PeerGone on leave).
  std::unordered_map<Key, std::unordered_set<Key, KeyHash>, KeyHash> sent_to_;
  std::vector<ConnId> watchers_;
  std::array<std::uint64_t, static_cast<std::size_t>(Counter::kCount)> counters_{};
  std::uint64_t rng_;
};

}  // namespace moongate::derp
