// The Internet checksum (RFC 1071), its incremental update (RFC 1624) and
// the IPv4/IPv6 pseudo-headers of UDP, TCP and ICMPv6.
//
// Conventions: a checksum is a host-order uint16_t holding the value of the
// big-endian field (store it with store_be16). A "sum" is a 32-bit
// one's-complement accumulator, congruent mod 0xffff to the sum of the
// big-endian 16-bit words; it is folded and complemented only at the end,
// so partial sums (pseudo-header, header, payload) can be chained.
//
// Verification rule: a buffer whose checksum field is in place sums to
// 0xffff, i.e. checksum_finish(...) over it == 0.
#pragma once

#include <cstddef>
#include <cstdint>

#include "dataplane/net/address.h"

namespace moongate::net {

// Adds the bytes of [p, p+len) to `sum` as big-endian 16-bit words, an odd
// last byte padded with a zero low byte. Chained calls must split the data
// at even offsets (only the last piece may be odd). Any alignment of `p`.
// The result is folded to 16 bits, so chaining never overflows.
std::uint32_t checksum_partial(const std::uint8_t* p, std::size_t len,
                               std::uint32_t sum = 0) noexcept;

// Folds the end-around carries: 0..0xffff, congruent to `sum`.
constexpr std::uint16_t checksum_fold(std::uint32_t sum) noexcept {
  sum = (sum & 0xffff) + (sum >> 16);
  sum = (sum & 0xffff) + (sum >> 16);
  return static_cast<std::uint16_t>(sum);
}

// The checksum field value for a sum: ~fold(sum).
constexpr std::uint16_t checksum_finish(std::uint32_t sum) noexcept {
  return static_cast<std::uint16_t>(~checksum_fold(sum));
}

// Checksum of a whole buffer (e.g. an IPv4 header with its checksum field
// zeroed; over a header with the field in place, 0 means valid).
inline std::uint16_t internet_checksum(const std::uint8_t* p, std::size_t len) noexcept {
  return checksum_finish(checksum_partial(p, len));
}

// --- Incremental update, RFC 1624 eqn. 3: HC' = ~(~HC + ~m + m') -----------
// Unlike eqn. 2 this never produces 0xffff (-0) from a valid checksum, so the
// result equals a full recomputation bit for bit.

// Inline: the TTL decrement of every forwarded packet uses it.
constexpr std::uint16_t checksum_update16(std::uint16_t check, std::uint16_t old_value,
                                          std::uint16_t new_value) noexcept {
  std::uint32_t s = static_cast<std::uint16_t>(~check);
  s += static_cast<std::uint16_t>(~old_value);
  s += new_value;
  return checksum_finish(s);
}
std::uint16_t checksum_update32(std::uint16_t check, std::uint32_t old_value,
                                std::uint32_t new_value) noexcept;

// `len` bytes at `offset` (from the start of the checksummed data; only its
// parity matters, odd offsets are handled) change from old_bytes to
// new_bytes. Covers address rewrites (16-byte IPv6) and fields that are not
// 16-bit aligned (a TCP option can start at any byte).
std::uint16_t checksum_update_bytes(std::uint16_t check, std::size_t offset,
                                    const std::uint8_t* old_bytes, const std::uint8_t* new_bytes,
                                    std::size_t len) noexcept;

// --- Pseudo-headers (RFC 768 / RFC 793 for IPv4, RFC 8200 8.1 for IPv6) ---
// `l4_len` is the length of the upper-layer header plus payload.

std::uint32_t pseudo_header_sum_v4(const Ipv4Address& src, const Ipv4Address& dst,
                                   std::uint8_t protocol, std::uint16_t l4_len) noexcept;
std::uint32_t pseudo_header_sum_v6(const Ipv6Address& src, const Ipv6Address& dst,
                                   std::uint8_t next_header, std::uint32_t l4_len) noexcept;

// Checksum of an upper-layer segment [l4, l4+len) under its pseudo-header.
// To compute: zero the checksum field first and store the result. To
// verify: with the field in place, the result is 0 when valid.
inline std::uint16_t l4_checksum_v4(const Ipv4Address& src, const Ipv4Address& dst,
                                    std::uint8_t protocol, const std::uint8_t* l4,
                                    std::uint16_t len) noexcept {
  return checksum_finish(checksum_partial(l4, len, pseudo_header_sum_v4(src, dst, protocol, len)));
}
inline std::uint16_t l4_checksum_v6(const Ipv6Address& src, const Ipv6Address& dst,
                                    std::uint8_t next_header, const std::uint8_t* l4,
                                    std::uint32_t len) noexcept {
  return checksum_finish(
      checksum_partial(l4, len, pseudo_header_sum_v6(src, dst, next_header, len)));
}

// UDP transmits a computed checksum of 0 as 0xffff (the same value in one's
// complement), because 0 on the wire means "no checksum" (RFC 768; over
// IPv6 a zero checksum is invalid, RFC 8200 8.1).
constexpr std::uint16_t udp_checksum_to_wire(std::uint16_t check) noexcept {
  return check == 0 ? 0xffff : check;
}

}  // namespace moongate::net
