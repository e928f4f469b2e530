// The relay examples in config/examples/ (a DERP region of two meshed
// relays) load through the relay's own loader, with the values operators
// read in them.
#include <gtest/gtest.h>

#include <fstream>
#include <sstream>
#include <string>
#include <vector>

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

}  // namespace
}  // namespace moongate::relay
