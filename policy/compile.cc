// The policy compiler; compile.h has the model. Every source entry expands
// to peer ids or one prefix, every destination to a prefix per family x
// port ranges, and a rule to the cross product within each family.
#include "policy/compile.h"

#include <arpa/inet.h>

#include <algorithm>
#include <charconv>
#include <set>
#include <tuple>
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

// One source entry's expansion: a peer (or anyone) matches both families,
// a prefix only its own.
enum class Family : std::uint8_t { kBoth, kV4, kV6 };

struct Source {
  std::uint32_t peer = 0;
  Family family = Family::kBoth;
  std::uint32_t src = 0;
  Addr6 src6{};
  std::uint8_t src_len = 0;
  std::size_t entry = 0;  // index into the rule's src (for errors)

  auto tie() const { return std::tie(peer, family, src, src6, src_len); }
};

// One destination entry: where (per family) and the port ranges.
struct Destination {
  bool v4 = false, v6 = false;
  std::uint32_t dst = 0;
  std::uint8_t dst_len = 0;
  Addr6 dst6{};
  std::uint8_t dst6_len = 0;
  std::vector<std::pair<std::uint16_t, std::uint16_t>> ports;
};

bool has_v6_colons(const std::string& s) { return s.find(':') != std::string::npos; }

// "<where>:<ports>" (spec.h has the forms). False and `why` on an error.
bool parse_destination(const std::string& d, Destination& out, std::string& why) {
  std::string where, ports;
  if (!d.empty() && d[0] == '[') {
    const std::size_t close = d.find(']');
    if (close == std::string::npos) {
      why = "'" + d + "' opens '[' without closing ']': an IPv6 destination is [address or prefix]:<ports>";
      return false;
    }
    if (close + 1 >= d.size() || d[close + 1] != ':') {
      why = "'" + d + "' needs ':<ports>' after ']', e.g. [2001:db8::1]:22 or [2001:db8::/32]:*";
      return false;
    }
    where = d.substr(1, close - 1);
    ports = d.substr(close + 2);
    if (!has_v6_colons(where)) {
      why = "brackets are for IPv6 only: write '" + where + ":" + ports + "'";
      return false;
    }
    out.v6 = true;
    if (!parse_cidr6(where, out.dst6, out.dst6_len, why)) return false;
  } else {
    const std::size_t colon = d.rfind(':');
    if (colon == std::string::npos) {
      why = "a destination is <prefix or *>:<ports>, e.g. 10.1.0.0/16:22, [2001:db8::/32]:443 or *:*";
      return false;
    }
    where = d.substr(0, colon);
    ports = d.substr(colon + 1);
    if (where == "*") {
      out.v4 = out.v6 = true;
    } else if (has_v6_colons(where)) {
      // Only a prefix length ends an unbracketed IPv6 address unambiguously.
      if (where.find('/') == std::string::npos) {
        why = "'" + d + "' is ambiguous: write an IPv6 destination with ports in brackets, "
              "e.g. [2001:db8::1]:22 or [2001:db8::/32]:*";
        return false;
      }
      out.v6 = true;
      if (!parse_cidr6(where, out.dst6, out.dst6_len, why)) return false;
    } else {
      out.v4 = true;
      if (!parse_cidr4(where, out.dst, out.dst_len, why)) return false;
    }
  }
  return parse_ports(ports, out.ports, why);
}

}  // namespace

