// ARP for IPv4 over Ethernet (RFC 826): parse requests and replies, answer
// a request for one of our addresses, ask who-has.
//
// parse_arp validates: at least 28 bytes; hardware type 1 (Ethernet),
// protocol type 0x0800, address lengths 6 and 4; opcode request or reply;
// a unicast sender MAC (a group or zero sender address would poison the
// neighbour table). The sender IP may be 0.0.0.0 (RFC 5227 probe). Whether
// the request is for us, and whether to learn the sender, is the caller's
// decision.
//
// Builders write whole Ethernet frames of kArpFrameLen = 60 bytes: the
// 42 bytes of header and ARP, zero-padded to the Ethernet minimum, because
// not every DPDK PMD pads short frames in hardware. The caller's buffer
// must hold 60 bytes.
#pragma once

#include <cstddef>
#include <cstdint>

#include "dataplane/net/address.h"
#include "dataplane/net/ethernet.h"

namespace moongate::net {

inline constexpr std::size_t kArpLen = 28;       // the ARP packet after the Ethernet header
inline constexpr std::size_t kArpFrameLen = 60;  // what the builders write (42 + padding)

enum class ArpOp : std::uint16_t { kRequest = 1, kReply = 2 };

struct ArpPacket {
  ArpOp op = ArpOp::kRequest;
  MacAddress sender_mac;
  Ipv4Address sender_ip{};
  MacAddress target_mac;  // zero or ignored in requests
  Ipv4Address target_ip{};
};

// `p` is the ARP packet after the Ethernet header (VLAN tag), `len` what is
// left of the frame; trailing padding is ignored.
bool parse_arp(const std::uint8_t* p, std::size_t len, ArpPacket& out) noexcept;

// Answers `request` when it is a request for `our_ip`: unicast to the
// requester, "our_ip is at our_mac". Returns 60, or 0 (nothing to send) when
// it is not such a request or cap < 60.
std::size_t build_arp_reply(std::uint8_t* out, std::size_t cap, const ArpPacket& request,
                            const MacAddress& our_mac, const Ipv4Address& our_ip) noexcept;

// Broadcast "who has target_ip, tell our_ip" (target MAC zero, RFC 5227).
// With target_ip == our_ip it is a gratuitous ARP announcement. Returns 60,
// or 0 when cap < 60.
std::size_t build_arp_request(std::uint8_t* out, std::size_t cap, const MacAddress& our_mac,
                              const Ipv4Address& our_ip, const Ipv4Address& target_ip) noexcept;

}  // namespace moongate::net
