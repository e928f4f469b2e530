// The policy compiler: expansion of peers, groups, tags, CIDRs and port
// lists into flat rules, the naive matcher's first-rule-wins answer, and
// every error the compiler reports, with the path the config loader turns
// into a file position; the same for IPv6 (the bracket syntax, families).
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
      {{"group:ops", "tag:nope", "dave", "10.0.0.1/8"}, {"10.0.0.0/8:22"}, "tcp"},
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
      "rules[0].src[2]: 'dave' is no peer name or key, group:, tag:, IPv4 or IPv6 prefix or *",
      "rules[0].src[3]: '10.0.0.1/8' has host bits set",
      "rules[1].dst[0]: a destination is <prefix or *>:<ports>, e.g. 10.1.0.0/16:22, "
      "[2001:db8::/32]:443 or *:*",
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

constexpr Addr6 v6(std::uint32_t a, std::uint32_t b, std::uint32_t c, std::uint32_t d) { return {a, b, c, d}; }

TEST(PolicyCompile, Ipv6DestinationsAndSources) {
  PolicySpec s;
  s.tags = {"laptop", "admin", "server"};
  s.rules = {
      // alice: the bracket forms, an unbracketed prefix, and an IPv4 one:
      // one rule, entries in both families.
      {{"alice"}, {"[2001:db8::1]:22", "[2001:db8:200::/48]:443", "2001:db8:300::/40:80", "10.1.0.0/16:22"}, "tcp"},
      // Prefix sources go only to their family; "*" is both.
      {{"fd00::/8", "192.168.50.0/24"}, {"*:53"}, "udp"},
      // "icmp" is ICMPv6 for IPv6.
      {{"*"}, {"*:*"}, "icmp"},
  };
  const CompileResult r = compile(s, peers());
  ASSERT_TRUE(r.ok()) << ::testing::PrintToString(messages(r));
  EXPECT_EQ(r.policy.rule_count, 3u);
  ASSERT_EQ(r.policy.flat.size(), 3u);
  EXPECT_EQ(r.policy.flat[0], (FlatRule{0, 1, 0, 0, ip(10, 1, 0, 0), 16, 22, 22, 6}));
  EXPECT_EQ(r.policy.flat[1], (FlatRule{1, 0, ip(192, 168, 50, 0), 24, 0, 0, 53, 53, 17}));
  EXPECT_EQ(r.policy.flat[2], (FlatRule{2, 0, 0, 0, 0, 0, 0, 65535, kProtoIcmp}));
  ASSERT_EQ(r.policy.flat6.size(), 5u);
  EXPECT_EQ(r.policy.flat6[0], (FlatRule6{0, 1, {}, 0, v6(0x20010db8, 0, 0, 1), 128, 22, 22, 6}));
  EXPECT_EQ(r.policy.flat6[1], (FlatRule6{0, 1, {}, 0, v6(0x20010db8, 0x02000000, 0, 0), 48, 443, 443, 6}));
  EXPECT_EQ(r.policy.flat6[2], (FlatRule6{0, 1, {}, 0, v6(0x20010db8, 0x03000000, 0, 0), 40, 80, 80, 6}));
  EXPECT_EQ(r.policy.flat6[3], (FlatRule6{1, 0, v6(0xfd000000, 0, 0, 0), 8, {}, 0, 53, 53, 17}));
  EXPECT_EQ(r.policy.flat6[4], (FlatRule6{2, 0, {}, 0, {}, 0, 0, 65535, kProtoIcmpv6}));

  const CompiledPolicy& p = r.policy;
  // alice ssh to 2001:db8::1 and https into the /48: rule 0, as her IPv4 ssh.
  EXPECT_EQ(naive_match6(p, {1, v6(0x20010db8, 0, 0, 0x10), v6(0x20010db8, 0, 0, 1), 6, 40000, 22}), 0);
  EXPECT_EQ(naive_match6(p, {1, {}, v6(0x20010db8, 0x0200ffff, 1, 2), 6, 40000, 443}), 0);
  EXPECT_EQ(naive_match6(p, {1, {}, v6(0x20010db8, 0x0201ffff, 1, 2), 6, 40000, 443}), -1);  // outside the /48
  EXPECT_EQ(naive_match6(p, {1, {}, v6(0x20010db8, 0, 0, 2), 6, 40000, 22}), -1);            // another host
  EXPECT_EQ(naive_match6(p, {2, {}, v6(0x20010db8, 0, 0, 1), 6, 40000, 22}), -1);            // bob
  EXPECT_EQ(naive_match(p, {1, ip(100, 64, 0, 1), ip(10, 1, 5, 5), 6, 40000, 22}), 0);
  // DNS from the ULA prefix, from anyone in it; not from elsewhere.
  EXPECT_EQ(naive_match6(p, {0, v6(0xfd123456, 0, 0, 9), v6(0x20010db8, 0, 0, 53), 17, 5353, 53}), 1);
  EXPECT_EQ(naive_match6(p, {0, v6(0xfc123456, 0, 0, 9), v6(0x20010db8, 0, 0, 53), 17, 5353, 53}), -1);
  // ICMPv6 to anywhere; ICMP's IPv4 number means nothing in IPv6.
  EXPECT_EQ(naive_match6(p, {2, {}, v6(0x20010db8, 9, 9, 9), kProtoIcmpv6, 0, 0}), 2);
  EXPECT_EQ(naive_match6(p, {2, {}, v6(0x20010db8, 9, 9, 9), kProtoIcmp, 0, 0}), -1);
}

