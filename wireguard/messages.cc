// Message classification and the names of drop reasons.
#include "wireguard/messages.h"

#include <arpa/inet.h>

#include <cstdio>
#include <string>

#include "wireguard/endpoint.h"

namespace moongate::wg {

const char* drop_name(Drop d) noexcept {
  switch (d) {
#define MOONGATE_X(name, str) \
  case Drop::name:            \
    return str;
    MOONGATE_WG_DROP_REASONS(MOONGATE_X)
#undef MOONGATE_X
    case Drop::kCount:
      break;
  }
  return "unknown";
}

std::string Endpoint::to_string() const {
  // snprintf rather than string concatenation: GCC 12 at -O3 reports a
  // false -Wrestrict inside std::string's operator+.
  char ip[INET6_ADDRSTRLEN] = {};
  char out[INET6_ADDRSTRLEN + 16] = {};
  if (family == 4 && inet_ntop(AF_INET, addr, ip, sizeof ip))
    std::snprintf(out, sizeof out, "%s:%u", ip, static_cast<unsigned>(port));
  else if (family == 6 && inet_ntop(AF_INET6, addr, ip, sizeof ip))
    std::snprintf(out, sizeof out, "[%s]:%u", ip, static_cast<unsigned>(port));
  else
    return "(none)";
  return out;
}

}  // namespace moongate::wg
