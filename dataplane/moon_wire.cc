// Frame parsing and reply headers for the moon (moon_wire.h).
#include "dataplane/moon_wire.h"

#include <netinet/in.h>

#include <cstring>

#include "dataplane/net/ipv4.h"
#include "dataplane/net/ipv6.h"
#include "dataplane/net/udp.h"

namespace moongate::dp {

namespace {
constexpr std::size_t kEth = 14;
constexpr std::uint16_t kTypeIpv4 = 0x0800, kTypeIpv6 = 0x86dd;
}  // namespace

bool parse_moon_frame(const std::uint8_t* frame, std::size_t len, MoonDatagram& out) noexcept {
  if (len < kEth) return false;
  const auto type = static_cast<std::uint16_t>(frame[12] << 8 | frame[13]);
  const std::uint8_t* ip = frame + kEth;
  const std::size_t ip_len = len - kEth;
  std::size_t l4 = 0, l4_len = 0;
  if (type == kTypeIpv4) {
    net::Ipv4Header h;
    if (net::parse_ipv4(ip, ip_len, h) != net::Ipv4Status::kOk || h.protocol != IPPROTO_UDP ||
        h.more_fragments || h.fragment_offset != 0)
      return false;
    l4 = h.header_len;
    l4_len = h.total_len - h.header_len;
    out.from.family = 4;
    std::memcpy(out.from.ip.data(), h.src.data(), 4);
  } else if (type == kTypeIpv6) {
    net::Ipv6Header h;
    if (net::parse_ipv6(ip, ip_len, h) != net::Ipv6Status::kOk || h.protocol != IPPROTO_UDP || h.is_fragment ||
        h.l4_offset != net::kIpv6HeaderLen)
      return false;
    l4 = h.l4_offset;
    l4_len = h.payload_len;
    out.from.family = 6;
    std::memcpy(out.from.ip.data(), h.src.data(), 16);
  } else {
    return false;
  }
  net::UdpHeader u;
  if (net::parse_udp(ip + l4, l4_len, u) != net::UdpStatus::kOk) return false;
  out.from.port = u.src_port;
  out.offset = static_cast<std::uint16_t>(kEth + l4 + net::kUdpHeaderLen);
  out.length = u.payload_len();
  return true;
}

std::size_t write_moon_headers(std::uint8_t* ip, std::size_t cap, const std::uint8_t* src, std::uint16_t src_port,
                               const zerotier::Endpoint& to, std::size_t payload_len) noexcept {
  if (to.family != 4 && to.family != 6) return 0;
  const std::size_t total = moon_header_len(to.family) + payload_len;
  if (cap < total || total > 0xffff) return 0;
  if (to.family == 4) {
    net::Ipv4Params p;
    std::memcpy(p.src.data(), src, 4);
    std::memcpy(p.dst.data(), to.ip.data(), 4);
    p.protocol = IPPROTO_UDP;
    p.payload_len = static_cast<std::uint16_t>(net::kUdpHeaderLen + payload_len);
    if (net::write_ipv4_header(ip, cap, p) != net::kIpv4HeaderLen) return 0;
    if (net::write_udp_v4(ip + net::kIpv4HeaderLen, cap - net::kIpv4HeaderLen, p.src, p.dst, src_port, to.port,
                          payload_len, net::UdpChecksum::kFull) == 0)
      return 0;
    return total;
  }
  net::Ipv6Params p;
  std::memcpy(p.src.data(), src, 16);
  std::memcpy(p.dst.data(), to.ip.data(), 16);
  p.next_header = IPPROTO_UDP;
  p.payload_len = static_cast<std::uint16_t>(net::kUdpHeaderLen + payload_len);
  if (net::write_ipv6_header(ip, cap, p) != net::kIpv6HeaderLen) return 0;
  if (net::write_udp_v6(ip + net::kIpv6HeaderLen, cap - net::kIpv6HeaderLen, p.src, p.dst, src_port, to.port,
                        payload_len, net::UdpChecksum::kFull) == 0)
    return 0;
  return total;
}

}  // namespace moongate::dp
