// The deferred-job worker (flow in job_runner.h).
#include "zerotier/job_runner.h"

#include <sys/eventfd.h>
#include <unistd.h>

#include <cerrno>
#include <cstdint>
#include <cstring>

#include "crypto/secret.h"

namespace moongate::zerotier {

JobRunner::~JobRunner() {
  if (worker_.joinable()) {
    {
      std::lock_guard<std::mutex> lock(mu_);
      quit_ = true;
    }
    cv_.notify_one();
    worker_.join();
  }
  crypto::secure_wipe(todo_.jobs.data(), sizeof todo_.jobs);
  crypto::secure_wipe(done_.jobs.data(), sizeof done_.jobs);
  if (efd_ >= 0) close(efd_);
}

bool JobRunner::start(std::string& error) {
  efd_ = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
  if (efd_ < 0) {
    error = std::string("eventfd: ") + std::strerror(errno);
    return false;
  }
  worker_ = std::thread([this] { worker_loop(); });
  return true;
}

void JobRunner::worker_loop() noexcept {
  Job job;
  for (;;) {
    {
      std::unique_lock<std::mutex> lock(mu_);
      cv_.wait(lock, [&] { return quit_ || todo_.count > 0; });
      if (quit_) break;
      job = todo_.jobs[todo_.head];
      crypto::secure_wipe(&todo_.jobs[todo_.head], sizeof(Job));
      todo_.head = (todo_.head + 1) % kJobs;
      --todo_.count;
      running_ = 1;
    }
    job.run(job);
    {
      std::lock_guard<std::mutex> lock(mu_);
      running_ = 0;
      done_.jobs[(done_.head + done_.count++) % kJobs] = job;
    }
    crypto::secure_wipe(&job, sizeof job);
    const std::uint64_t one = 1;
    if (write(efd_, &one, sizeof one) < 0) {
      // Only an overflowing counter fails, which this rate cannot reach.
    }
  }
  crypto::secure_wipe(&job, sizeof job);
}

std::size_t JobRunner::hand_off(DatagramService& service) noexcept {
  std::size_t n = 0;
  {
    std::lock_guard<std::mutex> lock(mu_);
    Job job;
    while (todo_.count + running_ + done_.count < kJobs && service.take_job(job)) {
      todo_.jobs[(todo_.head + todo_.count++) % kJobs] = job;
      ++n;
    }
    crypto::secure_wipe(&job, sizeof job);
  }
  if (n > 0) cv_.notify_one();
  return n;
}

void JobRunner::clear_event() noexcept {
  std::uint64_t n;
  if (read(efd_, &n, sizeof n) < 0) {
    // EAGAIN: nothing finished since the last clear.
  }
}

bool JobRunner::take_done(Job& job) noexcept {
  std::lock_guard<std::mutex> lock(mu_);
  if (done_.count == 0) return false;
  job = done_.jobs[done_.head];
  crypto::secure_wipe(&done_.jobs[done_.head], sizeof(Job));
  done_.head = (done_.head + 1) % kJobs;
  --done_.count;
  return true;
}

std::size_t JobRunner::in_flight() noexcept {
  std::lock_guard<std::mutex> lock(mu_);
  return todo_.count + running_ + done_.count;
}

}  // namespace moongate::zerotier
