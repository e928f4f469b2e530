// WebSocket framing for DERP (see websocket.h).
#include "relay/websocket.h"

#include <openssl/evp.h>
#include <openssl/sha.h>

namespace moongate::relay {

std::string ws_accept(std::string_view key) {
  std::string s(key);
  s += "258EAFA5-E914-47DA-95CA-C5AB0DC85B11";
  unsigned char digest[SHA_DIGEST_LENGTH];
  SHA1(reinterpret_cast<const unsigned char*>(s.data()), s.size(), digest);
  unsigned char out[32];
  const int n = EVP_EncodeBlock(out, digest, SHA_DIGEST_LENGTH);
  return std::string(reinterpret_cast<const char*>(out), static_cast<std::size_t>(n));
}

std::size_t ws_header(std::uint8_t* out, std::uint8_t opcode, std::uint64_t len) noexcept {
  out[0] = static_cast<std::uint8_t>(0x80 | opcode);  // FIN: one frame per message
  if (len < 126) {
    out[1] = static_cast<std::uint8_t>(len);
    return 2;
  }
  if (len <= 0xffff) {
    out[1] = 126;
    out[2] = static_cast<std::uint8_t>(len >> 8);
    out[3] = static_cast<std::uint8_t>(len);
    return 4;
  }
  out[1] = 127;
  for (int i = 0; i < 8; ++i) out[2 + i] = static_cast<std::uint8_t>(len >> (56 - 8 * i));
  return 10;
}

WsReader::Status WsReader::feed(
    std::span<const std::uint8_t> in, const std::function<void(std::span<const std::uint8_t>)>& data,
    const std::function<void(std::uint8_t, std::span<const std::uint8_t>)>& control) {
  std::size_t i = 0;
  while (i < in.size()) {
    if (!in_payload_) {
      // Collect the header: 2 bytes, then the extended length and the mask.
      head_[head_len_++] = in[i++];
      if (head_len_ < 2) continue;
      const std::uint8_t b0 = head_[0], b1 = head_[1];
      if (b0 & 0x70) return Status::kBad;           // reserved bits: no extensions were agreed
      if (!(b1 & 0x80)) return Status::kBad;        // clients must mask
      const std::uint8_t len7 = b1 & 0x7f;
      const std::size_t need = 2 + (len7 == 126 ? 2 : len7 == 127 ? 8 : 0) + 4;
      if (head_len_ < need) continue;
      std::uint64_t len = len7;
      std::size_t p = 2;
      if (len7 == 126) {
        len = static_cast<std::uint64_t>(head_[2]) << 8 | head_[3];
        p = 4;
      } else if (len7 == 127) {
        len = 0;
        for (int k = 0; k < 8; ++k) len = len << 8 | head_[2 + k];
        p = 10;
        if (len >> 63) return Status::kBad;
      }
      for (int k = 0; k < 4; ++k) mask_[k] = head_[p + k];
      opcode_ = b0 & 0x0f;
      const bool is_control = opcode_ & 0x8;
      if (is_control && (len > 125 || !(b0 & 0x80))) return Status::kBad;
      if (!is_control && opcode_ != 0x0 && opcode_ != kWsBinary) return Status::kBad;
      if (is_control && opcode_ != kWsClose && opcode_ != kWsPing && opcode_ != kWsPong)
        return Status::kBad;
      head_len_ = 0;
      left_ = len;
      pos_ = 0;
      in_payload_ = true;
      control_.clear();
      if (left_ > 0) continue;
    }
    // Payload: unmask in place into a small stack buffer and hand it on.
    std::uint8_t chunk[4096];
    while (left_ > 0 && i < in.size()) {
      const std::size_t n = static_cast<std::size_t>(
          std::min<std::uint64_t>({left_, in.size() - i, sizeof chunk}));
      for (std::size_t k = 0; k < n; ++k) chunk[k] = in[i + k] ^ mask_[(pos_ + k) & 3];
      i += n;
      pos_ += n;
      left_ -= n;
      if (opcode_ & 0x8) control_.append(reinterpret_cast<const char*>(chunk), n);
      else data({chunk, n});
    }
    if (left_ == 0) {
      in_payload_ = false;
      if (opcode_ & 0x8) {
        if (opcode_ == kWsClose) return Status::kClosed;
        control(opcode_, {reinterpret_cast<const std::uint8_t*>(control_.data()), control_.size()});
      }
    }
  }
  return Status::kOk;
}

}  // namespace moongate::relay
