// bench_aead: throughput of the AeadBurst wrapper against bare IPsec-MB
// burst calls doing the same work (the ceiling the wrapper can reach).
//
// For each payload size and burst size, wrapper and bare bursts alternate
// one by one within one process (which goes first flips every repetition),
// so frequency drift and neighbour noise hit both sides alike. Each
// repetition yields the median cycles per burst of each side; the table
// shows the medians over repetitions, and the ratio is the median of the
// per-repetition wrapper/bare throughput ratios.
//
// --control replaces the wrapper by a second bare manager (an A/A run): its
// ratios show the noise floor and any bias of the method itself.
//
// Usage: bench_aead [--reps N] [--ms M] [--sizes 64,512,1420] [--bursts 32,128]
//                   [--arch auto|sse|avx|avx2|avx512] [--cpu N] [--control]
//                   [--json FILE]
#include <intel-ipsec-mb.h>
#include <sched.h>
#include <x86intrin.h>

#include <algorithm>
#include <chrono>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <memory>
#include <stdexcept>
#include <string>
#include <vector>

#include "crypto/aead_burst.h"

namespace {

using moongate::crypto::AeadArch;
using moongate::crypto::AeadBurst;
using moongate::crypto::AeadOp;

struct Options {
  int reps = 15;
  double ms = 25.0;  // target duration of one measurement
  std::vector<std::uint32_t> sizes = {64, 512, 1420};
  std::vector<std::uint32_t> bursts = {32, 128};
  AeadArch arch = AeadArch::kAuto;
  int cpu = -1;
  bool control = false;  // A/A run: a second bare manager in the wrapper's place
  std::string json;
};

[[noreturn]] void usage(const char* msg) {
  std::fprintf(stderr,
               "bench_aead: %s\n"
               "usage: bench_aead [--reps N] [--ms M] [--sizes a,b,..] [--bursts a,b,..]\n"
               "                  [--arch auto|sse|avx|avx2|avx512] [--cpu N] [--control] [--json FILE]\n",
               msg);
  std::exit(2);
}

std::vector<std::uint32_t> parse_list(const char* s) {
  std::vector<std::uint32_t> v;
  std::string item;
  for (const char* p = s;; ++p) {
    if (*p == ',' || *p == '\0') {
      if (!item.empty()) v.push_back(static_cast<std::uint32_t>(std::stoul(item)));
      item.clear();
      if (*p == '\0') break;
    } else {
      item.push_back(*p);
    }
  }
  return v;
}

Options parse(int argc, char** argv) {
  Options o;
  for (int i = 1; i < argc; ++i) {
    const std::string a = argv[i];
    auto value = [&]() -> const char* {
      if (i + 1 >= argc) usage(("missing value for " + a).c_str());
      return argv[++i];
    };
    if (a == "--reps") {
      o.reps = std::max(1, std::atoi(value()));
    } else if (a == "--ms") {
      o.ms = std::max(1.0, std::atof(value()));
    } else if (a == "--sizes") {
      o.sizes = parse_list(value());
    } else if (a == "--bursts") {
      o.bursts = parse_list(value());
    } else if (a == "--cpu") {
      o.cpu = std::atoi(value());
    } else if (a == "--control") {
      o.control = true;
    } else if (a == "--json") {
      o.json = value();
    } else if (a == "--arch") {
      const std::string v = value();
      if (v == "auto") o.arch = AeadArch::kAuto;
      else if (v == "sse") o.arch = AeadArch::kSse;
      else if (v == "avx") o.arch = AeadArch::kAvx;
      else if (v == "avx2") o.arch = AeadArch::kAvx2;
      else if (v == "avx512") o.arch = AeadArch::kAvx512;
      else usage("unknown --arch");
    } else if (a == "-h" || a == "--help") {
      usage("help");
    } else {
      usage(("unknown argument " + a).c_str());
    }
  }
  for (std::uint32_t b : o.bursts) {
    if (b == 0 || b > AeadBurst::kMaxBurst) usage("burst sizes must be 1..128");
  }
  return o;
}

// TSC ticks per second, measured against the steady clock.
double tsc_hz() {
  const auto t0 = std::chrono::steady_clock::now();
  const std::uint64_t c0 = __rdtsc();
  while (std::chrono::steady_clock::now() - t0 < std::chrono::milliseconds(200)) {
  }
  const std::uint64_t c1 = __rdtsc();
  const auto t1 = std::chrono::steady_clock::now();
  return static_cast<double>(c1 - c0) / std::chrono::duration<double>(t1 - t0).count();
}

// ---------------------------------------------------------------------------
// The ceiling: what an application writing IPsec-MB calls by hand would do
// for the same burst. Same job fields, NOCHECK submit, flush until drained,
// status check, and for decryption a plain (not constant-time) tag compare.
class BareBurst {
 public:
  explicit BareBurst(AeadArch arch) {
    mgr_ = alloc_mb_mgr(0);
    if (mgr_ == nullptr) throw std::runtime_error("alloc_mb_mgr failed");
    switch (arch) {
      case AeadArch::kSse: init_mb_mgr_sse(mgr_); break;
      case AeadArch::kAvx: init_mb_mgr_avx(mgr_); break;
      case AeadArch::kAvx2: init_mb_mgr_avx2(mgr_); break;
      case AeadArch::kAvx512: init_mb_mgr_avx512(mgr_); break;
      case AeadArch::kAuto: init_mb_mgr_auto(mgr_, nullptr); break;
    }
    if (imb_get_errno(mgr_) != 0) throw std::runtime_error("IPsec-MB init failed");
    std::memset(nonces_, 0, sizeof nonces_);
  }
  ~BareBurst() { free_mb_mgr(mgr_); }
  BareBurst(const BareBurst&) = delete;
  BareBurst& operator=(const BareBurst&) = delete;

