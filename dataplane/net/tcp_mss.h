// TCP MSS clamping (as iptables TCPMSS --clamp-mss-to-pmtu): lower the MSS
// option of SYN and SYN-ACK segments in place so that peers behind the
// tunnel never send segments that would need fragmenting or a Packet Too
// Big that a middlebox may drop.
//
// Only segments with SYN set are looked at. The option list is validated
// completely before anything is written (all or nothing): the header
// length must be 20..60 and within the segment, every option other than
// EOL/NOP must have a length >= 2 inside the header, and an MSS option must
// have length 4. Every MSS option above the maximum is lowered (a
// malicious sender could repeat it; receivers differ on which one wins).
// A SYN without an MSS option is left alone: the receiver then assumes
// 536 (IPv4) or 1220 (IPv6), below any clamp value we use. The TCP
// checksum is updated incrementally (RFC 1624; the pseudo-header does not
// change), so a segment with a bad checksum keeps a bad checksum.
#pragma once

#include <cstddef>
#include <cstdint>

namespace moongate::net {

enum class MssClampStatus : std::uint8_t {
  kClamped,      // at least one MSS option was lowered
  kWithinLimit,  // MSS option(s) already <= the maximum
  kNoMssOption,  // a SYN without MSS option
  kNotSyn,       // not a SYN / SYN-ACK: nothing to do (the common case)
  kNotTcp,       // IP wrappers: not TCP, or a non-initial fragment
  kMalformed,    // bad IP header, truncated TCP header, bad option list
};
const char* to_string(MssClampStatus s) noexcept;

// The largest MSS for a path MTU: MTU minus the IP and TCP headers without
// options (RFC 879, RFC 8200 8.3).
constexpr std::uint16_t tcp_mss_for_mtu_v4(std::uint16_t mtu) noexcept {
  return mtu > 40 ? static_cast<std::uint16_t>(mtu - 40) : 0;
}
constexpr std::uint16_t tcp_mss_for_mtu_v6(std::uint16_t mtu) noexcept {
  return mtu > 60 ? static_cast<std::uint16_t>(mtu - 60) : 0;
}

// `tcp` is the TCP header, `len` the segment length (header + data).
MssClampStatus clamp_tcp_mss(std::uint8_t* tcp, std::size_t len, std::uint16_t max_mss) noexcept;

// The same on an IPv4 or IPv6 packet (after the Ethernet header; `len` is
// what is left of the frame): the IP header is validated (parse_ipv4 /
// parse_ipv6, extension headers walked).
MssClampStatus clamp_tcp_mss_ipv4(std::uint8_t* ip, std::size_t len, std::uint16_t max_mss) noexcept;
MssClampStatus clamp_tcp_mss_ipv6(std::uint8_t* ip, std::size_t len, std::uint16_t max_mss) noexcept;

}  // namespace moongate::net
