// BLAKE2s, keyed BLAKE2s-128, HMAC-BLAKE2s and the Noise KDF: published
// vectors plus cross-checks against an independent reference BLAKE2s
// (RFC 7693, written here from the RFC) and against OpenSSL's EVP_MAC HMAC.
#include <gtest/gtest.h>
#include <openssl/core_names.h>
#include <openssl/evp.h>
#include <openssl/params.h>

#include <array>
#include <cstring>
#include <random>
#include <string>
#include <vector>

#include "crypto/blake2s.h"
#include "tests/unit/crypto/test_util.h"

namespace moongate::crypto {
namespace {

using test::counting_bytes;
using test::from_hex;
using test::to_hex;

// ---------------------------------------------------------------------------
// Reference BLAKE2s, straight from RFC 7693 sections 3.1-3.3 and appendix C.
// Deliberately naive: it shares no code with OpenSSL, so agreement between
// the two is evidence, not tautology.
class RefBlake2s {
 public:
  RefBlake2s(std::size_t outlen, const std::uint8_t* key, std::size_t keylen) : outlen_(outlen) {
    for (int i = 0; i < 8; ++i) h_[i] = kIv[i];
    h_[0] ^= 0x01010000u ^ static_cast<std::uint32_t>(keylen << 8) ^ static_cast<std::uint32_t>(outlen);
    if (keylen > 0) {
      update(key, keylen);
      c_ = 64;  // the key block is padded to a full block
    }
  }

  void update(const std::uint8_t* in, std::size_t n) {
    for (std::size_t i = 0; i < n; ++i) {
      if (c_ == 64) {
        t_ += c_;
        compress(false);
        c_ = 0;
      }
      b_[c_++] = in[i];
    }
  }

  std::vector<std::uint8_t> final() {
    t_ += c_;
    while (c_ < 64) b_[c_++] = 0;
    compress(true);
    std::vector<std::uint8_t> out(outlen_);
    for (std::size_t i = 0; i < outlen_; ++i) out[i] = static_cast<std::uint8_t>(h_[i >> 2] >> (8 * (i & 3)));
    return out;
  }

  static std::vector<std::uint8_t> hash(std::size_t outlen, const std::vector<std::uint8_t>& key,
                                        const std::vector<std::uint8_t>& in) {
    RefBlake2s s(outlen, key.data(), key.size());
    s.update(in.data(), in.size());
    return s.final();
  }

 private:
  static constexpr std::uint32_t kIv[8] = {0x6A09E667, 0xBB67AE85, 0x3C6EF372, 0xA54FF53A,
                                           0x510E527F, 0x9B05688C, 0x1F83D9AB, 0x5BE0CD19};
  static constexpr std::uint8_t kSigma[10][16] = {
      {0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15}, {14, 10, 4, 8, 9, 15, 13, 6, 1, 12, 0, 2, 11, 7, 5, 3},
      {11, 8, 12, 0, 5, 2, 15, 13, 10, 14, 3, 6, 7, 1, 9, 4}, {7, 9, 3, 1, 13, 12, 11, 14, 2, 6, 5, 10, 4, 0, 15, 8},
      {9, 0, 5, 7, 2, 4, 10, 15, 14, 1, 11, 12, 6, 8, 3, 13}, {2, 12, 6, 10, 0, 11, 8, 3, 4, 13, 7, 5, 15, 14, 1, 9},
      {12, 5, 1, 15, 14, 13, 4, 10, 0, 7, 6, 3, 9, 2, 8, 11}, {13, 11, 7, 14, 12, 1, 3, 9, 5, 0, 15, 4, 8, 6, 2, 10},
      {6, 15, 14, 9, 11, 3, 0, 8, 12, 2, 13, 7, 1, 4, 10, 5}, {10, 2, 8, 4, 7, 6, 1, 5, 15, 11, 9, 14, 3, 12, 13, 0},
  };

  static std::uint32_t rotr(std::uint32_t x, int n) { return (x >> n) | (x << (32 - n)); }

