// Established: the flow-state hook that lets return traffic of an accepted
// flow through a default-deny policy, per lcore, the way a stateful
// firewall's "ct state established" does:
//
//   1. A packet a rule accepted: note(tuple, now). Its reverse tuple is
//      now allowed for `timeout` after the latest packet either way.
//   2. A packet no rule accepts: is_reply(tuple, now). True when it is the
//      reverse of a noted flow (and refreshes it) and can be a reply at all
//      (not `initiating`: an echo request is none); else it is denied.
//   3. expire(now, budget) on the loop: frees flows past their time,
//      bounded work (the same lazy timer wheel as nat/flow_table.h).
//
// Which lcore: replies must be checked on an lcore that noted the flow.
// The data plane notes a flow on every lcore a packet of it passes through
// on its way to or from a peer (the decrypting lcore of the source peer,
// and the encrypting lcore of a destination peer), and checks replies on
// the lcore handling them there, so for peer->LAN, LAN->peer and
// peer->peer the check happens where the note was made (docs/exit-node.md).
//
// NAT'ed internet traffic needs no entry here: a packet the NAT translated
// inbound is a reply by construction.
//
// One table per address family (BasicEstablished over Packet or Packet6:
// Established, Established6), so IPv4's entries keep their small keys.
// Single-threaded (one per lcore); allocated once, no allocation after.
#pragma once

#include <cstddef>
#include <cstdint>
#include <memory>

#include "dataplane/timer_wheel.h"
#include "policy/compile.h"
#include "wireguard/prefetch.h"
#include "wireguard/open_table.h"

namespace moongate::policy {

template <class Pkt>
class BasicEstablished {
 public:
  BasicEstablished(std::size_t capacity, std::uint64_t timeout_ns, std::uint64_t seed,
                   std::uint64_t now_ns);
  BasicEstablished(const BasicEstablished&) = delete;
  BasicEstablished& operator=(const BasicEstablished&) = delete;

  // Records an accepted packet's flow (peer ids are not part of the key:
  // addresses and ports are). False when the table is full (the packet is
  // still accepted; only its replies would then be denied).
  bool note(const Pkt& p, std::uint64_t now_ns) noexcept;
  bool is_reply(const Pkt& p, std::uint64_t now_ns) noexcept;
  std::size_t expire(std::uint64_t now_ns, std::size_t budget = 64) noexcept;

  // Burst hints, as the NAT's (nat/nat44.h): for every packet of a burst
  // first prefetch() the table slot its note() (`reply`: is_reply()) will
  // read, then prefetch_entry() the entry that slot names, then note() or
  // is_reply() each, so the cache misses of the burst overlap.
  // (Protocol 0 is never tracked: nothing to load.)
  void prefetch(const Pkt& p, bool reply) const noexcept {
    if (p.proto != 0 && !(reply && p.initiating)) table_.prefetch(lookup_key(p, reply));
  }
  void prefetch_entry(const Pkt& p, bool reply) const noexcept {
    if (p.proto == 0 || (reply && p.initiating)) return;
    if (const Slot* s = table_.find(lookup_key(p, reply))) prefetch_line(&entries_[s->entry]);
  }

  std::size_t size() const noexcept { return capacity_ - free_count_; }
  std::uint64_t full_drops() const noexcept { return full_; }

 private:
  using Addr = decltype(Pkt::src);  // std::uint32_t or Addr6
  struct Key {
    Addr a{}, b{};  // src, dst of the accepted direction
    std::uint16_t pa = 0, pb = 0;
    std::uint8_t proto = 0;  // 0: free slot (packets of protocol 0 are not tracked)
    friend bool operator==(const Key&, const Key&) = default;
  };
  struct Slot {
    Key key;
    std::uint32_t entry = 0;
  };
  struct Traits {
    using Key = BasicEstablished::Key;
    std::uint64_t seed = 0;
    static constexpr bool is_free(const Slot& s) noexcept { return s.key.proto == 0; }
    static const Key& key_of(const Slot& s) noexcept { return s.key; }
    static bool same_key(const Key& x, const Key& y) noexcept { return x == y; }
    std::size_t hash(const Key& k) const noexcept;
  };
  struct Entry : dp::TimerNode {
    Key key;
    std::uint64_t expires = 0;
  };

  static Key key_of(const Pkt& p) noexcept;
  // The key note() (reply: is_reply(), the reverse direction) looks up.
  static Key lookup_key(const Pkt& p, bool reply) noexcept {
    return reply ? Key{p.dst, p.src, p.dport, p.sport, p.proto} : key_of(p);
  }
  Entry* find(const Key& k, std::uint64_t now) noexcept;
  void release(Entry& e) noexcept;

  std::size_t capacity_;
  std::uint64_t timeout_;
  std::unique_ptr<Entry[]> entries_;
  std::unique_ptr<std::uint32_t[]> free_;
  std::size_t free_count_;
  std::uint64_t full_ = 0;
  wg::OpenTable<Slot, Traits> table_;
  dp::TimerWheel wheel_;
};

using Established = BasicEstablished<Packet>;
using Established6 = BasicEstablished<Packet6>;
extern template class BasicEstablished<Packet>;
extern template class BasicEstablished<Packet6>;

}  // namespace moongate::policy
