// The controller against real files and a real segment: the YAML becomes
// the netmap, `wg` changes are persisted and win over an older YAML after a
// restart, a broken reload changes nothing, events fill the run-time state.
#include "control/controller.h"

#include <gtest/gtest.h>

#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <span>
#include <thread>

#include "config/key.h"
#include "crypto/x25519.h"
#include "netmap/snapshot.h"

namespace moongate::control {
namespace {

namespace fs = std::filesystem;

std::string hex(const std::uint8_t* p) { return key_hex(p); }

class ControllerTest : public ::testing::Test {
 protected:
  ControllerTest() {
    dir_ = fs::temp_directory_path() / ("mg-ctl-" + std::to_string(getpid()) + "-" +
                                        ::testing::UnitTest::GetInstance()->current_test_info()->name());
    fs::remove_all(dir_);
    fs::create_directories(dir_);
    opts_.config_path = (dir_ / "site.yaml").string();
    opts_.state_dir = (dir_ / "state").string();
    opts_.segment_name = "moongate-test-ctl-" + std::to_string(getpid());
    netmap::Segment::unlink(opts_.segment_name);
    crypto::SecretKey priv;
    crypto::x25519_generate(priv, pub_);
    priv_text_ = config::encode_key(priv.data());
    crypto::SecretKey p;
    crypto::x25519_generate(p, peer_);
    write_yaml("10.20.0.0/24");
  }
  ~ControllerTest() override {
    netmap::Segment::unlink(opts_.segment_name);
    fs::remove_all(dir_);
  }

  void write_yaml(const std::string& allowed, const std::string& extra = "") {
    std::ofstream(opts_.config_path) << "interface:\n  name: mgt0\n  private_key: " << priv_text_
                                     << "\nports:\n  - name: wan0\n    role: wan\n    device: net_tap0\n"
                                        "    address: 192.0.2.2/24\npeers:\n  - public_key: "
                                     << config::encode_key(peer_.data()) << "\n    allowed_ips: [" << allowed
                                     << "]\n"
                                     << extra << "dataplane:\n  max_peers: 100\n";
  }

