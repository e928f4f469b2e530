// Address, prefix and endpoint parsing and printing (see address.h).
#include "config/address.h"

#include <arpa/inet.h>

#include <algorithm>
#include <cstring>

namespace moongate::config {
namespace {

bool is_digit(char c) { return c >= '0' && c <= '9'; }

// A decimal number with no sign, no leading zero and at most max_digits
// digits; nullopt otherwise. Leading zeros are refused because tools differ
// on whether they mean octal.
std::optional<unsigned> parse_decimal(std::string_view s, std::size_t max_digits) {
  if (s.empty() || s.size() > max_digits) return std::nullopt;
  if (s.size() > 1 && s[0] == '0') return std::nullopt;
  unsigned v = 0;
  for (char c : s) {
    if (!is_digit(c)) return std::nullopt;
    v = v * 10 + static_cast<unsigned>(c - '0');
  }
  return v;
}

// Strict dotted quad: exactly four decimal octets 0..255.
bool parse_v4(std::string_view s, std::uint8_t out[4]) {
  for (int i = 0; i < 4; ++i) {
    const std::size_t dot = i < 3 ? s.find('.') : s.size();
    if (dot == std::string_view::npos) return false;
    const auto v = parse_decimal(s.substr(0, dot), 3);
    if (!v || *v > 255) return false;
    out[i] = static_cast<std::uint8_t>(*v);
    s = i < 3 ? s.substr(dot + 1) : std::string_view{};
  }
  return true;
}

bool is_v4_mapped(const std::uint8_t b[16]) {
  for (int i = 0; i < 10; ++i)
    if (b[i] != 0) return false;
  return b[10] == 0xff && b[11] == 0xff;
}

// Something that could only be a host name: a letter outside hex digits,
// or a dot-separated label that starts with a letter (example.com).
bool looks_like_hostname(std::string_view s) {
  if (s.empty() || s.find(':') != std::string_view::npos) return false;
  bool letter = false;
  for (char c : s) {
    if ((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z')) {
      letter = true;
    } else if (!is_digit(c) && c != '.' && c != '-') {
      return false;
    }
  }
  return letter;
}

void set_error(std::string* error, std::string msg) {
  if (error != nullptr) *error = std::move(msg);
}

// Equal in the first n bits.
bool same_bits(const IpAddress& a, const IpAddress& b, unsigned n) {
  const unsigned whole = n / 8;
  if (std::memcmp(a.bytes, b.bytes, whole) != 0) return false;
  const unsigned rest = n % 8;
  if (rest == 0) return true;
  const auto mask = static_cast<std::uint8_t>(0xff00u >> rest);
  return ((a.bytes[whole] ^ b.bytes[whole]) & mask) == 0;
}

IpAddress mask_address(const IpAddress& a, unsigned len) {
  IpAddress out = a;
  for (unsigned i = 0; i < 16; ++i) {
    const unsigned first_bit = i * 8;
    if (first_bit >= len) {
      out.bytes[i] = 0;
    } else if (len - first_bit < 8) {
      out.bytes[i] &= static_cast<std::uint8_t>(0xff00u >> (len - first_bit));
    }
  }
  return out;
}

// Host part all ones (the IPv4 broadcast address of the subnet).
bool host_all_ones(const IpAddress& a, unsigned len) {
  for (unsigned bit = len; bit < a.bits(); ++bit)
    if ((a.bytes[bit / 8] & (0x80u >> (bit % 8))) == 0) return false;
  return true;
}

std::string quoted(std::string_view s) {
  // Error messages echo the operator's text, cut short if it is long.
  constexpr std::size_t kMax = 60;
  std::string out = "'";
  out.append(s.substr(0, kMax));
  if (s.size() > kMax) out += "...";
  out += "'";
  return out;
}

}  // namespace

bool IpAddress::is_unspecified() const noexcept {
  for (unsigned i = 0; i < bits() / 8; ++i)
    if (bytes[i] != 0) return false;
  return true;
}

bool IpAddress::is_multicast() const noexcept {
  return family == 4 ? (bytes[0] & 0xf0) == 0xe0 : bytes[0] == 0xff;
}

std::string IpAddress::to_string() const {
  if (family == 4) {
    return std::to_string(bytes[0]) + "." + std::to_string(bytes[1]) + "." +
           std::to_string(bytes[2]) + "." + std::to_string(bytes[3]);
  }
  if (family != 6) return "(none)";
  std::uint16_t words[8];
  for (int i = 0; i < 8; ++i)
    words[i] = static_cast<std::uint16_t>(bytes[2 * i] << 8 | bytes[2 * i + 1]);
  // RFC 5952 section 4.2: the longest run of two or more zero words becomes
  // "::"; the first one on a tie.
  int best = -1, best_len = 0;
  for (int i = 0; i < 8;) {
    if (words[i] != 0) {
      ++i;
      continue;
    }
    int j = i;
    while (j < 8 && words[j] == 0) ++j;
    if (j - i > best_len && j - i >= 2) {
      best = i;
      best_len = j - i;
    }
    i = j;
  }
  static constexpr char kHex[] = "0123456789abcdef";
  std::string out;
  for (int i = 0; i < 8; ++i) {
    if (i == best) {
      out += "::";
      i += best_len - 1;
      continue;
    }
    if (!out.empty() && out.back() != ':') out += ':';
    const std::uint16_t w = words[i];
    bool started = false;
    for (int shift = 12; shift >= 0; shift -= 4) {
      const unsigned nib = (w >> shift) & 0xfu;
      if (nib != 0 || started || shift == 0) {
        out += kHex[nib];
        started = true;
      }
    }
  }
  return out;
}

IpPrefix IpPrefix::network() const noexcept { return IpPrefix{mask_address(addr, len), len}; }

bool IpPrefix::contains(const IpAddress& a) const noexcept {
  return a.family == addr.family && same_bits(addr, a, len);
}

bool IpPrefix::overlaps(const IpPrefix& o) const noexcept {
  return o.addr.family == addr.family && same_bits(addr, o.addr, std::min(len, o.len));
}

std::string IpPrefix::to_string() const { return addr.to_string() + "/" + std::to_string(len); }

std::string Endpoint::to_string() const {
  const std::string a = addr.to_string();
  return (addr.is_v6() ? "[" + a + "]" : a) + ":" + std::to_string(port);
}

std::optional<IpAddress> parse_ip_address(std::string_view text, std::string* error) {
  IpAddress a;
  if (text.find(':') == std::string_view::npos) {
    if (parse_v4(text, a.bytes)) {
      a.family = 4;
      return a;
    }
    set_error(error, quoted(text) + " is not an IPv4 or IPv6 address");
    return std::nullopt;
  }
  if (text.find('%') != std::string_view::npos) {
    set_error(error, quoted(text) + ": IPv6 zone indexes (%name) are not supported");
    return std::nullopt;
  }
  // inet_pton needs a terminated string; it accepts exactly RFC 4291 text
  // (embedded IPv4 included), which is what we want to accept.
  const std::string copy(text);
  if (inet_pton(AF_INET6, copy.c_str(), a.bytes) != 1) {
    set_error(error, quoted(text) + " is not an IPv4 or IPv6 address");
    return std::nullopt;
  }
  if (is_v4_mapped(a.bytes)) {
    IpAddress v4;
    v4.family = 4;
    std::memcpy(v4.bytes, a.bytes + 12, 4);
    set_error(error,
              quoted(text) + " is an IPv4-mapped IPv6 address: write it as " + v4.to_string());
    return std::nullopt;
  }
  a.family = 6;
  return a;
}

std::optional<IpPrefix> parse_ip_prefix(std::string_view text, PrefixKind kind,
                                        std::string* error) {
  const std::size_t slash = text.find('/');
  const auto addr = parse_ip_address(text.substr(0, slash), error);
  if (!addr) return std::nullopt;
  IpPrefix p{*addr, static_cast<std::uint8_t>(addr->bits())};
  if (slash == std::string_view::npos) {
    if (kind == PrefixKind::kHostInSubnet) {
      set_error(error, quoted(text) + " needs a prefix length for its subnet, e.g. " +
                           addr->to_string() + (addr->is_v4() ? "/24" : "/64"));
      return std::nullopt;
    }
    return p;  // a host route, as wg(8) reads a bare address
  }
  const std::string_view len_text = text.substr(slash + 1);
  const auto len = parse_decimal(len_text, 3);
  if (!len) {
    set_error(error, quoted(text) + ": prefix length " + quoted(len_text) + " is not a number");
    return std::nullopt;
  }
  if (*len > addr->bits()) {
    set_error(error, quoted(text) + ": prefix length /" + std::to_string(*len) +
                         " is too long for " + (addr->is_v4() ? "IPv4" : "IPv6") + " (at most /" +
                         std::to_string(addr->bits()) + ")");
    return std::nullopt;
  }
  p.len = static_cast<std::uint8_t>(*len);

  if (kind == PrefixKind::kNetwork) {
    const IpPrefix net = p.network();
    if (net != p) {
      set_error(error,
                p.to_string() + " has host bits set (did you mean " + net.to_string() + "?)");
      return std::nullopt;
    }
    return p;
  }

  const std::string s = p.to_string();
  if (addr->is_unspecified()) {
    set_error(error, s + ": the unspecified address is not a host address");
    return std::nullopt;
  }
  if (addr->is_multicast()) {
    set_error(error, s + ": a multicast address is not a host address");
    return std::nullopt;
  }
  // /31 and /32 (RFC 3021), /127 and /128 (RFC 6164) have no network or
  // broadcast address to reserve.
  const bool point_to_point = p.len + 1u >= addr->bits();
  if (!point_to_point && p.network().addr == *addr) {
    set_error(error, s + " is the subnet's network address, not a host address" +
                         (addr->is_v6() ? " (the subnet-router anycast address)" : ""));
    return std::nullopt;
  }
  if (!point_to_point && addr->is_v4() && host_all_ones(*addr, p.len)) {
    set_error(error, s + " is the subnet's broadcast address, not a host address");
    return std::nullopt;
  }
  return p;
}

std::optional<Endpoint> parse_endpoint(std::string_view text, std::string* error) {
  const std::string example = " (write host:port, e.g. 198.51.100.7:51820 or [2001:db8::1]:51820)";
  std::string_view host, port_text;
  bool bracketed = false;
  if (!text.empty() && text[0] == '[') {
    const std::size_t close = text.find(']');
    if (close == std::string_view::npos) {
      set_error(error, quoted(text) + ": missing ']'" + example);
      return std::nullopt;
    }
    host = text.substr(1, close - 1);
    const std::string_view rest = text.substr(close + 1);
    if (rest.empty() || rest[0] != ':') {
      set_error(error, quoted(text) + ": missing port after ']'" + example);
      return std::nullopt;
    }
    port_text = rest.substr(1);
    bracketed = true;
  } else {
    const std::size_t colons = static_cast<std::size_t>(std::count(text.begin(), text.end(), ':'));
    if (colons == 0) {
      if (looks_like_hostname(text)) {
        set_error(error,
                  quoted(text) + ": DNS names are not supported, write an IP address" + example);
      } else {
        set_error(error, quoted(text) + ": missing port" + example);
      }
      return std::nullopt;
    }
    if (colons > 1) {
      // An IPv6 address without brackets: say how to write it.
      if (parse_ip_address(text)) {
        set_error(error, quoted(text) + ": missing port; an IPv6 endpoint is written [" +
                             std::string(text) + "]:51820");
        return std::nullopt;
      }
      const std::size_t last = text.rfind(':');
      if (parse_ip_address(text.substr(0, last))) {
        set_error(error, quoted(text) + ": an IPv6 endpoint needs brackets: [" +
                             std::string(text.substr(0, last)) + "]" +
                             std::string(text.substr(last)));
        return std::nullopt;
      }
      set_error(error, quoted(text) + " is not an endpoint" + example);
      return std::nullopt;
    }
    const std::size_t colon = text.find(':');
    host = text.substr(0, colon);
    port_text = text.substr(colon + 1);
    if (looks_like_hostname(host)) {
      set_error(error,
                quoted(text) + ": DNS names are not supported, write an IP address" + example);
      return std::nullopt;
    }
  }

  std::string addr_error;
  const auto addr = parse_ip_address(host, &addr_error);
  if (!addr) {
    set_error(error, quoted(text) + ": " + addr_error);
    return std::nullopt;
  }
  if (bracketed && addr->is_v4()) {
    set_error(error, quoted(text) + ": brackets are for IPv6 addresses; write " +
                         addr->to_string() + ":" + std::string(port_text));
    return std::nullopt;
  }
  if (addr->is_unspecified() || addr->is_multicast()) {
    set_error(error, quoted(text) + ": " + addr->to_string() + " cannot be a peer's address");
    return std::nullopt;
  }
  const auto port = parse_decimal(port_text, 5);
  if (!port || *port == 0 || *port > 65535) {
    set_error(error, quoted(text) + ": port " + quoted(port_text) + " is not a number 1..65535");
    return std::nullopt;
  }
  return Endpoint{*addr, static_cast<std::uint16_t>(*port)};
}

}  // namespace moongate::config
