// The exit-node schema: peer name / tags / exit_node, wan ports' internet
// and routed_prefixes, the nat and policy sections, with the exact text and
// position of every error, and the shipped exit-node example.
#include <gtest/gtest.h>

#include <string>
#include <vector>

#include "config/config.h"
#include "tests/unit/config/test_util.h"

namespace moongate::config {
namespace {

using test::base_lines;
using test::errors_of;
using test::kParisPublic;
using test::lines;
using Errors = std::vector<std::string>;

std::vector<std::string> plus(std::vector<std::string> ls, const std::vector<std::string>& extra) {
  ls.insert(ls.end(), extra.begin(), extra.end());
  return ls;
}

TEST(ExitNode, ShippedExampleLoadsWithEverything) {
  const Result r = load_file(std::string(MOONGATE_CONFIG_EXAMPLES_DIR) + "/exit-node.yaml");
  ASSERT_TRUE(r.ok()) << r.error_text();
  const Config& c = r.config();
  ASSERT_EQ(c.peers.size(), 3u);
  EXPECT_EQ(c.peers[0].name, "alice");
  EXPECT_EQ(c.peers[0].tags, std::vector<std::string>{"laptop"});
  EXPECT_TRUE(c.peers[0].exit_node);
  EXPECT_FALSE(c.peers[2].exit_node);
  ASSERT_TRUE(c.ports[0].internet.has_value());
  EXPECT_EQ(c.ports[0].internet->size(), 2u);
  EXPECT_FALSE(c.ports[1].internet.has_value());
  ASSERT_EQ(c.ports[0].routed_prefixes.size(), 1u);
  EXPECT_EQ(c.ports[0].routed_prefixes[0].to_string(), "2001:db8:100::/56");
  ASSERT_TRUE(c.nat.has_value());
  EXPECT_TRUE(c.nat->masquerade);
  EXPECT_EQ(c.nat->max_flows, 1000000u);
  EXPECT_EQ(c.nat->timeouts.tcp_established, 7200u);
  EXPECT_EQ(c.nat->timeouts.tcp_time_wait, 120u);  // conntrack's default kept
  ASSERT_TRUE(c.policy.has_value());
  EXPECT_EQ(c.policy->rules.size(), 5u);
  EXPECT_EQ(c.policy->rules[0].dst[1], "[2001:db8:100::/56]:22");
  EXPECT_EQ(c.policy->groups.at("eng"), (std::vector<std::string>{"alice", "ci-runner"}));
  const auto peers = policy_peers(c);
  ASSERT_EQ(peers.size(), 3u);
  EXPECT_EQ(peers[2].id, 3u);
  EXPECT_EQ(peers[2].name, "ci-runner");
  // Its dump loads back equal (ShippedExamples checks that for every file).
  const Result again = load_string(dump(c, {.reveal_secrets = true}), "again");
  ASSERT_TRUE(again.ok()) << again.error_text();
  EXPECT_EQ(again.config(), c);
}

TEST(ExitNode, DefaultsWhenSectionsAreBare) {
  const Result r = load_string(lines(plus(base_lines(), {"nat:", "policy:"})), "t.yaml");
  ASSERT_TRUE(r.ok()) << r.error_text();
  ASSERT_TRUE(r.config().nat.has_value());
  EXPECT_EQ(r.config().nat->max_flows, 1000000u);
  EXPECT_EQ(r.config().nat->port_min, 1024u);
  EXPECT_EQ(r.config().nat->timeouts, nat::Timeouts{});
  ASSERT_TRUE(r.config().policy.has_value());  // present: default deny
  EXPECT_TRUE(r.config().policy->rules.empty());
  EXPECT_FALSE(r.config().peers[0].exit_node);
  const Result none = load_string(lines(base_lines()), "t.yaml");
  ASSERT_TRUE(none.ok());
  EXPECT_FALSE(none.config().nat.has_value());
  EXPECT_FALSE(none.config().policy.has_value());
}

TEST(ExitNode, PeerFieldErrors) {
  EXPECT_EQ(errors_of(plus(base_lines(), {"    name: 9lives",            // 12
                                          "    tags: [ok, \"a:b\", ok]",   // 13
                                          "    exit_node: yes",            // 14
                                          "  - public_key: " + std::string(kParisPublic),
                                          "    allowed_ips: []",
                                          "    name: 9lives",
                                          "policy:",                      // 18
                                          "  tags: [ok]"})),
            (Errors{
                "t.yaml:12:11: peers[0].name: '9lives' is not a valid peer name: a letter, then up to 62 of a-z A-Z 0-9 _ . -",
                "t.yaml:13:16: peers[0].tags[1]: 'a:b' is not a valid tag: a letter, then up to 62 of a-z A-Z 0-9 _ . -",
                "t.yaml:13:23: peers[0].tags[2]: tag 'ok' is listed twice",
                "t.yaml:14:16: peers[0].exit_node: expected true or false, got 'yes'",
                "t.yaml:17:11: peers[1].name: '9lives' is not a valid peer name: a letter, then up to 62 of a-z A-Z 0-9 _ . -",
            }));
  EXPECT_EQ(errors_of(plus(base_lines(), {"    name: alice", "  - public_key: " + std::string(kParisPublic),
                                          "    allowed_ips: []", "    name: alice"})),
            (Errors{"t.yaml:15:11: peers[1].name: duplicate peer name 'alice' (also peers[0])"}));
  EXPECT_EQ(errors_of(plus(base_lines(), {"    tags: [laptop]"})),
            (Errors{"t.yaml:12:12: peers[0].tags[0]: tag 'laptop' needs a policy section that declares it in policy.tags"}));
  EXPECT_EQ(errors_of(plus(base_lines(), {"    tags: [laptop]", "policy:", "  tags: [server]"})),
            (Errors{"t.yaml:12:12: peers[0].tags[0]: tag 'laptop' is not declared in policy.tags"}));
}

TEST(ExitNode, PortFieldErrors) {
  auto ls = base_lines();
  ls.insert(ls.begin() + 8, {"    internet: [0.0.0.0/0, 10.0.0.1/8, 0.0.0.0/0]",   // 9
                             "    routed_prefixes: [10.0.0.0/8, 2001:db8::/32]",   // 10
                             "  - name: lan0",                                     // 11
                             "    role: lan",
                             "    device: net_af_packet1,iface=veth1",
                             "    address: 10.1.0.1/24",
                             "    internet: [0.0.0.0/0]"});                        // 15
  ls[7] = "    address: [192.0.2.2/24, 2001:db8:0:1::2/64]";
  EXPECT_EQ(errors_of(ls),
            (Errors{
                "t.yaml:9:27: ports[0].internet[1]: 10.0.0.1/8 has host bits set (did you mean 10.0.0.0/8?)",
                "t.yaml:9:39: ports[0].internet[2]: 0.0.0.0/0 is listed twice",
                "t.yaml:10:23: ports[0].routed_prefixes[0]: 10.0.0.0/8: IPv4 exit traffic is NAT'ed (nat:), only IPv6 prefixes are routed",
                "t.yaml:10:35: ports[0].routed_prefixes[1]: 2001:db8::/32 overlaps the port's own subnet: a routed prefix must be routed to this gateway by the upstream, not on-link (no ND proxy)",
                "t.yaml:15:5: ports[1].internet: internet is only for wan ports",
            }));
}

TEST(ExitNode, NatErrors) {
  EXPECT_EQ(errors_of(plus(base_lines(), {"nat:",
                                          "  masquerade: true",
                                          "  pool: [203.0.113.9]"})),
            (Errors{"t.yaml:14:3: nat: set masquerade or pool, not both"}));
  EXPECT_EQ(errors_of(plus(base_lines(), {"nat:",
                                          "  pool: [2001:db8::1, 0.0.0.0, 203.0.113.9, 203.0.113.9]",  // 13
                                          "  port_min: 80",                                             // 14
                                          "  max_flows: 0",                                             // 15
                                          "  timeouts: {tcp_established: 0, udp: 60, tcp_estab: 1}"})),  // 16
            (Errors{
                "t.yaml:13:10: nat.pool[0]: 2001:db8::1: NAT is IPv4 only (IPv6 exit is routed: routed_prefixes)",
                "t.yaml:13:23: nat.pool[1]: 0.0.0.0 cannot be a source address",
                "t.yaml:13:45: nat.pool[3]: 203.0.113.9 is listed twice",
                "t.yaml:14:13: nat.port_min: must be between 1024 and 65535, got 80",
                "t.yaml:15:14: nat.max_flows: must be between 1 and 16000000, got 0",
                "t.yaml:16:31: nat.timeouts.tcp_established: must be between 1 and 2592000, got 0",
                "t.yaml:16:43: nat.timeouts: unknown key 'tcp_estab'",
            }));
  EXPECT_EQ(errors_of(plus(base_lines(), {"nat:", "  port_min: 60000", "  port_max: 60010"})),
            (Errors{"t.yaml:14:13: nat.port_max: port_min..port_max (60000..60010) must hold at least 64 ports per worker lcore (64)"}));
  EXPECT_EQ(errors_of(plus(base_lines(), {"nat:", "  masquerade: false"})),
            (Errors{"t.yaml:13:15: nat.masquerade: masquerade: false needs a pool of addresses instead (pool: [...])"}));
  auto v6_only = base_lines();
  v6_only[7] = "    address: 2001:db8::2/64";
  v6_only.insert(v6_only.end(), {"nat:", "  masquerade: true"});
  EXPECT_EQ(errors_of(v6_only),
            (Errors{"t.yaml:13:15: nat.masquerade: masquerade needs a wan port with an IPv4 address"}));
}

TEST(ExitNode, PolicyErrorsCarryTheirPosition) {
  EXPECT_EQ(errors_of(plus(base_lines(), {
                "    name: alice",                                  // 12
                "policy:",                                          // 13
                "  tags: [laptop]",                                 // 14
                "  groups:",                                        // 15
                "    eng: [alice, mallory]",                        // 16
                "    1bad: [alice]",                                // 17
                "  rules:",                                         // 18
                "    - action: deny",                               // 19
                "      src: [group:ops, tag:laptop, 10.0.0.1/8]",   // 20
                "      dst: [\"10.0.0.0/8\", \"*:99999\", \"2001:db8::1:22\"]",  // 21
                "      proto: sctp",                                // 22
                "    - src: [alice]",                               // 23
                "      dst: []",                                    // 24
                "      action: accept",                             // 25
                "    - {action: accept, src: [\"*\"], dst: [\"*:*\"], proto: tcp, port: 1}"})),  // 26
            (Errors{
                "t.yaml:16:18: policy.groups.eng[1]: no peer named or keyed 'mallory'",
                "t.yaml:17:5: policy.groups: '1bad' is not a valid group name: a letter, then up to 62 of a-z A-Z 0-9 _ . -",
                "t.yaml:19:15: policy.rules[0].action: only 'accept' rules exist: what no rule accepts is denied, got 'deny'",
                "t.yaml:20:13: policy.rules[0].src[0]: no group 'ops' in policy.groups",
                "t.yaml:20:36: policy.rules[0].src[2]: '10.0.0.1/8' has host bits set",
                "t.yaml:21:13: policy.rules[0].dst[0]: a destination is <prefix or *>:<ports>, e.g. 10.1.0.0/16:22, "
                "[2001:db8::/32]:443 or *:*",
                "t.yaml:21:27: policy.rules[0].dst[1]: bad port '99999' (a port 0..65535, a range lo-hi, or *)",
                "t.yaml:21:38: policy.rules[0].dst[2]: '2001:db8::1:22' is ambiguous: write an IPv6 destination with "
                "ports in brackets, e.g. [2001:db8::1]:22 or [2001:db8::/32]:*",
                "t.yaml:22:14: policy.rules[0].proto: unknown protocol 'sctp' (tcp, udp, icmp or any)",
                "t.yaml:24:12: policy.rules[1].dst: a rule needs at least one destination",
                "t.yaml:26:62: policy.rules[2]: unknown key 'port' (did you mean 'proto'?)",
            }));
}

}  // namespace
}  // namespace moongate::config
