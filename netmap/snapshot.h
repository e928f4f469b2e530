// A netmap snapshot as bytes: the form it has in the shared-memory segment.
//
// Little-endian, fixed-size records, no pointers, so either process can map
// it anywhere; decoding checks every count, length and field against the
// buffer and refuses what does not fit (a corrupted or truncated snapshot
// must never reach the tables).
//
//   header   64 B   magic "MGNM", format, generation, sizes, counts,
//                   listen port, flags, FNV-1a of the whole snapshot
//                   (its own 4 bytes left out)
//   key      32 B   our private key (zero when there is none)
//   peers    96 B each: public key, preshared key, flags, endpoint,
//                   keepalive, index and count of its prefixes
//   prefixes 20 B each: family, length, address (peers' allowed IPs)
//   routes   40 B each: prefix (20 B), next hop family and address, port
#pragma once

#include <cstddef>
#include <cstdint>
#include <span>
#include <string>

#include "netmap/netmap.h"

namespace moongate::netmap {

inline constexpr std::uint32_t kSnapshotMagic = 0x4d4e474d;  // "MGNM" little-endian
inline constexpr std::uint32_t kSnapshotFormat = 1;
inline constexpr std::size_t kSnapshotHeaderLen = 64;
inline constexpr std::size_t kSnapshotPeerLen = 96;
inline constexpr std::size_t kSnapshotPrefixLen = 20;
inline constexpr std::size_t kSnapshotRouteLen = 40;

// Bytes encode() writes for `n`.
std::size_t encoded_size(const Netmap& n) noexcept;

// Writes `n` into out (at least encoded_size(n) bytes); returns the size, or
// 0 when out is too small.
std::size_t encode(const Netmap& n, std::span<std::uint8_t> out) noexcept;

// Reads a snapshot; "" on success, else why it was refused.
std::string decode(std::span<const std::uint8_t> in, Netmap& out);

// The generation in a snapshot's header without decoding it (0 if none).
std::uint64_t peek_generation(std::span<const std::uint8_t> in) noexcept;

}  // namespace moongate::netmap
