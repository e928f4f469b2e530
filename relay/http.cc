// HTTP request head parsing and the relay's routes (see http.h).
#include "relay/http.h"

#include <cctype>

#include "relay/websocket.h"

namespace moongate::relay {
namespace {

bool iequals(std::string_view a, std::string_view b) {
  if (a.size() != b.size()) return false;
  for (std::size_t i = 0; i < a.size(); ++i)
    if (std::tolower(static_cast<unsigned char>(a[i])) != std::tolower(static_cast<unsigned char>(b[i])))
      return false;
  return true;
}

std::string_view trim(std::string_view s) {
  while (!s.empty() && (s.front() == ' ' || s.front() == '\t')) s.remove_prefix(1);
  while (!s.empty() && (s.back() == ' ' || s.back() == '\t' || s.back() == '\r')) s.remove_suffix(1);
  return s;
}

constexpr std::string_view kNoCache =
    "Cache-Control: no-cache, no-store, must-revalidate, no-transform, max-age=0\r\n";

}  // namespace

bool valid_challenge(std::string_view c) noexcept {
  if (c.empty() || c.size() > 64) return false;
  for (char ch : c)
    if (!std::isalnum(static_cast<unsigned char>(ch)) && ch != '.' && ch != '_' && ch != ':' &&
        ch != '-')
      return false;
  return true;
}

Parse parse_request(std::string_view in, Request& out, std::size_t& head_len) {
  const std::size_t end = in.find("\r\n\r\n");
  if (end == std::string_view::npos) return in.size() > kMaxRequestHead ? Parse::kTooLarge : Parse::kIncomplete;
  if (end + 4 > kMaxRequestHead) return Parse::kTooLarge;
  head_len = end + 4;
  out = Request{};
  std::string_view head = in.substr(0, end);
  std::size_t eol = head.find("\r\n");
  std::string_view line = head.substr(0, eol);
  // request line: METHOD SP target SP HTTP/1.x
  const std::size_t sp1 = line.find(' ');
  const std::size_t sp2 = line.rfind(' ');
  if (sp1 == std::string_view::npos || sp2 == sp1) return Parse::kBad;
  if (line.substr(sp2 + 1).substr(0, 7) != "HTTP/1.") return Parse::kBad;
  out.method = std::string(line.substr(0, sp1));
  std::string_view target = line.substr(sp1 + 1, sp2 - sp1 - 1);
  if (target.empty() || target.front() != '/') return Parse::kBad;
  const std::size_t question = target.find('?');
  out.path = std::string(target.substr(0, question));
  if (question != std::string_view::npos) out.query = std::string(target.substr(question + 1));
  for (char c : out.method)
    if (!std::isupper(static_cast<unsigned char>(c))) return Parse::kBad;
  while (eol != std::string_view::npos) {
    head.remove_prefix(eol + 2);
    eol = head.find("\r\n");
    line = head.substr(0, eol);
    const std::size_t colon = line.find(':');
    if (colon == std::string_view::npos || colon == 0) return Parse::kBad;
    const std::string_view name = line.substr(0, colon);
    const std::string_view value = trim(line.substr(colon + 1));
    if (iequals(name, "Upgrade")) out.upgrade = std::string(value);
    else if (iequals(name, "Derp-Fast-Start")) out.fast_start = value == "1";
    else if (iequals(name, "X-Tailscale-Challenge")) out.challenge = std::string(value);
    else if (iequals(name, "Sec-WebSocket-Protocol")) out.ws_protocol = std::string(value);
    else if (iequals(name, "Sec-WebSocket-Key")) out.ws_key = std::string(value);
  }
  return Parse::kDone;
}

std::string simple_response(int status, std::string_view reason, std::string_view body) {
  std::string s = "HTTP/1.1 " + std::to_string(status) + " " + std::string(reason) + "\r\n";
  s += "Content-Type: text/plain; charset=utf-8\r\nConnection: close\r\n";
  s += "Content-Length: " + std::to_string(body.size()) + "\r\n\r\n";
  s += body;
  return s;
}

std::string varz_response(std::string_view body) {
  std::string s = "HTTP/1.1 200 OK\r\nContent-Type: text/plain; version=0.0.4\r\nConnection: close\r\n";
  s += "Content-Length: " + std::to_string(body.size()) + "\r\n\r\n";
  s += body;
  return s;
}

Response route(const Request& r, std::string_view server_key_hex, bool local) {
  Response out;
  const bool get_or_head = r.method == "GET" || r.method == "HEAD";
  if (r.path == "/derp") {
    if (iequals(r.upgrade, "websocket")) {
      // The subprotocol list is comma-separated; "derp" must be offered.
      bool derp = false;
      std::string_view list = r.ws_protocol;
      while (!list.empty()) {
        const std::size_t comma = list.find(',');
        derp |= trim(list.substr(0, comma)) == "derp";
        list = comma == std::string_view::npos ? std::string_view() : list.substr(comma + 1);
      }
      if (!derp || r.ws_key.empty() || r.method != "GET") {
        out.bytes = simple_response(426, "Upgrade Required",
                                    "client must speak the derp subprotocol over WebSocket");
        return out;
      }
      out.action = Action::kUpgradeWebSocket;
      out.bytes = "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
                  "Sec-WebSocket-Accept: " + ws_accept(r.ws_key) +
                  "\r\nSec-WebSocket-Protocol: derp\r\n\r\n";
      return out;
    }
    if (!iequals(r.upgrade, "derp")) {
      out.bytes = simple_response(426, "Upgrade Required", "DERP requires connection upgrade");
      return out;
    }
    out.action = Action::kUpgradeDerp;
    if (!r.fast_start) {
      out.bytes = "HTTP/1.1 101 Switching Protocols\r\nUpgrade: DERP\r\nConnection: Upgrade\r\n"
                  "Derp-Version: 2\r\nDerp-Public-Key: ";
      out.bytes += server_key_hex;
      out.bytes += "\r\n\r\n";
    }
    return out;
  }
  if (r.path == "/derp/probe" || r.path == "/derp/latency-check") {
    if (!get_or_head) {
      out.bytes = simple_response(405, "Method Not Allowed", "bogus probe method\n");
      return out;
    }
    out.bytes = "HTTP/1.1 200 OK\r\nAccess-Control-Allow-Origin: *\r\nConnection: close\r\n"
                "Content-Length: 0\r\n\r\n";
    return out;
  }
  if (r.path == "/generate_204") {
    out.bytes = "HTTP/1.1 204 No Content\r\n";
    out.bytes += kNoCache;
    if (valid_challenge(r.challenge))
      out.bytes += "X-Tailscale-Response: response " + r.challenge + "\r\n";
    out.bytes += "Connection: close\r\n\r\n";
    return out;
  }
  if (r.path == "/debug/varz" || r.path == "/debug/vars") {
    if (!local) {
      out.bytes = simple_response(403, "Forbidden", "debug access denied\n");
      return out;
    }
    out.action = r.path == "/debug/varz" ? Action::kVarz : Action::kVars;
    return out;
  }
  if (r.path == "/bootstrap-dns") {
    out.action = Action::kBootstrapDns;
    return out;
  }
  if (r.path == "/robots.txt") {
    out.bytes = simple_response(200, "OK", "User-agent: *\nDisallow: /\n");
    return out;
  }
  if (r.path == "/") {
    out.bytes = simple_response(200, "OK",
                                "moongate-relay: a DERP relay and STUN server for Tailscale "
                                "clients.\n");
    return out;
  }
  out.bytes = simple_response(404, "Not Found", "not found\n");
  return out;
}

}  // namespace moongate::relay
