// The moon logic in memory: HELLO/OK with the World, WHOIS, ECHO, relaying
// with RENDEZVOUS and the hop limit, forged MACs, identity collisions, the
// HELLO flood budget, multicast, fragments and expiry. Manual clock.
#include <gtest/gtest.h>

#include <lz4.h>

#include "tests/unit/zerotier/test_util.h"
#include "zerotier/moon.h"

namespace moongate::zerotier {
namespace {

using test::Client;
using test::valid_identity;

class MoonTest : public ::testing::Test {
 protected:
  MoonTest()
      : moon_id_(valid_identity(0)),
        moon_(moon_id_, test::make_world(moon_id_, 5000), config()),
        a_(valid_identity(1), moon_id_, "198.51.100.10/40001"),
        b_(valid_identity(2), moon_id_, "203.0.113.20/40002") {}

  static MoonConfig config() {
    MoonConfig c;
    c.verify.per_second = 4;
    c.verify.burst = 4;
    c.verify.per_source_per_second = 4;
    c.verify.per_source_burst = 4;
    return c;
  }

  void rx(const std::vector<std::uint8_t>& d, const Endpoint& from) {
    out_.clear();
    moon_.receive(d, from, now_, out_);
  }
  // Says HELLO for c and expects exactly one OK back; returns it dearmoured.
  std::vector<std::uint8_t> hello(const Client& c, std::vector<std::pair<std::uint64_t, std::uint64_t>> moons = {}) {
    rx(c.hello(++pid_, 999, moons), c.ep);
    EXPECT_EQ(out_.size(), 1u);
    if (out_.size() != 1) return {};
    EXPECT_EQ(out_[0].to, c.ep);
    return c.open(out_[0]);
  }

