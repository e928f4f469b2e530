// libFuzzer target: the packet-format layer (dataplane/net) on arbitrary
// bytes.
//
// Input: data[0] picks the function (low 4 bits) and a parameter (high 4
// bits: MSS / MTU variants, which error builder); the rest is the packet,
// copied to a heap buffer of exactly its size so ASan sees any read or
// write past it.
//   0 parse_ethernet        4 parse_neighbor_solicitation  8 clamp_tcp_mss_ipv4
//   1 parse_ipv4 (+ UDP)    5 parse_neighbor_advertisement 9 clamp_tcp_mss_ipv6
//   2 parse_ipv6 (+ UDP)    6 icmpv4_echo_to_reply        10 ipv4_decrement_ttl
//   3 parse_arp             7 icmpv6_echo_to_reply        11 ipv6_decrement_hop_limit
//  12 ICMPv4 error builders (param bit 0: frag needed / time exceeded)
//  13 ICMPv6 error builders (param bit 0: packet too big / time exceeded)
//  14 clamp_tcp_mss on a bare TCP header   15 parse_udp on a bare datagram
// Seeds: the test vectors of tests/unit/net/vectors.h (captured and scapy
// frames without their Ethernet header, except for selector 0), prefixed
// with a selector.
//
// Oracles (abort on violation): parsed lengths and offsets stay within the
// buffer; in-place mutators change nothing unless they report success, and
// on success the packet still parses with valid checksums (an echo reply's
// ICMP checksum, the IPv4 header checksum after a TTL decrement, the TCP
// checksum after an MSS clamp when it was valid before); an error builder's
// output, when it returns a length, is one well-formed IPv4 / IPv6 packet
// of that length, within the size limit, carrying ICMP with a valid checksum.
#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <memory>
#include <vector>

#include "dataplane/net/arp.h"
#include "dataplane/net/bytes.h"
#include "dataplane/net/checksum.h"
#include "dataplane/net/ethernet.h"
#include "dataplane/net/icmp.h"
#include "dataplane/net/ip_protocol.h"
#include "dataplane/net/ipv4.h"
#include "dataplane/net/ipv6.h"
#include "dataplane/net/ndp.h"
#include "dataplane/net/tcp_mss.h"
#include "dataplane/net/udp.h"

