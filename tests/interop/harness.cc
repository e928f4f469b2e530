// moongate-wg-harness: the proof harness. A minimal userspace WireGuard
// endpoint built on moongate::testing::Transport (the protocol core + the
// IPsec-MB AEAD burst path) over a kernel UDP socket and a kernel TUN device,
// so the core can talk to stock peers (wireguard-go) before the DPDK data
// plane exists. It is for proofs, not speed: every packet is copied.
//
// Flow:
//   start-up   parse the CLI, read keys, open TUN (IFF_TUN|IFF_NO_PI), bind
//              a dual-stack UDP socket, listen on the control socket, block
//              SIGINT/SIGTERM into a signalfd.
//   loop       poll() on TUN, UDP, control listener/clients and the signalfd
//              with a timeout that ends at the earliest peer timer deadline
//              (at most 100 ms), then:
//                TUN  -> longest-prefix match of the inner destination over
//                        the peers' allowed IPs -> Transport::send()
//                UDP  -> recvmmsg() batch -> Transport::receive() -> inner
//                        packet checked (IP header, source in the sending
//                        peer's allowed IPs) -> write to TUN
//                ctl  -> "stats" (one JSON line), "initiate PUBKEY", "quit"
//              and Transport::tick(now) after every wakeup.
//   shutdown   on a signal or "quit": close everything, unlink the control
//              socket.
//
// The harness never configures addresses: the test or the demo script does
// that with `ip` once the TUN exists (it exists when "ready" is printed).
#include <arpa/inet.h>
#include <fcntl.h>
#include <getopt.h>
#include <linux/if.h>
#include <linux/if_tun.h>
#include <netinet/in.h>
#include <poll.h>
#include <signal.h>
#include <sodium.h>
#include <sys/ioctl.h>
#include <sys/signalfd.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

#include <algorithm>
#include <array>
#include <cctype>
#include <cerrno>
#include <cinttypes>
#include <cstdarg>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <exception>
#include <memory>
#include <optional>
#include <span>
#include <string>
#include <vector>

#include "crypto/aead_burst.h"
#include "crypto/secret.h"
#include "crypto/x25519.h"
#include "tests/support/transport.h"
#include "wireguard/clock.h"
#include "wireguard/device.h"
#include "wireguard/endpoint.h"
#include "wireguard/messages.h"
#include "wireguard/peer.h"

namespace {

using moongate::crypto::AeadArch;
using moongate::crypto::PublicKey;
using moongate::crypto::SecretKey;
using moongate::testing::Transport;
namespace wg = moongate::wg;

constexpr const char* kProg = "moongate-wg-harness";
constexpr int kMaxPollMs = 100;
constexpr unsigned kUdpBatch = 32;
constexpr unsigned kTunBatch = 64;
// Rounds of batches per wakeup before going back to poll(): keeps TUN, UDP
// and the control socket served fairly under a flood.
constexpr unsigned kMaxRoundsPerWakeup = 8;
constexpr std::size_t kBufLen = 65536;

void logf(const char* fmt, ...) __attribute__((format(printf, 1, 2)));
void logf(const char* fmt, ...) {
  std::fprintf(stderr, "%s: ", kProg);
  va_list ap;
  va_start(ap, fmt);
  std::vfprintf(stderr, fmt, ap);
  va_end(ap);
  std::fputc('\n', stderr);
}

// ---------------------------------------------------------------- time

wg::Instant now_instant() {
  timespec mono{};
  timespec wall{};
  // Neither call can fail with valid clock ids and pointers; checked anyway
  // so a broken environment fails loudly instead of feeding the core zeros.
  if (clock_gettime(CLOCK_MONOTONIC, &mono) != 0 || clock_gettime(CLOCK_REALTIME, &wall) != 0) {
    logf("clock_gettime: %s", std::strerror(errno));
    std::abort();
  }
  wg::Instant t;
  t.mono = static_cast<wg::Nanos>(mono.tv_sec) * wg::kSecond + static_cast<wg::Nanos>(mono.tv_nsec);
  t.wall = static_cast<std::uint64_t>(wall.tv_sec) * wg::kSecond +
           static_cast<std::uint64_t>(wall.tv_nsec);
  return t;
}

// ---------------------------------------------------------------- keys

std::string b64_encode(const std::uint8_t* data, std::size_t len) {
  std::string out(sodium_base64_ENCODED_LEN(len, sodium_base64_VARIANT_ORIGINAL), '\0');
  sodium_bin2base64(out.data(), out.size(), data, len, sodium_base64_VARIANT_ORIGINAL);
  out.resize(std::strlen(out.c_str()));
  return out;
}

bool b64_decode32(const std::string& text, std::array<std::uint8_t, 32>& out) {
  std::size_t bin_len = 0;
  const char* end = nullptr;
  if (sodium_base642bin(out.data(), out.size(), text.data(), text.size(), " \t\r\n", &bin_len,
                        &end, sodium_base64_VARIANT_ORIGINAL) != 0) {
    return false;
  }
  // Trailing garbage after the padding is an error too.
  return bin_len == 32 && end == text.data() + text.size();
}

std::optional<std::string> read_small_file(const std::string& path) {
  int fd = open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) {
    logf("open %s: %s", path.c_str(), std::strerror(errno));
    return std::nullopt;
  }
  std::string text;
  char buf[256];
  for (;;) {
    ssize_t n = read(fd, buf, sizeof buf);
    if (n < 0) {
      if (errno == EINTR) continue;
      logf("read %s: %s", path.c_str(), std::strerror(errno));
      close(fd);
      return std::nullopt;
    }
    if (n == 0) break;
    text.append(buf, static_cast<std::size_t>(n));
    if (text.size() > 4096) {
      logf("%s: too long for a key file", path.c_str());
      close(fd);
      return std::nullopt;
    }
  }
  close(fd);
  // Keys are written with a trailing newline; strip surrounding whitespace.
  auto not_space = [](unsigned char c) { return !std::isspace(c); };
  text.erase(text.begin(), std::find_if(text.begin(), text.end(), not_space));
  text.erase(std::find_if(text.rbegin(), text.rend(), not_space).base(), text.end());
  return text;
}

