// The rte_acl classifier against the naive matcher: random policies (peer,
// CIDR and wildcard sources; prefixes of every length, single ports, ranges
// and wildcards; each protocol) and random packets biased to hit rule
// edges, classified in bursts of up to 32; the rule index must agree for
// every packet. The same for IPv6 (the second context: 128-bit prefixes as
// four words, lengths across every word boundary). Runs its own EAL
// without hugepages or PCI (main below).
#include "policy/acl.h"

#include <gtest/gtest.h>
#include <rte_eal.h>

#include <algorithm>
#include <cstdio>
#include <random>
#include <string>

#include "policy/naive.h"
#include "tests/support/eal_main.h"

namespace moongate::policy {
namespace {

std::uint32_t random_prefix_addr(std::mt19937& rng, std::uint8_t len) {
  const std::uint32_t a = rng();
  return len == 0 ? 0 : a & (~std::uint32_t{0} << (32 - len));
}

// Addresses and ports drawn near the rules' so that matches and near
// misses are both common.
Packet random_packet(std::mt19937& rng, const CompiledPolicy& p) {
  Packet k;
  const std::uint8_t protos[] = {6, 17, 1, 47};
  k.proto = protos[rng() % 4];
  k.peer = rng() % 12;
  k.src = rng();
  k.dst = rng();
  k.sport = static_cast<std::uint16_t>(rng());
  k.dport = static_cast<std::uint16_t>(rng());
  if (!p.flat.empty() && rng() % 4 != 0) {
    const FlatRule& r = p.flat[rng() % p.flat.size()];
    const std::uint32_t flip = rng() % 3 == 0 ? (1u << (rng() % 32)) : 0;
    k.dst = (r.dst | (rng() & ~(r.dst_len ? ~std::uint32_t{0} << (32 - r.dst_len) : 0))) ^ flip;
    if (r.src_len && rng() % 2) k.src = r.src | (rng() & ~(~std::uint32_t{0} << (32 - r.src_len)));
    if (r.peer && rng() % 2) k.peer = r.peer;
    const int edge = static_cast<int>(rng() % 5);
    k.dport = edge == 0 ? r.dport_lo : edge == 1 ? r.dport_hi
              : edge == 2 ? static_cast<std::uint16_t>(r.dport_lo - 1)
              : edge == 3 ? static_cast<std::uint16_t>(r.dport_hi + 1)
                          : static_cast<std::uint16_t>(r.dport_lo + rng() % (r.dport_hi - r.dport_lo + 1));
    if (r.proto != kProtoAny && rng() % 4 != 0) k.proto = r.proto;
  }
  if (k.proto != 6 && k.proto != 17) k.sport = k.dport = 0;
  return k;
}

CompiledPolicy random_policy(std::mt19937& rng, std::size_t rules) {
  CompiledPolicy p;
  p.rule_count = rules;
  for (std::uint32_t i = 0; i < rules; ++i) {
    const std::size_t flats = 1 + rng() % 3;
    for (std::size_t j = 0; j < flats; ++j) {
      FlatRule f;
      f.rule = i;
      switch (rng() % 3) {
        case 0: f.peer = 1 + rng() % 10; break;
        case 1: f.src_len = static_cast<std::uint8_t>(rng() % 33); f.src = random_prefix_addr(rng, f.src_len); break;
        default: break;
      }
      f.dst_len = static_cast<std::uint8_t>(rng() % 33);
      f.dst = random_prefix_addr(rng, f.dst_len);
      const std::uint8_t protos[] = {kProtoAny, 6, 17, 1};
      f.proto = protos[rng() % 4];
      switch (f.proto == 1 ? 0 : rng() % 3) {
        case 0: f.dport_lo = 0; f.dport_hi = 65535; break;
        case 1: f.dport_lo = f.dport_hi = static_cast<std::uint16_t>(rng()); break;
        default: {
          const auto a = static_cast<std::uint16_t>(rng()), b = static_cast<std::uint16_t>(rng());
          f.dport_lo = std::min(a, b);
          f.dport_hi = std::max(a, b);
        }
      }
      p.flat.push_back(f);
    }
  }
  return p;
}

void expect_same(const CompiledPolicy& p, std::mt19937& rng, int packets) {
  std::string error;
  const auto acl = AclClassifier::build(p, -1, error);
  ASSERT_NE(acl, nullptr) << error;
  int matched = 0;
  for (int done = 0; done < packets;) {
    const std::size_t n = 1 + rng() % kClassifyBurst;
    Packet pk[kClassifyBurst];
    AclInput in[kClassifyBurst];
    const AclInput* ptr[kClassifyBurst];
    int got[kClassifyBurst];
    for (std::size_t i = 0; i < n; ++i) {
      pk[i] = random_packet(rng, p);
      in[i] = make_acl_input(pk[i]);
      ptr[i] = &in[i];
    }
    acl->classify(ptr, n, got);
    for (std::size_t i = 0; i < n; ++i) {
      const int want = naive_match(p, pk[i]);
      ASSERT_EQ(got[i], want) << "peer " << pk[i].peer << " src " << std::hex << pk[i].src
                              << " dst " << pk[i].dst << std::dec << " proto " << int(pk[i].proto)
                              << " dport " << pk[i].dport;
      matched += want >= 0;
    }
    done += static_cast<int>(n);
  }
  // The packet generator must exercise matches, not only default deny.
  if (!p.flat.empty()) {
    EXPECT_GT(matched, packets / 20);
  }
}

TEST(PolicyAcl, MatchesTheNaiveMatcherOnRandomPolicies) {
  std::mt19937 rng(2024);
  for (std::size_t rules : {1u, 3u, 10u, 50u, 200u}) {
    for (int round = 0; round < 4; ++round) {
      const CompiledPolicy p = random_policy(rng, rules);
      SCOPED_TRACE(::testing::Message() << rules << " rules, round " << round);
      expect_same(p, rng, 4000);
    }
  }
}

// --- IPv6 ---------------------------------------------------------------------

// `a` with the bits past `len` replaced by random ones (`keep`: zero them).
Addr6 with_host_bits(std::mt19937& rng, const Addr6& a, std::uint8_t len, bool keep) {
  Addr6 out = a;
  for (int w = 0; w < 4; ++w) {
    const int bits = std::clamp(static_cast<int>(len) - 32 * w, 0, 32);
    const std::uint32_t mask = bits == 0 ? 0 : ~std::uint32_t{0} << (32 - bits);
    out[w] = (a[w] & mask) | (keep ? 0 : (rng() & ~mask));
  }
  return out;
}

Addr6 random_addr6(std::mt19937& rng) { return {static_cast<std::uint32_t>(rng()), static_cast<std::uint32_t>(rng()),
                                                static_cast<std::uint32_t>(rng()), static_cast<std::uint32_t>(rng())}; }

void flip_bit(Addr6& a, unsigned bit) { a[bit / 32] ^= 1u << (31 - bit % 32); }

// Prefix lengths weighted to the word boundaries, where a four-field
// layout would go wrong first.
std::uint8_t random_len6(std::mt19937& rng) {
  const std::uint8_t edges[] = {0, 1, 31, 32, 33, 48, 63, 64, 65, 95, 96, 97, 127, 128};
  return rng() % 2 ? edges[rng() % std::size(edges)] : static_cast<std::uint8_t>(rng() % 129);
}

CompiledPolicy random_policy6(std::mt19937& rng, std::size_t rules) {
  CompiledPolicy p;
  p.rule_count = rules;
  // A few shared prefixes, so rules overlap (and first-rule-wins matters).
  const Addr6 bases[] = {random_addr6(rng), random_addr6(rng), random_addr6(rng)};
  for (std::uint32_t i = 0; i < rules; ++i) {
    const std::size_t flats = 1 + rng() % 3;
    for (std::size_t j = 0; j < flats; ++j) {
      FlatRule6 f;
      f.rule = i;
      switch (rng() % 3) {
        case 0: f.peer = 1 + rng() % 10; break;
        case 1:
          f.src_len = random_len6(rng);
          f.src = with_host_bits(rng, rng() % 2 ? bases[rng() % 3] : random_addr6(rng), f.src_len, true);
          break;
        default: break;
      }
      f.dst_len = random_len6(rng);
      f.dst = with_host_bits(rng, rng() % 2 ? bases[rng() % 3] : random_addr6(rng), f.dst_len, true);
      const std::uint8_t protos[] = {kProtoAny, 6, 17, kProtoIcmpv6};
      f.proto = protos[rng() % 4];
      switch (f.proto == kProtoIcmpv6 ? 0 : rng() % 3) {
        case 0: f.dport_lo = 0; f.dport_hi = 65535; break;
        case 1: f.dport_lo = f.dport_hi = static_cast<std::uint16_t>(rng()); break;
        default: {
          const auto a = static_cast<std::uint16_t>(rng()), b = static_cast<std::uint16_t>(rng());
          f.dport_lo = std::min(a, b);
          f.dport_hi = std::max(a, b);
        }
      }
      p.flat6.push_back(f);
    }
  }
  return p;
}

Packet6 random_packet6(std::mt19937& rng, const CompiledPolicy& p) {
  Packet6 k;
  const std::uint8_t protos[] = {6, 17, kProtoIcmpv6, 47};
  k.proto = protos[rng() % 4];
  k.peer = rng() % 12;
  k.src = random_addr6(rng);
  k.dst = random_addr6(rng);
  k.sport = static_cast<std::uint16_t>(rng());
  k.dport = static_cast<std::uint16_t>(rng());
  if (!p.flat6.empty() && rng() % 4 != 0) {
    const FlatRule6& r = p.flat6[rng() % p.flat6.size()];
    k.dst = with_host_bits(rng, r.dst, r.dst_len, false);
    // A near miss: the last bit of the prefix, or any bit.
    if (rng() % 3 == 0) flip_bit(k.dst, r.dst_len > 0 && rng() % 2 ? r.dst_len - 1u : rng() % 128);
    if (r.src_len && rng() % 2) {
      k.src = with_host_bits(rng, r.src, r.src_len, false);
      if (rng() % 4 == 0) flip_bit(k.src, r.src_len - 1u);
    }
    if (r.peer && rng() % 2) k.peer = r.peer;
    const int edge = static_cast<int>(rng() % 5);
    k.dport = edge == 0 ? r.dport_lo : edge == 1 ? r.dport_hi
              : edge == 2 ? static_cast<std::uint16_t>(r.dport_lo - 1)
              : edge == 3 ? static_cast<std::uint16_t>(r.dport_hi + 1)
                          : static_cast<std::uint16_t>(r.dport_lo + rng() % (r.dport_hi - r.dport_lo + 1));
    if (r.proto != kProtoAny && rng() % 4 != 0) k.proto = r.proto;
  }
  if (k.proto != 6 && k.proto != 17) k.sport = k.dport = 0;
  return k;
}

std::string show(const Addr6& a) {
  char buf[40];
  std::snprintf(buf, sizeof buf, "%08x:%08x:%08x:%08x", a[0], a[1], a[2], a[3]);
  return buf;
}

void expect_same6(const CompiledPolicy& p, std::mt19937& rng, int packets) {
  std::string error;
  const auto acl = AclClassifier::build(p, -1, error);
  ASSERT_NE(acl, nullptr) << error;
  int matched = 0;
  for (int done = 0; done < packets;) {
    const std::size_t n = 1 + rng() % kClassifyBurst;
    Packet6 pk[kClassifyBurst];
    AclInput6 in[kClassifyBurst];
    const AclInput6* ptr[kClassifyBurst];
    int got[kClassifyBurst];
    for (std::size_t i = 0; i < n; ++i) {
      pk[i] = random_packet6(rng, p);
      in[i] = make_acl_input6(pk[i]);
      ptr[i] = &in[i];
    }
    acl->classify6(ptr, n, got);
    for (std::size_t i = 0; i < n; ++i) {
      const int want = naive_match6(p, pk[i]);
      ASSERT_EQ(got[i], want) << "peer " << pk[i].peer << " src " << show(pk[i].src) << " dst "
                              << show(pk[i].dst) << " proto " << int(pk[i].proto) << " dport " << pk[i].dport;
      matched += want >= 0;
    }
    done += static_cast<int>(n);
  }
  if (!p.flat6.empty()) {
    EXPECT_GT(matched, packets / 20);
  }
}

TEST(PolicyAcl, Ipv6MatchesTheNaiveMatcherOnRandomPolicies) {
  std::mt19937 rng(2025);
  for (std::size_t rules : {1u, 3u, 10u, 50u, 200u}) {
    for (int round = 0; round < 4; ++round) {
      const CompiledPolicy p = random_policy6(rng, rules);
      SCOPED_TRACE(::testing::Message() << rules << " rules, round " << round);
      expect_same6(p, rng, 4000);
    }
  }
}

// Both families in one classifier: each context answers for its own, with
// the rule indices of the spec (one rule, both families).
TEST(PolicyAcl, BothFamiliesFromOneSpec) {
  PolicySpec s;
  s.rules = {{{"alice"}, {"10.1.0.0/16:22", "[2001:db8:1::/48]:22"}, "tcp"},
             {{"fd00::/8"}, {"[2001:db8::53]:53"}, "udp"},
             {{"*"}, {"*:*"}, "icmp"}};
  const std::vector<PeerInfo> peers = {{1, "alice", "a", {}}, {2, "bob", "b", {}}};
  const CompileResult r = compile(s, peers);
  ASSERT_TRUE(r.ok());
  std::string error;
  const auto acl = AclClassifier::build(r.policy, -1, error);
  ASSERT_NE(acl, nullptr) << error;
  EXPECT_EQ(acl->flat_rules(), 2u);
  EXPECT_EQ(acl->flat_rules6(), 3u);
  const Packet6 pk[] = {{1, {0x20010db8, 0, 0, 1}, {0x20010db8, 0x0001abcd, 0, 1}, 6, 1000, 22},
                        {2, {0x20010db8, 0, 0, 2}, {0x20010db8, 0x0001abcd, 0, 1}, 6, 1000, 22},
                        {1, {0x20010db8, 0, 0, 1}, {0x20010db8, 0x0002abcd, 0, 1}, 6, 1000, 22},
                        {0, {0xfd000000, 0, 0, 7}, {0x20010db8, 0, 0, 0x53}, 17, 1000, 53},
                        {2, {0x20010db8, 0, 0, 2}, {0x20010db8, 9, 9, 9}, kProtoIcmpv6, 0, 0},
                        {2, {0x20010db8, 0, 0, 2}, {0x20010db8, 9, 9, 9}, kProtoIcmp, 0, 0}};
  constexpr std::size_t kN = std::size(pk);
  AclInput6 in[kN];
  const AclInput6* ptr[kN];
  for (std::size_t i = 0; i < kN; ++i) {
    in[i] = make_acl_input6(pk[i]);
    ptr[i] = &in[i];
  }
  int got[kN];
  acl->classify6(ptr, kN, got);
  const int want[kN] = {0, -1, -1, 1, 2, -1};
  for (std::size_t i = 0; i < kN; ++i) {
    EXPECT_EQ(got[i], want[i]) << i;
    EXPECT_EQ(naive_match6(r.policy, pk[i]), want[i]) << i;
  }
  // IPv4 through its own context: alice's ssh is rule 0 there too.
  const AclInput in4 = make_acl_input({1, 0x64400001, 0x0a010203, 6, 1000, 22});
  const AclInput* ptr4[1] = {&in4};
  int got4[1];
  acl->classify(ptr4, 1, got4);
  EXPECT_EQ(got4[0], 0);
}

TEST(PolicyAcl, CompiledSpecThroughBothMatchers) {
  PolicySpec s;
  s.groups["eng"] = {"alice"};
  s.tags = {"admin"};
  s.rules = {{{"group:eng"}, {"10.1.0.0/16:22"}, "tcp"}, {{"tag:admin"}, {"*:*"}, "any"}};
  const std::vector<PeerInfo> peers = {{1, "alice", "a", {}}, {2, "bob", "b", {"admin"}}};
  const CompileResult r = compile(s, peers);
  ASSERT_TRUE(r.ok());
  std::string error;
  const auto acl = AclClassifier::build(r.policy, -1, error);
  ASSERT_NE(acl, nullptr) << error;
  const Packet pk[] = {{1, 0x64400001, 0x0a010203, 6, 1000, 22},
                       {1, 0x64400001, 0x0a010203, 6, 1000, 23},
                       {2, 0x64400002, 0x08080808, 17, 1000, 53},
                       {3, 0x64400003, 0x0a010203, 6, 1000, 22}};
  AclInput in[4];
  const AclInput* ptr[4];
  for (int i = 0; i < 4; ++i) {
    in[i] = make_acl_input(pk[i]);
    ptr[i] = &in[i];
  }
  int got[4];
  acl->classify(ptr, 4, got);
  EXPECT_EQ(got[0], 0);
  EXPECT_EQ(got[1], -1);
  EXPECT_EQ(got[2], 1);
  EXPECT_EQ(got[3], -1);
}

TEST(PolicyAcl, EmptyPolicyDeniesAll) {
  std::string error;
  const auto acl = AclClassifier::build(CompiledPolicy{}, -1, error);
  ASSERT_NE(acl, nullptr);
  const AclInput in = make_acl_input({1, 2, 3, 6, 4, 5});
  const AclInput* ptr[1] = {&in};
  int got[1] = {7};
  acl->classify(ptr, 1, got);
  EXPECT_EQ(got[0], -1);
  const AclInput6 in6 = make_acl_input6({1, {1, 2, 3, 4}, {5, 6, 7, 8}, 6, 4, 5});
  const AclInput6* ptr6[1] = {&in6};
  got[0] = 7;
  acl->classify6(ptr6, 1, got);
  EXPECT_EQ(got[0], -1);
}

}  // namespace
}  // namespace moongate::policy

int main(int argc, char** argv) {
  return moongate::test::run_with_eal(argc, argv, "hn-unit-policy-acl", [] { return RUN_ALL_TESTS(); });
}
