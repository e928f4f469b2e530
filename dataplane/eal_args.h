// The EAL command line the data plane starts DPDK with, from the
// configuration alone (no DPDK needed to compute it, so it is unit-tested).
#pragma once

#include <string>
#include <vector>

#include "config/config.h"

namespace moongate::dp {

// argv[0] = prog, then:
//   -l <the configured lcores> -m <memory_mb>
//   --in-memory (hugepages) | --no-huge --no-shconf (no hugepages)
//   --no-pci when every port is a vdev; otherwise -a <device> for each PCI
//     port, so the EAL probes only the NICs this instance owns (another
//     instance's SR-IOV VFs, or the management NIC bound to vfio-pci, stay
//     untouched) — unless the operator's eal_args block devices (-b), which
//     the EAL refuses together with -a
//   --file-prefix=moongate-<interface> unless the operator's eal_args set one
//   then dataplane.eal_args as given.
std::vector<std::string> eal_args(const char* prog, const config::Config& cfg);

}  // namespace moongate::dp
