// Loading: a full document into every field, defaults, the shipped
// examples, files and key files.
#include <dirent.h>
#include <gtest/gtest.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <string>
#include <vector>

#include "config/config.h"
#include "config/key.h"
#include "tests/unit/config/test_util.h"

#ifndef MOONGATE_CONFIG_EXAMPLES_DIR
#error "the build passes MOONGATE_CONFIG_EXAMPLES_DIR (config/examples)"
#endif

namespace moongate::config {
namespace {

using test::base_lines;
using test::errors_of;
using test::kBerlinPrivate;
using test::kBerlinPublic;
using test::kHubPrivate;
using test::kHubPublic;
using test::kMadridPublic;
using test::kParisPublic;
using test::kPsk;
using test::lines;
using test::TempDir;
using Errors = std::vector<std::string>;

std::string b64(const std::uint8_t* key) { return encode_key(key); }

const std::string kFull = lines({
    "interface:",
    "  name: mg0",
    std::string("  private_key: ") + kHubPrivate,
    "  listen_port: 51821",
    "  addresses: [10.99.0.1/24, fd00:99::1/64]",
    "  mtu: 1380",
    "ports:",
    "  - name: wan0",
    "    role: wan",
    "    device: \"0000:03:00.0\"",
    "    address: [192.0.2.2/24, 2001:db8::2/64]",
    "    gateway: [192.0.2.1, 2001:db8::1]",
    "    mtu: 9000",
    "  - name: lan0",
    "    role: lan",
    "    device: net_af_packet1,iface=veth1",
    "    address: 10.10.0.1/24",
    "routes:",
    "  - prefix: 10.30.0.0/16",
    "    via: 10.10.0.254",
    "    port: lan0",
    "peers:",
    std::string("  - public_key: ") + kBerlinPublic,
    std::string("    preshared_key: ") + kPsk,
    "    allowed_ips: [10.20.0.0/16, fd00:20::/48]",
    "    endpoint: 198.51.100.7:51820",
    "    persistent_keepalive: 25",
    std::string("  - public_key: ") + kParisPublic,
    "    allowed_ips: [10.21.0.0/16]",
    "    endpoint: \"[2001:db8:1::7]:51821\"",
    "dataplane:",
    "  lcores: [1, 3]",
    "  busy_poll: true",
    "  max_peers: 5000",
    "  burst: 64",
    "  hugepages: false",
    "  memory_mb: 256",
    "  eal_args: [--file-prefix=mg]",
});

TEST(Load, EveryField) {
  const Result r = load_string(kFull, "full.yaml");
  ASSERT_TRUE(r.ok()) << r.error_text();
  EXPECT_TRUE(r.errors().empty());
  const Config& c = r.config();

  EXPECT_EQ(c.interface.name, "mg0");
  EXPECT_EQ(b64(c.interface.private_key.data()), kHubPrivate);
  EXPECT_EQ(b64(c.interface.public_key.data()), kHubPublic);  // derived
  EXPECT_TRUE(c.interface.private_key_file.empty());
  EXPECT_EQ(c.interface.listen_port, 51821);
  ASSERT_EQ(c.interface.addresses.size(), 2u);
  EXPECT_EQ(c.interface.addresses[0].to_string(), "10.99.0.1/24");  // host bits kept
  EXPECT_EQ(c.interface.addresses[1].to_string(), "fd00:99::1/64");
  EXPECT_EQ(c.interface.mtu, 1380);

  ASSERT_EQ(c.ports.size(), 2u);
  const Port& wan = c.ports[0];
  EXPECT_EQ(wan.name, "wan0");
  EXPECT_EQ(wan.role, PortRole::kWan);
  EXPECT_EQ(wan.device, "0000:03:00.0");
  EXPECT_EQ(wan.device_kind, DeviceKind::kPci);
  ASSERT_EQ(wan.addresses.size(), 2u);
  EXPECT_EQ(wan.addresses[1].to_string(), "2001:db8::2/64");
  ASSERT_NE(wan.gateway(4), nullptr);
  EXPECT_EQ(wan.gateway(4)->to_string(), "192.0.2.1");
  ASSERT_NE(wan.gateway(6), nullptr);
  EXPECT_EQ(wan.gateway(6)->to_string(), "2001:db8::1");
  EXPECT_EQ(wan.mtu, 9000);
  const Port& lan = c.ports[1];
  EXPECT_EQ(lan.role, PortRole::kLan);
  EXPECT_EQ(lan.device_kind, DeviceKind::kVdev);
  EXPECT_EQ(lan.device, "net_af_packet1,iface=veth1");
  EXPECT_EQ(lan.gateway(4), nullptr);
  EXPECT_EQ(lan.mtu, kDefaultPortMtu);
  EXPECT_EQ(c.find_port("lan0"), &c.ports[1]);
  EXPECT_EQ(c.find_port("lan9"), nullptr);

  ASSERT_EQ(c.routes.size(), 1u);
  EXPECT_EQ(c.routes[0].port_index, 1u);

  ASSERT_EQ(c.peers.size(), 2u);
  const Peer& p0 = c.peers[0];
  EXPECT_EQ(b64(p0.public_key.data()), kBerlinPublic);
  ASSERT_TRUE(p0.preshared_key.has_value());
  EXPECT_EQ(b64(p0.preshared_key->data()), kPsk);
  ASSERT_EQ(p0.allowed_ips.size(), 2u);
  EXPECT_EQ(p0.allowed_ips[1].to_string(), "fd00:20::/48");
  ASSERT_TRUE(p0.endpoint.has_value());
  EXPECT_EQ(p0.endpoint->to_string(), "198.51.100.7:51820");
  EXPECT_EQ(p0.persistent_keepalive, 25);
  const Peer& p1 = c.peers[1];
  EXPECT_FALSE(p1.preshared_key.has_value());
  ASSERT_TRUE(p1.endpoint.has_value());
  EXPECT_EQ(p1.endpoint->addr.family, 6);
  EXPECT_EQ(p1.endpoint->port, 51821);
  EXPECT_EQ(p1.persistent_keepalive, 0);

  EXPECT_EQ(c.dataplane.lcores, (std::vector<unsigned>{1, 3}));
  EXPECT_TRUE(c.dataplane.busy_poll);
  EXPECT_EQ(c.dataplane.max_peers, 5000u);
  EXPECT_EQ(c.dataplane.burst, 64);
  EXPECT_FALSE(c.dataplane.hugepages);
  EXPECT_EQ(c.dataplane.memory_mb, 256u);
  EXPECT_EQ(c.dataplane.eal_args, std::vector<std::string>{"--file-prefix=mg"});
}

TEST(Load, Defaults) {
  const Result r = load_string(lines(base_lines()), "t.yaml");
  ASSERT_TRUE(r.ok()) << r.error_text();
  const Config& c = r.config();
  EXPECT_EQ(c.interface.listen_port, 51820);
  EXPECT_EQ(c.interface.mtu, 1420);
  EXPECT_TRUE(c.interface.addresses.empty());
  EXPECT_EQ(c.ports[0].mtu, 1500);
  EXPECT_TRUE(c.ports[0].gateways.empty());
  EXPECT_TRUE(c.routes.empty());
  EXPECT_FALSE(c.peers[0].endpoint.has_value());
  EXPECT_FALSE(c.peers[0].preshared_key.has_value());
  EXPECT_EQ(c.peers[0].persistent_keepalive, 0);
  EXPECT_EQ(c.dataplane.lcores, std::vector<unsigned>{1});
  EXPECT_FALSE(c.dataplane.busy_poll);
  EXPECT_EQ(c.dataplane.max_peers, 100000u);
  EXPECT_EQ(c.dataplane.burst, 32);
  EXPECT_TRUE(c.dataplane.hugepages);
  EXPECT_EQ(c.dataplane.memory_mb, 512u);
  EXPECT_TRUE(c.dataplane.eal_args.empty());
}

TEST(Load, RefusesTextThatIsNotUtf8) {
  // A stray byte would be kept in the string but dumped back as U+FFFD (the
  // config fuzzer found it): refuse it, saying where.
  const std::string yaml =
      "interface: {name: mg0, private_key: 8PLMO/7AEPO5uW4pXd2SV35SRUtw370ndv54GSPqnFc=}\n"
      "ports: [{name: wan0, role: wan, device: \"net_tap0,iface=\xff\", address: [192.0.2.2/24]}]\n";
  const Result r = load_string(yaml, "u.yaml");
  ASSERT_FALSE(r.ok());
  ASSERT_EQ(r.errors().size(), 1u);
  EXPECT_EQ(r.errors()[0].to_string(), "u.yaml:2:57: not valid UTF-8 (a configuration is UTF-8 text)");
  // Multi-byte UTF-8 is fine where a string may hold it.
  EXPECT_TRUE(load_string("interface: {name: mg0, private_key: 8PLMO/7AEPO5uW4pXd2SV35SRUtw370ndv54GSPqnFc=}\n"
                          "# caf\xc3\xa9\n"
                          "ports: [{name: wan0, role: wan, device: net_null0, address: [192.0.2.2/24]}]\n",
                          "ok.yaml")
                  .ok());
}

TEST(Load, ResultApi) {
  Result r = load_string(lines(base_lines()), "t.yaml");
  ASSERT_TRUE(r);
  EXPECT_EQ(r.error_text(), "");
  const Config moved = std::move(r).config();
  EXPECT_EQ(moved.interface.name, "mg0");

  const Result bad = load_string("interface: 1\nports: 2\n", "bad.yaml");
  EXPECT_FALSE(bad);
  ASSERT_EQ(bad.errors().size(), 2u);
  const Error& e = bad.errors()[0];
  EXPECT_EQ(e.source, "bad.yaml");
  EXPECT_EQ(e.line, 1);
  EXPECT_EQ(e.column, 12);
  EXPECT_EQ(e.path, "interface");
  EXPECT_EQ(e.message, "expected a mapping, got '1'");
  EXPECT_EQ(bad.error_text(),
            "bad.yaml:1:12: interface: expected a mapping, got '1'\n"
            "bad.yaml:2:8: ports: expected a list, got '2'\n");
  // No position, no path: only what is known is printed.
  EXPECT_EQ((Error{"x.yaml", 0, 0, "", "cannot read: Permission denied"}).to_string(),
            "x.yaml: cannot read: Permission denied");
}

// Every shipped example loads: they are what operators copy.
TEST(Load, ShippedExamples) {
  const std::string dir = MOONGATE_CONFIG_EXAMPLES_DIR;
  DIR* d = opendir(dir.c_str());
  ASSERT_NE(d, nullptr) << dir;
  std::vector<std::string> files;
  while (const dirent* e = readdir(d)) {
    const std::string name = e->d_name;
    if (name.size() > 5 && name.substr(name.size() - 5) == ".yaml") files.push_back(name);
  }
  closedir(d);
  std::sort(files.begin(), files.end());
  EXPECT_GE(files.size(), 2u);
  EXPECT_NE(std::find(files.begin(), files.end(), "hub.yaml"), files.end());
  EXPECT_NE(std::find(files.begin(), files.end(), "subnet-router.yaml"), files.end());
  for (const std::string& name : files) {
    const Result r = load_file(dir + "/" + name);
    EXPECT_TRUE(r.ok()) << name << ":\n" << r.error_text();
    if (!r.ok()) continue;
    // A canonical dump of an example is itself valid (secrets shown).
    const Result again = load_string(dump(r.config(), {.reveal_secrets = true}), name);
    EXPECT_TRUE(again.ok()) << name << ":\n" << again.error_text();
    if (again.ok()) {
      EXPECT_EQ(again.config(), r.config()) << name;
    }
  }
}

// The two examples describe one network: the hub knows the site by the key
// the site's file derives, and the other way round.
TEST(Load, ExamplesAgreeWithEachOther) {
  const std::string dir = MOONGATE_CONFIG_EXAMPLES_DIR;
  const Result hub = load_file(dir + "/hub.yaml");
  const Result site = load_file(dir + "/subnet-router.yaml");
  ASSERT_TRUE(hub.ok() && site.ok());
  auto has_peer = [](const Config& c, const PublicKey& k) {
    return std::any_of(c.peers.begin(), c.peers.end(),
                       [&](const Peer& p) { return p.public_key == k; });
  };
  EXPECT_TRUE(has_peer(hub.config(), site.config().interface.public_key));
  EXPECT_TRUE(has_peer(site.config(), hub.config().interface.public_key));
  EXPECT_EQ(b64(site.config().interface.public_key.data()), kBerlinPublic);
  EXPECT_EQ(b64(site.config().interface.private_key.data()), kBerlinPrivate);
}

TEST(LoadFile, UnreadableFiles) {
  TempDir tmp;
  const Result missing = load_file(tmp.path() + "/nope.yaml");
  ASSERT_EQ(missing.errors().size(), 1u);
  EXPECT_EQ(missing.errors()[0].to_string(),
            tmp.path() + "/nope.yaml: cannot read: No such file or directory");
  const Result dir = load_file(tmp.path());
  ASSERT_EQ(dir.errors().size(), 1u);
  EXPECT_EQ(dir.errors()[0].to_string(), tmp.path() + ": cannot read: it is a directory");
}

TEST(LoadFile, ErrorsNameTheFile) {
  TempDir tmp;
  auto ls = base_lines();
  ls[5] = "    role: wna";
  const std::string path = tmp.write("site.yaml", lines(ls));
  const Result r = load_file(path);
  ASSERT_EQ(r.errors().size(), 1u);
  EXPECT_EQ(r.errors()[0].to_string(),
            path + ":6:11: ports[0].role: expected 'wan' or 'lan', got 'wna'");
}

// --- key files -------------------------------------------------------------------

std::vector<std::string> with_key_file(const std::string& path) {
  auto ls = base_lines();
  ls[2] = "  private_key_file: " + path;
  return ls;
}

TEST(KeyFiles, AsWgGenkeyWritesThem) {
  TempDir tmp;
  // wg genkey writes the key and a newline; a CRLF from an editor is fine too.
  for (const std::string& content : {std::string(kHubPrivate) + "\n", std::string(kHubPrivate),
                                     "  " + std::string(kHubPrivate) + "\r\n\n"}) {
    const std::string path = tmp.write("private.key", content);
    const Result r = load_string(lines(with_key_file(path)), "t.yaml");
    ASSERT_TRUE(r.ok()) << r.error_text();
    EXPECT_EQ(b64(r.config().interface.private_key.data()), kHubPrivate);
    EXPECT_EQ(b64(r.config().interface.public_key.data()), kHubPublic);
    EXPECT_EQ(r.config().interface.private_key_file, path);
  }
}

TEST(KeyFiles, Refusals) {
  TempDir tmp;
  const std::string missing = tmp.path() + "/missing.key";
  EXPECT_EQ(errors_of(with_key_file(missing)),
            Errors{"t.yaml:3:21: interface.private_key_file: cannot read key file '" + missing +
                   "': No such file or directory"});
  const std::string file = tmp.write("file", "x");
  EXPECT_EQ(errors_of(with_key_file(file + "/private.key")),
            Errors{"t.yaml:3:21: interface.private_key_file: cannot read key file '" + file +
                   "/private.key': Not a directory"});
  const std::string dir = tmp.mkdir("keys");
  EXPECT_EQ(errors_of(with_key_file(dir)),
            Errors{"t.yaml:3:21: interface.private_key_file: cannot read key file '" + dir +
                   "': it is a directory"});
  const std::string junk = tmp.write("junk.key", "this is not a key\n");
  EXPECT_EQ(errors_of(with_key_file(junk)),
            Errors{"t.yaml:3:21: interface.private_key_file: key file '" + junk +
                   "' does not hold a key: expected 44 base64 characters encoding 32 bytes, as "
                   "'wg genkey' writes"});
  const std::string two =
      tmp.write("two.key", std::string(kHubPrivate) + "\n" + kHubPrivate + "\n");
  EXPECT_EQ(errors_of(with_key_file(two)),
            Errors{"t.yaml:3:21: interface.private_key_file: key file '" + two +
                   "' does not hold a key: expected 44 base64 characters encoding 32 bytes, as "
                   "'wg genkey' writes"});
  const std::string empty = tmp.write("empty.key", "\n");
  EXPECT_EQ(errors_of(with_key_file(empty)),
            Errors{"t.yaml:3:21: interface.private_key_file: key file '" + empty + "' is empty"});
  const std::string big = tmp.write("big.key", std::string(5000, 'A'));
  EXPECT_EQ(errors_of(with_key_file(big)),
            Errors{"t.yaml:3:21: interface.private_key_file: key file '" + big +
                   "' is too large to hold a key"});
  const std::string zero = tmp.write("zero.key", std::string(43, 'A') + "=\n");
  EXPECT_EQ(errors_of(with_key_file(zero)),
            Errors{"t.yaml:3:21: interface.private_key_file: key file '" + zero +
                   "' holds an all-zero key"});
  EXPECT_EQ(errors_of(with_key_file("\"\"")),
            Errors{"t.yaml:3:21: interface.private_key_file: expected a file name, got an empty "
                   "string"});
}

TEST(KeyFiles, UnreadableByPermissions) {
  if (geteuid() == 0) GTEST_SKIP() << "root reads any file";
  TempDir tmp;
  const std::string path = tmp.write("private.key", std::string(kHubPrivate) + "\n");
  ASSERT_EQ(chmod(path.c_str(), 0), 0);
  EXPECT_EQ(errors_of(with_key_file(path)),
            Errors{"t.yaml:3:21: interface.private_key_file: cannot read key file '" + path +
                   "': Permission denied"});
}

TEST(KeyFiles, RelativeToTheConfigFile) {
  TempDir tmp;
  const std::string keys = tmp.mkdir("keys");
  tmp.write("keys/private.key", std::string(kHubPrivate) + "\n");
  tmp.write("keys/berlin.psk", std::string(kPsk) + "\n");
  auto ls = with_key_file("keys/private.key");
  ls.push_back("    preshared_key_file: keys/berlin.psk");
  const std::string path = tmp.write("moongate.yaml", lines(ls));
  const Result r = load_file(path);
  ASSERT_TRUE(r.ok()) << r.error_text();
  EXPECT_EQ(r.config().interface.private_key_file, tmp.path() + "/keys/private.key");
  EXPECT_EQ(b64(r.config().interface.public_key.data()), kHubPublic);
  ASSERT_TRUE(r.config().peers[0].preshared_key.has_value());
  EXPECT_EQ(b64(r.config().peers[0].preshared_key->data()), kPsk);
  EXPECT_EQ(r.config().peers[0].preshared_key_file, tmp.path() + "/keys/berlin.psk");

  // load_string has no file: relative paths are taken from the current directory.
  const std::string errors = load_string(lines(ls), "t.yaml").error_text();
  EXPECT_NE(errors.find("cannot read key file 'keys/private.key'"), std::string::npos) << errors;
}

TEST(KeyFiles, PeerKeyFileErrors) {
  TempDir tmp;
  const std::string junk = tmp.write("psk", "short\n");
  auto ls = base_lines();
  ls.push_back("    preshared_key_file: " + junk);
  EXPECT_EQ(errors_of(ls),
            Errors{"t.yaml:12:25: peers[0].preshared_key_file: key file '" + junk +
                   "' does not hold a key: expected 44 base64 characters encoding 32 bytes, as "
                   "'wg genkey' writes"});
}

}  // namespace
}  // namespace moongate::config

