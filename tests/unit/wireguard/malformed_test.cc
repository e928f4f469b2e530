// Malformed input of every kind against two in-memory peers: every length
// of every type byte, non-zero reserved bytes, truncated and extended
// copies of genuine messages of each type, every single-bit flip of a
// genuine initiation, response, cookie reply and data message, data to
// indices that are not ours or name a handshake, forged tags, replayed and
// out-of-range counters, oversized data, and a device with no key.
//
// Each refused message must be dropped for one specific reason, counted
// once under that reason and no other, answered with nothing (except the
// cookie reply that is the whole point of kCookieSent), and leave the
// receiver's handshake, keypairs, replay windows, timers, endpoint and
// byte counters exactly as they were. Each test ends by showing that the
// genuine message still works, and that a new handshake and data in both
// directions do.
#include <gtest/gtest.h>

#include <algorithm>
#include <string>
#include <vector>

#include "crypto/aead.h"
#include "tests/unit/wireguard/pair.h"
#include "wireguard/cookie.h"

namespace moongate::wg::test {
namespace {

// Everything of a node (and its one peer) a refused message must not touch.
struct NodeState {
  std::size_t indices = 0;
  HandshakeState hs_state{};
  std::uint32_t hs_local_index = 0;
  std::uint32_t hs_remote_index = 0;
  std::array<std::uint8_t, 32> hs_hash{}, hs_chaining_key{}, hs_ephemeral{}, hs_remote_ephemeral{};
  crypto::Tai64n hs_latest_timestamp{};
  Nanos hs_last_initiation = 0;
  bool hs_consumed_any = false;
  const Keypair* previous = nullptr;
  const Keypair* current = nullptr;
  const Keypair* next = nullptr;
  // Replay windows: the newest counter accepted under each keypair.
  std::uint64_t previous_window = 0, current_window = 0, next_window = 0;
  std::uint64_t rx_bytes = 0, tx_bytes = 0, handshakes_completed = 0, last_handshake_wall = 0;
  Endpoint endpoint;
  bool cookie_fresh = false;
  Nanos retransmit_at = 0, keepalive_at = 0, new_handshake_at = 0, zero_keys_at = 0;
  unsigned handshake_attempts = 0;
  std::size_t staged = 0;
};

NodeState state_of(Node& n, const Peer& p, Nanos now) {
  NodeState s;
  s.indices = n.dev().index_count();
  const Handshake& hs = p.handshake;
  s.hs_state = hs.state;
  s.hs_local_index = hs.local_index;
  s.hs_remote_index = hs.remote_index;
  std::memcpy(s.hs_hash.data(), hs.hash, 32);
  std::memcpy(s.hs_chaining_key.data(), hs.chaining_key.data(), 32);
  std::memcpy(s.hs_ephemeral.data(), hs.ephemeral_private.data(), 32);
  s.hs_remote_ephemeral = hs.remote_ephemeral;
  s.hs_latest_timestamp = hs.latest_timestamp;
  s.hs_last_initiation = hs.last_initiation_consumption;
  s.hs_consumed_any = hs.consumed_any_initiation;
  s.previous = p.keypairs.previous();
  s.current = p.keypairs.current();
  s.next = p.keypairs.next();
  if (s.previous) s.previous_window = s.previous->next_expected();
  if (s.current) s.current_window = s.current->next_expected();
  if (s.next) s.next_window = s.next->next_expected();
  s.rx_bytes = p.rx_bytes;
  s.tx_bytes = p.tx_bytes;
  s.handshakes_completed = p.handshakes_completed;
  s.last_handshake_wall = p.last_handshake_wall_ns;
  s.endpoint = p.endpoint;
  s.cookie_fresh = p.cookie.has_fresh_cookie(now);
  s.retransmit_at = p.timers.retransmit_handshake_at();
  s.keepalive_at = p.timers.send_keepalive_at();
  s.new_handshake_at = p.timers.new_handshake_at();
  s.zero_keys_at = p.timers.zero_key_material_at();
  s.handshake_attempts = p.timers.handshake_attempts();
  s.staged = n.t.staged(p);
  return s;
}

// Names of the fields that differ, for the failure message.
std::string changed(const NodeState& a, const NodeState& b) {
  std::string out;
#define MOONGATE_FIELD(f) \
  if (!(a.f == b.f)) out += " " #f;
  MOONGATE_FIELD(indices)
  MOONGATE_FIELD(hs_state)
  MOONGATE_FIELD(hs_local_index)
  MOONGATE_FIELD(hs_remote_index)
  MOONGATE_FIELD(hs_hash)
  MOONGATE_FIELD(hs_chaining_key)
  MOONGATE_FIELD(hs_ephemeral)
  MOONGATE_FIELD(hs_remote_ephemeral)
  MOONGATE_FIELD(hs_latest_timestamp)
  MOONGATE_FIELD(hs_last_initiation)
  MOONGATE_FIELD(hs_consumed_any)
  MOONGATE_FIELD(previous)
  MOONGATE_FIELD(current)
  MOONGATE_FIELD(next)
  MOONGATE_FIELD(previous_window)
  MOONGATE_FIELD(current_window)
  MOONGATE_FIELD(next_window)
  MOONGATE_FIELD(rx_bytes)
  MOONGATE_FIELD(tx_bytes)
  MOONGATE_FIELD(handshakes_completed)
  MOONGATE_FIELD(last_handshake_wall)
  MOONGATE_FIELD(endpoint)
  MOONGATE_FIELD(cookie_fresh)
  MOONGATE_FIELD(retransmit_at)
  MOONGATE_FIELD(keepalive_at)
  MOONGATE_FIELD(new_handshake_at)
  MOONGATE_FIELD(zero_keys_at)
  MOONGATE_FIELD(handshake_attempts)
  MOONGATE_FIELD(staged)
#undef MOONGATE_FIELD
  return out;
}

class MalformedTest : public PairTest {
 protected:
  // Delivers d to `dst` (whose view of the other node is `view`) and checks
  // everything a refusal promises; see the file comment.
  ::testing::AssertionResult refused(Node& dst, const Peer& view, const Datagram& d, Drop want,
                                     std::size_t out_cap = sizeof(MalformedTest::rx)) {
    if (!a.wire.out.empty() || !b.wire.out.empty())
      return ::testing::AssertionFailure() << "datagrams queued before delivery";
    const NodeState before = state_of(dst, view, now().mono);
    const auto drops = dst.dev().drop_counters();
    const auto r = dst.t.receive(d.bytes.data(), d.bytes.size(), d.from, now(), rx, out_cap);
    if (r.drop != want)
      return ::testing::AssertionFailure()
             << "dropped as " << drop_name(r.drop) << ", want " << drop_name(want);
    for (std::size_t i = 0; i < kDropCount; ++i) {
      const std::uint64_t expect = drops[i] + (i == static_cast<std::size_t>(want) ? 1 : 0);
      if (dst.dev().drop_counters()[i] != expect)
        return ::testing::AssertionFailure()
               << "counter " << drop_name(static_cast<Drop>(i)) << " is "
               << dst.dev().drop_counters()[i] << ", want " << expect;
    }
    if (want == Drop::kCookieSent) {
      // The one answer a refusal may have: a cookie reply to the source.
      if (dst.wire.out.size() != 1 || dst.wire.out.front().type() != MessageType::kCookieReply ||
          !(dst.wire.out.front().to == d.from))
        return ::testing::AssertionFailure() << "kCookieSent without one cookie reply to the source";
      dst.wire.out.clear();
    }
    if (!a.wire.out.empty() || !b.wire.out.empty())
      return ::testing::AssertionFailure() << "a refused message was answered";
    const std::string diff = changed(before, state_of(dst, view, now().mono));
    if (!diff.empty()) return ::testing::AssertionFailure() << "state changed:" << diff;
    return ::testing::AssertionSuccess();
  }
  ::testing::AssertionResult refused_by_b(const Datagram& d, Drop want) { return refused(b, *pa, d, want); }
  ::testing::AssertionResult refused_by_a(const Datagram& d, Drop want) { return refused(a, *pb, d, want); }

