// Transport: the send and receive flows of device.h run end to end over
// copies, with one AeadBurst call per packet.
//
// Send:    packet -> (staged while no session) -> Device::prepare_send ->
//          header + zero padding -> AeadBurst::encrypt -> Wire -> complete_send
// Receive: payload -> classify -> handshake: Device::receive_handshake
//                              -> data: prepare_receive -> AeadBurst::decrypt
//                                       -> complete_receive -> plaintext out
#include "tests/support/transport.h"

#include <cstring>

namespace moongate::testing {

using wg::Drop;

Transport::Transport(std::size_t max_peers, Wire& wire, crypto::AeadArch arch)
    : wire_(wire), aead_(arch), device_(max_peers, *this) {
  tx_buf_.resize(kMaxPacket + wg::kDataHeaderLen + wg::kTagLen + wg::kMessagePaddingMultiple);
  rx_buf_.resize(kMaxPacket + wg::kDataHeaderLen + wg::kTagLen);
}

Transport::~Transport() = default;

void Transport::stage(wg::Peer& peer, const std::uint8_t* pkt, std::size_t len) {
  auto& q = staged_[&peer];
  // Bounded like the Linux module's queue: the oldest packet gives way.
  if (q.size() >= kMaxStaged) q.pop_front();
  q.emplace_back(pkt, pkt + len);
}

Drop Transport::send(wg::Peer& peer, const std::uint8_t* pkt, std::size_t len, wg::Instant now) {
  last_now_ = now;
  if (len > kMaxPacket) {
    device_.count(Drop::kMalformed);
    return Drop::kMalformed;
  }
  auto it = staged_.find(&peer);
  if (it != staged_.end() && !it->second.empty()) {
    // Keep order: this packet goes behind the ones already waiting.
    stage(peer, pkt, len);
    flush_staged(peer, false);
    return Drop::kOk;
  }
  Drop d = try_send_now(peer, pkt, len, now);
  if (d == Drop::kNoSession) {
    stage(peer, pkt, len);
    return Drop::kOk;
  }
  return d;
}

Drop Transport::try_send_now(wg::Peer& peer, const std::uint8_t* pkt, std::size_t len,
                             wg::Instant now) {
  if (!peer.endpoint.valid()) {
    device_.count(Drop::kNoEndpoint);
    return Drop::kNoEndpoint;
  }
  wg::TxSlot slot;
  if (Drop d = device_.prepare_send(peer, now, slot); d != Drop::kOk) return d;
  const std::size_t padded = wg::padded_length(len, mtu_ > len ? mtu_ : len);
  std::uint8_t* buf = tx_buf_.data();
  wg::write_data_header(buf, slot.send->remote_index, slot.counter);
  if (len) std::memcpy(buf + wg::kDataHeaderLen, pkt, len);
  std::memset(buf + wg::kDataHeaderLen + len, 0, padded - len);
  crypto::AeadOp op;
  op.data = buf + wg::kDataHeaderLen;
  op.len = static_cast<std::uint32_t>(padded);
  op.tag = buf + wg::kDataHeaderLen + padded;
  op.key = slot.send->key.data();
  op.counter = slot.counter;
  aead_.encrypt(&op, 1);
  const std::size_t wire_len = wg::kDataHeaderLen + padded + wg::kTagLen;
  // As the Linux module: timers see the attempt, counters only what left.
  const bool sent = wire_.send(peer.endpoint, buf, wire_len);
  device_.complete_send(peer, now, sent ? wire_len : 0, sent && len != 0);
  return Drop::kOk;
}

Transport::Received Transport::receive(const std::uint8_t* payload, std::size_t len,
                                       const wg::Endpoint& src, wg::Instant now, std::uint8_t* out,
                                       std::size_t out_cap) {
  last_now_ = now;
  Received r;
  r.type = wg::classify_message(payload, len);
  if (r.type != wg::MessageType::kData) {
    r.drop = device_.receive_handshake(payload, len, src, now);
    return r;
  }
  wg::RxSlot slot;
  if ((r.drop = device_.prepare_receive(payload, len, now.mono, slot)) != Drop::kOk) return r;
  const std::size_t ct_len = len - wg::kDataHeaderLen - wg::kTagLen;
  if (len > rx_buf_.size() || ct_len > out_cap) {
    device_.count(Drop::kMalformed);
    r.drop = Drop::kMalformed;
    return r;
  }
  std::memcpy(rx_buf_.data(), payload, len);
  crypto::AeadOp op;
  op.data = rx_buf_.data() + wg::kDataHeaderLen;
  op.len = static_cast<std::uint32_t>(ct_len);
  op.tag = rx_buf_.data() + wg::kDataHeaderLen + ct_len;
  op.key = slot.line->recv_key.data();
  op.counter = slot.counter;
  bool ok = false;
  aead_.decrypt(&op, 1, &ok);
  if (!ok) {
    device_.count(Drop::kDataAuth);
    r.drop = Drop::kDataAuth;
    return r;
  }
  wg::Peer* peer = slot.peer;
  if ((r.drop = device_.complete_receive(slot, len, ct_len, src, now)) != Drop::kOk) return r;
  if (ct_len) std::memcpy(out, op.data, ct_len);
  r.peer = peer;
  r.len = ct_len;
  return r;
}

void Transport::tick(wg::Instant now) {
  last_now_ = now;
  device_.for_each_peer([&](wg::Peer& p) {
    const wg::Nanos d = p.timers.next_deadline();
    if (d != 0 && d <= now.mono) device_.expire_timers(p, now);
  });
}

std::size_t Transport::staged(const wg::Peer& peer) const {
  auto it = staged_.find(&peer);
  return it == staged_.end() ? 0 : it->second.size();
}

bool Transport::send_handshake(wg::Peer*, const wg::Endpoint& to, const std::uint8_t* msg,
                               std::size_t len) {
  return wire_.send(to, msg, len);
}

void Transport::flush_staged(wg::Peer& peer, bool keepalive_if_empty) {
  auto it = staged_.find(&peer);
  if (it == staged_.end() || it->second.empty()) {
    if (keepalive_if_empty) {
      if (try_send_now(peer, nullptr, 0, last_now_) == Drop::kNoSession) stage(peer, nullptr, 0);
    }
    return;
  }
  auto& q = it->second;
  while (!q.empty()) {
    const std::vector<std::uint8_t>& pkt = q.front();
    if (try_send_now(peer, pkt.data(), pkt.size(), last_now_) == Drop::kNoSession) return;
    q.pop_front();
  }
}

void Transport::purge_staged(wg::Peer& peer) { staged_.erase(&peer); }

}  // namespace moongate::testing
