// Fuzzes the relay's HTTP side (relay/http.h and what answers there) with
// arbitrary bytes:
//   1. as a request head: parsed, routed (from loopback or not, by the first
//      byte), and for /bootstrap-dns answered with the request's query
//   2. as a URL query: the value of q
//   3. as the Prometheus text /debug/vars turns into JSON
// Oracles: no sanitizer report; a parsed head ends where the input says;
// a /bootstrap-dns answer is a 200 whose Content-Length is its body's size
// and whose body is the published object or exactly the one unpublished
// name the query asked for; the debug pages are never routed for a client
// off loopback; /debug/vars's output is one object.
#include <cstdint>
#include <cstdlib>
#include <string>
#include <string_view>
#include <vector>

#include "relay/bootstrap_dns.h"
#include "relay/debug_vars.h"
#include "relay/http.h"

namespace {

using namespace moongate::relay;

BootstrapDns& bootstrap() {
  static BootstrapDns* b = [] {
    auto* d = new BootstrapDns(
        {.names = {"derp.example.com", "unresolved.example.com"}, .unpublished = {"control.example.com"},
         .shuffle = false},
        [](const std::string& name, std::vector<std::string>& addrs, std::string& error) {
          if (name == "unresolved.example.com") {
            error = "no such host";
            return false;
          }
          addrs = {"192.0.2.1", "2001:db8::1"};
          return true;
        });
    d->refresh();
    return d;
  }();
  return *b;
}

void check(bool ok) {
  if (!ok) std::abort();
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  const std::string_view in(reinterpret_cast<const char*>(data), size);
  BootstrapDns& b = bootstrap();

  Request req;
  std::size_t head_len = 0;
  if (parse_request(in, req, head_len) == Parse::kDone) {
    check(head_len <= in.size() && in.substr(head_len - 4, 4) == "\r\n\r\n");
    const bool local = size > 0 && (data[0] & 1);
    const Response r = route(req, std::string(64, 'a'), local);
    if (!local) check(r.action != Action::kVarz && r.action != Action::kVars);
    if (r.action == Action::kBootstrapDns) {
      const std::string out = b.respond(req.query);
      const std::size_t end = out.find("\r\n\r\n");
      check(out.rfind("HTTP/1.1 200 OK\r\n", 0) == 0 && end != std::string::npos);
      const std::string body = out.substr(end + 4);
      check(out.find("Content-Length: " + std::to_string(body.size()) + "\r\n") < end);
      const auto snap = b.snapshot();
      const std::string q = query_value(req.query, "q");
      if (q == "control.example.com") check(body == bootstrap_json({{q, snap->unpublished.at(q)}}));
      else check(body == snap->published_json);
    }
  }

  (void)query_value(in, "q");
  (void)valid_dns_name(in);

  const std::string json = vars_json(in);
  check(json.rfind("{\n", 0) == 0 && json.size() >= 3 && json.substr(json.size() - 2) == "}\n");
  return 0;
}
