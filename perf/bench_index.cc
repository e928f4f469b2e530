// bench_index: receiver-index lookup, wg::IndexTable vs DPDK rte_hash.
//
// Every received data message is looked up by its 32-bit receiver index.
// The protocol core does that with its own IndexTable (wireguard/
// index_table.h: the index names its slot, which is the keypair's receive
// line; it was an open-addressing hash table when this benchmark was
// written); the question is whether the DPDK data plane should use
// rte_hash instead. One pinned lcore, N live entries, cycles
// per lookup (rte_rdtsc around each burst of 32 keys, summed over a pass
// of --lookups keys; median over --reps passes) for:
//   (a) find      wg::IndexTable::find, one key after the other
//   (b) rte       rte_hash_lookup (key_len 4, rte_hash_crc), then the
//                 position-indexed entry array, as dataplane/neighbor.cc
//   (c) rte-bulk  rte_hash_lookup_bulk over the burst of 32 keys, then
//                 the entry array
//   (d) pf+find   a prefetch pass over the burst (wg::IndexTable::prefetch,
//                 the home slot of each key), then (a)
//   (e) find-thp  (a) on a second IndexTable whose slot array was allocated
//                 with madvise(MADV_HUGEPAGE), to separate the structure
//                 from the page size (rte_hash sits on hugepages when the
//                 EAL has them; the IndexTable never does by itself)
// Every variant reads the entry's kind and keypair pointer (what
// Device::prepare_receive needs), so rte_hash pays for its entry array.
//
// Key patterns: random  live keys in random order (shuffled rounds)
//               dep     the same keys, each lookup's key depending on the
//                       previous lookup's result: latency, no overlap
//               same    one key repeated (one busy peer)
//               miss    random absent indices (a spray of bogus messages)
// Indices carry the data plane's worker tag (top 5 bits, worker 1), as in
// dataplane/handoff.h. Both tables are sized for exactly N entries (the
// IndexTable's own sizing rule; rte_hash with `entries` = N, min 8, and
// RTE_HASH_EXTRA_FLAGS_EXT_TABLE so inserts cannot fail below capacity,
// which the IndexTable guarantees and a receiver-index table needs).
//
// Also per N: memory footprint (the IndexTable's arrays; rte_hash and its
// entry array as rte_malloc heap deltas) and churn, steady state at N live
// entries: remove the oldest index, add a fresh random one (what a
// completed handshake does), cycles per pair. (The IndexTable's updates
// touch one slot each, by construction: no probing, no shifting.)
//
// Usage: bench_index [--entries 4,4000,40000,400000] [--patterns random,dep,same,miss]
//                    [--reps R] [--lookups L] [--churn C] [--lcore L]
//                    [--json FILE] [-- EAL args]
// Default EAL args: --no-huge -m 2048 --no-pci --no-shconf -l <L> --log-level 4
#include <rte_cycles.h>
#include <rte_eal.h>
#include <rte_errno.h>
#include <rte_hash.h>
#include <rte_hash_crc.h>
#include <rte_lcore.h>
#include <rte_malloc.h>
#include <sys/mman.h>

#include <algorithm>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <limits>
#include <memory>
#include <new>
#include <random>
#include <string>
#include <vector>

#include "crypto/secret.h"
#include "wireguard/index_table.h"

// --- THP allocation for variant (e) ------------------------------------------
// OpenTable allocates its slot array with new[]; the only way to put it on
// transparent hugepages without touching wireguard/ is to replace the global
// allocation functions. Off unless g_thp_new is set (only while building the
// (e) table); everything else goes straight to malloc/free as before.

namespace {
bool g_thp_new = false;
constexpr std::size_t kHugePage = 2u << 20;
// Out of line: inlined into operator delete, GCC 12 takes the free() for a
// mismatched deallocation of new'd memory (-Wmismatched-new-delete).
[[gnu::noinline]] void release(void* p) noexcept { std::free(p); }
}  // namespace

void* operator new(std::size_t n) {
  void* p = nullptr;
  if (g_thp_new && n >= kHugePage) {
    const std::size_t rounded = (n + kHugePage - 1) & ~(kHugePage - 1);
    p = std::aligned_alloc(kHugePage, rounded);
    // Before the first touch, so the faults are served with 2 MiB pages.
    if (p != nullptr) madvise(p, rounded, MADV_HUGEPAGE);
  } else {
    p = std::malloc(n == 0 ? 1 : n);
  }
  if (p == nullptr) throw std::bad_alloc();
  return p;
}
void operator delete(void* p) noexcept { release(p); }
void operator delete(void* p, std::size_t) noexcept { release(p); }

