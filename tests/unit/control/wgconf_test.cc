// wg(8) / wg-quick files: what showconf writes reads back the same, wg-quick
// extras are skipped and listed, mistakes are reported with their line.
#include "control/wgconf.h"

#include <gtest/gtest.h>

namespace moongate::control {
namespace {

constexpr const char* kQuick = R"(# a wg-quick file
[Interface]
PrivateKey = yAnz5TF+lXXJte14tji3zlMNq+hd2rYUIgJBgB3fBmk=
ListenPort = 51820
Address = 10.200.0.1/24, fd00:200::1/64
DNS = 10.200.0.53
PostUp = iptables -A FORWARD -i %i -j ACCEPT

[Peer]
PublicKey = xTIBA5rboUvnH4htodjb6e697QjLERt1NAB4mZqp8Dg=
PresharedKey = /UwcSPg38hW/D9Y3tcS1FOV0K1wuURMbS0sesJEP5ak=
AllowedIPs = 10.200.0.2/32, 192.168.10.0/24
Endpoint = 203.0.113.5:51820
PersistentKeepalive = 25

[peer]
publickey = TrMvSoP4jYQlY6RIzBgbssQqY3vxI2Pi+y71lOWWXX0=
AllowedIPs = 10.200.0.3/32
)";

TEST(WgConf, ParsesWgQuickAndListsWhatItSkips) {
  const WgConfResult r = parse_wgconf(kQuick, "wg0.conf");
  ASSERT_TRUE(r.errors.empty()) << r.errors[0];
  EXPECT_TRUE(r.netmap.has_private_key);
  ASSERT_EQ(r.netmap.peers.size(), 2u);
  EXPECT_EQ(r.netmap.peers[0].allowed_ips.size(), 2u);
  EXPECT_TRUE(r.netmap.peers[0].preshared_key.has_value());
  EXPECT_EQ(r.netmap.peers[0].endpoint->to_string(), "203.0.113.5:51820");
  EXPECT_EQ(r.netmap.peers[0].persistent_keepalive, 25);
  EXPECT_EQ(r.addresses, (std::vector<std::string>{"10.200.0.1/24", "fd00:200::1/64"}));
  EXPECT_EQ(r.ignored, (std::vector<std::string>{"wg0.conf:6: DNS", "wg0.conf:7: PostUp"}));
}

TEST(WgConf, FormatReadsBackTheSame) {
  const WgConfResult r = parse_wgconf(kQuick, "wg0.conf");
  const WgConfResult back = parse_wgconf(format_wgconf(r.netmap), "saved");
  ASSERT_TRUE(back.errors.empty()) << back.errors[0];
  EXPECT_TRUE(back.netmap == r.netmap);
}

TEST(WgConf, ErrorsCarryTheirLine) {
  const WgConfResult r = parse_wgconf(
      "[Interface]\nListenPort = 99999\n[Peer]\nPublicKey = nope\nAllowedIPs = 10.0.0.1/24\nWhat = 1\n[Other]\n", "x.conf");
  EXPECT_EQ(r.errors, (std::vector<std::string>{
                          "x.conf:2: ListenPort must be 0..65535", "x.conf:4: PublicKey is not a base64 key",
                          "x.conf:5: AllowedIPs 10.0.0.1/24: 10.0.0.1/24 has host bits set (did you mean 10.0.0.0/24?)",
                          "x.conf:6: unknown [Peer] key What", "x.conf:7: unknown section [Other]",
                          "x.conf: [Peer] number 1 has no PublicKey"}));
}

}  // namespace
}  // namespace moongate::control
