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
#include "wireguard/replay.h"

namespace moongate::wg {

class Peer;

// Laid out for the packet paths: the keys fill the first cache line, and
// everything else a data message reads or writes (counter, age, indices,
// peer, the replay window's head) the second; the replay bitmap follows, of
// which a message touches one block. Cache-line aligned so that holds;
// allocated from a huge-page slab (huge_pages.h).
struct alignas(64) Keypair : OnHugeSlab<Keypair> {
  crypto::SecretKey send_key;
  crypto::SecretKey recv_key;
  std::uint64_t send_counter = 0;  // next nonce to use
  Nanos birth = 0;
  Peer* peer = nullptr;
  std::uint32_t local_index = 0;   // data sent to us carries this
  std::uint32_t remote_index = 0;  // data we send carries this
  bool initiator = false;
  ReplayWindow replay;

  // Past REJECT_AFTER_TIME: neither send nor accept under it.
  bool expired(Nanos now) const noexcept { return now - birth >= kRejectAfterTime; }
  // Usable for sending one more message.
  bool can_send(Nanos now) const noexcept {
    return !expired(now) && send_counter < kRejectAfterMessages;
  }

  // Asks the cache for what receiving message `counter` under this keypair
  // reads (key, bookkeeping, replay head and the counter's bitmap block), or
  // what sending reads (key and bookkeeping). Hints only: burst callers
  // issue them for a whole burst so the misses overlap.
  void prefetch_receive(std::uint64_t counter) const noexcept {
    __builtin_prefetch(recv_key.data());
    __builtin_prefetch(&send_counter);
    replay.prefetch(counter);
  }
  void prefetch_send() const noexcept {
    __builtin_prefetch(send_key.data());
    __builtin_prefetch(&send_counter);
  }
};

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
