// Burst ChaCha20-Poly1305 (WireGuard nonce) through Intel IPsec-MB's burst
// job API: one manager per AeadBurst, jobs filled in place, all of a burst
// submitted with a single IMB_SUBMIT_BURST_NOCHECK and drained with
// IMB_FLUSH_BURST before returning.
#include "crypto/aead_burst.h"

#include <intel-ipsec-mb.h>
#include <sodium.h>

#include <cstdint>
#include <cstring>
#include <stdexcept>
#include <string>

#include "crypto/aead.h"
#include "crypto/secret.h"

namespace moongate::crypto {
namespace {

static_assert(AeadBurst::kMaxBurst <= IMB_MAX_BURST_SIZE,
              "one AeadBurst call must fit in one IPsec-MB burst");

constexpr std::uint64_t kNonceLen = 12;

// Everything a burst needs that must outlive the submit call: IPsec-MB reads
// the IV and writes the tag when a job completes, which may be during a
// later flush, so none of it can live on encrypt()'s stack frame.
struct State {
  IMB_MGR* mgr = nullptr;
  IMB_JOB* jobs[AeadBurst::kMaxBurst] = {};
  alignas(64) std::uint8_t nonces[AeadBurst::kMaxBurst][16] = {};
  alignas(64) std::uint8_t tags[AeadBurst::kMaxBurst][kAeadTagLen] = {};
};

State* state_of(void* p) noexcept { return static_cast<State*>(p); }

std::string imb_error(IMB_MGR* mgr) {
  const int err = imb_get_errno(mgr);
  return std::to_string(err) + " (" + imb_get_strerror(err) + ")";
}

AeadArch from_imb(IMB_ARCH arch) {
  switch (arch) {
    case IMB_ARCH_AVX512: return AeadArch::kAvx512;
    case IMB_ARCH_AVX2: return AeadArch::kAvx2;
    case IMB_ARCH_AVX: return AeadArch::kAvx;
    // NOAESNI is the SSE code path with AES emulated in software; ChaCha20
    // and Poly1305 do not use AES, so for us it is plain SSE.
    case IMB_ARCH_SSE:
    case IMB_ARCH_NOAESNI: return AeadArch::kSse;
    default: throw std::runtime_error("IPsec-MB: init_mb_mgr_auto found no usable architecture");
  }
}

// CPU features IPsec-MB's own arch selection requires (intel-ipsec-mb.h
// IMB_CPUFLAGS_*), checked before init so that an unsupported request is a
// clear error rather than an illegal instruction later.
std::uint64_t required_features(AeadArch arch) noexcept {
  switch (arch) {
    case AeadArch::kSse: return IMB_CPUFLAGS_SSE;
    case AeadArch::kAvx: return IMB_CPUFLAGS_AVX;
    case AeadArch::kAvx2: return IMB_CPUFLAGS_AVX2;
    case AeadArch::kAvx512: return IMB_CPUFLAGS_AVX512;
    case AeadArch::kAuto: break;
  }
  return 0;
}

void init_manager(IMB_MGR* mgr, AeadArch& arch) {
  if (arch == AeadArch::kAuto) {
    IMB_ARCH chosen = IMB_ARCH_NONE;
    init_mb_mgr_auto(mgr, &chosen);
    if (imb_get_errno(mgr) != 0) throw std::runtime_error("IPsec-MB: init_mb_mgr_auto failed: " + imb_error(mgr));
    arch = from_imb(chosen);
    return;
  }
  const std::uint64_t need = required_features(arch);
  if ((mgr->features & need) != need) {
    throw std::runtime_error(std::string("IPsec-MB: this CPU does not support the ") + aead_arch_name(arch) +
                             " code path");
  }
  switch (arch) {
    case AeadArch::kSse: init_mb_mgr_sse(mgr); break;
    case AeadArch::kAvx: init_mb_mgr_avx(mgr); break;
    case AeadArch::kAvx2: init_mb_mgr_avx2(mgr); break;
    case AeadArch::kAvx512: init_mb_mgr_avx512(mgr); break;
    case AeadArch::kAuto: break;
  }
  if (imb_get_errno(mgr) != 0) {
    throw std::runtime_error(std::string("IPsec-MB: init_mb_mgr_") + aead_arch_name(arch) +
                             " failed: " + imb_error(mgr));
  }
}

void set_nonce(std::uint8_t* nonce, std::uint64_t counter) noexcept {
  // 0^32 || le64(counter); bytes 0..3 were zeroed at construction and are
  // never written, x86 is little-endian so the counter is a plain store.
  std::memcpy(nonce + 4, &counter, sizeof counter);
}

// Inputs IPsec-MB would reject (or, with NOCHECK, dereference): such ops are
// left out of the burst and reported as not processed. An empty payload is
// valid: WireGuard keepalives are exactly that, and IPsec-MB 1.3 produces
// the same tag as libsodium for them on every code path (unit-tested), so
// they need no fallback.
bool op_valid(const AeadOp& op) noexcept {
  return op.key != nullptr && op.tag != nullptr && (op.data != nullptr || op.len == 0) &&
         (op.aad != nullptr || op.aad_len == 0);
}

// The per-job fields common to both directions. Every field the
// ChaCha20-Poly1305 path reads is written: manager job slots are recycled
// and still hold whatever the previous user left there.
void fill_job(IMB_JOB* job, const AeadOp& op, const std::uint8_t* nonce, std::uint32_t index) noexcept {
  job->cipher_mode = IMB_CIPHER_CHACHA20_POLY1305;
  job->hash_alg = IMB_AUTH_CHACHA20_POLY1305;
  job->enc_keys = op.key;
  job->dec_keys = op.key;
  job->key_len_in_bytes = IMB_KEY_256_BYTES;
  job->src = op.data;
  job->dst = op.data;
  job->cipher_start_src_offset_in_bytes = 0;
  job->msg_len_to_cipher_in_bytes = op.len;
  job->hash_start_src_offset_in_bytes = 0;
  job->msg_len_to_hash_in_bytes = op.len;
  job->iv = nonce;
  job->iv_len_in_bytes = kNonceLen;
  job->u.CHACHA20_POLY1305.aad = op.aad;
  job->u.CHACHA20_POLY1305.aad_len_in_bytes = op.aad_len;
  job->auth_tag_output_len_in_bytes = kAeadTagLen;
  // Completion order is IPsec-MB's business; the index maps a finished job
  // back to its op and its nonce/tag slot.
  job->user_data = reinterpret_cast<void*>(static_cast<std::uintptr_t>(index));
}

std::uint32_t job_index(const IMB_JOB* job) noexcept {
  return static_cast<std::uint32_t>(reinterpret_cast<std::uintptr_t>(job->user_data));
}

}  // namespace

const char* aead_arch_name(AeadArch arch) noexcept {
  switch (arch) {
    case AeadArch::kAuto: return "auto";
    case AeadArch::kSse: return "sse";
    case AeadArch::kAvx: return "avx";
    case AeadArch::kAvx2: return "avx2";
    case AeadArch::kAvx512: return "avx512";
  }
  return "unknown";
}

AeadBurst::AeadBurst(AeadArch arch) : arch_(arch) {
  auto* st = new State;
  st->mgr = alloc_mb_mgr(0);
  if (st->mgr == nullptr) {
    delete st;
    throw std::runtime_error("IPsec-MB: alloc_mb_mgr failed: " + imb_error(nullptr));
  }
  try {
    init_manager(st->mgr, arch_);
    const std::uint64_t f = st->mgr->features;
    if ((f & IMB_FEATURE_SELF_TEST) != 0 && (f & IMB_FEATURE_SELF_TEST_PASS) == 0) {
      throw std::runtime_error("IPsec-MB: library self-test failed");
    }
  } catch (...) {
    free_mb_mgr(st->mgr);
    delete st;
    throw;
  }
  mgr_ = st;
}

AeadBurst::~AeadBurst() {
  State* st = state_of(mgr_);
  if (st == nullptr) return;
  free_mb_mgr(st->mgr);
  // Computed tags of forged packets are harmless, but the slots are wiped
  // anyway so the object leaves nothing behind.
  secure_wipe(st->tags, sizeof st->tags);
  delete st;
}

const char* AeadBurst::arch_name() const noexcept { return aead_arch_name(arch_); }

std::uint32_t AeadBurst::encrypt(AeadOp* ops, std::uint32_t n) noexcept {
  State& st = *state_of(mgr_);
  IMB_MGR* mgr = st.mgr;
  if (n > kMaxBurst) n = kMaxBurst;

  // The manager is always empty here (every call drains it), so it can
  // always hand out n <= IMB_MAX_BURST_SIZE job slots.
  const std::uint32_t got = IMB_GET_NEXT_BURST(mgr, n, st.jobs);
  std::uint32_t m = 0;
  for (std::uint32_t i = 0; i < n && m < got; ++i) {
    const AeadOp& op = ops[i];
    if (!op_valid(op)) continue;
    set_nonce(st.nonces[i], op.counter);
    IMB_JOB* job = st.jobs[m++];
    fill_job(job, op, st.nonces[i], i);
    job->cipher_direction = IMB_DIR_ENCRYPT;
    job->chain_order = IMB_ORDER_CIPHER_HASH;
    job->auth_tag_output = op.tag;
  }
  if (m == 0) return 0;

  // Inputs were validated above, so IPsec-MB's own per-job checks would
  // only repeat them.
  std::uint32_t done = 0;
  std::uint32_t completed = IMB_SUBMIT_BURST_NOCHECK(mgr, m, st.jobs);
  for (;;) {
    for (std::uint32_t k = 0; k < completed; ++k) done += st.jobs[k]->status == IMB_STATUS_COMPLETED ? 1u : 0u;
    m -= completed;
    if (m == 0) break;
    completed = IMB_FLUSH_BURST(mgr, m, st.jobs);
    if (completed == 0) break;  // nothing left in the manager: cannot happen, but never spin
  }
  return done;
}

std::uint32_t AeadBurst::decrypt(AeadOp* ops, std::uint32_t n, bool* ok) noexcept {
  State& st = *state_of(mgr_);
  IMB_MGR* mgr = st.mgr;
  if (n > kMaxBurst) n = kMaxBurst;

  const std::uint32_t got = IMB_GET_NEXT_BURST(mgr, n, st.jobs);
  std::uint32_t m = 0;
  for (std::uint32_t i = 0; i < n; ++i) {
    ok[i] = false;
    const AeadOp& op = ops[i];
    if (!op_valid(op) || m == got) continue;
    set_nonce(st.nonces[i], op.counter);
    IMB_JOB* job = st.jobs[m++];
    fill_job(job, op, st.nonces[i], i);
    job->cipher_direction = IMB_DIR_DECRYPT;
    job->chain_order = IMB_ORDER_HASH_CIPHER;
    // IPsec-MB computes the tag of the ciphertext; the comparison with the
    // received tag is ours (below).
    job->auth_tag_output = st.tags[i];
  }
  if (m == 0) return 0;

  std::uint32_t verified = 0;
  std::uint32_t completed = IMB_SUBMIT_BURST_NOCHECK(mgr, m, st.jobs);
  for (;;) {
    for (std::uint32_t k = 0; k < completed; ++k) {
      const IMB_JOB* job = st.jobs[k];
      const std::uint32_t i = job_index(job);
      // Constant time. crypto_verify_16 rather than ct_equal(): sodium_memcmp
      // walks the bytes through a volatile accumulator, which measured ~45
      // cycles per packet, 10% of a 64-byte decrypt; crypto_verify_16 is one
      // SSE2 compare and brings the wrapper to within 1% of bare IPsec-MB.
      const bool good = job->status == IMB_STATUS_COMPLETED && crypto_verify_16(st.tags[i], ops[i].tag) == 0;
      ok[i] = good;
      verified += good ? 1u : 0u;
    }
    m -= completed;
    if (m == 0) break;
    completed = IMB_FLUSH_BURST(mgr, m, st.jobs);
    if (completed == 0) break;
  }
  return verified;
}

}  // namespace moongate::crypto