  std::uint32_t run(AeadOp* ops, std::uint32_t n, bool encrypt) {
    IMB_JOB* jobs[IMB_MAX_BURST_SIZE];
    const std::uint32_t got = IMB_GET_NEXT_BURST(mgr_, n, jobs);
    for (std::uint32_t i = 0; i < got; ++i) {
      IMB_JOB* job = jobs[i];
      const AeadOp& op = ops[i];
      std::memcpy(nonces_[i] + 4, &op.counter, 8);
      job->cipher_mode = IMB_CIPHER_CHACHA20_POLY1305;
      job->hash_alg = IMB_AUTH_CHACHA20_POLY1305;
      job->cipher_direction = encrypt ? IMB_DIR_ENCRYPT : IMB_DIR_DECRYPT;
      job->chain_order = encrypt ? IMB_ORDER_CIPHER_HASH : IMB_ORDER_HASH_CIPHER;
      job->enc_keys = op.key;
      job->dec_keys = op.key;
      job->key_len_in_bytes = 32;
      job->src = op.data;
      job->dst = op.data;
      job->cipher_start_src_offset_in_bytes = 0;
      job->msg_len_to_cipher_in_bytes = op.len;
      job->hash_start_src_offset_in_bytes = 0;
      job->msg_len_to_hash_in_bytes = op.len;
      job->iv = nonces_[i];
      job->iv_len_in_bytes = 12;
      job->u.CHACHA20_POLY1305.aad = op.aad;
      job->u.CHACHA20_POLY1305.aad_len_in_bytes = op.aad_len;
      job->auth_tag_output = encrypt ? op.tag : tags_[i];
      job->auth_tag_output_len_in_bytes = 16;
      job->user_data = &ops[i];
      job->user_data2 = tags_[i];
    }
    std::uint32_t good = 0;
    std::uint32_t left = got;
    std::uint32_t completed = IMB_SUBMIT_BURST_NOCHECK(mgr_, got, jobs);
    for (;;) {
      for (std::uint32_t k = 0; k < completed; ++k) {
        const IMB_JOB* job = jobs[k];
        bool ok = job->status == IMB_STATUS_COMPLETED;
        if (!encrypt) ok = ok && std::memcmp(job->user_data2, static_cast<const AeadOp*>(job->user_data)->tag, 16) == 0;
        good += ok ? 1u : 0u;
      }
      left -= completed;
      if (left == 0) break;
      completed = IMB_FLUSH_BURST(mgr_, left, jobs);
      if (completed == 0) break;
    }
    return good;
  }

 private:
  IMB_MGR* mgr_ = nullptr;
  alignas(64) std::uint8_t nonces_[IMB_MAX_BURST_SIZE][16];
  alignas(64) std::uint8_t tags_[IMB_MAX_BURST_SIZE][16];
};

// ---------------------------------------------------------------------------

struct Workload {
  std::vector<std::uint8_t> buffers;  // n packets, each on its own cache lines
  std::vector<std::uint8_t> tags;
  std::uint8_t keys[4][32];
  std::vector<AeadOp> ops;