namespace {

namespace wg = moongate::wg;
namespace crypto = moongate::crypto;
// rte_hash's entry array: what an index names, as the IndexTable's slot
// held before it became the receive line (kind, peer, keypair).
struct RteEntry {
  std::uint32_t index = 0;
  bool keypair = false;
  wg::Peer* peer = nullptr;
  wg::Keypair* kp = nullptr;
};

constexpr std::uint32_t kBurst = 32;
// dataplane/handoff.h: kWorkerTagBits = 5, worker 1.
constexpr std::uint32_t kTagMask = ~0u << 27;
constexpr std::uint32_t kTagValue = 1u << 27;

[[noreturn]] void die(const std::string& msg) {
  std::fprintf(stderr, "bench_index: %s\n", msg.c_str());
  std::exit(1);
}

struct Options {
  std::vector<std::uint32_t> entries = {4, 4000, 40000, 400000};
  std::vector<std::string> patterns = {"random", "dep", "same", "miss"};
  int reps = 11;
  std::uint32_t lookups = 1u << 19;
  std::uint32_t churn = 2'000'000;
  int lcore = 1;
  std::string json;
  std::vector<std::string> eal;
};

std::vector<std::string> split(const std::string& s) {
  std::vector<std::string> v;
  std::size_t pos = 0;
  while (pos <= s.size()) {
    const std::size_t comma = s.find(',', pos);
    const std::string item = s.substr(pos, comma == std::string::npos ? std::string::npos : comma - pos);
    if (!item.empty()) v.push_back(item);
    if (comma == std::string::npos) break;
    pos = comma + 1;
  }
  return v;
}

[[noreturn]] void usage(const char* msg) {
  std::fprintf(stderr,
               "bench_index: %s\n"
               "usage: bench_index [--entries 4,4000,40000,400000] [--patterns random,dep,same,miss]\n"
               "                   [--reps R] [--lookups L] [--churn C] [--lcore L] [--json FILE]\n"
               "                   [-- EAL args]\n",
               msg);
  std::exit(2);
}

Options parse(int argc, char** argv) {
  Options o;
  int i = 1;
  for (; i < argc; ++i) {
    const std::string a = argv[i];
    if (a == "--") {
      ++i;
      break;
    }
    auto value = [&]() -> std::string {
      if (i + 1 >= argc) usage(("missing value for " + a).c_str());
      return argv[++i];
    };
    if (a == "--entries") {
      o.entries.clear();
      for (const auto& s : split(value())) o.entries.push_back(static_cast<std::uint32_t>(std::stoul(s)));
    } else if (a == "--patterns") {
      o.patterns = split(value());
    } else if (a == "--reps") {
      o.reps = std::max(1, std::stoi(value()));
    } else if (a == "--lookups") {
      o.lookups = static_cast<std::uint32_t>(std::stoul(value()));
    } else if (a == "--churn") {
      o.churn = static_cast<std::uint32_t>(std::stoul(value()));
    } else if (a == "--lcore") {
      o.lcore = std::stoi(value());
    } else if (a == "--json") {
      o.json = value();
    } else if (a == "-h" || a == "--help") {
      usage("help");
    } else {
      usage(("unknown argument " + a).c_str());
    }
  }
  for (; i < argc; ++i) o.eal.emplace_back(argv[i]);
  for (std::uint32_t n : o.entries)
    if (n == 0 || n > (1u << 24)) usage("--entries must be 1..16777216");
  for (const auto& p : o.patterns)
    if (p != "random" && p != "dep" && p != "same" && p != "miss") usage("unknown pattern");
  if (o.lookups < kBurst || o.lookups % kBurst != 0) usage("--lookups must be a multiple of 32");
  if (o.eal.empty())
    o.eal = {"--no-huge", "-m", "2048", "--no-pci", "--no-shconf", "-l", std::to_string(o.lcore),
             "--log-level", "4"};
  return o;
}

double median(std::vector<double> v) {
  std::sort(v.begin(), v.end());
  const std::size_t m = v.size() / 2;
  return v.size() % 2 ? v[m] : (v[m - 1] + v[m]) / 2;
}

std::size_t rte_heap_bytes() {
  rte_malloc_socket_stats s{};
  if (rte_malloc_get_socket_stats(static_cast<int>(rte_socket_id()), &s) != 0) return 0;
  return s.heap_allocsz_bytes;
}

// AnonHugePages of this process, in bytes (0 when THP is off).
std::size_t anon_huge_bytes() {
  std::ifstream f("/proc/self/smaps_rollup");
  std::string line;
  while (std::getline(f, line))
    if (line.rfind("AnonHugePages:", 0) == 0) return std::stoull(line.substr(14)) * 1024;
  return 0;
}

// Turns any value into a zero the compiler cannot see through, keeping the
// data dependency on `v` (AND with 0 is not a dependency-breaking idiom,
// unlike XOR with itself): the next lookup's key waits for this result.
inline std::uint32_t dep_zero(std::uintptr_t v) noexcept {
  auto z = static_cast<std::uint32_t>(v);
  asm("andl $0, %0" : "+r"(z));
  return z;
}

// What the data path reads from a found entry: the kind and the pointer
// it goes on with (for the IndexTable, the receive line itself: its peer).
inline std::uintptr_t consume(const wg::IndexSlot* e) noexcept {
  return e == nullptr ? 1 : e->peer_bits + e->is_keypair();
}
inline std::uintptr_t consume(const RteEntry* e) noexcept {
  return e == nullptr ? 1 : reinterpret_cast<std::uintptr_t>(e->kp) + e->keypair;
}

volatile std::uintptr_t g_sink;

// One IndexTable with N live keypair entries (indices drawn by the table).
struct Idx {
  std::unique_ptr<wg::IndexTable> table;
  std::vector<std::uint32_t> keys;
  std::size_t bytes = 0;
  std::size_t huge_bytes = 0;

