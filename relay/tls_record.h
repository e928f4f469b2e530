// The TLS 1.3 record layer after the handshake, in user space: what kTLS
// does in the kernel, for a kernel without the `tls` ULP.
//
//   1. OpenSSL runs the handshake (tls.cc). Its keylog callback hands over
//      CLIENT_TRAFFIC_SECRET_0 and SERVER_TRAFFIC_SECRET_0; no session
//      tickets are sent, so nothing is pending when the handshake ends.
//   2. TlsRecords::install() derives each direction's key and IV from its
//      traffic secret (HKDF-Expand-Label, RFC 8446 §7.1, §7.3) and the SSL
//      object is freed (~14.5 KiB): an idle connection keeps only the
//      secrets, keys, IVs and sequence numbers below.
//   3. receive(): records are opened where they lie in the receive buffer;
//      only a record cut by the end of a receive is copied, into a buffer
//      that exists while the record is incomplete (or until release()).
//      Inner content types (RFC 8446 §5.2, §5.4):
//        application_data -> plaintext to the caller
//        handshake        -> KeyUpdate only (§4.6.3): new read key; with
//                            update_requested, our own KeyUpdate goes out
//                            before any further data, then the new write key
//        alert            -> close_notify or another alert: the end
//        anything else, a bad tag, an oversized record -> the end, with a
//                            counted reason (TlsClose)
//   4. seal(): plaintext (gathered from iovecs) goes straight into the
//      output as records of up to 16 KiB; after kRekeyAfterRecords records
//      under one key we send a KeyUpdate ourselves (AES-GCM's usage limit,
//      RFC 8446 §5.5).
//
// The AEAD contexts (expanded key schedules) belong to the shard, not the
// connection: RecordCiphers keeps a few of them keyed by which connection's
// key they hold, and re-keys one for the record at hand when none does.
// Single-threaded: one shard owns a TlsRecords and its RecordCiphers.
#pragma once

#include <openssl/evp.h>
#include <sys/uio.h>

#include <array>
#include <cstddef>
#include <cstdint>
#include <span>
#include <string>
#include <vector>

#include "crypto/secret.h"

namespace moongate::relay {

// The TLS 1.3 cipher suites this layer takes over; any other suite stays in
// OpenSSL.
enum class TlsSuite : std::uint8_t { kAes128Gcm, kAes256Gcm, kChaCha20Poly1305 };

// Why a connection in the user-space record layer ended. One list: the
// enum, the per-shard counters and the metric names come from it.
#define MOONGATE_TLS_CLOSES(X)                                                           \
  X(kCloseNotify, "close_notify", "the peer's close_notify alert")                       \
  X(kAlert, "alert", "another alert from the peer")                                      \
  X(kBadRecordMac, "bad_record_mac", "a record that failed authentication")              \
  X(kRecordOverflow, "record_overflow", "a record longer than RFC 8446 allows")          \
  X(kBadRecordType, "bad_record_type", "an outer record type other than application_data") \
  X(kBadContentType, "bad_content_type", "an inner content type that is not expected")   \
  X(kBadHandshake, "bad_handshake_message", "a post-handshake message other than KeyUpdate") \
  X(kBadKeyUpdate, "bad_key_update", "a malformed KeyUpdate")                            \
  X(kSequenceExhausted, "sequence_exhausted", "a sequence number at its limit")          \
  X(kInternal, "internal", "an AEAD or KDF call that failed")

enum class TlsClose : std::uint8_t {
#define MOONGATE_TLS_CLOSE_ENUM(e, name, help) e,
  MOONGATE_TLS_CLOSES(MOONGATE_TLS_CLOSE_ENUM)
#undef MOONGATE_TLS_CLOSE_ENUM
      kCount
};
const char* tls_close_name(TlsClose c) noexcept;
const char* tls_close_help(TlsClose c) noexcept;

inline constexpr std::size_t kTlsHeaderLen = 5;
inline constexpr std::size_t kTlsTagLen = 16;
inline constexpr std::size_t kTlsMaxPlain = 1 << 14;  // one record's content
// Largest TLSCiphertext.length (RFC 8446 §5.2) and largest inner plaintext
// (content, type, padding: §5.4).
inline constexpr std::size_t kTlsMaxCipher = kTlsMaxPlain + 256;
inline constexpr std::size_t kTlsMaxInner = kTlsMaxPlain + 1;
// Records sealed under one key before we update it: well inside the
// 2^24.5 full-size records RFC 8446 §5.5 allows for AES-GCM.
inline constexpr std::uint64_t kRekeyAfterRecords = 1ull << 24;

// HKDF-Expand-Label(secret, label, "", out.size()) of RFC 8446 §7.1, with
// the suite's hash. false when OpenSSL fails.
bool hkdf_expand_label(TlsSuite suite, std::span<const std::uint8_t> secret, const char* label,
                       std::span<std::uint8_t> out) noexcept;
std::size_t suite_hash_len(TlsSuite suite) noexcept;
std::size_t suite_key_len(TlsSuite suite) noexcept;

// A shard's AEAD contexts, shared by all its connections. A direct-mapped
// cache: slot = key id mod kSlots, so a busy connection keeps its expanded
// key between records and the next connection pays one re-key. Key ids are
// handed out in sequence per direction, so the kSlots keys made last never
// share a slot.
class RecordCiphers {
 public:
  static constexpr std::size_t kSlots = 64;
  RecordCiphers() = default;
  ~RecordCiphers();
  RecordCiphers(const RecordCiphers&) = delete;
  RecordCiphers& operator=(const RecordCiphers&) = delete;

