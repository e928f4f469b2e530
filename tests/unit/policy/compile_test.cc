// The policy compiler: expansion of peers, groups, tags, CIDRs and port
// lists into flat rules, the naive matcher's first-rule-wins answer, and
// every error the compiler reports, with the path the config loader turns
// into a file position.
#include "policy/compile.h"

#include <gtest/gtest.h>

#include "policy/naive.h"

namespace moongate::policy {
namespace {

constexpr std::uint32_t ip(std::uint8_t a, std::uint8_t b, std::uint8_t c, std::uint8_t d) {
  return (std::uint32_t{a} << 24) | (std::uint32_t{b} << 16) | (std::uint32_t{c} << 8) | d;
}

const std::string kKeyCarol = "q0Hj2fJ6mXr4yB8Nq5o9m1s3aVb7cDe5fGh1jKl3mN0=";

std::vector<PeerInfo> peers() {
  return {{1, "alice", "AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=", {"laptop"}},
          {2, "bob", "BBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBA=", {"laptop", "admin"}},
          {3, "", kKeyCarol, {"server"}}};
}

PolicySpec spec() {
  PolicySpec s;
  s.groups["eng"] = {"alice", kKeyCarol};
  s.tags = {"laptop", "admin", "server"};
  s.rules = {
      {{"group:eng"}, {"10.1.0.0/16:22,443"}, "tcp"},
      {{"tag:admin"}, {"*:*"}, "any"},
      {{"192.168.50.0/24"}, {"10.1.2.3:8000-8100"}, "udp"},
      {{"bob"}, {"10.9.0.0/16:*"}, "icmp"},
  };
  return s;
}

std::vector<std::string> messages(const CompileResult& r) {
  std::vector<std::string> out;
  for (const CompileError& e : r.errors) out.push_back(e.path + ": " + e.message);
  return out;
}

TEST(PolicyCompile, ExpandsEverySourceAndDestination) {
  const CompileResult r = compile(spec(), peers());
  ASSERT_TRUE(r.ok()) << ::testing::PrintToString(messages(r));
  EXPECT_EQ(r.policy.rule_count, 4u);
  // rule 0: 2 peers x 2 ports; rule 1: bob x any; rule 2: 1 prefix x 1
  // range; rule 3: bob.
  ASSERT_EQ(r.policy.flat.size(), 4u + 1 + 1 + 1);
  EXPECT_EQ(r.policy.flat[0], (FlatRule{0, 1, 0, 0, ip(10, 1, 0, 0), 16, 22, 22, 6}));
  EXPECT_EQ(r.policy.flat[1], (FlatRule{0, 1, 0, 0, ip(10, 1, 0, 0), 16, 443, 443, 6}));
  EXPECT_EQ(r.policy.flat[2].peer, 3u);
  EXPECT_EQ(r.policy.flat[4], (FlatRule{1, 2, 0, 0, 0, 0, 0, 65535, 0}));
  EXPECT_EQ(r.policy.flat[5], (FlatRule{2, 0, ip(192, 168, 50, 0), 24, ip(10, 1, 2, 3), 32, 8000, 8100, 17}));
}

TEST(PolicyCompile, NaiveMatcherFirstRuleWinsDefaultDeny) {
  const CompiledPolicy p = compile(spec(), peers()).policy;
  // alice ssh to 10.1.5.5: rule 0.
  EXPECT_EQ(naive_match(p, {1, ip(100, 64, 0, 1), ip(10, 1, 5, 5), 6, 40000, 22}), 0);
  // alice to port 80: no rule (she is not admin).
  EXPECT_EQ(naive_match(p, {1, ip(100, 64, 0, 1), ip(10, 1, 5, 5), 6, 40000, 80}), -1);
  // alice over UDP to 22: tcp only.
  EXPECT_EQ(naive_match(p, {1, ip(100, 64, 0, 1), ip(10, 1, 5, 5), 17, 40000, 22}), -1);
  // bob: admin, anything; his ssh counts on rule 1 (he is not in eng).
  EXPECT_EQ(naive_match(p, {2, ip(100, 64, 0, 2), ip(10, 1, 5, 5), 6, 40000, 22}), 1);
  // A LAN host by CIDR, any peer id (0 = not a peer).
  EXPECT_EQ(naive_match(p, {0, ip(192, 168, 50, 9), ip(10, 1, 2, 3), 17, 5, 8050}), 2);
  EXPECT_EQ(naive_match(p, {0, ip(192, 168, 51, 9), ip(10, 1, 2, 3), 17, 5, 8050}), -1);
  EXPECT_EQ(naive_match(p, {0, ip(192, 168, 50, 9), ip(10, 1, 2, 3), 17, 5, 8101}), -1);
  // Unknown peer id 9.
  EXPECT_EQ(naive_match(p, {9, ip(100, 64, 0, 9), ip(10, 1, 5, 5), 6, 1, 22}), -1);
}

TEST(PolicyCompile, EmptyPolicyDeniesEverything) {
  PolicySpec s;
  s.tags = {"laptop", "admin", "server"};
  const CompileResult r = compile(s, peers());
  ASSERT_TRUE(r.ok());
  EXPECT_EQ(naive_match(r.policy, {1, 1, 2, 6, 3, 4}), -1);
}

TEST(PolicyCompile, ReportsEveryErrorWithItsPath) {
  PolicySpec s;
  s.tags = {"laptop", "bad:tag"};
  s.groups["eng"] = {"alice", "mallory"};
  s.rules = {
      {{"group:ops", "tag:nope", "dave", "10.0.0.1/8", "2001:db8::/32"}, {"10.0.0.0/8:22"}, "tcp"},
      {{"alice"}, {"10.0.0.0/8", "10.0.0.0/33:*", "*:99999", "*:30-20", "*:22"}, "icmp"},
      {{}, {}, "sctp"},
  };
  std::vector<PeerInfo> ps = peers();
  ps[2].tags = {"undeclared"};
  const CompileResult r = compile(s, ps);
  ASSERT_FALSE(r.ok());
  EXPECT_TRUE(r.policy.flat.empty());
  const std::vector<std::string> expected = {
      "tags[1]: a tag name is non-empty and has no ':'",
      "peer 'bob': tag 'admin' is not declared in policy.tags",
      "peer '" + kKeyCarol + "': tag 'undeclared' is not declared in policy.tags",
      "groups.eng[1]: no peer named or keyed 'mallory'",
      "rules[0].src[0]: no group 'ops' in policy.groups",
      "rules[0].src[1]: tag 'nope' is not declared in policy.tags",
      "rules[0].src[2]: 'dave' is no peer name or key, group:, tag:, IPv4 prefix or *",
      "rules[0].src[3]: '10.0.0.1/8' has host bits set",
      "rules[0].src[4]: IPv6 prefixes are not supported in policy rules yet: '2001:db8::/32'",
      "rules[1].dst[0]: a destination is <prefix or *>:<ports>, e.g. 10.1.0.0/16:22 or *:*",
      "rules[1].dst[1]: bad prefix length in '10.0.0.0/33' (0..32)",
      "rules[1].dst[2]: bad port '99999' (a port 0..65535, a range lo-hi, or *)",
      "rules[1].dst[3]: port range '30-20' runs backwards",
      "rules[1].dst[4]: ICMP has no ports: use :*",
      "rules[2].proto: unknown protocol 'sctp' (tcp, udp, icmp or any)",
      "rules[2].src: a rule needs at least one source",
      "rules[2].dst: a rule needs at least one destination",
  };
  EXPECT_EQ(messages(r), expected);
}

TEST(PolicyCompile, DuplicateSourcesDoNotDuplicateRules) {
  PolicySpec s;
  s.groups["g"] = {"alice"};
  s.tags = {"laptop", "admin", "server"};
  s.rules = {{{"alice", "group:g", "tag:laptop"}, {"*:*"}, "any"}};
  const CompileResult r = compile(s, peers());
  ASSERT_TRUE(r.ok());
  EXPECT_EQ(r.policy.flat.size(), 2u);  // alice, bob (laptop)
}

}  // namespace
}  // namespace moongate::policy
