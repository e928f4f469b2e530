// A peer's outer UDP address as plain bytes: the core does no socket I/O,
// the caller fills this from recvfrom() or from an mbuf's IP/UDP headers.
#pragma once

#include <cstdint>
#include <cstring>
#include <string>

namespace moongate::wg {

struct Endpoint {
  std::uint8_t family = 0;     // 0 = none, 4 or 6
  std::uint16_t port = 0;      // host byte order
  std::uint8_t addr[16] = {};  // network byte order; IPv4 uses the first 4

  static Endpoint v4(const std::uint8_t a[4], std::uint16_t p) noexcept {
    Endpoint e;
    e.family = 4;
    e.port = p;
    std::memcpy(e.addr, a, 4);
    return e;
  }
  static Endpoint v6(const std::uint8_t a[16], std::uint16_t p) noexcept {
    Endpoint e;
    e.family = 6;
    e.port = p;
    std::memcpy(e.addr, a, 16);
    return e;
  }
  bool valid() const noexcept { return family == 4 || family == 6; }
  std::size_t addr_len() const noexcept { return family == 6 ? 16 : family == 4 ? 4 : 0; }

  // Address bytes then big-endian port: what a cookie is bound to.
  std::size_t cookie_input(std::uint8_t out[18]) const noexcept {
    std::size_t n = addr_len();
    std::memcpy(out, addr, n);
    out[n] = static_cast<std::uint8_t>(port >> 8);
    out[n + 1] = static_cast<std::uint8_t>(port & 0xff);
    return n + 2;
  }

  // Fixed-size compares: memcmp with addr_len()'s variable length was a
  // library call, and every received data message's roaming check makes
  // one (docs/perf.md).
  friend bool operator==(const Endpoint& a, const Endpoint& b) noexcept {
    if (a.family != b.family || a.port != b.port) return false;
    if (a.family == 4) return std::memcmp(a.addr, b.addr, 4) == 0;
    if (a.family == 6) return std::memcmp(a.addr, b.addr, 16) == 0;
    return true;  // no address to compare
  }

  std::string to_string() const;  // "1.2.3.4:51820" / "[::1]:51820" (messages.cc)
};

}  // namespace moongate::wg
