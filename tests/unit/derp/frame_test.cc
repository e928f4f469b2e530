// Frame codec: byte layouts checked against the protocol's fixed offsets.
#include <gtest/gtest.h>

#include <vector>

#include "derp/frame.h"

namespace moongate::derp {
namespace {

Key key_of(std::uint8_t v) {
  Key k;
  k.fill(v);
  return k;
}

TEST(Frame, ServerKeyLayout) {
  std::uint8_t out[kServerKeyFrameLen];
  ASSERT_EQ(encode_server_key(out, key_of(7)), 45u);
  const std::uint8_t want_head[] = {0x01, 0, 0, 0, 40, 0x44, 0x45, 0x52, 0x50, 0xF0, 0x9F, 0x94, 0x91};
  EXPECT_EQ(0, std::memcmp(out, want_head, sizeof want_head));
  Key back;
  ASSERT_TRUE(decode_server_key({out + 5, 40}, back));
  EXPECT_EQ(back, key_of(7));
  out[5] ^= 1;  // bad magic
  EXPECT_FALSE(decode_server_key({out + 5, 40}, back));
  EXPECT_FALSE(decode_server_key({out + 5, 39}, back));
}

TEST(Frame, PacketAndForward) {
  const std::vector<std::uint8_t> data = {1, 2, 3};
  std::uint8_t out[128];
  ASSERT_EQ(encode_packet(out, FrameType::kRecvPacket, key_of(1), data), 5u + 32 + 3);
  Header h = get_header(out);
  EXPECT_EQ(h.type, FrameType::kRecvPacket);
  EXPECT_EQ(h.length, 35u);
  EXPECT_EQ(out[5], 1);
  EXPECT_EQ(out[37], 1);
  EXPECT_EQ(out[39], 3);
  ASSERT_EQ(encode_forward(out, key_of(1), key_of(2), data), 5u + 64 + 3);
  EXPECT_EQ(out[0], 0x0A);
  EXPECT_EQ(get_header(out).length, 67u);
  EXPECT_EQ(out[5], 1);
  EXPECT_EQ(out[37], 2);
  EXPECT_EQ(out[69], 1);
}

TEST(Frame, PeerGoneAndPresent) {
  std::uint8_t out[64];
  ASSERT_EQ(encode_peer_gone(out, key_of(3), PeerGoneReason::kNotHere), 38u);
  EXPECT_EQ(out[0], 0x08);
  EXPECT_EQ(out[37], 1);
  Key k;
  PeerGoneReason r;
  ASSERT_TRUE(decode_peer_gone({out + 5, 33}, k, r));
  EXPECT_EQ(k, key_of(3));
  EXPECT_EQ(r, PeerGoneReason::kNotHere);
  ASSERT_TRUE(decode_peer_gone({out + 5, 32}, k, r));  // original form: no reason byte
  EXPECT_EQ(r, PeerGoneReason::kDisconnected);
  EXPECT_FALSE(decode_peer_gone({out + 5, 31}, k, r));

  IpPort a;
  a.ip[10] = a.ip[11] = 0xff;
  a.ip[12] = 10;
  a.ip[15] = 9;
  a.port = 0x1234;
  ASSERT_EQ(encode_peer_present(out, key_of(4), a, kPresentIsRegular), 5u + 51);
  EXPECT_EQ(out[0], 0x09);
  EXPECT_EQ(out[5 + 32 + 16], 0x12);
  EXPECT_EQ(out[5 + 32 + 17], 0x34);
  EXPECT_EQ(out[5 + 50], 1);
  PeerPresent p;
  ASSERT_TRUE(decode_peer_present({out + 5, 51}, p));
  EXPECT_EQ(p.key, key_of(4));
  EXPECT_EQ(p.addr, a);
  EXPECT_EQ(p.flags, 1);
  ASSERT_TRUE(decode_peer_present({out + 5, 32}, p));  // key only
  EXPECT_EQ(p.addr.port, 0);
}

TEST(Frame, PingKeepaliveRestarting) {
  std::uint8_t out[32];
  const std::uint8_t d[8] = {1, 2, 3, 4, 5, 6, 7, 8};
  ASSERT_EQ(encode_ping(out, FrameType::kPong, d), 13u);
  EXPECT_EQ(out[0], 0x13);
  EXPECT_EQ(out[12], 8);
  ASSERT_EQ(encode_keepalive(out), 5u);
  EXPECT_EQ(out[0], 0x06);
  EXPECT_EQ(get_header(out).length, 0u);
  ASSERT_EQ(encode_restarting(out, 1000, 2000), 13u);
  EXPECT_EQ(get_be32(out + 5), 1000u);
  EXPECT_EQ(get_be32(out + 9), 2000u);
}

TEST(Frame, DiscoDetection) {
  std::vector<std::uint8_t> p(62, 0);
  std::memcpy(p.data(), kDiscoMagic.data(), 6);
  EXPECT_TRUE(is_disco(p));
  p.pop_back();
  EXPECT_FALSE(is_disco(p));  // shorter than magic + key + nonce
  p.resize(100);
  p[0] = 0;
  EXPECT_FALSE(is_disco(p));
}

}  // namespace
}  // namespace moongate::derp
