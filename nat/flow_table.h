// FlowTable: one lcore's NAT flows. Every flow is reachable by two keys,
//
//   inside key   (inside addr,   remote addr, inside port,   remote port, proto)
//   outside key  (external addr, remote addr, external port, remote port, proto)
//
// (for ICMP the "port" on our side is the echo id and the remote port is 0),
// one OpenTable per direction (wireguard/open_table.h: linear probing,
// backward-shift deletion, no allocation after construction). Both tables'
// slots hold the whole key plus the flow's index, 16 bytes, so a lookup
// reads one cache line of the table and then the flow itself.
//
// Memory, sized once at construction for `capacity` flows:
//   flows       64 B each (the record below, one cache line)
//   2 tables    2 x 16 B x bit_ceil(2 x capacity) slots (at most half full)
//   free stack  4 B each
// about 130 B per flow at a power-of-two capacity, 1 000 000 flows in total
// over all lcores is ~135 MB of ordinary heap.
//
// Expiry: every packet only stamps the flow's `expires`; the flow's timer
// node sits in the lcore's TimerWheel (dataplane/timer_wheel.h, header-only)
// at a deadline that is at most `expires`. It is re-linked on a packet only
// when the deadline moves EARLIER (an RST or FIN shortens the timeout), so
// the common case costs nothing. expire(now, budget) fires due nodes, at
// most `budget` per call: a node whose flow was refreshed meanwhile goes
// back into the wheel at its new `expires`, the others are freed. Flows
// thus go at their deadline (to the wheel's tick), the work per call is
// bounded, and a flow whose deadline passed is never matched again even
// before its node fires (lookups check `expires`).
//
// Single-threaded: owned by one lcore, like the wheel.
#pragma once

#include <cstddef>
#include <cstdint>
#include <memory>

#include "dataplane/timer_wheel.h"
#include "wireguard/open_table.h"
#include "wireguard/prefetch.h"

namespace moongate::nat {

struct FlowKey {
  std::uint32_t our_addr = 0;   // inside or external address, host order
  std::uint32_t remote_addr = 0;
  std::uint16_t our_port = 0;   // port, or ICMP echo id
  std::uint16_t remote_port = 0;  // 0 for ICMP
  std::uint8_t proto = 0;         // 6, 17, 1; 0 marks a free slot

  friend bool operator==(const FlowKey&, const FlowKey&) = default;
};

struct Flow : dp::TimerNode {        // 32 B: the wheel's links and deadline
  std::uint32_t inside_addr = 0;     // host order
  std::uint32_t remote_addr = 0;
  std::uint32_t ext_addr = 0;
  std::uint16_t inside_port = 0;
  std::uint16_t remote_port = 0;
  std::uint16_t ext_port = 0;
  std::uint8_t proto = 0;            // 0: free
  std::uint8_t tcp_state = 0;        // TcpState
  bool inside_closed_first = false;  // TcpTrack
  bool replied = false;              // a packet came back (UDP stream timeout)
  std::uint64_t expires = 0;         // ns, same clock as `now`

  FlowKey inside_key() const noexcept {
    return {inside_addr, remote_addr, inside_port, remote_port, proto};
  }
  FlowKey outside_key() const noexcept {
    return {ext_addr, remote_addr, ext_port, remote_port, proto};
  }
};
static_assert(sizeof(Flow) <= 64, "a flow is one cache line");

class FlowTable {
 public:
  // Wheel: 100 ms ticks over 8192 slots (a turn of ~14 min; longer
  // timeouts wait for their turn, see timer_wheel.h).
  static constexpr std::uint64_t kTickNs = 100'000'000;
  static constexpr std::size_t kWheelSlots = 8192;

  static constexpr std::size_t kMaxCapacity = std::size_t{1} << 24;  // 24-bit slot index

  // Allocates everything for `capacity` flows (1..kMaxCapacity); `seed` keys the hash
  // so remote hosts cannot aim probes at one cluster.
  FlowTable(std::size_t capacity, std::uint64_t seed, std::uint64_t now_ns);
  FlowTable(const FlowTable&) = delete;
  FlowTable& operator=(const FlowTable&) = delete;

