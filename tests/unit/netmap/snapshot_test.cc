// Snapshot encoding: round trips of real and generated netmaps, and every
// damaged form (truncations, bit flips, lying counts) refused with a reason.
#include "netmap/snapshot.h"

#include <gtest/gtest.h>

#include <random>
#include <vector>

#include "config/config.h"

namespace moongate::netmap {
namespace {

config::IpPrefix prefix(const char* text) {
  auto p = config::parse_ip_prefix(text, config::PrefixKind::kNetwork);
  EXPECT_TRUE(p.has_value()) << text;
  return p.value_or(config::IpPrefix{});
}

// A netmap with every kind of field: PSKs, both endpoint families, IPv4 and
// IPv6 allowed IPs, peers without allowed IPs, routes of both families.
Netmap varied(std::size_t peers, std::uint32_t seed) {
  std::mt19937 rng(seed);
  Netmap n;
  n.generation = 7;
  n.has_private_key = true;
  for (std::size_t i = 0; i < 32; ++i) n.private_key.data()[i] = static_cast<std::uint8_t>(rng());
  n.listen_port = 51821;
  for (std::size_t i = 0; i < peers; ++i) {
    config::Peer p;
    for (auto& b : p.public_key) b = static_cast<std::uint8_t>(rng());
    if (i % 3 == 0) {
      config::SecretKey psk;
      psk.randomize();
      p.preshared_key = psk;
    }
    if (i % 4 != 3) {
      config::Endpoint e;
      e.addr.family = i % 2 ? 6 : 4;
      for (std::size_t k = 0; k < (e.addr.family == 4 ? 4u : 16u); ++k) e.addr.bytes[k] = static_cast<std::uint8_t>(rng());
      e.port = static_cast<std::uint16_t>(1 + rng() % 65535);
      p.endpoint = e;
    }
    for (std::size_t k = 0; k < i % 4; ++k) {
      config::IpPrefix a;
      a.addr.family = k % 2 ? 6 : 4;
      a.len = static_cast<std::uint8_t>(a.addr.family == 4 ? 8 + rng() % 25 : 16 + rng() % 113);
      for (std::size_t b = 0; b < (a.addr.family == 4 ? 4u : 16u); ++b) a.addr.bytes[b] = static_cast<std::uint8_t>(rng());
      p.allowed_ips.push_back(a.network());
    }
    p.persistent_keepalive = static_cast<std::uint16_t>(rng() % 100);
    n.peers.push_back(std::move(p));
  }
  config::Route r4;
  r4.prefix = prefix("10.11.0.0/24");
  r4.via = *config::parse_ip_address("10.10.0.2");
  r4.port_index = 1;
  config::Route r6;
  r6.prefix = prefix("fd11::/64");
  r6.via = *config::parse_ip_address("fd10::2");
  r6.port_index = 1;
  n.routes = {r4, r6};
  return n;
}

std::vector<std::uint8_t> encoded(const Netmap& n) {
  std::vector<std::uint8_t> out(encoded_size(n));
  EXPECT_EQ(encode(n, out), out.size());
  return out;
}

TEST(Snapshot, RoundTripsAVariedNetmap) {
  const Netmap n = varied(200, 1);
  const auto bytes = encoded(n);
  EXPECT_EQ(peek_generation(bytes), 7u);
  Netmap back;
  ASSERT_EQ(decode(bytes, back), "");
  EXPECT_TRUE(back == n);
}

TEST(Snapshot, RoundTripsTheExampleConfigs) {
  for (const char* name : {"subnet-router.yaml", "hub.yaml"}) {
    const config::Result r = config::load_file(std::string(MOONGATE_CONFIG_EXAMPLES_DIR) + "/" + name);
    ASSERT_TRUE(r.ok()) << r.error_text();
    const Netmap n = from_config(r.config());
    Netmap back;
    ASSERT_EQ(decode(encoded(n), back), "") << name;
    EXPECT_TRUE(back == n) << name;
    EXPECT_EQ(back.peers.size(), r.config().peers.size());
  }
}

TEST(Snapshot, EmptyNetmapAndNoPrivateKey) {
  Netmap n;
  Netmap back;
  back.has_private_key = true;
  ASSERT_EQ(decode(encoded(n), back), "");
  EXPECT_FALSE(back.has_private_key);
  EXPECT_TRUE(back.peers.empty());
  EXPECT_TRUE(back == n);
}

TEST(Snapshot, RefusesTooSmallOutput) {
  const Netmap n = varied(5, 2);
  std::vector<std::uint8_t> out(encoded_size(n) - 1);
  EXPECT_EQ(encode(n, out), 0u);
}

TEST(Snapshot, EveryTruncationIsRefused) {
  const auto bytes = encoded(varied(6, 3));
  for (std::size_t len = 0; len < bytes.size(); ++len) {
    Netmap out;
    EXPECT_NE(decode(std::span<const std::uint8_t>(bytes.data(), len), out), "") << len;
  }
}

TEST(Snapshot, EveryBitFlipIsRefused) {
  auto bytes = encoded(varied(6, 4));
  for (std::size_t i = 0; i < bytes.size(); ++i)
    for (int bit = 0; bit < 8; ++bit) {
      bytes[i] ^= static_cast<std::uint8_t>(1u << bit);
      Netmap out;
      EXPECT_NE(decode(bytes, out), "") << "byte " << i << " bit " << bit;
      bytes[i] ^= static_cast<std::uint8_t>(1u << bit);
    }
  Netmap out;
  EXPECT_EQ(decode(bytes, out), "");
}

TEST(Snapshot, LyingCountsAreRefusedBeforeAllocating) {
  auto bytes = encoded(varied(2, 5));
  // 4 billion peers in a few hundred bytes: refused by the size check.
  bytes[20] = bytes[21] = bytes[22] = bytes[23] = 0xff;
  Netmap out;
  EXPECT_EQ(decode(bytes, out), "snapshot size " + std::to_string(bytes.size()) + " does not match its counts");
}

TEST(Snapshot, AHundredThousandPeers) {
  const Netmap n = varied(100000, 6);
  const auto bytes = encoded(n);
  Netmap back;
  ASSERT_EQ(decode(bytes, back), "");
  EXPECT_TRUE(back == n);
}

}  // namespace
}  // namespace moongate::netmap
