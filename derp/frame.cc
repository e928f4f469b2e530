// DERP frame encoders and decoders (see frame.h for the layout).
#include "derp/frame.h"

namespace moongate::derp {

std::size_t encode_server_key(std::uint8_t* out, const Key& server_public) noexcept {
  std::size_t n = put_header(out, FrameType::kServerKey, 8 + kKeyLen);
  std::memcpy(out + n, kMagic.data(), kMagic.size());
  std::memcpy(out + n + kMagic.size(), server_public.data(), kKeyLen);
  return kServerKeyFrameLen;
}

std::size_t encode_keepalive(std::uint8_t* out) noexcept {
  return put_header(out, FrameType::kKeepAlive, 0);
}

std::size_t encode_peer_gone(std::uint8_t* out, const Key& peer, PeerGoneReason r) noexcept {
  std::size_t n = put_header(out, FrameType::kPeerGone, kKeyLen + 1);
  std::memcpy(out + n, peer.data(), kKeyLen);
  out[n + kKeyLen] = static_cast<std::uint8_t>(r);
  return kPeerGoneFrameLen;
}

std::size_t encode_peer_present(std::uint8_t* out, const Key& peer, const IpPort& addr,
                                std::uint8_t flags) noexcept {
  std::size_t n = put_header(out, FrameType::kPeerPresent, kKeyLen + 16 + 2 + 1);
  std::memcpy(out + n, peer.data(), kKeyLen);
  n += kKeyLen;
  std::memcpy(out + n, addr.ip.data(), 16);
  n += 16;
  out[n++] = static_cast<std::uint8_t>(addr.port >> 8);
  out[n++] = static_cast<std::uint8_t>(addr.port);
  out[n++] = flags;
  return n;
}

std::size_t encode_ping(std::uint8_t* out, FrameType ping_or_pong,
                        const std::uint8_t (&data)[8]) noexcept {
  std::size_t n = put_header(out, ping_or_pong, 8);
  std::memcpy(out + n, data, 8);
  return kPingFrameLen;
}

std::size_t encode_packet(std::uint8_t* out, FrameType recv_or_send, const Key& key,
                          std::span<const std::uint8_t> data) noexcept {
  std::size_t n =
      put_header(out, recv_or_send, static_cast<std::uint32_t>(kKeyLen + data.size()));
  std::memcpy(out + n, key.data(), kKeyLen);
  if (!data.empty()) std::memcpy(out + n + kKeyLen, data.data(), data.size());
  return n + kKeyLen + data.size();
}

std::size_t encode_forward(std::uint8_t* out, const Key& src, const Key& dst,
                           std::span<const std::uint8_t> data) noexcept {
  std::size_t n = put_header(out, FrameType::kForwardPacket,
                             static_cast<std::uint32_t>(2 * kKeyLen + data.size()));
  std::memcpy(out + n, src.data(), kKeyLen);
  std::memcpy(out + n + kKeyLen, dst.data(), kKeyLen);
  if (!data.empty()) std::memcpy(out + n + 2 * kKeyLen, data.data(), data.size());
  return n + 2 * kKeyLen + data.size();
}

std::size_t encode_raw(std::uint8_t* out, FrameType t,
                       std::span<const std::uint8_t> payload) noexcept {
  std::size_t n = put_header(out, t, static_cast<std::uint32_t>(payload.size()));
  if (!payload.empty()) std::memcpy(out + n, payload.data(), payload.size());
  return n + payload.size();
}

std::size_t encode_restarting(std::uint8_t* out, std::uint32_t reconnect_in_ms,
                              std::uint32_t try_for_ms) noexcept {
  std::size_t n = put_header(out, FrameType::kRestarting, 8);
  put_be32(out + n, reconnect_in_ms);
  put_be32(out + n + 4, try_for_ms);
  return n + 8;
}

bool decode_server_key(std::span<const std::uint8_t> payload, Key& server_public) noexcept {
  if (payload.size() < kMagic.size() + kKeyLen) return false;
  if (std::memcmp(payload.data(), kMagic.data(), kMagic.size()) != 0) return false;
  std::memcpy(server_public.data(), payload.data() + kMagic.size(), kKeyLen);
  return true;
}

bool decode_peer_present(std::span<const std::uint8_t> payload, PeerPresent& out) noexcept {
  if (payload.size() < kKeyLen) return false;
  out = PeerPresent{};
  std::memcpy(out.key.data(), payload.data(), kKeyLen);
  if (payload.size() >= kKeyLen + 18) {
    std::memcpy(out.addr.ip.data(), payload.data() + kKeyLen, 16);
    out.addr.port = static_cast<std::uint16_t>(payload[kKeyLen + 16] << 8 | payload[kKeyLen + 17]);
  }
  if (payload.size() >= kKeyLen + 19) out.flags = payload[kKeyLen + 18];
  return true;
}

bool decode_peer_gone(std::span<const std::uint8_t> payload, Key& key,
                      PeerGoneReason& reason) noexcept {
  if (payload.size() < kKeyLen) return false;
  std::memcpy(key.data(), payload.data(), kKeyLen);
  // A bare key is the original form: disconnected.
  reason = payload.size() > kKeyLen ? static_cast<PeerGoneReason>(payload[kKeyLen])
                                    : PeerGoneReason::kDisconnected;
  return true;
}

}  // namespace moongate::derp
