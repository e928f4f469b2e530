#!/usr/bin/env python3
"""End-to-end tests of moongate-dataplane with real peers (suite e2e).

Subnet router topology (all in network namespaces this test creates):

  inner host --veth-- lan host 10.10.0.2 --veth-- [ data plane ] --veth-- wan ns 192.0.2.10 --veth-- remote host
  10.11.0.2          (routes 10.11.0/24)      lan 10.10.0.1/24        wireguard-go,          10.20.0.2
                     default via 10.10.0.1   wan 192.0.2.2/24        10.20.0.1, forwarding  (default via 10.20.0.1)
                                             route 10.11.0.0/24 via 10.10.0.2

The remote site's only route to 10.10.0.0/24 is its WireGuard interface.
Usage: test_dataplane.py PATH/TO/moongate-dataplane
Exit 77 (skip) when not root or a tool is missing.
"""
import os
import shutil
import subprocess
import sys
import time
import traceback

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from topology import Topology, sh, tcp_echo_server, wait_for, wg_keypair  # noqa: E402

RESULTS = []


def case(name):
    def wrap(fn):
        def run(*a, **kw):
            t0 = time.monotonic()
            try:
                detail = fn(*a, **kw)
                RESULTS.append((name, True, detail or "", time.monotonic() - t0))
                print(f"PASS {name} ({time.monotonic() - t0:.1f}s) {detail or ''}", flush=True)
            except Exception as e:  # a failed case must not stop the others
                RESULTS.append((name, False, str(e), time.monotonic() - t0))
                print(f"FAIL {name}: {e}", flush=True)
                traceback.print_exc()
        return run
    return wrap


def ping(ns, dst, count=5, src=None):
    """(replies, output): how many of the echoes 1..count were answered.

    -w: ping waits until `count` echoes are answered or the deadline
    passes; with only -W it stops waiting two round-trip times after the
    last echo once any reply came, and on a loaded machine (RTTs of
    hundreds of ms) late replies were counted lost. While it waits it
    sends more echoes, so the answered sequence numbers are counted, not
    ping's total."""
    deadline = int(count * 0.2) + 10
    args = ["ping", "-c", str(count), "-i", "0.2", "-W", "2", "-w", str(deadline), dst]
    if src:
        args += ["-I", src]
    out = sh(*args, ns=ns, capture=True, check=False, timeout=deadline + 10)
    return answered(out, count), out


def answered(out, count):
    """How many of the echoes 1..count ping's output shows answered."""
    seqs = set()
    for line in out.splitlines():
        if " bytes from " in line and "icmp_seq=" in line and "(DUP!)" not in line:
            seq = int(line.split("icmp_seq=")[1].split()[0])
            if 1 <= seq <= count:
                seqs.add(seq)
    return len(seqs)


# Prints the MSS option of the first TCP SYN to a port seen on an interface
# (argv: IFACE PORT); gives up after 10 s.
SYN_SNIFFER = r"""
import socket, struct, sys, time
s = socket.socket(socket.AF_PACKET, socket.SOCK_RAW, socket.htons(3))
s.bind((sys.argv[1], 0))
s.settimeout(0.2)
port = int(sys.argv[2])
print("ready", flush=True)
end = time.monotonic() + 10
while time.monotonic() < end:
    try:
        f = s.recv(2048)
    except socket.timeout:
        continue
    if len(f) < 54 or f[12:14] != b"\x08\x00" or f[23] != 6:
        continue
    t = f[14 + (f[14] & 15) * 4:]
    if struct.unpack("!H", t[2:4])[0] != port or not t[13] & 2:
        continue
    o, i = t[20:(t[12] >> 4) * 4], 0
    while i < len(o) and o[i] != 0:
        if o[i] == 1:
            i += 1
            continue
        if o[i] == 2 and i + 3 < len(o):
            print(struct.unpack("!H", o[i + 2:i + 4])[0])
            sys.exit(0)
        i += max(o[i + 1] if i + 1 < len(o) else 2, 2)
    sys.exit(0)
"""


def telemetry(prefix, cmd):
    """One DPDK telemetry request over the v2 socket; returns the reply's value."""
    import json
    import socket
    path = f"/var/run/dpdk/{prefix}/dpdk_telemetry.v2"
    with socket.socket(socket.AF_UNIX, socket.SOCK_SEQPACKET) as s:
        s.settimeout(5)
        s.connect(path)
        json.loads(s.recv(16384))  # the server's greeting
        s.send(cmd.encode())
        return json.loads(s.recv(1 << 20))[cmd]


