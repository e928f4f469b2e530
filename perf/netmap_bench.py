#!/usr/bin/env python3
"""How fast netmap changes take effect: moongate-control + moongate-dataplane --control.

The subnet-router topology of tests/e2e (without its IPv6 and inner subnet),
with moongate-control owning the netmap and the data plane following it
over shared memory (docs/control.md):

  lan host 10.10.0.2 --veth-- [ data plane ] --veth-- wan ns 192.0.2.10 --veth-- remote host 10.20.0.2
  default via 10.10.0.1       lan 10.10.0.1/24        wireguard-go (the         10.21.0.2 too
                              wan 192.0.2.2/24        remote site), 10.20.0.1
                              + moongate-control

For each worker-lcore count (--lcores 1,2: lcores [0] and [0,1]) the
topology is built afresh and, in this order:

  1. `wg set IF peer SITE allowed-ips ...` on the existing site peer, --sets
     times, alternating 10.20.0.0/24 and 10.20.0.0/24,10.21.0.0/24; timed
     from just before `wg` is started until moongate-control's control
     socket (/run/moongate/IF.ctl, "status json", over AF_UNIX: no process
     spawned) reports dataplane.applied_generation >= the generation that
     `wg` published. The same series again with --set-peers (10 000) peers
     in the netmap.
  2. `wg syncconf IF FILE` from the base netmap (the site peer) to each of
     --sizes peers and back, --reps times, while `ping -i 0.01` from the lan
     host to the remote host (through the unchanged site peer) runs from
     0.5 s before the change until 0.5 s after it was seen applied. Timed
     the same way; packets lost are the ICMP sequence numbers missing among
     those answered (the last, still in flight when ping is stopped, is not
     counted).  The "back" direction is the removal of N-1 peers.

The control socket's answer is what an operator sees, but every "status
json" lists all peers: with 10 000 of them one poll costs the control
process ~8 ms, so the first poll that sees a change comes up to a poll
cycle late. The same generation is therefore also read straight from the
shared-memory segment's header every 0.5 ms ("header": when the data plane
stored it), which brackets the answer from below.

For every change it also records the data plane's own log line
"netmap: generation N applied in X us (diff and DH ..., tables ...,
waiting for workers ..., publish ...; P peers)", how long `wg` itself took,
the polling resolution (time between the last poll that did not see the
change and the first that did: "status json" lists every peer, so with
many peers one poll costs the control process milliseconds, and the poll
interval grows with it: at least --poll-ms, at least the last poll's cost),
and the machine's busy cores during the change.

Before each measurement it waits (up to --quiet-wait s) for the machine to
be idle (fewer than --quiet-cores busy over 1 s) and records what it saw.

Usage: netmap_bench.py --dataplane PATH --control PATH [--lcores 1,2] [--sets 30]
                       [--set-peers 10000] [--sizes 1000,10000,50000] [--reps 3]
                       [--budget 90] [--quiet-cores 0.2] [--quiet-wait 120] [--json OUT]
Prints a Markdown report; exits 77 when not root or a tool is missing.
"""
import argparse
import base64
import json
import mmap
import os
import re
import shutil
import signal
import socket
import statistics
import struct
import subprocess
import sys
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.join(ROOT, "tests", "e2e"))
from topology import Topology, sh, site_router_wiring, wait_for  # noqa: E402

CLK_TCK = os.sysconf("SC_CLK_TCK")
TARGET = "10.20.0.2"  # the remote host, behind the site peer that no change touches
SET_A = "10.20.0.0/24"
SET_B = "10.20.0.0/24,10.21.0.0/24"

# As in namespace_bench.py: signals unwind through the clean-up, and a second
# signal during the clean-up is held until it is done.
STOP = {"cleaning": False, "signal": None}


def stop(signum, _frame):
    if STOP["cleaning"]:
        STOP["signal"] = signum
        return
    raise SystemExit(128 + signum)


def machine_ticks():
    """(busy, total) ticks of all CPUs from /proc/stat."""
    with open("/proc/stat") as f:
        v = [int(x) for x in f.readline().split()[1:]]
    idle = v[3] + v[4]
    total = sum(v[:8])
    return total - idle - v[7], total


