// ICMPv4 (RFC 792) and ICMPv6 (RFC 4443) as the gateway needs them:
// answering echo requests in place, and building the errors a forwarding
// path sends (packet too big, time exceeded).
//
// Echo: the request is validated (IP header via parse_ipv4/parse_ipv6,
// ICMP length >= 8, code 0, ICMP checksum) and turned into the reply in
// the same buffer: addresses swapped, TTL / hop limit reset to 64 (the
// request's may be nearly spent), type rewritten; every checksum is fixed
// incrementally (RFC 1624), never recomputed over the payload. The caller
// has checked that the destination is one of our addresses and swaps the
// Ethernet addresses (swap_ethernet_addresses).
//
// Errors: the offending packet is validated (a packet with a bad header
// gets no error, RFC 1812 4.3.2.7) and the error is built into a separate
// buffer (`out` must not overlap it) as a complete IP packet from `our_ip`
// to the offending packet's source: the caller routes it (it may go back
// into a tunnel) and adds the Ethernet header. No error is built (return
// 0) about: an ICMP error message; a non-initial IPv4 fragment (RFC 4443
// has no such exemption for IPv6); a packet from an address that is not a
// single host; a packet sent to a multicast or broadcast address (except
// ICMPv6 Packet Too Big, RFC 4443 2.4(e.3)). RFC 1122 3.2.2, RFC 1812
// 4.3.2.7, RFC 4443 2.4.
// Packets received as link-layer broadcast must be screened by the caller,
// who also rate-limits (RFC 4443 2.4(f), RFC 1812 4.3.2.8). Pass the
// offending packet as it arrived, before ipv4_decrement_ttl, as Linux does
// (it checks the MTU before decrementing): the source then finds the
// header it sent in the quote. Built this way, the ICMP part of all four
// errors is byte-identical to Linux's for the same packet.
#pragma once

#include <cstddef>
#include <cstdint>

#include "dataplane/net/address.h"

namespace moongate::net {

inline constexpr std::uint8_t kIcmpEchoReply = 0;
inline constexpr std::uint8_t kIcmpDestUnreachable = 3;
inline constexpr std::uint8_t kIcmpFragmentationNeeded = 4;  // code of kIcmpDestUnreachable
inline constexpr std::uint8_t kIcmpEchoRequest = 8;
inline constexpr std::uint8_t kIcmpTimeExceeded = 11;
inline constexpr std::uint8_t kIcmpv6PacketTooBig = 2;
inline constexpr std::uint8_t kIcmpv6TimeExceeded = 3;
inline constexpr std::uint8_t kIcmpv6EchoRequest = 128;
inline constexpr std::uint8_t kIcmpv6EchoReply = 129;

inline constexpr std::size_t kIcmpHeaderLen = 8;
// Largest ICMP error packets: 576 bytes for IPv4 (RFC 1812 4.3.2.3), the
// IPv6 minimum MTU for IPv6 (RFC 4443 2.4(c)).
inline constexpr std::size_t kIcmpv4ErrorMaxLen = 576;
inline constexpr std::size_t kIcmpv6ErrorMaxLen = 1280;
inline constexpr std::uint8_t kIcmpReplyTtl = 64;

enum class EchoStatus : std::uint8_t {
  kReplied,         // the buffer now holds the reply, same length
  kNotEchoRequest,  // another protocol or ICMP type: not for this function
  kMalformed,       // bad IP header, short ICMP, code != 0, bad checksum: drop
  kUnsupported,     // valid but not answered here: fragment, IPv4 options,
                    // IPv6 extension headers, multicast/broadcast destination,
                    // source that is not a single host
};
const char* to_string(EchoStatus s) noexcept;

// `ip` is the IPv4 packet (after the Ethernet header), `len` what is left of
// the frame. Nothing is changed unless kReplied.
EchoStatus icmpv4_echo_to_reply(std::uint8_t* ip, std::size_t len) noexcept;

// `ip` is the IPv6 packet, `len` what is left of the frame. The ICMPv6
// header must follow the fixed header directly. Nothing is changed unless
// kReplied.
EchoStatus icmpv6_echo_to_reply(std::uint8_t* ip, std::size_t len) noexcept;

// ICMPv4 Destination Unreachable / Fragmentation Needed and DF Set (type 3
// code 4) carrying `next_hop_mtu` (RFC 1191), for a packet with DF set that
// does not fit the next hop (without DF a router fragments instead).
// Quotes the offending packet's IP header and as much of its payload as
// fits in 576 bytes in total and in `cap`; at least the IP header plus 8
// bytes (RFC 792), or all of a shorter packet, else returns 0. Returns the
// length of the IPv4 packet written, or 0 for nothing to send.
std::size_t build_icmpv4_frag_needed(std::uint8_t* out, std::size_t cap,
                                     const std::uint8_t* offending, std::size_t offending_len,
                                     const Ipv4Address& our_ip, std::uint16_t next_hop_mtu) noexcept;

// ICMPv4 Time Exceeded in transit (type 11 code 0): the TTL ran out
// (ipv4_decrement_ttl returned false). Quoting as above.
std::size_t build_icmpv4_time_exceeded(std::uint8_t* out, std::size_t cap,
                                       const std::uint8_t* offending, std::size_t offending_len,
                                       const Ipv4Address& our_ip) noexcept;

// ICMPv6 Packet Too Big (type 2 code 0) carrying `mtu` (RFC 8201). Quotes
// as much of the offending packet as fits in 1280 bytes in total and in
// `cap`; at least up to 8 bytes past its last extension header (the
// upper-layer ports), or all of a shorter packet, else returns 0. Returns
// the length of the IPv6 packet written, or 0 for nothing to send.
std::size_t build_icmpv6_packet_too_big(std::uint8_t* out, std::size_t cap,
                                        const std::uint8_t* offending, std::size_t offending_len,
                                        const Ipv6Address& our_ip, std::uint32_t mtu) noexcept;

// ICMPv6 Time Exceeded, hop limit exceeded in transit (type 3 code 0).
// Quoting as above.
std::size_t build_icmpv6_time_exceeded(std::uint8_t* out, std::size_t cap,
                                       const std::uint8_t* offending, std::size_t offending_len,
                                       const Ipv6Address& our_ip) noexcept;

}  // namespace moongate::net
