// moongate-dataplane: the DPDK primary process of a site gateway.
//
//   moongate-dataplane --config FILE [--control] [--check] [--status-file PATH]
//
// 1. Load and validate the YAML configuration (config/); --check stops here.
//    With --control the netmap (key, listen port, peers, routes) comes from
//    moongate-control's shared segment instead (waiting for it if needed),
//    and later changes are applied while forwarding (netmap_service.h).
//    With `moon:`, the moon's file (identity, World) is read and checked
//    here too, so --check refuses a moon that could not start.
// 2. Build the EAL arguments from it (eal_args.h: lcores, memory, hugepages
//    or not, only the configured PCI devices probed) and initialise the EAL.
// 3. Open the ports (a queue pair per lcore), build the tables, give each
//    peer to a worker, start the moon's thread (moon_host.h) if configured,
//    run one loop per lcore until SIGINT/SIGTERM. SIGUSR1 writes the status (ports, peers,
//    counters, drops) to the status file.
#include <getopt.h>
#include <rte_eal.h>
#include <rte_errno.h>

#include <arpa/inet.h>
#include <unistd.h>

#include <atomic>
#include <csignal>
#include <memory>
#include <optional>
#include <cstdio>
#include <cstring>
#include <string>
#include <vector>

#include "config/config.h"
#include "config/key.h"
#include "dataplane/eal_args.h"
#include "dataplane/gateway.h"
#include "dataplane/moon_host.h"
#include "dataplane/netmap_service.h"
#include "dataplane/telemetry.h"
#include "netmap/segment.h"
#include "netmap/snapshot.h"
#include "zerotier/moon_config.h"

