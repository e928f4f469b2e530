// /bootstrap-dns and /debug/vars without sockets: an injected resolver
// stands in for DNS, so nothing here touches the network.
#include <gtest/gtest.h>

#include <algorithm>
#include <chrono>
#include <condition_variable>
#include <map>
#include <mutex>
#include <thread>

#include "relay/bootstrap_dns.h"
#include "relay/debug_vars.h"
#include "relay/http.h"
#include "relay/options.h"

namespace moongate::relay {
namespace {

// A resolver answering from a table the test changes; a missing name fails.
struct FakeDns {
  std::mutex mu;
  std::map<std::string, std::vector<std::string>> table;
  int calls = 0;

  Resolver resolver() {
    return [this](const std::string& name, std::vector<std::string>& addrs, std::string& error) {
      std::lock_guard lk(mu);
      ++calls;
      const auto it = table.find(name);
      if (it == table.end()) {
        error = "no such host";
        return false;
      }
      addrs = it->second;
      return true;
    };
  }
};

std::string body_of(const std::string& response) {
  const std::size_t e = response.find("\r\n\r\n");
  return e == std::string::npos ? "" : response.substr(e + 4);
}

std::uint64_t metric(const BootstrapDns& d, const std::string& name) {
  std::string text;
  d.metrics(text);
  const std::string key = "\nmoongate_relay_bootstrap_dns_" + name + " ";
  const std::size_t at = ("\n" + text).find(key);
  if (at == std::string::npos) return ~0ull;
  return std::stoull(("\n" + text).substr(at + key.size()));
}

TEST(BootstrapDns, JsonIsDerpersIndentedObject) {
  EXPECT_EQ(bootstrap_json({}), "{}");
  // Go's json.MarshalIndent(map, "", "\t"): keys sorted, one value a line.
  EXPECT_EQ(bootstrap_json({{"login.example.com", {"192.0.2.7", "2001:db8::7"}}, {"a.example.com", {"192.0.2.1"}}}),
            "{\n"
            "\t\"a.example.com\": [\n"
            "\t\t\"192.0.2.1\"\n"
            "\t],\n"
            "\t\"login.example.com\": [\n"
            "\t\t\"192.0.2.7\",\n"
            "\t\t\"2001:db8::7\"\n"
            "\t]\n"
            "}");
  // Escaped as Go escapes (names are checked at start-up; this is belt and braces).
  EXPECT_EQ(bootstrap_json({{"a\"<b>", {}}}), "{\n\t\"a\\\"\\u003cb\\u003e\": []\n}");
}

TEST(BootstrapDns, RefreshPublishesAndAFailureKeepsTheLastAnswer) {
  FakeDns dns;
  dns.table = {{"derp.example.com", {"192.0.2.1", "2001:db8::1"}}, {"login.example.com", {"192.0.2.9"}}};
  BootstrapDns b({.names = {"login.example.com", "derp.example.com", "late.example.com"},
                  .unpublished = {},
                  .shuffle = false},
                 dns.resolver());
  // Before the first round: an empty object, not an error.
  EXPECT_EQ(body_of(b.respond("")), "{}");
  b.refresh();
  EXPECT_EQ(b.rounds(), 1u);
  auto s = b.snapshot();
  ASSERT_EQ(s->published.size(), 2u);  // late.example.com did not resolve: absent
  EXPECT_EQ(s->published.at("derp.example.com"), (std::vector<std::string>{"192.0.2.1", "2001:db8::1"}));
  EXPECT_EQ(body_of(b.respond("")), bootstrap_json(s->published));
  EXPECT_EQ(metric(b, "lookups_total"), 3u);
  EXPECT_EQ(metric(b, "lookup_failures_total"), 1u);
  EXPECT_EQ(metric(b, "names"), 2u);

  // DNS breaks for one name and changes for another: the broken one keeps
  // its last answer, the changed one takes the new addresses, the late one
  // appears.
  {
    std::lock_guard lk(dns.mu);
    dns.table.erase("derp.example.com");
    dns.table["login.example.com"] = {"192.0.2.10"};
    dns.table["late.example.com"] = {"198.51.100.3"};
  }
  const auto old = b.snapshot();
  b.refresh();
  s = b.snapshot();
  EXPECT_NE(s, old);  // a new snapshot; the old one is untouched for whoever holds it
  EXPECT_EQ(old->published.at("login.example.com"), std::vector<std::string>{"192.0.2.9"});
  EXPECT_EQ(s->published.at("derp.example.com"), (std::vector<std::string>{"192.0.2.1", "2001:db8::1"}));
  EXPECT_EQ(s->published.at("login.example.com"), std::vector<std::string>{"192.0.2.10"});
  EXPECT_EQ(s->published.at("late.example.com"), std::vector<std::string>{"198.51.100.3"});
  EXPECT_EQ(metric(b, "lookup_failures_total"), 2u);
}

TEST(BootstrapDns, ShuffleKeepsTheAddresses) {
  FakeDns dns;
  std::vector<std::string> many;
  for (int i = 1; i <= 16; ++i) many.push_back("192.0.2." + std::to_string(i));
  dns.table = {{"derp.example.com", many}};
  BootstrapDns b({.names = {"derp.example.com"}}, dns.resolver());
  b.refresh();
  auto got = b.snapshot()->published.at("derp.example.com");
  std::sort(got.begin(), got.end());
  std::sort(many.begin(), many.end());
  EXPECT_EQ(got, many);
}

TEST(BootstrapDns, ResponseHeadersAndTheQueryForm) {
  FakeDns dns;
  dns.table = {{"derp.example.com", {"192.0.2.1"}}, {"control.example.com", {"192.0.2.50"}}};
  BootstrapDns b({.names = {"derp.example.com", "pending.example.com"},
                  .unpublished = {"control.example.com", "hidden.example.com"},
                  .shuffle = false},
                 dns.resolver());
  b.refresh();
  const std::string published = "{\n\t\"derp.example.com\": [\n\t\t\"192.0.2.1\"\n\t]\n}";

  const std::string r = b.respond("");
  EXPECT_EQ(r.rfind("HTTP/1.1 200 OK\r\n", 0), 0u);
  EXPECT_NE(r.find("\r\nContent-Type: application/json\r\n"), std::string::npos);
  EXPECT_NE(r.find("\r\nConnection: close\r\n"), std::string::npos);
  EXPECT_NE(r.find("\r\nX-Content-Type-Options: nosniff\r\n"), std::string::npos);
  EXPECT_NE(r.find("\r\nX-Frame-Options: DENY\r\n"), std::string::npos);
  EXPECT_NE(r.find("\r\nContent-Length: " + std::to_string(published.size()) + "\r\n"), std::string::npos);
  EXPECT_EQ(body_of(r), published);  // the unpublished name is not in it

  // An unpublished name with addresses: that name only.
  EXPECT_EQ(body_of(b.respond("q=control.example.com")),
            "{\n\t\"control.example.com\": [\n\t\t\"192.0.2.50\"\n\t]\n}");
  EXPECT_EQ(body_of(b.respond("x=1&q=control%2Eexample.com")),
            "{\n\t\"control.example.com\": [\n\t\t\"192.0.2.50\"\n\t]\n}");
  EXPECT_EQ(metric(b, "unpublished_hits_total"), 2u);
  // Anything else: the published object, counted as derper counts it.
  EXPECT_EQ(body_of(b.respond("q=derp.example.com")), published);
  EXPECT_EQ(metric(b, "published_hits_total"), 1u);
  EXPECT_EQ(body_of(b.respond("q=pending.example.com")), published);
  EXPECT_EQ(metric(b, "published_misses_total"), 1u);
  EXPECT_EQ(body_of(b.respond("q=hidden.example.com")), published);  // unpublished, not resolved
  EXPECT_EQ(body_of(b.respond("q=other.example.com")), published);
  EXPECT_EQ(body_of(b.respond("q=%zz")), published);  // a bad escape is no query
  EXPECT_EQ(metric(b, "unpublished_misses_total"), 2u);
  EXPECT_EQ(metric(b, "requests_total"), 8u);
}

TEST(BootstrapDns, QueryValuesAndNames) {
  EXPECT_EQ(query_value("q=a.example.com", "q"), "a.example.com");
  EXPECT_EQ(query_value("a=1&q=b%2ec+d&q=second", "q"), "b.c d");
  EXPECT_EQ(query_value("q", "q"), "");
  EXPECT_EQ(query_value("qq=1", "q"), "");
  EXPECT_EQ(query_value("q=%4", "q"), "");
  EXPECT_EQ(query_value("q=%4&q=ok", "q"), "ok");  // a malformed pair is skipped, as Go does

  EXPECT_TRUE(valid_dns_name("localhost"));
  EXPECT_TRUE(valid_dns_name("derp-1.example.com."));
  EXPECT_TRUE(valid_dns_name("_srv.example.com"));
  EXPECT_FALSE(valid_dns_name(""));
  EXPECT_FALSE(valid_dns_name("."));
  EXPECT_FALSE(valid_dns_name("a..b"));
  EXPECT_FALSE(valid_dns_name("-a.example.com"));
  EXPECT_FALSE(valid_dns_name("a b"));
  EXPECT_FALSE(valid_dns_name("a,b"));
  EXPECT_FALSE(valid_dns_name(std::string(64, 'a') + ".com"));
  EXPECT_FALSE(valid_dns_name(std::string(254, 'a')));
}

// The thread: answers are served from the current snapshot while a lookup
// is stuck; the new answer appears once it returns; stopping does not wait
// for the next period.
TEST(BootstrapDns, ALookupInProgressNeverBlocksAnAnswer) {
  std::mutex mu;
  std::condition_variable cv;
  bool release = false;
  int started = 0;
  Resolver slow = [&](const std::string&, std::vector<std::string>& addrs, std::string&) {
    std::unique_lock lk(mu);
    ++started;
    cv.notify_all();
    cv.wait(lk, [&] { return release; });
    addrs = {"192.0.2.1"};
    return true;
  };
  auto b = std::make_unique<BootstrapDns>(BootstrapDnsConfig{.names = {"derp.example.com"}}, slow,
                                          std::chrono::hours(1));
  b->start();
  {
    std::unique_lock lk(mu);
    ASSERT_TRUE(cv.wait_for(lk, std::chrono::seconds(10), [&] { return started == 1; }));
  }
  // The lookup is stuck inside the resolver: answering does not wait.
  EXPECT_EQ(body_of(b->respond("")), "{}");
  EXPECT_EQ(b->rounds(), 0u);
  {
    std::lock_guard lk(mu);
    release = true;
  }
  cv.notify_all();
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(10);
  while (b->rounds() == 0 && std::chrono::steady_clock::now() < deadline)
    std::this_thread::sleep_for(std::chrono::milliseconds(1));
  ASSERT_EQ(b->rounds(), 1u);
  EXPECT_EQ(body_of(b->respond("")), "{\n\t\"derp.example.com\": [\n\t\t\"192.0.2.1\"\n\t]\n}");
  // The thread now waits out an hour-long period: stopping wakes it (were
  // it not so, this would hang until the test's timeout).
  b.reset();
  EXPECT_EQ(started, 1);
}

TEST(BootstrapDns, WithoutNamesNoThreadAndAnEmptyAnswer) {
  FakeDns dns;
  BootstrapDns b(BootstrapDnsConfig{}, dns.resolver());
  EXPECT_FALSE(b.enabled());
  b.start();
  EXPECT_EQ(body_of(b.respond("q=x")), "{}");
  EXPECT_EQ(dns.calls, 0);
}

TEST(BootstrapDns, SystemResolverReadsHostsWithoutTheNetwork) {
  // "localhost" comes from /etc/hosts (or glibc's built-in): no DNS server.
  std::vector<std::string> addrs;
  std::string error;
  ASSERT_TRUE(system_resolve("localhost", addrs, error)) << error;
  ASSERT_FALSE(addrs.empty());
  for (const auto& a : addrs) EXPECT_TRUE(a == "127.0.0.1" || a == "::1") << a;
  // A numeric address resolves to itself.
  ASSERT_TRUE(system_resolve("192.0.2.44", addrs, error)) << error;
  EXPECT_EQ(addrs, std::vector<std::string>{"192.0.2.44"});
}

TEST(Http, BootstrapDnsAndDebugVarsRoutes) {
  Request r;
  std::size_t n = 0;
  ASSERT_EQ(parse_request("GET /bootstrap-dns?q=login.example.com HTTP/1.1\r\nHost: x\r\n\r\n", r, n), Parse::kDone);
  EXPECT_EQ(r.path, "/bootstrap-dns");
  EXPECT_EQ(r.query, "q=login.example.com");
  // Any client may ask (it is what clients without DNS use).
  EXPECT_EQ(route(r, std::string(64, 'a'), false).action, Action::kBootstrapDns);
  ASSERT_EQ(parse_request("GET /debug/vars HTTP/1.1\r\n\r\n", r, n), Parse::kDone);
  EXPECT_EQ(r.query, "");
  EXPECT_EQ(route(r, std::string(64, 'a'), true).action, Action::kVars);
  const Response far = route(r, std::string(64, 'a'), false);
  EXPECT_EQ(far.action, Action::kRespond);
  EXPECT_EQ(far.bytes.rfind("HTTP/1.1 403", 0), 0u);
}

TEST(DebugVars, PrometheusTextAsOneJsonObject) {
  const std::string text =
      "# HELP moongate_relay_packets_sent_total packets sent\n"
      "# TYPE moongate_relay_packets_sent_total counter\n"
      "moongate_relay_packets_sent_total 12\n"
      "moongate_relay_clients 3\n"
      "moongate_relay_stun_tailscale_total{shard=\"0\"} 5\n"
      "moongate_relay_stun_tailscale_total{shard=\"1\"} 7\n"
      "moongate_relay_clients 99\n"  // repeated: the first stands
      "weird NaN\n"
      "\n";
  EXPECT_EQ(vars_json(text),
            "{\n"
            "\"moongate_relay_packets_sent_total\": 12,\n"
            "\"moongate_relay_clients\": 3,\n"
            "\"moongate_relay_stun_tailscale_total\": {\"shard=0\": 5, \"shard=1\": 7},\n"
            "\"weird\": \"NaN\"\n"
            "}\n");
  EXPECT_EQ(vars_json(""), "{\n}\n");
  const std::string resp = vars_response("{}");
  EXPECT_EQ(resp.rfind("HTTP/1.1 200 OK\r\n", 0), 0u);
  EXPECT_NE(resp.find("Content-Type: application/json"), std::string::npos);
  EXPECT_NE(resp.find("Content-Length: 2\r\n\r\n{}"), std::string::npos);
}

// --- configuration ------------------------------------------------------------

Options from_flags(std::vector<std::string> args, std::string& err, bool& ok) {
  args.insert(args.begin(), "moongate-relay");
  args.push_back("--plain");
  std::vector<char*> argv;
  for (auto& a : args) argv.push_back(a.data());
  Options o;
  ok = parse_options(static_cast<int>(argv.size()), argv.data(), o, err);
  return o;
}

TEST(Options, BootstrapDnsNamesFromFlags) {
  std::string err;
  bool ok = false;
  Options o = from_flags({"--bootstrap-dns-names", "derp.example.com,login.example.com", "--bootstrap-dns-names",
                          "log.example.com", "--unpublished-bootstrap-dns-names", "control.example.com"},
                         err, ok);
  ASSERT_TRUE(ok) << err;
  EXPECT_EQ(o.bootstrap_dns.names,
            (std::vector<std::string>{"derp.example.com", "login.example.com", "log.example.com"}));
  EXPECT_EQ(o.bootstrap_dns.unpublished, std::vector<std::string>{"control.example.com"});

  from_flags({"--bootstrap-dns-names", "a.example.com,,b.example.com"}, err, ok);
  EXPECT_FALSE(ok);
  EXPECT_EQ(err, "--bootstrap-dns-names: not a host name: \"\"");
  from_flags({"--unpublished-bootstrap-dns-names", "http://x"}, err, ok);
  EXPECT_FALSE(ok);
  EXPECT_EQ(err, "--unpublished-bootstrap-dns-names: not a host name: \"http://x\"");
  from_flags({"--bootstrap-dns-names", "a.example.com", "--bootstrap-dns-names", "a.example.com"}, err, ok);
  EXPECT_FALSE(ok);
  EXPECT_EQ(err, "--bootstrap-dns-names: a.example.com is listed twice");
}

TEST(Options, BootstrapDnsNamesFromYamlWithPreciseErrors) {
  Options o;
  std::string err;
  ASSERT_TRUE(load_relay_yaml("relay:\n"
                              "  bootstrap_dns_names: [derp.example.com, login.example.com]\n"
                              "  unpublished-bootstrap-dns-names: control.example.com,log.example.com\n",
                              "r.yaml", o, err))
      << err;
  EXPECT_EQ(o.bootstrap_dns.names, (std::vector<std::string>{"derp.example.com", "login.example.com"}));
  EXPECT_EQ(o.bootstrap_dns.unpublished, (std::vector<std::string>{"control.example.com", "log.example.com"}));

  Options bad;
  EXPECT_FALSE(load_relay_yaml("relay:\n  bootstrap_dns_names: [derp.example.com, \"bad name\"]\n", "r.yaml", bad,
                               err));
  EXPECT_EQ(err, "r.yaml:2:43: relay.bootstrap_dns_names: not a host name: \"bad name\"");
  EXPECT_FALSE(load_relay_yaml("relay:\n  bootstrap_dns_names: {a: 1}\n", "r.yaml", bad, err));
  EXPECT_EQ(err, "r.yaml:2:24: relay.bootstrap_dns_names: want a list or a single value");
  EXPECT_FALSE(load_relay_yaml("relay:\n  bootstrap_dns_names:\n    - [a]\n", "r.yaml", bad, err));
  EXPECT_EQ(err, "r.yaml:3:7: relay.bootstrap_dns_names: want a list of host names");
  // Other keys' value errors are also reported where the value is.
  EXPECT_FALSE(load_relay_yaml("relay:\n  hostname: x\n  shards: 999\n", "r.yaml", bad, err));
  EXPECT_EQ(err, "r.yaml:3:11: relay.shards: want 0..256, got 999");
  EXPECT_FALSE(load_relay_yaml("relay:\n  mesh_with: [derp2.example.com:443, \"a:b\"]\n", "r.yaml", bad, err));
  EXPECT_EQ(err, "r.yaml:2:38: relay.mesh_with: want host:port or https://host[:port], got a:b");
}

}  // namespace
}  // namespace moongate::relay
