// The DERP server state machine, driven in memory with a manual clock.
#include <gtest/gtest.h>

#include "tests/unit/derp/harness.h"

namespace moongate::derp::test {
namespace {

constexpr std::uint64_t kS = kSecond;

std::vector<std::uint8_t> payload_of(std::size_t n, std::uint8_t v = 0x11) {
  return std::vector<std::uint8_t>(n, v);
}

TEST(Server, HandshakeSendsServerKeyThenServerInfo) {
  Harness h;
  auto c = h.raw_open();
  auto f = h.read(c);
  ASSERT_EQ(f.size(), 1u);
  EXPECT_EQ(f[0].type, FrameType::kServerKey);
  Key sk;
  ASSERT_TRUE(decode_server_key(f[0].payload, sk));
  EXPECT_EQ(sk, h.server.config().public_key);
  ClientInfo ci;
  ci.version = 2;
  h.server.receive(c.id, bytes(seal_client_info(c.priv, c.pub, sk, ci)), 1);
  f = h.read(c);
  ASSERT_EQ(f.size(), 1u);
  ASSERT_EQ(f[0].type, FrameType::kServerInfo);
  auto json = open_server_info(f[0].payload, c.priv, sk);
  ASSERT_TRUE(json);
  EXPECT_EQ(*json, "{\"version\":2}");
  EXPECT_TRUE(h.server.is_connected(c.pub));
  EXPECT_EQ(h.rec.admits, 1);
  ASSERT_EQ(h.rec.local.size(), 1u);
  EXPECT_TRUE(h.rec.local[0].second);
}

TEST(Server, FirstFrameMustBeClientInfo) {
  Harness h;
  auto c = h.raw_open();
  const std::uint8_t d[8] = {};
  std::uint8_t ping[kPingFrameLen];
  encode_ping(ping, FrameType::kPing, d);
  h.server.receive(c.id, ping, 1);
  ASSERT_EQ(h.rec.closes.size(), 1u);
  EXPECT_EQ(h.rec.closes[0].second, CloseReason::kHandshakeFailed);
  h.server.closed(c.id, 1);
  EXPECT_EQ(h.server.connections(), 0u);
}

TEST(Server, ForgedClientInfoIsRefused) {
  Harness h;
  auto c = h.raw_open();
  ClientInfo ci;
  auto f = seal_client_info(c.priv, c.pub, h.server.config().public_key, ci);
  f[5] ^= 0x80;  // claims a key it does not hold
  h.server.receive(c.id, bytes(f), 1);
  ASSERT_EQ(h.rec.closes.size(), 1u);
  EXPECT_EQ(h.server.counter(Counter::handshake_failures), 1u);
}

TEST(Server, SendReceive) {
  Harness h;
  auto a = h.connect(), b = h.connect();
  h.read(a);
  h.read(b);
  const auto p = payload_of(1200);
  h.send(a, b.pub, p);
  auto f = h.read(b);
  ASSERT_EQ(f.size(), 1u);
  ASSERT_EQ(f[0].type, FrameType::kRecvPacket);
  ASSERT_EQ(f[0].payload.size(), 32u + 1200);
  EXPECT_TRUE(std::equal(a.pub.begin(), a.pub.end(), f[0].payload.begin()));
  EXPECT_TRUE(std::equal(p.begin(), p.end(), f[0].payload.begin() + 32));
  EXPECT_EQ(h.server.counter(Counter::packets_sent), 1u);
  EXPECT_EQ(h.server.pool().in_use(), 0u);  // the buffer went back once written
}

TEST(Server, FramesSplitAtEveryByte) {
  Harness h;
  auto a = h.raw_open(), b = h.connect();
  h.read(b);
  ClientInfo ci;
  std::string all = seal_client_info(a.priv, a.pub, h.server.config().public_key, ci);
  for (int i = 0; i < 3; ++i) {
    std::string f(kHeaderLen + kKeyLen + 100 + i, '\0');
    encode_packet(reinterpret_cast<std::uint8_t*>(f.data()), FrameType::kSendPacket, b.pub,
                  payload_of(100 + i, static_cast<std::uint8_t>(i)));
    all += f;
  }
  for (char ch : all) h.server.receive(a.id, bytes(std::string(1, ch)), 1);
  auto f = h.read(b);
  ASSERT_EQ(f.size(), 3u);
  for (int i = 0; i < 3; ++i) EXPECT_EQ(f[i].payload.size(), 32u + 100 + i);
  EXPECT_TRUE(h.rec.closes.empty());
}

TEST(Server, PeerGoneNotHereForDiscoIsRateLimited) {
  Harness h;
  auto a = h.connect();
  h.read(a);
  Key nobody;
  nobody.fill(9);
  h.send(a, nobody, payload_of(100));  // not disco: silent drop
  EXPECT_TRUE(h.read(a).empty());
  EXPECT_EQ(h.server.counter(Counter::drop_unknown_dest), 1u);
  for (int i = 0; i < 10; ++i) h.send(a, nobody, disco_packet(), 1);
  auto f = h.read(a);
  ASSERT_EQ(f.size(), 3u);  // the burst
  Key k;
  PeerGoneReason r;
  ASSERT_TRUE(decode_peer_gone(f[0].payload, k, r));
  EXPECT_EQ(k, nobody);
  EXPECT_EQ(r, PeerGoneReason::kNotHere);
  EXPECT_EQ(h.server.counter(Counter::peer_gone_limited), 7u);
  h.send(a, nobody, disco_packet(), 1 + 2 * kS);  // two seconds refill two
  h.send(a, nobody, disco_packet(), 1 + 2 * kS);
  h.send(a, nobody, disco_packet(), 1 + 2 * kS);
  EXPECT_EQ(h.read(a).size(), 2u);
}

TEST(Server, PeerGoneDisconnectedToThoseItSentTo) {
  Harness h;
  auto a = h.connect(), b = h.connect(), c = h.connect();
  h.read(a);
  h.read(b);
  h.read(c);
  h.send(a, b.pub, payload_of(10));
  h.read(b);
  h.server.closed(a.id, 2);
  auto fb = h.read(b);
  ASSERT_EQ(fb.size(), 1u);
  ASSERT_EQ(fb[0].type, FrameType::kPeerGone);
  Key k;
  PeerGoneReason r;
  ASSERT_TRUE(decode_peer_gone(fb[0].payload, k, r));
  EXPECT_EQ(k, a.pub);
  EXPECT_EQ(r, PeerGoneReason::kDisconnected);
  EXPECT_TRUE(h.read(c).empty());  // c never heard from a
  EXPECT_EQ(h.rec.local.back(), std::make_pair(a.pub, false));
}

TEST(Server, DuplicateKeysNewestActiveGoneOnlyAfterLast) {
  Harness h;
  auto w = h.connect(1, std::nullopt);
  auto a1 = h.connect();
  auto a2 = h.connect(1, std::nullopt, &a1);
  auto b = h.connect();
  h.read(a1);
  h.read(a2);
  h.read(b);
  h.send(b, a1.pub, payload_of(5));
  EXPECT_TRUE(h.read(a1).empty());
  EXPECT_EQ(h.read(a2).size(), 1u);  // newest is active
  h.server.closed(a2.id, 2);
  EXPECT_TRUE(h.read(b).empty());  // a1 still there: no PeerGone
  h.send(b, a1.pub, payload_of(5));
  EXPECT_EQ(h.read(a1).size(), 1u);  // the older one is active again
  EXPECT_EQ(h.server.clients(), 3u);
  (void)w;
}

TEST(Server, WatchersSeePresentAndGone) {
  ServerConfig cfg = Harness::make_config();
  Key mesh;
  mesh.fill(0x5a);
  cfg.mesh_key = mesh;
  Harness h(std::move(cfg));
  auto a = h.connect();
  auto w = h.connect(1, mesh);
  EXPECT_EQ(h.rec.admits, 1);  // the mesh peer skipped admission
  EXPECT_TRUE(h.server.is_mesh(w.id));
  h.read(w);
  h.server.receive(w.id, bytes(frame_bytes(FrameType::kWatchConns, {})), 1);
  auto f = h.read(w);
  ASSERT_EQ(f.size(), 2u);  // a and the watcher itself
  for (auto& x : f) EXPECT_EQ(x.type, FrameType::kPeerPresent);
  auto b1 = h.connect();
  auto b2 = h.connect(1, std::nullopt, &b1);
  f = h.read(w);
  ASSERT_EQ(f.size(), 2u);  // one per connection
  PeerPresent p;
  ASSERT_TRUE(decode_peer_present(f[0].payload, p));
  EXPECT_EQ(p.key, b1.pub);
  EXPECT_EQ(p.flags, kPresentIsRegular);
  h.server.closed(b2.id, 2);
  EXPECT_TRUE(h.read(w).empty());
  h.server.closed(b1.id, 2);
  f = h.read(w);
  ASSERT_EQ(f.size(), 1u);
  EXPECT_EQ(f[0].type, FrameType::kPeerGone);
  (void)a;
}

TEST(Server, MeshOnlyFramesNeedTheMeshKey) {
  Harness h(Harness::make_mesh_config());
  Key wrong;
  wrong.fill(2);
  auto a = h.connect(1, wrong);
  EXPECT_FALSE(h.server.is_mesh(a.id));
  h.server.receive(a.id, bytes(frame_bytes(FrameType::kWatchConns, {})), 1);
  ASSERT_EQ(h.rec.closes.size(), 1u);
  EXPECT_EQ(h.rec.closes[0].second, CloseReason::kNotPermitted);
  auto b = h.connect();
  std::uint8_t fwd[5 + 64 + 4];
  encode_forward(fwd, a.pub, b.pub, payload_of(4));
  h.server.receive(b.id, fwd, 1);
  EXPECT_EQ(h.rec.closes.size(), 2u);
}

TEST(Server, ForwardPacketFromMeshIsDeliveredNotReforwarded) {
  const Key mesh = Harness::mesh_key();
  Harness h(Harness::make_mesh_config());
  auto m = h.connect(1, mesh), b = h.connect();
  h.read(b);
  Key src, far;
  src.fill(3);
  far.fill(4);
  h.server.add_remote(far, 7, false, {}, 0, 1);
  std::uint8_t fwd[5 + 64 + 4];
  encode_forward(fwd, src, b.pub, payload_of(4));
  h.server.receive(m.id, fwd, 1);
  auto f = h.read(b);
  ASSERT_EQ(f.size(), 1u);
  EXPECT_EQ(f[0].type, FrameType::kRecvPacket);
  EXPECT_TRUE(std::equal(src.begin(), src.end(), f[0].payload.begin()));
  encode_forward(fwd, src, far, payload_of(4));  // for a key only known remotely
  h.server.receive(m.id, fwd, 1);
  EXPECT_TRUE(h.rec.forwards.empty());
  EXPECT_EQ(h.server.counter(Counter::drop_unknown_dest), 1u);
}

TEST(Server, PacketsToRemoteKeysLeaveThroughTheirRoute) {
  Harness h;
  auto a = h.connect();
  Key far;
  far.fill(4);
  h.server.add_remote(far, 3, true, {}, kPresentIsRegular, 1);
  h.send(a, far, payload_of(7));
  ASSERT_EQ(h.rec.forwards.size(), 1u);
  EXPECT_EQ(h.rec.forwards[0].route, 3u);
  EXPECT_EQ(h.rec.forwards[0].src, a.pub);
  EXPECT_EQ(h.rec.forwards[0].data.size(), 7u);
  h.server.remove_route(3, 2);
  h.send(a, far, payload_of(7));
  EXPECT_EQ(h.rec.forwards.size(), 1u);
  EXPECT_EQ(h.server.remotes(), 0u);
}

TEST(Server, FullQueueDropsTheOldest) {
  Harness h;
  auto a = h.connect(), b = h.connect();
  h.read(a);
  h.read(b);
  for (int i = 0; i < 40; ++i) h.send(a, b.pub, payload_of(10, static_cast<std::uint8_t>(i)));
  auto f = h.read(b);
  ASSERT_EQ(f.size(), 32u);
  EXPECT_EQ(f.front().payload[32], 8);  // 0..7 dropped
  EXPECT_EQ(f.back().payload[32], 39);
  EXPECT_EQ(h.server.counter(Counter::drop_queue_full), 8u);
  EXPECT_EQ(h.rec.room_asked, 8);  // the I/O layer took nothing each time
  EXPECT_EQ(h.server.pool().in_use(), 0u);
}

// A burst larger than the queue, for a reader that keeps up (its I/O layer
// takes the queue each time it fills): nothing dropped, in order. The
// relay's shards receive packets from each other in such bursts.
TEST(Server, FullQueueAsksTheIoLayerForRoomFirst) {
  Harness h;
  auto a = h.connect(), b = h.connect();
  h.read(a);
  h.read(b);
  h.rec.on_make_room = [&](ConnId c) {
    ASSERT_EQ(c, b.id);
    h.take(b);
  };
  for (int i = 0; i < 100; ++i) h.send(a, b.pub, payload_of(10, static_cast<std::uint8_t>(i)));
  EXPECT_EQ(h.rec.room_asked, 3);  // at packets 33, 65 and 97
  auto f = h.read(b);
  ASSERT_EQ(f.size(), 100u);
  for (int i = 0; i < 100; ++i) {
    EXPECT_EQ(f[static_cast<std::size_t>(i)].type, FrameType::kRecvPacket);
    EXPECT_EQ(f[static_cast<std::size_t>(i)].payload[32], i);
  }
  EXPECT_EQ(h.server.counter(Counter::drop_queue_full), 0u);
  EXPECT_EQ(h.server.pool().in_use(), 0u);
  // Disco packets have their own queue (8): the same.
  for (int i = 0; i < 20; ++i) h.send(a, b.pub, disco_packet());
  EXPECT_EQ(h.rec.room_asked, 5);  // at disco packets 9 and 17
  EXPECT_EQ(h.read(b).size(), 20u);
  EXPECT_EQ(h.server.counter(Counter::drop_queue_full), 0u);
}

TEST(Server, InFlightBuffersSurviveNewPackets) {
  Harness h;
  auto a = h.connect(), b = h.connect();
  h.read(a);
  h.read(b);
  h.send(a, b.pub, payload_of(10, 1));
  iovec iov[64];
  std::size_t n = h.server.output(b.id, iov, 64);
  ASSERT_GE(n, 1u);
  const auto* first = static_cast<const std::uint8_t*>(iov[n - 1].iov_base);
  for (int i = 0; i < 40; ++i) h.send(a, b.pub, payload_of(10, 2));
  EXPECT_EQ(first[37], 1);  // still the in-flight packet's bytes
  // Writes that stop making progress for 2 s close the connection.
  h.server.tick(1 + kS);
  h.server.sent(b.id, 3, 1 + kS);  // partial progress resets the clock
  h.server.tick(1 + 2 * kS);
  EXPECT_TRUE(h.rec.closes.empty());
  h.server.tick(4 + 3 * kS + kS / 2);
  ASSERT_EQ(h.rec.closes.size(), 1u);
  EXPECT_EQ(h.rec.closes[0].second, CloseReason::kWriteTimeout);
  h.server.closed(b.id, 5 * kS);
  EXPECT_EQ(h.server.pool().in_use(), 0u);
}

TEST(Server, PingPong) {
  Harness h;
  auto a = h.connect();
  h.read(a);
  const std::uint8_t d[8] = {9, 8, 7, 6, 5, 4, 3, 2};
  std::uint8_t ping[kPingFrameLen];
  encode_ping(ping, FrameType::kPing, d);
  h.server.receive(a.id, ping, 1);
  auto f = h.read(a);
  ASSERT_EQ(f.size(), 1u);
  EXPECT_EQ(f[0].type, FrameType::kPong);
  EXPECT_EQ(0, std::memcmp(f[0].payload.data(), d, 8));
  // A ping of the wrong size is malformed.
  h.server.receive(a.id, bytes(frame_bytes(FrameType::kPing, payload_of(7))), 1);
  EXPECT_EQ(h.rec.closes.size(), 1u);
}

TEST(Server, PingFloodFromANonReaderIsBounded) {
  Harness h;
  auto a = h.connect();
  h.read(a);
  std::string flood;
  const std::uint8_t d[8] = {};
  std::uint8_t ping[kPingFrameLen];
  encode_ping(ping, FrameType::kPing, d);
  for (int i = 0; i < 20000; ++i) flood.append(reinterpret_cast<const char*>(ping), sizeof ping);
  h.server.receive(a.id, bytes(flood), 1);  // a never reads
  EXPECT_GT(h.server.counter(Counter::pongs_dropped), 0u);
  EXPECT_LE(h.server.counter(Counter::pings) * kPingFrameLen, (64u << 10) + kPingFrameLen);
  EXPECT_TRUE(h.rec.closes.empty());
  EXPECT_FALSE(h.read(a).empty());  // what was queued is still delivered
}

TEST(Server, KeepAlivesEverySixtySecondsWithJitter) {
  Harness h;
  auto a = h.connect(0);
  h.read(a);
  h.server.tick(59 * kS);
  EXPECT_TRUE(h.read(a).empty());
  h.server.tick(65 * kS);
  auto f = h.read(a);
  ASSERT_EQ(f.size(), 1u);
  EXPECT_EQ(f[0].type, FrameType::kKeepAlive);
  h.server.tick(66 * kS);
  EXPECT_TRUE(h.read(a).empty());
}

TEST(Server, HandshakeTimeout) {
  Harness h;
  auto a = h.raw_open(0);
  h.read(a);
  h.server.tick(9 * kS);
  EXPECT_TRUE(h.rec.closes.empty());
  h.server.tick(11 * kS);
  ASSERT_EQ(h.rec.closes.size(), 1u);
  EXPECT_EQ(h.rec.closes[0].second, CloseReason::kHandshakeTimeout);
}

TEST(Server, OversizeAndShortFramesClose) {
  Harness h;
  auto a = h.connect(), b = h.connect();
  std::uint8_t hdr[5];
  put_header(hdr, FrameType::kSendPacket, kMaxFramePayload + 1);
  h.server.receive(a.id, hdr, 1);  // refused on the header alone
  EXPECT_TRUE(h.rec.closed(a.id));
  h.server.receive(b.id, bytes(frame_bytes(FrameType::kSendPacket, payload_of(31))), 1);
  EXPECT_TRUE(h.rec.closed(b.id));
  EXPECT_EQ(h.server.counter(Counter::bad_frames), 2u);
  auto c = h.connect();
  std::string big(kHeaderLen + kKeyLen + kMaxPacketSize + 1, '\0');
  encode_packet(reinterpret_cast<std::uint8_t*>(big.data()), FrameType::kSendPacket, c.pub,
                payload_of(kMaxPacketSize + 1));
  h.server.receive(c.id, bytes(big), 1);
  EXPECT_TRUE(h.rec.closed(c.id));
}

TEST(Server, UnknownFramesAreSkipped) {
  Harness h;
  auto a = h.connect(), b = h.connect();
  h.read(b);
  std::string s = frame_bytes(static_cast<FrameType>(0x7f), payload_of(1000)) +
                  frame_bytes(FrameType::kNotePreferred, payload_of(1, 1));
  std::string f(kHeaderLen + kKeyLen + 3, '\0');
  encode_packet(reinterpret_cast<std::uint8_t*>(f.data()), FrameType::kSendPacket, b.pub, payload_of(3));
  h.server.receive(a.id, bytes(s + f), 1);
  EXPECT_EQ(h.read(b).size(), 1u);
  EXPECT_EQ(h.server.counter(Counter::unknown_frames), 1u);
  EXPECT_TRUE(h.rec.closes.empty());
}

TEST(Server, AdmissionDenyAndPending) {
  Harness h;
  h.rec.answer = Admission::kDeny;
  auto a = h.connect();
  ASSERT_EQ(h.rec.closes.size(), 1u);
  EXPECT_EQ(h.rec.closes[0].second, CloseReason::kDenied);
  EXPECT_FALSE(h.server.is_connected(a.pub));

  h.rec.answer = Admission::kPending;
  auto b = h.connect(), c = h.connect();
  h.rec.answer = Admission::kAllow;
  auto d = h.connect();
  h.read(d);
  EXPECT_FALSE(h.server.is_connected(b.pub));
  h.send(b, d.pub, payload_of(3));  // held until admitted
  EXPECT_TRUE(h.read(d).empty());
  h.server.admitted(b.id, true, 2);
  EXPECT_TRUE(h.server.is_connected(b.pub));
  EXPECT_EQ(h.read(d).size(), 1u);
  h.server.admitted(c.id, false, 2);
  EXPECT_TRUE(h.rec.closed(c.id));
}

TEST(Server, RateLimitPausesReadingNeverDrops) {
  ServerConfig cfg = Harness::make_config();
  cfg.rate_bytes_per_second = 10'000;
  cfg.rate_burst_bytes = 2'000;
  Harness h(std::move(cfg));
  auto a = h.connect(1), b = h.connect(1);
  auto si = h.read(a);
  auto json = open_server_info(si.back().payload, a.priv, h.server.config().public_key);
  ASSERT_TRUE(json);
  EXPECT_NE(json->find("\"TokenBucketBytesPerSecond\":10000"), std::string::npos);
  std::string f(kHeaderLen + kKeyLen + 1000, '\0');
  encode_packet(reinterpret_cast<std::uint8_t*>(f.data()), FrameType::kSendPacket, b.pub,
                payload_of(1000));
  EXPECT_EQ(h.server.receive(a.id, bytes(f), 2), 0u);
  const std::uint64_t resume = h.server.receive(a.id, bytes(f + f), 2);
  EXPECT_GT(resume, 2u + kS / 10);  // ~1 074 bytes over: ~0.1 s
  EXPECT_LT(resume, 2u + kS / 5);
  h.read(b);
  EXPECT_EQ(h.server.counter(Counter::packets_sent), 3u);  // nothing dropped
}

TEST(Server, ClosePeerFromMesh) {
  const Key mesh = Harness::mesh_key();
  Harness h(Harness::make_mesh_config());
  auto m = h.connect(1, mesh), a = h.connect();
  h.server.receive(m.id, bytes(frame_bytes(FrameType::kClosePeer, a.pub)), 1);
  ASSERT_EQ(h.rec.closes.size(), 1u);
  EXPECT_EQ(h.rec.closes[0].first, a.id);
  EXPECT_EQ(h.rec.closes[0].second, CloseReason::kClosedByMesh);
}

TEST(Server, SiblingRemovalTellsWatchersAndSenders) {
  const Key mesh = Harness::mesh_key();
  Harness h(Harness::make_mesh_config());
  auto w = h.connect(1, mesh);
  h.server.receive(w.id, bytes(frame_bytes(FrameType::kWatchConns, {})), 1);
  auto b = h.connect();
  h.read(w);
  h.read(b);
  Key sib;
  sib.fill(8);
  h.server.add_remote(sib, 1, true, {}, kPresentIsRegular, 1);
  auto f = h.read(w);
  ASSERT_EQ(f.size(), 1u);
  EXPECT_EQ(f[0].type, FrameType::kPeerPresent);
  h.server.deliver(sib, b.pub, payload_of(3), 1);  // sib sent to b
  h.read(b);
  h.server.remove_remote(sib, 1, 2);
  f = h.read(w);
  ASSERT_EQ(f.size(), 1u);
  EXPECT_EQ(f[0].type, FrameType::kPeerGone);
  f = h.read(b);
  ASSERT_EQ(f.size(), 1u);
  EXPECT_EQ(f[0].type, FrameType::kPeerGone);
}

TEST(Server, NewerConnectionOnASiblingShardIsActive) {
  Harness h;
  auto a = h.connect(), b = h.connect();
  h.read(a);
  h.read(b);
  h.server.add_remote(a.pub, 1, true, {}, kPresentIsRegular, 1);  // a again, on shard 1
  h.send(b, a.pub, payload_of(5));
  EXPECT_TRUE(h.read(a).empty());
  ASSERT_EQ(h.rec.forwards.size(), 1u);
  EXPECT_EQ(h.rec.forwards[0].route, 1u);
  // A packet handed over by that shard is delivered here, not bounced back.
  EXPECT_TRUE(h.server.deliver(b.pub, a.pub, payload_of(5), 1, false));
  EXPECT_EQ(h.read(a).size(), 1u);
  h.server.remove_remote(a.pub, 1, 2);  // it left: a here is active again
  h.send(b, a.pub, payload_of(5));
  EXPECT_EQ(h.read(a).size(), 1u);
  EXPECT_EQ(h.rec.forwards.size(), 1u);
}

}  // namespace
}  // namespace moongate::derp::test
