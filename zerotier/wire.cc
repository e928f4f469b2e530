// Endpoint text and wire forms (see wire.h).
#include "zerotier/wire.h"

#include <arpa/inet.h>

#include <cstdio>

namespace moongate::zerotier {

std::string address_hex(Address a) {
  char buf[16];
  std::snprintf(buf, sizeof buf, "%010llx", static_cast<unsigned long long>(a & 0xFFFFFFFFFFull));
  return buf;
}

Endpoint Endpoint::v4(std::uint32_t host_order_ip, std::uint16_t p) noexcept {
  Endpoint e;
  e.family = 4;
  store_be32(e.ip.data(), host_order_ip);
  e.port = p;
  return e;
}

std::string Endpoint::to_string() const {
  char buf[INET6_ADDRSTRLEN + 8] = "none";
  if (family == 4 || family == 6) {
    inet_ntop(family == 4 ? AF_INET : AF_INET6, ip.data(), buf, sizeof buf);
    const std::size_t n = std::strlen(buf);
    std::snprintf(buf + n, sizeof buf - n, "/%u", port);
  }
  return buf;
}

bool Endpoint::parse(const std::string& text, bool allow_port_zero) noexcept {
  const auto slash = text.rfind('/');
  if (slash == std::string::npos || slash + 1 >= text.size() || text.size() - slash > 6) return false;
  unsigned long p = 0;
  for (std::size_t i = slash + 1; i < text.size(); ++i) {
    if (text[i] < '0' || text[i] > '9') return false;
    p = p * 10 + static_cast<unsigned long>(text[i] - '0');
  }
  if ((p == 0 && !allow_port_zero) || p > 65535) return false;
  const std::string host = text.substr(0, slash);
  Endpoint e;
  if (inet_pton(AF_INET, host.c_str(), e.ip.data()) == 1) {
    e.family = 4;
  } else if (inet_pton(AF_INET6, host.c_str(), e.ip.data()) == 1) {
    e.family = 6;
  } else {
    return false;
  }
  e.port = static_cast<std::uint16_t>(p);
  *this = e;
  return true;
}

std::uint64_t Endpoint::hash() const noexcept {
  // FNV-1a over the meaningful bytes: only used to spread rate-limit buckets.
  std::uint64_t h = 1469598103934665603ull ^ family;
  for (std::size_t i = 0; i < ip_length(); ++i) h = (h ^ ip[i]) * 1099511628211ull;
  return h;
}

Endpoint Reader::endpoint() noexcept {
  Endpoint e;
  const std::uint8_t t = u8();
  if (t == 4 || t == 6) {
    e.family = t;
    const std::size_t n = t == 4 ? 4 : 16;
    if (const auto* q = take(n)) std::memcpy(e.ip.data(), q, n);
    e.port = u16();
  } else if (t != 0) {
    take(remaining() + 1);  // an unknown type cannot be skipped: poison the reader
  }
  return e;
}

void Writer::endpoint(const Endpoint& e) noexcept {
  u8(e.family == 4 || e.family == 6 ? e.family : 0);
  if (e.family == 4 || e.family == 6) {
    bytes(e.ip.data(), e.ip_length());
    u16(e.port);
  }
}

}  // namespace moongate::zerotier
