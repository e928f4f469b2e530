// X25519: RFC 7748 known answers, Diffie-Hellman agreement, clamping and
// rejection of low-order public keys.
#include <gtest/gtest.h>

#include <cstring>
#include <string>

#include "crypto/x25519.h"
#include "tests/unit/crypto/test_util.h"

namespace moongate::crypto {
namespace {

using test::from_hex;
using test::to_hex;

SecretKey secret_from_hex(const char* hex) {
  const auto v = from_hex(hex);
  SecretKey k;
  std::memcpy(k.data(), v.data(), k.size());
  return k;
}

PublicKey public_from_hex(const char* hex) {
  const auto v = from_hex(hex);
  PublicKey k;
  std::memcpy(k.data(), v.data(), k.size());
  return k;
}

// RFC 7748 section 5.2. The scalars are not clamped: X25519 clamps them.
TEST(X25519, Rfc7748Section5_2) {
  struct Vector {
    const char* scalar;
    const char* u;
    const char* out;
  };
  const Vector vectors[] = {
      {"a546e36bf0527c9d3b16154b82465edd62144c0ac1fc5a18506a2244ba449ac4",
       "e6db6867583030db3594c1a424b15f7c726624ec26b3353b10a903a6d0ab1c4c",
       "c3da55379de9c6908e94ea4df28d084f32eccf03491c71f754b4075577a28552"},
      {"4b66e9d4d1b4673c5ad22691957d6af5c11b6421e0ea01d42ca4169e7918ba0d",
       "e5210f12786811d3f4b7959d0538ae2c31dbe7106fc03c3efc4cd549c715a493",
       "95cbde9476e8907d7aade45cb4b873f88b595a68799fa152e6f8f7647aac7957"},
  };
  for (const Vector& v : vectors) {
    SecretKey shared;
    ASSERT_TRUE(x25519(shared, secret_from_hex(v.scalar), public_from_hex(v.u)));
    EXPECT_EQ(to_hex(shared.data(), 32), v.out);
  }
}

// RFC 7748 section 5.2, iterated: k = u = 9; repeat (k, u) = (X25519(k, u), k).
TEST(X25519, Rfc7748Section5_2Iterated) {
  SecretKey k;
  PublicKey u{};
  k.data()[0] = 9;
  u[0] = 9;
  for (int i = 1; i <= 1000; ++i) {
    SecretKey next;
    ASSERT_TRUE(x25519(next, k, u));
    std::memcpy(u.data(), k.data(), 32);
    k = next;
    if (i == 1) {
      EXPECT_EQ(to_hex(k.data(), 32), "422c8e7a6227d7bca1350b3e2bb7279f7897b87bb6854b783c60e80311ae3079");
    }
  }
  EXPECT_EQ(to_hex(k.data(), 32), "684cf59ba83309552800ef566f2f4d3c1c3887c49360e3875f2eb94d99532c51");
}

// RFC 7748 section 6.1.
TEST(X25519, Rfc7748Section6_1AliceAndBob) {
  const SecretKey alice = secret_from_hex("77076d0a7318a57d3c16c17251b26645df4c2f87ebc0992ab177fba51db92c2a");
  const SecretKey bob = secret_from_hex("5dab087e624a8a4b79e17f8b83800ee66f3bb1292618b6fd1c2f8b27ff88e0eb");
  PublicKey alice_pub;
  PublicKey bob_pub;
  x25519_public(alice_pub, alice);
  x25519_public(bob_pub, bob);
  EXPECT_EQ(to_hex(alice_pub), "8520f0098930a754748b7ddcb43ef75a0dbf3a0d26381af4eba4a98eaa9b4e6a");
  EXPECT_EQ(to_hex(bob_pub), "de9edb7d7b7dc1b4d35b61c2ece435373f8343c85b78674dadfc7e146f882b4f");
  SecretKey k1;
  SecretKey k2;
  ASSERT_TRUE(x25519(k1, alice, bob_pub));
  ASSERT_TRUE(x25519(k2, bob, alice_pub));
  EXPECT_EQ(to_hex(k1.data(), 32), "4a5d9d5ba4ce2de1728e3bf480350f25e07e21c947d19e3376f09b3c1e161742");
  EXPECT_EQ(to_hex(k2.data(), 32), "4a5d9d5ba4ce2de1728e3bf480350f25e07e21c947d19e3376f09b3c1e161742");
}

// Points of small order give an all-zero shared secret, which WireGuard must
// refuse (otherwise an attacker fixes the DH output).
TEST(X25519, LowOrderPointsAreRejected) {
  const char* low_order[] = {
      "0000000000000000000000000000000000000000000000000000000000000000",  // u = 0
      "0100000000000000000000000000000000000000000000000000000000000000",  // u = 1
      "e0eb7a7c3b41b8ae1656e3faf19fc46ada098deb9c32b1fd866205165f49b800",  // order 8
      "5f9c95bca3508c24b1d0b1559c83ef5b04445cc4581c8e86d8224eddd09f1157",  // order 8
      "ecffffffffffffffffffffffffffffffffffffffffffffffffffffffffffff7f",  // u = p - 1
  };
  SecretKey priv;
  PublicKey pub;
  x25519_generate(priv, pub);
  for (const char* hex : low_order) {
    SecretKey shared;
    shared.randomize();
    EXPECT_FALSE(x25519(shared, priv, public_from_hex(hex))) << hex;
    EXPECT_TRUE(shared.is_zero()) << "a rejected result must not be left behind: " << hex;
  }
}

TEST(X25519, GeneratedKeysAreClampedAndAgree) {
  SecretKey a;
  SecretKey b;
  PublicKey a_pub;
  PublicKey b_pub;
  x25519_generate(a, a_pub);
  x25519_generate(b, b_pub);
  for (const SecretKey* k : {&a, &b}) {
    EXPECT_EQ(k->data()[0] & 7, 0);
    EXPECT_EQ(k->data()[31] & 0x80, 0);
    EXPECT_EQ(k->data()[31] & 0x40, 0x40);
  }
  EXPECT_NE(to_hex(a.data(), 32), to_hex(b.data(), 32));
  PublicKey again;
  x25519_public(again, a);
  EXPECT_EQ(to_hex(again), to_hex(a_pub));
  SecretKey s1;
  SecretKey s2;
  ASSERT_TRUE(x25519(s1, a, b_pub));
  ASSERT_TRUE(x25519(s2, b, a_pub));
  EXPECT_EQ(to_hex(s1.data(), 32), to_hex(s2.data(), 32));
  EXPECT_FALSE(s1.is_zero());
}

TEST(X25519, ClampSetsAndClearsTheRfcBits) {
  SecretKey k;
  std::memset(k.data(), 0xff, 32);
  x25519_clamp(k);
  EXPECT_EQ(k.data()[0], 0xf8);
  EXPECT_EQ(k.data()[31], 0x7f);
  std::memset(k.data(), 0x00, 32);
  x25519_clamp(k);
  EXPECT_EQ(k.data()[0], 0x00);
  EXPECT_EQ(k.data()[31], 0x40);
  // Clamping does not change the public key: X25519 clamps internally.
  SecretKey raw = secret_from_hex("a546e36bf0527c9d3b16154b82465edd62144c0ac1fc5a18506a2244ba449ac4");
  PublicKey p1;
  PublicKey p2;
  x25519_public(p1, raw);
  x25519_clamp(raw);
  x25519_public(p2, raw);
  EXPECT_EQ(to_hex(p1), to_hex(p2));
}

}  // namespace
}  // namespace moongate::crypto