def busy_cores(m0, m1):
    """Busy cores between two machine_ticks() (None below one clock tick)."""
    return (m1[0] - m0[0]) / (m1[1] - m0[1]) * os.cpu_count() if m1[1] > m0[1] else None


def quiet(args):
    """Waits (up to --quiet-wait s) until fewer than --quiet-cores are busy
    over 1 s; returns the busy cores measured last."""
    deadline = time.monotonic() + args.quiet_wait
    while True:
        m0 = machine_ticks()[0]
        time.sleep(1)
        busy = (machine_ticks()[0] - m0) / CLK_TCK
        if busy < args.quiet_cores or time.monotonic() > deadline:
            return busy


def ifname_of(topo):
    return f"mgx{topo.tag}"[:15]


def build(topo, args, lcores):
    """The subnet router with moongate-control; returns names, paths and processes."""
    w = site_router_wiring(topo, remote_subnets=("10.20.0", "10.21.0"))
    lan, gw, wan, rem, site_if = w["lan"], w["gw"], w["wan"], w["rem"], w["site_if"]
    gw_priv, gw_pub, site_pub = w["gw_priv"], w["gw_pub"], w["site_pub"]

    name = ifname_of(topo)
    cfg = os.path.join(topo.tmp, "gateway.yaml")
    with open(cfg, "w") as f:
        f.write(f"""# generated by perf/netmap_bench.py
interface:
  name: {name}
  private_key: {gw_priv}
  listen_port: 51820
ports:
  - name: wan0
    role: wan
    device: "net_af_packet0,iface=gw0"
    address: 192.0.2.2/24
  - name: lan0
    role: lan
    device: "net_af_packet1,iface=gl0"
    address: 10.10.0.1/24
peers:
  - public_key: {site_pub}
    allowed_ips: [{SET_A}]
    endpoint: 192.0.2.10:51820
dataplane:
  lcores: [{", ".join(str(c) for c in lcores)}]
  busy_poll: false
  hugepages: false
  memory_mb: {args.memory_mb}
  max_peers: {args.max_peers}
""")
    # What a killed moongate-control leaves (a clean exit removes its sockets).
    topo.files += [f"/dev/shm/moongate-{name}", f"/run/moongate/{name}.ctl", f"/var/run/wireguard/{name}.sock"]
    topo.runtime_dirs.append(f"/var/run/dpdk/moongate-{name}")
    ctl_log = os.path.join(topo.tmp, "control.log")
    ctl = topo.spawn([args.control, "--config", cfg, "--state-dir", os.path.join(topo.tmp, "state"),
                      "--metrics", "off"], ns=gw, log=ctl_log)

    def ctl_up():
        if ctl.poll() is not None:
            raise RuntimeError("moongate-control exited: " + open(ctl_log).read()[-2000:])
        return os.path.exists(f"/run/moongate/{name}.ctl") and os.path.exists(f"/var/run/wireguard/{name}.sock")
    wait_for("moongate-control's sockets", ctl_up)
    log = os.path.join(topo.tmp, "dataplane.log")
    dp = topo.spawn([args.dataplane, "--config", cfg, "--control"], ns=gw, log=log)

    def ready():
        if dp.poll() is not None:
            raise RuntimeError("data plane exited: " + open(log).read()[-2000:])
        return sh("ping", "-c", "1", "-W", "1", "10.10.0.1", ns=lan, check=False) == 0
    wait_for("the data plane to answer ping on its LAN port", ready, timeout=90)
    # The first ping through the tunnel makes the handshake.
    wait_for("ping through the tunnel", lambda: sh(
        "ping", "-c", "1", "-W", "1", TARGET, ns=lan, check=False) == 0, timeout=30)
    return dict(lan=lan, gw=gw, wan=wan, rem=rem, ifname=name, site_pub=site_pub, log=log, ctl_log=ctl_log,
                dp=dp, ctl=ctl, lcores=list(lcores), header=SegmentHeader(name))


def alive(net):
    """Both processes still running (a change must not cost a crash)."""
    for what in ("dp", "ctl"):
        rc = net[what].poll()
        if rc is not None:
            name = "data plane" if what == "dp" else "moongate-control"
            log = net["log"] if what == "dp" else net["ctl_log"]
            raise RuntimeError(f"the {name} exited ({'signal ' + str(-rc) if rc < 0 else 'status ' + str(rc)}); "
                               f"its log ends:\n" + open(log, errors="replace").read()[-1500:])


