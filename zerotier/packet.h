// The ZeroTier packet and fragment headers (protocol 11, as stock 1.x
// clients speak it). All integers are big-endian.
//
//   packet:   id(8) dest(5) source(5) flags(1) mac(8) verb(1) payload...
//             flags: 0x40 fragmented (more pieces follow), bits 3..5 cipher
//             suite, bits 0..2 hop count, 0x80 the legacy "encrypted" bit
//             (set together with suite 1). verb: low 5 bits the verb,
//             0x80 LZ4-compressed payload.
//   fragment: id(8) dest(5) 0xff(1) total<<4|number(1) hops(1) payload...
//             The 0xff sits where a packet's source address starts; no
//             address starts with 0xff, so the two never collide.
//
// A packet longer than the path MTU is sent as a head (the packet's first
// bytes, flag 0x40 set) followed by fragments 1..total-1 carrying the rest.
#pragma once

#include <cstddef>
#include <cstdint>
#include <span>

#include "zerotier/wire.h"

namespace moongate::zerotier {

inline constexpr std::size_t kIdxDest = 8;
inline constexpr std::size_t kIdxSource = 13;
inline constexpr std::size_t kIdxFlags = 18;
inline constexpr std::size_t kIdxMac = 19;
inline constexpr std::size_t kIdxVerb = 27;
inline constexpr std::size_t kIdxPayload = 28;
inline constexpr std::size_t kMinPacketLength = 28;

inline constexpr std::size_t kFragIdxIndicator = 13;
inline constexpr std::size_t kFragIdxCount = 14;
inline constexpr std::size_t kFragIdxHops = 15;
inline constexpr std::size_t kFragHeaderLength = 16;
inline constexpr std::uint8_t kFragmentIndicator = 0xFF;
inline constexpr unsigned kMaxFragments = 16;  // 4-bit counts on the wire

inline constexpr std::uint8_t kFlagFragmented = 0x40;
inline constexpr std::uint8_t kFlagEncryptedLegacy = 0x80;
inline constexpr std::uint8_t kHopsMask = 0x07;
inline constexpr std::uint8_t kVerbMask = 0x1F;
inline constexpr std::uint8_t kVerbFlagCompressed = 0x80;

// Physical payload MTU used when the moon fragments its own replies
// (ZeroTier's default UDP payload size).
inline constexpr std::size_t kUdpMtu = 1432;
// Largest datagram the moon accepts or sends; larger ones are dropped.
inline constexpr std::size_t kMaxDatagram = 2048;
// Largest reassembled packet addressed to the moon itself.
inline constexpr std::size_t kMaxPacket = 8192;

enum class CipherSuite : std::uint8_t {
  kPoly1305None = 0,      // authenticated, payload in clear (HELLO)
  kPoly1305Salsa2012 = 1, // authenticated and encrypted
  kNone = 2,              // trusted paths only; never accepted here
  kAesGmacSiv = 3,        // protocol >= 12 peers; the moon advertises 11
};

enum class Verb : std::uint8_t {
  kNop = 0x00,
  kHello = 0x01,
  kError = 0x02,
  kOk = 0x03,
  kWhois = 0x04,
  kRendezvous = 0x05,
  kFrame = 0x06,
  kExtFrame = 0x07,
  kEcho = 0x08,
  kMulticastLike = 0x09,
  kMulticastGather = 0x0D,
};

enum class ErrorCode : std::uint8_t {
  kInvalidRequest = 0x01,
  kBadProtocolVersion = 0x02,
  kObjectNotFound = 0x03,
  kIdentityCollision = 0x04,
  kUnsupportedOperation = 0x05,
};

inline bool is_fragment(std::span<const std::uint8_t> d) noexcept {
  return d.size() > kFragIdxIndicator && d[kFragIdxIndicator] == kFragmentIndicator;
}

// Read-only view of a packet's header fields (caller checked the length).
struct PacketView {
  const std::uint8_t* p;
  std::size_t n;

  std::uint64_t id() const noexcept { return load_be64(p); }
  Address dest() const noexcept { return load_address(p + kIdxDest); }
  Address source() const noexcept { return load_address(p + kIdxSource); }
  std::uint8_t flags() const noexcept { return p[kIdxFlags]; }
  unsigned hops() const noexcept { return p[kIdxFlags] & kHopsMask; }
  bool fragmented() const noexcept { return (p[kIdxFlags] & kFlagFragmented) != 0; }
  CipherSuite suite() const noexcept { return static_cast<CipherSuite>((p[kIdxFlags] >> 3) & 7); }
  std::uint8_t raw_verb() const noexcept { return p[kIdxVerb]; }
};

struct FragmentView {
  const std::uint8_t* p;
  std::size_t n;

  std::uint64_t id() const noexcept { return load_be64(p); }
  Address dest() const noexcept { return load_address(p + kIdxDest); }
  unsigned total() const noexcept { return p[kFragIdxCount] >> 4; }
  unsigned number() const noexcept { return p[kFragIdxCount] & 0x0F; }
  unsigned hops() const noexcept { return p[kFragIdxHops] & kHopsMask; }
  std::span<const std::uint8_t> payload() const noexcept {
    return {p + kFragHeaderLength, n - kFragHeaderLength};
  }
};

// Writes a packet header (MAC zero, suite bits clear) and the verb; returns
// the header length (28). The caller appends the payload after it.
std::size_t write_header(std::uint8_t* out, std::uint64_t packet_id, Address dest, Address source,
                         Verb verb) noexcept;

// Increments the hop count of a packet or fragment in place; false (and
// nothing changed) when it already reached max_hops.
bool increment_hops(std::span<std::uint8_t> datagram, unsigned max_hops) noexcept;

// Splits an armoured packet[0..n) into a head and fragments of at most mtu
// bytes, calling emit(bytes, len) for each. The sender must have set
// kFlagFragmented (when n > mtu) BEFORE armouring: the flag is part of the
// per-packet key. False when it would need more than 15 pieces.
template <typename Emit>
bool fragment_packet(std::uint8_t* packet, std::size_t n, std::size_t mtu, Emit&& emit) {
  if (n <= mtu) {
    emit(packet, n);
    return true;
  }
  const std::size_t per = mtu - kFragHeaderLength;
  const std::size_t rest = n - mtu;
  const std::size_t total = 1 + (rest + per - 1) / per;
  if (total > kMaxFragments - 1) return false;  // "total" is 4 bits on the wire
  emit(packet, mtu);
  std::uint8_t frag[kMaxDatagram];
  std::size_t off = mtu;
  for (std::size_t i = 1; i < total; ++i) {
    const std::size_t len = n - off < per ? n - off : per;
    std::memcpy(frag, packet, 8);
    std::memcpy(frag + kIdxDest, packet + kIdxDest, kAddressLength);
    frag[kFragIdxIndicator] = kFragmentIndicator;
    frag[kFragIdxCount] = static_cast<std::uint8_t>(total << 4 | i);
    frag[kFragIdxHops] = 0;
    std::memcpy(frag + kFragHeaderLength, packet + off, len);
    emit(frag, kFragHeaderLength + len);
    off += len;
  }
  return true;
}

}  // namespace moongate::zerotier
