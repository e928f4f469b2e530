// TimerWheel: the per-lcore hashed timer wheel that runs WireGuard peer
// timers. A worker owning 100 000 peers cannot scan them all for due timers
// on every loop; the wheel hands it only the peers whose deadline passed.
// Header-only, no DPDK, no locks: one wheel per lcore, used only by the lcore
// that owns its peers.
//
// Layout: `slots` circular lists (a power of two), one per tick of `tick_ns`;
// a deadline d lives in slot (d / tick_ns) mod slots. The node is intrusive
// (a TimerNode embedded in the caller's per-peer struct), so schedule() and
// cancel() are a few pointer writes and the wheel allocates only its slot
// array, once, in the constructor. Deadlines beyond the horizon (slots x
// tick) share a slot with nearer ones and are kept when the slot is visited
// too early; a deadline the walk has already passed goes to an overdue list
// that the next advance() runs first.
//
// How the data plane uses it (lazily, so the packet path rarely relinks):
//
//   1. On every packet the core stamps the peer's timers (wg::PeerTimers);
//      the worker then reads d = next_deadline() and calls schedule(node, d)
//      only when the node is not scheduled or d is EARLIER than
//      node.deadline. A deadline that moved later (the common case: every
//      packet pushes keepalives back) costs nothing.
//   2. advance(now, on_expire, budget) on every loop iteration (when
//      nothing is due it costs a few comparisons). Because of 1, a node can
//      fire before the peer's real deadline: on_expire runs the peer's due
//      timers (there may be none) and re-schedules the node at the peer's
//      current next_deadline(), if any. That is one early fire per armed
//      node, instead of one relink per packet.
//   3. When a peer is removed, cancel() its node before freeing it.
//
// The budget bounds the work of one loop iteration (each fire may send a
// handshake); nodes left over fire on the next call, nothing is lost. A long
// idle period (or a first call far in the future) walks each slot once, not
// every elapsed tick.
//
// To get from the node to its peer, embed it as a base class
// (struct PeerCtx : dp::TimerNode) and static_cast in the callback.
#pragma once

#include <algorithm>
#include <bit>
#include <cassert>
#include <cstddef>
#include <cstdint>
#include <limits>
#include <memory>

namespace moongate::dp {

// The wheel links the node by address: it must not be copied or moved while
// scheduled, hence neither is allowed. Fields are the wheel's; the caller
// may read `deadline` (meaningful while `scheduled`).
struct TimerNode {
  TimerNode() noexcept = default;
  TimerNode(const TimerNode&) = delete;
  TimerNode& operator=(const TimerNode&) = delete;

  TimerNode* prev = nullptr;
  TimerNode* next = nullptr;
  std::uint64_t deadline = 0;  // absolute, same clock as advance()'s now
  bool scheduled = false;
};

class TimerWheel {
 public:
  // `slots` is rounded up to a power of two (so a slot is a mask, not a
  // division); `now_ns` is where the wheel's clock starts. The one
  // allocation of the wheel's life happens here.
  TimerWheel(std::uint64_t tick_ns, std::size_t slots, std::uint64_t now_ns)
      : tick_ns_(std::max<std::uint64_t>(tick_ns, 1)),
        mask_(std::bit_ceil(std::max<std::size_t>(slots, 1)) - 1),
        slots_(std::make_unique<TimerNode[]>(mask_ + 1)),
        next_tick_(now_ns / tick_ns_) {
    for (std::size_t i = 0; i <= mask_; ++i) make_empty(slots_[i]);
    make_empty(overdue_);
  }
  // Nodes point at the list heads: the wheel stays where it was built.
  TimerWheel(const TimerWheel&) = delete;
  TimerWheel& operator=(const TimerWheel&) = delete;
  // Does not touch the nodes, so at teardown the peers and their wheel may
  // be freed in either order. A node still scheduled in a destroyed wheel
  // must not be handed to cancel() or schedule() again.
  ~TimerWheel() = default;

  // Arms `node` for `deadline_ns`, moving it if it was already scheduled.
  // Also callable from on_expire, for any node.
  void schedule(TimerNode& node, std::uint64_t deadline_ns) noexcept {
    if (node.scheduled)
      unlink(node);
    else
      ++size_;
    node.deadline = deadline_ns;
    node.scheduled = true;
    const std::uint64_t tick = deadline_ns / tick_ns_;
    // A tick the walk has passed is not visited again until its slot comes
    // round, and a node due now scheduled from a callback must not fire
    // again in the same walk (a callback re-arming a past deadline would
    // loop): both wait on the overdue list, which the next advance() runs
    // first.
    if (tick < next_tick_ || (walking_ && deadline_ns <= walk_now_)) {
      link_tail(overdue_, node);
      return;
    }
    const std::size_t slot = static_cast<std::size_t>(tick) & mask_;
    link_tail(slots_[slot], node);
    if (slot == (static_cast<std::size_t>(next_tick_) & mask_))
      current_min_ = std::min(current_min_, deadline_ns);
  }

  // Disarms `node`; nothing happens when it is not scheduled. Callable from
  // on_expire, for any node.
  void cancel(TimerNode& node) noexcept {
    if (!node.scheduled) return;
    unlink(node);
    node.prev = node.next = nullptr;
    node.scheduled = false;
    --size_;
  }

