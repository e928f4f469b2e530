// The `moon:` section (the ZeroTier moon hosted by the data plane): the
// moon's file found and resolved, the port's default and range, the clash
// with WireGuard's listen port, the need for an addressed wan port, and
// the dump loading back equal.
#include <gtest/gtest.h>
#include <stdlib.h>
#include <unistd.h>

#include <fstream>
#include <string>
#include <vector>

#include "config/config.h"
#include "tests/unit/config/test_util.h"

namespace moongate::config {
namespace {

using test::base_lines;
using test::errors_of;
using test::lines;
using Errors = std::vector<std::string>;

std::vector<std::string> plus(std::vector<std::string> ls, const std::vector<std::string>& extra) {
  ls.insert(ls.end(), extra.begin(), extra.end());
  return ls;
}

// A scratch directory with a moon file in it (its content is the data
// plane's business: here it only has to be readable).
class MoonSection : public ::testing::Test {
 protected:
  void SetUp() override {
    char tmpl[] = "/tmp/mg_cfg_moon_XXXXXX";
    ASSERT_NE(mkdtemp(tmpl), nullptr);
    dir_ = tmpl;
    moon_ = dir_ + "/moon.yaml";
    std::ofstream(moon_) << "moon:\n  identity: id.secret\n  world: w.moon\n";
  }
  void TearDown() override {
    unlink(moon_.c_str());
    unlink((dir_ + "/site.yaml").c_str());
    rmdir(dir_.c_str());
  }
  std::string dir_, moon_;
};

TEST_F(MoonSection, AbsentMeansNoMoon) {
  const Result r = load_string(lines(base_lines()), "t.yaml");
  ASSERT_TRUE(r.ok()) << r.error_text();
  EXPECT_FALSE(r.config().moon.has_value());
}

TEST_F(MoonSection, DefaultPortAndDumpLoadsBack) {
  const Result r = load_string(lines(plus(base_lines(), {"moon:", "  config: " + moon_})), "t.yaml");
  ASSERT_TRUE(r.ok()) << r.error_text();
  ASSERT_TRUE(r.config().moon.has_value());
  EXPECT_EQ(r.config().moon->config, moon_);
  EXPECT_EQ(r.config().moon->port, 9993);
  const Result again = load_string(dump(r.config(), {.reveal_secrets = true}), "again");
  ASSERT_TRUE(again.ok()) << again.error_text();
  EXPECT_EQ(again.config(), r.config());
}

TEST_F(MoonSection, RelativePathIsRelativeToTheFile) {
  const std::string site = dir_ + "/site.yaml";
  std::ofstream(site) << lines(plus(base_lines(), {"moon: {config: moon.yaml, port: 19993}"}));
  const Result r = load_file(site);
  ASSERT_TRUE(r.ok()) << r.error_text();
  EXPECT_EQ(r.config().moon->config, moon_);
  EXPECT_EQ(r.config().moon->port, 19993);
}

TEST_F(MoonSection, Errors) {
  EXPECT_EQ(errors_of(plus(base_lines(), {"moon:", "  port: 9993"})),
            (Errors{"t.yaml:13:3: moon: missing required key 'config'"}));
  EXPECT_EQ(errors_of(plus(base_lines(), {"moon:", "  config: " + dir_ + "/none.yaml", "  port: 0", "  listen: x"})),
            (Errors{"t.yaml:13:11: moon.config: cannot read '" + dir_ + "/none.yaml': No such file or directory",
                    "t.yaml:14:9: moon.port: must be between 1 and 65535, got 0",
                    "t.yaml:15:3: moon: unknown key 'listen'"}));
  EXPECT_EQ(errors_of(plus(base_lines(), {"moon:", "  config: " + moon_, "  port: 51820"})),
            (Errors{"t.yaml:14:9: moon.port: port 51820 is interface.listen_port (WireGuard's)"}));
}

}  // namespace
}  // namespace moongate::config