  Idx(std::uint32_t n, bool thp, const std::vector<wg::Keypair*>& fake_kps) {
    const std::size_t h0 = anon_huge_bytes();
    g_thp_new = thp;
    table = std::make_unique<wg::IndexTable>(n);
    g_thp_new = false;
    // What the IndexTable allocates (wireguard/index_table.h): the slots
    // (receive lines), the owner and free-slot arrays, plus the object.
    // Computed rather than read from malloc statistics, which miss chunks
    // recycled from the tcache.
    const std::size_t slots = table->slot_count();
    bytes = sizeof(wg::IndexTable) + slots * (sizeof(wg::IndexSlot) + sizeof(wg::Keypair*) + sizeof(std::uint32_t));
    if (!table->set_tag(kTagMask, kTagValue)) die("IndexTable too large for the tag");
    keys.reserve(n);
    const crypto::SecretKey key;
    for (std::uint32_t i = 0; i < n; ++i) {
      std::uint32_t idx = 0;
      if (table->insert(nullptr, idx) == nullptr || table->make_keypair(idx, fake_kps[i], key, 1, false) == nullptr)
        die("IndexTable insert failed");
      keys.push_back(idx);
    }
    huge_bytes = anon_huge_bytes() - h0;
  }
};

// rte_hash over the same keys plus the position-indexed entry array.
struct Rte {
  rte_hash* h = nullptr;
  RteEntry* entries = nullptr;
  std::uint32_t positions = 0;
  std::size_t bytes = 0;        // the rte_hash itself
  std::size_t entry_bytes = 0;  // the position-indexed entry array

