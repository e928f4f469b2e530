// The moon's receive path (flow in moon.h).
#include "zerotier/moon.h"

#include <lz4.h>

#include <cstring>
#include <stdexcept>

namespace moongate::zerotier {

namespace {

std::uint64_t random_u64() noexcept {
  std::uint64_t v;
  crypto::random_bytes(&v, sizeof v);
  return v;
}

}  // namespace

Moon::Moon(Identity self, World world, const MoonConfig& config)
    : self_(std::move(self)),
      world_(std::move(world)),
      config_(config),
      peers_(config.max_peers, "zerotier peer table", PeerTraits{random_u64()}),
      verifier_(config.verify),
      multicast_(config.max_multicast_groups),
      reassembler_(std::make_unique<Reassembler>()),
      pairs_(std::make_unique<std::array<PairStamp, kPairStamps>>()),
      rx_(new std::uint8_t[kMaxPacket]),
      tx_(new std::uint8_t[kMaxPacket]),
      lz4_(new std::uint8_t[kMaxPacket]) {
  if (!self_.has_secret) throw std::invalid_argument("the moon's identity needs its secret key");
  if (!world_.verify()) throw std::invalid_argument("the World's signature does not verify");
  world_bytes_ = world_.serialize();
  if (world_bytes_.empty() || world_bytes_.size() > kMaxPacket - 200)
    throw std::invalid_argument("the World is too large to send");
  if (config_.max_hops > 7) config_.max_hops = 7;
  if (config_.mtu < 576 || config_.mtu > kMaxDatagram) throw std::invalid_argument("mtu out of range");
}

Moon::~Moon() {
  // Slots freed by erase() are overwritten with Slot{}; the live ones hold
  // peer keys until here. for_each is const-only, hence the cast: the table
  // is being destroyed and nothing reads it afterwards.
  peers_.for_each([](const Peer& p) { crypto::secure_wipe(const_cast<Peer&>(p).key.data(), kPeerKeyLength); });
}

void Moon::reassembled(Reassembler::Result r, std::size_t n, const Endpoint& from, std::uint64_t now_ms,
                       TxBatch& out) noexcept {
  switch (r) {
    case Reassembler::Result::kComplete:
      ++counters_.reassembled;
      to_us(rx_.get(), n, from, now_ms, out);
      return;
    case Reassembler::Result::kEvicted:
      ++counters_.drop_reassembly_evicted;
      return;
    case Reassembler::Result::kIncomplete:
      return;
    case Reassembler::Result::kTooBig:
      ++counters_.drop_too_big;
      return;
    case Reassembler::Result::kMalformed:
      ++counters_.drop_bad_fragment;
      return;
  }
}

void Moon::receive(std::span<const std::uint8_t> d, const Endpoint& from, std::uint64_t now_ms,
                   TxBatch& out) noexcept {
  ++counters_.rx_datagrams;
  if (d.size() > kMaxDatagram) {
    ++counters_.drop_too_big;
    return;
  }
  if (is_fragment(d)) {
    ++counters_.rx_fragments;
    if (d.size() <= kFragHeaderLength) {
      ++counters_.drop_too_short;
      return;
    }
    const FragmentView f{d.data(), d.size()};
    if (f.dest() != self_.address) {
      relay(d, f.dest(), 0, true, from, now_ms, out);
      return;
    }
    std::size_t n = 0;
    const Reassembler::Result r = reassembler_->add_fragment(d, now_ms, rx_.get(), &n);  // sets n
    reassembled(r, n, from, now_ms, out);
    return;
  }
  if (d.size() < kMinPacketLength) {
    ++counters_.drop_too_short;
    return;
  }
  const PacketView v{d.data(), d.size()};
  if (v.dest() != self_.address) {
    relay(d, v.dest(), v.source(), false, from, now_ms, out);
    return;
  }
  if (v.fragmented()) {
    std::size_t n = 0;
    const Reassembler::Result r = reassembler_->add_head(d, now_ms, rx_.get(), &n);  // sets n
    reassembled(r, n, from, now_ms, out);
    return;
  }
  std::memcpy(rx_.get(), d.data(), d.size());
  to_us(rx_.get(), d.size(), from, now_ms, out);
}

void Moon::relay(std::span<const std::uint8_t> d, Address dest, Address source, bool fragment,
                 const Endpoint& from, std::uint64_t now_ms, TxBatch& out) noexcept {
  if (source == self_.address) {
    ++counters_.drop_loop;
    return;
  }
  const Peer* to = peers_.find(dest);
  if (!to || to->path.family == 0) {
    ++counters_.drop_unknown_destination;
    return;
  }
  if (to->path == from) {  // would bounce straight back where it came from
    ++counters_.drop_loop;
    return;
  }
  const unsigned hops = fragment ? (d[kFragIdxHops] & kHopsMask) : (d[kIdxFlags] & kHopsMask);
  if (hops >= config_.max_hops) {
    ++counters_.drop_hop_limit;
    return;
  }
  Datagram* g = out.push();
  if (!g) {
    ++counters_.drop_tx_full;
    return;
  }
  std::memcpy(g->bytes.data(), d.data(), d.size());
  g->len = static_cast<std::uint16_t>(d.size());
  g->to = to->path;
  increment_hops(std::span<std::uint8_t>(g->bytes.data(), d.size()), config_.max_hops);
  if (fragment) {
    ++counters_.relayed_fragments;
    return;
  }
  ++counters_.relayed;
  if (const Peer* src = peers_.find(source)) rendezvous(*src, *to, now_ms, out);
}

void Moon::rendezvous(const Peer& a, const Peer& b, std::uint64_t now_ms, TxBatch& out) noexcept {
  // Both ends must be reachable over the same family to be introduced.
  if (a.path.family == 0 || a.path.family != b.path.family) return;
  const Address lo = a.address < b.address ? a.address : b.address;
  const Address hi = a.address < b.address ? b.address : a.address;
  // A 4-way set of stamps per hash: the pair's own stamp if present, else
  // the stalest of the four gives way. An evicted pair only costs an early
  // RENDEZVOUS, never a missing one for longer than the interval.
  const std::uint64_t h = (lo * 0x9E3779B97F4A7C15ull) ^ (hi * 0xC2B2AE3D27D4EB4Full);
  PairStamp* set = &(*pairs_)[((h ^ h >> 31) % (pairs_->size() / 4)) * 4];
  PairStamp* slot = &set[0];
  for (int i = 0; i < 4; ++i) {
    if (set[i].a == lo && set[i].b == hi) {
      slot = &set[i];
      break;
    }
    if (set[i].last_ms < slot->last_ms) slot = &set[i];
  }
  PairStamp& st = *slot;
  if (st.a == lo && st.b == hi && now_ms - st.last_ms < config_.rendezvous_interval_ms) return;
  if (out.room() < 2) {
    ++counters_.drop_tx_full;
    return;
  }
  st = PairStamp{lo, hi, now_ms};
  // Each side learns the other's address as the moon sees it.
  const Peer* sides[2][2] = {{&a, &b}, {&b, &a}};
  for (const auto& s : sides) {
    const Peer& to = *s[0];
    const Peer& about = *s[1];
    Writer w = begin(to.address, Verb::kRendezvous);
    w.u8(0);
    w.address(about.address);
    w.u16(about.path.port);
    w.u8(static_cast<std::uint8_t>(about.path.ip_length()));
    w.bytes(about.path.ip.data(), about.path.ip_length());
    if (w.ok() && send(w.size(), to.key.data(), to.path, out)) ++counters_.rendezvous_sent;
  }
}

void Moon::to_us(std::uint8_t* p, std::size_t n, const Endpoint& from, std::uint64_t now_ms,
                 TxBatch& out) noexcept {
  const PacketView v{p, n};
  const CipherSuite suite = v.suite();
  if (suite != CipherSuite::kPoly1305None && suite != CipherSuite::kPoly1305Salsa2012) {
    ++counters_.drop_unsupported_suite;
    return;
  }
  // HELLO travels with suite 0, so its verb byte is readable before the MAC
  // check; its key may not be known yet.
  if (suite == CipherSuite::kPoly1305None && (v.raw_verb() & kVerbMask) == static_cast<std::uint8_t>(Verb::kHello)) {
    hello(p, n, from, now_ms, out);
    return;
  }
  Peer* peer = peers_.find(v.source());
  if (!peer) {
    ++counters_.drop_unknown_source;
    return;
  }
  if (!dearmor(std::span<std::uint8_t>(p, n), peer->key.data())) {
    ++counters_.drop_bad_mac;
    return;
  }
  // The path is learned from HELLOs only (with their timestamp check): any
  // other packet could be a capture replayed from elsewhere to pull the
  // peer's relayed traffic to the replayer. Replies go to the known path.
  peer->last_rx_ms = now_ms;
  std::uint8_t raw = p[kIdxVerb];
  const std::uint64_t pid = v.id();
  const std::uint8_t* payload = p + kIdxPayload;
  std::size_t len = n - kIdxPayload;
  if (raw & kVerbFlagCompressed) {
    // Clients compress a payload (LZ4 block, everything after the verb)
    // when that makes it smaller, e.g. a long MULTICAST_LIKE. Decompressed
    // into its own buffer: the result may be longer than the input.
    const int got = LZ4_decompress_safe(reinterpret_cast<const char*>(payload), reinterpret_cast<char*>(lz4_.get()),
                                        static_cast<int>(len), static_cast<int>(kMaxPacket - kIdxPayload));
    if (got < 0) {
      ++counters_.drop_compressed;
      return;
    }
    payload = lz4_.get();
    len = static_cast<std::size_t>(got);
    raw &= static_cast<std::uint8_t>(~kVerbFlagCompressed);
  }
  switch (static_cast<Verb>(raw & kVerbMask)) {
    case Verb::kWhois:
      whois(*peer, pid, payload, len, out);
      return;
    case Verb::kEcho:
      echo(*peer, pid, payload, len, out);
      return;
    case Verb::kMulticastLike:
      multicast_like(*peer, payload, len, now_ms);
      return;
    case Verb::kMulticastGather:
      multicast_gather(*peer, pid, payload, len, now_ms, out);
      return;
    case Verb::kHello:  // suite 1 HELLO: not how clients send it
    default:
      ++counters_.ignored_verb;
      return;
  }
}

void Moon::hello(std::uint8_t* p, std::size_t n, const Endpoint& from, std::uint64_t now_ms,
                 TxBatch& out) noexcept {
  const PacketView v{p, n};
  Reader r(p + kIdxPayload, n - kIdxPayload);
  const std::uint8_t protocol = r.u8();
  r.u8();   // software major
  r.u8();   // software minor
  r.u16();  // software revision
  const std::uint64_t timestamp = r.u64();
  const Identity id = Identity::parse(r);
  r.endpoint();  // the address the client sent to (it learns its surface from ours)
  r.u64();       // planet world id
  r.u64();       // planet world timestamp
  const std::size_t tail = kIdxPayload + r.pos();
  if (!r.ok() || id.address != v.source()) {
    ++counters_.drop_malformed;
    return;
  }
  if (protocol < kMinProtocolVersion) {
    ++counters_.drop_old_protocol;
    return;
  }

  Peer* peer = peers_.find(id.address);
  if (peer && peer->pub != id.pub) {
    // Someone else claims a known address. Answer only a HELLO that is
    // authentic for the key it carries (so a forger cannot make us send
    // errors to a victim), and only within the verification budget (the
    // agreement is the expensive part).
    if (!verifier_.admit(from, now_ms)) {
      ++counters_.drop_hello_rate_limited;
      return;
    }
    PeerKey k;
    if (!self_.agree(id.pub, k) || !dearmor(std::span<std::uint8_t>(p, n), k.data())) {
      ++counters_.drop_bad_mac;
      return;
    }
    ++counters_.drop_identity_collision;
    Writer w = begin(id.address, Verb::kError);
    w.u8(static_cast<std::uint8_t>(Verb::kHello));
    w.u64(v.id());
    w.u8(static_cast<std::uint8_t>(ErrorCode::kIdentityCollision));
    if (w.ok()) send(w.size(), k.data(), from, out);
    return;
  }
  PeerKey fresh_key;
  if (peer) {
    if (!dearmor(std::span<std::uint8_t>(p, n), peer->key.data())) {
      ++counters_.drop_bad_mac;
      return;
    }
  } else {
    if (!verifier_.admit(from, now_ms)) {
      ++counters_.drop_hello_rate_limited;
      return;
    }
    if (!self_.agree(id.pub, fresh_key)) {
      ++counters_.drop_malformed;
      return;
    }
    // The MAC first: it is cheap next to the hash, and a HELLO that is not
    // authentic for its own key is not worth hashing.
    if (!dearmor(std::span<std::uint8_t>(p, n), fresh_key.data())) {
      ++counters_.drop_bad_mac;
      return;
    }
  }
  const std::uint8_t* key = peer ? peer->key.data() : fresh_key.data();

  // The moon list at the end is encrypted with the plain peer key. A client
  // orbiting us lists our id with the timestamp it has (0 if it only has a
  // seed); an older one gets our World in the reply.
  bool send_world = false;
  if (tail + 2 <= n) {
    crypt_field(std::span<std::uint8_t>(p, n), tail, key);
    Reader m(p + tail, n - tail);
    const std::size_t count = m.u16();
    for (std::size_t i = 0; i < count && m.ok(); ++i) {
      const std::uint8_t type = m.u8();
      const std::uint64_t wid = m.u64();
      const std::uint64_t wts = m.u64();
      if (m.ok() && type == world_.type && wid == world_.id && wts < world_.timestamp) send_world = true;
    }
  }

  if (!peer) {
    Verification ver{};
    ver.address = id.address;
    ver.pub = id.pub;
    std::memcpy(ver.key.data(), fresh_key.data(), kPeerKeyLength);
    ver.from = from;
    ver.hello_id = v.id();
    ver.timestamp = timestamp;
    ver.protocol = protocol;
    ver.send_world = send_world;
    if (config_.defer_verification) {
      // The hash runs on the host's worker; this thread goes on relaying.
      if (deferred_count_ + in_flight_ >= config_.max_deferred || deferred_count_ == deferred_.size()) {
        ++counters_.drop_hello_deferred_full;
      } else {
        deferred_[(deferred_head_ + deferred_count_++) % deferred_.size()] = ver;
        ++counters_.hello_deferred;
      }
    } else {
      ver.valid = verifier_.validate(id);
      admit_peer(ver, now_ms, out);
    }
    crypto::secure_wipe(ver.key.data(), kPeerKeyLength);
    return;
  }
  // A HELLO carries the client's clock. One that is not newer than the last
  // accepted, arriving from another address, is a replay (a capture sent
  // from elsewhere to move the peer's path): refused. From the current path
  // it is harmless (the answer goes where it would go anyway), which also
  // keeps a client whose clock stepped back talking to us.
  if (timestamp <= peer->last_hello_ts && !(from == peer->path)) {
    ++counters_.drop_hello_replay;
    return;
  }
  if (timestamp > peer->last_hello_ts) peer->last_hello_ts = timestamp;
  peer->path = from;
  peer->last_rx_ms = now_ms;
  peer->protocol = protocol;
  answer_hello(*peer, v.id(), timestamp, send_world, from, out);
}

void Moon::admit_peer(const Verification& ver, std::uint64_t now_ms, TxBatch& out) noexcept {
  if (!ver.valid) {
    ++counters_.drop_identity_invalid;
    return;
  }
  Peer* peer = peers_.find(ver.address);
  if (peer && peer->pub != ver.pub) {
    // Another key took the address while this one was being verified.
    ++counters_.drop_identity_collision;
    return;
  }
  if (!peer) {
    Peer fresh;
    fresh.address = ver.address;
    fresh.pub = ver.pub;
    fresh.key = ver.key;
    const auto inserted = peers_.insert(fresh);
    crypto::secure_wipe(fresh.key.data(), kPeerKeyLength);
    if (inserted != decltype(peers_)::InsertResult::kInserted) {
      ++counters_.drop_peer_table_full;
      return;
    }
    ++counters_.hello_new_identity;
    peer = peers_.find(ver.address);
  }
  if (ver.timestamp > peer->last_hello_ts) peer->last_hello_ts = ver.timestamp;
  peer->path = ver.from;
  peer->last_rx_ms = now_ms;
  peer->protocol = ver.protocol;
  answer_hello(*peer, ver.hello_id, ver.timestamp, ver.send_world, ver.from, out);
}

void Moon::answer_hello(const Peer& peer, std::uint64_t hello_id, std::uint64_t timestamp, bool send_world,
                        const Endpoint& to, TxBatch& out) noexcept {
  Writer w = begin_ok(peer.address, Verb::kHello, hello_id);
  w.u64(timestamp);
  w.u8(kProtocolVersion);
  w.u8(kVersionMajor);
  w.u8(kVersionMinor);
  w.u16(kVersionRevision);
  w.endpoint(to);
  w.u16(static_cast<std::uint16_t>(send_world ? world_bytes_.size() : 0));
  if (send_world) w.bytes(world_bytes_.data(), world_bytes_.size());
  if (w.ok() && send(w.size(), peer.key.data(), to, out)) {
    ++counters_.hello_answered;
    if (send_world) ++counters_.world_sent;
  }
}

bool Moon::add_verified_peer(const Identity& id, const Endpoint& path, std::uint64_t now_ms) {
  if (const Peer* known = peers_.find(id.address)) return known->pub == id.pub;
  PeerKey k;
  if (address_reserved(id.address) || !self_.agree(id.pub, k)) return false;
  Peer fresh;
  fresh.address = id.address;
  fresh.pub = id.pub;
  std::memcpy(fresh.key.data(), k.data(), kPeerKeyLength);
  fresh.path = path;
  fresh.last_rx_ms = now_ms;
  const bool ok = peers_.insert(fresh) == decltype(peers_)::InsertResult::kInserted;
  crypto::secure_wipe(fresh.key.data(), kPeerKeyLength);
  return ok;
}

bool Moon::take_job(Job& job) noexcept {
  if (deferred_count_ == 0) return false;
  Verification& v = deferred_[deferred_head_];
  job.run = &Moon::run_verification;
  std::memcpy(job.data.data(), &v, sizeof v);
  crypto::secure_wipe(&v, sizeof v);
  deferred_head_ = (deferred_head_ + 1) % deferred_.size();
  --deferred_count_;
  ++in_flight_;
  return true;
}

void Moon::run_verification(Job& job) noexcept {
  // Runs on the host's worker thread: touches only the job and its own
  // thread's scratch memory (allocated on first use, then reused).
  static thread_local AddressHashScratch scratch;
  Verification v;
  std::memcpy(&v, job.data.data(), sizeof v);
  Identity id;
  id.address = v.address;
  id.pub = v.pub;
  v.valid = id.locally_validate(scratch);
  std::memcpy(job.data.data(), &v, sizeof v);
  crypto::secure_wipe(v.key.data(), kPeerKeyLength);
}

void Moon::finish_job(const Job& job, std::uint64_t now_ms, TxBatch& out) noexcept {
  Verification v;
  std::memcpy(&v, job.data.data(), sizeof v);
  if (in_flight_ > 0) --in_flight_;
  admit_peer(v, now_ms, out);
  crypto::secure_wipe(v.key.data(), kPeerKeyLength);
}

void Moon::whois(const Peer& peer, std::uint64_t pid, const std::uint8_t* payload, std::size_t len,
                 TxBatch& out) noexcept {
  Writer w = begin_ok(peer.address, Verb::kWhois, pid);
  std::size_t found = 0;
  for (std::size_t off = 0; off + kAddressLength <= len; off += kAddressLength) {
    // Keep the answer within one head and a few fragments.
    if (w.size() + kIdentityWireLength > 4 * config_.mtu) break;
    const Address a = load_address(payload + off);
    if (a == self_.address) {
      self_.serialize(w);
      ++found;
    } else if (const Peer* q = peers_.find(a)) {
      w.address(q->address);
      w.u8(0);
      w.bytes(q->pub.data(), q->pub.size());
      w.u8(0);
      ++found;
    }
  }
  // Unknown addresses get no answer, as from a stock root with no upstream.
  if (found > 0 && w.ok() && send(w.size(), peer.key.data(), peer.path, out)) ++counters_.whois_answered;
}

void Moon::echo(const Peer& peer, std::uint64_t pid, const std::uint8_t* payload, std::size_t len,
                TxBatch& out) noexcept {
  Writer w = begin_ok(peer.address, Verb::kEcho, pid);
  w.bytes(payload, len);
  if (!w.ok()) {
    ++counters_.drop_too_big;
    return;
  }
  if (send(w.size(), peer.key.data(), peer.path, out)) ++counters_.echo_answered;
}

void Moon::multicast_like(const Peer& peer, const std::uint8_t* payload, std::size_t len,
                          std::uint64_t now_ms) noexcept {
  // network id(8) MAC(6) ADI(4), repeated.
  for (std::size_t off = 0; off + 18 <= len; off += 18) {
    MulticastGroup g;
    g.network = load_be64(payload + off);
    g.mac = std::uint64_t{load_be16(payload + off + 8)} << 32 | load_be32(payload + off + 10);
    g.adi = load_be32(payload + off + 14);
    if (multicast_.like(g, peer.address, now_ms)) ++counters_.multicast_likes;
  }
}

void Moon::multicast_gather(const Peer& peer, std::uint64_t pid, const std::uint8_t* payload, std::size_t len,
                            std::uint64_t now_ms, TxBatch& out) noexcept {
  // network id(8) MAC(6) ADI(4) flags(1) limit(4) [certificate of membership]
  Reader r(payload, len);
  MulticastGroup g;
  g.network = r.u64();
  const std::uint8_t* mac = r.take(6);
  g.adi = r.u32();
  r.u8();
  const std::uint32_t limit = r.u32();
  if (!r.ok()) {
    ++counters_.drop_malformed;
    return;
  }
  g.mac = std::uint64_t{load_be16(mac)} << 32 | load_be32(mac + 2);
  Address members[MulticastCache::kMembersPerGroup];
  std::uint32_t total = 0;
  const std::size_t n = multicast_.gather(g, peer.address, now_ms, members,
                                          limit < MulticastCache::kMembersPerGroup ? limit : MulticastCache::kMembersPerGroup,
                                          &total);
  Writer w = begin_ok(peer.address, Verb::kMulticastGather, pid);
  w.u64(g.network);
  w.bytes(mac, 6);
  w.u32(g.adi);
  w.u32(total);
  w.u16(static_cast<std::uint16_t>(n));
  for (std::size_t i = 0; i < n; ++i) w.address(members[i]);
  if (w.ok() && send(w.size(), peer.key.data(), peer.path, out)) ++counters_.gathers_answered;
}

Writer Moon::begin(Address dest, Verb verb) noexcept {
  Writer w(tx_.get(), kMaxPacket);
  std::uint8_t* h = w.grow(kIdxPayload);
  write_header(h, random_u64(), dest, self_.address, verb);
  return w;
}

Writer Moon::begin_ok(Address dest, Verb in_re, std::uint64_t in_re_id) noexcept {
  Writer w = begin(dest, Verb::kOk);
  w.u8(static_cast<std::uint8_t>(in_re));
  w.u64(in_re_id);
  return w;
}

bool Moon::send(std::size_t n, const std::uint8_t* key, const Endpoint& to, TxBatch& out) noexcept {
  std::uint8_t* p = tx_.get();
  const std::size_t pieces = n <= config_.mtu ? 1 : 2 + (n - config_.mtu) / (config_.mtu - kFragHeaderLength);
  if (pieces > out.room()) {
    ++counters_.drop_tx_full;
    return false;
  }
  if (n > config_.mtu) p[kIdxFlags] |= kFlagFragmented;  // before armour: it is keyed
  armor(std::span<std::uint8_t>(p, n), key, true);
  return fragment_packet(p, n, config_.mtu, [&](const std::uint8_t* b, std::size_t len) {
    Datagram* g = out.push();
    std::memcpy(g->bytes.data(), b, len);
    g->len = static_cast<std::uint16_t>(len);
    g->to = to;
  });
}

void Moon::tick(std::uint64_t now_ms, TxBatch& out) noexcept {
  static_cast<void>(out);
  counters_.drop_reassembly_expired += reassembler_->expire(now_ms);
  multicast_.expire(now_ms);
  // Forget idle peers, a bounded batch per tick.
  Address idle[256];
  std::size_t k = 0;
  peers_.for_each([&](const Peer& p) {
    if (k < 256 && now_ms - p.last_rx_ms > config_.peer_expire_ms) idle[k++] = p.address;
  });
  for (std::size_t i = 0; i < k; ++i)
    if (const Peer* p = peers_.find(idle[i])) peers_.erase(*p);
  counters_.peers_expired += k;
}

}  // namespace moongate::zerotier
