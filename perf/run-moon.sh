#!/bin/sh
# Builds moongate in release mode and runs the ZeroTier moon relay
# benchmark (bench_moon: the I/O-free core, then the kernel UDP host of
# moongate-moon and the moon hosted by moongate-relay's shards, both on
# loopback; then the moon hosted by the DPDK data plane, bench_moon_dataplane,
# without the kernel) for 200- and 1400-byte packets, saving the Markdown table (with
# machine, commit and date) under docs/perf-results/moon-<date>.md.
#
# Usage: perf/run-moon.sh [--build-dir DIR] [--clients N] [--seconds S]
#   DIR defaults to $MOONGATE_PERF_BUILD_DIR, else build-perf.
set -eu

root=$(cd "$(dirname "$0")/.." && pwd)
cmdline="perf/run-moon.sh $*"
build=${MOONGATE_PERF_BUILD_DIR:-build-perf}
clients=1000
seconds=3
while [ $# -gt 0 ]; do
  case $1 in
    --build-dir) build=$2; shift 2 ;;
    --clients) clients=$2; shift 2 ;;
    --seconds) seconds=$2; shift 2 ;;
    *) echo "usage: $0 [--build-dir DIR] [--clients N] [--seconds S]" >&2; exit 2 ;;
  esac
done
. "$root/perf/common.sh"
perf_release_build "$build" perf/bench_moon -Dfuzz=disabled
# The data plane host needs DPDK (built when it is found).
ninja -C "$build" perf/bench_moon_dataplane >/dev/null 2>&1 || true
perf_result_facts moon

# The machine may be shared: the load when the run started is part of the
# result.
load=$(cut -d ' ' -f 1-3 /proc/loadavg)
{
  echo "| path | clients | bytes | Mpps relayed | Gbit/s | ns/packet | notes |"
  echo "|---|---|---|---|---|---|---|"
  for size in 200 1400; do
    "$build/perf/bench_moon" --clients "$clients" --size "$size" --seconds "$seconds" --mode core
  done
  for mode in udp relay; do
    for size in 200 1400; do
      "$build/perf/bench_moon" --clients "$clients" --size "$size" --seconds "$seconds" --mode "$mode"
    done
  done
  if [ -x "$build/perf/bench_moon_dataplane" ]; then
    for size in 200 1400; do
      "$build/perf/bench_moon_dataplane" --clients "$clients" --size "$size" --rounds 400 2>/dev/null
    done
  fi
  "$build/perf/bench_moon" --clients 2 --seconds "$seconds" --mode hash
  echo
  perf_result_footer "load average at start: $load"
} > "$base.md"
cat "$base.md"
echo
echo "Saved $base.md"
