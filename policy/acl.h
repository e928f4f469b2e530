// AclClassifier: a compiled policy as DPDK rte_acl contexts, the data
// plane's matcher (the naive scan in naive.h is the reference it is tested
// against). Built off the packet path (the control side or the netmap
// service thread compiles a new one when the policy changes, and the data
// plane swaps it in like a netmap generation); classify() is lock-free and
// read-only, so every lcore may share one context.
//
// Fields (rte_acl reads the input in network byte order):
//   proto      1 byte, bitmask (exact, or any)
//   peer       4 bytes, bitmask: the source peer id (exact), or any
//   src, dst   4 bytes each, prefix
//   sport      2 bytes, range (always 0..65535: rules do not restrict it)
//   dport      2 bytes, range
// IPv6 has its own context (an rte_acl field is at most 8 bytes and one
// rule set has one layout): as above with src and dst as four 4-byte
// prefix fields each, the most significant word first (DPDK's
// examples/l3fwd-acl does the same); a word's prefix length is the part
// of the address's that falls into it.
// One category; priority falls with the rule's position so the first rule
// in file order wins and is counted; userdata is the rule index + 1 (0 is
// rte_acl's "no match"), the same index in both families.
#pragma once

#include <cstddef>
#include <cstdint>
#include <memory>
#include <string>

#include "policy/compile.h"

struct rte_acl_ctx;

namespace moongate::policy {

inline constexpr std::size_t kClassifyBurst = 32;

// One packet's classifier input, as rte_acl reads it.
struct AclInput {
  std::uint8_t proto = 0;
  std::uint8_t pad[3] = {};
  std::uint32_t peer_be = 0;  // network order
  std::uint32_t src_be = 0;
  std::uint32_t dst_be = 0;
  std::uint16_t sport_be = 0;
  std::uint16_t dport_be = 0;
};
static_assert(sizeof(AclInput) == 20);

AclInput make_acl_input(const Packet& p) noexcept;

struct AclInput6 {
  std::uint8_t proto = 0;
  std::uint8_t pad[3] = {};
  std::uint32_t peer_be = 0;
  std::uint32_t src_be[4] = {};  // network order, word by word
  std::uint32_t dst_be[4] = {};
  std::uint16_t sport_be = 0;
  std::uint16_t dport_be = 0;
};
static_assert(sizeof(AclInput6) == 44);

AclInput6 make_acl_input6(const Packet6& p) noexcept;

class AclClassifier {
 public:
  // Builds the context on `socket` (SOCKET_ID_ANY = -1). nullptr and
  // `error` set on failure (no memory, rte_acl refusing the rules). Needs
  // a running EAL.
  static std::unique_ptr<AclClassifier> build(const CompiledPolicy& policy, int socket,
                                               std::string& error);
  ~AclClassifier();
  AclClassifier(const AclClassifier&) = delete;
  AclClassifier& operator=(const AclClassifier&) = delete;

  // Classifies n <= kClassifyBurst packets: rule[i] is the index of the
  // first spec rule that accepts in[i], or -1 (no rule: deny unless it is
  // return traffic).
  void classify(const AclInput* const* in, std::size_t n, int* rule) const noexcept;
  // The same for IPv6 packets.
  void classify6(const AclInput6* const* in, std::size_t n, int* rule) const noexcept;

  std::size_t flat_rules() const noexcept { return flat_; }
  std::size_t flat_rules6() const noexcept { return flat6_; }

 private:
  AclClassifier() = default;
  rte_acl_ctx* ctx_ = nullptr;   // null for no IPv4 rules: all deny
  rte_acl_ctx* ctx6_ = nullptr;  // null for no IPv6 rules: all deny
  std::size_t flat_ = 0;
  std::size_t flat6_ = 0;
};

}  // namespace moongate::policy
