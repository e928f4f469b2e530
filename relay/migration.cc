// The rule for moving a connection to its peers' shard (migration.h).
#include "relay/migration.h"

#include <algorithm>

namespace moongate::relay {

std::uint64_t move_cap(const MigrationConfig& cfg, std::span<const std::uint32_t> loads) noexcept {
  std::uint64_t total = 0;
  for (std::uint32_t l : loads) total += l;
  const std::uint64_t n = std::max<std::size_t>(loads.size(), 1);
  const std::uint64_t fair = (total + n - 1) / n;
  return fair + std::max<std::uint64_t>(fair * cfg.margin_pct / 100, cfg.margin_min);
}

MoveDecision decide_move(const MigrationConfig& cfg, unsigned shard, std::span<const std::uint32_t> loads,
                         const derp::RouteTally::Window& w, std::uint64_t last_move,
                         std::uint64_t now) noexcept {
  MoveDecision d;
  if (!cfg.enabled || w.total == 0 || w.total < cfg.min_packets) return d;
  // Routes below the shard count are the sibling shards; local, mesh and
  // "other" routes are not somewhere to move to.
  if (w.route >= loads.size() || w.route == shard || !w.above_peers) return d;
  if (std::uint64_t{w.candidate} * 100 < std::uint64_t{w.total} * cfg.share_pct) return d;
  if (last_move != 0 && (now < last_move || now - last_move < cfg.hold_ns)) return d;
  d.target = w.route;
  d.verdict = std::uint64_t{loads[w.route]} + 1 <= move_cap(cfg, loads) ? MoveVerdict::kMove
                                                                        : MoveVerdict::kRefusedFull;
  return d;
}

}  // namespace moongate::relay
