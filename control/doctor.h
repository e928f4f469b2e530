// `moongatectl doctor`: checks that a host can run the data plane and says
// what to fix. Everything is read from files (procfs and sysfs) under a
// root directory, "/" on a real host, so the checks are unit-tested against
// host trees a test makes (a host with an IOMMU and a vfio-bound NIC, one
// without, ...). Nothing is changed on the host.
//
// Checks, in the order reported:
//   cpu        the instruction sets IPsec-MB's ChaCha20-Poly1305 picks from
//              (AVX-512 > AVX2 > AVX > SSE) and AES-NI/PCLMUL
//   hugepages  2 MB and 1 GB pages reserved and free, hugetlbfs mounted;
//              with a config: enough free for dataplane.memory_mb
//   iommu      IOMMU groups present (vfio-pci needs them), vfio-pci loaded,
//              the unsafe no-IOMMU mode
//   nics       every PCI network function: driver, kernel interface, SR-IOV
//              VFs; with a config: each PCI port present and bound to a
//              driver DPDK can use
//   cores      online and isolated CPUs; with a config: the worker lcores
//              exist, and busy-polling ones are isolated
//   mtu        with a config: the kernel interfaces behind af_packet ports
//              carry the port MTU, and the WAN MTU fits a full tunnel packet
//   memory     the locked-memory limit, /dev/shm
// A finding is ok, warn (works, not as deployed in production) or fail (the
// given config cannot run here). Exit status: 1 when anything failed.
#pragma once

#include <string>
#include <vector>

#include "config/config.h"

namespace moongate::control {

struct Finding {
  enum class Level { kOk, kWarn, kFail };
  Level level = Level::kOk;
  std::string area;  // "cpu", "hugepages", ...
  std::string what;  // one line: what was found
  std::string fix;   // what to do about it; empty for ok
};

struct DoctorReport {
  std::vector<Finding> findings;

  int count(Finding::Level level) const;
  // Human-readable: one line per finding, "fix:" lines under problems.
  std::string text() const;
  std::string json() const;
};

// Checks the host whose /proc and /sys are found under `root`, and, if
// `cfg` is given, whether that configuration can run on it.
DoctorReport run_doctor(const std::string& root, const config::Config* cfg);

}  // namespace moongate::control
