// Every entry point over random mutations and truncations of the known
// packets, in exact-size heap buffers: under ASan this shows that nothing
// reads or writes outside the lengths it is given. Builders are run with
// every capacity around their output size for the same reason.
#include <gtest/gtest.h>

#include <random>

#include "dataplane/net/arp.h"
#include "dataplane/net/ethernet.h"
#include "dataplane/net/icmp.h"
#include "dataplane/net/ipv4.h"
#include "dataplane/net/ipv6.h"
#include "dataplane/net/ndp.h"
#include "dataplane/net/tcp_mss.h"
#include "dataplane/net/udp.h"
#include "tests/unit/net/packet_util.h"
#include "tests/unit/net/vectors.h"

namespace moongate::net {
namespace {

using test::Bytes;
using test::hex;

const MacAddress kMac{{2, 0, 0, 0, 0, 9}};
const Ipv4Address kIp4 = test::v4(10, 7, 0, 3);
const Ipv6Address kIp6 = test::v6("fd00 0000 0000 0000 0000 0000 0000 0003");

// Runs every consumer on one frame (each on its own exact copy).
void run_everything(const Bytes& frame) {
  EthernetHeader eth;
  {
    test::Exact e(frame);
    if (!parse_ethernet(e.data(), e.size(), eth)) return;
  }
  const std::size_t l2 = eth.header_len;
  const std::size_t n = frame.size() - l2;
  auto l3 = [&] { return test::Exact(frame.data() + l2, n); };
  std::uint8_t out[1600];

  {
    test::Exact e = l3();
    ArpPacket a;
    if (parse_arp(e.data(), n, a)) {
      test::Exact reply(out, kArpFrameLen);
      (void)build_arp_reply(reply.data(), reply.size(), a, kMac, a.target_ip);
    }
  }
  {
    test::Exact e = l3();
    Ipv4Header h;
    if (parse_ipv4(e.data(), n, h) == Ipv4Status::kOk && h.protocol == 17) {
      UdpHeader u;
      if (parse_udp(e.data() + h.header_len, h.payload_len(), u) == UdpStatus::kOk) {
        (void)udp_checksum_valid_v4(e.data() + h.header_len, u.length, h.src, h.dst);
      }
    }
  }
  {
    test::Exact e = l3();
    Ipv6Header h;
    if (parse_ipv6(e.data(), n, h) == Ipv6Status::kOk && h.protocol == 17 && h.fragment_offset == 0) {
      UdpHeader u;
      if (parse_udp(e.data() + h.l4_offset, h.l4_len(), u) == UdpStatus::kOk) {
        (void)udp_checksum_valid_v6(e.data() + h.l4_offset, u.length, h.src, h.dst);
      }
    }
  }
  {
    test::Exact e = l3();
    NeighborSolicitation ns;
    if (parse_neighbor_solicitation(e.data(), n, ns)) {
      test::Exact reply(out, kNdpFrameLen);
      (void)build_na_reply(reply.data(), reply.size(), ns, eth.src, kMac, ns.target, true);
    }
    NeighborAdvertisement na;
    (void)parse_neighbor_advertisement(e.data(), n, na);
  }
  { test::Exact e = l3(); (void)icmpv4_echo_to_reply(e.data(), n); }
  { test::Exact e = l3(); (void)icmpv6_echo_to_reply(e.data(), n); }
  { test::Exact e = l3(); (void)clamp_tcp_mss_ipv4(e.data(), n, 1000); }
  { test::Exact e = l3(); (void)clamp_tcp_mss_ipv6(e.data(), n, 1000); }
  { test::Exact e = l3(); (void)clamp_tcp_mss(e.data(), n, 1000); }
  { test::Exact e = l3(); (void)ipv4_decrement_ttl(e.data(), n); }
  { test::Exact e = l3(); (void)ipv6_decrement_hop_limit(e.data(), n); }
  {
    test::Exact e = l3();
    const std::size_t cap = 28 + (frame.size() * 7) % 600;
    test::Exact o(out, cap);
    std::size_t w = build_icmpv4_frag_needed(o.data(), cap, e.data(), n, kIp4, 1280);
    EXPECT_LE(w, cap);
    w = build_icmpv4_time_exceeded(o.data(), cap, e.data(), n, kIp4);
    EXPECT_LE(w, cap);
    w = build_icmpv6_packet_too_big(o.data(), cap, e.data(), n, kIp6, 1280);
    EXPECT_LE(w, cap);
    w = build_icmpv6_time_exceeded(o.data(), cap, e.data(), n, kIp6);
    EXPECT_LE(w, cap);
  }
  { test::Exact e(frame); (void)swap_ethernet_addresses(e.data(), e.size()); }
}

std::vector<Bytes> corpus() {
  std::vector<Bytes> c;
  for (std::string_view v :
       {test::vectors::kScapyIpv4Tcp, test::vectors::kScapyIpv4Udp, test::vectors::kScapyIpv6Udp,
        test::vectors::kScapyIpv4OptsUdp, test::vectors::kScapyIpv4TcpTimestamps,
        test::vectors::kLinuxArpRequest, test::vectors::kLinuxArpReply, test::vectors::kOurArpRequest,
        test::vectors::kLinuxDadNs, test::vectors::kLinuxNs, test::vectors::kLinuxNa,
        test::vectors::kOurNs, test::vectors::kLinuxEchoRequestV4, test::vectors::kLinuxEchoRequestV6}) {
    c.push_back(hex(v));
  }
  // A TCP SYN over IPv6 with MSS (scapy's IPv6 frame has the wrong
  // ethertype: fix it so it reaches the IPv6 consumers).
  Bytes v6tcp = hex(test::vectors::kScapyIpv6Tcp);
  v6tcp[12] = 0x86;
  v6tcp[13] = 0xdd;
  c.push_back(v6tcp);
  // VLAN-tagged copies.
  const std::size_t untagged = c.size();
  for (std::size_t i = 0; i < untagged; ++i) {
    Bytes t = c[i];
    const Bytes tag = hex("8100 0064");
    t.insert(t.begin() + 12, tag.begin(), tag.end());
    c.push_back(t);
  }
  return c;
}

TEST(Robustness, EveryTruncationOfEveryPacket) {
  for (const Bytes& f : corpus()) {
    for (std::size_t n = 0; n <= f.size(); ++n) run_everything(test::slice(f, 0, n));
  }
}

TEST(Robustness, RandomMutations) {
  std::mt19937 rng(20240);
  const std::vector<Bytes> c = corpus();
  for (int i = 0; i < 30000; ++i) {
    Bytes f = c[rng() % c.size()];
    const int edits = 1 + static_cast<int>(rng() % 4);
    for (int k = 0; k < edits; ++k) {
      switch (rng() % 4) {
        case 0: f[rng() % f.size()] = static_cast<std::uint8_t>(rng()); break;
        case 1: f[rng() % f.size()] ^= static_cast<std::uint8_t>(1u << (rng() % 8)); break;
        case 2:  // length fields and header lengths are the interesting bytes
          if (f.size() > 20) f[14 + rng() % 8] = static_cast<std::uint8_t>(rng());
          break;
        default: f.resize(rng() % (f.size() + 1) + (rng() % 3 == 0 ? rng() % 40 : 0), 0xaa); break;
      }
      if (f.empty()) f.push_back(0);
    }
    run_everything(f);
  }
}

TEST(Robustness, BuildersRespectEveryCapacity) {
  const Bytes ns_ip = test::slice(hex(test::vectors::kLinuxNs), 14);
  NeighborSolicitation ns;
  ASSERT_TRUE(parse_neighbor_solicitation(ns_ip.data(), ns_ip.size(), ns));
  const Bytes arp = test::slice(hex(test::vectors::kLinuxArpRequest), 14);
  ArpPacket req;
  ASSERT_TRUE(parse_arp(arp.data(), arp.size(), req));
  const Bytes echo4 = test::slice(hex(test::vectors::kLinuxEchoRequestV4), 14);
  const Bytes echo6 = test::slice(hex(test::vectors::kLinuxEchoRequestV6), 14);
  const Bytes zeros(1400, 0);
  for (std::size_t cap = 0; cap <= 200; ++cap) {
    test::Exact o(zeros, cap);
    auto check = [&](std::size_t written, std::size_t full) {
      EXPECT_TRUE(written == 0 || written == full) << cap;
      EXPECT_LE(written, cap);
      if (cap >= full) {
        EXPECT_EQ(written, full) << cap;
      }
    };
    check(write_ethernet(o.data(), cap, kMac, kMac, kEtherTypeIpv4), 14);
    check(build_arp_request(o.data(), cap, kMac, kIp4, kIp4), kArpFrameLen);
    check(build_arp_reply(o.data(), cap, req, kMac, kIp4), kArpFrameLen);
    check(build_neighbor_solicitation(o.data(), cap, kMac, kIp6, kIp6), kNdpFrameLen);
    check(build_na_reply(o.data(), cap, ns, kMac, kMac, kIp6, true), kNdpFrameLen);
    check(write_ipv4_header(o.data(), cap, Ipv4Params{}), kIpv4HeaderLen);
    check(write_ipv6_header(o.data(), cap, Ipv6Params{}), kIpv6HeaderLen);
    check(write_udp_v4(o.data(), cap, kIp4, kIp4, 1, 2, 50, UdpChecksum::kFull), 58);
    check(write_udp_v6(o.data(), cap, kIp6, kIp6, 1, 2, 50, UdpChecksum::kFull), 58);
    const std::size_t e4 = build_icmpv4_frag_needed(o.data(), cap, echo4.data(), echo4.size(), kIp4, 1280);
    EXPECT_LE(e4, cap);
    const std::size_t e6 = build_icmpv6_packet_too_big(o.data(), cap, echo6.data(), echo6.size(), kIp6, 1280);
    EXPECT_LE(e6, cap);
  }
}

}  // namespace
}  // namespace moongate::net
