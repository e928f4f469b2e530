// UAPI requests; uapi.h lists the keys and the rules.
#include "control/uapi.h"

#include <algorithm>
#include <map>
#include <unordered_map>
#include <cerrno>
#include <charconv>
#include <cstdio>
#include <cstring>
#include <optional>
#include <vector>

namespace moongate::control {
namespace {

int nibble(char c) noexcept {
  if (c >= '0' && c <= '9') return c - '0';
  if (c >= 'a' && c <= 'f') return c - 'a' + 10;
  if (c >= 'A' && c <= 'F') return c - 'A' + 10;
  return -1;
}


bool is_zero(const std::uint8_t* p, std::size_t n) noexcept {
  return std::all_of(p, p + n, [](std::uint8_t b) { return b == 0; });
}

template <class T>
std::optional<T> number(std::string_view s) noexcept {
  T v{};
  const auto r = std::from_chars(s.data(), s.data() + s.size(), v);
  if (r.ec != std::errc() || r.ptr != s.data() + s.size() || s.empty()) return std::nullopt;
  return v;
}

// An allowed IP as wg sends it: "addr/len" (host bits allowed, and masked,
// as the kernel and wireguard-go do) or a bare address.
std::optional<config::IpPrefix> allowed_ip(std::string_view s) {
  const auto slash = s.find('/');
  const auto addr = config::parse_ip_address(s.substr(0, slash));
  if (!addr) return std::nullopt;
  config::IpPrefix p;
  p.addr = *addr;
  p.len = static_cast<std::uint8_t>(addr->bits());
  if (slash != std::string_view::npos) {
    const auto len = number<unsigned>(s.substr(slash + 1));
    if (!len || *len > addr->bits()) return std::nullopt;
    p.len = static_cast<std::uint8_t>(*len);
  }
  return p.network();
}


}  // namespace

std::string key_hex(const std::uint8_t key[32]) {
  static constexpr char kHex[] = "0123456789abcdef";
  std::string s(64, '0');
  for (std::size_t i = 0; i < 32; ++i) {
    s[2 * i] = kHex[key[i] >> 4];
    s[2 * i + 1] = kHex[key[i] & 15];
  }
  return s;
}

bool key_unhex(std::string_view s, std::uint8_t out[32]) noexcept {
  if (s.size() != 64) return false;
  std::uint8_t k[32];
  for (std::size_t i = 0; i < 32; ++i) {
    const int hi = nibble(s[2 * i]), lo = nibble(s[2 * i + 1]);
    if (hi < 0 || lo < 0) return false;
    k[i] = static_cast<std::uint8_t>(hi << 4 | lo);
  }
  std::memcpy(out, k, 32);
  crypto::secure_wipe(k, sizeof k);
  return true;
}

UapiResult Uapi::handle(std::string_view request, netmap::Netmap& netmap, const RuntimeTable& runtime) {
  UapiResult r;
  const auto nl = request.find('\n');
  const std::string_view op = request.substr(0, nl);
  if (op == "get=1") {
    r.response = get(netmap, runtime) + "errno=0\n\n";
    return r;
  }
  if (op == "set=1") {
    int err = 0;
    netmap::Netmap copy = netmap;
    const std::uint32_t fwmark_before = fwmark_;
    r.error = set(nl == std::string_view::npos ? std::string_view() : request.substr(nl + 1), copy, err);
    if (!r.error.empty()) {
      fwmark_ = fwmark_before;
      r.response = "errno=" + std::to_string(err) + "\n\n";
      return r;
    }
    r.changed = !(copy == netmap);
    if (r.changed) netmap = std::move(copy);
    r.response = "errno=0\n\n";
    return r;
  }
  r.error = "unknown operation '" + std::string(op) + "'";
  r.response = "errno=" + std::to_string(-EPROTO) + "\n\n";
  return r;
}

std::string Uapi::get(const netmap::Netmap& n, const RuntimeTable& runtime) const {
  std::string o;
  char line[128];
  if (n.has_private_key && !is_zero(n.private_key.data(), 32)) o += "private_key=" + key_hex(n.private_key.data()) + "\n";
  o += "listen_port=" + std::to_string(n.listen_port) + "\n";
  if (fwmark_ != 0) o += "fwmark=" + std::to_string(fwmark_) + "\n";
  for (const auto& p : n.peers) {
    o += "public_key=" + key_hex(p.public_key.data()) + "\n";
    static const std::uint8_t zero[32] = {};
    o += "preshared_key=" + key_hex(p.preshared_key ? p.preshared_key->data() : zero) + "\n";
    o += "protocol_version=1\n";
    const auto rt = runtime.find(p.public_key);
    // The data plane's endpoint (after roaming) wins over the configured one.
    const std::optional<config::Endpoint>& ep = rt != runtime.end() && rt->second.endpoint ? rt->second.endpoint : p.endpoint;
    if (ep) o += "endpoint=" + ep->to_string() + "\n";
    const std::uint64_t hs = rt != runtime.end() ? rt->second.last_handshake_ns : 0;
    std::snprintf(line, sizeof line, "last_handshake_time_sec=%llu\nlast_handshake_time_nsec=%llu\n",
                  static_cast<unsigned long long>(hs / 1'000'000'000ULL),
                  static_cast<unsigned long long>(hs % 1'000'000'000ULL));
    o += line;
    o += "tx_bytes=" + std::to_string(rt != runtime.end() ? rt->second.tx_bytes : 0) + "\n";
    o += "rx_bytes=" + std::to_string(rt != runtime.end() ? rt->second.rx_bytes : 0) + "\n";
    o += "persistent_keepalive_interval=" + std::to_string(p.persistent_keepalive) + "\n";
    for (const auto& a : p.allowed_ips) o += "allowed_ip=" + a.to_string() + "\n";
  }
  return o;
}

std::string Uapi::set(std::string_view body, netmap::Netmap& n, int& errno_out) {
  errno_out = -EINVAL;
  // `wg syncconf` sends tens of thousands of lines: peers are found by key
  // and prefixes by owner through maps, not by scanning the list. Removed
  // peers are only marked, and the list is compacted at the end.
  std::unordered_map<crypto::PublicKey, std::size_t, KeyHash> index;
  std::map<config::IpPrefix, crypto::PublicKey> owner_of;
  std::vector<bool> gone(n.peers.size(), false);
  for (std::size_t i = 0; i < n.peers.size(); ++i) {
    index[n.peers[i].public_key] = i;
    for (const auto& a : n.peers[i].allowed_ips) owner_of[a] = n.peers[i].public_key;
  }
  auto remove_prefix = [&](config::Peer& p, const config::IpPrefix& a) {
    auto& v = p.allowed_ips;
    v.erase(std::remove(v.begin(), v.end(), a), v.end());
  };
  // What `wg` cannot set (name, tags, exit_node: the YAML's) stays with a
  // key that this request drops and lists again, as `wg setconf` does
  // (replace_peers) for every peer it keeps.
  struct Labels {
    std::string name;
    std::vector<std::string> tags;
    bool exit_node = false;
  };
  std::unordered_map<crypto::PublicKey, Labels, KeyHash> dropped;
  auto drop_peer = [&](std::size_t i) {
    config::Peer& d = n.peers[i];
    if (d.exit_node || !d.name.empty() || !d.tags.empty())
      dropped[d.public_key] = Labels{std::move(d.name), std::move(d.tags), d.exit_node};
    for (const auto& a : n.peers[i].allowed_ips)
      if (auto o = owner_of.find(a); o != owner_of.end() && o->second == n.peers[i].public_key) owner_of.erase(o);
    n.peers[i].allowed_ips.clear();
    index.erase(n.peers[i].public_key);
    gone[i] = true;
  };
  // The peer section being read; the peer is created on its first key that
  // is not remove/update_only, so `update_only` can refuse to create it.
  struct Section {
    crypto::PublicKey key{};
    bool open = false;
    bool update_only = false;
    bool removed = false;
  } sec;
  auto peer = [&]() -> config::Peer* {
    if (sec.removed) return nullptr;
    if (auto it = index.find(sec.key); it != index.end()) return &n.peers[it->second];
    if (sec.update_only) return nullptr;
    config::Peer p;
    p.public_key = sec.key;
    if (auto d = dropped.find(sec.key); d != dropped.end()) {
      p.name = std::move(d->second.name);
      p.tags = std::move(d->second.tags);
      p.exit_node = d->second.exit_node;
      dropped.erase(d);
    }
    index[sec.key] = n.peers.size();
    n.peers.push_back(std::move(p));
    gone.push_back(false);
    return &n.peers.back();
  };

  std::size_t pos = 0;
  while (pos < body.size()) {
    const auto end = body.find('\n', pos);
    const std::string_view line = body.substr(pos, end == std::string_view::npos ? body.size() - pos : end - pos);
    pos = end == std::string_view::npos ? body.size() : end + 1;
    if (line.empty()) break;  // the blank line ends the request
    const auto eq = line.find('=');
    if (eq == std::string_view::npos) return "line without '=': " + std::string(line);
    const std::string_view key = line.substr(0, eq), value = line.substr(eq + 1);
    const std::string bad = "bad " + std::string(key) + ": " + std::string(value);

    if (key == "public_key") {
      if (sec.open && !sec.removed) peer();  // a section with no other key still creates its peer
      sec = Section{};
      if (!key_unhex(value, sec.key.data())) return bad;
      sec.open = true;
      continue;
    }
    if (!sec.open) {  // device keys
      if (key == "private_key") {
        std::uint8_t k[32];
        if (!key_unhex(value, k)) return bad;
        n.has_private_key = !is_zero(k, 32);
        n.private_key.assign(std::span<const std::uint8_t, 32>(k, 32));
        crypto::secure_wipe(k, sizeof k);
      } else if (key == "listen_port") {
        const auto v = number<std::uint16_t>(value);
        if (!v) return bad;
        n.listen_port = *v;
      } else if (key == "fwmark") {
        const auto v = number<std::uint32_t>(value);
        if (!v) return bad;
        fwmark_ = *v;
      } else if (key == "replace_peers") {
        if (value != "true") return bad;
        for (std::size_t i = 0; i < n.peers.size(); ++i)
          if (!gone[i]) drop_peer(i);
      } else {
        return "unknown device key " + std::string(key);
      }
      continue;
    }
    if (key == "update_only") {
      if (value != "true") return bad;
      sec.update_only = true;
    } else if (key == "remove") {
      if (value != "true") return bad;
      if (auto it = index.find(sec.key); it != index.end()) drop_peer(it->second);
      sec.removed = true;
    } else if (key == "preshared_key") {
      std::uint8_t k[32];
      if (!key_unhex(value, k)) return bad;
      if (config::Peer* p = peer()) {
        if (is_zero(k, 32))
          p->preshared_key.reset();
        else
          p->preshared_key.emplace(std::span<const std::uint8_t, 32>(k, 32));
      }
      crypto::secure_wipe(k, sizeof k);
    } else if (key == "endpoint") {
      const auto e = config::parse_endpoint(value);
      if (!e) return bad;
      if (config::Peer* p = peer()) p->endpoint = *e;
    } else if (key == "persistent_keepalive_interval") {
      const auto v = number<std::uint16_t>(value);
      if (!v) return bad;
      if (config::Peer* p = peer()) p->persistent_keepalive = *v;
    } else if (key == "replace_allowed_ips") {
      if (value != "true") return bad;
      if (config::Peer* p = peer()) {
        for (const auto& a : p->allowed_ips)
          if (auto o = owner_of.find(a); o != owner_of.end() && o->second == p->public_key) owner_of.erase(o);
        p->allowed_ips.clear();
      }
    } else if (key == "allowed_ip") {
      const auto a = allowed_ip(value);
      if (!a) return bad;
      if (config::Peer* p = peer()) {
        // The prefix leaves whichever peer had it (wg semantics).
        auto [o, inserted] = owner_of.try_emplace(*a, p->public_key);
        if (!inserted && o->second != p->public_key) {
          remove_prefix(n.peers[index.at(o->second)], *a);
          o->second = p->public_key;
        }
        if (std::find(p->allowed_ips.begin(), p->allowed_ips.end(), *a) == p->allowed_ips.end())
          p->allowed_ips.push_back(*a);
      }
    } else if (key == "protocol_version") {
      if (value != "1") return bad;
      peer();
    } else {
      return "unknown peer key " + std::string(key);
    }
  }
  if (sec.open && !sec.removed) peer();
  // A peer with our own public key is dropped, as the Linux module and
  // wireguard-go ignore it: talking to ourselves means nothing.
  if (n.has_private_key) {
    crypto::PublicKey self{};
    crypto::x25519_public(self, n.private_key);
    if (auto it = index.find(self); it != index.end()) drop_peer(it->second);
  }
  std::size_t kept = 0;
  for (std::size_t i = 0; i < n.peers.size(); ++i)
    if (!gone[i]) {
      if (kept != i) n.peers[kept] = std::move(n.peers[i]);
      ++kept;
    }
  n.peers.resize(kept);
  if (n.peers.size() > max_peers_) {
    errno_out = -ENOSPC;
    return "more than max_peers (" + std::to_string(max_peers_) + ") peers";
  }
  errno_out = 0;
  return {};
}

}  // namespace moongate::control
