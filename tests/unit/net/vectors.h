// Known packets used as test vectors, with where each comes from.
//
//  - RFC 1071 / RFC 1624 arithmetic examples and the IPv4 header example of
//    Wikipedia's "Internet checksum" article (checksum 0xb861).
//  - Packets generated with scapy by the DPDK project (app/test/test_cksum.c,
//    BSD-3-Clause): independent checksums for TCP/UDP over IPv4/IPv6.
//  - Frames captured from Linux 6.x (Debian 12 kernel) over a TAP device in
//    a network namespace: its ARP, Neighbor Discovery, echo requests and
//    ICMP errors while routing (tap0 02:00:00:00:00:01 10.7.0.1/24
//    fd00::1/64; the peer, 02:00:00:00:00:02 10.7.0.2 / fd00::2, was
//    moongate_net). In that run Linux also answered the ARP request and NS
//    built by moongate_net, accepted its ARP reply, NA and echo replies,
//    and lowered its path MTU on its Fragmentation Needed / Packet Too Big.
#pragma once

#include <string_view>

namespace moongate::net::test::vectors {

// Wikipedia, "Internet checksum": IPv4 header, checksum 0xb861.
inline constexpr std::string_view kWikipediaIpv4Header =
    "4500 0073 0000 4000 4011 b861 c0a8 0001 c0a8 00c7";

// --- scapy (via DPDK app/test/test_cksum.c); Ethernet header included ---
// Ether()/IP()/TCP(): 127.0.0.1 -> 127.0.0.1, 20 -> 80, SYN, TCP checksum 0x917c.
inline constexpr std::string_view kScapyIpv4Tcp =
    "ffffffffffff 000000000000 0800"
    "4500 0028 0001 0000 4006 7ccd 7f000001 7f000001"
    "0014 0050 00000000 00000000 5002 2000 917c 0000";
// Ether()/IPv6()/TCP(): ::1 -> ::1, SYN, checksum 0x8f7d (the capture
// carries ethertype 0x0800 by mistake: use the bytes from offset 14).
inline constexpr std::string_view kScapyIpv6Tcp =
    "ffffffffffff 000000000000 0800"
    "6000 0000 0014 0640 00000000000000000000000000000001 00000000000000000000000000000001"
    "0014 0050 00000000 00000000 5002 2000 8f7d 0000";
// Ether()/IP()/UDP()/Raw('x'): 53 -> 53, checksum 0x896f.
inline constexpr std::string_view kScapyIpv4Udp =
    "ffffffffffff 000000000000 0800"
    "4500 001d 0001 0000 4011 7ccd 7f000001 7f000001"
    "0035 0035 0009 896f 78";
// Ether()/IPv6()/UDP()/Raw('x'): checksum 0x8770.
inline constexpr std::string_view kScapyIpv6Udp =
    "ffffffffffff 000000000000 86dd"
    "6000 0000 0009 1140 00000000000000000000000000000001 00000000000000000000000000000001"
    "0035 0035 0009 8770 78";
// Ether()/IP(options='\x00')/UDP()/Raw('x'): IHL 6, header checksum 0x7bc9.
inline constexpr std::string_view kScapyIpv4OptsUdp =
    "ffffffffffff 000000000000 0800"
    "4600 0021 0001 0000 4011 7bc9 7f000001 7f000001 00000000"
    "0035 0035 0009 896f 78";
// Ether()/IP()/TCP(options=[NOP,NOP,Timestamps])/113 random bytes: an ACK
// with an odd-length payload, TCP checksum 0x4bc1.
inline constexpr std::string_view kScapyIpv4TcpTimestamps =
    "00163e0b6bd2 eeffffffffff 0800"
    "4500 00a5 4610 4000 4006 80b5 c0a8f91d c0a8f91e"
    "dca2 1451 bb8fa000 e47ce4b8 8010 0200 4bc1 0000 0101 080a 9060f4ff 03c5b419"
    "7734d4dc8486ff440963362e269b9070f2edc85b87aab4676b323dc4bf15a9166c2a9db2b76b5844"
    "58124b8fe51211909468 37ad0a9bd679f2b731cf4422c8993fe5e7acc70b86dfdaed0a0f86d748e2"
    "f1c243ed473aea252dd660383007 28dd1f0cdd7b7cd9359d14aac635d10338b1f5";

// --- Linux, captured ---
// ARP who-has 10.7.0.3 tell 10.7.0.1 (42 bytes: Linux does not pad; the NIC does).
inline constexpr std::string_view kLinuxArpRequest =
    "ffffffffffff 020000000001 0806"
    "0001 0800 06 04 0001 020000000001 0a070001 000000000000 0a070003";
// Linux's reply to moongate's "who-has 10.7.0.1 tell 10.7.0.2".
inline constexpr std::string_view kLinuxArpReply =
    "020000000002 020000000001 0806"
    "0001 0800 06 04 0002 020000000001 0a070001 020000000002 0a070002";
// moongate's who-has 10.7.0.1 tell 10.7.0.2, which Linux answered.
inline constexpr std::string_view kOurArpRequest =
    "ffffffffffff 020000000002 0806"
    "0001 0800 06 04 0001 020000000002 0a070002 000000000000 0a070001"
    "000000000000000000000000000000000000";

// Duplicate address detection for fe80::ff:fe00:1: from ::, to
// ff02::1:ff00:1, with a Nonce option (type 14, RFC 7527) and no source
// link-layer address option.
inline constexpr std::string_view kLinuxDadNs =
    "3333ff000001 020000000001 86dd"
    "6000 0000 0020 3a ff 00000000000000000000000000000000 ff0200000000000000000001ff000001"
    "87 00 11f7 00000000 fe80000000000000000000fffe000001 0e01 7fbab730263a";
// NS for fd00::3 from fd00::1, to ff02::1:ff00:3, source link-layer address option.
inline constexpr std::string_view kLinuxNs =
    "3333ff000003 020000000001 86dd"
    "6000 0000 0020 3a ff fd000000000000000000000000000001 ff0200000000000000000001ff000003"
    "87 00 7d95 00000000 fd000000000000000000000000000003 0101 020000000001";
// Linux's NA answering moongate's NS for fd00::1: R, S, O set, target
// link-layer address option.
inline constexpr std::string_view kLinuxNa =
    "020000000002 020000000001 86dd"
    "6000 0000 0020 3a ff fd000000000000000000000000000001 fd000000000000000000000000000002"
    "88 00 9c9b e0000000 fd000000000000000000000000000001 0201 020000000001";
// moongate's NS for fd00::1 from fd00::2, which Linux answered with kLinuxNa.
inline constexpr std::string_view kOurNs =
    "3333ff000001 020000000002 86dd"
    "6000 0000 0020 3a ff fd000000000000000000000000000002 ff0200000000000000000001ff000001"
    "87 00 7d97 00000000 fd000000000000000000000000000001 0101 020000000002";

// ping 10.7.0.2 (56 data bytes) and moongate's in-place reply, which ping accepted.
inline constexpr std::string_view kLinuxEchoRequestV4 =
    "020000000002 020000000001 0800"
    "4500 0054 8ff9 4000 4001 969f 0a070001 0a070002"
    "08 00 ef1b 781c 0001 ce72026b00000000f4150d0000000000"
    "101112131415161718191a1b1c1d1e1f202122232425262728292a2b2c2d2e2f3031323334353637";
inline constexpr std::string_view kOurEchoReplyV4 =
    "020000000001 020000000002 0800"
    "4500 0054 8ff9 4000 4001 969f 0a070002 0a070001"
    "00 00 f71b 781c 0001 ce72026b00000000f4150d0000000000"
    "101112131415161718191a1b1c1d1e1f202122232425262728292a2b2c2d2e2f3031323334353637";
// ping -6 fd00::2 and moongate's reply, which ping accepted.
inline constexpr std::string_view kLinuxEchoRequestV6 =
    "020000000002 020000000001 86dd"
    "600c 1f96 0040 3a 40 fd000000000000000000000000000001 fd000000000000000000000000000002"
    "80 00 5b8e 781f 0001 ce72026b0000000015210d0000000000"
    "101112131415161718191a1b1c1d1e1f202122232425262728292a2b2c2d2e2f3031323334353637";
inline constexpr std::string_view kOurEchoReplyV6 =
    "020000000001 020000000002 86dd"
    "600c 1f96 0040 3a 40 fd000000000000000000000000000002 fd000000000000000000000000000001"
    "81 00 5a8e 781f 0001 ce72026b0000000015210d0000000000"
    "101112131415161718191a1b1c1d1e1f202122232425262728292a2b2c2d2e2f3031323334353637";

// Linux routing errors about packets from 10.7.0.2 / fd00::2 to
// 10.8.0.5 / fd00:1::5 through a 1280-byte-MTU link: the IP header and the
// 8-byte ICMP header (the quote follows: the offending packet from its
// start, 548 / 1232 bytes at most). The offending packets are rebuilt by
// the tests (offending_udp4 / offending_udp6 in icmp_test.cc).
// 1400-byte UDP payload, DF -> Fragmentation Needed, MTU 1280, 576 bytes.
inline constexpr std::string_view kLinuxFragNeededHead =
    "45c0 0240 919a 0000 4001 d252 0a070001 0a070002 03 04 20b2 0000 0500";
// 100-byte UDP payload, TTL 1 -> Time Exceeded, 156 bytes.
inline constexpr std::string_view kLinuxTimeExceededV4Head =
    "45c0 009c 91b7 0000 4001 d3d9 0a070001 0a070002 0b 00 0993 00000000";
// 1400-byte UDP payload -> Packet Too Big, MTU 1280, 1280 bytes.
inline constexpr std::string_view kLinuxPacketTooBigHead =
    "6007 f176 04d8 3a 40 fd000000000000000000000000000001 fd000000000000000000000000000002"
    "02 00 5b8c 00000500";
// 100-byte UDP payload, hop limit 1 -> Time Exceeded, 196 bytes.
inline constexpr std::string_view kLinuxTimeExceededV6Head =
    "600c dd0a 009c 3a 40 fd000000000000000000000000000001 fd000000000000000000000000000002"
    "03 00 9134 00000000";

}  // namespace moongate::net::test::vectors
