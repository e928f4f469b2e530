// The WireGuard cross-platform userspace API (what `wg` speaks to
// wireguard-go over /var/run/wireguard/<interface>.sock), I/O-free: one
// request's text in, the response text out, the netmap changed in place.
//
//   get=1            -> private_key, listen_port, fwmark, then per peer:
//                       public_key, preshared_key, protocol_version, endpoint,
//                       last_handshake_time_sec/_nsec, tx_bytes, rx_bytes,
//                       persistent_keepalive_interval, allowed_ip...
//   set=1 + lines    -> device keys (private_key, listen_port, fwmark,
//                       replace_peers), then peer sections opened by
//                       public_key (update_only, remove, preshared_key,
//                       endpoint, persistent_keepalive_interval,
//                       replace_allowed_ips, allowed_ip, protocol_version)
//   every response ends "errno=N\n\n" (0, or a negative errno: -EINVAL for a
//   bad line, -ENOSPC past max_peers, -EPROTO for an unknown operation).
//
// Keys are hex here. A set is applied to a copy and committed only when
// every line was valid, so a bad request changes nothing. As in the Linux
// module and wireguard-go, an allowed IP given to one peer is taken from any
// other peer that had exactly that prefix.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>

#include "control/runtime.h"
#include "netmap/netmap.h"

namespace moongate::control {

// Keys as the UAPI writes them: 64 lower-case hex digits (wg's own output
// is base64; the socket is hex).
std::string key_hex(const std::uint8_t key[32]);
// false (out untouched) unless `s` is exactly 64 hex digits.
bool key_unhex(std::string_view s, std::uint8_t out[32]) noexcept;

struct UapiResult {
  std::string response;
  bool changed = false;  // a set that modified the netmap (publish and persist it)
  std::string error;     // for the log when the request failed
};

class Uapi {
 public:
  explicit Uapi(std::uint32_t max_peers) : max_peers_(max_peers) {}

  // `request` is one whole request including its terminating blank line.
  UapiResult handle(std::string_view request, netmap::Netmap& netmap, const RuntimeTable& runtime);

  std::uint32_t fwmark() const noexcept { return fwmark_; }

 private:
  std::string get(const netmap::Netmap& n, const RuntimeTable& runtime) const;
  // "" or why the set was refused; errno_out gets the negative errno.
  std::string set(std::string_view body, netmap::Netmap& n, int& errno_out);

  std::uint32_t max_peers_;
  std::uint32_t fwmark_ = 0;  // accepted and reported; the data plane has no use for it
};

}  // namespace moongate::control
