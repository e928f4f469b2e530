// Noise_IKpsk2 for WireGuard. Each step is marked with its Noise token
// (e, es, s, ss, ee, se, psk) as in the whitepaper. Every consumer works
// on copies of the hash and chaining key and commits them to the peer's
// handshake only after the last check passed, so a bad message never
// disturbs a handshake in progress.
#include "wireguard/noise.h"

#include <cstring>
#include <new>

#include "crypto/aead.h"
#include "crypto/blake2s.h"
#include "wireguard/peer.h"
#include "wireguard/peer_table.h"

namespace moongate::wg {
namespace {

using crypto::Bytes;
using crypto::SecretKey;

constexpr char kConstruction[] = "Noise_IKpsk2_25519_ChaChaPoly_BLAKE2s";
constexpr char kIdentifier[] = "WireGuard v1 zx2c4 Jason@zx2c4.com";

struct InitialState {
  std::uint8_t chaining_key[32];
  std::uint8_t hash[32];
  InitialState() noexcept {
    crypto::blake2s256(chaining_key, Bytes(reinterpret_cast<const std::uint8_t*>(kConstruction),
                                           sizeof kConstruction - 1));
    crypto::blake2s256(hash, Bytes(chaining_key, 32),
                       Bytes(reinterpret_cast<const std::uint8_t*>(kIdentifier),
                             sizeof kIdentifier - 1));
  }
};

const InitialState& initial() noexcept {
  static const InitialState s;
  return s;
}

void mix_hash(std::uint8_t hash[32], const std::uint8_t* data, std::size_t len) noexcept {
  crypto::blake2s256(hash, Bytes(hash, 32), Bytes(data, len));
}

// ck = KDF1(ck, e): the ephemeral key enters the chain in the clear.
void mix_ephemeral(std::uint8_t hash[32], SecretKey& ck, const std::uint8_t e[32]) noexcept {
  mix_hash(hash, e, 32);
  crypto::kdf(ck.data(), nullptr, nullptr, ck.data(), Bytes(e, 32));
}

// (ck, key) = KDF2(ck, DH(priv, pub)); false on an all-zero DH result.
bool mix_dh(SecretKey& ck, SecretKey* key, const SecretKey& priv,
            const crypto::PublicKey& pub) noexcept {
  SecretKey dh;
  if (!crypto::x25519(dh, priv, pub)) return false;
  crypto::kdf(ck.data(), key ? key->data() : nullptr, nullptr, ck.data(), dh.span());
  return true;
}

// (ck, key) = KDF2(ck, precomputed DH).
bool mix_precomputed(SecretKey& ck, SecretKey& key, const SecretKey& dh) noexcept {
  if (dh.is_zero()) return false;
  crypto::kdf(ck.data(), key.data(), nullptr, ck.data(), dh.span());
  return true;
}

void seal(std::uint8_t* dst, const std::uint8_t* src, std::size_t len, const SecretKey& key,
          std::uint8_t hash[32]) noexcept {
  crypto::chacha20poly1305_encrypt(dst, src, len, hash, 32, 0, key.data());
  mix_hash(hash, dst, len + kTagLen);
}

bool open(std::uint8_t* dst, const std::uint8_t* src, std::size_t len, const SecretKey& key,
          std::uint8_t hash[32]) noexcept {
  if (!crypto::chacha20poly1305_decrypt(dst, src, len, hash, 32, 0, key.data())) return false;
  mix_hash(hash, src, len + kTagLen);
  return true;
}

}  // namespace

void StaticIdentity::set(const crypto::SecretKey& priv) noexcept {
  private_key = priv;
  crypto::x25519_clamp(private_key);
  has_key = !private_key.is_zero();
  if (has_key)
    crypto::x25519_public(public_key, private_key);
  else
    public_key.fill(0);
}

void StaticIdentity::clear() noexcept {
  private_key.clear();
  public_key.fill(0);
  has_key = false;
}

bool Handshake::precompute(const StaticIdentity& local) noexcept {
  if (!local.has_key || !crypto::x25519(precomputed_static_static, local.private_key, remote_static)) {
    precomputed_static_static.clear();
    return false;
  }
  return true;
}

void Handshake::clear() noexcept {
  state = HandshakeState::kZeroed;
  ephemeral_private.clear();
  remote_ephemeral.fill(0);
  chaining_key.clear();
  crypto::secure_wipe(hash, sizeof hash);
  remote_index = 0;
}

Drop noise_create_initiation(MessageInitiation& msg, Handshake& hs, const StaticIdentity& local,
                             std::uint64_t wall_ns) noexcept {
  if (!local.has_key) return Drop::kNoPrivateKey;
  SecretKey ck;
  ck.assign(std::span<const std::uint8_t, 32>(initial().chaining_key));
  std::uint8_t hash[32];
  crypto::blake2s256(hash, Bytes(initial().hash, 32), Bytes(hs.remote_static));
  SecretKey key;
  SecretKey eph;
  crypto::PublicKey eph_pub;
  crypto::x25519_generate(eph, eph_pub);

  store_le32(msg.type, static_cast<std::uint32_t>(MessageType::kInitiation));
  /* e */
  std::memcpy(msg.ephemeral, eph_pub.data(), 32);
  mix_ephemeral(hash, ck, msg.ephemeral);
  /* es */
  if (!mix_dh(ck, &key, eph, hs.remote_static)) return Drop::kLowOrderPoint;
  /* s */
  seal(msg.encrypted_static, local.public_key.data(), 32, key, hash);
  /* ss */
  if (!mix_precomputed(ck, key, hs.precomputed_static_static)) return Drop::kLowOrderPoint;
  /* {t} */
  const crypto::Tai64n ts = crypto::tai64n_encode(wall_ns);
  seal(msg.encrypted_timestamp, ts.data(), ts.size(), key, hash);

  hs.ephemeral_private = std::move(eph);
  hs.chaining_key = std::move(ck);
  std::memcpy(hs.hash, hash, 32);
  crypto::secure_wipe(hash, sizeof hash);
  hs.remote_index = 0;
  hs.state = HandshakeState::kCreatedInitiation;
  return Drop::kOk;
}

Drop noise_consume_initiation(const MessageInitiation& msg, const StaticIdentity& local,
                              const PeerTable& peers, Nanos now, Peer** peer_out,
                              crypto::PublicKey* static_out) noexcept {
  *peer_out = nullptr;
  if (!local.has_key) return Drop::kNoPrivateKey;
  SecretKey ck;
  ck.assign(std::span<const std::uint8_t, 32>(initial().chaining_key));
  std::uint8_t hash[32];
  crypto::blake2s256(hash, Bytes(initial().hash, 32), Bytes(local.public_key));
  SecretKey key;
  crypto::PublicKey remote_eph;
  std::memcpy(remote_eph.data(), msg.ephemeral, 32);

  /* e */
  mix_ephemeral(hash, ck, msg.ephemeral);
  /* es */
  if (!mix_dh(ck, &key, local.private_key, remote_eph)) return Drop::kLowOrderPoint;
  /* s */
  crypto::PublicKey remote_static;
  if (!open(remote_static.data(), msg.encrypted_static, 32, key, hash))
    return Drop::kHandshakeDecrypt;
  if (static_out != nullptr) *static_out = remote_static;
  Peer* peer = peers.find(remote_static);
  if (peer == nullptr) return Drop::kUnknownPeer;
  Handshake& hs = peer->handshake;
  /* ss */
  if (!mix_precomputed(ck, key, hs.precomputed_static_static)) return Drop::kLowOrderPoint;
  /* {t} */
  crypto::Tai64n ts;
  if (!open(ts.data(), msg.encrypted_timestamp, ts.size(), key, hash))
    return Drop::kHandshakeDecrypt;

  // A replayed initiation carries an old timestamp; a flood of fresh ones
  // is capped per peer so nobody can make us do DH work at line rate.
  if (!crypto::tai64n_after(ts, hs.latest_timestamp)) return Drop::kStaleTimestamp;
  if (hs.consumed_any_initiation && now - hs.last_initiation_consumption < kMinInitiationInterval)
    return Drop::kInitiationFlood;

  hs.remote_ephemeral = remote_eph;
  hs.latest_timestamp = ts;
  hs.chaining_key = std::move(ck);
  std::memcpy(hs.hash, hash, 32);
  crypto::secure_wipe(hash, sizeof hash);
  hs.remote_index = load_le32(msg.sender);
  hs.ephemeral_private.clear();
  hs.last_initiation_consumption = now;
  hs.consumed_any_initiation = true;
  hs.state = HandshakeState::kConsumedInitiation;
  *peer_out = peer;
  return Drop::kOk;
}

Drop noise_create_response(MessageResponse& msg, Handshake& hs,
                           const StaticIdentity& local) noexcept {
  if (!local.has_key) return Drop::kNoPrivateKey;
  if (hs.state != HandshakeState::kConsumedInitiation) return Drop::kUnexpectedHandshake;
  SecretKey ck = hs.chaining_key;
  std::uint8_t hash[32];
  std::memcpy(hash, hs.hash, 32);
  SecretKey eph;
  crypto::PublicKey eph_pub;
  crypto::x25519_generate(eph, eph_pub);

  store_le32(msg.type, static_cast<std::uint32_t>(MessageType::kResponse));
  store_le32(msg.receiver, hs.remote_index);
  /* e */
  std::memcpy(msg.ephemeral, eph_pub.data(), 32);
  mix_ephemeral(hash, ck, msg.ephemeral);
  /* ee */
  if (!mix_dh(ck, nullptr, eph, hs.remote_ephemeral)) return Drop::kLowOrderPoint;
  /* se */
  if (!mix_dh(ck, nullptr, eph, hs.remote_static)) return Drop::kLowOrderPoint;
  /* psk */
  SecretKey tau;
  SecretKey key;
  crypto::kdf(ck.data(), tau.data(), key.data(), ck.data(), hs.preshared_key.span());
  mix_hash(hash, tau.data(), 32);
  /* {} */
  seal(msg.encrypted_nothing, nullptr, 0, key, hash);

  hs.ephemeral_private = std::move(eph);
  hs.chaining_key = std::move(ck);
  std::memcpy(hs.hash, hash, 32);
  crypto::secure_wipe(hash, sizeof hash);
  hs.state = HandshakeState::kCreatedResponse;
  return Drop::kOk;
}

Drop noise_consume_response(const MessageResponse& msg, Handshake& hs,
                            const StaticIdentity& local) noexcept {
  if (!local.has_key) return Drop::kNoPrivateKey;
  if (hs.state != HandshakeState::kCreatedInitiation) return Drop::kUnexpectedHandshake;
  SecretKey ck = hs.chaining_key;
  std::uint8_t hash[32];
  std::memcpy(hash, hs.hash, 32);
  crypto::PublicKey remote_eph;
  std::memcpy(remote_eph.data(), msg.ephemeral, 32);

  /* e */
  mix_ephemeral(hash, ck, msg.ephemeral);
  /* ee */
  if (!mix_dh(ck, nullptr, hs.ephemeral_private, remote_eph)) return Drop::kLowOrderPoint;
  /* se */
  if (!mix_dh(ck, nullptr, local.private_key, remote_eph)) return Drop::kLowOrderPoint;
  /* psk */
  SecretKey tau;
  SecretKey key;
  crypto::kdf(ck.data(), tau.data(), key.data(), ck.data(), hs.preshared_key.span());
  mix_hash(hash, tau.data(), 32);
  /* {} */
  if (!open(nullptr, msg.encrypted_nothing, 0, key, hash)) {
    crypto::secure_wipe(hash, sizeof hash);
    return Drop::kHandshakeDecrypt;
  }

  hs.remote_ephemeral = remote_eph;
  hs.chaining_key = std::move(ck);
  std::memcpy(hs.hash, hash, 32);
  crypto::secure_wipe(hash, sizeof hash);
  hs.remote_index = load_le32(msg.sender);
  hs.state = HandshakeState::kConsumedResponse;
  return Drop::kOk;
}

std::unique_ptr<Keypair> noise_begin_session(Handshake& hs, Nanos now, crypto::SecretKey& recv_key) noexcept {
  const bool initiator = hs.state == HandshakeState::kConsumedResponse;
  if (!initiator && hs.state != HandshakeState::kCreatedResponse) return nullptr;
  std::unique_ptr<Keypair> kp(new (std::nothrow) Keypair);
  if (!kp) return nullptr;
  // (T_send, T_recv) = KDF2(ck, empty) for the initiator; mirrored for the responder.
  crypto::SecretKey& first = initiator ? kp->send_key : recv_key;
  crypto::SecretKey& second = initiator ? recv_key : kp->send_key;
  crypto::kdf(first.data(), second.data(), nullptr, hs.chaining_key.data(), Bytes());
  kp->set_origin(now, initiator);
  kp->local_index = hs.local_index;
  kp->remote_index = hs.remote_index;
  hs.local_index = 0;  // the index now names the keypair
  hs.clear();
  return kp;
}

}  // namespace moongate::wg
