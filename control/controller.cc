// moongate-control's decisions; controller.h lists the flows.
#include "control/controller.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstdio>
#include <cstring>
#include <fstream>
#include <algorithm>
#include <charconv>
#include <map>
#include <optional>
#include <sstream>

#include "config/key.h"
#include "control/wgconf.h"
#include "policy/compile.h"

namespace moongate::control {
namespace {

std::string read_file(const std::string& path, bool& ok) {
  std::ifstream f(path, std::ios::binary);
  ok = static_cast<bool>(f);
  std::ostringstream s;
  s << f.rdbuf();
  return s.str();
}

// Modification time in ns, 0 when the file does not exist.
std::uint64_t mtime_ns(const std::string& path) {
  struct stat st {};
  if (stat(path.c_str(), &st) != 0) return 0;
  return static_cast<std::uint64_t>(st.st_mtim.tv_sec) * 1'000'000'000ULL +
         static_cast<std::uint64_t>(st.st_mtim.tv_nsec);
}

std::string human_bytes(std::uint64_t b) {
  const char* units[] = {"B", "KiB", "MiB", "GiB", "TiB"};
  double v = static_cast<double>(b);
  int u = 0;
  while (v >= 1024 && u < 4) {
    v /= 1024;
    ++u;
  }
  char out[32];
  std::snprintf(out, sizeof out, u == 0 ? "%.0f %s" : "%.2f %s", v, units[u]);
  return out;
}

std::string ago(std::uint64_t then_ns, std::uint64_t now_ns) {
  if (then_ns == 0) return "never";
  const std::uint64_t s = now_ns > then_ns ? (now_ns - then_ns) / 1'000'000'000ULL : 0;
  if (s < 120) return std::to_string(s) + " seconds ago";
  if (s < 7200) return std::to_string(s / 60) + " minutes ago";
  return std::to_string(s / 3600) + " hours ago";
}

std::string json_string(std::string_view s) {
  std::string o = "\"";
  for (char c : s) {
    if (c == '"' || c == '\\') o += '\\';
    if (static_cast<unsigned char>(c) < 0x20) {
      char b[8];
      std::snprintf(b, sizeof b, "\\u%04x", c);
      o += b;
      continue;
    }
    o += c;
  }
  return o + "\"";
}

std::string key_text(const crypto::PublicKey& k) { return config::encode_key(k.data()); }

}  // namespace

std::string Controller::start(const Options& opts) {
  opts_ = opts;
  config::Result loaded = config::load_file(opts.config_path);
  if (!loaded.ok()) return loaded.error_text();
  config_ = loaded.config();
  netmap_ = netmap::from_config(config_);
  state_file_ = opts.state_dir + "/" + config_.interface.name + ".conf";

  // The persisted netmap (changes made through `wg`) wins unless the YAML
  // was edited after it (equal times: file systems stamp in coarse ticks,
  // and a save right after writing the YAML is the later one).
  if (const std::uint64_t saved = mtime_ns(state_file_); saved != 0 && saved >= mtime_ns(opts.config_path)) {
    bool ok = false;
    const std::string text = read_file(state_file_, ok);
    WgConfResult r = parse_wgconf(text, state_file_);
    if (!ok || !r.errors.empty()) {
      std::string e = "cannot use the saved netmap " + state_file_ + " (remove it to start from the YAML):\n";
      for (const auto& x : r.errors) e += x + "\n";
      return e;
    }
    r.netmap.routes = netmap_.routes;
    // The saved file is in `wg showconf` syntax, which has no name, tags
    // or exit_node: those are the YAML's, by key, as for a `wg set`.
    for (auto& p : r.netmap.peers)
      for (const auto& y : config_.peers)
        if (y.public_key == p.public_key) {
          p.name = y.name;
          p.tags = y.tags;
          p.exit_node = y.exit_node;
          break;
        }
    netmap_ = std::move(r.netmap);
  }
  uapi_ = std::make_unique<Uapi>(config_.dataplane.max_peers);
  const std::string name =
      opts.segment_name.empty() ? netmap::Segment::name_for(config_.interface.name) : opts.segment_name;
  std::string err;
  segment_ = netmap::Segment::create_or_open(name, netmap::Geometry::for_peers(config_.dataplane.max_peers), err);
  if (!segment_) return err;
  return publish_and_persist(false);
}

std::string Controller::publish_and_persist(bool persist_it) {
  // Published first: the data plane need not wait for the disk (the save's
  // fsync takes milliseconds, far more on a busy disk). `wg` gets its answer
  // after both, so a change it saw succeed is applied and saved. A failed
  // save leaves the change applied (as the kernel's WireGuard, which saves
  // nothing, would), logged and counted for the operator.
  if (std::string e = segment_->publish(netmap_); !e.empty()) return e;
  if (persist_it)
    if (std::string e = persist(); !e.empty()) {
      ++save_failures_;
      return e + " (the change is applied but will not survive a restart)";
    }
  return {};
}

std::string Controller::persist() const {
  if (mkdir(opts_.state_dir.c_str(), 0700) != 0 && errno != EEXIST)
    return "cannot create " + opts_.state_dir + ": " + std::strerror(errno);
  // Written aside, synced and renamed: a crash leaves the old file or the
  // new one, never half of one. 0600: it holds the private key.
  const std::string tmp = state_file_ + ".tmp";
  const int fd = open(tmp.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
  if (fd < 0) return "cannot write " + tmp + ": " + std::strerror(errno);
  const std::string text = "# moongate-control: the netmap as changed through `wg`; newer than the YAML, it wins\n" +
                           format_wgconf(netmap_);
  const bool ok = write(fd, text.data(), text.size()) == static_cast<ssize_t>(text.size()) && fsync(fd) == 0;
  close(fd);
  if (!ok || rename(tmp.c_str(), state_file_.c_str()) != 0) return "cannot write " + state_file_ + ": " + std::strerror(errno);
  return {};
}

std::string Controller::reload() {
  config::Result loaded = config::load_file(opts_.config_path);
  if (!loaded.ok()) {
    ++reload_failures_;
    return loaded.error_text();
  }
  const config::Config& c = loaded.config();
  // What a reload cannot change without restarting the data plane.
  if (c.interface.name != config_.interface.name || c.ports != config_.ports || c.dataplane != config_.dataplane) {
    ++reload_failures_;
    return opts_.config_path + ": interface name, ports and dataplane settings need a restart; "
           "nothing was applied";
  }
  // Published before it is adopted: a netmap the segment cannot hold (a
  // policy beyond the snapshot's bounds, too many peers) is refused whole
  // and the data plane keeps the one it has. (The loader has checked the
  // policy against the YAML's own peers, with file positions.)
  netmap::Netmap next = netmap::from_config(c);
  if (std::string e = segment_->publish(next); !e.empty()) {
    ++reload_failures_;
    return opts_.config_path + ": " + e + "; nothing was applied";
  }
  config_ = loaded.config();
  netmap_ = std::move(next);
  ++reloads_;
  // The YAML is authoritative again: the saved run-time changes go.
  if (unlink(state_file_.c_str()) != 0 && errno != ENOENT) return "cannot remove " + state_file_;
  return {};
}

std::string Controller::policy_problem(const netmap::Netmap& n) {
  if (!n.policy) return {};
  std::vector<policy::PeerInfo> peers;
  for (std::size_t i = 0; i < n.peers.size(); ++i)
    peers.push_back({static_cast<std::uint32_t>(i + 1), n.peers[i].name, key_text(n.peers[i].public_key),
                     n.peers[i].tags});
  const policy::CompileResult r = policy::compile(*n.policy, peers);
  if (r.ok()) return {};
  return "the policy would no longer compile: policy." + r.errors.front().path + ": " + r.errors.front().message;
}

UapiResult Controller::uapi(std::string_view request) {
  // A `wg` change must leave the policy compilable (removing a peer a
  // group or rule names would not): refused whole, like a bad reload.
  std::optional<netmap::Netmap> before;
  if (netmap_.policy) before = netmap_;
  UapiResult r = uapi_->handle(request, netmap_, runtime_);
  if (r.changed && before)
    if (std::string e = policy_problem(netmap_); !e.empty()) {
      netmap_ = std::move(*before);
      r.changed = false;
      r.error = e + " (nothing was applied)";
      return r;
    }
  if (r.changed)
    if (std::string e = publish_and_persist(true); !e.empty()) r.error = e;
  return r;
}

std::size_t Controller::poll_events(std::uint64_t mono_ns, std::size_t max) {
  segment_->control_alive(static_cast<std::uint32_t>(getpid()), mono_ns);
  const std::size_t n = segment_->drain(
      [&](const netmap::Event& e) {
        if (e.type == netmap::EventType::kCounter) {
          counters_[e.worker][std::string(e.name())] = e.v0;
          return;
        }
        crypto::PublicKey k;
        std::memcpy(k.data(), e.key, 32);
        PeerRuntime& rt = runtime_[k];
        if (e.family == 4 || e.family == 6) {
          config::Endpoint ep;
          ep.addr.family = e.family;
          std::memcpy(ep.addr.bytes, e.addr, e.family == 4 ? 4 : 16);
          ep.port = e.port;
          rt.endpoint = ep;
        }
        if (e.type == netmap::EventType::kPeerStats) {
          rt.rx_bytes = e.v0;
          rt.tx_bytes = e.v1;
          rt.last_handshake_ns = e.v2;
          rt.handshakes = e.v3;
        } else if (e.type == netmap::EventType::kHandshake) {
          rt.last_handshake_ns = e.v2;
        }
      },
      max);
  events_ += n;
  return n;
}

std::string Controller::status_text(std::uint64_t now_wall_ns) const {
  std::ostringstream o;
  crypto::PublicKey pub{};
  if (netmap_.has_private_key) crypto::x25519_public(pub, netmap_.private_key);
  const auto dp = segment_->dataplane();
  o << "interface: " << config_.interface.name << "\n"
    << "  public key: " << key_text(pub) << "\n"
    << "  listening port: " << netmap_.listen_port << "\n"
    << "  netmap generation: " << segment_->published_generation() << " (data plane ";
  if (dp.pid == 0)
    o << "not attached)\n";
  else
    o << "pid " << dp.pid << " applied " << dp.applied << ")\n";
  // The exit node's NAT and the policy, summed over the lcores (from the
  // data plane's counter events; absent when it runs without them).
  std::map<std::string, std::uint64_t> sum;
  for (const auto& [lcore, m] : counters_)
    for (const auto& [name, v] : m)
      if (name.rfind("nat_", 0) == 0 || name.rfind("policy_", 0) == 0) sum[name] += v;
  const auto get = [&](const std::string& k) { return sum.count(k) ? sum.at(k) : 0; };
  if (sum.count("nat_flows")) {
    o << "  nat: " << get("nat_flows") << " flows, " << get("nat_translated_out") << " packets out, "
      << get("nat_translated_in") << " in";
    for (const auto& [name, v] : sum)
      if (name.rfind("nat_drop_", 0) == 0) o << ", " << name.substr(9) << " " << v;
    o << "\n";
  }
  if (sum.count("policy_denied")) {
    o << "  policy: " << get("policy_denied") << " denied, " << get("policy_established") << " replies";
    // Rules in file order (the names sort as text: rule_10 before rule_2),
    // as many as the policy in force has (a reload may have shortened it).
    for (std::size_t r = 0; r < policy_rules(); ++r) o << ", rule " << r << " " << rule_accepted(r);
    o << "\n";
  }
  for (const auto& p : netmap_.peers) {
    const auto rt = runtime_.find(p.public_key);
    const PeerRuntime none;
    const PeerRuntime& r = rt == runtime_.end() ? none : rt->second;
    o << "\npeer: " << key_text(p.public_key) << "\n";
    const auto& ep = r.endpoint ? r.endpoint : p.endpoint;
    if (ep) o << "  endpoint: " << ep->to_string() << "\n";
    o << "  allowed ips: ";
    if (p.allowed_ips.empty()) o << "(none)";
    for (std::size_t i = 0; i < p.allowed_ips.size(); ++i) o << (i ? ", " : "") << p.allowed_ips[i].to_string();
    o << "\n  latest handshake: " << ago(r.last_handshake_ns, now_wall_ns) << "\n"
      << "  transfer: " << human_bytes(r.rx_bytes) << " received, " << human_bytes(r.tx_bytes) << " sent\n";
    if (p.persistent_keepalive) o << "  persistent keepalive: every " << p.persistent_keepalive << " seconds\n";
  }
  return o.str();
}

std::string Controller::netmap_text() const {
  std::string s = "generation " + std::to_string(segment_->published_generation()) + "\n";
  for (const auto& p : netmap_.peers) {
    s += "peer " + config::encode_key(p.public_key.data()) + (p.preshared_key ? " psk" : "");
    if (p.endpoint) s += " endpoint " + p.endpoint->to_string();
    if (p.persistent_keepalive) s += " keepalive " + std::to_string(p.persistent_keepalive);
    for (const auto& a : p.allowed_ips) s += " " + a.to_string();
    if (!p.name.empty()) s += " name " + p.name;
    for (std::size_t i = 0; i < p.tags.size(); ++i) s += (i == 0 ? " tags " : ",") + p.tags[i];
    if (p.exit_node) s += " exit_node";
    s += "\n";
  }
  for (const auto& r : netmap_.routes)
    s += "route " + r.prefix.to_string() + " via " + r.via.to_string() + " port " + std::to_string(r.port_index) + "\n";
  if (!netmap_.policy) return s + "policy none (everything routed passes)\n";
  const auto list = [](const std::vector<std::string>& v) {
    std::string o;
    for (std::size_t i = 0; i < v.size(); ++i) o += (i ? "," : "") + v[i];
    return o.empty() ? std::string("-") : o;
  };
  const policy::PolicySpec& pol = *netmap_.policy;
  s += "policy " + std::to_string(pol.rules.size()) + " rules\n";
  if (!pol.tags.empty()) s += "policy tags " + list(pol.tags) + "\n";
  for (const auto& [name, members] : pol.groups) s += "policy group " + name + " " + list(members) + "\n";
  for (std::size_t r = 0; r < pol.rules.size(); ++r)
    s += "policy rule " + std::to_string(r) + " accept src " + list(pol.rules[r].src) + " dst " +
         list(pol.rules[r].dst) + " proto " + pol.rules[r].proto + "\n";
  return s;
}

std::size_t Controller::policy_rules() const {
  std::size_t rules = 0;
  for (const auto& [lcore, m] : counters_) {
    const auto it = m.find("policy_rules");
    if (it != m.end()) {
      rules = std::max<std::size_t>(rules, it->second);
    } else {  // a data plane that does not say: the rules it reported
      std::size_t r = 0;
      while (m.count("policy_rule_" + std::to_string(r) + "_accepted")) ++r;
      rules = std::max(rules, r);
    }
  }
  return rules;
}

std::uint64_t Controller::rule_accepted(std::size_t rule, std::uint16_t lcore_only) const {
  std::uint64_t n = 0;
  const std::string name = "policy_rule_" + std::to_string(rule) + "_accepted";
  for (const auto& [lcore, m] : counters_) {
    if (lcore_only != kAllLcores && lcore != lcore_only) continue;
    // A count for a rule past this lcore's policy is from an older one.
    const auto rules = m.find("policy_rules");
    if (rules != m.end() && rule >= rules->second) continue;
    const auto it = m.find(name);
    if (it != m.end()) n += it->second;
  }
  return n;
}

std::string Controller::status_json(std::uint64_t now_wall_ns) const {
  std::ostringstream o;
  crypto::PublicKey pub{};
  if (netmap_.has_private_key) crypto::x25519_public(pub, netmap_.private_key);
  const auto dp = segment_->dataplane();
  o << "{\"interface\":" << json_string(config_.interface.name) << ",\"public_key\":" << json_string(key_text(pub))
    << ",\"listen_port\":" << netmap_.listen_port << ",\"generation\":" << segment_->published_generation()
    << ",\"control_pid\":" << getpid() << ",\"dataplane\":{\"pid\":" << dp.pid
    << ",\"applied_generation\":" << dp.applied << "}"
    << ",\"now\":" << now_wall_ns / 1'000'000'000ULL << ",\"peers\":[";
  bool first = true;
  for (const auto& p : netmap_.peers) {
    const auto rt = runtime_.find(p.public_key);
    const PeerRuntime none;
    const PeerRuntime& r = rt == runtime_.end() ? none : rt->second;
    const auto& ep = r.endpoint ? r.endpoint : p.endpoint;
    o << (first ? "" : ",") << "{\"public_key\":" << json_string(key_text(p.public_key))
      << ",\"endpoint\":" << (ep ? json_string(ep->to_string()) : "null") << ",\"allowed_ips\":[";
    for (std::size_t i = 0; i < p.allowed_ips.size(); ++i) o << (i ? "," : "") << json_string(p.allowed_ips[i].to_string());
    o << "],\"latest_handshake\":" << r.last_handshake_ns / 1'000'000'000ULL << ",\"rx_bytes\":" << r.rx_bytes
      << ",\"tx_bytes\":" << r.tx_bytes << ",\"handshakes\":" << r.handshakes
      << ",\"persistent_keepalive\":" << p.persistent_keepalive << "}";
    first = false;
  }
  o << "]}\n";
  return o.str();
}

std::string Controller::metrics_text() const {
  std::ostringstream o;
  const auto dp = segment_->dataplane();
  o << "# HELP moongate_netmap_generation Generation of the netmap the control process published.\n"
       "# TYPE moongate_netmap_generation gauge\n"
    << "moongate_netmap_generation " << segment_->published_generation() << "\n"
    << "# HELP moongate_dataplane_applied_generation Generation of the netmap the data plane runs.\n"
       "# TYPE moongate_dataplane_applied_generation gauge\n"
    << "moongate_dataplane_applied_generation " << dp.applied << "\n"
    << "# HELP moongate_peers Peers in the netmap.\n# TYPE moongate_peers gauge\n"
    << "moongate_peers " << netmap_.peers.size() << "\n"
    << "# HELP moongate_config_reloads_total Configuration reloads applied / refused.\n"
       "# TYPE moongate_config_reloads_total counter\n"
    << "moongate_config_reloads_total{result=\"applied\"} " << reloads_ << "\n"
    << "moongate_config_reloads_total{result=\"refused\"} " << reload_failures_ << "\n"
    << "# HELP moongate_state_save_failures_total Changes made through wg that could not be saved to the state file.\n"
    << "# TYPE moongate_state_save_failures_total counter\n"
    << "moongate_state_save_failures_total " << save_failures_ << "\n"
    << "# HELP moongate_events_total Events received from the data plane.\n# TYPE moongate_events_total counter\n"
    << "moongate_events_total " << events_ << "\n";
  auto per_peer = [&](const char* name, const char* help, const char* type, auto value) {
    o << "# HELP " << name << " " << help << "\n# TYPE " << name << " " << type << "\n";
    for (const auto& p : netmap_.peers) {
      const auto rt = runtime_.find(p.public_key);
      const PeerRuntime none;
      o << name << "{public_key=\"" << key_text(p.public_key) << "\"} "
        << value(rt == runtime_.end() ? none : rt->second) << "\n";
    }
  };
  per_peer("moongate_peer_rx_bytes_total", "WireGuard bytes received from the peer.", "counter",
           [](const PeerRuntime& r) { return r.rx_bytes; });
  per_peer("moongate_peer_tx_bytes_total", "WireGuard bytes sent to the peer.", "counter",
           [](const PeerRuntime& r) { return r.tx_bytes; });
  per_peer("moongate_peer_handshakes_total", "Handshakes completed with the peer.", "counter",
           [](const PeerRuntime& r) { return r.handshakes; });
  per_peer("moongate_peer_last_handshake_seconds", "Unix time of the last handshake (0: never).", "gauge",
           [](const PeerRuntime& r) { return r.last_handshake_ns / 1'000'000'000ULL; });
  // Per-lcore counters as the data plane names them: drops by reason
  // (drop_*, wg_drop_*) get their own family, the rest one per name.
  o << "# HELP moongate_lcore_drops_total Packets dropped, by worker lcore and reason.\n"
       "# TYPE moongate_lcore_drops_total counter\n";
  for (const auto& [lcore, m] : counters_)
    for (const auto& [name, v] : m) {
      if (name.rfind("nat_drop_", 0) == 0)
        o << "moongate_lcore_drops_total{lcore=\"" << lcore << "\",layer=\"nat\",reason=\"" << name.substr(9)
          << "\"} " << v << "\n";
      else if (name.rfind("drop_", 0) == 0)
        o << "moongate_lcore_drops_total{lcore=\"" << lcore << "\",layer=\"dataplane\",reason=\"" << name.substr(5)
          << "\"} " << v << "\n";
      else if (name.rfind("wg_drop_", 0) == 0)
        o << "moongate_lcore_drops_total{lcore=\"" << lcore << "\",layer=\"wireguard\",reason=\"" << name.substr(8)
          << "\"} " << v << "\n";
    }
  // The exit node's tables (gauges) and the policy's per-rule counters.
  o << "# HELP moongate_lcore_flows Active flows per worker lcore: NAT44 (table=nat), the policy's "
       "return-traffic table (table=policy).\n# TYPE moongate_lcore_flows gauge\n";
  for (const auto& [lcore, m] : counters_)
    for (const auto& [name, v] : m)
      if (name == "nat_flows" || name == "policy_flows")
        o << "moongate_lcore_flows{lcore=\"" << lcore << "\",table=\"" << name.substr(0, name.find('_')) << "\"} "
          << v << "\n";
  // Per-rule counts of the policy in force: they start again at zero when
  // a reload changes the rules (the epoch moves; docs/exit-node.md).
  o << "# HELP moongate_policy_rule_accepted_total Packets a policy rule accepted (rule index in file order; "
       "restarts from 0 when the policy's rules change).\n"
       "# TYPE moongate_policy_rule_accepted_total counter\n";
  for (const auto& [lcore, m] : counters_) {
    const auto rules = m.find("policy_rules");
    for (const auto& [name, v] : m)
      if (name.rfind("policy_rule_", 0) == 0) {
        const std::string rule = name.substr(12, name.rfind('_') - 12);
        std::uint64_t index = 0;
        const auto [end, ec] = std::from_chars(rule.data(), rule.data() + rule.size(), index);
        if (ec != std::errc() || end != rule.data() + rule.size()) continue;  // not a name the data plane makes
        if (rules != m.end() && index >= rules->second) continue;  // of an older, longer policy
        o << "moongate_policy_rule_accepted_total{lcore=\"" << lcore << "\",rule=\"" << rule << "\"} " << v
          << "\n";
      }
  }
  o << "# HELP moongate_policy_epoch The policy's rules as the lcore counts them: changes when a reload changes "
       "the rules.\n# TYPE moongate_policy_epoch gauge\n";
  for (const auto& [lcore, m] : counters_)
    if (const auto it = m.find("policy_epoch"); it != m.end())
      o << "moongate_policy_epoch{lcore=\"" << lcore << "\"} " << it->second << "\n";
  o << "# HELP moongate_lcore_packets_total Packets per worker lcore: received per port, decrypted, encrypted, "
       "handshakes, hand-offs, NAT translations, policy denied / established.\n"
       "# TYPE moongate_lcore_packets_total counter\n";
  for (const auto& [lcore, m] : counters_)
    for (const auto& [name, v] : m)
      if (name.rfind("drop_", 0) != 0 && name.rfind("wg_drop_", 0) != 0 && name.rfind("nat_drop_", 0) != 0 &&
          name.rfind("policy_rule_", 0) != 0 && name != "nat_flows" && name != "policy_flows" &&
          name != "policy_rules" && name != "policy_epoch")
        o << "moongate_lcore_packets_total{lcore=\"" << lcore << "\",counter=\"" << name << "\"} " << v << "\n";
  return o.str();
}

}  // namespace moongate::control
