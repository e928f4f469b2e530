#!/usr/bin/env python3
"""moongate vs wireguard-go as a site's gateway, in network namespaces.

The subnet-router topology of tests/e2e (without its IPv6 and inner subnet):

  lan host 10.10.0.2 --veth-- [ gateway ] --veth-- wan ns 192.0.2.10 --veth-- remote host 10.20.0.2
  default via 10.10.0.1       lan 10.10.0.1/24     wireguard-go (the        default via 10.20.0.1
                              wan 192.0.2.2/24     remote site), 10.20.0.1

The gateway is either moongate-dataplane on two net_af_packet ports (idle
back-off, not busy_poll: the machine has 2 cores) or the kernel routing
between the two veths with wireguard-go on a third interface, with the same
key, addresses and remote site. Each round builds the topology afresh for
each gateway and measures, in this order: ping RTT from the lan host to the
remote host, then iperf3 TCP lan->remote and remote->lan for each -P.

CPU is sampled from /proc around each iperf3 client: utime+stime of the
gateway process and of the remote site's wireguard-go (all threads), and the
whole machine's busy and steal time. Kernel work done in softirq context
(veth, forwarding, the AF_PACKET rings) is charged to whichever task was
running when it ran: a gateway's number misses some of its own packets'
kernel work and includes some of its neighbours' (a veth transmit runs the
receiver's stack), so per-process CPU is an attribution, not an exact cost.

Packet losses are located per run: UDP receive-buffer errors and TUN drops
of each wireguard-go, and for moongate the frames its AF_PACKET rx rings
dropped (see losses()).

Before the ping and each iperf3 run it waits (up to --quiet-wait s) for the
machine to be idle (fewer than --quiet-cores busy over 1 s) and records the
level it saw: the machine is shared, and the gateways compete with the
hosts and the remote site for the same 2 cores.

Usage: namespace_bench.py --dataplane PATH [--seconds 10] [--parallel 1,4]
                          [--rounds 1] [--gateways moongate,wireguard-go]
                          [--framecnt N] [--quiet-cores 0.2] [--quiet-wait 120]
                          [--json OUT]
Prints a Markdown table; exits 77 when not root or a tool is missing.
"""
import argparse
import json
import os
import re
import shutil
import signal
import socket
import statistics
import sys
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.join(ROOT, "tests", "e2e"))
from topology import Topology, sh, site_router_wiring, wait_for  # noqa: E402

GATEWAYS = ("moongate", "wireguard-go")
CLK_TCK = os.sysconf("SC_CLK_TCK")
SERVER = "10.20.0.2"  # the iperf3 server and ping target: the remote host


# Ctrl-C, the run script's trap (SIGTERM) or a closed terminal must unwind
# through the finally blocks that remove namespaces and processes, and a
# second signal (Ctrl-C reaches this process and the run script's TERM
# follows) must not cut that clean-up short.
STOP = {"cleaning": False, "signal": None}


def stop(signum, _frame):
    if STOP["cleaning"]:
        STOP["signal"] = signum
        return
    raise SystemExit(128 + signum)


def build(topo, gateway, args):
    """Builds the topology with the given gateway; returns its namespaces and PIDs."""
    # The same host-side settings for both gateways, so only the gateway
    # differs.
    w = site_router_wiring(topo, dataplane_gw=False)
    lan, gw, wan, rem, site_if, site = w["lan"], w["gw"], w["wan"], w["rem"], w["site_if"], w["site"]
    gw_priv, site_pub = w["gw_priv"], w["site_pub"]

    if gateway == "moongate":
        gw_proc = start_moongate(topo, gw, lan, args, gw_priv, site_pub)
    else:
        gw_proc = start_wireguard_go(topo, gw, gw_priv, site_pub)
    # The first ping also makes the handshake: wait until the tunnel carries
    # traffic, so no measurement includes it.
    wait_for("ping through the tunnel", lambda: sh(
        "ping", "-c", "1", "-W", "1", SERVER, ns=lan, check=False) == 0, timeout=30)
    return dict(gateway=gateway, lan=lan, gw=gw, wan=wan, rem=rem, site_if=site_if,
                gw_if=gw_name(topo), dpdk=f"moongate-{gw_name(topo)}",
                gw_pid=gw_proc.pid, site_pid=site.pid)


