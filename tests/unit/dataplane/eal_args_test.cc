// The EAL command line built from the configuration (dataplane/eal_args.h):
// which devices the EAL may probe, memory mode, runtime-directory prefix.
#include <gtest/gtest.h>

#include <algorithm>
#include <string>
#include <vector>

#include "dataplane/eal_args.h"

namespace moongate::dp {
namespace {

config::Port port(const std::string& device, config::DeviceKind kind) {
  config::Port p;
  p.name = "p" + std::to_string(device.size());
  p.device = device;
  p.device_kind = kind;
  return p;
}

config::Config base() {
  config::Config c;
  c.interface.name = "mg7";
  c.dataplane.lcores = {2, 3};
  c.dataplane.memory_mb = 1024;
  return c;
}

// The values that follow each occurrence of `flag`.
std::vector<std::string> values_of(const std::vector<std::string>& a, const std::string& flag) {
  std::vector<std::string> out;
  for (std::size_t i = 0; i + 1 < a.size(); ++i)
    if (a[i] == flag) out.push_back(a[i + 1]);
  return out;
}

bool has(const std::vector<std::string>& a, const std::string& s) { return std::find(a.begin(), a.end(), s) != a.end(); }

TEST(EalArgs, VdevsOnlyScanNoPci) {
  config::Config c = base();
  c.dataplane.hugepages = false;
  c.ports = {port("net_af_packet0,iface=eth1", config::DeviceKind::kVdev),
             port("net_af_packet1,iface=eth2", config::DeviceKind::kVdev)};
  const auto a = eal_args("prog", c);
  EXPECT_EQ(a.front(), "prog");
  EXPECT_EQ(values_of(a, "-l"), std::vector<std::string>{"2,3"});
  EXPECT_EQ(values_of(a, "-m"), std::vector<std::string>{"1024"});
  EXPECT_TRUE(has(a, "--no-pci"));
  EXPECT_TRUE(has(a, "--no-huge"));
  EXPECT_TRUE(has(a, "--no-shconf"));
  EXPECT_FALSE(has(a, "--in-memory"));
  EXPECT_TRUE(values_of(a, "-a").empty());
  EXPECT_TRUE(has(a, "--file-prefix=moongate-mg7"));
}

TEST(EalArgs, PciPortsAreTheOnlyDevicesProbed) {
  config::Config c = base();
  c.ports = {port("0000:03:00.0", config::DeviceKind::kPci),
             port("net_tap0,iface=x", config::DeviceKind::kVdev),
             port("0000:03:00.1,rxq_pkt_len=2048", config::DeviceKind::kPci)};
  const auto a = eal_args("prog", c);
  EXPECT_FALSE(has(a, "--no-pci"));
  EXPECT_TRUE(has(a, "--in-memory"));
  // Each PCI port once, with its device arguments; vdevs are not listed.
  EXPECT_EQ(values_of(a, "-a"), (std::vector<std::string>{"0000:03:00.0", "0000:03:00.1,rxq_pkt_len=2048"}));
}

TEST(EalArgs, OperatorBlockListReplacesTheAllowList) {
  config::Config c = base();
  c.ports = {port("0000:03:00.0", config::DeviceKind::kPci)};
  c.dataplane.eal_args = {"-b", "0000:04:00.0", "--file-prefix=site"};
  const auto a = eal_args("prog", c);
  // -a and -b together are refused by the EAL: the operator's -b wins.
  EXPECT_TRUE(values_of(a, "-a").empty());
  EXPECT_EQ(values_of(a, "-b"), std::vector<std::string>{"0000:04:00.0"});
  // The operator's prefix replaces ours, and their arguments come last.
  EXPECT_FALSE(has(a, "--file-prefix=moongate-mg7"));
  EXPECT_EQ(a.back(), "--file-prefix=site");
}

}  // namespace
}  // namespace moongate::dp
