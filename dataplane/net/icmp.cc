// ICMP echo replies and error messages (see icmp.h).
#include "dataplane/net/icmp.h"

#include <algorithm>
#include <cstring>

#include "dataplane/net/bytes.h"
#include "dataplane/net/checksum.h"
#include "dataplane/net/ip_protocol.h"
#include "dataplane/net/ipv4.h"
#include "dataplane/net/ipv6.h"

namespace moongate::net {
namespace {

constexpr std::uint8_t kIcmpv4ErrorTos = 0xc0;  // precedence "internetwork control", as Linux

// Informational ICMPv4 types. Everything else, unknown types included, is
// treated as an error message (as Linux does): never answer an error with
// an error, or two hosts can bounce them forever.
constexpr bool icmpv4_is_query(std::uint8_t type) noexcept {
  switch (type) {
    case 0: case 8: case 9: case 10: case 13: case 14: case 15: case 16: case 17: case 18:
      return true;
    default:
      return false;
  }
}

void swap_bytes(std::uint8_t* a, std::uint8_t* b, std::size_t n) noexcept {
  std::uint8_t tmp[16];
  std::memcpy(tmp, a, n);
  std::memcpy(a, b, n);
  std::memcpy(b, tmp, n);
}

// Rewrites the ICMP type byte (the high byte of the checksummed word it
// shares with the code) and fixes the checksum at icmp + 2.
void set_icmp_type(std::uint8_t* icmp, std::uint8_t type) noexcept {
  const std::uint16_t old_word = load_be16(icmp);
  const auto new_word = static_cast<std::uint16_t>((std::uint32_t{type} << 8) | icmp[1]);
  store_be16(icmp, new_word);
  store_be16(icmp + 2, checksum_update16(load_be16(icmp + 2), old_word, new_word));
}

// How much of a `total`-byte offending packet to quote: as much as fits in
// `limit` total (`overhead` is our IP + ICMP header) and in `cap`, but not
// less than `minimum` (or the whole packet). 0 when that does not fit.
std::size_t quote_len(std::size_t total, std::size_t minimum, std::size_t overhead,
                      std::size_t limit, std::size_t cap) noexcept {
  if (cap < overhead) return 0;
  const std::size_t quote = std::min({total, limit - overhead, cap - overhead});
  return quote >= std::min(total, minimum) ? quote : 0;
}

std::size_t build_v4_error(std::uint8_t* out, std::size_t cap, const std::uint8_t* offending,
                           std::size_t offending_len, const Ipv4Address& our_ip,
                           std::uint8_t type, std::uint8_t code, std::uint32_t rest) noexcept {
  Ipv4Header h;
  if (parse_ipv4(offending, offending_len, h) != Ipv4Status::kOk) return 0;
  if (h.fragment_offset != 0) return 0;
  if (!ipv4_is_unicast_host(h.src) || ipv4_is_multicast(h.dst) ||
      ipv4_is_limited_broadcast(h.dst)) {
    return 0;
  }
  if (h.protocol == kIpProtoIcmp &&
      (h.payload_len() == 0 || !icmpv4_is_query(offending[h.header_len]))) {
    return 0;
  }
  constexpr std::size_t kOverhead = kIpv4HeaderLen + kIcmpHeaderLen;
  const std::size_t quote =
      quote_len(h.total_len, h.header_len + std::size_t{8}, kOverhead, kIcmpv4ErrorMaxLen, cap);
  if (quote == 0) return 0;

  Ipv4Params ip;
  ip.src = our_ip;
  ip.dst = h.src;
  ip.protocol = kIpProtoIcmp;
  ip.payload_len = static_cast<std::uint16_t>(kIcmpHeaderLen + quote);
  ip.ttl = kIcmpReplyTtl;
  ip.tos = kIcmpv4ErrorTos;
  // At most 576 bytes: fits every IPv4 path without fragmenting, and with DF
  // clear a router on a smaller link may still split it.
  ip.dont_fragment = false;
  write_ipv4_header(out, cap, ip);
  std::uint8_t* icmp = out + kIpv4HeaderLen;
  icmp[0] = type;
  icmp[1] = code;
  store_be16(icmp + 2, 0);
  store_be32(icmp + 4, rest);
  std::memcpy(icmp + kIcmpHeaderLen, offending, quote);
  store_be16(icmp + 2, internet_checksum(icmp, kIcmpHeaderLen + quote));
  return kOverhead + quote;
}

std::size_t build_v6_error(std::uint8_t* out, std::size_t cap, const std::uint8_t* offending,
                           std::size_t offending_len, const Ipv6Address& our_ip,
                           std::uint8_t type, std::uint8_t code, std::uint32_t rest,
                           bool allow_multicast_dst) noexcept {
  Ipv6Header h;
  if (parse_ipv6(offending, offending_len, h) != Ipv6Status::kOk) return 0;
  // Unlike RFC 1812 for IPv4, RFC 4443 does not exempt non-initial
  // fragments: the source needs a Packet Too Big for any of them.
  if (ipv6_is_unspecified(h.src) || ipv6_is_multicast(h.src) || ipv6_is_loopback(h.src)) return 0;
  if (!allow_multicast_dst && ipv6_is_multicast(h.dst)) return 0;
  // ICMPv6 error messages are types 0..127 (RFC 4443 2.1). A non-initial
  // fragment shows no type; ICMPv6 errors fit 1280 bytes and are never
  // fragmented, so such a fragment is not one.
  if (h.protocol == kIpProtoIcmpv6 && h.fragment_offset == 0 &&
      (h.l4_len() == 0 || offending[h.l4_offset] < kIcmpv6EchoRequest)) {
    return 0;
  }
  constexpr std::size_t kOverhead = kIpv6HeaderLen + kIcmpHeaderLen;
  const std::size_t quote =
      quote_len(h.total_len(), h.l4_offset + std::size_t{8}, kOverhead, kIcmpv6ErrorMaxLen, cap);
  if (quote == 0) return 0;

  const auto icmp_len = static_cast<std::uint16_t>(kIcmpHeaderLen + quote);
  Ipv6Params ip;
  ip.src = our_ip;
  ip.dst = h.src;
  ip.next_header = kIpProtoIcmpv6;
  ip.payload_len = icmp_len;
  ip.hop_limit = kIcmpReplyTtl;
  write_ipv6_header(out, cap, ip);
  std::uint8_t* icmp = out + kIpv6HeaderLen;
  icmp[0] = type;
  icmp[1] = code;
  store_be16(icmp + 2, 0);
  store_be32(icmp + 4, rest);
  std::memcpy(icmp + kIcmpHeaderLen, offending, quote);
  store_be16(icmp + 2, l4_checksum_v6(our_ip, h.src, kIpProtoIcmpv6, icmp, icmp_len));
  return kOverhead + quote;
}

}  // namespace

const char* to_string(EchoStatus s) noexcept {
  switch (s) {
    case EchoStatus::kReplied: return "replied";
    case EchoStatus::kNotEchoRequest: return "not an echo request";
    case EchoStatus::kMalformed: return "malformed";
    case EchoStatus::kUnsupported: return "unsupported";
  }
  return "?";
}

EchoStatus icmpv4_echo_to_reply(std::uint8_t* ip, std::size_t len) noexcept {
  Ipv4Header h;
  if (parse_ipv4(ip, len, h) != Ipv4Status::kOk) return EchoStatus::kMalformed;
  if (h.protocol != kIpProtoIcmp) return EchoStatus::kNotEchoRequest;
  if (h.is_fragment()) return EchoStatus::kUnsupported;  // no reassembly here
  // Options would have to be reflected or reversed (record route, source
  // route, RFC 1122 3.2.2.6); routers drop such packets anyway (RFC 7126).
  if (h.header_len != kIpv4HeaderLen) return EchoStatus::kUnsupported;
  std::uint8_t* icmp = ip + kIpv4HeaderLen;
  const std::size_t icmp_len = h.payload_len();
  if (icmp_len < kIcmpHeaderLen) return EchoStatus::kMalformed;
  if (icmp[0] != kIcmpEchoRequest) return EchoStatus::kNotEchoRequest;
  if (icmp[1] != 0 || internet_checksum(icmp, icmp_len) != 0) return EchoStatus::kMalformed;
  if (ipv4_is_multicast(h.dst) || ipv4_is_limited_broadcast(h.dst) ||
      !ipv4_is_unicast_host(h.src)) {
    return EchoStatus::kUnsupported;
  }

  // Swapping the addresses leaves the header sum unchanged (addition
  // commutes); the TTL changes it.
  swap_bytes(ip + kIpv4SrcOffset, ip + kIpv4DstOffset, 4);
  const std::uint16_t old_word = load_be16(ip + kIpv4TtlOffset);
  const auto new_word = static_cast<std::uint16_t>((std::uint32_t{kIcmpReplyTtl} << 8) | (old_word & 0xff));
  store_be16(ip + kIpv4TtlOffset, new_word);
  store_be16(ip + kIpv4ChecksumOffset,
             checksum_update16(load_be16(ip + kIpv4ChecksumOffset), old_word, new_word));
  set_icmp_type(icmp, kIcmpEchoReply);
  return EchoStatus::kReplied;
}

EchoStatus icmpv6_echo_to_reply(std::uint8_t* ip, std::size_t len) noexcept {
  Ipv6Header h;
  if (parse_ipv6(ip, len, h) != Ipv6Status::kOk) return EchoStatus::kMalformed;
  if (h.next_header != kIpProtoIcmpv6) {
    return h.protocol == kIpProtoIcmpv6 ? EchoStatus::kUnsupported : EchoStatus::kNotEchoRequest;
  }
  std::uint8_t* icmp = ip + kIpv6HeaderLen;
  const std::size_t icmp_len = h.payload_len;
  if (icmp_len < kIcmpHeaderLen) return EchoStatus::kMalformed;
  if (icmp[0] != kIcmpv6EchoRequest) return EchoStatus::kNotEchoRequest;
  if (icmp[1] != 0 || l4_checksum_v6(h.src, h.dst, kIpProtoIcmpv6, icmp,
                                     static_cast<std::uint32_t>(icmp_len)) != 0) {
    return EchoStatus::kMalformed;
  }
  // A reply to a group would come from a group address: the caller would
  // have to pick a source, so multicast echo is not answered here.
  if (ipv6_is_multicast(h.dst) || ipv6_is_multicast(h.src) || ipv6_is_unspecified(h.src)) {
    return EchoStatus::kUnsupported;
  }

  // The pseudo-header sum does not depend on the order of the addresses and
  // does not include the hop limit: only the type changes the checksum.
  swap_bytes(ip + kIpv6SrcOffset, ip + kIpv6DstOffset, 16);
  ip[kIpv6HopLimitOffset] = kIcmpReplyTtl;
  set_icmp_type(icmp, kIcmpv6EchoReply);
  return EchoStatus::kReplied;
}

std::size_t build_icmpv4_frag_needed(std::uint8_t* out, std::size_t cap,
                                     const std::uint8_t* offending, std::size_t offending_len,
                                     const Ipv4Address& our_ip, std::uint16_t next_hop_mtu) noexcept {
  // Second word: 16 unused bits, then the next-hop MTU (RFC 1191 4).
  return build_v4_error(out, cap, offending, offending_len, our_ip, kIcmpDestUnreachable,
                        kIcmpFragmentationNeeded, next_hop_mtu);
}

std::size_t build_icmpv4_time_exceeded(std::uint8_t* out, std::size_t cap,
                                       const std::uint8_t* offending, std::size_t offending_len,
                                       const Ipv4Address& our_ip) noexcept {
  return build_v4_error(out, cap, offending, offending_len, our_ip, kIcmpTimeExceeded, 0, 0);
}

std::size_t build_icmpv6_packet_too_big(std::uint8_t* out, std::size_t cap,
                                        const std::uint8_t* offending, std::size_t offending_len,
                                        const Ipv6Address& our_ip, std::uint32_t mtu) noexcept {
  return build_v6_error(out, cap, offending, offending_len, our_ip, kIcmpv6PacketTooBig, 0, mtu,
                        /*allow_multicast_dst=*/true);
}

std::size_t build_icmpv6_time_exceeded(std::uint8_t* out, std::size_t cap,
                                       const std::uint8_t* offending, std::size_t offending_len,
                                       const Ipv6Address& our_ip) noexcept {
  return build_v6_error(out, cap, offending, offending_len, our_ip, kIcmpv6TimeExceeded, 0, 0,
                        /*allow_multicast_dst=*/false);
}

}  // namespace moongate::net
