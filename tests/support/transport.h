// A complete WireGuard endpoint for tests and the kernel-socket proof
// harness: the protocol core (wg::Device) + bulk AEAD (crypto::AeadBurst) +
// per-peer staged packets + a Wire that carries UDP payloads.
//
// The DPDK data plane does the same orchestration with mbufs; this one
// copies packets and so is for proofs, not speed. It runs the real burst
// path (prepare -> one AeadBurst call -> complete) with bursts of one.
#pragma once

#include <cstddef>
#include <cstdint>
#include <deque>
#include <unordered_map>
#include <vector>

#include "crypto/aead_burst.h"
#include "wireguard/device.h"

namespace moongate::testing {

// Where UDP payloads go: a kernel socket, or an in-memory queue in tests.
class Wire {
 public:
  virtual ~Wire() = default;
  // True when the payload was handed to the network.
  virtual bool send(const wg::Endpoint& to, const std::uint8_t* data, std::size_t len) = 0;
};

class Transport final : public wg::DeviceHost {
 public:
  static constexpr std::size_t kMaxStaged = 128;  // per peer, as the Linux module
  static constexpr std::size_t kMaxPacket = 65535;

  Transport(std::size_t max_peers, Wire& wire,
            crypto::AeadArch arch = crypto::AeadArch::kAuto);
  ~Transport() override;

  wg::Device& device() noexcept { return device_; }
  const char* aead_arch() const noexcept { return aead_.arch_name(); }
  void set_mtu(std::size_t mtu) noexcept { mtu_ = mtu; }

  // Encrypts one plaintext packet (an inner IP packet) to `peer`, or stages
  // it and starts a handshake when there is no session yet. kOk when sent
  // or staged; kNoEndpoint when the peer has no known address.
  wg::Drop send(wg::Peer& peer, const std::uint8_t* pkt, std::size_t len, wg::Instant now);

  struct Received {
    wg::Drop drop = wg::Drop::kOk;
    wg::Peer* peer = nullptr;  // set for authenticated data
    std::size_t len = 0;       // plaintext bytes copied to out (0: keepalive/handshake)
    wg::MessageType type = wg::MessageType::kInvalid;
  };
  // Handles one UDP payload from `src`. A decrypted data message's
  // plaintext is copied to out, padding included: the caller trims it by
  // the inner IP header's length.
  Received receive(const std::uint8_t* payload, std::size_t len, const wg::Endpoint& src,
                   wg::Instant now, std::uint8_t* out, std::size_t out_cap);

  // Runs every peer's due timers.
  void tick(wg::Instant now);

  std::size_t staged(const wg::Peer& peer) const;

  // Counters of this transport's own (AEAD) drops are kept in the device.
 private:
  // DeviceHost
  bool send_handshake(wg::Peer* peer, const wg::Endpoint& to, const std::uint8_t* msg,
                      std::size_t len) override;
  void flush_staged(wg::Peer& peer, bool keepalive_if_empty) override;
  void purge_staged(wg::Peer& peer) override;

  // Encrypts and sends now, or returns kNoSession (nothing staged).
  wg::Drop try_send_now(wg::Peer& peer, const std::uint8_t* pkt, std::size_t len, wg::Instant now);
  void stage(wg::Peer& peer, const std::uint8_t* pkt, std::size_t len);

  Wire& wire_;
  crypto::AeadBurst aead_;
  wg::Device device_;
  std::size_t mtu_ = wg::kDefaultMtu;
  wg::Instant last_now_{};
  std::unordered_map<const wg::Peer*, std::deque<std::vector<std::uint8_t>>> staged_;
  std::vector<std::uint8_t> tx_buf_;
  std::vector<std::uint8_t> rx_buf_;
};

}  // namespace moongate::testing
