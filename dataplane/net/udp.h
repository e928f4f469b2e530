// UDP header (RFC 768): parse, checksum verification, build.
//
// parse_udp validates: at least 8 bytes; 8 <= length field <= the IP
// payload length given (a shorter length field is honoured, the rest is
// ignored, as Linux trims). The checksum is verified separately, because
// WireGuard authenticates every payload and NICs usually verify the
// checksum on receive: the data plane can skip the software pass.
#pragma once

#include <cstddef>
#include <cstdint>

#include "dataplane/net/address.h"

namespace moongate::net {

inline constexpr std::size_t kUdpHeaderLen = 8;
inline constexpr std::size_t kUdpChecksumOffset = 6;

enum class UdpStatus : std::uint8_t {
  kOk,
  kTruncated,  // fewer than 8 bytes
  kBadLength,  // length field < 8 or > the IP payload length
};
const char* to_string(UdpStatus s) noexcept;

struct UdpHeader {
  std::uint16_t src_port = 0;
  std::uint16_t dst_port = 0;
  std::uint16_t length = 0;    // header + payload, from the length field
  std::uint16_t checksum = 0;  // 0: none (IPv4 only)

  constexpr std::uint16_t payload_len() const noexcept {
    return static_cast<std::uint16_t>(length - kUdpHeaderLen);
  }
};

// `len` is the IP payload length (from the IP header, not the frame).
UdpStatus parse_udp(const std::uint8_t* p, std::size_t len, UdpHeader& out) noexcept;

// Checksum of the datagram [udp, udp + length) (length from the parsed
// header). Over IPv4 a zero checksum means "not computed" and passes; over
// IPv6 it is invalid (RFC 8200 8.1; the RFC 6935 tunnel exception is not
// used by WireGuard).
bool udp_checksum_valid_v4(const std::uint8_t* udp, std::uint16_t length, const Ipv4Address& src,
                           const Ipv4Address& dst) noexcept;
bool udp_checksum_valid_v6(const std::uint8_t* udp, std::uint16_t length, const Ipv6Address& src,
                           const Ipv6Address& dst) noexcept;

enum class UdpChecksum : std::uint8_t {
  kNone,     // write 0 (IPv4 only: over IPv6 the builder refuses)
  kFull,     // computed in software over header + payload
  kOffload,  // the folded pseudo-header sum, not complemented: what the NIC
             // expects with RTE_MBUF_F_TX_UDP_CKSUM (cf. rte_ipv4_phdr_cksum)
};

// Writes the 8-byte header at `udp` for `payload_len` bytes already at
// udp + 8, and the checksum per `mode`. `cap` must cover header + payload
// (the payload is read for kFull). Returns the UDP length (8 + payload_len),
// or 0 when it does not fit in cap or in 16 bits, or kNone over IPv6.
std::size_t write_udp_v4(std::uint8_t* udp, std::size_t cap, const Ipv4Address& src,
                         const Ipv4Address& dst, std::uint16_t src_port, std::uint16_t dst_port,
                         std::size_t payload_len, UdpChecksum mode) noexcept;
std::size_t write_udp_v6(std::uint8_t* udp, std::size_t cap, const Ipv6Address& src,
                         const Ipv6Address& dst, std::uint16_t src_port, std::uint16_t dst_port,
                         std::size_t payload_len, UdpChecksum mode) noexcept;

}  // namespace moongate::net
