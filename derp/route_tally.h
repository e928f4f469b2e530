// Which route a client's packets go to and come from, per window: what the
// relay's shards look at to decide whether a connection should move to the
// shard its peers are on (relay/migration.h).
//
// Per packet: one note() with the route of the other end (kLocalRoute: a
// client of this server; a sibling shard's or mesh peer's route; kOtherRoute:
// a mesh connection delivering) and the other end's key. Per window: roll()
// returns how many packets there were, how many of them were with the
// window's candidate route, and whether the connection's own key is above
// every key it exchanged packets with through that route (the move rule's
// tie-break: of two clients talking, only one may move to the other).
// The candidate is the previous window's majority vote (Boyer-Moore: a
// route with more than half of the packets always wins it), or, when that
// window had no vote left (a new connection, a quiet or evenly split
// window), the route of this window's first packet. Its count is exact
// from then on, so the share it gives is never more than the true one: a
// new conversation is judged after one window, a shift within one after
// two. Keys are compared by their first 8 bytes (as a big-endian number):
// two keys alike there (made so on purpose) are neither above the other,
// and then neither end moves. A few integers per connection rather than a
// count per route.
#pragma once

#include <algorithm>
#include <cstdint>

#include "derp/frame.h"

namespace moongate::derp {

using Route = std::uint32_t;

inline constexpr Route kLocalRoute = ~Route{0};
inline constexpr Route kOtherRoute = ~Route{0} - 1;

struct RouteTally {
  struct Window {
    std::uint32_t total = 0;      // packets sent or received in the window
    std::uint32_t candidate = 0;  // of those, with `route`
    Route route = kLocalRoute;
    bool above_peers = false;     // own key above every peer key seen through `route` (rank())
  };

  void note(Route r, const Key& peer) noexcept {
    ++total_;
    if (open_) {
      cand_ = r;
      open_ = false;
    }
    if (r == cand_) {
      ++cand_n_;
      peer_max_ = std::max(peer_max_, rank(peer));
    }
    if (r == vote_) {
      ++vote_n_;
    } else if (vote_n_ == 0) {
      vote_ = r;
      vote_n_ = 1;
    } else {
      --vote_n_;
    }
  }

  Window roll(const Key& own) noexcept {
    const Window w{total_, cand_n_, cand_, cand_n_ > 0 && rank(own) > peer_max_};
    open_ = vote_n_ == 0;
    if (!open_) cand_ = vote_;
    total_ = cand_n_ = vote_n_ = 0;
    peer_max_ = 0;
    return w;
  }

  // A key's place in the tie-break order: its first 8 bytes, big-endian.
  static std::uint64_t rank(const Key& k) noexcept {
    std::uint64_t v = 0;
    for (int i = 0; i < 8; ++i) v = v << 8 | k[static_cast<std::size_t>(i)];
    return v;
  }

 private:
  std::uint32_t total_ = 0, cand_n_ = 0, vote_n_ = 0;
  Route cand_ = kLocalRoute, vote_ = kLocalRoute;
  bool open_ = true;  // the next packet's route becomes the candidate
  std::uint64_t peer_max_ = 0;  // the highest peer rank seen through cand_ this window
};

}  // namespace moongate::derp
