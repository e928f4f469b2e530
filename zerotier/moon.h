// The moon: a user-defined ZeroTier root, I/O-free and clock-injected.
//
// Flow of one received datagram (receive()):
//   1. Fragment (byte 13 = 0xff)? To someone else: relay it by its own
//      destination (hop limit applies). To us: into the Reassembler; a
//      completed packet continues at 3.
//   2. Packet to someone else: relay by destination to that peer's last
//      authenticated path if its hop count is below the limit (the hop count
//      is the one field a relay may change), then RENDEZVOUS both ends with
//      each other's path, at most once per 30 s per pair. No keys needed.
//   3. Packet to us, suite 0 and verb HELLO: the identity inside is checked
//      (known address with the same key: its cached peer key; known address
//      with another key: ERROR(IDENTITY_COLLISION) if the HELLO's own MAC
//      holds; new: within the IdentityVerifier budget, X25519 + MAC, then
//      the memory-hard hash), the peer's path is learned (HELLOs only, and
//      not from a replay: see hello()), and OK(HELLO) goes
//      back, carrying our World if the client lists our id with an older
//      timestamp.
//   4. Any other packet to us must come from a known peer and pass its MAC:
//      WHOIS -> OK(identities we know, our own included), ECHO -> OK(echo),
//      MULTICAST_LIKE -> cache, MULTICAST_GATHER -> OK(members). The rest is
//      counted and ignored.
// Ownership: single-threaded; one Moon per thread/core (the host decides).
// The receive path allocates nothing and throws nothing; new-peer insertion
// writes into tables sized at construction.
#pragma once

#include <array>
#include <cstdint>
#include <memory>
#include <span>
#include <vector>

#include "wireguard/open_table.h"
#include "zerotier/armor.h"
#include "zerotier/counters.h"
#include "zerotier/identity.h"
#include "zerotier/identity_verifier.h"
#include "zerotier/multicast.h"
#include "zerotier/reassembly.h"
#include "zerotier/service.h"
#include "zerotier/world.h"

namespace moongate::zerotier {

// What the moon says about itself in OK(HELLO): protocol 11 keeps stock
// clients on Salsa20/12 + Poly1305 (12+ would switch them to AES-GMAC-SIV).
inline constexpr std::uint8_t kProtocolVersion = 11;
inline constexpr std::uint8_t kMinProtocolVersion = 4;
inline constexpr std::uint8_t kVersionMajor = 1;
inline constexpr std::uint8_t kVersionMinor = 14;
inline constexpr std::uint16_t kVersionRevision = 0;

struct MoonConfig {
  // Relaying stops at this many hops (ZeroTier 1.x: ZT_RELAY_MAX_HOPS).
  unsigned max_hops = 4;
  std::size_t max_peers = 16384;
  std::size_t max_multicast_groups = 4096;
  std::uint64_t peer_expire_ms = 600000;        // idle peers are forgotten after this
  std::uint64_t rendezvous_interval_ms = 30000;  // per pair
  std::size_t mtu = kUdpMtu;                     // for our own replies
  VerifierLimits verify;
  // Hand new-identity hashes to the host's worker thread (take_job/finish_job)
  // instead of hashing on the receive thread. Hosts with a worker set it.
  bool defer_verification = false;
  std::size_t max_deferred = 32;  // queued + in flight; beyond: dropped and counted
};

class Moon final : public DatagramService {
 public:
  // `self` must hold its secret; `world` is the signed World we serve (its
  // id is what clients orbit). Throws std::invalid_argument on a bad setup.
  Moon(Identity self, World world, const MoonConfig& config = {});
  ~Moon() override;
  Moon(const Moon&) = delete;
  Moon& operator=(const Moon&) = delete;

  void receive(std::span<const std::uint8_t> datagram, const Endpoint& from, std::uint64_t now_ms,
               TxBatch& out) noexcept override;
  void tick(std::uint64_t now_ms, TxBatch& out) noexcept override;

  // Adds a peer whose identity was verified before (a host's persisted
  // cache, a benchmark's preloaded clients): no hash, just the agreement.
  // False if the table is full, the key agreement fails or the address is
  // taken by another key.
  bool add_verified_peer(const Identity& id, const Endpoint& path, std::uint64_t now_ms);

  bool take_job(Job& job) noexcept override;
  void finish_job(const Job& job, std::uint64_t now_ms, TxBatch& out) noexcept override;

  const Counters& counters() const noexcept { return counters_; }
  std::size_t peer_count() const noexcept { return peers_.size(); }
  const Identity& identity() const noexcept { return self_; }
  const World& world() const noexcept { return world_; }