def gw_name(topo):
    # The gateway's WireGuard interface name: wireguard-go's TUN device, or
    # moongate's interface name, which also names its DPDK runtime directory
    # and telemetry socket. Unique on the machine, as the UAPI sockets are shared.
    return f"mgg{topo.tag}"[:15]


def start_moongate(topo, gw, lan, args, priv, site_pub):
    # The data plane owns both veths through AF_PACKET: no kernel address or
    # IPv6 autoconfiguration on them.
    for i in ("gl0", "gw0"):
        topo.dataplane_side(gw, i)
    name = gw_name(topo)
    # The PMD's rx/tx rings: its default (512 frames) overflows while the
    # data plane waits for a shared core; --framecnt shows how much that costs.
    ring = f",framecnt={args.framecnt}" if args.framecnt else ""
    cfg = os.path.join(topo.tmp, "gateway.yaml")
    with open(cfg, "w") as f:
        f.write(f"""# generated by perf/namespace_bench.py
interface:
  name: {name}
  private_key: {priv}
  listen_port: 51820
ports:
  - name: wan0
    role: wan
    device: "net_af_packet0,iface=gw0{ring}"
    address: 192.0.2.2/24
  - name: lan0
    role: lan
    device: "net_af_packet1,iface=gl0{ring}"
    address: 10.10.0.1/24
peers:
  - public_key: {site_pub}
    allowed_ips: [10.20.0.0/24]
    endpoint: 192.0.2.10:51820
dataplane:
  lcores: [0]
  busy_poll: false
  hugepages: false
  memory_mb: 256
""")
    log = os.path.join(topo.tmp, "dataplane.log")
    topo.runtime_dirs.append(f"/var/run/dpdk/moongate-{name}")
    dp = topo.spawn([args.dataplane, "--config", cfg], ns=gw, log=log)

    def ready():
        if dp.poll() is not None:
            raise RuntimeError("data plane exited: " + open(log).read()[-2000:])
        return sh("ping", "-c", "1", "-W", "1", "10.10.0.1", ns=lan, check=False) == 0
    wait_for("the data plane to answer ping on its LAN port", ready, timeout=60)
    return dp


def start_wireguard_go(topo, gw, priv, site_pub):
    sh("ip", "addr", "add", "10.10.0.1/24", "dev", "gl0", ns=gw)
    sh("ip", "addr", "add", "192.0.2.2/24", "dev", "gw0", ns=gw)
    sh("sysctl", "-qw", "net.ipv4.ip_forward=1", ns=gw)
    ifname = gw_name(topo)
    topo.wireguard_go(gw, ifname, priv, 51820, "10.10.0.1/32")
    sh("wg", "set", ifname, "peer", site_pub, "endpoint", "192.0.2.10:51820",
       "allowed-ips", "10.20.0.0/24", ns=gw)
    sh("ip", "route", "add", "10.20.0.0/24", "dev", ifname, ns=gw)
    return topo.procs[-1]  # wireguard_go() spawns it last


def telemetry(prefix, cmd):
    """One DPDK telemetry request to the data plane (v2 socket); returns the value."""
    with socket.socket(socket.AF_UNIX, socket.SOCK_SEQPACKET) as s:
        s.settimeout(5)
        s.connect(f"/var/run/dpdk/{prefix}/dpdk_telemetry.v2")
        json.loads(s.recv(16384))  # the server's greeting
        s.send(cmd.encode())
        return json.loads(s.recv(1 << 20))[cmd.split(",")[0]]


def udp_rcvbuf_errors(ns):
    """UDP datagrams dropped because a socket's receive buffer was full (per namespace)."""
    head, vals = [l.split() for l in read_in_ns(ns, "/proc/net/snmp") if l.startswith("Udp:")][:2]
    return int(vals[head.index("RcvbufErrors")])


def read_in_ns(ns, path):
    # /proc/net is the reader's network namespace: read it from inside.
    return sh("cat", path, ns=ns, capture=True).splitlines()


