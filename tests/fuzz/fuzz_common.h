// Shared by the libFuzzer targets and the corpus generator (make_corpus.cc):
// fixed keys, a deterministic CSPRNG, a DeviceHost that records what the
// core asks to send, the scenarios each target starts every input from
// (a responder, an initiator with a handshake in flight, an established
// pair of Transports), the oracles' snapshots, and a naive replay model.
//
// Determinism: every input starts from the same scenario state, built
// after reseed() (and kept across inputs that leave it untouched: Cache,
// PairCache), so ephemeral keys, indices and cookie secrets are the same
// for every input and on every run. That is also what makes the seeds written by
// make_corpus (which builds the same scenarios) valid messages for the
// targets: e.g. the seed response answers exactly the initiation the
// response target's initiator has in flight.
#pragma once

#include <sodium.h>

#include <array>
#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <deque>
#include <memory>
#include <set>
#include <vector>

#include "crypto/aead.h"
#include "crypto/secret.h"
#include "crypto/x25519.h"
#include "tests/support/transport.h"
#include "wireguard/clock.h"
#include "wireguard/cookie.h"
#include "wireguard/device.h"
#include "wireguard/messages.h"
#include "wireguard/peer.h"

namespace moongate::fuzz {

// An oracle violation: libFuzzer catches the abort and saves the input.
[[noreturn]] inline void fail(const char* what) {
  std::fprintf(stderr, "fuzz oracle violated: %s\n", what);
  std::abort();
}
inline void check(bool ok, const char* what) {
  if (!ok) fail(what);
}

// --- deterministic randomness ----------------------------------------------

// libsodium's randombytes is replaceable; each call draws from ChaCha20
// keyed by (seed, call number), so a reseed replays the same stream.
struct RngState {
  std::uint64_t seed = 0;
  std::uint64_t calls = 0;
};
inline RngState& rng_state() {
  static RngState s;
  return s;
}
inline void rng_buf(void* const buf, const std::size_t size) {
  unsigned char key[randombytes_SEEDBYTES] = {};
  RngState& s = rng_state();
  for (int i = 0; i < 8; ++i) {
    key[i] = static_cast<unsigned char>(s.seed >> (8 * i));
    key[8 + i] = static_cast<unsigned char>(s.calls >> (8 * i));
  }
  ++s.calls;
  randombytes_buf_deterministic(buf, size, key);
}
inline std::uint32_t rng_random() {
  std::uint32_t v = 0;
  rng_buf(&v, sizeof v);
  return v;
}
inline const char* rng_name() { return "moongate-fuzz-deterministic"; }

// Must run before the first sodium_init() (crypto/ calls it lazily), which
// Fixture guarantees by being the first thing every target touches.
inline void install_deterministic_rng() {
  static randombytes_implementation impl = {
      .implementation_name = rng_name,
      .random = rng_random,
      .stir = nullptr,
      .uniform = nullptr,  // libsodium derives it from random()
      .buf = rng_buf,
      .close = nullptr,
  };
  if (randombytes_set_implementation(&impl) != 0) fail("randombytes_set_implementation");
  if (sodium_init() < 0) fail("sodium_init");
}

inline void reseed(std::uint64_t seed) {
  rng_state().seed = seed;
  rng_state().calls = 0;
}

// --- fixed identities --------------------------------------------------------

// A initiates, B responds, in every scenario.
struct Fixture {
  crypto::SecretKey priv_a, priv_b;
  crypto::PublicKey pub_a{}, pub_b{};
  wg::Endpoint addr_a, addr_b;
  wg::Instant t0;  // every scenario starts here (ManualClock's defaults)

  Fixture() {
    install_deterministic_rng();
    std::array<std::uint8_t, 32> a{}, b{};
    for (std::size_t i = 0; i < 32; ++i) {
      a[i] = static_cast<std::uint8_t>(0xa0 + i);
      b[i] = static_cast<std::uint8_t>(0xb0 + i);
    }
    priv_a.assign(std::span<const std::uint8_t, 32>(a));
    priv_b.assign(std::span<const std::uint8_t, 32>(b));
    crypto::x25519_clamp(priv_a);
    crypto::x25519_clamp(priv_b);
    crypto::x25519_public(pub_a, priv_a);
    crypto::x25519_public(pub_b, priv_b);
    const std::uint8_t ip_a[4] = {192, 0, 2, 1};
    const std::uint8_t ip_b[4] = {192, 0, 2, 2};
    addr_a = wg::Endpoint::v4(ip_a, 51820);
    addr_b = wg::Endpoint::v4(ip_b, 51821);
    t0 = wg::ManualClock().now();
  }
};
inline const Fixture& fixture() {
  static const Fixture f;
  return f;
}

// Later points of the scenarios: past the responder's initiation flood
// interval and the initiator's REKEY_TIMEOUT rate limit.
inline wg::Instant later(const wg::Instant& t, wg::Nanos d) { return {t.mono + d, t.wall + d}; }

// --- device-level scenarios --------------------------------------------------

// Records every upcall instead of doing I/O.
class RecordingHost final : public wg::DeviceHost {
 public:
  struct Sent {
    bool to_peer = false;  // false: a cookie reply to an unauthenticated sender
    wg::Endpoint to;
    std::vector<std::uint8_t> bytes;
  };
  bool send_handshake(wg::Peer* peer, const wg::Endpoint& to, const std::uint8_t* msg,
                      std::size_t len) override {
    sent.push_back(Sent{peer != nullptr, to, std::vector<std::uint8_t>(msg, msg + len)});
    return true;
  }
  void flush_staged(wg::Peer&, bool) override { ++flushes; }
  void purge_staged(wg::Peer&) override { ++purges; }

