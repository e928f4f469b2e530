// Two in-process WireGuard endpoints joined by an in-memory "network" whose
// delivery the test controls: every datagram sent is queued, and the test
// delivers, drops, duplicates, reorders or re-addresses it.
#pragma once

#include <gtest/gtest.h>

#include <cstring>
#include <deque>
#include <vector>

#include "crypto/x25519.h"
#include "tests/support/transport.h"
#include "wireguard/clock.h"

namespace moongate::wg::test {

struct Datagram {
  Endpoint from;
  Endpoint to;
  std::vector<std::uint8_t> bytes;
  MessageType type() const { return classify_message(bytes.data(), bytes.size()); }
};

class QueueWire final : public testing::Wire {
 public:
  explicit QueueWire(const Endpoint& self) : self_(self) {}
  bool send(const Endpoint& to, const std::uint8_t* data, std::size_t len) override {
    if (fail_sends) return false;
    out.push_back(Datagram{self_, to, std::vector<std::uint8_t>(data, data + len)});
    return true;
  }
  bool fail_sends = false;  // the network refuses (e.g. no route)
  void set_self(const Endpoint& e) { self_ = e; }
  std::deque<Datagram> out;

 private:
  Endpoint self_;
};

inline Endpoint ep(std::uint8_t last, std::uint16_t port = 51820) {
  const std::uint8_t a[4] = {10, 0, 0, last};
  return Endpoint::v4(a, port);
}

struct Node {
  explicit Node(const Endpoint& self, std::size_t max_peers = 16)
      : addr(self), wire(self), t(max_peers, wire) {
    crypto::x25519_generate(priv, pub);
    t.device().set_private_key(priv);
  }
  Endpoint addr;
  QueueWire wire;
  testing::Transport t;
  crypto::SecretKey priv;
  crypto::PublicKey pub{};
  Device& dev() { return t.device(); }
};

// A and B know each other; A knows B's endpoint (A will initiate).
class PairTest : public ::testing::Test {
 protected:
  PairTest() : a(ep(1)), b(ep(2)) {
    pa = b.dev().add_peer(a.pub);  // B's view of A
    pb = a.dev().add_peer(b.pub);  // A's view of B
    pb->endpoint = b.addr;
  }

  Instant now() const { return clock.now(); }

  // Delivers one datagram to whichever node it is addressed to.
  moongate::testing::Transport::Received deliver(const Datagram& d) {
    Node& dst = d.to == a.addr ? a : b;
    return dst.t.receive(d.bytes.data(), d.bytes.size(), d.from, now(), rx, sizeof rx);
  }

  // Delivers everything queued in both directions until quiet (bounded),
  // collecting the plaintexts received by each side.
  void pump(int max_rounds = 32) {
    for (int i = 0; i < max_rounds; ++i) {
      if (a.wire.out.empty() && b.wire.out.empty()) return;
      std::deque<Datagram> batch;
      batch.swap(a.wire.out);
      for (auto& d : b.wire.out) batch.push_back(std::move(d));
      b.wire.out.clear();
      for (const Datagram& d : batch) {
        moongate::testing::Transport::Received r = deliver(d);
        if (r.drop == Drop::kOk && r.len) {
          auto& sink = d.to == a.addr ? got_a : got_b;
          sink.emplace_back(rx, rx + r.len);
        }
      }
    }
    FAIL() << "network did not go quiet";
  }

  void tick() {
    a.t.tick(now());
    b.t.tick(now());
  }

  Drop send_a(const std::vector<std::uint8_t>& p) { return a.t.send(*pb, p.data(), p.size(), now()); }
  Drop send_b(const std::vector<std::uint8_t>& p) { return b.t.send(*pa, p.data(), p.size(), now()); }

  // Establishes a confirmed session (A initiator) with one data packet each way.
  void establish() {
    ASSERT_EQ(send_a(packet(100, 1)), Drop::kOk);
    pump();
    ASSERT_EQ(got_b.size(), 1u);
    ASSERT_EQ(send_b(packet(100, 2)), Drop::kOk);
    pump();
    ASSERT_EQ(got_a.size(), 1u);
    got_a.clear();
    got_b.clear();
  }

  // After establish(): B starts a new handshake and A answers it. Returns
  // A's new keypair, which waits in next until B's first data message
  // under it (nullptr if a step failed); A's response is left in
  // a.wire.out.
  const Keypair* b_rekeys() {
    clock.advance(kRekeyTimeout + kSecond);
    if (b.dev().initiate_handshake(*pa, now()) != Drop::kOk || b.wire.out.size() != 1) return nullptr;
    const Drop d = deliver(b.wire.out.front()).drop;
    b.wire.out.clear();
    return d == Drop::kOk ? pb->keypairs.next() : nullptr;
  }

  static std::vector<std::uint8_t> packet(std::size_t len, std::uint8_t seed) {
    // Multiples of 16 so padding does not change the length seen by the peer.
    std::vector<std::uint8_t> p(len);
    for (std::size_t i = 0; i < len; ++i) p[i] = static_cast<std::uint8_t>(seed * 31 + i * 7);
    return p;
  }

  static std::size_t count_type(const std::deque<Datagram>& q, MessageType t) {
    std::size_t n = 0;
    for (const auto& d : q) n += d.type() == t;
    return n;
  }

  ManualClock clock;
  Node a, b;
  Peer* pa = nullptr;  // A, as B sees it
  Peer* pb = nullptr;  // B, as A sees it
  std::uint8_t rx[70000];
  std::vector<std::vector<std::uint8_t>> got_a, got_b;
};

}  // namespace moongate::wg::test