  // Fires, by calling on_expire(TimerNode&), every node whose deadline is
  // <= now_ns, at most `budget` of them, tick by tick (in no particular
  // order within a tick); returns how many fired. Nodes left over by the
  // budget fire on the next call. A node is unscheduled before its callback
  // runs, so the callback may re-schedule it or schedule/cancel any other
  // node; whatever it schedules with a deadline <= now_ns fires on the next
  // call, not in this one (a callback re-arming a past deadline cannot
  // loop). A throwing callback terminates (noexcept): an exception would
  // leave the walk's detached list behind. Not re-entrant: on_expire must
  // not call advance().
  template <class F>
  std::size_t advance(std::uint64_t now_ns, F&& on_expire, std::size_t budget) noexcept {
    const std::uint64_t now_tick = now_ns / tick_ns_;
    // Same tick as the last walk, nothing overdue and nothing in the
    // current slot due yet: a loop calling this every iteration pays only
    // these comparisons.
    if (budget == 0 ||
        (now_tick <= next_tick_ && now_ns < current_min_ && overdue_.next == &overdue_))
      return 0;
    assert(!walking_ && "advance() called from its own callback");
    walking_ = true;
    walk_now_ = now_ns;
    std::size_t fired = 0;
    std::uint64_t ignored_min = 0;
    if (walk(overdue_, now_ns, on_expire, budget, fired, ignored_min)) {
      if (now_tick > next_tick_ && now_tick - next_tick_ > mask_) {
        // Idle longer than a turn of the wheel: every slot is due for a
        // visit, once. Walking the last `slots` ticks visits each exactly once.
        next_tick_ = now_tick - mask_;
      }
      for (;;) {
        ++slots_walked_;
        TimerNode& head = slots_[static_cast<std::size_t>(next_tick_) & mask_];
        // Budget spent: stay on this tick, the next call resumes here.
        if (!walk(head, now_ns, on_expire, budget, fired, current_min_)) break;
        if (next_tick_ >= now_tick) break;
        ++next_tick_;
      }
    }
    walking_ = false;
    return fired;
  }

  bool scheduled(const TimerNode& node) const noexcept { return node.scheduled; }
  std::size_t size() const noexcept { return size_; }
  std::uint64_t tick_ns() const noexcept { return tick_ns_; }
  std::size_t slot_count() const noexcept { return mask_ + 1; }
  // Slot visits so far (diagnostics and tests: a long idle jump must cost at
  // most slot_count() of them).
  std::uint64_t slots_walked() const noexcept { return slots_walked_; }

 private:
  static void make_empty(TimerNode& head) noexcept { head.prev = head.next = &head; }
  static void unlink(TimerNode& n) noexcept {
    n.prev->next = n.next;
    n.next->prev = n.prev;
  }
  static void link_tail(TimerNode& head, TimerNode& n) noexcept {
    n.prev = head.prev;
    n.next = &head;
    head.prev->next = &n;
    head.prev = &n;
  }
  // Moves every node of `from` to the tail of `to`; `from` ends empty.
  static void splice_tail(TimerNode& from, TimerNode& to) noexcept {
    if (from.next == &from) return;
    from.next->prev = to.prev;
    to.prev->next = from.next;
    from.prev->next = &to;
    to.prev = from.prev;
    make_empty(from);
  }

  // Fires the due nodes of one list (a slot or the overdue list); sets
  // `kept_min` to the earliest deadline left in it. False when the budget
  // ran out first.
  //
  // The list is first detached onto a local head and its nodes taken off
  // one at a time, so whatever the callback does (cancel the node we would
  // visit next, schedule into this very list) never touches a pointer the
  // walk still holds: the local list is intrusive too, and cancel() or
  // schedule() unlink from it like from any slot.
  template <class F>
  bool walk(TimerNode& head, std::uint64_t now_ns, F& on_expire, std::size_t budget,
            std::size_t& fired, std::uint64_t& kept_min) noexcept {
    kept_min = std::numeric_limits<std::uint64_t>::max();
    if (head.next == &head) return true;
    TimerNode pending;
    make_empty(pending);
    splice_tail(head, pending);
    while (pending.next != &pending) {
      TimerNode& n = *pending.next;
      if (n.deadline > now_ns) {  // a later tick of this slot, or a later turn
        unlink(n);
        link_tail(head, n);
        kept_min = std::min(kept_min, n.deadline);
        continue;
      }
      if (fired == budget) {
        splice_tail(pending, head);
        kept_min = 0;  // due nodes remain: the next call must walk
        return false;
      }
      unlink(n);
      n.prev = n.next = nullptr;
      n.scheduled = false;
      --size_;
      ++fired;
      on_expire(n);
    }
    return true;
  }

  std::uint64_t tick_ns_;
  std::size_t mask_;                    // slots - 1
  std::unique_ptr<TimerNode[]> slots_;  // list heads (sentinels)
  TimerNode overdue_;                   // due before the walk position: run first
  std::uint64_t next_tick_;             // first tick not yet fully walked
  // No node in the slot of next_tick_ has an earlier deadline; 0 (unknown)
  // until that slot has been walked.
  std::uint64_t current_min_ = 0;
  std::uint64_t walk_now_ = 0;  // now_ns of the advance() under way
  std::size_t size_ = 0;
  std::uint64_t slots_walked_ = 0;
  bool walking_ = false;
};

}  // namespace moongate::dp
