// TLS for the relay through OpenSSL, driven by io_uring: OpenSSL never
// touches the socket. A custom BIO hands it the bytes a recv completion
// brought and collects what it wants to send, which the shard then writes
// with io_uring.
//
//   certificates: <certdir>/<hostname>.crt and .key (derper's manual mode),
//   or, for an IP address with no files, a self-signed certificate whose
//   pin `sha256-raw:<hex of the DER>` goes into the node's CertName.
#pragma once

#include <openssl/ssl.h>

#include <cstdint>
#include <memory>
#include <span>
#include <string>

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
class TlsConn {
 public:
  // `out` collects ciphertext to send (owned by the caller, usually a
  // per-shard scratch buffer drained after every call).
  TlsConn(SSL_CTX* ctx, bool server, std::string* out);
  ~TlsConn();
  TlsConn(const TlsConn&) = delete;
  TlsConn& operator=(const TlsConn&) = delete;

  enum class Result { kOk, kWant, kError };
  // Feeds ciphertext; call read() until it returns 0 bytes.
  void feed(std::span<const std::uint8_t> cipher) noexcept;
  // Plaintext into buf; returns bytes (0 when it needs more input), -1 on a
  // fatal error or the peer's close_notify.
  long read(std::uint8_t* buf, std::size_t len) noexcept;
  // Encrypts all of `plain` into the output. false on error.
  bool write(std::span<const std::uint8_t> plain) noexcept;
  bool handshake_done() const noexcept;
  // Drives the handshake (client side needs this to send its hello).
  Result handshake() noexcept;
  void set_out(std::string* out) noexcept;
  void set_sni(const std::string& host) noexcept;
  // Frees OpenSSL's record buffers (~17 KiB each) while nothing is buffered;
  // false when data is pending. For idle connections: OpenSSL keeps a read
  // buffer after every read attempt that found no data.
  bool release_buffers() noexcept;

  struct Io;  // the BIO's view of this connection (tls.cc)

 private:
  SSL* ssl_ = nullptr;
  Io* io_;
};

}  // namespace moongate::relay
