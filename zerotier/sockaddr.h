// zerotier::Endpoint <-> the kernel's sockaddr, for the hosts that put the
// moon on a socket (UdpHost, moongate-relay's MoonService).
#pragma once

#include <sys/socket.h>

#include "zerotier/wire.h"

namespace moongate::zerotier {

// A v4-mapped source on a dual-stack socket comes back as an IPv4 Endpoint,
// the address the client itself knows (RENDEZVOUS and OK(HELLO) show it).
// An unknown family gives family 0.
Endpoint from_sockaddr(const sockaddr_storage& ss) noexcept;
// For a socket of `socket_family` (AF_INET, or AF_INET6 which also reaches
// IPv4 peers through v4-mapped addresses); 0 when it cannot (an IPv6
// destination on an IPv4 socket, an empty Endpoint).
socklen_t to_sockaddr(const Endpoint& e, int socket_family, sockaddr_storage& ss) noexcept;

}  // namespace moongate::zerotier
