// mac1/mac2 and cookie replies. See cookie.h for the flow.
#include "wireguard/cookie.h"

#include <cstring>

#include "crypto/aead.h"
#include "crypto/blake2s.h"

namespace moongate::wg {
namespace {

using crypto::Bytes;

constexpr char kLabelMac1[] = "mac1----";
constexpr char kLabelCookie[] = "cookie--";

// HASH(label || public key)
void derive_key(std::uint8_t out[32], const char* label, const crypto::PublicKey& key) noexcept {
  crypto::blake2s256(out, Bytes(reinterpret_cast<const std::uint8_t*>(label), 8), Bytes(key));
}

}  // namespace

void CookieChecker::init(const crypto::PublicKey& local_public) noexcept {
  derive_key(mac1_key_, kLabelMac1, local_public);
  derive_key(cookie_encryption_key_, kLabelCookie, local_public);
}

bool CookieChecker::check_mac1(const std::uint8_t* msg, std::size_t len) const noexcept {
  std::uint8_t mac[16];
  crypto::blake2s_mac128(mac, Bytes(mac1_key_, 32), Bytes(msg, mac1_offset(len)));
  return crypto::ct_equal(mac, msg + mac1_offset(len), 16);
}

bool CookieChecker::check_mac2(const std::uint8_t* msg, std::size_t len, const Endpoint& src,
                               Nanos now) noexcept {
  std::uint8_t cookie[16];
  cookie_for(cookie, src, now);
  std::uint8_t mac[16];
  crypto::blake2s_mac128(mac, Bytes(cookie, 16), Bytes(msg, mac2_offset(len)));
  crypto::secure_wipe(cookie, sizeof cookie);
  return crypto::ct_equal(mac, msg + mac2_offset(len), 16);
}

void CookieChecker::rotate_secret(Nanos now) noexcept {
  secret_.randomize();
  secret_birth_ = now;
  have_secret_ = true;
}

void CookieChecker::cookie_for(std::uint8_t out[16], const Endpoint& src, Nanos now) noexcept {
  // Rm is replaced lazily every two minutes: cookies handed out earlier
  // stop validating then, and a client must fetch a new one.
  if (!have_secret_ || now - secret_birth_ >= kCookieSecretMaxAge) rotate_secret(now);
  std::uint8_t input[18];
  const std::size_t n = src.cookie_input(input);
  crypto::blake2s_mac128(out, secret_.span(), Bytes(input, n));
}

void CookieChecker::make_reply(MessageCookieReply& out, const std::uint8_t* msg, std::size_t len,
                               std::uint32_t sender_index, const Endpoint& src,
                               Nanos now) noexcept {
  store_le32(out.type, static_cast<std::uint32_t>(MessageType::kCookieReply));
  store_le32(out.receiver, sender_index);
  crypto::random_bytes(out.nonce, sizeof out.nonce);
  std::uint8_t cookie[16];
  cookie_for(cookie, src, now);
  // Bound to the mac1 of the message it answers, so only its sender can use it.
  crypto::xchacha20poly1305_encrypt(out.encrypted_cookie, cookie, 16, msg + mac1_offset(len), 16,
                                    out.nonce, cookie_encryption_key_);
  crypto::secure_wipe(cookie, sizeof cookie);
}

void CookieMaker::init(const crypto::PublicKey& remote_public) noexcept {
  derive_key(mac1_key_, kLabelMac1, remote_public);
  derive_key(cookie_decryption_key_, kLabelCookie, remote_public);
  cookie_.clear();
  cookie_valid_ = false;
  have_sent_mac1_ = false;
}

void CookieMaker::add_macs(std::uint8_t* msg, std::size_t len, Nanos now) noexcept {
  std::uint8_t* mac1 = msg + mac1_offset(len);
  std::uint8_t* mac2 = msg + mac2_offset(len);
  crypto::blake2s_mac128(mac1, Bytes(mac1_key_, 32), Bytes(msg, mac1_offset(len)));
  std::memcpy(last_mac1_sent_, mac1, 16);
  have_sent_mac1_ = true;
  if (has_fresh_cookie(now))
    crypto::blake2s_mac128(mac2, cookie_.span(), Bytes(msg, mac2_offset(len)));
  else
    std::memset(mac2, 0, 16);
}

Drop CookieMaker::consume_reply(const MessageCookieReply& reply, Nanos now) noexcept {
  if (!have_sent_mac1_) return Drop::kUnexpectedHandshake;
  crypto::Secret<16> cookie;
  if (!crypto::xchacha20poly1305_decrypt(cookie.data(), reply.encrypted_cookie, 16,
                                         last_mac1_sent_, 16, reply.nonce,
                                         cookie_decryption_key_))
    return Drop::kBadCookieReply;
  cookie_ = cookie;
  cookie_birth_ = now;
  cookie_valid_ = true;
  have_sent_mac1_ = false;  // one reply per message sent
  return Drop::kOk;
}

}  // namespace moongate::wg
