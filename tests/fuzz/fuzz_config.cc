// libFuzzer target: YAML text into config::load_string.
//
// Input: the whole input is the YAML document (inputs over 4 KiB are
// skipped: yaml-cpp 0.7 gets slow on large pathological documents, and the
// loader's logic is reached with far less). Key file paths are resolved
// from the current directory; only regular files are read, so whatever the
// fuzzer names is at worst read and refused.
// Seeds: config/examples/*.yaml and small variants of them.
//
// Oracles (abort on violation): load_string never throws; a failure
// carries at least one error and every error has a non-empty message; a
// success dumps (secrets revealed) to YAML that loads again to an equal
// Config, and dumping that gives the same text (the dump is canonical).
//
// Known issue (not fixed here, see the report that added this target): the
// loader accepts strings that are not valid UTF-8 (e.g. a port's device
// "net_tap0,iface=\xff"), and yaml-cpp's emitter writes each invalid byte
// as U+FFFD, so the dump loads to a different Config. Until the loader
// refuses such input, only the equality and canonical-dump oracles are
// skipped for inputs that are not valid UTF-8 (the dump must still load),
// unless FUZZ_CONFIG_STRICT=1 is set (to check a fix).
//
// FUZZ_CONFIG_VERBOSE=1 in the environment prints each input's outcome.
#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <string>

#include "config/config.h"

namespace {

[[noreturn]] void fail(const char* what, const std::string& detail) {
  std::fprintf(stderr, "fuzz oracle violated: %s\n%s\n", what, detail.c_str());
  std::abort();
}

// RFC 3629 UTF-8: no overlongs, no surrogates, nothing above U+10FFFF.
bool valid_utf8(const std::uint8_t* p, std::size_t n) {
  std::size_t i = 0;
  while (i < n) {
    const std::uint8_t c = p[i];
    std::size_t len = 0;
    std::uint32_t cp = 0;
    if (c < 0x80) {
      ++i;
      continue;
    } else if ((c & 0xe0) == 0xc0) {
      len = 2, cp = c & 0x1f;
    } else if ((c & 0xf0) == 0xe0) {
      len = 3, cp = c & 0x0f;
    } else if ((c & 0xf8) == 0xf0) {
      len = 4, cp = c & 0x07;
    } else {
      return false;
    }
    if (n - i < len) return false;
    for (std::size_t k = 1; k < len; ++k) {
      if ((p[i + k] & 0xc0) != 0x80) return false;
      cp = (cp << 6) | (p[i + k] & 0x3f);
    }
    static constexpr std::uint32_t kMin[5] = {0, 0, 0x80, 0x800, 0x10000};
    if (cp < kMin[len] || cp > 0x10ffff || (cp >= 0xd800 && cp <= 0xdfff)) return false;
    i += len;
  }
  return true;
}

void check_errors(const moongate::config::Result& r, const char* what) {
  if (r.errors().empty()) fail(what, "failure without errors");
  for (const auto& e : r.errors()) {
    if (e.message.empty()) fail(what, "error with an empty message: " + e.to_string());
  }
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  using namespace moongate::config;
  if (size > 4096) return 0;
  const std::string yaml(reinterpret_cast<const char*>(data), size);

  Result first = load_string(yaml, "fuzz.yaml");
  static const bool verbose = std::getenv("FUZZ_CONFIG_VERBOSE") != nullptr;
  if (verbose) {
    std::fprintf(stderr, "load: %s\n%s", first.ok() ? "ok" : "failed",
                 first.ok() ? "" : first.error_text().c_str());
  }
  if (!first.ok()) {
    check_errors(first, "load_string failed");
    return 0;
  }
  if (!first.errors().empty()) fail("load_string", "success with errors");

  const std::string dumped = dump(first.config(), {.reveal_secrets = true});
  Result second = load_string(dumped, "dump.yaml");
  if (!second.ok()) {
    fail("the dump of a loaded config does not load",
         "--- dump:\n" + dumped + "--- errors:\n" + second.error_text());
  }
  static const bool strict = std::getenv("FUZZ_CONFIG_STRICT") != nullptr;
  if (!strict && !valid_utf8(data, size)) return 0;  // the known issue above
  if (!(second.config() == first.config())) {
    fail("the dump of a loaded config loads to a different config", "--- dump:\n" + dumped);
  }
  const std::string again = dump(second.config(), {.reveal_secrets = true});
  if (again != dumped) {
    fail("dump is not canonical", "--- first:\n" + dumped + "--- second:\n" + again);
  }
  return 0;
}
