// IPv4 and IPv6 addresses as plain byte arrays in network order, and the
// address classes the packet builders must recognise.
//
// std::array gives value semantics (copy, ==) without any host-order
// conversion: addresses are only ever compared, copied and summed into
// checksums, all of which work on the wire bytes directly.
#pragma once

#include <array>
#include <cstdint>
#include <cstring>

namespace moongate::net {

using Ipv4Address = std::array<std::uint8_t, 4>;
using Ipv6Address = std::array<std::uint8_t, 16>;

inline Ipv4Address load_ipv4_address(const std::uint8_t* p) noexcept {
  Ipv4Address a;
  std::memcpy(a.data(), p, a.size());
  return a;
}

inline Ipv6Address load_ipv6_address(const std::uint8_t* p) noexcept {
  Ipv6Address a;
  std::memcpy(a.data(), p, a.size());
  return a;
}

// --- IPv4 classes (RFC 1122 3.2.1.3, RFC 5771) -----------------------------

constexpr bool ipv4_is_multicast(const Ipv4Address& a) noexcept { return (a[0] & 0xf0) == 0xe0; }
constexpr bool ipv4_is_limited_broadcast(const Ipv4Address& a) noexcept {
  return a[0] == 0xff && a[1] == 0xff && a[2] == 0xff && a[3] == 0xff;
}

// True when `a` may name a single host as a packet source: not 0.0.0.0/8
// ("this network"), not loopback 127/8, not multicast 224/4, not class E
// 240/4 (which includes 255.255.255.255). RFC 1812 4.3.2.7 forbids ICMP
// errors about packets whose source fails this test.
constexpr bool ipv4_is_unicast_host(const Ipv4Address& a) noexcept {
  return a[0] != 0 && a[0] != 127 && a[0] < 224;
}

// --- IPv6 classes (RFC 4291) -----------------------------------------------

constexpr bool ipv6_is_unspecified(const Ipv6Address& a) noexcept {
  for (std::uint8_t b : a) {
    if (b != 0) return false;
  }
  return true;
}
constexpr bool ipv6_is_loopback(const Ipv6Address& a) noexcept {
  for (std::size_t i = 0; i < 15; ++i) {
    if (a[i] != 0) return false;
  }
  return a[15] == 1;
}
constexpr bool ipv6_is_multicast(const Ipv6Address& a) noexcept { return a[0] == 0xff; }
constexpr bool ipv6_is_link_local(const Ipv6Address& a) noexcept {
  return a[0] == 0xfe && (a[1] & 0xc0) == 0x80;
}

// ff02::1, the link-scope all-nodes group (RFC 4291 2.7.1).
inline constexpr Ipv6Address kIpv6AllNodes = {0xff, 0x02, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1};

// ff02::1:ffXX:XXXX: the solicited-node group of `a`, to which Neighbor
// Solicitations for `a` are sent (RFC 4291 2.7.1).
constexpr Ipv6Address ipv6_solicited_node(const Ipv6Address& a) noexcept {
  return {0xff, 0x02, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0x01, 0xff, a[13], a[14], a[15]};
}

}  // namespace moongate::net