def link_tx(ns, ifname):
    """(packets, dropped) sent on an interface; a TUN's dropped are packets its reader was too slow for."""
    tx = json.loads(sh("ip", "-s", "-j", "link", "show", "dev", ifname, ns=ns, capture=True))[0]["stats64"]["tx"]
    return tx["packets"], tx["dropped"]


def backlog_drops():
    """Packets dropped machine-wide because a CPU's input backlog was full (veth receive)."""
    with open("/proc/net/softnet_stat") as f:
        return sum(int(line.split()[1], 16) for line in f)


def losses(net):
    """Cumulative packets lost at the remote site's wireguard-go and at the gateway.

    wireguard-go (either side) loses packets as UDP receive-buffer errors
    (its socket) and TUN tx drops (its device). moongate loses them in its
    AF_PACKET rx rings, which DPDK 22.11's af_packet PMD does not count: the
    difference between what the veth peers sent and what the data plane
    received is that loss; the data plane's own drop counters and the
    ports' tx errors are added to it.
    """
    site = udp_rcvbuf_errors(net["wan"]) + link_tx(net["wan"], net["site_if"])[1]
    if net["gateway"] == "moongate":
        st = telemetry(net["dpdk"], "/moongate/stats")
        ring = (link_tx(net["wan"], "wr0")[0] - st["rx_wan0"]) + (link_tx(net["lan"], "lh0")[0] - st["rx_lan0"])
        own = sum(v for k, v in st.items() if k.startswith(("drop_", "wg_drop_")))
        tx_err = sum(telemetry(net["dpdk"], f"/ethdev/stats,{p}")["oerrors"] for p in (0, 1))
        detail = dict(af_packet_rx=ring, dataplane=own, tx_errors=tx_err)
    else:
        detail = dict(udp_rcvbuf=udp_rcvbuf_errors(net["gw"]), tun_tx=link_tx(net["gw"], net["gw_if"])[1])
    return dict(site=site, gw=sum(detail.values()), gw_detail=detail, backlog=backlog_drops())


def proc_ticks(pid):
    """utime + stime of a process (all its threads), in clock ticks."""
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return int(fields[11]) + int(fields[12])  # fields 14 and 15 of stat(5)


def machine_ticks():
    """(busy, steal, total) ticks of all CPUs from /proc/stat."""
    with open("/proc/stat") as f:
        v = [int(x) for x in f.readline().split()[1:]]
    idle = v[3] + v[4]  # idle + iowait
    total = sum(v[:8])  # guest time is already inside user
    return total - idle - v[7], v[7], total


def quiet(args):
    """Waits (up to --quiet-wait s) until the machine is idle apart from this
    benchmark's idle topology; returns the busy cores measured last.

    The machine is shared: a compile next door takes the cores the gateway
    and the peers compete for, so the result records what was running.
    """
    deadline = time.monotonic() + args.quiet_wait
    while True:
        m0 = machine_ticks()
        time.sleep(1)
        busy = (machine_ticks()[0] - m0[0]) / CLK_TCK
        if busy < args.quiet_cores or time.monotonic() > deadline:
            return busy


