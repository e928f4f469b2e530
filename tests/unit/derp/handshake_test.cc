// Handshake sealing both ways and the ClientInfo JSON.
#include <gtest/gtest.h>
#include <sodium.h>

#include "derp/handshake.h"

namespace moongate::derp {
namespace {

TEST(ClientInfoJson, CaseInsensitiveAndUnknownFields) {
  ClientInfo ci;
  ASSERT_TRUE(parse_client_info(
      R"({"VERSION":2,"canackpings":true,"isProber":false,"extra":{"a":[1,2,{"b":null}]},"AppName":"x\"y"})",
      ci));
  EXPECT_EQ(ci.version, 2);
  EXPECT_TRUE(ci.can_ack_pings);
  EXPECT_FALSE(ci.is_prober);
  EXPECT_EQ(ci.app_name, "x\"y");
  EXPECT_FALSE(ci.mesh_key);
  ASSERT_TRUE(parse_client_info(std::string("{\"meshKey\":\"") + std::string(64, 'a') + "\"}", ci));
  ASSERT_TRUE(ci.mesh_key);
  EXPECT_EQ((*ci.mesh_key)[0], 0xaa);
  EXPECT_TRUE(parse_client_info("{}", ci));
}

TEST(ClientInfoJson, RejectsMalformed) {
  ClientInfo ci;
  for (const char* bad : {"", "[]", "{", "{\"version\":}", "{\"version\":\"2\"}",
                          "{\"meshKey\":\"abc\"}", "{\"CanAckPings\":1}", "{} x",
                          "{\"a\":1,}", "{\"a\" 1}"})
    EXPECT_FALSE(parse_client_info(bad, ci)) << bad;
  std::string deep(100, '[');
  EXPECT_FALSE(parse_client_info("{\"a\":" + deep + "}", ci));
}

TEST(Handshake, ClientInfoOpensOnlyWithTheRightKeys) {
  Key spub, cpub;
  crypto::SecretKey spriv, cpriv;
  crypto_box_keypair(spub.data(), spriv.data());
  crypto_box_keypair(cpub.data(), cpriv.data());
  ClientInfo in;
  in.version = 2;
  in.can_ack_pings = true;
  const std::string f = seal_client_info(cpriv, cpub, spub, in);
  ASSERT_EQ(static_cast<std::uint8_t>(f[0]), 0x02);
  const std::span<const std::uint8_t> payload(reinterpret_cast<const std::uint8_t*>(f.data()) + 5,
                                              f.size() - 5);
  Key got;
  ClientInfo out;
  ASSERT_TRUE(open_client_info(payload, spriv, got, out));
  EXPECT_EQ(got, cpub);
  EXPECT_EQ(out.version, 2);
  EXPECT_TRUE(out.can_ack_pings);

  // A client claiming another key cannot open the box.
  std::string forged = f;
  forged[5] ^= 1;
  EXPECT_FALSE(open_client_info({reinterpret_cast<const std::uint8_t*>(forged.data()) + 5,
                                 forged.size() - 5},
                                spriv, got, out));
  EXPECT_FALSE(open_client_info(payload.subspan(0, 60), spriv, got, out));

  std::uint8_t si[kServerInfoFrameMax];
  const std::size_t n = seal_server_info(si, spriv, cpub, 0, 0);
  auto json = open_server_info({si + 5, n - 5}, cpriv, spub);
  ASSERT_TRUE(json);
  EXPECT_EQ(*json, "{\"version\":2}");
  si[n - 1] ^= 1;
  EXPECT_FALSE(open_server_info({si + 5, n - 5}, cpriv, spub));
}

TEST(Handshake, KeyHex) {
  Key k;
  for (int i = 0; i < 32; ++i) k[i] = static_cast<std::uint8_t>(i * 7);
  const std::string h = key_hex(k);
  EXPECT_EQ(h.substr(0, 6), "00070e");
  Key back;
  ASSERT_TRUE(key_from_hex(h, back));
  EXPECT_EQ(back, k);
  EXPECT_FALSE(key_from_hex(h.substr(1), back));
  EXPECT_FALSE(key_from_hex(std::string(63, '0') + "g", back));
}

}  // namespace
}  // namespace moongate::derp
