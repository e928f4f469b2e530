// AeadBurst (IPsec-MB) against the libsodium single-message path, on every
// code path (SSE, AVX, AVX2, AVX-512) the CPU supports: random keys,
// counters and lengths, mixed keys within a burst, keepalives, per-packet
// verdicts with forged packets, and invalid ops.
#include <gtest/gtest.h>

#include <cstdint>
#include <cstring>
#include <memory>
#include <random>
#include <stdexcept>
#include <string>
#include <vector>

#include "crypto/aead.h"
#include "crypto/aead_burst.h"
#include "tests/unit/crypto/test_util.h"

namespace moongate::crypto {
namespace {

using test::to_hex;

// One packet: its own heap buffers (so ASan sees each one's bounds), its
// key, counter and optional AAD.
struct Packet {
  std::vector<std::uint8_t> plain;
  std::vector<std::uint8_t> data;  // in-place buffer handed to AeadBurst
  std::uint8_t tag[16] = {};
  std::uint8_t key[32] = {};
  std::uint64_t counter = 0;
  std::vector<std::uint8_t> aad;

  AeadOp op() {
    AeadOp o;
    o.data = data.empty() ? nullptr : data.data();
    o.len = static_cast<std::uint32_t>(data.size());
    o.tag = tag;
    o.key = key;
    o.counter = counter;
    o.aad = aad.empty() ? nullptr : aad.data();
    o.aad_len = static_cast<std::uint32_t>(aad.size());
    return o;
  }

  // libsodium's ciphertext || tag for this packet, the reference answer.
  std::vector<std::uint8_t> sodium_sealed() const {
    std::vector<std::uint8_t> out(plain.size() + 16);
    chacha20poly1305_encrypt(out.data(), plain.data(), plain.size(), aad.empty() ? nullptr : aad.data(), aad.size(),
                             counter, key);
    return out;
  }
};

class Random {
 public:
  explicit Random(std::uint64_t seed) : rng_(seed) {}
  std::uint64_t u64() { return rng_(); }
  std::size_t below(std::size_t n) { return static_cast<std::size_t>(rng_() % n); }
  void fill(std::uint8_t* p, std::size_t n) {
    for (std::size_t i = 0; i < n; ++i) p[i] = static_cast<std::uint8_t>(rng_());
  }

 private:
  std::mt19937_64 rng_;
};

// Lengths that straddle ChaCha20 (64 B) and Poly1305 (16 B) block edges,
// the WireGuard MTU payloads, and zero for keepalives.
constexpr std::size_t kEdgeLengths[] = {0, 1, 15, 16, 17, 63, 64, 65, 127, 128, 129, 255, 256, 511, 512, 1419, 1420, 1500};

std::vector<Packet> make_packets(Random& rnd, std::size_t n, bool shared_key, bool with_aad) {
  std::vector<Packet> pk(n);
  std::uint8_t key[32];
  rnd.fill(key, sizeof key);
  for (std::size_t i = 0; i < n; ++i) {
    Packet& p = pk[i];
    const std::size_t len = rnd.below(4) == 0 ? kEdgeLengths[rnd.below(std::size(kEdgeLengths))] : rnd.below(1501);
    p.plain.resize(len);
    rnd.fill(p.plain.data(), len);
    p.data = p.plain;
    if (shared_key) {
      std::memcpy(p.key, key, 32);
    } else {
      rnd.fill(p.key, 32);
    }
    switch (rnd.below(4)) {
      case 0: p.counter = 0; break;
      case 1: p.counter = ~std::uint64_t{0} - rnd.below(3); break;
      default: p.counter = rnd.u64(); break;
    }
    if (with_aad) {
      p.aad.resize(rnd.below(65));
      rnd.fill(p.aad.data(), p.aad.size());
    }
  }
  return pk;
}

std::string param_name(const ::testing::TestParamInfo<AeadArch>& info) { return aead_arch_name(info.param); }

class AeadBurstTest : public ::testing::TestWithParam<AeadArch> {
 protected:
  void SetUp() override {
    try {
      burst_ = std::make_unique<AeadBurst>(GetParam());
    } catch (const std::runtime_error& e) {
      GTEST_SKIP() << aead_arch_name(GetParam()) << " not available here: " << e.what();
    }
    if (GetParam() == AeadArch::kAuto) {
      EXPECT_NE(burst_->arch(), AeadArch::kAuto) << "auto must resolve to a concrete code path";
    } else {
      EXPECT_EQ(burst_->arch(), GetParam());
    }
    std::printf("[          ] IPsec-MB code path: %s\n", burst_->arch_name());
  }