  // A context ready for one record under key `id` with this nonce; nullptr
  // when OpenSSL fails.
  EVP_CIPHER_CTX* get(bool seal, TlsSuite suite, std::uint64_t id, const std::uint8_t* key,
                      const std::uint8_t* nonce) noexcept;
  // A key retired (updated or its connection closed): its expanded copy is
  // wiped (EVP_CIPHER_CTX_reset frees the provider state with a cleanse).
  void forget(bool seal, std::uint64_t id) noexcept;
  // A new key's id: unique among this object's keys of that direction,
  // never 0.
  std::uint64_t new_key_id(bool seal) noexcept { return ++(seal ? next_seal_id_ : next_open_id_); }
  // Key schedules computed (cache misses), for tests and the benchmark.
  std::uint64_t rekeys() const noexcept { return rekeys_; }

 private:
  struct Slot {
    EVP_CIPHER_CTX* ctx = nullptr;
    std::uint64_t id = 0;  // 0: holds no key
    TlsSuite suite{};
  };
  std::array<Slot, kSlots> seal_{}, open_{};
  std::uint64_t next_seal_id_ = 0, next_open_id_ = 0;
  std::uint64_t rekeys_ = 0;
};

// One direction's state: the traffic secret (kept for KeyUpdate), the key
// and IV derived from it, the next record's sequence number.
struct TrafficState {
  crypto::Secret<48> secret;  // 32 bytes used with SHA-256 suites
  crypto::Secret<32> key;     // 16 bytes used with AES-128-GCM
  crypto::Secret<12> iv;
  std::uint64_t seq = 0;
  std::uint64_t id = 0;  // which key this is, for RecordCiphers (0: none yet)
};

class TlsRecords {
 public:
  TlsRecords(RecordCiphers& ciphers, TlsSuite suite) noexcept : ciphers_(&ciphers), suite_(suite) {}
  ~TlsRecords();
  TlsRecords(const TlsRecords&) = delete;
  TlsRecords& operator=(const TlsRecords&) = delete;

  // Takes the read and write traffic secrets (hash-length bytes each) and
  // derives the keys. false on a bad length or a KDF failure.
  bool install(std::span<const std::uint8_t> read_secret,
               std::span<const std::uint8_t> write_secret) noexcept;

  // Ciphertext in; each application_data record's content goes to
  // `deliver(std::span<const uint8_t>)` (zero-length records are dropped),
  // decrypted into `scratch` (at least kTlsMaxCipher bytes: a record's
  // whole encrypted body is decrypted before its length is judged). KeyUpdate
  // replies are sealed into `out`. Returns false when the connection must
  // end; closed() says why. `deliver` may return false to stop (the caller
  // closed the connection); then receive() returns true and the rest of the
  // input is dropped.
  template <typename Deliver>
  bool receive(std::span<const std::uint8_t> in, std::uint8_t* scratch, std::string& out,
               Deliver&& deliver);

  // Seals the concatenation of the iovecs into records appended to `out`
  // (nothing for nothing).
  bool seal(const iovec* iov, std::size_t n, std::string& out) noexcept;
  bool seal(std::span<const std::uint8_t> plain, std::string& out) noexcept {
    const iovec v{const_cast<std::uint8_t*>(plain.data()), plain.size()};
    return seal(&v, 1, out);
  }
  // One record of any inner content type, however long: for alerts, and
  // for tests that need records a well-behaved sender never makes.
  bool seal_content(std::uint8_t type, std::span<const std::uint8_t> plain, std::string& out) noexcept;
  // Sends a KeyUpdate and moves to the next write key (RFC 8446 §4.6.3).
  bool update_write_key(bool request_peer_update, std::string& out) noexcept;