  std::vector<Sent> sent;
  unsigned flushes = 0;
  unsigned purges = 0;
};

// One device that knows one peer.
struct DeviceNode {
  DeviceNode(const crypto::SecretKey& priv, const crypto::PublicKey& remote)
      : dev(4, host) {
    dev.set_private_key(priv);
    peer = dev.add_peer(remote);
    if (peer == nullptr) fail("add_peer");
  }
  RecordingHost host;
  wg::Device dev;
  wg::Peer* peer = nullptr;
};

// B, the responder, knowing A.
inline constexpr std::uint64_t kSeedResponder = 0x5eed0001;
struct Responder : DeviceNode {
  Responder() : DeviceNode(fixture().priv_b, fixture().pub_a) {
    // The cookie secret is otherwise drawn at its first use, which would
    // make what an input draws depend on the inputs before it (Cache).
    dev.cookie_checker().rotate_secret(fixture().t0.mono);
  }
};

// A, with an initiation to B in flight: its handshake index is pending.
inline constexpr std::uint64_t kSeedInitiator = 0x5eed0002;
struct Initiator : DeviceNode {
  Initiator() : DeviceNode(fixture().priv_a, fixture().pub_b) {
    peer->endpoint = fixture().addr_b;
    if (dev.initiate_handshake(*peer, fixture().t0) != wg::Drop::kOk) fail("initiate_handshake");
    if (host.sent.size() != 1 || host.sent[0].bytes.size() != wg::kInitiationLen)
      fail("initiator did not send one initiation");
    initiation = host.sent[0].bytes;
    host.sent.clear();
    dev.cookie_checker().rotate_secret(fixture().t0.mono);  // as in Responder
  }
  std::vector<std::uint8_t> initiation;
};

// Setting a scenario up costs a few X25519 operations, more than most
// inputs. A target keeps it while inputs leave it untouched (its oracles
// check exactly that for every refused message) and calls dirty() when one
// was accepted; the next get() then rebuilds it from the seed. Every input
// also draws the same random numbers, whatever came before it.
template <class Scenario>
class Cache {
 public:
  explicit Cache(std::uint64_t seed) : seed_(seed) {}
  Scenario& get() {
    if (scenario_ == nullptr || dirty_) {
      scenario_.reset();
      reseed(seed_);
      scenario_ = std::make_unique<Scenario>();
      dirty_ = false;
    }
    scenario_->host.sent.clear();
    scenario_->host.flushes = 0;
    scenario_->host.purges = 0;
    reseed(seed_ + 1);
    return *scenario_;
  }
  void dirty() { dirty_ = true; }

 private:
  std::uint64_t seed_;
  std::unique_ptr<Scenario> scenario_;
  bool dirty_ = false;
};

// Writes a valid mac1 (and zero mac2) for a handshake message to the owner
// of `receiver_public`, as any sender who knows that key can.
inline void write_mac1(std::uint8_t* msg, std::size_t len, const crypto::PublicKey& receiver_public,
                       wg::Nanos now) {
  wg::CookieMaker maker;
  maker.init(receiver_public);
  maker.add_macs(msg, len, now);
}

// Makes msg carry a valid mac2 for `dev` (which must be under load) from
// `src`, the way a real sender gets one: send it, take the cookie reply,
// MAC again. Returns false if the device did not answer with a cookie.
inline bool write_mac1_mac2(std::uint8_t* msg, std::size_t len, wg::Device& dev,
                            RecordingHost& host, const wg::Endpoint& src, wg::Instant now) {
  wg::CookieMaker maker;
  maker.init(dev.public_key());
  maker.add_macs(msg, len, now.mono);
  const std::size_t before = host.sent.size();
  if (dev.receive_handshake(msg, len, src, now) != wg::Drop::kCookieSent) return false;
  if (host.sent.size() != before + 1 || host.sent.back().bytes.size() != wg::kCookieReplyLen)
    return false;
  wg::MessageCookieReply reply;
  std::memcpy(&reply, host.sent.back().bytes.data(), sizeof reply);
  host.sent.pop_back();
  if (maker.consume_reply(reply, now.mono) != wg::Drop::kOk) return false;
  maker.add_macs(msg, len, now.mono);
  return true;
}

// What a message that was refused must not have touched.
struct HandshakeSnapshot {
  wg::HandshakeState state{};
  std::uint32_t local_index = 0;
  std::uint32_t remote_index = 0;
  std::array<std::uint8_t, 32> hash{}, chaining_key{}, ephemeral_private{}, remote_ephemeral{};
  crypto::Tai64n latest_timestamp{};
  wg::Nanos last_initiation_consumption = 0;
  bool consumed_any_initiation = false;

