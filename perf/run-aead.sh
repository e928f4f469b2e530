#!/bin/sh
# Builds moongate in release mode and runs the AEAD burst benchmark, saving
# the Markdown table (with machine, commit and date) and a JSON copy under
# docs/perf-results/.
#
# Usage: perf/run-aead.sh [--build-dir DIR] [bench_aead options...]
#   DIR defaults to $MOONGATE_PERF_BUILD_DIR, else build-perf.
#   Options after it go to bench_aead (e.g. --reps 21 --cpu 1 --arch avx2).
set -eu

root=$(cd "$(dirname "$0")/.." && pwd)
cmdline="perf/run-aead.sh $*"
build=${MOONGATE_PERF_BUILD_DIR:-build-perf}
if [ "${1:-}" = "--build-dir" ]; then
  [ $# -ge 2 ] || { echo "run-aead.sh: --build-dir needs a value" >&2; exit 2; }
  build=$2
  shift 2
fi
. "$root/perf/common.sh"
perf_release_build "$build" perf/bench_aead
perf_result_facts aead

table=$("$build/perf/bench_aead" --json "$base.json" "$@")
{
  echo "$table"
  echo
  perf_result_footer
} > "$base.md"
cat "$base.md"
echo
echo "Saved $base.md and $base.json"
