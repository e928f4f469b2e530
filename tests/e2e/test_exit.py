#!/usr/bin/env python3
"""End-to-end tests of the exit node (docs/exit-node.md) with real peers (suite e2e).

  cli ns                       rtr ns (router)                   gw ns              inet ns
  wireguard-go client  --veth-- 172.16.0.1 | 192.0.2.1 --veth--  [ data plane ]
  172.16.0.2, tunnel            198.51.100.1 --veth-----------------------------  198.51.100.10
  100.64.0.2, AllowedIPs                                          wan 192.0.2.2/24   (default via .1)
  0.0.0.0/0 (0/1 + 128/1                                          gateway 192.0.2.1
  through the tunnel)

The client's internet traffic goes through the tunnel to the gateway, which
masquerades it to its wan address 192.0.2.2 (NAT44); the internet host has
no route to 100.64.0.0/10 and sees only 192.0.2.2. A second peer (cli2,
100.64.0.3) is not an exit node: its internet traffic is dropped (not_exit).

With moongate-control (a second argument), a last run takes the netmap and
the policy from it: the data plane's own configuration file knows only bob
and has no policy; alice arrives by a reload of the control process's YAML
with exit_node: true, into the group whose rule lets her reach the internet
host; a reload with exit_node: false makes her not_exit (counted); a `wg
set` on her keeps the flag; a reload without her rule denies her (counted);
the per-rule, denied and established counts of `moongatectl status` and of
moongate-control's /metrics match the test's traffic exactly.

Usage: test_exit.py PATH/TO/moongate-dataplane [PATH/TO/moongate-control]
Exit 77 (skip) when not root or a tool is missing. MOONGATE_E2E_PREFIX
prefixes the namespaces, interfaces and files of a run (topology.py).
"""
import json
import os
import shutil
import socket
import sys
import time
import traceback

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from topology import Topology, sh, tcp_echo_server, wait_for, wg_keypair  # noqa: E402

RESULTS = []
INET = "198.51.100.10"
INET6 = "2001:db8:200::10"
WAN = "192.0.2.2"
MAX_FLOWS = 24


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


def ping(ns, dst, count=5):
    out = sh("ping", "-c", str(count), "-i", "0.2", "-W", "2", dst, ns=ns, capture=True, check=False, timeout=30)
    for line in out.splitlines():
        if "packets transmitted" in line:
            return int(line.split(",")[1].split()[0]), out
    return 0, out


def status(topo, dp):
    """The data plane's status file (SIGUSR1)."""
    path = os.path.join(topo.tmp, "status.txt")
    if os.path.exists(path):
        os.unlink(path)
    dp.send_signal(10)
    wait_for("the data plane's status file", lambda: os.path.exists(path) and
             open(path).read().endswith("end\n"), timeout=10)
    return open(path).read()


def nat_stats(topo, dp):
    """{"flows": n, "translated_out": n, ..., "drop_<reason>": n, "dp_drop_<reason>": n}."""
    out = {}
    for line in status(topo, dp).splitlines():
        parts = line.split()
        if parts[:1] == ["nat"]:
            for k, v in zip(parts[1::2], parts[2::2]):
                out[k] = int(v)
        elif parts[:1] == ["nat_drop"]:
            out["drop_" + parts[1]] = int(parts[2])
        elif parts[:1] == ["drop"]:
            out["dp_drop_" + parts[1]] = int(parts[2])
        elif parts[:1] == ["policy"]:
            for k, v in zip(parts[1::2], parts[2::2]):
                out["policy_" + k] = int(v)
        elif parts[:1] == ["policy_rule"]:
            out[f"rule{parts[1]}"] = int(parts[3])
    return out


def telemetry(ifname, cmd):
    """One DPDK telemetry request (v2 socket of the data plane's runtime dir)."""
    with socket.socket(socket.AF_UNIX, socket.SOCK_SEQPACKET) as s:
        s.settimeout(5)
        s.connect(f"/var/run/dpdk/moongate-{ifname}/dpdk_telemetry.v2")
        json.loads(s.recv(16384))  # the greeting
        s.send(cmd.encode())
        return json.loads(s.recv(1 << 20))[cmd]


# alice (staff) may reach the internet; bob (guests) the internet too (but
# he is no exit node) and alice's UDP port 7009, nothing else. Over IPv6
# only alice may reach the internet host's prefix (rule 3): bob's IPv6 and
# unsolicited inbound IPv6 meet default deny.
POLICY = """policy:
  groups:
    staff: [alice]
    guests: [bob]
  rules:
    - action: accept
      src: [group:staff]
      dst: ["198.51.100.0/24:*"]
    - action: accept
      src: [group:guests]
      dst: ["198.51.100.0/24:*"]
    - action: accept
      src: [group:guests]
      dst: ["100.64.0.2:7009"]
      proto: udp
    - action: accept
      src: [group:staff]
      dst: ["[2001:db8:200::/64]:*"]
"""



# moongate-control's policy (run 4): group staff may reach the internet
# host (rule 0, dropped by a later reload), bob alice's UDP port 7009 (the
# last rule). alice joins staff when she joins the netmap.
def ctl_policy(alice, internet_rule=True):
    out = f"""policy:
  groups:
    staff: [{"alice, bob" if alice else "bob"}]
  rules:
"""
    if internet_rule:
        out += """    - action: accept
      src: [group:staff]
      dst: ["198.51.100.0/24:*"]
"""
    return out + """    - action: accept
      src: [bob]
      dst: ["100.64.0.2:7009"]
      proto: udp
"""


# In the gw namespace (moongate-control's loopback there): the metrics port.
METRICS_PORT = 9586


def peers_yaml(clients, alice=None):
    """The peers section: bob always, alice only when `alice` is her
    exit_node (True/False)."""
    out = "peers:\n"
    if alice is not None:
        out += f"""  - public_key: {clients[0]['pub']}
    name: alice
    allowed_ips: [100.64.0.2/32, "2001:db8:100:2::/64"]
    exit_node: {"true" if alice else "false"}
"""
    out += f"""  - public_key: {clients[1]['pub']}
    name: bob
    allowed_ips: [100.64.0.3/32, "2001:db8:100:3::/64"]
"""
    return out


