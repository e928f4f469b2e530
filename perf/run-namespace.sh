#!/bin/bash
# Builds moongate in release mode and runs perf/namespace_bench.py: the
# subnet-router topology of tests/e2e in network namespaces, once with
# moongate-dataplane (net_af_packet ports, idle back-off) as the gateway and
# once with kernel routing + wireguard-go, against the same wireguard-go
# remote site. iperf3 TCP both ways, ping RTT and CPU use, side by side.
# Saves docs/perf-results/namespace-<date>.{md,json}.
#
# Usage: perf/run-namespace.sh [--build-dir DIR] [namespace_bench.py options...]
#   DIR defaults to $MOONGATE_PERF_BUILD_DIR, else build-perf.
#   Options (perf/namespace_bench.py --help): --seconds 10 --parallel 1,4
#     --rounds 1 --gateways moongate,wireguard-go --framecnt N
#     --quiet-cores 0.2 --quiet-wait 120
# Needs root, wireguard-go, wg, iperf3, ethtool; exits 77 without them.
set -euo pipefail

root=$(cd "$(dirname "$0")/.." && pwd)
cmdline="perf/run-namespace.sh $*"
build=${MOONGATE_PERF_BUILD_DIR:-build-perf}
if [ "${1:-}" = --build-dir ]; then
  [ $# -ge 2 ] || { echo "run-namespace.sh: --build-dir needs a value" >&2; exit 2; }
  build=$2
  shift 2
fi
if [ "$(id -u)" != 0 ]; then
  echo "run-namespace.sh: SKIP: needs root (network namespaces)" >&2
  exit 77
fi
# shellcheck source=perf/common.sh
. "$root/perf/common.sh"
perf_release_build "$build" dataplane/moongate-dataplane -Dfuzz=disabled
perf_result_facts namespace

tmp=$(mktemp -d)
bench=
cleanup() {
  local status=$?
  perf_stop_bench
  # Everything the benchmark made is named after its PID (topology.py: tag
  # n[mw]<pid % 100000>); a killed data plane also leaves its telemetry
  # socket in its runtime directory.
  if [ -n "$bench" ]; then
    local tag=$((bench % 100000))
    perf_backstop "^mg(lan|gw|wan|rem)n[mw]${tag}\$" /var/run/wireguard/mg[sg]n[mw]"${tag}".sock \
      /var/run/dpdk/moongate-mggn[mw]"${tag}" /tmp/mg-n[mw]"${tag}"-*
  fi
  rm -rf "$tmp"
  exit "$status"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM HUP

# In the background so that the traps above run while it is still going.
python3 "$root/perf/namespace_bench.py" --dataplane "$build/dataplane/moongate-dataplane" \
  --json "$tmp/result.json" "$@" > "$tmp/table.md" &
bench=$!
status=0
wait "$bench" || status=$?
[ "$status" = 0 ] || { echo "run-namespace.sh: namespace_bench.py exited $status" >&2; exit "$status"; }

frames=$(python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))["framecnt"] or "512 (the PMD default)")' \
  "$tmp/result.json")
{
  cat "$tmp/table.md"
  echo
  echo "- Gateways: moongate-dataplane (two net_af_packet ports, $frames frames" \
       "per ring, one lcore: 0, busy_poll: false, no hugepages) vs kernel forwarding" \
       "+ $(wireguard-go --version 2>&1 | head -n 1) in the gateway namespace"
  echo "- Remote site: the same wireguard-go; traffic: $(iperf3 --version | head -n 1)"
  perf_result_footer
} > "$base.md"
cp "$tmp/result.json" "$base.json"
cat "$base.md"
echo
echo "Saved $base.md and $base.json"
