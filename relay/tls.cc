// OpenSSL contexts and the io_uring-friendly connection wrapper (tls.h).
#include "relay/tls.h"

#include <arpa/inet.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/rand.h>
#include <openssl/sha.h>
#include <openssl/x509v3.h>
#include <sys/stat.h>

#include <cstring>

namespace moongate::relay {
namespace {

std::string ssl_error() {
  char buf[256];
  unsigned long e = ERR_get_error();
  if (!e) return "unknown OpenSSL error";
  ERR_error_string_n(e, buf, sizeof buf);
  ERR_clear_error();
  return buf;
}

bool is_ip(const std::string& s) {
  unsigned char b[16];
  return inet_pton(AF_INET, s.c_str(), b) == 1 || inet_pton(AF_INET6, s.c_str(), b) == 1;
}

bool exists(const std::string& p) {
  struct stat st;
  return stat(p.c_str(), &st) == 0;
}

// A self-signed certificate for an IP address, as derper makes one: the
// client pins it by the SHA-256 of its DER bytes.
bool make_self_signed(SSL_CTX* ctx, const std::string& ip, std::string& pin, std::string& error) {
  EVP_PKEY* key = EVP_EC_gen("P-256");
  X509* x = X509_new();
  bool ok = key && x;
  if (ok) {
    X509_set_version(x, 2);
    unsigned char serial[16];
    RAND_bytes(serial, sizeof serial);
    serial[0] &= 0x7f;
    BIGNUM* bn = BN_bin2bn(serial, sizeof serial, nullptr);
    BN_to_ASN1_INTEGER(bn, X509_get_serialNumber(x));
    BN_free(bn);
    X509_gmtime_adj(X509_getm_notBefore(x), -3600);
    X509_gmtime_adj(X509_getm_notAfter(x), 60L * 60 * 24 * 365 * 10);
    X509_set_pubkey(x, key);
    X509_NAME* name = X509_get_subject_name(x);
    X509_NAME_add_entry_by_txt(name, "CN", MBSTRING_ASC,
                               reinterpret_cast<const unsigned char*>(ip.c_str()), -1, -1, 0);
    X509_set_issuer_name(x, name);
    X509V3_CTX v3;
    X509V3_set_ctx_nodb(&v3);
    X509V3_set_ctx(&v3, x, x, nullptr, nullptr, 0);
    const std::string san = "IP:" + ip;
    X509_EXTENSION* ext = X509V3_EXT_conf_nid(nullptr, &v3, NID_subject_alt_name, san.c_str());
    ok = ext && X509_add_ext(x, ext, -1) == 1;
    X509_EXTENSION_free(ext);
    ok = ok && X509_sign(x, key, EVP_sha256()) > 0;
    ok = ok && SSL_CTX_use_certificate(ctx, x) == 1 && SSL_CTX_use_PrivateKey(ctx, key) == 1;
  }
  if (ok) {
    unsigned char* der = nullptr;
    const int n = i2d_X509(x, &der);
    unsigned char digest[32];
    SHA256(der, static_cast<std::size_t>(n), digest);
    OPENSSL_free(der);
    static constexpr char kHex[] = "0123456789abcdef";
    pin = "sha256-raw:";
    for (unsigned char b : digest) {
      pin += kHex[b >> 4];
      pin += kHex[b & 15];
    }
  } else {
    error = "self-signed certificate: " + ssl_error();
  }
  X509_free(x);
  EVP_PKEY_free(key);
  return ok;
}

// derper's meta certificate: it carries nothing but the DERP server key in
// its CN and is never used to verify anything.
bool add_meta_cert(SSL_CTX* ctx, const std::string& key_hex, std::string& error) {
  EVP_PKEY* key = EVP_EC_gen("P-256");
  X509* x = X509_new();
  bool ok = key && x;
  if (ok) {
    X509_set_version(x, 2);
    ASN1_INTEGER_set(X509_get_serialNumber(x), 2);
    X509_gmtime_adj(X509_getm_notBefore(x), -3600);
    X509_gmtime_adj(X509_getm_notAfter(x), 60L * 60 * 24 * 365 * 10);
    X509_set_pubkey(x, key);
    const std::string cn = "derpkey" + key_hex;
    X509_NAME* name = X509_get_subject_name(x);
    // 71 characters: over X.520's 64 for a CN, which OpenSSL enforces for
    // MBSTRING_* input; a plain UTF8String type skips that table (Go, which
    // reads it, does not care).
    ok = X509_NAME_add_entry_by_NID(name, NID_commonName, V_ASN1_UTF8STRING,
                                    reinterpret_cast<const unsigned char*>(cn.c_str()),
                                    static_cast<int>(cn.size()), -1, 0) == 1;
    X509_set_issuer_name(x, name);
    ok = ok && X509_sign(x, key, EVP_sha256()) > 0 && SSL_CTX_add1_chain_cert(ctx, x) == 1;
  }
  if (!ok) error = "meta certificate: " + ssl_error();
  X509_free(x);
  EVP_PKEY_free(key);
  return ok;
}

}  // namespace

// The BIO's state: the ciphertext being fed and where output goes; and, for
// a lean server connection, the traffic secrets the keylog callback saw.
struct TlsConn::Io {
  const std::uint8_t* in = nullptr;
  std::size_t in_len = 0;
  std::string* out = nullptr;
  crypto::Secret<48> client_secret, server_secret;
  std::size_t client_len = 0, server_len = 0;
};

namespace {

int bio_write(BIO* b, const char* data, int len) {
  auto* io = static_cast<TlsConn::Io*>(BIO_get_data(b));
  BIO_clear_retry_flags(b);
  io->out->append(data, static_cast<std::size_t>(len));
  return len;
}

int bio_read(BIO* b, char* data, int len) {
  auto* io = static_cast<TlsConn::Io*>(BIO_get_data(b));
  BIO_clear_retry_flags(b);
  if (io->in_len == 0) {
    BIO_set_retry_read(b);
    return -1;
  }
  const std::size_t n = std::min(io->in_len, static_cast<std::size_t>(len));
  std::memcpy(data, io->in, n);
  io->in += n;
  io->in_len -= n;
  return static_cast<int>(n);
}

long bio_ctrl(BIO*, int cmd, long, void*) {
  return cmd == BIO_CTRL_FLUSH ? 1 : 0;
}

BIO_METHOD* bio_method() {
  // Built once; BIO_METHOD is immutable after setup and shared by all threads.
  static BIO_METHOD* m = [] {
    BIO_METHOD* x = BIO_meth_new(BIO_get_new_index() | BIO_TYPE_SOURCE_SINK, "moongate-uring");
    BIO_meth_set_write(x, bio_write);
    BIO_meth_set_read(x, bio_read);
    BIO_meth_set_ctrl(x, bio_ctrl);
    BIO_meth_set_create(x, [](BIO* b) {
      BIO_set_init(b, 1);
      return 1;
    });
    return x;
  }();
  return m;
}

int hex_digit(char c) {
  if (c >= '0' && c <= '9') return c - '0';
  if (c >= 'a' && c <= 'f') return c - 'a' + 10;
  if (c >= 'A' && c <= 'F') return c - 'A' + 10;
  return -1;
}

// OpenSSL gives the TLS 1.3 secrets only as NSS key log lines
// ("<LABEL> <client random hex> <secret hex>"); it wipes the line after the
// call. The application traffic secrets go to the connection's Io.
void keylog(const SSL* ssl, const char* line) {
  BIO* b = SSL_get_rbio(ssl);
  auto* io = b ? static_cast<TlsConn::Io*>(BIO_get_data(b)) : nullptr;
  if (!io) return;
  crypto::Secret<48>* dst;
  std::size_t* len;
  static constexpr char kClient[] = "CLIENT_TRAFFIC_SECRET_0 ";
  static constexpr char kServer[] = "SERVER_TRAFFIC_SECRET_0 ";
  if (std::strncmp(line, kClient, sizeof kClient - 1) == 0) {
    dst = &io->client_secret;
    len = &io->client_len;
  } else if (std::strncmp(line, kServer, sizeof kServer - 1) == 0) {
    dst = &io->server_secret;
    len = &io->server_len;
  } else {
    return;
  }
  const char* p = std::strchr(line + sizeof kClient - 1, ' ');
  if (!p) return;
  ++p;
  std::size_t n = 0;
  for (; p[0] && p[1] && n < crypto::Secret<48>::size(); p += 2, ++n) {
    const int hi = hex_digit(p[0]), lo = hex_digit(p[1]);
    if (hi < 0 || lo < 0) return;
    dst->data()[n] = static_cast<std::uint8_t>(hi << 4 | lo);
  }
  if (*p) return;  // longer than any suite's hash: not ours to use
  *len = n;
}

}  // namespace

TlsContext::~TlsContext() { SSL_CTX_free(ctx_); }

std::unique_ptr<TlsContext> TlsContext::server(const std::string& certdir,
                                               const std::string& hostname, std::string& error,
                                               const std::string& derp_key_hex) {
  SSL_CTX* ctx = SSL_CTX_new(TLS_server_method());
  if (!ctx) {
    error = ssl_error();
    return nullptr;
  }
  std::unique_ptr<TlsContext> t(new TlsContext(ctx));
  SSL_CTX_set_min_proto_version(ctx, TLS1_2_VERSION);
  // Idle connections give their record buffers back (memory per connection).
  SSL_CTX_set_mode(ctx, SSL_MODE_RELEASE_BUFFERS | SSL_MODE_ENABLE_PARTIAL_WRITE |
                            SSL_MODE_ACCEPT_MOVING_WRITE_BUFFER);
  // TLS 1.3 suites in derper's order (Go's crypto/tls server): AES-128-GCM
  // first, ChaCha20-Poly1305 when the client lists it first (no AES
  // hardware there), AES-256-GCM last. AES-128-GCM is the cheaper of the
  // two AES suites per byte relayed.
  SSL_CTX_set_options(ctx, SSL_OP_NO_RENEGOTIATION | SSL_OP_CIPHER_SERVER_PREFERENCE |
                               SSL_OP_PRIORITIZE_CHACHA);
  SSL_CTX_set_ciphersuites(ctx, "TLS_AES_128_GCM_SHA256:TLS_CHACHA20_POLY1305_SHA256:TLS_AES_256_GCM_SHA384");
  SSL_CTX_set_session_cache_mode(ctx, SSL_SESS_CACHE_OFF);
  // No tickets: after the handshake nothing is left to send, so the SSL
  // object can go (lean connections, tls_record.h).
  SSL_CTX_set_num_tickets(ctx, 0);
  SSL_CTX_set_keylog_callback(ctx, keylog);
  const std::string crt = certdir + "/" + hostname + ".crt";
  const std::string key = certdir + "/" + hostname + ".key";
  if (exists(crt) || exists(key) || !is_ip(hostname)) {
    if (SSL_CTX_use_certificate_chain_file(ctx, crt.c_str()) != 1 ||
        SSL_CTX_use_PrivateKey_file(ctx, key.c_str(), SSL_FILETYPE_PEM) != 1 ||
        SSL_CTX_check_private_key(ctx) != 1) {
      error = crt + ", " + key + ": " + ssl_error();
      return nullptr;
    }
  } else if (!make_self_signed(ctx, hostname, t->pin_, error)) {
    return nullptr;
  }
  if (!derp_key_hex.empty() && !add_meta_cert(ctx, derp_key_hex, error)) return nullptr;
  return t;
}

std::unique_ptr<TlsContext> TlsContext::client(bool verify, std::string& error) {
  SSL_CTX* ctx = SSL_CTX_new(TLS_client_method());
  if (!ctx) {
    error = ssl_error();
    return nullptr;
  }
  std::unique_ptr<TlsContext> t(new TlsContext(ctx));
  SSL_CTX_set_min_proto_version(ctx, TLS1_2_VERSION);
  SSL_CTX_set_mode(ctx, SSL_MODE_RELEASE_BUFFERS | SSL_MODE_ENABLE_PARTIAL_WRITE |
                            SSL_MODE_ACCEPT_MOVING_WRITE_BUFFER);
  if (verify) {
    SSL_CTX_set_verify(ctx, SSL_VERIFY_PEER, nullptr);
    SSL_CTX_set_default_verify_paths(ctx);
  } else {
    SSL_CTX_set_verify(ctx, SSL_VERIFY_NONE, nullptr);
  }
  return t;
}

TlsConn::TlsConn(SSL_CTX* ctx, bool server, std::string* out, RecordCiphers* ciphers)
    : io_(new Io), out_(out), ciphers_(server ? ciphers : nullptr) {
  io_->out = out;
  ssl_ = SSL_new(ctx);
  BIO* b = BIO_new(bio_method());
  BIO_set_data(b, io_);
  SSL_set_bio(ssl_, b, b);
  if (server) SSL_set_accept_state(ssl_);
  else SSL_set_connect_state(ssl_);
}

TlsConn::~TlsConn() {
  SSL_free(ssl_);
  delete io_;  // its secrets wipe themselves
}

void TlsConn::set_out(std::string* out) noexcept {
  out_ = out;
  if (io_) io_->out = out;
}

void TlsConn::set_sni(const std::string& host) noexcept {
  // SSL_set_tlsext_host_name is a macro with a C cast; call what it expands to.
  if (ssl_ && !is_ip(host))
    SSL_ctrl(ssl_, SSL_CTRL_SET_TLSEXT_HOSTNAME, TLSEXT_NAMETYPE_host_name,
             const_cast<char*>(host.c_str()));
}

void TlsConn::feed(std::span<const std::uint8_t> cipher) noexcept {
  io_->in = cipher.data();
  io_->in_len = cipher.size();
}

long TlsConn::read(std::uint8_t* buf, std::size_t len) noexcept {
  const int n = SSL_read(ssl_, buf, static_cast<int>(len));
  if (n > 0) return n;
  const int e = SSL_get_error(ssl_, n);
  if (e == SSL_ERROR_WANT_READ || e == SSL_ERROR_WANT_WRITE) {
    ERR_clear_error();
    return 0;
  }
  ERR_clear_error();
  return -1;
}

bool TlsConn::lean_handshake(std::span<const std::uint8_t>& rest, bool& done) noexcept {
  if (SSL_is_init_finished(ssl_)) {  // stayed in OpenSSL (TLS 1.2, another suite)
    done = true;
    return true;
  }
  feed(rest);
  const int r = SSL_do_handshake(ssl_);
  if (r != 1) {
    const int e = SSL_get_error(ssl_, r);
    ERR_clear_error();
    feed({});
    rest = {};
    done = false;
    return e == SSL_ERROR_WANT_READ || e == SSL_ERROR_WANT_WRITE;
  }
  // OpenSSL reads no further than the client's Finished (no read-ahead):
  // what follows is the first application data, for whichever layer is next.
  rest = {io_->in, io_->in_len};
  feed({});
  done = true;
  to_records();
  return true;
}

bool TlsConn::to_records() noexcept {
  if (SSL_version(ssl_) != TLS1_3_VERSION || SSL_has_pending(ssl_)) return false;
  const SSL_CIPHER* c = SSL_get_current_cipher(ssl_);
  TlsSuite suite;
  switch (c ? SSL_CIPHER_get_protocol_id(c) : 0) {
    case 0x1301: suite = TlsSuite::kAes128Gcm; break;
    case 0x1302: suite = TlsSuite::kAes256Gcm; break;
    case 0x1303: suite = TlsSuite::kChaCha20Poly1305; break;
    default: return false;  // the CCM suites (not enabled by default)
  }
  const std::size_t hl = suite_hash_len(suite);
  if (io_->client_len != hl || io_->server_len != hl) return false;
  auto r = std::make_unique<TlsRecords>(*ciphers_, suite);
  // The server reads with the client's secret and writes with its own.
  if (!r->install({io_->client_secret.data(), hl}, {io_->server_secret.data(), hl})) return false;
  records_ = std::move(r);
  SSL_free(ssl_);  // frees the BIO too; nothing is pending (no tickets)
  ssl_ = nullptr;
  delete io_;
  io_ = nullptr;
  return true;
}

bool TlsConn::write(std::span<const std::uint8_t> plain) noexcept {
  if (records_) return records_->seal(plain, *out_);
  std::size_t off = 0;
  while (off < plain.size()) {
    // Our BIO never refuses output, so a write only stops on a real error.
    const int n = SSL_write(ssl_, plain.data() + off, static_cast<int>(plain.size() - off));
    if (n <= 0) {
      ERR_clear_error();
      return false;
    }
    off += static_cast<std::size_t>(n);
  }
  return true;
}

bool TlsConn::writev(const iovec* iov, std::size_t n, std::span<std::uint8_t> scratch) noexcept {
  if (records_) return records_->seal(iov, n, *out_);
  // Frames are gathered into full TLS records (16 KiB): one record per
  // 1 200-byte packet would pay the per-record cost for each.
  const std::size_t record = std::min<std::size_t>(scratch.size(), kTlsMaxPlain);
  std::size_t fill = 0;
  for (std::size_t i = 0; i < n; ++i) {
    const auto* p = static_cast<const std::uint8_t*>(iov[i].iov_base);
    std::size_t len = iov[i].iov_len;
    while (len > 0) {
      const std::size_t take = std::min(len, record - fill);
      std::memcpy(scratch.data() + fill, p, take);
      fill += take;
      p += take;
      len -= take;
      if (fill == record) {
        if (!write(scratch.first(fill))) return false;
        fill = 0;
      }
    }
  }
  return !fill || write(scratch.first(fill));
}

bool TlsConn::release_buffers() noexcept {
  if (records_) return records_->release();
  return SSL_pending(ssl_) == 0 && SSL_free_buffers(ssl_) == 1;
}

bool TlsConn::handshake_done() const noexcept {
  return records_ || SSL_is_init_finished(ssl_) == 1;
}

TlsConn::Result TlsConn::handshake() noexcept {
  if (records_) return Result::kOk;
  const int r = SSL_do_handshake(ssl_);
  if (r == 1) return Result::kOk;
  const int e = SSL_get_error(ssl_, r);
  ERR_clear_error();
  return e == SSL_ERROR_WANT_READ || e == SSL_ERROR_WANT_WRITE ? Result::kWant : Result::kError;
}

const char* TlsConn::error() const noexcept {
  const TlsClose c = close_reason();
  return c == TlsClose::kCount ? "TLS error" : tls_close_name(c);
}

}  // namespace moongate::relay