def iperf(net, streams, reverse, seconds):
    """One iperf3 TCP run from the lan host; returns throughput and CPU use."""
    args = ["iperf3", "-c", SERVER, "-t", str(seconds), "-P", str(streams), "-J"]
    if reverse:
        args.append("-R")
    l0 = losses(net)
    g0, s0, m0, t0 = proc_ticks(net["gw_pid"]), proc_ticks(net["site_pid"]), machine_ticks(), time.monotonic()
    out = sh(*args, ns=net["lan"], capture=True, timeout=seconds + 60)
    g1, s1, m1, t1 = proc_ticks(net["gw_pid"]), proc_ticks(net["site_pid"]), machine_ticks(), time.monotonic()
    l1 = losses(net)
    end = json.loads(out)["end"]
    wall = t1 - t0
    received = end["sum_received"]
    return dict(
        test=f"{'remote->lan' if reverse else 'lan->remote'} -P {streams}",
        gbps=received["bits_per_second"] / 1e9,
        bytes=received["bytes"],
        retransmits=end["sum_sent"].get("retransmits"),
        lost_site=l1["site"] - l0["site"],
        lost_gw=l1["gw"] - l0["gw"],
        lost_gw_detail={k: l1["gw_detail"][k] - l0["gw_detail"][k] for k in l0["gw_detail"]},
        lost_backlog=l1["backlog"] - l0["backlog"],
        gw_cores=(g1 - g0) / CLK_TCK / wall,
        site_cores=(s1 - s0) / CLK_TCK / wall,
        machine_cores=(m1[0] - m0[0]) / CLK_TCK / wall,
        steal_cores=(m1[1] - m0[1]) / CLK_TCK / wall,
        gw_cpu_s_per_gb=(g1 - g0) / CLK_TCK / (received["bytes"] / 1e9) if received["bytes"] else None,
    )


def ping_rtt(net, count=20):
    out = sh("ping", "-q", "-c", str(count), "-i", "0.2", SERVER, ns=net["lan"], capture=True, timeout=60)
    m = re.search(r"= ([\d.]+)/([\d.]+)/([\d.]+)/([\d.]+) ms", out)
    if not m:
        raise RuntimeError(f"no RTT in ping output:\n{out}")
    lost = re.search(r"(\d+)% packet loss", out).group(1)
    return dict(zip(("min", "avg", "max", "mdev"), map(float, m.groups())), loss_pct=int(lost))


def run_gateway(gateway, args):
    topo = Topology("nm" if gateway == "moongate" else "nw")
    try:
        net = build(topo, gateway, args)
        topo.spawn(["iperf3", "-s", "-B", SERVER], ns=net["rem"])
        wait_for("iperf3 server", lambda: f"{SERVER}:5201" in sh("ss", "-ltn", ns=net["rem"], capture=True))
        background = quiet(args)
        result = dict(gateway=gateway, ping=dict(ping_rtt(net), background_cores=background), runs=[])
        print(f"# {gateway}: ping avg {result['ping']['avg']:.3f} ms", file=sys.stderr, flush=True)
        for streams in args.parallel:
            for reverse in (False, True):
                background = quiet(args)
                r = iperf(net, streams, reverse, args.seconds)
                r["background_cores"] = background
                print(f"# {gateway}: {r['test']}: {r['gbps']:.3f} Gbit/s, retr {r['retransmits']}, "
                      f"lost at site/gw/backlog {r['lost_site']}/{r['lost_gw']}/{r['lost_backlog']}, "
                      f"gw {r['gw_cores']:.2f} cores", file=sys.stderr, flush=True)
                result["runs"].append(r)
        return result
    finally:
        # A signal during the clean-up is held until it is done (see stop()).
        STOP["cleaning"] = True
        topo.cleanup()
        STOP["cleaning"] = False
        if STOP["signal"]:
            raise SystemExit(128 + STOP["signal"])


def fmt(v, spec):
    return "n/a" if v is None else format(v, spec)


