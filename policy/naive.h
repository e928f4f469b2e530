// The reference matcher: a scan of the flat rules, obviously right, used to
// check the rte_acl classifier (acl.h) in a differential test the way
// Linux WireGuard checks allowed-IPs against a naive list. One scan per
// address family.
#pragma once

#include "policy/compile.h"

namespace moongate::policy {

// The index of the first spec rule that accepts `p`, or -1 (deny).
int naive_match(const CompiledPolicy& policy, const Packet& p) noexcept;
int naive_match6(const CompiledPolicy& policy, const Packet6& p) noexcept;

// Whether one flat rule matches (also what the naive scans use).
bool flat_matches(const FlatRule& r, const Packet& p) noexcept;
bool flat_matches6(const FlatRule6& r, const Packet6& p) noexcept;

}  // namespace moongate::policy
