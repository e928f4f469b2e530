// IP addresses, prefixes and UDP endpoints as the configuration holds them:
// parsed once into bytes so the data plane never parses text, printed back
// in one canonical form (RFC 5952 for IPv6) so errors and dumps read the
// same whatever spelling the operator used.
//
// IPv4-mapped IPv6 addresses (::ffff:a.b.c.d) are rejected everywhere: an
// IPv4 packet never carries one, and accepting them would give one prefix
// two spellings that duplicate checks could not see as equal.
#pragma once

#include <compare>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

namespace moongate::config {

struct IpAddress {
  std::uint8_t family = 0;      // 4 or 6 (0 only in a default-constructed value)
  std::uint8_t bytes[16] = {};  // network order; IPv4 uses bytes[0..3], the rest stay zero

  bool is_v4() const noexcept { return family == 4; }
  bool is_v6() const noexcept { return family == 6; }
  // 32 or 128: the longest prefix length of this family.
  unsigned bits() const noexcept { return family == 4 ? 32 : 128; }
  bool is_unspecified() const noexcept;  // 0.0.0.0 or ::
  bool is_multicast() const noexcept;    // 224.0.0.0/4 or ff00::/8

  // 192.0.2.1, or RFC 5952 for IPv6: lower case, longest zero run as "::".
  std::string to_string() const;

  friend auto operator<=>(const IpAddress&, const IpAddress&) = default;
};

struct IpPrefix {
  IpAddress addr;
  std::uint8_t len = 0;

  // The prefix with its host bits cleared.
  IpPrefix network() const noexcept;
  bool contains(const IpAddress& a) const noexcept;
  // True when the two share an address (same family, one contains the other).
  bool overlaps(const IpPrefix& o) const noexcept;
  std::string to_string() const;  // 10.20.0.0/16

  friend auto operator<=>(const IpPrefix&, const IpPrefix&) = default;
};

struct Endpoint {
  IpAddress addr;
  std::uint16_t port = 0;

  std::string to_string() const;  // 198.51.100.7:51820 or [2001:db8::1]:51820

  friend auto operator<=>(const Endpoint&, const Endpoint&) = default;
};

// The parsers below return nullopt and, when `error` is given, a one-line
// reason without source position (the loader adds file, line and path).

// "192.0.2.1" or an IPv6 address. No zone index, no IPv4-mapped form, no
// leading zeros in IPv4 octets (other tools read those as octal).
std::optional<IpAddress> parse_ip_address(std::string_view text, std::string* error = nullptr);

enum class PrefixKind {
  // A route or allowed IP: host bits must be zero ("did you mean ...?"); a
  // bare address means a host prefix (/32 or /128), as wg(8) reads it.
  kNetwork,
  // An address of our own with its subnet (192.0.2.2/24): the length is
  // required and the host bits are the point; the subnet's network and
  // IPv4 broadcast addresses, unspecified and multicast are refused.
  kHostInSubnet,
};
std::optional<IpPrefix> parse_ip_prefix(std::string_view text, PrefixKind kind,
                                        std::string* error = nullptr);

// "198.51.100.7:51820" or "[2001:db8::1]:51820"; port 1..65535. Host names
// are refused with a message saying so: the data plane resolves nothing.
std::optional<Endpoint> parse_endpoint(std::string_view text, std::string* error = nullptr);

}  // namespace moongate::config
