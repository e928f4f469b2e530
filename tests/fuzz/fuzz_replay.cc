// libFuzzer target: ReplayWindow (a ring of 64-bit blocks) against the
// obvious model (a set of the counters accepted inside the window), over
// a sequence of counters. Any disagreement aborts.
//
// Input: data[0] picks the limit (REJECT_AFTER_MESSAGES, 2^64-1, or a
// small one so the limit is reachable), then records of one op byte and
// a counter whose encoding the op picks, so the fuzzer can reach the
// interesting places without guessing 64-bit numbers:
//   op & 3 == 0  absolute: le64
//   op & 3 == 1  around the newest: greatest + (int16) le16
//   op & 3 == 2  around the window's trailing edge:
//                greatest - kWindowSize + (int16) le16
//   op & 3 == 3  just below the limit: limit - 1 - le16
//   op & 4       check() only, else check_and_update()
#include <cstddef>
#include <cstdint>

#include "tests/fuzz/fuzz_common.h"
#include "wireguard/replay.h"

namespace {

using namespace moongate;
using fuzz::check;

std::uint64_t le16_signed(const std::uint8_t* p) {
  const auto v = static_cast<std::int16_t>(static_cast<std::uint16_t>(p[0] | p[1] << 8));
  return static_cast<std::uint64_t>(static_cast<std::int64_t>(v));
}

void run(const std::uint8_t* data, std::size_t size) {
  if (size == 0) return;
  static constexpr std::uint64_t kLimits[] = {wg::kRejectAfterMessages, ~std::uint64_t{0},
                                              20000};
  const std::uint64_t limit = kLimits[data[0] % 3];
  ++data;
  --size;

  wg::ReplayWindow w;
  fuzz::NaiveReplay ref(wg::ReplayWindow::kWindowSize);
  while (size >= 1) {
    const std::uint8_t op = data[0];
    ++data;
    --size;
    const std::size_t need = (op & 3) == 0 ? 8 : 2;
    if (size < need) break;
    std::uint64_t counter = 0;
    switch (op & 3) {
      case 0: counter = wg::load_le64(data); break;
      case 1: counter = ref.greatest() + le16_signed(data); break;
      case 2: counter = ref.greatest() - wg::ReplayWindow::kWindowSize + le16_signed(data); break;
      default: counter = limit - 1 - static_cast<std::uint64_t>(data[0] | data[1] << 8); break;
    }
    data += need;
    size -= need;

    if (op & 4) {
      check(w.check(counter, limit) == ref.check(counter, limit), "check() disagrees with the model");
    } else {
      const bool want = ref.check_and_update(counter, limit);
      check(w.check_and_update(counter, limit) == want, "check_and_update() disagrees with the model");
    }
    check(w.next_expected() == (ref.any() ? ref.greatest() + 1 : 0),
          "next_expected() disagrees with the model");
  }
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  run(data, size);
  return 0;
}
