// TimerWheel on a manual clock: firing time (never early, at the first
// advance at or past the deadline), rescheduling, cancel, past and far
// (multi-round) deadlines, budget-limited advances that resume, callbacks
// that schedule and cancel, long idle jumps, the lazy usage the data plane
// relies on, and a randomized differential test against a std::multimap.
#include "dataplane/timer_wheel.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <limits>
#include <map>
#include <memory>
#include <optional>
#include <random>
#include <set>
#include <vector>

namespace moongate::dp {
namespace {

constexpr std::size_t kUnlimited = std::numeric_limits<std::size_t>::max();

// What the data plane embeds: the node as a base of the per-peer struct.
struct Peer : TimerNode {
  std::size_t id = 0;
};

struct Peers {
  explicit Peers(std::size_t n) : v(n) {
    for (std::size_t i = 0; i < n; ++i) v[i].id = i;
  }
  Peer& operator[](std::size_t i) { return v[i]; }
  static std::size_t id(TimerNode& n) { return static_cast<Peer&>(n).id; }
  std::vector<Peer> v;
};

// Records (id, now) of every fire.
struct Fire {
  std::size_t id;
  std::uint64_t now;
};

std::size_t advance_recording(TimerWheel& w, std::uint64_t now, std::vector<Fire>& out,
                              std::size_t budget = kUnlimited) {
  return w.advance(now, [&](TimerNode& n) { out.push_back({Peers::id(n), now}); }, budget);
}

TEST(TimerWheel, StartsEmptyAndRoundsSlotsToAPowerOfTwo) {
  TimerWheel w(1000, 100, 5'000'000);
  EXPECT_EQ(w.slot_count(), 128u);
  EXPECT_EQ(w.tick_ns(), 1000u);
  EXPECT_EQ(w.size(), 0u);
  std::vector<Fire> f;
  EXPECT_EQ(advance_recording(w, 6'000'000, f), 0u);
  EXPECT_TRUE(f.empty());
}

TEST(TimerWheel, FiresAtTheFirstAdvanceAtOrPastTheDeadlineNeverBefore) {
  constexpr std::uint64_t kTick = 1000;
  constexpr std::uint64_t kT0 = 7'000'333;
  TimerWheel w(kTick, 64, kT0);
  Peers p(500);
  std::mt19937_64 rng(1);
  std::vector<std::uint64_t> deadline(500);
  for (std::size_t i = 0; i < 500; ++i) {
    // Inside and beyond the 64-tick horizon; some exactly on tick edges.
    deadline[i] = kT0 + 1 + rng() % (200 * kTick);
    if (i % 7 == 0) deadline[i] -= deadline[i] % kTick;
    if (i % 11 == 0) deadline[i] = deadline[i] - deadline[i] % kTick - 1;  // last ns of a tick
    w.schedule(p[i], deadline[i]);
  }
  EXPECT_EQ(w.size(), 500u);
  std::vector<std::optional<std::uint64_t>> fired_at(500);
  std::uint64_t prev = kT0;
  for (std::uint64_t now = kT0; now < kT0 + 202 * kTick; now += 137) {
    w.advance(now, [&](TimerNode& n) {
      const std::size_t id = Peers::id(n);
      ASSERT_FALSE(fired_at[id].has_value()) << "fired twice: " << id;
      EXPECT_FALSE(w.scheduled(n));
      fired_at[id] = now;
    }, kUnlimited);
    for (std::size_t i = 0; i < 500; ++i) {
      if (deadline[i] <= now && deadline[i] > prev) {
        EXPECT_EQ(fired_at[i], now) << "late: id " << i << " deadline " << deadline[i];
      }
      if (deadline[i] > now) {
        EXPECT_FALSE(fired_at[i].has_value()) << "early: id " << i;
      }
    }
    prev = now;
  }
  EXPECT_EQ(w.size(), 0u);
}

TEST(TimerWheel, FiresInTickOrderAcrossOneLongAdvance) {
  constexpr std::uint64_t kTick = 100;
  TimerWheel w(kTick, 1024, 0);
  Peers p(300);
  std::mt19937_64 rng(2);
  for (std::size_t i = 0; i < 300; ++i) w.schedule(p[i], 1 + rng() % (1000 * kTick));
  std::vector<std::uint64_t> ticks;
  w.advance(1000 * kTick, [&](TimerNode& n) { ticks.push_back(n.deadline / kTick); }, kUnlimited);
  ASSERT_EQ(ticks.size(), 300u);
  EXPECT_TRUE(std::is_sorted(ticks.begin(), ticks.end()));
}

TEST(TimerWheel, AtMostOneTickLateWhenAdvancedOncePerTick) {
  constexpr std::uint64_t kTick = 1'000'000;
  TimerWheel w(kTick, 256, 0);
  Peers p(1000);
  std::mt19937_64 rng(3);
  for (std::size_t i = 0; i < 1000; ++i) w.schedule(p[i], rng() % (1000 * kTick));
  std::size_t fired = 0;
  for (std::uint64_t now = 0; now <= 1000 * kTick; now += kTick) {
    fired += w.advance(now, [&](TimerNode& n) {
      EXPECT_LE(n.deadline, now);
      EXPECT_LT(now - n.deadline, kTick);
    }, kUnlimited);
  }
  EXPECT_EQ(fired, 1000u);
}

TEST(TimerWheel, ReschedulingEarlierFiresOnceAtTheEarlierDeadline) {
  TimerWheel w(10, 16, 0);
  Peers p(1);
  w.schedule(p[0], 100);
  w.schedule(p[0], 30);
  EXPECT_EQ(w.size(), 1u);
  EXPECT_EQ(p[0].deadline, 30u);
  std::vector<Fire> f;
  EXPECT_EQ(advance_recording(w, 29, f), 0u);
  EXPECT_EQ(advance_recording(w, 30, f), 1u);
  EXPECT_EQ(advance_recording(w, 1000, f), 0u) << "the old deadline must be gone";
  EXPECT_EQ(f.size(), 1u);
}

TEST(TimerWheel, ReschedulingLaterDoesNotFireAtTheOldDeadline) {
  TimerWheel w(10, 16, 0);
  Peers p(1);
  w.schedule(p[0], 30);
  w.schedule(p[0], 1000);  // beyond the 160 ns horizon
  EXPECT_EQ(w.size(), 1u);
  std::vector<Fire> f;
  for (std::uint64_t now = 0; now < 1000; now += 5) EXPECT_EQ(advance_recording(w, now, f), 0u);
  EXPECT_EQ(advance_recording(w, 1000, f), 1u);
  EXPECT_EQ(w.size(), 0u);
}

TEST(TimerWheel, RescheduleWithinTheSameSlotKeepsOneEntry) {
  TimerWheel w(10, 16, 0);
  Peers p(1);
  for (int i = 0; i < 10; ++i) w.schedule(p[0], 50);
  EXPECT_EQ(w.size(), 1u);
  std::vector<Fire> f;
  EXPECT_EQ(advance_recording(w, 60, f), 1u);
}

TEST(TimerWheel, CancelIsSafeAndFinal) {
  TimerWheel w(10, 16, 0);
  Peers p(3);
  w.cancel(p[0]);  // never scheduled
  EXPECT_EQ(w.size(), 0u);
  w.schedule(p[0], 50);
  w.schedule(p[1], 50);
  w.schedule(p[2], 50);
  w.cancel(p[1]);
  w.cancel(p[1]);  // twice
  EXPECT_FALSE(w.scheduled(p[1]));
  EXPECT_TRUE(w.scheduled(p[0]));
  EXPECT_EQ(w.size(), 2u);
  std::vector<Fire> f;
  EXPECT_EQ(advance_recording(w, 100, f), 2u);
  for (const Fire& x : f) EXPECT_NE(x.id, 1u);
  // A cancelled node can be scheduled again.
  w.schedule(p[1], 120);
  ASSERT_EQ(advance_recording(w, 120, f), 1u);
  EXPECT_EQ(f.back().id, 1u);
  // Cancelling the only node of a slot, and the last of a list, leaves the
  // wheel consistent for later schedules in that slot.
  w.schedule(p[0], 200);
  w.cancel(p[0]);
  w.schedule(p[2], 200);
  ASSERT_EQ(advance_recording(w, 200, f), 1u);
  EXPECT_EQ(f.back().id, 2u);
  EXPECT_EQ(w.size(), 0u);
}

TEST(TimerWheel, TeardownInEitherOrderTouchesNoFreedMemory) {
  // Peers freed first, wheel second (ASan reports if the wheel's destructor
  // walked its lists), then the other way round.
  auto w = std::make_unique<TimerWheel>(10, 16, 0);
  auto p = std::make_unique<Peers>(3);
  w->schedule((*p)[0], 50);
  w->schedule((*p)[1], 5000);
  w->schedule((*p)[2], 0);
  p.reset();
  w.reset();
  p = std::make_unique<Peers>(3);
  w = std::make_unique<TimerWheel>(10, 16, 0);
  w->schedule((*p)[0], 50);
  w.reset();
  p.reset();
  SUCCEED();
}

TEST(TimerWheel, PastDeadlinesFireAtTheNextAdvance) {
  constexpr std::uint64_t kTick = 1000;
  TimerWheel w(kTick, 32, 0);
  Peers p(4);
  std::vector<Fire> f;
  advance_recording(w, 1'000'000, f);
  w.schedule(p[0], 0);
  w.schedule(p[1], 5);
  w.schedule(p[2], 1'000'000 - 40 * kTick);  // same slot as a future tick, one turn ago
  w.schedule(p[3], 1'000'000);               // exactly now
  EXPECT_EQ(advance_recording(w, 1'000'000, f), 4u) << "same now: due is due";
  EXPECT_EQ(w.size(), 0u);
  // Also before the first advance ever: deadlines before the start time.
  TimerWheel w2(kTick, 32, 50 * kTick);
  w2.schedule(p[0], 3);
  EXPECT_EQ(advance_recording(w2, 50 * kTick, f), 1u);
}

TEST(TimerWheel, PastDeadlineAfterABudgetStopFiresNextCall) {
  constexpr std::uint64_t kTick = 1000;
  TimerWheel w(kTick, 32, 0);
  Peers p(5);
  for (std::size_t i = 0; i < 4; ++i) w.schedule(p[i], (i + 1) * kTick);
  std::vector<Fire> f;
  EXPECT_EQ(advance_recording(w, 10 * kTick, f, 2), 2u);  // stops at tick 3
  w.schedule(p[4], 1);                                    // long past
  EXPECT_EQ(advance_recording(w, 10 * kTick, f), 3u);
  EXPECT_EQ(w.size(), 0u);
}

TEST(TimerWheel, DeadlinesManyTurnsBeyondTheHorizon) {
  constexpr std::uint64_t kTick = 1000;
  TimerWheel w(kTick, 8, 0);  // horizon 8 us
  Peers p(3);
  const std::uint64_t far = 1'000'000 + 123;  // 125 turns away
  w.schedule(p[0], far);
  w.schedule(p[1], far - 8 * kTick * 50);  // same slot, 50 turns earlier
  w.schedule(p[2], 8 * kTick + 123);       // same slot, second turn
  std::vector<Fire> f;
  for (std::uint64_t now = 0; now <= far + kTick; now += kTick / 2) {
    const std::size_t before = f.size();
    advance_recording(w, now, f);
    for (std::size_t k = before; k < f.size(); ++k) {
      const std::uint64_t d =
          f[k].id == 0 ? far : f[k].id == 1 ? far - 400 * kTick : 8 * kTick + 123;
      EXPECT_GE(now, d);
      EXPECT_LT(now - d, kTick / 2) << "id " << f[k].id;
    }
  }
  ASSERT_EQ(f.size(), 3u);
  EXPECT_EQ(f[0].id, 2u);
  EXPECT_EQ(f[1].id, 1u);
  EXPECT_EQ(f[2].id, 0u);
}

TEST(TimerWheel, BudgetLimitsFiresAndResumesWithoutLosingNodes) {
  constexpr std::uint64_t kTick = 1000;
  TimerWheel w(kTick, 64, 0);
  Peers p(1000);
  // 400 in one tick, the rest spread over 40 ticks, some not yet due.
  for (std::size_t i = 0; i < 400; ++i) w.schedule(p[i], 5 * kTick + i);
  for (std::size_t i = 400; i < 1000; ++i) w.schedule(p[i], (i % 50) * kTick + 7);
  std::size_t due = 0;
  for (std::size_t i = 0; i < 1000; ++i) due += p[i].deadline <= 40 * kTick;
  std::vector<Fire> f;
  EXPECT_EQ(advance_recording(w, 40 * kTick, f, 0), 0u) << "budget 0 fires nothing";
  std::size_t calls = 0;
  for (;;) {
    const std::size_t n = advance_recording(w, 40 * kTick, f, 7);
    ++calls;
    EXPECT_LE(n, 7u);
    if (n < 7) break;
    ASSERT_LT(calls, 1000u);
  }
  EXPECT_EQ(f.size(), due);
  std::set<std::size_t> ids;
  for (const Fire& x : f) {
    EXPECT_TRUE(ids.insert(x.id).second) << "fired twice: " << x.id;
    EXPECT_LE(p[x.id].deadline, 40 * kTick);
  }
  EXPECT_EQ(w.size(), 1000 - due);
  // The rest fire later, unlimited.
  EXPECT_EQ(advance_recording(w, 100 * kTick, f), 1000 - due);
  EXPECT_EQ(w.size(), 0u);
}

TEST(TimerWheel, BudgetStopThenLaterNowStillFiresTheSkippedSlots) {
  constexpr std::uint64_t kTick = 1000;
  TimerWheel w(kTick, 64, 0);
  Peers p(20);
  for (std::size_t i = 0; i < 20; ++i) w.schedule(p[i], (i + 1) * kTick);
  std::vector<Fire> f;
  EXPECT_EQ(advance_recording(w, 20 * kTick, f, 5), 5u);
  // The next call comes a few ticks later: the leftovers from ticks 6..20
  // fire, none of them skipped.
  EXPECT_EQ(advance_recording(w, 23 * kTick, f), 15u);
  EXPECT_EQ(w.size(), 0u);
}

TEST(TimerWheel, CallbackMayRescheduleTheFiredNode) {
  constexpr std::uint64_t kTick = 1000;
  constexpr std::uint64_t kPeriod = 2500;
  TimerWheel w(kTick, 16, 0);
  Peers p(1);
  w.schedule(p[0], kPeriod);
  std::size_t fires = 0;
  for (std::uint64_t now = 0; now < 100 * kPeriod + 300; now += 300) {
    fires += w.advance(now, [&](TimerNode& n) {
      EXPECT_LE(n.deadline, now);
      w.schedule(n, n.deadline + kPeriod);
    }, kUnlimited);
  }
  EXPECT_EQ(fires, 100u);
  EXPECT_TRUE(w.scheduled(p[0]));
  EXPECT_EQ(p[0].deadline, 101 * kPeriod);
}

TEST(TimerWheel, CallbackReschedulingIntoTheWalkedSlotFiresNextCall) {
  constexpr std::uint64_t kTick = 1000;
  TimerWheel w(kTick, 16, 0);
  Peers p(2);
  w.schedule(p[0], 5 * kTick);
  w.schedule(p[1], 5 * kTick + 1);
  std::size_t calls = 0;
  // Re-arming at now (due again) from the callback must not loop in this
  // walk: each call fires each node once.
  const auto again = [&](TimerNode& n) {
    ++calls;
    w.schedule(n, 5 * kTick + 2);
  };
  EXPECT_EQ(w.advance(5 * kTick + 2, again, kUnlimited), 2u);
  EXPECT_EQ(w.size(), 2u);
  EXPECT_EQ(w.advance(5 * kTick + 2, again, kUnlimited), 2u);
  EXPECT_EQ(calls, 4u);
  // And into an earlier tick (past): next call too.
  EXPECT_EQ(w.advance(5 * kTick + 2, [&](TimerNode& n) { w.schedule(n, 0); }, kUnlimited), 2u);
  std::vector<Fire> f;
  EXPECT_EQ(advance_recording(w, 5 * kTick + 2, f), 2u);
  EXPECT_EQ(w.size(), 0u);
}

TEST(TimerWheel, CallbackMayCancelOrMoveOtherDueNodes) {
  constexpr std::uint64_t kTick = 1000;
  TimerWheel w(kTick, 16, 0);
  Peers p(6);
  // Same slot, all due: 0 fires first (FIFO within a slot is not promised,
  // so the callback acts on whichever fires first).
  for (std::size_t i = 0; i < 4; ++i) w.schedule(p[i], 3 * kTick + i);
  w.schedule(p[4], 4 * kTick);  // due, next slot
  std::vector<std::size_t> order;
  std::set<std::size_t> cancelled;
  std::optional<std::size_t> moved;
  bool first = true;
  const std::size_t n = w.advance(10 * kTick, [&](TimerNode& node) {
    const std::size_t id = Peers::id(node);
    EXPECT_EQ(cancelled.count(id), 0u) << "a cancelled node fired";
    EXPECT_NE(std::optional<std::size_t>(id), moved) << "a node moved to the future fired";
    order.push_back(id);
    if (!first) return;
    first = false;
    // Cancel two others of this slot and p[4]; move one more far away;
    // schedule a new node due now into the slot being walked.
    std::size_t others = 0;
    for (std::size_t i = 0; i < 4 && others < 2; ++i) {
      if (i == id) continue;
      w.cancel(p[i]);
      cancelled.insert(i);
      ++others;
    }
    w.cancel(p[4]);
    cancelled.insert(4);
    for (std::size_t i = 0; i < 4; ++i) {
      if (i != id && cancelled.count(i) == 0) {
        moved = i;
        w.schedule(p[i], 1000 * kTick);
      }
    }
    w.schedule(p[5], 3 * kTick);
  }, kUnlimited);
  EXPECT_EQ(n, 1u);
  EXPECT_EQ(order.size(), 1u);
  EXPECT_EQ(w.size(), 2u);  // moved one and p[5]
  std::vector<Fire> f;
  ASSERT_EQ(advance_recording(w, 10 * kTick, f), 1u);
  EXPECT_EQ(f.back().id, 5u);
  ASSERT_EQ(advance_recording(w, 1000 * kTick, f), 1u);
  ASSERT_TRUE(moved.has_value());
  EXPECT_EQ(f.back().id, *moved);
}

TEST(TimerWheel, LongIdleJumpWalksEachSlotOnce) {
  constexpr std::uint64_t kTick = 1'000'000;  // 1 ms
  TimerWheel w(kTick, 256, 0);
  Peers p(2000);
  std::mt19937_64 rng(4);
  for (std::size_t i = 0; i < 1000; ++i) w.schedule(p[i], rng() % (10'000 * kTick));
  for (std::size_t i = 1000; i < 2000; ++i)
    w.schedule(p[i], 20'000 * kTick + rng() % (1000 * kTick));
  std::vector<Fire> f;
  const std::uint64_t before = w.slots_walked();
  EXPECT_EQ(advance_recording(w, 15'000 * kTick, f), 1000u);
  ASSERT_LE(w.slots_walked() - before, w.slot_count());
  for (const Fire& x : f) EXPECT_LT(x.id, 1000u);
  // The survivors still fire on time, per tick, after the jump.
  std::size_t fired = 0;
  for (std::uint64_t now = 15'000 * kTick; now <= 21'000 * kTick; now += kTick) {
    fired += w.advance(now, [&](TimerNode& n) {
      EXPECT_LE(n.deadline, now);
      EXPECT_LT(now - n.deadline, kTick);
    }, kUnlimited);
  }
  EXPECT_EQ(fired, 1000u);
  // A jump of ~2^62 one-ns ticks must not walk them: it finishes at once.
  TimerWheel w2(1, 1024, 0);
  w2.schedule(p[0], 10);
  w2.schedule(p[1], std::uint64_t{1} << 62);
  w2.schedule(p[2], (std::uint64_t{1} << 62) + 1);
  const std::uint64_t before2 = w2.slots_walked();
  EXPECT_EQ(advance_recording(w2, std::uint64_t{1} << 62, f), 2u);
  EXPECT_LE(w2.slots_walked() - before2, 1024u);
  EXPECT_TRUE(w2.scheduled(p[2]));
  EXPECT_EQ(advance_recording(w2, (std::uint64_t{1} << 62) + 1, f), 1u);
}

TEST(TimerWheel, BudgetLimitedIdleJumpResumesAndStaysBounded) {
  constexpr std::uint64_t kTick = 1000;
  TimerWheel w(kTick, 64, 0);
  Peers p(640);
  for (std::size_t i = 0; i < 640; ++i) w.schedule(p[i], i * 37 + 1);  // across all slots
  std::vector<Fire> f;
  const std::uint64_t now = 1'000'000 * kTick;
  std::size_t calls = 0;
  while (w.size() != 0) {
    const std::uint64_t before = w.slots_walked();
    advance_recording(w, now + calls * 10 * kTick, f, 50);
    ASSERT_LE(w.slots_walked() - before, w.slot_count());
    ASSERT_LT(++calls, 100u);
  }
  EXPECT_EQ(f.size(), 640u);
  EXPECT_EQ(calls, 13u);  // 12 full budgets and 40 left
}

TEST(TimerWheel, SameTickAdvancesAreCheapButSeeNewDueNodes) {
  constexpr std::uint64_t kTick = 1'000'000;
  TimerWheel w(kTick, 64, 0);
  Peers p(100);
  for (std::size_t i = 0; i < 100; ++i) w.schedule(p[i], 5 * kTick + 500'000 + i);
  std::vector<Fire> f;
  advance_recording(w, 5 * kTick, f);
  const std::uint64_t walked = w.slots_walked();
  for (std::uint64_t now = 5 * kTick; now < 5 * kTick + 500'000; now += 1000)
    advance_recording(w, now, f);
  EXPECT_EQ(w.slots_walked(), walked) << "nothing due in the current slot: no walk";
  // A node scheduled into the current slot, due now, is still seen.
  Peer extra;
  w.schedule(extra, 5 * kTick + 100);
  EXPECT_EQ(advance_recording(w, 5 * kTick + 499'999, f), 1u);
  EXPECT_EQ(advance_recording(w, 5 * kTick + 500'050, f), 51u);
  EXPECT_EQ(advance_recording(w, 5 * kTick + 500'099, f), 49u);
}

// The data plane's use: the peer's real deadline moves often (mostly later);
// the node is re-linked only when it moves earlier, and re-armed when it
// fires early. Every real deadline must be served at the first advance past
// it, and never before.
TEST(TimerWheel, LazyReschedulingNeverMissesARealDeadline) {
  constexpr std::uint64_t kTick = 1'000'000;
  constexpr std::size_t kPeers = 2000;
  TimerWheel w(kTick, 512, 0);
  Peers p(kPeers);
  std::vector<std::uint64_t> real(kPeers, 0);  // 0 = nothing armed
  std::mt19937_64 rng(5);
  std::uint64_t now = 0;
  std::size_t served = 0;
  std::size_t relinks = 0;
  std::size_t stamps = 0;
  const auto stamp = [&](std::size_t i, std::uint64_t d) {
    ++stamps;
    real[i] = d;
    if (!w.scheduled(p[i]) || d < p[i].deadline) {
      w.schedule(p[i], d);
      ++relinks;
    }
  };
  for (int step = 0; step < 20'000; ++step) {
    now += rng() % (kTick / 2);
    for (int k = 0; k < 20; ++k) {  // packets
      const std::size_t i = rng() % kPeers;
      const std::uint64_t r = rng() % 100;
      if (r < 80)
        stamp(i, std::max(real[i], now + 10'000 * kTick));  // pushed later (keepalive)
      else if (r < 95)
        stamp(i, now + rng() % (2000 * kTick));  // anywhere, also earlier
      else
        real[i] = 0;  // disarmed; the node stays and fires harmlessly
    }
    w.advance(now, [&](TimerNode& n) {
      const std::size_t i = Peers::id(n);
      EXPECT_LE(n.deadline, now);
      if (real[i] == 0) return;
      if (real[i] <= now) {
        ++served;
        real[i] = 0;
        if (rng() % 2 == 0) stamp(i, now + 1 + rng() % (3000 * kTick));  // timer re-arms
        return;
      }
      w.schedule(n, real[i]);  // fired early: the deadline had moved later
    }, kUnlimited);
    for (std::size_t i = 0; i < kPeers; ++i) {
      if (real[i] != 0 && real[i] <= now) {
        ADD_FAILURE() << "peer " << i << " missed its deadline " << real[i] << " at " << now;
        real[i] = 0;
      }
    }
  }
  EXPECT_GT(served, 100u);
  EXPECT_LT(relinks, stamps / 2) << "lazy scheduling should skip most relinks";
}

// Differential test: the wheel against a std::multimap of (deadline, id),
// over random schedules, cancels, advances (sub-tick steps, many ticks,
// jumps past the horizon), budgets, and callbacks that schedule and cancel.
TEST(TimerWheel, MatchesAMultimapReferenceOnRandomOperations) {
  constexpr std::uint64_t kTick = 1000;
  constexpr std::size_t kSlots = 256;
  constexpr std::uint64_t kHorizon = kTick * kSlots;
  constexpr std::size_t kNodes = 10'000;
  constexpr int kOps = 100'000;
  std::uint64_t now = 5'000'000'017;
  TimerWheel w(kTick, kSlots, now);
  Peers p(kNodes);
  std::multimap<std::uint64_t, std::size_t> model;
  std::vector<std::optional<std::multimap<std::uint64_t, std::size_t>::iterator>> where(kNodes);
  std::mt19937_64 rng(6);

  const auto model_remove = [&](std::size_t id) {
    if (where[id]) {
      model.erase(*where[id]);
      where[id].reset();
    }
  };
  const auto model_set = [&](std::size_t id, std::uint64_t d) {
    model_remove(id);
    where[id] = model.emplace(d, id);
  };
  const auto random_deadline = [&]() -> std::uint64_t {
    const std::uint64_t r = rng() % 100;
    if (r < 10) return now - std::min<std::uint64_t>(now, rng() % (2 * kHorizon));  // past
    if (r < 15) return now;
    if (r < 75) return now + rng() % kHorizon;
    if (r < 95) return now + rng() % (4 * kHorizon);
    return now + rng() % (100 * kHorizon);  // many turns
  };
  std::uint64_t fired_total = 0;
  std::set<std::size_t> deferred;  // scheduled due from a callback: may wait a call

  for (int op = 0; op < kOps; ++op) {
    const std::uint64_t r = rng() % 100;
    if (r < 45) {
      const std::size_t id = rng() % kNodes;
      const std::uint64_t d = random_deadline();
      w.schedule(p[id], d);
      model_set(id, d);
    } else if (r < 60) {
      const std::size_t id = rng() % kNodes;
      w.cancel(p[id]);
      model_remove(id);
    } else {
      const std::uint64_t s = rng() % 1000;
      if (s < 500)
        now += rng() % kTick;  // often within the same tick
      else if (s < 900)
        now += rng() % (20 * kTick);
      else if (s < 990)
        now += rng() % (2 * kHorizon);
      else
        now += kHorizon + rng() % (50 * kHorizon);  // idle jump
      const std::size_t budget = rng() % 4 == 0 ? 1 + rng() % 20 : kUnlimited;
      const bool meddle = rng() % 3 == 0;
      deferred.clear();
      std::size_t in_callback = 0;
      const std::uint64_t walked_before = w.slots_walked();
      const std::size_t n = w.advance(now, [&](TimerNode& node) {
        const std::size_t id = Peers::id(node);
        ++in_callback;
        ASSERT_TRUE(where[id].has_value()) << "fired a node that is not scheduled: " << id;
        ASSERT_EQ((*where[id])->first, node.deadline);
        ASSERT_LE(node.deadline, now) << "fired early";
        ASSERT_FALSE(w.scheduled(node));
        model_remove(id);
        if (!meddle) return;
        const std::uint64_t m = rng() % 10;
        if (m < 3) {  // re-arm the fired node, sometimes due again
          const std::uint64_t d =
              m == 0 ? now - rng() % kHorizon : now + 1 + rng() % (3 * kHorizon);
          w.schedule(node, d);
          model_set(id, d);
          if (d <= now) deferred.insert(id);
        } else if (m < 5) {  // cancel another node
          const std::size_t other = rng() % kNodes;
          w.cancel(p[other]);
          model_remove(other);
          deferred.erase(other);
        } else if (m < 7) {  // move another node (maybe one not yet visited)
          const std::size_t other = rng() % kNodes;
          const std::uint64_t d = random_deadline();
          w.schedule(p[other], d);
          model_set(other, d);
          if (d <= now)
            deferred.insert(other);
          else
            deferred.erase(other);
        }
      }, budget);
      ASSERT_EQ(n, in_callback);
      ASSERT_LE(n, budget);
      ASSERT_LE(w.slots_walked() - walked_before, w.slot_count()) << "walked more than a turn";
      fired_total += n;
      if (n < budget) {
        // Everything due fired, except nodes made due from the callbacks.
        for (auto it = model.begin(); it != model.end() && it->first <= now; ++it)
          ASSERT_TRUE(deferred.count(it->second)) << "lost node " << it->second << " deadline "
                                                  << it->first << " now " << now << " op " << op;
      }
    }
    ASSERT_EQ(w.size(), model.size()) << "op " << op;
    if (op % 5000 == 0) {
      for (std::size_t i = 0; i < kNodes; ++i) {
        ASSERT_EQ(w.scheduled(p[i]), where[i].has_value()) << i;
        if (where[i]) {
          ASSERT_EQ(p[i].deadline, (*where[i])->first) << i;
        }
      }
    }
  }
  // Drain: everything fires, nothing twice, nothing early.
  now += 200 * kHorizon;
  for (std::size_t i = 0; i < kNodes; ++i) {
    if (where[i] && (*where[i])->first > now) {
      w.cancel(p[i]);
      model_remove(i);
    }
  }
  const std::size_t n = w.advance(now, [&](TimerNode& node) {
    const std::size_t id = Peers::id(node);
    ASSERT_TRUE(where[id].has_value());
    model_remove(id);
  }, kUnlimited);
  fired_total += n;
  EXPECT_TRUE(model.empty());
  EXPECT_EQ(w.size(), 0u);
  EXPECT_GT(fired_total, 10'000u) << "the test should exercise firing";
}

}  // namespace
}  // namespace moongate::dp
