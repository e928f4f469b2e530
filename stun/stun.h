// STUN binding (RFC 5389, and RFC 3489's classic form), I/O-free: a datagram
// and its source in, the reply datagram out.
//
//   1. parse()   header (type, length, cookie, transaction id) and every
//                attribute TLV must be well-formed; anything else is dropped
//   2. classify  Tailscale's request: a Binding Request with the magic cookie,
//                SOFTWARE exactly "tailnode" and a valid FINGERPRINT as the
//                last attribute -> answered exactly as derper does (one
//                XOR-MAPPED-ADDRESS, nothing else)
//                other RFC 5389 Binding Requests -> XOR-MAPPED-ADDRESS,
//                MAPPED-ADDRESS, SOFTWARE, FINGERPRINT
//                classic (no cookie, 16-byte transaction id) -> MAPPED-ADDRESS
//   3. respond() writes the reply; the caller sends it back to the source
#pragma once

#include <array>
#include <cstddef>
#include <cstdint>
#include <span>

namespace moongate::stun {

inline constexpr std::uint32_t kMagicCookie = 0x2112A442;
inline constexpr std::uint32_t kFingerprintXor = 0x5354554E;
inline constexpr std::uint16_t kBindingRequest = 0x0001;
inline constexpr std::uint16_t kBindingSuccess = 0x0101;
inline constexpr std::uint16_t kAttrMappedAddress = 0x0001;
inline constexpr std::uint16_t kAttrXorMappedAddress = 0x0020;
inline constexpr std::uint16_t kAttrSoftware = 0x8022;
inline constexpr std::uint16_t kAttrFingerprint = 0x8028;
inline constexpr std::size_t kHeaderLen = 20;
// Largest reply respond() writes (IPv6, every attribute).
inline constexpr std::size_t kMaxReply = 128;

enum class Kind : std::uint8_t { kTailscale, kRfc5389, kClassic };

// Why a datagram was not answered; counted by the caller.
enum class Drop : std::uint8_t {
  kNone,
  kTooShort,
  kNotRequest,  // not a Binding Request
  kBadLength,   // header length disagrees with the datagram
  kBadAttribute,
  kBadFingerprint,
};
const char* drop_name(Drop d) noexcept;

struct Request {
  Kind kind = Kind::kRfc5389;
  // RFC 5389: cookie (4) + transaction id (12); classic: the 16-byte id.
  std::array<std::uint8_t, 16> id{};
};

// An address as 16 bytes (IPv4 as ::ffff:a.b.c.d) and a port.
struct Address {
  std::array<std::uint8_t, 16> ip{};
  std::uint16_t port = 0;
  bool is_v4() const noexcept;
};

// Parses a datagram; Drop::kNone and `out` filled when it deserves a reply.
Drop parse(std::span<const std::uint8_t> datagram, Request& out) noexcept;

// Writes the reply for `req` from `source` into out (kMaxReply bytes);
// returns its length.
std::size_t respond(const Request& req, const Address& source, std::uint8_t* out) noexcept;

// CRC-32 (IEEE) as FINGERPRINT uses it (before the XOR).
std::uint32_t crc32(std::span<const std::uint8_t> data) noexcept;

// Client side, for tests and probes: a Tailscale-style request (SOFTWARE
// "tailnode" + FINGERPRINT) with transaction id `tx`; returns its length
// (out needs 48 bytes).
std::size_t tailscale_request(const std::array<std::uint8_t, 12>& tx, std::uint8_t* out) noexcept;
// Client side: the XOR-MAPPED-ADDRESS (or MAPPED-ADDRESS) of a success
// response for `tx`; false when it is not one.
bool parse_response(std::span<const std::uint8_t> datagram, const std::array<std::uint8_t, 12>& tx,
                    Address& mapped) noexcept;

}  // namespace moongate::stun
