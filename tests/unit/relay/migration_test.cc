// The rule for moving a connection to its peers' shard (relay/migration.h),
// with an injected clock and made-up loads.
#include <gtest/gtest.h>

#include <string>
#include <vector>

#include "relay/migration.h"
#include "relay/options.h"

namespace moongate::relay {
namespace {

constexpr std::uint64_t kS = 1'000'000'000ull;

// A window of `total` packets, `with` of them through `route`; `above`: the
// connection's key is above its peers' there.
derp::RouteTally::Window window(std::uint32_t total, std::uint32_t with, derp::Route route,
                                bool above = true) {
  return derp::RouteTally::Window{total, with, route, above};
}

TEST(MigrationRule, MovesToThePeersShardUpOrDown) {
  const MigrationConfig cfg;
  const std::vector<std::uint32_t> loads = {10, 10};
  auto d = decide_move(cfg, 1, loads, window(1000, 950, 0), 0, 100 * kS);
  EXPECT_EQ(d.verdict, MoveVerdict::kMove);
  EXPECT_EQ(d.target, 0u);
  d = decide_move(cfg, 0, loads, window(1000, 950, 1), 0, 100 * kS);
  EXPECT_EQ(d.verdict, MoveVerdict::kMove);
  EXPECT_EQ(d.target, 1u);
}

TEST(MigrationRule, OnlyTheEndWithTheHigherKeyMoves) {
  const MigrationConfig cfg;
  const std::vector<std::uint32_t> loads = {10, 10};
  // Each end of a split pair sees the other's shard; the lower key stays.
  EXPECT_EQ(decide_move(cfg, 0, loads, window(1000, 1000, 1, false), 0, kS).verdict, MoveVerdict::kStay);
  EXPECT_EQ(decide_move(cfg, 1, loads, window(1000, 1000, 0, true), 0, kS).verdict, MoveVerdict::kMove);
}

TEST(MigrationRule, ThresholdsAndRoutesThatAreNotShards) {
  MigrationConfig cfg;
  cfg.share_pct = 90;
  cfg.min_packets = 100;
  const std::vector<std::uint32_t> loads = {4, 4};
  EXPECT_EQ(decide_move(cfg, 1, loads, window(99, 99, 0), 0, kS).verdict, MoveVerdict::kStay);
  EXPECT_EQ(decide_move(cfg, 1, loads, window(100, 89, 0), 0, kS).verdict, MoveVerdict::kStay);
  EXPECT_EQ(decide_move(cfg, 1, loads, window(100, 90, 0), 0, kS).verdict, MoveVerdict::kMove);
  EXPECT_EQ(decide_move(cfg, 1, loads, window(100, 100, derp::kLocalRoute), 0, kS).verdict, MoveVerdict::kStay);
  EXPECT_EQ(decide_move(cfg, 1, loads, window(100, 100, derp::kOtherRoute), 0, kS).verdict, MoveVerdict::kStay);
  EXPECT_EQ(decide_move(cfg, 1, loads, window(100, 100, 1000), 0, kS).verdict, MoveVerdict::kStay);  // a mesh peer
  EXPECT_EQ(decide_move(cfg, 1, loads, window(100, 100, 1), 0, kS).verdict, MoveVerdict::kStay);  // itself
  EXPECT_EQ(decide_move(cfg, 1, loads, window(0, 0, 0), 0, kS).verdict, MoveVerdict::kStay);
  cfg.enabled = false;
  EXPECT_EQ(decide_move(cfg, 1, loads, window(100, 100, 0), 0, kS).verdict, MoveVerdict::kStay);
}

TEST(MigrationRule, HoldTimeAfterAMove) {
  MigrationConfig cfg;
  cfg.hold_ns = 10 * kS;
  const std::vector<std::uint32_t> loads = {2, 2, 2};
  const auto w = window(1000, 1000, 0);
  EXPECT_EQ(decide_move(cfg, 2, loads, w, 50 * kS, 55 * kS).verdict, MoveVerdict::kStay);
  EXPECT_EQ(decide_move(cfg, 2, loads, w, 50 * kS, 49 * kS).verdict, MoveVerdict::kStay);  // clock behind
  EXPECT_EQ(decide_move(cfg, 2, loads, w, 50 * kS, 60 * kS).verdict, MoveVerdict::kMove);
}

TEST(MigrationRule, FairShareCapRefuses) {
  MigrationConfig cfg;
  cfg.margin_pct = 25;
  cfg.margin_min = 4;
  // 200 connections on 2 shards: fair 100, margin 25: shard 0 may reach 125.
  EXPECT_EQ(move_cap(cfg, std::vector<std::uint32_t>{100, 100}), 125u);
  EXPECT_EQ(decide_move(cfg, 1, std::vector<std::uint32_t>{124, 76}, window(500, 500, 0), 0, kS).verdict,
            MoveVerdict::kMove);
  const auto d = decide_move(cfg, 1, std::vector<std::uint32_t>{125, 75}, window(500, 500, 0), 0, kS);
  EXPECT_EQ(d.verdict, MoveVerdict::kRefusedFull);
  EXPECT_EQ(d.target, 0u);
  // Few connections: the absolute margin lets one pair join up.
  EXPECT_EQ(move_cap(cfg, std::vector<std::uint32_t>{1, 1}), 5u);
}

// Split pairs with random keys over 4 shards, judged round after round as
// the shards would (each end from its own tally): every pair ends on one
// shard, each pair moved once (no end ever moves back: no oscillation), and
// no shard ends over the cap.
TEST(MigrationRule, SplitPairsMergeOnceWithoutPilingUp) {
  MigrationConfig cfg;
  cfg.hold_ns = 0;
  constexpr unsigned kShards = 4;
  std::vector<std::uint32_t> loads(kShards, 0);
  struct End {
    unsigned shard;
    std::uint32_t key;
    int moves = 0;
  };
  std::vector<std::pair<End, End>> pairs;
  std::uint32_t rng = 12345;
  auto next = [&] {
    rng = rng * 1103515245u + 12345u;
    return rng >> 8;
  };
  for (int i = 0; i < 400; ++i) {
    End a{next() % kShards, next()}, b{next() % kShards, next()};
    ++loads[a.shard];
    ++loads[b.shard];
    pairs.emplace_back(a, b);
  }
  unsigned split = 0, moves = 0;
  for (auto& [a, b] : pairs) split += a.shard != b.shard;
  for (int round = 0; round < 10; ++round) {
    for (auto& [a, b] : pairs) {
      // Both ends are judged in the same round, before either moves.
      MoveDecision d[2];
      End* ends[2] = {&a, &b};
      for (int e = 0; e < 2; ++e) {
        End& me = *ends[e];
        End& peer = *ends[1 - e];
        const derp::Route r = me.shard == peer.shard ? derp::kLocalRoute : peer.shard;
        d[e] = decide_move(cfg, me.shard, loads, window(1000, 1000, r, me.key > peer.key), 0,
                           (round + 1) * kS);
      }
      ASSERT_FALSE(d[0].verdict == MoveVerdict::kMove && d[1].verdict == MoveVerdict::kMove);
      for (int e = 0; e < 2; ++e) {
        if (d[e].verdict != MoveVerdict::kMove) continue;
        --loads[ends[e]->shard];
        ++loads[d[e].target];
        ends[e]->shard = d[e].target;
        ++ends[e]->moves;
        ++moves;
      }
    }
  }
  EXPECT_EQ(moves, split);  // one move per split pair, none twice
  for (auto& [a, b] : pairs) {
    EXPECT_EQ(a.shard, b.shard);
    EXPECT_LE(a.moves + b.moves, 1);
  }
  for (unsigned s = 0; s < kShards; ++s) EXPECT_LE(loads[s], move_cap(cfg, loads)) << s;
}

// Every pair's higher key on shards 1..3 and its lower key on shard 0:
// moves stop at the cap, and the rest are refused (counted by the shard).
TEST(MigrationRule, TheCapStopsAPileUp) {
  MigrationConfig cfg;
  cfg.hold_ns = 0;
  std::vector<std::uint32_t> loads = {100, 100, 100, 100};
  unsigned moves = 0, refused = 0;
  for (unsigned s = 1; s < 4; ++s)
    for (int i = 0; i < 100; ++i) {
      const auto d = decide_move(cfg, s, loads, window(1000, 1000, 0), 0, kS);
      if (d.verdict == MoveVerdict::kRefusedFull) ++refused;
      if (d.verdict != MoveVerdict::kMove) continue;
      --loads[s];
      ++loads[0];
      ++moves;
    }
  EXPECT_EQ(loads[0], move_cap(cfg, loads));  // 125: full, not more
  EXPECT_EQ(moves, 25u);
  EXPECT_EQ(refused, 275u);
}

TEST(Options, MigrationFlagsAndYaml) {
  Options o;
  std::string err;
  EXPECT_TRUE(o.migrate.enabled);  // on by default
  std::vector<std::string> args = {"moongate-relay", "--plain", "--migrate", "off", "--migrate-share", "75",
                                   "--migrate-min-packets", "1000", "--migrate-hold", "7",
                                   "--migrate-margin", "50", "--migrate-margin-min", "0"};
  std::vector<char*> argv;
  for (auto& a : args) argv.push_back(a.data());
  ASSERT_TRUE(parse_options(static_cast<int>(argv.size()), argv.data(), o, err)) << err;
  EXPECT_FALSE(o.migrate.enabled);
  EXPECT_EQ(o.migrate.share_pct, 75u);
  EXPECT_EQ(o.migrate.min_packets, 1000u);
  EXPECT_EQ(o.migrate.hold_ns, 7 * kS);
  EXPECT_EQ(o.migrate.margin_pct, 50u);
  EXPECT_EQ(o.migrate.margin_min, 0u);
  Options y;
  ASSERT_TRUE(load_relay_yaml("relay:\n  plain: true\n  migrate: false\n  migrate_share: 95\n  migrate-hold: 5\n", "r.yaml",
                              y, err))
      << err;
  EXPECT_FALSE(y.migrate.enabled);
  EXPECT_EQ(y.migrate.share_pct, 95u);
  EXPECT_EQ(y.migrate.hold_ns, 5 * kS);
  Options bad;
  EXPECT_FALSE(load_relay_yaml("relay:\n  migrate_share: 40\n", "r.yaml", bad, err));
  EXPECT_EQ(err, "r.yaml:2:18: relay.migrate_share: want 51..100 (percent), got 40");
  // Below the 5 s a shard passes on packets for a key that moved away.
  EXPECT_FALSE(load_relay_yaml("relay:\n  migrate_hold: 4\n", "r.yaml", bad, err));
  EXPECT_EQ(err, "r.yaml:2:17: relay.migrate_hold: want 5..86400 seconds, got 4");
  EXPECT_FALSE(load_relay_yaml("relay:\n  migrate: sometimes\n", "r.yaml", bad, err));
  EXPECT_EQ(err, "r.yaml:2:12: relay.migrate: want on or off, got sometimes");
}

}  // namespace
}  // namespace moongate::relay
