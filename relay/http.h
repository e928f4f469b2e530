// The relay's HTTP/1.1 side, I/O-free: one request's head in, a decision
// and the response bytes out.
//
//   /derp                 Upgrade: DERP -> 101 (or nothing, with
//                         Derp-Fast-Start: 1) and the DERP stream starts;
//                         Upgrade: websocket with the "derp" subprotocol ->
//                         101 and DERP inside WebSocket (websocket.h);
//                         no or another upgrade -> 426
//   /derp/probe           GET/HEAD -> 200, Access-Control-Allow-Origin: *
//   /derp/latency-check   same; other methods 405
//   /generate_204         204, no-cache; X-Tailscale-Challenge (<= 64 chars
//                         of [A-Za-z0-9._:-]) echoed as
//                         X-Tailscale-Response: response <challenge>
//   /debug/varz           Prometheus text, loopback clients only
//   /debug/vars           the same counters as JSON (debug_vars.h), loopback only
//   /bootstrap-dns        derper's name -> addresses JSON (bootstrap_dns.h),
//                         any client, `?q=NAME` kept in Request::query
//   /, /robots.txt        small fixed pages; anything else 404
// Every response but the upgrade closes the connection.
#pragma once

#include <cstddef>
#include <string>
#include <string_view>

namespace moongate::relay {

// Largest request head accepted; longer heads get 431 and a close.
inline constexpr std::size_t kMaxRequestHead = 8192;

struct Request {
  std::string method;
  std::string path;   // without the query string
  std::string query;  // after the '?', undecoded
  std::string upgrade;
  std::string challenge;
  bool fast_start = false;
  std::string ws_protocol;  // Sec-WebSocket-Protocol
  std::string ws_key;       // Sec-WebSocket-Key
};

enum class Parse { kIncomplete, kDone, kBad, kTooLarge };
// Parses the head at the start of `in`; on kDone `head_len` is where the
// body (for /derp: the client's first DERP bytes) starts.
Parse parse_request(std::string_view in, Request& out, std::size_t& head_len);

enum class Action { kRespond, kUpgradeDerp, kUpgradeWebSocket, kVarz, kVars, kBootstrapDns };
struct Response {
  Action action = Action::kRespond;
  std::string bytes;  // the response (empty for a fast-start upgrade)
};

// Decides what to answer. `server_key_hex` goes into Derp-Public-Key;
// `local` says the client is on loopback (debug pages). For kVarz and
// kVars the caller renders the metrics and wraps them with varz_response()
// or vars_response(); for kBootstrapDns it asks BootstrapDns::respond().
Response route(const Request& r, std::string_view server_key_hex, bool local);
std::string varz_response(std::string_view body);
std::string simple_response(int status, std::string_view reason, std::string_view body);

bool valid_challenge(std::string_view c) noexcept;

}  // namespace moongate::relay
