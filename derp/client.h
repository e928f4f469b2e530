// The client side of a DERP connection, I/O-free: what a mesh link (this
// relay watching another one) and the load generator in perf/ speak.
//
//   1. receive ServerKey        -> queue ClientInfo (sealed to that key)
//   2. receive ServerInfo       -> ready; a watcher queues WatchConns
//   3. receive frames           -> PeerPresent / PeerGone / RecvPacket to
//                                  the handler; Ping answered with Pong
//   send_packet / forward_packet queue frames; the caller writes output()
#pragma once

#include <cstdint>
#include <functional>
#include <span>
#include <string>

#include "crypto/secret.h"
#include "derp/frame.h"
#include "derp/handshake.h"

namespace moongate::derp {

class ClientHandler {
 public:
  virtual ~ClientHandler() = default;
  virtual void on_ready() {}
  virtual void on_peer_present(const PeerPresent&) {}
  virtual void on_peer_gone(const Key&, PeerGoneReason) {}
  virtual void on_packet(const Key& /*src*/, std::span<const std::uint8_t> /*data*/) {}
};

class Client {
 public:
  Client(const crypto::SecretKey& private_key, const Key& public_key, ClientInfo info,
         bool watch, ClientHandler& handler);

  // Bytes from the server. false: the stream is broken (close and retry).
  bool receive(std::span<const std::uint8_t> bytes);

  void send_packet(const Key& dst, std::span<const std::uint8_t> data);
  void forward_packet(const Key& src, const Key& dst, std::span<const std::uint8_t> data);
  void send_raw(std::span<const std::uint8_t> frame);

  bool ready() const noexcept { return ready_; }
  const Key& server_key() const noexcept { return server_key_; }
  // Bytes to write; consume() what was written.
  std::string& output() noexcept { return out_; }
  void consume(std::size_t n) { out_.erase(0, n); }

 private:
  bool handle(FrameType t, std::span<const std::uint8_t> payload);

  crypto::SecretKey private_;
  Key public_;
  ClientInfo info_;
  bool watch_;
  ClientHandler& handler_;
  Key server_key_{};
  bool have_key_ = false;
  bool ready_ = false;
  std::string in_;
  std::string out_;
};

}  // namespace moongate::derp
