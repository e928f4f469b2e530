// What a connection accepted by a shard inherits from the shard's listener,
// and the --conn-table flag.
//
// The shards accept into io_uring's registered-file table, and a direct
// descriptor cannot be passed to setsockopt(): TCP_NODELAY has to come from
// the listener. Linux copies it into the accepted socket (the listener's
// tcp_sock is cloned); this test shows it rather than assumes it, through
// an io_uring accept as the shards do (an ordinary descriptor here, so the
// option can be read back: the direct variant runs the same kernel accept
// and differs only in where the new file is installed).
#include <gtest/gtest.h>
#include <arpa/inet.h>
#include <liburing.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sys/socket.h>
#include <unistd.h>

#include <string>

#include "relay/options.h"
#include "relay/shard.h"

namespace moongate::relay {
namespace {

int nodelay(int fd) {
  int v = -1;
  socklen_t len = sizeof v;
  EXPECT_EQ(getsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &v, &len), 0);
  return v;
}

// Connects to `listener` and accepts through io_uring; the accepted descriptor.
int connect_and_accept(int listener, int& client) {
  sockaddr_in sa{};
  socklen_t len = sizeof sa;
  EXPECT_EQ(getsockname(listener, reinterpret_cast<sockaddr*>(&sa), &len), 0);
  client = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  EXPECT_EQ(connect(client, reinterpret_cast<sockaddr*>(&sa), sizeof sa), 0);  // the backlog completes it
  io_uring ring;
  EXPECT_EQ(io_uring_queue_init(4, &ring, 0), 0);
  io_uring_sqe* s = io_uring_get_sqe(&ring);
  io_uring_prep_accept(s, listener, nullptr, nullptr, SOCK_CLOEXEC);
  io_uring_submit(&ring);
  io_uring_cqe* cqe = nullptr;
  EXPECT_EQ(io_uring_wait_cqe(&ring, &cqe), 0);
  const int fd = cqe ? cqe->res : -1;
  io_uring_queue_exit(&ring);
  return fd;
}

TEST(Listener, AcceptedSocketsInheritNoDelay) {
  std::string error;
  const int l = bind_socket(SOCK_STREAM, "127.0.0.1", 0, error);
  ASSERT_GE(l, 0) << error;
  EXPECT_EQ(nodelay(l), 1);
  int client = -1;
  const int fd = connect_and_accept(l, client);
  ASSERT_GE(fd, 0) << std::strerror(-fd);
  EXPECT_NE(nodelay(fd), 0);

  // The control: a listener without the option gives sockets without it,
  // so the 1 above was copied from the listener, not a default.
  const int plain = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  sockaddr_in sa{};
  sa.sin_family = AF_INET;
  sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  ASSERT_EQ(bind(plain, reinterpret_cast<sockaddr*>(&sa), sizeof sa), 0);
  ASSERT_EQ(listen(plain, 4), 0);
  int client2 = -1;
  const int fd2 = connect_and_accept(plain, client2);
  ASSERT_GE(fd2, 0);
  EXPECT_EQ(nodelay(fd2), 0);
  for (int x : {l, client, fd, plain, client2, fd2}) ::close(x);
}

TEST(Options, ConnTable) {
  Options o;
  std::string err;
  EXPECT_EQ(o.conn_table, -1);  // the default: kDefaultConnTable, capped at RLIMIT_NOFILE
  char a0[] = "moongate-relay", a1[] = "--plain", a2[] = "--conn-table", a3[] = "0";
  char* argv[] = {a0, a1, a2, a3};
  ASSERT_TRUE(parse_options(4, argv, o, err)) << err;
  EXPECT_EQ(o.conn_table, 0);
  char big[] = "1048577";
  argv[3] = big;
  Options too;
  EXPECT_FALSE(parse_options(4, argv, too, err));
  EXPECT_EQ(err, "--conn-table: want 0..1048576, got 1048577");
  Options y;
  ASSERT_TRUE(load_relay_yaml("relay:\n  plain: true\n  conn_table: 20000\n", "r.yaml", y, err)) << err;
  EXPECT_EQ(y.conn_table, 20000);
  EXPECT_FALSE(load_relay_yaml("relay:\n  conn-table: -2\n", "r.yaml", too, err));
  EXPECT_EQ(err, "r.yaml:2:15: relay.conn-table: want 0..1048576, got -2");
}

}  // namespace
}  // namespace moongate::relay
