// An access policy as written (docs/config.md, `policy:`), in the spirit of
// Tailscale ACLs, before compilation: names and text, no YAML. The config
// loader builds this from the file; tests build it directly.
//
//   groups:  group name -> members (peer names or base64 public keys)
//   tags:    the tag names peers may carry (a typo in a peer or a rule is
//            then an error, not a silently empty match)
//   rules:   accept {src, dst, proto}; anything no rule accepts is denied
//            (once a policy exists), except return traffic of an accepted
//            flow (established.h)
//
// A source is a peer name, a peer's public key, "group:<name>",
// "tag:<name>", an IPv4 or IPv6 CIDR ("10.1.0.0/16", "10.1.0.7",
// "2001:db8::/32", "2001:db8::7") or "*" (anyone).
// A destination is "<where>:<ports>" with ports "*", "22" or "8000-8100",
// or several joined with commas ("22,80,443"); where is "*" (any IPv4 and
// IPv6 address), an IPv4 CIDR, or an IPv6 address or CIDR in brackets
// ("[2001:db8::1]:22", "[2001:db8:200::/48]:443"). An IPv6 CIDR may go
// without brackets since its "/len" ends the address ("2001:db8::/48:443");
// a bare IPv6 address may not ("2001:db8::1:22" is ambiguous).
#pragma once

#include <cstdint>
#include <map>
#include <string>
#include <vector>

namespace moongate::policy {

struct RuleSpec {
  std::vector<std::string> src;
  std::vector<std::string> dst;
  std::string proto = "any";  // tcp | udp | icmp | any

  friend bool operator==(const RuleSpec&, const RuleSpec&) = default;
};

struct PolicySpec {
  std::map<std::string, std::vector<std::string>> groups;
  std::vector<std::string> tags;
  std::vector<RuleSpec> rules;

  friend bool operator==(const PolicySpec&, const PolicySpec&) = default;
};

// A peer as the policy sees it. `id` is what the data plane puts into the
// classifier's source-peer field for packets from this peer (never 0: 0
// means "not from a peer", e.g. a LAN host).
struct PeerInfo {
  std::uint32_t id = 0;
  std::string name;        // may be empty
  std::string public_key;  // base64, canonical
  std::vector<std::string> tags;
};

}  // namespace moongate::policy
