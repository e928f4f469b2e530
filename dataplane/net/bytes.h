// Big-endian loads and stores on unaligned byte buffers.
//
// Packet fields sit at arbitrary offsets of an mbuf (a 14-byte Ethernet
// header leaves every IPv4 field 2-byte misaligned), so every access goes
// through bytes, never through a cast to a wider type: no alignment
// traps, no strict-aliasing UB, and the same code on any host byte order.
// The compilers turn these into single moves plus a bswap.
#pragma once

#include <cstddef>
#include <cstdint>

namespace moongate::net {

constexpr std::uint16_t load_be16(const std::uint8_t* p) noexcept {
  return static_cast<std::uint16_t>((std::uint32_t{p[0]} << 8) | std::uint32_t{p[1]});
}

constexpr std::uint32_t load_be32(const std::uint8_t* p) noexcept {
  return (std::uint32_t{p[0]} << 24) | (std::uint32_t{p[1]} << 16) |
         (std::uint32_t{p[2]} << 8) | std::uint32_t{p[3]};
}

constexpr void store_be16(std::uint8_t* p, std::uint16_t v) noexcept {
  p[0] = static_cast<std::uint8_t>(v >> 8);
  p[1] = static_cast<std::uint8_t>(v);
}

constexpr void store_be32(std::uint8_t* p, std::uint32_t v) noexcept {
  p[0] = static_cast<std::uint8_t>(v >> 24);
  p[1] = static_cast<std::uint8_t>(v >> 16);
  p[2] = static_cast<std::uint8_t>(v >> 8);
  p[3] = static_cast<std::uint8_t>(v);
}

}  // namespace moongate::net
