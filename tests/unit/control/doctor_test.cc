// `moongatectl doctor` against host trees made here: a production host
// (IOMMU, NIC on vfio-pci, hugepages, isolated cores), a plain VM, CPUs
// without AVX2 or AES-NI, and configurations the host cannot run.
#include "control/doctor.h"

#include <gtest/gtest.h>

#include <unistd.h>

#include <filesystem>
#include <fstream>

namespace moongate::control {
namespace {

namespace fs = std::filesystem;
using Level = Finding::Level;

constexpr const char* kAvx512Flags =
    "fpu cmov sse4_1 sse4_2 aes pclmulqdq avx avx2 bmi2 avx512f avx512dq avx512cd avx512bw avx512vl";

class DoctorTest : public ::testing::Test {
 protected:
  DoctorTest() {
    root_ = fs::temp_directory_path() / ("mg-doctor-" + std::to_string(getpid()) + "-" +
                                         ::testing::UnitTest::GetInstance()->current_test_info()->name());
    fs::remove_all(root_);
    fs::create_directories(root_);
    cpu(kAvx512Flags);
    write("proc/mounts", "proc /proc proc rw 0 0\n");
    write("proc/cmdline", "BOOT_IMAGE=/vmlinuz root=/dev/vda1\n");
    write("sys/devices/system/cpu/online", "0-3\n");
    write("sys/devices/system/cpu/isolated", "\n");
    hugepages(0, 0);
    fs::create_directories(root_ / "dev/shm");
  }
  ~DoctorTest() override { fs::remove_all(root_); }

  void write(const std::string& path, const std::string& text) {
    fs::create_directories((root_ / path).parent_path());
    std::ofstream(root_ / path) << text;
  }
  void cpu(const std::string& flags) {
    write("proc/cpuinfo", "processor\t: 0\nmodel name\t: test\nflags\t\t: " + flags + "\n\nprocessor\t: 1\n");
  }
  void hugepages(int total, int free) {
    write("sys/kernel/mm/hugepages/hugepages-2048kB/nr_hugepages", std::to_string(total) + "\n");
    write("sys/kernel/mm/hugepages/hugepages-2048kB/free_hugepages", std::to_string(free) + "\n");
  }
  void nic(const std::string& addr, const std::string& vendor, const std::string& device, const std::string& driver,
           const std::string& netdev = {}) {
    const std::string d = "sys/bus/pci/devices/" + addr;
    write(d + "/class", "0x020000\n");
    write(d + "/vendor", vendor + "\n");
    write(d + "/device", device + "\n");
    if (!driver.empty()) {
      fs::create_directories(root_ / "sys/bus/pci/drivers" / driver);
      fs::create_directory_symlink("../../../../bus/pci/drivers/" + driver, root_ / d / "driver");
    }
    if (!netdev.empty()) fs::create_directories(root_ / d / "net" / netdev);
  }
  void production() {
    hugepages(2048, 2048);
    write("sys/kernel/mm/hugepages/hugepages-1048576kB/nr_hugepages", "0\n");
    write("sys/kernel/mm/hugepages/hugepages-1048576kB/free_hugepages", "0\n");
    for (int g = 0; g < 8; ++g) fs::create_directories(root_ / "sys/kernel/iommu_groups" / std::to_string(g));
    fs::create_directories(root_ / "sys/module/vfio_pci");
    write("proc/cmdline", "root=/dev/sda1 intel_iommu=on iommu=pt isolcpus=2,3\n");
    write("sys/devices/system/cpu/isolated", "2-3\n");
    nic("0000:03:00.0", "0x8086", "0x1592", "vfio-pci");
    nic("0000:03:00.1", "0x8086", "0x1592", "vfio-pci");
    nic("0000:00:1f.6", "0x8086", "0x15bc", "e1000e", "eno1");
  }
  config::Config load(const std::string& ports, const std::string& dataplane) {
    auto r = config::load_string(
        "interface:\n  name: mg0\n  private_key: yAnz5TF+lXXJte14tji3zlMNq+hd2rYUIgJBgB3fBmk=\n"
        "  addresses: [10.99.0.1/24]\nports:\n" +
            ports + "dataplane:\n" + dataplane,
        "mg0.yaml");
    EXPECT_TRUE(r.ok()) << r.error_text();
    return r.config();
  }
  DoctorReport run(const config::Config* cfg = nullptr) { return run_doctor(root_.string(), cfg); }

  // Findings of an area at a level (the locked-memory check reads this
  // process's own limit, so tests ignore the "memory" area).
  static std::vector<Finding> at(const DoctorReport& r, const std::string& area, Level level) {
    std::vector<Finding> out;
    for (const auto& f : r.findings)
      if (f.area == area && f.level == level) out.push_back(f);
    return out;
  }
  static int problems(const DoctorReport& r) {
    int n = 0;
    for (const auto& f : r.findings)
      if (f.area != "memory" && f.level != Level::kOk) ++n;
    return n;
  }

