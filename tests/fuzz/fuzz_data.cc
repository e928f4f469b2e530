// libFuzzer target: data messages into Transport::receive (prepare_receive
// -> AeadBurst::decrypt -> complete_receive) of B, the responder of an
// established, confirmed session with A.
//
// Input: data[0] picks the mode, the rest is the message material.
//   0  raw: the rest is the whole UDP payload, delivered to B
//   1  valid index: as 0, but the type is forced to 4 and the receiver
//      index to B's current keypair (when the payload is long enough),
//      so the fuzzer works on the counter, replay check and AEAD
//   2  authentic sequence: records [flags u8][counter le64][len u8][len
//      plaintext bytes], each sealed with A's real send key and delivered
//      in order. flags bit 0: flip a tag bit (forgery); bit 1: the counter
//      is relative, greatest accepted + (int16) low bits. Compared against
//      a naive replay model: every authentic, fresh, in-window counter
//      below REJECT_AFTER_MESSAGES must be accepted with its plaintext,
//      everything else refused.
// Seeds (make_corpus) hold genuine data messages and keepalives from A.
//
// Oracles (abort on violation): nothing is ever sent in answer to data;
// an accepted raw message is attributed to A and refused when replayed;
// mode 2 as above.
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <vector>

#include "tests/fuzz/fuzz_common.h"

namespace {

using namespace moongate;
using fuzz::check;

void run_raw(fuzz::Pair& p, const std::uint8_t* data, std::size_t size, bool force_index,
             wg::Instant now) {
  const fuzz::Fixture& f = fuzz::fixture();
  std::vector<std::uint8_t> msg(data, data + size);
  if (force_index && msg.size() >= 4)
    wg::store_le32(msg.data(), static_cast<std::uint32_t>(wg::MessageType::kData));
  if (force_index && msg.size() >= 8)
    wg::store_le32(msg.data() + 4, p.pa->keypairs.current()->local_index);
  const auto r = p.b.receive(msg.data(), msg.size(), f.addr_a, now, p.rx.data(), p.rx.size());
  check(p.wire_b.out.empty(), "data answered");
  if (wg::classify_message(msg.data(), msg.size()) == wg::MessageType::kInvalid)
    check(r.drop == wg::Drop::kMalformed, "invalid message not malformed");
  if (r.drop == wg::Drop::kOk && r.type == wg::MessageType::kData) {
    check(r.peer == p.pa, "data attributed to the wrong peer");
    const auto again = p.b.receive(msg.data(), msg.size(), f.addr_a, now, p.rx.data(), p.rx.size());
    check(again.drop == wg::Drop::kReplay, "replayed data accepted");
  }
}

void run_sequence(fuzz::Pair& p, const std::uint8_t* data, std::size_t size, wg::Instant now) {
  const fuzz::Fixture& f = fuzz::fixture();
  const wg::SendLine& tx = p.pb->send;  // A's sending side
  fuzz::NaiveReplay ref(wg::ReplayWindow::kWindowSize);
  // A's hello confirmed the session under counter 0 (fuzz::Pair).
  ref.check_and_update(0, wg::kRejectAfterMessages);

  std::uint8_t plain[256];
  for (int records = 0; size >= 10 && records < 64; ++records) {
    const std::uint8_t flags = data[0];
    std::uint64_t counter = wg::load_le64(data + 1);
    const std::size_t len = data[9];
    data += 10;
    size -= 10;
    const std::size_t have = len < size ? len : size;
    std::memset(plain, 0, sizeof plain);
    std::memcpy(plain, data, have);
    data += have;
    size -= have;
    if (flags & 2) {
      const auto delta = static_cast<std::int16_t>(counter & 0xffff);
      counter = ref.greatest() + static_cast<std::uint64_t>(static_cast<std::int64_t>(delta));
    }
    const bool forged = (flags & 1) != 0;

    std::vector<std::uint8_t> msg = fuzz::Pair::data_message(tx, counter, plain, len);
    if (forged) msg.back() ^= static_cast<std::uint8_t>(1u << (flags >> 5));
    const auto r = p.b.receive(msg.data(), msg.size(), f.addr_a, now, p.rx.data(), p.rx.size());
    check(p.wire_b.out.empty(), "data answered");

    const bool expect = !forged && ref.check(counter, wg::kRejectAfterMessages);
    if (expect) {
      check(r.drop == wg::Drop::kOk, "authentic fresh data refused");
      check(r.peer == p.pa && r.len == len && std::memcmp(p.rx.data(), plain, len) == 0,
            "accepted data does not carry its plaintext");
      ref.check_and_update(counter, wg::kRejectAfterMessages);
    } else {
      check(r.drop != wg::Drop::kOk, "forged or replayed data accepted");
      if (forged && ref.check(counter, wg::kRejectAfterMessages))
        check(r.drop == wg::Drop::kDataAuth, "forgery not counted as data_auth");
      if (!ref.check(counter, wg::kRejectAfterMessages))
        check(r.drop == wg::Drop::kReplay, "replay not counted as replay");
    }
  }
}

void run(const std::uint8_t* data, std::size_t size) {
  const fuzz::Fixture& f = fuzz::fixture();
  if (size == 0) return;
  const unsigned mode = data[0] % 3;
  ++data;
  --size;

  static fuzz::PairCache cache;
  fuzz::Pair& p = cache.get();
  const wg::Instant now = fuzz::later(f.t0, wg::kSecond);
  if (mode == 2)
    run_sequence(p, data, size, now);
  else
    run_raw(p, data, size, mode == 1, now);
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  run(data, size);
  return 0;
}
