// A DPDK port with a role: `wan` carries WireGuard over UDP, `lan` is the
// site's subnet, `kernel` is the TAP of a wan/lan port's exception path
// (kernel_interface.h). Opened from a PCI address or a vdev string, one RX
// and one TX queue per worker lcore.
#pragma once

#include <rte_byteorder.h>
#include <rte_ether.h>

#include <array>
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <string>
#include <vector>

struct rte_mempool;

namespace moongate::dp {

enum class PortRole : std::uint8_t { kWan, kLan, kKernel };

inline constexpr std::size_t kNoPort = static_cast<std::size_t>(-1);

struct Ipv4Iface {
  std::uint32_t addr = 0;  // network byte order
  std::uint8_t prefix_len = 0;
  std::uint32_t mask() const noexcept {  // network byte order
    return prefix_len == 0 ? 0 : rte_cpu_to_be_32(~std::uint32_t{0} << (32 - prefix_len));
  }
  bool contains(std::uint32_t ip) const noexcept { return ((ip ^ addr) & mask()) == 0; }
};

using Ipv6Bytes = std::array<std::uint8_t, 16>;

struct Ipv6Iface {
  Ipv6Bytes addr{};
  std::uint8_t prefix_len = 0;
  bool contains(const std::uint8_t* ip) const noexcept {
    const unsigned full = prefix_len / 8, rest = prefix_len % 8;
    if (std::memcmp(ip, addr.data(), full) != 0) return false;
    if (rest == 0) return true;
    const std::uint8_t mask = static_cast<std::uint8_t>(0xff << (8 - rest));
    return ((ip[full] ^ addr[full]) & mask) == 0;
  }
};

struct Port {
  std::string name;
  PortRole role = PortRole::kLan;
  std::string device;  // PCI address or vdev string
  std::uint16_t id = 0;
  rte_ether_addr mac{};
  std::vector<Ipv4Iface> v4;
  std::uint32_t gateway_v4 = 0;  // 0 = none
  std::vector<Ipv6Iface> v6;
  Ipv6Bytes gateway_v6{};
  bool has_gateway_v6 = false;
  std::uint16_t mtu = 1500;
  // Exception path: the TAP port (index in the port list) that gets what is
  // addressed to this port and not answered by the data plane; for a TAP,
  // the port it belongs to.
  std::string kernel_interface;
  std::size_t kernel = kNoPort;
  std::size_t parent = kNoPort;

  bool owns(std::uint32_t ip) const noexcept {
    for (const auto& a : v4)
      if (a.addr == ip) return true;
    return false;
  }
  // The next hop for dst out of this port: dst itself when on-link, else the
  // gateway (0 when there is none).
  std::uint32_t next_hop(std::uint32_t dst) const noexcept {
    for (const auto& a : v4)
      if (a.contains(dst)) return dst;
    return gateway_v4;
  }
  std::uint32_t primary_v4() const noexcept { return v4.empty() ? 0 : v4.front().addr; }

  bool owns_v6(const std::uint8_t* ip) const noexcept {
    for (const auto& a : v6)
      if (std::memcmp(a.addr.data(), ip, 16) == 0) return true;
    return false;
  }
  bool on_link_v6(const std::uint8_t* ip) const noexcept {
    for (const auto& a : v6)
      if (a.contains(ip)) return true;
    return false;
  }
};

// The largest Ethernet frame a port of this MTU carries: header, two VLAN
// tags (QinQ), CRC.
constexpr std::uint32_t max_frame_size(std::uint16_t mtu) noexcept { return mtu + 14u + 2u * 4u + 4u; }

// The mbuf data room (headroom included) the ports' MTUs need. Every
// packet is one segment (the crypto and the header rewrites work on
// contiguous data), so a jumbo port makes every buffer jumbo-sized; the
// tail keeps room for WireGuard's padding and tag when a LAN frame is
// encrypted in place. Never less than DPDK's default (2 KiB + headroom).
std::uint16_t mbuf_data_room(const std::vector<Port>& ports) noexcept;

// Probes the device (hot-plugging a vdev if needed), configures `queues`
// RX/TX queue pairs with the port's MTU, starts it. Returns an error
// message, empty on success. A device that cannot take the MTU is an
// error naming its limit, except the exception path's TAP (kKernel),
// whose MTU is lowered to what the TAP PMD takes (port.mtu says what it
// got): the kernel's own traffic then uses the smaller MTU.
std::string open_port(Port& port, std::uint16_t queues, rte_mempool* pool);

}  // namespace moongate::dp