def iperf(topo, server_ns, server_addr, client_ns, reverse=False, bind=None, seconds=3):
    """One iperf3 TCP run; returns the receiver's summary (bytes, bits_per_second)."""
    import json
    srv = topo.spawn(["iperf3", "-s", "-1", "-B", server_addr], ns=server_ns)
    listen = f"[{server_addr}]:5201" if ":" in server_addr else f"{server_addr}:5201"
    wait_for("iperf3 server", lambda: listen in sh("ss", "-ltn", ns=server_ns, capture=True))
    args = ["iperf3", "-c", server_addr, "-t", str(seconds), "-J"]
    if reverse:
        args.append("-R")
    if bind:
        args += ["-B", bind]
    out = sh(*args, ns=client_ns, capture=True, timeout=60)
    srv.wait(timeout=10)
    return json.loads(out)["end"]["sum_received"]


def assert_pings(ns, dst, count=5):
    """Pings dst from ns; every reply must arrive. Returns "n/n"."""
    got, out = ping(ns, dst, count=count)
    assert got == count, f"{dst} from {ns}: {got}/{count} replies\n{out}"
    return f"{got}/{count}"


# A TCP echo server (dual stack, port 2222) and its client, for the
# exception path: the client sends 100 KiB and expects it back.
ECHO_SERVER = tcp_echo_server(2222)
ECHO_CLIENT = r"""
import socket, sys
data = bytes(range(256)) * 400
c = socket.create_connection((sys.argv[1], 2222), timeout=10)
c.sendall(data)
c.shutdown(socket.SHUT_WR)
got = b""
while True:
    d = c.recv(65536)
    if not d:
        break
    got += d
print("ok", len(got) if got == data else f"mismatch {len(got)}")
"""


def dataplane_status(topo, dp, ns):
    """Asks the data plane for its status (SIGUSR1 writes it to its status file)."""
    path = os.path.join(topo.tmp, "status.txt")
    if os.path.exists(path):
        os.unlink(path)
    dp.send_signal(10)  # SIGUSR1
    wait_for("the data plane's status file", lambda: os.path.exists(path) and
             open(path).read().endswith("end\n"), timeout=10)
    return open(path).read()


def stat_value(status, key):
    for line in status.splitlines():
        parts = line.split()
        for i, p in enumerate(parts[:-1]):
            if p == key:
                return int(parts[i + 1])
    return 0


