// The device's receive, send and timer flows; device.h lists them.
#include "wireguard/device.h"

#include <cstring>
#include <new>

namespace moongate::wg {

Device::Device(std::size_t max_peers, DeviceHost& host)
    : host_(host),
      peers_(max_peers),
      // A handshake and three keypairs per peer, plus slack for churn.
      indices_(max_peers * 4 + 16) {}

Device::~Device() {
  for (auto& [raw, peer] : owned_) zero_key_material(*peer);
}

// --- configuration ---------------------------------------------------------

void Device::set_private_key(const crypto::SecretKey& key) noexcept {
  identity_.set(key);
  cookie_checker_.init(identity_.public_key);
  // Talking to ourselves is meaningless: drop a peer with our own key.
  if (identity_.has_key) {
    if (Peer* self = peers_.find(identity_.public_key)) remove_peer(self);
  }
  for (auto& [raw, peer] : owned_) {
    zero_key_material(*peer);
    peer->handshake.precompute(identity_);
  }
}

Peer* Device::add_peer(const crypto::PublicKey& key, const crypto::SecretKey* static_static) noexcept {
  if (identity_.has_key && key == identity_.public_key) return nullptr;
  std::unique_ptr<Peer> peer(new (std::nothrow) Peer(key));
  if (!peer || !peers_.insert(key, peer.get())) return nullptr;
  peer->handshake.remote_static = key;
  if (static_static != nullptr && identity_.has_key)
    peer->handshake.precomputed_static_static = *static_static;
  else
    peer->handshake.precompute(identity_);
  peer->cookie.init(key);
  Peer* raw = peer.get();
  owned_.emplace(raw, std::move(peer));
  return raw;
}

void Device::remove_peer(Peer* peer) noexcept {
  if (peer == nullptr) return;
  peers_.remove(peer->public_key());
  zero_key_material(*peer);
  peer->timers.stop();
  owned_.erase(peer);
}

void Device::set_preshared_key(Peer& peer, const crypto::SecretKey& psk) noexcept {
  peer.handshake.preshared_key = psk;
}

void Device::set_persistent_keepalive(Peer& peer, std::uint16_t seconds, Instant now) noexcept {
  const bool was_off = peer.timers.persistent_keepalive() == 0;
  peer.timers.set_persistent_keepalive(seconds, now.mono);
  if (was_off && seconds != 0) host_.flush_staged(peer, true);
}

// --- receive ---------------------------------------------------------------

Drop Device::receive_handshake(const std::uint8_t* msg, std::size_t len, const Endpoint& src,
                               Instant now, HandshakeRouting* routing) noexcept {
  const MessageType type = classify_message(msg, len);
  const bool macs_checked = routing != nullptr && routing->macs_checked;
  switch (type) {
    case MessageType::kInitiation:
    case MessageType::kResponse: {
      if (!identity_.has_key) return drop(Drop::kNoPrivateKey);
      if (!cookie_checker_.check_mac1(msg, len)) return drop(Drop::kBadMac1);
      if (under_load_ && !macs_checked && !cookie_checker_.check_mac2(msg, len, src, now.mono)) {
        // Cheap answer instead of DH work: the sender must prove it
        // receives at src before we spend cycles on it.
        MessageCookieReply reply;
        cookie_checker_.make_reply(reply, msg, len, load_le32(msg + 4), src, now.mono);
        host_.send_handshake(nullptr, src, reinterpret_cast<const std::uint8_t*>(&reply),
                             sizeof reply);
        return drop(Drop::kCookieSent);
      }
      return type == MessageType::kInitiation ? handle_initiation(msg, src, now, routing)
                                              : handle_response(msg, src, now, routing);
    }
    case MessageType::kCookieReply:
      return handle_cookie_reply(msg, now.mono);
    default:
      return drop(Drop::kMalformed);
  }
}

Drop Device::handle_initiation(const std::uint8_t* msg, const Endpoint& src, Instant now,
                               HandshakeRouting* routing) noexcept {
  // Message structs are byte arrays (alignment 1), so this cast is sound.
  const auto& init = *reinterpret_cast<const MessageInitiation*>(msg);
  Peer* peer = nullptr;
  crypto::PublicKey* initiator = routing != nullptr ? routing->foreign_initiator : nullptr;
  if (Drop d = noise_consume_initiation(init, identity_, peers_, now.mono, &peer, initiator);
      d != Drop::kOk) {
    if (d == Drop::kUnknownPeer && initiator != nullptr) {
      routing->foreign = true;  // the host hands it on (or counts it)
      return d;
    }
    return drop(d);
  }
  if (routing != nullptr) routing->peer = peer;

  peer->rx_bytes += kInitiationLen;
  peer->endpoint = src;
  peer->timers.any_authenticated_packet_received();
  peer->timers.any_authenticated_packet_traversal(now.mono);

  // Our own initiation in flight (if any) is superseded by theirs.
  clear_handshake_index(*peer);
  Handshake& hs = peer->handshake;
  std::uint32_t index = 0;
  if (indices_.insert(peer, index) == nullptr) {
    hs.clear();
    return drop(Drop::kIndexTableFull);
  }
  hs.local_index = index;

  MessageResponse resp;
  if (Drop d = noise_create_response(resp, hs, identity_); d != Drop::kOk) {
    clear_handshake_index(*peer);
    hs.clear();
    return drop(d);
  }
  store_le32(resp.sender, index);
  auto* bytes = reinterpret_cast<std::uint8_t*>(&resp);
  peer->cookie.add_macs(bytes, sizeof resp, now.mono);
  if (Drop d = start_session(*peer, now); d != Drop::kOk) return drop(d);
  send_to_peer(*peer, bytes, sizeof resp, now);
  return Drop::kOk;
}

Drop Device::handle_response(const std::uint8_t* msg, const Endpoint& src, Instant now,
                             HandshakeRouting* routing) noexcept {
  const auto& resp = *reinterpret_cast<const MessageResponse*>(msg);
  const IndexSlot* e = indices_.find(load_le32(resp.receiver));
  if (e == nullptr || e->is_keypair()) return drop(Drop::kUnknownIndex);
  Peer& peer = *e->peer();
  if (Drop d = noise_consume_response(resp, peer.handshake, identity_); d != Drop::kOk)
    return drop(d);
  if (routing != nullptr) routing->peer = &peer;

  peer.rx_bytes += kResponseLen;
  peer.endpoint = src;
  peer.timers.any_authenticated_packet_received();
  peer.timers.any_authenticated_packet_traversal(now.mono);
  if (Drop d = start_session(peer, now); d != Drop::kOk) return drop(d);
  return Drop::kOk;
}

Drop Device::handle_cookie_reply(const std::uint8_t* msg, Nanos now) noexcept {
  const auto& reply = *reinterpret_cast<const MessageCookieReply*>(msg);
  const IndexSlot* e = indices_.find(load_le32(reply.receiver));
  if (e == nullptr) return drop(Drop::kUnknownIndex);
  if (Drop d = e->peer()->cookie.consume_reply(reply, now); d != Drop::kOk) return drop(d);
  // The retransmit timer resends the initiation, now with mac2.
  return Drop::kOk;
}

Drop Device::start_session(Peer& peer, Instant now) noexcept {
  crypto::SecretKey recv_key;  // wiped on return; its copy lives on the receive line
  std::unique_ptr<Keypair> kp = noise_begin_session(peer.handshake, now.mono, recv_key);
  if (!kp) {
    clear_handshake_index(peer);
    peer.handshake.clear();
    return Drop::kUnexpectedHandshake;
  }
  kp->peer = &peer;
  kp->line = indices_.make_keypair(kp->local_index, kp.get(), recv_key, now.mono, kp->initiator);
  if (kp->line == nullptr) {
    // Its index is no longer the live handshake slot it was (not expected:
    // the handshake held it until now); the session cannot be received on.
    indices_.remove(kp->local_index);
    return Drop::kUnexpectedHandshake;
  }
  const bool initiator = kp->initiator;
  peer.keypairs.add(std::move(kp), indices_, peer.send);
  peer.timers.session_derived(now.mono);
  if (initiator) {
    handshake_complete(peer, now);
    // Send what waited for the session; with nothing waiting, a keepalive
    // confirms the session to the responder at once.
    host_.flush_staged(peer, true);
  }
  return Drop::kOk;
}

void Device::handshake_complete(Peer& peer, Instant now) noexcept {
  peer.timers.handshake_complete();
  peer.sent_lastminute_handshake = false;
  peer.last_handshake_wall_ns = now.wall;
  ++peer.handshakes_completed;
}

Drop Device::complete_receive(const RxSlot& slot, std::size_t wire_len, std::size_t plaintext_len,
                              const Endpoint& src, Instant now) noexcept {
  if (Drop d = accept_receive(slot); d != Drop::kOk) return d;
  received(*slot.peer, *slot.line, wire_len, plaintext_len != 0 ? 1 : 0, src, now);
  return Drop::kOk;
}

void Device::received(Peer& peer, IndexSlot& line, std::size_t wire_bytes, std::size_t data_messages,
                      const Endpoint& src, Instant now) noexcept {
  // Roaming: the last authenticated source wins. Compared first, as it
  // rarely changes: the copy would dirty the line for nothing.
  if (!(peer.endpoint == src)) peer.endpoint = src;
  peer.rx_bytes += wire_bytes;
  if (peer.keypairs.received_with(line, indices_, peer.send)) [[unlikely]]
    received_next(peer, now);
  keep_key_fresh_received(peer, line, now);
  peer.timers.any_authenticated_packet_received();
  peer.timers.any_authenticated_packet_traversal(now.mono);
  // Per message, data_received() arms the keepalive timer, or notes that
  // another is needed if it was armed: two calls say all that n do.
  for (std::size_t i = 0; i < data_messages && i < 2; ++i) peer.timers.data_received(now.mono);
}

void Device::received_next(Peer& peer, Instant now) noexcept {
  handshake_complete(peer, now);
  host_.flush_staged(peer, false);
}

// --- send ------------------------------------------------------------------

Drop Device::prepare_send_slow(Peer& peer, Instant now) noexcept {
  // No usable session: the caller stages the packet; a handshake (rate
  // limited) will bring one and flush_staged() will follow.
  initiate_handshake(peer, now);
  return Drop::kNoSession;
}

void Device::complete_send(Peer& peer, Instant now, std::size_t wire_bytes,
                           bool any_data) noexcept {
  peer.tx_bytes += wire_bytes;
  peer.timers.any_authenticated_packet_traversal(now.mono);
  peer.timers.any_authenticated_packet_sent();
  if (any_data) peer.timers.data_sent(now.mono);
  keep_key_fresh_sent(peer, now);
}

void Device::keep_key_fresh_sent(Peer& peer, Instant now) noexcept {
  // The initiator of a session rekeys after REKEY_AFTER_TIME; either side
  // after REKEY_AFTER_MESSAGES.
  const SendLine& s = peer.send;
  if (s.active() && (s.counter > kRekeyAfterMessages || (s.initiator && now.mono - s.birth >= kRekeyAfterTime)))
    initiate_handshake(peer, now);
}

void Device::send_lastminute_handshake(Peer& peer, Instant now) noexcept {
  peer.sent_lastminute_handshake = true;
  initiate_handshake(peer, now);
}

Drop Device::initiate_handshake(Peer& peer, Instant now, bool retry) noexcept {
  if (!retry) peer.timers.reset_attempts();
  if (peer.sent_any_handshake && now.mono - peer.last_sent_handshake < kRekeyTimeout)
    return Drop::kRateLimited;
  if (!identity_.has_key) return Drop::kNoPrivateKey;
  peer.last_sent_handshake = now.mono;
  peer.sent_any_handshake = true;
  // The retransmit timer runs even without an endpoint, so staged packets
  // are purged after REKEY_ATTEMPT_TIME if the peer never shows up.
  peer.timers.handshake_initiated(now.mono,
                                  crypto::random_uniform(kRekeyTimeoutJitterMax / kMillisecond) *
                                      kMillisecond);
  if (!peer.endpoint.valid()) return drop(Drop::kNoEndpoint);

  clear_handshake_index(peer);
  Handshake& hs = peer.handshake;
  hs.clear();
  std::uint32_t index = 0;
  if (indices_.insert(&peer, index) == nullptr)
    return drop(Drop::kIndexTableFull);
  hs.local_index = index;
  MessageInitiation init;
  if (Drop d = noise_create_initiation(init, hs, identity_, now.wall); d != Drop::kOk) {
    clear_handshake_index(peer);
    hs.clear();
    return drop(d);
  }
  store_le32(init.sender, index);
  auto* bytes = reinterpret_cast<std::uint8_t*>(&init);
  peer.cookie.add_macs(bytes, sizeof init, now.mono);
  send_to_peer(peer, bytes, sizeof init, now);
  return Drop::kOk;
}

void Device::send_to_peer(Peer& peer, std::uint8_t* msg, std::size_t len, Instant now) noexcept {
  if (host_.send_handshake(&peer, peer.endpoint, msg, len)) peer.tx_bytes += len;
  peer.timers.any_authenticated_packet_traversal(now.mono);
  peer.timers.any_authenticated_packet_sent();
}

// --- timers ----------------------------------------------------------------

void Device::expire_timers(Peer& peer, Instant now) noexcept {
  const TimerActions a = peer.timers.expire(now.mono);
  if (a.zero_keys) zero_key_material(peer);
  if (a.purge_staged) host_.purge_staged(peer);
  if (a.send_initiation) initiate_handshake(peer, now, a.retry);
  if (a.send_keepalive) host_.flush_staged(peer, true);
}

void Device::clear_handshake_index(Peer& peer) noexcept {
  if (peer.handshake.local_index != 0) {
    indices_.remove(peer.handshake.local_index);
    peer.handshake.local_index = 0;
  }
}

void Device::zero_key_material(Peer& peer) noexcept {
  peer.keypairs.clear(indices_, peer.send);
  clear_handshake_index(peer);
  peer.handshake.clear();
}

}  // namespace moongate::wg
