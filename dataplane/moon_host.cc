// The moon's thread in the data plane (flow in moon_host.h).
#include "dataplane/moon_host.h"

#include <poll.h>
#include <rte_lcore.h>
#include <rte_mbuf.h>
#include <rte_ring.h>
#include <rte_telemetry.h>
#include <time.h>

#include <algorithm>
#include <cstring>
#include <sstream>

#include "crypto/secret.h"
#include "dataplane/moon_wire.h"

namespace moongate::dp {

namespace {

constexpr std::uint64_t kTickMs = 1000;
constexpr std::uint64_t kPublishMs = 100;
constexpr long kMaxIdleSleepNs = 200'000;
// The data room an mbuf gives us behind its headroom (Ethernet is
// prepended into the headroom by the worker).
constexpr std::size_t kMbufRoom = RTE_MBUF_DEFAULT_BUF_SIZE - RTE_PKTMBUF_HEADROOM;

std::uint64_t now_ms() noexcept {
  timespec ts{};
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return static_cast<std::uint64_t>(ts.tv_sec) * 1000 + static_cast<std::uint64_t>(ts.tv_nsec) / 1'000'000;
}

std::atomic<const MoonHost*> g_host{nullptr};

int moon_cb(const char*, const char*, rte_tel_data* d) {
  const MoonHost* h = g_host.load();
  if (h == nullptr) return -1;
  rte_tel_data_start_dict(d);
  rte_tel_data_add_dict_u64(d, "peers", h->peers());
  h->for_each_counter([&](const char* name, std::uint64_t v) { rte_tel_data_add_dict_u64(d, name, v); });
  return 0;
}

}  // namespace

MoonHost::MoonHost(Shared& shared, std::unique_ptr<zerotier::Moon> moon)
    : shared_(shared), moon_(std::move(moon)), tx_(std::make_unique<zerotier::TxBatch>()) {}

MoonHost::~MoonHost() { stop(); }

std::string MoonHost::start() {
  if (shared_.moon_rx.size() != shared_.workers() || shared_.moon_tx.size() != shared_.workers())
    return "moon: the data plane has no moon rings (Settings::moon_port unset)";
  std::string err;
  if (!jobs_.start(err)) return "moon: " + err;
  last_tick_ms_ = last_publish_ms_ = now_ms();
  // A control thread: on the cores the EAL leaves to the system, never a
  // worker's (moon_host.h says why the moon has a thread of its own).
  const int rc = rte_ctrl_thread_create(&thread_, "mg-moon", nullptr, thread_main, this);
  if (rc != 0) return std::string("moon: thread: ") + std::strerror(rc);
  running_ = true;
  return {};
}

void MoonHost::stop() {
  if (!running_) return;
  stop_.store(true, std::memory_order_relaxed);
  pthread_join(thread_, nullptr);
  running_ = false;
  publish();
}

void* MoonHost::thread_main(void* self) {
  static_cast<MoonHost*>(self)->loop();
  return nullptr;
}

void MoonHost::loop() noexcept {
  long idle_ns = 0;
  while (!stop_.load(std::memory_order_relaxed)) {
    const bool busy = run_once(now_ms());
    if (busy) {
      idle_ns = 0;
      continue;
    }
    // Idle: sleep, but wake when the JobRunner finishes a hash (its OK(HELLO)
    // leaves at once, not after the back-off).
    idle_ns = idle_ns == 0 ? 1000 : std::min(idle_ns * 2, kMaxIdleSleepNs);
    pollfd p{jobs_.event_fd(), POLLIN, 0};
    const timespec ts{0, idle_ns};
    ppoll(&p, 1, &ts, nullptr);
  }
}

bool MoonHost::run_once(std::uint64_t now) noexcept {
  bool busy = false;
  rte_mbuf* frames[kBurst];
  for (std::uint16_t w = 0; w < shared_.workers(); ++w) {
    const unsigned n =
        rte_ring_sc_dequeue_burst(shared_.moon_rx[w], reinterpret_cast<void**>(frames), kBurst, nullptr);
    busy |= n != 0;
    for (unsigned i = 0; i < n; ++i) {
      rte_mbuf* m = frames[i];
      ++host_.rx_frames;
      MoonDatagram d;
      // Workers receive single-segment frames (no scatter on the rx queues).
      if (!parse_moon_frame(rte_pktmbuf_mtod(m, const std::uint8_t*), rte_pktmbuf_data_len(m), d)) {
        ++host_.rx_malformed;
      } else {
        if (tx_->room() < zerotier::TxBatch::kRoomPerReceive) flush();
        moon_->receive({rte_pktmbuf_mtod_offset(m, const std::uint8_t*, d.offset), d.length}, d.from, now, *tx_);
      }
      rte_pktmbuf_free(m);
    }
  }
  if (busy) jobs_.hand_off(*moon_);
  // Finished hashes: the eventfd says so without taking the runner's lock.
  pollfd p{jobs_.event_fd(), POLLIN, 0};
  if (poll(&p, 1, 0) > 0) {
    finish_jobs(now);
    busy = true;
  }
  if (now - last_tick_ms_ >= kTickMs) {
    last_tick_ms_ = now;
    moon_->tick(now, *tx_);
    jobs_.hand_off(*moon_);  // what a full runner left with the moon
  }
  if (tx_->size() != 0) flush();
  if (now - last_publish_ms_ >= kPublishMs) {
    last_publish_ms_ = now;
    publish();
  }
  return busy;
}

void MoonHost::finish_jobs(std::uint64_t now) noexcept {
  jobs_.clear_event();
  zerotier::Job job;
  while (jobs_.take_done(job)) {
    if (tx_->room() < zerotier::TxBatch::kRoomPerReceive) flush();
    moon_->finish_job(job, now, *tx_);
  }
  crypto::secure_wipe(&job, sizeof job);  // it held a peer key
}

void MoonHost::flush() noexcept {
  const Port& wan = shared_.settings.ports[shared_.wan];
  const std::uint16_t workers = shared_.workers();
  for (std::size_t i = 0; i < tx_->size(); ++i) {
    const zerotier::Datagram& d = (*tx_)[i];
    const std::uint8_t* src = nullptr;
    std::uint32_t v4 = 0;
    if (d.to.family == 4 && !wan.v4.empty()) {
      v4 = wan.primary_v4();
      src = reinterpret_cast<const std::uint8_t*>(&v4);
    } else if (d.to.family == 6 && !wan.v6.empty()) {
      src = wan.v6.front().addr.data();
    }
    if (src == nullptr) {
      ++host_.tx_no_address;
      continue;
    }
    const std::size_t hdr = moon_header_len(d.to.family);
    if (hdr + d.len > kMbufRoom) {
      ++host_.tx_too_big;
      continue;
    }
    rte_mbuf* m = rte_pktmbuf_alloc(shared_.pool);
    if (m == nullptr) {
      ++host_.tx_no_mbuf;
      continue;
    }
    auto* ip = reinterpret_cast<std::uint8_t*>(rte_pktmbuf_append(m, static_cast<std::uint16_t>(hdr + d.len)));
    std::memcpy(ip + hdr, d.bytes.data(), d.len);
    if (write_moon_headers(ip, hdr + d.len, src, shared_.settings.moon_port, d.to, d.len) == 0) {
      ++host_.tx_too_big;
      rte_pktmbuf_free(m);
      continue;
    }
    const auto w = static_cast<std::uint16_t>(d.to.hash() % workers);
    if (rte_ring_sp_enqueue(shared_.moon_tx[w], m) != 0) {
      ++host_.tx_ring_full;
      rte_pktmbuf_free(m);
      continue;
    }
    ++host_.tx_datagrams;
  }
  tx_->clear();
}

void MoonHost::publish() noexcept {
  std::size_t i = 0;
  moon_->counters().for_each(
      [&](const char*, std::uint64_t v) { pub_moon_[i++].store(v, std::memory_order_relaxed); });
  i = 0;
#define MOONGATE_X(name) pub_host_[i++].store(host_.name, std::memory_order_relaxed);
  MOONGATE_DP_MOON_HOST_COUNTERS(MOONGATE_X)
#undef MOONGATE_X
  pub_peers_.store(moon_->peer_count(), std::memory_order_relaxed);
}

std::string MoonHost::status() const {
  std::ostringstream o;
  o << "moon peers " << peers() << "\n";
  for_each_counter([&](const char* name, std::uint64_t v) {
    if (v != 0) o << "moon_counter " << name << " " << v << "\n";
  });
  return o.str();
}

void register_moon_telemetry(const MoonHost* host) {
  g_host.store(host);
  static bool registered = false;  // a command cannot be unregistered: once
  if (host != nullptr && !registered) {
    registered = true;
    rte_telemetry_register_cmd("/moongate/moon", moon_cb,
                               "ZeroTier moon on the wan port: peers, the moon's counters, its host's");
  }
}

}  // namespace moongate::dp
