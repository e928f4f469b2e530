// IANA protocol numbers: the IPv4 "protocol" and IPv6 "next header" values
// this layer recognises.
#pragma once

#include <cstdint>

namespace moongate::net {

inline constexpr std::uint8_t kIpProtoHopByHop = 0;   // IPv6 extension header
inline constexpr std::uint8_t kIpProtoIcmp = 1;
inline constexpr std::uint8_t kIpProtoTcp = 6;
inline constexpr std::uint8_t kIpProtoUdp = 17;
inline constexpr std::uint8_t kIpProtoRouting = 43;   // IPv6 extension header
inline constexpr std::uint8_t kIpProtoFragment = 44;  // IPv6 extension header
inline constexpr std::uint8_t kIpProtoEsp = 50;
inline constexpr std::uint8_t kIpProtoAh = 51;
inline constexpr std::uint8_t kIpProtoIcmpv6 = 58;
inline constexpr std::uint8_t kIpProtoNoNext = 59;
inline constexpr std::uint8_t kIpProtoDestOpts = 60;  // IPv6 extension header

}  // namespace moongate::net
