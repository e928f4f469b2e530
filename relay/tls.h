// TLS for the relay through OpenSSL, driven by io_uring: OpenSSL never
// touches the socket. A custom BIO hands it the bytes a recv completion
// brought and collects what it wants to send, which the shard then writes
// with io_uring. After a TLS 1.3 handshake the server side leaves OpenSSL
// for its own record layer (tls_record.h).
//
//   certificates: <certdir>/<hostname>.crt and .key (derper's manual mode),
//   or, for an IP address with no files, a self-signed certificate whose
//   pin `sha256-raw:<hex of the DER>` goes into the node's CertName.
#pragma once

#include <openssl/ssl.h>
#include <sys/uio.h>

#include <cstdint>
#include <memory>
#include <span>
#include <string>

#include "relay/tls_record.h"

namespace moongate::relay {

class TlsContext {
 public:
  ~TlsContext();
  TlsContext(const TlsContext&) = delete;
  TlsContext& operator=(const TlsContext&) = delete;

  // Server: from files, or self-signed when `hostname` is an IP address and
  // the files do not exist. nullptr and `error` set on failure.
  // `derp_key_hex`, when not empty, adds derper's "meta certificate" after
  // the chain: self-signed, serial 2, CN "derpkey<hex>", so clients learn the
  // server's DERP key from the TLS handshake.
  static std::unique_ptr<TlsContext> server(const std::string& certdir, const std::string& hostname,
                                            std::string& error,
                                            const std::string& derp_key_hex = "");
  // Client (mesh links). `verify` false accepts any certificate (tests,
  // self-signed peers pinned by other means).
  static std::unique_ptr<TlsContext> client(bool verify, std::string& error);

  SSL_CTX* ctx() const noexcept { return ctx_; }
  // "sha256-raw:<hex>" of the certificate when it was made here, else "".
  const std::string& pin() const noexcept { return pin_; }
  bool self_signed() const noexcept { return !pin_.empty(); }

 private:
  explicit TlsContext(SSL_CTX* ctx) : ctx_(ctx) {}
  SSL_CTX* ctx_;
  std::string pin_;
};

// One connection's TLS state. Not thread-safe; owned by one shard.
//
// A server connection given a RecordCiphers is "lean": when its TLS 1.3
// handshake ends, the traffic secrets are taken from OpenSSL (keylog
// callback), the SSL object is freed and records go through TlsRecords
// (tls_record.h). TLS 1.2, a suite TlsRecords does not have, and client
// connections (mesh links: few, and their servers may send session
// tickets) stay in OpenSSL.
class TlsConn {
 public:
  // `out` collects ciphertext to send (owned by the caller, usually the
  // connection's pending output, drained after every call).
  TlsConn(SSL_CTX* ctx, bool server, std::string* out, RecordCiphers* ciphers = nullptr);
  ~TlsConn();
  TlsConn(const TlsConn&) = delete;
  TlsConn& operator=(const TlsConn&) = delete;

  enum class Result { kOk, kWant, kError };
  // Ciphertext in: drives the handshake and hands each piece of plaintext to
  // `deliver(std::span<const uint8_t>) -> bool` (false: stop, the caller
  // closed the connection), decrypted into `scratch` (at least
  // kTlsMaxCipher bytes; a smaller one ends the connection). false when the
  // connection must end (why: error()).
  template <typename Deliver>
  bool receive(std::span<const std::uint8_t> cipher, std::span<std::uint8_t> scratch, Deliver&& deliver);
  // Encrypts all of `plain` into the output. false on error.
  bool write(std::span<const std::uint8_t> plain) noexcept;
  // The same for the concatenation of `n` iovecs, in records of up to
  // 16 KiB (OpenSSL mode gathers them in `scratch`, at least 16 KiB).
  bool writev(const iovec* iov, std::size_t n, std::span<std::uint8_t> scratch) noexcept;
  bool handshake_done() const noexcept;
  // Drives the handshake (client side needs this to send its hello).
  Result handshake() noexcept;
  void set_out(std::string* out) noexcept;
  // The connection moves to another shard (relay/shard.h, Migration): the
  // record layer's keys leave this shard's AEAD contexts (on the old
  // shard's thread), then join the new shard's (on its thread).
  void detach_ciphers() noexcept {
    if (records_) records_->detach_ciphers();
  }
  void attach_ciphers(RecordCiphers* ciphers) noexcept {
    ciphers_ = ciphers;
    if (records_) records_->attach_ciphers(*ciphers);
  }
  void set_sni(const std::string& host) noexcept;
  // Frees record buffers (OpenSSL's ~17 KiB each, or TlsRecords' partial
  // record) while nothing is buffered; false when data is pending.
  bool release_buffers() noexcept;
  // In the user-space record layer (the SSL object is gone).
  bool lean() const noexcept { return records_ != nullptr; }
  const TlsRecords* records() const noexcept { return records_.get(); }
  TlsRecords* records() noexcept { return records_.get(); }
  // Why receive() or a write failed: a TlsClose name, or an OpenSSL failure.
  const char* error() const noexcept;
  // The record layer's reason, kCount when OpenSSL failed (or nothing did).
  TlsClose close_reason() const noexcept {
    return records_ ? records_->closed() : TlsClose::kCount;
  }

  struct Io;  // the BIO's view of this connection, and the handshake's secrets (tls.cc)

 private:
  // Plaintext into buf; returns bytes (0 when it needs more input), -1 on a
  // fatal error or the peer's close_notify.
  long read(std::uint8_t* buf, std::size_t len) noexcept;
  void feed(std::span<const std::uint8_t> cipher) noexcept;
  // Lean server: runs the handshake; at its end moves to TlsRecords when it
  // can. Returns the input OpenSSL did not consume, `done` when the
  // handshake is over (in either mode), false on a handshake failure.
  bool lean_handshake(std::span<const std::uint8_t>& rest, bool& done) noexcept;
  bool to_records() noexcept;

  SSL* ssl_ = nullptr;
  Io* io_ = nullptr;
  std::string* out_;
  RecordCiphers* ciphers_;  // nullptr: never lean
  std::unique_ptr<TlsRecords> records_;
};

template <typename Deliver>
bool TlsConn::receive(std::span<const std::uint8_t> cipher, std::span<std::uint8_t> scratch,
                      Deliver&& deliver) {
  if (ciphers_ && !records_) {
    bool done = false;
    if (!lean_handshake(cipher, done)) return false;
    if (!done) return true;
  }
  if (records_) {
    if (scratch.size() < kTlsMaxCipher) return false;  // a caller's bug: never overrun it
    return records_->receive(cipher, scratch.data(), *out_, deliver);
  }
  feed(cipher);
  bool ok = true;
  for (;;) {
    const long n = read(scratch.data(), scratch.size());
    if (n < 0) {
      ok = false;
      break;
    }
    if (n == 0 || !deliver(std::span<const std::uint8_t>(scratch.data(), static_cast<std::size_t>(n))))
      break;
  }
  feed({});
  if (ok && !handshake_done()) handshake();
  return ok;
}

}  // namespace moongate::relay
