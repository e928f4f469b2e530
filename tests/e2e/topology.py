"""Network-namespace topologies for the data plane's end-to-end tests.

Every name carries the test's PID so parallel or leftover runs never clash;
everything created is recorded and removed by cleanup(), pass or fail, and
only processes this module started are killed (by PID).
"""
import os
import shutil
import signal
import subprocess
import tempfile
import time


def sh(*args, check=True, capture=False, timeout=60, ns=None):
    cmd = list(args)
    if ns:
        cmd = ["ip", "netns", "exec", ns] + cmd
    r = subprocess.run(cmd, check=False, timeout=timeout,
                       stdout=subprocess.PIPE if capture else subprocess.DEVNULL,
                       stderr=subprocess.PIPE)
    if check and r.returncode != 0:
        raise RuntimeError(f"{' '.join(cmd)} failed ({r.returncode}): {r.stderr.decode().strip()}")
    return r.stdout.decode() if capture else r.returncode


def wait_for(what, cond, timeout=20.0, interval=0.05):
    """Polls cond() until true; raises with `what` after timeout seconds."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if cond():
            return
        time.sleep(interval)
    raise TimeoutError(f"timed out after {timeout:.0f}s waiting for {what}")


def wg_keypair():
    priv = subprocess.run(["wg", "genkey"], check=True, capture_output=True).stdout.decode().strip()
    pub = subprocess.run(["wg", "pubkey"], input=priv.encode(), check=True,
                         capture_output=True).stdout.decode().strip()
    return priv, pub


class Topology:
    def __init__(self, tag):
        # MOONGATE_E2E_PREFIX: a short prefix for every name a run creates
        # (namespaces, interfaces, runtime dirs), so parallel runs by
        # different people on one machine are told apart by name.
        self.tag = f"{os.environ.get('MOONGATE_E2E_PREFIX', '')}{tag}{os.getpid() % 100000}"
        self.namespaces = []
        self.procs = []
        self.wg_ifaces = []
        self.runtime_dirs = []  # DPDK runtime dirs (/var/run/dpdk/<prefix>) of our data planes
        self.files = []         # files our processes leave by design (shared-memory segments)
        self.tmp = tempfile.mkdtemp(prefix=f"mg-{self.tag}-")

    def ns(self, name):
        full = f"mg{name}{self.tag}"
        sh("ip", "netns", "add", full)
        self.namespaces.append(full)
        sh("ip", "link", "set", "lo", "up", ns=full)
        return full

    def veth(self, a_ns, a_name, b_ns, b_name, mtu=1500):
        sh("ip", "link", "add", a_name, "mtu", str(mtu), "netns", a_ns, "type", "veth",
           "peer", "name", b_name, "mtu", str(mtu), "netns", b_ns)
        for n, i in ((a_ns, a_name), (b_ns, b_name)):
            sh("ip", "link", "set", i, "up", ns=n)

    def dataplane_side(self, ns, iface):
        # The data plane owns this veth through AF_PACKET: the kernel must not
        # answer on it (no address, no IPv6 autoconfiguration).
        sh("sysctl", "-qw", f"net.ipv6.conf.{iface}.disable_ipv6=1", ns=ns)

    def host_side(self, ns, iface):
        # A kernel host facing the data plane: its veth would hand AF_PACKET
        # frames whose TCP/UDP checksums are left for an offload that never
        # happens (CHECKSUM_PARTIAL); a NIC would finish them, a veth does not.
        sh("ethtool", "-K", iface, "tx", "off", ns=ns)

    def spawn(self, argv, ns=None, log=None):
        if ns:
            argv = ["ip", "netns", "exec", ns] + argv
        out = open(log, "wb") if log else subprocess.DEVNULL
        p = subprocess.Popen(argv, stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)
        self.procs.append(p)
        return p

    def wireguard_go(self, ns, ifname, priv, port, address):
        self.wg_ifaces.append(ifname)
        self.spawn(["wireguard-go", "-f", ifname], ns=ns, log=os.path.join(self.tmp, f"{ifname}.log"))
        wait_for(f"{ifname} to appear", lambda: sh("ip", "link", "show", ifname, ns=ns, check=False) == 0)
        keyfile = os.path.join(self.tmp, f"{ifname}.key")
        with open(keyfile, "w") as f:
            f.write(priv + "\n")
        sh("wg", "set", ifname, "private-key", keyfile, "listen-port", str(port), ns=ns)
        sh("ip", "addr", "add", address, "dev", ifname, ns=ns)
        sh("ip", "link", "set", ifname, "up", ns=ns)

    def cleanup(self):
        for p in reversed(self.procs):
            if p.poll() is None:
                p.send_signal(signal.SIGTERM)
                try:
                    p.wait(timeout=10)
                except subprocess.TimeoutExpired:
                    p.kill()
                    p.wait()
        for n in reversed(self.namespaces):
            sh("ip", "netns", "del", n, check=False)
        for i in self.wg_ifaces:
            try:
                os.unlink(f"/var/run/wireguard/{i}.sock")
            except FileNotFoundError:
                pass
        for d in self.runtime_dirs:
            try:
                os.rmdir(d)  # only if the data plane left it empty
            except OSError:
                pass
        for f in self.files:
            try:
                os.unlink(f)
            except FileNotFoundError:
                pass
        shutil.rmtree(self.tmp, ignore_errors=True)


def tcp_echo_server(port):
    """A Python script (for `python3 -c`) serving TCP echo on every address
    of its namespace, IPv4 and IPv6, on `port`; each connection is echoed
    until the client closes it."""
    return r"""
