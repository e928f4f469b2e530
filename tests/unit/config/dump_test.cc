// The canonical dump: exact text, secrets hidden unless asked for, and
// load(dump(c)) == c.
#include <gtest/gtest.h>

#include <string>

#include "config/config.h"
#include "tests/unit/config/test_util.h"

namespace moongate::config {
namespace {

using test::base_lines;
using test::kBerlinPublic;
using test::kHubPrivate;
using test::kHubPublic;
using test::kParisPublic;
using test::kPsk;
using test::lines;
using test::TempDir;

// Spelt loosely on purpose: upper-case IPv6, a single gateway string, a
// bare allowed IP, fields out of order.
const std::string kLoose = lines({
    "peers:",
    std::string("  - allowed_ips: [10.20.0.0/16, FD00:20:0::/48, 10.0.0.7]"),
    std::string("    public_key: ") + kBerlinPublic,
    std::string("    preshared_key: ") + kPsk,
    "    endpoint: \"[2001:DB8::7]:51820\"",
    std::string("  - public_key: ") + kParisPublic,
    "    allowed_ips: []",
    "ports:",
    "  - address: 192.0.2.2/24",
    "    gateway: 192.0.2.1",
    "    name: wan0",
    "    device: \"03:00.0\"",
    "    role: wan",
    "interface:",
    std::string("  private_key: ") + kHubPrivate,
    "  name: mg0",
    "dataplane: {lcores: [2, 1], eal_args: [--file-prefix=mg, --log-level, \"lib.eal:debug\"]}",
});

const std::string kCanonicalHidden = std::string(R"(interface:
  name: mg0
  private_key: (hidden)  # public key: )") +
                                     kHubPublic + R"(
  listen_port: 51820
  addresses: []
  mtu: 1420
ports:
  - name: wan0
    role: wan
    device: "03:00.0"
    address: [192.0.2.2/24]
    gateway: [192.0.2.1]
    mtu: 1500
routes: []
peers:
  - public_key: )" + kBerlinPublic + R"(
    preshared_key: (hidden)
    allowed_ips: [10.20.0.0/16, fd00:20::/48, 10.0.0.7/32]
    endpoint: "[2001:db8::7]:51820"
    persistent_keepalive: 0
    exit_node: false
  - public_key: )" + kParisPublic + R"(
    allowed_ips: []
    persistent_keepalive: 0
    exit_node: false
dataplane:
  lcores: [2, 1]
  busy_poll: false
  max_peers: 100000
  burst: 32
  hugepages: true
  memory_mb: 512
  eal_args: [--file-prefix=mg, --log-level, lib.eal:debug]
)";

TEST(Dump, CanonicalWithSecretsHidden) {
  const Result r = load_string(kLoose, "loose.yaml");
  ASSERT_TRUE(r.ok()) << r.error_text();
  const std::string out = dump(r.config());
  EXPECT_EQ(out, kCanonicalHidden);
  EXPECT_EQ(out.find(kHubPrivate), std::string::npos);
  EXPECT_EQ(out.find(kPsk), std::string::npos);
}

TEST(Dump, RoundTripsWithSecretsShown) {
  const Result r = load_string(kLoose, "loose.yaml");
  ASSERT_TRUE(r.ok()) << r.error_text();
  const std::string shown = dump(r.config(), {.reveal_secrets = true});
  EXPECT_NE(shown.find(std::string("private_key: ") + kHubPrivate), std::string::npos) << shown;
  EXPECT_NE(shown.find(std::string("preshared_key: ") + kPsk), std::string::npos) << shown;
  const Result again = load_string(shown, "dump.yaml");
  ASSERT_TRUE(again.ok()) << again.error_text() << shown;
  EXPECT_EQ(again.config(), r.config());
  // Canonical means a fixed point.
  EXPECT_EQ(dump(again.config(), {.reveal_secrets = true}), shown);
  EXPECT_EQ(dump(again.config()), kCanonicalHidden);
}

TEST(Dump, HiddenSecretsDoNotLoad) {
  // "(hidden)" is for eyes and logs; loading it back is an error, not a zero key.
  const Result r = load_string(lines(base_lines()), "t.yaml");
  ASSERT_TRUE(r.ok());
  const Result again = load_string(dump(r.config()), "dump.yaml");
  ASSERT_EQ(again.errors().size(), 1u);
  EXPECT_EQ(again.errors()[0].path, "interface.private_key");
}

TEST(Dump, KeyFilesArePrintedAsTheirPath) {
  TempDir tmp;
  const std::string key = tmp.write("private.key", std::string(kHubPrivate) + "\n");
  const std::string psk = tmp.write("peer.psk", std::string(kPsk) + "\n");
  auto ls = base_lines();
  ls[2] = "  private_key_file: " + key;
  ls.push_back("    preshared_key_file: " + psk);
  const Result r = load_string(lines(ls), "t.yaml");
  ASSERT_TRUE(r.ok()) << r.error_text();
  const std::string out = dump(r.config());
  EXPECT_NE(out.find("  private_key_file: " + key + "  # public key: " + kHubPublic + "\n"),
            std::string::npos)
      << out;
  EXPECT_NE(out.find("    preshared_key_file: " + psk + "\n"), std::string::npos) << out;
  EXPECT_EQ(out.find(kPsk), std::string::npos);
  const Result again = load_string(out, "dump.yaml");
  ASSERT_TRUE(again.ok()) << again.error_text();
  EXPECT_EQ(again.config(), r.config());
}

TEST(Dump, EqualityComparesSecrets) {
  const Result a = load_string(lines(base_lines()), "t.yaml");
  auto ls = base_lines();
  ls.push_back(std::string("    preshared_key: ") + kPsk);
  const Result b = load_string(lines(ls), "t.yaml");
  ASSERT_TRUE(a.ok() && b.ok());
  EXPECT_NE(a.config(), b.config());
  Config c = b.config();
  EXPECT_EQ(c, b.config());
  c.peers[0].preshared_key->data()[5] ^= 1;
  EXPECT_NE(c, b.config());
  c = a.config();
  c.interface.private_key.data()[0] ^= 1;
  EXPECT_NE(c, a.config());
}

}  // namespace
}  // namespace moongate::config