 private:
  struct Peer {
    Address address = 0;  // 0: free slot
    PublicKey pub{};
    std::array<std::uint8_t, kPeerKeyLength> key{};  // wiped on erase (Slot{}) and in ~Moon
    Endpoint path;
    std::uint64_t last_rx_ms = 0;
    std::uint64_t last_hello_ts = 0;  // the client's clock in its newest HELLO
    std::uint8_t protocol = 0;
  };
  struct PeerTraits {
    using Key = Address;
    static constexpr bool is_free(const Peer& p) { return p.address == 0; }
    static Address key_of(const Peer& p) { return p.address; }
    static bool same_key(Address a, Address b) { return a == b; }
    std::size_t hash(Address a) const noexcept {
      const std::uint64_t h = (a ^ seed) * 0x9E3779B97F4A7C15ull;
      return static_cast<std::size_t>(h ^ h >> 32);
    }
    std::uint64_t seed = 0;
  };
  // What a deferred HELLO needs to be answered once its identity checks out.
  struct Verification {
    Address address;
    PublicKey pub;
    std::array<std::uint8_t, kPeerKeyLength> key;
    Endpoint from;
    std::uint64_t hello_id;
    std::uint64_t timestamp;
    std::uint8_t protocol;
    bool send_world;
    bool valid;
  };
  static_assert(sizeof(Verification) <= sizeof(Job::data));
  static void run_verification(Job& job) noexcept;
  // Adds the peer (if still new) and answers its HELLO.
  void admit_peer(const Verification& v, std::uint64_t now_ms, TxBatch& out) noexcept;
  void answer_hello(const Peer& peer, std::uint64_t hello_id, std::uint64_t timestamp, bool send_world,
                    const Endpoint& to, TxBatch& out) noexcept;
  // RENDEZVOUS stamps, 4-way set-associative: sized for tens of thousands
  // of active relayed pairs (an evicted pair only costs an early RENDEZVOUS).
  static constexpr std::size_t kPairStamps = 1u << 16;
  struct PairStamp {
    Address a = 0, b = 0;
    std::uint64_t last_ms = 0;
  };

  void relay(std::span<const std::uint8_t> d, Address dest, Address source, bool fragment, const Endpoint& from,
             std::uint64_t now_ms, TxBatch& out) noexcept;
  void rendezvous(const Peer& a, const Peer& b, std::uint64_t now_ms, TxBatch& out) noexcept;
  void to_us(std::uint8_t* p, std::size_t n, const Endpoint& from, std::uint64_t now_ms, TxBatch& out) noexcept;
  // A piece went into the reassembler: the whole packet (n bytes in rx_)
  // goes on to to_us, the rest is counted.
  void reassembled(Reassembler::Result r, std::size_t n, const Endpoint& from, std::uint64_t now_ms,
                   TxBatch& out) noexcept;
  void hello(std::uint8_t* p, std::size_t n, const Endpoint& from, std::uint64_t now_ms, TxBatch& out) noexcept;
  void whois(const Peer& peer, std::uint64_t pid, const std::uint8_t* payload, std::size_t len,
             TxBatch& out) noexcept;
  void echo(const Peer& peer, std::uint64_t pid, const std::uint8_t* payload, std::size_t len,
            TxBatch& out) noexcept;
  void multicast_like(const Peer& peer, const std::uint8_t* payload, std::size_t len, std::uint64_t now_ms) noexcept;
  void multicast_gather(const Peer& peer, std::uint64_t pid, const std::uint8_t* payload, std::size_t len,
                        std::uint64_t now_ms, TxBatch& out) noexcept;

  // Starts a reply in tx_ (header + OK in-re fields); returns its Writer.
  Writer begin(Address dest, Verb verb) noexcept;
  Writer begin_ok(Address dest, Verb in_re, std::uint64_t in_re_id) noexcept;
  // Armours tx_[0..n) for `key` and queues it (fragmented when over the MTU).
  bool send(std::size_t n, const std::uint8_t* key, const Endpoint& to, TxBatch& out) noexcept;

  Identity self_;
  World world_;
  std::vector<std::uint8_t> world_bytes_;
  MoonConfig config_;
  Counters counters_;
  wg::OpenTable<Peer, PeerTraits> peers_;
  IdentityVerifier verifier_;
  MulticastCache multicast_;
  std::unique_ptr<Reassembler> reassembler_;  // ~720 KiB: on the heap, not the caller's stack
  std::unique_ptr<std::array<PairStamp, kPairStamps>> pairs_;
  std::unique_ptr<std::uint8_t[]> rx_;  // kMaxPacket: our packets, decrypted in place
  std::unique_ptr<std::uint8_t[]> tx_;  // kMaxPacket: replies being built
  std::unique_ptr<std::uint8_t[]> lz4_;  // kMaxPacket: a decompressed payload
  std::array<Verification, 64> deferred_{};  // ring: waiting for take_job()
  std::size_t deferred_head_ = 0, deferred_count_ = 0, in_flight_ = 0;
};

}  // namespace moongate::zerotier
