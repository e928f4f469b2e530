// Reassembly of fragmented packets addressed to the moon itself.
//
// Relayed fragments never come here: the moon forwards them by the
// destination in their own header. For its own packets (a large
// MULTICAST_LIKE, say) it keeps a fixed pool of slots:
//   - a slot is keyed by packet id and holds up to 15 pieces (the head is
//     piece 0, fragment n is piece n) of at most kMaxDatagram bytes each;
//   - a packet is done when the head and every fragment up to the total
//     announced by the fragments have arrived; it must fit kMaxPacket;
//   - slots expire after kReassemblyTimeoutMs, and when all are busy the
//     oldest is reclaimed (counted), so memory is bounded whatever arrives.
#pragma once

#include <array>
#include <cstddef>
#include <cstdint>
#include <span>

#include "zerotier/packet.h"

namespace moongate::zerotier {

inline constexpr std::uint64_t kReassemblyTimeoutMs = 500;

class Reassembler {
 public:
  static constexpr std::size_t kSlots = 32;
  static constexpr unsigned kMaxPieces = 15;
  static constexpr std::size_t kMaxPiece = 1500;

  enum class Result { kIncomplete, kComplete, kMalformed, kTooBig, kEvicted };

  // Adds a head (a packet with the fragmented flag) or a fragment. On
  // kComplete the whole packet is in out[0..*out_len). kEvicted also means
  // "stored" (an older slot was dropped to make room).
  Result add_head(std::span<const std::uint8_t> head, std::uint64_t now_ms, std::uint8_t* out,
                  std::size_t* out_len) noexcept;
  Result add_fragment(std::span<const std::uint8_t> frag, std::uint64_t now_ms, std::uint8_t* out,
                      std::size_t* out_len) noexcept;

  // Frees expired slots; returns how many.
  std::size_t expire(std::uint64_t now_ms) noexcept;
  std::size_t in_use() const noexcept;

 private:
  struct Slot {
    bool used = false;
    std::uint64_t id = 0;
    std::uint64_t created_ms = 0;
    unsigned total = 0;         // 0 until a fragment tells it
    std::uint32_t have = 0;     // bit n: piece n present
    std::array<std::uint16_t, kMaxPieces> len{};
    std::array<std::array<std::uint8_t, kMaxPiece>, kMaxPieces> piece;
  };
  Slot* find_or_claim(std::uint64_t id, std::uint64_t now_ms, bool& evicted) noexcept;
  Result store(Slot& s, unsigned n, std::span<const std::uint8_t> bytes, bool evicted, std::uint8_t* out,
               std::size_t* out_len) noexcept;

  std::array<Slot, kSlots> slots_{};
};

}  // namespace moongate::zerotier
