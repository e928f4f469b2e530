// libFuzzer target: arbitrary bytes as one UDP payload into
// Transport::receive, the entry point every datagram takes, on both ends
// of an established session (B, the responder, then A, the initiator),
// six seconds after it was set up (past the initiation flood interval and
// A's handshake rate limit, so a genuine new initiation is accepted).
//
// The whole input is the payload: no mode byte, so the fuzzer also
// explores every type byte and length the classifier sees.
// Seeds (make_corpus) are genuine messages of every type from this
// scenario: a new initiation from A, data and keepalives both ways, a
// cookie reply, a response, plus a few short and empty payloads.
//
// Oracles (abort on violation): what the classifier calls invalid is a
// kMalformed drop; a refused datagram sends nothing; the verdict is
// counted exactly once (the Transport's own AEAD drops included).
#include <cstddef>
#include <cstdint>

#include "tests/fuzz/fuzz_common.h"

namespace {

using namespace moongate;
using fuzz::check;

void deliver(fuzz::Pair& p, testing::Transport& t, fuzz::QueueWire& wire,
             const std::uint8_t* data, std::size_t size, const wg::Endpoint& src,
             wg::Instant now) {
  const auto counters = t.device().drop_counters();
  wire.out.clear();
  const auto r = t.receive(data, size, src, now, p.rx.data(), p.rx.size());
  fuzz::check_counted(counters, t.device(), r.drop);
  check(r.type == wg::classify_message(data, size), "receive misreports the type");
  if (r.type == wg::MessageType::kInvalid) check(r.drop == wg::Drop::kMalformed, "invalid not malformed");
  if (r.drop != wg::Drop::kOk) check(wire.out.empty(), "refused datagram answered");
  if (r.drop == wg::Drop::kOk && r.type == wg::MessageType::kData) check(r.peer != nullptr, "data without a peer");
}

void run(const std::uint8_t* data, std::size_t size) {
  const fuzz::Fixture& f = fuzz::fixture();
  static fuzz::PairCache cache;
  fuzz::Pair& p = cache.get();
  const wg::Instant now = fuzz::later(f.t0, 6 * wg::kSecond);
  deliver(p, p.b, p.wire_b, data, size, f.addr_a, now);
  deliver(p, p.a, p.wire_a, data, size, f.addr_b, now);
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  run(data, size);
  return 0;
}
