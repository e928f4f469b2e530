// The policy compiler: PolicySpec + the peers -> a flat list of rules, each
// one source (a peer, or an IPv4 prefix) x one destination (an IPv4 prefix
// and a destination port range) x a protocol, all "accept", tagged with the
// index of the rule it came from (its counter). That list is what both
// matchers read: naive.h (the reference, a scan) and acl.h (DPDK rte_acl,
// the data plane's). The first rule in file order that matches a packet is
// the one counted.
//
// Errors name the spec path ("rules[2].src[1]") so the config loader can
// put a file position on them; compilation reports every error it finds.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "policy/spec.h"

namespace moongate::policy {

inline constexpr std::uint8_t kProtoAny = 0;

// What the classifier looks at, host order. Non-TCP/UDP packets carry
// ports 0 (an ICMP packet matches a rule only with ports "*").
struct Packet {
  std::uint32_t peer = 0;  // source peer id; 0: not from a peer
  std::uint32_t src = 0;
  std::uint32_t dst = 0;
  std::uint8_t proto = 0;
  std::uint16_t sport = 0;
  std::uint16_t dport = 0;
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

struct CompiledPolicy {
  std::vector<FlatRule> flat;
  std::size_t rule_count = 0;  // spec rules (counters)
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
// "22", "8000-8100", "*": appends ranges; several joined with ','.
bool parse_ports(const std::string& text, std::vector<std::pair<std::uint16_t, std::uint16_t>>& out,
                 std::string& why);
bool parse_proto(const std::string& text, std::uint8_t& proto);

}  // namespace moongate::policy
