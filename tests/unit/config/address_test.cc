// Addresses, prefixes and endpoints: accepted spellings, canonical output
// (RFC 5952), and the reason given for each refusal.
#include "config/address.h"

#include <gtest/gtest.h>

#include <string>

namespace moongate::config {
namespace {

std::string canon(const char* text) {
  std::string why;
  const auto a = parse_ip_address(text, &why);
  return a ? a->to_string() : "error: " + why;
}

std::string net(const char* text) {
  std::string why;
  const auto p = parse_ip_prefix(text, PrefixKind::kNetwork, &why);
  return p ? p->to_string() : "error: " + why;
}

std::string host(const char* text) {
  std::string why;
  const auto p = parse_ip_prefix(text, PrefixKind::kHostInSubnet, &why);
  return p ? p->to_string() : "error: " + why;
}

std::string ep(const char* text) {
  std::string why;
  const auto e = parse_endpoint(text, &why);
  return e ? e->to_string() : "error: " + why;
}

TEST(IpAddress, Ipv4) {
  const auto a = parse_ip_address("192.0.2.1");
  ASSERT_TRUE(a);
  EXPECT_EQ(a->family, 4);
  EXPECT_EQ(a->bytes[0], 192);
  EXPECT_EQ(a->bytes[3], 1);
  for (int i = 4; i < 16; ++i) EXPECT_EQ(a->bytes[i], 0) << i;
  EXPECT_EQ(canon("0.0.0.0"), "0.0.0.0");
  EXPECT_EQ(canon("255.255.255.255"), "255.255.255.255");
}

TEST(IpAddress, Ipv4Refusals) {
  for (const char* bad : {"256.0.0.1", "1.2.3", "1.2.3.4.5", "1.2.3.", ".1.2.3", "1..2.3",
                          "01.2.3.4", "1.2.3.4 ", " 1.2.3.4", "1.2.3.-4", "0x1.2.3.4", "", "a"}) {
    EXPECT_EQ(canon(bad), "error: '" + std::string(bad) + "' is not an IPv4 or IPv6 address")
        << bad;
  }
}

TEST(IpAddress, Ipv6CanonicalForms) {
  EXPECT_EQ(canon("::"), "::");
  EXPECT_EQ(canon("::1"), "::1");
  EXPECT_EQ(canon("1::"), "1::");
  EXPECT_EQ(canon("2001:DB8::1"), "2001:db8::1");
  EXPECT_EQ(canon("2001:0db8:0000:0000:0000:0000:0000:0001"), "2001:db8::1");
  // The longest zero run is compressed; the first of equal runs.
  EXPECT_EQ(canon("2001:db8:0:0:1:0:0:1"), "2001:db8::1:0:0:1");
  EXPECT_EQ(canon("2001:0:0:1:0:0:0:1"), "2001:0:0:1::1");
  // A single zero word is not compressed (RFC 5952 section 4.2.2).
  EXPECT_EQ(canon("2001:db8:0:1:1:1:1:1"), "2001:db8:0:1:1:1:1:1");
  // Embedded IPv4 text is accepted (NAT64) and printed in hex.
  EXPECT_EQ(canon("64:ff9b::192.0.2.1"), "64:ff9b::c000:201");
  const auto a = parse_ip_address("fd00::1");
  ASSERT_TRUE(a);
  EXPECT_EQ(a->family, 6);
  EXPECT_EQ(a->bytes[0], 0xfd);
  EXPECT_EQ(a->bytes[15], 1);
}

TEST(IpAddress, Ipv6Refusals) {
  EXPECT_EQ(canon("::ffff:192.0.2.1"),
            "error: '::ffff:192.0.2.1' is an IPv4-mapped IPv6 address: write it as 192.0.2.1");
  EXPECT_EQ(canon("::ffff:c000:201"),
            "error: '::ffff:c000:201' is an IPv4-mapped IPv6 address: write it as 192.0.2.1");
  EXPECT_EQ(canon("fe80::1%eth0"),
            "error: 'fe80::1%eth0': IPv6 zone indexes (%name) are not supported");
  for (const char* bad : {":::", "1:2:3:4:5:6:7:8:9", "12345::", "g::1", "1::2::3", "[::1]"}) {
    EXPECT_EQ(canon(bad), "error: '" + std::string(bad) + "' is not an IPv4 or IPv6 address")
        << bad;
  }
}

TEST(IpAddress, Classes) {
  EXPECT_TRUE(parse_ip_address("0.0.0.0")->is_unspecified());
  EXPECT_TRUE(parse_ip_address("::")->is_unspecified());
  EXPECT_FALSE(parse_ip_address("::1")->is_unspecified());
  EXPECT_TRUE(parse_ip_address("239.1.1.1")->is_multicast());
  EXPECT_TRUE(parse_ip_address("ff02::1")->is_multicast());
  EXPECT_FALSE(parse_ip_address("fe80::1")->is_multicast());
  EXPECT_LT(*parse_ip_address("10.0.0.1"), *parse_ip_address("10.0.0.2"));
  EXPECT_NE(*parse_ip_address("10.0.0.1"), *parse_ip_address("::a00:1"));
}

TEST(IpPrefix, Network) {
  EXPECT_EQ(net("10.20.0.0/16"), "10.20.0.0/16");
  EXPECT_EQ(net("0.0.0.0/0"), "0.0.0.0/0");
  EXPECT_EQ(net("::/0"), "::/0");
  EXPECT_EQ(net("fd00:20::/48"), "fd00:20::/48");
  EXPECT_EQ(net("FD00:20:0::/48"), "fd00:20::/48");
  // A bare address is a host route, as wg(8) reads it.
  EXPECT_EQ(net("10.0.0.7"), "10.0.0.7/32");
  EXPECT_EQ(net("fd00::7"), "fd00::7/128");
  EXPECT_EQ(net("10.20.1.0/16"),
            "error: 10.20.1.0/16 has host bits set (did you mean 10.20.0.0/16?)");
  EXPECT_EQ(net("10.20.0.1/31"),
            "error: 10.20.0.1/31 has host bits set (did you mean 10.20.0.0/31?)");
  EXPECT_EQ(net("fd00:20::1/48"),
            "error: fd00:20::1/48 has host bits set (did you mean fd00:20::/48?)");
  EXPECT_EQ(net("10.0.0.0/33"),
            "error: '10.0.0.0/33': prefix length /33 is too long for IPv4 (at most /32)");
  EXPECT_EQ(net("::/129"),
            "error: '::/129': prefix length /129 is too long for IPv6 (at most /128)");
  EXPECT_EQ(net("10.0.0.0/"), "error: '10.0.0.0/': prefix length '' is not a number");
  EXPECT_EQ(net("10.0.0.0/08"), "error: '10.0.0.0/08': prefix length '08' is not a number");
  EXPECT_EQ(net("10.0.0.0/-1"), "error: '10.0.0.0/-1': prefix length '-1' is not a number");
  EXPECT_EQ(net("10.0.0/8"), "error: '10.0.0' is not an IPv4 or IPv6 address");
}

TEST(IpPrefix, HostInSubnet) {
  EXPECT_EQ(host("192.0.2.2/24"), "192.0.2.2/24");
  EXPECT_EQ(host("192.0.2.0/31"), "192.0.2.0/31");  // RFC 3021 point-to-point
  EXPECT_EQ(host("192.0.2.7/32"), "192.0.2.7/32");
  EXPECT_EQ(host("fd00:99::1/64"), "fd00:99::1/64");
  EXPECT_EQ(host("fd00:99::/127"), "fd00:99::/127");  // RFC 6164
  EXPECT_EQ(host("192.0.2.2"),
            "error: '192.0.2.2' needs a prefix length for its subnet, e.g. 192.0.2.2/24");
  EXPECT_EQ(host("fd00::2"),
            "error: 'fd00::2' needs a prefix length for its subnet, e.g. fd00::2/64");
  EXPECT_EQ(host("192.0.2.0/24"),
            "error: 192.0.2.0/24 is the subnet's network address, not a host address");
  EXPECT_EQ(host("192.0.2.255/24"),
            "error: 192.0.2.255/24 is the subnet's broadcast address, not a host address");
  EXPECT_EQ(host("fd00:99::/64"),
            "error: fd00:99::/64 is the subnet's network address, not a host address (the "
            "subnet-router anycast address)");
  EXPECT_EQ(host("0.0.0.0/8"), "error: 0.0.0.0/8: the unspecified address is not a host address");
  EXPECT_EQ(host("224.0.0.1/4"), "error: 224.0.0.1/4: a multicast address is not a host address");
}

TEST(IpPrefix, ContainsAndOverlaps) {
  const IpPrefix p = *parse_ip_prefix("10.10.0.1/24", PrefixKind::kHostInSubnet);
  EXPECT_EQ(p.network().to_string(), "10.10.0.0/24");
  EXPECT_TRUE(p.contains(*parse_ip_address("10.10.0.254")));
  EXPECT_FALSE(p.contains(*parse_ip_address("10.10.1.1")));
  EXPECT_FALSE(p.contains(*parse_ip_address("::a0a:1")));  // other family
  const IpPrefix odd = *parse_ip_prefix("10.0.0.0/13", PrefixKind::kNetwork);
  EXPECT_TRUE(odd.contains(*parse_ip_address("10.7.255.255")));
  EXPECT_FALSE(odd.contains(*parse_ip_address("10.8.0.0")));
  const IpPrefix all = *parse_ip_prefix("0.0.0.0/0", PrefixKind::kNetwork);
  EXPECT_TRUE(all.overlaps(p));
  EXPECT_TRUE(p.overlaps(all));
  EXPECT_FALSE(all.overlaps(*parse_ip_prefix("::/0", PrefixKind::kNetwork)));
  EXPECT_FALSE(p.overlaps(*parse_ip_prefix("10.10.1.0/24", PrefixKind::kNetwork)));
}

TEST(Endpoint, Forms) {
  EXPECT_EQ(ep("198.51.100.7:51820"), "198.51.100.7:51820");
  EXPECT_EQ(ep("[2001:DB8::7]:1"), "[2001:db8::7]:1");
  EXPECT_EQ(ep("[::1]:65535"), "[::1]:65535");
  const auto e = parse_endpoint("[2001:db8::7]:51820");
  ASSERT_TRUE(e);
  EXPECT_EQ(e->addr.family, 6);
  EXPECT_EQ(e->port, 51820);
}

TEST(Endpoint, Refusals) {
  const std::string how = " (write host:port, e.g. 198.51.100.7:51820 or [2001:db8::1]:51820)";
  EXPECT_EQ(
      ep("vpn.example.com:51820"),
      "error: 'vpn.example.com:51820': DNS names are not supported, write an IP address" + how);
  EXPECT_EQ(ep("vpn.example.com"),
            "error: 'vpn.example.com': DNS names are not supported, write an IP address" + how);
  EXPECT_EQ(ep("198.51.100.7"), "error: '198.51.100.7': missing port" + how);
  EXPECT_EQ(ep("2001:db8::7"),
            "error: '2001:db8::7': missing port; an IPv6 endpoint is written [2001:db8::7]:51820");
  EXPECT_EQ(ep("2001:db8::7:51820"),
            "error: '2001:db8::7:51820': an IPv6 endpoint needs brackets: [2001:db8::7]:51820");
  // Without brackets the last group may be read as part of the address.
  EXPECT_EQ(ep("2001:db8::7:5182"),
            "error: '2001:db8::7:5182': missing port; an IPv6 endpoint is written "
            "[2001:db8::7:5182]:51820");
  EXPECT_EQ(ep("2001:db8::g:51820"), "error: '2001:db8::g:51820' is not an endpoint" + how);
  EXPECT_EQ(ep("[2001:db8::7]"), "error: '[2001:db8::7]': missing port after ']'" + how);
  EXPECT_EQ(ep("[2001:db8::7:51820"), "error: '[2001:db8::7:51820': missing ']'" + how);
  EXPECT_EQ(ep("[198.51.100.7]:51820"),
            "error: '[198.51.100.7]:51820': brackets are for IPv6 addresses; write "
            "198.51.100.7:51820");
  EXPECT_EQ(ep("198.51.100.7:0"), "error: '198.51.100.7:0': port '0' is not a number 1..65535");
  EXPECT_EQ(ep("198.51.100.7:65536"),
            "error: '198.51.100.7:65536': port '65536' is not a number 1..65535");
  EXPECT_EQ(ep("198.51.100.7:"), "error: '198.51.100.7:': port '' is not a number 1..65535");
  EXPECT_EQ(ep("0.0.0.0:51820"), "error: '0.0.0.0:51820': 0.0.0.0 cannot be a peer's address");
  EXPECT_EQ(ep("[ff02::1]:51820"), "error: '[ff02::1]:51820': ff02::1 cannot be a peer's address");
  EXPECT_EQ(ep("[::ffff:198.51.100.7]:51820"),
            "error: '[::ffff:198.51.100.7]:51820': '::ffff:198.51.100.7' is an IPv4-mapped IPv6 "
            "address: write it as 198.51.100.7");
  EXPECT_EQ(ep("300.1.1.1:5"), "error: '300.1.1.1:5': '300.1.1.1' is not an IPv4 or IPv6 address");
}

}  // namespace
}  // namespace moongate::config
