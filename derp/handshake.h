// The DERP handshake, both sides, without I/O.
//
//   1. server -> client  ServerKey   magic + server public key
//   2. client -> server  ClientInfo  client public key + nonce + box(JSON)
//                        sealed with crypto_box(client private, server public)
//   3. server            opens the box (proves the client holds its key),
//                        checks the mesh key / admission
//   4. server -> client  ServerInfo  nonce + box({"version":2,...})
//                        sealed with crypto_box(server private, client public)
//
// The box is NaCl's crypto_box (X25519, XSalsa20, Poly1305) exactly as
// libsodium's crypto_box_easy lays it out (16-byte tag first).
#pragma once

#include <cstddef>
#include <cstdint>
#include <optional>
#include <span>
#include <string>
#include <string_view>

#include "crypto/secret.h"
#include "derp/frame.h"

namespace moongate::derp {

inline constexpr std::size_t kBoxOverhead = 16;

struct ClientInfo {
  std::optional<Key> mesh_key;  // present only when the client sent one
  int version = 0;
  bool can_ack_pings = false;
  bool is_prober = false;
  std::string app_name;
};

// Parses the ClientInfo JSON: field names case-insensitively (as Go's
// encoding/json), unknown fields skipped. false for anything that is not a
// JSON object or has a mistyped known field.
bool parse_client_info(std::string_view json, ClientInfo& out);
std::string client_info_json(const ClientInfo& ci);

// Server: opens a ClientInfo payload. false when it is too short or the box
// does not open with the claimed client key.
bool open_client_info(std::span<const std::uint8_t> payload, const crypto::SecretKey& server_private,
                      Key& client_public, ClientInfo& info);

// Server: the ServerInfo frame for `client_public` into `out` (needs
// kServerInfoFrameMax bytes). Rate limit fields are sent when non-zero.
// 0 when the client key is a low-order point (no shared secret).
inline constexpr std::size_t kServerInfoFrameMax = 256;
std::size_t seal_server_info(std::uint8_t* out, const crypto::SecretKey& server_private,
                             const Key& client_public, std::uint32_t bytes_per_second,
                             std::uint32_t bytes_burst);

// Client (the mesh client and tests): the ClientInfo frame.
std::string seal_client_info(const crypto::SecretKey& client_private, const Key& client_public,
                             const Key& server_public, const ClientInfo& info);
// Client: opens ServerInfo and returns its JSON, or nullopt.
std::optional<std::string> open_server_info(std::span<const std::uint8_t> payload,
                                            const crypto::SecretKey& client_private,
                                            const Key& server_public);

// Lowercase hex of a key and back (derper's Derp-Public-Key header, mesh keys).
std::string key_hex(const Key& k);
bool key_from_hex(std::string_view hex, Key& out) noexcept;

}  // namespace moongate::derp
