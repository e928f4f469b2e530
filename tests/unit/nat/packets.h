// Test packets for the NAT core, built and checked with a checksum written
// here from RFC 1071's definition (a plain loop over 16-bit words), not
// with dataplane/net's: the translation's incremental updates are verified
// by an independent full computation.
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>
#include <vector>

namespace moongate::nat::test {

using Bytes = std::vector<std::uint8_t>;

inline constexpr std::uint8_t kFin = 0x01;
inline constexpr std::uint8_t kSyn = 0x02;
inline constexpr std::uint8_t kRst = 0x04;
inline constexpr std::uint8_t kAck = 0x10;

inline std::uint32_t addr(std::uint8_t a, std::uint8_t b, std::uint8_t c, std::uint8_t d) {
  return (std::uint32_t{a} << 24) | (std::uint32_t{b} << 16) | (std::uint32_t{c} << 8) | d;
}

inline std::uint16_t be16(const std::uint8_t* p) {
  return static_cast<std::uint16_t>((p[0] << 8) | p[1]);
}
inline std::uint32_t be32(const std::uint8_t* p) {
  return (std::uint32_t{p[0]} << 24) | (std::uint32_t{p[1]} << 16) | (std::uint32_t{p[2]} << 8) | p[3];
}
inline void put16(std::uint8_t* p, std::uint32_t v) {
  p[0] = static_cast<std::uint8_t>(v >> 8);
  p[1] = static_cast<std::uint8_t>(v);
}
inline void put32(std::uint8_t* p, std::uint32_t v) {
  put16(p, v >> 16);
  put16(p + 2, v & 0xffff);
}

// RFC 1071, the slow way: sum of 16-bit words, carries folded, complemented.
inline std::uint16_t ref_checksum(const std::uint8_t* p, std::size_t n, std::uint64_t sum = 0) {
  for (std::size_t i = 0; i + 1 < n; i += 2) sum += be16(p + i);
  if (n % 2) sum += std::uint64_t{p[n - 1]} << 8;
  while (sum >> 16) sum = (sum & 0xffff) + (sum >> 16);
  return static_cast<std::uint16_t>(~sum);
}
inline std::uint64_t ref_pseudo(std::uint32_t src, std::uint32_t dst, std::uint8_t proto,
                                std::size_t len) {
  return std::uint64_t{src >> 16} + (src & 0xffff) + (dst >> 16) + (dst & 0xffff) + proto + len;
}

struct Ip {
  std::uint32_t src = 0, dst = 0;
  std::uint8_t ttl = 64;
  std::uint16_t frag = 0x4000;  // flags+offset field: DF
};

// An IPv4 header + `l4` (whose checksum the caller fills or lets fill).
inline Bytes ipv4(const Ip& ip, std::uint8_t proto, const Bytes& l4) {
  Bytes p(20 + l4.size());
  p[0] = 0x45;
  put16(&p[2], static_cast<std::uint32_t>(p.size()));
  put16(&p[4], 0x1234);
  put16(&p[6], ip.frag);
  p[8] = ip.ttl;
  p[9] = proto;
  put32(&p[12], ip.src);
  put32(&p[16], ip.dst);
  put16(&p[10], ref_checksum(p.data(), 20));
  std::copy(l4.begin(), l4.end(), p.begin() + 20);
  return p;
}

inline Bytes udp(const Ip& ip, std::uint16_t sport, std::uint16_t dport, std::size_t payload = 12) {
  Bytes u(8 + payload);
  put16(&u[0], sport);
  put16(&u[2], dport);
  put16(&u[4], static_cast<std::uint32_t>(u.size()));
  for (std::size_t i = 0; i < payload; ++i) u[8 + i] = static_cast<std::uint8_t>(i * 7 + 1);
  std::uint16_t c = ref_checksum(u.data(), u.size(), ref_pseudo(ip.src, ip.dst, 17, u.size()));
  put16(&u[6], c == 0 ? 0xffff : c);
  return ipv4(ip, 17, u);
}

inline Bytes tcp(const Ip& ip, std::uint16_t sport, std::uint16_t dport, std::uint8_t flags,
                 std::size_t payload = 0) {
  Bytes t(20 + payload);
  put16(&t[0], sport);
  put16(&t[2], dport);
  put32(&t[4], 1000);
  put32(&t[8], 2000);
  t[12] = 0x50;
  t[13] = flags;
  put16(&t[14], 65535);
  for (std::size_t i = 0; i < payload; ++i) t[20 + i] = static_cast<std::uint8_t>(i);
  put16(&t[16], ref_checksum(t.data(), t.size(), ref_pseudo(ip.src, ip.dst, 6, t.size())));
  return ipv4(ip, 6, t);
}

inline Bytes icmp_echo(const Ip& ip, std::uint8_t type, std::uint16_t id, std::uint16_t seq = 1) {
  Bytes e(8 + 16);
  e[0] = type;
  put16(&e[4], id);
  put16(&e[6], seq);
  for (std::size_t i = 8; i < e.size(); ++i) e[i] = static_cast<std::uint8_t>(i);
  put16(&e[2], ref_checksum(e.data(), e.size()));
  return ipv4(ip, 1, e);
}

// An ICMP error (type, code) from `ip` quoting the first `quote_len` bytes
// of `offending` (all of it when 0).
inline Bytes icmp_error(const Ip& ip, std::uint8_t type, std::uint8_t code, const Bytes& offending,
                        std::size_t quote_len = 0, std::uint16_t mtu = 0) {
  const std::size_t q = quote_len == 0 || quote_len > offending.size() ? offending.size() : quote_len;
  Bytes e(8);
  e[0] = type;
  e[1] = code;
  put16(&e[6], mtu);
  // A loop, not std::copy: GCC 12 -O3 sees a bogus huge bound in the
  // latter (-Wstringop-overflow).
  for (std::size_t i = 0; i < q; ++i) e.push_back(offending[i]);
  put16(&e[2], ref_checksum(e.data(), e.size()));
  return ipv4(ip, 1, e);
}

// Every checksum of a packet verified from scratch: the IPv4 header; the
// L4 checksum (TCP, UDP unless 0, ICMP over the whole message); and for an
// ICMP error the quoted IPv4 header and, when the quote holds the whole
// quoted datagram, its L4 checksum. Returns "" or what is wrong.
inline std::string verify_checksums(const Bytes& p) {
  if (ref_checksum(p.data(), 20) != 0) return "ip header";
  const std::uint32_t src = be32(&p[12]), dst = be32(&p[16]);
  const std::uint8_t* l4 = p.data() + 20;
  const std::size_t n = p.size() - 20;
  switch (p[9]) {
    case 6:
      if (ref_checksum(l4, n, ref_pseudo(src, dst, 6, n)) != 0) return "tcp";
      break;
    case 17:
      if (be16(l4 + 6) != 0 && ref_checksum(l4, n, ref_pseudo(src, dst, 17, n)) != 0) return "udp";
      break;
    case 1: {
      if (ref_checksum(l4, n) != 0) return "icmp";
      if (l4[0] == 3 || l4[0] == 11) {
        const Bytes quoted(p.begin() + 28, p.end());
        if (ref_checksum(quoted.data(), 20) != 0) return "quoted ip header";
        if (be16(&quoted[2]) == quoted.size()) {
          const std::string inner = verify_checksums(quoted);
          if (!inner.empty()) return "quoted " + inner;
        }
      }
      break;
    }
    default:
      break;
  }
  return "";
}

}  // namespace moongate::nat::test
