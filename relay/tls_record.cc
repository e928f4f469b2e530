// The user-space TLS 1.3 record layer (flow in tls_record.h).
#include "relay/tls_record.h"

#include <openssl/core_names.h>
#include <openssl/kdf.h>

#include <cstring>

namespace moongate::relay {
namespace {

constexpr std::uint8_t kTypeAlert = 21;
constexpr std::uint8_t kTypeHandshake = 22;
constexpr std::uint8_t kTypeApplicationData = 23;
constexpr std::uint8_t kHandshakeKeyUpdate = 24;
constexpr std::uint8_t kAlertCloseNotify = 0;

const EVP_CIPHER* cipher_of(TlsSuite s) noexcept {
  // Fetched once, explicitly: EVP_aes_128_gcm() and friends make every
  // EVP_CipherInit_ex fetch the implementation again, through the provider
  // store's lock that all shards share. A fetched EVP_CIPHER is immutable
  // and safe to use from any thread.
  static EVP_CIPHER* const kCiphers[] = {
      EVP_CIPHER_fetch(nullptr, "AES-128-GCM", nullptr),
      EVP_CIPHER_fetch(nullptr, "AES-256-GCM", nullptr),
      EVP_CIPHER_fetch(nullptr, "ChaCha20-Poly1305", nullptr),
  };
  return kCiphers[static_cast<std::size_t>(s)];
}

void make_nonce(const TrafficState& s, std::uint8_t nonce[12]) noexcept {
  std::memcpy(nonce, s.iv.data(), 12);
  for (int i = 0; i < 8; ++i) nonce[4 + i] ^= static_cast<std::uint8_t>(s.seq >> (56 - 8 * i));
}

}  // namespace

const char* tls_close_name(TlsClose c) noexcept {
  switch (c) {
#define MOONGATE_TLS_CLOSE_NAME(e, name, help) \
  case TlsClose::e: return name;
    MOONGATE_TLS_CLOSES(MOONGATE_TLS_CLOSE_NAME)
#undef MOONGATE_TLS_CLOSE_NAME
    case TlsClose::kCount: break;
  }
  return "open";
}

const char* tls_close_help(TlsClose c) noexcept {
  switch (c) {
#define MOONGATE_TLS_CLOSE_HELP(e, name, help) \
  case TlsClose::e: return help;
    MOONGATE_TLS_CLOSES(MOONGATE_TLS_CLOSE_HELP)
#undef MOONGATE_TLS_CLOSE_HELP
    case TlsClose::kCount: break;
  }
  return "";
}

std::size_t suite_hash_len(TlsSuite s) noexcept { return s == TlsSuite::kAes256Gcm ? 48 : 32; }
std::size_t suite_key_len(TlsSuite s) noexcept { return s == TlsSuite::kAes128Gcm ? 16 : 32; }

bool hkdf_expand_label(TlsSuite suite, std::span<const std::uint8_t> secret, const char* label,
                       std::span<std::uint8_t> out) noexcept {
  // struct HkdfLabel { uint16 length; opaque label<7..255> = "tls13 " + Label;
  //                    opaque context<0..255> = "" }
  const std::size_t ll = std::strlen(label);
  std::uint8_t info[2 + 1 + 6 + 255 + 1];
  if (ll > 255 - 6 || out.size() > 0xffff) return false;
  std::size_t n = 0;
  info[n++] = static_cast<std::uint8_t>(out.size() >> 8);
  info[n++] = static_cast<std::uint8_t>(out.size());
  info[n++] = static_cast<std::uint8_t>(6 + ll);
  std::memcpy(info + n, "tls13 ", 6);
  n += 6;
  std::memcpy(info + n, label, ll);
  n += ll;
  info[n++] = 0;
  // Fetched once: an EVP_KDF is immutable and safe to share between threads.
  static EVP_KDF* const kdf = EVP_KDF_fetch(nullptr, OSSL_KDF_NAME_HKDF, nullptr);
  if (!kdf) return false;
  EVP_KDF_CTX* kctx = EVP_KDF_CTX_new(kdf);
  if (!kctx) return false;
  int mode = EVP_KDF_HKDF_MODE_EXPAND_ONLY;
  char digest[8];
  std::strcpy(digest, suite == TlsSuite::kAes256Gcm ? "SHA384" : "SHA256");
  const OSSL_PARAM params[] = {
      OSSL_PARAM_construct_int(OSSL_KDF_PARAM_MODE, &mode),
      OSSL_PARAM_construct_utf8_string(OSSL_KDF_PARAM_DIGEST, digest, 0),
      OSSL_PARAM_construct_octet_string(OSSL_KDF_PARAM_KEY, const_cast<std::uint8_t*>(secret.data()),
                                        secret.size()),
      OSSL_PARAM_construct_octet_string(OSSL_KDF_PARAM_INFO, info, n),
      OSSL_PARAM_construct_end(),
  };
  const bool ok = EVP_KDF_derive(kctx, out.data(), out.size(), params) == 1;
  EVP_KDF_CTX_free(kctx);  // clears its copy of the key
  return ok;
}

// --- RecordCiphers ---

RecordCiphers::~RecordCiphers() {
  for (auto* slots : {&seal_, &open_})
    for (Slot& s : *slots) EVP_CIPHER_CTX_free(s.ctx);
}

EVP_CIPHER_CTX* RecordCiphers::get(bool seal, TlsSuite suite, std::uint64_t id,
                                   const std::uint8_t* key, const std::uint8_t* nonce) noexcept {
  Slot& s = (seal ? seal_ : open_)[id % kSlots];
  if (!s.ctx && !(s.ctx = EVP_CIPHER_CTX_new())) return nullptr;
  const int enc = seal ? 1 : 0;
  if (s.id == id) {
    // The key schedule is there: only the nonce changes.
    if (EVP_CipherInit_ex(s.ctx, nullptr, nullptr, nullptr, nonce, enc) != 1) return nullptr;
    return s.ctx;
  }
  ++rekeys_;
  // The same suite keeps its provider context: only the key changes.
  const EVP_CIPHER* c = s.id != 0 && s.suite == suite ? nullptr : cipher_of(suite);
  s.id = 0;
  if (c && EVP_CipherInit_ex(s.ctx, c, nullptr, nullptr, nullptr, enc) != 1) return nullptr;
  if (EVP_CipherInit_ex(s.ctx, nullptr, nullptr, key, nonce, enc) != 1) return nullptr;
  s.id = id;
  s.suite = suite;
  return s.ctx;
}

void RecordCiphers::forget(bool seal, std::uint64_t id) noexcept {
  Slot& s = (seal ? seal_ : open_)[id % kSlots];
  if (id != 0 && s.id == id && s.ctx) {
    EVP_CIPHER_CTX_reset(s.ctx);
    s.id = 0;
  }
}

// --- TlsRecords ---

TlsRecords::~TlsRecords() {
  ciphers_->forget(false, read_.id);
  ciphers_->forget(true, write_.id);
  // The TrafficStates wipe themselves (crypto::Secret).
}

bool TlsRecords::derive(TrafficState& s) noexcept {
  const std::size_t hl = suite_hash_len(suite_);
  const std::span<const std::uint8_t> secret(s.secret.data(), hl);
  if (!hkdf_expand_label(suite_, secret, "key", {s.key.data(), suite_key_len(suite_)}) ||
      !hkdf_expand_label(suite_, secret, "iv", s.iv.span()))
    return false;
  const bool seal = &s == &write_;
  ciphers_->forget(seal, s.id);
  s.id = ciphers_->new_key_id(seal);
  s.seq = 0;
  return true;
}

bool TlsRecords::next_secret(TrafficState& s) noexcept {
  // application_traffic_secret_N+1 = HKDF-Expand-Label(secret_N, "traffic upd", "", Hash.length)
  const std::size_t hl = suite_hash_len(suite_);
  crypto::Secret<48> next;
  if (!hkdf_expand_label(suite_, {s.secret.data(), hl}, "traffic upd", {next.data(), hl}))
    return false;
  s.secret = next;
  return derive(s);
}

bool TlsRecords::install(std::span<const std::uint8_t> read_secret,
                         std::span<const std::uint8_t> write_secret) noexcept {
  const std::size_t hl = suite_hash_len(suite_);
  if (read_secret.size() != hl || write_secret.size() != hl) return fail(TlsClose::kInternal);
  std::memcpy(read_.secret.data(), read_secret.data(), hl);
  std::memcpy(write_.secret.data(), write_secret.data(), hl);
  if (!derive(read_) || !derive(write_)) return fail(TlsClose::kInternal);
  return true;
}

bool TlsRecords::release() noexcept {
  if (!partial_.empty()) return false;
  std::vector<std::uint8_t>().swap(partial_);
  return true;
}

TlsRecords::Step TlsRecords::open(std::span<const std::uint8_t> record, std::uint8_t* scratch,
                                  std::string& out, std::span<const std::uint8_t>& plain) noexcept {
  // TLSCiphertext: opaque_type(23) legacy_record_version(0x0303) length(2)
  // encrypted_record. The version is not checked (RFC 8446 §5.1: it is
  // ignored); the header is the AEAD's additional data, so it cannot be
  // altered unnoticed.
  if (record[0] != kTypeApplicationData) {
    fail(TlsClose::kBadRecordType);
    return Step::kEnd;
  }
  const std::size_t clen = record.size() - kTlsHeaderLen;
  if (clen < kTlsTagLen + 1) {  // at least the content type and the tag
    fail(TlsClose::kBadRecordMac);
    return Step::kEnd;
  }
  if (read_.seq == ~std::uint64_t{0}) {
    fail(TlsClose::kSequenceExhausted);
    return Step::kEnd;
  }
  std::uint8_t nonce[12];
  make_nonce(read_, nonce);
  EVP_CIPHER_CTX* ctx = ciphers_->get(false, suite_, read_.id, read_.key.data(), nonce);
  int outl = 0, fl = 0;
  const int body = static_cast<int>(clen - kTlsTagLen);
  bool ok = ctx && EVP_DecryptUpdate(ctx, nullptr, &outl, record.data(), kTlsHeaderLen) == 1 &&
            EVP_DecryptUpdate(ctx, scratch, &outl, record.data() + kTlsHeaderLen, body) == 1;
  if (!ok) {
    fail(TlsClose::kInternal);
    return Step::kEnd;
  }
  ok = EVP_CIPHER_CTX_ctrl(ctx, EVP_CTRL_AEAD_SET_TAG, kTlsTagLen,
                           const_cast<std::uint8_t*>(record.data() + record.size() - kTlsTagLen)) == 1 &&
       EVP_DecryptFinal_ex(ctx, scratch + outl, &fl) == 1;
  if (!ok) {
    fail(TlsClose::kBadRecordMac);
    return Step::kEnd;
  }
  ++read_.seq;
  // TLSInnerPlaintext: content, the real type, zero padding.
  std::size_t len = static_cast<std::size_t>(outl + fl);
  if (len > kTlsMaxInner) {
    fail(TlsClose::kRecordOverflow);
    return Step::kEnd;
  }
  while (len > 0 && scratch[len - 1] == 0) --len;
  if (len == 0) {
    fail(TlsClose::kBadContentType);
    return Step::kEnd;
  }
  const std::uint8_t type = scratch[--len];
  switch (type) {
    case kTypeApplicationData:
      plain = {scratch, len};
      return len ? Step::kData : Step::kNone;
    case kTypeAlert:
      // Alert { level, description }: close_notify ends the stream cleanly,
      // any other alert is fatal in TLS 1.3 (RFC 8446 §6).
      fail(len == 2 && scratch[1] == kAlertCloseNotify ? TlsClose::kCloseNotify : TlsClose::kAlert);
      return Step::kEnd;
    case kTypeHandshake: {
      // A client may send only KeyUpdate after the handshake (we never ask
      // for post-handshake authentication). It changes the read key, so it
      // must end its record (§5.1: messages before a key change align with
      // a record boundary): the record holds exactly one KeyUpdate.
      if (len < 4 || scratch[0] != kHandshakeKeyUpdate) {
        fail(TlsClose::kBadHandshake);
        return Step::kEnd;
      }
      const std::size_t mlen = std::size_t{scratch[1]} << 16 | std::size_t{scratch[2]} << 8 | scratch[3];
      if (mlen != 1 || len != 5 || scratch[4] > 1) {
        fail(TlsClose::kBadKeyUpdate);
        return Step::kEnd;
      }
      const bool requested = scratch[4] == 1;
      if (!next_secret(read_)) {
        fail(TlsClose::kInternal);
        return Step::kEnd;
      }
      // update_requested: our KeyUpdate (not requesting one back) goes out
      // before any more data, and our write key moves on.
      if (requested && !update_write_key(false, out)) return Step::kEnd;
      return Step::kNone;
    }
    default:
      fail(TlsClose::kBadContentType);
      return Step::kEnd;
  }
}

bool TlsRecords::update_write_key(bool request_peer_update, std::string& out) noexcept {
  const std::uint8_t msg[5] = {kHandshakeKeyUpdate, 0, 0, 1, request_peer_update ? std::uint8_t{1} : std::uint8_t{0}};
  const iovec v{const_cast<std::uint8_t*>(msg), sizeof msg};
  const iovec* iov = &v;
  std::size_t n = 1, off = 0;
  if (!seal_one(kTypeHandshake, iov, n, off, sizeof msg, out)) return false;
  if (!next_secret(write_)) return fail(TlsClose::kInternal);
  return true;
}

bool TlsRecords::seal_one(std::uint8_t type, const iovec*& iov, std::size_t& n, std::size_t& off,
                          std::size_t len, std::string& out) noexcept {
  if (write_.seq == ~std::uint64_t{0}) return fail(TlsClose::kSequenceExhausted);
  const std::size_t clen = len + 1 + kTlsTagLen;
  const std::size_t at = out.size();
  out.resize(at + kTlsHeaderLen + clen);
  auto* rec = reinterpret_cast<std::uint8_t*>(out.data()) + at;
  rec[0] = kTypeApplicationData;
  rec[1] = 3;
  rec[2] = 3;
  rec[3] = static_cast<std::uint8_t>(clen >> 8);
  rec[4] = static_cast<std::uint8_t>(clen);
  std::uint8_t nonce[12];
  make_nonce(write_, nonce);
  EVP_CIPHER_CTX* ctx = ciphers_->get(true, suite_, write_.id, write_.key.data(), nonce);
  int outl = 0;
  if (!ctx || EVP_EncryptUpdate(ctx, nullptr, &outl, rec, kTlsHeaderLen) != 1) {
    out.resize(at);
    return fail(TlsClose::kInternal);
  }
  std::uint8_t* dst = rec + kTlsHeaderLen;
  bool ok = true;
  // The content straight from the caller's buffers, then the type byte.
  while (len > 0 && ok) {
    const std::size_t take = std::min(len, iov->iov_len - off);
    if (take) {
      ok = EVP_EncryptUpdate(ctx, dst, &outl, static_cast<const std::uint8_t*>(iov->iov_base) + off,
                             static_cast<int>(take)) == 1;
      dst += outl;
    }
    len -= take;
    off += take;
    if (off == iov->iov_len) {
      ++iov;
      --n;
      off = 0;
    }
  }
  ok = ok && EVP_EncryptUpdate(ctx, dst, &outl, &type, 1) == 1;
  dst += outl;
  ok = ok && EVP_EncryptFinal_ex(ctx, dst, &outl) == 1;
  dst += outl;
  ok = ok && dst == rec + kTlsHeaderLen + clen - kTlsTagLen &&
       EVP_CIPHER_CTX_ctrl(ctx, EVP_CTRL_AEAD_GET_TAG, kTlsTagLen, dst) == 1;
  if (!ok) {
    out.resize(at);
    return fail(TlsClose::kInternal);
  }
  ++write_.seq;
  return true;
}

bool TlsRecords::seal_content(std::uint8_t type, std::span<const std::uint8_t> plain,
                              std::string& out) noexcept {
  if (closed_ != TlsClose::kCount || plain.size() > 0xffff - 1 - kTlsTagLen) return false;
  const iovec v{const_cast<std::uint8_t*>(plain.data()), plain.size()};
  const iovec* iov = &v;
  std::size_t n = 1, off = 0;
  return seal_one(type, iov, n, off, plain.size(), out);
}

bool TlsRecords::seal(const iovec* iov, std::size_t n, std::string& out) noexcept {
  if (closed_ != TlsClose::kCount) return false;
  std::size_t total = 0;
  for (std::size_t i = 0; i < n; ++i) total += iov[i].iov_len;
  // Empty iovecs at the front would stall the gather below.
  while (n > 0 && iov->iov_len == 0) {
    ++iov;
    --n;
  }
  std::size_t off = 0;
  out.reserve(out.size() + total + (total / kTlsMaxPlain + 1) * (kTlsHeaderLen + 1 + kTlsTagLen));
  // Nothing makes no record: a stream of empty records is what OpenSSL
  // refuses after 32 in a row (and a flush may well have nothing).
  while (total > 0) {
    if (write_.seq >= rekey_after_ && !update_write_key(false, out)) return false;
    const std::size_t len = std::min(total, kTlsMaxPlain);
    if (!seal_one(kTypeApplicationData, iov, n, off, len, out)) return false;
    total -= len;
    while (n > 0 && iov->iov_len == 0) {
      ++iov;
      --n;
    }
  }
  return true;
}

}  // namespace moongate::relay
