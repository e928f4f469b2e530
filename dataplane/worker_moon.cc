// A worker's two steps for the ZeroTier moon (moon_host.h has the flow):
// step 1 puts a classified frame on this worker's ring to the moon thread,
// step 5 sends what the moon thread put on the ring back to this worker.
// Both are lock-free SP/SC ring operations on mbufs: no allocation, no
// lock, and a full ring is a counted drop (moon_queue_full), not a wait.
#include <rte_ether.h>
#include <rte_mbuf.h>
#include <rte_ring.h>

#include <cstring>

#include "dataplane/net/ipv6.h"
#include "dataplane/worker.h"

namespace moongate::dp {

void Worker::moon_in(rte_mbuf* m) {
  if (rte_ring_sp_enqueue(shared_.moon_rx[id_], m) != 0) {
    drop(m, DpDrop::kMoonQueueFull);
    return;
  }
  ++counters_.moon_in;
}

// The moon thread wrote IP + UDP (from our wan address and the moon's
// port); the neighbour tables give the Ethernet header (ARP / ND asked
// and the packet held while a next hop resolves, as for WireGuard).
// Up to 2 bursts per iteration: a relayed packet can cost the moon more
// than one datagram out (RENDEZVOUS), and a worker that took at most one
// rx burst must still keep its ring back from filling.
bool Worker::moon_drain() {
  rte_mbuf* pkts[2 * kBurst];
  const unsigned n =
      rte_ring_sc_dequeue_burst(shared_.moon_tx[id_], reinterpret_cast<void**>(pkts), 2 * kBurst, nullptr);
  for (unsigned i = 0; i < n; ++i) {
    rte_mbuf* m = pkts[i];
    const auto* ip = rte_pktmbuf_mtod(m, const std::uint8_t*);
    if ((ip[0] >> 4) == 4) {
      std::uint32_t dst = 0;
      std::memcpy(&dst, ip + 16, 4);
      send_ipv4(*wan_, *wan_neigh_, m, wan_->next_hop(dst));
    } else {
      const std::uint8_t* dst = ip + 24;
      const std::uint8_t* next_hop = wan_->on_link_v6(dst)    ? dst
                                     : wan_->has_gateway_v6 ? wan_->gateway_v6.data()
                                                            : nullptr;
      if (next_hop == nullptr) {
        drop(m, DpDrop::kNoUnderlay);
        continue;
      }
      send_ipv6(*wan_, *neighbors6_[shared_.wan], m, next_hop);
    }
  }
  counters_.moon_out += n;
  return n != 0;
}

}  // namespace moongate::dp
