// Protocol constants of the WireGuard whitepaper (section 6) and the
// implementation limits moongate takes from the Linux module.
#pragma once

#include <cstddef>
#include <cstdint>

namespace moongate::wg {

// Monotonic nanoseconds; the protocol core never reads a clock itself.
using Nanos = std::uint64_t;
inline constexpr Nanos kMillisecond = 1'000'000;
inline constexpr Nanos kSecond = 1'000'000'000;

inline constexpr std::uint64_t kRekeyAfterMessages = 1ULL << 60;
// 2^64 - 2^13 - 1: the last counters are never used so the replay window
// (8 K wide) cannot wrap.
inline constexpr std::uint64_t kRejectAfterMessages = ~0ULL - (1ULL << 13);
inline constexpr Nanos kRekeyAfterTime = 120 * kSecond;
inline constexpr Nanos kRejectAfterTime = 180 * kSecond;
inline constexpr Nanos kRekeyAttemptTime = 90 * kSecond;
inline constexpr Nanos kRekeyTimeout = 5 * kSecond;
inline constexpr Nanos kRekeyTimeoutJitterMax = 334 * kMillisecond;  // [0, 333] ms
inline constexpr Nanos kKeepaliveTimeout = 10 * kSecond;
inline constexpr Nanos kCookieSecretMaxAge = 120 * kSecond;
// A cookie we hold is used only while the responder surely still has the
// secret that made it.
inline constexpr Nanos kCookieSecretLatency = 5 * kSecond;
// Retransmissions before giving up on a handshake: REKEY_ATTEMPT_TIME / REKEY_TIMEOUT.
inline constexpr unsigned kMaxTimerHandshakes = 18;
// A peer may not make us do the initiation DH work more often than this.
inline constexpr Nanos kMinInitiationInterval = kSecond / 50;

inline constexpr std::size_t kKeyLen = 32;
inline constexpr std::size_t kTagLen = 16;
inline constexpr std::size_t kMessagePaddingMultiple = 16;
inline constexpr std::size_t kDefaultMtu = 1420;

}  // namespace moongate::wg
