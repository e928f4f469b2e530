// wg(8) configuration files; wgconf.h says where they are used.
#include "control/wgconf.h"

#include <algorithm>
#include <cctype>
#include <charconv>

#include "config/key.h"

namespace moongate::control {
namespace {

std::string_view trim(std::string_view s) {
  while (!s.empty() && std::isspace(static_cast<unsigned char>(s.front()))) s.remove_prefix(1);
  while (!s.empty() && std::isspace(static_cast<unsigned char>(s.back()))) s.remove_suffix(1);
  return s;
}

bool iequals(std::string_view a, std::string_view b) {
  return a.size() == b.size() && std::equal(a.begin(), a.end(), b.begin(), [](char x, char y) {
           return std::tolower(static_cast<unsigned char>(x)) == std::tolower(static_cast<unsigned char>(y));
         });
}

std::vector<std::string_view> split_commas(std::string_view s) {
  std::vector<std::string_view> out;
  while (!s.empty()) {
    const auto c = s.find(',');
    const std::string_view item = trim(s.substr(0, c));
    if (!item.empty()) out.push_back(item);
    if (c == std::string_view::npos) break;
    s.remove_prefix(c + 1);
  }
  return out;
}

}  // namespace

WgConfResult parse_wgconf(std::string_view text, const std::string& source) {
  WgConfResult r;
  enum class Section { kNone, kInterface, kPeer } section = Section::kNone;
  int lineno = 0;
  auto err = [&](const std::string& m) { r.errors.push_back(source + ":" + std::to_string(lineno) + ": " + m); };
  while (!text.empty()) {
    ++lineno;
    const auto nl = text.find('\n');
    std::string_view line = text.substr(0, nl);
    text.remove_prefix(nl == std::string_view::npos ? text.size() : nl + 1);
    if (const auto hash = line.find('#'); hash != std::string_view::npos) line = line.substr(0, hash);
    line = trim(line);
    if (line.empty()) continue;
    if (line.front() == '[') {
      if (iequals(line, "[Interface]")) {
        section = Section::kInterface;
      } else if (iequals(line, "[Peer]")) {
        section = Section::kPeer;
        r.netmap.peers.emplace_back();
      } else {
        err("unknown section " + std::string(line));
        section = Section::kNone;
      }
      continue;
    }
    const auto eq = line.find('=');
    if (eq == std::string_view::npos) {
      err("expected Key = Value");
      continue;
    }
    const std::string_view key = trim(line.substr(0, eq)), value = trim(line.substr(eq + 1));
    if (section == Section::kNone) {
      err("key outside a section");
      continue;
    }
    if (section == Section::kInterface) {
      if (iequals(key, "PrivateKey")) {
        std::uint8_t k[32];
        if (!config::decode_key(value, k)) {
          err("PrivateKey is not a base64 key");
          continue;
        }
        r.netmap.private_key.assign(std::span<const std::uint8_t, 32>(k, 32));
        r.netmap.has_private_key = true;
        crypto::secure_wipe(k, sizeof k);
      } else if (iequals(key, "ListenPort")) {
        unsigned v = 0;
        const auto res = std::from_chars(value.data(), value.data() + value.size(), v);
        if (res.ec != std::errc() || res.ptr != value.data() + value.size() || v > 65535) {
          err("ListenPort must be 0..65535");
          continue;
        }
        r.netmap.listen_port = static_cast<std::uint16_t>(v);
      } else if (iequals(key, "Address")) {
        for (auto a : split_commas(value)) r.addresses.emplace_back(a);
      } else if (iequals(key, "FwMark") || iequals(key, "DNS") || iequals(key, "MTU") || iequals(key, "Table") ||
                 iequals(key, "PreUp") || iequals(key, "PostUp") || iequals(key, "PreDown") ||
                 iequals(key, "PostDown") || iequals(key, "SaveConfig")) {
        r.ignored.push_back(source + ":" + std::to_string(lineno) + ": " + std::string(key));
      } else {
        err("unknown [Interface] key " + std::string(key));
      }
      continue;
    }
    config::Peer& p = r.netmap.peers.back();
    if (iequals(key, "PublicKey")) {
      if (!config::decode_key(value, p.public_key.data())) err("PublicKey is not a base64 key");
    } else if (iequals(key, "PresharedKey")) {
      std::uint8_t k[32];
      if (!config::decode_key(value, k)) {
        err("PresharedKey is not a base64 key");
        continue;
      }
      p.preshared_key.emplace(std::span<const std::uint8_t, 32>(k, 32));
      crypto::secure_wipe(k, sizeof k);
    } else if (iequals(key, "AllowedIPs")) {
      for (auto a : split_commas(value)) {
        std::string why;
        const auto prefix = config::parse_ip_prefix(a, config::PrefixKind::kNetwork, &why);
        if (!prefix)
          err("AllowedIPs " + std::string(a) + ": " + why);
        else
          p.allowed_ips.push_back(*prefix);
      }
    } else if (iequals(key, "Endpoint")) {
      std::string why;
      const auto e = config::parse_endpoint(value, &why);
      if (!e)
        err("Endpoint: " + why);
      else
        p.endpoint = *e;
    } else if (iequals(key, "PersistentKeepalive")) {
      unsigned v = 0;
      if (iequals(value, "off")) {
        p.persistent_keepalive = 0;
        continue;
      }
      const auto res = std::from_chars(value.data(), value.data() + value.size(), v);
      if (res.ec != std::errc() || res.ptr != value.data() + value.size() || v > 65535) {
        err("PersistentKeepalive must be 0..65535 or off");
        continue;
      }
      p.persistent_keepalive = static_cast<std::uint16_t>(v);
    } else {
      err("unknown [Peer] key " + std::string(key));
    }
  }
  for (std::size_t i = 0; i < r.netmap.peers.size(); ++i) {
    const auto& k = r.netmap.peers[i].public_key;
    if (std::all_of(k.begin(), k.end(), [](std::uint8_t b) { return b == 0; }))
      r.errors.push_back(source + ": [Peer] number " + std::to_string(i + 1) + " has no PublicKey");
    for (std::size_t j = 0; j < i; ++j)
      if (r.netmap.peers[j].public_key == k)
        r.errors.push_back(source + ": peer " + config::encode_key(k.data()) + " appears twice");
  }
  return r;
}

std::string format_wgconf(const netmap::Netmap& n) {
  std::string o = "[Interface]\n";
  if (n.has_private_key) o += "PrivateKey = " + config::encode_key(n.private_key.data()) + "\n";
  o += "ListenPort = " + std::to_string(n.listen_port) + "\n";
  for (const auto& p : n.peers) {
    o += "\n[Peer]\nPublicKey = " + config::encode_key(p.public_key.data()) + "\n";
    if (p.preshared_key) o += "PresharedKey = " + config::encode_key(p.preshared_key->data()) + "\n";
    if (!p.allowed_ips.empty()) {
      o += "AllowedIPs = ";
      for (std::size_t i = 0; i < p.allowed_ips.size(); ++i) o += (i ? ", " : "") + p.allowed_ips[i].to_string();
      o += "\n";
    }
    if (p.endpoint) o += "Endpoint = " + p.endpoint->to_string() + "\n";
    if (p.persistent_keepalive) o += "PersistentKeepalive = " + std::to_string(p.persistent_keepalive) + "\n";
  }
  return o;
}

}  // namespace moongate::control
