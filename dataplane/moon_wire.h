// The moon's datagrams on the wan port, as bytes: what moon_host.cc reads
// out of a received frame (the client's address and the ZeroTier bytes)
// and the IP + UDP headers it puts in front of a reply. Pure functions on
// buffers (no DPDK), so they are unit-tested without the EAL.
#pragma once

#include <cstddef>
#include <cstdint>

#include "zerotier/wire.h"

namespace moongate::dp {

// Where the ZeroTier datagram sits in a received frame, and who sent it.
struct MoonDatagram {
  zerotier::Endpoint from;  // the client's address and UDP port
  std::uint16_t offset = 0;  // of the UDP payload in the frame
  std::uint16_t length = 0;  // of the UDP payload (the UDP length field's, not the frame's)
};

// An Ethernet frame carrying UDP over IPv4 (not a fragment, any header
// length) or IPv6 (no extension headers: the worker's classification sends
// only those); false for anything else. The worker checked it once; the
// moon thread reads it again rather than trust a field the hand-off would
// have to carry.
bool parse_moon_frame(const std::uint8_t* frame, std::size_t len, MoonDatagram& out) noexcept;

inline constexpr std::size_t kMoonHeaderV4 = 20 + 8;
inline constexpr std::size_t kMoonHeaderV6 = 40 + 8;
constexpr std::size_t moon_header_len(std::uint8_t family) noexcept {
  return family == 6 ? kMoonHeaderV6 : kMoonHeaderV4;
}

// Writes the IP and UDP headers at `ip` for `payload_len` bytes that already
// sit at ip + moon_header_len(to.family): from `src` (our address, of
// to's family: 4 or 16 bytes) and `src_port` to `to`. The UDP checksum is
// computed (mandatory over IPv6; over IPv4 a middlebox may want it too).
// IPv4 gets DF and TTL 64, IPv6 hop limit 64. Returns the IP packet's
// length, 0 when `cap` is too small or `to` is neither IPv4 nor IPv6.
std::size_t write_moon_headers(std::uint8_t* ip, std::size_t cap, const std::uint8_t* src, std::uint16_t src_port,
                               const zerotier::Endpoint& to, std::size_t payload_len) noexcept;

}  // namespace moongate::dp
