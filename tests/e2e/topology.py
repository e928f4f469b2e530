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
        self.tag = f"{tag}{os.getpid() % 100000}"
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
