// STUN binding requests and replies (flow in stun.h).
#include "stun/stun.h"

#include <cstring>

namespace moongate::stun {
namespace {

std::uint16_t be16(const std::uint8_t* p) noexcept {
  return static_cast<std::uint16_t>(p[0] << 8 | p[1]);
}
std::uint32_t be32(const std::uint8_t* p) noexcept {
  return std::uint32_t{p[0]} << 24 | std::uint32_t{p[1]} << 16 | std::uint32_t{p[2]} << 8 | p[3];
}
void put16(std::uint8_t* p, std::uint16_t v) noexcept {
  p[0] = static_cast<std::uint8_t>(v >> 8);
  p[1] = static_cast<std::uint8_t>(v);
}
void put32(std::uint8_t* p, std::uint32_t v) noexcept {
  p[0] = static_cast<std::uint8_t>(v >> 24);
  p[1] = static_cast<std::uint8_t>(v >> 16);
  p[2] = static_cast<std::uint8_t>(v >> 8);
  p[3] = static_cast<std::uint8_t>(v);
}

constexpr std::array<std::uint32_t, 256> make_crc_table() {
  std::array<std::uint32_t, 256> t{};
  for (std::uint32_t i = 0; i < 256; ++i) {
    std::uint32_t c = i;
    for (int k = 0; k < 8; ++k) c = c & 1 ? 0xEDB88320u ^ (c >> 1) : c >> 1;
    t[i] = c;
  }
  return t;
}
constexpr auto kCrcTable = make_crc_table();

constexpr std::uint8_t kV4Mapped[12] = {0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff};
constexpr char kTailnode[] = "tailnode";
constexpr char kSoftware[] = "moongate";

// Appends an address attribute; XOR'd with the cookie and transaction id
// when `xored` (XOR-MAPPED-ADDRESS), plain otherwise (MAPPED-ADDRESS).
std::size_t put_address(std::uint8_t* out, std::uint16_t type, const Address& a, bool xored,
                        const std::uint8_t* id16) noexcept {
  const bool v4 = a.is_v4();
  const std::uint16_t len = v4 ? 8 : 20;
  put16(out, type);
  put16(out + 2, len);
  out[4] = 0;
  out[5] = v4 ? 1 : 2;
  std::uint16_t port = a.port;
  if (xored) port ^= static_cast<std::uint16_t>(kMagicCookie >> 16);
  put16(out + 6, port);
  const std::uint8_t* ip = v4 ? a.ip.data() + 12 : a.ip.data();
  const std::size_t ip_len = v4 ? 4 : 16;
  for (std::size_t i = 0; i < ip_len; ++i) out[8 + i] = xored ? ip[i] ^ id16[i] : ip[i];
  return 4 + len;
}

}  // namespace

const char* drop_name(Drop d) noexcept {
  switch (d) {
    case Drop::kNone: return "none";
    case Drop::kTooShort: return "too_short";
    case Drop::kNotRequest: return "not_binding_request";
    case Drop::kBadLength: return "bad_length";
    case Drop::kBadAttribute: return "bad_attribute";
    case Drop::kBadFingerprint: return "bad_fingerprint";
  }
  return "?";
}

bool Address::is_v4() const noexcept { return std::memcmp(ip.data(), kV4Mapped, 12) == 0; }

std::uint32_t crc32(std::span<const std::uint8_t> data) noexcept {
  std::uint32_t c = 0xFFFFFFFFu;
  for (std::uint8_t b : data) c = kCrcTable[(c ^ b) & 0xFF] ^ (c >> 8);
  return c ^ 0xFFFFFFFFu;
}

Drop parse(std::span<const std::uint8_t> d, Request& out) noexcept {
  if (d.size() < kHeaderLen) return Drop::kTooShort;
  // The two top bits of every STUN message are zero; the type must be a request.
  if (be16(d.data()) != kBindingRequest) return Drop::kNotRequest;
  const std::size_t len = be16(d.data() + 2);
  if (len != d.size() - kHeaderLen || len % 4 != 0) return Drop::kBadLength;
  const bool cookie = be32(d.data() + 4) == kMagicCookie;
  std::memcpy(out.id.data(), d.data() + 4, 16);

  bool software_tailnode = false;
  bool fingerprint_last = false;
  std::size_t off = kHeaderLen;
  while (off < d.size()) {
    if (d.size() - off < 4) return Drop::kBadAttribute;
    const std::uint16_t type = be16(d.data() + off);
    const std::size_t alen = be16(d.data() + off + 2);
    const std::size_t padded = (alen + 3) & ~std::size_t{3};
    if (padded > d.size() - off - 4) return Drop::kBadAttribute;
    const std::uint8_t* val = d.data() + off + 4;
    fingerprint_last = false;
    if (type == kAttrFingerprint) {
      if (!cookie || alen != 4) return Drop::kBadAttribute;
      // FINGERPRINT covers the message up to itself, with the length field
      // already counting it (it is the last attribute when valid).
      if (off + 8 != d.size()) return Drop::kBadFingerprint;
      const std::uint32_t want = crc32(d.subspan(0, off)) ^ kFingerprintXor;
      if (be32(val) != want) return Drop::kBadFingerprint;
      fingerprint_last = true;
    } else if (type == kAttrSoftware) {
      software_tailnode = alen == sizeof kTailnode - 1 && std::memcmp(val, kTailnode, alen) == 0;
    }
    off += 4 + padded;
  }
  if (!cookie) {
    out.kind = Kind::kClassic;
  } else if (software_tailnode && fingerprint_last) {
    out.kind = Kind::kTailscale;
  } else {
    out.kind = Kind::kRfc5389;
  }
  return Drop::kNone;
}

std::size_t respond(const Request& req, const Address& source, std::uint8_t* out) noexcept {
  put16(out, kBindingSuccess);
  std::memcpy(out + 4, req.id.data(), 16);
  std::size_t n = kHeaderLen;
  switch (req.kind) {
    case Kind::kTailscale:
      n += put_address(out + n, kAttrXorMappedAddress, source, true, req.id.data());
      break;
    case Kind::kRfc5389: {
      n += put_address(out + n, kAttrXorMappedAddress, source, true, req.id.data());
      n += put_address(out + n, kAttrMappedAddress, source, false, nullptr);
      put16(out + n, kAttrSoftware);
      put16(out + n + 2, sizeof kSoftware - 1);
      std::memcpy(out + n + 4, kSoftware, sizeof kSoftware - 1);
      n += 4 + sizeof kSoftware - 1;  // 8 bytes: no padding
      put16(out + 2, static_cast<std::uint16_t>(n + 8 - kHeaderLen));
      put16(out + n, kAttrFingerprint);
      put16(out + n + 2, 4);
      put32(out + n + 4, crc32({out, n}) ^ kFingerprintXor);
      return n + 8;
    }
    case Kind::kClassic:
      n += put_address(out + n, kAttrMappedAddress, source, false, nullptr);
      break;
  }
  put16(out + 2, static_cast<std::uint16_t>(n - kHeaderLen));
  return n;
}

std::size_t tailscale_request(const std::array<std::uint8_t, 12>& tx, std::uint8_t* out) noexcept {
  put16(out, kBindingRequest);
  put32(out + 4, kMagicCookie);
  std::memcpy(out + 8, tx.data(), 12);
  std::size_t n = kHeaderLen;
  put16(out + n, kAttrSoftware);
  put16(out + n + 2, sizeof kTailnode - 1);
  std::memcpy(out + n + 4, kTailnode, sizeof kTailnode - 1);
  n += 4 + 8;
  put16(out + 2, static_cast<std::uint16_t>(n + 8 - kHeaderLen));
  put16(out + n, kAttrFingerprint);
  put16(out + n + 2, 4);
  put32(out + n + 4, crc32({out, n}) ^ kFingerprintXor);
  return n + 8;
}

bool parse_response(std::span<const std::uint8_t> d, const std::array<std::uint8_t, 12>& tx,
                    Address& mapped) noexcept {
  if (d.size() < kHeaderLen || be16(d.data()) != kBindingSuccess) return false;
  if (be16(d.data() + 2) != d.size() - kHeaderLen) return false;
  if (be32(d.data() + 4) != kMagicCookie || std::memcmp(d.data() + 8, tx.data(), 12) != 0)
    return false;
  std::size_t off = kHeaderLen;
  bool found = false;
  while (off + 4 <= d.size()) {
    const std::uint16_t type = be16(d.data() + off);
    const std::size_t alen = be16(d.data() + off + 2);
    if (off + 4 + alen > d.size()) return false;
    const std::uint8_t* v = d.data() + off + 4;
    if ((type == kAttrXorMappedAddress || (type == kAttrMappedAddress && !found)) && alen >= 8) {
      const bool x = type == kAttrXorMappedAddress;
      const std::uint8_t fam = v[1];
      mapped = Address{};
      mapped.port = be16(v + 2);
      if (x) mapped.port ^= static_cast<std::uint16_t>(kMagicCookie >> 16);
      if (fam == 1) {
        std::memcpy(mapped.ip.data(), kV4Mapped, 12);
        for (int i = 0; i < 4; ++i) mapped.ip[12 + i] = x ? v[4 + i] ^ d[4 + i] : v[4 + i];
      } else if (fam == 2 && alen >= 20) {
        for (int i = 0; i < 16; ++i) mapped.ip[i] = x ? v[4 + i] ^ d[4 + i] : v[4 + i];
      } else {
        return false;
      }
      found = true;
      if (x) return true;
    }
    off += 4 + ((alen + 3) & ~std::size_t{3});
  }
  return found;
}

}  // namespace moongate::stun
