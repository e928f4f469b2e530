// Cookies and MACs: DoS mitigation for handshakes (whitepaper section 5.3,
// 5.4.4 and 5.4.7).
//
// Responder side (CookieChecker, one per device): every handshake message
// must carry mac1 = MAC(HASH("mac1----" || our public key), msg). Under load
// we also require mac2 = MAC(cookie, msg) where cookie = MAC(Rm, source
// address || port) and Rm is a random secret replaced every two minutes; a
// message without a valid mac2 is answered with a cookie reply (cheap: no
// DH) instead of being processed.
//
// Initiator side (CookieMaker, one per peer): adds mac1 with the peer's
// key and, while it holds a fresh cookie from that peer, mac2; decrypts
// cookie replies, which are bound to the mac1 we last sent.
#pragma once

#include <cstddef>
#include <cstdint>

#include "crypto/secret.h"
#include "crypto/x25519.h"
#include "wireguard/constants.h"
#include "wireguard/endpoint.h"
#include "wireguard/messages.h"

namespace moongate::wg {

class CookieChecker {
 public:
  // Derives the keys from our public key; call when the private key changes.
  void init(const crypto::PublicKey& local_public) noexcept;

  // mac1 of a handshake message of length len: proves the sender knows
  // our public key. Checked on every handshake message.
  bool check_mac1(const std::uint8_t* msg, std::size_t len) const noexcept;
  // mac2: proves the sender can receive at `src`. Checked only under load.
  bool check_mac2(const std::uint8_t* msg, std::size_t len, const Endpoint& src,
                  Nanos now) noexcept;

  // Builds a cookie reply to the handshake message msg (len bytes) whose
  // sender index is `sender_index`.
  void make_reply(MessageCookieReply& out, const std::uint8_t* msg, std::size_t len,
                  std::uint32_t sender_index, const Endpoint& src, Nanos now) noexcept;

  // Forces a new secret (tests; the secret also rotates by itself).
  void rotate_secret(Nanos now) noexcept;

 private:
  void cookie_for(std::uint8_t out[16], const Endpoint& src, Nanos now) noexcept;

  std::uint8_t mac1_key_[32] = {};
  std::uint8_t cookie_encryption_key_[32] = {};
  crypto::SecretKey secret_;
  Nanos secret_birth_ = 0;
  bool have_secret_ = false;
};

class CookieMaker {
 public:
  void init(const crypto::PublicKey& remote_public) noexcept;

  // Writes mac1 (and mac2 when a fresh cookie is held) into the last 32
  // bytes of the handshake message msg of length len.
  void add_macs(std::uint8_t* msg, std::size_t len, Nanos now) noexcept;

  // Decrypts a cookie reply for the last message we sent; kOk stores it.
  Drop consume_reply(const MessageCookieReply& reply, Nanos now) noexcept;

  bool has_fresh_cookie(Nanos now) const noexcept {
    return cookie_valid_ && now - cookie_birth_ < kCookieSecretMaxAge - kCookieSecretLatency;
  }

 private:
  std::uint8_t mac1_key_[32] = {};
  std::uint8_t cookie_decryption_key_[32] = {};
  std::uint8_t last_mac1_sent_[16] = {};
  bool have_sent_mac1_ = false;
  crypto::Secret<16> cookie_;
  Nanos cookie_birth_ = 0;
  bool cookie_valid_ = false;
};

}  // namespace moongate::wg
