// libFuzzer target: handshake initiations into Device::receive_handshake
// of a responder (B, knowing peer A).
//
// Input: data[0] picks the mode, the rest is the message material.
//   0  raw: the rest is the whole UDP payload (any type, any length)
//   1  structured: type 1, bytes 4.. from the input (zero-filled to 148),
//      mac1 recomputed so the message reaches the Noise code
//   2  as 1, responder under load: a cookie reply unless mac2 is valid
//   3  as 1, responder under load, mac2 made valid through a real cookie
//      exchange: reaches the Noise code past check_mac2
// Seeds (make_corpus) hold A's genuine initiation in every mode.
//
// Oracles (abort on violation): the verdict is counted exactly once;
// a refused message sends nothing (except the one cookie reply of
// kCookieSent) and leaves the peer's handshake, keypairs and indices as
// they were; an accepted one sends exactly one response to its source and
// is refused as stale when replayed.
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
  const unsigned mode = data[0] % 4;
  ++data;
  --size;

  static fuzz::Cache<fuzz::Responder> cache(fuzz::kSeedResponder);
  fuzz::Responder& b = cache.get();
  b.dev.set_under_load(mode >= 2);
  // Past the flood interval and any rounding of the TAI64N timestamp.
  const wg::Instant now = fuzz::later(f.t0, wg::kSecond);
  const wg::Endpoint& src = f.addr_a;

  std::uint8_t msg[wg::kInitiationLen] = {};
  const std::uint8_t* payload = data;
  std::size_t len = size;
  if (mode != 0) {
    std::memcpy(msg + 4, data, size < sizeof msg - 4 ? size : sizeof msg - 4);
    wg::store_le32(msg, static_cast<std::uint32_t>(wg::MessageType::kInitiation));
    std::uint8_t mac2[16];
    std::memcpy(mac2, msg + wg::mac2_offset(sizeof msg), 16);
    fuzz::write_mac1(msg, sizeof msg, f.pub_b, now.mono);
    // mac2 is not covered by mac1: keep the fuzzer's.
    std::memcpy(msg + wg::mac2_offset(sizeof msg), mac2, 16);
    if (mode == 3 && !fuzz::write_mac1_mac2(msg, sizeof msg, b.dev, b.host, src, now))
      fuzz::fail("no cookie for a message with a valid mac1 under load");
    payload = msg;
    len = sizeof msg;
  }

  const fuzz::PeerSnapshot before(b.dev, *b.peer);
  const auto counters = b.dev.drop_counters();
  b.host.sent.clear();
  const wg::Drop d = b.dev.receive_handshake(payload, len, src, now);
  if (d == wg::Drop::kOk) cache.dirty();  // a new session: start over
  fuzz::check_counted(counters, b.dev, d);

  const wg::MessageType type = wg::classify_message(payload, len);
  if (type == wg::MessageType::kInvalid) check(d == wg::Drop::kMalformed, "invalid type not malformed");
  if (mode == 3) check(d != wg::Drop::kCookieSent, "valid mac2 answered with a cookie");

  if (d == wg::Drop::kOk) {
    check(type == wg::MessageType::kInitiation, "accepted a non-initiation");
    check(b.host.sent.size() == 1 && b.host.sent[0].to_peer &&
              b.host.sent[0].bytes.size() == wg::kResponseLen && b.host.sent[0].to == src,
          "accepted initiation not answered by one response to its source");
    check(b.peer->keypairs.next() != nullptr, "accepted initiation derived no keypair");
    // The very same message again is a replay.
    b.host.sent.clear();
    const wg::Drop again = b.dev.receive_handshake(payload, len, src, now);
    check(again == wg::Drop::kStaleTimestamp, "replayed initiation not refused as stale");
    check(b.host.sent.empty(), "replayed initiation answered");
    return;
  }
  if (d == wg::Drop::kCookieSent) {
    check(b.host.sent.size() == 1 && !b.host.sent[0].to_peer &&
              b.host.sent[0].bytes.size() == wg::kCookieReplyLen && b.host.sent[0].to == src,
          "cookie verdict without exactly one cookie reply");
  } else {
    check(b.host.sent.empty(), "refused initiation answered");
  }
  check(fuzz::PeerSnapshot(b.dev, *b.peer) == before, "refused initiation changed peer state");
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  run(data, size);
  return 0;
}
