// Secret<N> and the libsodium helpers behind it: wiping, constant-time
// comparisons and the CSPRNG entry points.
#include <gtest/gtest.h>

#include <array>
#include <cstdint>
#include <cstring>
#include <set>
#include <utility>

#include "crypto/secret.h"

namespace moongate::crypto {
namespace {

TEST(Secret, CtEqualAndIsZero) {
  std::uint8_t a[32] = {};
  std::uint8_t b[32] = {};
  EXPECT_TRUE(ct_equal(a, b, 32));
  EXPECT_TRUE(ct_is_zero(a, 32));
  b[31] = 1;
  EXPECT_FALSE(ct_equal(a, b, 32));
  EXPECT_FALSE(ct_is_zero(b, 32));
  EXPECT_TRUE(ct_equal(a, b, 31));
  EXPECT_TRUE(ct_is_zero(b, 31));
  a[0] = 0x80;
  EXPECT_FALSE(ct_equal(a, b, 1));
}

TEST(Secret, WipeAndClear) {
  std::uint8_t buf[40];
  std::memset(buf, 0xab, sizeof buf);
  secure_wipe(buf, sizeof buf);
  EXPECT_TRUE(ct_is_zero(buf, sizeof buf));

  SecretKey k;
  EXPECT_TRUE(k.is_zero()) << "a default secret is zero";
  k.randomize();
  EXPECT_FALSE(k.is_zero());
  k.clear();
  EXPECT_TRUE(k.is_zero());
}

TEST(Secret, MoveLeavesTheSourceWiped) {
  SecretKey a;
  a.randomize();
  std::array<std::uint8_t, 32> copy;
  std::memcpy(copy.data(), a.data(), 32);
  SecretKey b(std::move(a));
  EXPECT_TRUE(a.is_zero());  // NOLINT(bugprone-use-after-move): that is the point
  EXPECT_TRUE(ct_equal(b.data(), copy.data(), 32));
  SecretKey c;
  c = std::move(b);
  EXPECT_TRUE(b.is_zero());  // NOLINT(bugprone-use-after-move)
  EXPECT_TRUE(ct_equal(c.data(), copy.data(), 32));
  const SecretKey d(std::span<const std::uint8_t, 32>(copy.data(), 32));
  EXPECT_TRUE(ct_equal(d.data(), copy.data(), 32));
}

TEST(Secret, RandomUniformStaysInRange) {
  std::set<std::uint32_t> seen;
  for (int i = 0; i < 2000; ++i) {
    const std::uint32_t v = random_uniform(10);
    ASSERT_LT(v, 10u);
    seen.insert(v);
  }
  // 2000 draws miss one of ten values with probability ~10 * 0.9^2000.
  EXPECT_EQ(seen.size(), 10u);
  EXPECT_EQ(random_uniform(1), 0u);
}

TEST(Secret, RandomBytesDiffer) {
  std::uint8_t a[32];
  std::uint8_t b[32];
  random_bytes(a, sizeof a);
  random_bytes(b, sizeof b);
  EXPECT_FALSE(ct_equal(a, b, 32));
}

}  // namespace
}  // namespace moongate::crypto
