// Per-rule counters of one lcore: sized once when a compiled policy is
// installed, written only by the owning lcore (no atomics on the packet
// path); moongatectl and telemetry sum the lcores' copies.
#pragma once

#include <cstddef>
#include <cstdint>
#include <memory>

namespace moongate::policy {

class RuleCounters {
 public:
  explicit RuleCounters(std::size_t rules)
      : rules_(rules), accepted_(std::make_unique<std::uint64_t[]>(rules)) {}

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
  std::size_t rules() const noexcept { return rules_; }

 private:
  std::size_t rules_;
  std::unique_ptr<std::uint64_t[]> accepted_;
  std::uint64_t denied_ = 0;
  std::uint64_t established_ = 0;
};

}  // namespace moongate::policy