  fs::path dir_;
  Options opts_;
  crypto::PublicKey pub_{}, peer_{};
  std::string priv_text_;
};

TEST_F(ControllerTest, PublishesTheYaml) {
  Controller c;
  ASSERT_EQ(c.start(opts_), "");
  EXPECT_EQ(c.segment().published_generation(), 1u);
  std::string err;
  auto dp = netmap::Segment::open(opts_.segment_name, err);
  ASSERT_NE(dp, nullptr) << err;
  netmap::Netmap got;
  ASSERT_EQ(dp->read(0, got, err), netmap::Segment::Read::kNew);
  ASSERT_EQ(got.peers.size(), 1u);
  EXPECT_EQ(got.peers[0].public_key, peer_);
  EXPECT_EQ(got.peers[0].allowed_ips[0].to_string(), "10.20.0.0/24");
}

TEST_F(ControllerTest, WgChangesArePersistedAndSurviveARestart) {
  crypto::PublicKey added{};
  added.fill(7);
  {
    Controller c;
    ASSERT_EQ(c.start(opts_), "");
    const UapiResult r = c.uapi("set=1\npublic_key=" + hex(added.data()) + "\nallowed_ip=10.30.0.0/24\n\n");
    ASSERT_EQ(r.response, "errno=0\n\n");
    EXPECT_EQ(c.segment().published_generation(), 2u);
    EXPECT_TRUE(fs::exists(c.state_file()));
    EXPECT_EQ(fs::status(c.state_file()).permissions() & fs::perms::all, fs::perms::owner_read | fs::perms::owner_write);
  }
  Controller again;
  ASSERT_EQ(again.start(opts_), "");
  ASSERT_EQ(again.netmap().peers.size(), 2u);
  EXPECT_EQ(again.netmap().peers[1].public_key, added);
  EXPECT_EQ(again.segment().published_generation(), 3u);  // republished, generation continues
}

// The data plane gets a change before the disk does; a save that fails
// leaves the change applied, logged by the caller and counted.
TEST_F(ControllerTest, AFailedSaveLeavesTheChangeAppliedAndCounted) {
  std::ofstream(dir_ / "not-a-dir") << "x";
  opts_.state_dir = (dir_ / "not-a-dir").string();  // mkdir finds a file: every save fails
  Controller c;
  ASSERT_EQ(c.start(opts_), "");
  crypto::PublicKey added{};
  added.fill(5);
  const UapiResult r = c.uapi("set=1\npublic_key=" + hex(added.data()) + "\nallowed_ip=10.31.0.0/24\n\n");
  EXPECT_EQ(r.response, "errno=0\n\n");
  EXPECT_NE(r.error.find("will not survive a restart"), std::string::npos) << r.error;
  EXPECT_EQ(c.save_failures(), 1u);
  EXPECT_EQ(c.segment().published_generation(), 2u);
  std::string err;
  auto dp = netmap::Segment::open(opts_.segment_name, err);
  ASSERT_NE(dp, nullptr) << err;
  netmap::Netmap got;
  ASSERT_EQ(dp->read(0, got, err), netmap::Segment::Read::kNew);
  ASSERT_EQ(got.peers.size(), 2u);
  EXPECT_EQ(got.peers[1].public_key, added);
  EXPECT_NE(c.metrics_text().find("\nmoongate_state_save_failures_total 1\n"), std::string::npos);
}

TEST_F(ControllerTest, ABrokenReloadChangesNothingAndAGoodOneWins) {
  Controller c;
  ASSERT_EQ(c.start(opts_), "");
  c.uapi("set=1\npublic_key=" + hex(std::array<std::uint8_t, 32>{9}.data()) + "\n\n");
  const netmap::Netmap before = c.netmap();
  // A duplicate peer: one message with file and line; nothing applied.
  write_yaml("10.20.0.0/24", "  - public_key: " + config::encode_key(peer_.data()) + "\n    allowed_ips: [10.40.0.0/24]\n");
  const std::string err = c.reload();
  EXPECT_NE(err.find("site.yaml:12:17: peers[1].public_key: duplicate public key: same as peers[0]"),
            std::string::npos)
      << err;
  EXPECT_TRUE(c.netmap() == before);
  EXPECT_EQ(c.reload_failures(), 1u);

  write_yaml("10.20.0.0/24, 10.21.0.0/24");
  ASSERT_EQ(c.reload(), "");
  ASSERT_EQ(c.netmap().peers.size(), 1u);  // the YAML is authoritative again
  EXPECT_EQ(c.netmap().peers[0].allowed_ips.size(), 2u);
  EXPECT_FALSE(fs::exists(c.state_file()));
}

// What the data plane reads from the segment now.
netmap::Netmap published(const std::string& segment_name) {
  std::string err;
  auto dp = netmap::Segment::open(segment_name, err);
  EXPECT_NE(dp, nullptr) << err;
  netmap::Netmap got;
  if (dp) {
    EXPECT_EQ(dp->read(0, got, err), netmap::Segment::Read::kNew) << err;
  }
  return got;
}

const std::string kLabels = "    name: alice\n    exit_node: true\n";
const std::string kPolicy = "policy:\n  tags: [laptop, eng]\n  rules: []\n";

TEST_F(ControllerTest, AReloadChangingExitNodeOrTagsRepublishesThem) {
  write_yaml("10.20.0.0/24", kLabels + kPolicy);
  Controller c;
  ASSERT_EQ(c.start(opts_), "");
  netmap::Netmap got = published(opts_.segment_name);
  ASSERT_EQ(got.peers.size(), 1u);
  EXPECT_TRUE(got.peers[0].exit_node);
  EXPECT_EQ(got.peers[0].name, "alice");
  EXPECT_TRUE(got.peers[0].tags.empty());

  // exit_node off, tags on: nothing else changes, and the data plane sees it.
  write_yaml("10.20.0.0/24", "    name: alice\n    tags: [laptop, eng]\n" + kPolicy);
  ASSERT_EQ(c.reload(), "");
  EXPECT_EQ(c.segment().published_generation(), 2u);
  got = published(opts_.segment_name);
  ASSERT_EQ(got.peers.size(), 1u);
  EXPECT_FALSE(got.peers[0].exit_node);
  EXPECT_EQ(got.peers[0].tags, (std::vector<std::string>{"laptop", "eng"}));

  // And back on.
  write_yaml("10.20.0.0/24", kLabels + kPolicy);
  ASSERT_EQ(c.reload(), "");
  EXPECT_EQ(c.segment().published_generation(), 3u);
  EXPECT_TRUE(published(opts_.segment_name).peers[0].exit_node);
}

// alice in group staff, whose rule lets it reach 10.0.0.0/8 on port 22.
std::string staff_policy(const std::string& group = "staff", const std::string& dst = "10.0.0.0/8:22") {
  return "policy:\n  groups:\n    staff: [alice]\n  rules:\n    - action: accept\n      src: [group:" + group +
         "]\n      dst: [\"" + dst + "\"]\n      proto: tcp\n";
}

TEST_F(ControllerTest, ThePolicyTravelsWithTheNetmapAndAReloadChangesIt) {
  write_yaml("10.20.0.0/24", "    name: alice\n" + staff_policy());
  Controller c;
  ASSERT_EQ(c.start(opts_), "");
  netmap::Netmap got = published(opts_.segment_name);
  ASSERT_TRUE(got.policy.has_value());
  EXPECT_EQ(got.policy->groups.at("staff"), (std::vector<std::string>{"alice"}));
  ASSERT_EQ(got.policy->rules.size(), 1u);
  EXPECT_EQ(got.policy->rules[0].dst, (std::vector<std::string>{"10.0.0.0/8:22"}));

  // Another destination: republished.
  write_yaml("10.20.0.0/24", "    name: alice\n" + staff_policy("staff", "10.0.0.0/8:22,443"));
  ASSERT_EQ(c.reload(), "");
  EXPECT_EQ(c.segment().published_generation(), 2u);
  got = published(opts_.segment_name);
  ASSERT_TRUE(got.policy.has_value());
  EXPECT_EQ(got.policy->rules[0].dst, (std::vector<std::string>{"10.0.0.0/8:22,443"}));

  // moongatectl netmap shows it.
  const std::string text = c.netmap_text();
  EXPECT_NE(text.find("\npolicy 1 rules\npolicy group staff alice\n"
                      "policy rule 0 accept src group:staff dst 10.0.0.0/8:22,443 proto tcp\n"),
            std::string::npos)
      << text;

  // No policy section any more: none published (everything routed passes).
  write_yaml("10.20.0.0/24", "    name: alice\n");
  ASSERT_EQ(c.reload(), "");
  EXPECT_FALSE(published(opts_.segment_name).policy.has_value());
  EXPECT_NE(c.netmap_text().find("\npolicy none (everything routed passes)\n"), std::string::npos);
}

TEST_F(ControllerTest, ABrokenPolicyIsRefusedWithItsPositionAndTheOldOneStays) {
  write_yaml("10.20.0.0/24", "    name: alice\n" + staff_policy());
  Controller c;
  ASSERT_EQ(c.start(opts_), "");
  const netmap::Netmap before = c.netmap();
  // A rule naming a group that does not exist.
  write_yaml("10.20.0.0/24", "    name: alice\n" + staff_policy("nope"));
  const std::string err = c.reload();
  EXPECT_NE(err.find("site.yaml:18:13: policy.rules[0].src[0]: no group 'nope' in policy.groups"),
            std::string::npos)
      << err;
  EXPECT_EQ(c.reload_failures(), 1u);
  EXPECT_TRUE(c.netmap() == before);
  EXPECT_EQ(c.segment().published_generation(), 1u);  // the data plane keeps the one it has
  EXPECT_EQ(published(opts_.segment_name).policy, before.policy);
  // A destination that is no destination.
  write_yaml("10.20.0.0/24", "    name: alice\n" + staff_policy("staff", "10.0.0.0/33:22"));
  const std::string err2 = c.reload();
  EXPECT_NE(err2.find("site.yaml:19:13: policy.rules[0].dst[0]: bad prefix length in '10.0.0.0/33' (0..32)"),
            std::string::npos)
      << err2;
  EXPECT_EQ(c.segment().published_generation(), 1u);
}

TEST_F(ControllerTest, AReloadWithAPolicyTheSnapshotCannotHoldIsRefused) {
  write_yaml("10.20.0.0/24", "    name: alice\n" + staff_policy());
  Controller c;
  ASSERT_EQ(c.start(opts_), "");
  // One port list longer than a snapshot's policy string.
  std::string ports = "1";
  for (int p = 2; ports.size() <= netmap::kSnapshotMaxPolicyText; ++p) ports += "," + std::to_string(p);
  write_yaml("10.20.0.0/24", "    name: alice\n" + staff_policy("staff", "10.0.0.0/8:" + ports));
  const std::string err = c.reload();
  EXPECT_NE(err.find("policy.rules[0].dst[0]: longer than 4096 characters; nothing was applied"), std::string::npos)
      << err;
  EXPECT_EQ(c.segment().published_generation(), 1u);
  EXPECT_EQ(c.netmap().policy->rules[0].dst[0], "10.0.0.0/8:22");
}

TEST_F(ControllerTest, WgCannotRemoveAPeerThePolicyNames) {
  write_yaml("10.20.0.0/24", "    name: alice\n" + staff_policy());
  Controller c;
  ASSERT_EQ(c.start(opts_), "");
  const UapiResult r = c.uapi("set=1\npublic_key=" + hex(peer_.data()) + "\nremove=true\n\n");
  EXPECT_NE(r.error.find("the policy would no longer compile: policy.groups.staff[0]: no peer named or keyed 'alice'"),
            std::string::npos)
      << r.error;
  EXPECT_EQ(c.netmap().peers.size(), 1u);
  EXPECT_EQ(c.segment().published_generation(), 1u);
  // A peer the policy does not name comes and goes freely.
  const std::string other = hex(std::array<std::uint8_t, 32>{9}.data());
  EXPECT_EQ(c.uapi("set=1\npublic_key=" + other + "\n\n").error, "");
  EXPECT_EQ(c.uapi("set=1\npublic_key=" + other + "\nremove=true\n\n").error, "");
  EXPECT_EQ(c.segment().published_generation(), 3u);
}

TEST_F(ControllerTest, RuleCountersFollowThePolicyInForce) {
  Controller c;
  ASSERT_EQ(c.start(opts_), "");
  std::string err;
  auto dp = netmap::Segment::open(opts_.segment_name, err);
  ASSERT_NE(dp, nullptr);
  auto push = [&](std::uint16_t w, const char* name, std::uint64_t v) {
    netmap::Event k;
    k.type = netmap::EventType::kCounter;
    k.worker = w;
    k.set_name(name);
    k.v0 = v;
    ASSERT_TRUE(dp->push(w, k));
  };
  // Three rules reported, then a policy of two: rule 2's last count is
  // from the older policy and is shown nowhere.
  push(0, "policy_denied", 1);
  push(0, "policy_established", 2);
  push(0, "policy_rule_0_accepted", 3);
  push(0, "policy_rule_1_accepted", 4);
  push(0, "policy_rule_2_accepted", 5);
  push(0, "policy_rules", 2);
  push(0, "policy_epoch", 3);
  c.poll_events(1);
  EXPECT_EQ(c.policy_rules(), 2u);
  EXPECT_EQ(c.rule_accepted(1), 4u);
  EXPECT_EQ(c.rule_accepted(2), 0u);
  const std::string s = c.status_text(0);
  EXPECT_NE(s.find("  policy: 1 denied, 2 replies, rule 0 3, rule 1 4\n"), std::string::npos) << s;
  const std::string m = c.metrics_text();
  EXPECT_NE(m.find("moongate_policy_rule_accepted_total{lcore=\"0\",rule=\"1\"} 4\n"), std::string::npos) << m;
  EXPECT_EQ(m.find("rule=\"2\""), std::string::npos) << m;
  EXPECT_NE(m.find("moongate_policy_epoch{lcore=\"0\"} 3\n"), std::string::npos) << m;
  EXPECT_EQ(m.find("counter=\"policy_rules\""), std::string::npos) << "a gauge among the counters";
}

TEST_F(ControllerTest, WgKeepsWhatItCannotSetForPeersItKnows) {
  write_yaml("10.20.0.0/24", kLabels);
  const std::string key = hex(peer_.data());
  {
    Controller c;
    ASSERT_EQ(c.start(opts_), "");
    // `wg set` on the peer: endpoint, keepalive, allowed IPs.
    ASSERT_EQ(c.uapi("set=1\npublic_key=" + key +
                     "\nendpoint=192.0.2.9:51820\npersistent_keepalive_interval=25\n"
                     "replace_allowed_ips=true\nallowed_ip=10.22.0.0/24\n\n")
                  .response,
              "errno=0\n\n");
    netmap::Netmap got = published(opts_.segment_name);
    ASSERT_EQ(got.peers.size(), 1u);
    EXPECT_TRUE(got.peers[0].exit_node);
    EXPECT_EQ(got.peers[0].name, "alice");
    EXPECT_EQ(got.peers[0].persistent_keepalive, 25);

    // `wg setconf`: every peer dropped (replace_peers) and listed again.
    ASSERT_EQ(c.uapi("set=1\nreplace_peers=true\npublic_key=" + key + "\nallowed_ip=10.23.0.0/24\n\n").response,
              "errno=0\n\n");
    got = published(opts_.segment_name);
    ASSERT_EQ(got.peers.size(), 1u);
    EXPECT_TRUE(got.peers[0].exit_node);
    EXPECT_EQ(got.peers[0].name, "alice");
    EXPECT_EQ(got.peers[0].allowed_ips.size(), 1u);
  }
  // Restarted from the saved netmap (`wg showconf` syntax, without the
  // flag): the YAML's flag for the key holds.
  Controller again;
  ASSERT_EQ(again.start(opts_), "");
  ASSERT_EQ(again.netmap().peers.size(), 1u);
  ASSERT_EQ(again.netmap().peers[0].allowed_ips.size(), 1u);
  EXPECT_EQ(again.netmap().peers[0].allowed_ips[0].to_string(), "10.23.0.0/24");  // the saved netmap won
  EXPECT_TRUE(again.netmap().peers[0].exit_node);
  EXPECT_TRUE(published(opts_.segment_name).peers[0].exit_node);

  // Removed, then added back by a later request: a new peer, not an exit
  // (only the YAML makes exits).
  ASSERT_EQ(again.uapi("set=1\npublic_key=" + key + "\nremove=true\n\n").response, "errno=0\n\n");
  ASSERT_EQ(again.uapi("set=1\npublic_key=" + key + "\nallowed_ip=10.23.0.0/24\n\n").response, "errno=0\n\n");
  ASSERT_EQ(published(opts_.segment_name).peers.size(), 1u);
  EXPECT_FALSE(published(opts_.segment_name).peers[0].exit_node);
}

TEST_F(ControllerTest, EventsFillTheRuntimeStateAndMetrics) {
  Controller c;
  ASSERT_EQ(c.start(opts_), "");
  std::string err;
  auto dp = netmap::Segment::open(opts_.segment_name, err);
  ASSERT_NE(dp, nullptr);
  netmap::Event e;
  e.type = netmap::EventType::kPeerStats;
  std::memcpy(e.key, peer_.data(), 32);
  e.family = 4;
  e.addr[0] = 198, e.addr[1] = 51, e.addr[2] = 100, e.addr[3] = 7;
  e.port = 4444;
  e.v0 = 1000, e.v1 = 2000, e.v2 = 1'700'000'000'000'000'000ULL, e.v3 = 3;
  ASSERT_TRUE(dp->push(1, e));
  netmap::Event k;
  k.type = netmap::EventType::kCounter;
  k.worker = 1;
  k.set_name("drop_no_route");
  k.v0 = 17;
  ASSERT_TRUE(dp->push(1, k));
  k.set_name("decrypted");
  k.v0 = 5;
  ASSERT_TRUE(dp->push(1, k));
  dp->dataplane_alive(4242, 1, 1);
  EXPECT_EQ(c.poll_events(1), 3u);
  const PeerRuntime& rt = c.runtime().at(peer_);
  EXPECT_EQ(rt.rx_bytes, 1000u);
  EXPECT_EQ(rt.endpoint->to_string(), "198.51.100.7:4444");
  const std::string m = c.metrics_text();
  EXPECT_NE(m.find("moongate_peer_rx_bytes_total{public_key=\"" + config::encode_key(peer_.data()) + "\"} 1000\n"),
            std::string::npos);
  EXPECT_NE(m.find("moongate_lcore_drops_total{lcore=\"1\",layer=\"dataplane\",reason=\"no_route\"} 17\n"), std::string::npos);
  EXPECT_NE(m.find("moongate_lcore_packets_total{lcore=\"1\",counter=\"decrypted\"} 5\n"), std::string::npos);
  EXPECT_NE(m.find("moongate_dataplane_applied_generation 1\n"), std::string::npos);
  const std::string s = c.status_text(1'700'000'010'000'000'000ULL);
  EXPECT_NE(s.find("latest handshake: 10 seconds ago"), std::string::npos) << s;
  EXPECT_NE(s.find("endpoint: 198.51.100.7:4444"), std::string::npos) << s;
  EXPECT_NE(c.status_json(0).find("\"rx_bytes\":1000"), std::string::npos);
}

// The exit node's counters (data plane, per lcore) in the metrics and in
// `moongatectl status`, summed over the lcores.
TEST_F(ControllerTest, NatAndPolicyCountersReachMetricsAndStatus) {
  Controller c;
  ASSERT_EQ(c.start(opts_), "");
  std::string err;
  auto dp = netmap::Segment::open(opts_.segment_name, err);
  ASSERT_NE(dp, nullptr);
  const std::pair<const char*, std::uint64_t> w0[] = {
      {"nat_flows", 7}, {"nat_translated_out", 100}, {"nat_translated_in", 90}, {"nat_drop_no_flow", 3},
      {"policy_denied", 4}, {"policy_established", 5}, {"policy_flows", 6},
      {"policy_rule_0_accepted", 10}, {"policy_rule_1_accepted", 1}};
  const std::pair<const char*, std::uint64_t> w1[] = {
      {"nat_flows", 2}, {"nat_translated_out", 1}, {"nat_translated_in", 1}, {"nat_drop_no_flow", 1},
      {"policy_denied", 1}, {"policy_established", 0}, {"policy_flows", 1},
      {"policy_rule_0_accepted", 2}, {"policy_rule_1_accepted", 0}};
  std::size_t pushed = 0;
  for (std::uint16_t w = 0; w < 2; ++w)
    for (const auto& [name, v] : w == 0 ? std::span(w0) : std::span(w1)) {
      netmap::Event k;
      k.type = netmap::EventType::kCounter;
      k.worker = w;
      k.set_name(name);
      k.v0 = v;
      ASSERT_TRUE(dp->push(w, k));
      ++pushed;
    }
  EXPECT_EQ(c.poll_events(2), pushed);
  const std::string m = c.metrics_text();
  EXPECT_NE(m.find("moongate_lcore_drops_total{lcore=\"0\",layer=\"nat\",reason=\"no_flow\"} 3\n"), std::string::npos) << m;
  EXPECT_NE(m.find("moongate_lcore_flows{lcore=\"1\",table=\"nat\"} 2\n"), std::string::npos) << m;
  EXPECT_NE(m.find("moongate_lcore_flows{lcore=\"0\",table=\"policy\"} 6\n"), std::string::npos) << m;
  EXPECT_NE(m.find("moongate_policy_rule_accepted_total{lcore=\"0\",rule=\"1\"} 1\n"), std::string::npos) << m;
  EXPECT_NE(m.find("moongate_lcore_packets_total{lcore=\"0\",counter=\"policy_denied\"} 4\n"), std::string::npos) << m;
  EXPECT_EQ(m.find("counter=\"nat_flows\""), std::string::npos) << "a gauge among the counters";
  const std::string s = c.status_text(0);
  EXPECT_NE(s.find("  nat: 9 flows, 101 packets out, 91 in, no_flow 4\n"), std::string::npos) << s;
  EXPECT_NE(s.find("  policy: 5 denied, 5 replies, rule 0 12, rule 1 1\n"), std::string::npos) << s;
}

TEST_F(ControllerTest, ABadYamlAtStartIsRefused) {
  std::ofstream(opts_.config_path) << "interface:\n  name: mgt0\n  private_key: nope\n";
  Controller c;
  const std::string err = c.start(opts_);
  EXPECT_NE(err.find("site.yaml:3:16: interface.private_key"), std::string::npos) << err;
}

}  // namespace
}  // namespace moongate::control
