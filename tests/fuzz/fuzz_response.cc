// libFuzzer target: handshake responses into Device::receive_handshake of
// an initiator (A) whose initiation to B is in flight, so its handshake
// index is registered and its Noise state waits for a response.
//
// Input: data[0] picks the mode, the rest is the message material.
//   0  raw: the rest is the whole UDP payload (any type, any length)
//   1  structured: type 2, bytes 4.. from the input (zero-filled to 92),
//      mac1 recomputed
//   2  as 1 with the receiver index forced to A's pending one: reaches
//      noise_consume_response
//   3  as 2, A under load, mac2 made valid through a real cookie exchange
// Seeds (make_corpus) hold B's genuine response to A's initiation.
//
// Oracles (abort on violation): the verdict is counted exactly once; a
// refused response sends nothing (except the one cookie reply of
// kCookieSent) and leaves A's handshake (state, keys, index), keypairs and
// counters as they were; an accepted one completes the handshake (a
// current keypair, staged packets flushed) and is refused when replayed.
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

  static fuzz::Cache<fuzz::Initiator> cache(fuzz::kSeedInitiator);
  fuzz::Initiator& a = cache.get();
  a.dev.set_under_load(mode == 3);
  const wg::Instant now = fuzz::later(f.t0, 10 * wg::kMillisecond);
  const wg::Endpoint& src = f.addr_b;

  std::uint8_t msg[wg::kResponseLen] = {};
  const std::uint8_t* payload = data;
  std::size_t len = size;
  if (mode != 0) {
    std::memcpy(msg + 4, data, size < sizeof msg - 4 ? size : sizeof msg - 4);
    wg::store_le32(msg, static_cast<std::uint32_t>(wg::MessageType::kResponse));
    if (mode >= 2) wg::store_le32(msg + 8, a.peer->handshake.local_index);
    std::uint8_t mac2[16];
    std::memcpy(mac2, msg + wg::mac2_offset(sizeof msg), 16);
    fuzz::write_mac1(msg, sizeof msg, f.pub_a, now.mono);
    std::memcpy(msg + wg::mac2_offset(sizeof msg), mac2, 16);  // not covered by mac1
    if (mode == 3 && !fuzz::write_mac1_mac2(msg, sizeof msg, a.dev, a.host, src, now))
      fuzz::fail("no cookie for a message with a valid mac1 under load");
    payload = msg;
    len = sizeof msg;
  }

  const fuzz::PeerSnapshot before(a.dev, *a.peer);
  const auto counters = a.dev.drop_counters();
  a.host.sent.clear();
  const wg::Drop d = a.dev.receive_handshake(payload, len, src, now);
  if (d == wg::Drop::kOk) cache.dirty();  // a session or a cookie: start over
  fuzz::check_counted(counters, a.dev, d);

  const wg::MessageType type = wg::classify_message(payload, len);
  if (type == wg::MessageType::kInvalid) check(d == wg::Drop::kMalformed, "invalid type not malformed");
  if (mode == 3) check(d != wg::Drop::kCookieSent, "valid mac2 answered with a cookie");

  if (d == wg::Drop::kOk && type == wg::MessageType::kResponse) {
    check(a.peer->keypairs.current() != nullptr && a.peer->handshakes_completed == 1,
          "accepted response completed no handshake");
    check(a.peer->keypairs.current()->local_index == before.hs.local_index,
          "session does not take over the handshake index");
    check(a.host.flushes == 1, "completed handshake did not flush staged packets");
    check(a.host.sent.empty(), "response answered with a handshake message");
    // Replayed: the index now names the keypair, not a handshake.
    const wg::Drop again = a.dev.receive_handshake(payload, len, src, now);
    check(again == wg::Drop::kUnknownIndex, "replayed response not refused");
    return;
  }
  if (d == wg::Drop::kOk) {
    // Only a raw-mode message of another type gets here: a cookie reply
    // can be genuine only if the fuzzer forged XChaCha20-Poly1305, and an
    // initiation would have to come from a peer A knows (A knows only B).
    check(type == wg::MessageType::kCookieReply, "initiator accepted an unexpected message");
    return;
  }
  if (d == wg::Drop::kCookieSent) {
    check(a.host.sent.size() == 1 && !a.host.sent[0].to_peer &&
              a.host.sent[0].bytes.size() == wg::kCookieReplyLen,
          "cookie verdict without exactly one cookie reply");
  } else {
    check(a.host.sent.empty(), "refused response answered");
  }
  check(a.host.flushes == 0, "refused response flushed staged packets");
  check(fuzz::PeerSnapshot(a.dev, *a.peer) == before, "refused response changed peer state");
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  run(data, size);
  return 0;
}
