// /bootstrap-dns: derper's answer for clients that cannot resolve names
// yet (their DNS is broken or goes through the tailnet they are joining).
//
//   1. the resolver thread (start()) looks up every configured name, the
//      published and the unpublished ones, at once and then every 10
//      minutes (derper's period), with getaddrinfo or an injected Resolver
//   2. a name that resolved takes its new addresses; a name that failed
//      keeps its last good answer (and is absent until it first resolves)
//   3. the result is an immutable BootstrapSnapshot, its published JSON
//      rendered once, swapped in with one atomic store
//   4. a shard answering GET /bootstrap-dns[?q=NAME] loads the current
//      snapshot and copies bytes out: it never waits for a lookup
//
// The answer (derper's): a JSON object of every published name to its
// addresses, tab-indented, names sorted. `?q=NAME` for an unpublished name
// with addresses gets that one name only; any other query gets the
// published object (and counts a hit or a miss, as derper does).
#pragma once

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <string_view>
#include <thread>
#include <vector>

namespace moongate::relay {

// derper refreshes every 10 minutes.
inline constexpr std::chrono::seconds kBootstrapDnsRefresh{600};

struct BootstrapDnsConfig {
  std::vector<std::string> names;        // published: in every answer
  std::vector<std::string> unpublished;  // only to ?q=<name>
  bool shuffle = true;  // each refresh shuffles a name's addresses (derper: no IPv6 bias)
};

// One lookup: the name's addresses as text ("192.0.2.1", "2001:db8::1"),
// or false with a message. Runs on the resolver thread only.
using Resolver = std::function<bool(const std::string& name, std::vector<std::string>& addrs,
                                    std::string& error)>;
// getaddrinfo (AF_UNSPEC: A and AAAA, /etc/hosts first as configured).
bool system_resolve(const std::string& name, std::vector<std::string>& addrs, std::string& error);

using NameAddrs = std::map<std::string, std::vector<std::string>>;

struct BootstrapSnapshot {
  NameAddrs published, unpublished;
  std::string published_json;  // bootstrap_json(published), rendered once
};

// derper's JSON for a name map: Go's json.MarshalIndent(m, "", "\t").
std::string bootstrap_json(const NameAddrs& m);

// A host name as /bootstrap-dns takes it: 1..253 characters, dot-separated
// labels of 1..63 letters, digits, '-' or '_', no label starting or ending
// with '-'; a final dot allowed.
bool valid_dns_name(std::string_view name) noexcept;

// The value of `key` in a URL query ("a=1&q=name"), percent- and
// '+'-decoded; "" when absent.
std::string query_value(std::string_view query, std::string_view key);

class BootstrapDns {
 public:
  explicit BootstrapDns(BootstrapDnsConfig config, Resolver resolver = system_resolve,
                        std::chrono::milliseconds period = kBootstrapDnsRefresh);
  ~BootstrapDns();  // stops the thread (an in-flight lookup finishes first)
  BootstrapDns(const BootstrapDns&) = delete;
  BootstrapDns& operator=(const BootstrapDns&) = delete;

  bool enabled() const noexcept { return !config_.names.empty() || !config_.unpublished.empty(); }
  // Starts the resolver thread (nothing without names).
  void start();
  // One round of lookups on the calling thread (the resolver thread; tests).
  void refresh();

  std::shared_ptr<const BootstrapSnapshot> snapshot() const {
    return snapshot_.load(std::memory_order_acquire);
  }
  // The full HTTP response to /bootstrap-dns with this query string.
  std::string respond(std::string_view query);
  // Prometheus lines for /debug/varz (and so /debug/vars).
  void metrics(std::string& out) const;
  std::uint64_t rounds() const noexcept { return rounds_.load(std::memory_order_acquire); }

 private:
  void run();

  const BootstrapDnsConfig config_;
  const Resolver resolver_;
  const std::chrono::milliseconds period_;
  std::atomic<std::shared_ptr<const BootstrapSnapshot>> snapshot_;
  // Counted by whichever shard answers: a /bootstrap-dns request is rare
  // (a client's fallback), never on the packet path.
  std::atomic<std::uint64_t> requests_{0}, published_hits_{0}, published_misses_{0},
      unpublished_hits_{0}, unpublished_misses_{0};
  // Written by the resolver thread.
  std::atomic<std::uint64_t> rounds_{0}, lookups_{0}, lookup_failures_{0};
  std::mutex mu_;
  std::condition_variable cv_;
  bool stop_ = false;
  std::thread thread_;
};

}  // namespace moongate::relay
