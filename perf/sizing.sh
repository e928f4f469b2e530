#!/bin/bash
# Builds moongate in release mode and runs perf/sizing.py: the memory the
# appliance takes (DPDK heap, data-plane and control RSS, the shared
# segment) with 1, 10 000 and 100 000 peers, IPv4 and dual-stack allowed
# IPs, so that docs/sizing.md can give bytes per peer and per rule.
# Saves docs/perf-results/sizing-<date>.{md,json}.
#
# Usage: perf/sizing.sh [--build-dir DIR] [sizing.py options: --cases SPEC --memory-mb N]
#   DIR defaults to $MOONGATE_PERF_BUILD_DIR, else build-perf.
# Needs root and wg (wireguard-tools); exits 77 when not root.
set -euo pipefail

root=$(cd "$(dirname "$0")/.." && pwd)
cmdline=perf/sizing.sh
[ $# = 0 ] || cmdline+=$(printf ' %q' "$@")
build=${MOONGATE_PERF_BUILD_DIR:-build-perf}
if [ "${1:-}" = --build-dir ]; then
  [ $# -ge 2 ] || { echo "sizing.sh: --build-dir needs a value" >&2; exit 2; }
  build=$2
  shift 2
fi
if [ "$(id -u)" != 0 ]; then
  echo "sizing.sh: SKIP: needs root (sockets under /run, /dev/shm)" >&2
  exit 77
fi
# shellcheck source=perf/common.sh
. "$root/perf/common.sh"
perf_release_build "$build" dataplane/moongate-dataplane -Dfuzz=disabled
ninja -C "$build" control/moongate-control
perf_result_facts sizing

tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
python3 "$root/perf/sizing.py" --build-dir "$build" --json "$tmp/result.json" "$@" > "$tmp/table.md"
{
  echo "# Memory by peers and allowed-IPs rules"
  echo
  cat "$tmp/table.md"
  echo
  perf_result_footer
} > "$base.md"
cp "$tmp/result.json" "$base.json"
cat "$base.md"
echo "sizing.sh: saved $base.md and $base.json" >&2
