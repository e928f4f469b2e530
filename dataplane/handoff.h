// Hand-off between worker lcores.
//
// Each peer is owned by one worker lcore: only the owner touches its nonce
// counter, replay window, keypairs and timers, so none of them needs a lock
// or an atomic. A packet that arrives on another lcore (RSS spreads by the
// outer or inner flow, not by peer) is passed to the owner over a
// single-producer single-consumer rte_ring, one per ordered pair of workers:
//
//   WAN rx on lcore r:  data / response / cookie reply -> the receiver
//                       index's tag names the owner (wg::IndexTable::set_tag)
//                       initiation -> r's own device decrypts the static key;
//                       a key owned elsewhere is handed on (kHandshake)
//   LAN rx on lcore r:  allowed-IPs -> peer -> its owner (kInner)
//   decrypted on r:     hub traffic to a peer owned elsewhere (kInner)
//   WAN rx on lcore r:  NAT44 return traffic -> the owner of its external
//                       port's slice (nat::Nat44::translate says kHandOff),
//                       which created the flow and owns the peer (kNatReturn)
//   ARP / ND learned:   a copy to every other worker (kNeighbor), since each
//                       worker keeps its own neighbour tables
//
// What the receiver needs besides the frame travels in an mbuf dynamic
// field (Handoff), registered once by the Gateway.
#pragma once

#include <rte_mbuf.h>
#include <rte_mbuf_dyn.h>

#include <cstdint>

namespace moongate::dp {

// Receiver indices carry the owning worker in their top bits.
inline constexpr unsigned kWorkerTagBits = 5;
inline constexpr std::uint32_t kMaxWorkers = 1u << kWorkerTagBits;
inline constexpr std::uint32_t kWorkerTagMask = ~0u << (32 - kWorkerTagBits);
inline constexpr std::uint32_t worker_tag(std::uint32_t worker) noexcept {
  return worker << (32 - kWorkerTagBits);
}
inline constexpr std::uint32_t worker_of_index(std::uint32_t index) noexcept {
  return index >> (32 - kWorkerTagBits);
}

// Hand-off rings hold this many mbufs per ordered pair of workers.
inline constexpr unsigned kHandoffRingSize = 2048;

enum class HandoffKind : std::uint8_t {
  kData,       // a WireGuard data message (frame as received on the WAN)
  kHandshake,  // a handshake message for the owner's device
  kInner,      // an inner IP packet (mbuf starts at the IP header) to tunnel
  kNeighbor,   // a copy of an ARP / ND frame to learn from
  kNatReturn,  // an IPv4 frame from the WAN for a NAT flow of the receiver
};

// The frame itself is passed whole (kData, kHandshake): the owner reads the
// outer source address and port from it.
struct Handoff {
  std::uint32_t peer;      // global peer id (kInner)
  std::uint16_t wg_off;    // WireGuard message offset and length in the frame
  std::uint16_t wg_len;
  HandoffKind kind;
  std::uint8_t arg;        // kNeighbor: port index; kHandshake: macs checked; kInner: Origin (worker.h)
};
static_assert(sizeof(Handoff) == 12);

// The dynamic field's offset, or a negative errno.
int register_handoff_field() noexcept;

inline Handoff* handoff_of(rte_mbuf* m, int offset) noexcept {
  return RTE_MBUF_DYNFIELD(m, offset, Handoff*);
}

}  // namespace moongate::dp
