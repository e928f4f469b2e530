// Session keypairs and their rotation (whitepaper section 5.4.6 and the
// Linux module's add_new_keypair / received_with_keypair).
//
// Each peer holds up to three keypairs:
//   previous  kept so packets in flight under the old session still decrypt
//   current   used for sending
//   next      a responder's fresh keypair, unusable for sending until the
//             initiator proves it has it by sending the first data message
// A keypair is owned by the peer's lcore: the send counter (on the peer's
// send line) and the replay window have a single writer.
#pragma once

#include <cstddef>
#include <cstdint>
#include <memory>

#include "crypto/secret.h"
#include "wireguard/constants.h"
#include "wireguard/huge_pages.h"
#include "wireguard/prefetch.h"
#include "wireguard/index_table.h"
#include "wireguard/replay.h"

namespace moongate::wg {

class Peer;

// A session's keys. Receiving reads and writes only the session's receive
// line, which is its index-table slot (index_table.h: the receive key, the
// replay window's head, the expiry, the peer); sending reads only the
// peer's send line (SendLine below), which Keypairs fills from the current
// keypair. The object here holds the rest: the send key until the keypair
// becomes current (a responder's next waits for confirmation), the replay
// window's ring (touched once per 64 messages received in order), and
// what the control path needs. At 100 000 peers, where every message's
// per-session state is a cache miss, data messages thus read no line of
// this object. Cache-line aligned; allocated from a huge-page slab
// (huge_pages.h).
struct alignas(64) Keypair : OnHugeSlab<Keypair> {
  // The send key until the keypair is installed as current (then the send
  // line has it, and this copy is wiped).
  crypto::SecretKey send_key;
  Nanos birth = 0;
  bool initiator = false;          // we sent the initiation
  std::uint32_t remote_index = 0;  // data we send carries this
  std::uint32_t local_index = 0;   // data sent to us carries this; names the receive line
  IndexSlot* line = nullptr;       // that receive line, once registered
  Peer* peer = nullptr;            // the data paths get it from the receive line or the caller
  ReplayRing replay_ring;          // the window's older blocks (its head is on the line)

  // When the session was derived and whether we initiated it.
  void set_origin(Nanos now, bool is_initiator) noexcept {
    birth = now;
    initiator = is_initiator;
  }

  // The highest counter received + 1 (0 before the first, or unregistered).
  std::uint64_t next_expected() const noexcept { return line != nullptr ? line->replay.next_expected() : 0; }
};

// The current keypair's send half: all a data message to the peer reads
// and writes of its session. It sits on the peer's own lines (Peer::send,
// which Keypairs rewrites), so its address follows from the peer's: at
// 100 000 peers the line can be asked for together with the peer's other
// lines instead of after them, and the keypair object itself is never
// read by a data message (docs/perf.md, "The send line on the peer",
// measures the chain peer -> keypair this replaced). Only the current
// keypair ever sends (whitepaper 5.4.6), so one line per peer holds every
// session's send state in turn; Keypairs rewrites it at each rotation.
struct SendLine {
  crypto::SecretKey key;                         // wiped when no keypair is current
  std::uint64_t counter = kRejectAfterMessages;  // next nonce; the limit itself when there is no session
  Nanos birth = 0;                               // the current keypair's; 0 when there is none
  std::uint32_t remote_index = 0;                // data we send carries this
  bool initiator = false;                        // we initiated the current session

  // A session is installed (birth is never 0 for a real one: clock.h).
  bool active() const noexcept { return birth != 0; }
  // Usable for one more message (false when there is no session: the
  // counter is then at the limit).
  bool can_send(Nanos now) const noexcept {
    return counter < kRejectAfterMessages && now - birth < kRejectAfterTime;
  }
};
static_assert(sizeof(SendLine) <= 64, "the send state is one cache line");

class Keypairs {
 public:
  Keypair* previous() const noexcept { return previous_.get(); }
  Keypair* current() const noexcept { return current_.get(); }
  Keypair* next() const noexcept { return next_.get(); }

  // Every call that can change current takes `send`, the peer's send line
  // (Peer::send), and rewrites it from the new current.

  // Installs a freshly derived keypair (its index already points at it in
  // `indices`). Initiator: it becomes current at once. Responder: it waits
  // in next. Keypairs that fall out are freed and their indices removed.
  void add(std::unique_ptr<Keypair> kp, IndexTable& indices, SendLine& send) noexcept;

  // A data message authenticated under the receive line `line`. If it is
  // next's, next is confirmed: previous <- current <- next. True when that
  // happened (the handshake is complete for a responder). Reads only the
  // line (its flags say which keypair it is).
  bool received_with(const IndexSlot& line, IndexTable& indices, SendLine& send) noexcept {
    return line.has(IndexSlot::kNext) && confirm_next(indices, send);  // inline: every data message
  }

  // Drops every keypair (zero_key_material, peer removal).
  void clear(IndexTable& indices, SendLine& send) noexcept;

 private:
  bool confirm_next(IndexTable& indices, SendLine& send) noexcept;
  void drop(std::unique_ptr<Keypair>& slot, IndexTable& indices) noexcept;
  // After a rotation: the current / next flags of the three receive lines,
  // and the send line from the (new) current keypair.
  void mark_lines() noexcept;
  void install_send(SendLine& send) noexcept;

  std::unique_ptr<Keypair> previous_;
  std::unique_ptr<Keypair> current_;
  std::unique_ptr<Keypair> next_;
};

}  // namespace moongate::wg
