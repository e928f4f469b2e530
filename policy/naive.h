// The reference matcher: a scan of the flat rules, obviously right, used to
// check the rte_acl classifier (acl.h) in a differential test the way
// Linux WireGuard checks allowed-IPs against a naive list.
#pragma once

#include "policy/compile.h"

namespace moongate::policy {

// The index of the first spec rule that accepts `p`, or -1 (deny).
int naive_match(const CompiledPolicy& policy, const Packet& p) noexcept;

// Whether one flat rule matches (also what the naive scan uses).
bool flat_matches(const FlatRule& r, const Packet& p) noexcept;

}  // namespace moongate::policy