  Workload(std::uint32_t n, std::uint32_t size) {
    const std::size_t stride = (size + 63) / 64 * 64 + 64;
    buffers.assign(stride * n, 0);
    tags.assign(16 * std::size_t{n}, 0);
    std::uint64_t x = 0x9E3779B97F4A7C15ull;
    auto next = [&x] {
      x ^= x << 13;
      x ^= x >> 7;
      x ^= x << 17;
      return static_cast<std::uint8_t>(x);
    };
    for (auto& b : buffers) b = next();
    for (auto& k : keys) {
      for (auto& b : k) b = next();
    }
    ops.resize(n);
    for (std::uint32_t i = 0; i < n; ++i) {
      AeadOp& op = ops[i];
      op.data = buffers.data() + stride * i;
      op.len = size;
      op.tag = tags.data() + 16 * std::size_t{i};
      op.key = keys[i % 4];  // a few peers interleaved, as on a busy gateway
      op.counter = 1000 + i;
    }
  }
};

enum class Side { kWrapper, kBare };

struct Contenders {
  AeadBurst* wrapper;
  BareBurst* bare;
  BareBurst* control;  // non-null: stands in for the wrapper (--control)
};

// Runs one burst on one side and returns its TSC cycles. For decryption the
// burst is first re-encrypted, untimed and through the same side, so every
// timed decrypt verifies genuine packets and both sides find the same
// (their own) state warm.
std::uint64_t one_burst(Side side, bool encrypt, Workload& w, const Contenders& c) {
  const auto n = static_cast<std::uint32_t>(w.ops.size());
  bool ok[AeadBurst::kMaxBurst];
  BareBurst* bare = side == Side::kBare ? c.bare : c.control;
  if (!encrypt) {
    if (bare != nullptr) {
      bare->run(w.ops.data(), n, true);
    } else {
      c.wrapper->encrypt(w.ops.data(), n);
    }
  }
  std::uint32_t done;
  const std::uint64_t c0 = __rdtsc();
  if (bare != nullptr) {
    done = bare->run(w.ops.data(), n, encrypt);
  } else {
    done = encrypt ? c.wrapper->encrypt(w.ops.data(), n) : c.wrapper->decrypt(w.ops.data(), n, ok);
  }
  const std::uint64_t c1 = __rdtsc();
  if (done != n) {
    std::fprintf(stderr, "bench_aead: %s %s processed %u of %u packets\n", side == Side::kWrapper ? "wrapper" : "bare",
                 encrypt ? "encrypt" : "decrypt", done, n);
    std::exit(1);
  }
  return c1 - c0;
}

double median(std::vector<double> v) {
  std::sort(v.begin(), v.end());
  const std::size_t m = v.size() / 2;
  return v.size() % 2 != 0 ? v[m] : (v[m - 1] + v[m]) / 2;
}

struct Rep {
  double wrapper_cycles;  // median TSC cycles per burst
  double bare_cycles;
};

// One repetition: `bursts` bursts per side, the sides alternating burst by
// burst (which side goes first flips every repetition). Interleaving at
// this grain makes both sides share whatever the machine is doing, and the
// per-burst median drops bursts hit by an interrupt or preemption.
Rep repetition(bool encrypt, bool wrapper_first, Workload& w, const Contenders& c, std::uint64_t bursts) {
  std::vector<double> wc;
  std::vector<double> bc;
  wc.reserve(bursts);
  bc.reserve(bursts);
  const Side first = wrapper_first ? Side::kWrapper : Side::kBare;
  const Side second = wrapper_first ? Side::kBare : Side::kWrapper;
  for (std::uint64_t b = 0; b < bursts; ++b) {
    const auto c1 = static_cast<double>(one_burst(first, encrypt, w, c));
    const auto c2 = static_cast<double>(one_burst(second, encrypt, w, c));
    (wrapper_first ? wc : bc).push_back(c1);
    (wrapper_first ? bc : wc).push_back(c2);
  }
  return Rep{median(wc), median(bc)};
}

struct Row {
  std::uint32_t size;
  std::uint32_t burst;
  const char* op;
  double w_mpps, w_gbps, w_cpp;
  double b_mpps, b_gbps, b_cpp;
  double ratio;
};

}  // namespace

