// The relay's HTTP routes and request parsing, without sockets.
#include <gtest/gtest.h>

#include "relay/admission.h"
#include "relay/http.h"
#include "relay/options.h"
#include "relay/websocket.h"
#include "netmap/segment.h"

#include <unistd.h>

#include <cstdio>
#include <fstream>

namespace moongate::relay {
namespace {

Response answer(const std::string& head, bool local = true) {
  Request r;
  std::size_t n = 0;
  EXPECT_EQ(parse_request(head, r, n), Parse::kDone);
  return route(r, std::string(64, 'a'), local);
}

TEST(Http, UpgradeAndFastStart) {
  std::string head = "GET /derp HTTP/1.1\r\nHost: x\r\nupgrade: DERP\r\nConnection: Upgrade\r\n\r\n";
  Request r;
  std::size_t n = 0;
  ASSERT_EQ(parse_request(head + "rest", r, n), Parse::kDone);
  EXPECT_EQ(n, head.size());  // the DERP stream starts right after the head
  Response resp = route(r, std::string(64, 'a'), false);
  EXPECT_EQ(resp.action, Action::kUpgradeDerp);
  EXPECT_EQ(resp.bytes.rfind("HTTP/1.1 101 Switching Protocols\r\n", 0), 0u);
  EXPECT_NE(resp.bytes.find("Derp-Version: 2\r\n"), std::string::npos);
  EXPECT_NE(resp.bytes.find("Derp-Public-Key: " + std::string(64, 'a') + "\r\n"), std::string::npos);
  resp = answer("GET /derp HTTP/1.1\r\nUpgrade: derp\r\nDerp-Fast-Start: 1\r\n\r\n");
  EXPECT_EQ(resp.action, Action::kUpgradeDerp);
  EXPECT_TRUE(resp.bytes.empty());  // fast start: no 101 at all
  resp = answer("GET /derp HTTP/1.1\r\n\r\n");
  EXPECT_EQ(resp.bytes.rfind("HTTP/1.1 426", 0), 0u);
  EXPECT_NE(resp.bytes.find("DERP requires connection upgrade"), std::string::npos);
}

TEST(Http, ProbesAndGenerate204) {
  for (const char* p : {"/derp/probe", "/derp/latency-check"}) {
    Response r = answer(std::string("GET ") + p + " HTTP/1.1\r\n\r\n");
    EXPECT_EQ(r.bytes.rfind("HTTP/1.1 200", 0), 0u);
    EXPECT_NE(r.bytes.find("Access-Control-Allow-Origin: *"), std::string::npos);
    r = answer(std::string("HEAD ") + p + " HTTP/1.1\r\n\r\n");
    EXPECT_EQ(r.bytes.rfind("HTTP/1.1 200", 0), 0u);
    r = answer(std::string("POST ") + p + " HTTP/1.1\r\n\r\n");
    EXPECT_EQ(r.bytes.rfind("HTTP/1.1 405", 0), 0u);
  }
  Response r = answer("GET /generate_204 HTTP/1.1\r\nX-Tailscale-Challenge: abc-1.2_3:4\r\n\r\n");
  EXPECT_EQ(r.bytes.rfind("HTTP/1.1 204", 0), 0u);
  EXPECT_NE(r.bytes.find("X-Tailscale-Response: response abc-1.2_3:4\r\n"), std::string::npos);
  EXPECT_NE(r.bytes.find("Cache-Control: no-cache"), std::string::npos);
  r = answer("GET /generate_204 HTTP/1.1\r\nX-Tailscale-Challenge: a b\r\n\r\n");
  EXPECT_EQ(r.bytes.find("X-Tailscale-Response"), std::string::npos);
  EXPECT_FALSE(valid_challenge(std::string(65, 'a')));
  EXPECT_TRUE(valid_challenge(std::string(64, 'a')));
}

TEST(Http, VarzOnlyLocal) {
  EXPECT_EQ(answer("GET /debug/varz HTTP/1.1\r\n\r\n", true).action, Action::kVarz);
  Response r = answer("GET /debug/varz HTTP/1.1\r\n\r\n", false);
  EXPECT_EQ(r.action, Action::kRespond);
  EXPECT_EQ(r.bytes.rfind("HTTP/1.1 403", 0), 0u);
  EXPECT_EQ(answer("GET /nope HTTP/1.1\r\n\r\n").bytes.rfind("HTTP/1.1 404", 0), 0u);
}

TEST(Http, MalformedAndOversize) {
  Request r;
  std::size_t n;
  EXPECT_EQ(parse_request("GET /derp HTTP/1.1\r\nUpgrade: DERP\r\n", r, n), Parse::kIncomplete);
  EXPECT_EQ(parse_request("garbage\r\n\r\n", r, n), Parse::kBad);
  EXPECT_EQ(parse_request("GET derp HTTP/1.1\r\n\r\n", r, n), Parse::kBad);
  EXPECT_EQ(parse_request("GET / SPDY/3\r\n\r\n", r, n), Parse::kBad);
  EXPECT_EQ(parse_request("GET / HTTP/1.1\r\nno colon\r\n\r\n", r, n), Parse::kBad);
  EXPECT_EQ(parse_request(std::string(kMaxRequestHead + 1, 'a'), r, n), Parse::kTooLarge);
  EXPECT_EQ(parse_request("GET / HTTP/1.1\r\nX: " + std::string(kMaxRequestHead, 'a') + "\r\n\r\n", r, n),
            Parse::kTooLarge);
}

TEST(WebSocket, UpgradeNeedsTheDerpSubprotocol) {
  // RFC 6455 section 1.3's example key and answer.
  EXPECT_EQ(ws_accept("dGhlIHNhbXBsZSBub25jZQ=="), "s3pPLMBiTxaQ9kYGzzhZRbK+xOo=");
  Response r = answer(
      "GET /derp HTTP/1.1\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
      "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Protocol: chat, derp\r\n\r\n");
  EXPECT_EQ(r.action, Action::kUpgradeWebSocket);
  EXPECT_NE(r.bytes.find("Sec-WebSocket-Accept: s3pPLMBiTxaQ9kYGzzhZRbK+xOo=\r\n"), std::string::npos);
  EXPECT_NE(r.bytes.find("Sec-WebSocket-Protocol: derp\r\n"), std::string::npos);
  r = answer("GET /derp HTTP/1.1\r\nUpgrade: websocket\r\nSec-WebSocket-Key: x\r\n\r\n");
  EXPECT_EQ(r.bytes.rfind("HTTP/1.1 426", 0), 0u);
}

std::string masked(std::uint8_t op, const std::string& payload, bool fin = true) {
  std::string f;
  f += static_cast<char>((fin ? 0x80 : 0) | op);
  const std::uint8_t mask[4] = {0x12, 0x34, 0x56, 0x78};
  if (payload.size() < 126) {
    f += static_cast<char>(0x80 | payload.size());
  } else {
    f += static_cast<char>(0x80 | 126);
    f += static_cast<char>(payload.size() >> 8);
    f += static_cast<char>(payload.size() & 0xff);
  }
  f.append(reinterpret_cast<const char*>(mask), 4);
  for (std::size_t i = 0; i < payload.size(); ++i) f += static_cast<char>(payload[i] ^ mask[i & 3]);
  return f;
}

TEST(WebSocket, ReaderUnmasksAcrossSplitsAndAnswersPings) {
  const std::string big(300, 'q');
  const std::string stream = masked(kWsBinary, "hello", false) + masked(0, " world") +
                             masked(kWsPing, "pp") + masked(kWsBinary, big);
  for (std::size_t cut = 0; cut <= stream.size(); cut += 7) {
    WsReader r;
    std::string data, pings;
    auto on_data = [&](std::span<const std::uint8_t> d) { data.append(reinterpret_cast<const char*>(d.data()), d.size()); };
    auto on_ctrl = [&](std::uint8_t op, std::span<const std::uint8_t> p) {
      if (op == kWsPing) pings.append(reinterpret_cast<const char*>(p.data()), p.size());
    };
    const auto* p = reinterpret_cast<const std::uint8_t*>(stream.data());
    ASSERT_EQ(r.feed({p, cut}, on_data, on_ctrl), WsReader::Status::kOk);
    ASSERT_EQ(r.feed({p + cut, stream.size() - cut}, on_data, on_ctrl), WsReader::Status::kOk);
    EXPECT_EQ(data, "hello world" + big);
    EXPECT_EQ(pings, "pp");
  }
  WsReader r;
  auto nop_d = [](std::span<const std::uint8_t>) {};
  auto nop_c = [](std::uint8_t, std::span<const std::uint8_t>) {};
  const std::string close = masked(kWsClose, "");
  EXPECT_EQ(r.feed({reinterpret_cast<const std::uint8_t*>(close.data()), close.size()}, nop_d, nop_c),
            WsReader::Status::kClosed);
  WsReader r2;
  const std::uint8_t unmasked[] = {0x82, 0x01, 0x00};
  EXPECT_EQ(r2.feed(unmasked, nop_d, nop_c), WsReader::Status::kBad);
  WsReader r3;
  const std::string text = masked(0x1, "text");
  EXPECT_EQ(r3.feed({reinterpret_cast<const std::uint8_t*>(text.data()), text.size()}, nop_d, nop_c),
            WsReader::Status::kBad);
  std::uint8_t h[10];
  EXPECT_EQ(ws_header(h, kWsBinary, 5), 2u);
  EXPECT_EQ(ws_header(h, kWsBinary, 1000), 4u);
  EXPECT_EQ(ws_header(h, kWsBinary, 70000), 10u);
  EXPECT_EQ(h[0], 0x82);
}

TEST(Options, MeshPeersAndAdmission) {
  MeshPeer p;
  ASSERT_TRUE(parse_mesh_peer("https://derp1.example.com", p));
  EXPECT_EQ(p.host, "derp1.example.com");
  EXPECT_EQ(p.port, 443);
  EXPECT_TRUE(p.tls);
  ASSERT_TRUE(parse_mesh_peer("http://127.0.0.1:8080/", p));
  EXPECT_EQ(p.port, 8080);
  EXPECT_FALSE(p.tls);
  ASSERT_TRUE(parse_mesh_peer("[::1]:444", p));
  EXPECT_EQ(p.host, "::1");
  EXPECT_EQ(p.port, 444);
  EXPECT_FALSE(parse_mesh_peer("host:notaport", p));

  const char* argv[] = {"moongate-relay", "--plain", "--addr", "127.0.0.1:0", "--admission",
                        "keys:/tmp/k", "--stun-port", "-1", "--rate-limit", "1000"};
  Options o;
  std::string err;
  ASSERT_TRUE(parse_options(10, const_cast<char**>(argv), o, err)) << err;
  EXPECT_EQ(o.port, 0);
  EXPECT_EQ(o.admission.mode, AdmissionMode::kKeys);
  EXPECT_EQ(o.admission.keys_file, "/tmp/k");
  EXPECT_EQ(o.stun_port, -1);
  EXPECT_EQ(o.rate_bytes_per_second, 1000u);
  const char* bad[] = {"moongate-relay", "--addr", "127.0.0.1:0"};  // TLS without a hostname
  Options o2;
  EXPECT_FALSE(parse_options(3, const_cast<char**>(bad), o2, err));
}

TEST(Options, RelayYamlSection) {
  Options o;
  std::string err;
  ASSERT_TRUE(load_relay_yaml(R"(interface: {name: mg0}
relay:
  addr: 127.0.0.1:8443
  hostname: derp1.example.com
  stun_port: 3479
  shards: 2
  mesh-with: [https://derp2.example.com, "http://10.0.0.3:8080"]
  mesh_insecure: true
  admission: netmap:mg0
  rate_limit: 1000000
)",
                              "site.yaml", o, err))
      << err;
  EXPECT_EQ(o.port, 8443);
  EXPECT_EQ(o.hostname, "derp1.example.com");
  EXPECT_EQ(o.stun_port, 3479);
  EXPECT_EQ(o.shards, 2u);
  ASSERT_EQ(o.mesh_with.size(), 2u);
  EXPECT_FALSE(o.mesh_with[1].tls);
  EXPECT_TRUE(o.mesh_insecure);
  EXPECT_EQ(o.admission.mode, AdmissionMode::kNetmap);
  EXPECT_EQ(o.rate_bytes_per_second, 1000000u);
  // The moon's file: relative to the relay's YAML file, like moongate-moon's paths.
  Options moon;
  ASSERT_TRUE(load_relay_yaml("relay:\n  moon_config: moon.yaml\n", "/etc/moongate/relay.yaml", moon, err)) << err;
  EXPECT_EQ(moon.moon_config, "/etc/moongate/moon.yaml");
  ASSERT_TRUE(load_relay_yaml("relay:\n  moon-config: /srv/m.yaml\n", "/etc/relay.yaml", moon, err)) << err;
  EXPECT_EQ(moon.moon_config, "/srv/m.yaml");
  Options none;
  EXPECT_TRUE(load_relay_yaml("interface: {name: mg0}\n", "x.yaml", none, err));
  EXPECT_EQ(none.port, 443);

  Options bad;
  EXPECT_FALSE(load_relay_yaml("relay:\n  addr: 127.0.0.1:1\n  colour: blue\n", "b.yaml", bad, err));
  EXPECT_EQ(err, "b.yaml:3:3: relay.colour: unknown key");
  EXPECT_FALSE(load_relay_yaml("relay:\n  plain: maybe\n", "b.yaml", bad, err));
  EXPECT_EQ(err, "b.yaml:2:10: relay.plain: want true or false");
  EXPECT_FALSE(load_relay_yaml("relay:\n  stun_port: 99999\n", "b.yaml", bad, err));
  EXPECT_NE(err.find("not a port"), std::string::npos);
  EXPECT_FALSE(load_relay_yaml("relay: [\n", "b.yaml", bad, err));
}

TEST(Admission, KeysFile) {
  std::vector<derp::Key> keys;
  std::string err;
  ASSERT_TRUE(parse_keys("# c\n\n  nodekey:" + std::string(64, 'a') + "  # x\n" + std::string(64, 'B') + "\n",
                         keys, err))
      << err;
  ASSERT_EQ(keys.size(), 2u);
  EXPECT_EQ(keys[0][0], 0xaa);
  EXPECT_EQ(keys[1][31], 0xbb);
  keys.clear();
  EXPECT_FALSE(parse_keys("abc\n", keys, err));
  EXPECT_NE(err.find("line 1"), std::string::npos);
}

TEST(Admission, KeysFileMode) {
  char path[] = "/tmp/hd-keys-XXXXXX";
  const int fd = mkstemp(path);
  ASSERT_GE(fd, 0);
  close(fd);
  derp::Key good, bad;
  good.fill(0x11);
  bad.fill(0x22);
  std::ofstream(path) << derp::key_hex(good) << "\n";
  AdmissionConfig cfg;
  cfg.mode = AdmissionMode::kKeys;
  cfg.keys_file = path;
  {
    Admitter a(cfg);
    ASSERT_EQ(a.start(), "");
    EXPECT_EQ(a.check(good, "1.2.3.4", nullptr), derp::Admission::kAllow);
    EXPECT_EQ(a.check(bad, "1.2.3.4", nullptr), derp::Admission::kDeny);
  }
  std::remove(path);
  Admitter missing(cfg);
  EXPECT_NE(missing.start(), "");  // a keys file that cannot be read is an error at start
}

TEST(Admission, NetmapMode) {
  // The segment moongate-control publishes, made here with one peer.
  const std::string iface = "hd-unit-" + std::to_string(getpid());
  const std::string name = netmap::Segment::name_for(iface);
  std::string err;
  auto seg = netmap::Segment::create_or_open(name, netmap::Geometry::for_peers(16), err);
  ASSERT_TRUE(seg) << err;
  netmap::Netmap nm;
  config::Peer p;
  p.public_key.fill(0x33);
  nm.peers.push_back(p);
  ASSERT_EQ(seg->publish(nm), "");
  AdmissionConfig cfg;
  cfg.mode = AdmissionMode::kNetmap;
  cfg.netmap_interface = iface;
  {
    Admitter a(cfg);
    ASSERT_EQ(a.start(), "");
    derp::Key k;
    k.fill(0x33);
    EXPECT_EQ(a.check(k, "", nullptr), derp::Admission::kAllow);
    k.fill(0x44);
    EXPECT_EQ(a.check(k, "", nullptr), derp::Admission::kDeny);
    EXPECT_EQ(a.known_keys(), 1u);
  }
  netmap::Segment::unlink(name);
}

}  // namespace
}  // namespace moongate::relay
