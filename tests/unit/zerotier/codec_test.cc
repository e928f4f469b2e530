// Wire codec, hops, fragmentation/reassembly limits and packet armour.
#include <gtest/gtest.h>

#include <algorithm>
#include <random>
#include <vector>

#include "zerotier/armor.h"
#include "zerotier/packet.h"
#include "zerotier/reassembly.h"
#include "zerotier/wire.h"

namespace moongate::zerotier {
namespace {

TEST(Wire, ReaderStopsAtTheEnd) {
  const std::uint8_t b[] = {1, 2, 3};
  Reader r(b, sizeof b);
  EXPECT_EQ(r.u16(), 0x0102);
  EXPECT_TRUE(r.ok());
  EXPECT_EQ(r.u16(), 0);
  EXPECT_FALSE(r.ok());
  EXPECT_EQ(r.remaining(), 0u);
}

TEST(Wire, WriterRefusesOverflow) {
  std::uint8_t b[4];
  Writer w(b, sizeof b);
  w.u32(0xdeadbeef);
  EXPECT_TRUE(w.ok());
  w.u8(1);
  EXPECT_FALSE(w.ok());
  EXPECT_EQ(b[0], 0xde);
}

TEST(Wire, EndpointTextAndWire) {
  Endpoint e4, e6, bad;
  ASSERT_TRUE(e4.parse("192.0.2.7/9993"));
  ASSERT_TRUE(e6.parse("2001:db8::5/443"));
  EXPECT_FALSE(bad.parse("192.0.2.7"));
  EXPECT_FALSE(bad.parse("192.0.2.7/0"));
  EXPECT_FALSE(bad.parse("192.0.2.7/70000"));
  EXPECT_FALSE(bad.parse("nothost/9993"));
  EXPECT_EQ(e4.to_string(), "192.0.2.7/9993");
  EXPECT_EQ(e6.to_string(), "2001:db8::5/443");
  std::uint8_t b[64];
  Writer w(b, sizeof b);
  w.endpoint(e4);
  w.endpoint(e6);
  w.endpoint(Endpoint{});
  EXPECT_EQ(w.size(), 7u + 19u + 1u);
  EXPECT_EQ(b[0], 4);
  EXPECT_EQ(b[5], 0x27);
  EXPECT_EQ(b[6], 0x09);
  Reader r(b, w.size());
  EXPECT_EQ(r.endpoint(), e4);
  EXPECT_EQ(r.endpoint(), e6);
  EXPECT_EQ(r.endpoint().family, 0);
  EXPECT_TRUE(r.ok());
  const std::uint8_t unknown[] = {5, 1, 2, 3};
  Reader r2(unknown, sizeof unknown);
  r2.endpoint();
  EXPECT_FALSE(r2.ok());
}

TEST(Wire, ReservedAddresses) {
  EXPECT_TRUE(address_reserved(0));
  EXPECT_TRUE(address_reserved(0xff00000001ull));
  EXPECT_FALSE(address_reserved(0x0100000000ull));
  std::uint8_t b[5];
  store_address(b, 0x89e92ceee5ull);
  EXPECT_EQ(load_address(b), 0x89e92ceee5ull);
  EXPECT_EQ(address_hex(0x00e92ceee5ull), "00e92ceee5");
}

TEST(Packet, HeaderFields) {
  std::uint8_t p[kIdxPayload];
  write_header(p, 0x0102030405060708ull, 0x1122334455ull, 0x66778899aaull, Verb::kWhois);
  const PacketView v{p, sizeof p};
  EXPECT_EQ(v.id(), 0x0102030405060708ull);
  EXPECT_EQ(v.dest(), 0x1122334455ull);
  EXPECT_EQ(v.source(), 0x66778899aaull);
  EXPECT_EQ(v.raw_verb(), 0x04);
  EXPECT_EQ(v.hops(), 0u);
  EXPECT_FALSE(is_fragment(p));
}

TEST(Packet, HopsIncrementUntilTheLimit) {
  std::uint8_t p[kIdxPayload] = {};
  p[kIdxFlags] = 0x88;  // suite 1 + legacy bit, hops 0
  for (unsigned i = 0; i < 4; ++i) EXPECT_TRUE(increment_hops(p, 4));
  EXPECT_EQ(p[kIdxFlags], 0x8C);
  EXPECT_FALSE(increment_hops(p, 4));
  EXPECT_EQ(p[kIdxFlags], 0x8C);

  std::uint8_t f[kFragHeaderLength + 4] = {};
  f[kFragIdxIndicator] = kFragmentIndicator;
  f[kFragIdxCount] = 0x21;
  ASSERT_TRUE(is_fragment(f));
  EXPECT_TRUE(increment_hops(f, 1));
  EXPECT_EQ(f[kFragIdxHops], 1);
  EXPECT_FALSE(increment_hops(f, 1));
}

std::vector<std::uint8_t> make_packet(std::size_t payload, std::uint64_t id) {
  std::vector<std::uint8_t> p(kIdxPayload + payload);
  write_header(p.data(), id, 0x1122334455ull, 0x66778899aaull, Verb::kEcho);
  for (std::size_t i = 0; i < payload; ++i) p[kIdxPayload + i] = static_cast<std::uint8_t>(i * 13);
  return p;
}

std::vector<std::vector<std::uint8_t>> split(std::vector<std::uint8_t> p, std::size_t mtu) {
  std::vector<std::vector<std::uint8_t>> out;
  if (p.size() > mtu) p[kIdxFlags] |= kFlagFragmented;
  EXPECT_TRUE(fragment_packet(p.data(), p.size(), mtu,
                              [&](const std::uint8_t* b, std::size_t n) { out.emplace_back(b, b + n); }));
  return out;
}

TEST(Reassembly, AnyOrderGivesThePacketBack) {
  auto p = make_packet(3000, 42);
  auto pieces = split(p, 700);
  ASSERT_EQ(pieces.size(), 5u);
  for (std::size_t i = 1; i < pieces.size(); ++i) {
    EXPECT_TRUE(is_fragment(pieces[i]));
    EXPECT_EQ(pieces[i][kFragIdxCount], 0x50 | i);
  }
  std::mt19937 rng(7);
  for (int round = 0; round < 10; ++round) {
    std::shuffle(pieces.begin(), pieces.end(), rng);
    Reassembler r;
    std::vector<std::uint8_t> out(kMaxPacket);
    std::size_t n = 0;
    int complete = 0;
    for (auto& piece : pieces) {
      const auto res = is_fragment(piece) ? r.add_fragment(piece, 1000, out.data(), &n)
                                          : r.add_head(piece, 1000, out.data(), &n);
      if (res == Reassembler::Result::kComplete) ++complete;
      else EXPECT_EQ(res, Reassembler::Result::kIncomplete);
    }
    ASSERT_EQ(complete, 1);
    p[kIdxFlags] |= kFlagFragmented;  // kept: it is part of the MAC key
    EXPECT_EQ(std::vector<std::uint8_t>(out.begin(), out.begin() + static_cast<long>(n)), p);
    EXPECT_EQ(r.in_use(), 0u);
  }
}

TEST(Reassembly, LimitsHold) {
  std::vector<std::uint8_t> out(kMaxPacket);
  std::size_t n = 0;
  Reassembler r;
  // Counts of 0/1, number 0, number >= total: malformed.
  std::vector<std::uint8_t> f(kFragHeaderLength + 10, 0);
  f[kFragIdxIndicator] = kFragmentIndicator;
  for (std::uint8_t c : {0x00, 0x10, 0x20, 0x33, 0x35}) {
    f[kFragIdxCount] = c;
    EXPECT_EQ(r.add_fragment(f, 0, out.data(), &n), Reassembler::Result::kMalformed) << int(c);
  }
  // A duplicate fragment abandons the packet.
  f[kFragIdxCount] = 0x31;
  EXPECT_EQ(r.add_fragment(f, 0, out.data(), &n), Reassembler::Result::kIncomplete);
  EXPECT_EQ(r.add_fragment(f, 0, out.data(), &n), Reassembler::Result::kMalformed);
  EXPECT_EQ(r.in_use(), 0u);
  // Pieces over the per-piece limit are refused.
  std::vector<std::uint8_t> big(kFragHeaderLength + Reassembler::kMaxPiece + 1, 0);
  big[kFragIdxIndicator] = kFragmentIndicator;
  big[kFragIdxCount] = 0x21;
  EXPECT_EQ(r.add_fragment(big, 0, out.data(), &n), Reassembler::Result::kTooBig);
  // A packet over kMaxPacket in total is refused even if every piece fits.
  for (unsigned i = 1; i < 15; ++i) {
    std::vector<std::uint8_t> g(kFragHeaderLength + 1000, 0);
    g[kFragIdxIndicator] = kFragmentIndicator;
    g[kFragIdxCount] = static_cast<std::uint8_t>(0xF0 | i);
    EXPECT_EQ(r.add_fragment(g, 0, out.data(), &n), Reassembler::Result::kIncomplete);
  }
  auto head = make_packet(900, 0);
  head[kIdxFlags] |= kFlagFragmented;
  EXPECT_EQ(r.add_head(head, 0, out.data(), &n), Reassembler::Result::kTooBig);
}

TEST(Reassembly, SlotsAreBoundedAndExpire) {
  Reassembler r;
  std::vector<std::uint8_t> out(kMaxPacket);
  std::size_t n = 0;
  auto head_for = [](std::uint64_t id) {
    auto h = make_packet(10, id);
    h[kIdxFlags] |= kFlagFragmented;
    return h;
  };
  for (std::uint64_t id = 1; id <= Reassembler::kSlots; ++id)
    EXPECT_EQ(r.add_head(head_for(id), id, out.data(), &n), Reassembler::Result::kIncomplete);
  EXPECT_EQ(r.in_use(), Reassembler::kSlots);
  // One more: the oldest slot gives way.
  EXPECT_EQ(r.add_head(head_for(1000), 100, out.data(), &n), Reassembler::Result::kEvicted);
  EXPECT_EQ(r.in_use(), Reassembler::kSlots);
  EXPECT_EQ(r.expire(100 + kReassemblyTimeoutMs), Reassembler::kSlots - 1);
  EXPECT_EQ(r.expire(101 + kReassemblyTimeoutMs), 1u);
  EXPECT_EQ(r.in_use(), 0u);
}

TEST(Armor, RoundTripForgeryAndHops) {
  PeerKey key;
  key.randomize();
  for (bool enc : {false, true}) {
    auto p = make_packet(200, 99);
    const auto plain = p;
    armor(p, key.data(), enc);
    EXPECT_EQ((p[kIdxFlags] >> 3) & 7, enc ? 1 : 0);
    EXPECT_EQ((p[kIdxFlags] & kFlagEncryptedLegacy) != 0, enc);
    EXPECT_EQ(std::equal(p.begin() + kIdxVerb, p.end(), plain.begin() + kIdxVerb), !enc);
    auto hopped = p;
    ASSERT_TRUE(increment_hops(hopped, 7));
    auto ok = hopped;
    ASSERT_TRUE(dearmor(ok, key.data()));
    EXPECT_TRUE(std::equal(ok.begin() + kIdxVerb, ok.end(), plain.begin() + kIdxVerb));
    for (std::size_t i : {std::size_t{0}, std::size_t{9}, std::size_t{15}, kIdxMac, kIdxVerb, p.size() - 1}) {
      auto forged = p;
      forged[i] ^= 0x01;
      const auto before = forged;
      EXPECT_FALSE(dearmor(forged, key.data())) << "byte " << i;
      EXPECT_EQ(forged, before);
    }
    auto truncated = p;
    truncated.pop_back();
    EXPECT_FALSE(dearmor(truncated, key.data()));
  }
  auto p = make_packet(10, 1);
  armor(p, key.data(), true);
  p[kIdxFlags] = static_cast<std::uint8_t>((p[kIdxFlags] & 0xC7) | (3 << 3));  // AES-GMAC-SIV
  EXPECT_FALSE(dearmor(p, key.data()));
}

TEST(Armor, CryptFieldIsAnInvolution) {
  PeerKey key;
  key.randomize();
  auto p = make_packet(64, 0x1234567890abcdefull);
  const auto plain = p;
  crypt_field(p, 40, key.data());
  EXPECT_TRUE(std::equal(p.begin(), p.begin() + 40, plain.begin()));
  EXPECT_NE(p, plain);
  // The low 3 bits of the id are not part of the IV.
  p[7] ^= 0x05;
  crypt_field(p, 40, key.data());
  p[7] ^= 0x05;
  EXPECT_EQ(p, plain);
}

}  // namespace
}  // namespace moongate::zerotier
