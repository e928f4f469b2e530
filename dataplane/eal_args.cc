#include "dataplane/eal_args.h"

namespace moongate::dp {
namespace {

bool starts_with(const std::string& s, const char* prefix) { return s.rfind(prefix, 0) == 0; }

}  // namespace

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

  bool blocks = false, has_prefix = false;
  for (const auto& e : cfg.dataplane.eal_args) {
    blocks |= e == "-b" || starts_with(e, "--block");
    has_prefix |= starts_with(e, "--file-prefix");
  }
  bool any_pci = false;
  for (const auto& p : cfg.ports) {
    if (p.device_kind != config::DeviceKind::kPci) continue;
    any_pci = true;
    // The whole device string: "0000:03:00.0,devarg=..." passes the PMD's
    // device arguments through.
    if (!blocks) a.insert(a.end(), {"-a", p.device});
  }
  if (!any_pci) a.emplace_back("--no-pci");
  // One runtime directory (and telemetry socket) per instance, named after
  // the interface, unless the operator chose one.
  if (!has_prefix) a.push_back("--file-prefix=moongate-" + cfg.interface.name);
  for (const auto& e : cfg.dataplane.eal_args) a.push_back(e);
  return a;
}

}  // namespace moongate::dp
