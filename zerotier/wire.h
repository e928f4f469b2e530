// Byte-level building blocks shared by every ZeroTier message: 40-bit
// addresses, the physical endpoint ("InetAddress") encoding, big-endian
// integers, and a bounds-checked reader/writer over caller-owned buffers.
// Nothing here allocates or throws: a reader that runs past its end just
// turns ok() false, and the caller drops the message as malformed.
#pragma once

#include <array>
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <span>
#include <string>

namespace moongate::zerotier {

// A node address: 40 bits, carried in the low bits of a uint64_t.
using Address = std::uint64_t;
inline constexpr std::size_t kAddressLength = 5;

// Addresses 0 and 0xff........ are reserved (0xff marks fragments on the wire).
constexpr bool address_reserved(Address a) noexcept { return a == 0 || (a >> 32) == 0xFF; }

inline Address load_address(const std::uint8_t* p) noexcept {
  Address a = 0;
  for (std::size_t i = 0; i < kAddressLength; ++i) a = a << 8 | p[i];
  return a;
}
inline void store_address(std::uint8_t* p, Address a) noexcept {
  for (std::size_t i = 0; i < kAddressLength; ++i) p[i] = static_cast<std::uint8_t>(a >> (8 * (4 - i)));
}
std::string address_hex(Address a);

inline std::uint16_t load_be16(const std::uint8_t* p) noexcept {
  return static_cast<std::uint16_t>(p[0] << 8 | p[1]);
}
inline std::uint32_t load_be32(const std::uint8_t* p) noexcept {
  return std::uint32_t{p[0]} << 24 | std::uint32_t{p[1]} << 16 | std::uint32_t{p[2]} << 8 | p[3];
}
inline std::uint64_t load_be64(const std::uint8_t* p) noexcept {
  return std::uint64_t{load_be32(p)} << 32 | load_be32(p + 4);
}
inline void store_be16(std::uint8_t* p, std::uint16_t v) noexcept {
  p[0] = static_cast<std::uint8_t>(v >> 8);
  p[1] = static_cast<std::uint8_t>(v);
}
inline void store_be32(std::uint8_t* p, std::uint32_t v) noexcept {
  for (int i = 0; i < 4; ++i) p[i] = static_cast<std::uint8_t>(v >> (24 - 8 * i));
}
inline void store_be64(std::uint8_t* p, std::uint64_t v) noexcept {
  for (int i = 0; i < 8; ++i) p[i] = static_cast<std::uint8_t>(v >> (56 - 8 * i));
}

// A physical (UDP) endpoint. family 0 means "none".
struct Endpoint {
  std::uint8_t family = 0;  // 0, 4 or 6
  std::array<std::uint8_t, 16> ip{};
  std::uint16_t port = 0;

  static Endpoint v4(std::uint32_t host_order_ip, std::uint16_t port) noexcept;
  bool operator==(const Endpoint&) const noexcept = default;
  std::size_t ip_length() const noexcept { return family == 4 ? 4 : family == 6 ? 16 : 0; }
  std::string to_string() const;  // "1.2.3.4/9993" (ZeroTier's own notation)
  // Parses "IP/PORT" (IPv4 or IPv6); false on anything else. Port 0 only
  // with allow_port_zero (a socket to bind on an ephemeral port).
  bool parse(const std::string& text, bool allow_port_zero = false) noexcept;
  std::uint64_t hash() const noexcept;
};

// Bounds-checked cursor over received bytes.
class Reader {
 public:
  Reader(const std::uint8_t* p, std::size_t n) noexcept : p_(p), n_(n) {}
  bool ok() const noexcept { return ok_; }
  std::size_t pos() const noexcept { return pos_; }
  std::size_t remaining() const noexcept { return ok_ ? n_ - pos_ : 0; }
  const std::uint8_t* take(std::size_t k) noexcept {
    if (!ok_ || n_ - pos_ < k) {
      ok_ = false;
      return nullptr;
    }
    const std::uint8_t* r = p_ + pos_;
    pos_ += k;
    return r;
  }
  std::uint8_t u8() noexcept {
    const auto* q = take(1);
    return q ? q[0] : 0;
  }
  std::uint16_t u16() noexcept {
    const auto* q = take(2);
    return q ? load_be16(q) : 0;
  }
  std::uint32_t u32() noexcept {
    const auto* q = take(4);
    return q ? load_be32(q) : 0;
  }
  std::uint64_t u64() noexcept {
    const auto* q = take(8);
    return q ? load_be64(q) : 0;
  }
  Address address() noexcept {
    const auto* q = take(kAddressLength);
    return q ? load_address(q) : 0;
  }
  // The InetAddress form: 0x00 (none) | 0x04 ip4 port | 0x06 ip6 port.
  Endpoint endpoint() noexcept;

 private:
  const std::uint8_t* p_;
  std::size_t n_;
  std::size_t pos_ = 0;
  bool ok_ = true;
};

// Bounds-checked appender into a caller-owned buffer.
class Writer {
 public:
  Writer(std::uint8_t* p, std::size_t cap) noexcept : p_(p), cap_(cap) {}
  bool ok() const noexcept { return ok_; }
  std::size_t size() const noexcept { return n_; }
  std::uint8_t* data() noexcept { return p_; }
  std::uint8_t* grow(std::size_t k) noexcept {
    if (!ok_ || cap_ - n_ < k) {
      ok_ = false;
      return nullptr;
    }
    std::uint8_t* r = p_ + n_;
    n_ += k;
    return r;
  }
  void bytes(const void* src, std::size_t k) noexcept {
    if (auto* q = grow(k)) std::memcpy(q, src, k);
  }
  void u8(std::uint8_t v) noexcept { bytes(&v, 1); }
  void u16(std::uint16_t v) noexcept {
    if (auto* q = grow(2)) store_be16(q, v);
  }
  void u32(std::uint32_t v) noexcept {
    if (auto* q = grow(4)) store_be32(q, v);
  }
  void u64(std::uint64_t v) noexcept {
    if (auto* q = grow(8)) store_be64(q, v);
  }
  void address(Address a) noexcept {
    if (auto* q = grow(kAddressLength)) store_address(q, a);
  }
  void endpoint(const Endpoint& e) noexcept;

 private:
  std::uint8_t* p_;
  std::size_t cap_;
  std::size_t n_ = 0;
  bool ok_ = true;
};

}  // namespace moongate::zerotier
