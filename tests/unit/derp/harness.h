// A DERP server with in-memory clients: every Events call is recorded, and
// each client parses what the server queued for it with the frame decoders.
#pragma once

#include <gtest/gtest.h>
#include <sodium.h>

#include <deque>
#include <functional>
#include <map>
#include <string>
#include <vector>

#include "derp/frame.h"
#include "derp/handshake.h"
#include "derp/server.h"

namespace moongate::derp::test {

struct Frame {
  FrameType type;
  std::vector<std::uint8_t> payload;
};

struct Recorder : Events {
  std::vector<ConnId> wants;
  std::vector<std::pair<ConnId, CloseReason>> closes;
  Admission answer = Admission::kAllow;
  int admits = 0;
  struct Fwd {
    Route route;
    Key src, dst;
    std::vector<std::uint8_t> data;
  };
  std::vector<Fwd> forwards;
  std::vector<std::pair<Key, bool>> local;
  int room_asked = 0;
  std::function<void(ConnId)> on_make_room;  // what the I/O layer does then

  void want_write(ConnId c) override { wants.push_back(c); }
  void close(ConnId c, CloseReason r) override { closes.emplace_back(c, r); }
  Admission admit(ConnId, const Key&, const ClientInfo&, const IpPort&) override {
    ++admits;
    return answer;
  }
  void forward(Route r, const Key& s, const Key& d, std::span<const std::uint8_t> data) override {
    forwards.push_back(Fwd{r, s, d, {data.begin(), data.end()}});
  }
  void local_peer(const Key& k, const IpPort&, std::uint8_t, bool present) override {
    local.emplace_back(k, present);
  }
  void make_room(ConnId c) override {
    ++room_asked;
    if (on_make_room) on_make_room(c);
  }
  bool closed(ConnId c) const {
    for (auto& [id, r] : closes)
      if (id == c) return true;
    return false;
  }
};

inline std::span<const std::uint8_t> bytes(const std::string& s) {
  return {reinterpret_cast<const std::uint8_t*>(s.data()), s.size()};
}

inline std::string frame_bytes(FrameType t, std::span<const std::uint8_t> payload) {
  std::string s(kHeaderLen + payload.size(), '\0');
  encode_raw(reinterpret_cast<std::uint8_t*>(s.data()), t, payload);
  return s;
}

class Harness {
 public:
  explicit Harness(ServerConfig cfg = make_config()) : server(std::move(cfg), rec) {}

  static ServerConfig make_config() {
    ServerConfig cfg;
    crypto_box_keypair(cfg.public_key.data(), cfg.private_key.data());
    return cfg;
  }
  // The mesh key of make_mesh_config(): what a mesh peer presents.
  static Key mesh_key() {
    Key k;
    k.fill(1);
    return k;
  }
  static ServerConfig make_mesh_config() {
    ServerConfig cfg = make_config();
    cfg.mesh_key = mesh_key();
    return cfg;
  }

  struct Client {
    ConnId id = 0;
    crypto::SecretKey priv;
    Key pub{};
    std::string inbox;  // bytes written by the server, not yet parsed
  };

  // Opens a connection and completes the handshake.
  Client connect(std::uint64_t now = 1, std::optional<Key> mesh = std::nullopt,
                 const Client* reuse_key = nullptr) {
    Client c = raw_open(now);
    if (reuse_key) {
      c.priv = reuse_key->priv;
      c.pub = reuse_key->pub;
    }
    ClientInfo ci;
    ci.version = 2;
    ci.mesh_key = mesh;
    server.receive(c.id, bytes(seal_client_info(c.priv, c.pub, server.config().public_key, ci)), now);
    return c;
  }
  Client raw_open(std::uint64_t now = 1, IpPort addr = IpPort{}) {
    Client c;
    crypto_box_keypair(c.pub.data(), c.priv.data());
    c.id = server.open(addr, now);
    return c;
  }

  // Takes the server's output for c into c.inbox, as a socket write that
  // takes it all.
  void take(Client& c, std::uint64_t now = 1) {
    iovec iov[64];
    while (server.has_output(c.id)) {
      std::size_t n = server.output(c.id, iov, 64), total = 0;
      for (std::size_t i = 0; i < n; ++i) {
        c.inbox.append(static_cast<const char*>(iov[i].iov_base), iov[i].iov_len);
        total += iov[i].iov_len;
      }
      server.sent(c.id, total, now);
    }
  }
  // Drains the server's output for c and returns the frames.
  std::vector<Frame> read(Client& c, std::uint64_t now = 1) {
    take(c, now);
    std::vector<Frame> out;
    while (c.inbox.size() >= kHeaderLen) {
      Header h = get_header(reinterpret_cast<const std::uint8_t*>(c.inbox.data()));
      if (c.inbox.size() < kHeaderLen + h.length) break;
      const auto* p = reinterpret_cast<const std::uint8_t*>(c.inbox.data()) + kHeaderLen;
      out.push_back(Frame{h.type, {p, p + h.length}});
      c.inbox.erase(0, kHeaderLen + h.length);
    }
    return out;
  }
  // Frames after the handshake (ServerKey and ServerInfo dropped).
  std::vector<Frame> read_after_handshake(Client& c) {
    auto f = read(c);
    std::erase_if(f, [](const Frame& x) {
      return x.type == FrameType::kServerKey || x.type == FrameType::kServerInfo;
    });
    return f;
  }

  void send(const Client& from, const Key& to, std::span<const std::uint8_t> data,
            std::uint64_t now = 1) {
    std::string f(kHeaderLen + kKeyLen + data.size(), '\0');
    encode_packet(reinterpret_cast<std::uint8_t*>(f.data()), FrameType::kSendPacket, to, data);
    server.receive(from.id, bytes(f), now);
  }

  Recorder rec;
  Server server;
};

inline std::vector<std::uint8_t> disco_packet(std::size_t n = 100) {
  std::vector<std::uint8_t> p(n, 0x42);
  std::memcpy(p.data(), kDiscoMagic.data(), kDiscoMagic.size());
  return p;
}

}  // namespace moongate::derp::test
