// moongate-control: owns the configuration and the netmap, publishes it to
// the data plane through shared memory, and serves operators.
//
//   moongate-control --config FILE [--state-dir DIR] [--metrics HOST:PORT]
//
// 1. Load the YAML (config/); the netmap is its key, port, peers and
//    routes, or the saved netmap if that is newer (controller.h).
// 2. Create or re-open /dev/shm/moongate-<interface> and publish.
// 3. Serve, in one poll loop:
//      /var/run/wireguard/<interface>.sock   the WireGuard UAPI (stock `wg`)
//      /run/moongate/<interface>.ctl         moongatectl (status, reload...)
//      HOST:PORT (default 127.0.0.1:9586)    GET /metrics, Prometheus text
//    and every 100 ms drain the data plane's events and beat the heartbeat.
//    SIGHUP, or the YAML changing on disk (inotify), reloads it; a file with
//    errors is reported and changes nothing. SIGINT/SIGTERM stop the process;
//    the data plane keeps forwarding with the last netmap.
#include <getopt.h>
#include <poll.h>
#include <signal.h>
#include <sys/inotify.h>
#include <sys/signalfd.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include <cerrno>
#include <cstdio>
#include <cstring>
#include <map>
#include <string>
#include <vector>

#include "config/config.h"
#include "config/key.h"
#include "control/controller.h"
#include "control/sockets.h"

namespace {

using namespace moongate;

std::uint64_t clock_ns(clockid_t id) {
  timespec ts{};
  clock_gettime(id, &ts);
  return static_cast<std::uint64_t>(ts.tv_sec) * 1'000'000'000ULL + static_cast<std::uint64_t>(ts.tv_nsec);
}

void log(const std::string& s) {
  std::fprintf(stderr, "moongate-control: %s\n", s.c_str());
  std::fflush(stderr);
}

enum class Kind { kUapi, kCtl, kHttp };

struct Conn {
  Kind kind;
  std::string in;
  std::string out;
  std::size_t sent = 0;
  bool close_after = false;
};

// Requests larger than this are refused: `wg syncconf` with 100 000 peers
// stays well under it.
constexpr std::size_t kMaxRequest = 64u << 20;

class Server {
 public:
  Server(control::Controller& c, std::string config_path) : c_(c), config_path_(std::move(config_path)) {}

  // Returns when SIGINT/SIGTERM arrives.
  int run(int uapi_fd, int ctl_fd, int http_fd, int sig_fd, int ino_fd) {
    listeners_ = {{uapi_fd, Kind::kUapi}, {ctl_fd, Kind::kCtl}, {http_fd, Kind::kHttp}};
    std::uint64_t next_poll = 0;
    for (;;) {
      std::vector<pollfd> fds;
      for (const auto& [fd, kind] : listeners_)
        if (fd >= 0) fds.push_back({fd, POLLIN, 0});
      fds.push_back({sig_fd, POLLIN, 0});
      if (ino_fd >= 0) fds.push_back({ino_fd, POLLIN, 0});
      for (const auto& [fd, conn] : conns_)
        fds.push_back({fd, static_cast<short>(conn.out.size() > conn.sent ? POLLOUT : POLLIN), 0});
      const int n = poll(fds.data(), fds.size(), 100);
      if (n < 0 && errno != EINTR) {
        log(std::string("poll: ") + std::strerror(errno));
        return 1;
      }
      const std::uint64_t now = clock_ns(CLOCK_MONOTONIC);
      if (now >= next_poll) {
        c_.poll_events(now);
        next_poll = now + 100'000'000;
      }
      for (const pollfd& p : fds) {
        if (p.revents == 0) continue;
        if (p.fd == sig_fd) {
          signalfd_siginfo si{};
          while (read(sig_fd, &si, sizeof si) == sizeof si) {
            if (si.ssi_signo == SIGHUP) {
              reload("SIGHUP");
            } else {
              log("stopping; the data plane keeps forwarding with netmap generation " +
                  std::to_string(c_.segment().published_generation()));
              return 0;
            }
          }
        } else if (p.fd == ino_fd) {
          on_inotify(ino_fd);
        } else if (auto l = listeners_.find(p.fd); l != listeners_.end()) {
          accept_all(p.fd, l->second);
        } else {
          service(p.fd);
        }
      }
    }
  }

 private:
  void reload(const char* why) {
    const std::string err = c_.reload();
    if (err.empty())
      log(std::string(why) + ": configuration reloaded, netmap generation " +
          std::to_string(c_.segment().published_generation()));
    else
      log(std::string(why) + ": configuration NOT reloaded, the running netmap stays:\n" + err);
  }

