// A client connection moving between two Servers (two shards of a relay):
// Server::detach() on one, Server::adopt() on the other, and the tally the
// move rule reads (derp/route_tally.h).
#include <gtest/gtest.h>

#include "derp/route_tally.h"
#include "tests/unit/derp/harness.h"

namespace moongate::derp::test {
namespace {

std::vector<std::uint8_t> numbered(std::uint8_t i, std::size_t n = 1200) {
  std::vector<std::uint8_t> p(n, 0);
  p[0] = i;
  return p;
}

std::string send_frame(const Key& to, std::span<const std::uint8_t> data) {
  std::string f(kHeaderLen + kKeyLen + data.size(), '\0');
  encode_packet(reinterpret_cast<std::uint8_t*>(f.data()), FrameType::kSendPacket, to, data);
  return f;
}

Key key_of(std::uint8_t b) {
  Key k{};
  k.fill(b);
  return k;
}

TEST(RouteTally, FirstRouteOfAWindowIsTheCandidate) {
  RouteTally t;
  const Key own = key_of(5), peer = key_of(3);
  for (int i = 0; i < 100; ++i) t.note(2, peer);
  const auto w = t.roll(own);
  EXPECT_EQ(w.route, 2u);
  EXPECT_EQ(w.total, 100u);
  EXPECT_EQ(w.candidate, 100u);
  EXPECT_TRUE(w.above_peers);
  EXPECT_EQ(t.roll(own).total, 0u);  // a quiet window
}

TEST(RouteTally, MajorityIsMeasuredFromTheNextWindow) {
  RouteTally t;
  const Key own = key_of(5), peer = key_of(3);
  for (int i = 0; i < 10; ++i) t.note(kLocalRoute, peer);
  for (int i = 0; i < 90; ++i) t.note(3, peer);
  auto w = t.roll(own);
  EXPECT_EQ(w.total, 100u);
  EXPECT_EQ(w.route, kLocalRoute);  // the first packet's
  EXPECT_EQ(w.candidate, 10u);
  for (int i = 0; i < 5; ++i) t.note(1, peer);
  for (int i = 0; i < 95; ++i) t.note(3, peer);
  w = t.roll(own);
  EXPECT_EQ(w.route, 3u);  // the last window's majority
  EXPECT_EQ(w.total, 100u);
  EXPECT_EQ(w.candidate, 95u);  // counted exactly
}

TEST(RouteTally, AnEvenSplitIsNoMajority) {
  RouteTally t;
  const Key own = key_of(5), peer = key_of(3);
  for (int i = 0; i < 60; ++i) t.note(2, peer);
  t.roll(own);
  // Routes 1 and 2 in turn: neither has more than half, the vote ends empty.
  for (int i = 0; i < 100; ++i) t.note(static_cast<Route>(1 + i % 2), peer);
  auto w = t.roll(own);
  EXPECT_EQ(w.route, 2u);
  EXPECT_EQ(w.candidate, 50u);
  // So the next window starts open: its first packet's route is measured.
  t.note(0, peer);
  for (int i = 0; i < 9; ++i) t.note(1, peer);
  w = t.roll(own);
  EXPECT_EQ(w.route, 0u);
  EXPECT_EQ(w.candidate, 1u);
  EXPECT_EQ(w.total, 10u);
}

// The tie-break: above every key seen through the candidate route, and
// only through it, in this window only.
TEST(RouteTally, AbovePeersThroughTheCandidateRoute) {
  RouteTally t;
  const Key own = key_of(5);
  for (int i = 0; i < 50; ++i) t.note(1, key_of(3));
  t.note(1, key_of(4));
  t.note(2, key_of(9));  // another route: not the candidate's
  auto w = t.roll(own);
  EXPECT_EQ(w.route, 1u);
  EXPECT_TRUE(w.above_peers);
  t.note(1, key_of(3));
  t.note(1, key_of(6));  // one peer above us: the other end may move, not us
  w = t.roll(own);
  EXPECT_FALSE(w.above_peers);
  t.note(1, key_of(3));
  EXPECT_TRUE(t.roll(own).above_peers);  // a new window forgets key 6
  EXPECT_FALSE(t.roll(own).above_peers);  // no packet: nothing to be above
  // Keys alike in their first 8 bytes: neither is above the other.
  Key twin = own;
  twin[31] ^= 1;
  t.note(1, twin);
  EXPECT_FALSE(t.roll(own).above_peers);
}

// Shard 0 has x; shard 1 has c, which talks only to x (through route 0).
struct TwoShards {
  ServerConfig cfg = Harness::make_config();
  Harness s0{cfg}, s1{cfg};
  Harness::Client x = s0.connect(), c = s1.connect();
  TwoShards() {
    s0.read(x);
    s1.read(c);
    // What the shards' PeerAdd records do.
    s0.server.add_remote(c.pub, 1, true, {}, kPresentIsRegular, 1);
    s1.server.add_remote(x.pub, 0, true, {}, kPresentIsRegular, 1);
  }
};

TEST(ServerMove, QueuesPartialFrameAndRoutesMoveSilently) {
  TwoShards t;
  auto& s0 = t.s0;
  auto& s1 = t.s1;
  // c sends to x through route 0; x's packets reach c through route 0.
  s1.send(t.c, t.x.pub, numbered(1));
  ASSERT_EQ(s1.rec.forwards.size(), 1u);
  EXPECT_EQ(s1.rec.forwards[0].route, 0u);
  for (std::uint8_t i = 1; i <= 3; ++i) s1.server.deliver(t.x.pub, t.c.pub, numbered(i), 1, false, 0);
  s1.server.deliver(t.x.pub, t.c.pub, disco_packet(), 1, false, 0);
  s1.server.roll_tally(t.c.id);
  s1.server.deliver(t.x.pub, t.c.pub, numbered(9), 1, false, 0);
  const auto w = s1.server.roll_tally(t.c.id);
  EXPECT_EQ(w.route, 0u);
  EXPECT_EQ(w.total, 1u);
  EXPECT_EQ(w.candidate, 1u);
  // Half a SendPacket frame from c, not yet read by the client side of c.
  const std::string half = send_frame(t.x.pub, numbered(7));
  s1.server.receive(t.c.id, bytes(half.substr(0, 700)), 2);

  ASSERT_TRUE(s1.server.movable(t.c.id));
  const auto locals0 = s0.rec.local.size(), locals1 = s1.rec.local.size();
  MovedClient m;
  s1.server.detach(t.c.id, 0, m);
  EXPECT_FALSE(s1.server.is_connected(t.c.pub));
  EXPECT_EQ(s1.server.connections(), 0u);
  EXPECT_EQ(s1.server.pool().in_use(), 0u);  // every frame was copied out
  EXPECT_EQ(m.pkts.size(), 4u);
  EXPECT_EQ(m.disco.size(), 1u);
  EXPECT_EQ(m.rx.size(), 700u);

  t.c.id = s0.server.adopt(std::move(m), 1, 3);
  EXPECT_TRUE(s0.server.is_active(t.c.id));
  EXPECT_TRUE(s0.server.is_connected(t.c.pub));
  // Nobody was told: no local_peer() either side (the relay's shards send
  // their own kRecPeerMoved), no frames to x.
  EXPECT_EQ(s0.rec.local.size(), locals0);
  EXPECT_EQ(s1.rec.local.size(), locals1);
  EXPECT_TRUE(s0.read(t.x).empty());

  // What was queued on shard 1 comes out on shard 0: disco first, then the
  // packets in order, then one x sends now (local: no forward).
  s0.send(t.x, t.c.pub, numbered(4));
  EXPECT_TRUE(s0.rec.forwards.empty());
  auto f = s0.read(t.c);
  ASSERT_EQ(f.size(), 6u);
  EXPECT_EQ(f[0].payload.size(), 32u + 100);  // the disco packet
  const std::uint8_t want[] = {1, 2, 3, 9, 4};
  for (std::size_t i = 0; i < 5; ++i) {
    EXPECT_EQ(f[i + 1].type, FrameType::kRecvPacket);
    EXPECT_EQ(f[i + 1].payload[32], want[i]) << i;
  }
  // The rest of c's frame, read on shard 0: delivered to x, locally.
  s0.server.receive(t.c.id, bytes(half.substr(700)), 4);
  f = s0.read(t.x);
  ASSERT_EQ(f.size(), 1u);
  EXPECT_EQ(f[0].payload[32], 7);
  // Shard 1 now reaches c through route 0.
  auto y = s1.connect();
  s1.read(y);
  s1.send(y, t.c.pub, numbered(5));
  EXPECT_EQ(s1.rec.forwards.back().route, 0u);
  // When c leaves shard 0, shard 0 tells the siblings as for any client.
  s0.server.closed(t.c.id, 5);
  ASSERT_FALSE(s0.rec.local.empty());
  EXPECT_EQ(s0.rec.local.back(), std::make_pair(t.c.pub, false));
}

// derper's rule, across a move: a client that received from x hears
// PeerGone(disconnected) when x leaves, whichever shard it is on by then.
TEST(ServerMove, SendersGoneFollowTheMovedClient) {
  auto gone_key = [](const Frame& f) {
    Key k{};
    if (f.payload.size() >= k.size()) std::copy_n(f.payload.begin(), k.size(), k.begin());
    return k;
  };
  TwoShards t;
  auto& s0 = t.s0;
  auto& s1 = t.s1;
  // y (on shard 1, as c) and x (on shard 0) both send to c.
  auto y = s1.connect();
  s1.read(y);
  s0.server.add_remote(y.pub, 1, true, {}, kPresentIsRegular, 1);
  s1.send(y, t.c.pub, numbered(1));
  s1.server.deliver(t.x.pub, t.c.pub, numbered(2), 1, false, 0);
  EXPECT_EQ(s1.read(t.c).size(), 2u);
  MovedClient m;
  s1.server.detach(t.c.id, 0, m);
  ASSERT_EQ(m.senders.size(), 2u);
  t.c.id = s0.server.adopt(std::move(m), 1, 3);
  s0.read(t.c);
  // y leaves shard 1: shard 0 hears it as the route's removal.
  s1.server.closed(y.id, 4);
  s0.server.remove_remote(y.pub, 1, 4);
  auto f = s0.read(t.c);
  ASSERT_EQ(f.size(), 1u);
  EXPECT_EQ(f[0].type, FrameType::kPeerGone);
  EXPECT_EQ(gone_key(f[0]), y.pub);
  EXPECT_EQ(f[0].payload[32], static_cast<std::uint8_t>(PeerGoneReason::kDisconnected));
  // x, local to shard 0 now, leaves too: the same.
  s0.server.closed(t.x.id, 5);
  f = s0.read(t.c);
  ASSERT_EQ(f.size(), 1u);
  EXPECT_EQ(f[0].type, FrameType::kPeerGone);
  EXPECT_EQ(gone_key(f[0]), t.x.pub);
  // And shard 1 kept nothing of c's senders.
  EXPECT_EQ(s1.server.counter(Counter::peer_gone_disconnected), 0u);
}

TEST(ServerMove, OnlyALonelyClientMoves) {
  const Key mesh = Harness::mesh_key();
  Harness h(Harness::make_mesh_config());
  auto a = h.connect();
  auto a2 = h.connect(1, std::nullopt, &a);  // a second connection of a's key
  auto m = h.connect(1, mesh);
  auto b = h.connect();
  auto pending = h.raw_open();
  EXPECT_FALSE(h.server.movable(a.id));
  EXPECT_FALSE(h.server.movable(a2.id));
  EXPECT_FALSE(h.server.movable(m.id));
  EXPECT_FALSE(h.server.movable(pending.id));
  EXPECT_TRUE(h.server.movable(b.id));
  h.server.add_remote(b.pub, 1, true, {}, kPresentIsRegular, 1);  // b also on shard 1
  EXPECT_FALSE(h.server.movable(b.id));
}

TEST(ServerMove, MoveRemoteSwapsTheRouteSilently) {
  const Key mesh = Harness::mesh_key();
  Harness h(Harness::make_mesh_config());
  auto w = h.connect(1, mesh);
  h.server.receive(w.id, bytes(frame_bytes(FrameType::kWatchConns, {})), 1);
  auto b = h.connect();
  h.read(b);
  Key k;
  k.fill(7);
  h.server.add_remote(k, 2, true, {}, kPresentIsRegular, 1);
  h.read(w);
  h.server.move_remote(k, 2, 1, {}, kPresentIsRegular);
  EXPECT_TRUE(h.read(w).empty());  // the watcher sees no change
  h.send(b, k, numbered(1));
  ASSERT_EQ(h.rec.forwards.size(), 1u);
  EXPECT_EQ(h.rec.forwards[0].route, 1u);
  // It leaves from shard 1: gone for everyone.
  h.server.remove_remote(k, 1, 2);
  auto f = h.read(w);
  ASSERT_EQ(f.size(), 1u);
  EXPECT_EQ(f[0].type, FrameType::kPeerGone);
}

}  // namespace
}  // namespace moongate::derp::test
