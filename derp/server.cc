// The DERP server state machine (flow in server.h).
#include "derp/server.h"

#include <sodium.h>

#include <algorithm>
#include <cstring>
#include <utility>

namespace moongate::derp {
namespace {

constexpr const char* kCounterNames[] = {
#define X(name, help) #name,
    MOONGATE_DERP_COUNTERS(X)
#undef X
};
constexpr const char* kCounterHelp[] = {
#define X(name, help) help,
    MOONGATE_DERP_COUNTERS(X)
#undef X
};

constexpr std::size_t kMaxQueue = 32;
constexpr std::size_t kMaxDiscoQueue = 8;
// Bytes a connection may send while its admission is pending.
constexpr std::size_t kMaxHeldWhileAdmitting = 64 << 10;
// Control frames queued for a client that does not read: past this, pings
// go unanswered (as derper drops pongs when its channel is full) instead of
// growing the queue until the write timeout.
constexpr std::size_t kMaxPongBacklog = 64 << 10;

// A fixed ring of buffer pointers: the per-client send queue.
template <std::size_t N>
struct Ring {
  Buf* slot[N];
  std::uint8_t head = 0, count = 0;
  bool empty() const noexcept { return count == 0; }
  Buf* pop() noexcept {
    Buf* b = slot[head];
    head = static_cast<std::uint8_t>((head + 1) % N);
    --count;
    return b;
  }
  void push(Buf* b) noexcept {
    slot[(head + count) % N] = b;
    ++count;
  }
};

}  // namespace

const char* counter_name(Counter c) noexcept { return kCounterNames[static_cast<std::size_t>(c)]; }
const char* counter_help(Counter c) noexcept { return kCounterHelp[static_cast<std::size_t>(c)]; }

const char* close_reason_name(CloseReason r) noexcept {
  switch (r) {
    case CloseReason::kHandshakeFailed: return "handshake failed";
    case CloseReason::kDenied: return "admission denied";
    case CloseReason::kHandshakeTimeout: return "handshake timeout";
    case CloseReason::kWriteTimeout: return "write timeout";
    case CloseReason::kBadFrame: return "bad frame";
    case CloseReason::kNotPermitted: return "mesh-only frame";
    case CloseReason::kClosedByMesh: return "closed by mesh peer";
    case CloseReason::kNoMemory: return "out of memory";
  }
  return "?";
}

enum class State : std::uint8_t { kAwaitInfo, kAdmitting, kActive, kClosed };

struct Server::Conn {
  ConnId id;
  State state = State::kAwaitInfo;
  bool mesh = false;
  bool prober = false;
  bool watcher = false;
  bool preferred = false;
  bool has_last_src = false;
  IpPort addr;
  Key key{};
  Key last_src{};  // last sender noted in sent_to_ (skips the hash per packet)
  std::uint64_t created = 0;
  std::uint64_t next_keepalive = 0;
  std::uint64_t write_wait_since = 0;  // output pending and not all written since
  // receive token bucket (bytes, may go negative: reading pauses)
  double tokens = 0;
  std::uint64_t tokens_at = 0;
  // PeerGone(not here) limiter
  double gone_tokens = 0;
  std::uint64_t gone_at = 0;
  // a partial frame carried over between receive() calls
  Buf* rx = nullptr;
  std::string held;  // bytes after ClientInfo while admission is pending
  ClientInfo info;
  // output: control frames, then packets
  std::string ctrl;
  std::string ctrl_inflight;
  Ring<kMaxQueue> pkts;
  Ring<kMaxDiscoQueue> disco;
  Buf* inflight[kMaxQueue + kMaxDiscoQueue];
  std::uint8_t n_inflight = 0;
  std::size_t inflight_off = 0;  // bytes of the in-flight sequence already written
  RouteTally tally;  // whom its packets went to and came from (shard migration)
};

std::size_t Server::KeyHash::operator()(const Key& k) const noexcept {
  // Keys are chosen by clients: a keyed hash keeps them from forcing collisions.
  std::uint8_t out[crypto_shorthash_BYTES];
  std::uint8_t key[crypto_shorthash_KEYBYTES];
  std::memcpy(key, &k0, 8);
  std::memcpy(key + 8, &k1, 8);
  crypto_shorthash(out, k.data(), k.size(), key);
  std::size_t h;
  std::memcpy(&h, out, sizeof h);
  return h;
}

Server::Server(ServerConfig cfg, Events& events)
    : cfg_(std::move(cfg)),
      events_(events),
      hash_{0, 0},
      clients_(16, hash_),
      remote_(16, hash_),
      sent_to_(16, hash_),
      rng_(cfg_.seed | 1) {
  cfg_.queue_depth = std::clamp<std::size_t>(cfg_.queue_depth, 1, kMaxQueue);
  cfg_.disco_queue_depth = std::clamp<std::size_t>(cfg_.disco_queue_depth, 1, kMaxDiscoQueue);
  randombytes_buf(&hash_.k0, sizeof hash_.k0);
  randombytes_buf(&hash_.k1, sizeof hash_.k1);
  clients_ = decltype(clients_)(16, hash_);
  remote_ = decltype(remote_)(16, hash_);
  sent_to_ = decltype(sent_to_)(16, hash_);
}

Server::~Server() {
  for (Conn* c : conns_)
    if (c) {
      free_queues(*c);
      delete c;
    }
}

Server::Conn* Server::get(ConnId c) const noexcept {
  return c < conns_.size() ? conns_[c] : nullptr;
}

std::uint64_t Server::next_keepalive(std::uint64_t now) noexcept {
  rng_ ^= rng_ << 13;
  rng_ ^= rng_ >> 7;
  rng_ ^= rng_ << 17;
  return now + cfg_.keepalive_ns + (cfg_.keepalive_jitter_ns ? rng_ % cfg_.keepalive_jitter_ns : 0);
}

ConnId Server::new_id() {
  if (!free_ids_.empty()) {
    const ConnId id = free_ids_.back();
    free_ids_.pop_back();
    return id;
  }
  conns_.push_back(nullptr);
  return static_cast<ConnId>(conns_.size() - 1);
}

ConnId Server::open(const IpPort& remote, std::uint64_t now) {
  const ConnId id = new_id();
  Conn* c = new Conn;
  c->id = id;
  c->addr = remote;
  c->created = now;
  conns_[id] = c;
  ++live_;
  count(Counter::accepts);
  std::uint8_t frame[kServerKeyFrameLen];
  enqueue_ctrl(*c, frame, encode_server_key(frame, cfg_.public_key));
  return id;
}

void Server::fail(Conn& c, CloseReason r, Counter k) {
  if (c.state == State::kClosed) return;
  count(k);
  unregister(c, 0);
  c.state = State::kClosed;
  events_.close(c.id, r);
}

std::uint64_t Server::receive(ConnId id, std::span<const std::uint8_t> bytes, std::uint64_t now) {
  Conn* cp = get(id);
  if (!cp || cp->state == State::kClosed) return 0;
  Conn& c = *cp;
  if (c.state == State::kAdmitting) {
    if (c.held.size() + bytes.size() > kMaxHeldWhileAdmitting) {
      fail(c, CloseReason::kBadFrame, Counter::bad_frames);
      return 0;
    }
    c.held.append(reinterpret_cast<const char*>(bytes.data()), bytes.size());
    return 0;
  }
  const std::size_t total = bytes.size();
  const std::uint8_t* p = bytes.data();
  std::size_t left = bytes.size();

  auto limit_for = [](FrameType t) -> std::size_t {
    return t == FrameType::kClientInfo ? std::min(kMaxInfoLen, std::size_t{kMaxFramePayload})
                                       : kMaxFramePayload;
  };

  // 1. finish a frame carried over from the last call
  if (c.rx) {
    Buf* b = c.rx;
    if (b->len < kHeaderLen) {
      std::size_t take = std::min(left, kHeaderLen - b->len);
      std::memcpy(b->data() + b->len, p, take);
      b->len += static_cast<std::uint32_t>(take);
      p += take;
      left -= take;
      if (b->len < kHeaderLen) return 0;
      Header h = get_header(b->data());
      if (h.length > limit_for(h.type)) {
        fail(c, CloseReason::kBadFrame, Counter::bad_frames);
        return 0;
      }
      if (kHeaderLen + h.length > b->cap) {
        Buf* big = pool_.get(kHeaderLen + h.length);
        if (!big) {
          fail(c, CloseReason::kNoMemory, Counter::drop_no_memory);
          return 0;
        }
        std::memcpy(big->data(), b->data(), kHeaderLen);
        big->len = kHeaderLen;
        pool_.put(b);
        c.rx = b = big;
      }
    }
    Header h = get_header(b->data());
    const std::size_t want = kHeaderLen + h.length - b->len;
    const std::size_t take = std::min(left, want);
    std::memcpy(b->data() + b->len, p, take);
    b->len += static_cast<std::uint32_t>(take);
    p += take;
    left -= take;
    if (take < want) return 0;
    c.rx = nullptr;
    handle_frame(c, h.type, {b->data() + kHeaderLen, h.length}, now);
    pool_.put(b);
  }

  // 2. whole frames in place, then keep a partial tail
  while (left > 0 && c.state != State::kClosed) {
    if (c.state == State::kAdmitting) {
      c.held.append(reinterpret_cast<const char*>(p), left);
      left = 0;
      break;
    }
    // A partial header or frame waits in a buffer sized for what is known
    // of it (the header, then the whole frame).
    auto keep_partial = [&](std::size_t room) {
      Buf* b = pool_.get(room);
      if (!b) {
        fail(c, CloseReason::kNoMemory, Counter::drop_no_memory);
        return;
      }
      std::memcpy(b->data(), p, left);
      b->len = static_cast<std::uint32_t>(left);
      c.rx = b;
      left = 0;
    };
    if (left < kHeaderLen) {
      keep_partial(kHeaderLen);
      break;
    }
    Header h = get_header(p);
    if (h.length > limit_for(h.type)) {
      fail(c, CloseReason::kBadFrame, Counter::bad_frames);
      break;
    }
    if (left < kHeaderLen + h.length) {
      keep_partial(kHeaderLen + h.length);
      break;
    }
    handle_frame(c, h.type, {p + kHeaderLen, h.length}, now);
    p += kHeaderLen + h.length;
    left -= kHeaderLen + h.length;
  }

  // 3. the rate limit: pay for what was read, pause while in debt
  if (cfg_.rate_bytes_per_second == 0 || c.mesh || c.state == State::kClosed) return 0;
  const double rate = cfg_.rate_bytes_per_second;
  const double burst = std::max<double>(cfg_.rate_burst_bytes, rate / 10);
  if (c.tokens_at == 0) {
    c.tokens = burst;
  } else {
    c.tokens = std::min(burst, c.tokens + rate * static_cast<double>(now - c.tokens_at) / 1e9);
  }
  c.tokens_at = now;
  c.tokens -= static_cast<double>(total);
  if (c.tokens >= 0) return 0;
  count(Counter::rate_limited);
  return now + static_cast<std::uint64_t>(-c.tokens / rate * 1e9) + 1;
}

void Server::handle_frame(Conn& c, FrameType t, std::span<const std::uint8_t> payload,
                          std::uint64_t now) {
  if (c.state == State::kAwaitInfo) {
    if (t != FrameType::kClientInfo) {
      fail(c, CloseReason::kHandshakeFailed, Counter::handshake_failures);
      return;
    }
    handle_client_info(c, payload, now);
    return;
  }
  switch (t) {
    case FrameType::kSendPacket:
      handle_send(c, payload, now);
      return;
    case FrameType::kPing: {
      if (payload.size() != 8) {
        fail(c, CloseReason::kBadFrame, Counter::bad_frames);
        return;
      }
      if (c.ctrl.size() >= kMaxPongBacklog) {
        count(Counter::pongs_dropped);
        return;
      }
      std::uint8_t data[8];
      std::memcpy(data, payload.data(), 8);
      std::uint8_t frame[kPingFrameLen];
      enqueue_ctrl(c, frame, encode_ping(frame, FrameType::kPong, data));
      count(Counter::pings);
      return;
    }
    case FrameType::kNotePreferred:
      if (!payload.empty()) {
        c.preferred = payload[0] != 0;
        count(Counter::home_changes);
      }
      return;
    case FrameType::kWatchConns:
      if (!c.mesh) {
        fail(c, CloseReason::kNotPermitted, Counter::not_permitted);
        return;
      }
      handle_watch(c);
      return;
    case FrameType::kClosePeer: {
      if (!c.mesh) {
        fail(c, CloseReason::kNotPermitted, Counter::not_permitted);
        return;
      }
      if (payload.size() != kKeyLen) {
        fail(c, CloseReason::kBadFrame, Counter::bad_frames);
        return;
      }
      Key k;
      std::memcpy(k.data(), payload.data(), kKeyLen);
      if (clients_.count(k)) close_peer(k);
      else events_.close_peer_elsewhere(k);
      return;
    }
    case FrameType::kForwardPacket: {
      if (!c.mesh) {
        fail(c, CloseReason::kNotPermitted, Counter::not_permitted);
        return;
      }
      if (payload.size() < 2 * kKeyLen || payload.size() - 2 * kKeyLen > kMaxPacketSize) {
        fail(c, CloseReason::kBadFrame, Counter::bad_frames);
        return;
      }
      Key src, dst;
      std::memcpy(src.data(), payload.data(), kKeyLen);
      std::memcpy(dst.data(), payload.data() + kKeyLen, kKeyLen);
      deliver(src, dst, payload.subspan(2 * kKeyLen), now);
      return;
    }
    case FrameType::kPong:
    case FrameType::kKeepAlive:
      return;
    default:
      // Unknown types, and known ones that only servers send: skipped, as derper does.
      count(Counter::unknown_frames);
      return;
  }
}

void Server::handle_client_info(Conn& c, std::span<const std::uint8_t> payload,
                                std::uint64_t now) {
  Key client;
  if (!open_client_info(payload, cfg_.private_key, client, c.info)) {
    fail(c, CloseReason::kHandshakeFailed, Counter::handshake_failures);
    return;
  }
  c.key = client;
  c.prober = c.info.is_prober;
  c.mesh = cfg_.mesh_key && c.info.mesh_key &&
           crypto::ct_equal(cfg_.mesh_key->data(), c.info.mesh_key->data(), kKeyLen);
  if (c.mesh) {
    finish_admission(c, now);
    return;
  }
  switch (events_.admit(c.id, client, c.info, c.addr)) {
    case Admission::kAllow:
      finish_admission(c, now);
      return;
    case Admission::kDeny:
      fail(c, CloseReason::kDenied, Counter::admission_denied);
      return;
    case Admission::kPending:
      c.state = State::kAdmitting;
      return;
  }
}

void Server::admitted(ConnId id, bool allow, std::uint64_t now) {
  Conn* cp = get(id);
  if (!cp || cp->state != State::kAdmitting) return;
  if (!allow) {
    fail(*cp, CloseReason::kDenied, Counter::admission_denied);
    return;
  }
  finish_admission(*cp, now);
  if (!cp->held.empty()) {
    std::string held;
    held.swap(cp->held);
    receive(id, {reinterpret_cast<const std::uint8_t*>(held.data()), held.size()}, now);
  }
}

std::uint8_t Server::present_flags(const Conn& c) const noexcept {
  std::uint8_t f = kPresentIsRegular;
  if (c.mesh) f = kPresentIsMeshPeer;
  if (c.prober) f |= kPresentIsProber;
  return f;
}

void Server::finish_admission(Conn& c, std::uint64_t now) {
  std::uint8_t frame[kServerInfoFrameMax];
  const std::size_t n = seal_server_info(frame, cfg_.private_key, c.key,
                                         cfg_.rate_bytes_per_second, cfg_.rate_burst_bytes);
  if (n == 0) {  // a low-order client key: no shared secret
    fail(c, CloseReason::kHandshakeFailed, Counter::handshake_failures);
    return;
  }
  enqueue_ctrl(c, frame, n);
  c.state = State::kActive;
  c.next_keepalive = next_keepalive(now);
  c.gone_tokens = cfg_.peer_gone_burst;
  c.gone_at = now;
  count(Counter::handshakes);
  ClientSet& set = clients_[c.key];
  set.conns.push_back(c.id);
  set.superseded = false;
  present_to_watchers(c.key, c.addr, present_flags(c));
  events_.local_peer(c.key, c.addr, present_flags(c), true);
}

void Server::handle_send(Conn& c, std::span<const std::uint8_t> payload, std::uint64_t now) {
  if (payload.size() < kKeyLen || payload.size() - kKeyLen > kMaxPacketSize) {
    fail(c, CloseReason::kBadFrame, Counter::bad_frames);
    return;
  }
  Key dst;
  std::memcpy(dst.data(), payload.data(), kKeyLen);
  const auto data = payload.subspan(kKeyLen);
  count(Counter::packets_recv);
  count(Counter::bytes_recv, data.size());
  if (auto it = clients_.find(dst); it != clients_.end()) {
    if (it->second.superseded && forward_to_sibling(c.key, dst, data)) return;
    Conn& d = *conns_[it->second.conns.back()];
    c.tally.note(kLocalRoute, dst);
    d.tally.note(kLocalRoute, c.key);
    enqueue_packet(d, c.key, data);
    note_sent_to(d, c.key);
    return;
  }
  if (auto it = remote_.find(dst); it != remote_.end() && !it->second.empty()) {
    count(Counter::packets_forwarded_out);
    const Route r = it->second.back().route;
    c.tally.note(r, dst);
    events_.forward(r, c.key, dst, data);
    return;
  }
  const bool disco = is_disco(data);
  count(disco ? Counter::drop_unknown_dest_disco : Counter::drop_unknown_dest);
  if (!disco) return;
  // Tell the sender its disco peer is not here so it stops waiting on this
  // relay; limited per client so a flood cannot turn into a reply flood.
  const double rate = 1e9 / static_cast<double>(cfg_.peer_gone_interval_ns);
  c.gone_tokens = std::min<double>(cfg_.peer_gone_burst,
                                   c.gone_tokens + rate * static_cast<double>(now - c.gone_at) / 1e9);
  c.gone_at = now;
  if (c.gone_tokens < 1) {
    count(Counter::peer_gone_limited);
    return;
  }
  c.gone_tokens -= 1;
  std::uint8_t frame[kPeerGoneFrameLen];
  enqueue_ctrl(c, frame, encode_peer_gone(frame, dst, PeerGoneReason::kNotHere));
  count(Counter::peer_gone_not_here);
}

bool Server::deliver(const Key& src, const Key& dst, std::span<const std::uint8_t> data,
                     std::uint64_t, bool to_sibling, Route from) {
  auto it = clients_.find(dst);
  if (it == clients_.end() || (to_sibling && it->second.superseded)) {
    if (to_sibling && forward_to_sibling(src, dst, data)) return true;
    if (it == clients_.end()) {
      count(Counter::drop_unknown_dest);
      return false;
    }
  }
  count(Counter::packets_forwarded_in);
  Conn& d = *conns_[it->second.conns.back()];
  d.tally.note(from, src);
  enqueue_packet(d, src, data);
  note_sent_to(d, src);
  return true;
}

bool Server::forward_to_sibling(const Key& src, const Key& dst, std::span<const std::uint8_t> data) {
  auto r = remote_.find(dst);
  if (r == remote_.end()) return false;
  for (auto rr = r->second.rbegin(); rr != r->second.rend(); ++rr) {
    if (!rr->sibling) continue;
    count(Counter::packets_forwarded_out);
    events_.forward(rr->route, src, dst, data);
    return true;
  }
  return false;
}

void Server::note_sent_to(Conn& d, const Key& src) {
  if (d.has_last_src && d.last_src == src) return;
  sent_to_[src].insert(d.key);
  d.last_src = src;
  d.has_last_src = true;
}

void Server::enqueue_packet(Conn& d, const Key& src, std::span<const std::uint8_t> data) {
  Buf* b = pool_.get(kHeaderLen + kKeyLen + data.size());
  if (!b) {
    count(Counter::drop_no_memory);
    return;
  }
  b->len = static_cast<std::uint32_t>(encode_packet(b->data(), FrameType::kRecvPacket, src, data));
  auto push = [&](auto& queue, std::size_t depth) {
    if (queue.count >= depth) {
      events_.make_room(d.id);  // may take the queues (output() and sent() on d)
      if (queue.count >= depth) {
        pool_.put(queue.pop());
        count(Counter::drop_queue_full);
      }
    }
    queue.push(b);
  };
  if (is_disco(data)) push(d.disco, cfg_.disco_queue_depth);
  else push(d.pkts, cfg_.queue_depth);
  count(Counter::packets_sent);
  count(Counter::bytes_sent, data.size());
  note_output(d);
}

void Server::enqueue_ctrl(Conn& c, const std::uint8_t* frame, std::size_t n) {
  c.ctrl.append(reinterpret_cast<const char*>(frame), n);
  note_output(c);
}

void Server::send_ctrl(ConnId id, std::span<const std::uint8_t> frame) {
  Conn* c = get(id);
  if (c && c->state == State::kActive) enqueue_ctrl(*c, frame.data(), frame.size());
}

void Server::note_output(Conn& c) {
  // Only the transition from idle asks the I/O layer to write; while a write
  // is in flight the I/O layer comes back through sent()/has_output().
  if (c.write_wait_since == 0) {
    c.write_wait_since = 1;  // marked; stamped with a real time at the next tick/sent
    events_.want_write(c.id);
  }
}

bool Server::has_output(ConnId id) const noexcept {
  const Conn* c = get(id);
  if (!c) return false;
  return !c->ctrl.empty() || !c->ctrl_inflight.empty() || c->n_inflight || !c->pkts.empty() ||
         !c->disco.empty();
}

std::size_t Server::output(ConnId id, iovec* iov, std::size_t max) {
  Conn* cp = get(id);
  if (!cp || max == 0) return 0;
  Conn& c = *cp;
  if (c.ctrl_inflight.empty() && c.n_inflight == 0) {
    c.ctrl_inflight.swap(c.ctrl);
    c.inflight_off = 0;
    // Disco first: path discovery is latency-sensitive and small.
    while (!c.disco.empty()) c.inflight[c.n_inflight++] = c.disco.pop();
    while (!c.pkts.empty()) c.inflight[c.n_inflight++] = c.pkts.pop();
  }
  std::size_t n = 0;
  std::size_t skip = c.inflight_off;
  if (!c.ctrl_inflight.empty()) {
    if (skip < c.ctrl_inflight.size()) {
      iov[n].iov_base = c.ctrl_inflight.data() + skip;
      iov[n].iov_len = c.ctrl_inflight.size() - skip;
      ++n;
      skip = 0;
    } else {
      skip -= c.ctrl_inflight.size();
    }
  }
  for (std::size_t i = 0; i < c.n_inflight && n < max; ++i) {
    Buf* b = c.inflight[i];
    if (skip >= b->len) {
      skip -= b->len;
      continue;
    }
    iov[n].iov_base = b->data() + skip;
    iov[n].iov_len = b->len - skip;
    skip = 0;
    ++n;
  }
  return n;
}

void Server::sent(ConnId id, std::size_t bytes, std::uint64_t now) {
  Conn* cp = get(id);
  if (!cp) return;
  Conn& c = *cp;
  c.inflight_off += bytes;
  // release what is fully written
  if (!c.ctrl_inflight.empty()) {
    if (c.inflight_off < c.ctrl_inflight.size()) {
      c.write_wait_since = now;
      return;
    }
    c.inflight_off -= c.ctrl_inflight.size();
    c.ctrl_inflight.clear();
    // Idle connections should not keep a grown buffer around.
    if (c.ctrl_inflight.capacity() > 256) std::string().swap(c.ctrl_inflight);
  }
  std::size_t done = 0;
  while (done < c.n_inflight && c.inflight_off >= c.inflight[done]->len) {
    c.inflight_off -= c.inflight[done]->len;
    pool_.put(c.inflight[done]);
    ++done;
  }
  if (done) {
    std::memmove(c.inflight, c.inflight + done, (c.n_inflight - done) * sizeof(Buf*));
    c.n_inflight = static_cast<std::uint8_t>(c.n_inflight - done);
  }
  if (c.n_inflight == 0 && c.ctrl.empty() && c.pkts.empty() && c.disco.empty()) {
    c.write_wait_since = 0;
    if (c.ctrl.capacity() > 256) std::string().swap(c.ctrl);
  } else {
    c.write_wait_since = now;
  }
}

void Server::tick(std::uint64_t now) {
  std::uint8_t frame[kHeaderLen];
  for (Conn* c : conns_) {
    if (!c || c->state == State::kClosed) continue;
    if (c->write_wait_since == 1) c->write_wait_since = now;
    if (c->state == State::kAwaitInfo || c->state == State::kAdmitting) {
      if (now > c->created && now - c->created > cfg_.handshake_timeout_ns)
        fail(*c, CloseReason::kHandshakeTimeout, Counter::handshake_timeouts);
      continue;
    }
    // Times come from the caller's clock reads, which may be slightly out of
    // order: compare without wrapping.
    if (c->write_wait_since && now > c->write_wait_since &&
        now - c->write_wait_since > cfg_.write_timeout_ns) {
      fail(*c, CloseReason::kWriteTimeout, Counter::write_timeouts);
      continue;
    }
    if (now >= c->next_keepalive) {
      enqueue_ctrl(*c, frame, encode_keepalive(frame));
      count(Counter::keepalives);
      c->next_keepalive = next_keepalive(now);
    }
  }
}

void Server::closed(ConnId id, std::uint64_t now) {
  Conn* c = get(id);
  if (!c) return;
  unregister(*c, now);
  free_queues(*c);
  delete c;
  conns_[id] = nullptr;
  free_ids_.push_back(id);
  --live_;
}

void Server::free_queues(Conn& c) {
  pool_.put(c.rx);
  c.rx = nullptr;
  while (!c.pkts.empty()) pool_.put(c.pkts.pop());
  while (!c.disco.empty()) pool_.put(c.disco.pop());
  for (std::size_t i = 0; i < c.n_inflight; ++i) pool_.put(c.inflight[i]);
  c.n_inflight = 0;
}

void Server::unregister(Conn& c, std::uint64_t) {
  if (c.state != State::kActive) return;
  c.state = State::kClosed;
  if (c.watcher) std::erase(watchers_, c.id);
  auto it = clients_.find(c.key);
  if (it == clients_.end()) return;
  auto& v = it->second.conns;
  std::erase(v, c.id);
  if (!v.empty()) return;
  clients_.erase(it);
  peer_gone_to_watchers(c.key);
  events_.local_peer(c.key, c.addr, 0, false);
  if (remote_.find(c.key) == remote_.end()) notify_senders_gone(c.key);
}

void Server::notify_senders_gone(const Key& key) {
  auto it = sent_to_.find(key);
  if (it == sent_to_.end()) return;
  std::uint8_t frame[kPeerGoneFrameLen];
  encode_peer_gone(frame, key, PeerGoneReason::kDisconnected);
  for (const Key& dst : it->second) {
    auto d = clients_.find(dst);
    if (d == clients_.end()) continue;
    for (ConnId id : d->second.conns) {
      Conn& dc = *conns_[id];
      enqueue_ctrl(dc, frame, kPeerGoneFrameLen);
      if (dc.has_last_src && dc.last_src == key) dc.has_last_src = false;
      count(Counter::peer_gone_disconnected);
    }
  }
  sent_to_.erase(it);
}

void Server::peer_gone_to_watchers(const Key& key) {
  std::uint8_t frame[kPeerGoneFrameLen];
  encode_peer_gone(frame, key, PeerGoneReason::kDisconnected);
  for (ConnId w : watchers_) enqueue_ctrl(*conns_[w], frame, kPeerGoneFrameLen);
}

void Server::present_to_watchers(const Key& key, const IpPort& addr, std::uint8_t flags) {
  std::uint8_t frame[kPeerPresentFrameLen];
  encode_peer_present(frame, key, addr, flags);
  for (ConnId w : watchers_) {
    enqueue_ctrl(*conns_[w], frame, kPeerPresentFrameLen);
    count(Counter::peer_present);
  }
}

void Server::handle_watch(Conn& c) {
  if (c.watcher) return;
  c.watcher = true;
  watchers_.push_back(c.id);
  // Everyone connected now, then changes as they happen.
  std::uint8_t frame[kPeerPresentFrameLen];
  for (const auto& [key, set] : clients_) {
    for (ConnId id : set.conns) {
      const Conn& o = *conns_[id];
      enqueue_ctrl(c, frame, encode_peer_present(frame, key, o.addr, present_flags(o)));
      count(Counter::peer_present);
    }
  }
  for (const auto& [key, routes] : remote_) {
    for (const RemoteRoute& r : routes) {
      if (!r.sibling || clients_.count(key)) continue;
      enqueue_ctrl(c, frame, encode_peer_present(frame, key, r.addr, r.flags));
      count(Counter::peer_present);
      break;
    }
  }
}

void Server::add_remote(const Key& key, Route route, bool sibling, const IpPort& addr,
                        std::uint8_t flags, std::uint64_t) {
  auto& v = remote_[key];
  std::erase_if(v, [&](const RemoteRoute& r) { return r.route == route; });
  v.push_back(RemoteRoute{route, sibling, addr, flags});
  if (!sibling) return;
  if (auto it = clients_.find(key); it != clients_.end()) it->second.superseded = true;
  else present_to_watchers(key, addr, flags);
}

void Server::remove_remote(const Key& key, Route route, std::uint64_t) {
  auto it = remote_.find(key);
  if (it == remote_.end()) return;
  bool was_sibling = false;
  std::erase_if(it->second, [&](const RemoteRoute& r) {
    if (r.route != route) return false;
    was_sibling = r.sibling;
    return true;
  });
  if (!it->second.empty()) return;
  remote_.erase(it);
  if (auto c = clients_.find(key); c != clients_.end()) {
    c->second.superseded = false;
    return;
  }
  if (was_sibling) peer_gone_to_watchers(key);
  notify_senders_gone(key);
}

void Server::remove_route(Route route, std::uint64_t now) {
  std::vector<Key> keys;
  for (const auto& [key, routes] : remote_)
    for (const RemoteRoute& r : routes)
      if (r.route == route) keys.push_back(key);
  for (const Key& k : keys) remove_remote(k, route, now);
}

void Server::close_peer(const Key& key) {
  auto it = clients_.find(key);
  if (it == clients_.end()) return;
  const std::vector<ConnId> ids = it->second.conns;
  for (ConnId id : ids) fail(*conns_[id], CloseReason::kClosedByMesh, Counter::not_permitted);
}

bool Server::movable(ConnId id) const {
  const Conn* c = get(id);
  if (!c || c->state != State::kActive || c->mesh || c->watcher) return false;
  auto it = clients_.find(c->key);
  return it != clients_.end() && it->second.conns.size() == 1 && !remote_.count(c->key);
}

RouteTally::Window Server::roll_tally(ConnId id) noexcept {
  Conn* c = get(id);
  return c ? c->tally.roll(c->key) : RouteTally::Window{};
}

void Server::detach(ConnId id, Route to, MovedClient& out) {
  Conn& c = *conns_[id];
  out.key = c.key;
  out.addr = c.addr;
  out.info = c.info;
  out.prober = c.prober;
  out.preferred = c.preferred;
  out.created = c.created;
  out.next_keepalive = c.next_keepalive;
  out.tokens = c.tokens;
  out.tokens_at = c.tokens_at;
  out.gone_tokens = c.gone_tokens;
  out.gone_at = c.gone_at;
  if (c.rx) out.rx.assign(reinterpret_cast<const char*>(c.rx->data()), c.rx->len);
  // What output() handed out and sent() has not covered yet goes first
  // (the I/O layer has none when it moves a connection: it reports every
  // byte it takes), then the control frames, then the queues.
  std::size_t skip = c.inflight_off;
  if (skip < c.ctrl_inflight.size()) out.ctrl.append(c.ctrl_inflight, skip);
  skip = skip > c.ctrl_inflight.size() ? skip - c.ctrl_inflight.size() : 0;
  for (std::size_t i = 0; i < c.n_inflight; ++i) {
    Buf* b = c.inflight[i];
    if (skip >= b->len) {
      skip -= b->len;
      continue;
    }
    out.ctrl.append(reinterpret_cast<const char*>(b->data()) + skip, b->len - skip);
    skip = 0;
  }
  out.ctrl += c.ctrl;
  auto take = [&](auto& ring, std::vector<std::string>& to_list) {
    while (!ring.empty()) {
      Buf* b = ring.pop();
      to_list.emplace_back(reinterpret_cast<const char*>(b->data()), b->len);
      pool_.put(b);
    }
  };
  take(c.pkts, out.pkts);
  take(c.disco, out.disco);
  // The keys it heard from here go with it (sent_to_ is keyed by sender: a
  // walk, but a move is rare: one per connection per --migrate-hold).
  for (auto it = sent_to_.begin(); it != sent_to_.end();) {
    if (it->second.erase(c.key) != 0) out.senders.push_back(it->first);
    it = it->second.empty() ? sent_to_.erase(it) : std::next(it);
  }
  free_queues(c);
  clients_.erase(c.key);
  if (c.watcher) std::erase(watchers_, c.id);
  remote_[c.key].push_back(RemoteRoute{to, true, c.addr, present_flags(c)});
  delete &c;
  conns_[id] = nullptr;
  free_ids_.push_back(id);
  --live_;
}

ConnId Server::adopt(MovedClient&& m, Route from, std::uint64_t now) {
  const ConnId id = new_id();
  Conn* c = new Conn;
  c->id = id;
  c->state = State::kActive;
  c->key = m.key;
  c->addr = m.addr;
  c->info = std::move(m.info);
  c->prober = m.prober;
  c->preferred = m.preferred;
  c->created = m.created;
  c->next_keepalive = m.next_keepalive;
  c->tokens = m.tokens;
  c->tokens_at = m.tokens_at;
  c->gone_tokens = m.gone_tokens;
  c->gone_at = m.gone_at;
  conns_[id] = c;
  ++live_;
  bool rx_lost = false;
  if (!m.rx.empty()) {
    // Room for the whole frame once its header is known, as receive() keeps it.
    std::size_t need = kHeaderLen;
    if (m.rx.size() >= kHeaderLen)
      need += get_header(reinterpret_cast<const std::uint8_t*>(m.rx.data())).length;
    if (Buf* b = pool_.get(std::max(need, m.rx.size()))) {
      std::memcpy(b->data(), m.rx.data(), m.rx.size());
      b->len = static_cast<std::uint32_t>(m.rx.size());
      c->rx = b;
    } else {
      rx_lost = true;
    }
  }
  c->ctrl = std::move(m.ctrl);
  auto put = [&](auto& ring, const std::vector<std::string>& frames) {
    for (const std::string& f : frames) {
      Buf* b = pool_.get(f.size());
      if (!b) {
        count(Counter::drop_no_memory);
        continue;
      }
      std::memcpy(b->data(), f.data(), f.size());
      b->len = static_cast<std::uint32_t>(f.size());
      ring.push(b);
    }
  };
  put(c->pkts, m.pkts);
  put(c->disco, m.disco);
  for (const Key& src : m.senders) sent_to_[src].insert(c->key);
  if (has_output(id)) c->write_wait_since = now;
  ClientSet& set = clients_[c->key];
  set.conns.push_back(id);
  set.superseded = false;
  remove_remote(c->key, from, now);  // the key is a client here now: nobody hears of it
  // Without its partial frame the stream cannot go on: it ends as any
  // connection does (the caller sees !is_active and closes the socket).
  if (rx_lost) fail(*c, CloseReason::kNoMemory, Counter::drop_no_memory);
  return id;
}

void Server::move_remote(const Key& key, Route from, Route to, const IpPort& addr, std::uint8_t flags) {
  auto& v = remote_[key];
  std::erase_if(v, [&](const RemoteRoute& r) { return r.route == to; });
  for (RemoteRoute& r : v)
    if (r.route == from) {
      r = RemoteRoute{to, true, addr, flags};
      return;
    }
  v.push_back(RemoteRoute{to, true, addr, flags});
}

bool Server::is_connected(const Key& key) const { return clients_.count(key) != 0; }
bool Server::is_active(ConnId id) const noexcept {
  const Conn* c = get(id);
  return c && c->state == State::kActive;
}
bool Server::is_mesh(ConnId id) const noexcept {
  const Conn* c = get(id);
  return c && c->mesh;
}
const Key* Server::client_key(ConnId id) const noexcept {
  const Conn* c = get(id);
  return c && c->state == State::kActive ? &c->key : nullptr;
}

}  // namespace moongate::derp
