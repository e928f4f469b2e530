#!/bin/sh
# Builds moongate in release mode and runs the data-plane benchmark
# (dp::Gateway over rte_eth_from_rings ethdevs, no kernel) for each peer
# count, saving one Markdown table (with machine, commit and date) and a
# JSON copy under docs/perf-results/dataplane-<date>.{md,json}.
#
# Usage: perf/run-dataplane.sh [--build-dir DIR] [--full] [--peers 1,1000,...]
#                              [bench_dataplane options...] [-- EAL args]
#   DIR defaults to $MOONGATE_PERF_BUILD_DIR, else build-perf.
#   Peer counts default to 1,1000,10000; --full adds 100000.
#   Other options go to bench_dataplane (e.g. --k 65536 --reps 5 --lcore 1).
set -eu

root=$(cd "$(dirname "$0")/.." && pwd)
cmdline="perf/run-dataplane.sh $*"
build=${MOONGATE_PERF_BUILD_DIR:-build-perf}
peers=1,1000,10000
full=0
while [ $# -gt 0 ]; do
  case $1 in
    --build-dir) [ $# -ge 2 ] || { echo "run-dataplane.sh: --build-dir needs a value" >&2; exit 2; }
                 build=$2; shift 2 ;;
    --peers) [ $# -ge 2 ] || { echo "run-dataplane.sh: --peers needs a value" >&2; exit 2; }
             peers=$2; shift 2 ;;
    --full) full=1; shift ;;
    *) break ;;
  esac
done
[ $full = 1 ] && peers=$peers,100000
. "$root/perf/common.sh"
perf_release_build "$build" perf/bench_dataplane -Dfuzz=disabled
perf_result_facts dataplane

tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
table=$tmp/table.md
header=
status=0
for n in $(echo "$peers" | tr ',' ' '); do
  echo "== $n peers" >&2
  "$build/perf/bench_dataplane" --peers "$n" --json "$tmp/$n.json" $header "$@" >> "$table" || status=1
  header=--no-header
done

# One JSON file; the peer-count scaling line (largest count vs 1 peer).
python3 - "$tmp" "$peers" "$base.json" > "$tmp/summary.md" <<'PY'
import json, sys
tmp, peers, out = sys.argv[1], sys.argv[2].split(','), sys.argv[3]
runs = []
for n in peers:
    try:
        runs.append(json.load(open(f"{tmp}/{n}.json")))
    except OSError:
        pass
json.dump(runs, open(out, "w"), indent=1)
rows = {(r["peers"], r["direction"], r["size"]): r for run in runs for r in run["rows"]}
counts = sorted({r[0] for r in rows})
lo = [r for r in rows.values() if r["ratio"] > 0]
if lo:
    worst = min(lo, key=lambda r: r["ratio"])
    print(f"- Lowest data-plane/ceiling ratio: {100 * worst['ratio']:.1f}% "
          f"({worst['direction']} {worst['size']} B, {worst['peers']} peers)")
if len(counts) > 1 and counts[0] == 1:
    top = counts[-1]
    parts = []
    for (n, d, s), r in sorted(rows.items()):
        if n == top and (1, d, s) in rows:
            parts.append(f"{d} {s} B {100 * (r['mpps'] / rows[(1, d, s)]['mpps'] - 1):+.1f}%")
    print(f"- Mpps at {top} peers vs 1 peer: " + ", ".join(parts))
if runs:
    print(f"- AEAD code path: {runs[0]['aead']}; TSC {runs[0]['tsc_hz'] / 1e9:.3f} GHz; "
          f"K={runs[0]['k']} packets per direction and size, median of {runs[0]['reps']} repetitions")
PY

{
  cat "$table"
  echo
  cat "$tmp/summary.md"
  perf_result_footer
} > "$base.md"
cat "$base.md"
echo
echo "Saved $base.md and $base.json"
exit $status