bool read_key_file(const std::string& path, std::array<std::uint8_t, 32>& out) {
  auto text = read_small_file(path);
  if (!text) return false;
  if (!b64_decode32(*text, out)) {
    logf("%s: not a base64 32-byte key", path.c_str());
    return false;
  }
  return true;
}

// ---------------------------------------------------------------- addresses

struct Prefix {
  std::uint8_t family = 0;  // 4 or 6
  std::uint8_t bits = 0;
  std::uint8_t addr[16] = {};
};

bool parse_endpoint(const std::string& s, wg::Endpoint& ep) {
  std::string host;
  std::string port;
  if (!s.empty() && s[0] == '[') {
    auto close_br = s.find(']');
    if (close_br == std::string::npos || close_br + 1 >= s.size() || s[close_br + 1] != ':') {
      return false;
    }
    host = s.substr(1, close_br - 1);
    port = s.substr(close_br + 2);
  } else {
    auto colon = s.rfind(':');
    if (colon == std::string::npos) return false;
    host = s.substr(0, colon);
    port = s.substr(colon + 1);
  }
  char* end = nullptr;
  errno = 0;
  unsigned long p = std::strtoul(port.c_str(), &end, 10);
  if (port.empty() || *end != '\0' || errno != 0 || p == 0 || p > 65535) return false;
  std::uint8_t a[16];
  if (inet_pton(AF_INET, host.c_str(), a) == 1) {
    ep = wg::Endpoint::v4(a, static_cast<std::uint16_t>(p));
    return true;
  }
  if (inet_pton(AF_INET6, host.c_str(), a) == 1) {
    ep = wg::Endpoint::v6(a, static_cast<std::uint16_t>(p));
    return true;
  }
  return false;
}

void mask_prefix(Prefix& p) {
  const unsigned total = p.family == 4 ? 32 : 128;
  for (unsigned bit = p.bits; bit < total; ++bit) {
    p.addr[bit / 8] = static_cast<std::uint8_t>(p.addr[bit / 8] & ~(0x80u >> (bit % 8)));
  }
}

bool parse_cidr(const std::string& s, Prefix& out) {
  auto slash = s.find('/');
  std::string host = s.substr(0, slash);
  Prefix p;
  if (inet_pton(AF_INET, host.c_str(), p.addr) == 1) {
    p.family = 4;
    p.bits = 32;
  } else if (inet_pton(AF_INET6, host.c_str(), p.addr) == 1) {
    p.family = 6;
    p.bits = 128;
  } else {
    return false;
  }
  if (slash != std::string::npos) {
    std::string len = s.substr(slash + 1);
    char* end = nullptr;
    errno = 0;
    unsigned long b = std::strtoul(len.c_str(), &end, 10);
    if (len.empty() || *end != '\0' || errno != 0 || b > p.bits) return false;
    p.bits = static_cast<std::uint8_t>(b);
  }
  // As wg does: host bits are cleared, 10.0.0.1/24 means 10.0.0.0/24.
  mask_prefix(p);
  out = p;
  return true;
}

bool prefix_contains(const Prefix& p, std::uint8_t family, const std::uint8_t* addr) {
  if (p.family != family) return false;
  const unsigned full = p.bits / 8;
  if (std::memcmp(p.addr, addr, full) != 0) return false;
  const unsigned rest = p.bits % 8;
  if (rest == 0) return true;
  const auto mask = static_cast<std::uint8_t>(0xffu << (8 - rest));
  return (addr[full] & mask) == p.addr[full];
}

std::string prefix_to_string(const Prefix& p) {
  char buf[INET6_ADDRSTRLEN];
  inet_ntop(p.family == 4 ? AF_INET : AF_INET6, p.addr, buf, sizeof buf);
  return std::string(buf) + "/" + std::to_string(p.bits);
}

// Allowed IPs of all peers: longest-prefix match by linear scan over a list
// sorted by prefix length. A harness has a handful of prefixes; the data
// plane will have a real trie.
class RouteTable {
 public:
  void add(const Prefix& p, wg::Peer* peer) {
    // The same prefix given twice moves to the later peer, as in `wg set`.
    for (auto& r : routes_) {
      if (r.prefix.family == p.family && r.prefix.bits == p.bits &&
          std::memcmp(r.prefix.addr, p.addr, 16) == 0) {
        r.peer = peer;
        return;
      }
    }
    routes_.push_back({p, peer});
    std::stable_sort(routes_.begin(), routes_.end(),
                     [](const Route& a, const Route& b) { return a.prefix.bits > b.prefix.bits; });
  }
  wg::Peer* lookup(std::uint8_t family, const std::uint8_t* addr) const {
    for (const auto& r : routes_) {
      if (prefix_contains(r.prefix, family, addr)) return r.peer;
    }
    return nullptr;
  }

 private:
  struct Route {
    Prefix prefix;
    wg::Peer* peer;
  };
  std::vector<Route> routes_;
};

// Source (or destination) address of an inner IP packet, after checking
// the header is whole and trimming the WireGuard padding. Returns the
// packet's real length, or 0 when it is not a valid IP packet.
std::size_t inner_packet(const std::uint8_t* pkt, std::size_t len, bool want_source,
                         std::uint8_t& family, const std::uint8_t*& addr) {
  if (len < 1) return 0;
  const unsigned version = pkt[0] >> 4;
  if (version == 4) {
    if (len < 20) return 0;
    const std::size_t total = static_cast<std::size_t>(pkt[2]) << 8 | pkt[3];
    if (total < 20 || total > len) return 0;
    family = 4;
    addr = pkt + (want_source ? 12 : 16);
    return total;
  }
  if (version == 6) {
    if (len < 40) return 0;
    const std::size_t total = (static_cast<std::size_t>(pkt[4]) << 8 | pkt[5]) + 40;
    if (total > len) return 0;
    family = 6;
    addr = pkt + (want_source ? 8 : 24);
    return total;
  }
  return 0;
}

// ---------------------------------------------------------------- sockets