  fs::path root_;
};

const char* kPciPorts =
    "  - {name: wan0, role: wan, device: \"0000:03:00.0\", address: 192.0.2.2/24}\n"
    "  - {name: lan0, role: lan, device: \"0000:03:00.1\", address: 10.10.0.1/24}\n";

TEST_F(DoctorTest, ProductionHostIsReadyForItsConfig) {
  production();
  const auto cfg = load(kPciPorts, "  lcores: [2, 3]\n  busy_poll: true\n  memory_mb: 2048\n");
  const auto r = run(&cfg);
  EXPECT_EQ(problems(r), 0) << r.text();
  EXPECT_EQ(r.count(Level::kFail), 0);
  ASSERT_EQ(at(r, "nics", Level::kOk).size(), 5u) << r.text();  // 3 NICs + 2 ports
  EXPECT_NE(r.text().find("port wan0: 0000:03:00.0 ready (vfio-pci)"), std::string::npos) << r.text();
  EXPECT_NE(r.text().find("8 IOMMU groups (passthrough mode)"), std::string::npos) << r.text();
  EXPECT_NE(r.text().find("AVX-512"), std::string::npos);
}

TEST_F(DoctorTest, PlainVmWarnsButDoesNotFailWithoutConfig) {
  nic("0000:00:03.0", "0x1af4", "0x1041", "virtio-pci");
  fs::create_directories(root_ / "sys/bus/pci/devices/0000:00:03.0/virtio2/net/eth0");
  const auto r = run();
  EXPECT_EQ(r.count(Level::kFail), 0) << r.text();
  ASSERT_EQ(at(r, "iommu", Level::kWarn).size(), 2u) << r.text();  // no groups, no vfio-pci
  EXPECT_NE(at(r, "iommu", Level::kWarn)[0].what.find("no IOMMU groups"), std::string::npos);
  EXPECT_FALSE(at(r, "iommu", Level::kWarn)[0].fix.empty());
  ASSERT_EQ(at(r, "nics", Level::kWarn).size(), 1u);
  EXPECT_NE(r.text().find("0000:00:03.0 virtio-net (1af4:1041), driver virtio-pci, kernel interface eth0"),
            std::string::npos)
      << r.text();
  ASSERT_EQ(at(r, "hugepages", Level::kWarn).size(), 1u);
  EXPECT_NE(at(r, "hugepages", Level::kWarn)[0].what.find("none reserved"), std::string::npos);
  EXPECT_EQ(at(r, "cores", Level::kWarn).size(), 1u);  // nothing isolated
}

TEST_F(DoctorTest, PciPortOnKernelDriverFailsNamingTheFix) {
  production();
  nic("0000:04:00.0", "0x8086", "0x1592", "ice", "ens4f0");
  const auto cfg = load("  - {name: wan0, role: wan, device: \"0000:04:00.0\", address: 192.0.2.2/24}\n"
                        "  - {name: lan0, role: lan, device: \"0000:09:00.0\", address: 10.10.0.1/24}\n",
                        "  lcores: [2]\n  memory_mb: 1024\n");
  const auto r = run(&cfg);
  const auto fails = at(r, "nics", Level::kFail);
  ASSERT_EQ(fails.size(), 2u) << r.text();
  EXPECT_NE(fails[0].what.find("port wan0: 0000:04:00.0 is bound to ice, not vfio-pci"), std::string::npos);
  EXPECT_EQ(fails[0].fix, "moongate-bind-nic 0000:04:00.0");
  EXPECT_NE(fails[1].what.find("port lan0: no PCI network device 0000:09:00.0"), std::string::npos);
}

TEST_F(DoctorTest, MellanoxStaysOnItsKernelDriver) {
  production();
  nic("0000:05:00.0", "0x15b3", "0x101d", "mlx5_core", "enp5s0f0np0");
  const auto cfg = load("  - {name: wan0, role: wan, device: \"0000:05:00.0\", address: 192.0.2.2/24}\n",
                        "  lcores: [2]\n  memory_mb: 1024\n");
  const auto r = run(&cfg);
  EXPECT_TRUE(at(r, "nics", Level::kFail).empty()) << r.text();
}

TEST_F(DoctorTest, CpuPaths) {
  cpu("fpu cmov sse4_1 sse4_2 aes pclmulqdq avx avx2 bmi2");
  EXPECT_NE(at(run(), "cpu", Level::kOk).at(0).what.find("AVX2"), std::string::npos);
  cpu("fpu cmov sse4_1 sse4_2 aes pclmulqdq avx");
  EXPECT_EQ(at(run(), "cpu", Level::kWarn).size(), 1u);
  cpu("fpu cmov sse4_1 sse4_2 pclmulqdq");  // no AES-NI: no IPsec-MB path this data plane takes
  const auto r = run();
  ASSERT_EQ(at(r, "cpu", Level::kFail).size(), 1u) << r.text();
  EXPECT_NE(at(r, "cpu", Level::kFail)[0].what.find("missing aes"), std::string::npos);
  EXPECT_EQ(r.count(Level::kFail), 1);
}

TEST_F(DoctorTest, TooFewHugepagesForTheConfig) {
  production();
  hugepages(512, 300);  // 600 MiB free
  const auto cfg = load(kPciPorts, "  lcores: [2]\n  memory_mb: 1024\n");
  const auto fails = at(run(&cfg), "hugepages", Level::kFail);
  ASSERT_EQ(fails.size(), 1u);
  EXPECT_NE(fails[0].what.find("600 MiB free, dataplane.memory_mb needs 1024 MiB"), std::string::npos)
      << fails[0].what;
  // Hugepages off: nothing to check.
  const auto off = load(kPciPorts, "  lcores: [2]\n  hugepages: false\n  memory_mb: 1024\n");
  EXPECT_TRUE(at(run(&off), "hugepages", Level::kFail).empty());
}

TEST_F(DoctorTest, LcoresMissingOrNotIsolatedWhenBusyPolling) {
  production();
  auto cfg = load(kPciPorts, "  lcores: [1, 7]\n  memory_mb: 1024\n");
  auto fails = at(run(&cfg), "cores", Level::kFail);
  ASSERT_EQ(fails.size(), 1u);
  EXPECT_NE(fails[0].what.find("dataplane.lcores 7 not online"), std::string::npos) << fails[0].what;
  cfg = load(kPciPorts, "  lcores: [1, 2]\n  busy_poll: true\n  memory_mb: 1024\n");
  auto warns = at(run(&cfg), "cores", Level::kWarn);
  ASSERT_EQ(warns.size(), 1u);
  EXPECT_NE(warns[0].what.find("busy-polling lcores 1 are not isolated"), std::string::npos) << warns[0].what;
  cfg = load(kPciPorts, "  lcores: [1, 2]\n  memory_mb: 1024\n");  // back-off: sharing is fine
  EXPECT_EQ(problems(run(&cfg)), 0);
}

TEST_F(DoctorTest, AfPacketInterfacesAndWanMtu) {
  write("sys/class/net/hn-wan/mtu", "1400\n");
  const auto cfg = load(
      "  - {name: wan0, role: wan, device: \"net_af_packet0,iface=hn-wan\", address: 192.0.2.2/24, mtu: 1500}\n"
      "  - {name: lan0, role: lan, device: \"net_af_packet1,iface=hn-absent\", address: 10.10.0.1/24}\n",
      "  lcores: [1]\n  hugepages: false\n  memory_mb: 512\n");
  const auto r = run(&cfg);
  const auto fails = at(r, "mtu", Level::kFail);
  ASSERT_EQ(fails.size(), 2u) << r.text();
  EXPECT_NE(fails[0].what.find("hn-wan has mtu 1400, the port needs 1500"), std::string::npos);
  EXPECT_EQ(fails[0].fix, "ip link set hn-wan mtu 1500");
  EXPECT_NE(fails[1].what.find("hn-absent not found"), std::string::npos);
  // 1500 carries the default 1420-byte tunnel MTU over IPv4 exactly.
  EXPECT_TRUE(at(r, "mtu", Level::kWarn).empty()) << r.text();
}

TEST_F(DoctorTest, WanMtuTooSmallForTheTunnel) {
  const auto cfg = load("  - {name: wan0, role: wan, device: \"net_tap0\", address: 192.0.2.2/24, mtu: 1400}\n",
                        "  lcores: [1]\n  hugepages: false\n  memory_mb: 512\n");
  const auto warns = at(run(&cfg), "mtu", Level::kWarn);
  ASSERT_EQ(warns.size(), 1u);
  EXPECT_NE(warns[0].what.find("below a full tunnel packet (1480"), std::string::npos) << warns[0].what;
  EXPECT_NE(warns[0].fix.find("lower interface.mtu to 1340"), std::string::npos) << warns[0].fix;
}

TEST_F(DoctorTest, JsonCarriesEveryFinding) {
  const auto r = run();
  const std::string j = r.json();
  std::size_t n = 0;
  for (std::size_t at_ = j.find("\"level\""); at_ != std::string::npos; at_ = j.find("\"level\"", at_ + 1)) ++n;
  EXPECT_EQ(n, r.findings.size());
  EXPECT_NE(j.find("\"failed\":0"), std::string::npos) << j;
}

}  // namespace
}  // namespace moongate::control