int main(int argc, char** argv) {
  const Options opt = parse(argc, argv);
  if (opt.cpu >= 0) {
    cpu_set_t set;
    CPU_ZERO(&set);
    CPU_SET(opt.cpu, &set);
    if (sched_setaffinity(0, sizeof set, &set) != 0) std::perror("bench_aead: sched_setaffinity");
  }

  AeadBurst wrapper(opt.arch);
  BareBurst bare(wrapper.arch());
  std::unique_ptr<BareBurst> control;
  if (opt.control) control = std::make_unique<BareBurst>(wrapper.arch());
  const Contenders contenders{&wrapper, &bare, control.get()};
  const double hz = tsc_hz();

  std::printf("# AEAD burst: %s vs bare IPsec-MB\n\n",
              opt.control ? "CONTROL RUN (bare in the wrapper columns)" : "AeadBurst wrapper");
  std::printf("IPsec-MB %s, code path %s, TSC %.3f GHz, %d repetitions of ~%.0f ms per cell, medians\n\n",
              imb_get_version_str(), wrapper.arch_name(), hz / 1e9, opt.reps, opt.ms);
  std::printf("| payload B | burst | op | wrapper Mpps | wrapper Gbit/s | wrapper cyc/pkt | bare Mpps | bare Gbit/s "
              "| bare cyc/pkt | wrapper/bare |\n");
  std::printf("|---:|---:|---|---:|---:|---:|---:|---:|---:|---:|\n");
  std::fflush(stdout);

  std::vector<Row> rows;
  for (std::uint32_t burst : opt.bursts) {
    for (std::uint32_t size : opt.sizes) {
      Workload w(burst, size);
      for (bool encrypt : {true, false}) {
        // Warm up both sides, then size a repetition to ~opt.ms of work.
        std::uint64_t warm = 0;
        for (int i = 0; i < 100; ++i) {
          one_burst(Side::kWrapper, encrypt, w, contenders);
          warm += one_burst(Side::kBare, encrypt, w, contenders);
        }
        const double burst_seconds = static_cast<double>(warm) / 100 / hz;
        const auto bursts = std::max<std::uint64_t>(50, static_cast<std::uint64_t>(opt.ms / 1e3 / 2 / burst_seconds));

        std::vector<double> wc, bc, ratio;
        for (int r = 0; r < opt.reps; ++r) {
          const Rep rep = repetition(encrypt, r % 2 == 0, w, contenders, bursts);
          wc.push_back(rep.wrapper_cycles);
          bc.push_back(rep.bare_cycles);
          ratio.push_back(rep.bare_cycles / rep.wrapper_cycles);  // throughput ratio
        }
        const double n = burst;
        Row row{size, burst, encrypt ? "encrypt" : "decrypt", 0, 0, median(wc) / n, 0, 0, median(bc) / n,
                median(ratio)};
        row.w_mpps = hz / row.w_cpp / 1e6;
        row.b_mpps = hz / row.b_cpp / 1e6;
        row.w_gbps = row.w_mpps * 1e6 * size * 8 / 1e9;
        row.b_gbps = row.b_mpps * 1e6 * size * 8 / 1e9;
        rows.push_back(row);
        std::printf("| %u | %u | %s | %.2f | %.2f | %.0f | %.2f | %.2f | %.0f | %.1f%% |\n", row.size, row.burst,
                    row.op, row.w_mpps, row.w_gbps, row.w_cpp, row.b_mpps, row.b_gbps, row.b_cpp, row.ratio * 100);
        std::fflush(stdout);
      }
    }
  }

  double worst = 1e9;
  for (const Row& r : rows) worst = std::min(worst, r.ratio);
  std::printf("\nLowest wrapper/bare ratio: %.1f%% (target >= 95%%)\n", worst * 100);
  std::printf("Gbit/s counts payload bytes only; cyc/pkt are TSC cycles.\n");

  if (!opt.json.empty()) {
    std::FILE* f = std::fopen(opt.json.c_str(), "w");
    if (f == nullptr) {
      std::perror(opt.json.c_str());
      return 1;
    }
    std::fprintf(f, "{\n  \"ipsec_mb\": \"%s\",\n  \"arch\": \"%s\",\n  \"tsc_ghz\": %.4f,\n  \"reps\": %d,\n",
                 imb_get_version_str(), wrapper.arch_name(), hz / 1e9, opt.reps);
    std::fprintf(f, "  \"min_ratio\": %.4f,\n  \"results\": [\n", worst);
    for (std::size_t i = 0; i < rows.size(); ++i) {
      const Row& r = rows[i];
      std::fprintf(f,
                   "    {\"payload\": %u, \"burst\": %u, \"op\": \"%s\", \"wrapper_mpps\": %.4f, "
                   "\"wrapper_gbps\": %.4f, \"wrapper_cycles_per_packet\": %.1f, \"bare_mpps\": %.4f, "
                   "\"bare_gbps\": %.4f, \"bare_cycles_per_packet\": %.1f, \"ratio\": %.4f}%s\n",
                   r.size, r.burst, r.op, r.w_mpps, r.w_gbps, r.w_cpp, r.b_mpps, r.b_gbps, r.b_cpp, r.ratio,
                   i + 1 < rows.size() ? "," : "");
    }
    std::fprintf(f, "  ]\n}\n");
    std::fclose(f);
  }
  return 0;
}
