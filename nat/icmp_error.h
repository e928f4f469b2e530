// ICMP errors about translated flows (destination unreachable, including
// fragmentation needed; time exceeded, as traceroute gets; parameter
// problem). The error quotes the packet that caused it, as that packet was
// on the wire between the gateway and the internet: its external address
// and port must become the inside ones on the way in (and the reverse for
// an error an inside host sends about a packet that came in), or the
// inside host cannot match it to its socket (PMTU discovery and traceroute
// break).
//
// What changes, for an error coming in (an error going out mirrors it):
//   outer IPv4 dst      external -> inside address (IPv4 header checksum)
//   quoted IPv4 src     external -> inside address (the quoted header's checksum)
//   quoted src port/id  external -> inside (the quoted L4 checksum, when quoted)
//   ICMP checksum       over all quoted bytes that changed
// All incrementally (RFC 1624): the quoted payload is not summed again.
#pragma once

#include <cstddef>
#include <cstdint>

#include "nat/packet.h"

namespace moongate::nat {

// RFC 792 / RFC 1812: an error quotes the IP header and at least 8 bytes.
inline constexpr std::size_t kQuotedL4Min = 8;

enum class IcmpErrorParse : std::uint8_t {
  kOk,
  kNotError,    // an ICMP type that is not an error we translate
  kMalformed,   // too short, bad quoted header, quote of a non-first fragment
  kBadChecksum, // the ICMP checksum over the message does not verify
  kNotTracked,  // quotes a protocol we do not translate (it cannot be ours)
};

struct QuotedPacket {
  std::size_t offset = 0;    // of the quoted IPv4 header from the outer one
  std::size_t ihl = 0;       // the quoted header's length
  std::size_t l4_avail = 0;  // quoted L4 bytes present (>= 8)
  L4Tuple tuple;             // as the quoted packet had it
};

// True for the ICMPv4 types handled here (3, 11, 12).
bool is_icmp_error_type(std::uint8_t type) noexcept;

// Parses the error at `ip` (outer header already validated: `ihl` bytes,
// `total_len` in all) and its quote; verifies the ICMP checksum.
IcmpErrorParse parse_icmp_error(const std::uint8_t* ip, std::size_t ihl, std::size_t total_len,
                                QuotedPacket& out) noexcept;

// Translates a parsed error in place. `side_outer` is the outer side that
// changes (kDestination for an error coming in), the quoted packet's
// opposite side changes with it (its source then), to (new_addr, new_port).
void translate_icmp_error(std::uint8_t* ip, std::size_t ihl, const QuotedPacket& q,
                          Side side_outer, std::uint32_t new_addr,
                          std::uint16_t new_port) noexcept;

}  // namespace moongate::nat