  explicit HandshakeSnapshot(const wg::Handshake& hs)
      : state(hs.state),
        local_index(hs.local_index),
        remote_index(hs.remote_index),
        remote_ephemeral(hs.remote_ephemeral),
        latest_timestamp(hs.latest_timestamp),
        last_initiation_consumption(hs.last_initiation_consumption),
        consumed_any_initiation(hs.consumed_any_initiation) {
    std::memcpy(hash.data(), hs.hash, 32);
    std::memcpy(chaining_key.data(), hs.chaining_key.data(), 32);
    std::memcpy(ephemeral_private.data(), hs.ephemeral_private.data(), 32);
  }
  bool operator==(const HandshakeSnapshot&) const = default;
};

struct PeerSnapshot {
  HandshakeSnapshot hs;
  const wg::Keypair* previous;
  const wg::Keypair* current;
  const wg::Keypair* next;
  std::uint64_t rx_bytes, tx_bytes, handshakes_completed;
  wg::Endpoint endpoint;
  std::size_t indices;

  PeerSnapshot(const wg::Device& dev, const wg::Peer& p)
      : hs(p.handshake),
        previous(p.keypairs.previous()),
        current(p.keypairs.current()),
        next(p.keypairs.next()),
        rx_bytes(p.rx_bytes),
        tx_bytes(p.tx_bytes),
        handshakes_completed(p.handshakes_completed),
        endpoint(p.endpoint),
        indices(dev.index_count()) {}
  bool operator==(const PeerSnapshot&) const = default;
};

// Counters must move by exactly one, for the reason returned.
inline void check_counted(const std::array<std::uint64_t, wg::kDropCount>& before,
                          const wg::Device& dev, wg::Drop d) {
  for (std::size_t i = 0; i < wg::kDropCount; ++i) {
    const std::uint64_t want =
        before[i] + (d != wg::Drop::kOk && i == static_cast<std::size_t>(d) ? 1 : 0);
    if (dev.drop_counters()[i] != want) fail("drop counters do not match the verdict");
  }
}

// --- transport-level scenario ------------------------------------------------

class QueueWire final : public testing::Wire {
 public:
  struct Datagram {
    wg::Endpoint to;
    std::vector<std::uint8_t> bytes;
  };
  bool send(const wg::Endpoint& to, const std::uint8_t* data, std::size_t len) override {
    out.push_back(Datagram{to, std::vector<std::uint8_t>(data, data + len)});
    return true;
  }
  std::deque<Datagram> out;
};

// Two Transports with a confirmed session (A initiated, one data message
// each way), at fixture().t0.
inline constexpr std::uint64_t kSeedPair = 0x5eed0003;
struct Pair {
  Pair() : a(4, wire_a), b(4, wire_b) {
    const Fixture& f = fixture();
    a.device().set_private_key(f.priv_a);
    b.device().set_private_key(f.priv_b);
    pb = a.device().add_peer(f.pub_b);
    pa = b.device().add_peer(f.pub_a);
    if (pa == nullptr || pb == nullptr) fail("add_peer");
    pb->endpoint = f.addr_b;
    const std::uint8_t hello[16] = {0x45};
    if (a.send(*pb, hello, sizeof hello, f.t0) != wg::Drop::kOk) fail("send a");
    pump(f.t0);
    if (b.send(*pa, hello, sizeof hello, f.t0) != wg::Drop::kOk) fail("send b");
    pump(f.t0);
    if (pa->keypairs.current() == nullptr || pb->keypairs.current() == nullptr ||
        pa->handshakes_completed != 1 || pb->handshakes_completed != 1)
      fail("pair did not establish");
  }

