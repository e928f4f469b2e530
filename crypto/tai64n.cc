// TAI64N encoding of wall-clock time for handshake initiation timestamps.
#include "crypto/tai64n.h"

#include <cstring>

namespace moongate::crypto {
namespace {

// TAI64 label of the Unix epoch as WireGuard implementations write it:
// 2^62 plus the 10 s TAI-UTC offset of 1970 (Linux module, wireguard-go), so
// a key moved between implementations keeps increasing timestamps.
constexpr std::uint64_t kTai64Base = (std::uint64_t{1} << 62) + 10;
constexpr std::uint64_t kNsPerSecond = 1'000'000'000;
// Low 24 bits of the nanoseconds are dropped (as wireguard-go does) so the
// timestamp does not hand an observer a fine-grained clock.
constexpr std::uint32_t kWhitenerMask = 0xFFFFFFu;

}  // namespace

Tai64n tai64n_encode(std::uint64_t unix_ns) noexcept {
  const std::uint64_t seconds = kTai64Base + unix_ns / kNsPerSecond;
  const auto nanos = static_cast<std::uint32_t>(unix_ns % kNsPerSecond) & ~kWhitenerMask;
  Tai64n out{};
  for (int i = 0; i < 8; ++i) out[static_cast<std::size_t>(i)] = static_cast<std::uint8_t>(seconds >> (56 - 8 * i));
  for (int i = 0; i < 4; ++i) out[static_cast<std::size_t>(8 + i)] = static_cast<std::uint8_t>(nanos >> (24 - 8 * i));
  return out;
}

bool tai64n_after(const Tai64n& a, const Tai64n& b) noexcept {
  // Big-endian fields make byte order chronological order. Timestamps are
  // public (they travel encrypted but are not secrets), so memcmp is fine.
  return std::memcmp(a.data(), b.data(), a.size()) > 0;
}

}  // namespace moongate::crypto
