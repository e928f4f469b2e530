// Endpoint <-> sockaddr (sockaddr.h).
#include "zerotier/sockaddr.h"

#include <arpa/inet.h>
#include <netinet/in.h>

#include <cstring>

namespace moongate::zerotier {

Endpoint from_sockaddr(const sockaddr_storage& ss) noexcept {
  Endpoint e;
  if (ss.ss_family == AF_INET) {
    const auto* s4 = reinterpret_cast<const sockaddr_in*>(&ss);
    e.family = 4;
    std::memcpy(e.ip.data(), &s4->sin_addr, 4);
    e.port = ntohs(s4->sin_port);
  } else if (ss.ss_family == AF_INET6) {
    const auto* s6 = reinterpret_cast<const sockaddr_in6*>(&ss);
    // A v4-mapped source on the dual-stack socket is an IPv4 peer: keep it
    // IPv4 so RENDEZVOUS and OK(HELLO) show the address the client knows.
    if (IN6_IS_ADDR_V4MAPPED(&s6->sin6_addr)) {
      e.family = 4;
      std::memcpy(e.ip.data(), s6->sin6_addr.s6_addr + 12, 4);
    } else {
      e.family = 6;
      std::memcpy(e.ip.data(), &s6->sin6_addr, 16);
    }
    e.port = ntohs(s6->sin6_port);
  }
  return e;
}

socklen_t to_sockaddr(const Endpoint& e, int socket_family, sockaddr_storage& ss) noexcept {
  std::memset(&ss, 0, sizeof ss);
  if (socket_family == AF_INET) {
    if (e.family != 4) return 0;
    auto* s4 = reinterpret_cast<sockaddr_in*>(&ss);
    s4->sin_family = AF_INET;
    std::memcpy(&s4->sin_addr, e.ip.data(), 4);
    s4->sin_port = htons(e.port);
    return sizeof(sockaddr_in);
  }
  auto* s6 = reinterpret_cast<sockaddr_in6*>(&ss);
  s6->sin6_family = AF_INET6;
  if (e.family == 4) {
    s6->sin6_addr.s6_addr[10] = 0xff;
    s6->sin6_addr.s6_addr[11] = 0xff;
    std::memcpy(s6->sin6_addr.s6_addr + 12, e.ip.data(), 4);
  } else if (e.family == 6) {
    std::memcpy(&s6->sin6_addr, e.ip.data(), 16);
  } else {
    return 0;
  }
  s6->sin6_port = htons(e.port);
  return sizeof(sockaddr_in6);
}

}  // namespace moongate::zerotier
