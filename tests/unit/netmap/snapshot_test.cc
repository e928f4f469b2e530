// Snapshot encoding: round trips of real and generated netmaps, and every
// damaged form (truncations, bit flips, lying counts) refused with a reason.
#include "netmap/snapshot.h"

#include <gtest/gtest.h>

#include <cstring>
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
// IPv6 allowed IPs, peers without allowed IPs, routes of both families,
// exit nodes, names and tags (none, one, several).
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
    p.exit_node = i % 5 == 1;
    if (i % 2 == 0) p.name = "peer-" + std::to_string(i);
    for (std::size_t k = 0; k < i % 3; ++k) p.tags.push_back(k == 0 ? "laptop" : "eng.t" + std::to_string(i));
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
  for (const char* name : {"subnet-router.yaml", "hub.yaml", "exit-node.yaml"}) {
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

// The same FNV-1a as the encoder: rewriting it after a deliberate change
// reaches the structural checks behind the checksum.
void reseal(std::vector<std::uint8_t>& b) {
  std::uint32_t h = 2166136261u;
  for (std::size_t i = 0; i < b.size(); ++i)
    if (i < 36 || i >= 40) h = (h ^ b[i]) * 16777619u;
  for (int i = 0; i < 4; ++i) b[36 + i] = static_cast<std::uint8_t>(h >> (8 * i));
}

Netmap labelled() {
  Netmap n;
  for (int i = 0; i < 3; ++i) {
    config::Peer p;
    p.public_key.fill(static_cast<std::uint8_t>(i + 1));
    n.peers.push_back(p);
  }
  n.peers[0].name = "alice";
  n.peers[0].tags = {"laptop", "eng"};
  n.peers[0].exit_node = true;
  n.peers[2].name = "ci";
  return n;
}

// Where a peer's record and the labels start in labelled()'s snapshot.
constexpr std::size_t kPeers = kSnapshotHeaderLen + 32;
constexpr std::size_t kLabels = kPeers + 3 * kSnapshotPeerLen;

TEST(Snapshot, CarriesExitNodeNameAndTags) {
  const Netmap n = labelled();
  const auto bytes = encoded(n);
  // alice: 2+5, 2, 2+6, 2+3; the second peer: 2, 2; ci: 2+2, 2.
  EXPECT_EQ(bytes.size(), kLabels + 22 + 4 + 6);
  Netmap back;
  ASSERT_EQ(decode(bytes, back), "");
  ASSERT_EQ(back.peers.size(), 3u);
  EXPECT_TRUE(back.peers[0].exit_node);
  EXPECT_EQ(back.peers[0].name, "alice");
  EXPECT_EQ(back.peers[0].tags, (std::vector<std::string>{"laptop", "eng"}));
  EXPECT_FALSE(back.peers[1].exit_node);
  EXPECT_EQ(back.peers[1].name, "");
  EXPECT_TRUE(back.peers[1].tags.empty());
  EXPECT_EQ(back.peers[2].name, "ci");
  EXPECT_TRUE(back == n);
  // Only exit_node differs: the snapshots differ, and so do the netmaps.
  Netmap flipped = n;
  flipped.peers[0].exit_node = false;
  const auto other = encoded(flipped);
  ASSERT_EQ(decode(other, back), "");
  EXPECT_FALSE(back.peers[0].exit_node);
  EXPECT_FALSE(back == n);
}

TEST(Snapshot, RefusesToEncodeLabelsBeyondTheBounds) {
  Netmap n = labelled();
  n.peers[1].name.assign(kSnapshotMaxLabel + 1, 'a');
  std::vector<std::uint8_t> out(encoded_size(n) + 1024);
  EXPECT_EQ(encode(n, out), 0u);
  EXPECT_NE(encodable(n).find("beyond the snapshot's bounds"), std::string::npos) << encodable(n);
  EXPECT_EQ(encodable(labelled()), "");
  n = labelled();
  n.peers[1].tags.assign(kSnapshotMaxTags + 1, "t");
  out.resize(encoded_size(n) + 1024);
  EXPECT_EQ(encode(n, out), 0u);
  n = labelled();
  n.peers[1].name.assign(kSnapshotMaxLabel, 'a');  // the bound itself is fine
  out.resize(encoded_size(n));
  EXPECT_EQ(encode(n, out), out.size());
  Netmap back;
  ASSERT_EQ(decode(out, back), "");
  EXPECT_EQ(back.peers[1].name.size(), kSnapshotMaxLabel);
}

TEST(Snapshot, MalformedLabelsAreRefusedBehindAValidChecksum) {
  const auto good = encoded(labelled());
  auto refused = [&](const char* what, auto&& damage, const std::string& reason) {
    auto b = good;
    damage(b);
    reseal(b);
    Netmap out;
    EXPECT_EQ(decode(b, out), reason) << what;
  };
  // A name length past its peer's labels.
  refused("name length", [](auto& b) { b[kLabels] = 200; }, "peer name malformed");
  // A tag count larger than the tags there.
  refused("tag count", [](auto& b) { b[kLabels + 7] = 3; }, "peer tag malformed");
  // A control byte in a name.
  refused("control byte", [](auto& b) { b[kLabels + 3] = 0x01; }, "peer name malformed");
  // The first peer's labels shortened by one byte: its last tag no longer fits.
  refused("short labels", [](auto& b) { b[kPeers + 100] -= 1; }, "peer tag malformed");
  // The first peer's labels lengthened: the next peer's offset no longer follows.
  refused("long labels", [](auto& b) { b[kPeers + 100] += 1; }, "peer labels longer than its name and tags");
  // A peer's labels offset elsewhere than after the previous peer's.
  refused("offset", [](auto& b) { b[kPeers + kSnapshotPeerLen + 96] += 2; }, "peer labels out of bounds");
  // An unknown peer flag next to exit_node.
  refused("flags", [](auto& b) { b[kPeers + 64] |= 8; }, "peer with unknown flags");
  // The header's label bytes not matching the size.
  refused("label total", [](auto& b) { b[40] += 1; },
          "snapshot size " + std::to_string(good.size()) + " does not match its counts");
}

TEST(Snapshot, TrailingLabelBytesNotOwnedByAPeerAreRefused) {
  auto b = encoded(labelled());
  // Two more label bytes, declared in the header and the size, owned by no peer.
  b.push_back(0);
  b.push_back(0);
  const std::uint32_t size = static_cast<std::uint32_t>(b.size());
  for (int i = 0; i < 4; ++i) b[16 + i] = static_cast<std::uint8_t>(size >> (8 * i));
  b[40] += 2;
  reseal(b);
  Netmap out;
  EXPECT_EQ(decode(b, out), "labels not owned by any peer");
}

// labelled() with a policy of every kind of entry: tags, groups (one
// empty), rules with several sources and destinations, a default proto.
Netmap with_policy() {
  Netmap n = labelled();
  policy::PolicySpec& p = n.policy.emplace();
  p.tags = {"laptop", "eng"};
  p.groups["staff"] = {"alice", "ci"};
  p.groups["nobody"] = {};
  p.rules.push_back({{"group:staff", "tag:eng"}, {"10.0.0.0/8:22,80,443", "*:53"}, "tcp"});
  p.rules.push_back({{"*"}, {"198.51.100.0/24:*"}, "any"});
  return n;
}

TEST(Snapshot, CarriesThePolicy) {
  const Netmap n = with_policy();
  const auto bytes = encoded(n);
  Netmap back;
  ASSERT_EQ(decode(bytes, back), "");
  ASSERT_TRUE(back.policy.has_value());
  EXPECT_EQ(*back.policy, *n.policy);
  EXPECT_TRUE(back == n);
  // A policy and none differ; an empty policy (`policy:` alone: deny all)
  // is a policy.
  Netmap none = labelled();
  ASSERT_EQ(decode(encoded(none), back), "");
  EXPECT_FALSE(back.policy.has_value());
  EXPECT_FALSE(back == n);
  Netmap empty = labelled();
  empty.policy.emplace();
  ASSERT_EQ(decode(encoded(empty), back), "");
  ASSERT_TRUE(back.policy.has_value());
  EXPECT_TRUE(back.policy->rules.empty());
  EXPECT_TRUE(back == empty);
  // Only one rule's destination differs: so do the netmaps.
  Netmap other = n;
  other.policy->rules[1].dst[0] = "198.51.100.0/24:80";
  ASSERT_EQ(decode(encoded(other), back), "");
  EXPECT_TRUE(back == other);
  EXPECT_FALSE(back == n);
}

TEST(Snapshot, PolicyTruncationsAndBitFlipsAreRefused) {
  auto bytes = encoded(with_policy());
  for (std::size_t len = 0; len < bytes.size(); ++len) {
    Netmap out;
    EXPECT_NE(decode(std::span<const std::uint8_t>(bytes.data(), len), out), "") << len;
  }
  const std::size_t policy_at = bytes.size() - (bytes[44] | bytes[45] << 8);
  for (std::size_t i = policy_at; i < bytes.size(); ++i)
    for (int bit = 0; bit < 8; ++bit) {
      bytes[i] ^= static_cast<std::uint8_t>(1u << bit);
      Netmap out;
      EXPECT_NE(decode(bytes, out), "") << "byte " << i << " bit " << bit;
      bytes[i] ^= static_cast<std::uint8_t>(1u << bit);
    }
}

TEST(Snapshot, MalformedPoliciesAreRefusedBehindAValidChecksum) {
  const Netmap n = with_policy();
  const auto good = encoded(n);
  const std::size_t at = good.size() - (good[44] | good[45] << 8);
  // Layout of with_policy()'s section: tags count (2), "laptop" (2+6),
  // "eng" (2+3); groups count (2), "nobody" (2+6) with 0 members (2),
  // "staff" (2+5) with 2 members (2, 2+5, 2+2); rules count (2) ...
  constexpr std::size_t kTags = 0, kFirstTag = 2, kGroups = 15, kNobodyMembers = 25, kRules = 47;
  ASSERT_EQ(good[at + kRules], 2);
  auto refused = [&](const char* what, auto&& damage, const std::string& reason) {
    auto b = good;
    damage(b);
    reseal(b);
    Netmap out;
    EXPECT_EQ(decode(b, out), reason) << what;
  };
  refused("tag count", [&](auto& b) { b[at + kTags] = 3; }, "policy tags malformed");
  refused("tag count past the bytes", [&](auto& b) { b[at + kTags] = 0xff; b[at + kTags + 1] = 0x0f; },
          "policy tags malformed");
  refused("tag length", [&](auto& b) { b[at + kFirstTag] = 0xff; }, "policy tags malformed");
  refused("control byte", [&](auto& b) { b[at + kFirstTag + 2] = '\n'; }, "policy tags malformed");
  refused("group count", [&](auto& b) { b[at + kGroups] = 3; }, "policy group malformed");
  refused("group count past the bytes", [&](auto& b) { b[at + kGroups] = 0x01; b[at + kGroups + 1] = 0x10; },
          "policy groups malformed");
  refused("empty group's members", [&](auto& b) { b[at + kNobodyMembers] = 1; }, "policy group malformed");
  refused("rule count up", [&](auto& b) { b[at + kRules] = 3; }, "policy rule malformed");
  refused("rule count down", [&](auto& b) { b[at + kRules] = 1; }, "policy section longer than its policy");
  refused("rule count beyond the bound", [&](auto& b) { b[at + kRules] = 0x01; b[at + kRules + 1] = 0x10; },
          "policy rules malformed");
  // Two groups of one name: "aaaaa" renamed "staff" behind the checksum.
  {
    Netmap twin = with_policy();
    twin.policy->groups.erase("nobody");
    twin.policy->groups["aaaaa"] = {};
    auto b = encoded(twin);
    const std::size_t t = b.size() - (b[44] | b[45] << 8);
    ASSERT_EQ(std::memcmp(&b[t + kGroups + 4], "aaaaa", 5), 0);
    std::memcpy(&b[t + kGroups + 4], "staff", 5);
    reseal(b);
    Netmap out;
    EXPECT_EQ(decode(b, out), "policy group named twice");
  }
  // Policy bytes declared while the flag says there is no policy.
  refused("flag", [&](auto& b) { b[34] &= static_cast<std::uint8_t>(~2); }, "policy bytes without a policy");
  refused("unknown flag", [&](auto& b) { b[34] |= 4; }, "snapshot with unknown flags");
  // The policy's length lying: the size no longer matches.
  refused("policy length", [&](auto& b) { b[44] += 1; },
          "snapshot size " + std::to_string(good.size()) + " does not match its counts");
}

TEST(Snapshot, RefusesToEncodeAPolicyBeyondTheBounds) {
  Netmap n = with_policy();
  n.policy->rules.resize(kSnapshotMaxRules + 1, n.policy->rules[1]);
  std::vector<std::uint8_t> out(encoded_size(n));
  EXPECT_EQ(encode(n, out), 0u);
  EXPECT_EQ(encodable(n), "policy.rules: 4097 entries, the snapshot holds 4096");
  n = with_policy();
  n.policy->rules[0].dst[1].assign(kSnapshotMaxPolicyText + 1, '1');
  out.resize(encoded_size(n));
  EXPECT_EQ(encode(n, out), 0u);
  EXPECT_EQ(encodable(n), "policy.rules[0].dst[1]: longer than 4096 characters");
  n = with_policy();
  n.policy->groups["staff"][1] = "c\ti";
  EXPECT_EQ(encodable(n), "policy.groups.staff[1]: a control character");
  n = with_policy();
  n.policy->rules.resize(kSnapshotMaxRules, n.policy->rules[1]);  // the bound itself is fine
  EXPECT_EQ(encodable(n), "");
  Netmap back;
  ASSERT_EQ(decode(encoded(n), back), "");
  EXPECT_EQ(back.policy->rules.size(), kSnapshotMaxRules);
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
