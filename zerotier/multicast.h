// The moon's multicast subscription cache (MULTICAST_LIKE / MULTICAST_GATHER).
//
// Members announce groups with MULTICAST_LIKE (network id, MAC, ADI); others
// ask a root with MULTICAST_GATHER who is in a group, to learn whom to send
// a broadcast or multicast (ARP, ND) to. The cache holds up to kMaxGroups
// groups of up to kMembersPerGroup members each, with likes expiring after
// 10 minutes as in ZeroTier; when a group is full the stalest member gives
// way. Fixed memory, no allocation after construction.
#pragma once

#include <array>
#include <cstdint>

#include "wireguard/open_table.h"
#include "zerotier/wire.h"

namespace moongate::zerotier {

inline constexpr std::uint64_t kMulticastLikeExpireMs = 600000;

struct MulticastGroup {
  std::uint64_t network = 0;
  std::uint64_t mac = 0;  // 48 bits
  std::uint32_t adi = 0;
  bool operator==(const MulticastGroup&) const noexcept = default;
};

class MulticastCache {
 public:
  static constexpr std::size_t kMembersPerGroup = 32;

  explicit MulticastCache(std::size_t max_groups);

  // Records that `member` likes `g` at now_ms; false when the table is full.
  bool like(const MulticastGroup& g, Address member, std::uint64_t now_ms) noexcept;

  // Writes up to `limit` live members other than `asker` to out[]; returns
  // how many, and the group's live member count (asker excluded) in *total.
  std::size_t gather(const MulticastGroup& g, Address asker, std::uint64_t now_ms, Address* out,
                     std::size_t limit, std::uint32_t* total) const noexcept;

  // Drops groups whose every like expired; returns how many.
  std::size_t expire(std::uint64_t now_ms) noexcept;
  std::size_t groups() const noexcept { return table_.size(); }

 private:
  struct Member {
    Address address = 0;
    std::uint64_t last_ms = 0;
  };
  struct Slot {
    MulticastGroup group;
    bool live = false;
    std::array<Member, kMembersPerGroup> members{};
  };
  struct Traits {
    using Key = MulticastGroup;
    static constexpr bool is_free(const Slot& s) { return !s.live; }
    static const Key& key_of(const Slot& s) { return s.group; }
    static bool same_key(const Key& a, const Key& b) { return a == b; }
    std::size_t hash(const Key& k) const noexcept {
      std::uint64_t h = k.network * 0x9E3779B97F4A7C15ull ^ k.mac * 0xC2B2AE3D27D4EB4Full ^ k.adi;
      return static_cast<std::size_t>(h ^ h >> 29);
    }
  };
  wg::OpenTable<Slot, Traits> table_;
};

}  // namespace moongate::zerotier
