// Helpers shared by the dataplane/net tests: hex vectors, a naive reference
// checksum, exact-size buffers for over-read detection, and builders for
// the TCP/UDP test packets the library itself does not build.
#pragma once

#include <gtest/gtest.h>

#include <cstddef>
#include <cstdint>
#include <cstring>
#include <memory>
#include <random>
#include <string_view>
#include <vector>

#include "dataplane/net/address.h"
#include "dataplane/net/bytes.h"
#include "dataplane/net/checksum.h"
#include "dataplane/net/ip_protocol.h"
#include "dataplane/net/ipv4.h"
#include "dataplane/net/ipv6.h"

namespace moongate::net::test {

using Bytes = std::vector<std::uint8_t>;

// "45 00 00:73 ..." -> bytes; whitespace and ':' are ignored.
inline Bytes hex(std::string_view s) {
  auto nibble = [](char c) -> int {
    if (c >= '0' && c <= '9') return c - '0';
    if (c >= 'a' && c <= 'f') return c - 'a' + 10;
    if (c >= 'A' && c <= 'F') return c - 'A' + 10;
    return -1;
  };
  Bytes out;
  int hi = -1;
  for (char c : s) {
    const int v = nibble(c);
    if (v < 0) continue;
    if (hi < 0) {
      hi = v;
    } else {
      out.push_back(static_cast<std::uint8_t>(hi * 16 + v));
      hi = -1;
    }
  }
  EXPECT_EQ(hi, -1) << "odd number of hex digits";
  return out;
}

inline Bytes slice(const Bytes& b, std::size_t from, std::size_t n = SIZE_MAX) {
  const std::size_t end = n == SIZE_MAX ? b.size() : from + n;
  return Bytes(b.begin() + static_cast<std::ptrdiff_t>(from), b.begin() + static_cast<std::ptrdiff_t>(end));
}

// RFC 1071 section 4.1 written the obvious way, as the reference the
// optimised checksum_partial is compared with.
inline std::uint16_t naive_checksum(const std::uint8_t* p, std::size_t len, std::uint32_t sum = 0) {
  for (std::size_t i = 0; i + 1 < len; i += 2) sum += (std::uint32_t{p[i]} << 8) | p[i + 1];
  if (len % 2 != 0) sum += std::uint32_t{p[len - 1]} << 8;
  while (sum >> 16) sum = (sum & 0xffff) + (sum >> 16);
  return static_cast<std::uint16_t>(~sum);
}

// A heap copy of exactly the first n bytes: any read past n is an ASan
// heap-buffer-overflow (a std::vector may have spare capacity).
class Exact {
 public:
  Exact(const std::uint8_t* p, std::size_t n) : buf_(new std::uint8_t[n]), n_(n) {
    if (n != 0) std::memcpy(buf_.get(), p, n);
  }
  Exact(const Bytes& b, std::size_t n) : Exact(b.data(), n) {}
  explicit Exact(const Bytes& b) : Exact(b.data(), b.size()) {}
  std::uint8_t* data() { return buf_.get(); }
  std::size_t size() const { return n_; }
  Bytes bytes() const { return Bytes(buf_.get(), buf_.get() + n_); }

 private:
  std::unique_ptr<std::uint8_t[]> buf_;
  std::size_t n_;
};

inline Ipv4Address v4(std::uint8_t a, std::uint8_t b, std::uint8_t c, std::uint8_t d) {
  return {a, b, c, d};
}
// fd00::<last> or any 16 bytes given as hex.
inline Ipv6Address v6(std::string_view hex16) {
  Bytes b = hex(hex16);
  Ipv6Address a{};
  EXPECT_EQ(b.size(), 16U);
  std::memcpy(a.data(), b.data(), std::min<std::size_t>(16, b.size()));
  return a;
}

inline Bytes random_bytes(std::mt19937& rng, std::size_t n) {
  Bytes b(n);
  for (auto& x : b) x = static_cast<std::uint8_t>(rng());
  return b;
}

// A TCP segment: 20-byte header + `options` (padded with EOL to 4 bytes by
// the caller's choice: options are used as given, data offset = 5 +
// options/4 rounded up, pad bytes 0) + `payload_len` bytes of data.
inline Bytes tcp_segment(std::uint8_t flags, const Bytes& options, std::size_t payload_len,
                         std::mt19937& rng) {
  const std::size_t opt_len = (options.size() + 3) / 4 * 4;
  Bytes seg(20 + opt_len, 0);
  store_be16(seg.data(), static_cast<std::uint16_t>(rng()));
  store_be16(seg.data() + 2, static_cast<std::uint16_t>(rng()));
  store_be32(seg.data() + 4, static_cast<std::uint32_t>(rng()));
  store_be32(seg.data() + 8, (flags & 0x10) ? static_cast<std::uint32_t>(rng()) : 0);
  seg[12] = static_cast<std::uint8_t>((20 + opt_len) / 4 << 4);
  seg[13] = flags;
  store_be16(seg.data() + 14, 64240);
  std::copy(options.begin(), options.end(), seg.begin() + 20);
  Bytes data = random_bytes(rng, payload_len);
  seg.insert(seg.end(), data.begin(), data.end());
  return seg;
}

// IPv4 / IPv6 packet around a TCP or UDP segment, with correct checksums
// (the L4 checksum at `l4_checksum_offset` of the segment is filled in).
inline Bytes ipv4_packet(const Ipv4Address& src, const Ipv4Address& dst, std::uint8_t proto,
                         Bytes l4, std::size_t l4_checksum_offset) {
  store_be16(l4.data() + l4_checksum_offset, 0);
  store_be16(l4.data() + l4_checksum_offset,
             l4_checksum_v4(src, dst, proto, l4.data(), static_cast<std::uint16_t>(l4.size())));
  Bytes pkt(kIpv4HeaderLen);
  Ipv4Params p;
  p.src = src;
  p.dst = dst;
  p.protocol = proto;
  p.payload_len = static_cast<std::uint16_t>(l4.size());
  write_ipv4_header(pkt.data(), pkt.size(), p);
  pkt.insert(pkt.end(), l4.begin(), l4.end());
  return pkt;
}

inline Bytes ipv6_packet(const Ipv6Address& src, const Ipv6Address& dst, std::uint8_t proto,
                         Bytes l4, std::size_t l4_checksum_offset) {
  store_be16(l4.data() + l4_checksum_offset, 0);
  store_be16(l4.data() + l4_checksum_offset,
             l4_checksum_v6(src, dst, proto, l4.data(), static_cast<std::uint32_t>(l4.size())));
  Bytes pkt(kIpv6HeaderLen);
  Ipv6Params p;
  p.src = src;
  p.dst = dst;
  p.next_header = proto;
  p.payload_len = static_cast<std::uint16_t>(l4.size());
  write_ipv6_header(pkt.data(), pkt.size(), p);
  pkt.insert(pkt.end(), l4.begin(), l4.end());
  return pkt;
}

}  // namespace moongate::net::test
