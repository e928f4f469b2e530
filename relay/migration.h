// When a client connection moves to another shard: the rule, I/O-free and
// clock-injected (the move itself is in shard.cc; flow in shard.h).
//
// SO_REUSEPORT picks a connection's shard before its key is known, so the
// two ends of a conversation often land on different shards; then every
// packet crosses a shard ring and wakes the other shard's thread. Once per
// window (the shard's one-second tick) each client connection's tally
// (derp/route_tally.h) is judged:
//   1. at least `min_packets` packets sent or received in the window
//   2. at least `share_pct` % of them with clients on one other shard T
//   3. its key is above every key it exchanged packets with through T: of
//      two clients talking, only one ever moves towards the other (no
//      swap, so no oscillation: the pair moves once and is then local),
//      and which one is as good as random, so moves go up as often as down
//      (no shard collects every pair)
//   4. the connection's last move is at least `hold_ns` old (the options
//      keep it above the 5 s a shard passes on packets for a key that left:
//      a passed-on packet cannot meet a second move of its key, so it
//      cannot loop)
//   5. T would hold no more than its fair share of the relay's DERP
//      connections plus a margin: fair = ceil(total / shards), margin =
//      max(margin_pct % of fair, margin_min). Otherwise the move is refused
//      (counted) and the pair stays split.
#pragma once

#include <cstdint>
#include <span>

#include "derp/route_tally.h"

namespace moongate::relay {

struct MigrationConfig {
  bool enabled = true;
  std::uint32_t share_pct = 90;
  std::uint32_t min_packets = 256;
  std::uint64_t hold_ns = 10'000'000'000ull;
  std::uint32_t margin_pct = 25;
  std::uint32_t margin_min = 4;
};

enum class MoveVerdict : std::uint8_t { kStay, kMove, kRefusedFull };

struct MoveDecision {
  MoveVerdict verdict = MoveVerdict::kStay;
  unsigned target = 0;
};

// `loads`: DERP connections per shard (this one included); `last_move`: when
// the connection last moved, 0 = never.
MoveDecision decide_move(const MigrationConfig& cfg, unsigned shard, std::span<const std::uint32_t> loads,
                         const derp::RouteTally::Window& w, std::uint64_t last_move,
                         std::uint64_t now) noexcept;

// The most connections `target` may hold after taking one more (rule 5).
std::uint64_t move_cap(const MigrationConfig& cfg, std::span<const std::uint32_t> loads) noexcept;

}  // namespace moongate::relay
