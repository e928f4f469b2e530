#!/bin/bash
# Builds moongate in release mode and runs perf/netmap_bench.py: how fast
# netmap changes made with stock `wg` take effect in the data plane, with
# moongate-control + moongate-dataplane --control in the subnet-router
# topology of tests/e2e (network namespaces), with 1 and 2 worker lcores:
# `wg set` of one peer's allowed IPs (30 times, with 1 and with 10 000 peers
# in the netmap) and `wg syncconf` to 1 000 / 10 000 / 50 000 peers and back
# while a 100 Hz ping crosses an unchanged peer. Times are taken until the
# control socket reports the generation applied by the data plane; the data
# plane's own log line gives the breakdown.
# Saves docs/perf-results/netmap-<date>.{md,json}.
#
# Usage: perf/run-netmap.sh [--build-dir DIR] [netmap_bench.py options...]
#   DIR defaults to $MOONGATE_PERF_BUILD_DIR, else build-perf.
#   Options (perf/netmap_bench.py --help): --lcores 1,2 --sets 30
#     --set-peers 10000 --sizes 1000,10000,50000 --reps 3 --budget 90
#     --poll-ms 1 --memory-mb 1024 --quiet-cores 0.2 --quiet-wait 120
# Needs root, wireguard-go, wg, ping, ethtool; exits 77 without them.
set -euo pipefail

root=$(cd "$(dirname "$0")/.." && pwd)
cmdline=perf/run-netmap.sh
[ $# = 0 ] || cmdline+=$(printf ' %q' "$@")
build=${MOONGATE_PERF_BUILD_DIR:-build-perf}
if [ "${1:-}" = --build-dir ]; then
  [ $# -ge 2 ] || { echo "run-netmap.sh: --build-dir needs a value" >&2; exit 2; }
  build=$2
  shift 2
fi
if [ "$(id -u)" != 0 ]; then
  echo "run-netmap.sh: SKIP: needs root (network namespaces)" >&2
  exit 77
fi
# shellcheck source=perf/common.sh
. "$root/perf/common.sh"
perf_release_build "$build" dataplane/moongate-dataplane -Dfuzz=disabled
ninja -C "$build" control/moongate-control
perf_result_facts netmap

tmp=$(mktemp -d)
bench=
cleanup() {
  local status=$?
  perf_stop_bench
  # Everything the benchmark made is named after its PID (topology.py: tag
  # nt<pid % 100000>, interface mgxnt<tag>, remote site mgsnt<tag>); a
  # killed data plane also leaves its telemetry socket in its runtime
  # directory.
  if [ -n "$bench" ]; then
    local tag=nt$((bench % 100000))
    perf_backstop "^mg(lan|gw|wan|rem)${tag}\$" "/var/run/wireguard/mgx${tag}.sock" \
      "/var/run/wireguard/mgs${tag}.sock" "/dev/shm/moongate-mgx${tag}" "/run/moongate/mgx${tag}.ctl" \
      "/var/run/dpdk/moongate-mgx${tag}" /tmp/mg-"${tag}"-*
  fi
  rm -rf "$tmp"
  exit "$status"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM HUP

# In the background so that the traps above run while it is still going.
python3 "$root/perf/netmap_bench.py" --dataplane "$build/dataplane/moongate-dataplane" \
  --control "$build/control/moongate-control" --json "$tmp/result.json" "$@" > "$tmp/table.md" &
bench=$!
status=0
wait "$bench" || status=$?
[ "$status" = 0 ] || { echo "run-netmap.sh: netmap_bench.py exited $status" >&2; exit "$status"; }

facts=$(python3 -c 'import json,sys; r=json.load(open(sys.argv[1]))
print("memory_mb %d (no hugepages), max_peers %d, busy_poll false; wg set polled at least every %g ms, syncconf the same (the interval grows to one poll'"'"'s cost)" % (r["memory_mb"], r["max_peers"], r["poll_ms"]))' "$tmp/result.json")
load=$(python3 -c 'import json,sys; r=json.load(open(sys.argv[1]))
b=[x["busy_before"] for res in r["results"] for x in [y for s in res["sets"] for y in s["runs"]] + res["syncconf"] if "busy_before" in x]
print("busy cores in the 1 s before each change: median %.2f, max %.2f; %d of %d changes above %g (waited up to %g s for quiet)" % (sorted(b)[len(b)//2], max(b), sum(v >= r["quiet_cores"] for v in b), len(b), r["quiet_cores"], r["quiet_wait"]))' "$tmp/result.json")
{
  cat "$tmp/table.md"
  echo
  echo "- Appliance: moongate-control + moongate-dataplane --control (two net_af_packet ports), $facts"
  echo "- Tools: $(wg --version 2>&1 | head -n 1); remote site $(wireguard-go --version 2>&1 | head -n 1); $(ping -V 2>&1 | head -n 1)"
  perf_result_footer "$load"
  # What in the measured code differs from the commit (the benchmark's own
  # files and results aside).
  own=(. ':!docs' ':!perf/README.md' ':!perf/run-netmap.sh' ':!perf/netmap_bench.py')
  changed=$(git -C "$root" status --porcelain -- "${own[@]}" 2>/dev/null | awk '{print $2}' | tr '\n' ' ')
  if [ -n "$changed" ]; then
    echo "- Uncommitted changes in the tree measured: $changed(the diff is below)"
    untracked=$(git -C "$root" status --porcelain -- "${own[@]}" | awk '$1 == "??" {print $2}' | tr '\n' ' ')
    printf '\nThe uncommitted changes measured (`git diff`%s):\n\n```diff\n' "${untracked:+; not shown, untracked: $untracked}"
    git -C "$root" diff -- "${own[@]}"
    printf '```\n'
  fi
} > "$base.md"
cp "$tmp/result.json" "$base.json"
cat "$base.md"
echo
echo "Saved $base.md and $base.json"