def build_subnet_router(topo, dataplane_bin, extra_peers="", kernel_interfaces=False, control_bin=None,
                        ifname="mg0", lcores=(0,), launcher=None):
    """The site gateway: LAN host -- data plane -- WAN with a wireguard-go site.

    With control_bin, moongate-control runs first (state in topo.tmp/state,
    metrics on 127.0.0.1:9586 inside the gateway's namespace) and the data
    plane takes its netmap from it (--control). With launcher (scripts/
    moongate-up), that script starts and supervises both."""
    lan = topo.ns("lan")
    gw = topo.ns("gw")
    wan = topo.ns("wan")
    topo.veth(lan, "lh0", gw, "gl0")
    topo.veth(gw, "gw0", wan, "wr0")
    topo.dataplane_side(gw, "gl0")
    topo.dataplane_side(gw, "gw0")
    topo.host_side(lan, "lh0")
    topo.host_side(wan, "wr0")
    sh("ip", "addr", "add", "10.10.0.2/24", "dev", "lh0", ns=lan)
    sh("ip", "route", "add", "default", "via", "10.10.0.1", ns=lan)
    # IPv6 inside the tunnel: the LAN is fd10::/64, the remote subnet fd20::/64.
    sh("ip", "-6", "addr", "add", "fd10::2/64", "dev", "lh0", "nodad", ns=lan)
    sh("ip", "-6", "route", "add", "default", "via", "fd10::1", ns=lan)
    # A subnet further inside the site, behind a LAN router (the lan host):
    # the data plane reaches it through a static route.
    inner = topo.ns("inner")
    topo.veth(lan, "li0", inner, "ih0")
    topo.host_side(lan, "li0")
    topo.host_side(inner, "ih0")
    sh("ip", "addr", "add", "10.11.0.1/24", "dev", "li0", ns=lan)
    sh("sysctl", "-qw", "net.ipv4.ip_forward=1", ns=lan)
    sh("ip", "addr", "add", "10.11.0.2/24", "dev", "ih0", ns=inner)
    sh("ip", "route", "add", "default", "via", "10.11.0.1", ns=inner)
    sh("ip", "-6", "addr", "add", "fd11::1/64", "dev", "li0", "nodad", ns=lan)
    sh("sysctl", "-qw", "net.ipv6.conf.all.forwarding=1", ns=lan)
    sh("ip", "-6", "addr", "add", "fd11::2/64", "dev", "ih0", "nodad", ns=inner)
    sh("ip", "-6", "route", "add", "default", "via", "fd11::1", ns=inner)
    sh("ip", "addr", "add", "192.0.2.10/24", "dev", "wr0", ns=wan)
    # The remote site: its gateway (wan ns, wireguard-go) routes for a host
    # in its subnet.
    rem = topo.ns("rem")
    topo.veth(wan, "rs0", rem, "rh0")
    topo.host_side(rem, "rh0")
    topo.host_side(wan, "rs0")
    sh("ip", "addr", "add", "10.20.0.1/24", "dev", "rs0", ns=wan)
    sh("sysctl", "-qw", "net.ipv4.ip_forward=1", ns=wan)
    sh("ip", "addr", "add", "10.20.0.2/24", "dev", "rh0", ns=rem)
    sh("ip", "route", "add", "default", "via", "10.20.0.1", ns=rem)
    sh("ip", "-6", "addr", "add", "fd20::1/64", "dev", "rs0", "nodad", ns=wan)
    sh("sysctl", "-qw", "net.ipv6.conf.all.forwarding=1", ns=wan)
    sh("ip", "-6", "addr", "add", "fd20::2/64", "dev", "rh0", "nodad", ns=rem)
    sh("ip", "-6", "route", "add", "default", "via", "fd20::1", ns=rem)

    dp_priv, dp_pub = wg_keypair()
    site_priv, site_pub = wg_keypair()
    wgif = f"mgs{topo.tag}"[:15]
    topo.wireguard_go(wan, wgif, site_priv, 51820, "10.20.0.1/32")
    sh("wg", "set", wgif, "peer", dp_pub, "endpoint", "192.0.2.2:51820",
       "allowed-ips", "10.10.0.0/24,10.11.0.0/24,fd10::/64,fd11::/64", ns=wan)
    sh("ip", "-6", "route", "add", "fd10::/64", "dev", wgif, ns=wan)
    sh("ip", "-6", "route", "add", "fd11::/64", "dev", wgif, ns=wan)
    sh("ip", "route", "add", "10.10.0.0/24", "dev", wgif, ns=wan)
    sh("ip", "route", "add", "10.11.0.0/24", "dev", wgif, ns=wan)

    cfg = os.path.join(topo.tmp, "dataplane.yaml")
    with open(cfg, "w") as f:
        f.write(f"""# generated by test_dataplane.py
interface:
  name: {ifname}
  private_key: {dp_priv}
  listen_port: 51820
ports:
  - name: wan0
    role: wan
    device: "net_af_packet0,iface=gw0"
    address: 192.0.2.2/24
{"    kernel_interface: mgk-wan" if kernel_interfaces else ""}
  - name: lan0
    role: lan
    device: "net_af_packet1,iface=gl0"
    address: [10.10.0.1/24, "fd10::1/64"]
{"    kernel_interface: mgk-lan" if kernel_interfaces else ""}
peers:
  - public_key: {site_pub}
    allowed_ips: [10.20.0.0/24, "fd20::/64"]
    endpoint: 192.0.2.10:51820
{extra_peers}
routes:
  - prefix: 10.11.0.0/24
    via: 10.10.0.2
    port: lan0
  - prefix: "fd11::/64"
    via: "fd10::2"
    port: lan0
dataplane:
  lcores: [{", ".join(str(c) for c in lcores)}]
  hugepages: false
  memory_mb: {768 if control_bin or launcher else 256}
  max_peers: 20000
""")
    status = os.path.join(topo.tmp, "status.txt")
    log = os.path.join(topo.tmp, "dataplane.log")
    topo.runtime_dirs.append(f"/var/run/dpdk/moongate-{ifname}")
    ctl = None
    argv = [dataplane_bin, "--config", cfg, "--status-file", status]
    if launcher or control_bin:
        # What a killed moongate-control leaves (a clean exit removes its sockets).
        topo.files += [f"/dev/shm/moongate-{ifname}", f"/run/moongate/{ifname}.ctl",
                       f"/var/run/wireguard/{ifname}.sock"]
    if launcher:
        argv = [launcher, "--config", cfg, "--state-dir", os.path.join(topo.tmp, "state")]
    elif control_bin:
        ctl = topo.spawn([control_bin, "--config", cfg, "--state-dir", os.path.join(topo.tmp, "state")],
                         ns=gw, log=os.path.join(topo.tmp, "control.log"))
        wait_for("moongate-control's UAPI socket", lambda: os.path.exists(f"/var/run/wireguard/{ifname}.sock"))
        argv.append("--control")
    dp = topo.spawn(argv, ns=gw, log=log)
    # Ready when it answers ping (ARP, then ICMP echo) on its LAN address.
    def ready():
        if dp.poll() is not None:
            raise RuntimeError("data plane exited: " + open(log).read()[-2000:])
        return sh("ping", "-c", "1", "-W", "1", "10.10.0.1", ns=lan, check=False) == 0
    wait_for("the data plane to answer ping on its LAN port", ready, timeout=60)
    return dict(lan=lan, gw=gw, wan=wan, rem=rem, inner=inner, dp=dp, wgif=wgif, log=log, site_pub=site_pub,
                dp_pub=dp_pub, ctl=ctl, cfg=cfg, ifname=ifname, status=status)


