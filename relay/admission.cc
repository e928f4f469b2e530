// Admission modes (see admission.h).
#include "relay/admission.h"

#include <netdb.h>
#include <poll.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#include <chrono>
#include <cstring>
#include <fstream>
#include <sstream>

#include "derp/handshake.h"
#include "netmap/segment.h"

namespace moongate::relay {

std::size_t Admitter::KeyHash::operator()(const derp::Key& k) const noexcept {
  std::size_t h;
  std::memcpy(&h, k.data(), sizeof h);  // keys come from the operator here, not from clients
  return h;
}

bool parse_keys(const std::string& text, std::vector<derp::Key>& out, std::string& error) {
  std::istringstream in(text);
  std::string line;
  int n = 0;
  while (std::getline(in, line)) {
    ++n;
    if (auto h = line.find('#'); h != std::string::npos) line.resize(h);
    while (!line.empty() && std::isspace(static_cast<unsigned char>(line.back()))) line.pop_back();
    std::size_t s = 0;
    while (s < line.size() && std::isspace(static_cast<unsigned char>(line[s]))) ++s;
    std::string_view v(line.data() + s, line.size() - s);
    if (v.empty()) continue;
    if (v.substr(0, 8) == "nodekey:") v.remove_prefix(8);
    derp::Key k;
    if (!derp::key_from_hex(v, k)) {
      error = "line " + std::to_string(n) + ": not a 64-digit hex key";
      return false;
    }
    out.push_back(k);
  }
  return true;
}

Admitter::Admitter(AdmissionConfig cfg) : cfg_(std::move(cfg)) {}

Admitter::~Admitter() {
  // (segment_ is destroyed after the worker has stopped using it)
  {
    std::lock_guard<std::mutex> l(mu_);
    stop_ = true;
  }
  cv_.notify_all();
  if (worker_.joinable()) worker_.join();
}

std::string Admitter::start() {
  if (cfg_.mode == AdmissionMode::kOpen) return "";
  if (cfg_.mode == AdmissionMode::kKeys && !reload())
    return "admission keys file " + cfg_.keys_file + ": cannot read or parse";
  if (cfg_.mode == AdmissionMode::kUrl && cfg_.url.rfind("http://", 0) != 0)
    return "admission url must be http://host[:port]/path";
  if (cfg_.mode == AdmissionMode::kNetmap) reload();  // the segment may appear later
  worker_ = std::thread([this] { run(); });
  return "";
}

std::size_t Admitter::known_keys() const {
  std::lock_guard<std::mutex> l(mu_);
  return keys_ ? keys_->size() : 0;
}

bool Admitter::reload() {
  auto set = std::make_shared<KeySet>();
  if (cfg_.mode == AdmissionMode::kKeys) {
    struct stat st;
    if (stat(cfg_.keys_file.c_str(), &st) != 0) return false;
    if (st.st_mtim.tv_sec * 1'000'000'000ll + st.st_mtim.tv_nsec == keys_mtime_) return true;
    std::ifstream f(cfg_.keys_file);
    std::stringstream ss;
    ss << f.rdbuf();
    std::vector<derp::Key> keys;
    std::string error;
    if (!f || !parse_keys(ss.str(), keys, error)) return false;
    set->insert(keys.begin(), keys.end());
    keys_mtime_ = st.st_mtim.tv_sec * 1'000'000'000ll + st.st_mtim.tv_nsec;
  } else if (cfg_.mode == AdmissionMode::kNetmap) {
    std::string error;
    if (!segment_) {
      segment_ = netmap::Segment::open(netmap::Segment::name_for(cfg_.netmap_interface), error);
      if (!segment_) return false;  // control has not created it yet: try again next second
    }
    netmap::Netmap nm;
    netmap::Segment::Read r = netmap::Segment::Read::kRetry;
    for (int tries = 0; tries < 8 && r == netmap::Segment::Read::kRetry; ++tries)
      r = segment_->read(netmap_generation_, nm, error);
    if (r == netmap::Segment::Read::kBad) segment_.reset();  // re-open (a new layout?) next time
    if (r != netmap::Segment::Read::kNew) return r == netmap::Segment::Read::kUnchanged;
    netmap_generation_ = nm.generation;
    for (const auto& p : nm.peers) set->insert(p.public_key);
  } else {
    return true;
  }
  std::lock_guard<std::mutex> l(mu_);
  keys_ = std::move(set);
  return true;
}

derp::Admission Admitter::check(const derp::Key& key, const std::string& source_ip, Done done) {
  switch (cfg_.mode) {
    case AdmissionMode::kOpen:
      return derp::Admission::kAllow;
    case AdmissionMode::kKeys:
    case AdmissionMode::kNetmap: {
      std::lock_guard<std::mutex> l(mu_);
      return keys_ && keys_->count(key) ? derp::Admission::kAllow : derp::Admission::kDeny;
    }
    case AdmissionMode::kUrl: {
      {
        std::lock_guard<std::mutex> l(mu_);
        if (jobs_.size() >= 4096) return derp::Admission::kDeny;  // the checker is overwhelmed
        jobs_.push_back(Job{key, source_ip, std::move(done)});
      }
      cv_.notify_one();
      return derp::Admission::kPending;
    }
  }
  return derp::Admission::kDeny;
}

void Admitter::run() {
  std::unique_lock<std::mutex> l(mu_);
  while (!stop_) {
    if (jobs_.empty()) {
      cv_.wait_for(l, std::chrono::seconds(1));
      if (cfg_.mode != AdmissionMode::kUrl && !stop_) {
        l.unlock();
        reload();
        l.lock();
      }
      continue;
    }
    Job j = std::move(jobs_.front());
    jobs_.pop_front();
    l.unlock();
    const bool allow = ask_url(j.key, j.source);
    j.done(allow);
    l.lock();
  }
}

// A minimal HTTP/1.1 client: one POST, Connection: close, 5 s overall.
bool Admitter::ask_url(const derp::Key& key, const std::string& source_ip) {
  std::string rest = cfg_.url.substr(7);
  const std::size_t slash = rest.find('/');
  std::string hostport = rest.substr(0, slash);
  const std::string path = slash == std::string::npos ? "/" : rest.substr(slash);
  std::string host = hostport, port = "80";
  if (auto c = hostport.rfind(':'); c != std::string::npos && hostport.find(']') == std::string::npos) {
    host = hostport.substr(0, c);
    port = hostport.substr(c + 1);
  }
  addrinfo hints{};
  hints.ai_socktype = SOCK_STREAM;
  addrinfo* res = nullptr;
  if (getaddrinfo(host.c_str(), port.c_str(), &hints, &res) != 0 || !res) return false;
  const int fd = socket(res->ai_family, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
  bool ok = fd >= 0;
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(5);
  auto wait = [&](short ev) {
    const auto left = std::chrono::duration_cast<std::chrono::milliseconds>(
        deadline - std::chrono::steady_clock::now());
    if (left.count() <= 0) return false;
    pollfd p{fd, ev, 0};
    return poll(&p, 1, static_cast<int>(left.count())) == 1;
  };
  if (ok && connect(fd, res->ai_addr, res->ai_addrlen) != 0) {
    ok = errno == EINPROGRESS && wait(POLLOUT);
    int err = 0;
    socklen_t len = sizeof err;
    ok = ok && getsockopt(fd, SOL_SOCKET, SO_ERROR, &err, &len) == 0 && err == 0;
  }
  freeaddrinfo(res);
  const std::string body =
      "{\"NodePublic\":\"nodekey:" + derp::key_hex(key) + "\",\"Source\":\"" + source_ip + "\"}";
  std::string req = "POST " + path + " HTTP/1.1\r\nHost: " + hostport +
                    "\r\nContent-Type: application/json\r\nConnection: close\r\nContent-Length: " +
                    std::to_string(body.size()) + "\r\n\r\n" + body;
  std::size_t off = 0;
  while (ok && off < req.size()) {
    const ssize_t n = send(fd, req.data() + off, req.size() - off, MSG_NOSIGNAL);
    if (n > 0) off += static_cast<std::size_t>(n);
    else ok = n < 0 && errno == EAGAIN && wait(POLLOUT);
  }
  std::string resp;
  char buf[4096];
  while (ok && resp.size() < 65536) {
    const ssize_t n = recv(fd, buf, sizeof buf, 0);
    if (n > 0) resp.append(buf, static_cast<std::size_t>(n));
    else if (n == 0) break;
    else ok = errno == EAGAIN && wait(POLLIN);
  }
  if (fd >= 0) close(fd);
  if (!ok || resp.rfind("HTTP/1.", 0) != 0 || resp.size() < 12 || resp.substr(9, 3) != "200")
    return false;
  const std::size_t b = resp.find("\r\n\r\n");
  if (b == std::string::npos) return false;
  // The body is JSON; only an explicit "Allow": true admits (Go's JSON
  // matches the field name case-insensitively).
  std::string lower = resp.substr(b + 4);
  for (char& c : lower) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  std::string compact;
  for (char c : lower)
    if (!std::isspace(static_cast<unsigned char>(c))) compact += c;
  return compact.find("\"allow\":true") != std::string::npos;
}

}  // namespace moongate::relay
