// libFuzzer target: cookie replies into Device::receive_handshake of an
// initiator (A) whose initiation to B is in flight, so a reply addressed
// to its handshake index reaches CookieMaker::consume_reply.
//
// Input: data[0] picks the mode, the rest is the message material.
//   0  raw: the rest is the whole UDP payload (any type, any length)
//   1  structured: type 3, bytes 4.. from the input (zero-filled to 64)
//   2  as 1 with the receiver index forced to A's pending one
// Seeds (make_corpus) hold the cookie reply B sends under load in
// answer to exactly that initiation.
//
// Oracles (abort on violation): the verdict is counted exactly once;
// nothing is ever sent in reply; only kOk gives A a cookie, and then a
// replay of the same reply is refused (one reply per message sent); a
// refused reply leaves A's handshake, keypairs and counters unchanged.
#include <cstddef>
#include <cstdint>
#include <cstring>

#include "tests/fuzz/fuzz_common.h"

namespace {

using namespace moongate;
using fuzz::check;

void run(const std::uint8_t* data, std::size_t size) {
  const fuzz::Fixture& f = fuzz::fixture();
  if (size == 0) return;
  const unsigned mode = data[0] % 3;
  ++data;
  --size;

  static fuzz::Cache<fuzz::Initiator> cache(fuzz::kSeedInitiator);
  fuzz::Initiator& a = cache.get();
  const wg::Instant now = fuzz::later(f.t0, 10 * wg::kMillisecond);
  const wg::Endpoint& src = f.addr_b;

  std::uint8_t msg[wg::kCookieReplyLen] = {};
  const std::uint8_t* payload = data;
  std::size_t len = size;
  if (mode != 0) {
    std::memcpy(msg + 4, data, size < sizeof msg - 4 ? size : sizeof msg - 4);
    wg::store_le32(msg, static_cast<std::uint32_t>(wg::MessageType::kCookieReply));
    if (mode == 2) wg::store_le32(msg + 4, a.peer->handshake.local_index);
    payload = msg;
    len = sizeof msg;
  }

  const fuzz::PeerSnapshot before(a.dev, *a.peer);
  const auto counters = a.dev.drop_counters();
  const wg::Drop d = a.dev.receive_handshake(payload, len, src, now);
  if (d == wg::Drop::kOk) cache.dirty();  // A holds a cookie now: start over
  fuzz::check_counted(counters, a.dev, d);
  check(a.host.sent.empty() && a.host.flushes == 0, "cookie reply answered");

  const wg::MessageType type = wg::classify_message(payload, len);
  if (type == wg::MessageType::kInvalid) check(d == wg::Drop::kMalformed, "invalid type not malformed");
  const bool fresh = a.peer->cookie.has_fresh_cookie(now.mono);
  if (type == wg::MessageType::kCookieReply) {
    check(fresh == (d == wg::Drop::kOk), "cookie stored iff the reply was accepted");
    if (d == wg::Drop::kOk) {
      check(a.dev.receive_handshake(payload, len, src, now) == wg::Drop::kUnexpectedHandshake,
            "second cookie reply for one message accepted");
      return;
    }
  }
  if (d != wg::Drop::kOk)
    check(fuzz::PeerSnapshot(a.dev, *a.peer) == before, "refused message changed peer state");
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  run(data, size);
  return 0;
}
