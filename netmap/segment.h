// The shared-memory segment between moongate-control and the data plane.
//
//   /dev/shm/moongate-<interface>, mode 0600 (it holds keys)
//   header (4 KiB)   magic, layout version and the size of everything below,
//                    so both sides refuse a segment of another build; the
//                    published generation; each process's pid and heartbeat;
//                    the generation the data plane has applied
//   2 snapshot slots a sequence number and a netmap snapshot (snapshot.h)
//   event queues     one SPSC queue per data-plane worker (events.h)
//
// Publishing (control, the only writer of the slots):
//   1. pick the slot that is not published; make its sequence odd
//   2. write the snapshot; make the sequence even again
//   3. store published = generation << 1 | slot (release)
// Reading (data plane, at its own pace): load `published` (acquire), copy
// the slot out, and keep the copy only if the slot's sequence was even and
// unchanged across the copy (a seqlock: a publisher lapping a slow reader is
// detected, never waited for). Neither side ever blocks the other, and the
// segment outlives both: a restarted data plane reads the last snapshot, a
// restarted control process finds its last generation.
//
// The creator (control) initialises the segment and sets `ready` last; an
// opener that finds it unready or of another layout gets a clear error.
#pragma once

#include <atomic>
#include <cstddef>
#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "netmap/events.h"
#include "netmap/netmap.h"

namespace moongate::netmap {

inline constexpr std::uint32_t kLayoutVersion = 3;  // 2: snapshot format 2 (peer labels, exit_node); 3: format 3 (policy)
inline constexpr std::uint32_t kMaxEventQueues = 32;  // the data plane's worker limit
// A policy's room in a slot: 256 KiB (some thousands of rules as written)
// and 32 bytes per peer.
inline constexpr std::uint64_t kPolicyRoom = 256 * 1024;
inline constexpr std::uint64_t kPolicyRoomPerPeer = 32;

struct Geometry {
  std::uint64_t slot_bytes = 0;  // room for one snapshot
  std::uint32_t queues = kMaxEventQueues;

  // Room for `max_peers` peers with a few allowed IPs each, 1 024 routes
  // and a policy of kPolicyRoom bytes of text plus kPolicyRoomPerPeer per
  // peer (every peer named once in a group, say).
  static Geometry for_peers(std::uint32_t max_peers) noexcept;
};

class Segment {
 public:
  ~Segment();
  Segment(const Segment&) = delete;
  Segment& operator=(const Segment&) = delete;

  // "moongate-<interface>": the name under /dev/shm.
  static std::string name_for(const std::string& interface_name);

  // Control: opens the segment, creating it with `g` when there is none. An
  // existing segment of another layout or geometry is an error (the data
  // plane may still be using it). nullptr and `error` set on failure.
  static std::unique_ptr<Segment> create_or_open(const std::string& name, const Geometry& g,
                                                 std::string& error);
  // Data plane: opens an existing, ready segment.
  static std::unique_ptr<Segment> open(const std::string& name, std::string& error);
  // Removes the name (mappings stay valid); false if there was none.
  static bool unlink(const std::string& name);

  const std::string& name() const noexcept { return name_; }
  std::uint64_t slot_bytes() const noexcept;

  // --- publishing (control) ---
  // Encodes `n` with generation published_generation() + 1 (written back
  // into n.generation) and publishes it. "" or why not (too large).
  std::string publish(Netmap& n);
  std::uint64_t published_generation() const noexcept;

  // --- reading (data plane) ---
  enum class Read { kNew, kUnchanged, kNone, kRetry, kBad };
  // kNew: out holds a snapshot newer than `have`. kUnchanged: nothing newer.
  // kNone: nothing published yet. kRetry: the publisher overwrote the slot
  // while it was read; try again. kBad: it does not decode (error says why).
  Read read(std::uint64_t have, Netmap& out, std::string& error);

  // --- events (data plane produces on queue `worker`, control consumes) ---
  bool push(std::uint16_t worker, const Event& e) noexcept;
  // Calls f(const Event&) for up to `max` events across all queues.
  template <class F>
  std::size_t drain(F&& f, std::size_t max) {
    std::size_t n = 0;
    Event e;
    for (std::uint32_t q = 0; q < queue_count() && n < max; ++q)
      while (n < max && queue(q).pop(e)) {
        f(e);
        ++n;
      }
    return n;
  }

  // --- liveness ---
  void control_alive(std::uint32_t pid, std::uint64_t now_ns) noexcept;
  void dataplane_alive(std::uint32_t pid, std::uint64_t now_ns, std::uint64_t applied) noexcept;
  struct Liveness {
    std::uint32_t pid = 0;
    std::uint64_t heartbeat_ns = 0;  // CLOCK_MONOTONIC
    std::uint64_t applied = 0;       // data plane only: generation in use
  };
  Liveness control() const noexcept;
  Liveness dataplane() const noexcept;

 private:
  struct Header;
  Segment(std::string name, void* base, std::size_t size);
  Header& header() const noexcept;
  std::uint32_t queue_count() const noexcept;
  EventQueue& queue(std::uint32_t q) const noexcept;

  std::string name_;
  void* base_ = nullptr;
  std::size_t size_ = 0;
  std::vector<std::uint8_t> scratch_;  // reader's copy of a slot
};

}  // namespace moongate::netmap
