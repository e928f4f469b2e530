// Ethernet II framing: MAC addresses, the 14-byte header with at most one
// 802.1Q tag, and the ethertypes the data plane dispatches on.
//
// parse_ethernet validates only that the header (and the tag, if any) fits
// in the buffer. It does not check the FCS (the NIC strips and checks it)
// nor the minimum frame size (padding is the sender's business; IP layers
// use their own length fields, never the frame length).
#pragma once

#include <array>
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <string>

#include "dataplane/net/address.h"

namespace moongate::net {

inline constexpr std::uint16_t kEtherTypeIpv4 = 0x0800;
inline constexpr std::uint16_t kEtherTypeArp = 0x0806;
inline constexpr std::uint16_t kEtherTypeVlan = 0x8100;  // 802.1Q C-tag
inline constexpr std::uint16_t kEtherTypeQinQ = 0x88a8;  // 802.1ad S-tag (not unwrapped)
inline constexpr std::uint16_t kEtherTypeIpv6 = 0x86dd;

inline constexpr std::size_t kEthernetHeaderLen = 14;
inline constexpr std::size_t kVlanTagLen = 4;
// Shortest frame on the wire without the 4-byte FCS; shorter frames must be
// zero-padded by someone (some DPDK PMDs do not pad in hardware).
inline constexpr std::size_t kEthernetMinFrameLen = 60;

struct MacAddress {
  std::array<std::uint8_t, 6> octets{};

  static MacAddress load(const std::uint8_t* p) noexcept {
    MacAddress m;
    std::memcpy(m.octets.data(), p, 6);
    return m;
  }
  void store(std::uint8_t* p) const noexcept { std::memcpy(p, octets.data(), 6); }

  // The I/G bit: group addresses, broadcast included, never name a sender.
  constexpr bool is_multicast() const noexcept { return (octets[0] & 0x01) != 0; }
  constexpr bool is_broadcast() const noexcept {
    for (std::uint8_t b : octets) {
      if (b != 0xff) return false;
    }
    return true;
  }
  constexpr bool is_zero() const noexcept {
    for (std::uint8_t b : octets) {
      if (b != 0) return false;
    }
    return true;
  }
  // A usable unicast neighbour address: not a group, not all-zero.
  constexpr bool is_unicast() const noexcept { return !is_multicast() && !is_zero(); }

  // "aa:bb:cc:dd:ee:ff" plus NUL, without allocating (for the packet path).
  void format(char (&out)[18]) const noexcept;
  std::string to_string() const;  // for logs and tests

  friend constexpr bool operator==(const MacAddress&, const MacAddress&) = default;
};

inline constexpr MacAddress kBroadcastMac{{0xff, 0xff, 0xff, 0xff, 0xff, 0xff}};

// 33:33 + the low 32 bits of an IPv6 multicast group (RFC 2464 section 7).
constexpr MacAddress ipv6_multicast_mac(const Ipv6Address& group) noexcept {
  return MacAddress{{0x33, 0x33, group[12], group[13], group[14], group[15]}};
}

struct EthernetHeader {
  MacAddress dst;
  MacAddress src;
  std::uint16_t ethertype = 0;  // of the payload: after the VLAN tag if there is one
  bool has_vlan = false;
  std::uint16_t vlan_tci = 0;   // PCP(3) DEI(1) VID(12); 0 when untagged
  std::uint8_t header_len = 0;  // 14, or 18 with a tag: the payload starts here

  constexpr std::uint16_t vlan_id() const noexcept { return vlan_tci & 0x0fff; }
};

// Parses the header of `frame`. One 802.1Q tag (TPID 0x8100) is skipped and
// reported; a second tag, or an 802.1ad S-tag, is left as the ethertype
// (the data plane does not forward QinQ and drops unknown ethertypes).
// Ethertypes below 0x0600 are 802.3 lengths and are reported unchanged.
// False when the buffer is shorter than the header.
bool parse_ethernet(const std::uint8_t* frame, std::size_t len, EthernetHeader& out) noexcept;

// Writes an untagged header (VLAN tags are inserted on transmit with
// RTE_MBUF_F_TX_VLAN or rte_vlan_insert()). Returns 14, or 0 if cap < 14.
std::size_t write_ethernet(std::uint8_t* out, std::size_t cap, const MacAddress& dst,
                           const MacAddress& src, std::uint16_t ethertype) noexcept;

// Exchanges destination and source in place (turning a frame around).
// False, and nothing changed, when len < 12.
bool swap_ethernet_addresses(std::uint8_t* frame, std::size_t len) noexcept;

}  // namespace moongate::net