  static Datagram take(std::deque<Datagram>& q) {
    if (q.empty()) {
      ADD_FAILURE() << "expected a datagram";
      return Datagram{};
    }
    Datagram d = q.front();
    q.pop_front();
    return d;
  }

  static Datagram flipped(const Datagram& d, std::size_t bit) {
    Datagram f = d;
    f.bytes[bit / 8] ^= static_cast<std::uint8_t>(1u << (bit % 8));
    return f;
  }

  static Datagram resized(const Datagram& d, std::size_t len, std::uint8_t fill) {
    Datagram r = d;
    r.bytes.resize(len, fill);
    return r;
  }

  // Rewrites mac1 (and clears mac2) as anyone who knows the receiver's
  // public key can, so a change behind it reaches the Noise code.
  void remac(Datagram& d, const crypto::PublicKey& receiver) const {
    CookieMaker m;
    m.init(receiver);
    m.add_macs(d.bytes.data(), d.bytes.size(), now().mono);
  }

  // An authentic data message from A under its current keypair with any
  // counter: what a peer holding the keys could send.
  Datagram authentic_data(std::uint64_t counter, std::size_t len = 16) const {
    const SendLine& kp = pb->send;
    Datagram d{a.addr, b.addr, std::vector<std::uint8_t>(kDataHeaderLen + len + kTagLen)};
    write_data_header(d.bytes.data(), kp.remote_index, counter);
    const std::vector<std::uint8_t> plain = packet(len, 9);
    crypto::chacha20poly1305_encrypt(d.bytes.data() + kDataHeaderLen, plain.data(), len, nullptr, 0,
                                     counter, kp.key.data());
    return d;
  }

