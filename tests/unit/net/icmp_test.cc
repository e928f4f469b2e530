// ICMP: echo replies against the ones Linux's ping accepted and against
// full recomputation; Fragmentation Needed, Packet Too Big and Time
// Exceeded against what Linux sends for the same packets; quoting limits;
// the cases where no error may be sent.
#include "dataplane/net/icmp.h"

#include <gtest/gtest.h>

#include <random>

#include "dataplane/net/bytes.h"
#include "dataplane/net/checksum.h"
#include "dataplane/net/ethernet.h"
#include "dataplane/net/ip_protocol.h"
#include "dataplane/net/ipv4.h"
#include "dataplane/net/ipv6.h"
#include "dataplane/net/udp.h"
#include "tests/unit/net/packet_util.h"
#include "tests/unit/net/vectors.h"

namespace moongate::net {
namespace {

using test::Bytes;
using test::hex;

const Ipv4Address kLinux4 = test::v4(10, 7, 0, 1);
const Ipv4Address kPeer4 = test::v4(10, 7, 0, 2);
const Ipv6Address kLinux6 = test::v6("fd00 0000 0000 0000 0000 0000 0000 0001");
const Ipv6Address kPeer6 = test::v6("fd00 0000 0000 0000 0000 0000 0000 0002");

// The packets the Linux router answered with the vectors' errors: UDP
// 40000 -> 9 from 10.7.0.2 to 10.8.0.5 (ID 0x1234, DF), payload 0xab...;
// and from fd00::2 to fd00:1::5, payload 0xcd...
Bytes offending_udp4(std::uint8_t ttl, std::size_t payload) {
  Bytes p(20 + 8 + payload, 0xab);
  Ipv4Params ip;
  ip.src = kPeer4;
  ip.dst = test::v4(10, 8, 0, 5);
  ip.protocol = kIpProtoUdp;
  ip.payload_len = static_cast<std::uint16_t>(8 + payload);
  ip.ttl = ttl;
  ip.id = 0x1234;
  write_ipv4_header(p.data(), p.size(), ip);
  write_udp_v4(p.data() + 20, p.size() - 20, ip.src, ip.dst, 40000, 9, payload, UdpChecksum::kFull);
  return p;
}

Bytes offending_udp6(std::uint8_t hop_limit, std::size_t payload) {
  Bytes p(40 + 8 + payload, 0xcd);
  Ipv6Params ip;
  ip.src = kPeer6;
  ip.dst = test::v6("fd00 0001 0000 0000 0000 0000 0000 0005");
  ip.next_header = kIpProtoUdp;
  ip.payload_len = static_cast<std::uint16_t>(8 + payload);
  ip.hop_limit = hop_limit;
  write_ipv6_header(p.data(), p.size(), ip);
  write_udp_v6(p.data() + 40, p.size() - 40, ip.src, ip.dst, 40000, 9, payload, UdpChecksum::kFull);
  return p;
}

// Full-recomputation checks of a built or rewritten packet.
void expect_valid_v4_icmp(const std::uint8_t* ip, std::size_t len) {
  Ipv4Header h;
  ASSERT_EQ(parse_ipv4(ip, len, h), Ipv4Status::kOk);
  ASSERT_EQ(h.protocol, kIpProtoIcmp);
  EXPECT_EQ(test::naive_checksum(ip, h.header_len), 0) << "IP header checksum";
  EXPECT_EQ(test::naive_checksum(ip + h.header_len, h.payload_len()), 0) << "ICMP checksum";
}

void expect_valid_v6_icmp(const std::uint8_t* ip, std::size_t len) {
  Ipv6Header h;
  ASSERT_EQ(parse_ipv6(ip, len, h), Ipv6Status::kOk);
  ASSERT_EQ(h.next_header, kIpProtoIcmpv6);
  const std::uint32_t pseudo = pseudo_header_sum_v6(h.src, h.dst, kIpProtoIcmpv6, h.payload_len);
  EXPECT_EQ(test::naive_checksum(ip + 40, h.payload_len, pseudo), 0) << "ICMPv6 checksum";
}

// --- Echo ---------------------------------------------------------------

TEST(IcmpEcho, V4ReplyIsTheOneLinuxAccepted) {
  Bytes f = hex(test::vectors::kLinuxEchoRequestV4);
  ASSERT_EQ(icmpv4_echo_to_reply(f.data() + 14, f.size() - 14), EchoStatus::kReplied);
  ASSERT_TRUE(swap_ethernet_addresses(f.data(), f.size()));
  EXPECT_EQ(f, hex(test::vectors::kOurEchoReplyV4));
  expect_valid_v4_icmp(f.data() + 14, f.size() - 14);
}

TEST(IcmpEcho, V6ReplyIsTheOneLinuxAccepted) {
  Bytes f = hex(test::vectors::kLinuxEchoRequestV6);
  ASSERT_EQ(icmpv6_echo_to_reply(f.data() + 14, f.size() - 14), EchoStatus::kReplied);
  ASSERT_TRUE(swap_ethernet_addresses(f.data(), f.size()));
  EXPECT_EQ(f, hex(test::vectors::kOurEchoReplyV6));
  expect_valid_v6_icmp(f.data() + 14, f.size() - 14);
}

Bytes echo_request_v4(std::mt19937& rng, std::size_t data_len) {
  Bytes icmp = test::random_bytes(rng, 8 + data_len);
  icmp[0] = kIcmpEchoRequest;
  icmp[1] = 0;
  store_be16(icmp.data() + 2, 0);
  store_be16(icmp.data() + 2, internet_checksum(icmp.data(), icmp.size()));
  Bytes p(20);
  Ipv4Params ip;
  ip.src = test::v4(static_cast<std::uint8_t>(1 + rng() % 100), static_cast<std::uint8_t>(rng()),
                    static_cast<std::uint8_t>(rng()), static_cast<std::uint8_t>(rng()));
  ip.dst = test::v4(static_cast<std::uint8_t>(1 + rng() % 100), static_cast<std::uint8_t>(rng()),
                    static_cast<std::uint8_t>(rng()), static_cast<std::uint8_t>(rng()));
  ip.protocol = kIpProtoIcmp;
  ip.payload_len = static_cast<std::uint16_t>(icmp.size());
  ip.ttl = static_cast<std::uint8_t>(rng());
  ip.tos = static_cast<std::uint8_t>(rng());
  ip.id = static_cast<std::uint16_t>(rng());
  ip.dont_fragment = (rng() & 1) != 0;
  write_ipv4_header(p.data(), p.size(), ip);
  p.insert(p.end(), icmp.begin(), icmp.end());
  return p;
}

TEST(IcmpEcho, V4IncrementalEqualsRecomputeOnRandomRequests) {
  std::mt19937 rng(792);
  for (int i = 0; i < 5000; ++i) {
    const Bytes req = echo_request_v4(rng, rng() % 1473);
    Bytes rep = req;
    ASSERT_EQ(icmpv4_echo_to_reply(rep.data(), rep.size()), EchoStatus::kReplied);
    EXPECT_EQ(load_ipv4_address(rep.data() + 12), load_ipv4_address(req.data() + 16));
    EXPECT_EQ(load_ipv4_address(rep.data() + 16), load_ipv4_address(req.data() + 12));
    EXPECT_EQ(rep[8], kIcmpReplyTtl);
    EXPECT_EQ(rep[20], kIcmpEchoReply);
    EXPECT_EQ(test::slice(rep, 24), test::slice(req, 24)) << "identifier, sequence, data kept";
    // Incremental fields == recomputed fields.
    Bytes again = rep;
    store_be16(again.data() + 10, 0);
    store_be16(again.data() + 10, internet_checksum(again.data(), 20));
    store_be16(again.data() + 22, 0);
    store_be16(again.data() + 22, internet_checksum(again.data() + 20, again.size() - 20));
    ASSERT_EQ(rep, again) << "iteration " << i;
  }
}

TEST(IcmpEcho, V6IncrementalEqualsRecomputeOnRandomRequests) {
  std::mt19937 rng(4443);
  for (int i = 0; i < 5000; ++i) {
    Bytes icmp = test::random_bytes(rng, 8 + rng() % 1453);
    icmp[0] = kIcmpv6EchoRequest;
    icmp[1] = 0;
    Ipv6Address src{}, dst{};
    for (auto& b : src) b = static_cast<std::uint8_t>(rng());
    for (auto& b : dst) b = static_cast<std::uint8_t>(rng());
    src[0] = 0x20;
    dst[0] = 0x20;
    const Bytes req = test::ipv6_packet(src, dst, kIpProtoIcmpv6, icmp, 2);
    Bytes rep = req;
    ASSERT_EQ(icmpv6_echo_to_reply(rep.data(), rep.size()), EchoStatus::kReplied);
    EXPECT_EQ(load_ipv6_address(rep.data() + 8), dst);
    EXPECT_EQ(load_ipv6_address(rep.data() + 24), src);
    EXPECT_EQ(rep[7], kIcmpReplyTtl);
    EXPECT_EQ(rep[40], kIcmpv6EchoReply);
    Bytes again = rep;
    store_be16(again.data() + 42, 0);
    store_be16(again.data() + 42, l4_checksum_v6(dst, src, kIpProtoIcmpv6, again.data() + 40,
                                                 static_cast<std::uint32_t>(again.size() - 40)));
    ASSERT_EQ(rep, again) << "iteration " << i;
  }
}

TEST(IcmpEcho, V4OtherVerdicts) {
  std::mt19937 rng(5);
  const Bytes good = echo_request_v4(rng, 56);
  auto verdict = [](Bytes p) { return icmpv4_echo_to_reply(p.data(), p.size()); };
  auto refix_ip = [](Bytes& p) {
    store_be16(p.data() + 10, 0);
    store_be16(p.data() + 10, internet_checksum(p.data(), std::size_t{p[0] & 0x0fu} * 4));
  };
  auto refix_icmp = [](Bytes& p) {
    store_be16(p.data() + 22, 0);
    store_be16(p.data() + 22, internet_checksum(p.data() + 20, p.size() - 20));
  };
  EXPECT_EQ(verdict(good), EchoStatus::kReplied);
  Bytes p = good;
  p[20] = kIcmpEchoReply;
  refix_icmp(p);
  EXPECT_EQ(verdict(p), EchoStatus::kNotEchoRequest) << "echo reply";
  p = test::slice(hex(test::vectors::kScapyIpv4Udp), 14);
  EXPECT_EQ(verdict(p), EchoStatus::kNotEchoRequest) << "UDP";
  p = good;
  p[23] ^= 1;
  EXPECT_EQ(verdict(p), EchoStatus::kMalformed) << "ICMP checksum";
  p = good;
  p[21] = 1;
  refix_icmp(p);
  EXPECT_EQ(verdict(p), EchoStatus::kMalformed) << "code 1";
  p = good;
  p[11] ^= 1;
  EXPECT_EQ(verdict(p), EchoStatus::kMalformed) << "IP checksum";
  p = test::slice(good, 0, 27);
  store_be16(p.data() + 2, 27);
  refix_ip(p);
  EXPECT_EQ(verdict(p), EchoStatus::kMalformed) << "7-byte ICMP";
  p = good;
  store_be16(p.data() + 6, 0x2000);
  refix_ip(p);
  EXPECT_EQ(verdict(p), EchoStatus::kUnsupported) << "fragment";
  p = good;
  p[16] = 224;
  refix_ip(p);
  EXPECT_EQ(verdict(p), EchoStatus::kUnsupported) << "multicast destination";
  p = good;
  std::fill(p.begin() + 16, p.begin() + 20, 0xff);
  refix_ip(p);
  EXPECT_EQ(verdict(p), EchoStatus::kUnsupported) << "broadcast destination";
  p = good;
  std::fill(p.begin() + 12, p.begin() + 16, 0);
  refix_ip(p);
  EXPECT_EQ(verdict(p), EchoStatus::kUnsupported) << "source 0.0.0.0";
  // IP options (a 4-byte NOP/EOL option).
  p = test::slice(good, 0, 20);
  p.insert(p.end(), {1, 1, 1, 0});
  p.insert(p.end(), good.begin() + 20, good.end());
  p[0] = 0x46;
  store_be16(p.data() + 2, static_cast<std::uint16_t>(p.size()));
  refix_ip(p);
  EXPECT_EQ(verdict(p), EchoStatus::kUnsupported) << "options";
  EXPECT_STREQ(to_string(EchoStatus::kUnsupported), "unsupported");
}

TEST(IcmpEcho, V6OtherVerdicts) {
  const Bytes good = test::slice(hex(test::vectors::kLinuxEchoRequestV6), 14);
  auto verdict = [](Bytes p) { return icmpv6_echo_to_reply(p.data(), p.size()); };
  auto refix = [](Bytes& p) {
    const std::uint32_t len = load_be16(p.data() + 4);
    store_be16(p.data() + 42, 0);
    store_be16(p.data() + 42, l4_checksum_v6(load_ipv6_address(p.data() + 8),
                                             load_ipv6_address(p.data() + 24), kIpProtoIcmpv6,
                                             p.data() + 40, len));
  };
  EXPECT_EQ(verdict(good), EchoStatus::kReplied);
  Bytes p = good;
  p[40] = kIcmpv6EchoReply;
  refix(p);
  EXPECT_EQ(verdict(p), EchoStatus::kNotEchoRequest);
  p = test::slice(hex(test::vectors::kLinuxNs), 14);
  EXPECT_EQ(verdict(p), EchoStatus::kNotEchoRequest) << "NS";
  p = test::slice(hex(test::vectors::kScapyIpv6Udp), 14);
  EXPECT_EQ(verdict(p), EchoStatus::kNotEchoRequest) << "UDP";
  p = good;
  p[50] ^= 1;
  EXPECT_EQ(verdict(p), EchoStatus::kMalformed) << "checksum";
  p = good;
  p[41] = 1;
  refix(p);
  EXPECT_EQ(verdict(p), EchoStatus::kMalformed) << "code";
  p = good;
  p[24] = 0xff;
  refix(p);
  EXPECT_EQ(verdict(p), EchoStatus::kUnsupported) << "multicast destination";
  p = good;
  std::fill(p.begin() + 8, p.begin() + 24, 0);
  refix(p);
  EXPECT_EQ(verdict(p), EchoStatus::kUnsupported) << "unspecified source";
  // Behind a Destination Options header.
  p = test::slice(good, 0, 40);
  const Bytes ext = hex("3a 00 0104 00000000");
  p.insert(p.end(), ext.begin(), ext.end());
  p.insert(p.end(), good.begin() + 40, good.end());
  p[6] = kIpProtoDestOpts;
  store_be16(p.data() + 4, static_cast<std::uint16_t>(p.size() - 40));
  EXPECT_EQ(verdict(p), EchoStatus::kUnsupported) << "extension header";
}

TEST(IcmpEcho, EveryTruncationRejectedAndUntouched) {
  for (bool v6 : {false, true}) {
    const Bytes ip = test::slice(
        hex(v6 ? test::vectors::kLinuxEchoRequestV6 : test::vectors::kLinuxEchoRequestV4), 14);
    for (std::size_t n = 0; n < ip.size(); ++n) {
      test::Exact e(ip, n);
      const EchoStatus s = v6 ? icmpv6_echo_to_reply(e.data(), n) : icmpv4_echo_to_reply(e.data(), n);
      EXPECT_EQ(s, EchoStatus::kMalformed) << n;
      EXPECT_EQ(e.bytes(), test::slice(ip, 0, n)) << n;
    }
  }
}

// --- Errors against Linux ---------------------------------------------------

// Compares our error with the head Linux sent: the IP header except ID and
// header checksum (Linux numbers its datagrams; ours carry ID 0), the ICMP
// header exactly (its checksum covers the whole quote), and the length.
void expect_same_v4_error(const Bytes& ours, std::string_view linux_head, std::size_t linux_len) {
  const Bytes head = hex(linux_head);
  ASSERT_EQ(ours.size(), linux_len);
  for (std::size_t i = 0; i < 20; ++i) {
    if (i == 4 || i == 5 || i == 10 || i == 11) continue;
    EXPECT_EQ(ours[i], head[i]) << "IP header byte " << i;
  }
  EXPECT_EQ(test::slice(ours, 20, 8), test::slice(head, 20, 8)) << "ICMP header";
  expect_valid_v4_icmp(ours.data(), ours.size());
}

TEST(IcmpError, FragmentationNeededMatchesLinux) {
  const Bytes off = offending_udp4(64, 1400);
  Bytes out(2048, 0xee);
  const std::size_t n =
      build_icmpv4_frag_needed(out.data(), out.size(), off.data(), off.size(), kLinux4, 1280);
  ASSERT_EQ(n, kIcmpv4ErrorMaxLen);
  out.resize(n);
  expect_same_v4_error(out, test::vectors::kLinuxFragNeededHead, 576);
  EXPECT_EQ(test::slice(out, 28), test::slice(off, 0, 548)) << "quote = the packet's first 548 bytes";
  EXPECT_EQ(load_be16(out.data() + 26), 1280) << "next-hop MTU";
}

TEST(IcmpError, TimeExceededV4MatchesLinux) {
  const Bytes off = offending_udp4(1, 100);
  Bytes out(576);
  const std::size_t n =
      build_icmpv4_time_exceeded(out.data(), out.size(), off.data(), off.size(), kLinux4);
  ASSERT_EQ(n, 20 + 8 + off.size());
  out.resize(n);
  expect_same_v4_error(out, test::vectors::kLinuxTimeExceededV4Head, 156);
  EXPECT_EQ(test::slice(out, 28), off) << "short packet quoted whole";
}

void expect_same_v6_error(const Bytes& ours, std::string_view linux_head, std::size_t linux_len) {
  const Bytes head = hex(linux_head);
  ASSERT_EQ(ours.size(), linux_len);
  // Linux puts a flow label on its errors: compare from the payload length on.
  EXPECT_EQ(ours[0] >> 4, 6);
  EXPECT_EQ(test::slice(ours, 4, 44), test::slice(head, 4, 44));
  expect_valid_v6_icmp(ours.data(), ours.size());
}

TEST(IcmpError, PacketTooBigMatchesLinux) {
  const Bytes off = offending_udp6(64, 1400);
  Bytes out(2048);
  const std::size_t n =
      build_icmpv6_packet_too_big(out.data(), out.size(), off.data(), off.size(), kLinux6, 1280);
  ASSERT_EQ(n, kIcmpv6ErrorMaxLen);
  out.resize(n);
  expect_same_v6_error(out, test::vectors::kLinuxPacketTooBigHead, 1280);
  EXPECT_EQ(test::slice(out, 48), test::slice(off, 0, 1232));
  EXPECT_EQ(load_be32(out.data() + 44), 1280U);
}

TEST(IcmpError, TimeExceededV6MatchesLinux) {
  const Bytes off = offending_udp6(1, 100);
  Bytes out(1280);
  const std::size_t n =
      build_icmpv6_time_exceeded(out.data(), out.size(), off.data(), off.size(), kLinux6);
  ASSERT_EQ(n, 48 + off.size());
  out.resize(n);
  expect_same_v6_error(out, test::vectors::kLinuxTimeExceededV6Head, 196);
  EXPECT_EQ(test::slice(out, 48), off);
}

// --- Quoting limits -----------------------------------------------------------

TEST(IcmpError, QuoteShrinksToTheBufferButNotBelowTheMinimum) {
  const Bytes off4 = offending_udp4(64, 1400);
  Bytes out(2048);
  // IPv4: at least the IP header + 8 bytes (RFC 792).
  for (std::size_t cap = 0; cap <= 600; ++cap) {
    const std::size_t n =
        build_icmpv4_frag_needed(out.data(), cap, off4.data(), off4.size(), kLinux4, 1280);
    if (cap < 28 + 28) {
      EXPECT_EQ(n, 0U) << cap;
    } else {
      ASSERT_EQ(n, std::min<std::size_t>(cap, 576)) << cap;
      expect_valid_v4_icmp(out.data(), n);
      EXPECT_EQ(test::slice(out, 28, n - 28), test::slice(off4, 0, n - 28));
    }
  }
  // IPv6: at least 8 bytes past the last extension header.
  const Bytes off6 = offending_udp6(64, 1400);
  for (std::size_t cap = 0; cap <= 1300; cap += 7) {
    const std::size_t n =
        build_icmpv6_packet_too_big(out.data(), cap, off6.data(), off6.size(), kLinux6, 1280);
    if (cap < 48 + 48) {
      EXPECT_EQ(n, 0U) << cap;
    } else {
      ASSERT_EQ(n, std::min<std::size_t>(cap, 1280)) << cap;
      expect_valid_v6_icmp(out.data(), n);
    }
  }
}

TEST(IcmpError, ShortPacketsAreQuotedWholeAndPaddingIsNot) {
  Bytes off = offending_udp4(64, 0);  // 28 bytes: exactly the minimum
  off.resize(off.size() + 18, 0);     // Ethernet padding after the datagram
  Bytes out(576);
  const std::size_t n =
      build_icmpv4_frag_needed(out.data(), out.size(), off.data(), off.size(), kLinux4, 1280);
  ASSERT_EQ(n, 20U + 8 + 28);
  EXPECT_EQ(test::slice(out, 28, 28), test::slice(off, 0, 28));
}

TEST(IcmpError, RandomOffendersVerifyByRecomputation) {
  std::mt19937 rng(1191);
  Bytes out(1400);
  for (int i = 0; i < 3000; ++i) {
    const std::size_t payload = rng() % 1500;
    Bytes p4 = offending_udp4(static_cast<std::uint8_t>(1 + rng() % 255), payload);
    for (std::size_t k = 28; k < p4.size(); ++k) p4[k] = static_cast<std::uint8_t>(rng());
    const std::size_t cap = 28 + rng() % 700;
    const std::size_t n =
        build_icmpv4_frag_needed(out.data(), cap, p4.data(), p4.size(), kPeer4, 1400);
    // The minimum quote is the 20-byte header + 8 bytes: 56 bytes in all.
    const std::size_t expected = cap < 56 ? 0 : std::min({cap, std::size_t{576}, 28 + p4.size()});
    ASSERT_EQ(n, expected) << "cap " << cap << " packet " << p4.size();
    if (n != 0) {
      expect_valid_v4_icmp(out.data(), n);
      EXPECT_EQ(test::slice(out, 28, n - 28), test::slice(p4, 0, n - 28));
    }
    Bytes p6 = offending_udp6(64, payload);
    const std::size_t n6 =
        build_icmpv6_packet_too_big(out.data(), out.size(), p6.data(), p6.size(), kPeer6, 1400);
    ASSERT_EQ(n6, std::min<std::size_t>(1280, 48 + p6.size()));
    expect_valid_v6_icmp(out.data(), n6);
  }
}

// --- When no error may be sent -------------------------------------------------

TEST(IcmpError, V4Suppressed) {
  Bytes out(576);
  auto built = [&](const Bytes& p) {
    return build_icmpv4_frag_needed(out.data(), out.size(), p.data(), p.size(), kLinux4, 1280);
  };
  auto refix = [](Bytes& p) {
    store_be16(p.data() + 10, 0);
    store_be16(p.data() + 10, internet_checksum(p.data(), 20));
  };
  const Bytes good = offending_udp4(64, 100);
  ASSERT_NE(built(good), 0U);
  Bytes p = good;
  p[10] ^= 1;
  EXPECT_EQ(built(p), 0U) << "bad header checksum";
  p = good;
  store_be16(p.data() + 6, 0x4000 | 10);
  refix(p);
  EXPECT_EQ(built(p), 0U) << "non-initial fragment";
  store_be16(p.data() + 6, 0x2000);
  refix(p);
  EXPECT_NE(built(p), 0U) << "first fragment";
  for (std::uint8_t first : {0, 127, 224, 240, 255}) {
    p = good;
    p[12] = first;
    refix(p);
    EXPECT_EQ(built(p), 0U) << "source " << int{first} << ".x.x.x";
  }
  p = good;
  p[16] = 239;
  refix(p);
  EXPECT_EQ(built(p), 0U) << "multicast destination";
  p = good;
  std::fill(p.begin() + 16, p.begin() + 20, 0xff);
  refix(p);
  EXPECT_EQ(built(p), 0U) << "broadcast destination";
  // About ICMP: errors never, queries yes.
  const Bytes req = test::slice(hex(test::vectors::kLinuxEchoRequestV4), 14);
  EXPECT_NE(built(req), 0U) << "echo request";
  Bytes err(576);
  const std::size_t n = build_icmpv4_time_exceeded(err.data(), err.size(), good.data(), good.size(), kLinux4);
  ASSERT_NE(n, 0U);
  err.resize(n);
  EXPECT_EQ(built(err), 0U) << "time exceeded";
  for (std::uint8_t type : {3, 4, 5, 11, 12, 42}) {
    p = req;
    p[20] = type;
    EXPECT_EQ(built(p), 0U) << "ICMP type " << int{type};
  }
  p = test::slice(req, 0, 20);
  store_be16(p.data() + 2, 20);
  refix(p);
  EXPECT_EQ(built(p), 0U) << "ICMP with no header at all";
}

TEST(IcmpError, V6Suppressed) {
  Bytes out(1280);
  auto ptb = [&](const Bytes& p) {
    return build_icmpv6_packet_too_big(out.data(), out.size(), p.data(), p.size(), kLinux6, 1280);
  };
  auto te = [&](const Bytes& p) {
    return build_icmpv6_time_exceeded(out.data(), out.size(), p.data(), p.size(), kLinux6);
  };
  const Bytes good = offending_udp6(64, 100);
  ASSERT_NE(ptb(good), 0U);
  Bytes p = good;
  p[24] = 0xff;  // multicast destination: Packet Too Big yes, Time Exceeded no
  EXPECT_NE(ptb(p), 0U);
  EXPECT_EQ(te(p), 0U);
  p = good;
  std::fill(p.begin() + 8, p.begin() + 24, 0);
  EXPECT_EQ(ptb(p), 0U) << "unspecified source";
  p[23] = 1;
  EXPECT_EQ(ptb(p), 0U) << "loopback source";
  p = good;
  p[8] = 0xff;
  EXPECT_EQ(ptb(p), 0U) << "multicast source";
  p = good;
  p[0] = 0x45;
  EXPECT_EQ(ptb(p), 0U) << "not IPv6";
  // ICMPv6 errors are not answered, informational messages are.
  Bytes err(1280);
  const std::size_t n = build_icmpv6_time_exceeded(err.data(), err.size(), good.data(), good.size(), kLinux6);
  ASSERT_NE(n, 0U);
  err.resize(n);
  EXPECT_EQ(ptb(err), 0U);
  const Bytes req = test::slice(hex(test::vectors::kLinuxEchoRequestV6), 14);
  EXPECT_NE(ptb(req), 0U);
  // Non-initial fragments still get one (RFC 4443 has no exemption).
  Bytes frag = test::slice(good, 0, 40);
  const Bytes fh = hex("11 00 0100 12345678");  // offset 32, next header UDP
  frag.insert(frag.end(), fh.begin(), fh.end());
  frag.insert(frag.end(), good.begin() + 40, good.end());
  frag[6] = kIpProtoFragment;
  store_be16(frag.data() + 4, static_cast<std::uint16_t>(frag.size() - 40));
  EXPECT_NE(ptb(frag), 0U);
}

TEST(IcmpError, TruncatedOffendersGetNoError) {
  const Bytes p4 = offending_udp4(64, 100);
  const Bytes p6 = offending_udp6(64, 100);
  Bytes out(1280);
  for (std::size_t n = 0; n < p4.size(); ++n) {
    test::Exact e(p4, n);
    EXPECT_EQ(build_icmpv4_frag_needed(out.data(), out.size(), e.data(), n, kLinux4, 1280), 0U) << n;
  }
  for (std::size_t n = 0; n < p6.size(); ++n) {
    test::Exact e(p6, n);
    EXPECT_EQ(build_icmpv6_packet_too_big(out.data(), out.size(), e.data(), n, kLinux6, 1280), 0U) << n;
  }
}

}  // namespace
}  // namespace moongate::net
