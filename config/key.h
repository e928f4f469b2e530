// WireGuard keys as text: the 44-character base64 form `wg genkey` and
// `wg pubkey` print (standard alphabet, one '=' of padding, 32 bytes).
#pragma once

#include <cstdint>
#include <string>
#include <string_view>

namespace moongate::config {

inline constexpr std::size_t kKeyBytes = 32;
inline constexpr std::size_t kKeyBase64Chars = 44;

// Decodes a key into out[32]; false (out untouched) unless the text is
// exactly one canonical base64 encoding of 32 bytes.
[[nodiscard]] bool decode_key(std::string_view base64, std::uint8_t out[kKeyBytes]) noexcept;

// The 44-character base64 form of a 32-byte key.
std::string encode_key(const std::uint8_t key[kKeyBytes]);

}  // namespace moongate::config
