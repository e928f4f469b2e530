// Runs a DatagramService's deferred jobs (the moon's identity hashes) on one
// worker thread, for any host: moongate-moon's UdpHost and the moon hosted
// by moongate-relay.
//
// Flow:
//   1. the host's thread calls hand_off(service) after each burst: the
//      service's pending jobs move into the todo ring (as many as fit);
//   2. the worker takes a job, runs job.run(job) (it touches only the job),
//      puts it in the done ring and bumps the eventfd;
//   3. the host's thread, woken by the eventfd (poll, io_uring) or at its
//      next tick, calls take_done() until it returns false and gives each
//      job back with service.finish_job().
// Ownership: the rings are fixed arrays (no allocation after start()); the
// mutex is taken once per job handed over or taken back — a budgeted
// handful per second — never per packet. At most kJobs jobs exist in the
// rings and the worker's hands together, so the done ring cannot overflow. Jobs carry peer keys:
// every slot a job leaves is wiped, and so is whatever is left at the end.
#pragma once

#include <array>
#include <condition_variable>
#include <cstddef>
#include <mutex>
#include <string>
#include <thread>

#include "zerotier/service.h"

namespace moongate::zerotier {

class JobRunner {
 public:
  static constexpr std::size_t kJobs = 64;

  JobRunner() = default;
  ~JobRunner();
  JobRunner(const JobRunner&) = delete;
  JobRunner& operator=(const JobRunner&) = delete;

  // Makes the eventfd and starts the worker; false with a message.
  bool start(std::string& error);
  // Readable when finished jobs wait (non-blocking, semaphore-free counter).
  int event_fd() const noexcept { return efd_; }

  // Step 1. Returns the number of jobs handed over.
  std::size_t hand_off(DatagramService& service) noexcept;
  // Step 3: clears the eventfd's count, so a poll on it sleeps again.
  void clear_event() noexcept;
  // Step 3: one finished job into `job`; false when none is left.
  bool take_done(Job& job) noexcept;

  // Jobs handed over and not yet taken back (for tests and counters).
  std::size_t in_flight() noexcept;

 private:
  struct Ring {
    std::array<Job, kJobs> jobs;
    std::size_t head = 0, count = 0;
  };
  void worker_loop() noexcept;

  std::mutex mu_;
  std::condition_variable cv_;
  Ring todo_, done_;
  std::size_t running_ = 0;  // the job the worker holds (counted against kJobs)
  bool quit_ = false;
  int efd_ = -1;
  std::thread worker_;
};

}  // namespace moongate::zerotier
