// WireGuard wire formats (whitepaper section 5.4) and the drop reasons of
// every message consumer.
//
// All integers are little-endian. Messages are read from and written to
// byte buffers with no alignment guarantee (a UDP payload inside an mbuf is
// 2-byte aligned at best), so fields are byte arrays accessed with
// load_le32/store_le32, never by casting to wider integer types.
#pragma once

#include <cstddef>
#include <cstdint>
#include <cstring>

#include "wireguard/constants.h"

namespace moongate::wg {

enum class MessageType : std::uint32_t {
  kInvalid = 0,
  kInitiation = 1,
  kResponse = 2,
  kCookieReply = 3,
  kData = 4,
};

struct MessageInitiation {
  std::uint8_t type[4];  // 1, then three reserved zero bytes
  std::uint8_t sender[4];
  std::uint8_t ephemeral[32];
  std::uint8_t encrypted_static[32 + kTagLen];
  std::uint8_t encrypted_timestamp[12 + kTagLen];
  std::uint8_t mac1[16];
  std::uint8_t mac2[16];
};

struct MessageResponse {
  std::uint8_t type[4];
  std::uint8_t sender[4];
  std::uint8_t receiver[4];
  std::uint8_t ephemeral[32];
  std::uint8_t encrypted_nothing[kTagLen];
  std::uint8_t mac1[16];
  std::uint8_t mac2[16];
};

struct MessageCookieReply {
  std::uint8_t type[4];
  std::uint8_t receiver[4];
  std::uint8_t nonce[24];
  std::uint8_t encrypted_cookie[16 + kTagLen];
};

struct MessageDataHeader {
  std::uint8_t type[4];
  std::uint8_t receiver[4];
  std::uint8_t counter[8];
};

inline constexpr std::size_t kInitiationLen = 148;
inline constexpr std::size_t kResponseLen = 92;
inline constexpr std::size_t kCookieReplyLen = 64;
inline constexpr std::size_t kDataHeaderLen = 16;
inline constexpr std::size_t kDataMinLen = kDataHeaderLen + kTagLen;  // a keepalive
inline constexpr std::size_t kMaxHandshakeLen = kInitiationLen;
static_assert(sizeof(MessageInitiation) == kInitiationLen);
static_assert(sizeof(MessageResponse) == kResponseLen);
static_assert(sizeof(MessageCookieReply) == kCookieReplyLen);
static_assert(sizeof(MessageDataHeader) == kDataHeaderLen);

// Offsets of the two MACs that end both handshake messages.
inline constexpr std::size_t mac1_offset(std::size_t len) noexcept { return len - 32; }
inline constexpr std::size_t mac2_offset(std::size_t len) noexcept { return len - 16; }

inline std::uint32_t load_le32(const std::uint8_t* p) noexcept {
  return static_cast<std::uint32_t>(p[0]) | static_cast<std::uint32_t>(p[1]) << 8 |
         static_cast<std::uint32_t>(p[2]) << 16 | static_cast<std::uint32_t>(p[3]) << 24;
}
inline void store_le32(std::uint8_t* p, std::uint32_t v) noexcept {
  p[0] = static_cast<std::uint8_t>(v);
  p[1] = static_cast<std::uint8_t>(v >> 8);
  p[2] = static_cast<std::uint8_t>(v >> 16);
  p[3] = static_cast<std::uint8_t>(v >> 24);
}
inline std::uint64_t load_le64(const std::uint8_t* p) noexcept {
  return static_cast<std::uint64_t>(load_le32(p)) |
         static_cast<std::uint64_t>(load_le32(p + 4)) << 32;
}
inline void store_le64(std::uint8_t* p, std::uint64_t v) noexcept {
  store_le32(p, static_cast<std::uint32_t>(v));
  store_le32(p + 4, static_cast<std::uint32_t>(v >> 32));
}

// The type of a UDP payload, checking the reserved bytes and the exact
// length of each handshake message; kInvalid for anything else. A data
// message needs at least a header and a tag.
// Inline: every received message passes here, data twice.
inline MessageType classify_message(const std::uint8_t* msg, std::size_t len) noexcept {
  if (msg == nullptr || len < 4) return MessageType::kInvalid;
  // The type is a little-endian u32: the three reserved bytes must be zero.
  switch (static_cast<MessageType>(load_le32(msg))) {
    case MessageType::kInitiation:
      return len == kInitiationLen ? MessageType::kInitiation : MessageType::kInvalid;
    case MessageType::kResponse:
      return len == kResponseLen ? MessageType::kResponse : MessageType::kInvalid;
    case MessageType::kCookieReply:
      return len == kCookieReplyLen ? MessageType::kCookieReply : MessageType::kInvalid;
    case MessageType::kData:
      return len >= kDataMinLen ? MessageType::kData : MessageType::kInvalid;
    default:
      return MessageType::kInvalid;
  }
}

// Writes a data message header in front of the ciphertext.
inline void write_data_header(std::uint8_t* out, std::uint32_t receiver,
                              std::uint64_t counter) noexcept {
  store_le32(out, static_cast<std::uint32_t>(MessageType::kData));
  store_le32(out + 4, receiver);
  store_le64(out + 8, counter);
}

// Plaintext length after padding to a multiple of 16, never past the MTU
// (but never shorter than the packet itself).
inline std::size_t padded_length(std::size_t len, std::size_t mtu) noexcept {
  std::size_t padded = (len + kMessagePaddingMultiple - 1) & ~(kMessagePaddingMultiple - 1);
  if (padded > mtu) padded = mtu > len ? mtu : len;
  return padded;
}

// Why a message was not accepted. One list generates the enum, the counter
// array index and the names shown to operators.
#define MOONGATE_WG_DROP_REASONS(X)                                          \
  X(kOk, "ok")                                                               \
  X(kMalformed, "malformed")                   /* bad type, length, reserved bytes */ \
  X(kBadMac1, "bad_mac1")                                                    \
  X(kCookieSent, "cookie_sent")                /* under load, no valid mac2: replied with a cookie */ \
  X(kHandshakeDecrypt, "handshake_decrypt")    /* AEAD of a handshake field failed */ \
  X(kLowOrderPoint, "low_order_point")         /* a DH result was all zeros */ \
  X(kUnknownPeer, "unknown_peer")              /* static key not configured */ \
  X(kStaleTimestamp, "stale_timestamp")        /* initiation replay */   \
  X(kInitiationFlood, "initiation_flood")      /* more than 50/s from one peer */ \
  X(kUnknownIndex, "unknown_index")            /* receiver index not ours */ \
  X(kUnexpectedHandshake, "unexpected_handshake") /* response/cookie in the wrong state */ \
  X(kBadCookieReply, "bad_cookie_reply")                                     \
  X(kIndexTableFull, "index_table_full")                                     \
  X(kNoPrivateKey, "no_private_key")                                         \
  X(kNoSession, "no_session")                  /* no usable keypair (send: stage it) */ \
  X(kKeypairExpired, "keypair_expired")        /* past REJECT_AFTER_TIME/MESSAGES */ \
  X(kReplay, "replay")                         /* counter seen or behind the window */ \
  X(kDataAuth, "data_auth")                    /* data message tag did not verify */ \
  X(kNoEndpoint, "no_endpoint")                /* nowhere to send */ \
  X(kRateLimited, "rate_limited")              /* handshake not sent: one per REKEY_TIMEOUT */

enum class Drop : std::uint8_t {
#define MOONGATE_X(name, str) name,
  MOONGATE_WG_DROP_REASONS(MOONGATE_X)
#undef MOONGATE_X
      kCount
};
inline constexpr std::size_t kDropCount = static_cast<std::size_t>(Drop::kCount);

const char* drop_name(Drop d) noexcept;

}  // namespace moongate::wg