def report(rounds, args):
    """Markdown: a side-by-side summary (medians over rounds), then every run."""
    by = {}
    for rnd in rounds:
        for g in rnd:
            for r in g["runs"]:
                by.setdefault((g["gateway"], r["test"]), []).append(r)
    tests = list(dict.fromkeys(t for (_, t) in by))
    gws = [g for g in GATEWAYS if g in args.gateways]
    med = lambda xs: statistics.median(xs) if xs else None  # noqa: E731
    n = len(rounds)
    print(f"Throughput, iperf3 TCP {args.seconds} s per run, receiver Gbit/s"
          + (f" (median of {n} rounds)" if n > 1 else "") + ":\n")
    head = "| test | " + " | ".join(f"{g} Gbit/s" for g in gws)
    if len(gws) == 2:
        head += " | moongate / wireguard-go"
    print(head + " |")
    print("|---" + "|---:" * (len(gws) + (len(gws) == 2)) + "|")
    for t in tests:
        vals = [med([r["gbps"] for r in by.get((g, t), [])]) for g in gws]
        row = f"| {t} | " + " | ".join(fmt(v, ".3f") for v in vals)
        if len(gws) == 2:
            row += " | " + (f"{vals[0] / vals[1]:.2f}x" if vals[0] and vals[1] else "n/a")
        print(row + " |")
    print("\nEvery run (CPU in cores: 1.00 = one CPU busy for the whole run; the machine has "
          f"{os.cpu_count()}; busy before: the whole machine, 1 s just before the run, tunnel idle):\n")
    print("| round | gateway | test | Gbit/s | retransmits | lost at remote wireguard-go | lost at gateway "
          "| backlog drops | gateway CPU | gateway CPU s/GB | remote wireguard-go CPU | machine busy | steal "
          "| busy before |")
    print("|---:|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|")
    for i, rnd in enumerate(rounds, 1):
        for g in rnd:
            for r in g["runs"]:
                print(f"| {i} | {g['gateway']} | {r['test']} | {r['gbps']:.3f} | {fmt(r['retransmits'], 'd')} "
                      f"| {r['lost_site']} | {r['lost_gw']} | {r['lost_backlog']} "
                      f"| {r['gw_cores']:.2f} | {fmt(r['gw_cpu_s_per_gb'], '.2f')} | {r['site_cores']:.2f} "
                      f"| {r['machine_cores']:.2f} | {r['steal_cores']:.2f} | {r['background_cores']:.2f} |")
    print("\nPing lan host -> remote host through the idle tunnel (20 x 0.2 s), ms:\n")
    print("| round | gateway | min | avg | max | mdev | loss | busy before |")
    print("|---:|---|---:|---:|---:|---:|---:|---:|")
    for i, rnd in enumerate(rounds, 1):
        for g in rnd:
            p = g["ping"]
            print(f"| {i} | {g['gateway']} | {p['min']:.3f} | {p['avg']:.3f} | {p['max']:.3f} "
                  f"| {p['mdev']:.3f} | {p['loss_pct']}% | {p['background_cores']:.2f} |")


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--dataplane", required=True, help="path to moongate-dataplane")
    ap.add_argument("--seconds", type=int, default=10)
    ap.add_argument("--parallel", default="1,4", help="iperf3 -P values, comma-separated")
    ap.add_argument("--rounds", type=int, default=1)
    ap.add_argument("--gateways", default=",".join(GATEWAYS))
    ap.add_argument("--framecnt", type=int, default=0,
                    help="frames per net_af_packet ring (default: the PMD's, 512)")
    ap.add_argument("--quiet-cores", type=float, default=0.2,
                    help="before each run, wait until fewer cores than this are busy (1 s sample)")
    ap.add_argument("--quiet-wait", type=float, default=120, help="... for at most this many seconds")
    ap.add_argument("--json", help="also write the raw results here")
    args = ap.parse_args()
    args.parallel = [int(x) for x in args.parallel.split(",")]
    args.gateways = args.gateways.split(",")
    if any(g not in GATEWAYS for g in args.gateways):
        ap.error(f"--gateways: choose from {','.join(GATEWAYS)}")
    if os.geteuid() != 0:
        print("SKIP: needs root (network namespaces)", file=sys.stderr)
        return 77
    for tool in ("ip", "wg", "wireguard-go", "ping", "iperf3", "ethtool", "ss"):
        if shutil.which(tool) is None:
            print(f"SKIP: {tool} not installed", file=sys.stderr)
            return 77
    args.dataplane = os.path.abspath(args.dataplane)

    for s in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP):
        signal.signal(s, stop)

    rounds = []
    for _ in range(args.rounds):
        # Alternate within a round so both gateways see the same slice of
        # a shared machine's noise.
        rounds.append([run_gateway(g, args) for g in GATEWAYS if g in args.gateways])
    if args.json:
        with open(args.json, "w") as f:
            json.dump(dict(seconds=args.seconds, parallel=args.parallel, framecnt=args.framecnt or None,
                           rounds=rounds), f, indent=1)
    report(rounds, args)
    return 0


if __name__ == "__main__":
    sys.exit(main())
