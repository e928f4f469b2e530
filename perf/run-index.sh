#!/bin/sh
# Builds moongate in release mode and runs the receiver-index lookup
# benchmark (wg::IndexTable vs rte_hash, one lcore), saving the Markdown
# tables (with machine, commit and date) and a JSON copy under
# docs/perf-results/index-<date>.{md,json}.
#
# Usage: perf/run-index.sh [--build-dir DIR] [bench_index options...] [-- EAL args]
#   DIR defaults to $MOONGATE_PERF_BUILD_DIR, else build-perf.
#   Options go to bench_index (e.g. --reps 21 --lcore 1 --entries 4,400000).
#   EAL args default to --no-huge -m 2048 --no-pci --no-shconf -l <lcore>;
#   on hugepages (reserved beforehand in /proc/sys/vm/nr_hugepages):
#   -- --in-memory -m 2048 --no-pci -l 1 --log-level 4
set -eu

root=$(cd "$(dirname "$0")/.." && pwd)
cmdline="perf/run-index.sh $*"
build=${MOONGATE_PERF_BUILD_DIR:-build-perf}
if [ "${1:-}" = "--build-dir" ]; then
  [ $# -ge 2 ] || { echo "run-index.sh: --build-dir needs a value" >&2; exit 2; }
  build=$2
  shift 2
fi
. "$root/perf/common.sh"
perf_release_build "$build" perf/bench_index -Dfuzz=disabled
perf_result_facts index

# The machine may be shared: the load when the run started is part of the
# result.
load=$(cut -d ' ' -f 1-3 /proc/loadavg)
table=$("$build/perf/bench_index" --json "$base.json" "$@")
{
  echo "$table"
  echo
  perf_result_footer "load average at start: $load"
} > "$base.md"
cat "$base.md"
echo
echo "Saved $base.md and $base.json"
