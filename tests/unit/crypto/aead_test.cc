// Single-message AEADs: RFC 8439 and draft-irtf-cfrg-xchacha known answers,
// WireGuard's nonce layout, and rejection of anything tampered with.
#include <gtest/gtest.h>
#include <sodium.h>

#include <cstdint>
#include <cstring>
#include <string>
#include <vector>

#include "crypto/aead.h"
#include "tests/unit/crypto/test_util.h"

namespace moongate::crypto {
namespace {

using test::from_hex;
using test::to_hex;

const char kSunscreen[] =
    "Ladies and Gentlemen of the class of '99: If I could offer you only one tip for the future, "
    "sunscreen would be it.";

std::vector<std::uint8_t> sunscreen() {
  return std::vector<std::uint8_t>(kSunscreen, kSunscreen + sizeof kSunscreen - 1);
}

class Aead : public ::testing::Test {
 protected:
  static void SetUpTestSuite() { ASSERT_GE(sodium_init(), 0); }
};

// RFC 8439 section 2.8.2. Its nonce (07 00 00 00 || 40..47) is not
// WireGuard-shaped, so the vector is run through libsodium's IETF AEAD, the
// engine behind chacha20poly1305_encrypt/decrypt; the WireGuard nonce layout
// is then checked separately below.
TEST_F(Aead, Rfc8439Section2_8_2ThroughLibsodium) {
  const auto key = from_hex("808182838485868788898a8b8c8d8e8f909192939495969798999a9b9c9d9e9f");
  const auto nonce = from_hex("070000004041424344454647");
  const auto aad = from_hex("50515253c0c1c2c3c4c5c6c7");
  const auto pt = sunscreen();
  ASSERT_EQ(pt.size(), 114u);
  std::vector<std::uint8_t> ct(pt.size() + 16);
  unsigned long long ct_len = 0;
  crypto_aead_chacha20poly1305_ietf_encrypt(ct.data(), &ct_len, pt.data(), pt.size(), aad.data(), aad.size(), nullptr,
                                            nonce.data(), key.data());
  ASSERT_EQ(ct_len, ct.size());
  EXPECT_EQ(to_hex(ct.data(), pt.size()),
            "d31a8d34648e60db7b86afbc53ef7ec2a4aded51296e08fea9e2b5a736ee62d6"
            "3dbea45e8ca9671282fafb69da92728b1a71de0a9e060b2905d6a5b67ecd3b36"
            "92ddbd7f2d778b8c9803aee328091b58fab324e4fad675945585808b4831d7bc"
            "3ff4def08e4b7a9de576d26586cec64b6116");
  EXPECT_EQ(to_hex(ct.data() + pt.size(), 16), "1ae10b594f09e26a7e902ecbd0600691");
}

// WireGuard's nonce is 32 zero bits then the counter little-endian. Built
// by hand here and fed to libsodium; the wrapper must agree byte for byte.
TEST_F(Aead, WireGuardNonceLayout) {
  const auto key = from_hex("808182838485868788898a8b8c8d8e8f909192939495969798999a9b9c9d9e9f");
  const auto aad = from_hex("50515253c0c1c2c3c4c5c6c7");
  const auto pt = sunscreen();
  for (std::uint64_t counter : {std::uint64_t{0}, std::uint64_t{1}, std::uint64_t{0x0123456789abcdef},
                                ~std::uint64_t{0}}) {
    std::uint8_t nonce[12] = {};
    for (int i = 0; i < 8; ++i) nonce[4 + i] = static_cast<std::uint8_t>(counter >> (8 * i));
    std::vector<std::uint8_t> want(pt.size() + 16);
    unsigned long long want_len = 0;
    crypto_aead_chacha20poly1305_ietf_encrypt(want.data(), &want_len, pt.data(), pt.size(), aad.data(), aad.size(),
                                              nullptr, nonce, key.data());

    std::vector<std::uint8_t> got(pt.size() + 16);
    chacha20poly1305_encrypt(got.data(), pt.data(), pt.size(), aad.data(), aad.size(), counter, key.data());
    EXPECT_EQ(to_hex(got), to_hex(want)) << "counter " << counter;

    std::vector<std::uint8_t> back(pt.size());
    ASSERT_TRUE(chacha20poly1305_decrypt(back.data(), got.data(), pt.size(), aad.data(), aad.size(), counter,
                                         key.data()));
    EXPECT_EQ(back, pt);
  }
}

TEST_F(Aead, ChaChaInPlaceAndEmpty) {
  std::uint8_t key[32];
  randombytes_buf(key, sizeof key);
  std::vector<std::uint8_t> buf = sunscreen();
  const auto pt = buf;
  buf.resize(pt.size() + 16);
  chacha20poly1305_encrypt(buf.data(), buf.data(), pt.size(), nullptr, 0, 42, key);
  std::vector<std::uint8_t> out_of_place(pt.size() + 16);
  chacha20poly1305_encrypt(out_of_place.data(), pt.data(), pt.size(), nullptr, 0, 42, key);
  EXPECT_EQ(buf, out_of_place);
  ASSERT_TRUE(chacha20poly1305_decrypt(buf.data(), buf.data(), pt.size(), nullptr, 0, 42, key));
  EXPECT_TRUE(std::equal(pt.begin(), pt.end(), buf.begin()));

  // A keepalive: empty plaintext, the message is the tag alone.
  std::uint8_t tag[16];
  chacha20poly1305_encrypt(tag, nullptr, 0, nullptr, 0, 7, key);
  std::uint8_t nonce[12] = {0, 0, 0, 0, 7};
  std::uint8_t want[16];
  unsigned long long want_len = 0;
  crypto_aead_chacha20poly1305_ietf_encrypt(want, &want_len, nullptr, 0, nullptr, 0, nullptr, nonce, key);
  EXPECT_EQ(to_hex(tag, 16), to_hex(want, 16));
  EXPECT_TRUE(chacha20poly1305_decrypt(nullptr, tag, 0, nullptr, 0, 7, key));
  EXPECT_FALSE(chacha20poly1305_decrypt(nullptr, tag, 0, nullptr, 0, 8, key));
}

TEST_F(Aead, ChaChaRejectsTampering) {
  std::uint8_t key[32];
  randombytes_buf(key, sizeof key);
  const auto pt = sunscreen();
  const auto aad = from_hex("50515253c0c1c2c3c4c5c6c7");
  std::vector<std::uint8_t> sealed(pt.size() + 16);
  chacha20poly1305_encrypt(sealed.data(), pt.data(), pt.size(), aad.data(), aad.size(), 1000, key);
  std::vector<std::uint8_t> out(pt.size());
  ASSERT_TRUE(chacha20poly1305_decrypt(out.data(), sealed.data(), pt.size(), aad.data(), aad.size(), 1000, key));

  for (std::size_t pos : {std::size_t{0}, pt.size() - 1, pt.size(), pt.size() + 15}) {
    auto bad = sealed;
    bad[pos] ^= 0x01;
    EXPECT_FALSE(chacha20poly1305_decrypt(out.data(), bad.data(), pt.size(), aad.data(), aad.size(), 1000, key))
        << "flipped byte " << pos;
  }
  auto bad_aad = aad;
  bad_aad[3] ^= 0x80;
  EXPECT_FALSE(chacha20poly1305_decrypt(out.data(), sealed.data(), pt.size(), bad_aad.data(), bad_aad.size(), 1000, key));
  EXPECT_FALSE(chacha20poly1305_decrypt(out.data(), sealed.data(), pt.size(), nullptr, 0, 1000, key));
  EXPECT_FALSE(chacha20poly1305_decrypt(out.data(), sealed.data(), pt.size(), aad.data(), aad.size(), 1001, key));
  std::uint8_t other_key[32];
  std::memcpy(other_key, key, 32);
  other_key[31] ^= 1;
  EXPECT_FALSE(
      chacha20poly1305_decrypt(out.data(), sealed.data(), pt.size(), aad.data(), aad.size(), 1000, other_key));
}

// draft-irtf-cfrg-xchacha-03 appendix A.3.1.
TEST_F(Aead, XChaChaDraftAppendixA3_1) {
  const auto key = from_hex("808182838485868788898a8b8c8d8e8f909192939495969798999a9b9c9d9e9f");
  const auto nonce = from_hex("404142434445464748494a4b4c4d4e4f5051525354555657");
  const auto aad = from_hex("50515253c0c1c2c3c4c5c6c7");
  const auto pt = sunscreen();
  std::vector<std::uint8_t> sealed(pt.size() + 16);
  xchacha20poly1305_encrypt(sealed.data(), pt.data(), pt.size(), aad.data(), aad.size(), nonce.data(), key.data());
  EXPECT_EQ(to_hex(sealed.data(), pt.size()),
            "bd6d179d3e83d43b9576579493c0e939572a1700252bfaccbed2902c21396cbb"
            "731c7f1b0b4aa6440bf3a82f4eda7e39ae64c6708c54c216cb96b72e1213b452"
            "2f8c9ba40db5d945b11b69b982c1bb9e3f3fac2bc369488f76b2383565d3fff9"
            "21f9664c97637da9768812f615c68b13b52e");
  EXPECT_EQ(to_hex(sealed.data() + pt.size(), 16), "c0875924c1c7987947deafd8780acf49");

  std::vector<std::uint8_t> out(pt.size());
  ASSERT_TRUE(xchacha20poly1305_decrypt(out.data(), sealed.data(), pt.size(), aad.data(), aad.size(), nonce.data(),
                                        key.data()));
  EXPECT_EQ(out, pt);
}

TEST_F(Aead, XChaChaRejectsTampering) {
  std::uint8_t key[32];
  std::uint8_t nonce[24];
  randombytes_buf(key, sizeof key);
  randombytes_buf(nonce, sizeof nonce);
  // Cookie-reply shape: a 16-byte cookie sealed with the mac1 as AD.
  std::uint8_t cookie[16];
  std::uint8_t ad[16];
  randombytes_buf(cookie, sizeof cookie);
  randombytes_buf(ad, sizeof ad);
  std::uint8_t sealed[32];
  xchacha20poly1305_encrypt(sealed, cookie, 16, ad, 16, nonce, key);
  std::uint8_t out[16];
  ASSERT_TRUE(xchacha20poly1305_decrypt(out, sealed, 16, ad, 16, nonce, key));
  EXPECT_EQ(to_hex(out, 16), to_hex(cookie, 16));

  for (std::size_t pos = 0; pos < sizeof sealed; pos += 5) {
    std::uint8_t bad[32];
    std::memcpy(bad, sealed, sizeof bad);
    bad[pos] ^= 0x40;
    EXPECT_FALSE(xchacha20poly1305_decrypt(out, bad, 16, ad, 16, nonce, key)) << "flipped byte " << pos;
  }
  std::uint8_t bad_ad[16];
  std::memcpy(bad_ad, ad, 16);
  bad_ad[0] ^= 1;
  EXPECT_FALSE(xchacha20poly1305_decrypt(out, sealed, 16, bad_ad, 16, nonce, key));
  std::uint8_t bad_nonce[24];
  std::memcpy(bad_nonce, nonce, 24);
  bad_nonce[23] ^= 1;
  EXPECT_FALSE(xchacha20poly1305_decrypt(out, sealed, 16, ad, 16, bad_nonce, key));
}

}  // namespace
}  // namespace moongate::crypto