  std::uint32_t encrypt(std::vector<Packet>& pk) {
    std::vector<AeadOp> ops;
    for (Packet& p : pk) ops.push_back(p.op());
    return burst_->encrypt(ops.data(), static_cast<std::uint32_t>(ops.size()));
  }

  std::uint32_t decrypt(std::vector<Packet>& pk, std::vector<char>& verdicts) {
    std::vector<AeadOp> ops;
    for (Packet& p : pk) ops.push_back(p.op());
    std::unique_ptr<bool[]> ok(new bool[ops.size() + 1]);
    const std::uint32_t n = burst_->decrypt(ops.data(), static_cast<std::uint32_t>(ops.size()), ok.get());
    verdicts.assign(ops.size(), 0);
    for (std::size_t i = 0; i < ops.size(); ++i) verdicts[i] = ok[i] ? 1 : 0;
    return n;
  }

  std::unique_ptr<AeadBurst> burst_;
};

TEST_P(AeadBurstTest, EncryptMatchesLibsodium) {
  Random rnd(0xC0FFEE);
  for (std::size_t n : {1u, 7u, 32u, 128u}) {
    for (int round = 0; round < 4; ++round) {
      // Alternate one key per burst (a single peer) and a key per packet
      // (many peers interleaved), with and without AAD.
      auto pk = make_packets(rnd, n, round % 2 == 0, round >= 2);
      ASSERT_EQ(encrypt(pk), n);
      for (std::size_t i = 0; i < n; ++i) {
        const auto want = pk[i].sodium_sealed();
        ASSERT_EQ(to_hex(pk[i].data.data(), pk[i].data.size()), to_hex(want.data(), pk[i].data.size()))
            << "ciphertext, burst " << n << " packet " << i << " len " << pk[i].data.size();
        ASSERT_EQ(to_hex(pk[i].tag, 16), to_hex(want.data() + pk[i].data.size(), 16))
            << "tag, burst " << n << " packet " << i << " len " << pk[i].data.size();
      }
    }
  }
}

TEST_P(AeadBurstTest, DecryptRoundTripsLibsodiumCiphertext) {
  Random rnd(0xDECAF);
  for (std::size_t n : {1u, 7u, 32u, 128u}) {
    auto pk = make_packets(rnd, n, n == 32, n == 7);
    for (Packet& p : pk) {
      const auto sealed = p.sodium_sealed();
      if (!p.data.empty()) std::memcpy(p.data.data(), sealed.data(), p.data.size());
      std::memcpy(p.tag, sealed.data() + p.data.size(), 16);
    }
    std::vector<char> ok;
    ASSERT_EQ(decrypt(pk, ok), n);
    for (std::size_t i = 0; i < n; ++i) {
      EXPECT_TRUE(ok[i]) << "packet " << i;
      EXPECT_EQ(pk[i].data, pk[i].plain) << "packet " << i;
    }
  }
}

// Only the forged packets are flagged, whatever was forged, and the return
// value counts the good ones.
TEST_P(AeadBurstTest, DecryptFlagsExactlyTheForgedPackets) {
  Random rnd(0xBAD);
  for (std::size_t n : {7u, 32u, 128u}) {
    auto pk = make_packets(rnd, n, false, false);
    ASSERT_EQ(encrypt(pk), n);
    std::vector<char> forged(n, 0);
    std::size_t n_forged = 0;
    for (std::size_t i = 0; i < n; ++i) {
      if (rnd.below(5) != 0) continue;
      Packet& p = pk[i];
      switch (rnd.below(4)) {
        case 0: p.tag[rnd.below(16)] ^= static_cast<std::uint8_t>(1u << rnd.below(8)); break;
        case 1:
          if (p.data.empty()) {
            p.tag[0] ^= 0x80;
          } else {
            p.data[rnd.below(p.data.size())] ^= 0x01;
          }
          break;
        case 2: p.counter ^= std::uint64_t{1} << rnd.below(64); break;
        default: p.key[rnd.below(32)] ^= 0x10; break;
      }
      forged[i] = 1;
      ++n_forged;
    }
    std::vector<char> ok;
    EXPECT_EQ(decrypt(pk, ok), n - n_forged) << "burst " << n;
    for (std::size_t i = 0; i < n; ++i) {
      EXPECT_EQ(ok[i], forged[i] ? 0 : 1) << "burst " << n << " packet " << i;
      if (!forged[i]) {
        EXPECT_EQ(pk[i].data, pk[i].plain) << "packet " << i;
      }
    }
  }
}

// WireGuard keepalives are empty data messages: the tag alone must match.
TEST_P(AeadBurstTest, KeepalivesHaveCorrectTags) {
  Random rnd(0x0);
  std::vector<Packet> pk(9);
  for (std::size_t i = 0; i < pk.size(); ++i) {
    rnd.fill(pk[i].key, 32);
    pk[i].counter = rnd.u64();
    if (i % 3 == 1) {  // mixed with non-empty packets in the same burst
      pk[i].plain.resize(1 + rnd.below(100));
      rnd.fill(pk[i].plain.data(), pk[i].plain.size());
      pk[i].data = pk[i].plain;
    }
  }
  ASSERT_EQ(encrypt(pk), pk.size());
  for (std::size_t i = 0; i < pk.size(); ++i) {
    const auto want = pk[i].sodium_sealed();
    EXPECT_EQ(to_hex(pk[i].tag, 16), to_hex(want.data() + pk[i].data.size(), 16)) << "packet " << i;
  }
  std::vector<char> ok;
  EXPECT_EQ(decrypt(pk, ok), pk.size());
  ASSERT_EQ(encrypt(pk), pk.size());  // back to ciphertext for the forged round
  pk[0].tag[5] ^= 4;
  EXPECT_EQ(decrypt(pk, ok), pk.size() - 1);
  EXPECT_FALSE(ok[0]);
  for (std::size_t i = 1; i < pk.size(); ++i) EXPECT_TRUE(ok[i]) << "packet " << i;
}

// An op IPsec-MB would reject (no key) is left out of the burst: it is not
// counted and its verdict is false, and the others are unaffected.
TEST_P(AeadBurstTest, InvalidOpsAreSkipped) {
  Random rnd(0x5EED);
  auto pk = make_packets(rnd, 8, false, false);
  std::vector<AeadOp> ops;
  for (Packet& p : pk) ops.push_back(p.op());
  ops[3].key = nullptr;
  ops[5].tag = nullptr;
  EXPECT_EQ(burst_->encrypt(ops.data(), static_cast<std::uint32_t>(ops.size())), 6u);
  for (std::size_t i : {0u, 1u, 2u, 4u, 6u, 7u}) {
    const auto want = pk[i].sodium_sealed();
    EXPECT_EQ(to_hex(pk[i].tag, 16), to_hex(want.data() + pk[i].data.size(), 16)) << "packet " << i;
  }
  EXPECT_EQ(pk[3].data, pk[3].plain) << "a skipped op is not touched";

  bool ok[8];
  EXPECT_EQ(burst_->decrypt(ops.data(), static_cast<std::uint32_t>(ops.size()), ok), 6u);
  for (std::size_t i = 0; i < 8; ++i) EXPECT_EQ(ok[i], i != 3 && i != 5) << "packet " << i;

  EXPECT_EQ(burst_->encrypt(ops.data(), 0), 0u);
  EXPECT_EQ(burst_->decrypt(ops.data(), 0, ok), 0u);
}

// Many bursts through one manager: job slots are recycled, nonces and tag
// slots reused; nothing may leak from one burst into the next.
TEST_P(AeadBurstTest, ManyConsecutiveBursts) {
  Random rnd(0xF00D);
  for (int round = 0; round < 50; ++round) {
    const std::size_t n = 1 + rnd.below(AeadBurst::kMaxBurst);
    auto pk = make_packets(rnd, n, rnd.below(2) == 0, false);
    ASSERT_EQ(encrypt(pk), n);
    for (std::size_t i = 0; i < n; ++i) {
      const auto want = pk[i].sodium_sealed();
      ASSERT_EQ(to_hex(pk[i].tag, 16), to_hex(want.data() + pk[i].data.size(), 16))
          << "round " << round << " packet " << i;
    }
    std::vector<char> ok;
    ASSERT_EQ(decrypt(pk, ok), n) << "round " << round;
    for (std::size_t i = 0; i < n; ++i) ASSERT_EQ(pk[i].data, pk[i].plain) << "round " << round << " packet " << i;
  }
}

INSTANTIATE_TEST_SUITE_P(Arch, AeadBurstTest,
                         ::testing::Values(AeadArch::kAuto, AeadArch::kSse, AeadArch::kAvx, AeadArch::kAvx2,
                                           AeadArch::kAvx512),
                         param_name);

TEST(AeadArchName, NamesEveryArch) {
  EXPECT_STREQ(aead_arch_name(AeadArch::kAuto), "auto");
  EXPECT_STREQ(aead_arch_name(AeadArch::kSse), "sse");
  EXPECT_STREQ(aead_arch_name(AeadArch::kAvx), "avx");
  EXPECT_STREQ(aead_arch_name(AeadArch::kAvx2), "avx2");
  EXPECT_STREQ(aead_arch_name(AeadArch::kAvx512), "avx512");
}

}  // namespace
}  // namespace moongate::crypto
