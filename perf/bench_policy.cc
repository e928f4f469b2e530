// What a policy change costs the netmap service (dataplane/netmap_service.h,
// step 4), off the worker lcores: compiling the policy against the peers'
// ids (policy::compile) and building the rte_acl classifier the workers
// then share (AclClassifier::build), for netmaps of growing size. Also the
// snapshot's share: encoding and decoding a netmap with that policy.
//
// The policy (per netmap of P peers): 4 tags, every peer carrying one; a
// group `staff` of P/2 peers by name; 8 rules: group:staff, each tag, a
// CIDR, `*`, two destinations and 1-3 port ranges each — so the flat rules
// grow with the peers a group or tag covers, as they do in production
// (docs/exit-node.md, "Policy scale").
//
//   bench_policy [--peers 100,1000,10000] [--reps N]
#include <rte_eal.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string>
#include <vector>

#include "config/key.h"
#include "netmap/snapshot.h"
#include "policy/acl.h"
#include "policy/compile.h"

using namespace moongate;

namespace {

double ms_since(std::chrono::steady_clock::time_point t0) {
  return std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - t0).count();
}

std::vector<std::size_t> parse_list(const char* s) {
  std::vector<std::size_t> v;
  for (const char* p = s; *p != '\0';) {
    char* end = nullptr;
    v.push_back(std::strtoull(p, &end, 10));
    p = *end == ',' ? end + 1 : end;
  }
  return v;
}

}  // namespace

int main(int argc, char** argv) {
  std::vector<std::size_t> sizes{100, 1000, 10000};
  int reps = 5;
  for (int i = 1; i + 1 < argc; i += 2) {
    if (std::strcmp(argv[i], "--peers") == 0) sizes = parse_list(argv[i + 1]);
    else if (std::strcmp(argv[i], "--reps") == 0) reps = std::atoi(argv[i + 1]);
    else {
      std::fprintf(stderr, "usage: %s [--peers 100,1000,10000] [--reps N]\n", argv[0]);
      return 2;
    }
  }
  const char* eal[] = {"bench_policy", "--no-huge", "-m", "512", "--no-pci", "--no-shconf",
                       "--file-prefix=bench-policy", "-l", "0", "--no-telemetry", "--log-level", "lib.eal:error"};
  if (rte_eal_init(static_cast<int>(std::size(eal)), const_cast<char**>(eal)) < 0) {
    std::fprintf(stderr, "EAL init failed\n");
    return 1;
  }
  const char* tags[] = {"laptop", "server", "ci", "guest"};
  std::printf("%-8s %8s %8s %12s %12s %12s %12s\n", "peers", "rules", "flat", "compile ms", "acl build ms",
              "encode ms", "decode ms");
  for (std::size_t peers : sizes) {
    netmap::Netmap n;
    policy::PolicySpec& spec = n.policy.emplace();
    spec.tags.assign(std::begin(tags), std::end(tags));
    std::vector<policy::PeerInfo> info;
    for (std::size_t i = 0; i < peers; ++i) {
      config::Peer p;
      for (std::size_t b = 0; b < 4; ++b) p.public_key[b] = static_cast<std::uint8_t>(i >> (8 * b));
      p.name = "peer" + std::to_string(i);
      p.tags = {tags[i % 4]};
      config::IpPrefix a;
      a.addr.family = 4;
      a.addr.bytes[0] = 100;
      a.addr.bytes[1] = 64 + static_cast<std::uint8_t>(i >> 16);
      a.addr.bytes[2] = static_cast<std::uint8_t>(i >> 8);
      a.addr.bytes[3] = static_cast<std::uint8_t>(i);
      a.len = 32;
      p.allowed_ips.push_back(a);
      if (i % 2 == 0) spec.groups["staff"].push_back(p.name);
      info.push_back({static_cast<std::uint32_t>(i + 1), p.name, config::encode_key(p.public_key.data()), p.tags});
      n.peers.push_back(std::move(p));
    }
    spec.rules.push_back({{"group:staff"}, {"10.0.0.0/8:22,443", "198.51.100.0/24:*"}, "tcp"});
    for (const char* t : tags) spec.rules.push_back({{std::string("tag:") + t}, {"10.1.0.0/16:80"}, "tcp"});
    spec.rules.push_back({{"192.168.0.0/16"}, {"10.2.0.0/16:53"}, "udp"});
    spec.rules.push_back({{"*"}, {"10.3.0.0/16:*"}, "icmp"});
    spec.rules.push_back({{"peer1", "peer3"}, {"10.4.0.0/16:8000-8100,9000"}, "any"});

    double compile_ms = 1e30, build_ms = 1e30, encode_ms = 1e30, decode_ms = 1e30;
    std::size_t flat = 0;
    std::vector<std::uint8_t> bytes(netmap::encoded_size(n));
    for (int r = 0; r < reps; ++r) {
      auto t0 = std::chrono::steady_clock::now();
      const policy::CompileResult c = policy::compile(spec, info);
      compile_ms = std::min(compile_ms, ms_since(t0));
      if (!c.ok()) {
        std::fprintf(stderr, "%s: %s\n", c.errors.front().path.c_str(), c.errors.front().message.c_str());
        return 1;
      }
      flat = c.policy.flat.size();
      std::string err;
      t0 = std::chrono::steady_clock::now();
      auto acl = policy::AclClassifier::build(c.policy, -1, err);
      build_ms = std::min(build_ms, ms_since(t0));
      if (!acl) {
        std::fprintf(stderr, "%s\n", err.c_str());
        return 1;
      }
      t0 = std::chrono::steady_clock::now();
      if (netmap::encode(n, bytes) != bytes.size()) {
        std::fprintf(stderr, "does not encode: %s\n", netmap::encodable(n).c_str());
        return 1;
      }
      encode_ms = std::min(encode_ms, ms_since(t0));
      netmap::Netmap back;
      t0 = std::chrono::steady_clock::now();
      if (const std::string e = netmap::decode(bytes, back); !e.empty()) {
        std::fprintf(stderr, "does not decode: %s\n", e.c_str());
        return 1;
      }
      decode_ms = std::min(decode_ms, ms_since(t0));
    }
    std::printf("%-8zu %8zu %8zu %12.2f %12.2f %12.2f %12.2f\n", peers, spec.rules.size(), flat, compile_ms, build_ms,
                encode_ms, decode_ms);
  }
  rte_eal_cleanup();
  return 0;
}
