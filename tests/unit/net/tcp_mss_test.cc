// TCP MSS clamping: option layouts (MSS first, last, after NOPs at odd
// offsets, missing, after EOL, repeated), every malformation left
// untouched, checksums against full recomputation on random SYNs.
#include "dataplane/net/tcp_mss.h"

#include <gtest/gtest.h>

#include <random>

#include "dataplane/net/bytes.h"
#include "dataplane/net/checksum.h"
#include "dataplane/net/ip_protocol.h"
#include "tests/unit/net/packet_util.h"
#include "tests/unit/net/vectors.h"

namespace moongate::net {
namespace {

using test::Bytes;
using test::hex;

constexpr std::uint8_t kSyn = 0x02;
constexpr std::uint8_t kSynAck = 0x12;
constexpr std::uint8_t kAck = 0x10;
const Ipv4Address kSrc4 = test::v4(192, 0, 2, 10);
const Ipv4Address kDst4 = test::v4(198, 51, 100, 20);
const Ipv6Address kSrc6 = test::v6("2001 0db8 0000 0000 0000 0000 0000 000a");
const Ipv6Address kDst6 = test::v6("2001 0db8 0001 0000 0000 0000 0000 0014");

Bytes syn_v4(const Bytes& options, std::uint8_t flags = kSyn, std::size_t payload = 0) {
  std::mt19937 rng(static_cast<std::uint32_t>(options.size() * 131 + flags + payload));
  return test::ipv4_packet(kSrc4, kDst4, kIpProtoTcp, test::tcp_segment(flags, options, payload, rng), 16);
}

Bytes syn_v6(const Bytes& options, std::uint8_t flags = kSyn) {
  std::mt19937 rng(static_cast<std::uint32_t>(options.size() * 7 + flags));
  return test::ipv6_packet(kSrc6, kDst6, kIpProtoTcp, test::tcp_segment(flags, options, 0, rng), 16);
}

void expect_tcp_checksum_valid_v4(const Bytes& p) {
  const std::uint32_t pseudo =
      pseudo_header_sum_v4(kSrc4, kDst4, kIpProtoTcp, static_cast<std::uint16_t>(p.size() - 20));
  EXPECT_EQ(test::naive_checksum(p.data() + 20, p.size() - 20, pseudo), 0);
}

// Recomputes the TCP checksum of an IPv4 packet built by syn_v4.
std::uint16_t recomputed_v4(Bytes p) {
  store_be16(p.data() + 36, 0);
  return l4_checksum_v4(kSrc4, kDst4, kIpProtoTcp, p.data() + 20, static_cast<std::uint16_t>(p.size() - 20));
}

struct Layout {
  const char* name;
  std::string_view options;
  std::size_t mss_at;  // offset of the MSS value in the packet, 0 = none
};

TEST(TcpMss, ClampsEveryLayout) {
  const Layout layouts[] = {
      {"MSS only", "020405b4", 20 + 22},
      {"Linux SYN: MSS SACK TS NOP WS", "020405b4 0402 080a 11223344 00000000 01 030307", 42},
      {"NOP NOP MSS", "0101 020405b4", 20 + 24},
      {"NOP MSS: value at an odd offset", "01 020405b4", 20 + 23},
      {"NOP NOP NOP MSS: odd", "010101 020405b4", 20 + 25},
      {"MSS last, after WS and SACK", "01 030307 0402 020405b4", 20 + 28},
      {"unknown option before MSS", "1e 05 aabbcc 020405b4", 20 + 27},
      {"MSS then EOL padding", "020405b4 00 000000", 42},
  };
  for (const Layout& l : layouts) {
    SCOPED_TRACE(l.name);
    Bytes p = syn_v4(hex(l.options));
    ASSERT_EQ(load_be16(p.data() + l.mss_at), 1460);
    const Bytes before = p;
    EXPECT_EQ(clamp_tcp_mss_ipv4(p.data(), p.size(), 1380), MssClampStatus::kClamped);
    EXPECT_EQ(load_be16(p.data() + l.mss_at), 1380);
    EXPECT_EQ(load_be16(p.data() + 36), recomputed_v4(p));
    expect_tcp_checksum_valid_v4(p);
    // Only the MSS value and the checksum changed.
    for (std::size_t i = 0; i < p.size(); ++i) {
      if (i == l.mss_at || i == l.mss_at + 1 || i == 36 || i == 37) continue;
      EXPECT_EQ(p[i], before[i]) << i;
    }
    // Clamping again, or to a larger value, changes nothing.
    const Bytes clamped = p;
    EXPECT_EQ(clamp_tcp_mss_ipv4(p.data(), p.size(), 1380), MssClampStatus::kWithinLimit);
    EXPECT_EQ(clamp_tcp_mss_ipv4(p.data(), p.size(), 9000), MssClampStatus::kWithinLimit);
    EXPECT_EQ(p, clamped);
  }
}

TEST(TcpMss, SynAckAndIpv6) {
  Bytes p = syn_v4(hex("020405b4 0101 0402"), kSynAck);
  EXPECT_EQ(clamp_tcp_mss_ipv4(p.data(), p.size(), tcp_mss_for_mtu_v4(1420)), MssClampStatus::kClamped);
  EXPECT_EQ(load_be16(p.data() + 42), 1380);
  expect_tcp_checksum_valid_v4(p);

  Bytes q = syn_v6(hex("01 020405a0 030307"));
  EXPECT_EQ(clamp_tcp_mss_ipv6(q.data(), q.size(), tcp_mss_for_mtu_v6(1420)), MssClampStatus::kClamped);
  EXPECT_EQ(load_be16(q.data() + 40 + 23), 1360);
  const std::uint32_t pseudo =
      pseudo_header_sum_v6(kSrc6, kDst6, kIpProtoTcp, static_cast<std::uint32_t>(q.size() - 40));
  EXPECT_EQ(test::naive_checksum(q.data() + 40, q.size() - 40, pseudo), 0);
}

TEST(TcpMss, Ipv6BehindAnExtensionHeader) {
  Bytes q = syn_v6(hex("020405b4"));
  const Bytes ext = hex("06 00 0104 00000000");  // Destination Options, next = TCP
  q.insert(q.begin() + 40, ext.begin(), ext.end());
  q[6] = kIpProtoDestOpts;
  store_be16(q.data() + 4, static_cast<std::uint16_t>(q.size() - 40));
  EXPECT_EQ(clamp_tcp_mss_ipv6(q.data(), q.size(), 1200), MssClampStatus::kClamped);
  EXPECT_EQ(load_be16(q.data() + 48 + 22), 1200);
  const std::uint32_t pseudo =
      pseudo_header_sum_v6(kSrc6, kDst6, kIpProtoTcp, static_cast<std::uint32_t>(q.size() - 48));
  EXPECT_EQ(test::naive_checksum(q.data() + 48, q.size() - 48, pseudo), 0);
}

TEST(TcpMss, ClampsEveryRepeatedMss) {
  Bytes p = syn_v4(hex("020405b4 0204ffff"));
  EXPECT_EQ(clamp_tcp_mss_ipv4(p.data(), p.size(), 1400), MssClampStatus::kClamped);
  EXPECT_EQ(load_be16(p.data() + 42), 1400);
  EXPECT_EQ(load_be16(p.data() + 46), 1400);
  expect_tcp_checksum_valid_v4(p);
  p = syn_v4(hex("02040400 0204ffff"));  // first already small
  EXPECT_EQ(clamp_tcp_mss_ipv4(p.data(), p.size(), 1400), MssClampStatus::kClamped);
  EXPECT_EQ(load_be16(p.data() + 42), 1024);
  EXPECT_EQ(load_be16(p.data() + 46), 1400);
  expect_tcp_checksum_valid_v4(p);
}

TEST(TcpMss, LeavesOtherSegmentsAlone) {
  Bytes p = syn_v4(hex("01010402 01030307"));
  Bytes before = p;
  EXPECT_EQ(clamp_tcp_mss_ipv4(p.data(), p.size(), 1000), MssClampStatus::kNoMssOption);
  EXPECT_EQ(p, before);
  p = syn_v4(hex("00000000 020405b4"));  // MSS after End of Option List: not an option
  before = p;
  EXPECT_EQ(clamp_tcp_mss_ipv4(p.data(), p.size(), 1000), MssClampStatus::kNoMssOption);
  EXPECT_EQ(p, before);
  p = syn_v4(hex("020405b4"), kAck);
  before = p;
  EXPECT_EQ(clamp_tcp_mss_ipv4(p.data(), p.size(), 1000), MssClampStatus::kNotSyn);
  EXPECT_EQ(p, before);
  // scapy: a bare SYN (no options) and an ACK with timestamps.
  p = test::slice(hex(test::vectors::kScapyIpv4Tcp), 14);
  EXPECT_EQ(clamp_tcp_mss_ipv4(p.data(), p.size(), 1000), MssClampStatus::kNoMssOption);
  p = test::slice(hex(test::vectors::kScapyIpv6Tcp), 14);
  EXPECT_EQ(clamp_tcp_mss_ipv6(p.data(), p.size(), 1000), MssClampStatus::kNoMssOption);
  p = test::slice(hex(test::vectors::kScapyIpv4TcpTimestamps), 14);
  EXPECT_EQ(clamp_tcp_mss_ipv4(p.data(), p.size(), 1000), MssClampStatus::kNotSyn);
  // Not TCP.
  p = test::slice(hex(test::vectors::kScapyIpv4Udp), 14);
  EXPECT_EQ(clamp_tcp_mss_ipv4(p.data(), p.size(), 1000), MssClampStatus::kNotTcp);
  p = test::slice(hex(test::vectors::kScapyIpv6Udp), 14);
  EXPECT_EQ(clamp_tcp_mss_ipv6(p.data(), p.size(), 1000), MssClampStatus::kNotTcp);
  EXPECT_STREQ(to_string(MssClampStatus::kNoMssOption), "no MSS option");
}

TEST(TcpMss, FragmentsOnlyTheFirstIsLookedAt) {
  Bytes p = syn_v4(hex("020405b4"));
  store_be16(p.data() + 6, 0x2000);  // MF, offset 0: the header is here
  store_be16(p.data() + 10, 0);
  store_be16(p.data() + 10, internet_checksum(p.data(), 20));
  EXPECT_EQ(clamp_tcp_mss_ipv4(p.data(), p.size(), 1000), MssClampStatus::kClamped);
  store_be16(p.data() + 6, 0x0010);  // offset 128: no TCP header
  store_be16(p.data() + 10, 0);
  store_be16(p.data() + 10, internet_checksum(p.data(), 20));
  const Bytes before = p;
  EXPECT_EQ(clamp_tcp_mss_ipv4(p.data(), p.size(), 500), MssClampStatus::kNotTcp);
  EXPECT_EQ(p, before);
}

TEST(TcpMss, MalformedOptionListsAreLeftUntouched) {
  const struct {
    const char* name;
    std::string_view options;
  } cases[] = {
      {"unknown kind without length at the end", "01010108"},
      {"length 0", "08000000"},
      {"length 1", "08010000"},
      {"length past the header", "080a0000"},
      {"MSS length 3", "02030501"},
      {"MSS length 5", "020505b4 00000000"},
      {"MSS cut by the header end", "010101 02"},
      {"valid MSS then garbage", "020405b4 08000000"},
  };
  for (const auto& c : cases) {
    Bytes p = syn_v4(hex(c.options));
    const Bytes before = p;
    EXPECT_EQ(clamp_tcp_mss_ipv4(p.data(), p.size(), 536), MssClampStatus::kMalformed) << c.name;
    EXPECT_EQ(p, before) << c.name;
  }
}

TEST(TcpMss, MalformedHeaders) {
  Bytes p = syn_v4(hex("020405b4"));
  std::uint8_t* tcp = p.data() + 20;
  const Bytes good = p;
  tcp[12] = 0x40;  // data offset 4
  EXPECT_EQ(clamp_tcp_mss(tcp, p.size() - 20, 536), MssClampStatus::kMalformed);
  tcp[12] = 0xf0;  // 60 bytes > 24-byte segment
  EXPECT_EQ(clamp_tcp_mss(tcp, p.size() - 20, 536), MssClampStatus::kMalformed);
  p = good;
  EXPECT_EQ(clamp_tcp_mss(p.data() + 20, 19, 536), MssClampStatus::kMalformed);
  EXPECT_EQ(clamp_tcp_mss(p.data() + 20, 23, 536), MssClampStatus::kMalformed) << "options cut";
  p[11] ^= 1;  // bad IP checksum
  EXPECT_EQ(clamp_tcp_mss_ipv4(p.data(), p.size(), 536), MssClampStatus::kMalformed);
}

TEST(TcpMss, MssForMtu) {
  EXPECT_EQ(tcp_mss_for_mtu_v4(1500), 1460);
  EXPECT_EQ(tcp_mss_for_mtu_v6(1500), 1440);
  EXPECT_EQ(tcp_mss_for_mtu_v4(1420), 1380);  // WireGuard's default MTU
  EXPECT_EQ(tcp_mss_for_mtu_v6(1420), 1360);
  EXPECT_EQ(tcp_mss_for_mtu_v4(40), 0);
  EXPECT_EQ(tcp_mss_for_mtu_v6(60), 0);
}

// Random option lists built from real option shapes; MSS anywhere.
Bytes random_options(std::mt19937& rng, std::vector<std::size_t>& mss_at, std::vector<std::uint16_t>& mss) {
  Bytes o;
  for (;;) {
    Bytes opt;
    switch (rng() % 6) {
      case 0: opt = {1}; break;                                  // NOP
      case 1: opt = {3, 3, static_cast<std::uint8_t>(rng() % 15)}; break;  // window scale
      case 2: opt = {4, 2}; break;                               // SACK permitted
      case 3: opt = test::random_bytes(rng, 10); opt[0] = 8; opt[1] = 10; break;  // timestamps
      case 4: {                                                  // MSS
        const auto v = static_cast<std::uint16_t>(rng());
        opt = {2, 4, static_cast<std::uint8_t>(v >> 8), static_cast<std::uint8_t>(v)};
        break;
      }
      default: {  // unknown kind, length 2..6
        const std::size_t n = 2 + rng() % 5;
        opt = test::random_bytes(rng, n);
        opt[0] = static_cast<std::uint8_t>(30 + rng() % 200);
        opt[1] = static_cast<std::uint8_t>(n);
      }
    }
    if (o.size() + opt.size() > 40) break;
    if (opt[0] == 2) {
      mss_at.push_back(20 + o.size() + 2);
      mss.push_back(load_be16(opt.data() + 2));
    }
    o.insert(o.end(), opt.begin(), opt.end());
    if (rng() % 4 == 0) break;
  }
  return o;  // tcp_segment pads with zeros (EOL)
}

TEST(TcpMss, IncrementalEqualsRecomputeOnRandomSyns) {
  std::mt19937 rng(879);
  int clamped = 0;
  for (int i = 0; i < 20000; ++i) {
    std::vector<std::size_t> mss_at;
    std::vector<std::uint16_t> mss;
    const Bytes options = random_options(rng, mss_at, mss);
    const bool v6 = (rng() & 1) != 0;
    const std::uint8_t flags = (rng() & 1) != 0 ? kSyn : kSynAck;
    Bytes seg = test::tcp_segment(flags, options, rng() % 64, rng);  // SYN data: TFO
    const std::uint16_t max = static_cast<std::uint16_t>(rng());
    Bytes p = v6 ? test::ipv6_packet(kSrc6, kDst6, kIpProtoTcp, seg, 16)
                 : test::ipv4_packet(kSrc4, kDst4, kIpProtoTcp, seg, 16);
    const std::size_t ip_len = v6 ? 40 : 20;
    const MssClampStatus s = v6 ? clamp_tcp_mss_ipv6(p.data(), p.size(), max)
                                : clamp_tcp_mss_ipv4(p.data(), p.size(), max);
    bool any_above = false;
    for (std::uint16_t m : mss) any_above = any_above || m > max;
    const MssClampStatus expected = mss.empty()  ? MssClampStatus::kNoMssOption
                                    : any_above ? MssClampStatus::kClamped
                                                : MssClampStatus::kWithinLimit;
    ASSERT_EQ(s, expected) << "iteration " << i;
    for (std::size_t k = 0; k < mss_at.size(); ++k) {
      ASSERT_EQ(load_be16(p.data() + ip_len + mss_at[k]), std::min(mss[k], max));
    }
    if (s == MssClampStatus::kClamped) ++clamped;
    // The incremental checksum equals a full recomputation.
    Bytes again = p;
    std::uint8_t* tcp = again.data() + ip_len;
    const std::size_t tcp_len = again.size() - ip_len;
    store_be16(tcp + 16, 0);
    const std::uint16_t full = v6 ? l4_checksum_v6(kSrc6, kDst6, kIpProtoTcp, tcp, static_cast<std::uint32_t>(tcp_len))
                                  : l4_checksum_v4(kSrc4, kDst4, kIpProtoTcp, tcp, static_cast<std::uint16_t>(tcp_len));
    ASSERT_EQ(load_be16(p.data() + ip_len + 16), full) << "iteration " << i;
  }
  EXPECT_GT(clamped, 3000);
}

TEST(TcpMss, EveryTruncationIsSafe) {
  const Bytes packets[] = {syn_v4(hex("020405b4 0402 080a 11223344 00000000 01 030307")),
                           syn_v6(hex("01 020405b4 030307"))};
  for (const Bytes& p : packets) {
    const bool v6 = (p[0] >> 4) == 6;
    for (std::size_t n = 0; n < p.size(); ++n) {
      test::Exact e(p, n);
      const MssClampStatus s = v6 ? clamp_tcp_mss_ipv6(e.data(), n, 536) : clamp_tcp_mss_ipv4(e.data(), n, 536);
      EXPECT_EQ(s, MssClampStatus::kMalformed) << n;
      EXPECT_EQ(e.bytes(), test::slice(p, 0, n)) << n;
    }
    // The bare TCP entry point over truncated segments too.
    const std::size_t ip_len = v6 ? 40 : 20;
    const Bytes seg = test::slice(p, ip_len);
    for (std::size_t n = 0; n < seg.size(); ++n) {
      test::Exact e(seg, n);
      const MssClampStatus s = clamp_tcp_mss(e.data(), n, 536);
      EXPECT_EQ(s, MssClampStatus::kMalformed) << n;  // the segment has no data: n < header
    }
  }
}

}  // namespace
}  // namespace moongate::net
