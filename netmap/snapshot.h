// A netmap snapshot as bytes: the form it has in the shared-memory segment.
//
// Little-endian, fixed-size records, no pointers, so either process can map
// it anywhere; decoding checks every count, length and field against the
// buffer and refuses what does not fit (a corrupted or truncated snapshot
// must never reach the tables).
//
//   header   64 B   magic "MGNM", format, generation, sizes, counts,
//                   listen port, flags, FNV-1a of the whole snapshot
//                   (its own 4 bytes left out), bytes of the labels,
//                   bytes of the policy (flags: bit 0 a private key, bit 1
//                   a policy)
//   key      32 B   our private key (zero when there is none)
//   peers   104 B each: public key, preshared key, flags (preshared key,
//                   endpoint, exit_node), endpoint, keepalive, index and
//                   count of its prefixes, offset and length of its labels
//   prefixes 20 B each: family, length, address (peers' allowed IPs)
//   routes   40 B each: prefix (20 B), next hop family and address, port
//   labels   per peer, peer after peer: its name and tags, each a 2-byte
//            length and the bytes, after a 2-byte tag count:
//            [u16 len][name] [u16 count] ([u16 len][tag])*
//   policy   only when the header's flag says there is one (`policy:` of
//            moongate-control's YAML), text as written, every string a
//            [u16 len][bytes] and every list a [u16 count] before its items:
//            tags: count, tag*; groups: count, (name, count, member*)*;
//            rules: count, (proto, count, src*, count, dst*)*
// The labels and the policy travel so that the data plane takes exit_node,
// the policy and its identities from the netmap, not from its own
// configuration file: a reload of moongate-control's YAML reaches them.
#pragma once

#include <cstddef>
#include <cstdint>
#include <span>
#include <string>

#include "netmap/netmap.h"

namespace moongate::netmap {

inline constexpr std::uint32_t kSnapshotMagic = 0x4d4e474d;  // "MGNM" little-endian
inline constexpr std::uint32_t kSnapshotFormat = 3;  // 2: exit_node, name and tags per peer; 3: the policy
inline constexpr std::size_t kSnapshotHeaderLen = 64;
inline constexpr std::size_t kSnapshotPeerLen = 104;
inline constexpr std::size_t kSnapshotPrefixLen = 20;
inline constexpr std::size_t kSnapshotRouteLen = 40;
// Bounds of a peer's labels, checked on both sides (the configuration
// allows names of 63 characters; tags are declared words).
inline constexpr std::size_t kSnapshotMaxLabel = 255;
inline constexpr std::size_t kSnapshotMaxTags = 255;
// Bounds of the policy section: a string (a rule's destination may list
// many ports), any one list (tags, groups, members, rules, sources,
// destinations: what a u16 count holds, so a group may list tens of
// thousands of peers). The data plane sizes its per-rule counters for
// kSnapshotMaxRules once, so a reload can grow the policy without
// allocating on a worker.
inline constexpr std::size_t kSnapshotMaxPolicyText = 4096;
inline constexpr std::size_t kSnapshotMaxPolicyList = 65535;
inline constexpr std::size_t kSnapshotMaxRules = 4096;

// Bytes encode() writes for `n`.
std::size_t encoded_size(const Netmap& n) noexcept;

// Writes `n` into out (at least encoded_size(n) bytes); returns the size, or
// 0 when out is too small or a name, tag, tag count or the policy exceeds
// the bounds above.
std::size_t encode(const Netmap& n, std::span<std::uint8_t> out) noexcept;

// "" when encode() can write `n`, else which peer's labels or which part
// of the policy is out of bounds (publishers check first, so a refused
// netmap never half-writes).
std::string encodable(const Netmap& n);

// Reads a snapshot; "" on success, else why it was refused.
std::string decode(std::span<const std::uint8_t> in, Netmap& out);

// The generation in a snapshot's header without decoding it (0 if none).
std::uint64_t peek_generation(std::span<const std::uint8_t> in) noexcept;

}  // namespace moongate::netmap
