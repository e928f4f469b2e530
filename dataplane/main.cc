// moongate-dataplane: the DPDK primary process of a site gateway.
//
//   moongate-dataplane --config FILE [--check] [--status-file PATH]
//
// 1. Load and validate the YAML configuration (config/); --check stops here.
// 2. Build the EAL arguments from it (lcores, memory, hugepages or not, no
//    PCI scan when every port is a vdev) and initialise the EAL.
// 3. Open the ports (a queue pair per lcore), build the tables, give each
//    peer to a worker, run one loop per lcore until SIGINT/SIGTERM. SIGUSR1 writes the status (ports, peers,
//    counters, drops) to the status file.
#include <getopt.h>
#include <rte_eal.h>
#include <rte_errno.h>

#include <arpa/inet.h>
#include <csignal>
#include <cstdio>
#include <cstring>
#include <string>
#include <vector>

#include "config/config.h"
#include "dataplane/gateway.h"
#include "dataplane/telemetry.h"

namespace {

using namespace moongate;

void on_signal(int sig) {
  if (sig == SIGUSR1)
    dp::Gateway::request_status();
  else
    dp::Gateway::stop();
}

void usage(const char* prog) {
  std::fprintf(stderr,
               "usage: %s --config FILE [--check] [--status-file PATH]\n"
               "  --config FILE       the appliance configuration (docs/config.md)\n"
               "  --check             validate the configuration and exit\n"
               "  --status-file PATH  where SIGUSR1 writes ports, peers and counters\n",
               prog);
}

std::uint32_t v4_of(const config::IpAddress& a) {
  std::uint32_t v = 0;
  std::memcpy(&v, a.bytes, 4);
  return v;
}

// The data plane's view of the configuration (IPv4 and IPv6 everywhere:
// inside the tunnel, on LAN ports and as the underlay).
dp::Settings to_settings(config::Config& cfg) {
  dp::Settings s;
  s.private_key = cfg.interface.private_key;
  s.listen_port = cfg.interface.listen_port;
  s.tunnel_mtu = cfg.interface.mtu;
  s.max_peers = cfg.dataplane.max_peers;
  s.busy_poll = cfg.dataplane.busy_poll;
  s.workers = static_cast<std::uint16_t>(cfg.dataplane.lcores.size());
  for (const auto& p : cfg.ports) {
    dp::Port port;
    port.name = p.name;
    port.role = p.role == config::PortRole::kWan ? dp::PortRole::kWan : dp::PortRole::kLan;
    port.device = p.device;
    port.mtu = p.mtu;
    port.kernel_interface = p.kernel_interface;
    for (const auto& a : p.addresses) {
      if (a.addr.is_v4()) {
        port.v4.push_back(dp::Ipv4Iface{v4_of(a.addr), a.len});
      } else {
        dp::Ipv6Iface v6;
        std::memcpy(v6.addr.data(), a.addr.bytes, 16);
        v6.prefix_len = a.len;
        port.v6.push_back(v6);
      }
    }
    if (const config::IpAddress* gw = p.gateway(4)) port.gateway_v4 = v4_of(*gw);
    if (const config::IpAddress* gw = p.gateway(6)) {
      std::memcpy(port.gateway_v6.data(), gw->bytes, 16);
      port.has_gateway_v6 = true;
    }
    s.ports.push_back(std::move(port));
  }
  for (const auto& r : cfg.routes) {
    if (cfg.ports[r.port_index].role != config::PortRole::kLan) {
      std::fprintf(stderr, "moongate-dataplane: route %s via a wan port ignored (routes lead to LANs)\n",
                   r.prefix.to_string().c_str());
      continue;
    }
    if (r.prefix.addr.is_v4()) {
      s.routes.push_back(dp::StaticRoute{dp::Ipv4Iface{v4_of(r.prefix.addr), r.prefix.len}, v4_of(r.via),
                                         r.port_index});
    } else {
      dp::StaticRoute6 r6;
      std::memcpy(r6.prefix.addr.data(), r.prefix.addr.bytes, 16);
      r6.prefix.prefix_len = r.prefix.len;
      std::memcpy(r6.via.data(), r.via.bytes, 16);
      r6.port_index = r.port_index;
      s.routes6.push_back(r6);
    }
  }
  for (const auto& p : cfg.peers) {
    dp::PeerSettings ps;
    ps.public_key = p.public_key;
    if (p.preshared_key) {
      ps.preshared_key = *p.preshared_key;
      ps.has_psk = true;
    }
    for (const auto& a : p.allowed_ips) {
      if (a.addr.is_v4()) {
        ps.allowed_v4.emplace_back(v4_of(a.addr), a.len);
      } else {
        dp::Ipv6Bytes b{};
        std::memcpy(b.data(), a.addr.bytes, 16);
        ps.allowed_v6.emplace_back(b, a.len);
      }
    }
    if (p.endpoint) {
      ps.endpoint = p.endpoint->addr.is_v4() ? wg::Endpoint::v4(p.endpoint->addr.bytes, p.endpoint->port)
                                             : wg::Endpoint::v6(p.endpoint->addr.bytes, p.endpoint->port);
    }
    ps.persistent_keepalive = p.persistent_keepalive;
    s.peers.push_back(std::move(ps));
  }
  return s;
}

std::vector<std::string> eal_args(const char* prog, const config::Config& cfg) {
  std::vector<std::string> a{prog};
  std::string lcores;
  for (unsigned l : cfg.dataplane.lcores) lcores += (lcores.empty() ? "" : ",") + std::to_string(l);
  a.insert(a.end(), {"-l", lcores, "-m", std::to_string(cfg.dataplane.memory_mb)});
  // Without hugepages (tests, small VMs) nothing is shared with other
  // processes; with them, --in-memory keeps several instances from
  // colliding in /var/run/dpdk. (--in-memory with --no-huge is refused.)
  a.emplace_back(cfg.dataplane.hugepages ? "--in-memory" : "--no-huge");
  if (!cfg.dataplane.hugepages) a.emplace_back("--no-shconf");
  bool any_pci = false;
  for (const auto& p : cfg.ports) any_pci |= p.device_kind == config::DeviceKind::kPci;
  if (!any_pci) a.emplace_back("--no-pci");
  // One runtime directory (and telemetry socket) per instance, named after
  // the interface, unless the operator chose one.
  bool has_prefix = false;
  for (const auto& e : cfg.dataplane.eal_args) has_prefix |= e.rfind("--file-prefix", 0) == 0;
  if (!has_prefix) a.push_back("--file-prefix=moongate-" + cfg.interface.name);
  for (const auto& e : cfg.dataplane.eal_args) a.push_back(e);
  return a;
}

}  // namespace

