// Validation: every rule, with the exact text and position an operator sees.
// Documents are built line by line from base_lines() (test_util.h), whose
// comments number the lines.
#include <gtest/gtest.h>

#include <string>
#include <vector>

#include "config/config.h"
#include "tests/unit/config/test_util.h"

namespace moongate::config {
namespace {

using test::base_lines;
using test::errors_of;
using test::kBerlinPublic;
using test::kHubPrivate;
using test::kHubPublic;
using test::kMadridPublic;
using test::kParisPublic;
using test::kPsk;
using test::lines;
using Errors = std::vector<std::string>;

// base_lines() with `extra` inserted before line `at` (1-based).
std::vector<std::string> with(std::vector<std::string> ls, std::size_t at,
                              const std::vector<std::string>& extra) {
  ls.insert(ls.begin() + static_cast<std::ptrdiff_t>(at - 1), extra.begin(), extra.end());
  return ls;
}

// base_lines() with line `at` (1-based) replaced.
std::vector<std::string> replaced(std::size_t at, const std::string& line) {
  auto ls = base_lines();
  ls[at - 1] = line;
  return ls;
}

// base_lines() plus a second peer (lines 12-13).
std::vector<std::string> with_peer(const std::string& key, const std::string& allowed) {
  auto ls = base_lines();
  ls.push_back("  - public_key: " + key);
  ls.push_back("    allowed_ips: " + allowed);
  return ls;
}

TEST(Validate, BaseDocumentIsValid) { EXPECT_EQ(errors_of(base_lines()), Errors{}); }

// --- unknown and repeated keys ---------------------------------------------

TEST(UnknownKey, SuggestsTheKeyMeantAndReportsTheTypoOnce) {
  // The example from the issue: line 7, column 5. allowed_ips is then
  // missing too, but that is the same mistake and is not reported again.
  const std::string yaml = lines({
      "interface:",
      "  name: mg0",
      std::string("  private_key: ") + kHubPrivate,
      "ports: [{name: wan0, role: wan, device: net_af_packet0, address: 192.0.2.2/24}]",
      "peers:",
      std::string("  - public_key: ") + kBerlinPublic,
      "    alowed_ips: [10.20.0.0/16]",
  });
  EXPECT_EQ(errors_of(yaml),
            Errors{"t.yaml:7:5: peers[0]: unknown key 'alowed_ips' (did you mean 'allowed_ips'?)"});
}

TEST(UnknownKey, SwappedLettersAndCase) {
  EXPECT_EQ(errors_of(with(base_lines(), 4, {"  lsiten_port: 1", "  MTU: 1400"})),
            (Errors{
                "t.yaml:4:3: interface: unknown key 'lsiten_port' (did you mean 'listen_port'?)",
                "t.yaml:5:3: interface: unknown key 'MTU' (did you mean 'mtu'?)",
            }));
}

TEST(UnknownKey, NoGuessWhenNothingIsCloseOrTwoAreEquallyClose) {
  auto ls = with(base_lines(), 4, {"  nau: 1"});  // name and mtu: both 2 edits away
  ls.push_back("colour: blue");
  EXPECT_EQ(errors_of(ls), (Errors{
                               "t.yaml:4:3: interface: unknown key 'nau'",
                               "t.yaml:13:1: unknown key 'colour'",
                           }));
}

TEST(UnknownKey, TypoOfARequiredKey) {
  EXPECT_EQ(errors_of(replaced(2, "  nmae: mg0")),
            Errors{"t.yaml:2:3: interface: unknown key 'nmae' (did you mean 'name'?)"});
  EXPECT_EQ(
      errors_of(replaced(3, std::string("  privat_key: ") + kHubPrivate)),
      Errors{"t.yaml:3:3: interface: unknown key 'privat_key' (did you mean 'private_key'?)"});
}

TEST(UnknownKey, InEverySection) {
  auto ls = with(base_lines(), 9, {"    gatway: 192.0.2.1"});
  ls.push_back("    endpiont: 198.51.100.7:51820");
  ls.push_back("dataplane:");
  ls.push_back("  lcore: [1]");
  ls.push_back("routes:");
  ls.push_back("  - prefix: 10.30.0.0/16");
  ls.push_back("    via: 192.0.2.9");
  ls.push_back("    prot: wan0");
  EXPECT_EQ(errors_of(ls),
            (Errors{
                "t.yaml:9:5: ports[0]: unknown key 'gatway' (did you mean 'gateway'?)",
                "t.yaml:13:5: peers[0]: unknown key 'endpiont' (did you mean 'endpoint'?)",
                "t.yaml:15:3: dataplane: unknown key 'lcore' (did you mean 'lcores'?)",
                "t.yaml:19:5: routes[0]: unknown key 'prot' (did you mean 'port'?)",
            }));
}

TEST(DuplicateKey, IsRefused) {
  EXPECT_EQ(errors_of(with(base_lines(), 4, {"  name: mg1"})),
            Errors{"t.yaml:4:3: interface: duplicate key 'name' (first on line 2)"});
}

// --- types ------------------------------------------------------------------

TEST(Types, Integers) {
  auto check = [](const std::string& line) { return errors_of(with(base_lines(), 4, {line})); };
  EXPECT_EQ(check("  listen_port: abc"),
            Errors{"t.yaml:4:16: interface.listen_port: expected an integer between 1 and 65535, "
                   "got 'abc'"});
  EXPECT_EQ(check("  listen_port: \"51820\""),
            Errors{"t.yaml:4:16: interface.listen_port: expected an integer between 1 and 65535, "
                   "got the string '51820' (write it without quotes)"});
  EXPECT_EQ(check("  listen_port: 0"),
            Errors{"t.yaml:4:16: interface.listen_port: must be between 1 and 65535, got 0"});
  EXPECT_EQ(check("  listen_port: 65536"),
            Errors{"t.yaml:4:16: interface.listen_port: must be between 1 and 65535, got 65536"});
  EXPECT_EQ(check("  listen_port: -1"),
            Errors{"t.yaml:4:16: interface.listen_port: must be between 1 and 65535, got -1"});
  EXPECT_EQ(check("  listen_port: 99999999999999999999999"),
            Errors{"t.yaml:4:16: interface.listen_port: must be between 1 and 65535, got "
                   "99999999999999999999999"});
  EXPECT_EQ(check("  listen_port: 051820"),
            Errors{"t.yaml:4:16: interface.listen_port: expected a decimal integer without "
                   "leading zeros, got '051820'"});
  EXPECT_EQ(check("  listen_port: 0x100"),
            Errors{"t.yaml:4:16: interface.listen_port: expected an integer between 1 and 65535, "
                   "got '0x100'"});
  EXPECT_EQ(check("  listen_port: 1.5"),
            Errors{"t.yaml:4:16: interface.listen_port: expected an integer between 1 and 65535, "
                   "got '1.5'"});
  // An empty value is reported at its key: yaml-cpp places it on the next line.
  EXPECT_EQ(check("  listen_port:"),
            Errors{"t.yaml:4:3: interface.listen_port: expected an integer between 1 and 65535, "
                   "got nothing"});
  EXPECT_EQ(
      check("  mtu: [1400]"),
      Errors{"t.yaml:4:8: interface.mtu: expected an integer between 576 and 9000, got a list"});
}

TEST(Types, StringsBooleansMappingsLists) {
  EXPECT_EQ(errors_of(replaced(2, "  name: {a: 1}")),
            Errors{"t.yaml:2:9: interface.name: expected a string, got a mapping"});
  EXPECT_EQ(errors_of(replaced(2, "  name: ~")),
            Errors{"t.yaml:2:3: interface.name: expected a string, got nothing"});
  auto ls = base_lines();
  ls.insert(ls.end(), {"dataplane:", "  busy_poll: yes", "  hugepages: \"true\"", "  lcores: 1"});
  EXPECT_EQ(errors_of(ls),
            (Errors{
                "t.yaml:13:14: dataplane.busy_poll: expected true or false, got 'yes'",
                "t.yaml:14:14: dataplane.hugepages: expected true or false, got 'true'",
                "t.yaml:15:11: dataplane.lcores: expected a list, got '1'",
            }));
  EXPECT_EQ(errors_of(lines({"interface: 5", "ports: {name: wan0}", "peers: 3"})),
            (Errors{
                "t.yaml:1:12: interface: expected a mapping, got '5'",
                "t.yaml:2:8: ports: expected a list, got a mapping",
                "t.yaml:3:8: peers: expected a list, got '3'",
            }));
  EXPECT_EQ(errors_of(lines({"- a", "- b"})), Errors{"t.yaml:1:1: expected a mapping, got a list"});
  EXPECT_EQ(errors_of(lines({"interface:", "  ? [a, b]", "  : 1"})),
            (Errors{"t.yaml:1:1: missing required key 'ports'",
                    "t.yaml:2:3: interface: missing required key 'name'",
                    "t.yaml:2:3: interface: missing required key 'private_key' (or "
                    "'private_key_file')",
                    "t.yaml:2:5: interface: a key must be a plain name, got a list"}));
}

TEST(Types, BooleansInEverySpelling) {
  for (const char* t : {"true", "True", "TRUE"}) {
    auto ls = base_lines();
    ls.insert(ls.end(), {"dataplane:", std::string("  busy_poll: ") + t});
    const Result r = load_string(lines(ls), "t.yaml");
    ASSERT_TRUE(r.ok()) << r.error_text();
    EXPECT_TRUE(r.config().dataplane.busy_poll);
  }
  for (const char* f : {"false", "False", "FALSE"}) {
    auto ls = base_lines();
    ls.insert(ls.end(), {"dataplane:", std::string("  hugepages: ") + f});
    const Result r = load_string(lines(ls), "t.yaml");
    ASSERT_TRUE(r.ok()) << r.error_text();
    EXPECT_FALSE(r.config().dataplane.hugepages);
  }
}

// --- required fields ----------------------------------------------------------

TEST(Required, TopLevelSections) {
  auto no_interface = base_lines();
  no_interface.erase(no_interface.begin(), no_interface.begin() + 3);
  EXPECT_EQ(errors_of(no_interface), Errors{"t.yaml:1:1: missing required key 'interface'"});
  auto no_ports = base_lines();
  no_ports.erase(no_ports.begin() + 3, no_ports.begin() + 8);
  EXPECT_EQ(errors_of(no_ports), Errors{"t.yaml:1:1: missing required key 'ports'"});
  // peers may be left out: a hub the control process fills at run time.
  auto no_peers = base_lines();
  no_peers.resize(8);
  EXPECT_EQ(errors_of(no_peers), Errors{});
  // Optional sections left empty are as good as absent.
  no_peers.insert(no_peers.end(),
                  {"routes:", "  # - prefix: 10.30.0.0/16", "peers:", "dataplane: ~"});
  EXPECT_EQ(errors_of(no_peers), Errors{});
}

TEST(Required, FieldsOfEachSection) {
  auto ls = base_lines();
  ls.erase(ls.begin() + 1);  // interface.name
  EXPECT_EQ(errors_of(ls), Errors{"t.yaml:2:3: interface: missing required key 'name'"});

  EXPECT_EQ(errors_of(replaced(6, "    mtu: 1500")),  // no role: no "no wan port" on top
            Errors{"t.yaml:5:5: ports[0]: missing required key 'role'"});
  EXPECT_EQ(errors_of(replaced(7, "    mtu: 1500")),
            Errors{"t.yaml:5:5: ports[0]: missing required key 'device'"});
  EXPECT_EQ(errors_of(replaced(8, "    mtu: 1500")),
            Errors{"t.yaml:5:5: ports[0]: missing required key 'address'"});
  EXPECT_EQ(errors_of(replaced(10, "  - persistent_keepalive: 25")),
            Errors{"t.yaml:10:5: peers[0]: missing required key 'public_key'"});
  auto no_allowed = base_lines();
  no_allowed.pop_back();
  EXPECT_EQ(errors_of(no_allowed),
            Errors{"t.yaml:10:5: peers[0]: missing required key 'allowed_ips'"});

  auto route = base_lines();
  route.insert(route.end(), {"routes:", "  - prefix: 10.30.0.0/16"});
  EXPECT_EQ(errors_of(route), (Errors{
                                  "t.yaml:13:5: routes[0]: missing required key 'via'",
                                  "t.yaml:13:5: routes[0]: missing required key 'port'",
                              }));
}

TEST(Required, ExactlyOnePrivateKey) {
  auto none = base_lines();
  none.erase(none.begin() + 2);
  EXPECT_EQ(
      errors_of(none),
      Errors{"t.yaml:2:3: interface: missing required key 'private_key' (or 'private_key_file')"});
  EXPECT_EQ(errors_of(with(base_lines(), 4, {"  private_key_file: /etc/moongate/private.key"})),
            Errors{"t.yaml:4:3: interface: set private_key or private_key_file, not both"});
}

// --- keys -----------------------------------------------------------------------

TEST(Keys, PrivateKeyMustBeAWireGuardKey) {
  const std::string key = kHubPrivate;
  const auto errs = errors_of(replaced(3, "  private_key: " + key.substr(0, 43)));
  EXPECT_EQ(errs,
            Errors{"t.yaml:3:16: interface.private_key: not a valid key: expected 44 base64 "
                   "characters encoding 32 bytes (as 'wg genkey' prints), got 43 characters"});
  // The secret never appears in an error: errors go to logs.
  ASSERT_EQ(errs.size(), 1u);
  EXPECT_EQ(errs[0].find(key.substr(0, 8)), std::string::npos);

  // 44 characters whose last one has padding bits set: one key, one spelling.
  std::string noncanonical = key;
  noncanonical[42] = 'd';  // 'c' (..00) -> 'd' (..01)
  EXPECT_EQ(errors_of(replaced(3, "  private_key: " + noncanonical)),
            Errors{"t.yaml:3:16: interface.private_key: not a valid key: expected 44 base64 "
                   "characters encoding 32 bytes (as 'wg genkey' prints), got 44 characters that "
                   "do not decode to 32 bytes"});
  EXPECT_EQ(errors_of(replaced(3, "  private_key: " + std::string(43, 'A') + "=")),
            Errors{"t.yaml:3:16: interface.private_key: the key is all zeros"});
  EXPECT_EQ(errors_of(replaced(3, "  private_key: [a]")),
            Errors{"t.yaml:3:16: interface.private_key: expected a base64 key, got a list"});
}

TEST(Keys, PublicKeys) {
  EXPECT_EQ(errors_of(replaced(10, "  - public_key: not-a-key")),
            Errors{"t.yaml:10:17: peers[0].public_key: not a valid public key: expected 44 base64 "
                   "characters encoding 32 bytes (as 'wg pubkey' prints), got 'not-a-key'"});
  EXPECT_EQ(errors_of(replaced(10, "  - public_key: " + std::string(43, 'A') + "=")),
            Errors{"t.yaml:10:17: peers[0].public_key: the key is all zeros"});
  // kHubPublic is the public key of the interface's kHubPrivate.
  EXPECT_EQ(errors_of(replaced(10, std::string("  - public_key: ") + kHubPublic)),
            Errors{"t.yaml:10:17: peers[0].public_key: this is the interface's own public key "
                   "(derived from its private key)"});
  EXPECT_EQ(errors_of(with_peer(kBerlinPublic, "[10.21.0.0/16]")),
            Errors{"t.yaml:12:17: peers[1].public_key: duplicate public key: same as peers[0]"});
}

TEST(Keys, PresharedKeys) {
  auto ls = with(base_lines(), 12, {std::string("    preshared_key: ") + kPsk});
  const Result ok = load_string(lines(ls), "t.yaml");
  ASSERT_TRUE(ok.ok()) << ok.error_text();
  ASSERT_TRUE(ok.config().peers[0].preshared_key.has_value());
  EXPECT_EQ(ok.config().peers[0].preshared_key->data()[0], 0xd0);  // 0Mv1... = d0 cb f5 ...

  ls.push_back("    preshared_key_file: /etc/moongate/psk");
  EXPECT_EQ(errors_of(ls),
            Errors{"t.yaml:13:5: peers[0]: set preshared_key or preshared_key_file, not both"});
  EXPECT_EQ(errors_of(with(base_lines(), 12, {"    preshared_key: short"})),
            Errors{"t.yaml:12:20: peers[0].preshared_key: not a valid key: expected 44 base64 "
                   "characters encoding 32 bytes (as 'wg genkey' prints), got 5 characters"});
}

// --- allowed IPs ----------------------------------------------------------------

TEST(AllowedIps, OnePeerPerPrefix) {
  EXPECT_EQ(errors_of(with_peer(kParisPublic, "[10.21.0.0/16, 10.20.0.0/16]")),
            Errors{"t.yaml:13:33: peers[1].allowed_ips[1]: 10.20.0.0/16 is claimed by both "
                   "peers[0] (Mopjys/H...) and peers[1] (vNFK1rMf...): a prefix leads to one peer "
                   "only"});
  // The same prefix spelt two ways is still the same prefix.
  auto ls = replaced(11, "    allowed_ips: [fd00:20::/48]");
  ls.push_back(std::string("  - public_key: ") + kParisPublic);
  ls.push_back("    allowed_ips: [FD00:20:0:0::/48]");
  EXPECT_EQ(errors_of(ls),
            Errors{"t.yaml:13:19: peers[1].allowed_ips[0]: fd00:20::/48 is claimed by both "
                   "peers[0] (Mopjys/H...) and peers[1] (vNFK1rMf...): a prefix leads to one peer "
                   "only"});
  EXPECT_EQ(errors_of(replaced(11, "    allowed_ips: [10.20.0.0/16, 10.20.0.0/16]")),
            Errors{"t.yaml:11:33: peers[0].allowed_ips[1]: 10.20.0.0/16 is listed twice"});
}

TEST(AllowedIps, OverlappingPrefixesAreFine) {
  // Longest prefix wins, as in WireGuard: a hub with 10/8 and a direct
  // peer for one site is the normal case.
  EXPECT_EQ(errors_of(with_peer(kParisPublic, "[10.0.0.0/8, 0.0.0.0/0, ::/0]")), Errors{});
}

TEST(AllowedIps, Forms) {
  EXPECT_EQ(errors_of(replaced(11, "    allowed_ips: [10.20.1.0/16]")),
            Errors{"t.yaml:11:19: peers[0].allowed_ips[0]: 10.20.1.0/16 has host bits set (did you "
                   "mean 10.20.0.0/16?)"});
  EXPECT_EQ(errors_of(replaced(11, "    allowed_ips: [10.20.0.0/16, ::ffff:10.0.0.1]")),
            Errors{"t.yaml:11:33: peers[0].allowed_ips[1]: '::ffff:10.0.0.1' is an IPv4-mapped "
                   "IPv6 address: write it as 10.0.0.1"});
  EXPECT_EQ(errors_of(replaced(11, "    allowed_ips: 10.20.0.0/16")), Errors{});
  EXPECT_EQ(errors_of(replaced(11, "    allowed_ips: []")), Errors{});
  EXPECT_EQ(errors_of(replaced(11, "    allowed_ips: {a: b}")),
            Errors{"t.yaml:11:18: peers[0].allowed_ips: expected a list or a single value, got a "
                   "mapping"});
  const Result r = load_string(lines(replaced(11, "    allowed_ips: [10.0.0.7, fd00::7]")), "t");
  ASSERT_TRUE(r.ok()) << r.error_text();
  ASSERT_EQ(r.config().peers[0].allowed_ips.size(), 2u);
  EXPECT_EQ(r.config().peers[0].allowed_ips[0].to_string(), "10.0.0.7/32");
  EXPECT_EQ(r.config().peers[0].allowed_ips[1].to_string(), "fd00::7/128");
}

// --- endpoints and keepalive ----------------------------------------------------

TEST(PeerFields, Endpoint) {
  auto at12 = [](const std::string& line) { return errors_of(with(base_lines(), 12, {line})); };
  const std::string how = " (write host:port, e.g. 198.51.100.7:51820 or [2001:db8::1]:51820)";
  EXPECT_EQ(at12("    endpoint: vpn.example.com:51820"),
            Errors{"t.yaml:12:15: peers[0].endpoint: 'vpn.example.com:51820': DNS names are not "
                   "supported, write an IP address" +
                   how});
  EXPECT_EQ(at12("    endpoint: 2001:db8::1:51820"),
            Errors{"t.yaml:12:15: peers[0].endpoint: '2001:db8::1:51820': an IPv6 endpoint needs "
                   "brackets: [2001:db8::1]:51820"});
  // `[` starts a YAML list: without quotes the line does not parse.
  EXPECT_EQ(at12("    endpoint: [2001:db8::1]:51820"),
            Errors{"t.yaml:12:28: YAML syntax error: end of map not found (an IPv6 endpoint must "
                   "be quoted: endpoint: \"[2001:db8::1]:51820\")"});
  EXPECT_EQ(at12("    endpoint: [2001:db8::1]"),
            Errors{"t.yaml:12:15: peers[0].endpoint: expected host:port, got a list (an IPv6 "
                   "endpoint must be quoted: \"[2001:db8::1]:51820\")"});
  EXPECT_EQ(at12("    endpoint: \"[2001:db8::1]:51820\""), Errors{});
  EXPECT_EQ(at12("    persistent_keepalive: 65536"),
            Errors{"t.yaml:12:27: peers[0].persistent_keepalive: must be between 0 and 65535, got "
                   "65536"});
}

// --- ports --------------------------------------------------------------------------

TEST(Ports, AtLeastOneWan) {
  EXPECT_EQ(errors_of(replaced(6, "    role: lan")),
            Errors{"t.yaml:5:3: ports: at least one port needs role 'wan' (the side WireGuard runs "
                   "on)"});
  EXPECT_EQ(errors_of(replaced(6, "    role: WAN")),
            Errors{"t.yaml:6:11: ports[0].role: expected 'wan' or 'lan', got 'WAN'"});
  auto empty = base_lines();
  empty.erase(empty.begin() + 4, empty.begin() + 8);
  empty[3] = "ports: []";
  EXPECT_EQ(errors_of(empty),
            Errors{"t.yaml:4:8: ports: at least one port needs role 'wan' (the side WireGuard runs "
                   "on)"});
}

std::vector<std::string> with_lan(const std::string& name, const std::string& device,
                                  const std::string& address) {
  return with(
      base_lines(), 9,
      {"  - name: " + name, "    role: lan", "    device: " + device, "    address: " + address});
}

TEST(Ports, NamesAndDevicesAreUnique) {
  EXPECT_EQ(errors_of(with_lan("lan0", "net_af_packet1,iface=veth1", "10.10.0.1/24")), Errors{});
  EXPECT_EQ(errors_of(with_lan("wan0", "net_af_packet1,iface=veth1", "10.10.0.1/24")),
            Errors{"t.yaml:9:11: ports[1].name: duplicate port name 'wan0' (also ports[0])"});
  EXPECT_EQ(errors_of(with_lan("lan0", "net_af_packet0,iface=veth1", "10.10.0.1/24")),
            Errors{"t.yaml:11:13: ports[1].device: device 'net_af_packet0' is already ports[0]"});
  auto pci = with_lan("lan0", "03:00.0", "10.10.0.1/24");
  pci[6] = "    device: \"0000:03:00.0\"";
  EXPECT_EQ(errors_of(pci),
            Errors{"t.yaml:11:13: ports[1].device: device '0000:03:00.0' is already ports[0]"});
}

TEST(Ports, Devices) {
  auto kind = [](const std::string& device) {
    const Result r = load_string(lines(replaced(7, "    device: " + device)), "t");
    EXPECT_TRUE(r.ok()) << device << "\n" << r.error_text();
    return r.ok() ? r.config().ports[0].device_kind : DeviceKind::kVdev;
  };
  EXPECT_EQ(kind("\"0000:03:00.0\""), DeviceKind::kPci);
  EXPECT_EQ(kind("\"0000:AF:1f.7\""), DeviceKind::kPci);
  EXPECT_EQ(kind("\"03:00.1\""), DeviceKind::kPci);
  EXPECT_EQ(kind("net_tap0"), DeviceKind::kVdev);
  EXPECT_EQ(kind("net_af_packet0,iface=veth0,qpairs=2"), DeviceKind::kVdev);
  const std::string why =
      " is not a DPDK device: write a PCI address (0000:03:00.0) or a vdev "
      "(net_<driver><n>[,key=value,...], e.g. net_af_packet0,iface=eth1)";
  for (const char* bad : {"eth0", "net_", "net_tap0,", "net_tap0,,iface=x", "Net_tap0",
                          "0000:03:20.0", "0000:03:00.8", "000:03:00.0", "03:00"}) {
    EXPECT_EQ(errors_of(replaced(7, std::string("    device: \"") + bad + "\"")),
              Errors{"t.yaml:7:13: ports[0].device: '" + std::string(bad) + "'" + why})
        << bad;
  }
}

TEST(Ports, Names) {
  EXPECT_EQ(errors_of(replaced(5, "  - name: wan-uplink-number-1")),
            Errors{"t.yaml:5:11: ports[0].name: 'wan-uplink-number-1' is not a valid name: 1 to 15 "
                   "of the characters a-z A-Z 0-9 _ . -"});
  EXPECT_EQ(errors_of(replaced(2, "  name: \"mg 0\"")),
            Errors{"t.yaml:2:9: interface.name: 'mg 0' is not a valid name: 1 to 15 of the "
                   "characters a-z A-Z 0-9 _ . -"});
  EXPECT_EQ(errors_of(replaced(2, "  name: ..")),
            Errors{"t.yaml:2:9: interface.name: '..' is not a valid name: 1 to 15 of the "
                   "characters a-z A-Z 0-9 _ . -"});
  EXPECT_EQ(errors_of(replaced(2, "  name: a.b-c_D.123456")), Errors{});
}

TEST(Ports, Addresses) {
  EXPECT_EQ(errors_of(replaced(8, "    address: [192.0.2.2/24, 2001:db8::2/64, 192.0.2.3/24]")),
            Errors{});
  EXPECT_EQ(errors_of(replaced(8, "    address: 192.0.2.2")),
            Errors{"t.yaml:8:14: ports[0].address: '192.0.2.2' needs a prefix length for its "
                   "subnet, e.g. 192.0.2.2/24"});
  EXPECT_EQ(errors_of(replaced(8, "    address: [192.0.2.0/24]")),
            Errors{"t.yaml:8:15: ports[0].address[0]: 192.0.2.0/24 is the subnet's network "
                   "address, not a host address"});
  EXPECT_EQ(errors_of(replaced(8, "    address: [192.0.2.2/24, 192.0.2.2/25]")),
            Errors{"t.yaml:8:29: ports[0].address[1]: 192.0.2.2 is listed twice"});
  EXPECT_EQ(errors_of(replaced(8, "    address: []")),
            Errors{"t.yaml:8:14: ports[0].address: at least one address is needed"});
  // One subnet, one port.
  EXPECT_EQ(errors_of(with_lan("lan0", "net_tap0", "192.0.2.200/25")),
            Errors{"t.yaml:12:14: ports[1].address: subnet 192.0.2.128/25 overlaps 192.0.2.0/24 "
                   "of ports[0] (wan0)"});
}

TEST(Ports, Gateways) {
  auto gw = [](const std::string& address, const std::string& gateway) {
    return errors_of(with(replaced(8, "    address: " + address), 9, {"    gateway: " + gateway}));
  };
  EXPECT_EQ(gw("[192.0.2.2/24, 2001:db8::2/64]", "[192.0.2.1, 2001:db8::1]"), Errors{});
  EXPECT_EQ(gw("192.0.2.2/24", "192.0.3.1"),
            Errors{"t.yaml:9:14: ports[0].gateway: gateway 192.0.3.1 is not in the port's subnets "
                   "(192.0.2.0/24)"});
  EXPECT_EQ(gw("192.0.2.2/24", "[2001:db8::1]"),
            Errors{"t.yaml:9:15: ports[0].gateway[0]: gateway 2001:db8::1 is not in the port's "
                   "addresses (it has no IPv6 address)"});
  EXPECT_EQ(gw("192.0.2.2/24", "[192.0.2.1, 192.0.2.3]"),
            Errors{"t.yaml:9:26: ports[0].gateway[1]: a port has at most one IPv4 gateway"});
  EXPECT_EQ(gw("192.0.2.2/24", "192.0.2.2"),
            Errors{"t.yaml:9:14: ports[0].gateway: gateway 192.0.2.2 is the port's own address"});
  EXPECT_EQ(gw("192.0.2.2/24", "192.0.2.1/24"),
            Errors{"t.yaml:9:14: ports[0].gateway: '192.0.2.1/24' is not an IPv4 or IPv6 address"});
}

TEST(Ports, KernelInterface) {
  const Result r = load_string(lines(with(base_lines(), 9, {"    kernel_interface: mg-wan0"})), "t");
  ASSERT_TRUE(r.ok()) << r.error_text();
  EXPECT_EQ(r.config().ports[0].kernel_interface, "mg-wan0");
  EXPECT_EQ(errors_of(with(base_lines(), 9, {"    kernel_interface: mg-wan0-management"})),
            Errors{"t.yaml:9:23: ports[0].kernel_interface: 'mg-wan0-management' is not a valid "
                   "interface name: 1 to 15 of the characters a-z A-Z 0-9 _ . -"});
  auto two = with_lan("lan0", "net_af_packet1,iface=veth1", "10.10.0.1/24");
  two = with(two, 9, {"    kernel_interface: mgk"});
  two = with(two, 13, {"    kernel_interface: mgk"});
  EXPECT_EQ(errors_of(two),
            Errors{"t.yaml:13:23: ports[1].kernel_interface: kernel interface 'mgk' is already "
                   "ports[0]'s"});
}

TEST(Ports, Mtu) {
  EXPECT_EQ(errors_of(with(base_lines(), 9, {"    mtu: 9001"})),
            Errors{"t.yaml:9:10: ports[0].mtu: must be between 576 and 9000, got 9001"});
  EXPECT_EQ(errors_of(with(base_lines(), 9, {"    mtu: 1000"})), Errors{});
  EXPECT_EQ(errors_of(with(replaced(8, "    address: [192.0.2.2/24, 2001:db8::2/64]"), 9,
                           {"    mtu: 1000"})),
            Errors{"t.yaml:9:10: ports[0].mtu: must be at least 1280 on a port with an IPv6 "
                   "address, got 1000"});
}

// --- routes ----------------------------------------------------------------------------

// base + lan0 (lines 9-12) + one route (lines 13-16); peers on 17-19.
std::vector<std::string> routed(const std::string& prefix, const std::string& via,
                                const std::string& port) {
  return with(with_lan("lan0", "net_af_packet1,iface=veth1", "10.10.0.1/24"), 13,
              {"routes:", "  - prefix: " + prefix, "    via: " + via, "    port: " + port});
}

TEST(Routes, Valid) {
  const Result r = load_string(lines(routed("10.30.0.0/16", "10.10.0.254", "lan0")), "t");
  ASSERT_TRUE(r.ok()) << r.error_text();
  ASSERT_EQ(r.config().routes.size(), 1u);
  const Route& route = r.config().routes[0];
  EXPECT_EQ(route.prefix.to_string(), "10.30.0.0/16");
  EXPECT_EQ(route.via.to_string(), "10.10.0.254");
  EXPECT_EQ(route.port, "lan0");
  EXPECT_EQ(route.port_index, 1u);
}

TEST(Routes, PortAndNextHop) {
  EXPECT_EQ(errors_of(routed("10.30.0.0/16", "10.10.0.254", "lan1")),
            Errors{"t.yaml:16:11: routes[0].port: no port named 'lan1' (did you mean 'lan0'?)"});
  EXPECT_EQ(errors_of(routed("10.30.0.0/16", "10.10.0.254", "dmz")),
            Errors{"t.yaml:16:11: routes[0].port: no port named 'dmz'"});
  EXPECT_EQ(errors_of(routed("10.30.0.0/16", "10.11.0.254", "lan0")),
            Errors{"t.yaml:15:10: routes[0].via: next hop 10.11.0.254 is not in a subnet of port "
                   "lan0 (10.10.0.0/24)"});
  EXPECT_EQ(errors_of(routed("10.30.0.0/16", "10.10.0.1", "lan0")),
            Errors{"t.yaml:15:10: routes[0].via: next hop 10.10.0.1 is lan0's own address"});
  EXPECT_EQ(errors_of(routed("10.30.0.0/16", "fd00::1", "lan0")),
            Errors{"t.yaml:15:10: routes[0].via: next hop fd00::1 is not of the same family as "
                   "10.30.0.0/16"});
  EXPECT_EQ(errors_of(routed("10.30.1.0/16", "10.10.0.254", "lan0")),
            Errors{"t.yaml:14:13: routes[0].prefix: 10.30.1.0/16 has host bits set (did you mean "
                   "10.30.0.0/16?)"});
}

TEST(Routes, OnePlacePerPrefix) {
  auto twice = routed("10.30.0.0/16", "10.10.0.254", "lan0");
  twice.insert(twice.begin() + 16,
               {"  - prefix: 10.30.0.0/16", "    via: 10.10.0.253", "    port: lan0"});
  EXPECT_EQ(errors_of(twice),
            Errors{"t.yaml:17:13: routes[1].prefix: 10.30.0.0/16 is already routes[0]"});
  auto peer = routed("10.20.0.0/16", "10.10.0.254", "lan0");
  EXPECT_EQ(errors_of(peer),
            Errors{"t.yaml:19:19: peers[0].allowed_ips[0]: 10.20.0.0/16 is also routes[0]: a "
                   "prefix leads to one place only"});
}

// --- interface ------------------------------------------------------------------------

TEST(Interface, MtuAndIpv6) {
  auto mtu = [](const std::vector<std::string>& extra, const std::string& allowed) {
    return errors_of(with(replaced(11, "    allowed_ips: " + allowed), 4, extra));
  };
  EXPECT_EQ(mtu({"  mtu: 1200"}, "[10.20.0.0/16]"), Errors{});
  EXPECT_EQ(mtu({"  mtu: 575"}, "[10.20.0.0/16]"),
            Errors{"t.yaml:4:8: interface.mtu: must be between 576 and 9000, got 575"});
  EXPECT_EQ(mtu({"  mtu: 1200"}, "[fd00:20::/48]"),
            Errors{"t.yaml:4:8: interface.mtu: must be at least 1280 when the tunnel carries IPv6 "
                   "(an IPv6 address or allowed IP), got 1200"});
  EXPECT_EQ(mtu({"  addresses: [fd00:99::1/64]", "  mtu: 1279"}, "[10.20.0.0/16]"),
            Errors{"t.yaml:5:8: interface.mtu: must be at least 1280 when the tunnel carries IPv6 "
                   "(an IPv6 address or allowed IP), got 1279"});
  EXPECT_EQ(mtu({"  addresses: [fd00:99::1/64]", "  mtu: 1280"}, "[10.20.0.0/16]"), Errors{});
}

TEST(Interface, Addresses) {
  EXPECT_EQ(errors_of(with(base_lines(), 4, {"  addresses: 10.99.0.1/24"})), Errors{});
  EXPECT_EQ(errors_of(with(base_lines(), 4, {"  addresses: [10.99.0.1/24, 10.99.0.1/16]"})),
            Errors{"t.yaml:4:29: interface.addresses[1]: 10.99.0.1 is listed twice"});
  EXPECT_EQ(errors_of(with(base_lines(), 4, {"  addresses: [10.99.0.255/24]"})),
            Errors{"t.yaml:4:15: interface.addresses[0]: 10.99.0.255/24 is the subnet's broadcast "
                   "address, not a host address"});
}

// --- dataplane ------------------------------------------------------------------------

std::vector<std::string> with_dataplane(const std::vector<std::string>& extra) {
  auto ls = base_lines();
  ls.push_back("dataplane:");  // line 12
  ls.insert(ls.end(), extra.begin(), extra.end());
  return ls;
}

TEST(Dataplane, Lcores) {
  EXPECT_EQ(errors_of(with_dataplane({"  lcores: [0, 1, 2, 3]"})), Errors{});
  EXPECT_EQ(errors_of(with_dataplane({"  lcores: [1, 2, 1]"})),
            Errors{"t.yaml:13:18: dataplane.lcores[2]: lcore 1 is listed twice"});
  EXPECT_EQ(errors_of(with_dataplane({"  lcores: [-1]"})),
            Errors{"t.yaml:13:12: dataplane.lcores[0]: must be between 0 and 1023, got -1"});
  EXPECT_EQ(errors_of(with_dataplane({"  lcores: []"})),
            Errors{"t.yaml:13:11: dataplane.lcores: at least one worker lcore is needed"});
}

TEST(Dataplane, Ranges) {
  EXPECT_EQ(errors_of(with_dataplane({"  burst: 0", "  burst: 1"})),
            (Errors{"t.yaml:13:10: dataplane.burst: must be between 1 and 128, got 0",
                    "t.yaml:14:3: dataplane: duplicate key 'burst' (first on line 13)"}));
  EXPECT_EQ(errors_of(with_dataplane({"  burst: 129"})),
            Errors{"t.yaml:13:10: dataplane.burst: must be between 1 and 128, got 129"});
  EXPECT_EQ(errors_of(with_dataplane({"  memory_mb: 32"})),
            Errors{"t.yaml:13:14: dataplane.memory_mb: must be between 64 and 1048576, got 32"});
  EXPECT_EQ(errors_of(with_dataplane({"  max_peers: 0"})),
            Errors{"t.yaml:13:14: dataplane.max_peers: must be between 1 and 1000000, got 0"});
}

TEST(Dataplane, PeersFitMaxPeers) {
  auto ls = with_peer(kParisPublic, "[10.21.0.0/16]");
  ls.insert(ls.end(), {"dataplane:", "  max_peers: 2"});
  EXPECT_EQ(errors_of(ls), Errors{});
  ls.back() = "  max_peers: 1";
  EXPECT_EQ(errors_of(ls), Errors{"t.yaml:9:1: peers: 2 peers, more than dataplane.max_peers (1)"});
}

TEST(Dataplane, EalArgs) {
  const Result r = load_string(
      lines(with_dataplane({"  eal_args: [--file-prefix=mg, --log-level, \"lib.eal:debug\"]"})),
      "t");
  ASSERT_TRUE(r.ok()) << r.error_text();
  EXPECT_EQ(r.config().dataplane.eal_args,
            (std::vector<std::string>{"--file-prefix=mg", "--log-level", "lib.eal:debug"}));
  EXPECT_EQ(errors_of(with_dataplane({"  eal_args: [-l, 1-3, --lcores=1, -l2, --no-huge, -m, "
                                      "\"--vdev=net_tap0\", --lcoresx, [x]]"})),
            (Errors{
                "t.yaml:13:14: dataplane.eal_args[0]: '-l' is set by moongate from "
                "dataplane.lcores; change that instead",
                "t.yaml:13:23: dataplane.eal_args[2]: '--lcores=1' is set by moongate from "
                "dataplane.lcores; change that instead",
                "t.yaml:13:35: dataplane.eal_args[3]: '-l2' is set by moongate from "
                "dataplane.lcores; change that instead",
                "t.yaml:13:40: dataplane.eal_args[4]: '--no-huge' is set by moongate from "
                "dataplane.hugepages; change that instead",
                "t.yaml:13:51: dataplane.eal_args[5]: '-m' is set by moongate from "
                "dataplane.memory_mb; change that instead",
                "t.yaml:13:55: dataplane.eal_args[6]: '--vdev=net_tap0' is set by moongate from "
                "ports[].device; change that instead",
                "t.yaml:13:85: dataplane.eal_args[8]: expected a string, got a list",
            }));
}

// --- the document as a whole -----------------------------------------------------------

TEST(Document, AllErrorsInOnePassSortedByPosition) {
  auto ls = base_lines();
  ls[1] = "  name: \"\"";                               // line 2
  ls[5] = "    role: wna";                              // line 6
  ls[10] = "    allowed_ips: [10.20.0.1/16]";           // line 11
  ls.insert(ls.end(), {"dataplane:", "  burst: 500"});  // line 13
  ls.insert(ls.begin() + 3, "  listen_port: 0");        // line 4 (shifts the rest by one)
  EXPECT_EQ(errors_of(ls),
            (Errors{
                "t.yaml:2:9: interface.name: '' is not a valid name: 1 to 15 of the characters "
                "a-z A-Z 0-9 _ . -",
                "t.yaml:4:16: interface.listen_port: must be between 1 and 65535, got 0",
                "t.yaml:7:11: ports[0].role: expected 'wan' or 'lan', got 'wna'",
                "t.yaml:12:19: peers[0].allowed_ips[0]: 10.20.0.1/16 has host bits set (did you "
                "mean 10.20.0.0/16?)",
                "t.yaml:14:10: dataplane.burst: must be between 1 and 128, got 500",
            }));
}

TEST(Document, SyntaxErrors) {
  EXPECT_EQ(errors_of(lines({"interface:", "  name: [mg0"})),
            Errors{"t.yaml:3:1: YAML syntax error: end of sequence flow not found"});
  EXPECT_EQ(errors_of(lines({"interface:", "  name: mg0", " ports: x"})),
            Errors{"t.yaml:3:2: YAML syntax error: end of map not found"});
}

TEST(Document, EmptyOrSeveralDocuments) {
  const Errors empty{
      "t.yaml:1:1: the configuration is empty: expected a mapping with 'interface', 'ports' and "
      "'peers'"};
  EXPECT_EQ(errors_of(""), empty);
  EXPECT_EQ(errors_of("# nothing but a comment\n"), empty);
  EXPECT_EQ(errors_of("~\n"),
            Errors{"t.yaml:1:1: expected a mapping with 'interface', 'ports' and 'peers'"});
  EXPECT_EQ(errors_of(","),
            Errors{"t.yaml:1:1: expected a mapping with 'interface', 'ports' and 'peers'"});
  const Errors second{
      "t.yaml:12:1: a configuration is a single YAML document; another one starts here"};
  auto ls = base_lines();
  ls.insert(ls.end(), {"---", "interface: {}"});
  EXPECT_EQ(errors_of(ls), second);
  ls = base_lines();
  ls.insert(ls.end(), {"--- # next", "# comment", "x: 1"});
  EXPECT_EQ(errors_of(ls), second);
  ls = base_lines();
  ls.insert(ls.end(), {"...", "x: 1"});
  EXPECT_EQ(
      errors_of(ls),
      Errors{"t.yaml:13:1: a configuration is a single YAML document; another one starts here"});
  // Markers around one document, and a trailing empty one, are fine.
  ls = base_lines();
  ls.insert(ls.begin(), {"%YAML 1.2", "--- # moongate"});
  ls.insert(ls.end(), {"...", "---", "# nothing"});
  EXPECT_EQ(errors_of(ls), Errors{});
}

// Whatever the input, the API answers with errors and never throws.
TEST(Document, NeverThrows) {
  const std::vector<std::string> inputs = {
      "[",
      "{",
      "]",
      "- - -",
      "\t",
      ":",
      "? ? ?",
      "&a [*a]",
      "*unknown",
      "!!binary x",
      std::string("\0\xff\xfe", 3),
      "interface: &x {name: *x}",
      "%YAML 9.9\n---\na: 1",
      "a: !!int x",
      std::string(10000, '['),
      "ports: [[[[]]]]",
      "peers: [[], {}, ~, 1]",
      "interface: {name: mg0, private_key: [[]], addresses: [[1]]}",
      // yaml-cpp 0.7's LoadAll loops forever on these; Load does not.
      ",",
      std::string(",\x01"),
      "a: 1\n---\n,",
  };
  for (const std::string& in : inputs) {
    Result r(Result::failure({}));
    EXPECT_NO_THROW(r = load_string(in, "t.yaml")) << in;
    EXPECT_FALSE(r.ok()) << in;
    EXPECT_FALSE(r.errors().empty()) << in;
  }
}

}  // namespace
}  // namespace moongate::config
