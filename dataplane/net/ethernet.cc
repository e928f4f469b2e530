// Ethernet II header parsing and writing (see ethernet.h).
#include "dataplane/net/ethernet.h"

#include "dataplane/net/bytes.h"

namespace moongate::net {

void MacAddress::format(char (&out)[18]) const noexcept {
  static constexpr char kHex[] = "0123456789abcdef";
  for (std::size_t i = 0; i < 6; ++i) {
    out[3 * i] = kHex[octets[i] >> 4];
    out[3 * i + 1] = kHex[octets[i] & 0x0f];
    out[3 * i + 2] = i == 5 ? '\0' : ':';
  }
}

std::string MacAddress::to_string() const {
  char buf[18];
  format(buf);
  return std::string(buf);
}

bool parse_ethernet(const std::uint8_t* frame, std::size_t len, EthernetHeader& out) noexcept {
  if (len < kEthernetHeaderLen) return false;
  out.dst = MacAddress::load(frame);
  out.src = MacAddress::load(frame + 6);
  std::uint16_t type = load_be16(frame + 12);
  if (type == kEtherTypeVlan) {
    if (len < kEthernetHeaderLen + kVlanTagLen) return false;
    out.has_vlan = true;
    out.vlan_tci = load_be16(frame + 14);
    out.ethertype = load_be16(frame + 16);
    out.header_len = kEthernetHeaderLen + kVlanTagLen;
  } else {
    out.has_vlan = false;
    out.vlan_tci = 0;
    out.ethertype = type;
    out.header_len = kEthernetHeaderLen;
  }
  return true;
}

std::size_t write_ethernet(std::uint8_t* out, std::size_t cap, const MacAddress& dst,
                           const MacAddress& src, std::uint16_t ethertype) noexcept {
  if (cap < kEthernetHeaderLen) return 0;
  dst.store(out);
  src.store(out + 6);
  store_be16(out + 12, ethertype);
  return kEthernetHeaderLen;
}

bool swap_ethernet_addresses(std::uint8_t* frame, std::size_t len) noexcept {
  if (len < 12) return false;
  std::uint8_t tmp[6];
  std::memcpy(tmp, frame, 6);
  std::memmove(frame, frame + 6, 6);
  std::memcpy(frame + 6, tmp, 6);
  return true;
}

}  // namespace moongate::net