  // Delivers everything queued both ways until quiet.
  void pump(wg::Instant now) {
    for (int round = 0; round < 16; ++round) {
      if (wire_a.out.empty() && wire_b.out.empty()) return;
      std::deque<QueueWire::Datagram> to_b, to_a;
      to_b.swap(wire_a.out);
      to_a.swap(wire_b.out);
      const Fixture& f = fixture();
      for (const auto& d : to_b) b.receive(d.bytes.data(), d.bytes.size(), f.addr_a, now, rx.data(), rx.size());
      for (const auto& d : to_a) a.receive(d.bytes.data(), d.bytes.size(), f.addr_b, now, rx.data(), rx.size());
    }
    fail("pair did not go quiet");
  }

  // A data message from `from` to its peer under the current session,
  // built by hand so the counter is free: header, plaintext, tag.
  static std::vector<std::uint8_t> data_message(const wg::SendLine& kp, std::uint64_t counter,
                                                const std::uint8_t* plain, std::size_t len) {
    std::vector<std::uint8_t> msg(wg::kDataHeaderLen + len + wg::kTagLen);
    wg::write_data_header(msg.data(), kp.remote_index, counter);
    crypto::chacha20poly1305_encrypt(msg.data() + wg::kDataHeaderLen, plain, len, nullptr, 0,
                                     counter, kp.key.data());
    return msg;
  }

  QueueWire wire_a, wire_b;
  testing::Transport a, b;
  wg::Peer* pb = nullptr;  // B, as A sees it
  wg::Peer* pa = nullptr;  // A, as B sees it
  std::vector<std::uint8_t> rx = std::vector<std::uint8_t>(70000);
};

// The established pair costs a handshake and two AEAD managers, too much
// to rebuild for every input. Data can only move replay windows, which
// get() puts back; anything else an input managed (a handshake message
// that got through changes handshake state, keypairs or indices) makes
// get() rebuild the pair from scratch. Either way every input starts
// from the same state, and draws the same random numbers.
class PairCache {
 public:
  Pair& get() {
    if (pair_ == nullptr || !(shape() == shape_)) {
      pair_.reset();
      reseed(kSeedPair);
      pair_ = std::make_unique<Pair>();
      shape_ = shape();
      windows_.clear();
      for (const wg::Keypair* kp : shape_.keypairs)
        if (kp != nullptr) windows_.push_back(Window{kp->line->replay, kp->replay_ring});
    } else {
      std::size_t i = 0;
      for (wg::Keypair* kp : shape_.keypairs) {
        if (kp == nullptr) continue;
        kp->line->replay = windows_[i].head;
        kp->replay_ring = windows_[i++].ring;
      }
    }
    pair_->wire_a.out.clear();
    pair_->wire_b.out.clear();
    reseed(kSeedPair + 1);
    return *pair_;
  }

 private:
  struct Shape {
    std::vector<HandshakeSnapshot> handshakes;
    std::vector<wg::Keypair*> keypairs;
    std::size_t indices_a = 0, indices_b = 0;
    bool operator==(const Shape&) const = default;
  };
  Shape shape() const {
    Shape s;
    for (const wg::Peer* p : {pair_->pb, pair_->pa}) {
      s.handshakes.emplace_back(p->handshake);
      s.keypairs.push_back(p->keypairs.previous());
      s.keypairs.push_back(p->keypairs.current());
      s.keypairs.push_back(p->keypairs.next());
    }
    s.indices_a = pair_->a.device().index_count();
    s.indices_b = pair_->b.device().index_count();
    return s;
  }

  std::unique_ptr<Pair> pair_;
  Shape shape_;
  // A replay window: its head on the receive line, its ring in the keypair.
  struct Window {
    wg::ReplayHead head;
    wg::ReplayRing ring;
  };
  std::vector<Window> windows_;
};

// --- reference replay model ----------------------------------------------------

// The obvious implementation of the anti-replay rule, to compare the
// ring-of-blocks ReplayWindow against: remember every counter accepted
// within the window.
class NaiveReplay {
 public:
  explicit NaiveReplay(std::uint64_t window) : window_(window) {}
  bool check(std::uint64_t c, std::uint64_t limit) const {
    if (c >= limit) return false;
    if (!any_ || c > greatest_) return true;
    if (greatest_ - c >= window_) return false;
    return seen_.count(c) == 0;
  }
  bool check_and_update(std::uint64_t c, std::uint64_t limit) {
    if (!check(c, limit)) return false;
    if (!any_ || c > greatest_) {
      greatest_ = c;
      any_ = true;
      // Forget what fell out of the window, so the set stays small.
      while (!seen_.empty() && greatest_ - *seen_.begin() >= window_) seen_.erase(seen_.begin());
    }
    seen_.insert(c);
    return true;
  }
  std::uint64_t greatest() const { return greatest_; }
  bool any() const { return any_; }

 private:
  std::uint64_t window_;
  std::uint64_t greatest_ = 0;
  bool any_ = false;
  std::set<std::uint64_t> seen_;
};

}  // namespace moongate::fuzz
