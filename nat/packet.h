// The fields NAT44 reads and rewrites in an IPv4 packet, as pure functions
// on a byte buffer (no DPDK): the 5-tuple of a TCP, UDP or ICMP echo
// packet, and the rewrite of one side's address and port with every
// checksum it touches fixed incrementally (RFC 1624), never recomputed over
// the payload. Used on the packet itself and on the packet an ICMP error
// quotes (which may be cut short: a checksum outside the quote is left).
#pragma once

#include <cstddef>
#include <cstdint>

namespace moongate::nat {

inline constexpr std::uint8_t kProtoIcmp = 1;
inline constexpr std::uint8_t kProtoTcp = 6;
inline constexpr std::uint8_t kProtoUdp = 17;

// Which side of the packet a rewrite changes.
enum class Side : std::uint8_t { kSource, kDestination };

struct L4Tuple {
  std::uint8_t proto = 0;
  std::uint32_t src = 0;  // host order
  std::uint32_t dst = 0;
  // TCP/UDP ports; for ICMP echo both hold the query id (the remote side
  // of an ICMP "flow" has no port: callers use 0 there).
  std::uint16_t sport = 0;
  std::uint16_t dport = 0;
  std::uint8_t icmp_type = 0;  // ICMP only
  std::uint8_t tcp_flags = 0;  // TCP only, 0 when not in the bytes given
};

// Reads the tuple of the L4 header at `l4` (`avail` bytes of it present).
// Needs 8 bytes (TCP ports and flags need 14; the flags are read when
// present). False when too short or, for ICMP, not an echo request/reply.
bool read_l4(std::uint8_t proto, const std::uint8_t* l4, std::size_t avail,
             L4Tuple& out) noexcept;

// Rewrites the address of `side` in the IPv4 header at `ip` (`ihl` bytes)
// and the matching port of the L4 header after it (`l4_avail` bytes
// present; for ICMP echo the id), fixing the IPv4 header checksum and the
// L4 checksum when it lies within l4_avail (UDP: unless it is 0, "none").
void rewrite_side(std::uint8_t* ip, std::size_t ihl, std::size_t l4_avail, std::uint8_t proto,
                  Side side, std::uint32_t new_addr, std::uint16_t new_port) noexcept;

// Rewrites only the address of `side` and the IPv4 header checksum (the
// outer header of an ICMP error: ICMP has no pseudo-header).
void rewrite_address(std::uint8_t* ip, Side side, std::uint32_t new_addr) noexcept;

}  // namespace moongate::nat