# --- observing the change -------------------------------------------------

PUB_RE = re.compile(rb'[{,]"generation":(\d+)[,}]')
APPLIED_RE = re.compile(rb'"applied_generation":(\d+)[,}]')


def generation(ifname):
    """(published, applied by the data plane) from one "status json" on the
    control socket. Only the head of the answer is read: the two numbers come
    before the list of peers, which can be megabytes."""
    s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    try:
        s.settimeout(30)
        s.connect(f"/run/moongate/{ifname}.ctl")
        s.sendall(b"status json\n")
        buf = b""
        while True:
            chunk = s.recv(4096)
            if not chunk:
                break
            buf += chunk
            p, a = PUB_RE.search(buf), APPLIED_RE.search(buf)
            if p and a:
                return int(p.group(1)), int(a.group(1))
        raise RuntimeError(f"no generation in the status: {buf[:300]!r}")
    finally:
        s.close()


class SegmentHeader:
    """The two generations in the shared-memory netmap's header
    (/dev/shm/moongate-IF, netmap/segment.cc: Segment::Header, layout 1:
    published = generation << 1 | slot at byte 128, dataplane_applied at
    272), read without asking anyone: the same field moongate-control's
    "status json" reports as dataplane.applied_generation, seen the moment
    the data plane stores it. A cross-check of the control socket's timing,
    whose every poll costs the control process the whole peer list."""
    MAGIC = b"moongate-netmap\0"

    def __init__(self, ifname):
        fd = os.open(f"/dev/shm/moongate-{ifname}", os.O_RDONLY)
        try:
            self.m = mmap.mmap(fd, 4096, mmap.MAP_SHARED, mmap.PROT_READ)
        finally:
            os.close(fd)
        version = struct.unpack_from("<I", self.m, 16)[0]
        if self.m[:16] != self.MAGIC or version != 1:
            raise RuntimeError(f"/dev/shm/moongate-{ifname}: not a layout-1 netmap segment (update SegmentHeader)")

    def generations(self):
        return struct.unpack_from("<Q", self.m, 128)[0] >> 1, struct.unpack_from("<Q", self.m, 272)[0]


def wait_applied(net, before, t0, poll_s, budget_s):
    """Polls the control socket until the data plane applied what `wg`
    published (> before); between polls, reads the segment header every
    0.5 ms. Returns seconds since t0 at the answer of the first poll that
    saw it, the resolution (seconds since the start of the last poll that
    did not), the generation, the number of polls, and seconds since t0 at
    which the segment header first showed it applied."""
    ifname, header = net["ifname"], net["header"]
    deadline = t0 + budget_s
    last_miss = t0
    polls = 0
    t_header = None
    next_poll = t0
    while True:
        now = time.monotonic()
        if t_header is None:
            p, a = header.generations()
            if p > before and a >= p:
                t_header = now - t0
        if now >= next_poll:
            pub, applied = generation(ifname)
            a = time.monotonic()
            polls += 1
            if pub > before and applied >= pub:
                if t_header is None:  # both saw it between two header reads
                    t_header = a - t0
                return a - t0, a - last_miss, pub, polls, t_header
            if a > deadline:
                raise TimeoutError(f"generation {pub} not applied within {budget_s:.0f} s (applied {applied})")
            last_miss = now
            # At least poll_s apart, and at least one poll's cost: the control
            # process builds the whole peer list for every poll.
            next_poll = a + max(poll_s, a - now)
        time.sleep(0.0005)


APPLY_RE = re.compile(r"netmap: generation (\d+) applied in (\d+) us \((.*); (\d+) peers\)")
PART_RE = re.compile(r"diff and DH (\d+) us, (?:spare ready after \d+ us, )?tables (\d+) us \(alongside\), "
                     r"(?:policy \d+ us \(alongside\), )?waiting for workers (\d+) us, publish (\d+) us")


