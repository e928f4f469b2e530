// /bootstrap-dns (see bootstrap_dns.h for the flow).
#include "relay/bootstrap_dns.h"

#include <arpa/inet.h>
#include <netdb.h>
#include <netinet/in.h>
#include <sys/socket.h>

#include <algorithm>
#include <cstdio>
#include <random>

#include "relay/json.h"

namespace moongate::relay {
namespace {

int hex_digit(char c) {
  if (c >= '0' && c <= '9') return c - '0';
  if (c >= 'a' && c <= 'f') return c - 'a' + 10;
  if (c >= 'A' && c <= 'F') return c - 'A' + 10;
  return -1;
}

// Go's url.QueryUnescape: false on a bad escape (Go then drops the pair).
bool unescape(std::string_view in, std::string& out) {
  out.clear();
  for (std::size_t i = 0; i < in.size(); ++i) {
    if (in[i] == '+') {
      out += ' ';
    } else if (in[i] == '%') {
      if (i + 2 >= in.size()) return false;
      const int hi = hex_digit(in[i + 1]), lo = hex_digit(in[i + 2]);
      if (hi < 0 || lo < 0) return false;
      out += static_cast<char>(hi << 4 | lo);
      i += 2;
    } else {
      out += in[i];
    }
  }
  return true;
}

constexpr std::string_view kHeaders =
    "HTTP/1.1 200 OK\r\n"
    "Content-Type: application/json\r\n"
    // derper wraps the handler in tsweb's browser headers.
    "Strict-Transport-Security: max-age=63072000; includeSubDomains\r\n"
    "Content-Security-Policy: default-src 'self'; frame-ancestors 'none'; form-action 'self'; "
    "base-uri 'self'; block-all-mixed-content; object-src 'none'\r\n"
    "X-Frame-Options: DENY\r\n"
    "X-Content-Type-Options: nosniff\r\n"
    // Clients ask a random relay of another region each time: keeping the
    // connection open would only cost the relay a descriptor.
    "Connection: close\r\n";

}  // namespace

std::string bootstrap_json(const NameAddrs& m) {
  if (m.empty()) return "{}";
  std::string out = "{\n";
  bool first = true;
  for (const auto& [name, addrs] : m) {
    if (!first) out += ",\n";
    first = false;
    out += '\t';
    json_string(out, name);
    if (addrs.empty()) {
      out += ": []";
      continue;
    }
    out += ": [\n";
    for (std::size_t i = 0; i < addrs.size(); ++i) {
      out += "\t\t";
      json_string(out, addrs[i]);
      out += i + 1 < addrs.size() ? ",\n" : "\n";
    }
    out += "\t]";
  }
  out += "\n}";
  return out;
}

bool valid_dns_name(std::string_view name) noexcept {
  if (!name.empty() && name.back() == '.') name.remove_suffix(1);
  if (name.empty() || name.size() > 253) return false;
  std::size_t start = 0;
  while (start <= name.size()) {
    std::size_t end = name.find('.', start);
    if (end == std::string_view::npos) end = name.size();
    const std::string_view label = name.substr(start, end - start);
    if (label.empty() || label.size() > 63 || label.front() == '-' || label.back() == '-') return false;
    for (const char c : label) {
      const bool ok = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '-' ||
                      c == '_';
      if (!ok) return false;
    }
    start = end + 1;
  }
  return true;
}

std::string query_value(std::string_view query, std::string_view key) {
  std::string k, v;
  while (!query.empty()) {
    const std::size_t amp = query.find('&');
    const std::string_view pair = query.substr(0, amp);
    query = amp == std::string_view::npos ? std::string_view() : query.substr(amp + 1);
    const std::size_t eq = pair.find('=');
    if (!unescape(pair.substr(0, eq), k)) continue;
    if (k != key) continue;
    if (eq == std::string_view::npos) return "";
    if (!unescape(pair.substr(eq + 1), v)) continue;
    return v;
  }
  return "";
}

bool system_resolve(const std::string& name, std::vector<std::string>& addrs, std::string& error) {
  addrs.clear();
  addrinfo hints{};
  hints.ai_family = AF_UNSPEC;
  hints.ai_socktype = SOCK_STREAM;  // one entry per address, not one per socket type
  addrinfo* res = nullptr;
  const int rc = getaddrinfo(name.c_str(), nullptr, &hints, &res);
  if (rc != 0) {
    error = gai_strerror(rc);
    return false;
  }
  for (const addrinfo* ai = res; ai; ai = ai->ai_next) {
    char buf[INET6_ADDRSTRLEN];
    const void* a = nullptr;
    if (ai->ai_family == AF_INET) a = &reinterpret_cast<const sockaddr_in*>(ai->ai_addr)->sin_addr;
    else if (ai->ai_family == AF_INET6) a = &reinterpret_cast<const sockaddr_in6*>(ai->ai_addr)->sin6_addr;
    if (!a || !inet_ntop(ai->ai_family, a, buf, sizeof buf)) continue;
    if (std::find(addrs.begin(), addrs.end(), buf) == addrs.end()) addrs.emplace_back(buf);
  }
  freeaddrinfo(res);
  if (addrs.empty()) {
    error = "no addresses";
    return false;
  }
  return true;
}

BootstrapDns::BootstrapDns(BootstrapDnsConfig config, Resolver resolver, std::chrono::milliseconds period)
    : config_(std::move(config)), resolver_(std::move(resolver)), period_(period) {
  auto empty = std::make_shared<BootstrapSnapshot>();
  empty->published_json = bootstrap_json(empty->published);
  snapshot_.store(std::move(empty), std::memory_order_release);
}

BootstrapDns::~BootstrapDns() {
  {
    std::lock_guard lk(mu_);
    stop_ = true;
  }
  cv_.notify_all();
  if (thread_.joinable()) thread_.join();
}

void BootstrapDns::start() {
  if (!enabled() || thread_.joinable()) return;
  thread_ = std::thread([this] { run(); });
}

void BootstrapDns::run() {
  std::unique_lock lk(mu_);
  while (!stop_) {
    lk.unlock();
    refresh();
    lk.lock();
    cv_.wait_for(lk, period_, [this] { return stop_; });
  }
}

void BootstrapDns::refresh() {
  const std::shared_ptr<const BootstrapSnapshot> before = snapshot();
  auto next = std::make_shared<BootstrapSnapshot>();
  thread_local std::minstd_rand rng{std::random_device{}()};
  auto round = [&](const std::vector<std::string>& names, const NameAddrs& old, NameAddrs& out) {
    for (const std::string& name : names) {
      std::vector<std::string> addrs;
      std::string error;
      lookups_.fetch_add(1, std::memory_order_relaxed);
      if (resolver_(name, addrs, error) && !addrs.empty()) {
        if (config_.shuffle) std::shuffle(addrs.begin(), addrs.end(), rng);
        out[name] = std::move(addrs);
        continue;
      }
      lookup_failures_.fetch_add(1, std::memory_order_relaxed);
      const auto it = old.find(name);
      if (it != old.end()) out[name] = it->second;
      std::fprintf(stderr, "moongate-relay: bootstrap DNS lookup \"%s\": %s%s\n", name.c_str(),
                   error.empty() ? "no addresses" : error.c_str(),
                   it != old.end() ? " (keeping the last answer)" : "");
    }
  };
  round(config_.names, before->published, next->published);
  round(config_.unpublished, before->unpublished, next->unpublished);
  next->published_json = bootstrap_json(next->published);
  snapshot_.store(std::move(next), std::memory_order_release);
  rounds_.fetch_add(1, std::memory_order_release);
}

std::string BootstrapDns::respond(std::string_view query) {
  requests_.fetch_add(1, std::memory_order_relaxed);
  const std::shared_ptr<const BootstrapSnapshot> s = snapshot();
  const std::string* body = &s->published_json;
  std::string single;
  if (const std::string q = query_value(query, "q"); !q.empty()) {
    const auto un = s->unpublished.find(q);
    const bool in_published_list =
        std::find(config_.names.begin(), config_.names.end(), q) != config_.names.end();
    if (un != s->unpublished.end() && !un->second.empty()) {
      unpublished_hits_.fetch_add(1, std::memory_order_relaxed);
      single = bootstrap_json({{q, un->second}});  // that name only, not the published ones
      body = &single;
    } else if (in_published_list) {
      const auto pub = s->published.find(q);
      (pub != s->published.end() ? published_hits_ : published_misses_).fetch_add(1, std::memory_order_relaxed);
    } else {
      unpublished_misses_.fetch_add(1, std::memory_order_relaxed);
    }
  }
  std::string out(kHeaders);
  out += "Content-Length: " + std::to_string(body->size()) + "\r\n\r\n";
  out += *body;
  return out;
}

void BootstrapDns::metrics(std::string& out) const {
  auto counter = [&](const char* name, const char* help, const std::atomic<std::uint64_t>& v) {
    out += std::string("# HELP moongate_relay_bootstrap_dns_") + name + " " + help +
           "\n# TYPE moongate_relay_bootstrap_dns_" + name + " counter\nmoongate_relay_bootstrap_dns_" + name +
           " " + std::to_string(v.load(std::memory_order_relaxed)) + "\n";
  };
  counter("requests_total", "/bootstrap-dns requests", requests_);
  counter("published_hits_total", "?q= for a published name with addresses", published_hits_);
  counter("published_misses_total", "?q= for a published name not resolved yet", published_misses_);
  counter("unpublished_hits_total", "?q= answered with that unpublished name only", unpublished_hits_);
  counter("unpublished_misses_total", "?q= for a name neither list resolved", unpublished_misses_);
  counter("lookups_total", "name lookups by the resolver thread", lookups_);
  counter("lookup_failures_total", "lookups that failed (the last answer kept)", lookup_failures_);
  const auto s = snapshot();
  out += "# HELP moongate_relay_bootstrap_dns_names names with an answer\n"
         "# TYPE moongate_relay_bootstrap_dns_names gauge\nmoongate_relay_bootstrap_dns_names " +
         std::to_string(s->published.size() + s->unpublished.size()) + "\n";
}

}  // namespace moongate::relay
