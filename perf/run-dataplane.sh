#!/bin/sh
# Builds moongate in release mode and runs the data-plane benchmark
# (dp::Gateway over rte_eth_from_rings ethdevs, no kernel) for each peer
# count, saving one Markdown table (with machine, commit and date) and a
# JSON copy under docs/perf-results/dataplane-<date>.{md,json}, and the
# recycled mode's plot (perf/plot-dataplane.py) as dataplane-<date>.svg.
#
# Usage: perf/run-dataplane.sh [--build-dir DIR] [--full] [--peers 1,1000,...]
#                              [--no-hugepages] [bench_dataplane options...] [-- EAL args]
#   DIR defaults to $MOONGATE_PERF_BUILD_DIR, else build-perf.
#   Peer counts default to 1,1000,10000; --full adds 100000.
#   Other options go to bench_dataplane (e.g. --k 65536 --reps 5 --lcore 1
#   --modes cold,recycled --recycle 2048).
#
# Memory: the data plane runs on 2 MB hugepages, as deployed. Before each
# peer count the script makes sure $MOONGATE_PERF_HUGEPAGES (default 768)
# pages are free, adding the missing ones to the kernel's pool, and gives
# back what it added on exit; when it cannot (not root, not enough free
# memory) or with --no-hugepages, that run uses 4 KiB pages (--no-huge) and
# the results file says so.
set -eu

root=$(cd "$(dirname "$0")/.." && pwd)
cmdline="perf/run-dataplane.sh $*"
build=${MOONGATE_PERF_BUILD_DIR:-build-perf}
peers=1,1000,10000
full=0
hugepages=1
while [ $# -gt 0 ]; do
  case $1 in
    --build-dir) [ $# -ge 2 ] || { echo "run-dataplane.sh: --build-dir needs a value" >&2; exit 2; }
                 build=$2; shift 2 ;;
    --peers) [ $# -ge 2 ] || { echo "run-dataplane.sh: --peers needs a value" >&2; exit 2; }
             peers=$2; shift 2 ;;
    --full) full=1; shift ;;
    --no-hugepages) hugepages=0; shift ;;
    *) break ;;
  esac
done
[ $full = 1 ] && peers=$peers,100000
. "$root/perf/common.sh"
perf_release_build "$build" perf/bench_dataplane -Dfuzz=disabled
perf_result_facts dataplane
load_before=$(cut -d' ' -f1-3 /proc/loadavg)

tmp=$(mktemp -d)
nr=/proc/sys/vm/nr_hugepages
added=0
cleanup() {
  # Give back exactly the pages this run added (others may hold theirs).
  if [ "$added" -gt 0 ]; then
    left=$(($(cat $nr) - added))
    [ $left -lt 0 ] && left=0
    echo $left > $nr || true
  fi
  rm -rf "$tmp"
}
trap cleanup EXIT
trap 'exit 130' INT TERM
want=${MOONGATE_PERF_HUGEPAGES:-768}
# reserve: makes sure $want 2 MB pages are free, adding what is missing to
# the kernel's pool (before every run: another process on the machine may
# have shrunk the pool meanwhile). False when that is not possible.
reserve() {
  [ $hugepages = 1 ] || return 1
  free=$(awk '/^HugePages_Free:/ {print $2}' /proc/meminfo)
  [ "$free" -ge "$want" ] && return 0
  before=$(cat $nr 2>/dev/null || echo 0)
  echo $((before + want - free)) 2>/dev/null > $nr || return 1
  added=$((added + $(cat $nr) - before))
  free=$(awk '/^HugePages_Free:/ {print $2}' /proc/meminfo)
  [ "$free" -ge "$want" ]
}

table=$tmp/table.md
header=
status=0
huge_runs=
small_runs=
for n in $(echo "$peers" | tr ',' ' '); do
  echo "== $n peers" >&2
  if reserve; then
    memflag=--hugepages
    huge_runs="$huge_runs $n"
  else
    memflag=
    small_runs="$small_runs $n"
    [ $hugepages = 1 ] && echo "run-dataplane.sh: $want free 2 MB pages unavailable, $n peers run with --no-huge" >&2
  fi
  "$build/perf/bench_dataplane" --peers "$n" --json "$tmp/$n.json" $header $memflag "$@" >> "$table" || status=1
  header=--no-header
done
if [ -z "$small_runs" ]; then
  memory="2 MB hugepages (at least $want free for each run, reserved by the script; --in-memory)"
elif [ $hugepages = 0 ]; then
  memory="4 KiB pages (--no-huge, as asked by --no-hugepages)"
elif [ -z "$huge_runs" ]; then
  memory="4 KiB pages (--no-huge): $want free 2 MB hugepages could not be reserved"
else
  memory="2 MB hugepages for peers$huge_runs; 4 KiB pages (--no-huge, hugepages unavailable) for peers$small_runs"
fi

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
rows = {(r["peers"], r.get("mode", "cold"), r["direction"], r["size"]): r for run in runs for r in run["rows"]}
counts = sorted({k[0] for k in rows})
modes = sorted({k[1] for k in rows})
for mode in modes:
    lo = [r for k, r in rows.items() if k[1] == mode and r["ratio"] > 0]
    if lo:
        worst = min(lo, key=lambda r: r["ratio"])
        print(f"- {mode}: lowest data-plane/ceiling ratio {100 * worst['ratio']:.1f}% "
              f"({worst['direction']} {worst['size']} B, {worst['peers']} peers)")
    if len(counts) > 1 and counts[0] == 1:
        top = counts[-1]
        parts = []
        for (n, m, d, s), r in sorted(rows.items()):
            base = rows.get((1, m, d, s))
            if n == top and m == mode and base:
                parts.append(f"{d} {s} B {100 * (r['ratio'] / base['ratio'] - 1):+.1f}%")
        print(f"- {mode}: data-plane/ceiling ratio at {top} peers vs 1 peer: " + ", ".join(parts))
if runs:
    print(f"- AEAD code path: {runs[0]['aead']}; TSC {runs[0]['tsc_hz'] / 1e9:.3f} GHz; "
          f"K={runs[0]['k']} packets per direction, size and mode (recycled: rounds of "
          f"{runs[0].get('recycle', 0)} buffers), median of {runs[0]['reps']} repetitions")
    print(f"- EAL: {runs[0].get('eal', '')}")
    calls = sum(r.get("calls", 0) for r in runs)
    cut = sum(r.get("interrupted_calls", 0) for r in runs)
    print(f"- run_once() calls left out as interrupted (over 8x the median call, with their packets): "
          f"{cut} of {calls}")
PY

{
  cat "$table"
  echo
  cat "$tmp/summary.md"
  echo "- Memory: $memory"
  # Other work on a shared machine shows in the numbers: the load goes with them.
  perf_result_footer "load average (1, 5, 15 min) $load_before at start, $(cut -d' ' -f1-3 /proc/loadavg) at end"
} > "$base.md"
# The plot docs/perf.md shows (recycled mode; a cold-only run has none).
plot=""
if grep -q '"mode": "recycled"' "$base.json"; then
  if python3 "$root/perf/plot-dataplane.py" "$base.json" "$base.svg"; then
    plot=" and $base.svg"
    echo "![throughput and share of the ceiling](./$(basename "$base").svg)" >> "$base.md"
  else
    echo "run-dataplane.sh: no plot (above); the table and JSON are saved" >&2
  fi
fi
cat "$base.md"
echo
echo "Saved $base.md, $base.json$plot"
exit $status
