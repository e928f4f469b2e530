// DERP client core (flow in client.h).
#include "derp/client.h"

namespace moongate::derp {

Client::Client(const crypto::SecretKey& private_key, const Key& public_key, ClientInfo info,
               bool watch, ClientHandler& handler)
    : private_(private_key), public_(public_key), info_(std::move(info)), watch_(watch),
      handler_(handler) {}

bool Client::receive(std::span<const std::uint8_t> bytes) {
  in_.append(reinterpret_cast<const char*>(bytes.data()), bytes.size());
  std::size_t off = 0;
  while (in_.size() - off >= kHeaderLen) {
    const auto* p = reinterpret_cast<const std::uint8_t*>(in_.data()) + off;
    Header h = get_header(p);
    if (h.length > kMaxFramePayload) return false;
    if (in_.size() - off < kHeaderLen + h.length) break;
    if (!handle(h.type, {p + kHeaderLen, h.length})) return false;
    off += kHeaderLen + h.length;
  }
  in_.erase(0, off);
  return true;
}

bool Client::handle(FrameType t, std::span<const std::uint8_t> payload) {
  if (!have_key_) {
    if (t != FrameType::kServerKey || !decode_server_key(payload, server_key_)) return false;
    have_key_ = true;
    const std::string ci = seal_client_info(private_, public_, server_key_, info_);
    if (ci.empty()) return false;
    out_ += ci;
    return true;
  }
  if (!ready_) {
    if (t != FrameType::kServerInfo) return false;
    if (!open_server_info(payload, private_, server_key_)) return false;
    ready_ = true;
    if (watch_) {
      std::uint8_t f[kHeaderLen];
      out_.append(reinterpret_cast<const char*>(f), encode_raw(f, FrameType::kWatchConns, {}));
    }
    handler_.on_ready();
    return true;
  }
  switch (t) {
    case FrameType::kRecvPacket: {
      if (payload.size() < kKeyLen) return false;
      Key src;
      std::memcpy(src.data(), payload.data(), kKeyLen);
      handler_.on_packet(src, payload.subspan(kKeyLen));
      return true;
    }
    case FrameType::kPeerPresent: {
      PeerPresent p;
      if (!decode_peer_present(payload, p)) return false;
      handler_.on_peer_present(p);
      return true;
    }
    case FrameType::kPeerGone: {
      Key k;
      PeerGoneReason r;
      if (!decode_peer_gone(payload, k, r)) return false;
      handler_.on_peer_gone(k, r);
      return true;
    }
    case FrameType::kPing: {
      if (payload.size() != 8) return false;
      std::uint8_t d[8];
      std::memcpy(d, payload.data(), 8);
      std::uint8_t f[kPingFrameLen];
      out_.append(reinterpret_cast<const char*>(f), encode_ping(f, FrameType::kPong, d));
      return true;
    }
    default:
      return true;  // KeepAlive, Pong, Health, Restarting, unknown: nothing to do
  }
}

void Client::send_packet(const Key& dst, std::span<const std::uint8_t> data) {
  const std::size_t at = out_.size();
  out_.resize(at + kHeaderLen + kKeyLen + data.size());
  encode_packet(reinterpret_cast<std::uint8_t*>(out_.data()) + at, FrameType::kSendPacket, dst, data);
}

void Client::forward_packet(const Key& src, const Key& dst, std::span<const std::uint8_t> data) {
  const std::size_t at = out_.size();
  out_.resize(at + kHeaderLen + 2 * kKeyLen + data.size());
  encode_forward(reinterpret_cast<std::uint8_t*>(out_.data()) + at, src, dst, data);
}

void Client::send_raw(std::span<const std::uint8_t> frame) {
  out_.append(reinterpret_cast<const char*>(frame.data()), frame.size());
}

}  // namespace moongate::derp
