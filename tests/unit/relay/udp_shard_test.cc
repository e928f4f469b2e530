// Hosted UDP services on real shards (in process, 127.0.0.1, ephemeral
// ports): a shard0_only service is bound and made on shard 0 alone, every
// datagram to it reaches that one instance, the other shards' metrics and
// ticks skip it, and its event descriptor wakes it on the shard's thread.
#include <gtest/gtest.h>
#include <arpa/inet.h>
#include <poll.h>
#include <sys/eventfd.h>
#include <sys/socket.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <mutex>
#include <thread>
#include <vector>

#include "relay/shard.h"

namespace moongate::relay {
namespace {

struct Seen {
  std::mutex mu;
  std::vector<unsigned> made_on;  // shard index of each factory call
};

// Echoes each datagram; counts what it got and its ticks; on its event
// descriptor, sends "event" to the last sender.
class Echo final : public UdpService {
 public:
  Echo(const char* name, bool with_event) : name_(name) {
    if (with_event) efd_ = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
  }
  ~Echo() override {
    if (efd_ >= 0) close(efd_);
  }
  void on_datagram(std::span<const std::uint8_t> d, const sockaddr_storage& from, socklen_t len, std::uint64_t,
                   UdpOut& out) override {
    ++got;
    last_ = from;
    last_len_ = len;
    out.send(d, from, len);
  }
  void on_tick(std::uint64_t, UdpOut&) override { ++ticks; }
  int event_fd() const override { return efd_; }
  void on_event(std::uint64_t, UdpOut& out) override {
    std::uint64_t n;
    if (read(efd_, &n, sizeof n) < 0) return;
    static const std::uint8_t kEvent[] = {'e', 'v', 'e', 'n', 't'};
    out.send(kEvent, last_, last_len_);
  }
  void metrics(std::string& out, unsigned shard) const override {
    out += std::string("test_") + name_ + "{shard=\"" + std::to_string(shard) + "\"} 1\n";
  }
  int efd() const { return efd_; }

  std::atomic<std::uint64_t> got{0}, ticks{0};

 private:
  const char* name_;
  int efd_ = -1;
  sockaddr_storage last_{};
  socklen_t last_len_ = 0;
};

std::size_t count(const std::string& text, const std::string& what) {
  std::size_t n = 0;
  for (std::size_t at = text.find(what); at != std::string::npos; at = text.find(what, at + 1)) ++n;
  return n;
}

class UdpShards : public ::testing::Test {
 protected:
  static constexpr unsigned kShards = 3;

  void SetUp() override {
    relay_ = std::make_unique<Relay>();
    Options& o = relay_->opts;
    o.addr = "127.0.0.1";
    o.port = 0;
    o.plain = true;
    o.udp_services.push_back(spec("spread", false, spread_));
    o.udp_services.push_back(spec("single", true, single_));
    relay_->private_key.randomize();
    for (unsigned i = 0; i < kShards; ++i) relay_->shards.push_back(std::make_unique<Shard>(*relay_, i));
    for (unsigned i = 0; i < kShards * kShards; ++i)
      relay_->rings.push_back(std::make_unique<boost::lockfree::spsc_queue<std::uint8_t>>(1 << 16));
    for (unsigned i = 0; i < kShards; ++i) ASSERT_EQ(relay_->shards[i]->init(), "") << "shard " << i;
  }
  void TearDown() override {
    if (started_) {
      relay_->stop = true;
      for (auto& s : relay_->shards) s->wake();
      for (auto& s : relay_->shards) s->join();
    }
  }
  UdpServiceSpec spec(const char* name, bool single, Seen& seen) {
    UdpServiceSpec s;
    s.name = name;
    s.shard0_only = single;
    s.factory = [name, single, &seen](unsigned shard) -> std::unique_ptr<UdpService> {
      std::lock_guard<std::mutex> lock(seen.mu);
      seen.made_on.push_back(shard);
      return std::make_unique<Echo>(name, single);
    };
    return s;
  }
  void start() {
    for (auto& s : relay_->shards) s->start();
    started_ = true;
  }
  Echo& single() { return static_cast<Echo&>(*relay_->shards[0]->udp[1]); }

