#!/bin/sh
# Builds moongate in release mode and measures moongate-relay on loopback
# with perf/bench_relay, saving a Markdown table (with machine, commit and
# date) under docs/perf-results/relay-<date>.md:
#   - packets/s and the relay's CPU per relayed 1 200-byte packet
#     (utime+stime from /proc/<pid>/stat), 1 and 8 pairs, plain and TLS,
#     1 and 2 shards
#   - memory per idle connection (VmRSS growth / connections), plain and
#     TLS, connections from 127.0.0.1..127.0.0.8
#
# Usage: perf/run-relay.sh [--build-dir DIR] [--seconds S] [--warmup S] [--idle N]
#   DIR defaults to $MOONGATE_PERF_BUILD_DIR, else build-perf.
#   --warmup S: load before the measured seconds (default 3: a split pair
#   is moved to one shard within ~2 s, docs/relay.md, Migration).
#   --idle N: idle connections to hold (default 100000). The relay keeps
#   them in io_uring registered-file tables, one per shard, each capped by
#   the kernel at RLIMIT_NOFILE: the idle runs use enough shards for N with
#   a fifth to spare (SO_REUSEPORT spreads connections unevenly). The client
#   side is bench_relay in as many processes as RLIMIT_NOFILE requires
#   (each holds at most the hard limit less 1 000), from 8 source addresses
#   (~28 000 ephemeral ports each towards the relay).
set -eu

root=$(cd "$(dirname "$0")/.." && pwd)
cmdline="perf/run-relay.sh $*"
build=${MOONGATE_PERF_BUILD_DIR:-build-perf}
seconds=10
warmup=3
idle=100000
while [ $# -gt 0 ]; do
  case $1 in
    --build-dir) build=$2; shift 2 ;;
    --seconds) seconds=$2; shift 2 ;;
    --warmup) warmup=$2; shift 2 ;;
    --idle) idle=$2; shift 2 ;;
    *) echo "run-relay.sh: unknown option $1" >&2; exit 2 ;;
  esac
done
. "$root/perf/common.sh"
perf_release_build "$build" relay/moongate-relay -Dfuzz=disabled
ninja -C "$build" perf/bench_relay
perf_result_facts relay

# The relay's file table per shard: min(65536, RLIMIT_NOFILE), the soft
# limit as the relay raises it (to the hard one, or 1048576 if it may).
ulimit -n 1048576 2>/dev/null || ulimit -n "$(ulimit -Hn)"
nofile=$(ulimit -n)
[ "$nofile" = unlimited ] && nofile=1048576
table=$((nofile < 65536 ? nofile : 65536))
idle_shards=$(( (idle * 6 / 5 + table - 1) / table ))
[ "$idle_shards" -ge 2 ] || idle_shards=2

tmp=$(mktemp -d)
relay_pid=""
cleanup() {
  [ -n "$relay_pid" ] && kill "$relay_pid" 2>/dev/null && wait "$relay_pid" 2>/dev/null
  rm -rf "$tmp"
}
trap cleanup EXIT INT TERM

# start_relay SHARDS TLS(0|1): sets $relay_pid $port $key $http (the port of /debug/varz)
start_relay() {
  if [ "$2" = 1 ]; then
    set -- "$1" --hostname 127.0.0.1 --certdir "$tmp" --http-port 0
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
  http=$(sed -n 's/.*http port \([0-9]*\).*/\1/p' "$out")
  [ -n "$http" ] || http=$port
}
# varz NAME: a counter of the running relay (python3, as common.sh uses it)
varz() {
  python3 -c 'import sys, urllib.request; sys.stdout.write(urllib.request.urlopen(sys.argv[1], timeout=5).read().decode())' \
    "http://127.0.0.1:$http/debug/varz" | sed -n "s/^$1 \([0-9]*\)\$/\1/p"
}
stop_relay() {
  kill "$relay_pid"
  wait "$relay_pid" 2>/dev/null || true
  relay_pid=""
}

load=$(cut -d ' ' -f 1-3 /proc/loadavg)
{
  echo "| mode | shards | pairs | packets/s | relay CPU per packet (us) | connections moved | packets across shards | packets dropped (whole run / measured) |"
  echo "|---|---|---|---|---|---|---|---|"
  for tls in 0 1; do
    for shards in 1 2; do
      for pairs in 1 8; do
        start_relay $shards $tls
        flag=""
        [ $tls = 1 ] && flag=--tls
        line=$("$build/perf/bench_relay" load $flag --port "$port" --key "$key" --pid "$relay_pid" \
          --pairs $pairs --seconds "$seconds" --warmup "$warmup" --size 1200)
        moved=$(varz moongate_relay_migrations_total)
        across=$(varz moongate_relay_packets_forwarded_out_total)
        stop_relay
        pps=$(echo "$line" | sed -n 's/.* pps=\([0-9]*\).*/\1/p')
        us=$(echo "$line" | sed -n 's/.*us_per_packet=\([0-9.]*\).*/\1/p')
        lost=$(echo "$line" | sed -n 's/.* lost=\([0-9]*\).*/\1/p')
        lost_measured=$(echo "$line" | sed -n 's/.*lost_measured=\([0-9]*\).*/\1/p')
        mode=plain
        [ $tls = 1 ] && mode=TLS
        echo "| $mode | $shards | $pairs | $pps | $us | $moved | $across | $lost / $lost_measured |"
      done
    done
  done
  echo
  echo "Connections moved, packets across shards: the relay's /debug/varz counters at the end of"
  echo "the run (warm-up included: ${warmup} s, then ${seconds} s measured). Packets dropped: by the"
  echo "relay's drop-oldest client queues, as bench_relay counts them (sequence numbers: a packet"
  echo "that never arrived while a later one did), in the whole run and in the measured seconds."
  echo
  echo "| mode | idle connections | relay shards | client processes | relay RSS before (KiB) | after (KiB) | bytes per connection | handshakes took (s) |"
  echo "|---|---|---|---|---|---|---|---|"
  for tls in 0 1; do
    start_relay $idle_shards $tls
    flag=""
    [ $tls = 1 ] && flag=--tls
    line=$("$build/perf/bench_relay" idle $flag --port "$port" --key "$key" --pid "$relay_pid" \
      --conns "$idle" --sources 8)
    stop_relay
    mode=plain
    [ $tls = 1 ] && mode=TLS
    echo "$line" | sed -n "s/.*conns=\([0-9]*\).*procs=\([0-9]*\).*handshake_s=\([0-9.]*\) rss_before_kib=\([0-9]*\) rss_after_kib=\([0-9]*\) per_conn_bytes=\([0-9]*\).*/| $mode | \1 | $idle_shards | \2 | \4 | \5 | \6 | \3 |/p"
  done
  echo
  echo "Idle connections: the relay's $idle_shards shards each hold up to $table in io_uring's"
  echo "registered-file table (the kernel caps a ring's table at RLIMIT_NOFILE, $nofile here), so"
  echo "$idle_shards shards hold $((idle_shards * table)), a fifth more than asked (SO_REUSEPORT's spread is"
  echo "uneven). The clients need one descriptor each: bench_relay splits them over processes of"
  echo "at most $(($(ulimit -Hn) - 1000)) (RLIMIT_NOFILE's hard limit less 1 000), from 127.0.0.1..8."
  echo "Bytes per connection include each shard's sibling routes to the keys of the other shards"
  echo "and the receive buffers the handshakes touched (fixed per shard)."
  echo
  perf_result_footer "load average at start: $load"
} > "$base.md"
cat "$base.md"
echo
echo "Saved $base.md"