def dp_applies(log):
    """{generation: the data plane's account} from its log."""
    out = {}
    with open(log, errors="replace") as f:
        for line in f:
            m = APPLY_RE.search(line)
            if not m:
                continue
            d = dict(total_us=int(m.group(2)), peers=int(m.group(4)), line=line.split("netmap: ", 1)[1].strip())
            p = PART_RE.search(m.group(3))
            if p:
                d.update(diff_dh_us=int(p.group(1)), tables_us=int(p.group(2)), wait_us=int(p.group(3)),
                         publish_us=int(p.group(4)))
                # After the publish come the removals; the tables run next to
                # the diff and DH and only their excess adds up here.
                d["other_us"] = d["total_us"] - d["diff_dh_us"] - d["wait_us"] - d["publish_us"]
            out[int(m.group(1))] = d
    return out


def dp_account(net, before, gen):
    """The data plane's lines for the generations (before, gen]; the last one
    is the change (one `wg` request publishes one generation)."""
    # The data plane reports the generation applied before it writes the
    # line (the change's temporaries are freed in between: long after a
    # large removal); the line is not part of the timing.
    deadline = time.monotonic() + 30
    while gen not in (applies := dp_applies(net["log"])) and time.monotonic() < deadline:
        time.sleep(0.05)
    lines = [applies[g] for g in range(before + 1, gen + 1) if g in applies]
    d = dict(lines[-1]) if lines else dict(total_us=None, line="(not logged)")
    d["generations"] = gen - before
    return d


def timed(net, argv, args, poll_s):
    """Runs `wg ...` and waits until the data plane applied it."""
    alive(net)
    before, applied = generation(net["ifname"])
    assert applied == before, f"data plane behind before the change: {applied} < {before}"
    m0 = machine_ticks()
    t0 = time.monotonic()
    r = subprocess.run(argv, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, timeout=args.budget)
    t_wg = time.monotonic() - t0
    if r.returncode != 0:
        raise RuntimeError(f"{' '.join(argv)} failed ({r.returncode}): {r.stderr.decode().strip()}")
    elapsed, resolution, gen, polls, t_header = wait_applied(net, before, t0, poll_s, args.budget)
    m1 = machine_ticks()
    alive(net)
    if net["header"].generations() != generation(net["ifname"]):
        raise RuntimeError("the segment header and the control socket disagree: SegmentHeader is out of date")
    return dict(applied_ms=elapsed * 1000, wg_ms=t_wg * 1000, resolution_ms=resolution * 1000, polls=polls,
                header_ms=t_header * 1000,
                generation=gen, machine_cores=busy_cores(m0, m1),
                dataplane=dp_account(net, before, gen))


def poll_cost(ifname, n=10):
    """Median seconds for one "status json" poll."""
    ts = []
    for _ in range(n):
        t = time.monotonic()
        generation(ifname)
        ts.append(time.monotonic() - t)
    return statistics.median(ts)


# --- the measurements ------------------------------------------------------

def wg_sets(net, args, label):
    """--sets `wg set` of the site peer's allowed IPs, alternating two sets."""
    ifname, site = net["ifname"], net["site_pub"]
    cost = poll_cost(ifname)
    runs = []
    for i in range(args.sets):
        allowed = SET_B if i % 2 == 0 else SET_A  # ends on SET_A with an even count
        busy = quiet(args)
        r = timed(net, ["wg", "set", ifname, "peer", site, "allowed-ips", allowed], args, args.poll_ms / 1000)
        r.update(allowed=allowed, busy_before=busy)
        runs.append(r)
        print(f"# {label}: wg set {i + 1}/{args.sets} ({allowed}): applied {r['applied_ms']:.1f} ms "
              f"(wg {r['wg_ms']:.1f} ms, data plane {fmt_us(r['dataplane']['total_us'])}), busy before {busy:.2f}",
              file=sys.stderr, flush=True)
    if args.sets % 2:  # back to the base set
        timed(net, ["wg", "set", ifname, "peer", site, "allowed-ips", SET_A], args, args.poll_ms / 1000)
    return dict(label=label, poll_cost_ms=cost * 1000, runs=runs)


