#!/bin/sh
# Builds moongate in release mode and runs the data-plane benchmark
# (dp::Gateway over rte_eth_from_rings ethdevs, no kernel) for each peer
# count, saving one Markdown table (with machine, commit and date) and a
# JSON copy under docs/perf-results/dataplane-<date>.{md,json}.
#
# Usage: perf/run-dataplane.sh [--build-dir DIR] [--full] [--peers 1,1000,...]
#                              [--no-hugepages] [bench_dataplane options...] [-- EAL args]
#   DIR defaults to $MOONGATE_PERF_BUILD_DIR, else build-perf.
#   Peer counts default to 1,1000,10000; --full adds 100000.
#   Other options go to bench_dataplane (e.g. --k 65536 --reps 5 --lcore 1
#   --modes cold,recycled --recycle 2048).
#
# Memory: the data plane runs on 2 MB hugepages, as deployed. The script
# adds $MOONGATE_PERF_HUGEPAGES (default 768) pages to the kernel's pool for
# the run and gives them back on exit; when it cannot (not root, not enough
# free memory) or with --no-hugepages, the benchmark runs on 4 KiB pages
# (--no-huge) and the results file says so.
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

tmp=$(mktemp -d)
nr=/proc/sys/vm/nr_hugepages
added=0
cleanup() {
  # Give back exactly the pages this run added (others may hold theirs).
  if [ "$added" -gt 0 ]; then echo $(($(cat $nr) - added)) > $nr || true; fi
  rm -rf "$tmp"
}
trap cleanup EXIT
trap 'exit 130' INT TERM
want=${MOONGATE_PERF_HUGEPAGES:-768}
memory="4 KiB pages (--no-huge)"
if [ $hugepages = 1 ]; then
  before=$(cat $nr 2>/dev/null || echo 0)
  if echo $((before + want)) 2>/dev/null > $nr; then
    added=$(($(cat $nr) - before))
  fi
  if [ "$added" -ge "$want" ]; then
    set -- --hugepages "$@"
    memory="2 MB hugepages ($want reserved for the run, --in-memory)"
  else
    memory="4 KiB pages (--no-huge): only $added of $want 2 MB hugepages could be reserved"
    [ "$added" -gt 0 ] && echo $(($(cat $nr) - added)) > $nr
    added=0
    echo "run-dataplane.sh: hugepages unavailable, running with --no-huge" >&2
  fi
else
  memory="4 KiB pages (--no-huge, --no-hugepages given)"
fi
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
PY

{
  cat "$table"
  echo
  cat "$tmp/summary.md"
  echo "- Memory: $memory"
  echo "- Machine: $cpu, $cores CPUs ($(uname -r))"
  echo "- Commit: $commit"
  echo "- Date: $stamp"
  echo "- Command: $cmdline"
  echo "- Compiler: $(sed -n 's/^C++ compiler for the host machine: //p' "$build/meson-logs/meson-log.txt" | head -n 1)"
  echo "- Build: $(meson introspect --buildoptions "$build" |
    python3 -c 'import json,sys; o={x["name"]: x["value"] for x in json.load(sys.stdin)}; print("buildtype=%s, b_ndebug=%s" % (o["buildtype"], o["b_ndebug"]))')"
} > "$base.md"
cat "$base.md"
echo
echo "Saved $base.md and $base.json"
exit $status
