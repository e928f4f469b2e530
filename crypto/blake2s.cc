// BLAKE2s-256, keyed BLAKE2s-128, HMAC-BLAKE2s and the Noise KDF chain on
// top of OpenSSL 3's BLAKE2S-256 digest and BLAKE2SMAC.
//
// Handshakes per second per core is a headline number, so the per-call cost
// matters: algorithms are fetched once per process and contexts are kept per
// thread, which keeps the hot calls free of allocation and of the provider
// lookup that EVP_get_digestbyname()/implicit fetches would repeat.
#include "crypto/blake2s.h"

#include <openssl/core_names.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/params.h>

#include <cstdio>
#include <cstdlib>
#include <cstring>

#include "crypto/secret.h"

namespace moongate::crypto {
namespace {

constexpr std::size_t kBlockLen = 64;  // BLAKE2s block = HMAC block

// Every failure below is an OpenSSL fault on arguments we control (the
// algorithms were fetched successfully at start-up); returning a half-made
// hash or key would be worse than stopping.
[[noreturn]] void die(const char* what) noexcept {
  std::fprintf(stderr, "moongate: OpenSSL %s failed\n", what);
  ERR_print_errors_fp(stderr);
  std::abort();
}

void check(int ok, const char* what) noexcept {
  if (ok != 1) die(what);
}

struct Algorithms {
  EVP_MD* blake2s256 = nullptr;
  EVP_MAC* blake2smac = nullptr;
};

// Fetched once and never freed: they live as long as the process, and a
// thread-safe static avoids a provider lookup on every call.
const Algorithms& algorithms() noexcept {
  static const Algorithms algs = [] {
    Algorithms a;
    a.blake2s256 = EVP_MD_fetch(nullptr, "BLAKE2S-256", nullptr);
    if (a.blake2s256 == nullptr) die("EVP_MD_fetch(BLAKE2S-256)");
    a.blake2smac = EVP_MAC_fetch(nullptr, "BLAKE2SMAC", nullptr);
    if (a.blake2smac == nullptr) die("EVP_MAC_fetch(BLAKE2SMAC)");
    return a;
  }();
  return algs;
}

// Per-thread contexts. Re-initialising an existing context with the same
// algorithm is cheap and allocation-free; creating one is not.
class ThreadContexts {
 public:
  ThreadContexts() noexcept {
    const Algorithms& a = algorithms();
    inner_ = EVP_MD_CTX_new();
    outer_ = EVP_MD_CTX_new();
    mac128_ = EVP_MAC_CTX_new(a.blake2smac);
    if (inner_ == nullptr || outer_ == nullptr || mac128_ == nullptr) die("context allocation");
    // The output size is a context parameter that survives EVP_MAC_init(),
    // so it is set once here rather than on every MAC.
    std::size_t size = kBlake2sMacLen;
    OSSL_PARAM params[] = {
        OSSL_PARAM_construct_size_t(OSSL_MAC_PARAM_SIZE, &size),
        OSSL_PARAM_construct_end(),
    };
    check(EVP_MAC_CTX_set_params(mac128_, params), "EVP_MAC_CTX_set_params(size)");
  }
  ~ThreadContexts() {
    EVP_MD_CTX_free(inner_);
    EVP_MD_CTX_free(outer_);
    EVP_MAC_CTX_free(mac128_);
  }
  ThreadContexts(const ThreadContexts&) = delete;
  ThreadContexts& operator=(const ThreadContexts&) = delete;

  EVP_MD_CTX* inner() noexcept { return inner_; }
  EVP_MD_CTX* outer() noexcept { return outer_; }
  EVP_MAC_CTX* mac128() noexcept { return mac128_; }