  static void g(std::uint32_t v[16], int a, int b, int c, int d, std::uint32_t x, std::uint32_t y) {
    v[a] = v[a] + v[b] + x;
    v[d] = rotr(v[d] ^ v[a], 16);
    v[c] = v[c] + v[d];
    v[b] = rotr(v[b] ^ v[c], 12);
    v[a] = v[a] + v[b] + y;
    v[d] = rotr(v[d] ^ v[a], 8);
    v[c] = v[c] + v[d];
    v[b] = rotr(v[b] ^ v[c], 7);
  }

  void compress(bool last) {
    std::uint32_t v[16];
    std::uint32_t m[16];
    for (int i = 0; i < 8; ++i) {
      v[i] = h_[i];
      v[i + 8] = kIv[i];
    }
    v[12] ^= static_cast<std::uint32_t>(t_);
    v[13] ^= static_cast<std::uint32_t>(t_ >> 32);
    if (last) v[14] = ~v[14];
    for (int i = 0; i < 16; ++i) {
      m[i] = static_cast<std::uint32_t>(b_[4 * i]) | static_cast<std::uint32_t>(b_[4 * i + 1]) << 8 |
             static_cast<std::uint32_t>(b_[4 * i + 2]) << 16 | static_cast<std::uint32_t>(b_[4 * i + 3]) << 24;
    }
    for (const auto& s : kSigma) {
      g(v, 0, 4, 8, 12, m[s[0]], m[s[1]]);
      g(v, 1, 5, 9, 13, m[s[2]], m[s[3]]);
      g(v, 2, 6, 10, 14, m[s[4]], m[s[5]]);
      g(v, 3, 7, 11, 15, m[s[6]], m[s[7]]);
      g(v, 0, 5, 10, 15, m[s[8]], m[s[9]]);
      g(v, 1, 6, 11, 12, m[s[10]], m[s[11]]);
      g(v, 2, 7, 8, 13, m[s[12]], m[s[13]]);
      g(v, 3, 4, 9, 14, m[s[14]], m[s[15]]);
    }
    for (int i = 0; i < 8; ++i) h_[i] ^= v[i] ^ v[i + 8];
  }

