// A configured peer: its identity, handshake, keypairs, timers, endpoint
// and counters. Owned by the Device; on the data plane, by one lcore.
#pragma once

#include <cstddef>
#include <cstdint>

#include "crypto/secret.h"
#include "crypto/x25519.h"
#include "wireguard/cookie.h"
#include "wireguard/endpoint.h"
#include "wireguard/huge_pages.h"
#include "wireguard/prefetch.h"
#include "wireguard/keypair.h"
#include "wireguard/noise.h"
#include "wireguard/timers.h"

namespace moongate::wg {

// Laid out for the packet paths, in cache lines:
//   lines 0-1  what every data message reads or writes, either way:
//              timers (with the host's armed wake-up), endpoint, byte
//              counters, the caller's id and pointer
//   line 2     what a message sent also needs: the send line (the current
//              session's key, nonce counter, remote index, age), the first
//              member of Keypairs
//   then       the keypair pointers, the handshake state and the cookie,
//              used a few times per two minutes
// The caller's per-packet needs live here too (host_id,
// PeerTimers::arm_earlier) so that a received message touches two lines of
// per-peer state besides its receive line, and a sent one three, all at
// addresses that follow from the peer's: at 100 000 peers each one is a
// cache miss, and none has to wait for another. Cache-line aligned so that
// holds; allocated from a huge-page slab (huge_pages.h).
class alignas(64) Peer : public OnHugeSlab<Peer> {
 public:
  explicit Peer(const crypto::PublicKey& public_key) noexcept : public_key_(public_key) {}
  Peer(const Peer&) = delete;
  Peer& operator=(const Peer&) = delete;

  const crypto::PublicKey& public_key() const noexcept { return public_key_; }

  // --- per data message (lines 0-1) ---
  PeerTimers timers;
  Endpoint endpoint;
  // Free for the caller: a number it knows the peer by (the data plane's
  // global id, which its allowed-IPs tables return: the source check of
  // every decrypted packet compares against it).
  std::uint32_t host_id = 0;
  // Counters as `wg show` reports them: UDP payload bytes of every message.
  std::uint64_t rx_bytes = 0;
  std::uint64_t tx_bytes = 0;
  // Free for the caller (its staged-packet queue, route state, ...).
  void* user = nullptr;

  // --- per handshake (filling line 1) ---
  bool sent_lastminute_handshake = false;  // see Device::keep_key_fresh_received
  bool sent_any_handshake = false;
  Nanos last_sent_handshake = 0;             // rate limit: one initiation per REKEY_TIMEOUT
  std::uint64_t last_handshake_wall_ns = 0;  // 0 = never

  // --- per data message sent (line 2: Keypairs' send line comes first) ---
  alignas(64) Keypairs keypairs;

  // --- per handshake ---
  std::uint64_t handshakes_completed = 0;
  Handshake handshake;
  CookieMaker cookie;

  // A cache hint for a data message to or from this peer: lines 0-1
  // (above). Burst callers issue it for a whole burst.
  void prefetch() const noexcept {
    prefetch_line(this);
    prefetch_line(reinterpret_cast<const char*>(this) + 64);
  }
  // The same two lines into L2 only: for a caller that reads them after
  // other heavy work (decrypt's AEAD), then asks again with prefetch().
  void prefetch_l2() const noexcept {
    prefetch_line_l2(this);
    prefetch_line_l2(reinterpret_cast<const char*>(this) + 64);
  }

 private:
  crypto::PublicKey public_key_;
};

// The per-message fields above end within the first two lines. Checked
// where the layout is defined (offsetof is only conditionally supported on
// a class that is not standard-layout, hence the pragma).
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Winvalid-offsetof"
static_assert(offsetof(Peer, user) + sizeof(void*) <= 128,
              "a data message touches the peer's first two lines, and a sent one its send line");
static_assert(offsetof(Peer, keypairs) == 128, "the send line is the peer's third line");
#pragma GCC diagnostic pop

}  // namespace moongate::wg
