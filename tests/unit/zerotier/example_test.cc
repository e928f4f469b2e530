// config/examples/moon.yaml loads through the moon's own loader (shared by
// moongate-moon and moongate-relay), with its paths taken relative to the
// file and every setting in range.
#include <gtest/gtest.h>

#include <string>

#include "zerotier/moon_config.h"

#ifndef MOONGATE_CONFIG_EXAMPLES_DIR
#error "the build passes MOONGATE_CONFIG_EXAMPLES_DIR (config/examples)"
#endif

namespace moongate::zerotier {
namespace {

TEST(MoonExample, Loads) {
  const std::string dir = MOONGATE_CONFIG_EXAMPLES_DIR;
  MoonSettings st;
  std::string err;
  ASSERT_TRUE(load_moon_yaml(dir + "/moon/moon.yaml", st, err)) << err;
  EXPECT_EQ(st.identity_path, dir + "/moon/moon/identity.secret");
  EXPECT_EQ(st.world_path, dir + "/moon/moon/0000007ec8d1584c.moon");
  EXPECT_EQ(st.listen, "0.0.0.0/9993");
  EXPECT_EQ(st.stats, "/run/moongate/moon.stats");
  EXPECT_EQ(st.config.verify.per_second, 5u);
  EXPECT_EQ(st.config.verify.burst, 5u);
  EXPECT_EQ(st.config.verify.per_source_per_second, 2u);
  EXPECT_EQ(st.config.max_peers, 100000u);
  EXPECT_EQ(st.config.max_hops, 4u);
  // The files are the operator's own: opening names the missing identity.
  EXPECT_FALSE(open_moon(st, err).has_value());
  EXPECT_NE(err.find("identity.secret"), std::string::npos) << err;
}

}  // namespace
}  // namespace moongate::zerotier
