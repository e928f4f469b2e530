// DERP handshake sealing and the ClientInfo JSON (flow in handshake.h).
#include "derp/handshake.h"

#include <sodium.h>

#include <cctype>
#include <vector>

namespace moongate::derp {
namespace {

// A small JSON reader: enough for one flat object of strings, numbers,
// booleans and null, with nested values skipped. ClientInfo is the only JSON
// a client sends and it is bounded by kMaxInfoLen.
class Json {
 public:
  explicit Json(std::string_view s) : s_(s) {}
  void ws() {
    while (i_ < s_.size() && (s_[i_] == ' ' || s_[i_] == '\t' || s_[i_] == '\n' || s_[i_] == '\r'))
      ++i_;
  }
  bool eat(char c) {
    ws();
    if (i_ < s_.size() && s_[i_] == c) {
      ++i_;
      return true;
    }
    return false;
  }
  bool peek(char c) {
    ws();
    return i_ < s_.size() && s_[i_] == c;
  }
  bool at_end() {
    ws();
    return i_ == s_.size();
  }
  bool string(std::string& out) {
    out.clear();
    if (!eat('"')) return false;
    while (i_ < s_.size()) {
      char c = s_[i_++];
      if (c == '"') return true;
      if (static_cast<unsigned char>(c) < 0x20) return false;
      if (c != '\\') {
        out.push_back(c);
        continue;
      }
      if (i_ >= s_.size()) return false;
      char e = s_[i_++];
      switch (e) {
        case '"': case '\\': case '/': out.push_back(e); break;
        case 'b': out.push_back('\b'); break;
        case 'f': out.push_back('\f'); break;
        case 'n': out.push_back('\n'); break;
        case 'r': out.push_back('\r'); break;
        case 't': out.push_back('\t'); break;
        case 'u': {
          if (i_ + 4 > s_.size()) return false;
          for (int k = 0; k < 4; ++k)
            if (!std::isxdigit(static_cast<unsigned char>(s_[i_ + k]))) return false;
          i_ += 4;
          out.push_back('?');  // no field we read carries non-ASCII
          break;
        }
        default: return false;
      }
    }
    return false;
  }
  bool number(double& out) {
    ws();
    std::size_t start = i_;
    if (i_ < s_.size() && s_[i_] == '-') ++i_;
    while (i_ < s_.size() && (std::isdigit(static_cast<unsigned char>(s_[i_])) || s_[i_] == '.' ||
                              s_[i_] == 'e' || s_[i_] == 'E' || s_[i_] == '+' || s_[i_] == '-'))
      ++i_;
    if (i_ == start) return false;
    std::string tmp(s_.substr(start, i_ - start));
    char* end = nullptr;
    out = std::strtod(tmp.c_str(), &end);
    return end == tmp.c_str() + tmp.size();
  }
  bool literal(std::string_view w) {
    ws();
    if (s_.substr(i_, w.size()) != w) return false;
    i_ += w.size();
    return true;
  }
  // Skips any value, bounded in depth so hostile nesting cannot recurse far.
  bool skip(int depth = 0) {
    if (depth > 32) return false;
    ws();
    if (i_ >= s_.size()) return false;
    char c = s_[i_];
    std::string tmp;
    double d;
    if (c == '"') return string(tmp);
    if (c == '{' || c == '[') {
      char close = c == '{' ? '}' : ']';
      ++i_;
      if (eat(close)) return true;
      for (;;) {
        if (c == '{') {
          if (!string(tmp) || !eat(':')) return false;
        }
        if (!skip(depth + 1)) return false;
        if (eat(close)) return true;
        if (!eat(',')) return false;
      }
    }
    if (c == 't') return literal("true");
    if (c == 'f') return literal("false");
    if (c == 'n') return literal("null");
    return number(d);
  }