def random_public_key():
    import base64
    return base64.b64encode(os.urandom(32)).decode()


def build_hub(topo, dataplane_bin, sites=3, total_peers=1000, lcores=(0,), keepalive=0):
    """A hub with no LAN: sites reach each other only through the data plane.

      site A 198.51.100.10   --+
      site B 203.0.113.10    --+-- inet ns (router) 192.0.2.1    --veth-- [ hub 192.0.2.2   ]
      site C 2001:db8:c::10  --+                    2001:db8::1             [     2001:db8::2 ]
    Site i has tunnel address 10.(20+i).0.1; the hub routes 10.(20+i).0.0/24
    to site i. total_peers - sites more peers with generated keys are
    configured, so the tables hold 1 000 peers. With several lcores, peer i
    belongs to worker i % len(lcores).
    """
    gw = topo.ns("hub")
    inet = topo.ns("inet")
    topo.veth(gw, "gw0", inet, "ir0")
    topo.dataplane_side(gw, "gw0")
    topo.host_side(inet, "ir0")
    sh("ip", "addr", "add", "192.0.2.1/24", "dev", "ir0", ns=inet)
    sh("sysctl", "-qw", "net.ipv4.ip_forward=1", ns=inet)
    dp_priv, dp_pub = wg_keypair()
    # The third site's uplink is IPv6 only: WireGuard over IPv6 to the
    # hub's 2001:db8::2, while the others use IPv4.
    uplinks = ["198.51.100", "203.0.113", "2001:db8:c:"]
    sh("ip", "-6", "addr", "add", "2001:db8::1/64", "dev", "ir0", "nodad", ns=inet)
    sh("sysctl", "-qw", "net.ipv6.conf.all.forwarding=1", ns=inet)
    site_info = []
    peers_yaml = ""
    for i in range(sites):
        ns = topo.ns(f"s{i}")
        topo.veth(inet, f"is{i}", ns, "su0")
        topo.host_side(ns, "su0")
        topo.host_side(inet, f"is{i}")
        v6 = uplinks[i].endswith(":")
        if v6:
            sh("ip", "-6", "addr", "add", f"{uplinks[i]}:1/64", "dev", f"is{i}", "nodad", ns=inet)
            sh("ip", "-6", "addr", "add", f"{uplinks[i]}:10/64", "dev", "su0", "nodad", ns=ns)
            sh("ip", "-6", "route", "add", "default", "via", f"{uplinks[i]}:1", ns=ns)
            site_endpoint, hub_endpoint = f'"[{uplinks[i]}:10]:51820"', "[2001:db8::2]:51820"
        else:
            sh("ip", "addr", "add", f"{uplinks[i]}.1/24", "dev", f"is{i}", ns=inet)
            sh("ip", "addr", "add", f"{uplinks[i]}.10/24", "dev", "su0", ns=ns)
            sh("ip", "route", "add", "default", "via", f"{uplinks[i]}.1", ns=ns)
            site_endpoint, hub_endpoint = f"{uplinks[i]}.10:51820", "192.0.2.2:51820"
        priv, pub = wg_keypair()
        wgif = f"mgh{i}{topo.tag}"[:15]
        topo.wireguard_go(ns, wgif, priv, 51820, f"10.{20 + i}.0.1/32")
        others = ",".join(f"10.{20 + j}.0.0/24" for j in range(sites) if j != i)
        sh("wg", "set", wgif, "peer", dp_pub, "endpoint", hub_endpoint,
           "allowed-ips", others, ns=ns)
        for j in range(sites):
            if j != i:
                sh("ip", "route", "add", f"10.{20 + j}.0.0/24", "dev", wgif, ns=ns)
        site_info.append(dict(ns=ns, wgif=wgif, pub=pub, addr=f"10.{20 + i}.0.1", v6=v6))
        peers_yaml += (f"  - public_key: {pub}\n    allowed_ips: [10.{20 + i}.0.0/24]\n"
                       f"    endpoint: {site_endpoint}\n")
        if keepalive:
            peers_yaml += f"    persistent_keepalive: {keepalive}\n"
    for k in range(total_peers - sites):
        peers_yaml += (f"  - public_key: {random_public_key()}\n"
                       f"    allowed_ips: [10.{100 + k // 250}.{k % 250}.0/24]\n")
    cfg = os.path.join(topo.tmp, "hub.yaml")
    with open(cfg, "w") as f:
        f.write(f"""# generated by test_dataplane.py: a hub with {total_peers} peers
interface:
  name: mghub
  private_key: {dp_priv}
ports:
  - name: wan0
    role: wan
    device: "net_af_packet0,iface=gw0"
    address: [192.0.2.2/24, "2001:db8::2/64"]
    gateway: [192.0.2.1, "2001:db8::1"]
peers:
{peers_yaml}dataplane:
  lcores: [{", ".join(str(c) for c in lcores)}]
  hugepages: false
  memory_mb: 256
  max_peers: 2000
""")
    status = os.path.join(topo.tmp, "status.txt")
    log = os.path.join(topo.tmp, "dataplane.log")
    topo.runtime_dirs.append("/var/run/dpdk/moongate-mghub")
    dp = topo.spawn([dataplane_bin, "--config", cfg, "--status-file", status], ns=gw, log=log)

    def ready():
        if dp.poll() is not None:
            raise RuntimeError("hub exited: " + open(log).read()[-2000:])
        return sh("ping", "-c", "1", "-W", "1", "192.0.2.2", ns=inet, check=False) == 0
    wait_for("the hub to answer ping on its WAN port", ready, timeout=60)
    return dict(gw=gw, inet=inet, dp=dp, sites=site_info, log=log, dp_pub=dp_pub)


