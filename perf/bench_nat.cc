// NAT44 and policy classification cost on one core, without the kernel
// or the rest of the data plane:
//
//   nat out      Nat44::translate, tunnel -> internet, on packets of
//                `flows` established UDP flows (every lookup hits), in a
//                random flow order so the tables are read from memory the
//                way they are under real traffic
//   nat in       the same flows' replies, internet -> tunnel
//   copy only    the per-packet restore of the packet bytes the loops
//                above do (a 64-byte memcpy), to subtract
//   bursts       as a worker would run it: 32 packets copied in, each
//                one's table slot prefetched (Nat44::prefetch), then its
//                flow record (prefetch_flow), then each translated, so
//                the burst's cache misses overlap
//   acl          AclClassifier::classify in bursts of 32 over random
//                packets, policies of 10 / 100 / 1000 spec rules
//
// The NAT instance is lcore 0 of 2 with max_flows 1 000 000, i.e. sized as
// in production (500 000 flows per lcore, ~64 MB of tables), holding
// `flows` live flows.
//
//   bench_nat [--flows N] [--packets N] [--reps N]
#include <rte_eal.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <random>
#include <string>
#include <vector>

#include "nat/nat44.h"
#include "policy/acl.h"
#include "policy/naive.h"

using namespace moongate;

namespace {

constexpr std::size_t kPacketLen = 64;
using Clock = std::chrono::steady_clock;

struct Options {
  std::size_t flows = 100000;
  std::size_t packets = 4000000;
  int reps = 5;
};

std::uint16_t csum(const std::uint8_t* p, std::size_t n, std::uint64_t sum = 0) {
  for (std::size_t i = 0; i + 1 < n; i += 2) sum += (p[i] << 8) | p[i + 1];
  while (sum >> 16) sum = (sum & 0xffff) + (sum >> 16);
  return static_cast<std::uint16_t>(~sum);
}

void put16(std::uint8_t* p, std::uint32_t v) {
  p[0] = static_cast<std::uint8_t>(v >> 8);
  p[1] = static_cast<std::uint8_t>(v);
}
void put32(std::uint8_t* p, std::uint32_t v) {
  put16(p, v >> 16);
  put16(p + 2, v);
}

// A 64-byte IPv4/UDP packet with valid checksums.
void make_udp(std::uint8_t* p, std::uint32_t src, std::uint32_t dst, std::uint16_t sport,
              std::uint16_t dport) {
  std::memset(p, 0, kPacketLen);
  p[0] = 0x45;
  put16(p + 2, kPacketLen);
  put16(p + 6, 0x4000);
  p[8] = 64;
  p[9] = 17;
  put32(p + 12, src);
  put32(p + 16, dst);
  put16(p + 10, csum(p, 20));
  put16(p + 20, sport);
  put16(p + 22, dport);
  put16(p + 24, kPacketLen - 20);
  for (std::size_t i = 28; i < kPacketLen; ++i) p[i] = static_cast<std::uint8_t>(i);
  const std::uint64_t pseudo = (src >> 16) + (src & 0xffff) + (dst >> 16) + (dst & 0xffff) + 17 + (kPacketLen - 20);
  put16(p + 26, csum(p + 20, kPacketLen - 20, pseudo));
}

double best_ns_per_packet(int reps, std::size_t packets, auto&& run) {
  double best = 1e30;
  for (int r = 0; r < reps; ++r) {
    const auto t0 = Clock::now();
    run();
    const double ns = std::chrono::duration<double, std::nano>(Clock::now() - t0).count();
    best = std::min(best, ns / static_cast<double>(packets));
  }
  return best;
}

void report(const char* what, double ns) {
  std::printf("%-34s %8.1f ns/pkt  %7.2f Mpps\n", what, ns, 1e3 / ns);
}

}  // namespace

