// DERP over WebSocket (RFC 6455), I/O-free: the variant browser clients use.
//
//   1. GET /derp, Upgrade: websocket, Sec-WebSocket-Protocol offering "derp"
//      -> 101 with Sec-WebSocket-Accept and Sec-WebSocket-Protocol: derp
//      (http.cc); without "derp" the upgrade is refused (426), as derper does
//   2. client -> server: masked frames; binary/continuation payloads are the
//      DERP byte stream (WsReader hands them on unmasked); Ping gets a Pong,
//      Close ends the connection
//   3. server -> client: each write is one unmasked binary frame
//      (ws_binary_header) around the DERP bytes
#pragma once

#include <cstddef>
#include <cstdint>
#include <functional>
#include <span>
#include <string>
#include <string_view>

namespace moongate::relay {

// Sec-WebSocket-Accept for a client's Sec-WebSocket-Key.
std::string ws_accept(std::string_view key);

// The header of an unmasked server frame of `len` payload bytes; returns its
// size (2, 4 or 10 bytes into out[10]).
std::size_t ws_header(std::uint8_t* out, std::uint8_t opcode, std::uint64_t len) noexcept;
inline constexpr std::uint8_t kWsBinary = 0x2;
inline constexpr std::uint8_t kWsClose = 0x8;
inline constexpr std::uint8_t kWsPing = 0x9;
inline constexpr std::uint8_t kWsPong = 0xA;

class WsReader {
 public:
  enum class Status { kOk, kClosed, kBad };
  // `data` gets DERP bytes; `control` gets whole control frames to answer
  // (opcode, payload). Returns kClosed on a Close frame, kBad on a protocol
  // error (unmasked client frame, oversize control frame, text data,
  // reserved bits or opcodes).
  Status feed(std::span<const std::uint8_t> in,
              const std::function<void(std::span<const std::uint8_t>)>& data,
              const std::function<void(std::uint8_t, std::span<const std::uint8_t>)>& control);

 private:
  std::uint8_t head_[14];
  std::size_t head_len_ = 0;
  bool in_payload_ = false;
  std::uint8_t opcode_ = 0;
  std::uint8_t mask_[4] = {};
  std::uint64_t left_ = 0;
  std::uint64_t pos_ = 0;  // payload bytes of this frame seen (mask index)
  std::string control_;
};

}  // namespace moongate::relay