 private:
  std::string_view s_;
  std::size_t i_ = 0;
};

bool iequals(std::string_view a, std::string_view b) {
  if (a.size() != b.size()) return false;
  for (std::size_t i = 0; i < a.size(); ++i)
    if (std::tolower(static_cast<unsigned char>(a[i])) != std::tolower(static_cast<unsigned char>(b[i])))
      return false;
  return true;
}

bool read_bool(Json& j, bool& out) {
  if (j.literal("true")) return out = true, true;
  if (j.literal("false")) return out = false, true;
  if (j.literal("null")) return true;
  return false;
}

}  // namespace

bool parse_client_info(std::string_view json, ClientInfo& out) {
  out = ClientInfo{};
  Json j(json);
  if (!j.eat('{')) return false;
  if (!j.eat('}')) {
    for (;;) {
      std::string name;
      if (!j.string(name) || !j.eat(':')) return false;
      if (iequals(name, "meshKey")) {
        std::string v;
        if (j.literal("null")) {
        } else if (!j.string(v)) {
          return false;
        } else if (!v.empty()) {
          Key k;
          if (!key_from_hex(v, k)) return false;
          out.mesh_key = k;
        }
      } else if (iequals(name, "version")) {
        double d;
        if (!j.number(d)) return false;
        out.version = d >= 0 && d < 1e6 ? static_cast<int>(d) : 0;
      } else if (iequals(name, "CanAckPings")) {
        if (!read_bool(j, out.can_ack_pings)) return false;
      } else if (iequals(name, "IsProber")) {
        if (!read_bool(j, out.is_prober)) return false;
      } else if (iequals(name, "AppName")) {
        if (!j.literal("null") && !j.string(out.app_name)) return false;
      } else if (!j.skip()) {
        return false;
      }
      if (j.eat('}')) break;
      if (!j.eat(',')) return false;
    }
  }
  return j.at_end();
}

std::string client_info_json(const ClientInfo& ci) {
  std::string s = "{";
  if (ci.mesh_key) s += "\"meshKey\":\"" + key_hex(*ci.mesh_key) + "\",";
  s += "\"version\":" + std::to_string(ci.version);
  if (ci.can_ack_pings) s += ",\"CanAckPings\":true";
  if (ci.is_prober) s += ",\"IsProber\":true";
  s += "}";
  return s;
}

bool open_client_info(std::span<const std::uint8_t> payload, const crypto::SecretKey& server_private,
                      Key& client_public, ClientInfo& info) {
  if (payload.size() < kKeyLen + kNonceLen + kBoxOverhead || payload.size() > kMaxInfoLen)
    return false;
  std::memcpy(client_public.data(), payload.data(), kKeyLen);
  const std::uint8_t* nonce = payload.data() + kKeyLen;
  const std::uint8_t* box = nonce + kNonceLen;
  const std::size_t box_len = payload.size() - kKeyLen - kNonceLen;
  std::vector<std::uint8_t> plain(box_len - kBoxOverhead);
  if (crypto_box_open_easy(plain.data(), box, box_len, nonce, client_public.data(),
                           server_private.data()) != 0)
    return false;
  return parse_client_info(
      std::string_view(reinterpret_cast<const char*>(plain.data()), plain.size()), info);
}

std::size_t seal_server_info(std::uint8_t* out, const crypto::SecretKey& server_private,
                             const Key& client_public, std::uint32_t bytes_per_second,
                             std::uint32_t bytes_burst) {
  std::string json = "{\"version\":2";
  if (bytes_per_second != 0) {
    json += ",\"TokenBucketBytesPerSecond\":" + std::to_string(bytes_per_second);
    json += ",\"TokenBucketBytesBurst\":" + std::to_string(bytes_burst);
  }
  json += "}";
  const std::size_t payload = kNonceLen + kBoxOverhead + json.size();
  std::size_t n = put_header(out, FrameType::kServerInfo, static_cast<std::uint32_t>(payload));
  std::uint8_t* nonce = out + n;
  randombytes_buf(nonce, kNonceLen);
  if (crypto_box_easy(nonce + kNonceLen, reinterpret_cast<const std::uint8_t*>(json.data()),
                      json.size(), nonce, client_public.data(), server_private.data()) != 0)
    return 0;
  return n + payload;
}

std::string seal_client_info(const crypto::SecretKey& client_private, const Key& client_public,
                             const Key& server_public, const ClientInfo& info) {
  const std::string json = client_info_json(info);
  const std::size_t payload = kKeyLen + kNonceLen + kBoxOverhead + json.size();
  std::string frame(kHeaderLen + payload, '\0');
  auto* p = reinterpret_cast<std::uint8_t*>(frame.data());
  std::size_t n = put_header(p, FrameType::kClientInfo, static_cast<std::uint32_t>(payload));
  std::memcpy(p + n, client_public.data(), kKeyLen);
  std::uint8_t* nonce = p + n + kKeyLen;
  randombytes_buf(nonce, kNonceLen);
  if (crypto_box_easy(nonce + kNonceLen, reinterpret_cast<const std::uint8_t*>(json.data()),
                      json.size(), nonce, server_public.data(), client_private.data()) != 0)
    return {};
  return frame;
}

std::optional<std::string> open_server_info(std::span<const std::uint8_t> payload,
                                            const crypto::SecretKey& client_private,
                                            const Key& server_public) {
  if (payload.size() < kNonceLen + kBoxOverhead || payload.size() > kMaxInfoLen) return std::nullopt;
  std::string plain(payload.size() - kNonceLen - kBoxOverhead, '\0');
  if (crypto_box_open_easy(reinterpret_cast<std::uint8_t*>(plain.data()),
                           payload.data() + kNonceLen, payload.size() - kNonceLen,
                           payload.data(), server_public.data(), client_private.data()) != 0)
    return std::nullopt;
  return plain;
}

std::string key_hex(const Key& k) {
  static constexpr char kDigits[] = "0123456789abcdef";
  std::string s(64, '0');
  for (std::size_t i = 0; i < 32; ++i) {
    s[2 * i] = kDigits[k[i] >> 4];
    s[2 * i + 1] = kDigits[k[i] & 15];
  }
  return s;
}

bool key_from_hex(std::string_view hex, Key& out) noexcept {
  if (hex.size() != 64) return false;
  auto nib = [](char c) -> int {
    if (c >= '0' && c <= '9') return c - '0';
    if (c >= 'a' && c <= 'f') return c - 'a' + 10;
    if (c >= 'A' && c <= 'F') return c - 'A' + 10;
    return -1;
  };
  for (std::size_t i = 0; i < 32; ++i) {
    int h = nib(hex[2 * i]), l = nib(hex[2 * i + 1]);
    if (h < 0 || l < 0) return false;
    out[i] = static_cast<std::uint8_t>(h << 4 | l);
  }
  return true;
}

}  // namespace moongate::derp
