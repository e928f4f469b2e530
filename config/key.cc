// Base64 keys through libsodium, which refuses non-canonical encodings
// (non-zero padding bits), so one key has exactly one spelling and
// duplicate checks on bytes equal duplicate checks on text.
#include "config/key.h"

#include <sodium.h>

#include "crypto/secret.h"

namespace moongate::config {

bool decode_key(std::string_view base64, std::uint8_t out[kKeyBytes]) noexcept {
  if (base64.size() != kKeyBase64Chars) return false;
  std::uint8_t tmp[kKeyBytes];
  std::size_t len = 0;
  const char* end = nullptr;
  const int rc = sodium_base642bin(tmp, sizeof tmp, base64.data(), base64.size(), nullptr, &len,
                                   &end, sodium_base64_VARIANT_ORIGINAL);
  const bool ok = rc == 0 && len == kKeyBytes && end == base64.data() + base64.size();
  if (ok) {
    for (std::size_t i = 0; i < kKeyBytes; ++i) out[i] = tmp[i];
  }
  // The buffer may hold a private key.
  crypto::secure_wipe(tmp, sizeof tmp);
  return ok;
}

std::string encode_key(const std::uint8_t key[kKeyBytes]) {
  char buf[sodium_base64_ENCODED_LEN(kKeyBytes, sodium_base64_VARIANT_ORIGINAL)];
  sodium_bin2base64(buf, sizeof buf, key, kKeyBytes, sodium_base64_VARIANT_ORIGINAL);
  std::string out(buf);
  crypto::secure_wipe(buf, sizeof buf);
  return out;
}

}  // namespace moongate::config
