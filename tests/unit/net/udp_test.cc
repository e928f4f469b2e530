// UDP: parse and verify the scapy packets, rebuild them byte for byte,
// checksum modes (none / full / offload), the 0 -> 0xffff rule, limits.
#include "dataplane/net/udp.h"

#include <gtest/gtest.h>

#include <random>

#include "dataplane/net/bytes.h"
#include "dataplane/net/checksum.h"
#include "dataplane/net/ip_protocol.h"
#include "tests/unit/net/packet_util.h"
#include "tests/unit/net/vectors.h"

namespace moongate::net {
namespace {

using test::Bytes;
using test::hex;

const Ipv4Address kLo4 = test::v4(127, 0, 0, 1);
const Ipv6Address kLo6 = test::v6("0000 0000 0000 0000 0000 0000 0000 0001");

TEST(Udp, ParsesAndVerifiesScapyPackets) {
  const Bytes v4 = test::slice(hex(test::vectors::kScapyIpv4Udp), 34);
  UdpHeader u;
  ASSERT_EQ(parse_udp(v4.data(), v4.size(), u), UdpStatus::kOk);
  EXPECT_EQ(u.src_port, 53);
  EXPECT_EQ(u.dst_port, 53);
  EXPECT_EQ(u.length, 9);
  EXPECT_EQ(u.payload_len(), 1);
  EXPECT_EQ(u.checksum, 0x896f);
  EXPECT_TRUE(udp_checksum_valid_v4(v4.data(), u.length, kLo4, kLo4));

  const Bytes v6 = test::slice(hex(test::vectors::kScapyIpv6Udp), 54);
  ASSERT_EQ(parse_udp(v6.data(), v6.size(), u), UdpStatus::kOk);
  EXPECT_EQ(u.checksum, 0x8770);
  EXPECT_TRUE(udp_checksum_valid_v6(v6.data(), u.length, kLo6, kLo6));
}

TEST(Udp, DetectsCorruption) {
  std::mt19937 rng(768);
  const Bytes v4 = test::slice(hex(test::vectors::kScapyIpv4Udp), 34);
  const Bytes v6 = test::slice(hex(test::vectors::kScapyIpv6Udp), 54);
  for (std::size_t i = 0; i < v4.size(); ++i) {
    Bytes c4 = v4, c6 = v6;
    const auto flip = static_cast<std::uint8_t>(1u << (rng() % 8));
    c4[i] ^= flip;
    c6[i] ^= flip;
    if (i == 4 || i == 5) continue;  // the length field: changes what is summed
    EXPECT_FALSE(udp_checksum_valid_v4(c4.data(), 9, kLo4, kLo4)) << i;
    EXPECT_FALSE(udp_checksum_valid_v6(c6.data(), 9, kLo6, kLo6)) << i;
  }
  // Wrong pseudo-header address.
  EXPECT_FALSE(udp_checksum_valid_v4(v4.data(), 9, kLo4, test::v4(127, 0, 0, 2)));
}

TEST(Udp, ZeroChecksumMeansNoneOverIpv4OnlyOverIpv4) {
  Bytes v4 = test::slice(hex(test::vectors::kScapyIpv4Udp), 34);
  store_be16(v4.data() + 6, 0);
  EXPECT_TRUE(udp_checksum_valid_v4(v4.data(), 9, kLo4, kLo4));
  Bytes v6 = test::slice(hex(test::vectors::kScapyIpv6Udp), 54);
  store_be16(v6.data() + 6, 0);
  EXPECT_FALSE(udp_checksum_valid_v6(v6.data(), 9, kLo6, kLo6));
}

TEST(Udp, RebuildsScapyPacketsByteForByte) {
  Bytes out(9, 0);
  out[8] = 'x';
  ASSERT_EQ(write_udp_v4(out.data(), out.size(), kLo4, kLo4, 53, 53, 1, UdpChecksum::kFull), 9U);
  EXPECT_EQ(out, test::slice(hex(test::vectors::kScapyIpv4Udp), 34));
  ASSERT_EQ(write_udp_v6(out.data(), out.size(), kLo6, kLo6, 53, 53, 1, UdpChecksum::kFull), 9U);
  EXPECT_EQ(out, test::slice(hex(test::vectors::kScapyIpv6Udp), 54));
  ASSERT_EQ(write_udp_v4(out.data(), out.size(), kLo4, kLo4, 53, 53, 1, UdpChecksum::kNone), 9U);
  EXPECT_EQ(load_be16(out.data() + 6), 0);
}

TEST(Udp, OffloadModeLeavesThePseudoHeaderSumForTheNic) {
  std::mt19937 rng(6);
  for (int i = 0; i < 500; ++i) {
    const std::size_t n = rng() % 200;
    Bytes full = test::random_bytes(rng, 8 + n);
    Bytes off = full;
    Ipv4Address s{}, d{};
    for (auto& b : s) b = static_cast<std::uint8_t>(rng());
    for (auto& b : d) b = static_cast<std::uint8_t>(rng());
    ASSERT_NE(write_udp_v4(full.data(), full.size(), s, d, 1, 2, n, UdpChecksum::kFull), 0U);
    ASSERT_NE(write_udp_v4(off.data(), off.size(), s, d, 1, 2, n, UdpChecksum::kOffload), 0U);
    // What the NIC does: sum the datagram with the seeded field, complement.
    const std::uint16_t nic = checksum_finish(checksum_partial(off.data(), off.size()));
    EXPECT_EQ(udp_checksum_to_wire(nic), load_be16(full.data() + 6));

    Ipv6Address s6{}, d6{};
    for (auto& b : s6) b = static_cast<std::uint8_t>(rng());
    for (auto& b : d6) b = static_cast<std::uint8_t>(rng());
    ASSERT_NE(write_udp_v6(full.data(), full.size(), s6, d6, 1, 2, n, UdpChecksum::kFull), 0U);
    ASSERT_NE(write_udp_v6(off.data(), off.size(), s6, d6, 1, 2, n, UdpChecksum::kOffload), 0U);
    const std::uint16_t nic6 = checksum_finish(checksum_partial(off.data(), off.size()));
    EXPECT_EQ(udp_checksum_to_wire(nic6), load_be16(full.data() + 6));
    EXPECT_TRUE(udp_checksum_valid_v6(full.data(), static_cast<std::uint16_t>(full.size()), s6, d6));
  }
}

TEST(Udp, ComputedZeroIsSentAsAllOnes) {
  // Make the payload word cancel the rest of the sum: the checksum computes
  // to 0 and must go out as 0xffff, which still verifies.
  Bytes u(10, 0);
  ASSERT_EQ(write_udp_v4(u.data(), u.size(), kLo4, kLo4, 1000, 2000, 2, UdpChecksum::kFull), 10U);
  const std::uint16_t c = load_be16(u.data() + 6);
  store_be16(u.data() + 8, c);
  ASSERT_EQ(write_udp_v4(u.data(), u.size(), kLo4, kLo4, 1000, 2000, 2, UdpChecksum::kFull), 10U);
  EXPECT_EQ(load_be16(u.data() + 6), 0xffff);
  EXPECT_TRUE(udp_checksum_valid_v4(u.data(), 10, kLo4, kLo4));

  ASSERT_EQ(write_udp_v6(u.data(), u.size(), kLo6, kLo6, 1000, 2000, 2, UdpChecksum::kFull), 10U);
  store_be16(u.data() + 8, 0);
  ASSERT_EQ(write_udp_v6(u.data(), u.size(), kLo6, kLo6, 1000, 2000, 2, UdpChecksum::kFull), 10U);
  store_be16(u.data() + 8, load_be16(u.data() + 6));
  ASSERT_EQ(write_udp_v6(u.data(), u.size(), kLo6, kLo6, 1000, 2000, 2, UdpChecksum::kFull), 10U);
  EXPECT_EQ(load_be16(u.data() + 6), 0xffff);
  EXPECT_TRUE(udp_checksum_valid_v6(u.data(), 10, kLo6, kLo6));
}

TEST(Udp, BuildLimits) {
  Bytes u(100, 0);
  EXPECT_EQ(write_udp_v4(u.data(), 99, kLo4, kLo4, 1, 2, 92, UdpChecksum::kFull), 0U) << "cap";
  EXPECT_EQ(write_udp_v4(u.data(), 100, kLo4, kLo4, 1, 2, 92, UdpChecksum::kFull), 100U);
  EXPECT_EQ(write_udp_v6(u.data(), 100, kLo6, kLo6, 1, 2, 92, UdpChecksum::kNone), 0U)
      << "IPv6 needs a checksum";
  Bytes big(65536, 0);
  EXPECT_EQ(write_udp_v4(big.data(), big.size(), kLo4, kLo4, 1, 2, 65527, UdpChecksum::kNone), 65535U);
  EXPECT_EQ(write_udp_v4(big.data(), big.size(), kLo4, kLo4, 1, 2, 65528, UdpChecksum::kNone), 0U);
}

TEST(Udp, ParseLengthRules) {
  Bytes u = test::slice(hex(test::vectors::kScapyIpv4Udp), 34);
  UdpHeader h;
  u.push_back(0);  // IP payload longer than the UDP length: honoured
  EXPECT_EQ(parse_udp(u.data(), u.size(), h), UdpStatus::kOk);
  EXPECT_EQ(h.length, 9);
  store_be16(u.data() + 4, 7);
  EXPECT_EQ(parse_udp(u.data(), u.size(), h), UdpStatus::kBadLength);
  store_be16(u.data() + 4, 11);
  EXPECT_EQ(parse_udp(u.data(), u.size(), h), UdpStatus::kBadLength);
  EXPECT_FALSE(udp_checksum_valid_v4(u.data(), 7, kLo4, kLo4));
  EXPECT_STREQ(to_string(UdpStatus::kBadLength), "bad length");
}

TEST(Udp, EveryTruncationRejected) {
  const Bytes u = test::slice(hex(test::vectors::kScapyIpv4Udp), 34);
  for (std::size_t n = 0; n < u.size(); ++n) {
    test::Exact e(u, n);
    UdpHeader h;
    EXPECT_NE(parse_udp(e.data(), n, h), UdpStatus::kOk) << n;
  }
}

}  // namespace
}  // namespace moongate::net
