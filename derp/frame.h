// DERP frames: the byte format both ends of a DERP connection speak.
//
//   frame  = type (1 byte) | payload length (4 bytes, big endian) | payload
//
// Every encoder here writes a whole frame into caller-provided memory and
// returns its length; every decoder takes one frame's payload and returns
// false for a payload of the wrong shape. Nothing here allocates or does I/O,
// so the relay, the mesh client and the tests share one definition of the
// wire format (tests/e2e has an independent one in Python on purpose).
#pragma once

#include <array>
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <span>

namespace moongate::derp {

using Key = std::array<std::uint8_t, 32>;

inline constexpr std::size_t kKeyLen = 32;
inline constexpr std::size_t kNonceLen = 24;
inline constexpr std::size_t kHeaderLen = 5;
inline constexpr std::uint32_t kProtocolVersion = 2;
// "DERP" and the key emoji: the first 8 bytes of the ServerKey payload.
inline constexpr std::array<std::uint8_t, 8> kMagic = {0x44, 0x45, 0x52, 0x50,
                                                       0xF0, 0x9F, 0x94, 0x91};
// Largest packet a client may send or receive (derper's MaxPacketSize).
inline constexpr std::size_t kMaxPacketSize = 64 << 10;
// Largest ClientInfo/ServerInfo payload accepted (derper's maxInfoLen).
inline constexpr std::size_t kMaxInfoLen = 1 << 20;
// Largest payload of any frame this server reads: a ForwardPacket carries two
// keys and a full packet. Frames of unknown type longer than this close the
// connection instead of being skipped (derper would read and discard them).
inline constexpr std::size_t kMaxFramePayload = kMaxPacketSize + 2 * kKeyLen;
// Disco messages (Tailscale's path discovery) start with "TS" + speech bubble
// and are at least magic + sender key + nonce long.
inline constexpr std::array<std::uint8_t, 6> kDiscoMagic = {0x54, 0x53, 0xF0, 0x9F, 0x92, 0xAC};
inline constexpr std::size_t kDiscoMinLen = 6 + kKeyLen + kNonceLen;

enum class FrameType : std::uint8_t {
  kServerKey = 0x01,
  kClientInfo = 0x02,
  kServerInfo = 0x03,
  kSendPacket = 0x04,
  kRecvPacket = 0x05,
  kKeepAlive = 0x06,
  kNotePreferred = 0x07,
  kPeerGone = 0x08,
  kPeerPresent = 0x09,
  kForwardPacket = 0x0A,
  kWatchConns = 0x10,
  kClosePeer = 0x11,
  kPing = 0x12,
  kPong = 0x13,
  kHealth = 0x14,
  kRestarting = 0x15,
};

enum class PeerGoneReason : std::uint8_t { kDisconnected = 0, kNotHere = 1 };

// PeerPresent flags (a bit set; the frame may omit the byte).
inline constexpr std::uint8_t kPresentIsRegular = 0x01;
inline constexpr std::uint8_t kPresentIsMeshPeer = 0x02;
inline constexpr std::uint8_t kPresentIsProber = 0x04;
inline constexpr std::uint8_t kPresentNotIdeal = 0x08;

// An IP address as 16 bytes (IPv4 as ::ffff:a.b.c.d) and a port.
struct IpPort {
  std::array<std::uint8_t, 16> ip{};
  std::uint16_t port = 0;
  friend bool operator==(const IpPort&, const IpPort&) = default;
};

inline bool is_disco(std::span<const std::uint8_t> packet) noexcept {
  return packet.size() >= kDiscoMinLen &&
         std::memcmp(packet.data(), kDiscoMagic.data(), kDiscoMagic.size()) == 0;
}

inline void put_be32(std::uint8_t* p, std::uint32_t v) noexcept {
  p[0] = static_cast<std::uint8_t>(v >> 24);
  p[1] = static_cast<std::uint8_t>(v >> 16);
  p[2] = static_cast<std::uint8_t>(v >> 8);
  p[3] = static_cast<std::uint8_t>(v);
}
inline std::uint32_t get_be32(const std::uint8_t* p) noexcept {
  return std::uint32_t{p[0]} << 24 | std::uint32_t{p[1]} << 16 | std::uint32_t{p[2]} << 8 |
         std::uint32_t{p[3]};
}

// Writes the 5-byte header; returns kHeaderLen.
inline std::size_t put_header(std::uint8_t* out, FrameType t, std::uint32_t len) noexcept {
  out[0] = static_cast<std::uint8_t>(t);
  put_be32(out + 1, len);
  return kHeaderLen;
}

struct Header {
  FrameType type;
  std::uint32_t length;
};
// Decodes a header from at least kHeaderLen bytes.
inline Header get_header(const std::uint8_t* in) noexcept {
  return Header{static_cast<FrameType>(in[0]), get_be32(in + 1)};
}

// --- encoders: each writes a whole frame into `out` and returns its size ---
// Sizes of the fixed-size frames, for callers sizing buffers.
inline constexpr std::size_t kServerKeyFrameLen = kHeaderLen + 8 + kKeyLen;
inline constexpr std::size_t kPeerGoneFrameLen = kHeaderLen + kKeyLen + 1;
inline constexpr std::size_t kPeerPresentFrameLen = kHeaderLen + kKeyLen + 16 + 2 + 1;
inline constexpr std::size_t kPingFrameLen = kHeaderLen + 8;

std::size_t encode_server_key(std::uint8_t* out, const Key& server_public) noexcept;
std::size_t encode_keepalive(std::uint8_t* out) noexcept;
std::size_t encode_peer_gone(std::uint8_t* out, const Key& peer, PeerGoneReason r) noexcept;
std::size_t encode_peer_present(std::uint8_t* out, const Key& peer, const IpPort& addr,
                                std::uint8_t flags) noexcept;
std::size_t encode_ping(std::uint8_t* out, FrameType ping_or_pong,
                        const std::uint8_t (&data)[8]) noexcept;
// RecvPacket / SendPacket: header + key + data (out needs 37 + data bytes).
std::size_t encode_packet(std::uint8_t* out, FrameType recv_or_send, const Key& key,
                          std::span<const std::uint8_t> data) noexcept;
// ForwardPacket: header + src + dst + data.
std::size_t encode_forward(std::uint8_t* out, const Key& src, const Key& dst,
                           std::span<const std::uint8_t> data) noexcept;
// Frames with a payload of the caller's choosing (Health text, WatchConns...).
std::size_t encode_raw(std::uint8_t* out, FrameType t, std::span<const std::uint8_t> payload) noexcept;
std::size_t encode_restarting(std::uint8_t* out, std::uint32_t reconnect_in_ms,
                              std::uint32_t try_for_ms) noexcept;

// --- decoders of one frame's payload ---
bool decode_server_key(std::span<const std::uint8_t> payload, Key& server_public) noexcept;
struct PeerPresent {
  Key key{};
  IpPort addr;
  std::uint8_t flags = 0;
};
// Older servers send only the key, or key + address without flags.
bool decode_peer_present(std::span<const std::uint8_t> payload, PeerPresent& out) noexcept;
bool decode_peer_gone(std::span<const std::uint8_t> payload, Key& key,
                      PeerGoneReason& reason) noexcept;

}  // namespace moongate::derp
