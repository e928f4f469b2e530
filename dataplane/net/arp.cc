// ARP parsing and building (see arp.h).
#include "dataplane/net/arp.h"

#include <cstring>

#include "dataplane/net/bytes.h"

namespace moongate::net {
namespace {

constexpr std::uint16_t kHardwareEthernet = 1;

std::size_t write_frame(std::uint8_t* out, std::size_t cap, const MacAddress& eth_dst,
                        const MacAddress& our_mac, ArpOp op, const Ipv4Address& sender_ip,
                        const MacAddress& target_mac, const Ipv4Address& target_ip) noexcept {
  if (cap < kArpFrameLen) return 0;
  std::memset(out, 0, kArpFrameLen);
  write_ethernet(out, cap, eth_dst, our_mac, kEtherTypeArp);
  std::uint8_t* a = out + kEthernetHeaderLen;
  store_be16(a, kHardwareEthernet);
  store_be16(a + 2, kEtherTypeIpv4);
  a[4] = 6;
  a[5] = 4;
  store_be16(a + 6, static_cast<std::uint16_t>(op));
  our_mac.store(a + 8);
  std::memcpy(a + 14, sender_ip.data(), 4);
  target_mac.store(a + 18);
  std::memcpy(a + 24, target_ip.data(), 4);
  return kArpFrameLen;
}

}  // namespace

bool parse_arp(const std::uint8_t* p, std::size_t len, ArpPacket& out) noexcept {
  if (len < kArpLen) return false;
  if (load_be16(p) != kHardwareEthernet || load_be16(p + 2) != kEtherTypeIpv4 || p[4] != 6 ||
      p[5] != 4) {
    return false;
  }
  const std::uint16_t op = load_be16(p + 6);
  if (op != static_cast<std::uint16_t>(ArpOp::kRequest) &&
      op != static_cast<std::uint16_t>(ArpOp::kReply)) {
    return false;
  }
  const MacAddress sender_mac = MacAddress::load(p + 8);
  if (!sender_mac.is_unicast()) return false;
  out.op = static_cast<ArpOp>(op);
  out.sender_mac = sender_mac;
  out.sender_ip = load_ipv4_address(p + 14);
  out.target_mac = MacAddress::load(p + 18);
  out.target_ip = load_ipv4_address(p + 24);
  return true;
}

std::size_t build_arp_reply(std::uint8_t* out, std::size_t cap, const ArpPacket& request,
                            const MacAddress& our_mac, const Ipv4Address& our_ip) noexcept {
  if (request.op != ArpOp::kRequest || request.target_ip != our_ip ||
      !request.sender_mac.is_unicast()) {
    return 0;
  }
  return write_frame(out, cap, request.sender_mac, our_mac, ArpOp::kReply, our_ip,
                     request.sender_mac, request.sender_ip);
}

std::size_t build_arp_request(std::uint8_t* out, std::size_t cap, const MacAddress& our_mac,
                              const Ipv4Address& our_ip, const Ipv4Address& target_ip) noexcept {
  return write_frame(out, cap, kBroadcastMac, our_mac, ArpOp::kRequest, our_ip, MacAddress{},
                     target_ip);
}

}  // namespace moongate::net
