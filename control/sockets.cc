// Socket chores; sockets.h.
#include "control/sockets.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include <cerrno>
#include <cstdint>
#include <cstdlib>
#include <cstring>

namespace moongate::control {
namespace {
std::string errno_text() { return std::strerror(errno); }
}  // namespace

bool unix_socket_alive(const std::string& path) {
  sockaddr_un a{};
  if (path.size() >= sizeof a.sun_path) return false;
  a.sun_family = AF_UNIX;
  std::memcpy(a.sun_path, path.c_str(), path.size() + 1);
  const int probe = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (probe < 0) return false;
  const bool alive = connect(probe, reinterpret_cast<sockaddr*>(&a), sizeof a) == 0;
  close(probe);
  return alive;
}

int listen_unix(const std::string& path, std::string& error) {
  sockaddr_un a{};
  if (path.size() >= sizeof a.sun_path) {
    error = path + ": path too long";
    return -1;
  }
  const auto slash = path.rfind('/');
  if (slash != std::string::npos && slash > 0) mkdir(path.substr(0, slash).c_str(), 0755);
  a.sun_family = AF_UNIX;
  std::memcpy(a.sun_path, path.c_str(), path.size() + 1);
  const int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
  if (fd < 0) {
    error = "socket: " + errno_text();
    return -1;
  }
  // A socket left by a crashed predecessor is replaced; one that still
  // answers belongs to a running instance, which keeps it.
  if (unix_socket_alive(path)) {
    error = path + " is served by another running process (a second moongate-control for this interface?)";
    close(fd);
    return -1;
  }
  unlink(path.c_str());
  const mode_t old = umask(0077);
  const int rc = bind(fd, reinterpret_cast<sockaddr*>(&a), sizeof a);
  umask(old);
  if (rc != 0 || listen(fd, 64) != 0) {
    error = "cannot listen on " + path + ": " + errno_text();
    close(fd);
    return -1;
  }
  return fd;
}

int listen_tcp(const std::string& host_port, std::string& error) {
  std::string host = host_port;
  const auto colon = host_port.rfind(':');
  if (colon == std::string::npos) {
    error = host_port + ": expected host:port";
    return -1;
  }
  host = host_port.substr(0, colon);
  const int port = std::atoi(host_port.c_str() + colon + 1);
  if (port <= 0 || port > 65535) {
    error = host_port + ": bad port";
    return -1;
  }
  if (host.size() >= 2 && host.front() == '[') host = host.substr(1, host.size() - 2);
  sockaddr_storage ss{};
  socklen_t len = 0;
  auto* a4 = reinterpret_cast<sockaddr_in*>(&ss);
  auto* a6 = reinterpret_cast<sockaddr_in6*>(&ss);
  if (inet_pton(AF_INET, host.c_str(), &a4->sin_addr) == 1) {
    a4->sin_family = AF_INET;
    a4->sin_port = htons(static_cast<std::uint16_t>(port));
    len = sizeof *a4;
  } else if (inet_pton(AF_INET6, host.c_str(), &a6->sin6_addr) == 1) {
    a6->sin6_family = AF_INET6;
    a6->sin6_port = htons(static_cast<std::uint16_t>(port));
    len = sizeof *a6;
  } else {
    error = host_port + ": not an IP address";
    return -1;
  }
  const int fd = socket(ss.ss_family, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
  if (fd < 0) {
    error = "socket: " + errno_text();
    return -1;
  }
  const int one = 1;
  setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
  if (bind(fd, reinterpret_cast<sockaddr*>(&ss), len) != 0 || listen(fd, 64) != 0) {
    error = "cannot listen on " + host_port + ": " + errno_text();
    close(fd);
    return -1;
  }
  return fd;
}

std::string unix_request(const std::string& path, const std::string& request, const std::string& until,
                         std::string& error) {
  sockaddr_un a{};
  if (path.size() >= sizeof a.sun_path) {
    error = path + ": path too long";
    return {};
  }
  a.sun_family = AF_UNIX;
  std::memcpy(a.sun_path, path.c_str(), path.size() + 1);
  const int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (fd < 0 || connect(fd, reinterpret_cast<sockaddr*>(&a), sizeof a) != 0) {
    error = "cannot connect to " + path + ": " + errno_text() + " (is moongate-control running?)";
    if (fd >= 0) close(fd);
    return {};
  }
  std::size_t off = 0;
  while (off < request.size()) {
    const ssize_t n = write(fd, request.data() + off, request.size() - off);
    if (n <= 0) {
      error = "write to " + path + ": " + errno_text();
      close(fd);
      return {};
    }
    off += static_cast<std::size_t>(n);
  }
  std::string out;
  char buf[65536];
  for (;;) {
    const ssize_t n = read(fd, buf, sizeof buf);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) break;
    out.append(buf, static_cast<std::size_t>(n));
    if (!until.empty() && out.size() >= until.size() && out.compare(out.size() - until.size(), until.size(), until) == 0)
      break;
  }
  close(fd);
  return out;
}

}  // namespace moongate::control
