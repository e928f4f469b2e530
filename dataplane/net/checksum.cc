// Internet checksum arithmetic (see checksum.h).
#include "dataplane/net/checksum.h"

#include <bit>
#include <cstring>

namespace moongate::net {
namespace {

// Sums the buffer as native-order 32-bit words into a 64-bit accumulator:
// 2^16 == 1 (mod 0xffff), so summing 32-bit words is congruent to summing
// 16-bit words, and the one's-complement sum is byte-order independent
// (RFC 1071 section 2(B)): on a little-endian host the folded result is the
// byte swap of the big-endian sum. 64-bit accumulation of 32-bit words
// cannot overflow below 2^32 words.
std::uint16_t native_sum(const std::uint8_t* p, std::size_t len) noexcept {
  std::uint64_t acc = 0;
  while (len >= 8) {
    std::uint64_t v;
    std::memcpy(&v, p, 8);  // unaligned-safe; compiles to one load
    acc += (v & 0xffffffffu) + (v >> 32);
    p += 8;
    len -= 8;
  }
  if (len > 0) {
    // The tail keeps its byte positions (it starts at an even offset), so an
    // odd last byte lands in the high half of its big-endian word.
    std::uint8_t tail[8] = {};
    std::memcpy(tail, p, len);
    std::uint64_t v;
    std::memcpy(&v, tail, 8);
    acc += (v & 0xffffffffu) + (v >> 32);
  }
  acc = (acc & 0xffffffffu) + (acc >> 32);
  acc = (acc & 0xffffffffu) + (acc >> 32);
  return checksum_fold(static_cast<std::uint32_t>(acc));
}

constexpr std::uint16_t byteswap16(std::uint16_t v) noexcept {
  return static_cast<std::uint16_t>((v >> 8) | (v << 8));
}

// The big-endian word sum of bytes that sit at `offset` of the checksummed
// data: bytes at odd positions are low bytes, i.e. the sum is swapped.
std::uint16_t positioned_sum(const std::uint8_t* p, std::size_t len, std::size_t offset) noexcept {
  std::uint16_t s = static_cast<std::uint16_t>(checksum_partial(p, len));
  return (offset & 1) != 0 ? byteswap16(s) : s;
}

std::uint16_t update(std::uint16_t check, std::uint16_t old_sum, std::uint16_t new_sum) noexcept {
  std::uint32_t s = static_cast<std::uint16_t>(~check);
  s += static_cast<std::uint16_t>(~old_sum);
  s += new_sum;
  return checksum_finish(s);
}

}  // namespace

std::uint32_t checksum_partial(const std::uint8_t* p, std::size_t len, std::uint32_t sum) noexcept {
  std::uint16_t s = native_sum(p, len);
  if constexpr (std::endian::native == std::endian::little) s = byteswap16(s);
  // Folding the caller's sum first keeps the addition from wrapping whatever
  // value it passes.
  return checksum_fold(std::uint32_t{checksum_fold(sum)} + s);
}

std::uint16_t checksum_update32(std::uint16_t check, std::uint32_t old_value,
                                std::uint32_t new_value) noexcept {
  return update(check, checksum_fold(old_value), checksum_fold(new_value));
}

std::uint16_t checksum_update_bytes(std::uint16_t check, std::size_t offset,
                                    const std::uint8_t* old_bytes, const std::uint8_t* new_bytes,
                                    std::size_t len) noexcept {
  return update(check, positioned_sum(old_bytes, len, offset),
                positioned_sum(new_bytes, len, offset));
}

std::uint32_t pseudo_header_sum_v4(const Ipv4Address& src, const Ipv4Address& dst,
                                   std::uint8_t protocol, std::uint16_t l4_len) noexcept {
  std::uint32_t sum = checksum_partial(src.data(), src.size());
  sum = checksum_partial(dst.data(), dst.size(), sum);
  return checksum_fold(sum + protocol + l4_len);
}

std::uint32_t pseudo_header_sum_v6(const Ipv6Address& src, const Ipv6Address& dst,
                                   std::uint8_t next_header, std::uint32_t l4_len) noexcept {
  std::uint32_t sum = checksum_partial(src.data(), src.size());
  sum = checksum_partial(dst.data(), dst.size(), sum);
  // The 32-bit length and the zero-padded next header as big-endian words.
  return checksum_fold(sum + (l4_len >> 16) + (l4_len & 0xffff) + next_header);
}

}  // namespace moongate::net