  Rte(std::uint32_t n, const std::vector<std::uint32_t>& keys, const std::vector<wg::Keypair*>& fake_kps) {
    static unsigned serial = 0;
    const std::string name = "bench_idx_" + std::to_string(serial++);
    const std::size_t r0 = rte_heap_bytes();
    rte_hash_parameters p{};
    p.name = name.c_str();
    p.entries = std::max<std::uint32_t>(n, 8);  // rte_hash's minimum: one bucket
    p.key_len = sizeof(std::uint32_t);
    p.hash_func = rte_hash_crc;
    p.hash_func_init_val = 0;
    p.socket_id = static_cast<int>(rte_socket_id());
    p.extra_flag = RTE_HASH_EXTRA_FLAGS_EXT_TABLE;
    h = rte_hash_create(&p);
    if (h == nullptr) die(std::string("rte_hash_create: ") + rte_strerror(rte_errno));
    positions = static_cast<std::uint32_t>(rte_hash_max_key_id(h)) + 1;
    const std::size_t r1 = rte_heap_bytes();
    entries = static_cast<RteEntry*>(rte_zmalloc("bench_idx_entries", sizeof(RteEntry) * positions, 64));
    if (entries == nullptr) die("rte_zmalloc entries");
    bytes = r1 - r0;
    entry_bytes = rte_heap_bytes() - r1;
    for (std::uint32_t i = 0; i < keys.size(); ++i) {
      const int pos = rte_hash_add_key(h, &keys[i]);
      if (pos < 0 || static_cast<std::uint32_t>(pos) >= positions) die("rte_hash_add_key failed");
      entries[pos] = RteEntry{keys[i], true, nullptr, fake_kps[i]};
    }
  }
  ~Rte() {
    rte_free(entries);
    rte_hash_free(h);
  }
  Rte(const Rte&) = delete;
  Rte& operator=(const Rte&) = delete;

