// The Noise_IKpsk2_25519_ChaChaPoly_BLAKE2s handshake as WireGuard uses it
// (whitepaper section 5.4.2-5.4.5).
//
//   initiator                               responder
//   create_initiation  ---- initiation --->  consume_initiation
//                                            create_response
//   consume_response   <---- response -----
//   begin_session                            begin_session (keypair waits in next)
//
// These functions do the cryptography and the state checks only. MACs
// (mac1/mac2, cookies) are added and checked by cookie.h; indices, timers
// and keypair rotation are the Device's (device.cc).
#pragma once

#include <cstdint>
#include <memory>

#include "crypto/secret.h"
#include "crypto/tai64n.h"
#include "crypto/x25519.h"
#include "wireguard/constants.h"
#include "wireguard/keypair.h"
#include "wireguard/messages.h"

namespace moongate::wg {

class Peer;
class PeerTable;

// Our static identity.
struct StaticIdentity {
  crypto::SecretKey private_key;
  crypto::PublicKey public_key{};
  bool has_key = false;

  void set(const crypto::SecretKey& priv) noexcept;
  void clear() noexcept;
};

enum class HandshakeState : std::uint8_t {
  kZeroed,
  kCreatedInitiation,
  kConsumedInitiation,
  kCreatedResponse,
  kConsumedResponse,
};

// Per-peer handshake state. Secrets are wiped on clear() and destruction.
struct Handshake {
  HandshakeState state = HandshakeState::kZeroed;
  crypto::PublicKey remote_static{};
  crypto::SecretKey precomputed_static_static;  // DH(our static, their static)
  crypto::SecretKey preshared_key;              // zeros when none
  crypto::SecretKey ephemeral_private;
  crypto::PublicKey remote_ephemeral{};
  crypto::SecretKey chaining_key;
  std::uint8_t hash[32] = {};
  std::uint32_t local_index = 0;   // registered in the index table while != 0
  std::uint32_t remote_index = 0;
  crypto::Tai64n latest_timestamp{};  // newest initiation timestamp accepted
  Nanos last_initiation_consumption = 0;
  bool consumed_any_initiation = false;

  // Recomputes precomputed_static_static (false: all-zero DH, unusable peer).
  bool precompute(const StaticIdentity& local) noexcept;
  // Forgets the in-progress handshake; keeps identity, psk, precomputation
  // and latest_timestamp (which guards against replayed initiations).
  void clear() noexcept;
  ~Handshake() { clear(); }
};

// Fills msg (except mac1/mac2 and the sender index, which the caller sets
// once it has registered an index) for peer's handshake.
Drop noise_create_initiation(MessageInitiation& msg, Handshake& hs, const StaticIdentity& local,
                             std::uint64_t wall_ns) noexcept;

// Decrypts an initiation whose MACs were already checked, finds the peer
// by its static key, rejects replays and floods, and records the state in
// the peer's handshake. On success *peer_out is set. When the static key
// decrypts, it is also written to *static_out (if given): a multi-lcore host
// learns from a kUnknownPeer which lcore's device owns the initiator.
Drop noise_consume_initiation(const MessageInitiation& msg, const StaticIdentity& local,
                              const PeerTable& peers, Nanos now, Peer** peer_out,
                              crypto::PublicKey* static_out = nullptr) noexcept;

// Fills msg (except mac1/mac2 and the sender index) answering the
// initiation consumed into hs.
Drop noise_create_response(MessageResponse& msg, Handshake& hs, const StaticIdentity& local) noexcept;

// Consumes a response addressed to hs (found by its receiver index).
Drop noise_consume_response(const MessageResponse& msg, Handshake& hs,
                            const StaticIdentity& local) noexcept;

// Derives the transport keypair from a completed handshake (state
// kCreatedResponse or kConsumedResponse) and zeroes the handshake. The
// keypair takes over the handshake's local index. The receive key goes to
// `recv_key`, for the caller to install on the index's receive line
// (IndexTable::make_keypair); the Keypair holds the send side.
std::unique_ptr<Keypair> noise_begin_session(Handshake& hs, Nanos now, crypto::SecretKey& recv_key) noexcept;

}  // namespace moongate::wg