def check_set_reaches_forwarding(net, args):
    """Not timed: with SET_B the remote host's second address is routed, and
    after SET_A again it is not (the change reaches forwarding, not just the
    generation number)."""
    ifname, site = net["ifname"], net["site_pub"]
    timed(net, ["wg", "set", ifname, "peer", site, "allowed-ips", SET_B], args, 0.01)
    ok_b = sh("ping", "-c", "2", "-W", "1", "10.21.0.2", ns=net["lan"], check=False) == 0
    timed(net, ["wg", "set", ifname, "peer", site, "allowed-ips", SET_A], args, 0.01)
    ok_a = sh("ping", "-c", "1", "-W", "1", "10.21.0.2", ns=net["lan"], check=False) != 0
    if not (ok_b and ok_a):
        raise RuntimeError(f"wg set did not reach forwarding (10.21.0.2 with {SET_B}: {ok_b}, gone with {SET_A}: {ok_a})")


def write_conf(path, base, peers):
    """base (`wg showconf` of the base netmap: [Interface] and the site peer)
    plus peers-1 peers with new random keys and one IPv4 /24 each."""
    with open(path, "w") as f:
        f.write(base.strip() + "\n")
        for k in range(peers - 1):
            key = base64.b64encode(os.urandom(32)).decode()
            # 10.32.0.0 - 10.255.255.0: clear of 10.10/10.20/10.21.
            f.write(f"\n[Peer]\nPublicKey = {key}\nAllowedIPs = 10.{32 + k // 256}.{k % 256}.0/24\n")


def peer_count(ifname):
    return len(subprocess.run(["wg", "show", ifname, "peers"], check=True, capture_output=True,
                              timeout=120).stdout.split())


def syncconf_with_ping(net, args, conf, expect_peers, topo):
    """One `wg syncconf` timed, with a 100 Hz ping through the unchanged peer."""
    busy = quiet(args)
    pinger = subprocess.Popen(["ip", "netns", "exec", net["lan"], "ping", "-n", "-i", str(args.ping_interval),
                               "-W", "1", TARGET], stdout=subprocess.PIPE, stderr=subprocess.DEVNULL)
    topo.procs.append(pinger)
    try:
        m0 = machine_ticks()
        time.sleep(0.5)
        r = timed(net, ["wg", "syncconf", net["ifname"], conf], args, args.poll_ms / 1000)
        time.sleep(0.5)
        # The machine's load over the ping's window (0.5 s either side of the change).
        r["machine_cores"] = busy_cores(m0, machine_ticks())
    finally:
        if pinger.poll() is None:
            pinger.send_signal(signal.SIGINT)
        out = pinger.communicate(timeout=30)[0].decode()
    seqs = {int(m.group(1)) for m in re.finditer(r"icmp_seq=(\d+) ttl=\d+ time=", out)}
    rtts = [float(m.group(1)) for m in re.finditer(r"icmp_seq=\d+ ttl=\d+ time=([\d.]+) ms", out)]
    sent = re.search(r"(\d+) packets transmitted", out)
    top = max(seqs) if seqs else 0
    r.update(busy_before=busy, ping_sent=int(sent.group(1)) if sent else None, ping_answered=len(seqs),
             ping_lost=top - len(seqs), ping_max_rtt_ms=max(rtts) if rtts else None,
             ping_lost_seqs=sorted(set(range(1, top + 1)) - seqs)[:50])
    n = peer_count(net["ifname"])
    if n != expect_peers:
        raise RuntimeError(f"after wg syncconf: {n} peers, expected {expect_peers}")
    return r


def syncconfs(net, args, topo, base):
    """to N and back, for each size, --reps times (sizes interleaved within a rep)."""
    runs = []
    skip = set()
    for rep in range(1, args.reps + 1):
        for n in args.sizes:
            if n in skip:
                continue
            conf = os.path.join(topo.tmp, f"peers-{n}.conf")
            write_conf(conf, base, n)
            back = os.path.join(topo.tmp, "base.conf")
            try:
                to = syncconf_with_ping(net, args, conf, n, topo)
            except TimeoutError as e:
                print(f"# {n} peers: {e}; larger netmaps skipped; the data plane's log ends:\n"
                      + open(net["log"], errors="replace").read()[-1500:], file=sys.stderr, flush=True)
                skip.update(x for x in args.sizes if x >= n)
                runs.append(dict(rep=rep, peers=n, direction="add", error=str(e)))
                # Let it finish before going back.
                wait_for("the data plane to catch up", lambda: generation(net["ifname"])[1] == generation(
                    net["ifname"])[0], timeout=args.budget, interval=1)
                syncconf_with_ping(net, args, back, 1, topo)
                continue
            to.update(rep=rep, peers=n, direction="add")
            runs.append(to)
            report_change(to)
            os.unlink(conf)
            fro = syncconf_with_ping(net, args, back, 1, topo)
            fro.update(rep=rep, peers=n, direction="remove")
            runs.append(fro)
            report_change(fro)
    return runs