bool endpoint_to_sockaddr(const wg::Endpoint& ep, int sock_family, sockaddr_storage& ss,
                          socklen_t& sl) {
  std::memset(&ss, 0, sizeof ss);
  if (sock_family == AF_INET6) {
    sockaddr_in6 sin6{};
    sin6.sin6_family = AF_INET6;
    sin6.sin6_port = htons(ep.port);
    if (ep.family == 6) {
      std::memcpy(&sin6.sin6_addr, ep.addr, 16);
    } else if (ep.family == 4) {
      // The dual-stack socket reaches IPv4 peers through mapped addresses.
      std::uint8_t mapped[16] = {0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff};
      std::memcpy(mapped + 12, ep.addr, 4);
      std::memcpy(&sin6.sin6_addr, mapped, 16);
    } else {
      return false;
    }
    std::memcpy(&ss, &sin6, sizeof sin6);
    sl = sizeof sin6;
    return true;
  }
  if (ep.family != 4) return false;
  sockaddr_in sin{};
  sin.sin_family = AF_INET;
  sin.sin_port = htons(ep.port);
  std::memcpy(&sin.sin_addr, ep.addr, 4);
  std::memcpy(&ss, &sin, sizeof sin);
  sl = sizeof sin;
  return true;
}

wg::Endpoint sockaddr_to_endpoint(const sockaddr_storage& ss) {
  if (ss.ss_family == AF_INET6) {
    sockaddr_in6 sin6;
    std::memcpy(&sin6, &ss, sizeof sin6);
    const auto* a = reinterpret_cast<const std::uint8_t*>(&sin6.sin6_addr);
    static constexpr std::uint8_t kMappedPrefix[12] = {0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff};
    if (std::memcmp(a, kMappedPrefix, 12) == 0) return wg::Endpoint::v4(a + 12, ntohs(sin6.sin6_port));
    return wg::Endpoint::v6(a, ntohs(sin6.sin6_port));
  }
  if (ss.ss_family == AF_INET) {
    sockaddr_in sin;
    std::memcpy(&sin, &ss, sizeof sin);
    return wg::Endpoint::v4(reinterpret_cast<const std::uint8_t*>(&sin.sin_addr),
                            ntohs(sin.sin_port));
  }
  return wg::Endpoint{};
}

// Counters of what the harness itself drops (the core counts its own).
struct HarnessCounters {
  std::uint64_t no_route = 0;          // TUN packet: no peer's allowed IPs match the destination
  std::uint64_t bad_inner_packet = 0;  // decrypted plaintext is not a whole IP packet
  std::uint64_t bad_inner_source = 0;  // inner source not in the sending peer's allowed IPs
  std::uint64_t tun_read_errors = 0;
  std::uint64_t tun_write_errors = 0;
  std::uint64_t udp_send_errors = 0;
  std::uint64_t udp_recv_errors = 0;
  std::uint64_t stale_deadline_wakeups = 0;  // a timer still due right after tick()
  std::uint64_t tun_rx_packets = 0;
  std::uint64_t tun_tx_packets = 0;
  std::uint64_t udp_rx_datagrams = 0;
  std::array<std::uint64_t, wg::kDropCount> send_drops{};  // Transport::send verdicts
};

// The Wire: UDP payloads out through the kernel socket.
class UdpWire final : public moongate::testing::Wire {
 public:
  UdpWire(int fd, int family, HarnessCounters& counters)
      : fd_(fd), family_(family), counters_(counters) {}
  bool send(const wg::Endpoint& to, const std::uint8_t* data, std::size_t len) override {
    sockaddr_storage ss;
    socklen_t sl = 0;
    if (!endpoint_to_sockaddr(to, family_, ss, sl)) {
      ++counters_.udp_send_errors;
      return false;
    }
    // The socket is blocking for sends: a full send buffer waits a moment
    // instead of losing a packet; a failure is reported to the core, which
    // then does not count it as sent.
    for (;;) {
      ssize_t n = sendto(fd_, data, len, 0, reinterpret_cast<const sockaddr*>(&ss), sl);
      if (n >= 0) return true;
      if (errno == EINTR) continue;
      ++counters_.udp_send_errors;
      if (counters_.udp_send_errors <= 10) {
        logf("sendto %s: %s", to.to_string().c_str(), std::strerror(errno));
      }
      return false;
    }
  }

 private:
  int fd_;
  int family_;
  HarnessCounters& counters_;
};

// ---------------------------------------------------------------- config

struct PeerConfig {
  PublicKey public_key{};
  std::optional<wg::Endpoint> endpoint;
  std::vector<Prefix> allowed;
  std::optional<std::string> psk_file;
  std::uint16_t keepalive = 0;
};

struct Config {
  std::string private_key_file;
  std::uint16_t listen_port = 0;
  std::string tun_name;
  std::string control_path;
  std::size_t mtu = wg::kDefaultMtu;
  AeadArch arch = AeadArch::kAuto;
  std::vector<PeerConfig> peers;
};

void usage(FILE* out) {
  std::fprintf(out,
               "usage: %s --private-key FILE --tun NAME [--listen-port N] [--control PATH]\n"
               "          [--mtu N] [--aead auto|sse|avx|avx2|avx512]\n"
               "          [--peer PUBKEY [--endpoint IP:PORT|[IPv6]:PORT] [--allowed-ip CIDR]...\n"
               "                         [--preshared-key FILE] [--persistent-keepalive SECONDS]]...\n"
               "Keys are base64 as `wg genkey` writes them. Per-peer options follow their --peer.\n"
               "Without --listen-port the kernel picks a port (printed at start).\n"
               "Control socket commands: stats | initiate PUBKEY | quit\n",
               kProg);
}

bool parse_uint(const char* s, unsigned long max, unsigned long& out) {
  char* end = nullptr;
  errno = 0;
  unsigned long v = std::strtoul(s, &end, 10);
  if (*s == '\0' || *end != '\0' || errno != 0 || v > max || s[0] == '-') return false;
  out = v;
  return true;
}

