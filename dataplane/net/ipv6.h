// IPv6 header (RFC 8200): parse and validate with the extension-header
// walk, build, hop-limit decrement.
//
// parse_ipv6 validates: at least 40 bytes; version 6; 40 + payload length
// <= buffer length (bytes past it are link-layer padding: use total_len(),
// not the buffer length); every extension header it walks lies within the
// payload. It walks Hop-by-Hop (first position only, RFC 8200 4.1),
// Routing, Destination Options and Fragment headers, at most
// kIpv6MaxExtensionHeaders of them, and stops at anything else (upper-layer
// protocol, ESP, AH, No Next Header, unknown): that value is `protocol`.
// A Fragment header is reported; for a non-first fragment the walk stops
// there, since what follows is not the start of the upper-layer header.
// Jumbograms (payload length 0 + Jumbo option) are not supported: they
// cannot occur on Ethernet. Addresses are not checked (routing policy).
#pragma once

#include <cstddef>
#include <cstdint>

#include "dataplane/net/address.h"

namespace moongate::net {

inline constexpr std::size_t kIpv6HeaderLen = 40;
inline constexpr std::size_t kIpv6MaxExtensionHeaders = 8;
inline constexpr std::size_t kIpv6HopLimitOffset = 7;
inline constexpr std::size_t kIpv6SrcOffset = 8;
inline constexpr std::size_t kIpv6DstOffset = 24;
// Every IPv6 link carries 1280-byte packets (RFC 8200 5).
inline constexpr std::size_t kIpv6MinMtu = 1280;

enum class Ipv6Status : std::uint8_t {
  kOk,
  kTruncated,           // shorter than 40 bytes
  kBadVersion,          // version field != 6
  kBadPayloadLength,    // 40 + payload length > buffer length
  kBadExtensionHeader,  // runs past the payload, misplaced Hop-by-Hop, or too many
};
const char* to_string(Ipv6Status s) noexcept;

struct Ipv6Header {
  std::uint8_t traffic_class = 0;
  std::uint32_t flow_label = 0;
  std::uint16_t payload_len = 0;  // everything after the fixed 40 bytes
  std::uint8_t next_header = 0;   // of the fixed header
  std::uint8_t hop_limit = 0;
  Ipv6Address src{};
  Ipv6Address dst{};

  // Result of the extension-header walk.
  std::uint8_t protocol = 0;      // where the walk stopped (see the file comment)
  std::uint32_t l4_offset = 0;    // its offset from the start of the IPv6 header (may be 40 + 65535)
  bool is_fragment = false;       // a Fragment header is present
  bool more_fragments = false;
  std::uint16_t fragment_offset = 0;  // in bytes

  constexpr std::size_t total_len() const noexcept { return kIpv6HeaderLen + payload_len; }
  // Length of the upper-layer header + payload (what its pseudo-header counts).
  constexpr std::size_t l4_len() const noexcept { return total_len() - l4_offset; }
};

// Parses and validates the packet at `p` (see the file comment). `out` is
// filled only on kOk.
Ipv6Status parse_ipv6(const std::uint8_t* p, std::size_t len, Ipv6Header& out) noexcept;

struct Ipv6Params {
  Ipv6Address src{};
  Ipv6Address dst{};
  std::uint8_t next_header = 0;
  std::uint16_t payload_len = 0;
  std::uint8_t hop_limit = 64;
  std::uint8_t traffic_class = 0;
  std::uint32_t flow_label = 0;  // low 20 bits used
};

// Writes the 40-byte fixed header. Returns 40, or 0 when cap < 40.
std::size_t write_ipv6_header(std::uint8_t* out, std::size_t cap, const Ipv6Params& params) noexcept;

// Forwarding step: decrements the hop limit of the (already parsed) header
// at `p`. IPv6 has no header checksum and the hop limit is not part of any
// pseudo-header, so nothing else changes. Returns false and changes nothing
// when the hop limit is 0 or 1 (would reach 0: drop, maybe Time Exceeded),
// or when len < 40.
bool ipv6_decrement_hop_limit(std::uint8_t* p, std::size_t len) noexcept;

}  // namespace moongate::net