namespace moongate::config {
namespace {

// A site that is also a DERP relay: the `relay:` section is moongate-relay's
// (its values are checked there, tests/unit/relay); here its key names are
// checked against the relay's list and the section is kept for dump().
TEST(Load, RelaySectionOfASiteThatIsAlsoARelay) {
  auto ls = base_lines();
  ls.push_back("relay:");                                      // 12
  ls.push_back("  hostname: derp1.example.com");               // 13
  ls.push_back("  mesh-with: [https://derp2.example.com]");    // 14
  ls.push_back("  bootstrap_dns_names: [login.example.com]");  // 15
  const Result r = load_string(lines(ls), "t.yaml");
  ASSERT_TRUE(r.ok()) << r.error_text();
  ASSERT_TRUE(r.config().relay.has_value());
  EXPECT_EQ(*r.config().relay, (std::vector<RelaySetting>{{"hostname", {"derp1.example.com"}, false},
                                                          {"mesh-with", {"https://derp2.example.com"}, true},
                                                          {"bootstrap_dns_names", {"login.example.com"}, true}}));
  // dump() writes it back and the dump loads to an equal Config.
  const std::string d = dump(r.config(), {.reveal_secrets = true});
  EXPECT_NE(d.find("relay:"), std::string::npos);
  const Result again = load_string(d, "dump.yaml");
  ASSERT_TRUE(again.ok()) << again.error_text() << d;
  EXPECT_EQ(again.config(), r.config());

  // Without the section, or with every key commented out: no relay.
  EXPECT_FALSE(load_string(lines(base_lines()), "t.yaml").config().relay.has_value());
  auto empty = base_lines();
  empty.push_back("relay:");
  const Result e = load_string(lines(empty), "t.yaml");
  ASSERT_TRUE(e.ok()) << e.error_text();
  EXPECT_FALSE(e.config().relay.has_value());
}

TEST(Load, RelaySectionKeyAndShapeErrors) {
  auto ls = base_lines();
  ls.push_back("relay: 5");  // 12
  EXPECT_EQ(errors_of(ls), (Errors{"t.yaml:12:8: relay: expected a mapping, got '5'"}));
  ls = base_lines();
  ls.push_back("relay:");                      // 12
  ls.push_back("  hostnme: derp1.example.com");  // 13
  ls.push_back("  colour: blue");              // 14
  ls.push_back("  mesh_with: [a:1]");          // 15
  ls.push_back("  mesh-with: [b:2]");          // 16
  EXPECT_EQ(errors_of(ls), (Errors{
                               "t.yaml:13:3: relay: unknown key 'hostnme' (did you mean 'hostname'?)",
                               "t.yaml:14:3: relay: unknown key 'colour'",
                               "t.yaml:16:3: relay: duplicate key 'mesh-with' (first on line 15)",
                           }));
  // Shapes: what the relay could not take whatever it meant.
  ls = base_lines();
  ls.push_back("relay:");                             // 12
  ls.push_back("  plain: yes");                       // 13
  ls.push_back("  hostname: [a, b]");                 // 14
  ls.push_back("  bootstrap_dns_names: [a, {b: 1}]");  // 15
  ls.push_back("  shards:");                          // 16
  EXPECT_EQ(errors_of(ls), (Errors{
                               "t.yaml:13:10: relay.plain: expected true or false, got 'yes'",
                               "t.yaml:14:13: relay.hostname: expected a string, got a list",
                               "t.yaml:15:28: relay.bootstrap_dns_names[1]: expected a string, got a mapping",
                               "t.yaml:16:3: relay.shards: expected a string, got nothing",
                           }));
  // An empty list and an empty mapping are fine (and dump back).
  ls = base_lines();
  ls.push_back("relay: {mesh_with: []}");
  const Result r = load_string(lines(ls), "t.yaml");
  ASSERT_TRUE(r.ok()) << r.error_text();
  const Result again = load_string(dump(r.config(), {.reveal_secrets = true}), "dump.yaml");
  ASSERT_TRUE(again.ok()) << again.error_text();
  EXPECT_EQ(again.config(), r.config());
}

}  // namespace
}  // namespace moongate::config
