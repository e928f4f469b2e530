// Per-rule counters of one lcore: sized once (for the policy, or for the
// largest policy a netmap can bring), written only by the owning lcore (no
// atomics on the packet path); moongatectl and telemetry sum the lcores'
// copies. restart() is the owner's when the rules change under it (a new
// policy from the netmap): the per-rule counts start again at zero, since
// rule i may now be another rule; denied and established go on.
#pragma once

#include <cstddef>
#include <cstdint>
#include <memory>

namespace moongate::policy {

class RuleCounters {
 public:
  explicit RuleCounters(std::size_t rules, std::size_t capacity = 0)
      : rules_(rules),
        capacity_(capacity > rules ? capacity : rules),
        accepted_(std::make_unique<std::uint64_t[]>(capacity_)) {}

  // rules <= capacity(); relaxed stores, as readers on other threads load.
  void restart(std::size_t rules) noexcept {
    for (std::size_t r = 0; r < capacity_; ++r) __atomic_store_n(&accepted_[r], 0, __ATOMIC_RELAXED);
    __atomic_store_n(&rules_, rules < capacity_ ? rules : capacity_, __ATOMIC_RELAXED);
  }
  std::size_t capacity() const noexcept { return capacity_; }

  void accept(int rule) noexcept { ++accepted_[static_cast<std::size_t>(rule)]; }
  void deny() noexcept { ++denied_; }
  void established() noexcept { ++established_; }

  std::uint64_t accepted(std::size_t rule) const noexcept {
    return __atomic_load_n(&accepted_[rule], __ATOMIC_RELAXED);
  }
  std::uint64_t denied() const noexcept { return __atomic_load_n(&denied_, __ATOMIC_RELAXED); }
  // Return traffic let through by the flow state, not by a rule.
  std::uint64_t established_count() const noexcept {
    return __atomic_load_n(&established_, __ATOMIC_RELAXED);
  }
  std::size_t rules() const noexcept { return __atomic_load_n(&rules_, __ATOMIC_RELAXED); }

 private:
  std::size_t rules_;
  std::size_t capacity_;
  std::unique_ptr<std::uint64_t[]> accepted_;
  std::uint64_t denied_ = 0;
  std::uint64_t established_ = 0;
};

}  // namespace moongate::policy