import socket, threading
s = socket.socket(socket.AF_INET6, socket.SOCK_STREAM)
s.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 0)
s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
s.bind(("::", %d))
s.listen(8)
def serve(c):
    with c:
        while True:
            d = c.recv(65536)
            if not d:
                return
            c.sendall(d)
while True:
    c, _ = s.accept()
    threading.Thread(target=serve, args=(c,), daemon=True).start()
""" % port


def site_router_wiring(topo, remote_subnets=("10.20.0",), dataplane_gw=True):
    """The benchmarks' subnet-router topology, up to the gateway itself.

    lan (lh0 10.10.0.2, default via 10.10.0.1) -- gw (gl0 | gw0) -- wan (wr0
    192.0.2.10; rs0 x.1/24 of each remote subnet, forwarding) -- rem (rh0
    x.2/24, default via the first). A wireguard-go remote site runs in wan
    (interface mgs<tag>, 10.20.0.1/32 inside) with the gateway as its peer at
    192.0.2.2:51820 for 10.10.0.0/24. dataplane_gw prepares the gateway's
    veth ends for the DPDK data plane; without it they stay as the kernel
    sets them (for a kernel gateway to compare with).
    Returns a dict: lan, gw, wan, rem, gw_priv, gw_pub, site_pub, site_if,
    site (the wireguard-go process)."""
    lan, gw, wan, rem = (topo.ns(n) for n in ("lan", "gw", "wan", "rem"))
    topo.veth(lan, "lh0", gw, "gl0")
    topo.veth(gw, "gw0", wan, "wr0")
    topo.veth(wan, "rs0", rem, "rh0")
    if dataplane_gw:
        for ns, i in ((gw, "gl0"), (gw, "gw0")):
            topo.dataplane_side(ns, i)
    # Kernel hosts facing moongate finish their own checksums (host_side).
    for ns, i in ((lan, "lh0"), (wan, "wr0"), (wan, "rs0"), (rem, "rh0")):
        topo.host_side(ns, i)
    sh("ip", "addr", "add", "10.10.0.2/24", "dev", "lh0", ns=lan)
    sh("ip", "route", "add", "default", "via", "10.10.0.1", ns=lan)
    sh("ip", "addr", "add", "192.0.2.10/24", "dev", "wr0", ns=wan)
    for net in remote_subnets:
        sh("ip", "addr", "add", f"{net}.1/24", "dev", "rs0", ns=wan)
        sh("ip", "addr", "add", f"{net}.2/24", "dev", "rh0", ns=rem)
    sh("sysctl", "-qw", "net.ipv4.ip_forward=1", ns=wan)
    sh("ip", "route", "add", "default", "via", f"{remote_subnets[0]}.1", ns=rem)

    gw_priv, gw_pub = wg_keypair()
    site_priv, site_pub = wg_keypair()
    site_if = f"mgs{topo.tag}"[:15]
    topo.wireguard_go(wan, site_if, site_priv, 51820, "10.20.0.1/32")
    site = topo.procs[-1]  # wireguard_go() spawns it last
    sh("wg", "set", site_if, "peer", gw_pub, "endpoint", "192.0.2.2:51820",
       "allowed-ips", "10.10.0.0/24", ns=wan)
    sh("ip", "route", "add", "10.10.0.0/24", "dev", site_if, ns=wan)
    return dict(lan=lan, gw=gw, wan=wan, rem=rem, gw_priv=gw_priv, gw_pub=gw_pub,
                site_pub=site_pub, site_if=site_if, site=site)
