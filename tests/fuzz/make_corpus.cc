// Writes the seed corpus of the fuzz targets: genuine messages produced by
// the real core in exactly the scenarios the targets rebuild for every
// input (fuzz_common.h: same fixed keys, same deterministic RNG), framed
// with each target's mode byte. A seed is therefore not just well-formed
// but accepted, so mutations start from inside the Noise and AEAD code.
// Each seed is checked against a fresh scenario before it is written.
//
// Usage: make_corpus <corpus dir>   (tests/fuzz/corpus in the source tree)
// Not run by the test suite; the generated files are kept in the repo.
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <string>
#include <vector>

#include "netmap/snapshot.h"
#include "tests/fuzz/fuzz_common.h"

namespace {

using namespace moongate;
using Bytes = std::vector<std::uint8_t>;

std::filesystem::path g_root;

void write(const std::string& target, const std::string& name, const Bytes& bytes) {
  const std::filesystem::path dir = g_root / target;
  std::filesystem::create_directories(dir);
  std::ofstream out(dir / ("seed-" + name), std::ios::binary | std::ios::trunc);
  out.write(reinterpret_cast<const char*>(bytes.data()), static_cast<std::streamsize>(bytes.size()));
  if (!out) fuzz::fail("cannot write a seed");
}

// mode byte + the message from byte `from` on.
Bytes framed(std::uint8_t mode, const Bytes& msg, std::size_t from = 0) {
  Bytes out{mode};
  out.insert(out.end(), msg.begin() + static_cast<std::ptrdiff_t>(from), msg.end());
  return out;
}

void expect(wg::Drop got, wg::Drop want, const char* what) {
  if (got != want) {
    std::fprintf(stderr, "make_corpus: %s: got %s, want %s\n", what, wg::drop_name(got),
                 wg::drop_name(want));
    std::exit(1);
  }
}

void initiation_seeds() {
  const fuzz::Fixture& f = fuzz::fixture();
  fuzz::reseed(fuzz::kSeedInitiator);
  const Bytes init = fuzz::Initiator().initiation;
  {
    // As fuzz_initiation delivers it: a fresh responder, one second in.
    fuzz::reseed(fuzz::kSeedResponder);
    fuzz::Responder b;
    expect(b.dev.receive_handshake(init.data(), init.size(), f.addr_a, fuzz::later(f.t0, wg::kSecond)),
           wg::Drop::kOk, "initiation seed");
  }
  write("fuzz_initiation", "raw", framed(0, init));
  write("fuzz_initiation", "mac1", framed(1, init, 4));
  write("fuzz_initiation", "under-load", framed(2, init, 4));
  write("fuzz_initiation", "mac2", framed(3, init, 4));
  write("fuzz_initiation", "raw-type-only", Bytes{0, 1, 0, 0, 0});
  write("fuzz_initiation", "raw-empty", Bytes{0});
}

void response_and_cookie_seeds() {
  const fuzz::Fixture& f = fuzz::fixture();
  const wg::Instant at = fuzz::later(f.t0, 10 * wg::kMillisecond);
  fuzz::reseed(fuzz::kSeedInitiator);
  const Bytes init = fuzz::Initiator().initiation;

  fuzz::Responder b;
  expect(b.dev.receive_handshake(init.data(), init.size(), f.addr_a, at), wg::Drop::kOk,
         "initiation for the response seed");
  const Bytes resp = b.host.sent.at(0).bytes;

  fuzz::Responder loaded;
  loaded.dev.set_under_load(true);
  expect(loaded.dev.receive_handshake(init.data(), init.size(), f.addr_a, at), wg::Drop::kCookieSent,
         "initiation for the cookie seed");
  const Bytes cookie = loaded.host.sent.at(0).bytes;

  {
    // As fuzz_response / fuzz_cookie_reply deliver them: a fresh initiator.
    fuzz::reseed(fuzz::kSeedInitiator);
    fuzz::Initiator a;
    expect(a.dev.receive_handshake(resp.data(), resp.size(), f.addr_b, at), wg::Drop::kOk,
           "response seed");
    fuzz::reseed(fuzz::kSeedInitiator);
    fuzz::Initiator a2;
    expect(a2.dev.receive_handshake(cookie.data(), cookie.size(), f.addr_b, at), wg::Drop::kOk,
           "cookie reply seed");
  }
  write("fuzz_response", "raw", framed(0, resp));
  write("fuzz_response", "mac1", framed(1, resp, 4));
  write("fuzz_response", "index", framed(2, resp, 4));
  write("fuzz_response", "mac2", framed(3, resp, 4));
  write("fuzz_response", "raw-initiation", framed(0, init));

  write("fuzz_cookie_reply", "raw", framed(0, cookie));
  write("fuzz_cookie_reply", "structured", framed(1, cookie, 4));
  write("fuzz_cookie_reply", "index", framed(2, cookie, 4));
}

Bytes record(std::uint8_t flags, std::uint64_t counter, const Bytes& plain) {
  Bytes r(10);
  r[0] = flags;
  wg::store_le64(r.data() + 1, counter);
  r[9] = static_cast<std::uint8_t>(plain.size());
  r.insert(r.end(), plain.begin(), plain.end());
  return r;
}

void data_and_any_seeds() {
  const fuzz::Fixture& f = fuzz::fixture();
  fuzz::reseed(fuzz::kSeedPair);
  fuzz::Pair p;
  const Bytes pkt(64, 0x45);
  expect(p.a.send(*p.pb, pkt.data(), pkt.size(), f.t0), wg::Drop::kOk, "data from A");
  expect(p.a.send(*p.pb, nullptr, 0, f.t0), wg::Drop::kOk, "keepalive from A");
  expect(p.b.send(*p.pa, pkt.data(), pkt.size(), f.t0), wg::Drop::kOk, "data from B");
  if (p.wire_a.out.size() != 2 || p.wire_b.out.size() != 1) fuzz::fail("unexpected sends");
  const Bytes data_ab = p.wire_a.out[0].bytes;
  const Bytes keepalive_ab = p.wire_a.out[1].bytes;
  const Bytes data_ba = p.wire_b.out[0].bytes;
  p.wire_a.out.clear();
  p.wire_b.out.clear();

  // A new handshake six seconds in, and both answers B could give it.
  const wg::Instant later = fuzz::later(f.t0, 6 * wg::kSecond);
  expect(p.a.device().initiate_handshake(*p.pb, later), wg::Drop::kOk, "new initiation");
  const Bytes init = p.wire_a.out.at(0).bytes;
  p.b.device().set_under_load(true);
  expect(p.b.receive(init.data(), init.size(), f.addr_a, later, p.rx.data(), p.rx.size()).drop,
         wg::Drop::kCookieSent, "cookie for the new initiation");
  const Bytes cookie = p.wire_b.out.at(0).bytes;
  p.wire_b.out.clear();
  p.b.device().set_under_load(false);
  expect(p.b.receive(init.data(), init.size(), f.addr_a, later, p.rx.data(), p.rx.size()).drop,
         wg::Drop::kOk, "response to the new initiation");
  const Bytes resp = p.wire_b.out.at(0).bytes;

  {
    // As the targets deliver them: a fresh pair.
    fuzz::reseed(fuzz::kSeedPair);
    fuzz::Pair q;
    for (const Bytes* m : {&data_ab, &keepalive_ab})
      expect(q.b.receive(m->data(), m->size(), f.addr_a, later, q.rx.data(), q.rx.size()).drop,
             wg::Drop::kOk, "data seed for B");
    expect(q.a.receive(data_ba.data(), data_ba.size(), f.addr_b, later, q.rx.data(), q.rx.size()).drop,
           wg::Drop::kOk, "data seed for A");
    expect(q.b.receive(init.data(), init.size(), f.addr_a, later, q.rx.data(), q.rx.size()).drop,
           wg::Drop::kOk, "initiation seed for B");
  }

  write("fuzz_data", "raw", framed(0, data_ab));
  write("fuzz_data", "raw-keepalive", framed(0, keepalive_ab));
  write("fuzz_data", "index", framed(1, data_ab));
  write("fuzz_data", "index-keepalive", framed(1, keepalive_ab));
  Bytes seq{2};
  const Bytes plain(16, 0x45);
  for (const Bytes& r : {record(0, 1, plain), record(0, 1, plain), record(2, 5, plain),
                         record(1, 7, plain), record(0, 10000, Bytes()), record(0, 9000, plain),
                         record(0, 100, plain), record(2, 0xffff, plain),
                         record(0, wg::kRejectAfterMessages - 1, plain),
                         record(0, wg::kRejectAfterMessages, plain)})
    seq.insert(seq.end(), r.begin(), r.end());
  write("fuzz_data", "sequence", seq);

  write("fuzz_any", "initiation", init);
  write("fuzz_any", "response", resp);
  write("fuzz_any", "cookie-reply", cookie);
  write("fuzz_any", "data-a-to-b", data_ab);
  write("fuzz_any", "keepalive-a-to-b", keepalive_ab);
  write("fuzz_any", "data-b-to-a", data_ba);
  write("fuzz_any", "empty", Bytes());
  write("fuzz_any", "type-data-header", Bytes{4, 0, 0, 0, 1, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0});
}

void replay_seeds() {
  auto op = [](Bytes& out, std::uint8_t kind, std::uint64_t v) {
    out.push_back(kind);
    const std::size_t n = (kind & 3) == 0 ? 8 : 2;
    for (std::size_t i = 0; i < n; ++i) out.push_back(static_cast<std::uint8_t>(v >> (8 * i)));
  };
  Bytes in_order{0};
  for (std::uint64_t c = 0; c < 16; ++c) op(in_order, 0, c);
  write("fuzz_replay", "in-order", in_order);

  Bytes reorder{0};
  for (std::uint64_t c : {5, 3, 9, 3, 1, 0, 9, 70, 6}) op(reorder, 0, c);
  op(reorder, 4, 2);  // check only
  write("fuzz_replay", "reorder", reorder);

  Bytes edge{0};
  op(edge, 0, 100000);
  for (std::uint64_t d : {0, 1, 0xffff, 0xfffe}) op(edge, 2, d);  // window edge +0, +1, -1, -2
  op(edge, 1, 64);
  op(edge, 1, 8192);
  op(edge, 2, 0);
  write("fuzz_replay", "window-edge", edge);

  Bytes limit{0};
  for (std::uint64_t d : {0, 1, 0, 100}) op(limit, 3, d);
  op(limit, 1, 1);  // one past the last allowed
  write("fuzz_replay", "limit", limit);

  Bytes small{2};  // limit 20000
  for (std::uint64_t c : {19999, 20000, 12000, 11871, 11872}) op(small, 0, c);
  write("fuzz_replay", "small-limit", small);
}

// fuzz_netmap: snapshots with every section: none, peers with labels,
// routes, a policy (empty, and with groups, tags and rules).
void netmap_seeds() {
  auto snapshot = [](const netmap::Netmap& n) {
    Bytes b(netmap::encoded_size(n));
    if (netmap::encode(n, b) != b.size()) fuzz::fail("netmap seed does not encode");
    netmap::Netmap back;
    if (!netmap::decode(b, back).empty() || !(back == n)) fuzz::fail("netmap seed does not decode");
    return b;
  };
  netmap::Netmap n;
  write("fuzz_netmap", "empty", snapshot(n));
  n.has_private_key = true;
  n.private_key.data()[0] = 1;
  for (std::uint8_t i = 0; i < 3; ++i) {
    config::Peer p;
    p.public_key.fill(static_cast<std::uint8_t>(i + 1));
    config::IpPrefix a;
    a.addr.family = i == 2 ? 6 : 4;
    a.addr.bytes[0] = 10;
    a.addr.bytes[1] = i;
    a.len = 16;
    p.allowed_ips.push_back(a);
    p.persistent_keepalive = 25;
    n.peers.push_back(p);
  }
  n.peers[0].name = "alice";
  n.peers[0].tags = {"laptop", "eng"};
  n.peers[0].exit_node = true;
  n.peers[2].name = "ci";
  config::Route r;
  r.prefix.addr.family = 4;
  r.prefix.addr.bytes[0] = 10;
  r.prefix.addr.bytes[1] = 11;
  r.prefix.len = 16;
  r.via.family = 4;
  r.via.bytes[0] = 10;
  r.via.bytes[3] = 2;
  r.port_index = 1;
  n.routes.push_back(r);
  write("fuzz_netmap", "labels", snapshot(n));
  n.policy.emplace();
  write("fuzz_netmap", "empty-policy", snapshot(n));
  n.policy->tags = {"laptop", "eng"};
  n.policy->groups["staff"] = {"alice", "ci"};
  n.policy->groups["nobody"] = {};
  n.policy->rules.push_back({{"group:staff", "tag:eng"}, {"10.0.0.0/8:22,80,443", "*:53"}, "tcp"});
  n.policy->rules.push_back({{"*"}, {"198.51.100.0/24:*"}, "any"});
  write("fuzz_netmap", "policy", snapshot(n));
}

}  // namespace

int main(int argc, char** argv) {
  if (argc != 2) {
    std::fprintf(stderr, "usage: %s <corpus dir>\n", argv[0]);
    return 2;
  }
  g_root = argv[1];
  fuzz::fixture();  // installs the deterministic RNG before any crypto
  initiation_seeds();
  response_and_cookie_seeds();
  data_and_any_seeds();
  replay_seeds();
  netmap_seeds();
  return 0;
}