// Returns 0 to run, 1 for a usage error, 2 for --help.
int parse_args(int argc, char** argv, Config& cfg) {
  enum Opt {
    kPrivateKey = 256,
    kListenPort,
    kTun,
    kControl,
    kMtu,
    kAead,
    kPeer,
    kEndpoint,
    kAllowedIp,
    kPresharedKey,
    kKeepalive,
    kHelp,
  };
  static const option kOptions[] = {
      {"private-key", required_argument, nullptr, kPrivateKey},
      {"listen-port", required_argument, nullptr, kListenPort},
      {"tun", required_argument, nullptr, kTun},
      {"control", required_argument, nullptr, kControl},
      {"mtu", required_argument, nullptr, kMtu},
      {"aead", required_argument, nullptr, kAead},
      {"peer", required_argument, nullptr, kPeer},
      {"endpoint", required_argument, nullptr, kEndpoint},
      {"allowed-ip", required_argument, nullptr, kAllowedIp},
      {"preshared-key", required_argument, nullptr, kPresharedKey},
      {"persistent-keepalive", required_argument, nullptr, kKeepalive},
      {"help", no_argument, nullptr, kHelp},
      {nullptr, 0, nullptr, 0},
  };
  // Per-peer options must follow a --peer: the order of arguments matters,
  // so stop getopt from permuting them.
  int opt;
  while ((opt = getopt_long(argc, argv, "+", kOptions, nullptr)) != -1) {
    PeerConfig* peer = cfg.peers.empty() ? nullptr : &cfg.peers.back();
    auto need_peer = [&](const char* name) {
      if (peer == nullptr) logf("--%s must follow a --peer", name);
      return peer != nullptr;
    };
    unsigned long v = 0;
    switch (opt) {
      case kPrivateKey:
        cfg.private_key_file = optarg;
        break;
      case kListenPort:
        if (!parse_uint(optarg, 65535, v)) {
          logf("bad --listen-port '%s'", optarg);
          return 1;
        }
        cfg.listen_port = static_cast<std::uint16_t>(v);
        break;
      case kTun:
        if (std::strlen(optarg) == 0 || std::strlen(optarg) >= IFNAMSIZ) {
          logf("bad --tun name '%s' (1..%d characters)", optarg, IFNAMSIZ - 1);
          return 1;
        }
        cfg.tun_name = optarg;
        break;
      case kControl:
        cfg.control_path = optarg;
        break;
      case kMtu:
        if (!parse_uint(optarg, 65535, v) || v < 576) {
          logf("bad --mtu '%s'", optarg);
          return 1;
        }
        cfg.mtu = v;
        break;
      case kAead: {
        const std::string a = optarg;
        if (a == "auto") cfg.arch = AeadArch::kAuto;
        else if (a == "sse") cfg.arch = AeadArch::kSse;
        else if (a == "avx") cfg.arch = AeadArch::kAvx;
        else if (a == "avx2") cfg.arch = AeadArch::kAvx2;
        else if (a == "avx512") cfg.arch = AeadArch::kAvx512;
        else {
          logf("bad --aead '%s'", optarg);
          return 1;
        }
        break;
      }
      case kPeer: {
        PeerConfig pc;
        if (!b64_decode32(optarg, pc.public_key)) {
          logf("bad --peer public key '%s' (base64 of 32 bytes)", optarg);
          return 1;
        }
        cfg.peers.push_back(std::move(pc));
        break;
      }
      case kEndpoint: {
        if (!need_peer("endpoint")) return 1;
        wg::Endpoint ep;
        if (!parse_endpoint(optarg, ep)) {
          logf("bad --endpoint '%s' (IPv4:PORT or [IPv6]:PORT)", optarg);
          return 1;
        }
        peer->endpoint = ep;
        break;
      }
      case kAllowedIp: {
        if (!need_peer("allowed-ip")) return 1;
        Prefix p;
        if (!parse_cidr(optarg, p)) {
          logf("bad --allowed-ip '%s'", optarg);
          return 1;
        }
        peer->allowed.push_back(p);
        break;
      }
      case kPresharedKey:
        if (!need_peer("preshared-key")) return 1;
        peer->psk_file = optarg;
        break;
      case kKeepalive:
        if (!need_peer("persistent-keepalive")) return 1;
        if (!parse_uint(optarg, 65535, v)) {
          logf("bad --persistent-keepalive '%s'", optarg);
          return 1;
        }
        peer->keepalive = static_cast<std::uint16_t>(v);
        break;
      case kHelp:
        return 2;
      default:
        return 1;
    }
  }
  if (optind != argc) {
    logf("unexpected argument '%s'", argv[optind]);
    return 1;
  }
  if (cfg.private_key_file.empty() || cfg.tun_name.empty()) {
    logf("--private-key and --tun are required");
    return 1;
  }
  return 0;
}

// ---------------------------------------------------------------- fds

class Fd {
 public:
  Fd() = default;
  explicit Fd(int fd) : fd_(fd) {}
  Fd(Fd&& o) noexcept : fd_(o.fd_) { o.fd_ = -1; }
  Fd& operator=(Fd&& o) noexcept {
    if (this != &o) {
      reset();
      fd_ = o.fd_;
      o.fd_ = -1;
    }
    return *this;
  }
  Fd(const Fd&) = delete;
  Fd& operator=(const Fd&) = delete;
  ~Fd() { reset(); }
  void reset() {
    if (fd_ >= 0) close(fd_);
    fd_ = -1;
  }
  int get() const { return fd_; }
  bool ok() const { return fd_ >= 0; }

 private:
  int fd_ = -1;
};

Fd open_tun(const std::string& name) {
  Fd fd(open("/dev/net/tun", O_RDWR | O_NONBLOCK | O_CLOEXEC));
  if (!fd.ok()) {
    logf("open /dev/net/tun: %s", std::strerror(errno));
    return Fd();
  }
  ifreq ifr{};
  ifr.ifr_flags = IFF_TUN | IFF_NO_PI;
  std::snprintf(ifr.ifr_name, IFNAMSIZ, "%s", name.c_str());
  if (ioctl(fd.get(), TUNSETIFF, &ifr) != 0) {
    logf("TUNSETIFF %s: %s", name.c_str(), std::strerror(errno));
    return Fd();
  }
  return fd;
}

void grow_buffer(int fd, int opt, int force_opt, int bytes, const char* what) {
  // SO_*BUFFORCE works as root and ignores rmem_max; fall back to the
  // capped option otherwise. A small buffer is only slower, not wrong.
  if (setsockopt(fd, SOL_SOCKET, force_opt, &bytes, sizeof bytes) == 0) return;
  if (setsockopt(fd, SOL_SOCKET, opt, &bytes, sizeof bytes) != 0) {
    logf("setsockopt %s: %s (continuing)", what, std::strerror(errno));
  }
}