 private:
  EVP_MD_CTX* inner_ = nullptr;
  EVP_MD_CTX* outer_ = nullptr;
  EVP_MAC_CTX* mac128_ = nullptr;
};

ThreadContexts& contexts() noexcept {
  thread_local ThreadContexts ctx;
  return ctx;
}

void digest_init(EVP_MD_CTX* ctx) noexcept {
  check(EVP_DigestInit_ex2(ctx, algorithms().blake2s256, nullptr), "EVP_DigestInit_ex2");
}

void digest_update(EVP_MD_CTX* ctx, const void* p, std::size_t n) noexcept {
  if (n != 0) check(EVP_DigestUpdate(ctx, p, n), "EVP_DigestUpdate");
}

void digest_final(EVP_MD_CTX* ctx, std::uint8_t out[32]) noexcept {
  unsigned int len = 0;
  check(EVP_DigestFinal_ex(ctx, out, &len), "EVP_DigestFinal_ex");
  if (len != kBlake2sHashLen) die("EVP_DigestFinal_ex(length)");
}

// HMAC (RFC 2104) written over the digest rather than through EVP_MAC
// "HMAC": OpenSSL 3.0's HMAC provider allocates on every init and final
// (key copy, EVP_MD_CTX_copy_ex duplicates) and keeps the keyed inner/outer
// states and a copy of the key in its context after the call. Here the
// padded key lives on the stack and is wiped, and OpenSSL's BLAKE2s final
// cleanses the digest state, so no KDF intermediate outlives the call. It
// is also about 20% faster per HMAC on the build machine. The unit tests
// check it against EVP_MAC "HMAC" with digest BLAKE2S-256.
void hmac(std::uint8_t out[32], Bytes key, Bytes a, Bytes b) noexcept {
  ThreadContexts& ctx = contexts();
  std::uint8_t pad[kBlockLen] = {};
  if (key.size() > kBlockLen) {
    digest_init(ctx.inner());
    digest_update(ctx.inner(), key.data(), key.size());
    digest_final(ctx.inner(), pad);
  } else if (!key.empty()) {
    std::memcpy(pad, key.data(), key.size());
  }
  for (std::uint8_t& c : pad) c ^= 0x36;
  std::uint8_t inner_hash[kBlake2sHashLen];
  digest_init(ctx.inner());
  digest_update(ctx.inner(), pad, kBlockLen);
  digest_update(ctx.inner(), a.data(), a.size());
  digest_update(ctx.inner(), b.data(), b.size());
  digest_final(ctx.inner(), inner_hash);

  for (std::uint8_t& c : pad) c ^= 0x36 ^ 0x5c;
  digest_init(ctx.outer());
  digest_update(ctx.outer(), pad, kBlockLen);
  digest_update(ctx.outer(), inner_hash, sizeof inner_hash);
  digest_final(ctx.outer(), out);

  secure_wipe(pad, sizeof pad);
  secure_wipe(inner_hash, sizeof inner_hash);
}

EVP_MD_CTX* stored_ctx(const std::uint8_t* state) noexcept {
  EVP_MD_CTX* ctx = nullptr;
  std::memcpy(&ctx, state, sizeof ctx);
  return ctx;
}

}  // namespace

void blake2s256(std::uint8_t out[32], Bytes in) noexcept { blake2s256(out, in, Bytes{}); }

void blake2s256(std::uint8_t out[32], Bytes a, Bytes b) noexcept {
  EVP_MD_CTX* ctx = contexts().inner();
  digest_init(ctx);
  digest_update(ctx, a.data(), a.size());
  digest_update(ctx, b.data(), b.size());
  digest_final(ctx, out);
}

// The object owns one EVP_MD_CTX whose pointer is kept in the opaque state
// buffer, so the header needs no OpenSSL types.
Blake2s::Blake2s() noexcept : state_{} {
  static_assert(sizeof(EVP_MD_CTX*) <= sizeof state_);
  EVP_MD_CTX* ctx = EVP_MD_CTX_new();
  if (ctx == nullptr) die("EVP_MD_CTX_new");
  digest_init(ctx);
  std::memcpy(state_, &ctx, sizeof ctx);
}

Blake2s::~Blake2s() { EVP_MD_CTX_free(stored_ctx(state_)); }

void Blake2s::update(Bytes in) noexcept { digest_update(stored_ctx(state_), in.data(), in.size()); }

// Re-initialises after producing the digest so the object can hash again
// (and so update() after final() is a fresh hash, not an OpenSSL error).
void Blake2s::final(std::uint8_t out[32]) noexcept {
  EVP_MD_CTX* ctx = stored_ctx(state_);
  digest_final(ctx, out);
  digest_init(ctx);
}

void blake2s_mac128(std::uint8_t out[16], Bytes key, Bytes in) noexcept {
  // BLAKE2s keys are 1..32 bytes; anything else is a caller bug, and
  // OpenSSL would fail the init below anyway.
  if (key.empty() || key.size() > 32) die("BLAKE2SMAC key length");
  EVP_MAC_CTX* ctx = contexts().mac128();
  check(EVP_MAC_init(ctx, key.data(), key.size(), nullptr), "EVP_MAC_init(BLAKE2SMAC)");
  if (!in.empty()) check(EVP_MAC_update(ctx, in.data(), in.size()), "EVP_MAC_update");
  std::size_t len = 0;
  check(EVP_MAC_final(ctx, out, &len, kBlake2sMacLen), "EVP_MAC_final");
  if (len != kBlake2sMacLen) die("EVP_MAC_final(length)");
}

void hmac_blake2s(std::uint8_t out[32], Bytes key, Bytes in) noexcept {
  hmac(out, key, in, Bytes{});
}

void kdf(std::uint8_t out1[32], std::uint8_t out2[32], std::uint8_t out3[32],
         const std::uint8_t ck[32], Bytes input) noexcept {
  // Results go to locals first: callers routinely pass the chaining key as
  // both ck and out1 (ck = KDF1(ck, x)), and input may alias an output too.
  std::uint8_t t0[kBlake2sHashLen];
  std::uint8_t t[3][kBlake2sHashLen];
  hmac(t0, Bytes(ck, kBlake2sHashLen), input, Bytes{});
  const Bytes key(t0, sizeof t0);
  const std::uint8_t one = 1;
  hmac(t[0], key, Bytes(&one, 1), Bytes{});
  const int n = out3 != nullptr ? 3 : (out2 != nullptr ? 2 : 1);
  for (int i = 1; i < n; ++i) {
    const auto counter = static_cast<std::uint8_t>(i + 1);
    hmac(t[i], key, Bytes(t[i - 1], kBlake2sHashLen), Bytes(&counter, 1));
  }
  std::memcpy(out1, t[0], kBlake2sHashLen);
  if (out2 != nullptr) std::memcpy(out2, t[1], kBlake2sHashLen);
  if (out3 != nullptr) std::memcpy(out3, t[2], kBlake2sHashLen);
  secure_wipe(t0, sizeof t0);
  secure_wipe(t, sizeof t);
}

}  // namespace moongate::crypto
