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

derp::RouteTally::Window window(std::uint32_t total, std::uint32_t with, derp::Route route) {
  return derp::RouteTally::Window{total, with, route};
}

TEST(MigrationRule, MovesDownToThePeersShard) {
  const MigrationConfig cfg;
  const std::vector<std::uint32_t> loads = {10, 10};
  const auto d = decide_move(cfg, 1, loads, window(1000, 950, 0), 0, 100 * kS);
  EXPECT_EQ(d.verdict, MoveVerdict::kMove);
  EXPECT_EQ(d.target, 0u);
}

TEST(MigrationRule, NeverUpSoThePairMovesOnce) {
  const MigrationConfig cfg;
  const std::vector<std::uint32_t> loads = {10, 10, 10};
  // The pair's other end, on the lower shard, stays: only one of the two moves.
  EXPECT_EQ(decide_move(cfg, 0, loads, window(1000, 1000, 1), 0, kS).verdict, MoveVerdict::kStay);
  EXPECT_EQ(decide_move(cfg, 1, loads, window(1000, 1000, 2), 0, kS).verdict, MoveVerdict::kStay);
  EXPECT_EQ(decide_move(cfg, 2, loads, window(1000, 1000, 1), 0, kS).verdict, MoveVerdict::kMove);
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

// Many split pairs, every connection of shards 1..3 talking to shard 0:
// moves stop at the cap, whatever the order, and nothing ever moves twice.
TEST(MigrationRule, SplitPairsNeitherOscillateNorPileUp) {
  MigrationConfig cfg;
  cfg.hold_ns = 0;
  std::vector<std::uint32_t> loads = {100, 100, 100, 100};
  struct C {
    unsigned shard, peer;
  };
  std::vector<C> conns;
  for (unsigned s = 1; s < 4; ++s)
    for (int i = 0; i < 100; ++i) conns.push_back({s, 0});
  unsigned moves = 0, refused = 0;
  for (int round = 0; round < 10; ++round) {
    for (C& c : conns) {
      const derp::Route r = c.shard == c.peer ? derp::kLocalRoute : c.peer;
      const auto d = decide_move(cfg, c.shard, loads, window(1000, 1000, r), 0, (round + 1) * kS);
      if (d.verdict == MoveVerdict::kRefusedFull) ++refused;
      if (d.verdict != MoveVerdict::kMove) continue;
      ASSERT_LT(d.target, c.shard);
      --loads[c.shard];
      ++loads[d.target];
      c.shard = d.target;
      ++moves;
    }
  }
  EXPECT_EQ(loads[0], move_cap(cfg, loads));  // 125: full, not more
  EXPECT_EQ(moves, 25u);                      // each moved once
  EXPECT_GT(refused, 0u);
}

TEST(Options, MigrationFlagsAndYaml) {
  Options o;
  std::string err;
  EXPECT_TRUE(o.migrate.enabled);  // on by default
  std::vector<std::string> args = {"moongate-relay", "--plain", "--migrate", "off", "--migrate-share", "75",
                                   "--migrate-min-packets", "1000", "--migrate-hold", "3",
                                   "--migrate-margin", "50", "--migrate-margin-min", "0"};
  std::vector<char*> argv;
  for (auto& a : args) argv.push_back(a.data());
  ASSERT_TRUE(parse_options(static_cast<int>(argv.size()), argv.data(), o, err)) << err;
  EXPECT_FALSE(o.migrate.enabled);
  EXPECT_EQ(o.migrate.share_pct, 75u);
  EXPECT_EQ(o.migrate.min_packets, 1000u);
  EXPECT_EQ(o.migrate.hold_ns, 3 * kS);
  EXPECT_EQ(o.migrate.margin_pct, 50u);
  EXPECT_EQ(o.migrate.margin_min, 0u);
  Options y;
  ASSERT_TRUE(load_relay_yaml("relay:\n  plain: true\n  migrate: false\n  migrate_share: 95\n  migrate-hold: 1\n", "r.yaml",
                              y, err))
      << err;
  EXPECT_FALSE(y.migrate.enabled);
  EXPECT_EQ(y.migrate.share_pct, 95u);
  EXPECT_EQ(y.migrate.hold_ns, kS);
  Options bad;
  EXPECT_FALSE(load_relay_yaml("relay:\n  migrate_share: 40\n", "r.yaml", bad, err));
  EXPECT_EQ(err, "r.yaml:2:18: relay.migrate_share: want 51..100 (percent), got 40");
  EXPECT_FALSE(load_relay_yaml("relay:\n  migrate: sometimes\n", "r.yaml", bad, err));
  EXPECT_EQ(err, "r.yaml:2:12: relay.migrate: want on or off, got sometimes");
}

}  // namespace
}  // namespace moongate::relay
