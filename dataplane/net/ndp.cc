// Neighbor Discovery parsing and building (see ndp.h).
#include "dataplane/net/ndp.h"

#include <cstring>

#include "dataplane/net/bytes.h"
#include "dataplane/net/checksum.h"
#include "dataplane/net/ip_protocol.h"
#include "dataplane/net/ipv6.h"

namespace moongate::net {
namespace {

constexpr std::uint8_t kOptSourceLinkAddr = 1;
constexpr std::uint8_t kOptTargetLinkAddr = 2;
constexpr std::uint8_t kNdpHopLimit = 255;

struct NdMessage {
  Ipv6Header ip;
  const std::uint8_t* icmp = nullptr;  // the 24-byte message, then options
  std::size_t icmp_len = 0;
};

// The checks common to NS and NA; `icmp` is set on success.
bool parse_common(const std::uint8_t* ip, std::size_t len, std::uint8_t type,
                  NdMessage& m) noexcept {
  if (parse_ipv6(ip, len, m.ip) != Ipv6Status::kOk) return false;
  if (m.ip.next_header != kIpProtoIcmpv6 || m.ip.hop_limit != kNdpHopLimit) return false;
  if (ipv6_is_multicast(m.ip.src)) return false;
  m.icmp = ip + kIpv6HeaderLen;
  m.icmp_len = m.ip.payload_len;
  if (m.icmp_len < kNdpMessageLen || m.icmp[0] != type || m.icmp[1] != 0) return false;
  if (l4_checksum_v6(m.ip.src, m.ip.dst, kIpProtoIcmpv6, m.icmp,
                     static_cast<std::uint32_t>(m.icmp_len)) != 0) {
    return false;
  }
  return !ipv6_is_multicast(load_ipv6_address(m.icmp + 8));
}

// Walks the options after the fixed message. False when an option has
// length 0 or runs past the end (RFC 4861 7.1), or when the first option
// of `type` is not an 8-byte option with a unicast MAC. Unknown options are
// skipped (RFC 4861 4.6).
bool parse_options(const std::uint8_t* p, std::size_t len, std::uint8_t type,
                   std::optional<MacAddress>& mac) noexcept {
  mac.reset();
  std::size_t off = 0;
  while (off < len) {
    if (len - off < 2) return false;
    const std::size_t opt_len = std::size_t{p[off + 1]} * 8;
    if (opt_len == 0 || opt_len > len - off) return false;
    if (p[off] == type && !mac) {
      if (opt_len != 8) return false;
      const MacAddress m = MacAddress::load(p + off + 2);
      if (!m.is_unicast()) return false;
      mac = m;
    }
    off += opt_len;
  }
  return true;
}

// Ethernet + IPv6 + 24-byte message + one link-layer address option; the
// 4-byte flags/reserved word is `flags`.
std::size_t write_frame(std::uint8_t* out, std::size_t cap, const MacAddress& eth_dst,
                        const MacAddress& our_mac, const Ipv6Address& src_ip,
                        const Ipv6Address& dst_ip, std::uint8_t type, std::uint32_t flags,
                        const Ipv6Address& target, std::uint8_t option) noexcept {
  if (cap < kNdpFrameLen) return 0;
  constexpr std::size_t kIcmpLen = kNdpMessageLen + 8;
  write_ethernet(out, cap, eth_dst, our_mac, kEtherTypeIpv6);
  Ipv6Params ip;
  ip.src = src_ip;
  ip.dst = dst_ip;
  ip.next_header = kIpProtoIcmpv6;
  ip.payload_len = kIcmpLen;
  ip.hop_limit = kNdpHopLimit;
  write_ipv6_header(out + kEthernetHeaderLen, cap - kEthernetHeaderLen, ip);
  std::uint8_t* icmp = out + kEthernetHeaderLen + kIpv6HeaderLen;
  icmp[0] = type;
  icmp[1] = 0;
  store_be16(icmp + 2, 0);
  store_be32(icmp + 4, flags);
  std::memcpy(icmp + 8, target.data(), 16);
  icmp[24] = option;
  icmp[25] = 1;  // in units of 8 bytes
  our_mac.store(icmp + 26);
  store_be16(icmp + 2, l4_checksum_v6(src_ip, dst_ip, kIpProtoIcmpv6, icmp, kIcmpLen));
  return kNdpFrameLen;
}

}  // namespace

bool parse_neighbor_solicitation(const std::uint8_t* ip, std::size_t len,
                                 NeighborSolicitation& out) noexcept {
  NdMessage m;
  if (!parse_common(ip, len, kIcmpv6NeighborSolicitation, m)) return false;
  std::optional<MacAddress> mac;
  if (!parse_options(m.icmp + kNdpMessageLen, m.icmp_len - kNdpMessageLen, kOptSourceLinkAddr,
                     mac)) {
    return false;
  }
  const Ipv6Address target = load_ipv6_address(m.icmp + 8);
  if (ipv6_is_unspecified(m.ip.src)) {
    // Duplicate address detection (RFC 4861 7.1.1).
    if (mac || m.ip.dst != ipv6_solicited_node(target)) return false;
  }
  out.src = m.ip.src;
  out.dst = m.ip.dst;
  out.target = target;
  out.source_mac = mac;
  return true;
}

bool parse_neighbor_advertisement(const std::uint8_t* ip, std::size_t len,
                                  NeighborAdvertisement& out) noexcept {
  NdMessage m;
  if (!parse_common(ip, len, kIcmpv6NeighborAdvertisement, m)) return false;
  const std::uint8_t flags = m.icmp[4];
  const bool solicited = (flags & 0x40) != 0;
  if (solicited && ipv6_is_multicast(m.ip.dst)) return false;
  std::optional<MacAddress> mac;
  if (!parse_options(m.icmp + kNdpMessageLen, m.icmp_len - kNdpMessageLen, kOptTargetLinkAddr,
                     mac)) {
    return false;
  }
  out.src = m.ip.src;
  out.dst = m.ip.dst;
  out.target = load_ipv6_address(m.icmp + 8);
  out.target_mac = mac;
  out.router = (flags & 0x80) != 0;
  out.solicited = solicited;
  out.override_flag = (flags & 0x20) != 0;
  return true;
}

std::size_t build_neighbor_advertisement(std::uint8_t* out, std::size_t cap,
                                         const MacAddress& eth_dst, const MacAddress& our_mac,
                                         const Ipv6Address& src_ip, const Ipv6Address& dst_ip,
                                         const Ipv6Address& target, NaFlags flags) noexcept {
  const std::uint32_t word = (flags.router ? 0x80000000u : 0u) |
                             (flags.solicited ? 0x40000000u : 0u) |
                             (flags.override_flag ? 0x20000000u : 0u);
  return write_frame(out, cap, eth_dst, our_mac, src_ip, dst_ip, kIcmpv6NeighborAdvertisement,
                     word, target, kOptTargetLinkAddr);
}

std::size_t build_na_reply(std::uint8_t* out, std::size_t cap, const NeighborSolicitation& ns,
                           const MacAddress& ns_eth_src, const MacAddress& our_mac,
                           const Ipv6Address& our_ip, bool router) noexcept {
  if (ns.target != our_ip) return 0;
  NaFlags flags;
  flags.router = router;
  flags.override_flag = true;
  if (ns.is_dad()) {
    flags.solicited = false;
    return build_neighbor_advertisement(out, cap, ipv6_multicast_mac(kIpv6AllNodes), our_mac,
                                        our_ip, kIpv6AllNodes, our_ip, flags);
  }
  const MacAddress dst_mac = ns.source_mac.value_or(ns_eth_src);
  if (!dst_mac.is_unicast()) return 0;
  flags.solicited = true;
  return build_neighbor_advertisement(out, cap, dst_mac, our_mac, our_ip, ns.src, our_ip, flags);
}

std::size_t build_neighbor_solicitation(std::uint8_t* out, std::size_t cap,
                                        const MacAddress& our_mac, const Ipv6Address& our_ip,
                                        const Ipv6Address& target) noexcept {
  const Ipv6Address group = ipv6_solicited_node(target);
  return write_frame(out, cap, ipv6_multicast_mac(group), our_mac, our_ip, group,
                     kIcmpv6NeighborSolicitation, 0, target, kOptSourceLinkAddr);
}

}  // namespace moongate::net
