// The shared-memory segment: publish and read across two mappings (as the
// two processes have), the seqlock under a concurrent publisher, layout and
// geometry checks, event queues, and surviving a restart of either side.
#include "netmap/segment.h"
#include "netmap/snapshot.h"

#include <gtest/gtest.h>

#include <fcntl.h>
#include <sys/mman.h>
#include <unistd.h>

#include <atomic>
#include <cstring>
#include <thread>

namespace moongate::netmap {
namespace {

// A unique segment name per test, removed at the end.
class SegmentTest : public ::testing::Test {
 protected:
  SegmentTest()
      : name_("moongate-test-" + std::to_string(getpid()) + "-" +
              ::testing::UnitTest::GetInstance()->current_test_info()->name()) {
    Segment::unlink(name_);
  }
  ~SegmentTest() override { Segment::unlink(name_); }

  std::unique_ptr<Segment> control(std::uint32_t max_peers = 1000) {
    std::string err;
    auto s = Segment::create_or_open(name_, Geometry::for_peers(max_peers), err);
    EXPECT_NE(s, nullptr) << err;
    return s;
  }
  std::unique_ptr<Segment> dataplane() {
    std::string err;
    auto s = Segment::open(name_, err);
    EXPECT_NE(s, nullptr) << err;
    return s;
  }
  // Writes raw bytes into the segment file (what another build would have made).
  void poke(std::size_t offset, const void* bytes, std::size_t n) {
    const int fd = shm_open(("/" + name_).c_str(), O_RDWR, 0);
    ASSERT_GE(fd, 0);
    ASSERT_EQ(pwrite(fd, bytes, n, static_cast<off_t>(offset)), static_cast<ssize_t>(n));
    close(fd);
  }

  static Netmap with_peers(std::size_t n, std::uint16_t keepalive) {
    Netmap m;
    m.has_private_key = true;
    m.private_key.randomize();
    for (std::size_t i = 0; i < n; ++i) {
      config::Peer p;
      p.public_key[0] = static_cast<std::uint8_t>(i);
      p.public_key[1] = static_cast<std::uint8_t>(i >> 8);
      p.persistent_keepalive = keepalive;
      m.peers.push_back(p);
    }
    return m;
  }

