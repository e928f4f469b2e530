// A UDP service hosted by the relay's shards: a datagram, its source and
// `now` in, datagrams out. STUN is one; a ZeroTier moon can be another.
//
// Each shard owns one socket per service (SO_REUSEPORT spreads datagrams
// over the shards) and one instance made by the service's factory, so an
// instance is only ever called from one thread and needs no locks. A
// service with state shared by all its clients (the ZeroTier moon's peer
// table) sets shard0_only: then shard 0 alone binds it and calls the
// factory, and the other shards have no socket and no instance for it. Replies
// go through UdpOut, which the shard turns into io_uring sendmsg calls.
//
// To host a service: implement UdpService, and add a UdpServiceSpec (name,
// port, factory) to Options::udp_services before the shards start
// (relay/main.cc adds STUN this way).
#pragma once

#include <netinet/in.h>
#include <sys/socket.h>

#include <cstdint>
#include <functional>
#include <memory>
#include <span>
#include <string>

namespace moongate::relay {

class UdpOut {
 public:
  virtual ~UdpOut() = default;
  // Queues a datagram to `to`; false when the shard's send slots are full
  // (the datagram is dropped and counted).
  virtual bool send(std::span<const std::uint8_t> datagram, const sockaddr_storage& to,
                    socklen_t to_len) = 0;
};

class UdpService {
 public:
  virtual ~UdpService() = default;
  virtual void on_datagram(std::span<const std::uint8_t> datagram, const sockaddr_storage& from,
                           socklen_t from_len, std::uint64_t now, UdpOut& out) = 0;
  // Called about every 100 ms.
  virtual void on_tick(std::uint64_t /*now*/, UdpOut& /*out*/) {}
  // A descriptor the shard polls for the service (e.g. a worker thread's
  // eventfd); on_event runs on the shard's thread when it is readable
  // (the service clears it). -1 = none.
  virtual int event_fd() const { return -1; }
  virtual void on_event(std::uint64_t /*now*/, UdpOut& /*out*/) {}
  // Prometheus text lines for /debug/varz (summed by name across shards is
  // the reader's job; prefix names with the service).
  virtual void metrics(std::string& /*out*/, unsigned /*shard*/) const {}
};

struct UdpServiceSpec {
  std::string name;
  std::string bind;   // address to bind, "" = all (IPv6 dual-stack)
  std::uint16_t port = 0;  // 0 = ephemeral (tests); the bound port is logged
  bool shard0_only = false;  // one instance, on shard 0 (state shared by all clients)
  std::function<std::unique_ptr<UdpService>(unsigned shard)> factory;
};

// Whether `shard` binds the service and has an instance of it.
inline bool binds_on_shard(const UdpServiceSpec& spec, unsigned shard) { return !spec.shard0_only || shard == 0; }

}  // namespace moongate::relay
