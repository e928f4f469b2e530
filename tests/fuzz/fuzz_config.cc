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
// This target found that the loader kept bytes that are not UTF-8 (e.g. a
// port's device "net_tap0,iface=\xff") which yaml-cpp's emitter writes back
// as U+FFFD; the loader now refuses input that is not UTF-8, and every
// success must satisfy every oracle.
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
  if (!(second.config() == first.config())) {
    fail("the dump of a loaded config loads to a different config", "--- dump:\n" + dumped);
  }
  const std::string again = dump(second.config(), {.reveal_secrets = true});
  if (again != dumped) {
    fail("dump is not canonical", "--- first:\n" + dumped + "--- second:\n" + again);
  }
  return 0;
}
