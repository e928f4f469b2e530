// IPv4 header (RFC 791): parse and validate, build, TTL decrement.
//
// parse_ipv4 validates: at least 20 bytes; version 4; IHL >= 5 and the
// header (with options) within the buffer; header_len <= total length <=
// buffer length (bytes past the total length are link-layer padding and
// belong to no layer: use total_len, not the buffer length); the header
// checksum. It reports but does not reject fragments (the caller decides:
// the data plane does not reassemble) and does not interpret options.
// It does not check addresses: martian filtering is routing policy.
#pragma once

#include <cstddef>
#include <cstdint>

#include "dataplane/net/address.h"
#include "dataplane/net/bytes.h"
#include "dataplane/net/checksum.h"

namespace moongate::net {

inline constexpr std::size_t kIpv4HeaderLen = 20;     // without options
inline constexpr std::size_t kIpv4MaxHeaderLen = 60;  // IHL 15
inline constexpr std::size_t kIpv4TtlOffset = 8;
inline constexpr std::size_t kIpv4ChecksumOffset = 10;
inline constexpr std::size_t kIpv4SrcOffset = 12;
inline constexpr std::size_t kIpv4DstOffset = 16;

enum class Ipv4Status : std::uint8_t {
  kOk,
  kTruncated,         // shorter than 20 bytes or than IHL * 4
  kBadVersion,        // version field != 4
  kBadHeaderLength,   // IHL < 5
  kBadTotalLength,    // total length < header length, or > buffer length
  kBadChecksum,
};
const char* to_string(Ipv4Status s) noexcept;

struct Ipv4Header {
  std::uint8_t header_len = 0;   // IHL * 4: 20..60; the payload starts here
  std::uint8_t tos = 0;          // DSCP(6) ECN(2)
  std::uint16_t total_len = 0;   // header + payload, <= the buffer length
  std::uint16_t id = 0;
  bool dont_fragment = false;
  bool more_fragments = false;
  std::uint16_t fragment_offset = 0;  // in bytes (the field counts 8-byte units)
  std::uint8_t ttl = 0;
  std::uint8_t protocol = 0;
  Ipv4Address src{};
  Ipv4Address dst{};

  // A piece of a larger datagram: only the first (offset 0) carries the
  // upper-layer header, none carries the whole upper-layer payload.
  constexpr bool is_fragment() const noexcept { return more_fragments || fragment_offset != 0; }
  constexpr std::uint16_t payload_len() const noexcept {
    return static_cast<std::uint16_t>(total_len - header_len);
  }
};

// Parses and validates the header at `p` (see the file comment). `out` is
// filled only on kOk.
Ipv4Status parse_ipv4(const std::uint8_t* p, std::size_t len, Ipv4Header& out) noexcept;

struct Ipv4Params {
  Ipv4Address src{};
  Ipv4Address dst{};
  std::uint8_t protocol = 0;
  std::uint16_t payload_len = 0;
  std::uint8_t ttl = 64;
  std::uint8_t tos = 0;
  std::uint16_t id = 0;
  // Set on everything we originate: path MTU discovery (RFC 1191); the
  // ID then carries no meaning (RFC 6864) and may stay 0.
  bool dont_fragment = true;
};

// Writes a 20-byte header without options, checksum included. Returns 20,
// or 0 when cap < 20 or 20 + payload_len exceeds 65535.
std::size_t write_ipv4_header(std::uint8_t* out, std::size_t cap, const Ipv4Params& params) noexcept;

// Forwarding step: decrements the TTL of the (already parsed) header at
// `p`, updating the header checksum incrementally (RFC 1624). Returns false
// and changes nothing when the TTL is 0 or 1, i.e. would reach 0: the
// packet must be dropped (and a Time Exceeded may be sent). False too when
// len < 20.
// Inline: every forwarded packet passes here.
inline bool ipv4_decrement_ttl(std::uint8_t* p, std::size_t len) noexcept {
  if (len < kIpv4HeaderLen || p[kIpv4TtlOffset] <= 1) return false;
  --p[kIpv4TtlOffset];
  // RFC 1624 eqn. 3, HC' = ~(~HC + ~m + m'), where m is the word the TTL
  // shares with the protocol (TTL the high byte) and m' = m - 0x0100 (no
  // borrow: TTL >= 2). So ~m + m' = 0xFFFF - m + m - 0x0100 = 0xFEFF
  // whatever the word: checksum_update16 with the old and new words folded
  // into one constant, and the word itself never read.
  std::uint32_t sum = static_cast<std::uint16_t>(~load_be16(p + kIpv4ChecksumOffset));
  sum += 0xFEFF;
  store_be16(p + kIpv4ChecksumOffset, checksum_finish(sum));
  return true;
}

}  // namespace moongate::net