namespace {

using namespace moongate;

std::atomic<bool> g_stop{false};

void on_signal(int sig) {
  if (sig == SIGUSR1) {
    dp::Gateway::request_status();
  } else {
    g_stop = true;
    dp::Gateway::stop();
  }
}

// Control mode: waits (until a signal) for the segment and its first
// snapshot. nullptr if stopped.
std::unique_ptr<netmap::Segment> wait_for_netmap(const std::string& ifname, netmap::Netmap& out) {
  const std::string name = netmap::Segment::name_for(ifname);
  std::string last;
  while (!g_stop) {
    std::string err;
    std::unique_ptr<netmap::Segment> seg = netmap::Segment::open(name, err);
    if (seg) {
      switch (seg->read(0, out, err)) {
        case netmap::Segment::Read::kNew:
          return seg;
        case netmap::Segment::Read::kRetry:
          continue;
        case netmap::Segment::Read::kNone:
          err = "no netmap published yet";
          break;
        default:
          break;
      }
    }
    if (err != last) std::fprintf(stderr, "moongate-dataplane: waiting for moongate-control: %s\n", err.c_str());
    last = err;
    usleep(200'000);
  }
  return nullptr;
}

void usage(const char* prog) {
  std::fprintf(stderr,
               "usage: %s --config FILE [--control] [--check] [--status-file PATH]\n"
               "  --config FILE       the appliance configuration (docs/config.md)\n"
               "  --control           take the netmap from moongate-control and follow its changes\n"
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
  // The gateway's own address toward peers (ICMP errors into tunnels).
  for (const auto& a : cfg.interface.addresses) {
    if (a.addr.is_v4() && s.self_v4 == 0) s.self_v4 = v4_of(a.addr);
    if (!a.addr.is_v4() && !s.self_v6) {
      s.self_v6.emplace();
      std::memcpy(s.self_v6->data(), a.addr.bytes, 16);
    }
  }
  for (const dp::PortRole role : {dp::PortRole::kLan, dp::PortRole::kWan})
    for (const auto& port : s.ports) {
      if (port.role != role) continue;
      if (s.self_v4 == 0 && !port.v4.empty()) s.self_v4 = port.v4.front().addr;
      if (!s.self_v6 && !port.v6.empty()) s.self_v6 = port.v6.front().addr;
    }
  dp::route_settings(cfg.routes, s.ports, s.routes, s.routes6);
  for (const auto& p : cfg.peers) s.peers.push_back(dp::peer_settings(p));
  // The exit node (docs/exit-node.md): the wan port's internet prefixes,
  // NAT44 to its first IPv4 address or to the pool.
  for (const auto& p : cfg.ports) {
    if (p.role != config::PortRole::kWan || !p.internet) continue;
    s.internet_v6_all = false;
    for (const auto& a : *p.internet) {
      if (a.addr.is_v4()) {
        s.internet_v4.push_back(dp::Ipv4Iface{v4_of(a.network().addr), a.len});
      } else {
        dp::Ipv6Iface v6;
        std::memcpy(v6.addr.data(), a.network().addr.bytes, 16);
        v6.prefix_len = a.len;
        s.internet_v6.push_back(v6);
      }
    }
    // Only IPv6 prefixes listed: no IPv4 destination is internet.
    if (s.internet_v4.empty()) s.internet_v4.push_back(dp::Ipv4Iface{0xffffffffu, 32});
  }
  for (const auto& p : cfg.ports)
    if (p.role == config::PortRole::kWan)
      for (const auto& a : p.routed_prefixes) {
        dp::Ipv6Iface v6;
        std::memcpy(v6.addr.data(), a.network().addr.bytes, 16);
        v6.prefix_len = a.len;
        s.routed_v6.push_back(v6);
      }
  if (cfg.nat) {
    s.nat = true;
    nat::Nat44Config& n = s.nat_config;
    const auto to_nat = [](std::uint32_t v) {
      net::Ipv4Address a{};
      std::memcpy(a.data(), &v, 4);
      return a;
    };
    if (cfg.nat->masquerade) {
      for (const auto& p : s.ports)
        if (p.role == dp::PortRole::kWan && !p.v4.empty()) n.pool.push_back(to_nat(p.primary_v4()));
    } else {
      for (const auto& a : cfg.nat->pool) n.pool.push_back(to_nat(v4_of(a)));
    }
    n.port_min = cfg.nat->port_min;
    n.port_max = cfg.nat->port_max;
    n.max_flows = cfg.nat->max_flows;
    n.timeouts = cfg.nat->timeouts;
    n.reserved_ports = {cfg.interface.listen_port};
    if (cfg.moon) n.reserved_ports.push_back(cfg.moon->port);
  }
  if (cfg.moon) s.moon_port = cfg.moon->port;
  return s;
}

// The access policy compiled against the data plane's peers: source peer
// id = global id + 1. With --control the policy and each peer's name and
// tags are the netmap's (`netmap`, peers in the order of s.peers) and the
// netmap service follows their changes; else the policy is this file's and
// names and tags are found by key among its peers. An error here means the
// configuration changed under us (the loader checked the policy against
// the same peers); with --control it means a peer the policy names went
// away through `wg`: the data plane then fails closed (no rule accepts).
std::string compile_policy(const config::Config& cfg, dp::Settings& s, const netmap::Netmap* netmap) {
  if (netmap != nullptr) {
    s.policy_from_netmap = true;
    s.policy_rule_capacity = netmap::kSnapshotMaxRules;
  }
  const std::optional<policy::PolicySpec>& spec = netmap != nullptr ? netmap->policy : cfg.policy;
  if (!spec) return {};
  const std::vector<policy::PeerInfo> named = config::policy_peers(cfg);
  std::vector<policy::PeerInfo> peers;
  for (std::size_t i = 0; i < s.peers.size(); ++i) {
    const std::string key = config::encode_key(s.peers[i].public_key.data());
    policy::PeerInfo p{static_cast<std::uint32_t>(i + 1), "", key, {}};
    if (netmap != nullptr) {
      p.name = netmap->peers[i].name;
      p.tags = netmap->peers[i].tags;
    } else {
      for (const auto& n : named)
        if (n.public_key == key) {
          p.name = n.name;
          p.tags = n.tags;
        }
    }
    peers.push_back(std::move(p));
  }
  policy::CompileResult r = policy::compile(*spec, peers);
  if (!r.ok() && netmap != nullptr) {
    std::fprintf(stderr, "moongate-dataplane: the netmap's policy does not compile (%s: %s): denying everything "
                 "but established replies until one that does\n", r.errors.front().path.c_str(),
                 r.errors.front().message.c_str());
    r.policy = {};
    r.errors.clear();
  }
  if (!r.ok()) return "policy: " + r.errors.front().path + ": " + r.errors.front().message;
  s.policy = true;
  s.policy_compiled = std::move(r.policy);
  return {};
}

// The moon of `moon.config` (its `moon:` section: identity, World, budgets;
// docs/moon.md), hashes deferred to the host's worker thread. Its `listen`
// and `stats` are moongate-moon's: here the moon answers on the wan port's
// addresses at moon.port, and its counters are in telemetry.
std::unique_ptr<zerotier::Moon> open_moon(const config::Moon& m, std::string& error) {
  zerotier::MoonSettings st;
  const std::string default_listen = st.listen;
  if (!zerotier::load_moon_yaml(m.config, st, error)) return nullptr;
  if (st.listen != default_listen)
    std::fprintf(stderr, "moongate-dataplane: note: moon: listen %s is not used: the moon answers on the wan "
                 "port's addresses at moon.port %u\n", st.listen.c_str(), static_cast<unsigned>(m.port));
  if (!st.stats.empty())
    std::fprintf(stderr, "moongate-dataplane: note: moon: stats is not written: the counters are in telemetry "
                 "(/moongate/moon) and the status file\n");
  st.listen = default_listen;  // open_moon parses it; ours is the wan port
  st.config.defer_verification = true;
  auto opened = zerotier::open_moon(st, error);
  if (!opened) return nullptr;
  try {
    return std::make_unique<zerotier::Moon>(std::move(opened->identity), std::move(opened->world), st.config);
  } catch (const std::exception& e) {
    error = e.what();
    return nullptr;
  }
}

// The moon's thread beside the workers, its telemetry and status lines.
std::unique_ptr<dp::MoonHost> start_moon(dp::Gateway& gw, std::unique_ptr<zerotier::Moon> moon, std::uint16_t port,
                                         std::string& error) {
  const std::string addr = zerotier::address_hex(moon->identity().address);
  const std::uint64_t world = moon->world().id;
  auto host = std::make_unique<dp::MoonHost>(gw.shared(), std::move(moon));
  error = host->start();
  if (!error.empty()) return nullptr;
  dp::register_moon_telemetry(host.get());
  gw.set_extra_status([h = host.get()] { return h->status(); });
  std::printf("moongate-dataplane: moon %s serving world %016llx on udp port %u\n", addr.c_str(),
              static_cast<unsigned long long>(world), static_cast<unsigned>(port));
  return host;
}

}  // namespace

int main(int argc, char** argv) {
  std::string config_path;
  std::string status_path;
  bool check_only = false;
  bool control = false;
  static const option opts[] = {{"config", required_argument, nullptr, 'c'},
                                {"control", no_argument, nullptr, 'C'},
                                {"check", no_argument, nullptr, 'k'},
                                {"status-file", required_argument, nullptr, 's'},
                                {"help", no_argument, nullptr, 'h'},
                                {nullptr, 0, nullptr, 0}};
  for (int c; (c = getopt_long(argc, argv, "c:ks:h", opts, nullptr)) != -1;) {
    switch (c) {
      case 'c': config_path = optarg; break;
      case 'k': check_only = true; break;
      case 'C': control = true; break;
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
  config::Config& cfg = loaded.config();
  std::unique_ptr<zerotier::Moon> moon;
  if (cfg.moon) {
    std::string err;
    moon = open_moon(*cfg.moon, err);
    if (!moon) {
      std::fprintf(stderr, "moongate-dataplane: moon: %s\n", err.c_str());
      return 1;
    }
  }
  if (check_only) {
    std::printf("%s: OK\n", config_path.c_str());
    return 0;
  }

  std::vector<std::string> args = dp::eal_args(argv[0], cfg);
  std::vector<char*> cargs;
  for (auto& s : args) cargs.push_back(s.data());
  if (rte_eal_init(static_cast<int>(cargs.size()), cargs.data()) < 0) {
    std::fprintf(stderr, "moongate-dataplane: EAL initialisation failed: %s\n", rte_strerror(rte_errno));
    return 1;
  }

  std::signal(SIGINT, on_signal);
  std::signal(SIGTERM, on_signal);
  std::signal(SIGUSR1, on_signal);
  dp::Settings settings = to_settings(cfg);
  std::unique_ptr<netmap::Segment> segment;
  netmap::Netmap initial;
  if (control) {
    segment = wait_for_netmap(cfg.interface.name, initial);
    if (!segment) {
      rte_eal_cleanup();
      return 0;
    }
    if (initial.has_private_key) settings.private_key = initial.private_key;
    settings.listen_port = initial.listen_port;
    settings.peers.clear();
    // exit_node comes with each peer in the netmap (the control process's
    // word, from its YAML), not from this process's configuration file.
    for (const auto& p : initial.peers) settings.peers.push_back(dp::peer_settings(p));
    if (settings.nat) settings.nat_config.reserved_ports = {settings.listen_port};
    if (settings.moon_port != 0) {
      if (settings.moon_port == settings.listen_port) {
        std::fprintf(stderr, "moongate-dataplane: moon.port %u is the netmap's listen port\n",
                     static_cast<unsigned>(settings.moon_port));
        rte_eal_cleanup();
        return 1;
      }
      if (settings.nat) settings.nat_config.reserved_ports.push_back(settings.moon_port);
    }
    dp::route_settings(initial.routes, settings.ports, settings.routes, settings.routes6);
  }

  if (std::string err = compile_policy(cfg, settings, control ? &initial : nullptr); !err.empty()) {
    std::fprintf(stderr, "moongate-dataplane: %s\n", err.c_str());
    rte_eal_cleanup();
    return 1;
  }
  int rc = 0;
  {
    dp::Gateway gw;
    gw.set_status_file(status_path);
    if (std::string err = gw.init(std::move(settings)); !err.empty()) {
      std::fprintf(stderr, "moongate-dataplane: %s\n", err.c_str());
      rc = 1;
    } else {
      std::unique_ptr<dp::NetmapService> service;
      if (segment) {
        service = std::make_unique<dp::NetmapService>(gw, std::move(segment), std::move(initial));
        service->start();
      }
      dp::register_telemetry(&gw);
      std::unique_ptr<dp::MoonHost> moon_host;
      if (moon) {
        std::string why;
        moon_host = start_moon(gw, std::move(moon), cfg.moon->port, why);
        if (!moon_host) {
          std::fprintf(stderr, "moongate-dataplane: %s\n", why.c_str());
          rc = 1;
        }
      }
      if (rc == 0) {
        std::printf("moongate-dataplane: %zu ports, %zu peers, %zu workers, aead %s%s; running\n",
                    cfg.ports.size(), gw.peer_slots(), gw.worker_count(), gw.aead_arch(),
                    service ? ", netmap from moongate-control" : "");
        std::fflush(stdout);
        gw.run();
      }
      dp::register_telemetry(nullptr);
      dp::register_moon_telemetry(nullptr);
      if (moon_host) moon_host->stop();
      if (service) service->stop();
      std::printf("%s", gw.status().c_str());
      gw.set_extra_status(nullptr);
    }
  }
  rte_eal_cleanup();
  return rc;
}
