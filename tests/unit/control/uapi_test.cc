// The UAPI as stock `wg` drives it: get, set of device and peer keys, the
// allowed-IP move between peers, update_only, remove, replace_peers, and
// refusals that leave the netmap untouched.
#include "control/uapi.h"

#include <gtest/gtest.h>

#include "crypto/x25519.h"

namespace moongate::control {
namespace {

std::string hex(const std::uint8_t* p) { return key_hex(p); }

crypto::PublicKey key(std::uint8_t seed) {
  crypto::PublicKey k{};
  k.fill(seed);
  return k;
}

class UapiTest : public ::testing::Test {
 protected:
  UapiResult req(const std::string& body) { return uapi.handle(body, n, rt); }
  Uapi uapi{4};
  netmap::Netmap n;
  RuntimeTable rt;
};

TEST_F(UapiTest, SetThenGetRoundTrips) {
  crypto::SecretKey priv;
  crypto::PublicKey pub;
  crypto::x25519_generate(priv, pub);
  const auto a = key(1);
  UapiResult r = req("set=1\nprivate_key=" + hex(priv.data()) + "\nlisten_port=51999\nfwmark=7\npublic_key=" +
                     hex(a.data()) + "\npreshared_key=" + hex(key(9).data()) +
                     "\nendpoint=[2001:db8::5]:4000\npersistent_keepalive_interval=25\nallowed_ip=10.1.0.0/16\n"
                     "allowed_ip=fd00::7/64\nprotocol_version=1\n\n");
  EXPECT_EQ(r.response, "errno=0\n\n");
  EXPECT_TRUE(r.changed);
  ASSERT_EQ(n.peers.size(), 1u);
  EXPECT_EQ(n.listen_port, 51999);
  EXPECT_EQ(n.peers[0].allowed_ips[1].to_string(), "fd00::/64");  // host bits masked, as wg-go does

  rt[a].rx_bytes = 1234;
  rt[a].tx_bytes = 99;
  rt[a].last_handshake_ns = 1'700'000'000'123'456'789ULL;
  const std::string got = req("get=1\n\n").response;
  EXPECT_EQ(got, "private_key=" + hex(priv.data()) + "\nlisten_port=51999\nfwmark=7\npublic_key=" + hex(a.data()) +
                     "\npreshared_key=" + hex(key(9).data()) +
                     "\nprotocol_version=1\nendpoint=[2001:db8::5]:4000\nlast_handshake_time_sec=1700000000\n"
                     "last_handshake_time_nsec=123456789\ntx_bytes=99\nrx_bytes=1234\n"
                     "persistent_keepalive_interval=25\nallowed_ip=10.1.0.0/16\nallowed_ip=fd00::/64\nerrno=0\n\n");
  // The same set again changes nothing.
  EXPECT_FALSE(req("set=1\npublic_key=" + hex(a.data()) + "\npersistent_keepalive_interval=25\n\n").changed);
}

TEST_F(UapiTest, AnAllowedIpMovesToTheLastPeerGivenIt) {
  req("set=1\npublic_key=" + hex(key(1).data()) + "\nallowed_ip=10.0.0.0/24\nallowed_ip=10.9.0.0/24\n\n");
  req("set=1\npublic_key=" + hex(key(2).data()) + "\nallowed_ip=10.0.0.0/24\nallowed_ip=10.0.0.0/16\n\n");
  ASSERT_EQ(n.peers.size(), 2u);
  ASSERT_EQ(n.peers[0].allowed_ips.size(), 1u);
  EXPECT_EQ(n.peers[0].allowed_ips[0].to_string(), "10.9.0.0/24");
  EXPECT_EQ(n.peers[1].allowed_ips.size(), 2u);
}

TEST_F(UapiTest, UpdateOnlyRemoveReplace) {
  req("set=1\npublic_key=" + hex(key(1).data()) + "\n\n");
  EXPECT_EQ(n.peers.size(), 1u);
  // update_only never creates.
  EXPECT_FALSE(req("set=1\npublic_key=" + hex(key(2).data()) + "\nupdate_only=true\nallowed_ip=10.0.0.0/8\n\n").changed);
  EXPECT_EQ(n.peers.size(), 1u);
  EXPECT_TRUE(req("set=1\npublic_key=" + hex(key(1).data()) + "\nupdate_only=true\nallowed_ip=10.0.0.0/8\n\n").changed);
  EXPECT_EQ(n.peers[0].allowed_ips.size(), 1u);
  EXPECT_TRUE(req("set=1\npublic_key=" + hex(key(1).data()) + "\nreplace_allowed_ips=true\n\n").changed);
  EXPECT_TRUE(n.peers[0].allowed_ips.empty());
  req("set=1\npublic_key=" + hex(key(2).data()) + "\n\n");
  EXPECT_TRUE(req("set=1\npublic_key=" + hex(key(1).data()) + "\nremove=true\n\n").changed);
  ASSERT_EQ(n.peers.size(), 1u);
  EXPECT_EQ(n.peers[0].public_key, key(2));
  EXPECT_TRUE(req("set=1\nreplace_peers=true\npublic_key=" + hex(key(3).data()) + "\n\n").changed);
  ASSERT_EQ(n.peers.size(), 1u);
  EXPECT_EQ(n.peers[0].public_key, key(3));
}

TEST_F(UapiTest, BadRequestsChangeNothing) {
  req("set=1\npublic_key=" + hex(key(1).data()) + "\nallowed_ip=10.0.0.0/24\n\n");
  const netmap::Netmap before = n;
  for (const std::string& bad : std::vector<std::string>{
           "set=1\nlisten_port=70000\n\n", "set=1\nprivate_key=abc\n\n",
        "set=1\npublic_key=" + hex(key(2).data()) + "\nallowed_ip=10.0.0.0/33\n\n",
        "set=1\npublic_key=" + hex(key(2).data()) + "\nendpoint=example.com:51820\n\n",
        "set=1\npublic_key=" + hex(key(1).data()) + "\nremove=yes\n\n",
        "set=1\npublic_key=" + hex(key(1).data()) + "\nprotocol_version=2\n\n",
        "set=1\npublic_key=" + hex(key(1).data()) + "\nno_such_key=1\n\n", "set=1\ngarbage\n\n",
        "set=1\nreplace_peers=true\npublic_key=" + hex(key(1).data()) + "\nallowed_ip=x\n\n"}) {
    const UapiResult r = req(bad);
    EXPECT_EQ(r.response, "errno=-22\n\n") << bad;
    EXPECT_FALSE(r.changed) << bad;
    EXPECT_FALSE(r.error.empty()) << bad;
    EXPECT_TRUE(n == before) << bad;
  }
  EXPECT_EQ(req("put=1\n\n").response, "errno=-71\n\n");  // -EPROTO
}

TEST_F(UapiTest, MaxPeersIsEnforced) {
  std::string s = "set=1\n";
  for (std::uint8_t i = 1; i <= 5; ++i) s += "public_key=" + hex(key(i).data()) + "\n";
  const UapiResult r = req(s + "\n");
  EXPECT_EQ(r.response, "errno=-28\n\n");  // -ENOSPC
  EXPECT_TRUE(n.peers.empty());
}

TEST_F(UapiTest, OurOwnKeyIsNotAPeer) {
  crypto::SecretKey priv;
  crypto::PublicKey pub;
  crypto::x25519_generate(priv, pub);
  req("set=1\nprivate_key=" + hex(priv.data()) + "\npublic_key=" + hex(pub.data()) + "\npublic_key=" +
      hex(key(1).data()) + "\n\n");
  ASSERT_EQ(n.peers.size(), 1u);
  EXPECT_EQ(n.peers[0].public_key, key(1));
}

}  // namespace
}  // namespace moongate::control