  const RteEntry* find(std::uint32_t k) const noexcept {
    const int pos = rte_hash_lookup(h, &k);
    return pos < 0 ? nullptr : &entries[pos];
  }
};

// Sums rte_rdtsc around each burst of 32 keys over `count` keys (a
// multiple of 32).
template <class Burst>
double timed_pass(const std::uint32_t* keys, std::size_t count, Burst&& burst) {
  std::uint64_t cycles = 0;
  for (std::size_t off = 0; off < count; off += kBurst) {
    const std::uint64_t t0 = rte_rdtsc();
    burst(keys + off);
    cycles += rte_rdtsc() - t0;
  }
  return static_cast<double>(cycles) / static_cast<double>(count);
}

enum Variant { kFind, kRte, kRteBulk, kPrefetchFind, kFindThp, kVariants };
const char* const kVariantName[kVariants] = {"find", "rte", "rte-bulk", "pf+find", "find-thp"};

// One timed pass of variant v over seq (after an untimed warm-up over its
// first eighth, so each variant starts from its own steady cache state
// rather than the previous variant's). NaN when v does not apply.
double run_variant(Variant v, bool dependent, const Idx& a, const Idx& e, const Rte& r,
                   const std::vector<std::uint32_t>& seq, const std::vector<std::uint32_t>& seq_thp) {
  std::uintptr_t acc = 0;
  std::uint32_t carry = 0;
  const wg::IndexTable& ta = *a.table;
  const wg::IndexTable& te = *e.table;

  auto find_burst = [&](const wg::IndexTable* t) {
    return [&, t](const std::uint32_t* k) {
      if (dependent) {
        for (std::uint32_t i = 0; i < kBurst; ++i) carry = dep_zero(consume(t->find(k[i] | carry)));
      } else {
        for (std::uint32_t i = 0; i < kBurst; ++i) acc += consume(t->find(k[i]));
      }
    };
  };
  auto rte_burst = [&](const std::uint32_t* k) {
    if (dependent) {
      for (std::uint32_t i = 0; i < kBurst; ++i) carry = dep_zero(consume(r.find(k[i] | carry)));
    } else {
      for (std::uint32_t i = 0; i < kBurst; ++i) acc += consume(r.find(k[i]));
    }
  };
  auto bulk_burst = [&](const std::uint32_t* k) {
    const void* ptrs[kBurst];
    std::int32_t pos[kBurst];
    for (std::uint32_t i = 0; i < kBurst; ++i) ptrs[i] = &k[i];
    rte_hash_lookup_bulk(r.h, ptrs, kBurst, pos);
    for (std::uint32_t i = 0; i < kBurst; ++i) acc += consume(pos[i] < 0 ? nullptr : &r.entries[pos[i]]);
  };
  auto pf_burst = [&](const std::uint32_t* k) {
    for (std::uint32_t i = 0; i < kBurst; ++i) ta.prefetch(k[i]);
    for (std::uint32_t i = 0; i < kBurst; ++i) acc += consume(ta.find(k[i]));
  };

  auto pass = [&](const std::vector<std::uint32_t>& s, auto&& burst) {
    timed_pass(s.data(), std::max<std::size_t>(kBurst, s.size() / 8 / kBurst * kBurst), burst);
    return timed_pass(s.data(), s.size(), burst);
  };

  double cyc = std::numeric_limits<double>::quiet_NaN();
  switch (v) {
    case kFind: cyc = pass(seq, find_burst(&ta)); break;
    case kFindThp: cyc = pass(seq_thp, find_burst(&te)); break;
    case kRte: cyc = pass(seq, rte_burst); break;
    case kRteBulk:
      if (!dependent) cyc = pass(seq, bulk_burst);
      break;
    case kPrefetchFind:
      if (!dependent) cyc = pass(seq, pf_burst);
      break;
    case kVariants: break;
  }
  g_sink = acc + carry;
  return cyc;
}

std::vector<std::uint32_t> make_sequence(const std::string& pattern, const std::vector<std::uint32_t>& keys,
                                         const std::vector<std::uint32_t>& misses, std::uint32_t len,
                                         std::mt19937_64& rng) {
  std::vector<std::uint32_t> s;
  s.reserve(len);
  if (pattern == "same") {
    s.assign(len, keys[keys.size() / 2]);
  } else if (pattern == "miss") {
    s.assign(misses.begin(), misses.begin() + len);
  } else {
    // Shuffled rounds: every live key equally often, in random order.
    std::vector<std::uint32_t> round = keys;
    while (s.size() < len) {
      std::shuffle(round.begin(), round.end(), rng);
      for (std::uint32_t k : round) {
        if (s.size() == len) break;
        s.push_back(k);
      }
    }
  }
  return s;
}

// Random tagged indices absent from every table.
std::vector<std::uint32_t> make_misses(std::uint32_t len, const Idx& a, const Idx& e, std::mt19937_64& rng) {
  std::vector<std::uint32_t> m;
  m.reserve(len);
  while (m.size() < len) {
    const std::uint32_t k = (static_cast<std::uint32_t>(rng()) & ~kTagMask) | kTagValue;
    if (k != 0 && a.table->find(k) == nullptr && e.table->find(k) == nullptr) m.push_back(k);
  }
  return m;
}

struct Churn {
  // max: the slowest pair, kept in the JSON only (on a shared machine it is
  // whichever pair the scheduler or an interrupt hit).
  double median = 0, mean = 0, p999 = 0, max = 0;
};

// The maximum would be whichever pair the scheduler preempted (the machine
// may be shared), so the tail is reported as the 99.9th percentile.
Churn summarize(std::vector<double>& c) {
  Churn s;
  if (c.empty()) return s;
  double sum = 0;
  for (double x : c) sum += x;
  s.mean = sum / static_cast<double>(c.size());
  s.median = median(c);
  std::sort(c.begin(), c.end());
  s.p999 = c[std::min(c.size() - 1, c.size() * 999 / 1000)];
  s.max = c.back();
  return s;
}

// Steady-state churn on the IndexTable: remove the oldest index, insert a
// fresh one (the table draws it with crypto::random_bytes).
Churn churn_index(Idx& a, std::uint32_t ops, wg::Keypair* kp) {
  const crypto::SecretKey key;
  std::vector<std::uint32_t> fifo = a.keys;
  std::vector<double> c;
  c.reserve(ops);
  std::size_t head = 0;
  for (std::uint32_t i = 0; i < ops; ++i) {
    const std::uint64_t t0 = rte_rdtsc();
    a.table->remove(fifo[head]);
    std::uint32_t idx = 0;
    const bool ok = a.table->insert(nullptr, idx) != nullptr && a.table->make_keypair(idx, kp, key, 1, false) != nullptr;
    const std::uint64_t t1 = rte_rdtsc();
    if (!ok) die("IndexTable churn insert failed");
    fifo[head] = idx;
    head = (head + 1) % fifo.size();
    c.push_back(static_cast<double>(t1 - t0));
  }
  a.keys = fifo;
  return summarize(c);
}

// The same on rte_hash: the index is drawn the same way (crypto::random_bytes
// with the tag, redrawn if zero or present), then added; the entry array
// slot at the returned position is filled.
Churn churn_rte(Rte& r, std::vector<std::uint32_t> fifo, std::uint32_t ops, wg::Keypair* kp) {
  std::vector<double> c;
  c.reserve(ops);
  std::size_t head = 0;
  for (std::uint32_t i = 0; i < ops; ++i) {
    const std::uint64_t t0 = rte_rdtsc();
    const int old = rte_hash_del_key(r.h, &fifo[head]);
    if (old >= 0) r.entries[old] = RteEntry{};
    std::uint32_t k = 0;
    do {
      crypto::random_bytes(&k, sizeof k);
      k = (k & ~kTagMask) | kTagValue;
    } while (k == 0 || rte_hash_lookup(r.h, &k) >= 0);
    const int pos = rte_hash_add_key(r.h, &k);
    if (pos >= 0) r.entries[pos] = RteEntry{k, true, nullptr, kp};
    const std::uint64_t t1 = rte_rdtsc();
    if (old < 0 || pos < 0) die("rte_hash churn failed");
    fifo[head] = k;
    head = (head + 1) % fifo.size();
    c.push_back(static_cast<double>(t1 - t0));
  }
  return summarize(c);
}

// The random draw alone, which both churn loops include.
double draw_cycles() {
  constexpr int kDraws = 20000;
  std::vector<double> c;
  c.reserve(kDraws);
  for (int i = 0; i < kDraws; ++i) {
    std::uint32_t k = 0;
    const std::uint64_t t0 = rte_rdtsc();
    crypto::random_bytes(&k, sizeof k);
    c.push_back(static_cast<double>(rte_rdtsc() - t0));
    g_sink = k;
  }
  return median(c);
}

// Loop and timer cost of a pass with no lookup in it (keys summed only).
double empty_cycles(const std::vector<std::uint32_t>& seq) {
  std::uintptr_t acc = 0;
  const double c = timed_pass(seq.data(), seq.size(), [&](const std::uint32_t* k) {
    for (std::uint32_t i = 0; i < kBurst; ++i) acc += k[i];
  });
  g_sink = acc;
  return c;
}

struct Row {
  std::uint32_t n;
  std::string pattern;
  double cyc[kVariants];
  double lo[kVariants], hi[kVariants];
};

struct SizeFacts {
  std::uint32_t n;
  std::size_t idx_bytes, thp_bytes, thp_huge, rte_bytes, rte_entry_bytes;
  std::size_t idx_slots;
  std::uint32_t rte_positions;
  Churn churn_idx, churn_rte;
  double draw;
};

std::string mib(std::size_t b) {
  char buf[32];
  if (b < (1u << 20))
    std::snprintf(buf, sizeof buf, "%.1f KiB", static_cast<double>(b) / 1024);
  else
    std::snprintf(buf, sizeof buf, "%.2f MiB", static_cast<double>(b) / (1 << 20));
  return buf;
}

std::string cell(double v) {
  if (v != v) return "—";
  char buf[32];
  std::snprintf(buf, sizeof buf, "%.1f", v);
  return buf;
}

std::string jnum(double v) {
  if (v != v) return "null";
  char buf[32];
  std::snprintf(buf, sizeof buf, "%.2f", v);
  return buf;
}

}  // namespace