def report_change(r):
    what = f"1 -> {r['peers']}" if r["direction"] == "add" else f"{r['peers']} -> 1"
    print(f"# syncconf {what} (rep {r['rep']}): applied {r['applied_ms']:.0f} ms (wg {r['wg_ms']:.0f} ms, "
          f"data plane {fmt_us(r['dataplane']['total_us'])}), ping lost {r['ping_lost']}/{r['ping_answered'] + r['ping_lost']}, "
          f"busy before {r['busy_before']:.2f}", file=sys.stderr, flush=True)


def run_lcores(count, args):
    lcores = list(range(count))
    topo = Topology("nt")
    try:
        net = build(topo, args, lcores)
        label = f"{count} lcore" + ("s" if count > 1 else "")
        check_set_reaches_forwarding(net, args)
        base = subprocess.run(["wg", "showconf", net["ifname"]], check=True, capture_output=True).stdout.decode()
        with open(os.path.join(topo.tmp, "base.conf"), "w") as f:
            f.write(base)
        result = dict(lcores=lcores, sets=[wg_sets(net, args, f"{label}, 1 peer")])
        for n in args.set_peers:
            big = os.path.join(topo.tmp, f"set-peers-{n}.conf")
            write_conf(big, base, n)
            sh("wg", "syncconf", net["ifname"], big, timeout=args.budget)
            wait_for("the data plane to apply the netmap", lambda: generation(net["ifname"])[1] == generation(
                net["ifname"])[0], timeout=args.budget, interval=0.1)
            result["sets"].append(wg_sets(net, args, f"{label}, {n} peers"))
            result["sets"][-1]["peers"] = n
            sh("wg", "syncconf", net["ifname"], os.path.join(topo.tmp, "base.conf"), timeout=args.budget)
            wait_for("the data plane to apply the base netmap", lambda: generation(net["ifname"])[1] == generation(
                net["ifname"])[0], timeout=args.budget, interval=0.1)
        result["sets"][0]["peers"] = 1
        result["syncconf"] = syncconfs(net, args, topo, base)
        time.sleep(1.5)  # the workers' once-a-second report sweep walks every peer they own
        alive(net)
        with open(net["log"]) as f:
            result["dataplane_log_tail"] = f.read()[-4000:]
        return result
    except Exception:
        for p in (os.path.join(topo.tmp, "dataplane.log"), os.path.join(topo.tmp, "control.log")):
            if os.path.exists(p):
                print(f"--- {os.path.basename(p)} ---\n" + open(p, errors="replace").read()[-3000:], file=sys.stderr)
        raise
    finally:
        STOP["cleaning"] = True
        topo.cleanup()
        # A data plane that died leaves its telemetry socket in its runtime
        # directory (named after our interface), which cleanup() keeps.
        shutil.rmtree(f"/var/run/dpdk/moongate-{ifname_of(topo)}", ignore_errors=True)
        STOP["cleaning"] = False
        if STOP["signal"]:
            raise SystemExit(128 + STOP["signal"])


# --- report ----------------------------------------------------------------

def fmt_us(us):
    return "n/a" if us is None else (f"{us / 1000:.1f} ms" if us >= 1000 else f"{us} us")