namespace {

using namespace moongate::net;

[[noreturn]] void fail(const char* what) {
  std::fprintf(stderr, "fuzz oracle violated: %s\n", what);
  std::abort();
}
void check(bool ok, const char* what) {
  if (!ok) fail(what);
}

constexpr std::uint8_t kProtoIcmp = 1;
constexpr std::uint8_t kProtoTcp = 6;
constexpr std::uint8_t kProtoUdp = 17;
constexpr std::uint8_t kProtoIcmpv6 = 58;

// The ICMP checksum of a parsed IPv4 packet's payload is valid.
bool icmpv4_checksum_ok(const std::uint8_t* p, const Ipv4Header& h) {
  return internet_checksum(p + h.header_len, h.payload_len()) == 0;
}
bool l4_checksum_ok_v6(const std::uint8_t* p, const Ipv6Header& h, std::uint8_t proto) {
  return l4_checksum_v6(h.src, h.dst, proto, p + h.l4_offset,
                        static_cast<std::uint32_t>(h.l4_len())) == 0;
}

void parse_udp_in(const std::uint8_t* l4, std::size_t l4_len, bool v6, const std::uint8_t* src,
                  const std::uint8_t* dst) {
  UdpHeader u;
  if (parse_udp(l4, l4_len, u) != UdpStatus::kOk) return;
  check(u.length >= kUdpHeaderLen && u.length <= l4_len, "parse_udp: length out of range");
  if (v6) {
    (void)udp_checksum_valid_v6(l4, u.length, load_ipv6_address(src), load_ipv6_address(dst));
  } else {
    (void)udp_checksum_valid_v4(l4, u.length, load_ipv4_address(src), load_ipv4_address(dst));
  }
}

void do_ipv4(const std::uint8_t* p, std::size_t len) {
  Ipv4Header h;
  if (parse_ipv4(p, len, h) != Ipv4Status::kOk) return;
  check(h.header_len >= 20 && h.header_len <= 60 && h.header_len <= h.total_len &&
            h.total_len <= len,
        "parse_ipv4: lengths out of range");
  check(internet_checksum(p, h.header_len) == 0, "parse_ipv4: accepted a bad header checksum");
  if (h.protocol == kProtoUdp && !h.is_fragment()) {
    parse_udp_in(p + h.header_len, h.payload_len(), false, p + kIpv4SrcOffset, p + kIpv4DstOffset);
  }
}

void do_ipv6(const std::uint8_t* p, std::size_t len) {
  Ipv6Header h;
  if (parse_ipv6(p, len, h) != Ipv6Status::kOk) return;
  check(h.total_len() <= len, "parse_ipv6: total length past the buffer");
  check(h.l4_offset >= kIpv6HeaderLen && h.l4_offset <= h.total_len(),
        "parse_ipv6: l4_offset out of range");
  if (h.protocol == kProtoUdp && !h.is_fragment) {
    parse_udp_in(p + h.l4_offset, h.l4_len(), true, p + kIpv6SrcOffset, p + kIpv6DstOffset);
  }
}

void check_icmpv4_error(const std::uint8_t* out, std::size_t n) {
  if (n == 0) return;
  check(n <= kIcmpv4ErrorMaxLen, "ICMPv4 error longer than 576 bytes");
  Ipv4Header h;
  check(parse_ipv4(out, n, h) == Ipv4Status::kOk, "ICMPv4 error: bad IPv4 header");
  check(h.total_len == n, "ICMPv4 error: total length != returned length");
  check(h.protocol == kProtoIcmp && !h.is_fragment(), "ICMPv4 error: not an ICMP packet");
  check(h.payload_len() >= kIcmpHeaderLen,
        "ICMPv4 error: short");
  check(icmpv4_checksum_ok(out, h), "ICMPv4 error: bad ICMP checksum");
}

void check_icmpv6_error(const std::uint8_t* out, std::size_t n) {
  if (n == 0) return;
  check(n <= kIcmpv6ErrorMaxLen, "ICMPv6 error longer than 1280 bytes");
  Ipv6Header h;
  check(parse_ipv6(out, n, h) == Ipv6Status::kOk, "ICMPv6 error: bad IPv6 header");
  check(h.total_len() == n, "ICMPv6 error: total length != returned length");
  check(h.protocol == kProtoIcmpv6 && h.l4_offset == kIpv6HeaderLen && h.l4_len() >= kIcmpHeaderLen,
        "ICMPv6 error: not an ICMPv6 packet");
  check(l4_checksum_ok_v6(out, h, kProtoIcmpv6), "ICMPv6 error: bad ICMPv6 checksum");
}

// TCP checksum of an IPv4 / IPv6 packet, when it carries a whole segment.
enum class Tcp { kNone, kBad, kGood };
Tcp tcp_v4(const std::uint8_t* p, std::size_t len) {
  Ipv4Header h;
  if (parse_ipv4(p, len, h) != Ipv4Status::kOk || h.protocol != kProtoTcp || h.is_fragment())
    return Tcp::kNone;
  return l4_checksum_v4(h.src, h.dst, kProtoTcp, p + h.header_len, h.payload_len()) == 0 ? Tcp::kGood
                                                                                        : Tcp::kBad;
}
Tcp tcp_v6(const std::uint8_t* p, std::size_t len) {
  Ipv6Header h;
  if (parse_ipv6(p, len, h) != Ipv6Status::kOk || h.protocol != kProtoTcp || h.is_fragment)
    return Tcp::kNone;
  return l4_checksum_ok_v6(p, h, kProtoTcp) ? Tcp::kGood : Tcp::kBad;
}

constexpr Ipv4Address kOurV4{{10, 7, 0, 2}};
constexpr Ipv6Address kOurV6{{0xfd, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 2}};

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  if (size == 0) return 0;
  const unsigned selector = data[0] & 0x0f;
  const unsigned param = data[0] >> 4;
  const std::size_t len = size - 1;
  // Exactly `len` bytes on the heap: any access past the packet is caught.
  std::unique_ptr<std::uint8_t[]> buf(new std::uint8_t[len]);
  if (len != 0) std::memcpy(buf.get(), data + 1, len);
  std::uint8_t* p = buf.get();
  const std::vector<std::uint8_t> before(data + 1, data + size);
  auto unchanged = [&] { return len == 0 || std::memcmp(p, before.data(), len) == 0; };

