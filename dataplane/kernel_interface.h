// The exception path: traffic addressed to the appliance that the data
// plane does not answer itself (SSH, monitoring, BGP...) goes to the
// kernel through a TAP, so management works on a DPDK-owned port.
//
//   port rx -> to one of the port's addresses, not ARP / ND / ICMP echo /
//              WireGuard -> TAP tx -> the kernel's stack (sshd, ...)
//   TAP rx  -> whatever the kernel sends (replies, its own ARP / ND) ->
//              the port's tx, unchanged
//   ARP replies and neighbour advertisements the port receives are given
//   to the kernel too, so its neighbour cache resolves.
//
// The TAP carries the port's MAC address (frames need no rewriting either
// way), its MTU and its addresses; IPv6 addresses skip duplicate address
// detection, since the data plane already answers for them on the wire.
// Routes beyond the port's subnets are the operator's (docs/dataplane.md).
#pragma once

#include <string>

#include "dataplane/port.h"

namespace moongate::dp {

// The vdev string that creates the TAP for `port` (net_tap<n>, named
// port.kernel_interface, with the port's MAC).
std::string kernel_interface_device(const Port& port, unsigned n);

// Gives the TAP `ifname` the MTU (the port's, or less when the TAP PMD
// takes less: open_port) and the port's addresses and brings it up
// (netlink and ioctl on the calling process's network namespace). An
// operator-readable error, or "".
std::string configure_kernel_interface(const std::string& ifname, const Port& port, std::uint16_t mtu);

}  // namespace moongate::dp
