// moongatectl: the operator's view of a running appliance.
//
//   moongatectl [-i IFACE] status [--json]     peers, handshakes, transfer
//   moongatectl [-i IFACE] reload              re-read the YAML (errors shown, nothing changed)
//   moongatectl [-i IFACE] netmap              the netmap the data plane runs (no secrets; its policy)
//   moongatectl [-i IFACE] metrics             the Prometheus text
//   moongatectl [-i IFACE] peer add KEY [allowed-ips A,B] [endpoint H:P] [keepalive N]
//   moongatectl [-i IFACE] peer remove KEY
//   moongatectl import FILE                    a wg-quick .conf as moongate YAML
//   moongatectl moon identity|init|gen|show ... a ZeroTier moon's identity and World (control/moon_cmd.cc)
//
// status/reload/netmap/metrics go to moongate-control's control socket
// (/run/moongate/<iface>.ctl); peer changes use the WireGuard UAPI socket,
// exactly as `wg set` would, so they are persisted the same way. Without
// -i, the only interface with a control socket is used.
#include <dirent.h>

#include <cstdio>
#include <cstring>
#include <fstream>
#include <sstream>
#include <optional>
#include <string>
#include <vector>

#include "config/key.h"
#include "control/doctor.h"
#include "control/moon_cmd.h"
#include "control/sockets.h"
#include "control/uapi.h"
#include "control/wgconf.h"

namespace {

using namespace moongate;

int usage() {
  std::fprintf(stderr,
               "usage: moongatectl [-i IFACE] status [--json] | reload | netmap | metrics\n"
               "       moongatectl [-i IFACE] peer add KEY [allowed-ips A,B] [endpoint HOST:PORT] [keepalive N]\n"
               "       moongatectl [-i IFACE] peer remove KEY\n"
               "       moongatectl import FILE.conf\n"
               "       moongatectl doctor [--config FILE] [--json] [--root DIR]\n"
               "       moongatectl moon identity|init|gen|show ...\n");
  return 2;
}

std::string hex(const std::uint8_t* p) { return control::key_hex(p); }

// doctor [--config FILE] [--json] [--root DIR]: the host checks of
// control/doctor.h; --root reads /proc and /sys under DIR (a copy of
// another host's). Exit 1 when a check failed.
int doctor(const std::vector<std::string>& args) {
  std::string config_file, root = "/";
  bool json = false;
  for (std::size_t i = 1; i < args.size(); ++i) {
    if (args[i] == "--json") json = true;
    else if (args[i] == "--config" && i + 1 < args.size()) config_file = args[++i];
    else if (args[i] == "--root" && i + 1 < args.size()) root = args[++i];
    else return usage();
  }
  std::optional<config::Result> loaded;
  if (!config_file.empty()) {
    loaded = config::load_file(config_file);
    if (!loaded->ok()) {
      std::fprintf(stderr, "%s", loaded->error_text().c_str());
      return 1;
    }
  }
  const control::DoctorReport report = control::run_doctor(root, loaded ? &loaded->config() : nullptr);
  std::fputs((json ? report.json() : report.text()).c_str(), stdout);
  return report.count(control::Finding::Level::kFail) > 0 ? 1 : 0;
}

std::string only_interface(std::string& error) {
  std::vector<std::string> found;
  if (DIR* d = opendir("/run/moongate")) {
    while (const dirent* e = readdir(d)) {
      const std::string n = e->d_name;
      if (n.size() > 4 && n.compare(n.size() - 4, 4, ".ctl") == 0) found.push_back(n.substr(0, n.size() - 4));
    }
    closedir(d);
  }
  if (found.size() == 1) return found[0];
  error = found.empty() ? "no running moongate-control (no /run/moongate/*.ctl)"
                        : "several interfaces are running: choose one with -i";
  return {};
}

int import(const std::string& path) {
  std::ifstream f(path);
  if (!f) {
    std::fprintf(stderr, "moongatectl: cannot read %s\n", path.c_str());
    return 1;
  }
  std::ostringstream s;
  s << f.rdbuf();
  const control::WgConfResult r = control::parse_wgconf(s.str(), path);
  for (const auto& e : r.errors) std::fprintf(stderr, "%s\n", e.c_str());
  if (!r.errors.empty()) return 1;
  for (const auto& i : r.ignored) std::fprintf(stderr, "%s: not used by moongate (skipped)\n", i.c_str());
  std::printf("# imported from %s: merge into the appliance's YAML (ports and dataplane are not in a wg file)\n",
              path.c_str());
  std::printf("interface:\n  name: CHANGE-ME\n");
  if (r.netmap.has_private_key)
    std::printf("  private_key: %s\n", config::encode_key(r.netmap.private_key.data()).c_str());
  std::printf("  listen_port: %u\n", r.netmap.listen_port);
  if (!r.addresses.empty()) {
    std::printf("  addresses: [");
    for (std::size_t i = 0; i < r.addresses.size(); ++i) std::printf("%s\"%s\"", i ? ", " : "", r.addresses[i].c_str());
    std::printf("]\n");
  }
  std::printf("peers:\n");
  for (const auto& p : r.netmap.peers) {
    std::printf("  - public_key: %s\n", config::encode_key(p.public_key.data()).c_str());
    if (p.preshared_key) std::printf("    preshared_key: %s\n", config::encode_key(p.preshared_key->data()).c_str());
    std::printf("    allowed_ips: [");
    for (std::size_t i = 0; i < p.allowed_ips.size(); ++i)
      std::printf("%s\"%s\"", i ? ", " : "", p.allowed_ips[i].to_string().c_str());
    std::printf("]\n");
    if (p.endpoint) std::printf("    endpoint: \"%s\"\n", p.endpoint->to_string().c_str());
    if (p.persistent_keepalive) std::printf("    persistent_keepalive: %u\n", p.persistent_keepalive);
  }
  return 0;
}

}  // namespace

