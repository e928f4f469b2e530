// UDP header parsing, verification and building (see udp.h).
#include "dataplane/net/udp.h"

#include "dataplane/net/bytes.h"
#include "dataplane/net/checksum.h"
#include "dataplane/net/ip_protocol.h"

namespace moongate::net {
namespace {

// Writes everything but the checksum; returns the UDP length or 0.
std::size_t write_fields(std::uint8_t* udp, std::size_t cap, std::uint16_t src_port,
                         std::uint16_t dst_port, std::size_t payload_len) noexcept {
  if (payload_len > 0xffff - kUdpHeaderLen) return 0;
  const std::size_t length = kUdpHeaderLen + payload_len;
  if (cap < length) return 0;
  store_be16(udp, src_port);
  store_be16(udp + 2, dst_port);
  store_be16(udp + 4, static_cast<std::uint16_t>(length));
  store_be16(udp + kUdpChecksumOffset, 0);
  return length;
}

}  // namespace

const char* to_string(UdpStatus s) noexcept {
  switch (s) {
    case UdpStatus::kOk: return "ok";
    case UdpStatus::kTruncated: return "truncated";
    case UdpStatus::kBadLength: return "bad length";
  }
  return "?";
}

UdpStatus parse_udp(const std::uint8_t* p, std::size_t len, UdpHeader& out) noexcept {
  if (len < kUdpHeaderLen) return UdpStatus::kTruncated;
  const std::uint16_t length = load_be16(p + 4);
  if (length < kUdpHeaderLen || length > len) return UdpStatus::kBadLength;
  out.src_port = load_be16(p);
  out.dst_port = load_be16(p + 2);
  out.length = length;
  out.checksum = load_be16(p + kUdpChecksumOffset);
  return UdpStatus::kOk;
}

bool udp_checksum_valid_v4(const std::uint8_t* udp, std::uint16_t length, const Ipv4Address& src,
                           const Ipv4Address& dst) noexcept {
  if (length < kUdpHeaderLen) return false;
  if (load_be16(udp + kUdpChecksumOffset) == 0) return true;
  return l4_checksum_v4(src, dst, kIpProtoUdp, udp, length) == 0;
}

bool udp_checksum_valid_v6(const std::uint8_t* udp, std::uint16_t length, const Ipv6Address& src,
                           const Ipv6Address& dst) noexcept {
  if (length < kUdpHeaderLen) return false;
  if (load_be16(udp + kUdpChecksumOffset) == 0) return false;
  return l4_checksum_v6(src, dst, kIpProtoUdp, udp, length) == 0;
}

std::size_t write_udp_v4(std::uint8_t* udp, std::size_t cap, const Ipv4Address& src,
                         const Ipv4Address& dst, std::uint16_t src_port, std::uint16_t dst_port,
                         std::size_t payload_len, UdpChecksum mode) noexcept {
  const std::size_t length = write_fields(udp, cap, src_port, dst_port, payload_len);
  if (length == 0) return 0;
  const auto len16 = static_cast<std::uint16_t>(length);
  std::uint16_t check = 0;
  if (mode == UdpChecksum::kFull) {
    check = udp_checksum_to_wire(l4_checksum_v4(src, dst, kIpProtoUdp, udp, len16));
  } else if (mode == UdpChecksum::kOffload) {
    check = checksum_fold(pseudo_header_sum_v4(src, dst, kIpProtoUdp, len16));
  }
  store_be16(udp + kUdpChecksumOffset, check);
  return length;
}

std::size_t write_udp_v6(std::uint8_t* udp, std::size_t cap, const Ipv6Address& src,
                         const Ipv6Address& dst, std::uint16_t src_port, std::uint16_t dst_port,
                         std::size_t payload_len, UdpChecksum mode) noexcept {
  if (mode == UdpChecksum::kNone) return 0;
  const std::size_t length = write_fields(udp, cap, src_port, dst_port, payload_len);
  if (length == 0) return 0;
  const auto len32 = static_cast<std::uint32_t>(length);
  const std::uint16_t check =
      mode == UdpChecksum::kFull
          ? udp_checksum_to_wire(l4_checksum_v6(src, dst, kIpProtoUdp, udp, len32))
          : checksum_fold(pseudo_header_sum_v6(src, dst, kIpProtoUdp, len32));
  store_be16(udp + kUdpChecksumOffset, check);
  return length;
}

}  // namespace moongate::net
