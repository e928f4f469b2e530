// The policy compiler: PolicySpec + the peers -> two flat lists of rules,
// one per address family, each one source (a peer, or a prefix) x one
// destination (a prefix and a destination port range) x a protocol, all
// "accept", tagged with the index of the rule it came from (its counter,
// shared by both families: a rule with IPv4 and IPv6 destinations is one
// rule). Those lists are what both matchers read: naive.h (the reference,
// a scan) and acl.h (DPDK rte_acl, the data plane's, one context per
// family). The first rule in file order that matches a packet is the one
// counted.
//
// Families: a peer, a group, a tag or "*" as source is the peer (or
// anyone), whatever its address, so it goes into both lists; a prefix
// source only into its own family's. A destination "*:<ports>" is any IPv4
// and any IPv6 address; an IPv4 one is IPv4 only, an IPv6 one IPv6 only.
// "icmp" is ICMP in IPv4 rules and ICMPv6 in IPv6 rules.
//
// Errors name the spec path ("rules[2].src[1]") so the config loader can
// put a file position on them; compilation reports every error it finds.
#pragma once

#include <array>
#include <cstdint>
#include <string>
#include <vector>

#include "policy/spec.h"

namespace moongate::policy {

inline constexpr std::uint8_t kProtoAny = 0;
inline constexpr std::uint8_t kProtoIcmp = 1;
inline constexpr std::uint8_t kProtoIcmpv6 = 58;

// An IPv6 address as four 32-bit words, the most significant first, each
// in host order (the way rte_acl's IPv6 rules split it, DPDK's l3fwd-acl).
using Addr6 = std::array<std::uint32_t, 4>;

// What the classifier looks at, host order. Non-TCP/UDP packets carry
// ports 0 (an ICMP packet matches a rule only with ports "*").
// `initiating`: the packet can only start a flow, never answer one (an
// ICMP echo request): the return-traffic table never lets it through as a
// reply. (Without it, an echo request from a host a peer pinged would be
// the reverse of the peer's noted flow: ICMP has no ports to tell them
// apart.) The classifier does not read it.
struct Packet {
  std::uint32_t peer = 0;  // source peer id; 0: not from a peer
  std::uint32_t src = 0;
  std::uint32_t dst = 0;
  std::uint8_t proto = 0;
  std::uint16_t sport = 0;
  std::uint16_t dport = 0;
  bool initiating = false;
};

struct FlatRule {
  std::uint32_t rule = 0;  // index into the spec's rules
  std::uint32_t peer = 0;  // 0: any source (then src/src_len apply)
  std::uint32_t src = 0;
  std::uint8_t src_len = 0;
  std::uint32_t dst = 0;
  std::uint8_t dst_len = 0;
  std::uint16_t dport_lo = 0;
  std::uint16_t dport_hi = 65535;
  std::uint8_t proto = kProtoAny;

  friend bool operator==(const FlatRule&, const FlatRule&) = default;
};

// The IPv6 packet and rule: as above with 128-bit addresses. `proto` is
// the upper-layer protocol after the extension headers (58: ICMPv6).
struct Packet6 {
  std::uint32_t peer = 0;
  Addr6 src{};
  Addr6 dst{};
  std::uint8_t proto = 0;
  std::uint16_t sport = 0;
  std::uint16_t dport = 0;
  bool initiating = false;  // an ICMPv6 echo request
};

struct FlatRule6 {
  std::uint32_t rule = 0;
  std::uint32_t peer = 0;  // 0: any source (then src/src_len apply)
  Addr6 src{};
  std::uint8_t src_len = 0;
  Addr6 dst{};
  std::uint8_t dst_len = 0;
  std::uint16_t dport_lo = 0;
  std::uint16_t dport_hi = 65535;
  std::uint8_t proto = kProtoAny;

  friend bool operator==(const FlatRule6&, const FlatRule6&) = default;
};

struct CompiledPolicy {
  std::vector<FlatRule> flat;    // IPv4
  std::vector<FlatRule6> flat6;  // IPv6
  std::size_t rule_count = 0;    // spec rules (counters, both families)
};

struct CompileError {
  std::string path;  // "rules[2].src[1]", "groups.eng[0]"
  std::string message;
};

struct CompileResult {
  CompiledPolicy policy;
  std::vector<CompileError> errors;  // empty: policy is valid
  bool ok() const noexcept { return errors.empty(); }
};

CompileResult compile(const PolicySpec& spec, const std::vector<PeerInfo>& peers);

// Parsers shared with the config loader (nullopt-free: false + message).
bool parse_cidr4(const std::string& text, std::uint32_t& addr, std::uint8_t& len, std::string& why);
// "2001:db8::/32", "2001:db8::1" (no brackets, no zone).
bool parse_cidr6(const std::string& text, Addr6& addr, std::uint8_t& len, std::string& why);
// "22", "8000-8100", "*": appends ranges; several joined with ','.
bool parse_ports(const std::string& text, std::vector<std::pair<std::uint16_t, std::uint16_t>>& out,
                 std::string& why);
bool parse_proto(const std::string& text, std::uint8_t& proto);

}  // namespace moongate::policy
