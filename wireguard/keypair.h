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

#include <cstdint>
#include <memory>

#include "crypto/secret.h"
#include "wireguard/constants.h"
#include "wireguard/huge_pages.h"
#include "wireguard/prefetch.h"
#include "wireguard/replay.h"

namespace moongate::wg {

class Peer;

// Laid out for the packet paths, one cache line per direction: receiving a
// data message reads and writes only the first line (the receive key, the
// age, the replay window's head with its newest block), sending only the
// send line (the send key, the nonce counter, the remote index and copies
// of the age and role); the replay ring lies between them and is touched
// when a message falls outside the newest block. At 100 000 peers, where
// every message's keypair is a cache miss, that is one line per message
// each way (it was three to receive, two to send). Cache-line aligned so
// that holds; allocated from a huge-page slab (huge_pages.h).
struct alignas(64) Keypair : OnHugeSlab<Keypair> {
  // --- the receive line ---
  crypto::SecretKey recv_key;
  Nanos birth = 0;
  bool initiator = false;
  ReplayWindow replay;  // its 16-byte head ends the receive line, its ring follows

  // --- the send line ---
  alignas(64) crypto::SecretKey send_key;
  std::uint64_t send_counter = 0;  // next nonce to use
  Nanos send_birth = 0;            // == birth, read by the send path
  bool send_initiator = false;     // == initiator, likewise
  std::uint32_t remote_index = 0;  // data we send carries this

  // --- control path ---
  std::uint32_t local_index = 0;   // data sent to us carries this
  Peer* peer = nullptr;            // the data paths get it from the index entry or the caller

  // When the session was derived and whether we initiated it: both copies.
  void set_origin(Nanos now, bool is_initiator) noexcept {
    birth = send_birth = now;
    initiator = send_initiator = is_initiator;
  }

  // Past REJECT_AFTER_TIME: neither send nor accept under it (the receive
  // line's copy of the age).
  bool expired(Nanos now) const noexcept { return now - birth >= kRejectAfterTime; }
  // Usable for sending one more message (the send line alone).
  bool can_send(Nanos now) const noexcept {
    return now - send_birth < kRejectAfterTime && send_counter < kRejectAfterMessages;
  }

  // Asks the cache for the line receiving or sending reads. Hints only:
  // burst callers issue them for a whole burst so the misses overlap.
  void prefetch_receive() const noexcept { prefetch_line(recv_key.data()); }
  void prefetch_send() const noexcept { prefetch_line(send_key.data()); }
};
static_assert(sizeof(crypto::SecretKey) == 32 && sizeof(ReplayWindow) == 16 + 8 * ReplayWindow::kRingBlocks,
              "the receive line holds the receive key, age, role and the replay head");

class IndexTable;

class Keypairs {
 public:
  Keypair* previous() const noexcept { return previous_.get(); }
  Keypair* current() const noexcept { return current_.get(); }
  Keypair* next() const noexcept { return next_.get(); }

  // Installs a freshly derived keypair (its index already points at it in
  // `indices`). Initiator: it becomes current at once. Responder: it waits
  // in next. Keypairs that fall out are freed and their indices removed.
  void add(std::unique_ptr<Keypair> kp, IndexTable& indices) noexcept;

  // A data message authenticated under `kp`. If kp is next, it is
  // confirmed: previous <- current <- next. True when that happened (the
  // handshake is complete for a responder).
  bool received_with(const Keypair* kp, IndexTable& indices) noexcept {
    return kp != nullptr && kp == next_.get() && confirm_next(indices);  // inline: every data message
  }

  // Drops every keypair (zero_key_material, peer removal).
  void clear(IndexTable& indices) noexcept;

 private:
  bool confirm_next(IndexTable& indices) noexcept;
  void drop(std::unique_ptr<Keypair>& slot, IndexTable& indices) noexcept;

  std::unique_ptr<Keypair> previous_;
  std::unique_ptr<Keypair> current_;
  std::unique_ptr<Keypair> next_;
};

}  // namespace moongate::wg