  void on_inotify(int fd) {
    alignas(inotify_event) char buf[4096];
    bool ours = false;
    const std::string base = config_path_.substr(config_path_.rfind('/') + 1);
    for (ssize_t n; (n = read(fd, buf, sizeof buf)) > 0;) {
      for (char* p = buf; p < buf + n;) {
        const auto* e = reinterpret_cast<const inotify_event*>(p);
        if (e->len > 0 && base == e->name) ours = true;
        p += sizeof(inotify_event) + e->len;
      }
    }
    if (ours) reload("configuration file changed");
  }

  void accept_all(int lfd, Kind kind) {
    for (;;) {
      const int fd = accept4(lfd, nullptr, nullptr, SOCK_NONBLOCK | SOCK_CLOEXEC);
      if (fd < 0) return;
      conns_.emplace(fd, Conn{kind, {}, {}, 0, false});
    }
  }

  void drop(int fd) {
    close(fd);
    conns_.erase(fd);
  }

  void service(int fd) {
    Conn& c = conns_.at(fd);
    if (c.out.size() > c.sent) {
      const ssize_t n = send(fd, c.out.data() + c.sent, c.out.size() - c.sent, MSG_NOSIGNAL);
      if (n < 0 && errno != EAGAIN) return drop(fd);
      if (n > 0) c.sent += static_cast<std::size_t>(n);
      if (c.sent == c.out.size()) {
        c.out.clear();
        c.sent = 0;
        if (c.close_after) return drop(fd);
        handle(fd, c);  // a pipelined request may be waiting
      }
      return;
    }
    char buf[65536];
    const ssize_t n = read(fd, buf, sizeof buf);
    if (n == 0 || (n < 0 && errno != EAGAIN && errno != EINTR)) return drop(fd);
    if (n > 0) c.in.append(buf, static_cast<std::size_t>(n));
    if (c.in.size() > kMaxRequest) return drop(fd);
    handle(fd, c);
  }

  // Answers a complete request in c.in, if there is one.
  void handle(int, Conn& c) {
    if (c.kind == Kind::kUapi) {
      const auto end = c.in.find("\n\n");
      if (end == std::string::npos) return;
      const std::string req = c.in.substr(0, end + 2);
      c.in.erase(0, end + 2);
      control::UapiResult r = c_.uapi(req);
      if (!r.error.empty()) log("uapi: " + r.error);
      c.out = r.response;
      return;
    }
    if (c.kind == Kind::kCtl) {
      const auto end = c.in.find('\n');
      if (end == std::string::npos) return;
      const std::string cmd = c.in.substr(0, end);
      c.out = ctl(cmd);
      c.close_after = true;
      return;
    }
    const auto end = c.in.find("\r\n\r\n");
    if (end == std::string::npos) return;
    const bool metrics = c.in.rfind("GET /metrics ", 0) == 0 || c.in.rfind("GET /metrics?", 0) == 0;
    const std::string body = metrics ? c_.metrics_text() : "not found: try /metrics\n";
    c.out = std::string(metrics ? "HTTP/1.1 200 OK\r\n" : "HTTP/1.1 404 Not Found\r\n") +
            "Content-Type: text/plain; version=0.0.4; charset=utf-8\r\nContent-Length: " +
            std::to_string(body.size()) + "\r\nConnection: close\r\n\r\n" + body;
    c.close_after = true;
  }

  std::string ctl(const std::string& cmd) {
    const std::uint64_t wall = clock_ns(CLOCK_REALTIME);
    if (cmd == "status") return c_.status_text(wall);
    if (cmd == "status json") return c_.status_json(wall);
    if (cmd == "metrics") return c_.metrics_text();
    if (cmd == "netmap") return c_.netmap_text();
    if (cmd == "reload") {
      const std::string err = c_.reload();
      if (err.empty()) return "ok: netmap generation " + std::to_string(c_.segment().published_generation()) + "\n";
      log("reload refused:\n" + err);
      return "error: configuration NOT reloaded, the running netmap stays:\n" + err;
    }
    return "error: unknown command '" + cmd + "' (status, status json, metrics, netmap, reload)\n";
  }

  control::Controller& c_;
  std::string config_path_;
  std::map<int, Kind> listeners_;
  std::map<int, Conn> conns_;
};

void usage(const char* prog) {
  std::fprintf(stderr,
               "usage: %s --config FILE [--state-dir DIR] [--metrics HOST:PORT] [--check]\n"
               "  --config FILE       the appliance configuration (docs/config.md)\n"
               "  --state-dir DIR     where changes made through `wg` are saved (/var/lib/moongate)\n"
               "  --metrics HOST:PORT Prometheus endpoint (127.0.0.1:9586; \"off\" to disable)\n"
               "  --check             validate the configuration and exit\n",
               prog);
}

}  // namespace