Fd open_udp(std::uint16_t port, int& family) {
  family = AF_INET6;
  Fd fd(socket(AF_INET6, SOCK_DGRAM | SOCK_CLOEXEC, 0));
  if (!fd.ok() && errno == EAFNOSUPPORT) {
    family = AF_INET;
    fd = Fd(socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0));
  }
  if (!fd.ok()) {
    logf("socket(UDP): %s", std::strerror(errno));
    return Fd();
  }
  sockaddr_storage ss{};
  socklen_t sl = 0;
  if (family == AF_INET6) {
    int off = 0;
    if (setsockopt(fd.get(), IPPROTO_IPV6, IPV6_V6ONLY, &off, sizeof off) != 0) {
      logf("setsockopt IPV6_V6ONLY=0: %s", std::strerror(errno));
      return Fd();
    }
    sockaddr_in6 sin6{};
    sin6.sin6_family = AF_INET6;
    sin6.sin6_addr = in6addr_any;
    sin6.sin6_port = htons(port);
    std::memcpy(&ss, &sin6, sizeof sin6);
    sl = sizeof sin6;
  } else {
    sockaddr_in sin{};
    sin.sin_family = AF_INET;
    sin.sin_addr.s_addr = htonl(INADDR_ANY);
    sin.sin_port = htons(port);
    std::memcpy(&ss, &sin, sizeof sin);
    sl = sizeof sin;
  }
  if (bind(fd.get(), reinterpret_cast<const sockaddr*>(&ss), sl) != 0) {
    logf("bind UDP port %u: %s", static_cast<unsigned>(port), std::strerror(errno));
    return Fd();
  }
  grow_buffer(fd.get(), SO_RCVBUF, SO_RCVBUFFORCE, 4 << 20, "SO_RCVBUF");
  grow_buffer(fd.get(), SO_SNDBUF, SO_SNDBUFFORCE, 4 << 20, "SO_SNDBUF");
  return fd;
}

Fd open_control(const std::string& path) {
  sockaddr_un sun{};
  sun.sun_family = AF_UNIX;
  if (path.size() >= sizeof sun.sun_path) {
    logf("--control path too long (max %zu)", sizeof sun.sun_path - 1);
    return Fd();
  }
  std::memcpy(sun.sun_path, path.c_str(), path.size() + 1);
  Fd fd(socket(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0));
  if (!fd.ok()) {
    logf("socket(AF_UNIX): %s", std::strerror(errno));
    return Fd();
  }
  // A stale socket from a killed run would make bind fail; only a socket
  // is removed, never a regular file someone pointed us at by mistake.
  struct stat st{};
  if (lstat(path.c_str(), &st) == 0 && S_ISSOCK(st.st_mode)) unlink(path.c_str());
  if (bind(fd.get(), reinterpret_cast<const sockaddr*>(&sun), sizeof sun) != 0) {
    logf("bind %s: %s", path.c_str(), std::strerror(errno));
    return Fd();
  }
  if (listen(fd.get(), 8) != 0) {
    logf("listen %s: %s", path.c_str(), std::strerror(errno));
    unlink(path.c_str());
    return Fd();
  }
  return fd;
}

// ---------------------------------------------------------------- harness

struct PeerState {
  std::vector<Prefix> allowed;
};

struct ControlClient {
  Fd fd;
  std::string in;
};

class Harness {
 public:
  Harness(Config cfg, Fd tun, Fd udp, int udp_family, Fd control, Fd sig)
      : cfg_(std::move(cfg)),
        tun_(std::move(tun)),
        udp_(std::move(udp)),
        udp_family_(udp_family),
        control_(std::move(control)),
        sig_(std::move(sig)),
        wire_(udp_.get(), udp_family_, counters_),
        transport_(std::max<std::size_t>(cfg_.peers.size(), 1), wire_, cfg_.arch),
        rx_bufs_(kUdpBatch, std::vector<std::uint8_t>(kBufLen)),
        plain_(kBufLen),
        tun_buf_(kBufLen) {
    transport_.set_mtu(cfg_.mtu);
  }

  bool configure(const SecretKey& private_key) {
    wg::Device& dev = transport_.device();
    dev.set_private_key(private_key);
    const wg::Instant now = now_instant();
    peer_states_.reserve(cfg_.peers.size());
    for (const auto& pc : cfg_.peers) {
      wg::Peer* peer = dev.add_peer(pc.public_key);
      if (peer == nullptr) {
        logf("peer %s refused (duplicate, or our own public key)",
             b64_encode(pc.public_key.data(), 32).c_str());
        return false;
      }
      if (pc.psk_file) {
        std::array<std::uint8_t, 32> raw{};
        if (!read_key_file(*pc.psk_file, raw)) return false;
        SecretKey psk{std::span<const std::uint8_t, 32>(raw)};
        moongate::crypto::secure_wipe(raw.data(), raw.size());
        dev.set_preshared_key(*peer, psk);
      }
      if (pc.endpoint) peer->endpoint = *pc.endpoint;
      dev.set_persistent_keepalive(*peer, pc.keepalive, now);
      peer_states_.push_back(std::make_unique<PeerState>());
      peer_states_.back()->allowed = pc.allowed;
      peer->user = peer_states_.back().get();
      for (const auto& p : pc.allowed) routes_.add(p, peer);
      peers_.push_back(peer);
    }
    return true;
  }