  // The live flow for a key, or nullptr. A flow found past its `expires`
  // (its timer has not fired yet) is freed on the spot and not returned.
  Flow* find_inside(const FlowKey& k, std::uint64_t now_ns) noexcept;
  Flow* find_outside(const FlowKey& k, std::uint64_t now_ns) noexcept;
  // Whether an outside key is taken (expired or not): port allocation must
  // not reuse a mapping that is still in the table.
  bool outside_taken(const FlowKey& k) const noexcept { return outside_.find(k) != nullptr; }
  void prefetch_inside(const FlowKey& k) const noexcept { inside_.prefetch(k); }
  // Finds the key's slot (prefetched before) and prefetches its flow.
  void prefetch_flow(const FlowKey& k, bool inside) const noexcept {
    if (const Slot* s = inside ? inside_.find(k) : outside_.find(k))
      prefetch_line(&flows_[s->index()]);
  }
  void prefetch_outside(const FlowKey& k) const noexcept { outside_.prefetch(k); }

  // Creates a flow with the given tuple and `expires`; nullptr when the
  // table is full or either key is taken.
  Flow* create(const Flow& proto_flow, std::uint64_t expires) noexcept;

  // Sets the flow's expiry, moving its timer only when it comes earlier.
  void set_expiry(Flow& f, std::uint64_t expires) noexcept;

  // Frees flows whose time has come, at most `budget` timer fires per call;
  // returns how many flows were freed (including those a lookup found
  // expired and freed since the last call).
  std::size_t expire(std::uint64_t now_ns, std::size_t budget) noexcept;

  std::size_t size() const noexcept { return capacity_ - free_count_; }
  std::size_t capacity() const noexcept { return capacity_; }
  std::uint32_t index_of(const Flow& f) const noexcept {
    return static_cast<std::uint32_t>(&f - flows_.get());
  }

 private:
  // The key's fields and a 24-bit flow index in 16 bytes: four slots per
  // cache line.
  struct Slot {
    std::uint32_t our_addr = 0;
    std::uint32_t remote_addr = 0;
    std::uint16_t our_port = 0;
    std::uint16_t remote_port = 0;
    std::uint8_t proto = 0;  // 0: free
    std::uint8_t flow[3] = {};  // index into flows_, little end first

    static Slot make(const FlowKey& k, std::uint32_t idx) noexcept {
      Slot s;
      s.our_addr = k.our_addr;
      s.remote_addr = k.remote_addr;
      s.our_port = k.our_port;
      s.remote_port = k.remote_port;
      s.proto = k.proto;
      s.flow[0] = static_cast<std::uint8_t>(idx);
      s.flow[1] = static_cast<std::uint8_t>(idx >> 8);
      s.flow[2] = static_cast<std::uint8_t>(idx >> 16);
      return s;
    }
    std::uint32_t index() const noexcept {
      return flow[0] | (std::uint32_t{flow[1]} << 8) | (std::uint32_t{flow[2]} << 16);
    }
  };
  static_assert(sizeof(Slot) == 16);
  struct Traits {
    using Key = FlowKey;
    std::uint64_t seed = 0;
    static constexpr bool is_free(const Slot& s) noexcept { return s.proto == 0; }
    static FlowKey key_of(const Slot& s) noexcept {
      return {s.our_addr, s.remote_addr, s.our_port, s.remote_port, s.proto};
    }
    static bool same_key(const FlowKey& a, const FlowKey& b) noexcept { return a == b; }
    std::size_t hash(const FlowKey& k) const noexcept;
  };
  using Table = wg::OpenTable<Slot, Traits>;

  // The flow a found slot names, or nullptr (the slot absent, or the flow
  // expired: then released).
  Flow* find_live(const Slot* s, std::uint64_t now_ns) noexcept;
  void release(Flow& f) noexcept;

  std::size_t capacity_;
  std::unique_ptr<Flow[]> flows_;
  std::unique_ptr<std::uint32_t[]> free_;  // stack of free flow indices
  std::size_t free_count_;
  std::size_t expired_early_ = 0;
  Table inside_;
  Table outside_;
  dp::TimerWheel wheel_;
};

}  // namespace moongate::nat