def pct(xs, p):
    """Nearest-rank percentile."""
    s = sorted(xs)
    return s[max(0, min(len(s) - 1, int(-(-p * len(s) // 100)) - 1))]


def ms(v, spec=".1f"):
    return "n/a" if v is None else format(v, spec)


def report(results, args):
    med = statistics.median
    print(f"### `wg set <if> peer <site> allowed-ips ...` ({args.sets} changes, alternating {SET_A} and {SET_B})\n")
    print("Applied = from just before `wg` starts until the control socket (\"status json\") reports the data "
          "plane applied the generation: the first poll that saw it, so it includes up to one poll cycle "
          "(\"poll resolution\"). Header = the same field read straight from the shared-memory segment every "
          "0.5 ms. Data plane = its log line (from the decoded snapshot to done: copying and decoding the snapshot, which grows with the peers, comes before it).\n")
    print("| worker lcores | peers in netmap | applied median ms | p90 | max | header median ms | header p90 "
          "| header max | `wg` returned median ms | data plane median | data plane max "
          "| poll resolution median / max ms | one poll ms | busy before max |")
    print("|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|")
    for res in results:
        for s in res["sets"]:
            a = [r["applied_ms"] for r in s["runs"]]
            h = [r["header_ms"] for r in s["runs"]]
            dp = [r["dataplane"]["total_us"] for r in s["runs"] if r["dataplane"]["total_us"] is not None]
            rs = [r["resolution_ms"] for r in s["runs"]]
            print(f"| {len(res['lcores'])} | {s['peers']} | {med(a):.1f} | {pct(a, 90):.1f} | {max(a):.1f} "
                  f"| {med(h):.1f} | {pct(h, 90):.1f} | {max(h):.1f} "
                  f"| {med([r['wg_ms'] for r in s['runs']]):.1f} | {fmt_us(int(med(dp)) if dp else None)} "
                  f"| {fmt_us(max(dp) if dp else None)} | {med(rs):.1f} / {max(rs):.1f} "
                  f"| {s['poll_cost_ms']:.2f} | {max(r['busy_before'] for r in s['runs']):.2f} |")

    print(f"\n### `wg syncconf` to N peers and back ({args.reps} repetitions, medians; "
          f"ping -i {args.ping_interval} to the unchanged site peer throughout)\n")
    print("\"remove\" is the way back: N-1 peers removed. Data plane columns: its log line "
          "(diff and DH = the diff plus the X25519 precomputation for new peers; tables = the allowed-IPs tables, "
          "built next to it; wait = the workers adding the peers; publish = the RCU swap; other = the rest, mostly "
          "the removals).\n")
    print("| worker lcores | change | applied median ms | applied max ms | header median ms | `wg` returned median ms "
          "| data plane total ms | diff and DH | tables | wait | publish | other | ping lost (all reps) "
          "| ping max RTT ms | poll resolution max ms | busy before max | busy during ping median |")
    print("|---:|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|")
    for res in results:
        groups = {}
        for r in res["syncconf"]:
            groups.setdefault((r["peers"], r["direction"]), []).append(r)
        for (n, d), rs in groups.items():
            what = f"1 -> {n} peers" if d == "add" else f"{n} -> 1 peer (remove {n - 1})"
            ok = [r for r in rs if "error" not in r]
            if not ok:
                print(f"| {len(res['lcores'])} | {what} | not applied within {args.budget:.0f} s | | | | | | | | | | | | | | |")
                continue
            dps = [r["dataplane"] for r in ok]

            def mdp(k):
                v = [x[k] for x in dps if x.get(k) is not None]
                return f"{med(v) / 1000:.1f}" if v else "n/a"
            lost = sum(r["ping_lost"] for r in ok)
            sent = sum(r["ping_lost"] + r["ping_answered"] for r in ok)
            print(f"| {len(res['lcores'])} | {what} | {med([r['applied_ms'] for r in ok]):.0f} "
                  f"| {max(r['applied_ms'] for r in ok):.0f} | {med([r['header_ms'] for r in ok]):.0f} "
                  f"| {med([r['wg_ms'] for r in ok]):.0f} "
                  f"| {mdp('total_us')} | {mdp('diff_dh_us')} | {mdp('tables_us')} | {mdp('wait_us')} "
                  f"| {mdp('publish_us')} | {mdp('other_us')} | {lost} of {sent} "
                  f"| {ms(max((r['ping_max_rtt_ms'] or 0) for r in ok))} | {max(r['resolution_ms'] for r in ok):.0f} "
                  f"| {max(r['busy_before'] for r in ok):.2f} | {med([r['machine_cores'] for r in ok if r['machine_cores'] is not None] or [0]):.2f} |"
                  + (f" ({len(rs) - len(ok)} of {len(rs)} not applied in time)" if len(ok) < len(rs) else ""))

    print("\nEvery syncconf:\n")
    print("| worker lcores | rep | change | applied ms | header ms | `wg` ms | data plane | ping lost / sent | max RTT ms "
          "| generations | busy before | busy during ping |")
    print("|---:|---:|---|---:|---:|---:|---|---:|---:|---:|---:|---:|")
    for res in results:
        for r in res["syncconf"]:
            what = f"1 -> {r['peers']}" if r["direction"] == "add" else f"{r['peers']} -> 1"
            if "error" in r:
                print(f"| {len(res['lcores'])} | {r['rep']} | {what} | {r['error']} | | | | | | | | |")
                continue
            print(f"| {len(res['lcores'])} | {r['rep']} | {what} | {r['applied_ms']:.0f} | {r['header_ms']:.0f} "
                  f"| {r['wg_ms']:.0f} "
                  f"| {r['dataplane']['line']} | {r['ping_lost']} / {r['ping_lost'] + r['ping_answered']} "
                  f"| {ms(r['ping_max_rtt_ms'])} | {r['dataplane']['generations']} | {r['busy_before']:.2f} "
                  f"| {ms(r['machine_cores'], '.2f')} |")


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--dataplane", required=True, help="path to moongate-dataplane")
    ap.add_argument("--control", required=True, help="path to moongate-control")
    ap.add_argument("--lcores", default="1,2", help="worker lcore counts to run, comma-separated")
    ap.add_argument("--sets", type=int, default=30, help="wg set changes per series")
    ap.add_argument("--set-peers", default="10000",
                    help="also run the wg set series with this many peers in the netmap ('' for none)")
    ap.add_argument("--sizes", default="1000,10000,50000", help="wg syncconf target peer counts")
    ap.add_argument("--reps", type=int, default=3)
    ap.add_argument("--budget", type=float, default=90,
                    help="seconds a change may take; a size that does not fit is not repeated, nor larger ones")
    ap.add_argument("--poll-ms", type=float, default=1.0, help="least time between two polls of the control socket")
    ap.add_argument("--ping-interval", default="0.01")
    ap.add_argument("--memory-mb", type=int, default=1024, help="dataplane.memory_mb (--no-huge)")
    ap.add_argument("--max-peers", type=int, default=0, help="dataplane.max_peers (default: enough for --sizes)")
    ap.add_argument("--quiet-cores", type=float, default=0.2,
                    help="before each change, wait until fewer cores than this are busy (1 s sample)")
    ap.add_argument("--quiet-wait", type=float, default=120, help="... for at most this many seconds")
    ap.add_argument("--json", help="also write the raw results here")
    args = ap.parse_args()
    args.lcores = [int(x) for x in args.lcores.split(",")]
    args.sizes = [int(x) for x in args.sizes.split(",") if x]
    args.set_peers = [int(x) for x in args.set_peers.split(",") if x]
    if any(c < 1 or c > os.cpu_count() for c in args.lcores):
        ap.error(f"--lcores: counts between 1 and {os.cpu_count()}")
    if not args.max_peers:
        need = max(args.sizes + args.set_peers + [1])
        args.max_peers = 20000 if need <= 19000 else (need + 9999) // 10000 * 10000 + 10000
    if os.geteuid() != 0:
        print("SKIP: needs root (network namespaces)", file=sys.stderr)
        return 77
    for tool in ("ip", "wg", "wireguard-go", "ping", "ethtool"):
        if shutil.which(tool) is None:
            print(f"SKIP: {tool} not installed", file=sys.stderr)
            return 77
    args.dataplane = os.path.abspath(args.dataplane)
    args.control = os.path.abspath(args.control)
    for s in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP):
        signal.signal(s, stop)

    results = [run_lcores(c, args) for c in args.lcores]
    if args.json:
        with open(args.json, "w") as f:
            json.dump(dict(sets=args.sets, set_peers=args.set_peers, sizes=args.sizes, reps=args.reps,
                           budget_s=args.budget, poll_ms=args.poll_ms, ping_interval=args.ping_interval,
                           memory_mb=args.memory_mb, max_peers=args.max_peers, quiet_cores=args.quiet_cores,
                           quiet_wait=args.quiet_wait,
                           results=results), f, indent=1)
    report(results, args)
    return 0


if __name__ == "__main__":
    sys.exit(main())