  void print_banner() {
    const auto& pub = transport_.device().public_key();
    std::printf("%s: public key %s\n", kProg, b64_encode(pub.data(), pub.size()).c_str());
    std::printf("%s: aead %s\n", kProg, transport_.aead_arch());
    std::printf("%s: listening on UDP port %u (%s), tun %s, mtu %zu, %zu peer(s)%s%s\n", kProg,
                static_cast<unsigned>(bound_port()), udp_family_ == AF_INET6 ? "dual-stack" : "IPv4",
                cfg_.tun_name.c_str(), cfg_.mtu, peers_.size(),
                cfg_.control_path.empty() ? "" : ", control ", cfg_.control_path.c_str());
    for (const wg::Peer* p : peers_) {
      std::string allowed;
      for (const auto& a : static_cast<const PeerState*>(p->user)->allowed) {
        if (!allowed.empty()) allowed += ",";
        allowed += prefix_to_string(a);
      }
      std::printf("%s: peer %s endpoint %s allowed-ips %s\n", kProg,
                  b64_encode(p->public_key().data(), 32).c_str(),
                  p->endpoint.valid() ? p->endpoint.to_string().c_str() : "(none)",
                  allowed.empty() ? "(none)" : allowed.c_str());
    }
    std::printf("%s: ready\n", kProg);
    std::fflush(stdout);
  }

  std::uint16_t bound_port() const {
    sockaddr_storage ss{};
    socklen_t sl = sizeof ss;
    if (getsockname(udp_.get(), reinterpret_cast<sockaddr*>(&ss), &sl) != 0) return 0;
    return sockaddr_to_endpoint(ss).port;
  }

  // The event loop; returns the process exit code.
  int run() {
    std::vector<pollfd> pfds;
    while (!stop_) {
      pfds.clear();
      pfds.push_back({sig_.get(), POLLIN, 0});
      pfds.push_back({tun_.get(), POLLIN, 0});
      pfds.push_back({udp_.get(), POLLIN, 0});
      if (control_.ok()) pfds.push_back({control_.get(), POLLIN, 0});
      const std::size_t first_client = pfds.size();
      for (const auto& c : clients_) pfds.push_back({c.fd.get(), POLLIN, 0});

      const int timeout = poll_timeout(now_instant());
      const int n = poll(pfds.data(), pfds.size(), timeout);
      if (n < 0) {
        if (errno == EINTR) continue;
        logf("poll: %s", std::strerror(errno));
        return 1;
      }
      if (pfds[0].revents != 0) on_signal();
      // Any error on the TUN or UDP fd is fatal: the harness cannot go on
      // without them, and spinning on POLLERR would starve the machine.
      if ((pfds[1].revents & (POLLERR | POLLNVAL)) != 0) {
        logf("TUN device failed (revents 0x%x)", static_cast<unsigned>(pfds[1].revents));
        return 1;
      }
      if ((pfds[2].revents & POLLNVAL) != 0) {
        logf("UDP socket invalid");
        return 1;
      }
      // Serve TUN and UDP in alternating batches until both are drained or
      // the round budget is spent, so neither direction starves.
      bool tun_ready = (pfds[1].revents & POLLIN) != 0;
      bool udp_ready = (pfds[2].revents & (POLLIN | POLLERR)) != 0;
      for (unsigned round = 0; round < kMaxRoundsPerWakeup && (tun_ready || udp_ready); ++round) {
        if (udp_ready) udp_ready = on_udp();
        if (tun_ready) tun_ready = on_tun();
      }
      if (control_.ok() && pfds[3].revents != 0) on_accept();
      for (std::size_t i = first_client; i < pfds.size(); ++i) {
        if (pfds[i].revents != 0) on_client(i - first_client);
      }
      clients_.erase(std::remove_if(clients_.begin(), clients_.end(),
                                    [](const ControlClient& c) { return !c.fd.ok(); }),
                     clients_.end());
      transport_.tick(now_instant());
    }
    return 0;
  }

  void shutdown() {
    clients_.clear();
    if (control_.ok()) {
      control_.reset();
      if (unlink(cfg_.control_path.c_str()) != 0 && errno != ENOENT) {
        logf("unlink %s: %s", cfg_.control_path.c_str(), std::strerror(errno));
      }
    }
  }

 private:
  int poll_timeout(const wg::Instant& now) {
    wg::Nanos earliest = 0;
    for (const wg::Peer* p : peers_) {
      const wg::Nanos d = p->timers.next_deadline();
      if (d != 0 && (earliest == 0 || d < earliest)) earliest = d;
    }
    if (earliest == 0) return kMaxPollMs;
    if (earliest <= now.mono) {
      // tick() ran just before this: a deadline still due means the core
      // did not re-arm or clear it. Sleep 1 ms rather than spin.
      ++counters_.stale_deadline_wakeups;
      return 1;
    }
    const wg::Nanos wait = earliest - now.mono;
    const wg::Nanos ms = (wait + wg::kMillisecond - 1) / wg::kMillisecond;  // round up: no early wakeup
    return static_cast<int>(std::min<wg::Nanos>(ms, kMaxPollMs));
  }

  void on_signal() {
    signalfd_siginfo si{};
    ssize_t n = read(sig_.get(), &si, sizeof si);
    if (n == static_cast<ssize_t>(sizeof si)) {
      std::printf("%s: signal %u, shutting down\n", kProg, si.ssi_signo);
      std::fflush(stdout);
      stop_ = true;
    }
  }

  // One batch from the TUN; true when more may be waiting.
  bool on_tun() {
    for (unsigned i = 0; i < kTunBatch; ++i) {
      ssize_t n = read(tun_.get(), tun_buf_.data(), tun_buf_.size());
      if (n < 0) {
        if (errno == EAGAIN || errno == EWOULDBLOCK) return false;
        if (errno == EINTR) continue;
        ++counters_.tun_read_errors;
        logf("read TUN: %s", std::strerror(errno));
        return false;
      }
      ++counters_.tun_rx_packets;
      const auto len = static_cast<std::size_t>(n);
      std::uint8_t family = 0;
      const std::uint8_t* dst = nullptr;
      if (inner_packet(tun_buf_.data(), len, false, family, dst) == 0) {
        ++counters_.bad_inner_packet;
        continue;
      }
      wg::Peer* peer = routes_.lookup(family, dst);
      if (peer == nullptr) {
        ++counters_.no_route;
        continue;
      }
      const wg::Drop d = transport_.send(*peer, tun_buf_.data(), len, now_instant());
      ++counters_.send_drops[static_cast<std::size_t>(d)];
    }
    return true;
  }

