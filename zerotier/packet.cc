// Packet header writing and hop counting (see packet.h for the layout).
#include "zerotier/packet.h"

namespace moongate::zerotier {

std::size_t write_header(std::uint8_t* out, std::uint64_t packet_id, Address dest, Address source,
                         Verb verb) noexcept {
  store_be64(out, packet_id);
  store_address(out + kIdxDest, dest);
  store_address(out + kIdxSource, source);
  out[kIdxFlags] = 0;
  std::memset(out + kIdxMac, 0, 8);
  out[kIdxVerb] = static_cast<std::uint8_t>(verb);
  return kIdxPayload;
}

bool increment_hops(std::span<std::uint8_t> d, unsigned max_hops) noexcept {
  // The hop count is the one header field a relay may change: it is left
  // out of the per-packet key (flags are mangled with & 0xf8), so the MAC
  // still holds at the destination.
  const std::size_t idx = is_fragment(d) ? kFragIdxHops : kIdxFlags;
  if (d.size() <= idx) return false;
  const unsigned hops = d[idx] & kHopsMask;
  if (hops >= max_hops) return false;
  d[idx] = static_cast<std::uint8_t>((d[idx] & ~kHopsMask) | (hops + 1));
  return true;
}

}  // namespace moongate::zerotier