  // Moving to another shard's RecordCiphers (TlsConn::detach_ciphers):
  // the expanded keys are wiped from the old contexts, and the keys get ids
  // of the new owner. Between the two nothing may be opened or sealed.
  void detach_ciphers() noexcept {
    ciphers_->forget(false, read_.id);
    ciphers_->forget(true, write_.id);
    read_.id = write_.id = 0;
  }
  void attach_ciphers(RecordCiphers& ciphers) noexcept {
    ciphers_ = &ciphers;
    read_.id = ciphers.new_key_id(false);
    write_.id = ciphers.new_key_id(true);
  }

  // Frees the partial-record buffer when it holds nothing; false when a
  // record is still incomplete.
  bool release() noexcept;
  bool partial() const noexcept { return !partial_.empty(); }
  TlsClose closed() const noexcept { return closed_; }
  TlsSuite suite() const noexcept { return suite_; }
  std::uint64_t write_seq() const noexcept { return write_.seq; }
  std::uint64_t read_seq() const noexcept { return read_.seq; }
  // Tests: update the write key after this many records instead.
  void set_rekey_after(std::uint64_t records) noexcept { rekey_after_ = records; }

 private:
  enum class Step : std::uint8_t { kData, kNone, kEnd };
  // Opens one whole record (header included) into scratch; kData with
  // `plain` set for application data, kNone for a record handled here.
  Step open(std::span<const std::uint8_t> record, std::uint8_t* scratch, std::string& out,
            std::span<const std::uint8_t>& plain) noexcept;
  bool seal_one(std::uint8_t type, const iovec*& iov, std::size_t& n, std::size_t& off,
                std::size_t len, std::string& out) noexcept;
  bool derive(TrafficState& s) noexcept;
  bool next_secret(TrafficState& s) noexcept;
  bool fail(TlsClose why) noexcept {
    closed_ = why;
    return false;
  }

  RecordCiphers* ciphers_;
  TlsSuite suite_;
  TlsClose closed_ = TlsClose::kCount;  // kCount: open
  std::uint64_t rekey_after_ = kRekeyAfterRecords;
  TrafficState read_, write_;
  std::vector<std::uint8_t> partial_;  // a record cut by the end of a receive
};

template <typename Deliver>
bool TlsRecords::receive(std::span<const std::uint8_t> in, std::uint8_t* scratch, std::string& out,
                         Deliver&& deliver) {
  if (closed_ != TlsClose::kCount) return false;
  auto record_len = [](const std::uint8_t* h) {
    return kTlsHeaderLen + (std::size_t{h[3]} << 8 | h[4]);
  };
  std::span<const std::uint8_t> plain;
  // A record begun in an earlier receive: complete it first.
  if (!partial_.empty()) {
    if (partial_.size() < kTlsHeaderLen) {
      const std::size_t take = std::min(kTlsHeaderLen - partial_.size(), in.size());
      partial_.insert(partial_.end(), in.begin(), in.begin() + static_cast<std::ptrdiff_t>(take));
      in = in.subspan(take);
      if (partial_.size() < kTlsHeaderLen) return true;
    }
    const std::size_t want = record_len(partial_.data());
    if (want - kTlsHeaderLen > kTlsMaxCipher) return fail(TlsClose::kRecordOverflow);
    partial_.reserve(want);
    const std::size_t take = std::min(want - partial_.size(), in.size());
    partial_.insert(partial_.end(), in.begin(), in.begin() + static_cast<std::ptrdiff_t>(take));
    in = in.subspan(take);
    if (partial_.size() < want) return true;
    const Step s = open(partial_, scratch, out, plain);
    partial_.clear();
    if (s == Step::kEnd) return false;
    if (s == Step::kData && !deliver(plain)) return true;
  }
  while (!in.empty()) {
    if (in.size() >= kTlsHeaderLen) {
      const std::size_t want = record_len(in.data());
      if (want - kTlsHeaderLen > kTlsMaxCipher) return fail(TlsClose::kRecordOverflow);
      if (in.size() >= want) {
        const Step s = open(in.first(want), scratch, out, plain);
        in = in.subspan(want);
        if (s == Step::kEnd) return false;
        if (s == Step::kData && !deliver(plain)) return true;
        continue;
      }
      partial_.reserve(want);
    }
    partial_.assign(in.begin(), in.end());
    break;
  }
  return true;
}

}  // namespace moongate::relay