int main(int argc, char** argv) {
  control::Options opts;
  std::string metrics = "127.0.0.1:9586";
  bool check = false;
  static const option longopts[] = {{"config", required_argument, nullptr, 'c'},
                                    {"state-dir", required_argument, nullptr, 's'},
                                    {"metrics", required_argument, nullptr, 'm'},
                                    {"check", no_argument, nullptr, 'k'},
                                    {"help", no_argument, nullptr, 'h'},
                                    {nullptr, 0, nullptr, 0}};
  for (int ch; (ch = getopt_long(argc, argv, "c:s:m:kh", longopts, nullptr)) != -1;) {
    switch (ch) {
      case 'c': opts.config_path = optarg; break;
      case 's': opts.state_dir = optarg; break;
      case 'm': metrics = optarg; break;
      case 'k': check = true; break;
      case 'h': usage(argv[0]); return 0;
      default: usage(argv[0]); return 2;
    }
  }
  if (opts.config_path.empty()) {
    usage(argv[0]);
    return 2;
  }
  if (check) {
    const config::Result r = config::load_file(opts.config_path);
    if (!r.ok()) {
      std::fprintf(stderr, "%s", r.error_text().c_str());
      return 1;
    }
    std::printf("%s: OK (interface %s)\n", opts.config_path.c_str(), r.config().interface.name.c_str());
    return 0;
  }

  sigset_t set;
  sigemptyset(&set);
  for (int s : {SIGHUP, SIGINT, SIGTERM}) sigaddset(&set, s);
  sigprocmask(SIG_BLOCK, &set, nullptr);
  const int sig_fd = signalfd(-1, &set, SFD_NONBLOCK | SFD_CLOEXEC);
  signal(SIGPIPE, SIG_IGN);

  // One control process per interface: a second one must not publish its
  // netmap over the running one's before finding the sockets taken.
  if (const config::Result pre = config::load_file(opts.config_path); pre.ok()) {
    const std::string name = pre.config().interface.name;
    for (const std::string& p : {"/var/run/wireguard/" + name + ".sock", "/run/moongate/" + name + ".ctl"})
      if (control::unix_socket_alive(p)) {
        std::fprintf(stderr, "moongate-control: %s is served by another running process: one moongate-control "
                             "per interface\n", p.c_str());
        return 1;
      }
  }
  control::Controller c;
  if (std::string err = c.start(opts); !err.empty()) {
    std::fprintf(stderr, "moongate-control: %s%s", err.c_str(), err.back() == '\n' ? "" : "\n");
    return 1;
  }
  const std::string ifname = c.config().interface.name;
  const std::string uapi_path = "/var/run/wireguard/" + ifname + ".sock";
  const std::string ctl_path = "/run/moongate/" + ifname + ".ctl";
  std::string err;
  const int uapi_fd = control::listen_unix(uapi_path, err);
  if (uapi_fd < 0) return log(err), 1;
  const int ctl_fd = control::listen_unix(ctl_path, err);
  if (ctl_fd < 0) return log(err), 1;
  int http_fd = -1;
  if (metrics != "off" && (http_fd = control::listen_tcp(metrics, err)) < 0) return log(err), 1;
  // Watch the directory: editors replace files by renaming.
  const int ino_fd = inotify_init1(IN_NONBLOCK | IN_CLOEXEC);
  const auto slash = opts.config_path.rfind('/');
  const std::string dir = slash == std::string::npos ? "." : opts.config_path.substr(0, slash);
  if (ino_fd >= 0) inotify_add_watch(ino_fd, dir.c_str(), IN_CLOSE_WRITE | IN_MOVED_TO);

  log("interface " + ifname + ": " + std::to_string(c.netmap().peers.size()) + " peers, netmap generation " +
      std::to_string(c.segment().published_generation()) + " in /dev/shm/" + c.segment().name() + "; uapi " +
      uapi_path + ", ctl " + ctl_path + (http_fd >= 0 ? ", metrics http://" + metrics + "/metrics" : "") +
      "; changes saved to " + c.state_file());
  Server server(c, opts.config_path);
  const int rc = server.run(uapi_fd, ctl_fd, http_fd, sig_fd, ino_fd);
  unlink(uapi_path.c_str());
  unlink(ctl_path.c_str());
  return rc;
}
