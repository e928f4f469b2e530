// TAI64N timestamps for handshake initiations.
#pragma once

#include <array>
#include <cstdint>

namespace moongate::crypto {

using Tai64n = std::array<std::uint8_t, 12>;

// Encodes a wall-clock time (nanoseconds since the Unix epoch): big-endian
// (seconds + 2^62 + 10) then big-endian nanoseconds. The nanoseconds are rounded
// down to a multiple of 2^24 ns (~16.7 ms), as wireguard-go does, so the
// timestamp does not leak a precise clock to an observer.
Tai64n tai64n_encode(std::uint64_t unix_ns) noexcept;

// Lexicographic (= chronological) comparison: true when a is after b.
bool tai64n_after(const Tai64n& a, const Tai64n& b) noexcept;

}  // namespace moongate::crypto