  Identity moon_id_;
  Moon moon_;
  Client a_, b_;
  TxBatch out_;
  std::uint64_t now_ = 1'000'000;
  std::uint64_t pid_ = 0x100;
};

TEST_F(MoonTest, HelloGetsOkWithTimestampSurfaceAndWorldWhenOlder) {
  auto ok = hello(a_);
  ASSERT_FALSE(ok.empty());
  Reader r(ok.data() + kIdxVerb, ok.size() - kIdxVerb);
  EXPECT_EQ(r.u8(), static_cast<std::uint8_t>(Verb::kOk));
  EXPECT_EQ(r.u8(), static_cast<std::uint8_t>(Verb::kHello));
  EXPECT_EQ(r.u64(), pid_);
  EXPECT_EQ(r.u64(), 999u);  // timestamp echo
  EXPECT_EQ(r.u8(), kProtocolVersion);
  r.u8();
  r.u8();
  r.u16();
  EXPECT_EQ(r.endpoint(), a_.ep);  // the surface address the moon saw
  EXPECT_EQ(r.u16(), 0u);          // a client not orbiting us gets no World
  EXPECT_TRUE(r.ok());
  EXPECT_EQ(moon_.counters().hello_new_identity, 1u);

  // Orbiting with a seed (timestamp 0): the World comes back, signed.
  ok = hello(a_, {{moon_id_.address, 0}});
  Reader r2(ok.data() + kIdxPayload + 9 + 8 + 5, ok.size() - kIdxPayload - 22);
  r2.endpoint();
  const std::size_t wl = r2.u16();
  ASSERT_GT(wl, 0u);
  auto w = World::parse(std::span<const std::uint8_t>(r2.take(wl), wl));
  ASSERT_TRUE(w);
  EXPECT_TRUE(w->verify());
  EXPECT_EQ(w->id, moon_id_.address);
  EXPECT_EQ(moon_.counters().world_sent, 1u);
  // Already current: no World.
  hello(a_, {{moon_id_.address, 5000}});
  EXPECT_EQ(moon_.counters().world_sent, 1u);
  EXPECT_EQ(moon_.counters().hello_new_identity, 1u);  // cached after the first
  EXPECT_EQ(moon_.counters().hello_answered, 3u);
}

TEST_F(MoonTest, ForgedHelloAndUnknownSourcesAreDropped) {
  auto h = a_.hello(1, 1);
  h[h.size() - 1] ^= 1;
  rx(h, a_.ep);
  EXPECT_EQ(out_.size(), 0u);
  EXPECT_EQ(moon_.counters().drop_bad_mac, 1u);
  EXPECT_EQ(moon_.peer_count(), 0u);
  // WHOIS before HELLO: unknown source.
  rx(a_.to_moon(Verb::kWhois, {0, 0, 0, 0, 1}), a_.ep);
  EXPECT_EQ(out_.size(), 0u);
  EXPECT_EQ(moon_.counters().drop_unknown_source, 1u);
  // After HELLO, a WHOIS with a wrong key is refused.
  hello(a_);
  auto w = a_.packet(moon_id_.address, Verb::kWhois, {0, 0, 0, 0, 1}, b_.key.data());
  rx(w, a_.ep);
  EXPECT_EQ(out_.size(), 0u);
  EXPECT_EQ(moon_.counters().drop_bad_mac, 2u);
  // Truncated garbage.
  rx({1, 2, 3}, a_.ep);
  EXPECT_EQ(moon_.counters().drop_too_short, 1u);
  // An identity whose address does not derive from its key.
  Client liar(test::unchecked_identity(0x0102030405ull), moon_id_, "198.51.100.99/1");
  rx(liar.hello(5, 5), liar.ep);
  EXPECT_EQ(out_.size(), 0u);
  EXPECT_EQ(moon_.counters().drop_identity_invalid, 1u);
}

TEST_F(MoonTest, WhoisAnswersKnownIdentitiesIncludingOurOwn) {
  hello(a_);
  hello(b_);
  std::vector<std::uint8_t> q(15);
  store_address(q.data(), b_.id.address);
  store_address(q.data() + 5, 0x0102030405ull);  // unknown: skipped
  store_address(q.data() + 10, moon_id_.address);
  rx(a_.to_moon(Verb::kWhois, q, 4242), a_.ep);
  ASSERT_EQ(out_.size(), 1u);
  auto ok = a_.open(out_[0]);
  ASSERT_FALSE(ok.empty());
  Reader r(ok.data() + kIdxPayload, ok.size() - kIdxPayload);
  EXPECT_EQ(r.u8(), static_cast<std::uint8_t>(Verb::kWhois));
  EXPECT_EQ(r.u64(), 4242u);
  EXPECT_TRUE(Identity::parse(r).same_key(b_.id));
  EXPECT_TRUE(Identity::parse(r).same_key(moon_id_));
  EXPECT_EQ(r.remaining(), 0u);
  // Only unknown addresses: no answer.
  rx(a_.to_moon(Verb::kWhois, {0, 0, 0, 0, 9}), a_.ep);
  EXPECT_EQ(out_.size(), 0u);
}

TEST_F(MoonTest, EchoAndLargeFragmentedEcho) {
  hello(a_);
  rx(a_.to_moon(Verb::kEcho, {9, 8, 7}, 31), a_.ep);
  ASSERT_EQ(out_.size(), 1u);
  auto ok = a_.open(out_[0]);
  ASSERT_EQ(ok.size(), kIdxPayload + 9 + 3);
  EXPECT_EQ(ok[kIdxPayload], static_cast<std::uint8_t>(Verb::kEcho));
  EXPECT_EQ(ok.back(), 7);

  // A 3000-byte ECHO sent in fragments comes back in fragments.
  std::vector<std::uint8_t> big(3000);
  for (std::size_t i = 0; i < big.size(); ++i) big[i] = static_cast<std::uint8_t>(i);
  std::vector<std::uint8_t> p(kIdxPayload + big.size());
  write_header(p.data(), 0x5555, moon_id_.address, a_.id.address, Verb::kEcho);
  std::memcpy(p.data() + kIdxPayload, big.data(), big.size());
  p[kIdxFlags] |= kFlagFragmented;
  armor(p, a_.key.data(), true);
  std::vector<std::vector<std::uint8_t>> pieces;
  fragment_packet(p.data(), p.size(), 1200, [&](const std::uint8_t* b, std::size_t n) { pieces.emplace_back(b, b + n); });
  ASSERT_EQ(pieces.size(), 3u);
  rx(pieces[2], a_.ep);
  rx(pieces[0], a_.ep);
  EXPECT_EQ(out_.size(), 0u);
  rx(pieces[1], a_.ep);
  ASSERT_EQ(out_.size(), 3u);  // 3009 bytes at MTU 1432: head + 2
  std::vector<std::uint8_t> whole(out_[0].bytes.begin(), out_[0].bytes.begin() + out_[0].len);
  for (std::size_t i = 1; i < out_.size(); ++i)
    whole.insert(whole.end(), out_[i].bytes.begin() + kFragHeaderLength, out_[i].bytes.begin() + out_[i].len);
  ASSERT_TRUE(dearmor(whole, a_.key.data()));
  EXPECT_TRUE(std::equal(big.begin(), big.end(), whole.begin() + kIdxPayload + 9));
  EXPECT_EQ(moon_.counters().reassembled, 1u);
}

TEST_F(MoonTest, RelayWithRendezvousOncePerInterval) {
  hello(a_);
  hello(b_);
  PeerKey ab;
  ASSERT_TRUE(a_.id.agree(b_.id.pub, ab));
  const auto frame = a_.packet(b_.id.address, Verb::kFrame, {1, 2, 3, 4}, ab.data());
  rx(frame, a_.ep);
  ASSERT_EQ(out_.size(), 3u);
  // 1. the packet, to B's path, one hop more, MAC still valid for B
  EXPECT_EQ(out_[0].to, b_.ep);
  std::vector<std::uint8_t> relayed(out_[0].bytes.begin(), out_[0].bytes.begin() + out_[0].len);
  EXPECT_EQ(relayed[kIdxFlags] & kHopsMask, 1);
  ASSERT_TRUE(dearmor(relayed, ab.data()));
  EXPECT_EQ(relayed.back(), 4);
  // 2./3. RENDEZVOUS to A about B and to B about A, with each other's path.
  for (std::size_t i = 1; i < 3; ++i) {
    const Client& to = out_[i].to == a_.ep ? a_ : b_;
    const Client& about = &to == &a_ ? b_ : a_;
    auto rv = to.open(out_[i]);
    ASSERT_FALSE(rv.empty());
    Reader r(rv.data() + kIdxVerb, rv.size() - kIdxVerb);
    EXPECT_EQ(r.u8(), static_cast<std::uint8_t>(Verb::kRendezvous));
    EXPECT_EQ(r.u8(), 0);
    EXPECT_EQ(r.address(), about.id.address);
    EXPECT_EQ(r.u16(), about.ep.port);
    EXPECT_EQ(r.u8(), 4);
    EXPECT_TRUE(std::equal(about.ep.ip.begin(), about.ep.ip.begin() + 4, r.take(4)));
  }
  EXPECT_NE(out_[1].to, out_[2].to);
  // Within 30 s: relay only; after: RENDEZVOUS again (either direction).
  now_ += 29'000;
  rx(b_.packet(a_.id.address, Verb::kFrame, {5}, ab.data()), b_.ep);
  EXPECT_EQ(out_.size(), 1u);
  now_ += 1'001;
  rx(frame, a_.ep);
  EXPECT_EQ(out_.size(), 3u);
  EXPECT_EQ(moon_.counters().relayed, 3u);
  EXPECT_EQ(moon_.counters().rendezvous_sent, 4u);
}

TEST_F(MoonTest, HopLimitUnknownDestinationsAndRelayedFragments) {
  hello(a_);
  hello(b_);
  PeerKey ab;
  ASSERT_TRUE(a_.id.agree(b_.id.pub, ab));
  rx(a_.packet(b_.id.address, Verb::kFrame, {1}, ab.data(), 1, 3), a_.ep);
  ASSERT_GE(out_.size(), 1u);
  EXPECT_EQ(out_[0].bytes[kIdxFlags] & kHopsMask, 4);
  rx(a_.packet(b_.id.address, Verb::kFrame, {1}, ab.data(), 2, 4), a_.ep);
  EXPECT_EQ(out_.size(), 0u);
  EXPECT_EQ(moon_.counters().drop_hop_limit, 1u);
  rx(a_.packet(0x0102030405ull, Verb::kFrame, {1}, ab.data()), a_.ep);
  EXPECT_EQ(out_.size(), 0u);
  EXPECT_EQ(moon_.counters().drop_unknown_destination, 1u);
  // Fragments are relayed by their own header, hops in byte 15.
  std::vector<std::uint8_t> f(kFragHeaderLength + 100, 0xAB);
  store_be64(f.data(), 77);
  store_address(f.data() + kIdxDest, b_.id.address);
  f[kFragIdxIndicator] = kFragmentIndicator;
  f[kFragIdxCount] = 0x21;
  f[kFragIdxHops] = 0;
  rx(f, a_.ep);
  ASSERT_EQ(out_.size(), 1u);
  EXPECT_EQ(out_[0].to, b_.ep);
  EXPECT_EQ(out_[0].bytes[kFragIdxHops], 1);
  f[kFragIdxHops] = 4;
  rx(f, a_.ep);
  EXPECT_EQ(out_.size(), 0u);
  EXPECT_EQ(moon_.counters().relayed_fragments, 1u);
  EXPECT_EQ(moon_.counters().drop_hop_limit, 2u);
  // A packet claiming the moon as its source is never relayed.
  rx(a_.packet(b_.id.address, Verb::kFrame, {1}, ab.data()), a_.ep);
  auto own = out_[0];
  std::vector<std::uint8_t> spoof(own.bytes.begin(), own.bytes.begin() + own.len);
  store_address(spoof.data() + kIdxSource, moon_id_.address);
  rx(spoof, a_.ep);
  EXPECT_EQ(out_.size(), 0u);
  EXPECT_EQ(moon_.counters().drop_loop, 1u);
}

TEST_F(MoonTest, IdentityCollisionGetsErrorAndKeepsTheFirst) {
  hello(a_);
  Client thief(test::unchecked_identity(a_.id.address), moon_id_, "192.0.2.66/5000");
  rx(thief.hello(0x777, 1), thief.ep);
  ASSERT_EQ(out_.size(), 1u);
  EXPECT_EQ(out_[0].to, thief.ep);
  auto err = thief.open(out_[0]);
  ASSERT_FALSE(err.empty());
  EXPECT_EQ(err[kIdxVerb], static_cast<std::uint8_t>(Verb::kError));
  EXPECT_EQ(err[kIdxPayload], static_cast<std::uint8_t>(Verb::kHello));
  EXPECT_EQ(load_be64(err.data() + kIdxPayload + 1), 0x777u);
  EXPECT_EQ(err[kIdxPayload + 9], static_cast<std::uint8_t>(ErrorCode::kIdentityCollision));
  EXPECT_EQ(moon_.counters().drop_identity_collision, 1u);
  // The real A is still the one the moon knows and relays to.
  hello(b_);
  std::vector<std::uint8_t> q(5);
  store_address(q.data(), a_.id.address);
  rx(b_.to_moon(Verb::kWhois, q), b_.ep);
  ASSERT_EQ(out_.size(), 1u);
  auto ok = b_.open(out_[0]);
  Reader r(ok.data() + kIdxPayload + 9, ok.size() - kIdxPayload - 9);
  EXPECT_TRUE(Identity::parse(r).same_key(a_.id));
  // A forged collision HELLO (bad MAC) gets nothing.
  auto forged = thief.hello(0x778, 1);
  forged.back() ^= 1;
  rx(forged, thief.ep);
  EXPECT_EQ(out_.size(), 0u);
}

TEST_F(MoonTest, HelloFloodIsBudgetedAndKnownPeersStillServed) {
  hello(a_);
  hello(b_);
  const std::uint64_t before = moon_.counters().hello_new_identity;
  // 200 fresh identities from many sources within one second.
  int answered = 0;
  for (int i = 0; i < 200; ++i) {
    char ep[40];
    std::snprintf(ep, sizeof ep, "10.%d.%d.1/9000", i / 200, i % 200);
    Client c(test::unchecked_identity(0x0100000000ull + static_cast<Address>(i)), moon_id_, ep);
    rx(c.hello(static_cast<std::uint64_t>(i), 1), c.ep);
    answered += static_cast<int>(out_.size());
    now_ += 2;
    // Known peers interleaved with the flood keep getting answers.
    if (i % 20 == 0) {
      EXPECT_FALSE(hello(a_).empty());
      rx(b_.to_moon(Verb::kEcho, {1}), b_.ep);
      EXPECT_EQ(out_.size(), 1u);
    }
  }
  EXPECT_EQ(answered, 0);  // none of the fresh ones was valid anyway
  const Counters& c = moon_.counters();
  // 4 tokens of burst + 4/s over 0.4 s: at most 6 identity checks.
  EXPECT_LE(c.drop_identity_invalid, 6u);
  EXPECT_GE(c.drop_hello_rate_limited, 194u);
  EXPECT_EQ(c.drop_identity_invalid + c.drop_hello_rate_limited, 200u);
  EXPECT_EQ(c.hello_new_identity, before);
}

TEST_F(MoonTest, MulticastLikeAndGather) {
  hello(a_);
  hello(b_);
  auto like = [](std::uint64_t nwid, std::uint32_t adi) {
    std::vector<std::uint8_t> e(18);
    store_be64(e.data(), nwid);
    const std::uint8_t mac[6] = {0xff, 0xff, 0xff, 0xff, 0xff, 0xff};
    std::memcpy(e.data() + 8, mac, 6);
    store_be32(e.data() + 14, adi);
    return e;
  };
  const std::uint64_t nwid = 0x8056c2e21c000001ull;
  rx(a_.to_moon(Verb::kMulticastLike, like(nwid, 0x0a000001)), a_.ep);
  rx(b_.to_moon(Verb::kMulticastLike, like(nwid, 0x0a000001)), b_.ep);
  EXPECT_EQ(moon_.counters().multicast_likes, 2u);
  auto g = like(nwid, 0x0a000001);
  g.push_back(0);                          // flags
  g.insert(g.end(), {0, 0, 0, 10});        // limit
  rx(a_.to_moon(Verb::kMulticastGather, g, 555), a_.ep);
  ASSERT_EQ(out_.size(), 1u);
  auto ok = a_.open(out_[0]);
  Reader r(ok.data() + kIdxPayload, ok.size() - kIdxPayload);
  EXPECT_EQ(r.u8(), static_cast<std::uint8_t>(Verb::kMulticastGather));
  EXPECT_EQ(r.u64(), 555u);
  EXPECT_EQ(r.u64(), nwid);
  r.take(6);
  EXPECT_EQ(r.u32(), 0x0a000001u);
  EXPECT_EQ(r.u32(), 1u);  // total known, the asker excluded
  EXPECT_EQ(r.u16(), 1u);
  EXPECT_EQ(r.address(), b_.id.address);
  EXPECT_EQ(r.remaining(), 0u);
  // Likes expire after 10 minutes.
  now_ += kMulticastLikeExpireMs + 1;
  hello(a_);
  rx(a_.to_moon(Verb::kMulticastGather, g, 556), a_.ep);
  ASSERT_EQ(out_.size(), 1u);
  ok = a_.open(out_[0]);
  EXPECT_EQ(load_be32(ok.data() + kIdxPayload + 9 + 18), 0u);
}

TEST_F(MoonTest, CompressedPayloadsAreDecompressed) {
  hello(a_);
  hello(b_);
  // 40 likes in one LZ4-compressed MULTICAST_LIKE, as a client with many
  // groups sends it.
  std::vector<std::uint8_t> likes;
  for (std::uint32_t i = 0; i < 40; ++i) {
    std::uint8_t e[18] = {};
    store_be64(e, 0x8056c2e21c000001ull);
    std::memset(e + 8, 0x33, 6);
    store_be32(e + 14, 0x0a000000 + i);
    likes.insert(likes.end(), e, e + 18);
  }
  std::vector<std::uint8_t> z(LZ4_compressBound(static_cast<int>(likes.size())));
  const int zn = LZ4_compress_default(reinterpret_cast<const char*>(likes.data()), reinterpret_cast<char*>(z.data()),
                                      static_cast<int>(likes.size()), static_cast<int>(z.size()));
  ASSERT_GT(zn, 0);
  ASSERT_LT(static_cast<std::size_t>(zn), likes.size());
  z.resize(static_cast<std::size_t>(zn));
  std::vector<std::uint8_t> q(kIdxPayload + z.size());
  write_header(q.data(), 9, moon_id_.address, b_.id.address, Verb::kMulticastLike);
  q[kIdxVerb] |= kVerbFlagCompressed;
  std::memcpy(q.data() + kIdxPayload, z.data(), z.size());
  armor(q, b_.key.data(), true);
  rx(q, b_.ep);
  EXPECT_EQ(moon_.counters().multicast_likes, 40u);
  // A gathers one of the groups and finds B.
  std::vector<std::uint8_t> g(likes.begin() + 18 * 7, likes.begin() + 18 * 8);
  g.push_back(0);
  g.insert(g.end(), {0, 0, 0, 8});
  rx(a_.to_moon(Verb::kMulticastGather, g, 1), a_.ep);
  ASSERT_EQ(out_.size(), 1u);
  auto ok = a_.open(out_[0]);
  EXPECT_EQ(load_address(ok.data() + ok.size() - 5), b_.id.address);
  // Garbage that claims to be compressed is counted and dropped.
  std::vector<std::uint8_t> bad(kIdxPayload + 4, 0xff);
  write_header(bad.data(), 10, moon_id_.address, b_.id.address, Verb::kEcho);
  bad[kIdxVerb] |= kVerbFlagCompressed;
  armor(bad, b_.key.data(), true);
  rx(bad, b_.ep);
  EXPECT_EQ(out_.size(), 0u);
  EXPECT_EQ(moon_.counters().drop_compressed, 1u);
}

TEST_F(MoonTest, ReplayedHelloFromElsewhereDoesNotMoveThePath) {
  hello(a_);
  hello(b_);
  const auto captured = a_.hello(0x4000, 2000);
  rx(captured, a_.ep);
  ASSERT_EQ(out_.size(), 1u);
  Endpoint thief;
  thief.parse("192.0.2.99/666");
  rx(captured, thief);  // the same bytes, from elsewhere
  EXPECT_EQ(out_.size(), 0u);
  EXPECT_EQ(moon_.counters().drop_hello_replay, 1u);
  rx(captured, a_.ep);  // from the known path: harmless, answered
  EXPECT_EQ(out_.size(), 1u);
  PeerKey ab;
  ASSERT_TRUE(a_.id.agree(b_.id.pub, ab));
  rx(b_.packet(a_.id.address, Verb::kFrame, {1}, ab.data()), b_.ep);
  ASSERT_GE(out_.size(), 1u);
  EXPECT_EQ(out_[0].to, a_.ep);
  // An authenticated non-HELLO from elsewhere does not move the path either;
  // its answer goes to the known path.
  rx(a_.to_moon(Verb::kEcho, {5}), thief);
  ASSERT_EQ(out_.size(), 1u);
  EXPECT_EQ(out_[0].to, a_.ep);
  // Roaming: a newer HELLO from a new address moves the path.
  Endpoint roamed;
  roamed.parse("198.51.100.77/4000");
  rx(a_.hello(0x4001, 3000), roamed);
  ASSERT_EQ(out_.size(), 1u);
  EXPECT_EQ(out_[0].to, roamed);
  rx(b_.packet(a_.id.address, Verb::kFrame, {2}, ab.data()), b_.ep);
  ASSERT_GE(out_.size(), 1u);
  EXPECT_EQ(out_[0].to, roamed);
}

TEST_F(MoonTest, IdlePeersExpire) {
  hello(a_);
  EXPECT_EQ(moon_.peer_count(), 1u);
  TxBatch t;
  moon_.tick(now_ + 1000, t);
  EXPECT_EQ(moon_.peer_count(), 1u);
  moon_.tick(now_ + MoonConfig{}.peer_expire_ms + 1, t);
  EXPECT_EQ(moon_.peer_count(), 0u);
  EXPECT_EQ(moon_.counters().peers_expired, 1u);
}

TEST(MoonDeferred, HashesGoToTheHostAndHellosAreAnsweredWhenTheyComeBack) {
  const Identity& moon_id = valid_identity(0);
  MoonConfig c;
  c.defer_verification = true;
  c.max_deferred = 2;
  Moon moon(moon_id, test::make_world(moon_id, 1), c);
  Client a(valid_identity(1), moon_id, "198.51.100.10/1");
  Client liar(test::unchecked_identity(0x0102030405ull), moon_id, "198.51.100.11/1");
  Client third(valid_identity(2), moon_id, "198.51.100.12/1");
  TxBatch out;
  moon.receive(a.hello(1, 11), a.ep, 1000, out);
  moon.receive(liar.hello(2, 22), liar.ep, 1000, out);
  moon.receive(third.hello(3, 33), third.ep, 1000, out);  // over max_deferred
  EXPECT_EQ(out.size(), 0u);
  EXPECT_EQ(moon.counters().hello_deferred, 2u);
  EXPECT_EQ(moon.counters().drop_hello_deferred_full, 1u);
  Job jobs[2];
  ASSERT_TRUE(moon.take_job(jobs[0]));
  ASSERT_TRUE(moon.take_job(jobs[1]));
  EXPECT_FALSE(moon.take_job(jobs[0]));
  for (Job& j : jobs) j.run(j);  // what the host's worker thread does
  for (Job& j : jobs) moon.finish_job(j, 1001, out);
  ASSERT_EQ(out.size(), 1u);
  EXPECT_EQ(out[0].to, a.ep);
  auto ok = a.open(out[0]);
  ASSERT_FALSE(ok.empty());
  EXPECT_EQ(load_be64(ok.data() + kIdxPayload + 1), 1u);   // in-re the HELLO
  EXPECT_EQ(load_be64(ok.data() + kIdxPayload + 9), 11u);  // its timestamp
  EXPECT_EQ(moon.counters().drop_identity_invalid, 1u);
  EXPECT_EQ(moon.counters().hello_new_identity, 1u);
  EXPECT_EQ(moon.peer_count(), 1u);
  // Room again: the third client gets through.
  out.clear();
  moon.receive(third.hello(4, 44), third.ep, 1002, out);
  Job j;
  ASSERT_TRUE(moon.take_job(j));
  j.run(j);
  moon.finish_job(j, 1003, out);
  EXPECT_EQ(out.size(), 1u);
}

TEST(MoonSetup, RefusesAnUnsignedWorldOrAPublicOnlyIdentity) {
  const Identity& id = valid_identity(0);
  World w = test::make_world(id, 1);
  w.timestamp = 2;
  EXPECT_THROW(Moon(id, w), std::invalid_argument);
  Identity pub_only = *Identity::from_string(id.to_string(false));
  EXPECT_THROW(Moon(pub_only, test::make_world(id, 1)), std::invalid_argument);
}

}  // namespace
}  // namespace moongate::zerotier
