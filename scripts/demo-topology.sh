#!/usr/bin/env bash
# demo-topology.sh BUILD_DIR — a two-host WireGuard demo on one machine.
#
#   netns mgdemo-laptop  "remote laptop"   wireguard-go (stock peer)
#   netns mgdemo-site    "site gateway"    moongate-wg-harness (moongate's
#                                          WireGuard core over kernel UDP + TUN)
#   joined by a veth pair standing in for the Internet (10.201.0.0/24);
#   tunnel addresses 10.99.0.1 (laptop) and 10.99.0.2 (site).
#
# Flow: clean up leftovers of an earlier run -> namespaces + veth -> keys ->
# wireguard-go up -> harness up -> ping laptop->site (the laptop initiates the
# handshake) -> `wg show` -> ping site->laptop -> iperf3 both ways if
# installed -> harness stats -> tear down (trap EXIT: processes killed by PID,
# namespaces, UAPI socket and temporary files removed).
#
# Needs root, wireguard-go, wg, ip, ping, python3; iperf3 optional.
# Idempotent: every run starts by removing what a killed run left behind.
set -euo pipefail

readonly NS_LAPTOP=mgdemo-laptop
readonly NS_SITE=mgdemo-site
readonly VETH_LAPTOP=mgdemo-l
readonly VETH_SITE=mgdemo-s
readonly WG_IF=mgdemo-wg0
readonly TUN_IF=mgdemo-tun0
readonly WG_SOCK=/var/run/wireguard/${WG_IF}.sock
readonly STATE_DIR=/run/moongate-demo   # PID files, so a rerun can clean up by PID
readonly LAPTOP_PORT=51821
readonly SITE_PORT=51820

bold() { printf '\033[1m%s\033[0m\n' "$*"; }
step() { printf '\n\033[1;34m==> %s\033[0m\n' "$*"; }
info() { printf '    %s\n' "$*"; }
die()  { printf '\033[1;31merror:\033[0m %s\n' "$*" >&2; exit 1; }

usage() { echo "usage: $0 BUILD_DIR   (e.g. $0 build)"; }

