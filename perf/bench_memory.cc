// bench_memory: how fast this machine serves cache lines the core has not
// touched lately, the resource the data plane runs short of at 10 000+
// peers (docs/perf.md, "The PeerCtx off the packet path").
//
// For each region size: one-byte loads at xorshift-random line addresses,
// no load depending on another, so the core overlaps as many misses as it
// can; reported as TSC cycles per load (throughput, not latency), with 2 MB
// transparent huge pages asked for and refused. A message at N peers
// touches a handful of such lines: this is the price of each.
//
// Usage: bench_memory [--sizes-mb 1,16,64,256,1024] [--loads N]
// Run it pinned (taskset -c 1) on a quiet machine.
#include <sys/mman.h>
#include <x86intrin.h>

#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <sstream>
#include <string>
#include <vector>

namespace {

double cycles_per_load(std::size_t bytes, bool huge, std::size_t loads) {
  constexpr std::size_t kHuge = 2u << 20;
  void* raw = mmap(nullptr, bytes + kHuge, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
  if (raw == MAP_FAILED) {
    std::perror("mmap");
    std::exit(1);
  }
  auto* p = reinterpret_cast<volatile std::uint8_t*>((reinterpret_cast<std::uintptr_t>(raw) + kHuge - 1) &
                                                     ~static_cast<std::uintptr_t>(kHuge - 1));
  madvise(const_cast<std::uint8_t*>(p), bytes, huge ? MADV_HUGEPAGE : MADV_NOHUGEPAGE);
  for (std::size_t i = 0; i < bytes; i += 4096) p[i] = 1;  // fault every page in
  const std::size_t lines = bytes / 64;  // a power of two: the sizes are MB
  std::uint64_t x = 88172645463325252ULL;
  unsigned sum = 0;
  const std::uint64_t t0 = __rdtsc();
  for (std::size_t i = 0; i < loads; ++i) {
    x ^= x << 13;
    x ^= x >> 7;
    x ^= x << 17;
    sum += p[(x & (lines - 1)) * 64];
  }
  const std::uint64_t t1 = __rdtsc();
  munmap(raw, bytes + kHuge);
  if (sum == 0) std::fprintf(stderr, "(unexpected sum)\n");
  return static_cast<double>(t1 - t0) / static_cast<double>(loads);
}

}  // namespace

int main(int argc, char** argv) {
  std::vector<std::size_t> sizes_mb{1, 16, 64, 256, 1024};
  std::size_t loads = 4'000'000;
  for (int i = 1; i < argc; ++i) {
    const std::string a = argv[i];
    if (a == "--sizes-mb" && i + 1 < argc) {
      sizes_mb.clear();
      std::stringstream ss(argv[++i]);
      for (std::string t; std::getline(ss, t, ',');) sizes_mb.push_back(std::stoul(t));
    } else if (a == "--loads" && i + 1 < argc) {
      loads = std::stoul(argv[++i]);
    } else {
      std::fprintf(stderr, "usage: bench_memory [--sizes-mb 1,16,64,256,1024] [--loads N]\n");
      return 2;
    }
  }
  std::printf("| region MB | cycles/load, 2 MB pages | cycles/load, 4 KB pages |\n|---:|---:|---:|\n");
  for (std::size_t mb : sizes_mb) {
    if (mb == 0 || (mb & (mb - 1)) != 0) {
      std::fprintf(stderr, "bench_memory: sizes must be powers of two (MB)\n");
      return 2;
    }
    const double h = cycles_per_load(mb << 20, true, loads);
    const double s = cycles_per_load(mb << 20, false, loads);
    std::printf("| %zu | %.1f | %.1f |\n", mb, h, s);
  }
  return 0;
}
