// Config value helpers, results and the canonical dump. Loading and
// validation are in loader.cc.
#include "config/config.h"

#include <yaml-cpp/yaml.h>

#include <initializer_list>
#include <utility>

#include "config/key.h"

namespace moongate::config {
namespace {

bool same_secret(const SecretKey& a, const SecretKey& b) noexcept {
  return crypto::ct_equal(a.data(), b.data(), SecretKey::size());
}

template <typename T>
void emit_flow_list(YAML::Emitter& out, const std::vector<T>& items) {
  out << YAML::Flow << YAML::BeginSeq;
  for (const T& item : items) out << item.to_string();
  out << YAML::EndSeq;
}

}  // namespace

bool operator==(const Interface& a, const Interface& b) noexcept {
  return a.name == b.name && same_secret(a.private_key, b.private_key) &&
         a.private_key_file == b.private_key_file && a.public_key == b.public_key &&
         a.listen_port == b.listen_port && a.addresses == b.addresses && a.mtu == b.mtu;
}

bool operator==(const Peer& a, const Peer& b) noexcept {
  if (a.preshared_key.has_value() != b.preshared_key.has_value()) return false;
  if (a.preshared_key && !same_secret(*a.preshared_key, *b.preshared_key)) return false;
  return a.public_key == b.public_key && a.preshared_key_file == b.preshared_key_file &&
         a.allowed_ips == b.allowed_ips && a.endpoint == b.endpoint &&
         a.persistent_keepalive == b.persistent_keepalive && a.name == b.name &&
         a.tags == b.tags && a.exit_node == b.exit_node;
}

std::vector<policy::PeerInfo> policy_peers(const Config& c) {
  std::vector<policy::PeerInfo> out;
  out.reserve(c.peers.size());
  for (std::size_t i = 0; i < c.peers.size(); ++i) {
    const Peer& p = c.peers[i];
    out.push_back({static_cast<std::uint32_t>(i + 1), p.name, encode_key(p.public_key.data()), p.tags});
  }
  return out;
}

const IpAddress* Port::gateway(std::uint8_t family) const noexcept {
  for (const IpAddress& g : gateways)
    if (g.family == family) return &g;
  return nullptr;
}

const Port* Config::find_port(std::string_view name) const noexcept {
  for (const Port& p : ports)
    if (p.name == name) return &p;
  return nullptr;
}

std::string_view to_string(PortRole role) noexcept {
  return role == PortRole::kWan ? "wan" : "lan";
}

std::string Error::to_string() const {
  std::string out = source;
  if (line > 0) out += ":" + std::to_string(line) + ":" + std::to_string(column);
  out += ": ";
  if (!path.empty()) out += path + ": ";
  out += message;
  return out;
}

Result Result::success(Config config) {
  Result r;
  r.config_.emplace(std::move(config));
  return r;
}

Result Result::failure(std::vector<Error> errors) {
  Result r;
  r.errors_ = std::move(errors);
  return r;
}

std::string Result::error_text() const {
  std::string out;
  for (const Error& e : errors_) out += e.to_string() + "\n";
  return out;
}

std::string dump(const Config& c, DumpOptions options) {
  // Secrets pass through std::string only when the caller asked to see them.
  auto secret = [&](const SecretKey& k) {
    return options.reveal_secrets ? encode_key(k.data()) : std::string("(hidden)");
  };

  YAML::Emitter out;
  out.SetIndent(2);
  out << YAML::BeginMap;

  const Interface& itf = c.interface;
  out << YAML::Key << "interface" << YAML::Value << YAML::BeginMap;
  out << YAML::Key << "name" << YAML::Value << itf.name;
  if (itf.private_key_file.empty()) {
    out << YAML::Key << "private_key" << YAML::Value << secret(itf.private_key);
  } else {
    out << YAML::Key << "private_key_file" << YAML::Value << itf.private_key_file;
  }
  // The one thing an operator needs to hand to the peers.
  out << YAML::Comment("public key: " + encode_key(itf.public_key.data()));
  out << YAML::Key << "listen_port" << YAML::Value << itf.listen_port;
  out << YAML::Key << "addresses" << YAML::Value;
  emit_flow_list(out, itf.addresses);
  out << YAML::Key << "mtu" << YAML::Value << itf.mtu;
  out << YAML::EndMap;

  out << YAML::Key << "ports" << YAML::Value << YAML::BeginSeq;
  for (const Port& p : c.ports) {
    out << YAML::BeginMap;
    out << YAML::Key << "name" << YAML::Value << p.name;
    out << YAML::Key << "role" << YAML::Value << std::string(to_string(p.role));
    // Quoted: YAML 1.1 readers take 0000:03:00.0 for a base-60 number.
    out << YAML::Key << "device" << YAML::Value << YAML::DoubleQuoted << p.device;
    out << YAML::Key << "address" << YAML::Value;
    emit_flow_list(out, p.addresses);
    if (!p.gateways.empty()) {
      out << YAML::Key << "gateway" << YAML::Value;
      emit_flow_list(out, p.gateways);
    }
    out << YAML::Key << "mtu" << YAML::Value << p.mtu;
    if (!p.kernel_interface.empty())
      out << YAML::Key << "kernel_interface" << YAML::Value << p.kernel_interface;
    if (p.internet) {
      out << YAML::Key << "internet" << YAML::Value;
      emit_flow_list(out, *p.internet);
    }
    if (!p.routed_prefixes.empty()) {
      out << YAML::Key << "routed_prefixes" << YAML::Value;
      emit_flow_list(out, p.routed_prefixes);
    }
    out << YAML::EndMap;
  }
  out << YAML::EndSeq;

  out << YAML::Key << "routes" << YAML::Value;
  if (c.routes.empty()) out << YAML::Flow;
  out << YAML::BeginSeq;
  for (const Route& r : c.routes) {
    out << YAML::BeginMap;
    out << YAML::Key << "prefix" << YAML::Value << r.prefix.to_string();
    out << YAML::Key << "via" << YAML::Value << r.via.to_string();
    out << YAML::Key << "port" << YAML::Value << r.port;
    out << YAML::EndMap;
  }
  out << YAML::EndSeq;

  out << YAML::Key << "peers" << YAML::Value;
  if (c.peers.empty()) out << YAML::Flow;
  out << YAML::BeginSeq;
  for (const Peer& p : c.peers) {
    out << YAML::BeginMap;
    out << YAML::Key << "public_key" << YAML::Value << encode_key(p.public_key.data());
    if (!p.preshared_key_file.empty()) {
      out << YAML::Key << "preshared_key_file" << YAML::Value << p.preshared_key_file;
    } else if (p.preshared_key) {
      out << YAML::Key << "preshared_key" << YAML::Value << secret(*p.preshared_key);
    }
    out << YAML::Key << "allowed_ips" << YAML::Value;
    emit_flow_list(out, p.allowed_ips);
    if (p.endpoint) out << YAML::Key << "endpoint" << YAML::Value << p.endpoint->to_string();
    out << YAML::Key << "persistent_keepalive" << YAML::Value << p.persistent_keepalive;
    if (!p.name.empty()) out << YAML::Key << "name" << YAML::Value << p.name;
    if (!p.tags.empty()) out << YAML::Key << "tags" << YAML::Value << YAML::Flow << p.tags;
    out << YAML::Key << "exit_node" << YAML::Value << p.exit_node;
    out << YAML::EndMap;
  }
  out << YAML::EndSeq;

  const Dataplane& d = c.dataplane;
  out << YAML::Key << "dataplane" << YAML::Value << YAML::BeginMap;
  out << YAML::Key << "lcores" << YAML::Value << YAML::Flow << d.lcores;
  out << YAML::Key << "busy_poll" << YAML::Value << d.busy_poll;
  out << YAML::Key << "max_peers" << YAML::Value << d.max_peers;
  out << YAML::Key << "burst" << YAML::Value << d.burst;
  out << YAML::Key << "hugepages" << YAML::Value << d.hugepages;
  out << YAML::Key << "memory_mb" << YAML::Value << d.memory_mb;
  out << YAML::Key << "eal_args" << YAML::Value << YAML::Flow << d.eal_args;
  out << YAML::EndMap;

  if (c.nat) {
    const Nat& n = *c.nat;
    out << YAML::Key << "nat" << YAML::Value << YAML::BeginMap;
    if (n.masquerade) {
      out << YAML::Key << "masquerade" << YAML::Value << true;
    } else {
      out << YAML::Key << "pool" << YAML::Value;
      emit_flow_list(out, n.pool);
    }
    out << YAML::Key << "port_min" << YAML::Value << n.port_min;
    out << YAML::Key << "port_max" << YAML::Value << n.port_max;
    out << YAML::Key << "max_flows" << YAML::Value << n.max_flows;
    const nat::Timeouts& t = n.timeouts;
    out << YAML::Key << "timeouts" << YAML::Value << YAML::BeginMap;
    for (const auto& [name, v] : std::initializer_list<std::pair<const char*, std::uint32_t>>{
             {"tcp_syn_sent", t.tcp_syn_sent}, {"tcp_syn_received", t.tcp_syn_received},
             {"tcp_established", t.tcp_established}, {"tcp_fin_wait", t.tcp_fin_wait},
             {"tcp_close_wait", t.tcp_close_wait}, {"tcp_last_ack", t.tcp_last_ack},
             {"tcp_time_wait", t.tcp_time_wait}, {"tcp_close", t.tcp_close}, {"udp", t.udp},
             {"udp_stream", t.udp_stream}, {"icmp", t.icmp}})
      out << YAML::Key << name << YAML::Value << v;
    out << YAML::EndMap;
    out << YAML::EndMap;
  }

  if (c.moon) {
    out << YAML::Key << "moon" << YAML::Value << YAML::BeginMap;
    out << YAML::Key << "config" << YAML::Value << c.moon->config;
    out << YAML::Key << "port" << YAML::Value << c.moon->port;
    out << YAML::EndMap;
  }

  if (c.policy) {
    const policy::PolicySpec& p = *c.policy;
    out << YAML::Key << "policy" << YAML::Value << YAML::BeginMap;
    out << YAML::Key << "tags" << YAML::Value << YAML::Flow << p.tags;
    out << YAML::Key << "groups" << YAML::Value;
    if (p.groups.empty()) out << YAML::Flow;
    out << YAML::BeginMap;
    for (const auto& [name, members] : p.groups)
      out << YAML::Key << name << YAML::Value << YAML::Flow << members;
    out << YAML::EndMap;
    out << YAML::Key << "rules" << YAML::Value;
    if (p.rules.empty()) out << YAML::Flow;
    out << YAML::BeginSeq;
    for (const policy::RuleSpec& r : p.rules) {
      out << YAML::BeginMap;
      out << YAML::Key << "action" << YAML::Value << "accept";
      out << YAML::Key << "src" << YAML::Value << YAML::Flow << r.src;
      out << YAML::Key << "dst" << YAML::Value << YAML::Flow << r.dst;
      out << YAML::Key << "proto" << YAML::Value << r.proto;
      out << YAML::EndMap;
    }
    out << YAML::EndSeq;
    out << YAML::EndMap;
  }

  if (c.relay) {
    out << YAML::Key << "relay" << YAML::Value;
    if (c.relay->empty()) out << YAML::Flow;
    out << YAML::BeginMap;
    for (const RelaySetting& r : *c.relay) {
      out << YAML::Key << r.key << YAML::Value;
      if (r.list) out << YAML::Flow << r.values;
      else out << r.values.at(0);
    }
    out << YAML::EndMap;
  }

  out << YAML::EndMap;
  return std::string(out.c_str()) + "\n";
}

}  // namespace moongate::config
