// JSON strings as Go's encoding/json writes them (derper's /bootstrap-dns
// and expvar's /debug/vars are Go's output; ours match byte for byte):
// quotes and backslashes escaped, \n \r \t short, other control characters
// and the HTML-sensitive <, > and & as \u00XX (Go's HTML-safe default).
#pragma once

#include <string>
#include <string_view>

namespace moongate::relay {

inline void json_string(std::string& out, std::string_view s) {
  static constexpr char kHex[] = "0123456789abcdef";
  out += '"';
  for (const char ch : s) {
    const auto c = static_cast<unsigned char>(ch);
    if (c == '"' || c == '\\') {
      out += '\\';
      out += ch;
    } else if (c == '\n') {
      out += "\\n";
    } else if (c == '\r') {
      out += "\\r";
    } else if (c == '\t') {
      out += "\\t";
    } else if (c < 0x20 || c == '<' || c == '>' || c == '&') {
      out += "\\u00";
      out += kHex[c >> 4];
      out += kHex[c & 15];
    } else {
      out += ch;
    }
  }
  out += '"';
}

}  // namespace moongate::relay
