// Endpoint equality: the roaming check of every received data message.
#include "wireguard/endpoint.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <cstdint>

namespace moongate::wg {
namespace {

constexpr std::uint8_t kA4[4] = {192, 0, 2, 7};
constexpr std::uint8_t kB4[4] = {192, 0, 2, 8};
constexpr std::uint8_t kA6[16] = {0x20, 0x01, 0x0d, 0xb8, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1};

TEST(Endpoint, EqualWhenFamilyPortAndAddressMatch) {
  EXPECT_EQ(Endpoint::v4(kA4, 51820), Endpoint::v4(kA4, 51820));
  EXPECT_EQ(Endpoint::v6(kA6, 51820), Endpoint::v6(kA6, 51820));
  EXPECT_EQ(Endpoint{}, Endpoint{});  // both "none"
}

TEST(Endpoint, AnyDifferenceIsARoam) {
  const Endpoint a = Endpoint::v4(kA4, 51820);
  EXPECT_FALSE(a == Endpoint::v4(kB4, 51820));   // address
  EXPECT_FALSE(a == Endpoint::v4(kA4, 51821));   // port
  EXPECT_FALSE(a == Endpoint{});                 // none
  std::uint8_t b6[16];
  for (int i = 0; i < 16; ++i) {  // every byte of an IPv6 address counts
    std::copy(kA6, kA6 + 16, b6);
    b6[i] ^= 0x80;
    EXPECT_FALSE(Endpoint::v6(kA6, 443) == Endpoint::v6(b6, 443)) << "byte " << i;
  }
  // The same 16 bytes under another family are another endpoint.
  std::uint8_t v4_in_16[16] = {192, 0, 2, 7};
  EXPECT_FALSE(Endpoint::v4(kA4, 443) == Endpoint::v6(v4_in_16, 443));
}

TEST(Endpoint, Ipv4ComparesItsFourBytesOnly) {
  // Bytes past an IPv4 address are not part of it, whatever they hold.
  Endpoint a = Endpoint::v4(kA4, 51820);
  Endpoint b = a;
  b.addr[4] = 0xff;
  b.addr[15] = 0x01;
  EXPECT_EQ(a, b);
}

}  // namespace
}  // namespace moongate::wg