int main(int argc, char** argv) {
  std::string config_path;
  std::string status_path;
  bool check_only = false;
  static const option opts[] = {{"config", required_argument, nullptr, 'c'},
                                {"check", no_argument, nullptr, 'k'},
                                {"status-file", required_argument, nullptr, 's'},
                                {"help", no_argument, nullptr, 'h'},
                                {nullptr, 0, nullptr, 0}};
  for (int c; (c = getopt_long(argc, argv, "c:ks:h", opts, nullptr)) != -1;) {
    switch (c) {
      case 'c': config_path = optarg; break;
      case 'k': check_only = true; break;
      case 's': status_path = optarg; break;
      case 'h': usage(argv[0]); return 0;
      default: usage(argv[0]); return 2;
    }
  }
  if (config_path.empty()) {
    usage(argv[0]);
    return 2;
  }

  config::Result loaded = config::load_file(config_path);
  if (!loaded.ok()) {
    std::fprintf(stderr, "%s", loaded.error_text().c_str());
    return 1;
  }
  if (check_only) {
    std::printf("%s: OK\n", config_path.c_str());
    return 0;
  }
  config::Config& cfg = loaded.config();

  std::vector<std::string> args = eal_args(argv[0], cfg);
  std::vector<char*> cargs;
  for (auto& s : args) cargs.push_back(s.data());
  if (rte_eal_init(static_cast<int>(cargs.size()), cargs.data()) < 0) {
    std::fprintf(stderr, "moongate-dataplane: EAL initialisation failed: %s\n", rte_strerror(rte_errno));
    return 1;
  }

  int rc = 0;
  {
    dp::Gateway gw;
    gw.set_status_file(status_path);
    if (std::string err = gw.init(to_settings(cfg)); !err.empty()) {
      std::fprintf(stderr, "moongate-dataplane: %s\n", err.c_str());
      rc = 1;
    } else {
      dp::register_telemetry(&gw);
      std::signal(SIGINT, on_signal);
      std::signal(SIGTERM, on_signal);
      std::signal(SIGUSR1, on_signal);
      std::printf("moongate-dataplane: %zu ports, %zu peers, %zu workers, aead %s; running\n",
                  cfg.ports.size(), cfg.peers.size(), gw.worker_count(), gw.aead_arch());
      std::fflush(stdout);
      gw.run();
      dp::register_telemetry(nullptr);
      std::printf("%s", gw.status().c_str());
    }
  }
  rte_eal_cleanup();
  return rc;
}
