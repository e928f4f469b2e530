// Events from the data plane to the control process: handshakes completed,
// endpoints changed, per-peer transfer counters and per-lcore counters. Each
// data-plane worker lcore has its own single-producer single-consumer queue
// in the shared segment (segment.h), so producing is a few stores and never
// waits; the control process drains them all. A full queue drops the event
// and the producer counts it: counters are re-sent periodically anyway.
#pragma once

#include <boost/lockfree/spsc_queue.hpp>

#include <cstdint>
#include <cstring>
#include <string_view>
#include <type_traits>

namespace moongate::netmap {

enum class EventType : std::uint32_t {
  kHandshake = 1,  // a session was established with the peer
  kEndpoint = 2,   // the peer's endpoint changed (roaming), or was learned
  kPeerStats = 3,  // transfer counters and last handshake time
  kCounter = 4,    // one per-lcore counter: name and value
};

// 128 bytes, no pointers: it lives in shared memory.
struct Event {
  EventType type{};
  std::uint16_t worker = 0;
  std::uint8_t family = 0;  // endpoint: 0 none, 4, 6
  std::uint8_t reserved0 = 0;
  std::uint8_t key[32] = {};  // peer public key; kCounter: the counter's name, NUL-padded
  std::uint8_t addr[16] = {}; // endpoint address
  std::uint16_t port = 0;     // endpoint port
  std::uint8_t reserved1[6] = {};
  std::uint64_t v0 = 0;  // kPeerStats: rx bytes; kCounter: value
  std::uint64_t v1 = 0;  // kPeerStats: tx bytes
  std::uint64_t v2 = 0;  // kPeerStats, kHandshake: last handshake, wall-clock ns
  std::uint64_t v3 = 0;  // kPeerStats: handshakes completed
  std::uint8_t reserved2[32] = {};

  void set_name(std::string_view name) noexcept {
    std::memset(key, 0, sizeof key);
    std::memcpy(key, name.data(), name.size() < sizeof key ? name.size() : sizeof key - 1);
  }
  std::string_view name() const noexcept {
    const void* end = std::memchr(key, 0, sizeof key);
    return {reinterpret_cast<const char*>(key),
            end ? static_cast<std::size_t>(static_cast<const std::uint8_t*>(end) - key) : sizeof key};
  }
};
static_assert(sizeof(Event) == 128);
static_assert(std::is_trivially_copyable_v<Event>);

inline constexpr std::size_t kEventQueueCapacity = 4096;
using EventQueue = boost::lockfree::spsc_queue<Event, boost::lockfree::capacity<kEventQueueCapacity>>;

}  // namespace moongate::netmap
