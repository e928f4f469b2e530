// Every timer of the whitepaper on a manual clock: first PeerTimers alone,
// then through two in-memory peers.
#include <gtest/gtest.h>

#include <random>

#include "tests/unit/wireguard/pair.h"
#include "wireguard/timers.h"

namespace moongate::wg::test {
namespace {

constexpr Nanos kT0 = 1000 * kSecond;
constexpr Nanos kTick = PeerTimers::kArmTick;

// A time rounded up, or down, to the host's arming tick.
Nanos tick_up(Nanos t) { return (t + kTick - 1) / kTick * kTick; }
Nanos tick_down(Nanos t) { return t / kTick * kTick; }

TEST(PeerTimers, NothingArmedAtStart) {
  PeerTimers t;
  EXPECT_EQ(t.next_deadline(), 0u);
  const TimerActions a = t.expire(kT0 + 1000 * kSecond);
  EXPECT_FALSE(a.send_initiation || a.send_keepalive || a.purge_staged || a.zero_keys);
}

TEST(PeerTimers, KeepaliveAfterReceivingWithoutSending) {
  PeerTimers t;
  t.data_received(kT0);
  EXPECT_EQ(t.send_keepalive_at(), kT0 + kKeepaliveTimeout);
  EXPECT_FALSE(t.expire(kT0 + kKeepaliveTimeout - 1).send_keepalive);
  EXPECT_TRUE(t.expire(kT0 + kKeepaliveTimeout).send_keepalive);
  EXPECT_EQ(t.send_keepalive_at(), 0u);
}

TEST(PeerTimers, SendingCancelsKeepalive) {
  PeerTimers t;
  t.data_received(kT0);
  t.any_authenticated_packet_sent();
  EXPECT_FALSE(t.expire(kT0 + kKeepaliveTimeout).send_keepalive);
}

TEST(PeerTimers, DataDuringPendingKeepaliveAsksForAnother) {
  PeerTimers t;
  t.data_received(kT0);
  t.data_received(kT0 + kSecond);  // keepalive pending: remember to send another
  const Nanos first = kT0 + kKeepaliveTimeout;
  EXPECT_TRUE(t.expire(first).send_keepalive);
  EXPECT_EQ(t.send_keepalive_at(), first + kKeepaliveTimeout);
  EXPECT_TRUE(t.expire(first + kKeepaliveTimeout).send_keepalive);
  EXPECT_EQ(t.send_keepalive_at(), 0u);
}

TEST(PeerTimers, NewHandshakeWhenSentDataGetsNoAnswer) {
  PeerTimers t;
  t.data_sent(kT0);
  t.data_sent(kT0 + 3 * kSecond);  // does not push the deadline
  const Nanos due = kT0 + kKeepaliveTimeout + kRekeyTimeout;
  EXPECT_EQ(t.new_handshake_at(), due);
  EXPECT_FALSE(t.expire(due - 1).send_initiation);
  const TimerActions a = t.expire(due);
  EXPECT_TRUE(a.send_initiation);
  EXPECT_FALSE(a.retry);
}

TEST(PeerTimers, AnyReceivedPacketCancelsNewHandshake) {
  PeerTimers t;
  t.data_sent(kT0);
  t.any_authenticated_packet_received();
  EXPECT_FALSE(t.expire(kT0 + 60 * kSecond).send_initiation);
}

TEST(PeerTimers, RetransmitThenGiveUp) {
  PeerTimers t;
  Nanos now = kT0;
  t.handshake_initiated(now, 200 * kMillisecond);
  EXPECT_EQ(t.retransmit_handshake_at(), now + kRekeyTimeout + 200 * kMillisecond);
  unsigned retries = 0;
  bool gave_up = false;
  for (int i = 0; i < 30 && !gave_up; ++i) {
    now = t.retransmit_handshake_at();
    const TimerActions a = t.expire(now);
    if (a.send_initiation) {
      EXPECT_TRUE(a.retry);
      ++retries;
      t.handshake_initiated(now, 0);
    }
    gave_up = a.purge_staged;
  }
  EXPECT_TRUE(gave_up);
  EXPECT_EQ(retries, kMaxTimerHandshakes + 1);
  EXPECT_EQ(t.zero_key_material_at(), now + 3 * kRejectAfterTime);
}

TEST(PeerTimers, HandshakeCompleteStopsRetransmits) {
  PeerTimers t;
  t.handshake_initiated(kT0, 0);
  t.handshake_complete();
  EXPECT_EQ(t.retransmit_handshake_at(), 0u);
  EXPECT_EQ(t.handshake_attempts(), 0u);
}

TEST(PeerTimers, ZeroKeyMaterialAfterThreeRejectTimes) {
  PeerTimers t;
  t.session_derived(kT0);
  EXPECT_FALSE(t.expire(kT0 + 3 * kRejectAfterTime - 1).zero_keys);
  EXPECT_TRUE(t.expire(kT0 + 3 * kRejectAfterTime).zero_keys);
}

TEST(PeerTimers, PersistentKeepaliveAfterSilence) {
  PeerTimers t;
  t.set_persistent_keepalive(25, kT0);
  EXPECT_EQ(t.persistent_keepalive_at(), kT0 + 25 * kSecond);
  t.any_authenticated_packet_traversal(kT0 + 10 * kSecond);  // traffic pushes it back
  EXPECT_FALSE(t.expire(kT0 + 25 * kSecond).send_keepalive);
  EXPECT_TRUE(t.expire(kT0 + 35 * kSecond).send_keepalive);
  t.set_persistent_keepalive(0, kT0);
  EXPECT_EQ(t.persistent_keepalive_at(), 0u);
}

TEST(PeerTimers, NextDeadlineIsTheEarliest) {
  PeerTimers t;
  t.session_derived(kT0);
  t.data_received(kT0);
  t.data_sent(kT0);
  EXPECT_EQ(t.next_deadline(), kT0 + kKeepaliveTimeout);
}

// The host's lazy arming: it is told to move its entry only when the
// earliest deadline comes before the one it is armed for, not when one
// moves later (as every packet's keepalive push does); after its entry goes
// off it is told again. Armed times are whole ticks, a deadline's rounded
// up (never early, at most a tick late).
TEST(PeerTimers, HostIsAskedToArmOnlyForAnEarlierDeadline) {
  PeerTimers t;
  Nanos now = kT0 + 123;  // off the tick, so that rounding shows
  Nanos at = 0;
  EXPECT_FALSE(t.arm_earlier(now, at));  // nothing armed: nothing to do
  EXPECT_FALSE(t.host_armed());
  t.session_derived(now);  // zero_key_material in 3 x REJECT
  ASSERT_TRUE(t.arm_earlier(now, at));
  EXPECT_EQ(at, tick_up(now + 3 * kRejectAfterTime));
  EXPECT_GT(at, now + 3 * kRejectAfterTime);
  EXPECT_EQ(t.host_armed_at(now), at);
  EXPECT_FALSE(t.arm_earlier(now, at));  // the same deadline: stays

  now = kT0 + kSecond + 123;
  t.data_received(now);  // keepalive, earlier
  ASSERT_TRUE(t.arm_earlier(now, at));
  EXPECT_EQ(at, tick_up(now + kKeepaliveTimeout));

  // Later deadlines never move the entry: it fires early instead.
  t.any_authenticated_packet_sent();  // cancels the keepalive
  EXPECT_FALSE(t.arm_earlier(now, at));
  EXPECT_EQ(t.host_armed_at(now), tick_up(now + kKeepaliveTimeout));

  // The entry went off (early): the next call arms the current earliest.
  t.host_disarmed();
  EXPECT_FALSE(t.host_armed());
  EXPECT_EQ(t.host_armed_at(now), 0u);
  ASSERT_TRUE(t.arm_earlier(now, at));
  EXPECT_EQ(at, tick_up(kT0 + 123 + 3 * kRejectAfterTime));

  // stop() leaves the host's entry as it is (it fires, finding nothing).
  t.stop();
  EXPECT_EQ(t.host_armed_at(now), tick_up(kT0 + 123 + 3 * kRejectAfterTime));
  EXPECT_FALSE(t.arm_earlier(now, at));
}

// The armed time is kept in 32 bits of ticks, which wrap every ~52 days
// of uptime: across the wrap, an earlier deadline still moves the entry
// and a later one still does not, and the time reads back.
TEST(PeerTimers, HostArmingSurvivesTheTickWrap) {
  const Nanos wrap = Nanos{1} << (32 + PeerTimers::kArmShift);
  for (const Nanos start : {wrap - 5 * kSecond, 2 * wrap - kSecond, 7 * wrap - 9 * kSecond}) {
    PeerTimers t;
    Nanos at = 0;
    t.data_received(start);  // keepalive at start + 10 s: past the wrap
    ASSERT_TRUE(t.arm_earlier(start, at));
    EXPECT_EQ(at, tick_up(start + kKeepaliveTimeout));
    EXPECT_EQ(t.host_armed_at(start), at);
    EXPECT_EQ(t.host_armed_at(start + 9 * kSecond), at);
    // Data sent (new handshake in 15 s) and received again later: no move.
    const Nanos later = start + 2 * kSecond;
    t.any_authenticated_packet_sent();
    t.data_sent(later);
    EXPECT_FALSE(t.arm_earlier(later, at)) << start;
    t.any_authenticated_packet_received();
    t.data_received(later);
    EXPECT_FALSE(t.arm_earlier(later, at)) << start;
    // A handshake retransmission due in 5 s: earlier. (From the first
    // start it is due exactly at the wrap, whose tick reads as 32 zero
    // bits, "not armed": it is armed a tick later.)
    t.handshake_initiated(start, 0);
    ASSERT_TRUE(t.arm_earlier(start, at)) << start;
    const Nanos due = tick_up(start + kRekeyTimeout);
    EXPECT_EQ(at, due % wrap == 0 ? due + kTick : due);
    EXPECT_EQ(t.host_armed_at(start + kSecond), at);
  }
}

// arm_earlier reads the handshake deadlines only after a handshake event
// changed them or the host's entry went off. Whatever the order of hooks,
// the host must never be left armed later than the earliest deadline (a
// timer would be missed), nor unarmed while one is pending: checked after
// every step of random sequences against next_deadline(), which reads
// everything.
TEST(PeerTimers, HostIsNeverArmedLaterThanAnyDeadline) {
  std::mt19937_64 rng(7);
  for (int run = 0; run < 200; ++run) {
    PeerTimers t;
    Nanos now = kT0;
    t.set_persistent_keepalive(static_cast<std::uint16_t>(rng() % 3 == 0 ? 25 : 0), now);
    for (int step = 0; step < 300; ++step) {
      now += static_cast<Nanos>(rng() % (3 * kSecond));
      switch (rng() % 10) {
        case 0: t.data_sent(now); break;
        case 1: t.data_received(now); break;
        case 2: t.any_authenticated_packet_sent(); break;
        case 3: t.any_authenticated_packet_received(); break;
        case 4: t.any_authenticated_packet_traversal(now); break;
        case 5: t.handshake_initiated(now, static_cast<Nanos>(rng() % kRekeyTimeoutJitterMax)); break;
        case 6: t.handshake_complete(); break;
        case 7: t.session_derived(now); break;
        case 8: t.stop(); break;
        case 9:  // the host's entry goes off when it is due: run what fell due
          if (t.host_armed() && t.host_armed_at(now) <= now) {
            t.host_disarmed();
            t.expire(now);
          }
          break;
      }
      Nanos at = 0;
      t.arm_earlier(now, at);
      const Nanos due = t.next_deadline();
      if (due != 0) {
        // At most a tick late (the armed time is rounded up to one).
        ASSERT_TRUE(t.host_armed()) << "run " << run << " step " << step;
        ASSERT_LE(t.host_armed_at(now), tick_up(due)) << "run " << run << " step " << step;
      }
    }
  }
}

// An active peer's entry is armed no later than the soonest deadline a
// later packet could bring (10 s out, or the persistent keepalive's
// interval if shorter), so traffic turning from sending to receiving does
// not move it: it moves once per time it goes off. (Armed at the deadline
// itself, the entry set by data sent, new handshake in 15 s, was moved by
// the next data received, keepalive in 10 s.)
TEST(PeerTimers, ActivePeersEntryMovesOncePerFire) {
  for (const std::uint16_t keepalive : {0, 4}) {
    PeerTimers t;
    Nanos now = kT0;
    t.set_persistent_keepalive(keepalive, now);
    const Nanos floor = keepalive != 0 ? keepalive * kSecond : kKeepaliveTimeout;
    Nanos at = 0;
    unsigned moves = 0;
    unsigned fires = 0;
    Nanos fired_at = 0;
    // Data both ways every 10 ms, as a TCP flow's segments and ACKs, over
    // three times the floor; the entry goes off when due.
    while (now < kT0 + 3 * floor) {
      now += 10 * kMillisecond;
      t.data_sent(now);
      t.any_authenticated_packet_sent();
      t.any_authenticated_packet_traversal(now);
      if (t.arm_earlier(now, at)) ++moves;
      now += 10 * kMillisecond;
      t.data_received(now);
      t.any_authenticated_packet_received();
      t.any_authenticated_packet_traversal(now);
      if (t.arm_earlier(now, at)) ++moves;
      if (t.host_armed_at(now) <= now) {
        // Armed a floor after it was last armed: the first time by data
        // sent, rounded down (its deadline was later), after that by the
        // deadline of data just received, rounded up.
        const Nanos expected = fired_at == 0 ? (keepalive != 0 ? tick_up(kT0 + 10 * kMillisecond + floor)
                                                               : tick_down(kT0 + 10 * kMillisecond + floor))
                                             : tick_up(fired_at + floor);
        ASSERT_EQ(t.host_armed_at(now), expected) << "keepalive " << keepalive;
        fired_at = now;
        ++fires;
        t.host_disarmed();
        t.expire(now);
        if (t.arm_earlier(now, at)) ++moves;
      }
      ASSERT_LE(t.host_armed_at(now), tick_up(t.next_deadline())) << "keepalive " << keepalive;
    }
    // Armed once at the start, then once each time it went off.
    EXPECT_GE(fires, 2u) << "keepalive " << keepalive;
    EXPECT_EQ(moves, fires + 1) << "keepalive " << keepalive;
  }
}

// --- through the device --------------------------------------------------

TEST_F(PairTest, KeepaliveIsSentWhenOnlyReceiving) {
  establish();
  ASSERT_EQ(send_a(packet(64, 1)), Drop::kOk);
  pump();
  EXPECT_TRUE(b.wire.out.empty());
  clock.advance(kKeepaliveTimeout);
  tick();
  ASSERT_EQ(b.wire.out.size(), 1u);
  EXPECT_EQ(b.wire.out.front().bytes.size(), kDataMinLen);  // empty plaintext
  const auto r = deliver(b.wire.out.front());
  EXPECT_EQ(r.drop, Drop::kOk);
  EXPECT_EQ(r.len, 0u);
}

TEST_F(PairTest, PersistentKeepaliveKeepsNatOpen) {
  establish();
  pb->timers.set_persistent_keepalive(25, now().mono);
  // A answers B's last data with an ordinary keepalive at 10 s; that
  // traversal restarts the persistent interval.
  clock.advance(kKeepaliveTimeout);
  tick();
  ASSERT_EQ(count_type(a.wire.out, MessageType::kData), 1u);
  pump();
  clock.advance(25 * kSecond - 1);
  tick();
  EXPECT_TRUE(a.wire.out.empty());
  clock.advance(1);
  tick();
  ASSERT_EQ(a.wire.out.size(), 1u);
  EXPECT_EQ(a.wire.out.front().bytes.size(), kDataMinLen);
  EXPECT_TRUE(b.wire.out.empty());  // B has no persistent keepalive
}

TEST_F(PairTest, TurningPersistentKeepaliveOnSendsOneAtOnce) {
  establish();
  a.dev().set_persistent_keepalive(*pb, 25, now());
  ASSERT_EQ(a.wire.out.size(), 1u);
  EXPECT_EQ(a.wire.out.front().bytes.size(), kDataMinLen);
  a.wire.out.clear();
  // Changing a running interval does not send another.
  a.dev().set_persistent_keepalive(*pb, 30, now());
  EXPECT_TRUE(a.wire.out.empty());
  EXPECT_EQ(pb->timers.persistent_keepalive_at(), now().mono + 30 * kSecond);
}

TEST_F(PairTest, UnansweredDataTriggersNewHandshake) {
  establish();
  ASSERT_EQ(send_a(packet(64, 1)), Drop::kOk);
  a.wire.out.clear();  // B never hears it, so never answers
  clock.advance(kKeepaliveTimeout + kRekeyTimeout);
  tick();
  EXPECT_EQ(count_type(a.wire.out, MessageType::kInitiation), 1u);
}

TEST_F(PairTest, InitiatorRekeysBeforeRejectWhenOnlyReceiving) {
  establish();
  // A only receives; at REJECT - KEEPALIVE - REKEY_TIMEOUT it rekeys once.
  clock.advance(kRejectAfterTime - kKeepaliveTimeout - kRekeyTimeout);
  ASSERT_EQ(send_b(packet(64, 1)), Drop::kOk);
  ASSERT_EQ(deliver(b.wire.out.front()).drop, Drop::kOk);
  b.wire.out.clear();
  EXPECT_EQ(count_type(a.wire.out, MessageType::kInitiation), 1u);
  EXPECT_TRUE(pb->sent_lastminute_handshake);
}

TEST_F(PairTest, KeysAreZeroedAfterThreeRejectTimes) {
  establish();
  ASSERT_NE(pb->keypairs.current(), nullptr);
  // Silence everywhere; drop whatever the timers send.
  for (int i = 0; i < 60; ++i) {
    clock.advance(10 * kSecond);
    tick();
    a.wire.out.clear();
    b.wire.out.clear();
  }
  EXPECT_EQ(pb->keypairs.current(), nullptr);
  EXPECT_EQ(pb->keypairs.previous(), nullptr);
  EXPECT_EQ(pa->keypairs.current(), nullptr);
  EXPECT_EQ(pb->handshake.state, HandshakeState::kZeroed);
}

}  // namespace
}  // namespace moongate::wg::test

#include "wireguard/load.h"

namespace moongate::wg::test {
namespace {

TEST(LoadDetector, EighthFullQueueMeansLoadForOneSecond) {
  LoadDetector d;
  EXPECT_FALSE(d.update(0, 4096, kT0));
  EXPECT_FALSE(d.update(511, 4096, kT0));
  EXPECT_TRUE(d.update(512, 4096, kT0));
  // The queue drained, but the mode holds for a second.
  EXPECT_TRUE(d.update(0, 4096, kT0 + LoadDetector::kHold - 1));
  EXPECT_FALSE(d.update(0, 4096, kT0 + LoadDetector::kHold));
  EXPECT_FALSE(d.update(0, 0, kT0 + 10 * kSecond));
}

}  // namespace
}  // namespace moongate::wg::test
