// Keypair rotation: previous / current / next, as the Linux module's
// add_new_keypair and received_with_keypair.
#include "wireguard/keypair.h"

#include "wireguard/index_table.h"

namespace moongate::wg {

void Keypairs::mark_lines() noexcept {
  for (Keypair* kp : {previous_.get(), current_.get(), next_.get()}) {
    if (kp == nullptr || kp->line == nullptr) continue;
    kp->line->set(IndexSlot::kCurrent, kp == current_.get());
    kp->line->set(IndexSlot::kNext, kp == next_.get());
  }
}

// Called when current changed: a new current starts its nonces at 0 (a
// keypair never sends before it is current).
void Keypairs::install_send(SendLine& s) noexcept {
  Keypair* kp = current_.get();
  if (kp == nullptr) {
    s.key.clear();
    s = SendLine{};
    return;
  }
  s.key = kp->send_key;
  kp->send_key.clear();  // one copy of the key: the line's
  s.counter = 0;
  s.birth = kp->birth;
  s.remote_index = kp->remote_index;
  s.initiator = kp->initiator;
}

void Keypairs::drop(std::unique_ptr<Keypair>& slot, IndexTable& indices) noexcept {
  if (!slot) return;
  indices.remove(slot->local_index);
  slot.reset();  // Keypair's Secrets wipe themselves
}

void Keypairs::add(std::unique_ptr<Keypair> kp, IndexTable& indices, SendLine& send) noexcept {
  if (kp->initiator) {
    // We sent the initiation and got the response: the peer holds the same
    // keys, so the new keypair is usable at once.
    if (next_) {
      // A responder-side keypair never confirmed: keep it as previous (the
      // peer may still send under it) and retire current.
      drop(previous_, indices);
      previous_ = std::move(next_);
      drop(current_, indices);
    } else {
      drop(previous_, indices);
      previous_ = std::move(current_);
    }
    current_ = std::move(kp);
    install_send(send);
  } else {
    // Responder: unusable for sending until the initiator's first data
    // message proves it derived the same keys.
    drop(next_, indices);
    next_ = std::move(kp);
    drop(previous_, indices);
  }
  mark_lines();
}

bool Keypairs::confirm_next(IndexTable& indices, SendLine& send) noexcept {
  drop(previous_, indices);
  previous_ = std::move(current_);
  current_ = std::move(next_);
  install_send(send);
  mark_lines();
  return true;
}

void Keypairs::clear(IndexTable& indices, SendLine& send) noexcept {
  drop(previous_, indices);
  drop(current_, indices);
  drop(next_, indices);
  install_send(send);
}

}  // namespace moongate::wg
