// Fuzzes the netmap snapshot decoder (netmap/snapshot.h), the data plane's
// reader of what moongate-control publishes: each input is decoded as it
// comes, then again with its size field and checksum rewritten to match
// (so the structural checks behind the checksum — counts, offsets,
// labels, the policy section — are reached, not only the checksum).
// Oracles: no sanitizer report; a snapshot that decodes encodes to
// encoded_size() bytes and decodes back to the same netmap.
#include <cstdlib>
#include <cstring>
#include <vector>

#include "netmap/snapshot.h"

using namespace moongate::netmap;

namespace {

void round_trip(const Netmap& n) {
  std::vector<std::uint8_t> out(encoded_size(n));
  if (encode(n, out) != out.size()) std::abort();
  Netmap back;
  if (!decode(out, back).empty() || !(back == n)) std::abort();
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  Netmap n;
  if (decode({data, size}, n).empty()) round_trip(n);
  if (size < kSnapshotHeaderLen + 32) return 0;
  // The same bytes sealed: size = the input's, the FNV-1a of snapshot.cc.
  std::vector<std::uint8_t> b(data, data + size);
  for (int i = 0; i < 4; ++i) b[16 + i] = static_cast<std::uint8_t>(size >> (8 * i));
  std::uint32_t h = 2166136261u;
  for (std::size_t i = 0; i < b.size(); ++i)
    if (i < 36 || i >= 40) h = (h ^ b[i]) * 16777619u;
  for (int i = 0; i < 4; ++i) b[36 + i] = static_cast<std::uint8_t>(h >> (8 * i));
  Netmap m;
  if (decode(b, m).empty()) round_trip(m);
  return 0;
}
