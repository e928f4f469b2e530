// The contract between a datagram-protocol core and whatever hosts it (a
// kernel UDP socket today, moongate-relay or the data plane later):
// "datagram + source + now in, datagrams out". The core does no I/O and
// reads no clock; the host owns the socket, the clock and the TxBatch.
#pragma once

#include <array>
#include <cstddef>
#include <cstdint>
#include <span>

#include "zerotier/packet.h"
#include "zerotier/wire.h"

namespace moongate::zerotier {

struct Datagram {
  Endpoint to;
  std::uint16_t len = 0;
  std::array<std::uint8_t, kMaxDatagram> bytes;
};

// Datagrams to send, filled by the core, drained by the host. Fixed size: a
// host calls the core only while room() >= kRoomPerReceive.
class TxBatch {
 public:
  static constexpr std::size_t kCapacity = 64;
  static constexpr std::size_t kRoomPerReceive = 16;  // the most one receive() emits

  Datagram* push() noexcept { return n_ < kCapacity ? &d_[n_++] : nullptr; }
  std::size_t size() const noexcept { return n_; }
  std::size_t room() const noexcept { return kCapacity - n_; }
  Datagram& operator[](std::size_t i) noexcept { return d_[i]; }
  const Datagram& operator[](std::size_t i) const noexcept { return d_[i]; }
  void clear() noexcept { n_ = 0; }

 private:
  std::array<Datagram, kCapacity> d_;
  std::size_t n_ = 0;
};

// Slow work a core moves off its receive thread (the moon's identity
// hashes). A plain blob and a function pointer, so the hand-off allocates
// nothing: the host runs run(job) on a worker thread (run touches only the
// job) and gives the job back to the core's thread with finish_job().
struct Job {
  void (*run)(Job&) = nullptr;
  alignas(8) std::array<std::uint8_t, 256> data{};
};

class DatagramService {
 public:
  virtual ~DatagramService() = default;
  // Deferred work, polled by the host after each burst; none by default.
  virtual bool take_job(Job& job) noexcept {
    static_cast<void>(job);
    return false;
  }
  virtual void finish_job(const Job& job, std::uint64_t now_ms, TxBatch& out) noexcept {
    static_cast<void>(job), static_cast<void>(now_ms), static_cast<void>(out);
  }
  // One received datagram; replies and relays are appended to out.
  virtual void receive(std::span<const std::uint8_t> datagram, const Endpoint& from, std::uint64_t now_ms,
                       TxBatch& out) noexcept = 0;
  // Housekeeping (expiry); hosts call it about once a second.
  virtual void tick(std::uint64_t now_ms, TxBatch& out) noexcept = 0;
};

}  // namespace moongate::zerotier
