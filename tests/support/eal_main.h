// main() for a unit test binary that needs DPDK: its own EAL around the
// tests, then the EAL's leftovers removed.
//
// No hugepages, no PCI, no shared config: it runs beside other DPDK
// processes on a development machine or CI. (This DPDK refuses
// --in-memory together with --no-huge; --no-shconf and a file prefix of
// the test's own keep it out of the other processes' way instead, as
// dataplane/main.cc does.)
#pragma once

#include <gtest/gtest.h>
#include <rte_eal.h>

#include <cstdio>
#include <filesystem>
#include <iterator>
#include <string>
#include <system_error>

namespace moongate::test {

// Parses gtest's flags, starts the EAL on lcore 0 with `prefix`, returns
// body() (which runs the tests, with whatever it builds on the EAL
// destroyed before returning), and cleans up the EAL and the runtime
// directory it leaves behind.
template <class Body>
int run_with_eal(int argc, char** argv, const char* prefix, Body&& body) {
  ::testing::InitGoogleTest(&argc, argv);
  const std::string file_prefix = std::string("--file-prefix=") + prefix;
  const char* eal[] = {argv[0], "--no-huge", "-m", "256", "--no-pci", "--no-shconf", file_prefix.c_str(),
                       "-l", "0", "--no-telemetry", "--log-level", "lib.eal:error"};
  if (rte_eal_init(static_cast<int>(std::size(eal)), const_cast<char**>(eal)) < 0) {
    std::fprintf(stderr, "EAL init failed\n");
    return 1;
  }
  const int rc = body();
  const std::string runtime_dir = rte_eal_get_runtime_dir();
  rte_eal_cleanup();
  std::error_code ignored;
  std::filesystem::remove_all(runtime_dir, ignored);
  return rc;
}

}  // namespace moongate::test