int main(int argc, char** argv) {
  std::vector<std::string> args(argv + 1, argv + argc);
  std::string iface;
  if (args.size() >= 2 && args[0] == "-i") {
    iface = args[1];
    args.erase(args.begin(), args.begin() + 2);
  }
  if (args.empty()) return usage();
  if (args[0] == "import") return args.size() == 2 ? import(args[1]) : usage();
  if (args[0] == "doctor") return doctor(args);
  if (args[0] == "moon") return control::moon_command(std::vector<std::string>(args.begin() + 1, args.end()));
  std::string err;
  if (iface.empty() && (iface = only_interface(err)).empty()) {
    std::fprintf(stderr, "moongatectl: %s\n", err.c_str());
    return 1;
  }
  const std::string ctl = "/run/moongate/" + iface + ".ctl";
  const std::string uapi = "/var/run/wireguard/" + iface + ".sock";

  std::string cmd;
  if (args[0] == "status" && args.size() == 1) cmd = "status";
  else if (args[0] == "status" && args.size() == 2 && args[1] == "--json") cmd = "status json";
  else if ((args[0] == "reload" || args[0] == "netmap" || args[0] == "metrics") && args.size() == 1) cmd = args[0];
  if (!cmd.empty()) {
    const std::string out = control::unix_request(ctl, cmd + "\n", "", err);
    if (!err.empty()) {
      std::fprintf(stderr, "moongatectl: %s\n", err.c_str());
      return 1;
    }
    std::fputs(out.c_str(), stdout);
    return out.rfind("error:", 0) == 0 ? 1 : 0;
  }

  if (args[0] == "peer" && args.size() >= 3 && (args[1] == "add" || args[1] == "remove")) {
    std::uint8_t key[32];
    if (!config::decode_key(args[2], key)) {
      std::fprintf(stderr, "moongatectl: %s is not a base64 public key\n", args[2].c_str());
      return 1;
    }
    std::string req = "set=1\npublic_key=" + hex(key) + "\n";
    if (args[1] == "remove") {
      if (args.size() != 3) return usage();
      req += "remove=true\n";
    } else {
      for (std::size_t i = 3; i + 1 < args.size() + 1; i += 2) {
        if (i + 1 >= args.size()) return usage();
        if (args[i] == "allowed-ips") {
          req += "replace_allowed_ips=true\n";
          std::stringstream ss(args[i + 1]);
          for (std::string a; std::getline(ss, a, ',');)
            if (!a.empty()) req += "allowed_ip=" + a + "\n";
        } else if (args[i] == "endpoint") {
          req += "endpoint=" + args[i + 1] + "\n";
        } else if (args[i] == "keepalive") {
          req += "persistent_keepalive_interval=" + args[i + 1] + "\n";
        } else {
          return usage();
        }
      }
    }
    const std::string out = control::unix_request(uapi, req + "\n", "\n\n", err);
    if (!err.empty()) {
      std::fprintf(stderr, "moongatectl: %s\n", err.c_str());
      return 1;
    }
    if (out != "errno=0\n\n") {
      std::fprintf(stderr, "moongatectl: refused (%s)\n", out.substr(0, out.find('\n')).c_str());
      return 1;
    }
    return 0;
  }
  return usage();
}