def build(topo, dataplane_bin, lcores, policy=True, control_bin=None):
    cli, cli2, rtr, gw, inet = (topo.ns(n) for n in ("cli", "cl2", "rtr", "gw", "inet"))
    topo.veth(cli, "cl0", rtr, "rc0")
    topo.veth(cli2, "cl0", rtr, "rc1")
    topo.veth(rtr, "rg0", gw, "gw0")
    topo.veth(rtr, "ri0", inet, "ih0")
    topo.dataplane_side(gw, "gw0")
    for ns, i in ((cli, "cl0"), (cli2, "cl0"), (rtr, "rc0"), (rtr, "rc1"), (rtr, "rg0"), (rtr, "ri0"),
                  (inet, "ih0")):
        topo.host_side(ns, i)
    sh("ip", "addr", "add", "172.16.0.1/24", "dev", "rc0", ns=rtr)
    sh("ip", "addr", "add", "172.16.1.1/24", "dev", "rc1", ns=rtr)
    sh("ip", "addr", "add", "192.0.2.1/24", "dev", "rg0", ns=rtr)
    sh("ip", "addr", "add", "198.51.100.1/24", "dev", "ri0", ns=rtr)
    sh("sysctl", "-qw", "net.ipv4.ip_forward=1", ns=rtr)
    sh("ip", "addr", "add", f"{INET}/24", "dev", "ih0", ns=inet)
    sh("ip", "route", "add", "default", "via", "198.51.100.1", ns=inet)
    # IPv6: the router routes the gateway's prefix 2001:db8:100::/56 to it
    # (as an ISP would); peers use addresses from it, routed, not NAT'ed.
    sh("sysctl", "-qw", "net.ipv6.conf.all.forwarding=1", ns=rtr)
    sh("ip", "-6", "addr", "add", "2001:db8:ffff::1/64", "dev", "rg0", "nodad", ns=rtr)
    sh("ip", "-6", "addr", "add", "2001:db8:200::1/64", "dev", "ri0", "nodad", ns=rtr)
    sh("ip", "-6", "route", "add", "2001:db8:100::/56", "via", "2001:db8:ffff::2", ns=rtr)
    sh("ip", "-6", "addr", "add", f"{INET6}/64", "dev", "ih0", "nodad", ns=inet)
    sh("ip", "-6", "route", "add", "default", "via", "2001:db8:200::1", ns=inet)

    dp_priv, dp_pub = wg_keypair()
    clients = []
    for i, (ns, under, inner) in enumerate(((cli, "172.16.0", "100.64.0.2"), (cli2, "172.16.1", "100.64.0.3"))):
        inner6 = f"2001:db8:100:{i + 2}::1"
        sh("ip", "addr", "add", f"{under}.2/24", "dev", "cl0", ns=ns)
        sh("ip", "route", "add", "192.0.2.0/24", "via", f"{under}.1", ns=ns)
        priv, pub = wg_keypair()
        wgif = f"mg{i}{topo.tag}"[:15]
        topo.wireguard_go(ns, wgif, priv, 51820, f"{inner}/32")
        sh("wg", "set", wgif, "peer", dp_pub, "endpoint", f"{WAN}:51820", "allowed-ips", "0.0.0.0/0,::/0", ns=ns)
        sh("ip", "-6", "addr", "add", f"{inner6}/128", "dev", wgif, "nodad", ns=ns)
        sh("ip", "-6", "route", "add", "::/1", "dev", wgif, ns=ns)
        sh("ip", "-6", "route", "add", "8000::/1", "dev", wgif, ns=ns)
        # AllowedIPs 0.0.0.0/0 as wg-quick does it without policy routing:
        # two halves through the tunnel, the gateway itself on the link.
        sh("ip", "route", "add", "0.0.0.0/1", "dev", wgif, ns=ns)
        sh("ip", "route", "add", "128.0.0.0/1", "dev", wgif, ns=ns)
        clients.append(dict(ns=ns, wgif=wgif, pub=pub, inner=inner))

    cfg = os.path.join(topo.tmp, "exit.yaml")
    ifname = f"mgx{topo.tag}"[:15]

    def site_yaml(peers, policy=True):
        if policy is True:
            policy = POLICY
        return f"""# generated by test_exit.py
interface:
  name: {ifname}
  private_key: {dp_priv}
  listen_port: 51820
ports:
  - name: wan0
    role: wan
    device: "net_af_packet0,iface=gw0"
    address: [192.0.2.2/24, "2001:db8:ffff::2/64"]
    gateway: [192.0.2.1, "2001:db8:ffff::1"]
    routed_prefixes: ["2001:db8:100::/56"]
{peers}nat:
  masquerade: true
  max_flows: {MAX_FLOWS}
  timeouts:
    udp: 2
    udp_stream: 3
    icmp: 2
    tcp_fin_wait: 2
    tcp_close_wait: 2
    tcp_last_ack: 2
    tcp_time_wait: 2
    tcp_close: 2
{policy or ""}dataplane:
  lcores: [{", ".join(str(c) for c in lcores)}]
  hugepages: false
  memory_mb: {768 if control_bin else 256}
  max_peers: 100
"""
    log = os.path.join(topo.tmp, "dataplane.log")
    topo.runtime_dirs.append(f"/var/run/dpdk/moongate-{ifname}")
    argv = [dataplane_bin, "--config", cfg, "--status-file", os.path.join(topo.tmp, "status.txt")]
    ctl_cfg = None
    if control_bin:
        # The data plane's file knows bob only, and no policy: with
        # --control both come from moongate-control's YAML, the one that
        # changes.
        with open(cfg, "w") as f:
            f.write(site_yaml(peers_yaml(clients), policy=False))
        ctl_cfg = os.path.join(topo.tmp, "control.yaml")
        with open(ctl_cfg, "w") as f:
            f.write(site_yaml(peers_yaml(clients), policy=ctl_policy(alice=False)))
        topo.files += [f"/dev/shm/moongate-{ifname}", f"/run/moongate/{ifname}.ctl",
                       f"/var/run/wireguard/{ifname}.sock"]
        topo.spawn([control_bin, "--config", ctl_cfg, "--state-dir", os.path.join(topo.tmp, "state"),
                    "--metrics", f"127.0.0.1:{METRICS_PORT}"],
                   ns=gw, log=os.path.join(topo.tmp, "control.log"))
        wait_for("moongate-control's UAPI socket", lambda: os.path.exists(f"/var/run/wireguard/{ifname}.sock"))
        argv.append("--control")
    else:
        with open(cfg, "w") as f:
            f.write(site_yaml(peers_yaml(clients, alice=True), policy=policy))
    dp = topo.spawn(argv, ns=gw, log=log)

    def ready():
        if dp.poll() is not None:
            raise RuntimeError("data plane exited: " + open(log).read()[-2000:])
        return sh("ping", "-c", "1", "-W", "1", WAN, ns=rtr, check=False) == 0
    wait_for("the data plane to answer ping on its wan port", ready, timeout=60)
    return dict(cli=cli, cli2=cli2, rtr=rtr, gw=gw, inet=inet, dp=dp, log=log, ifname=ifname, clients=clients,
                ctl_cfg=ctl_cfg, site_yaml=site_yaml, control_bin=control_bin)


