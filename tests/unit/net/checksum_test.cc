// Internet checksum: RFC examples, scapy-generated packets, the optimised
// sum against a naive reference, and incremental updates against full
// recomputation.
#include "dataplane/net/checksum.h"

#include <gtest/gtest.h>

#include <random>

#include "dataplane/net/bytes.h"
#include "dataplane/net/ip_protocol.h"
#include "tests/unit/net/packet_util.h"
#include "tests/unit/net/vectors.h"

namespace moongate::net {
namespace {

using test::Bytes;
using test::hex;

TEST(Checksum, Rfc1071Example) {
  // RFC 1071 section 3: bytes 00 01 f2 03 f4 f5 f6 f7 sum to ddf2.
  const Bytes b = hex("00 01 f2 03 f4 f5 f6 f7");
  EXPECT_EQ(checksum_partial(b.data(), b.size()), 0xddf2U);
  EXPECT_EQ(internet_checksum(b.data(), b.size()), 0x220dU);
}

TEST(Checksum, WikipediaIpv4Header) {
  Bytes h = hex(test::vectors::kWikipediaIpv4Header);
  EXPECT_EQ(internet_checksum(h.data(), h.size()), 0) << "valid in place";
  store_be16(h.data() + 10, 0);
  EXPECT_EQ(internet_checksum(h.data(), h.size()), 0xb861);
}

TEST(Checksum, EmptyAndOddLengths) {
  EXPECT_EQ(checksum_partial(nullptr, 0), 0U);
  EXPECT_EQ(internet_checksum(nullptr, 0), 0xffff);
  const Bytes b = hex("ab");
  EXPECT_EQ(checksum_partial(b.data(), 1), 0xab00U) << "odd byte is the high byte";
  const Bytes c = hex("01 02 03");
  EXPECT_EQ(checksum_partial(c.data(), 3), 0x0102U + 0x0300U);
}

TEST(Checksum, FoldAndFinish) {
  EXPECT_EQ(checksum_fold(0), 0);
  EXPECT_EQ(checksum_fold(0xffff), 0xffff);
  EXPECT_EQ(checksum_fold(0x10000), 1);
  EXPECT_EQ(checksum_fold(0x1fffe), 0xffff);
  EXPECT_EQ(checksum_fold(0xffffffff), 0xffff);
  EXPECT_EQ(checksum_finish(0xffff), 0);
  // A caller-provided sum of any size chains without wrapping.
  const Bytes b = hex("ff ff ff ff");
  EXPECT_EQ(checksum_fold(checksum_partial(b.data(), b.size(), 0xffffffff)), 0xffff);
}

TEST(Checksum, MatchesNaiveOnRandomUnalignedBuffers) {
  std::mt19937 rng(1071);
  for (int i = 0; i < 5000; ++i) {
    const std::size_t len = rng() % 1600;
    const std::size_t shift = rng() % 8;  // start at every alignment
    const Bytes buf = test::random_bytes(rng, len + shift);
    const std::uint8_t* p = buf.data() + shift;
    const auto init = static_cast<std::uint32_t>(rng() % 0x10000);
    ASSERT_EQ(checksum_finish(checksum_partial(p, len, init)), test::naive_checksum(p, len, init))
        << "len " << len << " shift " << shift;
  }
}

TEST(Checksum, ChainsAtEvenSplits) {
  std::mt19937 rng(2);
  for (int i = 0; i < 1000; ++i) {
    const std::size_t len = 1 + rng() % 300;
    const Bytes b = test::random_bytes(rng, len);
    const std::size_t split = (rng() % (len + 1)) & ~std::size_t{1};
    const std::uint32_t chained =
        checksum_partial(b.data() + split, len - split, checksum_partial(b.data(), split));
    ASSERT_EQ(checksum_fold(chained), checksum_fold(checksum_partial(b.data(), len)));
  }
}

TEST(Checksum, Rfc1624Example) {
  // RFC 1624 section 4: HC = 0xdd2f, m = 0x5555 -> m' = 0x3285. Eqn. 3
  // gives 0x0000 where eqn. 2 would give the -0 form 0xffff.
  EXPECT_EQ(checksum_update16(0xdd2f, 0x5555, 0x3285), 0x0000);
}

TEST(Checksum, UpdateOfUnchangedFieldIsIdentity) {
  for (std::uint32_t c : {0x0000U, 0x1234U, 0xfffeU}) {
    EXPECT_EQ(checksum_update16(static_cast<std::uint16_t>(c), 0xabcd, 0xabcd), c);
    EXPECT_EQ(checksum_update32(static_cast<std::uint16_t>(c), 0xdeadbeef, 0xdeadbeef), c);
  }
}

// Random data with a valid checksum at offset 0; change random fields and
// compare the incremental result with a full recomputation.
TEST(Checksum, IncrementalEqualsRecomputeOnRandomData) {
  std::mt19937 rng(1624);
  for (int i = 0; i < 20000; ++i) {
    const std::size_t len = 8 + rng() % 120;
    Bytes b = test::random_bytes(rng, len);
    store_be16(b.data(), 0);
    store_be16(b.data(), internet_checksum(b.data(), len));
    const std::uint16_t check = load_be16(b.data());

    const int kind = static_cast<int>(rng() % 3);
    std::uint16_t updated = 0;
    if (kind == 0) {  // aligned 16-bit field
      const std::size_t off = 2 + 2 * (rng() % ((len - 2) / 2));
      const std::uint16_t old_v = load_be16(b.data() + off);
      const auto new_v = static_cast<std::uint16_t>(rng());
      store_be16(b.data() + off, new_v);
      updated = checksum_update16(check, old_v, new_v);
    } else if (kind == 1 && len >= 6) {  // aligned 32-bit field
      const std::size_t off = 2 + 2 * (rng() % ((len - 4) / 2));
      const std::uint32_t old_v = load_be32(b.data() + off);
      const auto new_v = static_cast<std::uint32_t>(rng());
      store_be32(b.data() + off, new_v);
      updated = checksum_update32(check, old_v, new_v);
    } else {  // any bytes at any offset, odd offsets and lengths included
      const std::size_t off = 2 + rng() % (len - 2);
      const std::size_t n = 1 + rng() % std::min<std::size_t>(16, len - off);
      const Bytes old_bytes(b.begin() + static_cast<std::ptrdiff_t>(off),
                            b.begin() + static_cast<std::ptrdiff_t>(off + n));
      const Bytes new_bytes = test::random_bytes(rng, n);
      std::copy(new_bytes.begin(), new_bytes.end(), b.begin() + static_cast<std::ptrdiff_t>(off));
      updated = checksum_update_bytes(check, off, old_bytes.data(), new_bytes.data(), n);
    }
    store_be16(b.data(), 0);
    ASSERT_EQ(updated, internet_checksum(b.data(), len)) << "iteration " << i << " kind " << kind;
  }
}

// The scapy packets: checksums verify in place and recompute identically.
struct L4Vector {
  std::string_view frame;
  bool v6;
  std::uint8_t proto;
  std::uint16_t expected;
};

TEST(Checksum, ScapyPacketsVerifyAndRecompute) {
  const L4Vector vs[] = {
      {test::vectors::kScapyIpv4Tcp, false, kIpProtoTcp, 0x917c},
      {test::vectors::kScapyIpv6Tcp, true, kIpProtoTcp, 0x8f7d},
      {test::vectors::kScapyIpv4Udp, false, kIpProtoUdp, 0x896f},
      {test::vectors::kScapyIpv6Udp, true, kIpProtoUdp, 0x8770},
      {test::vectors::kScapyIpv4OptsUdp, false, kIpProtoUdp, 0x896f},
      {test::vectors::kScapyIpv4TcpTimestamps, false, kIpProtoTcp, 0x4bc1},
  };
  for (const L4Vector& v : vs) {
    Bytes f = hex(v.frame);
    std::uint8_t* ip = f.data() + 14;
    std::uint8_t* l4 = nullptr;
    std::size_t l4_len = 0;
    std::uint32_t pseudo = 0;
    if (v.v6) {
      l4 = ip + 40;
      l4_len = load_be16(ip + 4);
      pseudo = pseudo_header_sum_v6(load_ipv6_address(ip + 8), load_ipv6_address(ip + 24), v.proto,
                                    static_cast<std::uint32_t>(l4_len));
    } else {
      const std::size_t ihl = std::size_t{ip[0] & 0x0fu} * 4;
      EXPECT_EQ(internet_checksum(ip, ihl), 0);
      l4 = ip + ihl;
      l4_len = load_be16(ip + 2) - ihl;
      pseudo = pseudo_header_sum_v4(load_ipv4_address(ip + 12), load_ipv4_address(ip + 16), v.proto,
                                    static_cast<std::uint16_t>(l4_len));
    }
    ASSERT_EQ(l4 + l4_len, f.data() + f.size());
    EXPECT_EQ(checksum_finish(checksum_partial(l4, l4_len, pseudo)), 0) << "verifies in place";
    const std::size_t field = v.proto == kIpProtoTcp ? 16 : 6;
    EXPECT_EQ(load_be16(l4 + field), v.expected);
    store_be16(l4 + field, 0);
    EXPECT_EQ(checksum_finish(checksum_partial(l4, l4_len, pseudo)), v.expected);
    if (v.v6) {
      EXPECT_EQ(l4_checksum_v6(load_ipv6_address(ip + 8), load_ipv6_address(ip + 24), v.proto, l4,
                               static_cast<std::uint32_t>(l4_len)),
                v.expected);
    } else {
      EXPECT_EQ(l4_checksum_v4(load_ipv4_address(ip + 12), load_ipv4_address(ip + 16), v.proto, l4,
                               static_cast<std::uint16_t>(l4_len)),
                v.expected);
    }
  }
}

TEST(Checksum, PseudoHeaderV6CountsA32BitLength) {
  const Ipv6Address a{};
  // Lengths above 0xffff (jumbograms) still sum both halves.
  EXPECT_EQ(pseudo_header_sum_v6(a, a, 17, 0x00010002), 1U + 2U + 17U);
}

TEST(Checksum, UdpZeroIsSentAsAllOnes) {
  EXPECT_EQ(udp_checksum_to_wire(0), 0xffff);
  EXPECT_EQ(udp_checksum_to_wire(0x1234), 0x1234);
  EXPECT_EQ(udp_checksum_to_wire(0xffff), 0xffff);
}

}  // namespace
}  // namespace moongate::net
