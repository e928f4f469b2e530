// Session keypairs and their rotation (whitepaper section 5.4.6 and the
// Linux module's add_new_keypair / received_with_keypair).
//
// Each peer holds up to three keypairs:
//   previous  kept so packets in flight under the old session still decrypt
//   current   used for sending
//   next      a responder's fresh keypair, unusable for sending until the
//             initiator proves it has it by sending the first data message
// A keypair is owned by the peer's lcore: its send counter and replay
// window have a single writer.
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

// A session's keys and counters. Receiving reads and writes only the
// session's receive line, which is its index-table slot (index_table.h:
// the receive key, the replay window's head, the expiry, the peer); the
// object here holds what sending reads (the send line first: the send key,
// the nonce counter, the remote index, the age and role) and the replay
// window's ring, touched once per 64 messages received in order. At
// 100 000 peers, where every message's per-session state is a cache miss,
// that is one line per message each way. Cache-line aligned so that holds;
// allocated from a huge-page slab (huge_pages.h).
struct alignas(64) Keypair : OnHugeSlab<Keypair> {
  // --- the send line ---
  crypto::SecretKey send_key;
  std::uint64_t send_counter = 0;  // next nonce to use
  Nanos birth = 0;
  bool initiator = false;          // we sent the initiation
  std::uint32_t remote_index = 0;  // data we send carries this

  // --- control path ---
  std::uint32_t local_index = 0;   // data sent to us carries this; names the receive line
  IndexSlot* line = nullptr;       // that receive line, once registered
  Peer* peer = nullptr;            // the data paths get it from the receive line or the caller
  ReplayRing replay_ring;          // the window's older blocks (its head is on the line)

  // When the session was derived and whether we initiated it.
  void set_origin(Nanos now, bool is_initiator) noexcept {
    birth = now;
    initiator = is_initiator;
  }

  // Usable for sending one more message (the send line alone).
  bool can_send(Nanos now) const noexcept {
    return now - birth < kRejectAfterTime && send_counter < kRejectAfterMessages;
  }
  // The highest counter received + 1 (0 before the first, or unregistered).
  std::uint64_t next_expected() const noexcept { return line != nullptr ? line->replay.next_expected() : 0; }

  // Asks the cache for the line sending reads. A hint only: burst callers
  // issue it for a whole burst so the misses overlap.
  void prefetch_send() const noexcept { prefetch_line(send_key.data()); }
};
static_assert(offsetof(Keypair, remote_index) + sizeof(std::uint32_t) <= 64,
              "the send line holds the send key, counter, age, role and remote index");

class Keypairs {
 public:
  Keypair* previous() const noexcept { return previous_.get(); }
  Keypair* current() const noexcept { return current_.get(); }
  Keypair* next() const noexcept { return next_.get(); }

  // Installs a freshly derived keypair (its index already points at it in
  // `indices`). Initiator: it becomes current at once. Responder: it waits
  // in next. Keypairs that fall out are freed and their indices removed.
  void add(std::unique_ptr<Keypair> kp, IndexTable& indices) noexcept;

  // A data message authenticated under the receive line `line`. If it is
  // next's, next is confirmed: previous <- current <- next. True when that
  // happened (the handshake is complete for a responder). Reads only the
  // line (its flags say which keypair it is).
  bool received_with(const IndexSlot& line, IndexTable& indices) noexcept {
    return line.has(IndexSlot::kNext) && confirm_next(indices);  // inline: every data message
  }

  // Drops every keypair (zero_key_material, peer removal).
  void clear(IndexTable& indices) noexcept;

 private:
  bool confirm_next(IndexTable& indices) noexcept;
  void drop(std::unique_ptr<Keypair>& slot, IndexTable& indices) noexcept;
  // The current / next flags of the three receive lines, after a rotation.
  void mark_lines() noexcept;

  std::unique_ptr<Keypair> previous_;
  std::unique_ptr<Keypair> current_;
  std::unique_ptr<Keypair> next_;
};

}  // namespace moongate::wg
