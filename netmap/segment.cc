// The shared-memory segment; segment.h describes its layout and protocol.
#include "netmap/segment.h"

#include <fcntl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <new>

#include "crypto/secret.h"
#include "netmap/snapshot.h"

namespace moongate::netmap {

namespace {
constexpr char kMagic[16] = "moongate-netmap";
constexpr std::size_t kHeaderBytes = 4096;
constexpr std::uint32_t kSlots = 2;

std::string errno_text() { return std::strerror(errno); }

std::uint64_t round_up(std::uint64_t v, std::uint64_t a) { return (v + a - 1) / a * a; }
}  // namespace

// Both processes map this at different addresses: only offsets, no pointers.
struct Segment::Header {
  char magic[16];
  std::uint32_t layout_version;
  std::uint32_t header_size;
  std::uint64_t segment_size;
  std::uint64_t slot_offset;
  std::uint64_t slot_stride;  // slot header + snapshot room
  std::uint32_t slot_count;
  std::uint32_t queue_count;
  std::uint64_t queue_offset;
  std::uint64_t queue_stride;
  std::uint32_t queue_capacity;
  std::uint32_t event_size;
  std::uint32_t queue_object_size;  // sizeof(EventQueue) in the creating build
  std::atomic<std::uint32_t> ready;
  alignas(64) std::atomic<std::uint64_t> published;  // generation << 1 | slot; 0 = none
  alignas(64) std::atomic<std::uint32_t> control_pid;
  std::atomic<std::uint64_t> control_heartbeat;
  alignas(64) std::atomic<std::uint32_t> dataplane_pid;
  std::atomic<std::uint64_t> dataplane_heartbeat;
  std::atomic<std::uint64_t> dataplane_applied;
};
static_assert(std::atomic<std::uint64_t>::is_always_lock_free, "shared atomics must be lock-free");

namespace {
struct alignas(64) SlotHeader {
  std::atomic<std::uint64_t> seq;   // odd while the publisher writes
  std::atomic<std::uint64_t> size;  // snapshot bytes
};
constexpr std::size_t kSlotHeader = 64;
constexpr std::size_t kLabelRoomPerPeer = 72;
static_assert(sizeof(SlotHeader) == kSlotHeader);
}  // namespace

Geometry Geometry::for_peers(std::uint32_t max_peers) noexcept {
  Geometry g;
  // Labels: a name and two tags of about 20 characters each per peer.
  g.slot_bytes = kSnapshotHeaderLen + 32 +
                 std::uint64_t{max_peers} *
                     (kSnapshotPeerLen + 4 * kSnapshotPrefixLen + kLabelRoomPerPeer + kPolicyRoomPerPeer) +
                 1024 * kSnapshotRouteLen + kPolicyRoom;
  return g;
}

std::string Segment::name_for(const std::string& interface_name) { return "moongate-" + interface_name; }

Segment::Segment(std::string name, void* base, std::size_t size) : name_(std::move(name)), base_(base), size_(size) {}

Segment::~Segment() {
  if (base_ != nullptr) munmap(base_, size_);
}

Segment::Header& Segment::header() const noexcept {
  static_assert(sizeof(Header) <= kHeaderBytes);
  return *static_cast<Header*>(base_);
}
std::uint32_t Segment::queue_count() const noexcept { return header().queue_count; }
std::uint64_t Segment::slot_bytes() const noexcept { return header().slot_stride - kSlotHeader; }

EventQueue& Segment::queue(std::uint32_t q) const noexcept {
  auto* p = static_cast<std::uint8_t*>(base_) + header().queue_offset + q * header().queue_stride;
  return *reinterpret_cast<EventQueue*>(p);
}

bool Segment::unlink(const std::string& name) { return shm_unlink(("/" + name).c_str()) == 0; }

std::unique_ptr<Segment> Segment::create_or_open(const std::string& name, const Geometry& g, std::string& error) {
  const std::string path = "/" + name;
  const std::uint64_t slot_stride = round_up(kSlotHeader + g.slot_bytes, 4096);
  const std::uint64_t queue_stride = round_up(sizeof(EventQueue), 64);
  const std::uint64_t queue_offset = kHeaderBytes + kSlots * slot_stride;
  const std::uint64_t size = round_up(queue_offset + g.queues * queue_stride, 4096);

  int fd = shm_open(path.c_str(), O_RDWR | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
  if (fd < 0 && errno == EEXIST) {
    std::unique_ptr<Segment> s = open(name, error);
    if (!s) return nullptr;
    const Header& h = s->header();
    if (h.slot_stride != slot_stride || h.queue_count != g.queues) {
      error = "/dev/shm" + path + " was made for another size (max_peers changed?): stop the data plane, "
              "remove it, and start again";
      return nullptr;
    }
    return s;
  }
  if (fd < 0) {
    error = "cannot create /dev/shm" + path + ": " + errno_text();
    return nullptr;
  }
  // tmpfs allocates pages as they are touched: an unused slot costs nothing.
  if (ftruncate(fd, static_cast<off_t>(size)) != 0) {
    error = "cannot size /dev/shm" + path + ": " + errno_text();
    close(fd);
    shm_unlink(path.c_str());
    return nullptr;
  }
  void* base = mmap(nullptr, size, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
  close(fd);
  if (base == MAP_FAILED) {
    error = "cannot map /dev/shm" + path + ": " + errno_text();
    shm_unlink(path.c_str());
    return nullptr;
  }
  auto* h = new (base) Header{};
  std::memcpy(h->magic, kMagic, sizeof kMagic);
  h->layout_version = kLayoutVersion;
  h->header_size = sizeof(Header);
  h->segment_size = size;
  h->slot_offset = kHeaderBytes;
  h->slot_stride = slot_stride;
  h->slot_count = kSlots;
  h->queue_count = g.queues;
  h->queue_offset = queue_offset;
  h->queue_stride = queue_stride;
  h->queue_capacity = kEventQueueCapacity;
  h->event_size = sizeof(Event);
  h->queue_object_size = sizeof(EventQueue);
  for (std::uint32_t s = 0; s < kSlots; ++s)
    new (static_cast<std::uint8_t*>(base) + kHeaderBytes + s * slot_stride) SlotHeader{};
  for (std::uint32_t q = 0; q < g.queues; ++q)
    new (static_cast<std::uint8_t*>(base) + queue_offset + q * queue_stride) EventQueue();
  h->ready.store(1, std::memory_order_release);
  return std::unique_ptr<Segment>(new Segment(name, base, size));
}

std::unique_ptr<Segment> Segment::open(const std::string& name, std::string& error) {
  const std::string path = "/" + name;
  const std::string where = "/dev/shm" + path;
  const int fd = shm_open(path.c_str(), O_RDWR | O_CLOEXEC, 0);
  if (fd < 0) {
    error = errno == ENOENT ? where + " does not exist (is moongate-control running?)"
                            : "cannot open " + where + ": " + errno_text();
    return nullptr;
  }
  struct stat st {};
  if (fstat(fd, &st) != 0 || static_cast<std::size_t>(st.st_size) < kHeaderBytes) {
    error = where + " is too small to be a netmap segment";
    close(fd);
    return nullptr;
  }
  const auto size = static_cast<std::size_t>(st.st_size);
  void* base = mmap(nullptr, size, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
  close(fd);
  if (base == MAP_FAILED) {
    error = "cannot map " + where + ": " + errno_text();
    return nullptr;
  }
  std::unique_ptr<Segment> s(new Segment(name, base, size));
  const Header& h = s->header();
  auto mismatch = [&](const char* what, std::uint64_t have, std::uint64_t want) {
    error = where + ": " + what + " " + std::to_string(have) + ", this program expects " + std::to_string(want) +
            " (run control and data plane of the same build)";
    return std::unique_ptr<Segment>();
  };
  if (std::memcmp(h.magic, kMagic, sizeof kMagic) != 0) {
    error = where + " is not a moongate netmap segment";
    return nullptr;
  }
  if (h.ready.load(std::memory_order_acquire) != 1) {
    error = where + " is still being created";
    return nullptr;
  }
  if (h.layout_version != kLayoutVersion) return mismatch("layout version", h.layout_version, kLayoutVersion);
  if (h.header_size != sizeof(Header)) return mismatch("header size", h.header_size, sizeof(Header));
  if (h.event_size != sizeof(Event)) return mismatch("event size", h.event_size, sizeof(Event));
  if (h.queue_object_size != sizeof(EventQueue))
    return mismatch("event queue size", h.queue_object_size, sizeof(EventQueue));
  if (h.queue_capacity != kEventQueueCapacity)
    return mismatch("event queue capacity", h.queue_capacity, kEventQueueCapacity);
  if (h.slot_count != kSlots) return mismatch("slot count", h.slot_count, kSlots);
  const std::uint64_t need = h.queue_offset + std::uint64_t{h.queue_count} * h.queue_stride;
  if (h.segment_size != size || need > size || h.slot_offset != kHeaderBytes ||
      h.queue_offset != kHeaderBytes + kSlots * h.slot_stride || h.queue_stride < sizeof(EventQueue) ||
      h.slot_stride <= kSlotHeader || h.queue_count > kMaxEventQueues) {
    error = where + ": inconsistent sizes in its header";
    return nullptr;
  }
  return s;
}

std::uint64_t Segment::published_generation() const noexcept {
  return header().published.load(std::memory_order_acquire) >> 1;
}

std::string Segment::publish(Netmap& n) {
  Header& h = header();
  const std::uint64_t current = h.published.load(std::memory_order_relaxed);
  const std::uint32_t slot = current == 0 ? 0 : static_cast<std::uint32_t>((current & 1) ^ 1);
  n.generation = (current >> 1) + 1;
  if (std::string e = encodable(n); !e.empty()) return e;
  const std::size_t need = encoded_size(n);
  if (need > slot_bytes())
  {
    std::size_t rules = 0;
    for (const auto& p : n.peers) rules += p.allowed_ips.size();
    // The segment is sized from max_peers with room for 4 allowed IPs per
    // peer on average: say which of the two ran out.
    if (n.policy) {
      // The policy's share: what the netmap takes without it.
      Netmap bare;
      bare.peers = n.peers;
      bare.routes = n.routes;
      const std::size_t policy_bytes = need - encoded_size(bare);
      if (policy_bytes > kPolicyRoom)
        return "the policy takes " + std::to_string(policy_bytes) + " bytes as written, the segment's slot has room for " +
               std::to_string(slot_bytes()) + " bytes of netmap with " + std::to_string(kPolicyRoom) +
               " + " + std::to_string(kPolicyRoomPerPeer) + " per max_peers for the policy: shorten it (tags "
               "instead of long groups) or raise dataplane.max_peers";
    }
    return "netmap of " + std::to_string(n.peers.size()) + " peers with " + std::to_string(rules) +
           " allowed IPs (" + std::to_string(need) + " bytes) does not fit the segment's " +
           std::to_string(slot_bytes()) + " bytes, made for dataplane.max_peers peers with 4 allowed IPs each " +
           "on average: raise dataplane.max_peers (to at least " +
           std::to_string(std::max(n.peers.size(), (rules + 3) / 4)) + ")";
  }
  auto* base = static_cast<std::uint8_t*>(base_) + h.slot_offset + slot * h.slot_stride;
  auto* sh = reinterpret_cast<SlotHeader*>(base);
  const std::uint64_t seq = sh->seq.load(std::memory_order_relaxed);
  sh->seq.store(seq + 1, std::memory_order_relaxed);  // odd: being written
  // The odd sequence must be visible before any byte of the new snapshot.
  std::atomic_thread_fence(std::memory_order_release);
  encode(n, std::span<std::uint8_t>(base + kSlotHeader, slot_bytes()));
  sh->size.store(need, std::memory_order_relaxed);
  sh->seq.store(seq + 2, std::memory_order_release);  // even: complete
  h.published.store((n.generation << 1) | slot, std::memory_order_release);
  return {};
}

Segment::Read Segment::read(std::uint64_t have, Netmap& out, std::string& error) {
  Header& h = header();
  const std::uint64_t pub = h.published.load(std::memory_order_acquire);
  if (pub == 0) return Read::kNone;
  if ((pub >> 1) <= have) return Read::kUnchanged;
  const std::uint32_t slot = static_cast<std::uint32_t>(pub & 1);
  auto* base = static_cast<std::uint8_t*>(base_) + h.slot_offset + slot * h.slot_stride;
  auto* sh = reinterpret_cast<SlotHeader*>(base);
  const std::uint64_t seq = sh->seq.load(std::memory_order_acquire);
  if (seq & 1) return Read::kRetry;
  const std::uint64_t size = sh->size.load(std::memory_order_relaxed);
  if (size > slot_bytes()) {
    error = "snapshot size beyond its slot";
    return Read::kBad;
  }
  scratch_.resize(size);
  std::memcpy(scratch_.data(), base + kSlotHeader, size);
  // The copy must complete before the sequence is read again.
  std::atomic_thread_fence(std::memory_order_acquire);
  if (sh->seq.load(std::memory_order_relaxed) != seq) return Read::kRetry;
  std::string err = decode(scratch_, out);
  // The copy holds the private and pre-shared keys: gone once decoded
  // (the decoded Netmap keeps them in wiping types).
  crypto::secure_wipe(scratch_.data(), scratch_.size());
  if (!err.empty()) {
    error = err;
    return Read::kBad;
  }
  return Read::kNew;
}

bool Segment::push(std::uint16_t worker, const Event& e) noexcept {
  if (worker >= queue_count()) return false;
  return queue(worker).push(e);
}

void Segment::control_alive(std::uint32_t pid, std::uint64_t now_ns) noexcept {
  header().control_pid.store(pid, std::memory_order_relaxed);
  header().control_heartbeat.store(now_ns, std::memory_order_release);
}

void Segment::dataplane_alive(std::uint32_t pid, std::uint64_t now_ns, std::uint64_t applied) noexcept {
  header().dataplane_pid.store(pid, std::memory_order_relaxed);
  header().dataplane_applied.store(applied, std::memory_order_relaxed);
  header().dataplane_heartbeat.store(now_ns, std::memory_order_release);
}

Segment::Liveness Segment::control() const noexcept {
  return {header().control_pid.load(std::memory_order_relaxed),
          header().control_heartbeat.load(std::memory_order_acquire), 0};
}

Segment::Liveness Segment::dataplane() const noexcept {
  return {header().dataplane_pid.load(std::memory_order_relaxed),
          header().dataplane_heartbeat.load(std::memory_order_acquire),
          header().dataplane_applied.load(std::memory_order_relaxed)};
}

}  // namespace moongate::netmap
