// TAI64N timestamps: encoding, whitening of the nanoseconds, ordering.
#include <gtest/gtest.h>

#include <cstdint>

#include "crypto/tai64n.h"
#include "tests/unit/crypto/test_util.h"

namespace moongate::crypto {
namespace {

using test::to_hex;

constexpr std::uint64_t kSecond = 1'000'000'000;

// The Unix epoch is TAI64 label 2^62 + 10, as in the Linux module and wireguard-go.
TEST(Tai64n, UnixEpoch) { EXPECT_EQ(to_hex(tai64n_encode(0)), "400000000000000a00000000"); }

TEST(Tai64n, KnownEncodings) {
  EXPECT_EQ(to_hex(tai64n_encode(1 * kSecond)), "400000000000000b00000000");
  // 1700000000 s = 0x6553f100; 123456789 ns = 0x075bcd15, whitened to 0x07000000.
  EXPECT_EQ(to_hex(tai64n_encode(1'700'000'000 * kSecond + 123'456'789)), "400000006553f10a07000000");
  // Largest nanosecond field: 999999999 = 0x3b9ac9ff -> 0x3b000000.
  EXPECT_EQ(to_hex(tai64n_encode(kSecond - 1)), "400000000000000a3b000000");
  // 2^32 seconds needs the upper half of the seconds field.
  EXPECT_EQ(to_hex(tai64n_encode((std::uint64_t{1} << 32) * kSecond)), "400000010000000a00000000");
}

TEST(Tai64n, NanosecondsAreWhitenedTo2Pow24) {
  EXPECT_EQ(to_hex(tai64n_encode(0xFFFFFF)), "400000000000000a00000000");
  EXPECT_EQ(to_hex(tai64n_encode(0x1000000)), "400000000000000a01000000");
  EXPECT_EQ(to_hex(tai64n_encode(0x1FFFFFF)), "400000000000000a01000000");
  // Within one 2^24 ns window the timestamp does not move.
  const std::uint64_t base = 5 * kSecond + 3 * 0x1000000;
  EXPECT_EQ(tai64n_encode(base), tai64n_encode(base + 0xFFFFFF));
  EXPECT_NE(tai64n_encode(base), tai64n_encode(base + 0x1000000));
}

TEST(Tai64n, OrderIsChronological) {
  const std::uint64_t times[] = {0,
                                 0x1000000,
                                 kSecond - 1,  // whitened to 0x3b000000 ns
                                 kSecond,
                                 kSecond + 0x1000000,
                                 255 * kSecond,
                                 256 * kSecond,
                                 1'700'000'000 * kSecond,
                                 (std::uint64_t{1} << 32) * kSecond};
  for (std::size_t i = 0; i < std::size(times); ++i) {
    const Tai64n a = tai64n_encode(times[i]);
    EXPECT_FALSE(tai64n_after(a, a)) << "a timestamp is not after itself";
    for (std::size_t j = i + 1; j < std::size(times); ++j) {
      const Tai64n b = tai64n_encode(times[j]);
      EXPECT_TRUE(tai64n_after(b, a)) << times[j] << " after " << times[i];
      EXPECT_FALSE(tai64n_after(a, b)) << times[i] << " not after " << times[j];
    }
  }
  // A replayed initiation within the same whitening window is not "after".
  EXPECT_FALSE(tai64n_after(tai64n_encode(kSecond + 10), tai64n_encode(kSecond)));
}

}  // namespace
}  // namespace moongate::crypto
