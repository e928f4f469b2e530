// listen_unix replaces a stale socket file but never one a running process
// still serves (a second moongate-control for the same interface).
#include "control/sockets.h"

#include <gtest/gtest.h>

#include <sys/socket.h>
#include <unistd.h>

#include <filesystem>

namespace moongate::control {
namespace {

TEST(Sockets, AStaleSocketIsReplacedALiveOneIsKept) {
  const std::string path =
      (std::filesystem::temp_directory_path() / ("mg-sock-" + std::to_string(getpid()) + ".sock")).string();
  std::string err;
  const int first = listen_unix(path, err);
  ASSERT_GE(first, 0) << err;
  EXPECT_TRUE(unix_socket_alive(path));
  const int second = listen_unix(path, err);
  EXPECT_LT(second, 0);
  EXPECT_NE(err.find("served by another running process"), std::string::npos) << err;
  EXPECT_TRUE(unix_socket_alive(path));  // the first still has it
  close(first);                          // "crashes": the file stays, nobody listens
  EXPECT_TRUE(std::filesystem::exists(path));
  EXPECT_FALSE(unix_socket_alive(path));
  err.clear();
  const int third = listen_unix(path, err);
  EXPECT_GE(third, 0) << err;
  EXPECT_TRUE(unix_socket_alive(path));
  close(third);
  unlink(path.c_str());
}

}  // namespace
}  // namespace moongate::control
