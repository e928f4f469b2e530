// The client core against the server core, in memory: handshake, packets
// both ways, a watcher's view and ping answers.
#include <gtest/gtest.h>

#include "derp/client.h"
#include "tests/unit/derp/harness.h"

namespace moongate::derp::test {
namespace {

struct Seen : ClientHandler {
  bool ready = false;
  std::vector<PeerPresent> present;
  std::vector<Key> gone;
  std::vector<std::pair<Key, std::vector<std::uint8_t>>> packets;
  void on_ready() override { ready = true; }
  void on_peer_present(const PeerPresent& p) override { present.push_back(p); }
  void on_peer_gone(const Key& k, PeerGoneReason) override { gone.push_back(k); }
  void on_packet(const Key& s, std::span<const std::uint8_t> d) override {
    packets.emplace_back(s, std::vector<std::uint8_t>(d.begin(), d.end()));
  }
};

// Shuttles bytes both ways until neither side has anything to say.
void pump(Harness& h, ConnId id, Client& c) {
  for (int i = 0; i < 20; ++i) {
    bool moved = false;
    iovec iov[64];
    while (h.server.has_output(id)) {
      const std::size_t n = h.server.output(id, iov, 64);
      std::size_t total = 0;
      for (std::size_t k = 0; k < n; ++k) {
        ASSERT_TRUE(c.receive({static_cast<const std::uint8_t*>(iov[k].iov_base), iov[k].iov_len}));
        total += iov[k].iov_len;
      }
      h.server.sent(id, total, 1);
      moved = true;
    }
    if (!c.output().empty()) {
      std::string out;
      out.swap(c.output());
      h.server.receive(id, bytes(out), 1);
      moved = true;
    }
    if (!moved) return;
  }
}

TEST(Client, MeshWatcherAgainstServer) {
  ServerConfig cfg = Harness::make_config();
  Key mesh;
  mesh.fill(3);
  cfg.mesh_key = mesh;
  Harness h(std::move(cfg));
  auto a = h.connect();
  h.read(a);

  crypto::SecretKey priv;
  Key pub;
  crypto_box_keypair(pub.data(), priv.data());
  ClientInfo ci;
  ci.version = 2;
  ci.mesh_key = mesh;
  Seen seen;
  Client c(priv, pub, ci, true, seen);
  const ConnId id = h.server.open({}, 1);
  pump(h, id, c);
  ASSERT_TRUE(seen.ready);
  EXPECT_EQ(c.server_key(), h.server.config().public_key);
  EXPECT_TRUE(h.server.is_mesh(id));
  ASSERT_EQ(h.server.watchers(), 1u);
  bool saw_a = false;
  for (auto& p : seen.present) saw_a |= p.key == a.pub;
  EXPECT_TRUE(saw_a);

  // ForwardPacket from the watcher reaches a; a's packet back reaches it.
  Key far;
  far.fill(9);
  const std::vector<std::uint8_t> data = {1, 2, 3};
  c.forward_packet(far, a.pub, data);
  pump(h, id, c);
  auto f = h.read(a);
  ASSERT_EQ(f.size(), 1u);
  EXPECT_TRUE(std::equal(far.begin(), far.end(), f[0].payload.begin()));
  h.send(a, pub, data);
  pump(h, id, c);
  ASSERT_EQ(seen.packets.size(), 1u);
  EXPECT_EQ(seen.packets[0].first, a.pub);

  h.server.closed(a.id, 2);
  pump(h, id, c);
  // Twice: as a watcher, and as a peer a had sent to.
  ASSERT_EQ(seen.gone.size(), 2u);
  EXPECT_EQ(seen.gone[0], a.pub);
  EXPECT_EQ(seen.gone[1], a.pub);
}

TEST(Client, RejectsAWrongFirstFrame) {
  crypto::SecretKey priv;
  Key pub{};
  Seen seen;
  Client c(priv, pub, ClientInfo{}, false, seen);
  std::uint8_t f[kHeaderLen];
  EXPECT_FALSE(c.receive({f, encode_keepalive(f)}));
}

}  // namespace
}  // namespace moongate::derp::test