def iperf(topo, t, udp=False):
    """iperf3 from the client to the internet host; returns (server's view of
    the client's address, bytes the server received)."""
    out = os.path.join(topo.tmp, "iperf-server-udp.json" if udp else "iperf-server-tcp.json")
    srv = topo.spawn(["iperf3", "-s", "-1", "-J", "-B", INET, "--logfile", out], ns=t["inet"])
    wait_for("iperf3 server", lambda: f"{INET}:5201" in sh("ss", "-ltn", ns=t["inet"], capture=True))
    args = ["iperf3", "-c", INET, "-t", "3", "-J"]
    if udp:
        args += ["-u", "-b", "20M"]
    sh(*args, ns=t["cli"], capture=True, timeout=60)
    srv.wait(timeout=15)
    report = json.load(open(out))
    remote = report["start"]["connected"][0]["remote_host"]
    end = report["end"]
    got = end["sum_received"]["bytes"]
    return remote, got


# A UDP echo server: answers every datagram with its payload prefixed by
# the sender's address as the server sees it.
UDP_ECHO = r"""
import socket
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
s.bind(("0.0.0.0", 7007))
while True:
    d, a = s.recvfrom(2048)
    s.sendto(a[0].encode() + b" " + d, a)
"""

# A TCP echo server that keeps connections open (the full-table case).
TCP_ECHO = tcp_echo_server(7008)

# In the client: one TCP connection kept open across the table filling up.
# Reads commands on stdin: "send" -> one echo round trip ("ok"/"fail");
# "udp N" -> N datagrams to distinct ports of the internet host.
HOLDER = r"""
import socket, sys
c = socket.create_connection((sys.argv[1], 7008), timeout=5)
print("connected", flush=True)
for line in sys.stdin:
    cmd = line.split()
    if cmd[0] == "send":
        try:
            c.sendall(b"x" * 100)
            got = b""
            while len(got) < 100:
                d = c.recv(100 - len(got))
                if not d:
                    break
                got += d
            print("ok" if got == b"x" * 100 else "fail", flush=True)
        except OSError as e:
            print("fail", e, flush=True)
    elif cmd[0] == "udp":
        u = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        for p in range(int(cmd[1])):
            u.sendto(b"fill", (sys.argv[1], 20000 + p))
        print("sent", flush=True)
"""


# Hostile WAN input, sent as raw frames from the router (argv: interface,
# the data plane's MAC, what to send): spoofed return traffic to ports the
# NAT never gave out, ICMP errors quoting flows it does not know (and with
# a bad checksum). Prints the number of frames sent. (No WAN fragments: the
# af_packet PMD's socket asks the kernel to reassemble them, so they would
# reach the data plane whole; fragments come through the tunnel instead.)
HOSTILE = r"""
import socket, struct, sys, time
iface, dp_mac, what = sys.argv[1], bytes.fromhex(sys.argv[2].replace(":", "")), sys.argv[3]
s = socket.socket(socket.AF_PACKET, socket.SOCK_RAW)
s.bind((iface, 0))
my_mac = s.getsockname()[4]
WAN, INET, RTR = "192.0.2.2", "198.51.100.10", "192.0.2.1"

def csum(b):
    if len(b) % 2:
        b += b"\0"
    v = sum(struct.unpack(f"!{len(b) // 2}H", b))
    while v >> 16:
        v = (v & 0xffff) + (v >> 16)
    return ~v & 0xffff

def ip(src, dst, proto, payload, frag=0x4000, ident=1):
    h = struct.pack("!BBHHHBBH4s4s", 0x45, 0, 20 + len(payload), ident, frag, 64, proto, 0,
                    socket.inet_aton(src), socket.inet_aton(dst))
    return h[:10] + struct.pack("!H", csum(h)) + h[12:] + payload

def udp(sport, dport, payload):
    return struct.pack("!HHHH", sport, dport, 8 + len(payload), 0) + payload

def icmp(t, code, body, bad=False):
    m = struct.pack("!BBHI", t, code, 0, 0) + body
    c = csum(m) ^ (0x1234 if bad else 0)
    return m[:2] + struct.pack("!H", c) + m[4:]

quoted = ip(WAN, INET, 17, udp(45678, 53, b"12345678"))[:28]
frames = []
if what == "no_flow":
    frames += [ip(INET, WAN, 17, udp(53, 40000 + i, b"spoof")) for i in range(10)]
    frames += [ip(INET, WAN, 6, struct.pack("!HHIIBBHHH", 443, 41000 + i, 1, 1, 5 << 4, 0x12, 65535, 0, 0))
               for i in range(10)]
elif what == "icmp_unknown":
    frames += [ip(RTR, WAN, 1, icmp(3, 3, quoted)) for _ in range(10)]
elif what == "icmp_bad_checksum":
    frames += [ip(RTR, WAN, 1, icmp(11, 0, quoted, bad=True)) for _ in range(10)]
for f in frames:
    s.send(dp_mac + my_mac + b"\x08\x00" + f)
    time.sleep(0.002)
print(len(frames))
"""


