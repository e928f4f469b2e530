#!/bin/sh
# Builds moongate in release mode and measures moongate-relay on loopback
# with perf/bench_relay, saving a Markdown table (with machine, commit and
# date) under docs/perf-results/relay-<date>.md:
#   - packets/s and the relay's CPU per relayed 1 200-byte packet
#     (utime+stime from /proc/<pid>/stat), 1 and 8 pairs, plain and TLS,
#     1 and 2 shards
#   - memory per idle connection (VmRSS growth / connections), plain and
#     TLS, connections from 127.0.0.1..127.0.0.5
#
# Usage: perf/run-relay.sh [--build-dir DIR] [--seconds S] [--idle N]
#   DIR defaults to $MOONGATE_PERF_BUILD_DIR, else build-perf.
#   --idle N: idle connections to hold (default 100000). Each process needs
#   N descriptors: without CAP_SYS_RESOURCE the hard RLIMIT_NOFILE caps N
#   (the script lowers N to fit and says so).
set -eu

root=$(cd "$(dirname "$0")/.." && pwd)
cmdline="perf/run-relay.sh $*"
build=${MOONGATE_PERF_BUILD_DIR:-build-perf}
seconds=10
idle=100000
while [ $# -gt 0 ]; do
  case $1 in
    --build-dir) build=$2; shift 2 ;;
    --seconds) seconds=$2; shift 2 ;;
    --idle) idle=$2; shift 2 ;;
    *) echo "run-relay.sh: unknown option $1" >&2; exit 2 ;;
  esac
done
. "$root/perf/common.sh"
perf_release_build "$build" relay/moongate-relay -Dfuzz=disabled
ninja -C "$build" perf/bench_relay
perf_result_facts relay

# Descriptors: ask for enough, else fit under the hard limit (minus slack).
ulimit -n $((idle + 1000)) 2>/dev/null || true
hard=$(ulimit -Hn)
note=""
if [ "$hard" != unlimited ] && [ "$idle" -gt $((hard - 1000)) ]; then
  note="idle connections capped at $((hard - 1000)) by RLIMIT_NOFILE (hard limit $hard, no CAP_SYS_RESOURCE)"
  idle=$((hard - 1000))
fi

tmp=$(mktemp -d)
relay_pid=""
cleanup() {
  [ -n "$relay_pid" ] && kill "$relay_pid" 2>/dev/null && wait "$relay_pid" 2>/dev/null
  rm -rf "$tmp"
}
trap cleanup EXIT INT TERM

# start_relay SHARDS TLS(0|1): sets $relay_pid $port $key
start_relay() {
  if [ "$2" = 1 ]; then
    set -- "$1" --hostname 127.0.0.1 --certdir "$tmp"
  else
    set -- "$1" --plain
  fi
  shards=$1
  shift
  runs=$((${runs:-0} + 1))
  out=$tmp/relay-$runs.out  # a new file: the last relay's lines must not be read
  "$build/relay/moongate-relay" --addr 127.0.0.1:0 --stun-port -1 --shards "$shards" "$@" \
    > "$out" 2>&1 &
  relay_pid=$!
  i=0
  until grep -q "moongate-relay: ready" "$out" 2>/dev/null; do
    i=$((i + 1))
    [ $i -lt 100 ] || { cat "$out" >&2; exit 1; }
    sleep 0.1
  done
  port=$(sed -n 's/.* port \([0-9]*\) .*/\1/p' "$out" | head -n 1)
  key=$(sed -n 's/.*public key \([0-9a-f]*\).*/\1/p' "$out")
}
stop_relay() {
  kill "$relay_pid"
  wait "$relay_pid" 2>/dev/null || true
  relay_pid=""
}

load=$(cut -d ' ' -f 1-3 /proc/loadavg)
{
  echo "| mode | shards | pairs | packets/s | relay CPU per packet (us) |"
  echo "|---|---|---|---|---|"
  for tls in 0 1; do
    for shards in 1 2; do
      for pairs in 1 8; do
        start_relay $shards $tls
        flag=""
        [ $tls = 1 ] && flag=--tls
        line=$("$build/perf/bench_relay" load $flag --port "$port" --key "$key" --pid "$relay_pid" \
          --pairs $pairs --seconds "$seconds" --size 1200)
        stop_relay
        pps=$(echo "$line" | sed -n 's/.* pps=\([0-9]*\).*/\1/p')
        us=$(echo "$line" | sed -n 's/.*us_per_packet=\([0-9.]*\).*/\1/p')
        mode=plain
        [ $tls = 1 ] && mode=TLS
        echo "| $mode | $shards | $pairs | $pps | $us |"
      done
    done
  done
  echo
  echo "| mode | idle connections | relay RSS before (KiB) | after (KiB) | bytes per connection | handshakes took (s) |"
  echo "|---|---|---|---|---|---|"
  for tls in 0 1; do
    start_relay 2 $tls
    flag=""
    [ $tls = 1 ] && flag=--tls
    line=$("$build/perf/bench_relay" idle $flag --port "$port" --key "$key" --pid "$relay_pid" \
      --conns "$idle" --sources 5)
    stop_relay
    mode=plain
    [ $tls = 1 ] && mode=TLS
    echo "$line" | sed -n "s/.*conns=\([0-9]*\).*handshake_s=\([0-9.]*\) rss_before_kib=\([0-9]*\) rss_after_kib=\([0-9]*\) per_conn_bytes=\([0-9]*\).*/| $mode | \1 | \3 | \4 | \5 | \2 |/p"
  done
  echo
  perf_result_footer "load average at start: $load${note:+; $note}"
} > "$base.md"
cat "$base.md"
echo
echo "Saved $base.md"