  Seen spread_, single_;
  std::unique_ptr<Relay> relay_;
  bool started_ = false;
};

// A UDP socket on 127.0.0.1 that waits (bounded) for one datagram.
struct Peer {
  int fd = socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
  Peer() {
    sockaddr_in a{};
    a.sin_family = AF_INET;
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    EXPECT_EQ(bind(fd, reinterpret_cast<sockaddr*>(&a), sizeof a), 0);
  }
  ~Peer() { close(fd); }
  void send_to(std::uint16_t port, const std::string& s) {
    sockaddr_in a{};
    a.sin_family = AF_INET;
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    a.sin_port = htons(port);
    EXPECT_EQ(sendto(fd, s.data(), s.size(), 0, reinterpret_cast<sockaddr*>(&a), sizeof a),
              static_cast<ssize_t>(s.size()));
  }
  std::string recv(int timeout_ms = 5000) {
    pollfd p{fd, POLLIN, 0};
    if (poll(&p, 1, timeout_ms) != 1) return "";
    char buf[64];
    const ssize_t n = ::recv(fd, buf, sizeof buf, 0);
    return n > 0 ? std::string(buf, static_cast<std::size_t>(n)) : "";
  }
};

TEST_F(UdpShards, Shard0OnlyServiceIsMadeAndBoundOnShard0Alone) {
  EXPECT_EQ(spread_.made_on, (std::vector<unsigned>{0, 1, 2}));
  EXPECT_EQ(single_.made_on, (std::vector<unsigned>{0}));
  EXPECT_EQ(relay_->shards[0]->udp.size(), 2u);
  for (unsigned i = 1; i < kShards; ++i) EXPECT_EQ(relay_->shards[i]->udp.size(), 1u) << "shard " << i;
  ASSERT_EQ(relay_->bound_udp_ports.size(), 2u);
  EXPECT_NE(relay_->bound_udp_ports[1], 0);
  // /debug/varz: the spread service once per shard, the single one once.
  const std::string m = relay_->metrics();
  EXPECT_EQ(count(m, "test_spread{"), kShards);
  EXPECT_EQ(count(m, "test_single{"), 1u);
  EXPECT_EQ(count(m, "test_single{shard=\"0\"}"), 1u);
}

TEST_F(UdpShards, EveryClientOfAShard0OnlyServiceReachesTheOneInstance) {
  start();
  // Many source ports: SO_REUSEPORT would hash them over every socket bound
  // to the port; with one socket they all reach shard 0's instance.
  constexpr int kPeers = 48;
  std::vector<std::unique_ptr<Peer>> peers;
  for (int i = 0; i < kPeers; ++i) {
    peers.push_back(std::make_unique<Peer>());
    peers.back()->send_to(relay_->bound_udp_ports[1], "hi" + std::to_string(i));
  }
  for (int i = 0; i < kPeers; ++i) EXPECT_EQ(peers[static_cast<std::size_t>(i)]->recv(), "hi" + std::to_string(i));
  EXPECT_EQ(single().got.load(), static_cast<std::uint64_t>(kPeers));
  // The spread service still answers, from whichever shard got it.
  Peer p;
  p.send_to(relay_->bound_udp_ports[0], "spread");
  EXPECT_EQ(p.recv(), "spread");
  // Ticks reach the service on shard 0 (a bounded wait for ~2 ticks).
  for (int i = 0; i < 100 && single().ticks.load() < 2; ++i)
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
  EXPECT_GE(single().ticks.load(), 2u);
}

TEST_F(UdpShards, EventDescriptorWakesTheServiceOnItsShard) {
  start();
  Peer p;
  p.send_to(relay_->bound_udp_ports[1], "first");
  ASSERT_EQ(p.recv(), "first");
  for (int round = 0; round < 3; ++round) {
    const std::uint64_t one = 1;
    ASSERT_EQ(write(single().efd(), &one, sizeof one), static_cast<ssize_t>(sizeof one));
    // From the service's own socket (the one p sent to), not the other one.
    EXPECT_EQ(p.recv(), "event") << "round " << round;
  }
}

}  // namespace
}  // namespace moongate::relay
