// DPDK telemetry endpoints for the data plane's counters:
//   /moongate/stats   totals, per-port RX/TX, every non-zero drop reason
//   /moongate/peers   peer count and, per peer (first 100), rx/tx bytes and handshakes
// Read with dpdk-telemetry.py or any client of the telemetry socket
// (/var/run/dpdk/<file-prefix>/dpdk_telemetry.v2).
#pragma once

namespace moongate::dp {

class Gateway;

// Registers the endpoints for `gw` (one gateway per process). The values
// are read while the lcore runs: each counter is read atomically, the set
// of them is a moment's approximation, as with DPDK's own xstats.
void register_telemetry(const Gateway* gw);

}  // namespace moongate::dp
