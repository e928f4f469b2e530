// ChaCha20-Poly1305 for bursts of data messages through Intel IPsec-MB.
//
// One AeadBurst per thread (an IPsec-MB manager is single-threaded). A burst
// of up to kMaxBurst packets is encrypted or decrypted in place with one
// call; decryption gives a per-packet verdict. The best architecture the
// CPU supports (AVX-512, AVX2, AVX, SSE) is chosen at construction and can
// be reported with arch_name().
//
// This is the only code in moongate that links IPsec-MB; the protocol core
// (wireguard/) hands it AeadOps and never sees the library.
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>

namespace moongate::crypto {

struct AeadOp {
  std::uint8_t* data = nullptr;       // in place: plaintext <-> ciphertext
  std::uint32_t len = 0;              // bytes of data, tag excluded
  std::uint8_t* tag = nullptr;        // encrypt: 16 bytes written; decrypt: expected tag
  const std::uint8_t* key = nullptr;  // 32 bytes
  std::uint64_t counter = 0;          // nonce = 0^32 || le64(counter)
  const std::uint8_t* aad = nullptr;  // WireGuard data messages use none
  std::uint32_t aad_len = 0;
};

enum class AeadArch { kAuto, kSse, kAvx, kAvx2, kAvx512 };

class AeadBurst {
 public:
  static constexpr std::uint32_t kMaxBurst = 128;

  // Allocates and initialises an IPsec-MB manager for the best architecture
  // (or the requested one). Throws std::runtime_error when IPsec-MB cannot
  // be initialised or the requested architecture is unsupported: this is
  // start-up, not the packet path.
  explicit AeadBurst(AeadArch arch = AeadArch::kAuto);
  ~AeadBurst();
  AeadBurst(const AeadBurst&) = delete;
  AeadBurst& operator=(const AeadBurst&) = delete;

  AeadArch arch() const noexcept { return arch_; }
  const char* arch_name() const noexcept;

  // Encrypts ops[0..n) in place, writing each tag. n <= kMaxBurst. Returns
  // the number encrypted (n unless IPsec-MB rejected a job, e.g. a null key).
  std::uint32_t encrypt(AeadOp* ops, std::uint32_t n) noexcept;

  // Decrypts ops[0..n) in place and checks each tag in constant time;
  // ok[i] is the verdict for ops[i]. Returns the number that verified. The
  // data of a failed op is garbage and must be dropped.
  std::uint32_t decrypt(AeadOp* ops, std::uint32_t n, bool* ok) noexcept;

 private:
  void* mgr_ = nullptr;  // IMB_MGR*, kept opaque so callers need no IPsec-MB header
  AeadArch arch_ = AeadArch::kAuto;
};

const char* aead_arch_name(AeadArch arch) noexcept;

}  // namespace moongate::crypto
