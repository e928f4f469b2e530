// Two in-memory peers: handshakes, data, keypair rotation, cookies,
// roaming and replays, on a manual clock.
#include <gtest/gtest.h>

#include "crypto/aead_burst.h"
#include "tests/unit/wireguard/pair.h"

namespace moongate::wg::test {
namespace {

TEST_F(PairTest, HandshakeThenDataBothWays) {
  const auto p1 = packet(160, 1);
  ASSERT_EQ(send_a(p1), Drop::kOk);
  // No session yet: the packet is staged and an initiation goes out.
  EXPECT_EQ(a.t.staged(*pb), 1u);
  ASSERT_EQ(a.wire.out.size(), 1u);
  EXPECT_EQ(a.wire.out.front().type(), MessageType::kInitiation);
  EXPECT_EQ(a.wire.out.front().bytes.size(), kInitiationLen);

  pump();
  ASSERT_EQ(got_b.size(), 1u);
  EXPECT_EQ(got_b[0], p1);
  EXPECT_EQ(a.t.staged(*pb), 0u);
  EXPECT_EQ(pb->handshakes_completed, 1u);
  EXPECT_EQ(pa->handshakes_completed, 1u);  // confirmed by the first data message
  // B learned A's endpoint from the authenticated initiation.
  EXPECT_EQ(pa->endpoint, a.addr);
  ASSERT_NE(pa->keypairs.current(), nullptr);
  EXPECT_EQ(pa->keypairs.next(), nullptr);

  const auto p2 = packet(1408, 2);
  ASSERT_EQ(send_b(p2), Drop::kOk);
  pump();
  ASSERT_EQ(got_a.size(), 1u);
  EXPECT_EQ(got_a[0], p2);

  // Both sides count the same bytes for the same messages.
  EXPECT_EQ(pb->tx_bytes, pa->rx_bytes);
  EXPECT_EQ(pa->tx_bytes, pb->rx_bytes);
  EXPECT_GT(pb->tx_bytes, kInitiationLen + 160u);
}

TEST_F(PairTest, PaddingToSixteenAndEmptyPacket) {
  establish();
  ASSERT_EQ(send_a(packet(1, 3)), Drop::kOk);
  ASSERT_EQ(a.wire.out.size(), 1u);
  // 1 byte of plaintext is padded to 16: header 16 + 16 + tag 16.
  EXPECT_EQ(a.wire.out.front().bytes.size(), 48u);
  pump();
  ASSERT_EQ(got_b.size(), 1u);
  EXPECT_EQ(got_b[0].size(), 16u);
  EXPECT_EQ(got_b[0][0], packet(1, 3)[0]);
  for (std::size_t i = 1; i < 16; ++i) EXPECT_EQ(got_b[0][i], 0);
}

TEST_F(PairTest, PaddingNeverExceedsMtu) {
  establish();
  a.t.set_mtu(1420);
  ASSERT_EQ(send_a(packet(1419, 4)), Drop::kOk);
  ASSERT_EQ(a.wire.out.size(), 1u);
  EXPECT_EQ(a.wire.out.front().bytes.size(), kDataHeaderLen + 1420 + kTagLen);
}

TEST_F(PairTest, ResponderCanInitiateToo) {
  pa->endpoint = a.addr;
  ASSERT_EQ(send_b(packet(64, 5)), Drop::kOk);
  pump();
  ASSERT_EQ(got_a.size(), 1u);
  EXPECT_EQ(pa->handshakes_completed, 1u);
  EXPECT_TRUE(pa->keypairs.current()->initiator);
  EXPECT_FALSE(pb->keypairs.current()->initiator);
}

TEST_F(PairTest, PresharedKeyMustMatch) {
  crypto::SecretKey psk;
  psk.randomize();
  a.dev().set_preshared_key(*pb, psk);
  b.dev().set_preshared_key(*pa, psk);
  establish();
  EXPECT_EQ(pb->handshakes_completed, 1u);

  // Fresh pair with different PSKs: the response does not decrypt.
  crypto::SecretKey other;
  other.randomize();
  b.dev().set_preshared_key(*pa, other);
  clock.advance(kRekeyTimeout + kSecond);
  ASSERT_EQ(a.dev().initiate_handshake(*pb, now()), Drop::kOk);
  pump();
  EXPECT_EQ(pb->handshakes_completed, 1u);
  EXPECT_EQ(a.dev().drops(Drop::kHandshakeDecrypt), 1u);
}

TEST_F(PairTest, UnknownPeerIsRejected) {
  Node stranger(ep(9));
  Peer* to_b = stranger.dev().add_peer(b.pub);
  to_b->endpoint = b.addr;
  ASSERT_EQ(stranger.t.send(*to_b, packet(32, 1).data(), 32, now()), Drop::kOk);
  ASSERT_EQ(stranger.wire.out.size(), 1u);
  const Datagram d = stranger.wire.out.front();
  EXPECT_EQ(deliver(d).drop, Drop::kUnknownPeer);
  EXPECT_TRUE(b.wire.out.empty());
}

TEST_F(PairTest, RekeyAfterTimeKeepsTrafficFlowing) {
  establish();
  Keypair* first = pb->keypairs.current();
  clock.advance(kRekeyAfterTime - kSecond);
  ASSERT_EQ(send_a(packet(64, 1)), Drop::kOk);
  EXPECT_EQ(count_type(a.wire.out, MessageType::kInitiation), 0u);
  pump();
  clock.advance(2 * kSecond);
  // The first packet sent past REKEY_AFTER_TIME goes out under the old
  // keypair and triggers a handshake.
  ASSERT_EQ(send_a(packet(64, 2)), Drop::kOk);
  ASSERT_EQ(a.wire.out.size(), 2u);
  EXPECT_EQ(a.wire.out[0].type(), MessageType::kData);
  EXPECT_EQ(a.wire.out[1].type(), MessageType::kInitiation);
  // Hold a data message from B under the old keys: it is in flight during the rekey.
  ASSERT_EQ(send_b(packet(64, 9)), Drop::kOk);
  Datagram in_flight = b.wire.out.back();
  b.wire.out.pop_back();
  pump();
  EXPECT_EQ(pb->handshakes_completed, 2u);
  EXPECT_NE(pb->keypairs.current(), first);
  EXPECT_EQ(pb->keypairs.previous(), first);
  // The old session still decrypts what was in flight.
  const auto r = deliver(in_flight);
  EXPECT_EQ(r.drop, Drop::kOk);
  // And new data flows under the new keys.
  got_b.clear();
  ASSERT_EQ(send_a(packet(64, 3)), Drop::kOk);
  pump();
  ASSERT_EQ(got_b.size(), 1u);
  EXPECT_EQ(pa->keypairs.current()->local_index, pb->keypairs.current()->remote_index);
}

TEST_F(PairTest, NoTrafficAfterRejectAfterTime) {
  establish();
  // Capture a data message from A, deliver it only after the session died.
  ASSERT_EQ(send_a(packet(64, 1)), Drop::kOk);
  Datagram late = a.wire.out.back();
  a.wire.out.clear();
  clock.advance(kRejectAfterTime);
  EXPECT_EQ(deliver(late).drop, Drop::kKeypairExpired);
  // B (responder) cannot send under it either: it stages and initiates.
  ASSERT_EQ(send_b(packet(64, 2)), Drop::kOk);
  EXPECT_EQ(b.t.staged(*pa), 1u);
  EXPECT_EQ(count_type(b.wire.out, MessageType::kInitiation), 1u);
  EXPECT_EQ(count_type(b.wire.out, MessageType::kData), 0u);
  pump();
  ASSERT_EQ(got_a.size(), 1u);  // a new session delivered the staged packet
}

TEST_F(PairTest, LostResponseIsRecoveredByRetry) {
  ASSERT_EQ(send_a(packet(64, 1)), Drop::kOk);
  // Deliver the initiation but lose B's response.
  ASSERT_EQ(deliver(a.wire.out.front()).drop, Drop::kOk);
  a.wire.out.clear();
  ASSERT_EQ(count_type(b.wire.out, MessageType::kResponse), 1u);
  b.wire.out.clear();

  // Nothing before REKEY_TIMEOUT...
  clock.advance(kRekeyTimeout - kMillisecond);
  tick();
  EXPECT_TRUE(a.wire.out.empty());
  // ...a retry by REKEY_TIMEOUT + max jitter.
  clock.advance(kRekeyTimeoutJitterMax + kMillisecond);
  tick();
  ASSERT_EQ(count_type(a.wire.out, MessageType::kInitiation), 1u);
  EXPECT_EQ(pb->timers.handshake_attempts(), 1u);
  pump();
  ASSERT_EQ(got_b.size(), 1u);
  EXPECT_EQ(pb->handshakes_completed, 1u);
  EXPECT_EQ(pb->timers.retransmit_handshake_at(), 0u);
}

TEST_F(PairTest, HandshakeGivesUpAfterRekeyAttemptTime) {
  ASSERT_EQ(send_a(packet(64, 1)), Drop::kOk);
  std::size_t initiations = count_type(a.wire.out, MessageType::kInitiation);
  a.wire.out.clear();
  // B is unreachable. Step past each retransmit deadline.
  for (int i = 0; i < 40; ++i) {
    clock.advance(kRekeyTimeout + kRekeyTimeoutJitterMax);
    tick();
    initiations += count_type(a.wire.out, MessageType::kInitiation);
    a.wire.out.clear();
  }
  // As in the Linux module and wireguard-go: retries while attempts <=
  // MAX_TIMER_HANDSHAKES, i.e. the first initiation plus 19 retries
  // (~100 s, just past REKEY_ATTEMPT_TIME), then silence.
  EXPECT_EQ(initiations, 1u + kMaxTimerHandshakes + 1u);
  EXPECT_EQ(a.t.staged(*pb), 0u);  // purged when it gave up
  EXPECT_NE(pb->timers.zero_key_material_at(), 0u);
}

// Multi-lcore hosts: each lcore's device holds only the peers it owns. An
// initiation that lands on the wrong lcore yields the initiator's key
// (uncounted), and the owner completes it without asking for mac2 again.
TEST_F(PairTest, ForeignInitiationIsHandedToTheOwningDevice) {
  Node other(b.addr);  // same address, same private key, no peers
  other.dev().set_private_key(b.priv);
  ASSERT_TRUE(other.dev().set_index_tag(0x80000000u, 0x80000000u));
  ASSERT_TRUE(b.dev().set_index_tag(0x80000000u, 0));
  ASSERT_EQ(send_a(packet(64, 1)), Drop::kOk);
  ASSERT_EQ(a.wire.out.size(), 1u);
  const Datagram init = a.wire.out.front();
  a.wire.out.clear();

  crypto::PublicKey who{};
  HandshakeRouting r;
  r.foreign_initiator = &who;
  EXPECT_EQ(other.dev().receive_handshake(init.bytes.data(), init.bytes.size(), init.from, now(), &r),
            Drop::kUnknownPeer);
  EXPECT_TRUE(r.foreign);
  EXPECT_EQ(who, a.pub);
  EXPECT_EQ(other.dev().drops(Drop::kUnknownPeer), 0u);  // the host decides
  EXPECT_TRUE(other.wire.out.empty());

  // Without the routing block it is an ordinary counted drop.
  EXPECT_EQ(other.dev().receive_handshake(init.bytes.data(), init.bytes.size(), init.from, now()),
            Drop::kUnknownPeer);
  EXPECT_EQ(other.dev().drops(Drop::kUnknownPeer), 1u);

  // The owner is loaded, but the receiving lcore already applied cookie
  // mode: no second cookie round trip.
  b.dev().set_under_load(true);
  HandshakeRouting owner;
  owner.macs_checked = true;
  EXPECT_EQ(b.dev().receive_handshake(init.bytes.data(), init.bytes.size(), init.from, now(), &owner),
            Drop::kOk);
  EXPECT_FALSE(owner.foreign);
  EXPECT_EQ(owner.peer, pa);
  EXPECT_EQ(r.peer, nullptr);
  ASSERT_EQ(b.wire.out.size(), 1u);
  EXPECT_EQ(b.wire.out.front().type(), MessageType::kResponse);
  // The response's sender index (our receiver index) carries b's tag.
  EXPECT_EQ(load_le32(b.wire.out.front().bytes.data() + 4) & 0x80000000u, 0u);
  pump();
  EXPECT_EQ(pb->handshakes_completed, 1u);
  ASSERT_EQ(got_b.size(), 1u);

  // The same message unrouted, under load, gets a cookie instead.
  Node loaded(b.addr);
  loaded.dev().set_private_key(b.priv);
  loaded.dev().add_peer(a.pub);
  loaded.dev().set_under_load(true);
  EXPECT_EQ(loaded.dev().receive_handshake(init.bytes.data(), init.bytes.size(), init.from, now()),
            Drop::kCookieSent);
}

TEST_F(PairTest, PrecomputedStaticStaticWorksAsComputed) {
  // B gets a third peer whose DH was computed outside the device: a
  // handshake with it must work exactly as with a computed one.
  Node c(ep(3));
  Peer* to_b = c.dev().add_peer(b.pub);
  to_b->endpoint = b.addr;
  crypto::SecretKey ss;
  ASSERT_TRUE(crypto::x25519(ss, b.priv, c.pub));
  Peer* pc = b.dev().add_peer(c.pub, &ss);
  ASSERT_NE(pc, nullptr);
  EXPECT_TRUE(crypto::ct_equal(pc->handshake.precomputed_static_static.data(), ss.data(), 32));
  ASSERT_EQ(c.t.send(*to_b, packet(32, 1).data(), 32, now()), Drop::kOk);
  ASSERT_EQ(c.wire.out.size(), 1u);
  EXPECT_EQ(b.t.receive(c.wire.out.front().bytes.data(), c.wire.out.front().bytes.size(), c.addr, now(), rx,
                        sizeof rx).drop,
            Drop::kOk);
  EXPECT_EQ(b.wire.out.size(), 1u);  // the response
}

TEST_F(PairTest, CookieReplyUnderLoad) {
  b.dev().set_under_load(true);
  ASSERT_EQ(send_a(packet(64, 1)), Drop::kOk);
  pump();
  // B answered with a cookie reply instead of a response.
  EXPECT_EQ(b.dev().drops(Drop::kCookieSent), 1u);
  EXPECT_EQ(pb->handshakes_completed, 0u);
  EXPECT_TRUE(pb->cookie.has_fresh_cookie(now().mono));

  // The retry carries mac2 and is processed although B is still loaded.
  clock.advance(kRekeyTimeout + kRekeyTimeoutJitterMax);
  tick();
  pump();
  EXPECT_EQ(b.dev().drops(Drop::kCookieSent), 1u);
  EXPECT_EQ(pb->handshakes_completed, 1u);
  ASSERT_EQ(got_b.size(), 1u);
}

TEST_F(PairTest, CookieIsBoundToSourceAddress) {
  b.dev().set_under_load(true);
  ASSERT_EQ(send_a(packet(64, 1)), Drop::kOk);
  pump();
  ASSERT_TRUE(pb->cookie.has_fresh_cookie(now().mono));
  // A moves to another address: its cookie no longer proves reachability.
  a.addr = ep(7);
  a.wire.set_self(a.addr);
  clock.advance(kRekeyTimeout + kRekeyTimeoutJitterMax);
  tick();
  ASSERT_EQ(count_type(a.wire.out, MessageType::kInitiation), 1u);
  ASSERT_EQ(deliver(a.wire.out.front()).drop, Drop::kCookieSent);
  EXPECT_EQ(b.dev().drops(Drop::kCookieSent), 2u);
}

TEST_F(PairTest, CookieExpiresWithSecretRotation) {
  b.dev().set_under_load(true);
  ASSERT_EQ(send_a(packet(64, 1)), Drop::kOk);
  pump();
  ASSERT_TRUE(pb->cookie.has_fresh_cookie(now().mono));
  // The initiator stops using a cookie before the responder's secret rotates.
  clock.advance(kCookieSecretMaxAge - kCookieSecretLatency);
  EXPECT_FALSE(pb->cookie.has_fresh_cookie(now().mono));
  // And the responder's rotated secret rejects mac2 made with the old cookie.
  std::uint8_t msg[kInitiationLen] = {1};
  pb->cookie.add_macs(msg, sizeof msg, now().mono - kSecond);  // still "fresh" a second ago
  clock.advance(kCookieSecretLatency);
  EXPECT_FALSE(b.dev().cookie_checker().check_mac2(msg, sizeof msg, a.addr, now().mono));
}

TEST_F(PairTest, CookieReplyForWrongMessageIsRejected) {
  b.dev().set_under_load(true);
  ASSERT_EQ(send_a(packet(64, 1)), Drop::kOk);
  ASSERT_EQ(deliver(a.wire.out.front()).drop, Drop::kCookieSent);
  a.wire.out.clear();
  Datagram reply = b.wire.out.front();
  b.wire.out.clear();
  reply.bytes[40] ^= 1;  // inside the encrypted cookie
  EXPECT_EQ(deliver(reply).drop, Drop::kBadCookieReply);
  EXPECT_FALSE(pb->cookie.has_fresh_cookie(now().mono));
}

TEST_F(PairTest, ReplayedInitiationAndFloodAreRejected) {
  ASSERT_EQ(send_a(packet(64, 1)), Drop::kOk);
  const Datagram init = a.wire.out.front();
  a.wire.out.clear();
  ASSERT_EQ(deliver(init).drop, Drop::kOk);
  b.wire.out.clear();
  EXPECT_EQ(deliver(init).drop, Drop::kStaleTimestamp);
  EXPECT_TRUE(b.wire.out.empty());

  // A fresh initiation (newer timestamp) only 17 ms later is a flood.
  clock.advance(17 * kMillisecond);
  pb->sent_any_handshake = false;  // lift A's own rate limit for the test
  ASSERT_EQ(a.dev().initiate_handshake(*pb, now()), Drop::kOk);
  EXPECT_EQ(deliver(a.wire.out.back()).drop, Drop::kInitiationFlood);
  a.wire.out.clear();
  // Past the flood interval it is accepted.
  clock.advance(kMinInitiationInterval);
  pb->sent_any_handshake = false;
  ASSERT_EQ(a.dev().initiate_handshake(*pb, now()), Drop::kOk);
  EXPECT_EQ(deliver(a.wire.out.back()).drop, Drop::kOk);
}

TEST_F(PairTest, InitiationsAreRateLimited) {
  ASSERT_EQ(a.dev().initiate_handshake(*pb, now()), Drop::kOk);
  clock.advance(kRekeyTimeout - kMillisecond);
  EXPECT_EQ(a.dev().initiate_handshake(*pb, now()), Drop::kRateLimited);
  clock.advance(kMillisecond);
  EXPECT_EQ(a.dev().initiate_handshake(*pb, now()), Drop::kOk);
  EXPECT_EQ(count_type(a.wire.out, MessageType::kInitiation), 2u);
}

TEST_F(PairTest, DataReplayIsDropped) {
  establish();
  ASSERT_EQ(send_a(packet(64, 1)), Drop::kOk);
  const Datagram d = a.wire.out.front();
  a.wire.out.clear();
  EXPECT_EQ(deliver(d).drop, Drop::kOk);
  EXPECT_EQ(deliver(d).drop, Drop::kReplay);
  EXPECT_EQ(b.dev().drops(Drop::kReplay), 1u);
}

TEST_F(PairTest, TamperedDataIsDropped) {
  establish();
  ASSERT_EQ(send_a(packet(64, 1)), Drop::kOk);
  Datagram d = a.wire.out.front();
  a.wire.out.clear();
  d.bytes[20] ^= 0x80;
  EXPECT_EQ(deliver(d).drop, Drop::kDataAuth);
  // The counter was not consumed by the forgery: the genuine one still passes.
  d.bytes[20] ^= 0x80;
  EXPECT_EQ(deliver(d).drop, Drop::kOk);
}

TEST_F(PairTest, RoamingFollowsAuthenticatedSource) {
  establish();
  a.addr = ep(42, 40000);
  a.wire.set_self(a.addr);
  ASSERT_EQ(send_a(packet(64, 1)), Drop::kOk);
  pump();
  EXPECT_EQ(pa->endpoint, a.addr);
  // B's next message goes to the new address.
  ASSERT_EQ(send_b(packet(64, 2)), Drop::kOk);
  EXPECT_EQ(b.wire.out.back().to, a.addr);
  // A forged packet from elsewhere does not move the endpoint.
  ASSERT_EQ(send_a(packet(64, 3)), Drop::kOk);
  Datagram forged = a.wire.out.back();
  a.wire.out.clear();
  forged.from = ep(66);
  forged.bytes[30] ^= 1;
  EXPECT_EQ(deliver(forged).drop, Drop::kDataAuth);
  EXPECT_EQ(pa->endpoint, a.addr);
}

TEST_F(PairTest, CounterLimitsRekeyAndReject) {
  establish();
  SendLine& send = pb->send;
  send.counter = kRekeyAfterMessages + 1;
  clock.advance(kRekeyTimeout);
  ASSERT_EQ(send_a(packet(64, 1)), Drop::kOk);
  EXPECT_EQ(count_type(a.wire.out, MessageType::kInitiation), 1u);
  a.wire.out.clear();
  send.counter = kRejectAfterMessages;
  ASSERT_EQ(send_a(packet(64, 2)), Drop::kOk);
  EXPECT_EQ(count_type(a.wire.out, MessageType::kData), 0u);  // staged, not sent
  EXPECT_EQ(a.t.staged(*pb), 1u);
}

TEST_F(PairTest, ManyPeersHandshakeWithOneHub) {
  constexpr int kPeers = 300;
  Node hub(ep(200), kPeers);
  std::vector<std::unique_ptr<Node>> spokes;
  for (int i = 0; i < kPeers; ++i) {
    const std::uint8_t addr[4] = {10, 1, static_cast<std::uint8_t>(i >> 8),
                                  static_cast<std::uint8_t>(i)};
    spokes.push_back(std::make_unique<Node>(Endpoint::v4(addr, 51820)));
    ASSERT_NE(hub.dev().add_peer(spokes.back()->pub), nullptr);
    Peer* p = spokes.back()->dev().add_peer(hub.pub);
    p->endpoint = hub.addr;
  }
  EXPECT_EQ(hub.dev().add_peer(hub.pub), nullptr);  // our own key
  EXPECT_EQ(hub.dev().add_peer(spokes[0]->pub), nullptr);  // duplicate
  int delivered = 0;
  for (auto& s : spokes) {
    Peer* p = s->dev().find_peer(hub.pub);
    ASSERT_EQ(s->t.send(*p, packet(32, 1).data(), 32, now()), Drop::kOk);
    auto init = s->wire.out.front();
    s->wire.out.clear();
    ASSERT_EQ(hub.t.receive(init.bytes.data(), init.bytes.size(), init.from, now(), rx, sizeof rx).drop,
              Drop::kOk);
    auto resp = hub.wire.out.front();
    hub.wire.out.clear();
    ASSERT_EQ(resp.to, s->addr);
    ASSERT_EQ(s->t.receive(resp.bytes.data(), resp.bytes.size(), resp.from, now(), rx, sizeof rx).drop,
              Drop::kOk);
    auto data = s->wire.out.front();
    s->wire.out.clear();
    auto r = hub.t.receive(data.bytes.data(), data.bytes.size(), data.from, now(), rx, sizeof rx);
    ASSERT_EQ(r.drop, Drop::kOk);
    delivered += r.len == 32;
  }
  EXPECT_EQ(delivered, kPeers);
  // One keypair index per peer remains.
  EXPECT_EQ(hub.dev().index_count(), static_cast<std::size_t>(kPeers));
}

TEST_F(PairTest, OnlyWhatLeftIsCountedAsSent) {
  establish();
  const std::uint64_t before = pb->tx_bytes;
  a.wire.fail_sends = true;
  ASSERT_EQ(send_a(packet(64, 1)), Drop::kOk);
  EXPECT_EQ(pb->tx_bytes, before);
  a.wire.fail_sends = false;
  ASSERT_EQ(send_a(packet(64, 2)), Drop::kOk);
  EXPECT_EQ(pb->tx_bytes, before + kDataHeaderLen + 64 + kTagLen);
}

TEST_F(PairTest, RemovingAPeerForgetsItsIndices) {
  establish();
  const std::size_t before = b.dev().index_count();
  EXPECT_GT(before, 0u);
  b.dev().remove_peer(pa);
  pa = nullptr;
  EXPECT_EQ(b.dev().index_count(), 0u);
  ASSERT_EQ(send_a(packet(64, 1)), Drop::kOk);
  EXPECT_EQ(deliver(a.wire.out.back()).drop, Drop::kUnknownIndex);
}

// A burst receiver's two steps (accept_receive per message, received once
// per keypair) leave the peer as complete_receive per message would: every
// counter recorded (a duplicate in the burst refused), bytes summed, the
// last source taken, the keepalive timer armed.
// Each keypair's receive line (its index slot) carries which keypair it is
// (current, next) and whether we initiated it: receiving reads them there
// (key confirmation, the last-minute rekey), so they must follow every
// rotation.
TEST_F(PairTest, ReceiveLinesFollowTheRotation) {
  establish();  // A initiated: on both sides the session is current
  const Keypair* a1 = pb->keypairs.current();
  const Keypair* b1 = pa->keypairs.current();
  ASSERT_NE(a1, nullptr);
  ASSERT_NE(b1, nullptr);
  ASSERT_NE(a1->line, nullptr);
  EXPECT_TRUE(a1->line->has(IndexSlot::kCurrent));
  EXPECT_TRUE(a1->line->has(IndexSlot::kInitiator));
  EXPECT_FALSE(b1->line->has(IndexSlot::kInitiator));
  EXPECT_FALSE(b1->line->has(IndexSlot::kNext));

  // B starts a new handshake: A answers and holds the new keypair as next
  // until B's first data message under it.
  const Keypair* a2 = b_rekeys();
  ASSERT_NE(a2, nullptr);
  EXPECT_TRUE(a2->line->has(IndexSlot::kNext));
  EXPECT_FALSE(a2->line->has(IndexSlot::kCurrent));
  EXPECT_FALSE(a2->line->has(IndexSlot::kInitiator));
  EXPECT_TRUE(a1->line->has(IndexSlot::kCurrent));
  ASSERT_EQ(a.wire.out.size(), 1u);
  ASSERT_EQ(deliver(a.wire.out.front()).drop, Drop::kOk);  // the response: B's new current
  a.wire.out.clear();

  ASSERT_EQ(send_b(packet(64, 3)), Drop::kOk);
  pump();
  ASSERT_EQ(got_a.size(), 1u);
  // Confirmed: next became current, the old current previous.
  EXPECT_EQ(pb->keypairs.current(), a2);
  EXPECT_EQ(pb->keypairs.previous(), a1);
  EXPECT_EQ(pb->keypairs.next(), nullptr);
  EXPECT_TRUE(a2->line->has(IndexSlot::kCurrent));
  EXPECT_FALSE(a2->line->has(IndexSlot::kNext));
  EXPECT_FALSE(a1->line->has(IndexSlot::kCurrent));
  EXPECT_FALSE(a1->line->has(IndexSlot::kNext));
  EXPECT_EQ(pb->handshakes_completed, 2u);
}

// Sending reads only the peer's send line (keypair.h): it must follow the
// current keypair through every rotation, start each session's nonces at
// 0, and hold the only copy of the send key; with no keypair current it
// must refuse to send.
TEST_F(PairTest, SendLineFollowsTheRotation) {
  establish();  // A initiated
  const SendLine& line = pb->send;  // A's send state toward B
  const Keypair* a1 = pb->keypairs.current();
  ASSERT_NE(a1, nullptr);
  EXPECT_TRUE(line.active());
  EXPECT_TRUE(line.initiator);
  EXPECT_EQ(line.remote_index, a1->remote_index);
  EXPECT_EQ(line.birth, a1->birth);
  EXPECT_FALSE(line.key.is_zero());
  EXPECT_TRUE(a1->send_key.is_zero());  // one copy of the key: the line's
  const std::uint64_t sent = line.counter;
  ASSERT_EQ(send_a(packet(64, 1)), Drop::kOk);
  EXPECT_EQ(line.counter, sent + 1);
  pump();
  got_b.clear();

  // B rekeys: A's new keypair waits in next (with its send key), and A
  // keeps sending under the old one until B's first message confirms it.
  const Keypair* a2 = b_rekeys();
  ASSERT_NE(a2, nullptr);
  EXPECT_FALSE(a2->send_key.is_zero());
  EXPECT_EQ(line.remote_index, a1->remote_index);
  ASSERT_EQ(a.wire.out.size(), 1u);
  ASSERT_EQ(deliver(a.wire.out.front()).drop, Drop::kOk);
  a.wire.out.clear();
  ASSERT_EQ(send_b(packet(64, 2)), Drop::kOk);
  pump();
  ASSERT_EQ(pb->keypairs.current(), a2);
  EXPECT_EQ(line.remote_index, a2->remote_index);
  EXPECT_EQ(line.birth, a2->birth);
  EXPECT_FALSE(line.initiator);
  EXPECT_TRUE(a2->send_key.is_zero());
  const std::uint64_t fresh = line.counter;
  EXPECT_LE(fresh, 1u);  // the new session's nonces start at 0 (a keepalive may have used one)
  got_b.clear();
  ASSERT_EQ(send_a(packet(64, 3)), Drop::kOk);
  EXPECT_EQ(line.counter, fresh + 1);
  pump();
  ASSERT_EQ(got_b.size(), 1u);  // B opens it: the line holds the new session's key
  EXPECT_EQ(got_b[0], packet(64, 3));

  // Keys erased (3 x REJECT_AFTER_TIME without a new session): the line is
  // wiped and refuses to send; the packet waits for a handshake.
  clock.advance(3 * kRejectAfterTime + kSecond);
  tick();
  ASSERT_EQ(pb->keypairs.current(), nullptr);
  EXPECT_FALSE(line.active());
  EXPECT_TRUE(line.key.is_zero());
  EXPECT_FALSE(line.can_send(now().mono));
  a.wire.out.clear();
  ASSERT_EQ(send_a(packet(64, 4)), Drop::kOk);
  EXPECT_EQ(count_type(a.wire.out, MessageType::kData), 0u);
  EXPECT_EQ(a.t.staged(*pb), 1u);
}

TEST_F(PairTest, BurstReceiveInTwoSteps) {
  establish();
  std::vector<Datagram> burst;
  for (std::uint8_t i = 0; i < 3; ++i) {
    ASSERT_EQ(send_a(packet(64, i)), Drop::kOk);
    burst.push_back(a.wire.out.back());
  }
  a.wire.out.clear();
  burst.push_back(burst.front());  // a duplicate inside the burst
  const std::uint64_t rx_before = pa->rx_bytes;
  const Endpoint moved = ep(77, 40000);
  // As the data plane does: every message pre-checked, then decrypted, then
  // accepted (so the duplicate passes the pre-check).
  RxSlot slots[4];
  for (std::size_t i = 0; i < burst.size(); ++i) {
    const std::vector<std::uint8_t>& m = burst[i].bytes;
    ASSERT_EQ(b.dev().prepare_receive(m.data(), m.size(), now().mono, slots[i]), Drop::kOk);
  }
  crypto::AeadBurst aead;
  IndexSlot* line = nullptr;
  Peer* peer = nullptr;
  std::size_t bytes = 0, data = 0;
  Drop verdicts[4];
  for (std::size_t i = 0; i < burst.size(); ++i) {
    std::vector<std::uint8_t>& m = burst[i].bytes;
    const std::uint32_t ct = static_cast<std::uint32_t>(m.size() - kDataMinLen);
    crypto::AeadOp op{m.data() + kDataHeaderLen, ct, m.data() + kDataHeaderLen + ct,
                      slots[i].line->recv_key.data(), slots[i].counter, nullptr, 0};
    bool ok = false;
    aead.decrypt(&op, 1, &ok);
    ASSERT_TRUE(ok);
    verdicts[i] = b.dev().accept_receive(slots[i]);
    if (verdicts[i] == Drop::kOk) {
      line = slots[i].line;
      peer = slots[i].peer;
      bytes += m.size();
      data += ct != 0;
    }
  }
  EXPECT_EQ(verdicts[0], Drop::kOk);
  EXPECT_EQ(verdicts[2], Drop::kOk);
  EXPECT_EQ(verdicts[3], Drop::kReplay);
  EXPECT_EQ(b.dev().drops(Drop::kReplay), 1u);
  ASSERT_NE(line, nullptr);
  ASSERT_EQ(peer, pa);
  b.dev().received(*peer, *line, bytes, data, moved, now());
  EXPECT_EQ(pa->rx_bytes - rx_before, 3 * burst[0].bytes.size());
  EXPECT_EQ(pa->endpoint, moved);
  EXPECT_NE(pa->timers.send_keepalive_at(), 0u);
}

}  // namespace
}  // namespace moongate::wg::test
