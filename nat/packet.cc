// Tuple reads and side rewrites; packet.h has the contract.
#include "nat/packet.h"

#include "dataplane/net/bytes.h"
#include "dataplane/net/checksum.h"
#include "dataplane/net/icmp.h"
#include "dataplane/net/ipv4.h"

namespace moongate::nat {

namespace {

constexpr std::size_t kTcpFlagsOffset = 13;
constexpr std::size_t kTcpChecksumOffset = 16;
constexpr std::size_t kUdpChecksumOffset = 6;
constexpr std::size_t kIcmpChecksumOffset = 2;
constexpr std::size_t kIcmpIdOffset = 4;

std::size_t addr_offset(Side side) noexcept {
  return side == Side::kSource ? net::kIpv4SrcOffset : net::kIpv4DstOffset;
}

}  // namespace

bool read_l4(std::uint8_t proto, const std::uint8_t* l4, std::size_t avail,
             L4Tuple& out) noexcept {
  if (avail < 8) return false;
  out.proto = proto;
  switch (proto) {
    case kProtoTcp:
      out.sport = net::load_be16(l4);
      out.dport = net::load_be16(l4 + 2);
      out.tcp_flags = avail > kTcpFlagsOffset ? l4[kTcpFlagsOffset] : 0;
      return true;
    case kProtoUdp:
      out.sport = net::load_be16(l4);
      out.dport = net::load_be16(l4 + 2);
      return true;
    case kProtoIcmp:
      out.icmp_type = l4[0];
      if (out.icmp_type != net::kIcmpEchoRequest && out.icmp_type != net::kIcmpEchoReply)
        return false;
      out.sport = out.dport = net::load_be16(l4 + kIcmpIdOffset);
      return true;
    default:
      return false;
  }
}

void rewrite_address(std::uint8_t* ip, Side side, std::uint32_t new_addr) noexcept {
  std::uint8_t* a = ip + addr_offset(side);
  const std::uint32_t old_addr = net::load_be32(a);
  net::store_be32(a, new_addr);
  std::uint8_t* c = ip + net::kIpv4ChecksumOffset;
  net::store_be16(c, net::checksum_update32(net::load_be16(c), old_addr, new_addr));
}

void rewrite_side(std::uint8_t* ip, std::size_t ihl, std::size_t l4_avail, std::uint8_t proto,
                  Side side, std::uint32_t new_addr, std::uint16_t new_port) noexcept {
  const std::uint32_t old_addr = net::load_be32(ip + addr_offset(side));
  rewrite_address(ip, side, new_addr);
  std::uint8_t* l4 = ip + ihl;
  const std::size_t port_off =
      proto == kProtoIcmp ? kIcmpIdOffset : (side == Side::kSource ? 0 : 2);
  if (l4_avail < port_off + 2) return;
  const std::uint16_t old_port = net::load_be16(l4 + port_off);
  net::store_be16(l4 + port_off, new_port);

  switch (proto) {
    case kProtoTcp:
      if (l4_avail >= kTcpChecksumOffset + 2) {
        std::uint8_t* c = l4 + kTcpChecksumOffset;
        std::uint16_t v = net::checksum_update32(net::load_be16(c), old_addr, new_addr);
        net::store_be16(c, net::checksum_update16(v, old_port, new_port));
      }
      break;
    case kProtoUdp:
      if (l4_avail >= kUdpChecksumOffset + 2) {
        std::uint8_t* c = l4 + kUdpChecksumOffset;
        const std::uint16_t old = net::load_be16(c);
        if (old != 0) {  // 0: the sender computed none (RFC 768)
          std::uint16_t v = net::checksum_update32(old, old_addr, new_addr);
          v = net::checksum_update16(v, old_port, new_port);
          net::store_be16(c, net::udp_checksum_to_wire(v));
        }
      }
      break;
    case kProtoIcmp:
      // ICMPv4 sums no pseudo-header: only the id changed.
      if (l4_avail >= kIcmpChecksumOffset + 2) {
        std::uint8_t* c = l4 + kIcmpChecksumOffset;
        net::store_be16(c, net::checksum_update16(net::load_be16(c), old_port, new_port));
      }
      break;
    default:
      break;
  }
}

}  // namespace moongate::nat