  // One recvmmsg batch; true when more may be waiting.
  bool on_udp() {
    std::array<mmsghdr, kUdpBatch> msgs{};
    std::array<iovec, kUdpBatch> iovs{};
    std::array<sockaddr_storage, kUdpBatch> addrs{};
    for (unsigned i = 0; i < kUdpBatch; ++i) {
      iovs[i].iov_base = rx_bufs_[i].data();
      iovs[i].iov_len = rx_bufs_[i].size();
      msgs[i].msg_hdr.msg_iov = &iovs[i];
      msgs[i].msg_hdr.msg_iovlen = 1;
      msgs[i].msg_hdr.msg_name = &addrs[i];
      msgs[i].msg_hdr.msg_namelen = sizeof addrs[i];
    }
    const int n = recvmmsg(udp_.get(), msgs.data(), kUdpBatch, MSG_DONTWAIT, nullptr);
    if (n < 0) {
      if (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR) return false;
      // ICMP errors (ECONNREFUSED...) surface here on some kernels; count
      // and go on, the socket itself is fine.
      ++counters_.udp_recv_errors;
      if (counters_.udp_recv_errors <= 10) logf("recvmmsg: %s", std::strerror(errno));
      return false;
    }
    const wg::Instant now = now_instant();
    for (int i = 0; i < n; ++i) {
      ++counters_.udp_rx_datagrams;
      const auto len = static_cast<std::size_t>(msgs[static_cast<std::size_t>(i)].msg_len);
      const wg::Endpoint src = sockaddr_to_endpoint(addrs[static_cast<std::size_t>(i)]);
      const Transport::Received r = transport_.receive(
          rx_bufs_[static_cast<std::size_t>(i)].data(), len, src, now, plain_.data(), plain_.size());
      if (r.drop != wg::Drop::kOk || r.peer == nullptr || r.len == 0) continue;
      deliver(*r.peer, r.len);
    }
    return static_cast<unsigned>(n) == kUdpBatch;
  }

  // An authenticated plaintext: check it is an IP packet from an address
  // the peer may use, trim the padding, hand it to the kernel.
  void deliver(wg::Peer& peer, std::size_t len) {
    std::uint8_t family = 0;
    const std::uint8_t* src = nullptr;
    const std::size_t ip_len = inner_packet(plain_.data(), len, true, family, src);
    if (ip_len == 0) {
      ++counters_.bad_inner_packet;
      return;
    }
    if (routes_.lookup(family, src) != &peer) {
      ++counters_.bad_inner_source;
      return;
    }
    for (;;) {
      ssize_t w = write(tun_.get(), plain_.data(), ip_len);
      if (w >= 0) {
        ++counters_.tun_tx_packets;
        return;
      }
      if (errno == EINTR) continue;
      ++counters_.tun_write_errors;
      if (counters_.tun_write_errors <= 10) logf("write TUN: %s", std::strerror(errno));
      return;
    }
  }

  void on_accept() {
    for (;;) {
      int fd = accept4(control_.get(), nullptr, nullptr, SOCK_NONBLOCK | SOCK_CLOEXEC);
      if (fd < 0) {
        if (errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR) {
          logf("accept control: %s", std::strerror(errno));
        }
        return;
      }
      if (clients_.size() >= 16) {  // a harness needs a few; refuse floods
        close(fd);
        continue;
      }
      clients_.push_back(ControlClient{Fd(fd), {}});
    }
  }

  void on_client(std::size_t idx) {
    ControlClient& c = clients_[idx];
    char buf[1024];
    for (;;) {
      ssize_t n = read(c.fd.get(), buf, sizeof buf);
      if (n < 0) {
        if (errno == EINTR) continue;
        if (errno != EAGAIN && errno != EWOULDBLOCK) c.fd.reset();
        break;
      }
      if (n == 0) {
        c.fd.reset();
        break;
      }
      c.in.append(buf, static_cast<std::size_t>(n));
      if (c.in.size() > 4096) {  // no command is that long
        c.fd.reset();
        break;
      }
    }
    std::size_t nl;
    while ((nl = c.in.find('\n')) != std::string::npos) {
      std::string line = c.in.substr(0, nl);
      c.in.erase(0, nl + 1);
      if (!line.empty() && line.back() == '\r') line.pop_back();
      std::string reply = handle_command(line) + "\n";
      if (!reply_to(c, reply)) break;
    }
  }

  bool reply_to(ControlClient& c, const std::string& reply) {
    if (!c.fd.ok()) return false;
    std::size_t off = 0;
    // Replies are small; a client that does not read them is dropped
    // rather than allowed to block the data path.
    int spins = 0;
    while (off < reply.size()) {
      ssize_t w = send(c.fd.get(), reply.data() + off, reply.size() - off, MSG_NOSIGNAL);
      if (w < 0) {
        if (errno == EINTR) continue;
        if ((errno == EAGAIN || errno == EWOULDBLOCK) && ++spins < 100) {
          pollfd p{c.fd.get(), POLLOUT, 0};
          if (poll(&p, 1, 10) < 0 && errno != EINTR) break;
          continue;
        }
        c.fd.reset();
        return false;
      }
      off += static_cast<std::size_t>(w);
    }
    return true;
  }

  std::string handle_command(const std::string& line) {
    std::string cmd = line;
    std::string arg;
    if (auto sp = line.find(' '); sp != std::string::npos) {
      cmd = line.substr(0, sp);
      arg = line.substr(sp + 1);
    }
    if (cmd == "stats") return stats_json();
    if (cmd == "quit") {
      stop_ = true;
      return "ok bye";
    }
    if (cmd == "initiate") {
      PublicKey key{};
      if (!b64_decode32(arg, key)) return "error bad public key";
      wg::Peer* peer = transport_.device().find_peer(key);
      if (peer == nullptr) return "error unknown peer";
      const wg::Drop d = transport_.device().initiate_handshake(*peer, now_instant());
      if (d == wg::Drop::kOk) return "ok";
      return std::string("error ") + wg::drop_name(d);
    }
    return "error unknown command (stats | initiate PUBKEY | quit)";
  }