def main():
    if os.geteuid() != 0:
        print("SKIP: needs root (network namespaces)")
        return 77
    for tool in ("wireguard-go", "wg", "iperf3", "traceroute", "ethtool"):
        if shutil.which(tool) is None:
            print(f"SKIP: {tool} not installed (scripts/install-deps)")
            return 77
    dataplane_bin = os.path.abspath(sys.argv[1])
    control_bin = os.path.abspath(sys.argv[2]) if len(sys.argv) > 2 else None
    # One worker, then two: with two, return traffic lands on either queue
    # (the af_packet PMD spreads by hash) and is handed to the worker whose
    # port slice holds its port (kNatReturn); bob's hub traffic to alice
    # crosses workers too (each peer has its own owner).
    # Then one worker without a policy: the routed IPv6 exit open to all
    # (in the first two runs the policy's IPv6 rule decides). Then, with
    # moongate-control, the netmap's exit_node and policy on one worker
    # (the data plane's own file has no policy).
    runs = [((0,), True, None), ((0, 1), True, None), ((0,), False, None)]
    if control_bin:
        runs.append(((0,), False, control_bin))
    for lcores, policy, ctl_bin in runs:
        print(f"--- {len(lcores)} worker(s)"
              f"{', moongate-control (its YAML has the policy)' if ctl_bin else '' if policy else ', no policy'} ---",
              flush=True)
        topo = Topology("hx")
        failed_before = sum(1 for r in RESULTS if not r[1])
        try:
            t = build(topo, dataplane_bin, lcores, policy=policy, control_bin=ctl_bin)
            if ctl_bin:
                run_control_cases(topo, t)
            elif policy:
                run_cases(topo, t, len(lcores))
            else:
                run_v6_exit(topo, t)
        except Exception as e:
            RESULTS.append(("setup", False, str(e), 0))
            traceback.print_exc()
        finally:
            log = os.path.join(topo.tmp, "dataplane.log")
            if sum(1 for r in RESULTS if not r[1]) != failed_before and os.path.exists(log):
                print("--- data plane log (tail) ---\n" + open(log).read()[-3000:])
            topo.cleanup()
    failed = [n for n, ok, _, _ in RESULTS if not ok]
    print(f"{len(RESULTS) - len(failed)}/{len(RESULTS)} cases passed" + (f"; failed: {failed}" if failed else ""))
    return 1 if failed or not RESULTS else 0


def udp6_echo(topo, t):
    """A UDP echo on the internet host's [INET6]:7010 (UDP_ECHO over IPv6),
    then "hello" from alice until one comes back (at most 5 tries, 2 s
    each): returns "<tries> <source the host saw> hello"."""
    topo.spawn(["python3", "-c", UDP_ECHO.replace("AF_INET,", "AF_INET6,").replace('"0.0.0.0"', '"::"')
                .replace("7007", "7010")], ns=t["inet"])
    wait_for("udp6 echo", lambda: ":7010" in sh("ss", "-lun", ns=t["inet"], capture=True))
    return sh("python3", "-c", f"""
import socket
s = socket.socket(socket.AF_INET6, socket.SOCK_DGRAM)
s.settimeout(2)
for i in range(5):
    s.sendto(b"hello", ("{INET6}", 7010))
    try:
        print(i + 1, s.recvfrom(2048)[0].decode())
        break
    except socket.timeout:
        pass
""", ns=t["cli"], capture=True, timeout=30)


def run_v6_exit(topo, t):
    def case(name):
        return globals()["case"](f"{name} [1w, no policy]")

    @case("IPv6 through the exit: routed from the peer's prefix address, not translated")
    def _():
        got, out = ping(t["cli"], INET6, count=3)
        assert got == 3, f"{got}/3\n{out}"
        _, *echo = udp6_echo(topo, t).split()
        assert echo == ["2001:db8:100:2::1", "hello"], f"echo: {echo!r}"
        # Bob is no exit node: his IPv6 to the internet is dropped too.
        before = nat_stats(topo, t["dp"]).get("dp_drop_not_exit", 0)
        got, _ = ping(t["cli2"], INET6, count=2)
        assert got == 0
        after = nat_stats(topo, t["dp"]).get("dp_drop_not_exit", 0)
        assert after - before == 2, (before, after)
        # Unsolicited inbound to alice's routed address: open without a policy.
        got, pout = ping(t["inet"], "2001:db8:100:2::1", count=2)
        assert got == 2, f"inbound ping6 {got}/2\n{pout}"
        return f"ping6 3/3; the host saw {echo[0]}; bob not_exit +2; inbound ping6 2/2"
    _()