  std::string name_;
};

TEST_F(SegmentTest, OpenWithoutControlSaysSo) {
  std::string err;
  EXPECT_EQ(Segment::open(name_, err), nullptr);
  EXPECT_NE(err.find("does not exist (is moongate-control running?)"), std::string::npos) << err;
}

TEST_F(SegmentTest, PublishThenReadInAnotherMapping) {
  auto c = control();
  auto d = dataplane();
  Netmap got;
  std::string err;
  EXPECT_EQ(d->read(0, got, err), Segment::Read::kNone);

  Netmap n = with_peers(10, 25);
  ASSERT_EQ(c->publish(n), "");
  EXPECT_EQ(n.generation, 1u);
  ASSERT_EQ(d->read(0, got, err), Segment::Read::kNew) << err;
  EXPECT_TRUE(got == n);
  EXPECT_EQ(d->read(1, got, err), Segment::Read::kUnchanged);

  Netmap n2 = with_peers(3, 5);
  ASSERT_EQ(c->publish(n2), "");
  EXPECT_EQ(n2.generation, 2u);
  ASSERT_EQ(d->read(1, got, err), Segment::Read::kNew);
  EXPECT_EQ(got.peers.size(), 3u);
  EXPECT_EQ(got.generation, 2u);
}

TEST_F(SegmentTest, RestartsKeepTheLastSnapshotAndGeneration) {
  {
    auto c = control();
    Netmap n = with_peers(4, 1);
    ASSERT_EQ(c->publish(n), "");
    ASSERT_EQ(c->publish(n), "");
  }
  // The control process restarts: it finds generation 2 and continues.
  auto c = control();
  EXPECT_EQ(c->published_generation(), 2u);
  // A data plane that starts now gets the last netmap.
  auto d = dataplane();
  Netmap got;
  std::string err;
  ASSERT_EQ(d->read(0, got, err), Segment::Read::kNew);
  EXPECT_EQ(got.generation, 2u);
  EXPECT_EQ(got.peers.size(), 4u);
  Netmap n = with_peers(1, 1);
  ASSERT_EQ(c->publish(n), "");
  EXPECT_EQ(n.generation, 3u);
}

TEST_F(SegmentTest, TooLargeNetmapIsRefusedAndNothingChanges) {
  auto c = control(10);
  Netmap big = with_peers(5000, 1);
  const std::string err = c->publish(big);
  EXPECT_NE(err.find("does not fit"), std::string::npos) << err;
  EXPECT_EQ(c->published_generation(), 0u);
}

TEST_F(SegmentTest, ANetmapWithLabelsBeyondTheBoundsIsRefusedAndNothingChanges) {
  auto c = control(10);
  Netmap n = with_peers(3, 0);
  n.peers[1].exit_node = true;
  n.peers[1].name = "alice";
  n.peers[1].tags = {"laptop"};
  ASSERT_EQ(c->publish(n), "");
  Netmap bad = n;
  bad.peers[2].tags.assign(kSnapshotMaxTags + 1, "t");
  EXPECT_NE(c->publish(bad).find("beyond the snapshot's bounds"), std::string::npos);
  EXPECT_EQ(c->published_generation(), 1u);
  // The data plane still reads the last good one, labels included.
  std::string err;
  auto dp = Segment::open(name_, err);
  ASSERT_NE(dp, nullptr) << err;
  Netmap got;
  ASSERT_EQ(dp->read(0, got, err), Segment::Read::kNew) << err;
  EXPECT_TRUE(got == n);
  EXPECT_TRUE(got.peers[1].exit_node);
  EXPECT_EQ(got.peers[1].tags, std::vector<std::string>{"laptop"});
}

TEST_F(SegmentTest, APolicyTravelsAndOneTooLargeIsRefusedNamingIt) {
  auto c = control(10000);
  Netmap n = with_peers(10000, 0);
  // A group naming every peer by a 20-character name: 220 KiB of policy.
  policy::PolicySpec& p = n.policy.emplace();
  for (std::size_t i = 0; i < n.peers.size(); ++i) {
    n.peers[i].name = "peer-name-padded-" + std::to_string(100 + i % 900);
    n.peers[i].name.resize(20, 'x');
    n.peers[i].name += std::to_string(i);
    p.groups["all"].push_back(n.peers[i].name);
  }
  p.rules.push_back({{"group:all"}, {"10.0.0.0/8:*"}, "any"});
  ASSERT_EQ(c->publish(n), "");
  std::string err;
  auto dp = Segment::open(name_, err);
  ASSERT_NE(dp, nullptr) << err;
  Netmap got;
  ASSERT_EQ(dp->read(0, got, err), Segment::Read::kNew) << err;
  EXPECT_TRUE(got == n);
  ASSERT_TRUE(got.policy.has_value());
  EXPECT_EQ(got.policy->groups.at("all").size(), 10000u);
  // Twenty more such groups: more than a slot holds; refused, and the data
  // plane keeps reading the last good one.
  Netmap big = n;
  for (int g = 0; g < 20; ++g) big.policy->groups["copy" + std::to_string(g)] = p.groups["all"];
  const std::string e = c->publish(big);
  EXPECT_NE(e.find("the policy takes"), std::string::npos) << e;
  EXPECT_EQ(c->published_generation(), 1u);
  EXPECT_EQ(dp->read(1, got, err), Segment::Read::kUnchanged);
}

TEST_F(SegmentTest, AnotherLayoutVersionIsRefusedWithAClearMessage) {
  control();
  const std::uint32_t v = kLayoutVersion + 1;
  poke(16, &v, sizeof v);  // layout_version follows the 16-byte magic
  std::string err;
  EXPECT_EQ(Segment::open(name_, err), nullptr);
  EXPECT_NE(err.find("layout version " + std::to_string(v) + ", this program expects " +
                     std::to_string(kLayoutVersion)),
            std::string::npos)
      << err;
  EXPECT_EQ(Segment::create_or_open(name_, Geometry::for_peers(1000), err), nullptr);
}

TEST_F(SegmentTest, NotASegmentIsRefused) {
  control();
  poke(0, "garbage-garbage!", 16);
  std::string err;
  EXPECT_EQ(Segment::open(name_, err), nullptr);
  EXPECT_NE(err.find("is not a moongate netmap segment"), std::string::npos) << err;
}

TEST_F(SegmentTest, AnotherGeometryIsRefused) {
  control(1000);
  std::string err;
  EXPECT_EQ(Segment::create_or_open(name_, Geometry::for_peers(5000), err), nullptr);
  EXPECT_NE(err.find("another size"), std::string::npos) << err;
}

// A publisher laps a reader as fast as it can: every snapshot the reader
// accepts must be whole (each carries its generation in every peer).
TEST_F(SegmentTest, ConcurrentPublisherNeverYieldsATornSnapshot) {
  auto c = control(4000);
  auto d = dataplane();
  std::atomic<bool> done{false};
  std::thread writer([&] {
    for (std::uint16_t g = 1; g <= 3000; ++g) {
      Netmap n = with_peers(1 + g % 2000, 0);
      for (auto& p : n.peers) p.persistent_keepalive = g;  // generation == keepalive
      ASSERT_EQ(c->publish(n), "");
    }
    done = true;
  });
  std::uint64_t have = 0, accepted = 0, retries = 0;
  while (!done.load() || have < 3000) {
    Netmap got;
    std::string err;
    switch (d->read(have, got, err)) {
      case Segment::Read::kNew:
        ASSERT_GT(got.generation, have);
        for (const auto& p : got.peers) ASSERT_EQ(p.persistent_keepalive, got.generation);
        ASSERT_EQ(got.peers.size(), 1 + got.generation % 2000);
        have = got.generation;
        ++accepted;
        break;
      case Segment::Read::kRetry:
        ++retries;
        break;
      case Segment::Read::kBad:
        FAIL() << "torn snapshot accepted by the decoder: " << err;
      default:
        break;
    }
  }
  writer.join();
  EXPECT_EQ(have, 3000u);
  EXPECT_GT(accepted, 0u);
  std::printf("accepted %llu snapshots, %llu retries\n", static_cast<unsigned long long>(accepted),
              static_cast<unsigned long long>(retries));
}

TEST_F(SegmentTest, EventsFlowPerWorkerInOrderAndAFullQueueRefuses) {
  auto c = control();
  auto d = dataplane();
  for (std::uint16_t w = 0; w < 3; ++w)
    for (std::uint64_t i = 0; i < 100; ++i) {
      Event e;
      e.type = EventType::kPeerStats;
      e.worker = w;
      e.v0 = i;
      ASSERT_TRUE(d->push(w, e));
    }
  Event counter;
  counter.type = EventType::kCounter;
  counter.set_name("drop_handoff_full");
  counter.v0 = 42;
  ASSERT_TRUE(d->push(5, counter));
  EXPECT_FALSE(d->push(kMaxEventQueues, counter));  // no such worker

  std::uint64_t next[3] = {0, 0, 0};
  std::size_t counters = 0;
  const std::size_t n = c->drain(
      [&](const Event& e) {
        if (e.type == EventType::kCounter) {
          EXPECT_EQ(e.name(), "drop_handoff_full");
          EXPECT_EQ(e.v0, 42u);
          ++counters;
          return;
        }
        ASSERT_LT(e.worker, 3);
        EXPECT_EQ(e.v0, next[e.worker]++);
      },
      1000);
  EXPECT_EQ(n, 301u);
  EXPECT_EQ(counters, 1u);

  // A queue holds kEventQueueCapacity events, then refuses.
  std::size_t pushed = 0;
  while (d->push(1, counter)) ++pushed;
  EXPECT_EQ(pushed, kEventQueueCapacity);
  EXPECT_EQ(c->drain([](const Event&) {}, 10), 10u);  // bounded
}

TEST_F(SegmentTest, Liveness) {
  auto c = control();
  auto d = dataplane();
  c->control_alive(123, 1000);
  d->dataplane_alive(456, 2000, 7);
  EXPECT_EQ(d->control().pid, 123u);
  EXPECT_EQ(d->control().heartbeat_ns, 1000u);
  EXPECT_EQ(c->dataplane().pid, 456u);
  EXPECT_EQ(c->dataplane().applied, 7u);
}

}  // namespace
}  // namespace moongate::netmap
