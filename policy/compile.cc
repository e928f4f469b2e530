// The policy compiler; compile.h has the model. Every source entry expands
// to peer ids or one prefix, every destination to prefix x port ranges, and
// a rule to the cross product.
#include "policy/compile.h"

#include <algorithm>
#include <charconv>
#include <set>
#include <utility>

namespace moongate::policy {

namespace {

constexpr std::uint32_t mask_of(std::uint8_t len) noexcept {
  return len == 0 ? 0 : ~std::uint32_t{0} << (32 - len);
}

bool parse_u32(const std::string& s, std::uint32_t max, std::uint32_t& out) {
  if (s.empty() || s.size() > 5 || (s.size() > 1 && s[0] == '0')) return false;
  auto [p, ec] = std::from_chars(s.data(), s.data() + s.size(), out);
  return ec == std::errc() && p == s.data() + s.size() && out <= max;
}

struct Source {
  std::uint32_t peer = 0;
  std::uint32_t src = 0;
  std::uint8_t src_len = 0;
};

}  // namespace

bool parse_cidr4(const std::string& text, std::uint32_t& addr, std::uint8_t& len,
                 std::string& why) {
  const std::size_t slash = text.find('/');
  const std::string a = text.substr(0, slash);
  if (a.find(':') != std::string::npos) {
    why = "IPv6 prefixes are not supported in policy rules yet: '" + text + "'";
    return false;
  }
  std::uint32_t v = 0;
  std::size_t pos = 0;
  for (int i = 0; i < 4; ++i) {
    const std::size_t dot = a.find('.', pos);
    if ((i < 3) != (dot != std::string::npos)) {
      why = "'" + text + "' is not an IPv4 address or prefix";
      return false;
    }
    std::uint32_t octet = 0;
    if (!parse_u32(a.substr(pos, dot == std::string::npos ? std::string::npos : dot - pos), 255,
                   octet)) {
      why = "'" + text + "' is not an IPv4 address or prefix";
      return false;
    }
    v = (v << 8) | octet;
    pos = dot + 1;
  }
  std::uint32_t l = 32;
  if (slash != std::string::npos && !parse_u32(text.substr(slash + 1), 32, l)) {
    why = "bad prefix length in '" + text + "' (0..32)";
    return false;
  }
  if ((v & ~mask_of(static_cast<std::uint8_t>(l))) != 0) {
    why = "'" + text + "' has host bits set";
    return false;
  }
  addr = v;
  len = static_cast<std::uint8_t>(l);
  return true;
}

bool parse_ports(const std::string& text, std::vector<std::pair<std::uint16_t, std::uint16_t>>& out,
                 std::string& why) {
  if (text == "*") {
    out.emplace_back(0, 65535);
    return true;
  }
  std::size_t pos = 0;
  while (true) {
    const std::size_t comma = text.find(',', pos);
    const std::string part = text.substr(pos, comma == std::string::npos ? std::string::npos : comma - pos);
    const std::size_t dash = part.find('-');
    std::uint32_t lo = 0, hi = 0;
    if (!parse_u32(part.substr(0, dash), 65535, lo) ||
        !parse_u32(dash == std::string::npos ? part.substr(0, dash) : part.substr(dash + 1), 65535, hi)) {
      why = "bad port '" + part + "' (a port 0..65535, a range lo-hi, or *)";
      return false;
    }
    if (lo > hi) {
      why = "port range '" + part + "' runs backwards";
      return false;
    }
    out.emplace_back(static_cast<std::uint16_t>(lo), static_cast<std::uint16_t>(hi));
    if (comma == std::string::npos) return true;
    pos = comma + 1;
  }
}

bool parse_proto(const std::string& text, std::uint8_t& proto) {
  if (text == "any") proto = kProtoAny;
  else if (text == "tcp") proto = 6;
  else if (text == "udp") proto = 17;
  else if (text == "icmp") proto = 1;
  else return false;
  return true;
}

CompileResult compile(const PolicySpec& spec, const std::vector<PeerInfo>& peers) {
  CompileResult r;
  auto error = [&](std::string path, std::string msg) {
    r.errors.push_back({std::move(path), std::move(msg)});
  };
  const std::set<std::string> tags(spec.tags.begin(), spec.tags.end());
  for (std::size_t i = 0; i < spec.tags.size(); ++i)
    if (spec.tags[i].empty() || spec.tags[i].find(':') != std::string::npos)
      error("tags[" + std::to_string(i) + "]", "a tag name is non-empty and has no ':'");

  // A peer by name or key.
  auto find_peer = [&](const std::string& s) -> const PeerInfo* {
    for (const PeerInfo& p : peers)
      if ((!p.name.empty() && p.name == s) || p.public_key == s) return &p;
    return nullptr;
  };
  for (const PeerInfo& p : peers)
    for (const std::string& t : p.tags)
      if (!tags.count(t)) error("peer '" + (p.name.empty() ? p.public_key : p.name) + "'",
                                "tag '" + t + "' is not declared in policy.tags");

  for (const auto& [name, members] : spec.groups) {
    for (std::size_t i = 0; i < members.size(); ++i)
      if (find_peer(members[i]) == nullptr)
        error("groups." + name + "[" + std::to_string(i) + "]",
              "no peer named or keyed '" + members[i] + "'");
  }

  r.policy.rule_count = spec.rules.size();
  for (std::size_t ri = 0; ri < spec.rules.size(); ++ri) {
    const RuleSpec& rule = spec.rules[ri];
    const std::string base = "rules[" + std::to_string(ri) + "]";
    std::uint8_t proto = 0;
    if (!parse_proto(rule.proto, proto))
      error(base + ".proto", "unknown protocol '" + rule.proto + "' (tcp, udp, icmp or any)");
    if (rule.src.empty()) error(base + ".src", "a rule needs at least one source");
    if (rule.dst.empty()) error(base + ".dst", "a rule needs at least one destination");

    std::vector<Source> sources;
    for (std::size_t i = 0; i < rule.src.size(); ++i) {
      const std::string& s = rule.src[i];
      const std::string path = base + ".src[" + std::to_string(i) + "]";
      if (s == "*") {
        sources.push_back({});
      } else if (s.rfind("group:", 0) == 0) {
        const auto g = spec.groups.find(s.substr(6));
        if (g == spec.groups.end()) {
          error(path, "no group '" + s.substr(6) + "' in policy.groups");
          continue;
        }
        for (const std::string& m : g->second)
          if (const PeerInfo* p = find_peer(m)) sources.push_back({p->id, 0, 0});
      } else if (s.rfind("tag:", 0) == 0) {
        const std::string t = s.substr(4);
        if (!tags.count(t)) {
          error(path, "tag '" + t + "' is not declared in policy.tags");
          continue;
        }
        for (const PeerInfo& p : peers)
          if (std::find(p.tags.begin(), p.tags.end(), t) != p.tags.end())
            sources.push_back({p.id, 0, 0});
      } else if (const PeerInfo* p = find_peer(s)) {
        sources.push_back({p->id, 0, 0});
      } else if (!s.empty() && ((s[0] >= '0' && s[0] <= '9') || s.find(':') != std::string::npos)) {
        Source src;
        std::string why;
        if (parse_cidr4(s, src.src, src.src_len, why))
          sources.push_back(src);
        else
          error(path, why);
      } else {
        error(path, "'" + s + "' is no peer name or key, group:, tag:, IPv4 prefix or *");
      }
    }
    // Two entries naming one peer must not double its flat rules.
    std::sort(sources.begin(), sources.end(), [](const Source& a, const Source& b) {
      return std::tie(a.peer, a.src, a.src_len) < std::tie(b.peer, b.src, b.src_len);
    });
    sources.erase(std::unique(sources.begin(), sources.end(),
                              [](const Source& a, const Source& b) {
                                return a.peer == b.peer && a.src == b.src && a.src_len == b.src_len;
                              }),
                  sources.end());

    for (std::size_t i = 0; i < rule.dst.size(); ++i) {
      const std::string& d = rule.dst[i];
      const std::string path = base + ".dst[" + std::to_string(i) + "]";
      const std::size_t colon = d.rfind(':');
      if (colon == std::string::npos) {
        error(path, "a destination is <prefix or *>:<ports>, e.g. 10.1.0.0/16:22 or *:*");
        continue;
      }
      const std::string where = d.substr(0, colon);
      std::uint32_t dst = 0;
      std::uint8_t dst_len = 0;
      std::string why;
      if (where != "*" && !parse_cidr4(where, dst, dst_len, why)) {
        error(path, why);
        continue;
      }
      std::vector<std::pair<std::uint16_t, std::uint16_t>> ports;
      if (!parse_ports(d.substr(colon + 1), ports, why)) {
        error(path, why);
        continue;
      }
      const bool all_ports = ports.size() == 1 && ports[0].first == 0 && ports[0].second == 65535;
      if (proto == 1 && !all_ports) {
        error(path, "ICMP has no ports: use :*");
        continue;
      }
      for (const Source& s : sources)
        for (const auto& [lo, hi] : ports)
          r.policy.flat.push_back({static_cast<std::uint32_t>(ri), s.peer, s.src, s.src_len, dst,
                                   dst_len, lo, hi, proto});
    }
  }
  if (!r.ok()) r.policy = {};
  return r;
}

}  // namespace moongate::policy