  // The indices a node receives on: what a "not ours" index must avoid.
  static std::vector<std::uint32_t> indices_of(const Peer& p) {
    std::vector<std::uint32_t> out;
    if (p.handshake.local_index) out.push_back(p.handshake.local_index);
    for (const Keypair* kp : {p.keypairs.previous(), p.keypairs.current(), p.keypairs.next()})
      if (kp) out.push_back(kp->local_index);
    return out;
  }

  // The pair is still healthy: a new handshake completes and data flows
  // both ways under it.
  void expect_still_works() {
    a.dev().set_under_load(false);
    b.dev().set_under_load(false);
    pump();
    clock.advance(kRekeyTimeout + kSecond);
    const std::uint64_t before = pb->handshakes_completed;
    ASSERT_EQ(a.dev().initiate_handshake(*pb, now()), Drop::kOk);
    pump();
    EXPECT_EQ(pb->handshakes_completed, before + 1);
    got_a.clear();
    got_b.clear();
    ASSERT_EQ(send_a(packet(96, 21)), Drop::kOk);
    pump();
    ASSERT_EQ(got_b.size(), 1u);
    EXPECT_EQ(got_b[0], packet(96, 21));
    ASSERT_EQ(send_b(packet(96, 22)), Drop::kOk);
    pump();
    ASSERT_EQ(got_a.size(), 1u);
    EXPECT_EQ(got_a[0], packet(96, 22));
  }
};

// What the core must answer to a zero-filled message of this type byte
// and length whose index fields (if any) are 0, an index never handed out.
Drop expected_for(std::uint8_t type, std::size_t len) {
  if (len < 4) return Drop::kMalformed;
  switch (type) {
    case 1: return len == kInitiationLen ? Drop::kBadMac1 : Drop::kMalformed;
    case 2: return len == kResponseLen ? Drop::kBadMac1 : Drop::kMalformed;
    case 3: return len == kCookieReplyLen ? Drop::kUnknownIndex : Drop::kMalformed;
    case 4: return len >= kDataMinLen ? Drop::kUnknownIndex : Drop::kMalformed;
    default: return Drop::kMalformed;
  }
}

TEST_F(MalformedTest, EveryLengthOfEveryTypeIsDroppedForItsReason) {
  establish();
  for (std::uint8_t type = 0; type <= 5; ++type) {
    for (std::size_t len = 0; len <= 200; ++len) {
      for (std::uint8_t fill : {0x00, 0xff}) {
        Datagram d{a.addr, b.addr, std::vector<std::uint8_t>(len, fill)};
        if (len > 0) d.bytes[0] = type;
        for (std::size_t i = 1; i < 4 && i < len; ++i) d.bytes[i] = 0;
        // Receiver fields of cookie replies and data: 0, never ours.
        if (type == 3 || type == 4)
          for (std::size_t i = 4; i < 8 && i < len; ++i) d.bytes[i] = 0;
        const Drop want = expected_for(type, len);
        ASSERT_TRUE(refused_by_b(d, want)) << "type " << +type << " len " << len << " fill " << +fill;
        d.from = b.addr;
        ASSERT_TRUE(refused_by_a(d, want)) << "type " << +type << " len " << len << " fill " << +fill;
      }
    }
  }
  // A null payload of length 0 too (a zero-length UDP datagram).
  EXPECT_EQ(b.t.receive(nullptr, 0, a.addr, now(), rx, sizeof rx).drop, Drop::kMalformed);
  expect_still_works();
}

TEST_F(MalformedTest, NonZeroReservedBytesAreMalformed) {
  establish();
  // Genuine messages of all four types, none delivered yet.
  ASSERT_EQ(send_a(packet(64, 1)), Drop::kOk);
  const Datagram data = take(a.wire.out);
  clock.advance(kRekeyTimeout + kSecond);
  ASSERT_EQ(a.dev().initiate_handshake(*pb, now()), Drop::kOk);
  const Datagram init = take(a.wire.out);
  b.dev().set_under_load(true);
  ASSERT_EQ(deliver(init).drop, Drop::kCookieSent);
  const Datagram cookie = take(b.wire.out);
  b.dev().set_under_load(false);
  ASSERT_EQ(deliver(init).drop, Drop::kOk);
  const Datagram resp = take(b.wire.out);

  for (const Datagram* m : {&init, &resp, &cookie, &data}) {
    Node& dst = m == &init || m == &data ? b : a;
    const Peer& view = &dst == &b ? *pa : *pb;
    for (std::size_t i = 1; i < 4; ++i) {
      for (std::uint8_t v : {0x01, 0x04, 0x80, 0xff}) {
        Datagram bad = *m;
        bad.bytes[i] = v;
        ASSERT_TRUE(refused(dst, view, bad, Drop::kMalformed))
            << "type " << +m->bytes[0] << " reserved byte " << i << " = " << +v;
      }
    }
    // Every other type byte with this message's length and content.
    for (unsigned t = 0; t < 256; ++t) {
      Datagram bad = *m;
      bad.bytes[0] = static_cast<std::uint8_t>(t);
      if (t == m->bytes[0]) continue;
      if (bad.type() != MessageType::kInvalid) continue;  // e.g. type 4: a data message
      ASSERT_TRUE(refused(dst, view, bad, Drop::kMalformed)) << "type " << t;
    }
  }
  // The genuine ones still do their job.
  EXPECT_EQ(deliver(cookie).drop, Drop::kOk);
  EXPECT_TRUE(pb->cookie.has_fresh_cookie(now().mono));
  EXPECT_EQ(deliver(resp).drop, Drop::kOk);
  EXPECT_EQ(deliver(data).drop, Drop::kOk);
  expect_still_works();
}

// --- truncated and extended copies --------------------------------------------

// Every shorter length, a run of longer ones, and an MTU-sized one, with
// two different fillers for the added bytes.
std::vector<std::size_t> wrong_lengths(std::size_t len) {
  std::vector<std::size_t> out;
  for (std::size_t n = 0; n < len; ++n) out.push_back(n);
  for (std::size_t n = len + 1; n <= len + 64; ++n) out.push_back(n);
  out.push_back(1500);
  return out;
}

TEST_F(MalformedTest, TruncatedOrExtendedInitiationsAreMalformed) {
  ASSERT_EQ(a.dev().initiate_handshake(*pb, now()), Drop::kOk);
  const Datagram init = take(a.wire.out);
  ASSERT_EQ(init.bytes.size(), kInitiationLen);
  for (std::size_t len : wrong_lengths(kInitiationLen))
    for (std::uint8_t fill : {0x00, 0x5a})
      ASSERT_TRUE(refused_by_b(resized(init, len, fill), Drop::kMalformed)) << "len " << len;
  // None of them consumed the timestamp: the genuine one is accepted.
  EXPECT_EQ(deliver(init).drop, Drop::kOk);
  pump();
  EXPECT_EQ(pb->handshakes_completed, 1u);
  expect_still_works();
}

TEST_F(MalformedTest, TruncatedOrExtendedResponsesAreMalformed) {
  ASSERT_EQ(a.dev().initiate_handshake(*pb, now()), Drop::kOk);
  ASSERT_EQ(deliver(take(a.wire.out)).drop, Drop::kOk);
  const Datagram resp = take(b.wire.out);
  ASSERT_EQ(resp.bytes.size(), kResponseLen);
  for (std::size_t len : wrong_lengths(kResponseLen))
    for (std::uint8_t fill : {0x00, 0x5a})
      ASSERT_TRUE(refused_by_a(resized(resp, len, fill), Drop::kMalformed)) << "len " << len;
  EXPECT_EQ(pb->handshake.state, HandshakeState::kCreatedInitiation);
  EXPECT_EQ(deliver(resp).drop, Drop::kOk);
  EXPECT_EQ(pb->handshakes_completed, 1u);
  expect_still_works();
}

TEST_F(MalformedTest, TruncatedOrExtendedCookieRepliesAreMalformed) {
  b.dev().set_under_load(true);
  ASSERT_EQ(a.dev().initiate_handshake(*pb, now()), Drop::kOk);
  ASSERT_EQ(deliver(take(a.wire.out)).drop, Drop::kCookieSent);
  const Datagram cookie = take(b.wire.out);
  ASSERT_EQ(cookie.bytes.size(), kCookieReplyLen);
  for (std::size_t len : wrong_lengths(kCookieReplyLen))
    for (std::uint8_t fill : {0x00, 0x5a})
      ASSERT_TRUE(refused_by_a(resized(cookie, len, fill), Drop::kMalformed)) << "len " << len;
  EXPECT_EQ(deliver(cookie).drop, Drop::kOk);
  EXPECT_TRUE(pb->cookie.has_fresh_cookie(now().mono));
  // One cookie per message sent: the same reply again is unexpected.
  EXPECT_TRUE(refused_by_a(cookie, Drop::kUnexpectedHandshake));
  expect_still_works();
}

TEST_F(MalformedTest, TruncatedOrExtendedDataFailsLengthOrTag) {
  establish();
  ASSERT_EQ(send_a(packet(64, 1)), Drop::kOk);
  const Datagram data = take(a.wire.out);
  ASSERT_EQ(data.bytes.size(), kDataHeaderLen + 64 + kTagLen);
  for (std::size_t len : wrong_lengths(data.bytes.size())) {
    // Shorter than a keepalive is malformed; anything else reaches the
    // AEAD, where the tag is no longer where it was.
    const Drop want = len < kDataMinLen ? Drop::kMalformed : Drop::kDataAuth;
    for (std::uint8_t fill : {0x00, 0x5a})
      ASSERT_TRUE(refused_by_b(resized(data, len, fill), want)) << "len " << len;
  }
  // The counter was not consumed by any of them.
  EXPECT_EQ(deliver(data).drop, Drop::kOk);
  expect_still_works();
}

// --- single-bit flips ---------------------------------------------------------

TEST_F(MalformedTest, EveryBitFlipOfAnInitiationIsRefused) {
  // B under load and A holding B's cookie: the genuine initiation carries a
  // valid mac2, so every one of its 1184 bits is checked by something.
  b.dev().set_under_load(true);
  ASSERT_EQ(send_a(packet(64, 1)), Drop::kOk);
  ASSERT_EQ(deliver(take(a.wire.out)).drop, Drop::kCookieSent);
  ASSERT_EQ(deliver(take(b.wire.out)).drop, Drop::kOk);
  clock.advance(kRekeyTimeout + kRekeyTimeoutJitterMax);
  tick();  // A's retry, now with mac2
  const Datagram init = take(a.wire.out);
  ASSERT_EQ(init.type(), MessageType::kInitiation);
  ASSERT_TRUE(a.wire.out.empty());

  for (std::size_t bit = 0; bit < kInitiationLen * 8; ++bit) {
    const std::size_t byte = bit / 8;
    // Type and reserved bytes; everything mac1 covers and mac1 itself;
    // mac2, which under load only earns a cookie reply.
    const Drop want = byte < 4                                ? Drop::kMalformed
                      : byte < mac2_offset(kInitiationLen)    ? Drop::kBadMac1
                                                              : Drop::kCookieSent;
    ASSERT_TRUE(refused_by_b(flipped(init, bit), want)) << "bit " << bit;
  }
  // Nothing consumed the timestamp or the flood allowance: the genuine
  // initiation is still processed, under load, and the session comes up.
  ASSERT_EQ(deliver(init).drop, Drop::kOk);
  pump();
  EXPECT_EQ(pb->handshakes_completed, 1u);
  ASSERT_EQ(got_b.size(), 1u);
  expect_still_works();
}

TEST_F(MalformedTest, InitiationBitFlipsBehindAValidMac1FailInNoise) {
  ASSERT_EQ(a.dev().initiate_handshake(*pb, now()), Drop::kOk);
  const Datagram init = take(a.wire.out);
  // The ephemeral key, encrypted static key and encrypted timestamp, each
  // flip re-MACed so it reaches the handshake AEADs. (The sender index,
  // bytes 4..7, is authenticated by mac1 only, as in every WireGuard.)
  for (std::size_t bit = 8 * 8; bit < mac1_offset(kInitiationLen) * 8; ++bit) {
    Datagram d = flipped(init, bit);
    remac(d, b.pub);
    ASSERT_TRUE(refused_by_b(d, Drop::kHandshakeDecrypt)) << "bit " << bit;
  }
  EXPECT_EQ(deliver(init).drop, Drop::kOk);
  pump();
  EXPECT_EQ(pb->handshakes_completed, 1u);
  expect_still_works();
}

TEST_F(MalformedTest, Mac2IsOnlyCheckedUnderLoad) {
  // Why the flip tests put the receiver under load: without load mac2 is
  // not looked at (whitepaper 5.3), so a flipped mac2 is accepted.
  ASSERT_EQ(a.dev().initiate_handshake(*pb, now()), Drop::kOk);
  Datagram init = take(a.wire.out);
  init.bytes[mac2_offset(kInitiationLen)] ^= 1;
  EXPECT_EQ(deliver(init).drop, Drop::kOk);
}

TEST_F(MalformedTest, EveryBitFlipOfAResponseIsRefused) {
  // B needs a cookie from A so its response carries a valid mac2: B
  // initiates while A is under load and gets a cookie reply.
  pa->endpoint = a.addr;
  a.dev().set_under_load(true);
  ASSERT_EQ(b.dev().initiate_handshake(*pa, now()), Drop::kOk);
  ASSERT_EQ(deliver(take(b.wire.out)).drop, Drop::kCookieSent);
  ASSERT_EQ(deliver(take(a.wire.out)).drop, Drop::kOk);
  ASSERT_TRUE(pa->cookie.has_fresh_cookie(now().mono));
  // A initiates; B's answer supersedes its own initiation and carries mac2.
  ASSERT_EQ(a.dev().initiate_handshake(*pb, now()), Drop::kOk);
  ASSERT_EQ(deliver(take(a.wire.out)).drop, Drop::kOk);
  const Datagram resp = take(b.wire.out);
  ASSERT_EQ(resp.type(), MessageType::kResponse);
  ASSERT_EQ(pb->handshake.state, HandshakeState::kCreatedInitiation);

  for (std::size_t bit = 0; bit < kResponseLen * 8; ++bit) {
    const std::size_t byte = bit / 8;
    const Drop want = byte < 4                              ? Drop::kMalformed
                      : byte < mac2_offset(kResponseLen)    ? Drop::kBadMac1
                                                            : Drop::kCookieSent;
    ASSERT_TRUE(refused_by_a(flipped(resp, bit), want)) << "bit " << bit;
  }
  ASSERT_EQ(deliver(resp).drop, Drop::kOk);
  EXPECT_EQ(pb->handshakes_completed, 1u);
  expect_still_works();
}

TEST_F(MalformedTest, ResponseBitFlipsBehindAValidMac1AreRefused) {
  ASSERT_EQ(a.dev().initiate_handshake(*pb, now()), Drop::kOk);
  ASSERT_EQ(deliver(take(a.wire.out)).drop, Drop::kOk);
  const Datagram resp = take(b.wire.out);
  // Receiver index: A has one index (this handshake), so any other is unknown.
  for (std::size_t bit = 8 * 8; bit < 12 * 8; ++bit) {
    Datagram d = flipped(resp, bit);
    remac(d, a.pub);
    ASSERT_TRUE(refused_by_a(d, Drop::kUnknownIndex)) << "bit " << bit;
  }
  // Ephemeral key and the empty AEAD: the handshake does not decrypt.
  for (std::size_t bit = 12 * 8; bit < mac1_offset(kResponseLen) * 8; ++bit) {
    Datagram d = flipped(resp, bit);
    remac(d, a.pub);
    ASSERT_TRUE(refused_by_a(d, Drop::kHandshakeDecrypt)) << "bit " << bit;
  }
  ASSERT_EQ(deliver(resp).drop, Drop::kOk);
  pump();  // A's keepalive confirms the session to B
  // Replayed, the response names a keypair, not a handshake.
  ASSERT_TRUE(refused_by_a(resp, Drop::kUnknownIndex));
  expect_still_works();
}

TEST_F(MalformedTest, EveryBitFlipOfACookieReplyIsRefused) {
  b.dev().set_under_load(true);
  ASSERT_EQ(a.dev().initiate_handshake(*pb, now()), Drop::kOk);
  ASSERT_EQ(deliver(take(a.wire.out)).drop, Drop::kCookieSent);
  const Datagram cookie = take(b.wire.out);
  for (std::size_t bit = 0; bit < kCookieReplyLen * 8; ++bit) {
    const std::size_t byte = bit / 8;
    // A has one index, its handshake's: a flipped receiver is unknown; a
    // flipped nonce or sealed cookie fails XChaCha20-Poly1305.
    const Drop want = byte < 4 ? Drop::kMalformed : byte < 8 ? Drop::kUnknownIndex : Drop::kBadCookieReply;
    ASSERT_TRUE(refused_by_a(flipped(cookie, bit), want)) << "bit " << bit;
  }
  EXPECT_EQ(deliver(cookie).drop, Drop::kOk);
  EXPECT_TRUE(pb->cookie.has_fresh_cookie(now().mono));
  expect_still_works();
}

TEST_F(MalformedTest, EveryBitFlipOfADataMessageIsRefused) {
  establish();
  ASSERT_EQ(send_a(packet(64, 1)), Drop::kOk);
  const Datagram data = take(a.wire.out);
  const std::uint64_t counter = load_le64(data.bytes.data() + 8);
  ASSERT_EQ(counter, 1u);  // 0 went in establish()
  const std::vector<std::uint32_t> ours = indices_of(*pa);
  for (std::size_t bit = 0; bit < data.bytes.size() * 8; ++bit) {
    const std::size_t byte = bit / 8;
    const Datagram d = flipped(data, bit);
    Drop want = Drop::kDataAuth;  // ciphertext, tag: the AEAD says no
    if (byte < 4) {
      want = Drop::kMalformed;
    } else if (byte < 8) {
      if (std::find(ours.begin(), ours.end(), load_le32(d.bytes.data() + 4)) != ours.end()) continue;
      want = Drop::kUnknownIndex;
    } else if (byte < 16) {
      // The counter is the nonce: a fresh one fails the tag, a used one
      // (counter 1 flipped to 0) is a replay, caught before decryption.
      want = load_le64(d.bytes.data() + 8) == 0 ? Drop::kReplay : Drop::kDataAuth;
    }
    ASSERT_TRUE(refused_by_b(d, want)) << "bit " << bit;
  }
  EXPECT_EQ(deliver(data).drop, Drop::kOk);
  expect_still_works();
}

// --- indices, counters, sizes ---------------------------------------------------

TEST_F(MalformedTest, DataToIndicesNotOursIsUnknown) {
  establish();
  ASSERT_EQ(send_a(packet(64, 1)), Drop::kOk);
  const Datagram data = take(a.wire.out);
  const std::uint32_t index = load_le32(data.bytes.data() + 4);
  const std::vector<std::uint32_t> ours = indices_of(*pa);
  std::vector<std::uint32_t> others = {0, index ^ 1, index + 1, index - 1, ~index, 0xffffffffu,
                                       0x80000000u};
  // B's index as A knows it is not an index A sent to: A's own indices
  // belong to A, not B.
  for (std::uint32_t i : indices_of(*pb)) others.push_back(i);
  for (std::uint32_t other : others) {
    if (std::find(ours.begin(), ours.end(), other) != ours.end()) continue;
    Datagram d = data;
    store_le32(d.bytes.data() + 4, other);
    ASSERT_TRUE(refused_by_b(d, Drop::kUnknownIndex)) << "index " << other;
  }
  EXPECT_EQ(deliver(data).drop, Drop::kOk);
  expect_still_works();
}

TEST_F(MalformedTest, DataToAHandshakeIndexIsUnknown) {
  establish();
  ASSERT_EQ(send_a(packet(64, 1)), Drop::kOk);
  Datagram data = take(a.wire.out);
  // B starts a handshake: its index names a handshake, not a keypair.
  clock.advance(kRekeyTimeout + kSecond);
  ASSERT_EQ(b.dev().initiate_handshake(*pa, now()), Drop::kOk);
  b.wire.out.clear();
  ASSERT_NE(pa->handshake.local_index, 0u);
  store_le32(data.bytes.data() + 4, pa->handshake.local_index);
  EXPECT_TRUE(refused_by_b(data, Drop::kUnknownIndex));
  expect_still_works();
}

TEST_F(MalformedTest, HandshakeMessagesToIndicesNotOursAreUnknown) {
  establish();
  // A response and a cookie reply with valid mac1 to an index nobody has...
  Datagram resp{b.addr, a.addr, std::vector<std::uint8_t>(kResponseLen)};
  store_le32(resp.bytes.data(), 2);
  store_le32(resp.bytes.data() + 8, 0x12345678u ^ pb->keypairs.current()->local_index);
  remac(resp, a.pub);
  EXPECT_TRUE(refused_by_a(resp, Drop::kUnknownIndex));
  Datagram cookie{b.addr, a.addr, std::vector<std::uint8_t>(kCookieReplyLen)};
  store_le32(cookie.bytes.data(), 3);
  EXPECT_TRUE(refused_by_a(cookie, Drop::kUnknownIndex));
  // ...and a response to a keypair's index, which is not a handshake.
  store_le32(resp.bytes.data() + 8, pb->keypairs.current()->local_index);
  remac(resp, a.pub);
  EXPECT_TRUE(refused_by_a(resp, Drop::kUnknownIndex));
  // A garbage cookie reply to a live index fails its AEAD.
  store_le32(cookie.bytes.data() + 4, pb->keypairs.current()->local_index);
  EXPECT_TRUE(refused_by_a(cookie, Drop::kBadCookieReply));
  expect_still_works();
}

TEST_F(MalformedTest, AuthenticDataWithBadCountersIsAReplay) {
  establish();
  // Counter 0 was used by establish().
  EXPECT_TRUE(refused_by_b(authentic_data(0), Drop::kReplay));
  // At and past REJECT_AFTER_MESSAGES, even with a valid tag.
  EXPECT_TRUE(refused_by_b(authentic_data(kRejectAfterMessages), Drop::kReplay));
  EXPECT_TRUE(refused_by_b(authentic_data(~std::uint64_t{0}), Drop::kReplay));
  // Behind the window.
  ASSERT_EQ(deliver(authentic_data(10000)).drop, Drop::kOk);
  EXPECT_TRUE(refused_by_b(authentic_data(10000 - ReplayWindow::kWindowSize), Drop::kReplay));
  EXPECT_TRUE(refused_by_b(authentic_data(10000), Drop::kReplay));
  EXPECT_EQ(deliver(authentic_data(10000 - ReplayWindow::kWindowSize + 1)).drop, Drop::kOk);
  // The very last counter allowed is accepted once.
  EXPECT_EQ(deliver(authentic_data(kRejectAfterMessages - 1)).drop, Drop::kOk);
  EXPECT_TRUE(refused_by_b(authentic_data(kRejectAfterMessages - 1), Drop::kReplay));
  // That keypair can no longer receive anything fresh; a new one can.
  expect_still_works();
}

TEST_F(MalformedTest, OversizedDataIsMalformed) {
  establish();
  // The largest message a Transport takes: a 65535-byte packet.
  const std::vector<std::uint8_t> big = packet(testing::Transport::kMaxPacket, 3);
  ASSERT_EQ(send_a(big), Drop::kOk);
  const Datagram max = take(a.wire.out);
  ASSERT_EQ(max.bytes.size(), kDataHeaderLen + testing::Transport::kMaxPacket + kTagLen);
  // One byte more, with a valid index and a fresh counter: refused before
  // decryption.
  Datagram over = max;
  over.bytes.push_back(0);
  EXPECT_TRUE(refused_by_b(over, Drop::kMalformed));
  // Far larger, and to an unknown index: the index is checked first.
  Datagram huge = resized(max, 200000, 0);
  store_le32(huge.bytes.data() + 4, 0);
  EXPECT_TRUE(refused_by_b(huge, Drop::kUnknownIndex));
  // A plaintext that does not fit the caller's buffer.
  EXPECT_TRUE(refused(b, *pa, max, Drop::kMalformed, testing::Transport::kMaxPacket - 1));
  // The genuine maximum is accepted whole.
  const auto r = deliver(max);
  EXPECT_EQ(r.drop, Drop::kOk);
  EXPECT_EQ(r.len, testing::Transport::kMaxPacket);
  EXPECT_EQ(std::vector<std::uint8_t>(rx, rx + r.len), big);
  expect_still_works();
}

TEST(MalformedNoKeyTest, HandshakesNeedAPrivateKey) {
  QueueWire wire(ep(5));
  moongate::testing::Transport t(4, wire);
  std::uint8_t rx[256];
  const Instant now = ManualClock().now();
  std::vector<std::uint8_t> init(kInitiationLen), resp(kResponseLen);
  store_le32(init.data(), 1);
  store_le32(resp.data(), 2);
  EXPECT_EQ(t.receive(init.data(), init.size(), ep(1), now, rx, sizeof rx).drop, Drop::kNoPrivateKey);
  EXPECT_EQ(t.receive(resp.data(), resp.size(), ep(1), now, rx, sizeof rx).drop, Drop::kNoPrivateKey);
  EXPECT_EQ(t.device().drops(Drop::kNoPrivateKey), 2u);
  EXPECT_TRUE(wire.out.empty());
}

}  // namespace
}  // namespace moongate::wg::test