  std::string stats_json() {
    std::string j = "{";
    auto kv = [&j](const char* k, std::uint64_t v, bool comma = true) {
      j += "\"";
      j += k;
      j += "\":";
      j += std::to_string(v);
      if (comma) j += ",";
    };
    auto ks = [&j](const char* k, const std::string& v, bool comma = true) {
      // Every string here is base64, an address or an identifier: no
      // characters that need escaping.
      j += "\"";
      j += k;
      j += "\":\"";
      j += v;
      j += "\"";
      if (comma) j += ",";
    };
    const wg::Device& dev = transport_.device();
    ks("public_key", b64_encode(dev.public_key().data(), 32));
    ks("aead_arch", transport_.aead_arch());
    kv("listen_port", bound_port());
    j += "\"drops\":{";
    const auto& drops = dev.drop_counters();
    for (std::size_t i = 0; i < wg::kDropCount; ++i) {
      kv(wg::drop_name(static_cast<wg::Drop>(i)), drops[i], i + 1 < wg::kDropCount);
    }
    j += "},\"send_verdicts\":{";
    for (std::size_t i = 0; i < wg::kDropCount; ++i) {
      kv(wg::drop_name(static_cast<wg::Drop>(i)), counters_.send_drops[i], i + 1 < wg::kDropCount);
    }
    j += "},\"harness\":{";
    kv("no_route", counters_.no_route);
    kv("bad_inner_packet", counters_.bad_inner_packet);
    kv("bad_inner_source", counters_.bad_inner_source);
    kv("tun_read_errors", counters_.tun_read_errors);
    kv("tun_write_errors", counters_.tun_write_errors);
    kv("udp_send_errors", counters_.udp_send_errors);
    kv("udp_recv_errors", counters_.udp_recv_errors);
    kv("stale_deadline_wakeups", counters_.stale_deadline_wakeups);
    kv("tun_rx_packets", counters_.tun_rx_packets);
    kv("tun_tx_packets", counters_.tun_tx_packets);
    kv("udp_rx_datagrams", counters_.udp_rx_datagrams, false);
    j += "},\"peers\":[";
    bool first = true;
    for (const wg::Peer* p : peers_) {
      if (!first) j += ",";
      first = false;
      j += "{";
      ks("public_key", b64_encode(p->public_key().data(), 32));
      ks("endpoint", p->endpoint.valid() ? p->endpoint.to_string() : std::string());
      kv("rx_bytes", p->rx_bytes);
      kv("tx_bytes", p->tx_bytes);
      kv("last_handshake_wall_ns", p->last_handshake_wall_ns);
      kv("handshakes_completed", p->handshakes_completed);
      kv("staged", transport_.staged(*p));
      kv("persistent_keepalive", p->timers.persistent_keepalive());
      ks("aead_arch", transport_.aead_arch(), false);
      j += "}";
    }
    j += "]}";
    return j;
  }

  Config cfg_;
  Fd tun_;
  Fd udp_;
  int udp_family_;
  Fd control_;
  Fd sig_;
  HarnessCounters counters_;
  UdpWire wire_;
  Transport transport_;
  RouteTable routes_;
  std::vector<wg::Peer*> peers_;
  std::vector<std::unique_ptr<PeerState>> peer_states_;
  std::vector<ControlClient> clients_;
  std::vector<std::vector<std::uint8_t>> rx_bufs_;
  std::vector<std::uint8_t> plain_;
  std::vector<std::uint8_t> tun_buf_;
  bool stop_ = false;
};

int real_main(int argc, char** argv) {
  setvbuf(stdout, nullptr, _IOLBF, 0);
  Config cfg;
  switch (parse_args(argc, argv, cfg)) {
    case 0:
      break;
    case 2:
      usage(stdout);
      return 0;
    default:
      usage(stderr);
      return 2;
  }
  if (sodium_init() < 0) {
    logf("sodium_init failed");
    return 1;
  }

  std::array<std::uint8_t, 32> raw{};
  if (!read_key_file(cfg.private_key_file, raw)) return 1;
  SecretKey private_key{std::span<const std::uint8_t, 32>(raw)};
  moongate::crypto::secure_wipe(raw.data(), raw.size());
  moongate::crypto::x25519_clamp(private_key);

  // Signals become readable events so shutdown happens between packets,
  // never inside the core.
  sigset_t mask;
  sigemptyset(&mask);
  sigaddset(&mask, SIGINT);
  sigaddset(&mask, SIGTERM);
  if (sigprocmask(SIG_BLOCK, &mask, nullptr) != 0) {
    logf("sigprocmask: %s", std::strerror(errno));
    return 1;
  }
  Fd sig(signalfd(-1, &mask, SFD_NONBLOCK | SFD_CLOEXEC));
  if (!sig.ok()) {
    logf("signalfd: %s", std::strerror(errno));
    return 1;
  }
  if (signal(SIGPIPE, SIG_IGN) == SIG_ERR) {
    logf("signal(SIGPIPE): %s", std::strerror(errno));
    return 1;
  }

  Fd tun = open_tun(cfg.tun_name);
  if (!tun.ok()) return 1;
  int udp_family = AF_INET6;
  Fd udp = open_udp(cfg.listen_port, udp_family);
  if (!udp.ok()) return 1;
  Fd control;
  if (!cfg.control_path.empty()) {
    control = open_control(cfg.control_path);
    if (!control.ok()) return 1;
  }
  const std::string control_path = cfg.control_path;

  std::unique_ptr<Harness> h;
  try {
    // AeadBurst throws when IPsec-MB cannot start: a start-up failure.
    h = std::make_unique<Harness>(std::move(cfg), std::move(tun), std::move(udp), udp_family,
                                  std::move(control), std::move(sig));
  } catch (const std::exception& e) {
    logf("start-up failed: %s", e.what());
    if (!control_path.empty()) unlink(control_path.c_str());
    return 1;
  }
  if (!h->configure(private_key)) {
    h->shutdown();
    return 1;
  }
  h->print_banner();
  int rc = 1;
  try {
    rc = h->run();
  } catch (const std::exception& e) {
    // Nothing in the loop should throw; if something does, leave cleanly.
    logf("fatal: %s", e.what());
    rc = 1;
  }
  h->shutdown();
  std::printf("%s: stopped\n", kProg);
  return rc;
}

}  // namespace

int main(int argc, char** argv) { return real_main(argc, argv); }