TEST(PolicyCompile, Ipv6PrefixParsing) {
  Addr6 a{};
  std::uint8_t len = 0;
  std::string why;
  ASSERT_TRUE(parse_cidr6("::/0", a, len, why)) << why;
  EXPECT_EQ(len, 0);
  EXPECT_EQ(a, (Addr6{}));
  ASSERT_TRUE(parse_cidr6("2001:db8:0:1:2:3:4:5", a, len, why)) << why;
  EXPECT_EQ(len, 128);
  EXPECT_EQ(a, v6(0x20010db8, 0x00000001, 0x00020003, 0x00040005));
  ASSERT_TRUE(parse_cidr6("2001:db8:8000::/33", a, len, why)) << why;
  EXPECT_EQ(a, v6(0x20010db8, 0x80000000, 0, 0));
  EXPECT_FALSE(parse_cidr6("2001:db8:4000::/33", a, len, why));  // bit 34 set
  EXPECT_EQ(why, "'2001:db8:4000::/33' has host bits set");
  EXPECT_FALSE(parse_cidr6("2001:db8::/", a, len, why));
  EXPECT_EQ(why, "bad prefix length in '2001:db8::/' (0..128)");
  EXPECT_FALSE(parse_cidr6("2001:db8::/0128", a, len, why));
  EXPECT_FALSE(parse_cidr6("10.0.0.0/8", a, len, why));
  EXPECT_EQ(why, "'10.0.0.0/8' is not an IPv6 address or prefix");
  EXPECT_FALSE(parse_cidr6("::ffff:10.0.0.0/104", a, len, why));
  EXPECT_EQ(why, "'::ffff:10.0.0.0/104' is IPv4-mapped: write the IPv4 address or prefix");
  ASSERT_TRUE(parse_cidr6("64:ff9b::10.0.0.1", a, len, why)) << why;  // NAT64's prefix: IPv6
  EXPECT_EQ(a, v6(0x0064ff9b, 0, 0, 0x0a000001));
}

TEST(PolicyCompile, ReportsIpv6ErrorsWithTheirPaths) {
  PolicySpec s;
  s.tags = {"laptop", "admin", "server"};
  s.rules = {
      {{"alice"},
       {"2001:db8::1:22", "[2001:db8::1]", "[2001:db8::1:22", "[10.0.0.1]:22", "[2001:db8::/129]:*",
        "[2001:db8::1/64]:*", "[2001:db8::zz]:*", "[fe80::1%eth0]:*", "[2001:db8::1]:65536",
        "2001:db8::/48", "10.0.0.1:22"},
       "tcp"},
      {{"2001:db8::/32x", "10.0.0.0/8"}, {"[2001:db8::1]:22"}, "any"},  // no IPv4 destination
      {{"10.0.0.0/8"}, {"[2001:db8::1]:22", "*:22"}, "any"},          // no IPv6 source
      {{"alice"}, {"[2001:db8::1]:22"}, "icmp"},
  };
  const CompileResult r = compile(s, peers());
  ASSERT_FALSE(r.ok());
  EXPECT_TRUE(r.policy.flat6.empty());
  const std::vector<std::string> expected = {
      "rules[0].dst[0]: '2001:db8::1:22' is ambiguous: write an IPv6 destination with ports in brackets, "
      "e.g. [2001:db8::1]:22 or [2001:db8::/32]:*",
      "rules[0].dst[1]: '[2001:db8::1]' needs ':<ports>' after ']', e.g. [2001:db8::1]:22 or [2001:db8::/32]:*",
      "rules[0].dst[2]: '[2001:db8::1:22' opens '[' without closing ']': an IPv6 destination is "
      "[address or prefix]:<ports>",
      "rules[0].dst[3]: brackets are for IPv6 only: write '10.0.0.1:22'",
      "rules[0].dst[4]: bad prefix length in '2001:db8::/129' (0..128)",
      "rules[0].dst[5]: '2001:db8::1/64' has host bits set",
      "rules[0].dst[6]: '2001:db8::zz' is not an IPv6 address or prefix",
      "rules[0].dst[7]: 'fe80::1%eth0': a zone (%...) has no meaning in a policy rule",
      "rules[0].dst[8]: bad port '65536' (a port 0..65535, a range lo-hi, or *)",
      "rules[0].dst[9]: '2001:db8::/48' is ambiguous: write an IPv6 destination with ports in brackets, "
      "e.g. [2001:db8::1]:22 or [2001:db8::/32]:*",
      "rules[1].src[0]: bad prefix length in '2001:db8::/32x' (0..128)",
      "rules[2].dst[0]: an IPv6 destination, but every source is an IPv4 prefix",
      "rules[3].dst[0]: ICMP has no ports: use :*",
  };
  EXPECT_EQ(messages(r), expected);

  // The family checks on their own (no other error in the rule).
  PolicySpec f;
  f.tags = s.tags;
  f.rules = {{{"10.0.0.0/8", "fd00::/8"}, {"[2001:db8::1]:22"}, "any"}};
  EXPECT_EQ(messages(compile(f, peers())),
            std::vector<std::string>{"rules[0].src[0]: an IPv4 source prefix, but the rule has no IPv4 "
                                     "destination (*: is both)"});
}

}  // namespace
}  // namespace moongate::policy
