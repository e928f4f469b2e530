// JobRunner: jobs a service defers run on the worker, come back through the
// eventfd in order, and the rings never hold more than kJobs.
#include "zerotier/job_runner.h"

#include <gtest/gtest.h>
#include <poll.h>

#include <cstring>
#include <string>
#include <vector>

namespace moongate::zerotier {
namespace {

// Defers `pending` jobs; each doubles the number stored in its data.
class Deferring final : public DatagramService {
 public:
  std::size_t pending = 0;
  std::uint32_t next = 1;

  bool take_job(Job& job) noexcept override {
    if (pending == 0) return false;
    --pending;
    job.run = [](Job& j) {
      std::uint32_t v;
      std::memcpy(&v, j.data.data(), 4);
      v *= 2;
      std::memcpy(j.data.data() + 4, &v, 4);
    };
    std::memcpy(job.data.data(), &next, 4);
    ++next;
    return true;
  }
  void receive(std::span<const std::uint8_t>, const Endpoint&, std::uint64_t, TxBatch&) noexcept override {}
  void tick(std::uint64_t, TxBatch&) noexcept override {}
};

// Waits (bounded) for the eventfd, then takes back every finished job.
std::size_t take_all(JobRunner& r, std::vector<std::uint32_t>& results, std::size_t want) {
  std::size_t got = 0;
  for (int rounds = 0; got < want && rounds < 500; ++rounds) {
    pollfd p{r.event_fd(), POLLIN, 0};
    poll(&p, 1, 20);
    r.clear_event();
    Job job;
    while (r.take_done(job)) {
      std::uint32_t in, out;
      std::memcpy(&in, job.data.data(), 4);
      std::memcpy(&out, job.data.data() + 4, 4);
      EXPECT_EQ(out, in * 2);
      results.push_back(in);
      ++got;
    }
  }
  return got;
}

TEST(JobRunner, RunsDeferredJobsInOrderAndWakesTheEventfd) {
  JobRunner r;
  std::string error;
  ASSERT_TRUE(r.start(error)) << error;
  Deferring s;
  s.pending = 10;
  EXPECT_EQ(r.hand_off(s), 10u);
  std::vector<std::uint32_t> results;
  ASSERT_EQ(take_all(r, results, 10), 10u);
  for (std::uint32_t i = 0; i < 10; ++i) EXPECT_EQ(results[i], i + 1);
  EXPECT_EQ(r.in_flight(), 0u);
}

TEST(JobRunner, HoldsAtMostKJobsAndLeavesTheRestWithTheService) {
  JobRunner r;
  std::string error;
  ASSERT_TRUE(r.start(error)) << error;
  Deferring s;
  s.pending = JobRunner::kJobs + 20;
  EXPECT_EQ(r.hand_off(s), JobRunner::kJobs);
  EXPECT_EQ(s.pending, 20u);  // not taken: the service keeps (and counts) them
  // Finished or not, the kJobs jobs stay counted until taken back.
  EXPECT_EQ(r.hand_off(s), 0u);
  std::vector<std::uint32_t> results;
  EXPECT_EQ(take_all(r, results, JobRunner::kJobs), JobRunner::kJobs);
  EXPECT_EQ(r.hand_off(s), 20u);
  EXPECT_EQ(take_all(r, results, 20), 20u);
  EXPECT_EQ(results.size(), JobRunner::kJobs + 20);
}

}  // namespace
}  // namespace moongate::zerotier