def main():
    if os.geteuid() != 0:
        print("SKIP: needs root (network namespaces)")
        return 77
    for tool in ("ip", "wg", "wireguard-go", "ping", "iperf3", "ethtool", "ss", "traceroute"):
        if shutil.which(tool) is None:
            print(f"SKIP: {tool} not installed")
            return 77
    dataplane_bin = os.path.abspath(sys.argv[1])

    topo = Topology("e")
    try:
        t = build_subnet_router(topo, dataplane_bin, kernel_interfaces=True)

        @case("subnet router: ping lan host -> remote subnet")
        def _():
            return assert_pings(t["lan"], "10.20.0.2", 5)
        _()

        @case("subnet router: ping remote subnet -> lan host")
        def _():
            return assert_pings(t["rem"], "10.10.0.2", 5)
        _()

        @case("subnet router, IPv6 inside the tunnel: ping6 both ways and to the appliance")
        def _():
            return (f"lan->remote {assert_pings(t['lan'], 'fd20::2')}, "
                    f"remote->lan {assert_pings(t['rem'], 'fd10::2')}, "
                    f"lan->fd10::1 {assert_pings(t['lan'], 'fd10::1', 3)}")
        _()

        @case("subnet router, IPv6: too big for the tunnel -> packet too big (mtu 1420)")
        def _():
            out = sh("sh", "-c", "ping -6 -M do -s 1452 -c 1 -W 2 fd20::2 2>&1", ns=t["lan"],
                     capture=True, check=False, timeout=30)
            assert "mtu = 1420" in out or "mtu=1420" in out, out
            return [l.strip() for l in out.splitlines() if "mtu" in l][0]
        _()

        @case("subnet router, IPv6: TCP through the tunnel (iperf3)")
        def _():
            r = iperf(topo, t["lan"], "fd10::2", t["rem"])
            assert r["bytes"] > 1_000_000, r
            return f"remote->lan {r['bits_per_second'] / 1e6:.0f} Mbit/s ({r['bytes']} B)"
        _()

        @case("subnet router: static routes (IPv4 and IPv6) to subnets behind a LAN router")
        def _():
            return (f"remote 10.20.0.2 -> 10.11.0.2 via 10.10.0.2: {assert_pings(t['rem'], '10.11.0.2')}; "
                    f"fd20::2 -> fd11::2 via fd10::2: {assert_pings(t['rem'], 'fd11::2')}")
        _()

        @case("subnet router: ping the appliance's own addresses")
        def _():
            return (f"{assert_pings(t['lan'], '10.10.0.1', 3)} lan, "
                    f"{assert_pings(t['wan'], '192.0.2.2', 3)} wan")
        _()

        @case("exception path: TCP to the appliance's own addresses reaches its kernel through the TAPs")
        def _():
            # An echo server on the gateway's kernel stack (its namespace):
            # the data plane owns the ports, so SSH-like traffic to 10.10.0.1,
            # fd10::1 and 192.0.2.2 only gets there through the TAPs.
            before = stat_value(dataplane_status(topo, t["dp"], t["gw"]), "to_kernel")
            topo.spawn(["python3", "-c", ECHO_SERVER], ns=t["gw"],
                       log=os.path.join(topo.tmp, "echo-server.log"))
            wait_for("the echo server on the gateway's kernel", lambda: ":2222 " in sh(
                "ss", "-ltnH", ns=t["gw"], capture=True), timeout=10)
            done = []
            for ns, addr in ((t["lan"], "10.10.0.1"), (t["lan"], "fd10::1"), (t["wan"], "192.0.2.2")):
                out = sh("python3", "-c", ECHO_CLIENT, addr, ns=ns, capture=True, check=False, timeout=30)
                assert out.strip() == "ok 102400", f"{addr}: {out}"
                done.append(addr)
            status = dataplane_status(topo, t["dp"], t["gw"])
            after = stat_value(status, "to_kernel")
            assert after - before > 3 * 70, status  # 100 KiB each way, in and out
            # The data plane still answers ping itself (not the kernel).
            echo = stat_value(status, "icmp_echo_replies")
            assert_pings(t["lan"], "10.10.0.1", 2)
            assert stat_value(dataplane_status(topo, t["dp"], t["gw"]), "icmp_echo_replies") == echo + 2
            return f"100 KiB echoed via {', '.join(done)}; to_kernel +{after - before}"
        _()

        @case("subnet router: too big for the tunnel with DF -> fragmentation needed (mtu 1420)")
        def _():
            out = sh("ping", "-M", "do", "-s", "1472", "-c", "1", "-W", "2", "10.20.0.2",
                     ns=t["lan"], capture=True, check=False, timeout=30)
            assert "mtu = 1420" in out or "mtu=1420" in out, out
            # The kernel learned the path MTU: the next big DF ping is refused locally.
            out2 = sh("sh", "-c", "ping -M do -s 1472 -c 1 -W 2 10.20.0.2 2>&1",
                      ns=t["lan"], capture=True, check=False, timeout=30)
            assert "1420" in out2, out2
            assert_pings(t["lan"], "10.20.0.2", 2)
            return [l.strip() for l in out.splitlines() if "mtu" in l][0]
        _()

        @case("subnet router: TCP SYN toward the tunnel has its MSS clamped to 1380")
        def _():
            # A sniffer on the remote host prints the MSS of the first SYN to
            # port 9; then the LAN host (MTU 1500: it offers 1460) connects.
            sniffer = subprocess.Popen(
                ["ip", "netns", "exec", t["rem"], "python3", "-c", SYN_SNIFFER, "rh0", "9"],
                stdout=subprocess.PIPE, stderr=subprocess.PIPE)
            import select
            ready, _w, _x = select.select([sniffer.stdout], [], [], 10)
            assert ready and sniffer.stdout.readline().strip() == b"ready", "the SYN sniffer did not start"
            sh("python3", "-c", "import socket\ns=socket.socket();s.settimeout(2)\n"
               "try: s.connect(('10.20.0.2', 9))\nexcept OSError: pass", ns=t["lan"], timeout=20)
            out, err = sniffer.communicate(timeout=15)
            seen = [int(x) for x in out.decode().split()]
            assert seen, "no SYN with an MSS option reached the remote host"
            assert seen[0] == 1380, f"MSS {seen[0]}, expected 1380 (tunnel MTU 1420 - 40)"
            return f"MSS 1460 offered, {seen[0]} arrived"
        _()

        @case("subnet router: TCP both ways (iperf3)")
        def _():
            up = iperf(topo, t["lan"], "10.10.0.2", t["rem"])
            down = iperf(topo, t["lan"], "10.10.0.2", t["rem"], reverse=True)
            assert up["bytes"] > 1_000_000 and down["bytes"] > 1_000_000, (up, down)
            return (f"remote->lan {up['bits_per_second'] / 1e6:.0f} Mbit/s ({up['bytes']} B), "
                    f"lan->remote {down['bits_per_second'] / 1e6:.0f} Mbit/s ({down['bytes']} B)")
        _()

        @case("subnet router: counters through DPDK telemetry")
        def _():
            stats = telemetry("moongate-mg0", "/moongate/stats")
            peers = telemetry("moongate-mg0", "/moongate/peers")
            assert stats["decrypted"] > 1000 and stats["encrypted"] > 1000, stats
            assert stats["rx_wan0"] > 0 and stats["tx_lan0"] > 0, stats
            # Exactly the one DF ping of the PMTU case: with MSS clamped in both
            # directions, TCP never sent a segment too big for the tunnel.
            # (one IPv4 DF ping and one IPv6 ping of the PMTU cases).
            assert stats["drop_too_big"] == 2 and stats["icmp_errors"] == 2, stats
            assert peers["count"] == 1 and peers["peer0_handshakes"] >= 1 and peers["peer0_rx"] > 0, peers
            return (f"decrypted {stats['decrypted']}, encrypted {stats['encrypted']}, "
                    f"peer0 rx {peers['peer0_rx']} B")
        _()

        @case("subnet router: traceroute both ways shows the gateway's hop (ICMP time exceeded, IPv4 and IPv6)")
        def _():
            def hops(ns, dst, v6=False):
                out = sh("traceroute", *(["-6"] if v6 else []), "-n", "-q", "1", "-w", "2", "-m", "4", dst,
                         ns=ns, capture=True, timeout=60)
                return [line.split()[1] for line in out.splitlines()[1:] if len(line.split()) > 1], out
            before = telemetry("moongate-mg0", "/moongate/stats")
            # From the LAN: the gateway answers out of its LAN port.
            out_lan, raw = hops(t["lan"], "10.20.0.2")
            assert out_lan[:1] == ["10.10.0.1"] and out_lan[-1] == "10.20.0.2", raw
            # From the remote site: the TTL runs out after decryption; the
            # answer goes back through the tunnel from the gateway's address.
            out_rem, raw = hops(t["rem"], "10.10.0.2")
            assert out_rem[:2] == ["10.20.0.1", "10.10.0.1"] and out_rem[-1] == "10.10.0.2", raw
            out6_lan, raw = hops(t["lan"], "fd20::2", v6=True)
            assert out6_lan[:1] == ["fd10::1"] and out6_lan[-1] == "fd20::2", raw
            out6_rem, raw = hops(t["rem"], "fd10::2", v6=True)
            assert out6_rem[1:2] == ["fd10::1"] and out6_rem[-1] == "fd10::2", raw
            after = telemetry("moongate-mg0", "/moongate/stats")
            sent = after["icmp_errors"] - before["icmp_errors"]
            expired = after["drop_ttl_expired"] - before.get("drop_ttl_expired", 0)
            assert sent == expired == 4, (sent, expired)
            return f"lan: {out_lan}; remote: {out_rem}; v6 lan: {out6_lan}; v6 remote: {out6_rem}"
        _()

        @case("subnet router: ICMP errors are rate-limited (1 000/s, burst 50); every expired packet counted")
        def _():
            before = telemetry("moongate-mg0", "/moongate/stats")
            out = sh("python3", "-c", """
import socket, time
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
s.setsockopt(socket.IPPROTO_IP, socket.IP_TTL, 1)
t0 = time.monotonic()
for i in range(400):
    s.sendto(b"x" * 32, ("10.20.0.2", 33434 + i % 32))
print(time.monotonic() - t0)
""", ns=t["lan"], capture=True, timeout=30)
            elapsed_ms = float(out.strip()) * 1000

            seen = {}

            def counted():
                seen.update(telemetry("moongate-mg0", "/moongate/stats"))
                return seen["drop_ttl_expired"] - before.get("drop_ttl_expired", 0) >= 400
            wait_for("400 expired packets counted", counted, timeout=10)
            after = seen
            sent = after["icmp_errors"] - before["icmp_errors"]
            limited = after["icmp_errors_limited"] - before["icmp_errors_limited"]
            expired = after["drop_ttl_expired"] - before.get("drop_ttl_expired", 0)
            assert expired == 400 and sent + limited == 400, (expired, sent, limited)
            # The burst plus one a millisecond while they arrived (and slack
            # for the time the data plane took to read them).
            assert limited > 0 and sent <= 50 + elapsed_ms + 20, (sent, limited, elapsed_ms)
            return f"400 expired in {elapsed_ms:.1f} ms: {sent} errors sent, {limited} limited"
        _()

        @case("subnet router: wg show on the remote site agrees")
        def _():
            dump = sh("wg", "show", t["wgif"], "dump", ns=t["wan"], capture=True).splitlines()
            peer = [l.split("\t") for l in dump[1:] if l.startswith(t["dp_pub"])][0]
            assert int(peer[4]) > 0, "no handshake recorded by wireguard-go"
            assert int(peer[5]) > 1_000_000 and int(peer[6]) > 1_000_000, peer
            return f"handshake at {peer[4]}, rx {peer[5]} B, tx {peer[6]} B"
        _()
        @case("roaming: the remote peer's source port changes mid-traffic; traffic follows")
        def _():
            # A steady ping runs while wireguard-go moves to another port.
            pinger = subprocess.Popen(
                ["ip", "netns", "exec", t["rem"], "ping", "-i", "0.1", "-c", "60", "-W", "1", "-w", "30", "10.10.0.2"],
                stdout=subprocess.PIPE, stderr=subprocess.DEVNULL)
            sh("wg", "set", t["wgif"], "listen-port", "51999", ns=t["wan"])

            def endpoint_moved():
                return "192.0.2.10:51999" in dataplane_status(topo, t["dp"], t["gw"])
            wait_for("the data plane to follow the new source port", endpoint_moved, timeout=20)
            out = pinger.communicate(timeout=30)[0].decode()
            line = [l for l in out.splitlines() if "packets transmitted" in l][0]
            received = int(line.split(",")[1].split()[0])
            # Packets in flight while the port changed may be lost; the rest arrive.
            assert received >= 50, line
            assert_pings(t["rem"], "10.10.0.2")
            return f"endpoint now 192.0.2.10:51999; {line.strip()}"
        _()

        topo.cleanup()
        topo = Topology("h")
        h = build_hub(topo, dataplane_bin)

        @case("hub (1000 peers): every pair of sites reaches each other only through the hub (one site over IPv6)")
        def _():
            pairs = 0
            for a in h["sites"]:
                for b in h["sites"]:
                    if a is b:
                        continue
                    got, out = ping(a["ns"], b["addr"], count=3, src=a["addr"])
                    assert got == 3, f"{a['addr']} -> {b['addr']}: {got}/3\n{out}"
                    pairs += 1
            # The internet router has no route to the tunnel subnets.
            routes = sh("ip", "route", ns=h["inet"], capture=True)
            assert "10.2" not in routes, routes
            # Site C talks WireGuard over IPv6, and the hub answers from 2001:db8::2.
            status = dataplane_status(topo, h["dp"], h["gw"])
            assert "endpoint [2001:db8:c::10]:51820" in status, status
            wg_show = sh("wg", "show", h["sites"][2]["wgif"], "endpoints", ns=h["sites"][2]["ns"], capture=True)
            assert "[2001:db8::2]:51820" in wg_show, wg_show
            return f"{pairs} ordered pairs, 3/3 pings each; site C over IPv6"
        _()

        @case("hub: TCP between an IPv4-underlay site and the IPv6-underlay site (iperf3)")
        def _():
            a, b = h["sites"][0], h["sites"][2]
            r = iperf(topo, b["ns"], b["addr"], a["ns"], bind=a["addr"])
            assert r["bytes"] > 1_000_000, r
            return f"{r['bits_per_second'] / 1e6:.0f} Mbit/s ({r['bytes']} B)"
        _()

        topo.cleanup()
        topo = Topology("w")
        m = build_hub(topo, dataplane_bin, sites=3, total_peers=3, lcores=(0, 1), keepalive=1)

        @case("two workers: every pair of sites reaches each other, peers owned by different lcores")
        def _():
            for a in m["sites"]:
                for b in m["sites"]:
                    if a is not b:
                        got, out = ping(a["ns"], b["addr"], count=3, src=a["addr"])
                        assert got == 3, f"{a['addr']} -> {b['addr']}: {got}/3\n{out}"
            status = dataplane_status(topo, m["dp"], m["gw"])
            owners = [line.split()[3] for line in status.splitlines() if line.startswith("peer ")]
            assert owners == ["0", "1", "0"], status
            return "6 ordered pairs, 3/3 pings each; peers on workers " + ",".join(owners)
        _()

        @case("two workers: TCP both ways between sites owned by different lcores (iperf3)")
        def _():
            a, b = m["sites"][0], m["sites"][1]   # worker 0, worker 1
            up = iperf(topo, b["ns"], b["addr"], a["ns"], bind=a["addr"])
            down = iperf(topo, b["ns"], b["addr"], a["ns"], bind=a["addr"], reverse=True)
            assert up["bytes"] > 1_000_000 and down["bytes"] > 1_000_000, (up, down)
            # Site 0's packets are decrypted by worker 0 and must be encrypted
            # by worker 1 (and back): both workers handed packets over, and
            # nothing was lost to a full ring.
            status = dataplane_status(topo, m["dp"], m["gw"])
            workers = {}
            for line in status.splitlines():
                if line.startswith("worker "):
                    f = line.split()
                    workers[f[1]] = dict(zip(f[2::2], map(int, f[3::2])))
            assert set(workers) == {"0", "1"}, status
            for w, c in workers.items():
                assert c["decrypted"] > 1000 and c["encrypted"] > 1000, (w, c)
                assert c["handoffs_out"] > 1000 and c["handoffs_in"] > 1000, (w, c)
            assert stat_value(status, "handoff_full") == 0, status
            return (f"{up['bits_per_second'] / 1e6:.0f} / {down['bits_per_second'] / 1e6:.0f} Mbit/s; "
                    f"handoffs w0 {workers['0']['handoffs_out']}, w1 {workers['1']['handoffs_out']}")
        _()

        @case("two workers: persistent keepalives (1 s) reach every site from both lcores' timer wheels")
        def _():
            def received():
                # What each site has received from the hub: `wg show transfer`.
                out = []
                for site in m["sites"]:
                    line = sh("wg", "show", site["wgif"], "transfer", ns=site["ns"], capture=True).split()
                    out.append(int(line[1]))
                return out
            start = received()
            # Idle tunnels: only the keepalive timer sends (32 B each).
            wait_for("three keepalives to each site",
                     lambda: all(now - before >= 3 * 32 for now, before in zip(received(), start)),
                     timeout=15)
            return "rx growth per site: " + ", ".join(str(a - b) for a, b in zip(received(), start))
        _()
    except Exception as e:
        RESULTS.append(("setup", False, str(e), 0))
        print(f"FAIL setup: {e}", flush=True)
        traceback.print_exc()
        log = os.path.join(topo.tmp, "dataplane.log")
        if os.path.exists(log):
            print("--- data plane log ---\n" + open(log).read()[-4000:])
    finally:
        topo.cleanup()

    passed = sum(1 for r in RESULTS if r[1])
    failed = len(RESULTS) - passed
    print(f"{passed} passed, {failed} failed")
    return 0 if failed == 0 and passed > 0 else 1


if __name__ == "__main__":
    sys.exit(main())
