// The relay examples in config/examples/ (a DERP region of two meshed
// relays; a site that is also a relay) load through the relay's own loader,
// with the values operators read in them; the site file loads through
// config/'s too.
#include <gtest/gtest.h>

#include <fstream>
#include <sstream>
#include <string>
#include <vector>

#include "config/config.h"
#include "relay/options.h"

#ifndef MOONGATE_CONFIG_EXAMPLES_DIR
#error "the build passes MOONGATE_CONFIG_EXAMPLES_DIR (config/examples)"
#endif

namespace moongate::relay {
namespace {

Options load(const std::string& name) {
  const std::string path = std::string(MOONGATE_CONFIG_EXAMPLES_DIR) + "/" + name;
  std::vector<std::string> args = {"moongate-relay", "--config", path};
  std::vector<char*> argv;
  for (auto& a : args) argv.push_back(a.data());
  Options o;
  std::string err;
  EXPECT_TRUE(parse_options(static_cast<int>(argv.size()), argv.data(), o, err)) << path << ": " << err;
  return o;
}

TEST(RelayExamples, TwoRelaysOfOneRegionMeshWithEachOther) {
  const Options a = load("relay-region/derp1.yaml");
  const Options b = load("relay-region/derp2.yaml");
  EXPECT_EQ(a.hostname, "derp1.example.com");
  EXPECT_EQ(b.hostname, "derp2.example.com");
  EXPECT_FALSE(a.plain);
  for (const auto& [o, other] : {std::pair{&a, "derp2.example.com"}, std::pair{&b, "derp1.example.com"}}) {
    EXPECT_EQ(o->port, 443);
    EXPECT_EQ(o->http_port, 80);
    EXPECT_EQ(o->stun_port, 3478);
    ASSERT_EQ(o->mesh_with.size(), 1u);
    EXPECT_EQ(o->mesh_with[0].host, other);
    EXPECT_TRUE(o->mesh_with[0].tls);
    EXPECT_EQ(o->mesh_key_file, "/etc/moongate/derp-mesh.key");
    EXPECT_EQ(o->admission.mode, AdmissionMode::kNetmap);
    EXPECT_EQ(o->admission.netmap_interface, "mg0");
    EXPECT_EQ(o->rate_bytes_per_second, 12500000u);
  }
  EXPECT_NE(a.key_file, b.key_file);
}

// One file for both: the appliance's loader takes the WireGuard side and
// the relay section's key names, the relay takes the section's values.
TEST(RelayExamples, ASiteThatIsAlsoARelay) {
  const config::Result site = config::load_file(std::string(MOONGATE_CONFIG_EXAMPLES_DIR) + "/site-relay.yaml");
  ASSERT_TRUE(site.ok()) << site.error_text();
  EXPECT_EQ(site.config().interface.name, "mg0");
  EXPECT_TRUE(site.config().relay.has_value());
  const Options o = load("site-relay.yaml");
  EXPECT_EQ(o.hostname, "derp-ams.example.com");
  EXPECT_EQ(o.port, 443);
  EXPECT_EQ(o.http_port, 80);
  EXPECT_EQ(o.admission.mode, AdmissionMode::kNetmap);
  EXPECT_EQ(o.admission.netmap_interface, site.config().interface.name);  // this site's own netmap
  EXPECT_EQ(o.bootstrap_dns.names, (std::vector<std::string>{"derp-ams.example.com", "login.example.com"}));
  EXPECT_EQ(o.bootstrap_dns.unpublished, std::vector<std::string>{"controlplane.example.com"});
}

// A site file without the section is refused rather than run with defaults.
TEST(RelayExamples, ASiteWithoutARelaySectionIsRefused) {
  const std::string path = std::string(MOONGATE_CONFIG_EXAMPLES_DIR) + "/hub.yaml";
  std::vector<std::string> args = {"moongate-relay", "--config", path, "--plain"};
  std::vector<char*> argv;
  for (auto& a : args) argv.push_back(a.data());
  Options o;
  std::string err;
  EXPECT_FALSE(parse_options(static_cast<int>(argv.size()), argv.data(), o, err));
  EXPECT_EQ(err, path + ": no relay: section (docs/relay.md)");
}

}  // namespace
}  // namespace moongate::relay