def run_cases(topo, t, workers):
    def case(name):  # the cases' names say how many workers ran them
        return globals()["case"](f"{name} [{workers}w]")

    @case("ping through the exit (NAT44)")
    def _():
        got, out = ping(t["cli"], INET, count=5)
        assert got == 5, f"{got}/5 replies\n{out}"
        s = nat_stats(topo, t["dp"])
        assert s["translated_out"] >= 5 and s["translated_in"] >= 5, s
        return f"5/5, nat {s}"
    _()

    @case("TCP through the exit: the internet host sees only the wan address")
    def _():
        remote, got = iperf(topo, t)
        assert remote == WAN, f"the internet host saw {remote}"
        assert got > 100_000, f"{got} bytes"
        return f"{got / 1e6:.1f} MB from {remote}"
    _()

    @case("UDP through the exit: iperf3 -u and an echo, seen from the wan address")
    def _():
        remote, got = iperf(topo, t, udp=True)
        assert remote == WAN, f"the internet host saw {remote}"
        assert got > 100_000, f"{got} bytes"
        topo.spawn(["python3", "-c", UDP_ECHO], ns=t["inet"])
        wait_for("udp echo", lambda: ":7007" in sh("ss", "-lun", ns=t["inet"], capture=True))
        out = sh("python3", "-c", f"""
import socket
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
s.settimeout(2)
for i in range(5):
    s.sendto(b"hello", ("{INET}", 7007))
    try:
        print(s.recvfrom(2048)[0].decode())
        break
    except socket.timeout:
        pass
""", ns=t["cli"], capture=True, timeout=30)
        assert out.strip() == f"{WAN} hello", f"echo: {out!r}"
        return f"iperf3 -u {got / 1e6:.1f} MB; echo saw {out.split()[0]}"
    _()

    @case("IPv6 under the policy: alice's rule accepts, replies pass as established, the rest denied")
    def _():
        # Rule 3 accepts alice's IPv6 to the internet host's prefix
        # (decrypt path, policy_flush6): her ping6 and a UDP echo count on
        # it exactly and their replies (wan port -> her owner's encrypt
        # path, no rule) pass as established. Bob has no IPv6 rule (he is no
        # exit node either, but the policy comes first), and an internet
        # host's unsolicited ping6 to alice's routed address is denied on
        # her owner's encrypt path, though alice just pinged that host (an
        # echo request is never return traffic; ICMP has no ports to tell
        # it from a reply). Exact counts: nothing else meets the policy
        # meanwhile.
        before = nat_stats(topo, t["dp"])
        got, out = ping(t["cli"], INET6, count=3)
        assert got == 3, f"alice's ping6 {got}/3\n{out}"
        out = udp6_echo(topo, t)
        sent, *echo = out.split()
        assert echo == ["2001:db8:100:2::1", "hello"], f"echo: {out!r}"
        mid = nat_stats(topo, t["dp"])
        accepted = mid.get("rule3", 0) - before.get("rule3", 0)
        assert accepted == 3 + int(sent), (before, mid)
        established = mid["policy_established"] - before.get("policy_established", 0)
        assert established == 3 + 1, (before, mid)
        assert mid["policy_denied"] == before.get("policy_denied", 0), (before, mid)
        got, _ = ping(t["cli2"], INET6, count=2)
        assert got == 0, f"bob's ping6 passed the policy ({got})"
        got, _ = ping(t["inet"], "2001:db8:100:2::1", count=4)
        assert got == 0, f"the internet host's ping6 reached alice ({got})"
        after = nat_stats(topo, t["dp"])
        denied = after["policy_denied"] - mid["policy_denied"]
        assert denied == 6, (mid, after)
        assert after["dp_drop_policy_denied"] - mid.get("dp_drop_policy_denied", 0) == 6, (mid, after)
        assert after.get("dp_drop_not_exit", 0) == mid.get("dp_drop_not_exit", 0), (mid, after)
        assert after["rule3"] == mid["rule3"] and after["policy_established"] == mid["policy_established"], (mid, after)
        return (f"alice ping6 3/3 + udp6 echo ({sent} sent): rule3 +{accepted}, established +{established}; "
                f"bob ping6 2 + inbound ping6 4: policy_denied +{denied}")
    _()

    @case("traceroute: the gateway answers its hop, the hops beyond it answer through the NAT")
    def _():
        out = sh("traceroute", "-n", "-q", "1", "-w", "1", "-m", "5", INET, ns=t["cli"], capture=True, timeout=60)
        hops = [line.split() for line in out.splitlines()[1:]]
        addrs = [h[1] for h in hops if len(h) > 1]
        # Hop 1 is the gateway's own time exceeded, back through the tunnel
        # from its address (the wan's: this gateway has no tunnel address
        # and no LAN); hop 2 the router's time exceeded, hop 3 the host's
        # port unreachable, both translated back to the client.
        assert addrs == [WAN, "192.0.2.1", INET], out
        s = nat_stats(topo, t["dp"])
        assert s["icmp_errors_in"] >= 2, s
        return f"hops {addrs}; icmp_errors_in {s['icmp_errors_in']}"
    _()

    @case("a peer without exit_node cannot use the exit (counted)")
    def _():
        before = nat_stats(topo, t["dp"]).get("dp_drop_not_exit", 0)
        got, _out = ping(t["cli2"], INET, count=3)
        assert got == 0, f"{got} replies"
        after = nat_stats(topo, t["dp"]).get("dp_drop_not_exit", 0)
        assert after - before >= 3, (before, after)
        return f"not_exit +{after - before}"
    _()

    @case("policy: a guest reaches the one UDP port it may, replies come back, the rest is denied")
    def _():
        topo.spawn(["python3", "-c", UDP_ECHO.replace("7007", "7009")], ns=t["cli"])
        wait_for("udp echo in alice's namespace", lambda: ":7009" in sh("ss", "-lun", ns=t["cli"], capture=True))
        before = nat_stats(topo, t["dp"])
        out = sh("python3", "-c", """
import socket
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
s.settimeout(3)
got = 0
for i in range(5):
    s.sendto(b"hi", ("100.64.0.2", 7009))
    try:
        d = s.recvfrom(2048)[0].decode()
        got += d == "100.64.0.3 hi"
    except socket.timeout:
        pass
print(got)
""", ns=t["cli2"], capture=True, timeout=30)
        assert out.strip() == "5", f"bob got {out.strip()} of 5 echoes from alice"
        mid = nat_stats(topo, t["dp"])
        # Bob's 5 datagrams matched rule 2; alice's 5 replies match no rule
        # and pass as established return traffic.
        assert mid["rule2"] - before.get("rule2", 0) == 5, (before, mid)
        assert mid["policy_established"] - before.get("policy_established", 0) == 5, (before, mid)
        # ICMP from bob to alice, and from alice to bob: no rule, no flow.
        got, _out = ping(t["cli2"], "100.64.0.2", count=3)
        assert got == 0, f"bob's ping reached alice ({got})"
        got, _out = ping(t["cli"], "100.64.0.3", count=3)
        assert got == 0, f"alice's ping reached bob ({got})"
        after = nat_stats(topo, t["dp"])
        denied = after["policy_denied"] - mid["policy_denied"]
        assert denied == 6, (mid, after)
        assert after["dp_drop_policy_denied"] - mid.get("dp_drop_policy_denied", 0) == 6, (mid, after)
        assert after["rule0"] > 0 and after["rule1"] >= 3, after  # alice's internet, bob's not_exit pings
        return (f"rule0 {after['rule0']} rule1 {after['rule1']} rule2 {after['rule2']}, "
                f"established {after['policy_established']}, denied {after['policy_denied']}")
    _()

    @case("hostile input: spoofed returns, unknown ICMP errors (WAN), fragments (tunnel) -> counted drops")
    def _():
        dp_mac = json.loads(sh("ip", "-j", "link", "show", "gw0", ns=t["gw"], capture=True))[0]["address"]
        detail = []
        for what, reason in (("no_flow", "drop_no_flow"), ("icmp_unknown", "drop_icmp_unknown_flow"),
                             ("icmp_bad_checksum", "drop_icmp_bad_checksum")):
            before = nat_stats(topo, t["dp"]).get(reason, 0)
            sent = int(sh("python3", "-c", HOSTILE, "rg0", dp_mac, what, ns=t["rtr"], capture=True,
                          timeout=60).split()[-1])
            try:
                wait_for(f"{sent} {reason}", lambda: nat_stats(topo, t["dp"]).get(reason, 0) - before >= sent,
                         timeout=10, interval=0.2)
            except TimeoutError:
                pass
            after = nat_stats(topo, t["dp"]).get(reason, 0)
            assert after - before == sent, (what, before, after, sent, nat_stats(topo, t["dp"]))
            detail.append(f"{reason} +{after - before}")
        # Fragments: from the client through the tunnel (its kernel cuts a
        # 3000-byte datagram at the tunnel MTU): the NAT has no ports for
        # them and does not reassemble.
        before = nat_stats(topo, t["dp"]).get("drop_fragment", 0)
        sh("python3", "-c", f"""
import socket
u = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
for i in range(5):
    u.sendto(b"f" * 3000, ("{INET}", 9998))
""", ns=t["cli"])
        try:
            wait_for("15 fragment drops", lambda: nat_stats(topo, t["dp"]).get("drop_fragment", 0) - before >= 15,
                     timeout=10, interval=0.2)
        except TimeoutError:
            pass
        after = nat_stats(topo, t["dp"]).get("drop_fragment", 0)
        assert after - before == 15, (before, after)
        detail.append(f"drop_fragment +{after - before}")
        # Good traffic goes on.
        got, out = ping(t["cli"], INET, count=3)
        assert got == 3, f"{got}/3 after the hostile input\n{out}"
        assert t["dp"].poll() is None, "the data plane exited"
        return ", ".join(detail) + "; ping 3/3 after"
    _()

    @case("flows expire on time (short timeouts), read from the status and telemetry")
    def _():
        # Every flow so far is UDP, ICMP or closed TCP, with 2-3 s timeouts
        # (the wheel ticks at 100 ms): all gone well within 15 s.
        wait_for("the earlier NAT flows to expire", lambda: nat_stats(topo, t["dp"])["flows"] == 0,
                 timeout=15, interval=0.2)
        s = nat_stats(topo, t["dp"])
        assert s["flows_expired"] == s["flows_created"], s
        # One new UDP flow (udp: 2 s without a reply): there at once, gone
        # after its timeout, not before.
        sh("python3", "-c", f"import socket; socket.socket(socket.AF_INET, socket.SOCK_DGRAM)"
           f".sendto(b'x', ('{INET}', 9999))", ns=t["cli"])
        wait_for("the new flow", lambda: nat_stats(topo, t["dp"])["flows"] == 1, timeout=5, interval=0.05)
        t0 = time.monotonic()
        wait_for("the new flow to expire", lambda: nat_stats(topo, t["dp"])["flows"] == 0, timeout=10, interval=0.1)
        lived = time.monotonic() - t0
        assert lived >= 1.0, f"expired after {lived:.1f}s, before its 2 s timeout"
        s = nat_stats(topo, t["dp"])
        assert s["flows_expired"] == s["flows_created"], s
        # DPDK telemetry says the same (and the policy's counters there
        # match the status file's).
        tn = telemetry(t["ifname"], "/moongate/nat")
        assert tn["flows"] == 0 and tn["flows_created"] == s["flows_created"], (tn, s)
        tp = telemetry(t["ifname"], "/moongate/policy")
        assert tp["rule2_accepted"] == s["rule2"] and tp["denied"] == s["policy_denied"], (tp, s)
        return (f"{s['flows_created']} created, all expired; the 2 s UDP flow lived {lived:.1f}s more; "
                f"telemetry agrees")
    _()

    @case("a full table drops new flows (counted) while an existing flow goes on")
    def _():
        import subprocess
        topo.spawn(["python3", "-c", TCP_ECHO], ns=t["inet"])
        wait_for("tcp echo", lambda: ":7008" in sh("ss", "-ltn", ns=t["inet"], capture=True))
        holder = subprocess.Popen(["ip", "netns", "exec", t["cli"], "python3", "-c", HOLDER, INET],
                                  stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
        topo.procs.append(holder)
        assert holder.stdout.readline().strip() == "connected"

        def cmd(c):
            holder.stdin.write(c + "\n")
            holder.stdin.flush()
            return holder.stdout.readline().strip()
        assert cmd("send") == "ok"
        before = nat_stats(topo, t["dp"])
        assert cmd(f"udp {MAX_FLOWS * 2}") == "sent"
        wait_for("table_full drops", lambda: nat_stats(topo, t["dp"]).get("drop_table_full", 0) >
                 before.get("drop_table_full", 0), timeout=10)
        s = nat_stats(topo, t["dp"])
        assert s["flows"] <= MAX_FLOWS, s
        assert cmd("send") == "ok", "the existing TCP flow stopped"
        return f"flows {s['flows']}/{MAX_FLOWS}, table_full {s.get('drop_table_full', 0)}, TCP still echoes"
    _()

    if workers > 1:
        st = status(topo, t["dp"])
        handoffs = [line for line in st.splitlines() if line.startswith("worker ")]
        print("hand-offs: " + "; ".join(handoffs), flush=True)


def ctl_socket(ifname, command):
    """One command on moongate-control's control socket."""
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as s:
        s.settimeout(10)
        s.connect(f"/run/moongate/{ifname}.ctl")
        s.sendall(command.encode() + b"\n")
        out = b""
        while chunk := s.recv(65536):
            out += chunk
    return out.decode()


def applied(ifname):
    return json.loads(ctl_socket(ifname, "status json"))["dataplane"]["applied_generation"]


def reload_alice(t, exit_node, internet_rule=True):
    """moongate-control's YAML with alice (exit_node as given, in group
    staff), reloaded; returns once the data plane applied the new
    generation."""
    tmp = t["ctl_cfg"] + ".new"
    with open(tmp, "w") as f:
        f.write(t["site_yaml"](peers_yaml(t["clients"], alice=exit_node),
                               policy=ctl_policy(alice=True, internet_rule=internet_rule)))
    os.rename(tmp, t["ctl_cfg"])  # whole, for the control process's inotify too
    r = ctl_socket(t["ifname"], "reload")
    assert r.startswith("ok: netmap generation "), r
    gen = int(r.split()[-1])
    wait_for(f"the data plane to apply generation {gen}", lambda: applied(t["ifname"]) >= gen, timeout=10)
    return gen


def ctl_counts(t):
    """The policy's counts as `moongatectl status` shows them (its line
    "policy: D denied, E replies, rule 0 n, ...") and as moongate-control's
    /metrics has them (per-rule sums over the lcores; the epoch)."""
    st = sh(t["moongatectl"], "-i", t["ifname"], "status", ns=t["gw"], capture=True)
    line = next((x.strip() for x in st.splitlines() if x.strip().startswith("policy: ")), None)
    assert line is not None, st
    parts = [p.split() for p in line[len("policy: "):].split(", ")]
    out = dict(denied=int(parts[0][0]), established=int(parts[1][0]), rules=[int(p[2]) for p in parts[2:]])
    text = sh("python3", "-c", f"import urllib.request; print(urllib.request.urlopen("
              f"'http://127.0.0.1:{METRICS_PORT}/metrics', timeout=5).read().decode())", ns=t["gw"], capture=True)
    rules, epochs = {}, set()
    for m in text.splitlines():
        if m.startswith("moongate_policy_rule_accepted_total{"):
            rule = int(m.split('rule="')[1].split('"')[0])
            rules[rule] = rules.get(rule, 0) + int(m.split()[-1])
        elif m.startswith("moongate_policy_epoch{"):
            epochs.add(int(m.split()[-1]))
        elif m.startswith("moongate_lcore_packets_total{") and 'counter="policy_denied"' in m:
            out["metrics_denied"] = out.get("metrics_denied", 0) + int(m.split()[-1])
        elif m.startswith("moongate_lcore_packets_total{") and 'counter="policy_established"' in m:
            out["metrics_established"] = out.get("metrics_established", 0) + int(m.split()[-1])
    out["metrics_rules"] = [rules[r] for r in sorted(rules)]
    out["epochs"] = epochs
    return out


def dp_counts(topo, t):
    """The same counts from the data plane's own status file (exact, now)."""
    st = nat_stats(topo, t["dp"])
    rules = []
    while f"rule{len(rules)}" in st:
        rules.append(st[f"rule{len(rules)}"])
    return dict(denied=st.get("policy_denied", 0), established=st.get("policy_established", 0), rules=rules)


def settled_counts(topo, t):
    """The data plane's counts once moongate-control shows the same ones
    (the workers report about once a second): both views, which must agree
    in full (status line and /metrics)."""
    want = dp_counts(topo, t)
    seen = {}

    def same():
        try:
            c = ctl_counts(t)
        except AssertionError:  # no policy line yet: nothing reported
            return False
        seen["c"] = c
        return (c["denied"], c["established"], c["rules"]) == (want["denied"], want["established"], want["rules"]) \
            and c.get("metrics_denied", 0) == want["denied"] \
            and c.get("metrics_established", 0) == want["established"] and c["metrics_rules"] == want["rules"]
    try:
        wait_for("moongatectl and /metrics to show the data plane's policy counts", same, timeout=10, interval=0.2)
    except TimeoutError:
        raise AssertionError(f"data plane {want}, moongate-control {seen.get('c')}")
    return seen["c"]


def bob_udp_to_alice(t, n=5):
    """n datagrams from bob to alice's UDP echo on 7009; how many came back."""
    out = sh("python3", "-c", f"""
import socket
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
s.settimeout(3)
got = 0
for i in range({n}):
    s.sendto(b"hi", ("100.64.0.2", 7009))
    try:
        got += s.recvfrom(2048)[0].decode() == "100.64.0.3 hi"
    except socket.timeout:
        pass
print(got)
""", ns=t["cli2"], capture=True, timeout=30)
    return int(out.strip())


def run_control_cases(topo, t):
    alice = t["clients"][0]["pub"]
    dp_cfg = open(os.path.join(topo.tmp, "exit.yaml")).read()
    assert alice not in dp_cfg and "exit_node" not in dp_cfg and "policy" not in dp_cfg
    t["moongatectl"] = os.path.join(os.path.dirname(t["control_bin"]), "moongatectl")

    @case("control: alice, added by a reload with exit_node: true, reaches the internet host")
    def _():
        gen = reload_alice(t, True)
        nm = ctl_socket(t["ifname"], "netmap")
        assert f"peer {alice} " in nm and "name alice exit_node\n" in nm and "name bob\n" in nm, nm
        assert "\npolicy group staff alice,bob\n" in nm and \
            "\npolicy rule 0 accept src group:staff dst 198.51.100.0/24:* proto any\n" in nm, nm
        # Her first packets wait for the handshake: bounded, then counted.
        wait_for("alice's first ping through the exit", lambda: ping(t["cli"], INET, count=1)[0] == 1, timeout=20)
        before = nat_stats(topo, t["dp"])
        c0 = settled_counts(topo, t)
        assert len(c0["rules"]) == 2, c0  # the new policy's two rules
        got, out = ping(t["cli"], INET, count=3)
        assert got == 3, f"{got}/3\n{out}"
        after = nat_stats(topo, t["dp"])
        assert after["translated_out"] - before["translated_out"] >= 3, (before, after)
        # Her 3 echo requests: accepted by staff's rule 0, which she is in
        # by the reload (the replies are NAT returns: no policy check).
        c1 = settled_counts(topo, t)
        assert c1["rules"][0] - c0["rules"][0] == 3 and c1["rules"][1] == c0["rules"][1], (c0, c1)
        assert (c1["denied"], c1["established"]) == (c0["denied"], c0["established"]), (c0, c1)
        return (f"generation {gen}; ping 3/3, translated_out +{after['translated_out'] - before['translated_out']}; "
                f"moongatectl and /metrics rule 0 +3 ({c1['rules']}), denied +0")
    _()

    @case("control: a `wg set` on alice keeps her exit flag")
    def _():
        sh("wg", "set", t["ifname"], "peer", alice, "persistent-keepalive", "25", ns=t["gw"])
        conf = sh("wg", "showconf", t["ifname"], ns=t["gw"], capture=True)
        assert "PersistentKeepalive = 25" in conf, conf
        wait_for("the data plane to apply the wg change",
                 lambda: applied(t["ifname"]) == json.loads(ctl_socket(t["ifname"], "status json"))["generation"],
                 timeout=10)
        got, out = ping(t["cli"], INET, count=3)
        assert got == 3, f"{got}/3\n{out}"
        return "keepalive 25 set through wg; ping 3/3"
    _()

    @case("control: a reload with exit_node: false makes alice not_exit (counted), true again lets her out")
    def _():
        reload_alice(t, False)
        assert "name alice\n" in ctl_socket(t["ifname"], "netmap")
        before = nat_stats(topo, t["dp"]).get("dp_drop_not_exit", 0)
        got, _out = ping(t["cli"], INET, count=3)
        assert got == 0, f"{got} replies with exit_node false"
        wait_for("3 not_exit drops", lambda: nat_stats(topo, t["dp"]).get("dp_drop_not_exit", 0) - before >= 3,
                 timeout=10, interval=0.2)
        after = nat_stats(topo, t["dp"]).get("dp_drop_not_exit", 0)
        assert after - before == 3, (before, after)
        reload_alice(t, True)
        got, out = ping(t["cli"], INET, count=3)
        assert got == 3, f"{got}/3 after exit_node: true again\n{out}"
        return f"not_exit +{after - before}; ping 3/3 after turning it back on"
    _()

    @case("control policy: bob's UDP to alice passes its rule, her replies as established, counted exactly")
    def _():
        topo.spawn(["python3", "-c", UDP_ECHO.replace("7007", "7009")], ns=t["cli"])
        wait_for("udp echo in alice's namespace", lambda: ":7009" in sh("ss", "-lun", ns=t["cli"], capture=True))
        c0 = settled_counts(topo, t)
        got = bob_udp_to_alice(t)
        assert got == 5, f"bob got {got} of 5 echoes from alice"
        c1 = settled_counts(topo, t)
        assert c1["rules"][1] - c0["rules"][1] == 5 and c1["rules"][0] == c0["rules"][0], (c0, c1)
        assert c1["established"] - c0["established"] == 5 and c1["denied"] == c0["denied"], (c0, c1)
        return f"rule 1 +5, established +5: {c1['rules']}, established {c1['established']}"
    _()

    @case("control policy: a reload without staff's rule denies alice (counted); rule counts restart")
    def _():
        c0 = settled_counts(topo, t)
        epochs = c0["epochs"]
        dropped_before = nat_stats(topo, t["dp"]).get("dp_drop_policy_denied", 0)
        reload_alice(t, True, internet_rule=False)
        nm = sh(t["moongatectl"], "-i", t["ifname"], "netmap", ns=t["gw"], capture=True)
        assert "\npolicy 1 rules\n" in nm and \
            "\npolicy rule 0 accept src bob dst 100.64.0.2:7009 proto udp\n" in nm, nm
        got, _out = ping(t["cli"], INET, count=3)
        assert got == 0, f"{got} replies without the rule"
        wait_for("3 policy_denied drops", lambda: nat_stats(topo, t["dp"]).get("dp_drop_policy_denied", 0)
                 - dropped_before >= 3, timeout=10, interval=0.2)
        assert nat_stats(topo, t["dp"]).get("dp_drop_policy_denied", 0) - dropped_before == 3
        c1 = settled_counts(topo, t)
        # One rule left (bob's, now rule 0), counted from 0 under a new
        # epoch; denied and established go on.
        assert c1["rules"] == [0] and c1["metrics_rules"] == [0], c1
        assert c1["epochs"] and not (c1["epochs"] & epochs), (epochs, c1["epochs"])
        assert c1["denied"] - c0["denied"] == 3 and c1["established"] == c0["established"], (c0, c1)
        got = bob_udp_to_alice(t)
        assert got == 5, f"bob got {got} of 5 echoes from alice after the reload"
        c2 = settled_counts(topo, t)
        assert c2["rules"] == [5] and c2["established"] - c1["established"] == 5, (c1, c2)
        assert c2["denied"] == c1["denied"], (c1, c2)
        return f"denied +3, then rule 0 {c2['rules'][0]}, established +5; epochs {sorted(epochs)} -> {sorted(c1['epochs'])}"
    _()

    @case("control policy: a reload with a broken policy is refused with its position; the old one stays")
    def _():
        gen = applied(t["ifname"])
        c0 = settled_counts(topo, t)
        good = open(t["ctl_cfg"]).read()
        tmp = t["ctl_cfg"] + ".new"
        with open(tmp, "w") as f:
            f.write(good.replace("src: [bob]", "src: [group:nope]"))
        os.rename(tmp, t["ctl_cfg"])
        r = ctl_socket(t["ifname"], "reload")
        assert r.startswith("error: configuration NOT reloaded") and \
            "policy.rules[0].src[0]: no group 'nope' in policy.groups" in r, r
        assert json.loads(ctl_socket(t["ifname"], "status json"))["generation"] == gen, "published anyway"
        got = bob_udp_to_alice(t)
        assert got == 5, f"bob got {got} of 5 echoes under the kept policy"
        c1 = settled_counts(topo, t)
        assert c1["rules"][0] - c0["rules"][0] == 5 and c1["epochs"] == c0["epochs"], (c0, c1)
        with open(tmp, "w") as f:
            f.write(good)
        os.rename(tmp, t["ctl_cfg"])
        return r.splitlines()[-1].split(": ", 1)[-1] + f"; generation stays {gen}; bob's rule +5"
    _()


if __name__ == "__main__":
    sys.exit(main())
