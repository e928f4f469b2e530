// STUN on the relay: stun/ answering on a UdpService socket.
#pragma once

#include <array>
#include <atomic>
#include <cstring>

#include "relay/udp_service.h"
#include "stun/stun.h"

namespace moongate::relay {

class StunService final : public UdpService {
 public:
  void on_datagram(std::span<const std::uint8_t> d, const sockaddr_storage& from, socklen_t from_len,
                   std::uint64_t, UdpOut& out) override {
    stun::Request req;
    const stun::Drop drop = stun::parse(d, req);
    if (drop != stun::Drop::kNone) {
      ++dropped_;
      return;
    }
    stun::Address a;
    if (from.ss_family == AF_INET) {
      const auto& s4 = reinterpret_cast<const sockaddr_in&>(from);
      a.ip[10] = a.ip[11] = 0xff;
      std::memcpy(a.ip.data() + 12, &s4.sin_addr, 4);
      a.port = ntohs(s4.sin_port);
    } else if (from.ss_family == AF_INET6) {
      const auto& s6 = reinterpret_cast<const sockaddr_in6&>(from);
      std::memcpy(a.ip.data(), &s6.sin6_addr, 16);
      a.port = ntohs(s6.sin6_port);
    } else {
      ++dropped_;
      return;
    }
    std::uint8_t reply[stun::kMaxReply];
    const std::size_t n = stun::respond(req, a, reply);
    ++(req.kind == stun::Kind::kTailscale ? tailscale_ : standard_);
    if (!out.send({reply, n}, from, from_len)) ++dropped_;
  }
  void metrics(std::string& out, unsigned shard) const override {
    const std::string l = "{shard=\"" + std::to_string(shard) + "\"}";
    out += "moongate_relay_stun_tailscale_total" + l + " " + std::to_string(tailscale_.load()) + "\n";
    out += "moongate_relay_stun_standard_total" + l + " " + std::to_string(standard_.load()) + "\n";
    out += "moongate_relay_stun_dropped_total" + l + " " + std::to_string(dropped_.load()) + "\n";
  }

 private:
  // Written by the owning shard only; atomics so /debug/varz on another
  // shard reads them without a race.
  std::atomic<std::uint64_t> tailscale_{0}, standard_{0}, dropped_{0};
};

}  // namespace moongate::relay