  std::uint32_t h_[8];
  std::uint8_t b_[64] = {};
  std::uint64_t t_ = 0;
  std::size_t c_ = 0;
  std::size_t outlen_;
};

std::vector<std::uint8_t> ref_hmac(std::vector<std::uint8_t> key, const std::vector<std::uint8_t>& msg) {
  if (key.size() > 64) key = RefBlake2s::hash(32, {}, key);
  key.resize(64, 0);
  std::vector<std::uint8_t> inner(key);
  std::vector<std::uint8_t> outer(key);
  for (auto& c : inner) c ^= 0x36;
  for (auto& c : outer) c ^= 0x5c;
  inner.insert(inner.end(), msg.begin(), msg.end());
  const auto ih = RefBlake2s::hash(32, {}, inner);
  outer.insert(outer.end(), ih.begin(), ih.end());
  return RefBlake2s::hash(32, {}, outer);
}

// OpenSSL's own HMAC over BLAKE2S-256, as a second oracle for hmac_blake2s.
std::vector<std::uint8_t> openssl_hmac(const std::vector<std::uint8_t>& key, const std::vector<std::uint8_t>& msg) {
  EVP_MAC* mac = EVP_MAC_fetch(nullptr, "HMAC", nullptr);
  EVP_MAC_CTX* ctx = EVP_MAC_CTX_new(mac);
  char digest[] = "BLAKE2S-256";
  OSSL_PARAM params[] = {OSSL_PARAM_construct_utf8_string(OSSL_MAC_PARAM_DIGEST, digest, 0), OSSL_PARAM_construct_end()};
  static const std::uint8_t kEmpty = 0;
  std::vector<std::uint8_t> out(32);
  std::size_t len = 0;
  const bool ok = EVP_MAC_init(ctx, key.empty() ? &kEmpty : key.data(), key.size(), params) == 1 &&
                  EVP_MAC_update(ctx, msg.data(), msg.size()) == 1 &&
                  EVP_MAC_final(ctx, out.data(), &len, out.size()) == 1 && len == 32;
  EVP_MAC_CTX_free(ctx);
  EVP_MAC_free(mac);
  if (!ok) out.clear();
  return out;
}

// Keyed BLAKE2s with a 32-byte output straight through OpenSSL BLAKE2SMAC,
// to run the published keyed KAT against the engine blake2s_mac128 uses.
std::vector<std::uint8_t> openssl_blake2smac(const std::vector<std::uint8_t>& key, const std::vector<std::uint8_t>& msg,
                                             std::size_t outlen) {
  EVP_MAC* mac = EVP_MAC_fetch(nullptr, "BLAKE2SMAC", nullptr);
  EVP_MAC_CTX* ctx = EVP_MAC_CTX_new(mac);
  OSSL_PARAM params[] = {OSSL_PARAM_construct_size_t(OSSL_MAC_PARAM_SIZE, &outlen), OSSL_PARAM_construct_end()};
  std::vector<std::uint8_t> out(outlen);
  std::size_t len = 0;
  const bool ok = EVP_MAC_CTX_set_params(ctx, params) == 1 && EVP_MAC_init(ctx, key.data(), key.size(), nullptr) == 1 &&
                  EVP_MAC_update(ctx, msg.data(), msg.size()) == 1 &&
                  EVP_MAC_final(ctx, out.data(), &len, out.size()) == 1 && len == outlen;
  EVP_MAC_CTX_free(ctx);
  EVP_MAC_free(mac);
  if (!ok) out.clear();
  return out;
}

std::vector<std::uint8_t> random_bytes_vec(std::mt19937_64& rng, std::size_t n) {
  std::vector<std::uint8_t> v(n);
  for (auto& b : v) b = static_cast<std::uint8_t>(rng());
  return v;
}

Bytes as_bytes(const std::vector<std::uint8_t>& v) { return Bytes(v.data(), v.size()); }

// ---------------------------------------------------------------------------

// RFC 7693 appendix E: the grand hash over unkeyed and keyed hashes of every
// output length (16, 20, 28, 32) and several input lengths. Validates the
// reference implementation, including 16-byte keyed outputs, before it is
// used as an oracle below.
TEST(RefBlake2s, Rfc7693SelfTest) {
  auto seq = [](std::size_t len, std::uint32_t seed) {
    std::vector<std::uint8_t> out(len);
    std::uint32_t a = 0xDEAD4BADu * seed;
    std::uint32_t b = 1;
    for (std::size_t i = 0; i < len; ++i) {
      const std::uint32_t t = a + b;
      a = b;
      b = t;
      out[i] = static_cast<std::uint8_t>(t >> 24);
    }
    return out;
  };
  RefBlake2s grand(32, nullptr, 0);
  for (std::size_t outlen : {16u, 20u, 28u, 32u}) {
    for (std::size_t inlen : {0u, 3u, 64u, 65u, 255u, 1024u}) {
      const auto in = seq(inlen, static_cast<std::uint32_t>(inlen));
      auto md = RefBlake2s::hash(outlen, {}, in);
      grand.update(md.data(), md.size());
      const auto key = seq(outlen, static_cast<std::uint32_t>(outlen));
      md = RefBlake2s::hash(outlen, key, in);
      grand.update(md.data(), md.size());
    }
  }
  EXPECT_EQ(to_hex(grand.final()), "6a411f08ce25adcdfb02aba641451cec53c598b24f4fc787fbdc88797f4c1dfe");
}

TEST(Blake2s256, Rfc7693Vectors) {
  std::uint8_t out[32];
  blake2s256(out, Bytes{});
  EXPECT_EQ(to_hex(out, 32), "69217a3079908094e11121d042354a7c1f55b6482ca1a51e1b250dfd1ed0eef9");
  const std::uint8_t abc[] = {'a', 'b', 'c'};
  blake2s256(out, Bytes(abc, 3));
  // RFC 7693 appendix B.
  EXPECT_EQ(to_hex(out, 32), "508c5e8c327c14e2e1a72ba34eeb452f37458b209ed63a294d999b4c86675982");
  blake2s256(out, Bytes(abc, 1), Bytes(abc + 1, 2));
  EXPECT_EQ(to_hex(out, 32), "508c5e8c327c14e2e1a72ba34eeb452f37458b209ed63a294d999b4c86675982");
}

TEST(Blake2s256, MatchesReferenceOneShotTwoPartAndIncremental) {
  std::mt19937_64 rng(7693);
  for (std::size_t len = 0; len <= 300; len += (len < 130 ? 1 : 17)) {
    const auto msg = random_bytes_vec(rng, len);
    const auto want = to_hex(RefBlake2s::hash(32, {}, msg));
    std::uint8_t out[32];
    blake2s256(out, as_bytes(msg));
    EXPECT_EQ(to_hex(out, 32), want) << "len " << len;

    const std::size_t split = len == 0 ? 0 : rng() % (len + 1);
    blake2s256(out, Bytes(msg.data(), split), Bytes(msg.data() + split, len - split));
    EXPECT_EQ(to_hex(out, 32), want) << "len " << len << " split " << split;

    Blake2s inc;
    std::size_t pos = 0;
    while (pos < len) {
      const std::size_t piece = std::min<std::size_t>(len - pos, 1 + rng() % 70);
      inc.update(Bytes(msg.data() + pos, piece));
      pos += piece;
    }
    inc.final(out);
    EXPECT_EQ(to_hex(out, 32), want) << "incremental len " << len;
  }
}

TEST(Blake2s256, ObjectIsReusableAfterFinal) {
  Blake2s h;
  const std::uint8_t abc[] = {'a', 'b', 'c'};
  std::uint8_t first[32];
  std::uint8_t second[32];
  h.update(Bytes(abc, 3));
  h.final(first);
  h.update(Bytes(abc, 3));
  h.final(second);
  EXPECT_EQ(to_hex(first, 32), to_hex(second, 32));
  h.final(second);
  EXPECT_EQ(to_hex(second, 32), "69217a3079908094e11121d042354a7c1f55b6482ca1a51e1b250dfd1ed0eef9");
}

// blake2s-kat.txt (BLAKE2 reference package), keyed entries: key = 00..1f,
// input = 00..(n-1).
TEST(KeyedBlake2s, ReferenceKatThroughOpenSslAndReference) {
  struct Kat {
    std::size_t len;
    const char* hash;
  };
  const Kat kats[] = {
      {0, "48a8997da407876b3d79c0d92325ad3b89cbb754d86ab71aee047ad345fd2c49"},
      {1, "40d15fee7c328830166ac3f918650f807e7e01e177258cdc0a39b11f598066f1"},
      {64, "8975b0577fd35566d750b362b0897a26c399136df07bababbde6203ff2954ed4"},
      {65, "21fe0ceb0052be7fb0f004187cacd7de67fa6eb0938d927677f2398c132317a8"},
      {255, "3fb735061abc519dfe979e54c1ee5bfad0a9d858b3315bad34bde999efd724dd"},
  };
  const auto key = counting_bytes(32);
  for (const Kat& k : kats) {
    const auto in = counting_bytes(k.len);
    EXPECT_EQ(to_hex(RefBlake2s::hash(32, key, in)), k.hash) << "reference, len " << k.len;
    EXPECT_EQ(to_hex(openssl_blake2smac(key, in, 32)), k.hash) << "OpenSSL BLAKE2SMAC, len " << k.len;
  }
}

TEST(KeyedBlake2s, Mac128MatchesReference) {
  std::mt19937_64 rng(128);
  // 32-byte keys are mac1 and cookie secrets, 16-byte keys are mac2 (keyed by
  // a cookie); the rest checks the general 1..32 range.
  std::vector<std::size_t> key_lens = {16, 32, 1, 31};
  for (std::size_t k = 2; k <= 30; k += 4) key_lens.push_back(k);
  for (std::size_t klen : key_lens) {
    for (std::size_t len : {0u, 1u, 63u, 64u, 65u, 116u, 148u, 200u, 1000u}) {
      const auto key = random_bytes_vec(rng, klen);
      const auto msg = random_bytes_vec(rng, len);
      std::uint8_t out[16];
      blake2s_mac128(out, as_bytes(key), as_bytes(msg));
      EXPECT_EQ(to_hex(out, 16), to_hex(RefBlake2s::hash(16, key, msg))) << "key " << klen << " len " << len;
    }
  }
}

TEST(KeyedBlake2s, Mac128IsNotATruncatedMac256) {
  // The output length is a BLAKE2 parameter-block field: a 16-byte MAC is a
  // different function, not the first half of the 32-byte one. WireGuard
  // interop depends on getting this right.
  const auto key = counting_bytes(32);
  const auto msg = counting_bytes(64);
  std::uint8_t out[16];
  blake2s_mac128(out, as_bytes(key), as_bytes(msg));
  const auto full = RefBlake2s::hash(32, key, msg);
  EXPECT_NE(to_hex(out, 16), to_hex(full.data(), 16));
}

TEST(HmacBlake2s, MatchesReferenceAndOpenSslHmac) {
  std::mt19937_64 rng(2104);
  for (std::size_t klen : {0u, 1u, 16u, 32u, 63u, 64u, 65u, 100u}) {
    for (std::size_t len : {0u, 1u, 32u, 33u, 64u, 200u}) {
      const auto key = random_bytes_vec(rng, klen);
      const auto msg = random_bytes_vec(rng, len);
      std::uint8_t out[32];
      hmac_blake2s(out, as_bytes(key), as_bytes(msg));
      EXPECT_EQ(to_hex(out, 32), to_hex(ref_hmac(key, msg))) << "key " << klen << " len " << len;
      EXPECT_EQ(to_hex(out, 32), to_hex(openssl_hmac(key, msg))) << "key " << klen << " len " << len;
    }
  }
}

// Noise KDF: t0 = HMAC(ck, input), t1 = HMAC(t0, 0x01), ti = HMAC(t0, t(i-1) || i).
TEST(Kdf, FollowsTheNoiseHkdfChain) {
  std::mt19937_64 rng(5869);
  for (std::size_t len : {0u, 32u, 33u, 100u}) {
    const auto ck = random_bytes_vec(rng, 32);
    const auto input = random_bytes_vec(rng, len);
    const auto t0 = ref_hmac(ck, input);
    const auto t1 = ref_hmac(t0, {0x01});
    auto m2 = t1;
    m2.push_back(0x02);
    const auto t2 = ref_hmac(t0, m2);
    auto m3 = t2;
    m3.push_back(0x03);
    const auto t3 = ref_hmac(t0, m3);

    std::uint8_t o1[32];
    std::uint8_t o2[32];
    std::uint8_t o3[32];
    kdf(o1, o2, o3, ck.data(), as_bytes(input));
    EXPECT_EQ(to_hex(o1, 32), to_hex(t1));
    EXPECT_EQ(to_hex(o2, 32), to_hex(t2));
    EXPECT_EQ(to_hex(o3, 32), to_hex(t3));

    // KDF1/KDF2 are prefixes of KDF3.
    std::uint8_t p1[32];
    std::uint8_t p2[32];
    kdf(p1, nullptr, nullptr, ck.data(), as_bytes(input));
    EXPECT_EQ(to_hex(p1, 32), to_hex(t1));
    kdf(p1, p2, nullptr, ck.data(), as_bytes(input));
    EXPECT_EQ(to_hex(p1, 32), to_hex(t1));
    EXPECT_EQ(to_hex(p2, 32), to_hex(t2));
    kdf(p1, nullptr, o3, ck.data(), as_bytes(input));
    EXPECT_EQ(to_hex(o3, 32), to_hex(t3));
  }
}

TEST(Kdf, OutputMayAliasTheChainingKeyAndInput) {
  std::mt19937_64 rng(42);
  const auto ck = random_bytes_vec(rng, 32);
  const auto input = random_bytes_vec(rng, 32);
  std::uint8_t want1[32];
  std::uint8_t want2[32];
  kdf(want1, want2, nullptr, ck.data(), as_bytes(input));

  // ck = KDF1(ck, input), the MixKey shape.
  std::array<std::uint8_t, 32> chain;
  std::memcpy(chain.data(), ck.data(), 32);
  std::uint8_t key[32];
  kdf(chain.data(), key, nullptr, chain.data(), as_bytes(input));
  EXPECT_EQ(to_hex(chain), to_hex(want1, 32));
  EXPECT_EQ(to_hex(key, 32), to_hex(want2, 32));

  // Input aliasing the second output.
  std::array<std::uint8_t, 32> buf;
  std::memcpy(buf.data(), input.data(), 32);
  std::uint8_t out1[32];
  kdf(out1, buf.data(), nullptr, ck.data(), Bytes(buf.data(), buf.size()));
  EXPECT_EQ(to_hex(out1, 32), to_hex(want1, 32));
  EXPECT_EQ(to_hex(buf), to_hex(want2, 32));
}

}  // namespace
}  // namespace moongate::crypto
