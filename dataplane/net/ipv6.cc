// IPv6 header parsing, building and forwarding (see ipv6.h).
#include "dataplane/net/ipv6.h"

#include <cstring>

#include "dataplane/net/bytes.h"
#include "dataplane/net/ip_protocol.h"

namespace moongate::net {

const char* to_string(Ipv6Status s) noexcept {
  switch (s) {
    case Ipv6Status::kOk: return "ok";
    case Ipv6Status::kTruncated: return "truncated";
    case Ipv6Status::kBadVersion: return "bad version";
    case Ipv6Status::kBadPayloadLength: return "bad payload length";
    case Ipv6Status::kBadExtensionHeader: return "bad extension header";
  }
  return "?";
}

Ipv6Status parse_ipv6(const std::uint8_t* p, std::size_t len, Ipv6Header& out) noexcept {
  if (len < kIpv6HeaderLen) return Ipv6Status::kTruncated;
  if ((p[0] >> 4) != 6) return Ipv6Status::kBadVersion;
  const std::uint16_t payload_len = load_be16(p + 4);
  const std::size_t end = kIpv6HeaderLen + payload_len;
  if (end > len) return Ipv6Status::kBadPayloadLength;

  Ipv6Header h;
  const std::uint32_t first = load_be32(p);
  h.traffic_class = static_cast<std::uint8_t>(first >> 20);
  h.flow_label = first & 0xfffff;
  h.payload_len = payload_len;
  h.next_header = p[6];
  h.hop_limit = p[kIpv6HopLimitOffset];
  h.src = load_ipv6_address(p + kIpv6SrcOffset);
  h.dst = load_ipv6_address(p + kIpv6DstOffset);

  // Extension-header walk, bounded by count and by `end` (not `len`).
  std::uint8_t next = h.next_header;
  std::size_t off = kIpv6HeaderLen;
  for (std::size_t n = 0;; ++n) {
    const bool extension = next == kIpProtoHopByHop || next == kIpProtoRouting ||
                           next == kIpProtoDestOpts || next == kIpProtoFragment;
    if (!extension) break;
    if (n == kIpv6MaxExtensionHeaders) return Ipv6Status::kBadExtensionHeader;
    if (next == kIpProtoHopByHop && n != 0) return Ipv6Status::kBadExtensionHeader;
    if (end - off < 8) return Ipv6Status::kBadExtensionHeader;  // all are >= 8 bytes
    const std::uint8_t following = p[off];
    if (next == kIpProtoFragment) {
      const std::uint16_t frag = load_be16(p + off + 2);
      h.is_fragment = true;
      h.fragment_offset = static_cast<std::uint16_t>(frag & 0xfff8);  // 8-byte units in bits 15..3
      h.more_fragments = (frag & 1) != 0;
      off += 8;
      next = following;
      if (h.fragment_offset != 0) break;
      continue;
    }
    const std::size_t ext_len = (std::size_t{p[off + 1]} + 1) * 8;
    if (end - off < ext_len) return Ipv6Status::kBadExtensionHeader;
    off += ext_len;
    next = following;
  }
  h.protocol = next;
  h.l4_offset = static_cast<std::uint32_t>(off);
  out = h;
  return Ipv6Status::kOk;
}

std::size_t write_ipv6_header(std::uint8_t* out, std::size_t cap, const Ipv6Params& params) noexcept {
  if (cap < kIpv6HeaderLen) return 0;
  store_be32(out, (std::uint32_t{6} << 28) | (std::uint32_t{params.traffic_class} << 20) |
                      (params.flow_label & 0xfffff));
  store_be16(out + 4, params.payload_len);
  out[6] = params.next_header;
  out[kIpv6HopLimitOffset] = params.hop_limit;
  std::memcpy(out + kIpv6SrcOffset, params.src.data(), 16);
  std::memcpy(out + kIpv6DstOffset, params.dst.data(), 16);
  return kIpv6HeaderLen;
}

bool ipv6_decrement_hop_limit(std::uint8_t* p, std::size_t len) noexcept {
  if (len < kIpv6HeaderLen || p[kIpv6HopLimitOffset] <= 1) return false;
  --p[kIpv6HopLimitOffset];
  return true;
}

}  // namespace moongate::net