  switch (selector) {
    case 0: {
      EthernetHeader e;
      if (parse_ethernet(p, len, e)) {
        check(e.header_len == 14 || e.header_len == 18, "parse_ethernet: header_len");
        check(e.header_len <= len, "parse_ethernet: header past the buffer");
        if (e.ethertype == 0x0800) do_ipv4(p + e.header_len, len - e.header_len);
        if (e.ethertype == 0x86dd) do_ipv6(p + e.header_len, len - e.header_len);
        if (e.ethertype == 0x0806) {
          ArpPacket a;
          (void)parse_arp(p + e.header_len, len - e.header_len, a);
        }
        check(swap_ethernet_addresses(p, len), "swap_ethernet_addresses refused a parsed frame");
      }
      break;
    }
    case 1:
      do_ipv4(p, len);
      break;
    case 2:
      do_ipv6(p, len);
      break;
    case 3: {
      ArpPacket a;
      (void)parse_arp(p, len, a);
      break;
    }
    case 4: {
      NeighborSolicitation ns;
      if (parse_neighbor_solicitation(p, len, ns)) {
        check(!ns.source_mac || ns.source_mac->is_unicast(), "NS: non-unicast source MAC");
      }
      break;
    }
    case 5: {
      NeighborAdvertisement na;
      if (parse_neighbor_advertisement(p, len, na)) {
        check(!na.target_mac || na.target_mac->is_unicast(), "NA: non-unicast target MAC");
      }
      break;
    }
    case 6: {
      const EchoStatus s = icmpv4_echo_to_reply(p, len);
      if (s != EchoStatus::kReplied) {
        check(unchanged(), "icmpv4_echo_to_reply changed a packet it did not answer");
        break;
      }
      Ipv4Header h;
      check(parse_ipv4(p, len, h) == Ipv4Status::kOk, "echo reply v4: bad IPv4 header");
      check(h.protocol == kProtoIcmp && h.payload_len() >= kIcmpHeaderLen,
            "echo reply v4: not ICMP");
      check(p[h.header_len] == 0 && p[h.header_len + 1] == 0, "echo reply v4: not an echo reply");
      check(icmpv4_checksum_ok(p, h), "echo reply v4: bad ICMP checksum");
      break;
    }
    case 7: {
      const EchoStatus s = icmpv6_echo_to_reply(p, len);
      if (s != EchoStatus::kReplied) {
        check(unchanged(), "icmpv6_echo_to_reply changed a packet it did not answer");
        break;
      }
      Ipv6Header h;
      check(parse_ipv6(p, len, h) == Ipv6Status::kOk, "echo reply v6: bad IPv6 header");
      check(h.protocol == kProtoIcmpv6 && h.l4_offset == kIpv6HeaderLen &&
                h.l4_len() >= kIcmpHeaderLen,
            "echo reply v6: not ICMPv6");
      check(p[kIpv6HeaderLen] == kIcmpv6EchoReply && p[kIpv6HeaderLen + 1] == 0,
            "echo reply v6: not an echo reply");
      check(l4_checksum_ok_v6(p, h, kProtoIcmpv6), "echo reply v6: bad ICMPv6 checksum");
      break;
    }
    case 8:
    case 9: {
      const bool v6 = selector == 9;
      // MSS limits around the usual tunnel values, and a few extremes.
      static constexpr std::uint16_t kMss[16] = {1380, 1360, 1340, 1240, 1220, 536, 0,      1,
                                                 1460, 8960, 65535, 1400, 1300, 1200, 576, 88};
      const std::uint16_t max_mss = kMss[param];
      const Tcp tcp_before = v6 ? tcp_v6(p, len) : tcp_v4(p, len);
      const MssClampStatus s = v6 ? clamp_tcp_mss_ipv6(p, len, max_mss)
                                  : clamp_tcp_mss_ipv4(p, len, max_mss);
      if (s != MssClampStatus::kClamped) {
        check(unchanged(), "MSS clamp changed a segment it did not clamp");
        break;
      }
      check(tcp_before != Tcp::kNone, "MSS clamp: clamped something that is not a whole TCP segment");
      const Tcp tcp_after = v6 ? tcp_v6(p, len) : tcp_v4(p, len);
      check(tcp_after != Tcp::kNone, "MSS clamp: the IP packet no longer parses");
      if (tcp_before == Tcp::kGood) check(tcp_after == Tcp::kGood, "MSS clamp broke the TCP checksum");
      break;
    }
    case 10: {
      Ipv4Header h;
      if (parse_ipv4(p, len, h) != Ipv4Status::kOk) break;  // the contract: a parsed header
      if (!ipv4_decrement_ttl(p, len)) {
        check(unchanged(), "ipv4_decrement_ttl changed a header it refused");
        check(h.ttl <= 1, "ipv4_decrement_ttl refused a TTL above 1");
        break;
      }
      Ipv4Header after;
      check(parse_ipv4(p, len, after) == Ipv4Status::kOk, "TTL decrement broke the IPv4 header");
      check(after.ttl + 1 == h.ttl, "TTL decrement: TTL not lowered by one");
      for (std::size_t i = 0; i < len; ++i) {
        if (i == kIpv4TtlOffset || i == kIpv4ChecksumOffset || i == kIpv4ChecksumOffset + 1) continue;
        check(p[i] == before[i], "TTL decrement changed another byte");
      }
      break;
    }
    case 11: {
      Ipv6Header h;
      if (parse_ipv6(p, len, h) != Ipv6Status::kOk) break;
      if (!ipv6_decrement_hop_limit(p, len)) {
        check(unchanged(), "ipv6_decrement_hop_limit changed a header it refused");
        check(h.hop_limit <= 1, "ipv6_decrement_hop_limit refused a hop limit above 1");
        break;
      }
      check(p[kIpv6HopLimitOffset] + 1 == h.hop_limit, "hop limit not lowered by one");
      break;
    }
    case 12:
    case 13: {
      // Output into a 1500-byte buffer or, for odd params, a tight one.
      static constexpr std::size_t kCaps[4] = {1500, 1500, 28, 68};
      const std::size_t cap = kCaps[(param >> 1) & 3];
      std::unique_ptr<std::uint8_t[]> out(new std::uint8_t[cap]);
      std::size_t n = 0;
      if (selector == 12) {
        n = (param & 1) ? build_icmpv4_time_exceeded(out.get(), cap, p, len, kOurV4)
                        : build_icmpv4_frag_needed(out.get(), cap, p, len, kOurV4,
                                                   static_cast<std::uint16_t>(576 + param * 64));
        check(n <= cap, "ICMPv4 error builder: length above cap");
        check_icmpv4_error(out.get(), n);
      } else {
        n = (param & 1) ? build_icmpv6_time_exceeded(out.get(), cap, p, len, kOurV6)
                        : build_icmpv6_packet_too_big(out.get(), cap, p, len, kOurV6,
                                                      1280u + param * 20u);
        check(n <= cap, "ICMPv6 error builder: length above cap");
        check_icmpv6_error(out.get(), n);
      }
      check(unchanged(), "an error builder changed the offending packet");
      break;
    }
    case 14: {
      const MssClampStatus s = clamp_tcp_mss(p, len, static_cast<std::uint16_t>(536 + param * 64));
      if (s != MssClampStatus::kClamped) check(unchanged(), "clamp_tcp_mss changed a segment it did not clamp");
      break;
    }
    case 15: {
      UdpHeader u;
      if (parse_udp(p, len, u) == UdpStatus::kOk) {
        check(u.length >= kUdpHeaderLen && u.length <= len, "parse_udp: length out of range");
      }
      break;
    }
  }
  return 0;
}
