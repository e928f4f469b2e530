// IPv6 Neighbor Discovery over Ethernet (RFC 4861 4.3, 4.4, 7): parse
// Neighbor Solicitations and Advertisements, answer a solicitation for our
// address, solicit a neighbour.
//
// Parsers take the IPv6 packet (after the Ethernet header) and validate,
// per RFC 4861 7.1.1 / 7.1.2: the IPv6 header (parse_ipv6); ICMPv6
// directly after the fixed header (RFC 6980 forbids fragmented ND and we
// accept no other extension header either); hop limit 255 (the sender is
// on-link: a routed packet would have lost one); ICMPv6 code 0 and length
// >= 24; a valid ICMPv6 checksum; a target that is not multicast; a source
// that is not multicast; every option with a non-zero length inside the
// message. NS: from the unspecified address (duplicate address detection)
// only to a solicited-node group and without a source link-layer address
// option. NA: the Solicited flag clear when sent to a multicast group.
// Link-layer address options must be 8 bytes (Ethernet, RFC 2464) and hold
// a unicast MAC, or the message is rejected (it would poison the cache).
//
// Builders write whole Ethernet frames of kNdpFrameLen = 86 bytes:
// Ethernet, IPv6 (hop limit 255), the 24-byte message and one link-layer
// address option.
#pragma once

#include <cstddef>
#include <cstdint>
#include <optional>

#include "dataplane/net/address.h"
#include "dataplane/net/ethernet.h"

namespace moongate::net {

inline constexpr std::uint8_t kIcmpv6NeighborSolicitation = 135;
inline constexpr std::uint8_t kIcmpv6NeighborAdvertisement = 136;
inline constexpr std::size_t kNdpMessageLen = 24;  // ICMPv6 header, flags/reserved, target
inline constexpr std::size_t kNdpFrameLen = 14 + 40 + 24 + 8;

struct NeighborSolicitation {
  Ipv6Address src{};  // unspecified for duplicate address detection
  Ipv6Address dst{};
  Ipv6Address target{};
  std::optional<MacAddress> source_mac;  // the source link-layer address option

  bool is_dad() const noexcept { return ipv6_is_unspecified(src); }
};

struct NeighborAdvertisement {
  Ipv6Address src{};
  Ipv6Address dst{};
  Ipv6Address target{};
  std::optional<MacAddress> target_mac;  // the target link-layer address option
  bool router = false;
  bool solicited = false;
  bool override_flag = false;
};

struct NaFlags {
  bool router = false;     // R: we forward packets (a gateway sets it)
  bool solicited = false;  // S: answers a unicast-sourced solicitation
  bool override_flag = true;  // O: replace a cached address (not for anycast)
};

bool parse_neighbor_solicitation(const std::uint8_t* ip, std::size_t len,
                                 NeighborSolicitation& out) noexcept;
bool parse_neighbor_advertisement(const std::uint8_t* ip, std::size_t len,
                                  NeighborAdvertisement& out) noexcept;

// The general builder: an NA for `target` with a target link-layer address
// option carrying our_mac. Returns 86, or 0 when cap < 86.
std::size_t build_neighbor_advertisement(std::uint8_t* out, std::size_t cap,
                                         const MacAddress& eth_dst, const MacAddress& our_mac,
                                         const Ipv6Address& src_ip, const Ipv6Address& dst_ip,
                                         const Ipv6Address& target, NaFlags flags) noexcept;

// Answers `ns` (parsed) when its target is `our_ip` (RFC 4861 7.2.4), from
// our_ip with O=1 and R=`router`:
//  - duplicate address detection (source ::): to all-nodes ff02::1 at
//    33:33:00:00:00:01, S=0;
//  - otherwise: to the solicitation's source, S=1, at its source
//    link-layer address, or `ns_eth_src` (the solicitation frame's Ethernet
//    source) when it carried none (a unicast NUD probe may omit it).
// Returns 86, or 0 (nothing to send) when the target is not ours, the
// destination MAC would not be unicast, or cap < 86.
std::size_t build_na_reply(std::uint8_t* out, std::size_t cap, const NeighborSolicitation& ns,
                           const MacAddress& ns_eth_src, const MacAddress& our_mac,
                           const Ipv6Address& our_ip, bool router) noexcept;

// Multicast "who has target": from our_ip to the target's solicited-node
// group ff02::1:ffXX:XXXX at 33:33:ff:XX:XX:XX, with our source link-layer
// address. Returns 86, or 0 when cap < 86.
std::size_t build_neighbor_solicitation(std::uint8_t* out, std::size_t cap,
                                        const MacAddress& our_mac, const Ipv6Address& our_ip,
                                        const Ipv6Address& target) noexcept;

}  // namespace moongate::net
