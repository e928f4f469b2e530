// STUN: Tailscale's request answered as derper does, RFC 5389 and classic
// requests, malformed datagrams dropped with a reason.
#include <gtest/gtest.h>

#include <cstring>
#include <vector>

#include "stun/stun.h"

namespace moongate::stun {
namespace {

Address v4(std::uint8_t a, std::uint8_t b, std::uint8_t c, std::uint8_t d, std::uint16_t port) {
  Address x;
  x.ip[10] = x.ip[11] = 0xff;
  x.ip[12] = a;
  x.ip[13] = b;
  x.ip[14] = c;
  x.ip[15] = d;
  x.port = port;
  return x;
}

const std::array<std::uint8_t, 12> kTx = {1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12};

TEST(Stun, Crc32KnownAnswer) {
  const std::uint8_t s[] = {'1', '2', '3', '4', '5', '6', '7', '8', '9'};
  EXPECT_EQ(crc32(s), 0xCBF43926u);
}

TEST(Stun, TailscaleRequestAnsweredExactlyAsDerper) {
  std::uint8_t req[64];
  const std::size_t n = tailscale_request(kTx, req);
  ASSERT_EQ(n, 20u + 12 + 8);
  Request r;
  ASSERT_EQ(parse({req, n}, r), Drop::kNone);
  EXPECT_EQ(r.kind, Kind::kTailscale);
  std::uint8_t out[kMaxReply];
  const std::size_t m = respond(r, v4(192, 0, 2, 1, 41641), out);
  // 0101 | len 12 | cookie | txid | 0020 0008 00 01 xport xaddr
  const std::vector<std::uint8_t> want = {
      0x01, 0x01, 0x00, 0x0c, 0x21, 0x12, 0xa4, 0x42, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12,
      0x00, 0x20, 0x00, 0x08, 0x00, 0x01, static_cast<std::uint8_t>((41641 >> 8) ^ 0x21),
      static_cast<std::uint8_t>((41641 & 0xff) ^ 0x12), 192 ^ 0x21, 0 ^ 0x12, 2 ^ 0xa4, 1 ^ 0x42};
  EXPECT_EQ(std::vector<std::uint8_t>(out, out + m), want);
  Address back;
  ASSERT_TRUE(parse_response({out, m}, kTx, back));
  EXPECT_EQ(back.port, 41641);
  EXPECT_EQ(back.ip, v4(192, 0, 2, 1, 0).ip);
}

TEST(Stun, Ipv6Mapped) {
  std::uint8_t req[64];
  Request r;
  ASSERT_EQ(parse({req, tailscale_request(kTx, req)}, r), Drop::kNone);
  Address a;
  for (int i = 0; i < 16; ++i) a.ip[i] = static_cast<std::uint8_t>(0x20 + i);
  a.port = 3478;
  std::uint8_t out[kMaxReply];
  const std::size_t m = respond(r, a, out);
  ASSERT_EQ(m, 20u + 4 + 20);
  EXPECT_EQ(out[25], 2);  // family IPv6
  Address back;
  ASSERT_TRUE(parse_response({out, m}, kTx, back));
  EXPECT_EQ(back.ip, a.ip);
}

TEST(Stun, PlainRfc5389RequestGetsFingerprintedReply) {
  std::vector<std::uint8_t> req = {0x00, 0x01, 0x00, 0x00, 0x21, 0x12, 0xa4, 0x42};
  req.insert(req.end(), kTx.begin(), kTx.end());
  Request r;
  ASSERT_EQ(parse(req, r), Drop::kNone);
  EXPECT_EQ(r.kind, Kind::kRfc5389);
  std::uint8_t out[kMaxReply];
  const std::size_t m = respond(r, v4(10, 0, 0, 1, 5000), out);
  // The reply ends in a FINGERPRINT that verifies.
  ASSERT_GE(m, 28u);
  EXPECT_EQ(out[m - 8], 0x80);
  EXPECT_EQ(out[m - 7], 0x28);
  const std::uint32_t fp = std::uint32_t{out[m - 4]} << 24 | std::uint32_t{out[m - 3]} << 16 |
                           std::uint32_t{out[m - 2]} << 8 | out[m - 1];
  EXPECT_EQ(fp, crc32({out, m - 8}) ^ kFingerprintXor);
  EXPECT_EQ((out[2] << 8 | out[3]) + 20, static_cast<int>(m));
  Address back;
  ASSERT_TRUE(parse_response({out, m}, kTx, back));
  EXPECT_EQ(back.port, 5000);
}

TEST(Stun, ClassicRequestGetsMappedAddress) {
  // What Debian's `stun` client sends: no cookie, CHANGE-REQUEST 0.
  const std::vector<std::uint8_t> req = {0x00, 0x01, 0x00, 0x08, 0x01, 0x27, 0x29, 0x58,
                                         0x81, 0xc5, 0x55, 0x7d, 0x06, 0xba, 0x1d, 0x44,
                                         0x8f, 0x9d, 0xaf, 0x4a, 0x00, 0x03, 0x00, 0x04,
                                         0x00, 0x00, 0x00, 0x00};
  Request r;
  ASSERT_EQ(parse(req, r), Drop::kNone);
  EXPECT_EQ(r.kind, Kind::kClassic);
  std::uint8_t out[kMaxReply];
  const std::size_t m = respond(r, v4(127, 0, 0, 1, 23242), out);
  ASSERT_EQ(m, 32u);
  EXPECT_EQ(0, std::memcmp(out + 4, req.data() + 4, 16));
  EXPECT_EQ(out[20], 0x00);
  EXPECT_EQ(out[21], 0x01);  // MAPPED-ADDRESS
  EXPECT_EQ(out[26], 23242 >> 8);
  EXPECT_EQ(out[28], 127);
}

TEST(Stun, MalformedDropped) {
  std::uint8_t req[64];
  const std::size_t n = tailscale_request(kTx, req);
  Request r;
  EXPECT_EQ(parse({req, 19}, r), Drop::kTooShort);
  std::vector<std::uint8_t> v(req, req + n);
  v[1] = 0x11;  // not a binding request
  EXPECT_EQ(parse(v, r), Drop::kNotRequest);
  v.assign(req, req + n);
  v[3] += 4;  // length beyond the datagram
  EXPECT_EQ(parse(v, r), Drop::kBadLength);
  v.assign(req, req + n);
  v.pop_back();
  EXPECT_EQ(parse(v, r), Drop::kBadLength);
  v.assign(req, req + n);
  v[23] = 200;  // SOFTWARE length runs past the end
  EXPECT_EQ(parse(v, r), Drop::kBadAttribute);
  v.assign(req, req + n);
  v[n - 1] ^= 1;  // fingerprint
  EXPECT_EQ(parse(v, r), Drop::kBadFingerprint);
  // Every truncation and every single-byte corruption is either dropped or
  // parsed; respond() never writes past kMaxReply.
  for (std::size_t len = 0; len <= n; ++len) {
    Request x;
    if (parse({req, len}, x) == Drop::kNone) {
      std::uint8_t out[kMaxReply];
      EXPECT_LE(respond(x, v4(1, 2, 3, 4, 5), out), kMaxReply);
    }
  }
  for (std::size_t i = 0; i < n; ++i)
    for (int bit = 0; bit < 8; ++bit) {
      v.assign(req, req + n);
      v[i] ^= static_cast<std::uint8_t>(1 << bit);
      Request x;
      const Drop d = parse(v, x);
      if (d == Drop::kNone) {
        EXPECT_NE(x.kind, Kind::kTailscale) << i << " " << bit;
      }
    }
}

}  // namespace
}  // namespace moongate::stun