int main(int argc, char** argv) {
  const Options opt = parse(argc, argv);
  std::vector<std::string> eal_s = {"bench_index"};
  eal_s.insert(eal_s.end(), opt.eal.begin(), opt.eal.end());
  std::vector<char*> eal;
  for (auto& s : eal_s) eal.push_back(s.data());
  if (rte_eal_init(static_cast<int>(eal.size()), eal.data()) < 0)
    die(std::string("EAL: ") + rte_strerror(rte_errno));

  const double hz = static_cast<double>(rte_get_tsc_hz());
  const bool huge = rte_eal_has_hugepages() != 0;
  std::mt19937_64 rng(0x1dc0ffee);
  std::vector<Row> rows;
  std::vector<SizeFacts> facts;
  double empty = 0;

  for (std::uint32_t n : opt.entries) {
    std::fprintf(stderr, "== %u entries\n", n);
    // Distinct fake keypair pointers (never dereferenced) so the summed
    // payload differs per entry.
    std::vector<wg::Keypair*> kps(n);
    for (std::uint32_t i = 0; i < n; ++i)
      kps[i] = reinterpret_cast<wg::Keypair*>(static_cast<std::uintptr_t>(i + 1) * 64);

    Idx a(n, false, kps);
    Idx e(n, true, kps);
    Rte r(n, a.keys, kps);
    for (std::uint32_t i = 0; i < n; ++i) {
      const wg::IndexSlot* x = a.table->find(a.keys[i]);
      const RteEntry* y = r.find(a.keys[i]);
      if (x == nullptr || y == nullptr || a.table->keypair_of(*x) != kps[i] || y->kp != kps[i] ||
          y->index != a.keys[i])
        die("lookup check failed");
    }
    const std::vector<std::uint32_t> misses = make_misses(opt.lookups, a, e, rng);
    for (std::uint32_t k : misses)
      if (r.find(k) != nullptr) die("miss key present in rte_hash");

    SizeFacts f{n, a.bytes, e.bytes, e.huge_bytes, r.bytes, r.entry_bytes, a.table->slot_count(), r.positions, {}, {}, 0};

    for (const std::string& pattern : opt.patterns) {
      const std::vector<std::uint32_t> seq = make_sequence(pattern, a.keys, misses, opt.lookups, rng);
      const std::vector<std::uint32_t> seq_thp = make_sequence(pattern, e.keys, misses, opt.lookups, rng);
      if (empty == 0) empty = empty_cycles(seq);
      const bool dependent = pattern == "dep";
      std::vector<double> samples[kVariants];
      for (int rep = 0; rep < opt.reps; ++rep) {
        // Rotate which variant goes first, so none always follows the same one.
        for (int j = 0; j < kVariants; ++j) {
          const auto v = static_cast<Variant>((j + rep) % kVariants);
          const double c = run_variant(v, dependent, a, e, r, seq, seq_thp);
          if (c == c) samples[v].push_back(c);
        }
      }
      Row row{n, pattern, {}, {}, {}};
      for (int v = 0; v < kVariants; ++v) {
        if (samples[v].empty()) {
          row.cyc[v] = row.lo[v] = row.hi[v] = std::numeric_limits<double>::quiet_NaN();
          continue;
        }
        row.cyc[v] = median(samples[v]);
        row.lo[v] = *std::min_element(samples[v].begin(), samples[v].end());
        row.hi[v] = *std::max_element(samples[v].begin(), samples[v].end());
      }
      std::fprintf(stderr, "   %-6s find %s  rte %s  bulk %s  pf %s  thp %s\n", pattern.c_str(),
                   cell(row.cyc[kFind]).c_str(), cell(row.cyc[kRte]).c_str(), cell(row.cyc[kRteBulk]).c_str(),
                   cell(row.cyc[kPrefetchFind]).c_str(), cell(row.cyc[kFindThp]).c_str());
      rows.push_back(row);
    }

    f.draw = draw_cycles();
    if (opt.churn > 0) {
      // rte_hash holds the keys the IndexTable had before its own churn.
      const std::vector<std::uint32_t> rte_keys = a.keys;
      f.churn_idx = churn_index(a, opt.churn, kps[0]);
      f.churn_rte = churn_rte(r, rte_keys, opt.churn, kps[0]);
    }
    facts.push_back(f);
  }

  std::printf("Cycles per lookup (TSC), median of %d passes of %u lookups in bursts of 32, one lcore, "
              "%s:\n\n",
              opt.reps, opt.lookups, huge ? "EAL on hugepages" : "EAL --no-huge (4 KiB pages)");
  std::printf("| live entries | keys | (a) IndexTable::find | (b) rte_hash_lookup | (c) rte_hash_lookup_bulk | "
              "(d) prefetch + find | (e) find, THP slots | (b)/(a) | (c)/(a) |\n");
  std::printf("|---:|---|---:|---:|---:|---:|---:|---:|---:|\n");
  for (const Row& row : rows) {
    const double ba = row.cyc[kRte] / row.cyc[kFind], ca = row.cyc[kRteBulk] / row.cyc[kFind];
    std::printf("| %u | %s | %s | %s | %s | %s | %s | %s | %s |\n", row.n, row.pattern.c_str(),
                cell(row.cyc[kFind]).c_str(), cell(row.cyc[kRte]).c_str(), cell(row.cyc[kRteBulk]).c_str(),
                cell(row.cyc[kPrefetchFind]).c_str(), cell(row.cyc[kFindThp]).c_str(),
                ba == ba ? (cell(ba) + "x").c_str() : "—", ca == ca ? (cell(ca) + "x").c_str() : "—");
  }
  std::printf("\nMemory and churn (steady state: remove the oldest index, add a fresh random one; %u pairs "
              "per size; TSC cycles per pair, median / mean / 99.9th percentile):\n\n",
              opt.churn);
  std::printf("| live entries | IndexTable (slots) | rte_hash (key positions) | + entry array | "
              "IndexTable churn | rte_hash churn | random draw alone |\n");
  std::printf("|---:|---:|---:|---:|---:|---:|---:|\n");
  for (const SizeFacts& f : facts) {
    char ci[96] = "—", cr[96] = "—";
    if (opt.churn > 0) {
      std::snprintf(ci, sizeof ci, "%.0f / %.0f / %.0f", f.churn_idx.median, f.churn_idx.mean, f.churn_idx.p999);
      std::snprintf(cr, sizeof cr, "%.0f / %.0f / %.0f", f.churn_rte.median, f.churn_rte.mean, f.churn_rte.p999);
    }
    std::printf("| %u | %s (%zu) | %s (%u) | %s | %s | %s | %.0f |\n", f.n, mib(f.idx_bytes).c_str(),
                f.idx_slots, mib(f.rte_bytes).c_str(), f.rte_positions, mib(f.rte_entry_bytes).c_str(), ci, cr,
                f.draw);
  }
  std::printf("\n- Loop and timer overhead (a pass summing the keys, no lookup): %.1f cycles per key; "
              "included in every cell above.\n",
              empty);
  for (const SizeFacts& f : facts)
    if (f.n >= 100000)
      std::printf("- %u entries, (e) table: %s, of which %s on transparent hugepages.\n", f.n,
                  mib(f.thp_bytes).c_str(), mib(f.thp_huge).c_str());
  std::printf("- TSC %.3f GHz.\n", hz / 1e9);

  if (!opt.json.empty()) {
    std::FILE* js = std::fopen(opt.json.c_str(), "w");
    if (js == nullptr) die("cannot write " + opt.json);
    std::fprintf(js, "{\"tsc_hz\":%.0f,\"hugepages\":%s,\"reps\":%d,\"lookups\":%u,\"churn\":%u,"
                     "\"empty_cycles\":%.2f,\"rows\":[\n",
                 hz, huge ? "true" : "false", opt.reps, opt.lookups, opt.churn, empty);
    for (std::size_t i = 0; i < rows.size(); ++i) {
      const Row& row = rows[i];
      std::fprintf(js, "{\"entries\":%u,\"pattern\":\"%s\"", row.n, row.pattern.c_str());
      for (int v = 0; v < kVariants; ++v)
        std::fprintf(js, ",\"%s\":{\"median\":%s,\"min\":%s,\"max\":%s}", kVariantName[v],
                     jnum(row.cyc[v]).c_str(), jnum(row.lo[v]).c_str(), jnum(row.hi[v]).c_str());
      std::fprintf(js, "}%s\n", i + 1 < rows.size() ? "," : "");
    }
    std::fprintf(js, "],\"sizes\":[\n");
    for (std::size_t i = 0; i < facts.size(); ++i) {
      const SizeFacts& f = facts[i];
      std::fprintf(js,
                   "{\"entries\":%u,\"index_table_bytes\":%zu,\"index_table_slots\":%zu,\"thp_table_bytes\":%zu,"
                   "\"thp_huge_bytes\":%zu,\"rte_hash_bytes\":%zu,\"rte_entry_array_bytes\":%zu,"
                   "\"rte_positions\":%u,\"draw_cycles\":%.1f,"
                   "\"churn_index\":{\"median\":%.1f,\"mean\":%.1f,\"p999\":%.0f,\"max\":%.0f},"
                   "\"churn_rte\":{\"median\":%.1f,\"mean\":%.1f,\"p999\":%.0f,\"max\":%.0f}}%s\n",
                   f.n, f.idx_bytes, f.idx_slots, f.thp_bytes, f.thp_huge, f.rte_bytes, f.rte_entry_bytes,
                   f.rte_positions, f.draw, f.churn_idx.median, f.churn_idx.mean, f.churn_idx.p999,
                   f.churn_idx.max,
                   f.churn_rte.median, f.churn_rte.mean, f.churn_rte.p999, f.churn_rte.max,
                   i + 1 < facts.size() ? "," : "");
    }
    std::fprintf(js, "]}\n");
    std::fclose(js);
  }
  std::fflush(stdout);
  // Tables and EAL are left to process exit, as bench_dataplane does.
  std::_Exit(0);
}