int main(int argc, char** argv) {
  Options o;
  for (int i = 1; i + 1 < argc; i += 2) {
    const std::string a = argv[i];
    if (a == "--flows") o.flows = std::strtoul(argv[i + 1], nullptr, 10);
    else if (a == "--packets") o.packets = std::strtoul(argv[i + 1], nullptr, 10);
    else if (a == "--reps") o.reps = std::atoi(argv[i + 1]);
    else {
      std::fprintf(stderr, "usage: bench_nat [--flows N] [--packets N] [--reps N]\n");
      return 2;
    }
  }

  // --- NAT44 -----------------------------------------------------------------
  const std::uint64_t now = 1000ULL * nat::kNanosPerSecond;
  nat::Nat44Config cfg;
  cfg.pool = {{203, 0, 113, 1}};
  cfg.lcores = 2;
  cfg.max_flows = 1000000;
  cfg.seed = 0x5eed;
  nat::Nat44 n(cfg, 0, now);
  std::mt19937 rng(1);
  std::vector<std::uint8_t> out(o.flows * kPacketLen), in(o.flows * kPacketLen);
  for (std::size_t f = 0; f < o.flows; ++f) {
    std::uint8_t* p = &out[f * kPacketLen];
    // 1000 inside hosts x 100 ports each, remote servers at random.
    const std::uint32_t inside = 0x0a000000 | static_cast<std::uint32_t>(f / 100 + 2);
    const std::uint32_t remote = 0x08000000 | (rng() & 0xffffff);
    make_udp(p, inside, remote, static_cast<std::uint16_t>(10000 + f % 100), 443);
    std::uint8_t tmp[kPacketLen];
    std::memcpy(tmp, p, kPacketLen);
    if (n.translate(tmp, kPacketLen, nat::Direction::kOutbound, now).verdict != nat::Verdict::kTranslated) {
      std::fprintf(stderr, "flow %zu not created\n", f);
      return 1;
    }
    const std::uint16_t ext = static_cast<std::uint16_t>((tmp[20] << 8) | tmp[21]);
    make_udp(&in[f * kPacketLen], remote, 0xcb007101, 443, ext);
  }
  std::vector<std::uint32_t> order(o.packets);
  for (auto& x : order) x = static_cast<std::uint32_t>(rng() % o.flows);

  std::printf("NAT44, %zu live flows (capacity %zu on this lcore), %zu-byte UDP, random flow order\n",
              n.flow_count(), n.flows().capacity(), kPacketLen);
  alignas(64) std::uint8_t pkt[kPacketLen];
  std::uint64_t sink = 0;
  const double copy = best_ns_per_packet(o.reps, o.packets, [&] {
    for (std::uint32_t f : order) {
      std::memcpy(pkt, &out[f * kPacketLen], kPacketLen);
      sink += pkt[20];
      asm volatile("" : : "r"(pkt) : "memory");
    }
  });
  std::uint64_t bad = 0;
  const double nat_out = best_ns_per_packet(o.reps, o.packets, [&] {
    for (std::uint32_t f : order) {
      std::memcpy(pkt, &out[f * kPacketLen], kPacketLen);
      bad += n.translate(pkt, kPacketLen, nat::Direction::kOutbound, now).verdict != nat::Verdict::kTranslated;
    }
  });
  const double nat_in = best_ns_per_packet(o.reps, o.packets, [&] {
    for (std::uint32_t f : order) {
      std::memcpy(pkt, &in[f * kPacketLen], kPacketLen);
      bad += n.translate(pkt, kPacketLen, nat::Direction::kInbound, now).verdict != nat::Verdict::kTranslated;
    }
  });
  // As a worker would: a burst of 32 is copied in (the mbufs), every
  // packet's table slot prefetched, then each translated.
  constexpr std::size_t kBurst = 32;
  alignas(64) std::uint8_t burst[kBurst][kPacketLen];
  auto burst_loop = [&](const std::vector<std::uint8_t>& src, nat::Direction dir) {
    for (std::size_t i = 0; i + kBurst <= order.size(); i += kBurst) {
      for (std::size_t k = 0; k < kBurst; ++k) {
        std::memcpy(burst[k], &src[order[i + k] * kPacketLen], kPacketLen);
        n.prefetch(burst[k], kPacketLen, dir);
      }
      for (std::size_t k = 0; k < kBurst; ++k) n.prefetch_flow(burst[k], kPacketLen, dir);
      for (std::size_t k = 0; k < kBurst; ++k)
        bad += n.translate(burst[k], kPacketLen, dir, now).verdict != nat::Verdict::kTranslated;
    }
  };
  const double burst_out = best_ns_per_packet(o.reps, o.packets, [&] { burst_loop(out, nat::Direction::kOutbound); });
  const double burst_in = best_ns_per_packet(o.reps, o.packets, [&] { burst_loop(in, nat::Direction::kInbound); });
  if (bad != 0) {
    std::fprintf(stderr, "%llu packets not translated\n", static_cast<unsigned long long>(bad));
    return 1;
  }
  report("copy only (baseline)", copy);
  report("nat out (incl. copy)", nat_out);
  report("nat in (incl. copy)", nat_in);
  std::printf("%-34s %8.1f / %.1f ns/pkt (out / in)\n", "nat alone (minus copy)", nat_out - copy, nat_in - copy);
  report("nat out, bursts of 32, 2 prefetches", burst_out);
  report("nat in, bursts of 32, 2 prefetches", burst_in);

  // --- rte_acl ---------------------------------------------------------------
  const char* eal[] = {"bench_nat", "--no-huge", "-m", "256", "--no-pci", "--no-shconf",
                       "--file-prefix=hn-bench-nat", "-l", "0", "--no-telemetry",
                       "--log-level", "lib.eal:error"};
  if (rte_eal_init(static_cast<int>(std::size(eal)), const_cast<char**>(eal)) < 0) {
    std::fprintf(stderr, "EAL init failed\n");
    return 1;
  }
  std::printf("\nrte_acl policy classify, bursts of %zu, random packets\n", policy::kClassifyBurst);
  for (std::size_t rules : {10u, 100u, 1000u}) {
    policy::CompiledPolicy pol;
    pol.rule_count = rules;
    for (std::uint32_t r = 0; r < rules; ++r) {
      for (int k = 0; k < 4; ++k) {  // e.g. 4 peers or ports per rule
        policy::FlatRule f;
        f.rule = r;
        f.peer = 1 + rng() % 1000;
        f.dst_len = static_cast<std::uint8_t>(8 + rng() % 25);
        f.dst = rng() & (~0u << (32 - f.dst_len));
        f.proto = static_cast<std::uint8_t>(rng() % 2 ? 6 : 17);
        f.dport_lo = f.dport_hi = static_cast<std::uint16_t>(rng() % 1024);
        pol.flat.push_back(f);
      }
    }
    std::string error;
    const auto acl = policy::AclClassifier::build(pol, -1, error);
    if (!acl) {
      std::fprintf(stderr, "%s\n", error.c_str());
      return 1;
    }
    constexpr std::size_t kInputs = 4096;
    std::vector<policy::AclInput> inputs(kInputs);
    std::size_t hits = 0;
    for (auto& x : inputs) {
      policy::Packet p{1 + static_cast<std::uint32_t>(rng() % 1000), static_cast<std::uint32_t>(rng()),
                       static_cast<std::uint32_t>(rng()),
                       static_cast<std::uint8_t>(rng() % 2 ? 6 : 17), static_cast<std::uint16_t>(rng()),
                       static_cast<std::uint16_t>(rng() % 1024)};
      if (rng() % 2) {  // half of them aimed at a rule
        const policy::FlatRule& f = pol.flat[rng() % pol.flat.size()];
        p.peer = f.peer;
        p.dst = f.dst | (rng() & ~(~0u << (32 - f.dst_len)));
        p.proto = f.proto;
        p.dport = f.dport_lo;
      }
      hits += policy::naive_match(pol, p) >= 0;
      x = policy::make_acl_input(p);
    }
    const policy::AclInput* ptrs[kInputs];
    for (std::size_t i = 0; i < kInputs; ++i) ptrs[i] = &inputs[i];
    int results[policy::kClassifyBurst];
    const std::size_t packets = o.packets / 4;
    const double ns = best_ns_per_packet(o.reps, packets, [&] {
      for (std::size_t done = 0; done < packets; done += policy::kClassifyBurst) {
        acl->classify(&ptrs[done % kInputs], policy::kClassifyBurst, results);
        sink += static_cast<std::uint64_t>(results[0]);
      }
    });
    char what[64];
    std::snprintf(what, sizeof what, "acl %zu rules (%zu flat), %zu%% hit", rules, pol.flat.size(),
                  hits * 100 / kInputs);
    report(what, ns);
  }
  const std::string runtime_dir = rte_eal_get_runtime_dir();
  rte_eal_cleanup();
  std::error_code ignored;
  std::filesystem::remove_all(runtime_dir, ignored);
  return sink == 42 ? 3 : 0;
}
