// Fuzzes STUN (stun/stun.h): every datagram is parsed; an accepted one is
// answered, and the answer must parse back as a success response for the
// same transaction with the source's address (for cookie requests).
// Oracles: no sanitizer report; the reply fits kMaxReply; the round trip.
#include <cstdlib>
#include <cstring>

#include "stun/stun.h"

using namespace moongate::stun;

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  Request r;
  if (parse({data, size}, r) != Drop::kNone) return 0;
  Address a;
  a.ip[10] = a.ip[11] = 0xff;
  a.ip[12] = 192;
  a.ip[15] = 7;
  a.port = 41641;
  std::uint8_t out[kMaxReply];
  const std::size_t n = respond(r, a, out);
  if (n > kMaxReply) std::abort();
  if (r.kind != Kind::kClassic) {
    std::array<std::uint8_t, 12> tx;
    std::memcpy(tx.data(), r.id.data() + 4, 12);
    Address back;
    if (!parse_response({out, n}, tx, back) || back.port != a.port || back.ip != a.ip) std::abort();
  }
  return 0;
}