[[ $# -eq 1 ]] || { usage >&2; exit 2; }
[[ $1 == -h || $1 == --help ]] && { usage; exit 0; }
BUILD_DIR=$1
HARNESS=$BUILD_DIR/tests/interop/moongate-wg-harness
[[ $EUID -eq 0 ]] || die "run as root (network namespaces, TUN devices)"
[[ -x $HARNESS ]] || die "$HARNESS not found: build it first (ninja -C $BUILD_DIR)"
for tool in wireguard-go wg ip ping python3; do
  command -v "$tool" >/dev/null || die "$tool is not installed"
done
HARNESS=$(readlink -f "$HARNESS")

# Polls a command until it succeeds, for at most $1 seconds.
wait_until() {
  local timeout=$1 what=$2; shift 2
  local deadline=$((SECONDS + timeout))
  until "$@" >/dev/null 2>&1; do
    ((SECONDS < deadline)) || die "timed out after ${timeout}s waiting for $what"
    sleep 0.1
  done
}

# Kills a process we started, by the PID in its file, if it still runs the
# program we expect (a PID file can outlive its process and the PID be reused).
kill_pidfile() {
  local file=$1 expect=$2 pid
  [[ -f $file ]] || return 0
  pid=$(<"$file")
  if [[ $pid =~ ^[0-9]+$ ]] && [[ -r /proc/$pid/cmdline ]] &&
     tr '\0' ' ' </proc/"$pid"/cmdline | grep -q -- "$expect"; then
    kill -TERM "$pid" 2>/dev/null || true
    for _ in $(seq 50); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
    kill -KILL "$pid" 2>/dev/null || true
  fi
  rm -f "$file"
}

teardown() {
  kill_pidfile "$STATE_DIR/iperf3.pid" iperf3
  kill_pidfile "$STATE_DIR/harness.pid" moongate-wg-harness
  kill_pidfile "$STATE_DIR/wireguard-go.pid" wireguard-go
  ip netns del "$NS_LAPTOP" 2>/dev/null || true
  ip netns del "$NS_SITE" 2>/dev/null || true
  rm -f "$WG_SOCK"
  # The work directory holds private keys: remove ours, and an interrupted
  # run's (its path is recorded in the state directory).
  if [[ -f $STATE_DIR/workdir ]]; then
    local old
    old=$(<"$STATE_DIR/workdir")
    [[ $old == /tmp/mgdemo.* && -d $old ]] && rm -rf "$old"
    rm -f "$STATE_DIR/workdir"
  fi
  if [[ -n ${WORK:-} ]]; then rm -rf "$WORK"; fi
  rmdir "$STATE_DIR" 2>/dev/null || true
}

on_exit() {
  local rc=$?
  step "Tearing down"
  teardown
  info "namespaces, processes, UAPI socket and temporary files removed"
  ((rc == 0)) && bold "Demo finished." || bold "Demo failed (exit $rc)."
  exit "$rc"
}

bold "moongate demo: a remote laptop (wireguard-go) and a site gateway (moongate WireGuard core)"
teardown   # leftovers of an interrupted run
mkdir -p "$STATE_DIR"
WORK=$(mktemp -d /tmp/mgdemo.XXXXXX)
echo "$WORK" >"$STATE_DIR/workdir"
trap on_exit EXIT
trap 'exit 130' INT TERM

step "1/7 Network: two namespaces joined by a veth pair (the 'Internet')"
ip netns add "$NS_LAPTOP"
ip netns add "$NS_SITE"
ip link add "$VETH_LAPTOP" type veth peer name "$VETH_SITE"
ip link set "$VETH_LAPTOP" netns "$NS_LAPTOP"
ip link set "$VETH_SITE" netns "$NS_SITE"
ip -n "$NS_LAPTOP" link set lo up
ip -n "$NS_SITE" link set lo up
ip -n "$NS_LAPTOP" addr add 10.201.0.1/24 dev "$VETH_LAPTOP"
ip -n "$NS_SITE" addr add 10.201.0.2/24 dev "$VETH_SITE"
ip -n "$NS_LAPTOP" link set "$VETH_LAPTOP" up
ip -n "$NS_SITE" link set "$VETH_SITE" up
info "laptop  $NS_LAPTOP  underlay 10.201.0.1"
info "site    $NS_SITE    underlay 10.201.0.2"

step "2/7 Keys"
umask 077
wg genkey >"$WORK/laptop.key"
wg genkey >"$WORK/site.key"
LAPTOP_PUB=$(wg pubkey <"$WORK/laptop.key")
SITE_PUB=$(wg pubkey <"$WORK/site.key")
info "laptop public key  $LAPTOP_PUB"
info "site public key    $SITE_PUB"

step "3/7 Remote laptop: wireguard-go on $WG_IF, tunnel address 10.99.0.1"
ip netns exec "$NS_LAPTOP" wireguard-go -f "$WG_IF" >"$WORK/wireguard-go.log" 2>&1 &
echo $! >"$STATE_DIR/wireguard-go.pid"
wait_until 10 "the wireguard-go UAPI socket" test -S "$WG_SOCK"
ip netns exec "$NS_LAPTOP" wg set "$WG_IF" private-key "$WORK/laptop.key" listen-port "$LAPTOP_PORT" \
  peer "$SITE_PUB" endpoint "10.201.0.2:$SITE_PORT" allowed-ips 10.99.0.2/32
ip -n "$NS_LAPTOP" addr add 10.99.0.1/24 dev "$WG_IF"
ip -n "$NS_LAPTOP" link set "$WG_IF" mtu 1420 up
info "wireguard-go running (pid $(<"$STATE_DIR/wireguard-go.pid"))"

step "4/7 Site gateway: moongate-wg-harness on $TUN_IF, tunnel address 10.99.0.2"
ip netns exec "$NS_SITE" "$HARNESS" --private-key "$WORK/site.key" --listen-port "$SITE_PORT" \
  --tun "$TUN_IF" --mtu 1420 --control "$WORK/harness.ctl" \
  --peer "$LAPTOP_PUB" --endpoint "10.201.0.1:$LAPTOP_PORT" --allowed-ip 10.99.0.1/32 \
  >"$WORK/harness.log" 2>&1 &
echo $! >"$STATE_DIR/harness.pid"
wait_until 30 "the harness to start" grep -q ': ready$' "$WORK/harness.log"
ip -n "$NS_SITE" addr add 10.99.0.2/24 dev "$TUN_IF"
ip -n "$NS_SITE" link set "$TUN_IF" mtu 1420 up
sed -n 's/^moongate-wg-harness: /    /p' "$WORK/harness.log"

ctl() {  # one command on the harness control socket
  python3 - "$WORK/harness.ctl" "$1" <<'EOF'
import socket, sys
s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
s.settimeout(5)
s.connect(sys.argv[1])
s.sendall((sys.argv[2] + "\n").encode())
buf = b""
while not buf.endswith(b"\n"):
    chunk = s.recv(65536)
    if not chunk:
        break
    buf += chunk
print(buf.decode().strip())
EOF
}

step "5/7 Handshake and ping: laptop -> site (the laptop initiates)"
ip netns exec "$NS_LAPTOP" ping -n -c 3 -i 0.2 -W 3 10.99.0.2 | sed 's/^/    /'
echo
info "wireguard-go's view (wg show $WG_IF):"
ip netns exec "$NS_LAPTOP" wg show "$WG_IF" | sed 's/^/      /'
step "   ping: site -> laptop"
ip netns exec "$NS_SITE" ping -n -c 3 -i 0.2 -W 3 10.99.0.1 | sed 's/^/    /'

step "6/7 Throughput (iperf3 through the tunnel)"
if command -v iperf3 >/dev/null; then
  ip netns exec "$NS_SITE" iperf3 -s -B 10.99.0.2 >"$WORK/iperf3-server.log" 2>&1 &
  echo $! >"$STATE_DIR/iperf3.pid"
  wait_until 10 "the iperf3 server" ip netns exec "$NS_SITE" sh -c "ss -ltn | grep -q '10.99.0.2:5201'"
  mbits() {
    python3 -c 'import json,sys; d=json.load(sys.stdin); print("%.0f" % (d["end"]["sum_received"]["bits_per_second"]/1e6))'
  }
  UP=$(ip netns exec "$NS_LAPTOP" iperf3 -c 10.99.0.2 -t 3 -J | mbits)
  DOWN=$(ip netns exec "$NS_LAPTOP" iperf3 -c 10.99.0.2 -t 3 -R -J | mbits)
  info "laptop -> site: ${UP} Mbit/s"
  info "site -> laptop: ${DOWN} Mbit/s"
  info "Note: this is the proof harness (moongate's protocol core + IPsec-MB AEAD over kernel"
  info "UDP sockets and a TUN device, one packet and one copy at a time, sharing this machine's"
  info "CPUs with wireguard-go and iperf3). It is NOT the DPDK data plane and says nothing about"
  info "its performance."
  kill_pidfile "$STATE_DIR/iperf3.pid" iperf3
else
  info "iperf3 is not installed: skipped (apt-get install iperf3)"
fi

step "7/7 Harness statistics (control socket: stats)"
ctl stats | python3 -c '
import json, sys
s = json.load(sys.stdin)
print("    public key   %s" % s["public_key"])
print("    AEAD         %s (IPsec-MB)" % s["aead_arch"])
drops = {k: v for k, v in s["drops"].items() if v and k != "ok"}
print("    core drops   %s" % (", ".join("%s=%d" % kv for kv in sorted(drops.items())) or "none"))
for p in s["peers"]:
    print("    peer %s" % p["public_key"])
    print("      endpoint %s, rx %d B, tx %d B, handshakes %d, staged %d" % (
        p["endpoint"], p["rx_bytes"], p["tx_bytes"], p["handshakes_completed"], p["staged"]))
'
info "wireguard-go's counters for the site peer (wg show $WG_IF transfer: received, sent):"
ip netns exec "$NS_LAPTOP" wg show "$WG_IF" transfer | sed 's/^/      /'
udp_rcvbuf_errors() {
  ip netns exec "$1" awk '/^Udp:/ { if (!h) { for (i = 1; i <= NF; i++) c[$i] = i; h = 1 } else print $c["RcvbufErrors"] }' /proc/net/snmp
}
info "Each side counts WireGuard UDP payload bytes it sent and authenticated; after a saturating"
info "iperf3 run, 'sent' on one side exceeds 'received' on the other by the datagrams the kernel"
info "dropped in between (UDP receive buffer overflows: laptop $(udp_rcvbuf_errors "$NS_LAPTOP"),"
info "site $(udp_rcvbuf_errors "$NS_SITE")). TCP retransmitted them; the interop test compares the"
info "counters exactly on lossless traffic."