bool parse_cidr4(const std::string& text, std::uint32_t& addr, std::uint8_t& len,
                 std::string& why) {
  const std::size_t slash = text.find('/');
  const std::string a = text.substr(0, slash);
  if (a.find(':') != std::string::npos) {
    why = "'" + text + "' is an IPv6 address where IPv4 is expected";
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

bool parse_cidr6(const std::string& text, Addr6& addr, std::uint8_t& len, std::string& why) {
  const std::size_t slash = text.find('/');
  const std::string a = text.substr(0, slash);
  if (a.find('%') != std::string::npos) {
    why = "'" + text + "': a zone (%...) has no meaning in a policy rule";
    return false;
  }
  std::uint8_t bytes[16];
  if (a.find(':') == std::string::npos || inet_pton(AF_INET6, a.c_str(), bytes) != 1) {
    why = "'" + text + "' is not an IPv6 address or prefix";
    return false;
  }
  std::uint32_t l = 128;
  if (slash != std::string::npos) {
    const std::string ls = text.substr(slash + 1);
    if (ls.size() > 3 || !parse_u32(ls, 128, l)) {
      why = "bad prefix length in '" + text + "' (0..128)";
      return false;
    }
  }
  static constexpr std::uint8_t kMapped[12] = {0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff};
  if (std::equal(bytes, bytes + 12, kMapped)) {
    why = "'" + text + "' is IPv4-mapped: write the IPv4 address or prefix";
    return false;
  }
  Addr6 v{};
  for (int w = 0; w < 4; ++w)
    v[w] = (std::uint32_t{bytes[4 * w]} << 24) | (std::uint32_t{bytes[4 * w + 1]} << 16) |
           (std::uint32_t{bytes[4 * w + 2]} << 8) | bytes[4 * w + 3];
  for (int w = 0; w < 4; ++w) {
    const int bits = std::clamp(static_cast<int>(l) - 32 * w, 0, 32);
    if ((v[w] & ~mask_of(static_cast<std::uint8_t>(bits))) != 0) {
      why = "'" + text + "' has host bits set";
      return false;
    }
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
    const std::size_t errors_before = r.errors.size();
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
        sources.push_back({0, Family::kBoth, 0, {}, 0, i});
      } else if (s.rfind("group:", 0) == 0) {
        const auto g = spec.groups.find(s.substr(6));
        if (g == spec.groups.end()) {
          error(path, "no group '" + s.substr(6) + "' in policy.groups");
          continue;
        }
        for (const std::string& m : g->second)
          if (const PeerInfo* p = find_peer(m)) sources.push_back({p->id, Family::kBoth, 0, {}, 0, i});
      } else if (s.rfind("tag:", 0) == 0) {
        const std::string t = s.substr(4);
        if (!tags.count(t)) {
          error(path, "tag '" + t + "' is not declared in policy.tags");
          continue;
        }
        for (const PeerInfo& p : peers)
          if (std::find(p.tags.begin(), p.tags.end(), t) != p.tags.end())
            sources.push_back({p.id, Family::kBoth, 0, {}, 0, i});
      } else if (const PeerInfo* p = find_peer(s)) {
        sources.push_back({p->id, Family::kBoth, 0, {}, 0, i});
      } else if (!s.empty() && ((s[0] >= '0' && s[0] <= '9') || s.find(':') != std::string::npos)) {
        Source src;
        src.entry = i;
        std::string why;
        if (s.find(':') != std::string::npos) {
          src.family = Family::kV6;
          if (parse_cidr6(s, src.src6, src.src_len, why))
            sources.push_back(src);
          else
            error(path, why);
        } else {
          src.family = Family::kV4;
          if (parse_cidr4(s, src.src, src.src_len, why))
            sources.push_back(src);
          else
            error(path, why);
        }
      } else {
        error(path, "'" + s + "' is no peer name or key, group:, tag:, IPv4 or IPv6 prefix or *");
      }
    }
    // Two entries naming one peer must not double its flat rules.
    std::sort(sources.begin(), sources.end(),
              [](const Source& a, const Source& b) { return a.tie() < b.tie(); });
    sources.erase(std::unique(sources.begin(), sources.end(),
                              [](const Source& a, const Source& b) { return a.tie() == b.tie(); }),
                  sources.end());

    std::vector<Destination> dsts;
    std::vector<std::size_t> dst_entry;
    for (std::size_t i = 0; i < rule.dst.size(); ++i) {
      const std::string path = base + ".dst[" + std::to_string(i) + "]";
      Destination d;
      std::string why;
      if (!parse_destination(rule.dst[i], d, why)) {
        error(path, why);
        continue;
      }
      const bool all_ports = d.ports.size() == 1 && d.ports[0].first == 0 && d.ports[0].second == 65535;
      if (proto == kProtoIcmp && !all_ports) {
        error(path, "ICMP has no ports: use :*");
        continue;
      }
      dsts.push_back(std::move(d));
      dst_entry.push_back(i);
    }

    // A prefix of one family with nothing of its family on the other side
    // matches nothing: almost certainly a mistake, so it is an error.
    bool src_v4 = false, src_v6 = false, dst_v4 = false, dst_v6 = false;
    for (const Source& s : sources) {
      src_v4 |= s.family != Family::kV6;
      src_v6 |= s.family != Family::kV4;
    }
    for (const Destination& d : dsts) {
      dst_v4 |= d.v4;
      dst_v6 |= d.v6;
    }
    if (r.errors.size() == errors_before) {  // no error hid a source or destination
      for (const Source& s : sources)
        if ((s.family == Family::kV4 && !dst_v4) || (s.family == Family::kV6 && !dst_v6))
          error(base + ".src[" + std::to_string(s.entry) + "]",
                std::string("an IPv") + (s.family == Family::kV4 ? "4" : "6") +
                    " source prefix, but the rule has no IPv" + (s.family == Family::kV4 ? "4" : "6") +
                    " destination (*: is both)");
      for (std::size_t k = 0; k < dsts.size(); ++k)
        if (!sources.empty() && !(dsts[k].v4 && dsts[k].v6) &&
            ((dsts[k].v4 && !src_v4) || (dsts[k].v6 && !src_v6)))
          error(base + ".dst[" + std::to_string(dst_entry[k]) + "]",
                std::string("an IPv") + (dsts[k].v4 ? "4" : "6") + " destination, but every source is an IPv" +
                    (dsts[k].v4 ? "6" : "4") + " prefix");
    }

    const auto ri32 = static_cast<std::uint32_t>(ri);
    const std::uint8_t proto6 = proto == kProtoIcmp ? kProtoIcmpv6 : proto;
    for (const Destination& d : dsts)
      for (const Source& s : sources)
        for (const auto& [lo, hi] : d.ports) {
          if (d.v4 && s.family != Family::kV6)
            r.policy.flat.push_back({ri32, s.peer, s.src, s.src_len, d.dst, d.dst_len, lo, hi, proto});
          if (d.v6 && s.family != Family::kV4)
            r.policy.flat6.push_back(
                {ri32, s.peer, s.src6, s.src_len, d.dst6, d.dst6_len, lo, hi, proto6});
        }
  }
  if (!r.ok()) r.policy = {};
  return r;
}

}  // namespace moongate::policy
