// libFuzzer target: the NAT44 core (nat/) on arbitrary IPv4 packets, both
// directions, against one long-lived table that holds a UDP, a TCP and an
// ICMP echo flow (so inputs can hit real mappings, as return traffic and
// ICMP errors would).
//
// Input: data[0] bit 0 picks the direction (0 outbound, 1 inbound), bits
// 1-3 advance the manual clock (0..7 s) and run expiry first; the rest is
// the packet, copied to a heap buffer of exactly its size so ASan sees any
// read or write past it.
//
// Oracles (abort on violation): a verdict other than kTranslated leaves the
// packet untouched; a translated packet still has a valid IPv4 header
// (parse_ipv4, checksum included) and keeps its length; kHandOff names
// another lcore; the table never holds more flows than its capacity.
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <memory>
#include <vector>

#include "dataplane/net/checksum.h"
#include "dataplane/net/ipv4.h"
#include "nat/nat44.h"

using namespace moongate;

namespace {

constexpr std::uint64_t kS = nat::kNanosPerSecond;
std::uint64_t g_now = 1000 * kS;

void put16(std::uint8_t* p, unsigned v) {
  p[0] = static_cast<std::uint8_t>(v >> 8);
  p[1] = static_cast<std::uint8_t>(v);
}

std::vector<std::uint8_t> packet(std::uint8_t proto, const std::uint8_t src[4], const std::uint8_t dst[4],
                                 const std::vector<std::uint8_t>& l4) {
  std::vector<std::uint8_t> p(20 + l4.size());
  p[0] = 0x45;
  put16(&p[2], static_cast<unsigned>(p.size()));
  p[8] = 64;
  p[9] = proto;
  std::memcpy(&p[12], src, 4);
  std::memcpy(&p[16], dst, 4);
  put16(&p[10], net::internet_checksum(p.data(), 20));
  std::memcpy(&p[20], l4.data(), l4.size());
  return p;
}

nat::Nat44& instance() {
  static nat::Nat44* n = [] {
    nat::Nat44Config c;
    c.pool = {{203, 0, 113, 1}};
    c.lcores = 2;
    c.max_flows = 64;
    c.reserved_ports = {51820};
    auto* nat = new nat::Nat44(c, 0, g_now);
    const std::uint8_t in[4] = {10, 0, 0, 2}, remote[4] = {198, 51, 100, 7};
    std::vector<std::vector<std::uint8_t>> seeds = {
        packet(17, in, remote, {0x13, 0x88, 0x00, 0x35, 0x00, 0x08, 0x00, 0x00}),
        packet(6, in, remote, {0x9c, 0x40, 0x01, 0xbb, 0, 0, 0, 1, 0, 0, 0, 0, 0x50, 0x02, 0xff, 0xff, 0, 0, 0, 0}),
        packet(1, in, remote, {8, 0, 0xf7, 0xfe, 0x00, 0x01, 0x00, 0x00}),
    };
    for (auto& p : seeds) nat->translate(p.data(), p.size(), nat::Direction::kOutbound, g_now);
    return nat;
  }();
  return *n;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  if (size < 1) return 0;
  nat::Nat44& n = instance();
  const auto dir = (data[0] & 1) ? nat::Direction::kInbound : nat::Direction::kOutbound;
  const unsigned step = (data[0] >> 1) & 7;
  if (step != 0) {
    g_now += step * kS;
    n.expire(g_now, 16);
  }
  const std::size_t len = size - 1;
  std::unique_ptr<std::uint8_t[]> buf(new std::uint8_t[len == 0 ? 1 : len]);
  std::memcpy(buf.get(), data + 1, len);
  n.prefetch(buf.get(), len, dir);
  n.prefetch_flow(buf.get(), len, dir);
  const nat::Result r = n.translate(buf.get(), len, dir, g_now);
  if (r.verdict != nat::Verdict::kTranslated) {
    if (std::memcmp(buf.get(), data + 1, len) != 0) std::abort();
  } else {
    net::Ipv4Header h;
    if (net::parse_ipv4(buf.get(), len, h) != net::Ipv4Status::kOk) std::abort();
  }
  if (r.verdict == nat::Verdict::kHandOff && r.owner != 1) std::abort();
  if (n.flow_count() > n.flows().capacity()) std::abort();
  return 0;
}
