// Fuzzes the DERP server core (derp/server.h) and client core (derp/client.h)
// with arbitrary byte streams:
//   1. as what a client sends after a completed handshake (split at the
//      first input byte's offset, so frames straddle receive() calls)
//   2. as what a client sends before ClientInfo
//   3. as what a mesh peer sends (WatchConns, ForwardPacket, ClosePeer)
//   4. as what a server sends to the client core
// Oracles: no sanitizer report; every frame buffer goes back to the pool
// once the connections are closed; a second client stays served (a packet
// sent to it after the input arrives whole).
#include <sodium.h>

#include <cstdlib>
#include <cstring>
#include <string>
#include <vector>

#include "derp/client.h"
#include "derp/server.h"

namespace {

using namespace moongate::derp;

struct Sink : Events {
  std::vector<ConnId> closes;
  void want_write(ConnId) override {}
  void close(ConnId c, CloseReason) override { closes.push_back(c); }
  Admission admit(ConnId, const Key&, const ClientInfo&, const IpPort&) override {
    return Admission::kAllow;
  }
  void forward(Route, const Key&, const Key&, std::span<const std::uint8_t>) override {}
  void local_peer(const Key&, const IpPort&, std::uint8_t, bool) override {}
};

struct Keys {
  moongate::crypto::SecretKey server_priv, a_priv, b_priv;
  Key server_pub{}, a_pub{}, b_pub{}, mesh{};
  Keys() {
    if (sodium_init() < 0) std::abort();
    // Fixed keys: every input starts from the same state.
    for (int i = 0; i < 32; ++i) {
      server_priv.data()[i] = static_cast<std::uint8_t>(i + 1);
      a_priv.data()[i] = static_cast<std::uint8_t>(i + 101);
      b_priv.data()[i] = static_cast<std::uint8_t>(i + 201);
    }
    crypto_scalarmult_base(server_pub.data(), server_priv.data());
    crypto_scalarmult_base(a_pub.data(), a_priv.data());
    crypto_scalarmult_base(b_pub.data(), b_priv.data());
    mesh.fill(0x6d);
  }
};
const Keys& keys() {
  static const Keys k;
  return k;
}

std::size_t drain(Server& s, ConnId id) {
  iovec iov[64];
  std::size_t total = 0;
  while (s.has_output(id)) {
    const std::size_t n = s.output(id, iov, 64);
    std::size_t sum = 0;
    for (std::size_t i = 0; i < n; ++i) sum += iov[i].iov_len;
    s.sent(id, sum, 1);
    total += sum;
  }
  return total;
}

std::span<const std::uint8_t> bytes(const std::string& s) {
  return {reinterpret_cast<const std::uint8_t*>(s.data()), s.size()};
}

ConnId handshaken(Server& s, const moongate::crypto::SecretKey& priv, const Key& pub,
                  std::optional<Key> mesh) {
  const ConnId id = s.open({}, 1);
  ClientInfo ci;
  ci.version = 2;
  ci.mesh_key = mesh;
  s.receive(id, bytes(seal_client_info(priv, pub, keys().server_pub, ci)), 1);
  drain(s, id);
  return id;
}

struct NullHandler : ClientHandler {};

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  const Keys& k = keys();
  ServerConfig cfg;
  cfg.private_key = k.server_priv;
  cfg.public_key = k.server_pub;
  cfg.mesh_key = k.mesh;
  cfg.rate_bytes_per_second = 1 << 20;
  Sink sink;
  {
    Server s(cfg, sink);
    const ConnId a = handshaken(s, k.a_priv, k.a_pub, std::nullopt);
    const ConnId b = handshaken(s, k.b_priv, k.b_pub, std::nullopt);
    const ConnId m = handshaken(s, k.a_priv, k.a_pub, k.mesh);
    const ConnId fresh = s.open({}, 1);
    const std::size_t cut = size ? data[0] % (size + 1) : 0;
    for (ConnId id : {a, fresh, m}) {
      s.receive(id, {data, cut}, 2);
      s.receive(id, {data + cut, size - cut}, 3);
      drain(s, id);
    }
    s.tick(100 * kSecond);
    // b is still served: a packet from a fresh client reaches it.
    const ConnId c = handshaken(s, k.a_priv, k.a_pub, std::nullopt);
    std::string f(kHeaderLen + kKeyLen + 4, '\0');
    const std::uint8_t p[4] = {1, 2, 3, 4};
    encode_packet(reinterpret_cast<std::uint8_t*>(f.data()), FrameType::kSendPacket, k.b_pub, p);
    const std::uint64_t before = s.counter(Counter::packets_sent);
    s.receive(c, bytes(f), 101 * kSecond);
    if (s.is_active(b) && s.counter(Counter::packets_sent) != before + 1) std::abort();
    for (ConnId id : {a, b, m, fresh, c}) s.closed(id, 200 * kSecond);
    if (s.pool().in_use() != 0) std::abort();
  }
  // The client core reading a server's stream.
  NullHandler h;
  Client cl(k.a_priv, k.a_pub, ClientInfo{}, true, h);
  std::uint8_t sk[kServerKeyFrameLen];
  cl.receive({sk, encode_server_key(sk, k.server_pub)});
  cl.receive({data, size});
  return 0;
}
