#!/usr/bin/env python3
"""Interop test: moongate's WireGuard core (moongate-wg-harness) against wireguard-go.

Usage: test_wireguard_go.py PATH/TO/moongate-wg-harness
Exit codes: 0 all cases passed, 1 a case failed, 77 skipped (not root, or
wireguard-go / wg / ip / ping missing).

Topology (all names carry this process's PID; nothing leaves the namespaces):

    netns mgwg-go-<pid>                      netns mgwg-h-<pid>
    wireguard-go  <if>  10.202.0.1/24        moongate-wg-harness  tun mgt<pid>  10.202.0.2/24
                        fd00:202::1/64                                          fd00:202::2/64
         veth mgv<pid>a 10.201.0.1/24  <--->  veth mgv<pid>b 10.201.0.2/24
                        fd00:201::1/64                      fd00:201::2/64

Setups and cases:
  setup 1 (outer IPv6): a1  wireguard-go initiates (ping from its side first)
  setup 2 (outer IPv4, preshared key; wireguard-go has no endpoint for the
           harness, so only the harness can initiate):
           a2  harness initiates
           b   ping -c 5 both ways, IPv4 and IPv6
           c   10 000 echoed UDP datagrams, 0..1420 B, checked byte for byte
           d   rekey forced by the harness ("initiate") in the middle of traffic
           e   wg show dump rx/tx == harness tx/rx for the peer, exactly
           g   routing: longest-prefix match + allowed-IPs source filter
           d2  re-handshake initiated by wireguard-go while the harness holds a
               session (peer removed and re-added on the wireguard-go side)
           f   malformed UDP payloads: counted drops, harness still pings
Both tunnels use MTU 1500 so a 1420-byte inner UDP payload (1448-byte IP
packet) fits; the veth MTU is 1600 so the outer packet (<= 1500 + 32 + 28)
is not fragmented.

The same file also runs the helper processes started inside the
namespaces: --echo-server, --echo-client and --junk.
"""

import collections
import json
import os
import random
import select
import shutil
import signal
import socket
import struct
import subprocess
import sys
import tempfile
import threading
import time

SKIP = 77
SO_RCVBUFFORCE = getattr(socket, "SO_RCVBUFFORCE", 33)
SO_SNDBUFFORCE = getattr(socket, "SO_SNDBUFFORCE", 32)

ECHO_PORT = 7777
HARNESS_PORT = 51820
WG_PORT = 51821
TUNNEL_MTU = 1500
VETH_MTU = 1600
MAX_PAYLOAD = 1420
WINDOW = 64


# --------------------------------------------------------------------------
# helpers run inside the namespaces
# --------------------------------------------------------------------------

def big_buffers(s):
    for opt, force in ((socket.SO_RCVBUF, SO_RCVBUFFORCE), (socket.SO_SNDBUF, SO_SNDBUFFORCE)):
        try:
            s.setsockopt(socket.SOL_SOCKET, force, 4 << 20)
        except OSError:
            s.setsockopt(socket.SOL_SOCKET, opt, 4 << 20)


def echo_server_main(argv):
    """Echoes every UDP datagram back to its sender until killed."""
    addr, port = argv[0], int(argv[1])
    fam = socket.AF_INET6 if ":" in addr else socket.AF_INET
    s = socket.socket(fam, socket.SOCK_DGRAM)
    big_buffers(s)
    s.bind((addr, port))
    print("ready", flush=True)
    while True:
        data, peer = s.recvfrom(65535)
        try:
            s.sendto(data, peer)
        except OSError:
            pass  # e.g. the route is briefly gone: the client counts the loss


def echo_client_main(argv):
    """Sends `count` datagrams of mixed sizes with at most `window` in flight,
    matches every echo byte for byte, prints `progress N` lines and a final
    JSON summary. A datagram not echoed within `per_timeout` is lost.
    count 0 means: keep sending until a line "stop" arrives on stdin."""
    dst, port, count, window, seed = argv[0], int(argv[1]), int(argv[2]), int(argv[3]), int(argv[4])
    per_timeout = float(argv[5]) if len(argv) > 5 else 2.0
    overall = float(argv[6]) if len(argv) > 6 else 180.0
    rng = random.Random(seed)
    until_stop = count <= 0
    stopped = False
    if until_stop:
        count = 1 << 62
        os.set_blocking(sys.stdin.fileno(), False)
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    big_buffers(s)
    s.connect((dst, port))
    s.setblocking(False)

    edge = [0, 1, 7, 8, 9, 15, 16, 17, 1419, MAX_PAYLOAD]
    pending = collections.OrderedDict()      # id -> (payload, deadline), in send order
    small = collections.defaultdict(collections.deque)  # payload (< 8 B) -> ids
    lost_ids = set()
    stats = dict(sent=0, ok=0, lost=0, corrupt=0, late=0, unmatched=0, bytes=0)
    next_id = 0
    done = 0
    last_progress = 0
    start = time.monotonic()
    hard_deadline = start + overall

    def finish(_id):
        nonlocal done
        done += 1

    while ((next_id < count and not stopped) or pending) and time.monotonic() < hard_deadline:
        # Fill the window.
        while next_id < count and not stopped and len(pending) < window:
            size = edge[next_id] if next_id < len(edge) else rng.randint(0, MAX_PAYLOAD)
            if size >= 8:
                payload = struct.pack("<Q", next_id) + rng.randbytes(size - 8)
            else:
                payload = rng.randbytes(size)
            try:
                s.send(payload)
            except BlockingIOError:
                break  # send buffer full: this id is regenerated on the next round
            except OSError as e:
                # ENETUNREACH etc.: counts as a loss, never hangs the loop.
                pending[next_id] = (payload, 0.0)
                next_id += 1
                stats["sent"] += 1
                print("send error: %s" % e, file=sys.stderr)
                continue
            pending[next_id] = (payload, time.monotonic() + per_timeout)
            if size < 8:
                small[payload].append(next_id)
            next_id += 1
            stats["sent"] += 1
            stats["bytes"] += size
        # Wait for echoes, at most until the oldest datagram's deadline.
        now = time.monotonic()
        wait = 0.2
        if pending:
            first = next(iter(pending.values()))
            wait = max(0.0, min(wait, first[1] - now))
        rlist = [s] + ([sys.stdin] if until_stop and not stopped else [])
        r, _, _ = select.select(rlist, [], [], wait)
        if sys.stdin in r:
            try:
                line = os.read(sys.stdin.fileno(), 4096)
            except BlockingIOError:
                line = b"-"
            if not line or b"stop" in line:
                stopped = True
        if s in r:
            while True:
                try:
                    data = s.recv(65535)
                except BlockingIOError:
                    break
                except OSError:
                    break
                if len(data) >= 8:
                    i = struct.unpack("<Q", data[:8])[0]
                    entry = pending.pop(i, None)
                    if entry is None:
                        if i in lost_ids:
                            stats["late"] += 1
                        else:
                            stats["unmatched"] += 1
                        continue
                    if entry[0] == data:
                        stats["ok"] += 1
                    else:
                        stats["corrupt"] += 1
                    finish(i)
                else:
                    ids = small.get(data)
                    if not ids:
                        stats["unmatched"] += 1
                        continue
                    i = ids.popleft()
                    pending.pop(i, None)
                    stats["ok"] += 1
                    finish(i)
        # Expire the oldest datagrams past their deadline.
        now = time.monotonic()
        while pending:
            i, (payload, deadline) = next(iter(pending.items()))
            if deadline > now:
                break
            pending.popitem(last=False)
            if len(payload) < 8:
                try:
                    small[payload].remove(i)
                except ValueError:
                    pass
            lost_ids.add(i)
            stats["lost"] += 1
            finish(i)
        if done - last_progress >= 250:
            last_progress = done
            print("progress %d" % done, flush=True)
    stats["lost"] += len(pending)  # only if the overall deadline hit
    stats["unfinished"] = 0 if until_stop else count - next_id
    stats["elapsed"] = round(time.monotonic() - start, 3)
    stats["lost_ids"] = sorted(lost_ids)[:50]
    print("result " + json.dumps(stats), flush=True)


def junk_main(argv):
    """Sends malformed WireGuard payloads; prints what it sent per category."""
    dst, port, count, seed = argv[0], int(argv[1]), int(argv[2]), int(argv[3])
    rng = random.Random(seed)
    fam = socket.AF_INET6 if ":" in dst else socket.AF_INET
    s = socket.socket(fam, socket.SOCK_DGRAM)
    big_buffers(s)

    def le32(v):
        return struct.pack("<I", v)

    # category -> generator; the expected core verdict is in the name.
    gens = {
        "malformed_random": lambda: bytes([rng.choice([0, 5, 6, 17, 200, 255])]) + rng.randbytes(rng.randint(0, 300)),
        "malformed_empty": lambda: b"",
        "malformed_short": lambda: rng.randbytes(rng.randint(1, 3)),
        "malformed_bad_type": lambda: le32(rng.randint(5, 0xFFFFFFFF)) + rng.randbytes(rng.randint(0, 200)),
        "malformed_reserved": lambda: bytes([1, rng.randint(1, 255), 0, 0]) + rng.randbytes(144),
        "malformed_init_truncated": lambda: le32(1) + rng.randbytes(rng.choice([0, 50, 143, 144 + 1])),
        "malformed_resp_truncated": lambda: le32(2) + rng.randbytes(rng.choice([0, 40, 87, 89])),
        "malformed_cookie_truncated": lambda: le32(3) + rng.randbytes(rng.choice([0, 30, 59, 61])),
        "malformed_data_short": lambda: le32(4) + rng.randbytes(rng.randint(0, 27)),
        "bad_mac1_init": lambda: le32(1) + rng.randbytes(144),
        "bad_mac1_resp": lambda: le32(2) + rng.randbytes(88),
        "cookie_unknown": lambda: le32(3) + rng.randbytes(60),
        "data_unknown_index": lambda: le32(4) + rng.randbytes(rng.randint(28, 300)),
    }
    names = sorted(gens)
    sent = collections.Counter()
    for k in range(count):
        name = names[k % len(names)]
        payload = gens[name]()
        # A truncated "type 1" of 148 bytes would not be truncated: keep sizes honest.
        if name == "malformed_init_truncated" and len(payload) == 148:
            payload = payload[:-1]
        s.sendto(payload, (dst, port))
        sent[name] += 1
    print("result " + json.dumps(dict(sent)), flush=True)


# --------------------------------------------------------------------------
# the test driver
# --------------------------------------------------------------------------

class Failure(Exception):
    pass


def log(msg):
    print(msg, flush=True)


def run(cmd, ns=None, check=True, timeout=30, input_data=None):
    if ns:
        cmd = ["ip", "netns", "exec", ns] + cmd
    try:
        p = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, input=input_data)
    except subprocess.TimeoutExpired:
        raise Failure("command timed out after %ss: %s" % (timeout, " ".join(cmd)))
    if check and p.returncode != 0:
        raise Failure("command failed (%d): %s\n%s%s" % (p.returncode, " ".join(cmd), p.stdout, p.stderr))
    return p


def wait_for(what, fn, timeout, interval=0.05):
    """Polls fn() until it returns a truthy value; fails after `timeout` s."""
    deadline = time.monotonic() + timeout
    last = None
    while True:
        last = fn()
        if last:
            return last
        if time.monotonic() >= deadline:
            raise Failure("timed out after %.1fs waiting for %s" % (timeout, what))
        time.sleep(interval)


class Proc:
    """A process this test started: killed by its PID, output kept in a log."""

    def __init__(self, name, cmd, logdir, stdin=False, stdout_pipe=False):
        self.name = name
        self.log_path = os.path.join(logdir, name + ".log")
        self.log_file = open(self.log_path, "w")
        self.lines = []
        self.popen = subprocess.Popen(
            cmd,
            stdin=subprocess.PIPE if stdin else subprocess.DEVNULL,
            stdout=subprocess.PIPE if stdout_pipe else self.log_file,
            stderr=self.log_file,
            text=True,
        )
        self.pid = self.popen.pid
        self.reader = None
        if stdout_pipe:
            self.reader = threading.Thread(target=self._read, daemon=True)
            self.reader.start()

    def _read(self):
        for line in self.popen.stdout:
            self.lines.append(line.rstrip("\n"))
            self.log_file.write(line)
            self.log_file.flush()

    def alive(self):
        return self.popen.poll() is None

    def stop(self, sig=signal.SIGTERM, timeout=5.0):
        if self.popen.poll() is None:
            try:
                os.kill(self.pid, sig)
            except ProcessLookupError:
                pass
            try:
                self.popen.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                try:
                    os.kill(self.pid, signal.SIGKILL)
                except ProcessLookupError:
                    pass
                self.popen.wait(timeout=5)
        if self.reader:
            self.reader.join(timeout=2)
        self.log_file.close()
        return self.popen.returncode

    def tail(self, n=25):
        try:
            with open(self.log_path) as f:
                return "".join(f.readlines()[-n:])
        except OSError:
            return ""


def wg_genkey(tmp, name):
    priv = run(["wg", "genkey"]).stdout.strip()
    pub = run(["wg", "pubkey"], input_data=priv + "\n").stdout.strip()
    path = os.path.join(tmp, name + ".key")
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as f:
        f.write(priv + "\n")
    return path, pub


class Topology:
    """Two namespaces joined by a veth pair; wireguard-go in one, the harness
    in the other. start()/stop() can be repeated for a fresh pair."""

    def __init__(self, harness, tmp):
        pid = os.getpid()
        self.harness_bin = harness
        self.tmp = tmp
        self.ns_go = "mgwg-go-%d" % pid
        self.ns_h = "mgwg-h-%d" % pid
        self.veth_go = "mgv%da" % pid
        self.veth_h = "mgv%db" % pid
        self.tun = "mgt%d" % pid
        self.control = os.path.join(tmp, "harness.ctl")
        self.procs = []
        self.wg_if = None
        self.generation = 0
        self.harness = None
        self.wg = None

    # -- namespaces ---------------------------------------------------------
    def create(self):
        for ns in (self.ns_go, self.ns_h):
            run(["ip", "netns", "del", ns], check=False)
            run(["ip", "netns", "add", ns])
            run(["ip", "-n", ns, "link", "set", "lo", "up"])
        run(["ip", "link", "add", self.veth_go, "type", "veth", "peer", "name", self.veth_h])
        run(["ip", "link", "set", self.veth_go, "netns", self.ns_go])
        run(["ip", "link", "set", self.veth_h, "netns", self.ns_h])
        for ns, dev, n in ((self.ns_go, self.veth_go, 1), (self.ns_h, self.veth_h, 2)):
            run(["ip", "-n", ns, "link", "set", dev, "mtu", str(VETH_MTU), "up"])
            run(["ip", "-n", ns, "addr", "add", "10.201.0.%d/24" % n, "dev", dev])
            run(["ip", "-n", ns, "addr", "add", "fd00:201::%d/64" % n, "dev", dev, "nodad"])

    def destroy(self):
        self.stop()
        for ns in (self.ns_go, self.ns_h):
            run(["ip", "netns", "del", ns], check=False)

    def spawn(self, name, cmd, ns, **kw):
        p = Proc(name, ["ip", "netns", "exec", ns] + cmd, self.tmp, **kw)
        self.procs.append(p)
        return p

    # -- one wireguard-go + harness pair -------------------------------------
    def start(self, outer_v6, harness_knows_endpoint, wg_knows_endpoint, decoy_peer=False, psk=False):
        self.generation += 1
        g = self.generation
        self.wg_if = "mgwg%d%s" % (os.getpid(), chr(ord("a") + g - 1))
        assert len(self.wg_if) <= 15
        self.go_key, self.go_pub = wg_genkey(self.tmp, "go%d" % g)
        self.h_key, self.h_pub = wg_genkey(self.tmp, "h%d" % g)
        outer_go = "[fd00:201::1]:%d" % WG_PORT if outer_v6 else "10.201.0.1:%d" % WG_PORT
        outer_h = "[fd00:201::2]:%d" % HARNESS_PORT if outer_v6 else "10.201.0.2:%d" % HARNESS_PORT

        # wireguard-go, in the foreground so its PID is ours to kill.
        self.wg = self.spawn("wireguard-go-%d" % g, ["wireguard-go", "-f", self.wg_if], self.ns_go)
        sock = "/var/run/wireguard/%s.sock" % self.wg_if
        wait_for("wireguard-go UAPI socket " + sock,
                 lambda: os.path.exists(sock) or (not self.wg.alive() and self._dead(self.wg)), 10)
        wg_cmd = ["wg", "set", self.wg_if, "private-key", self.go_key, "listen-port", str(WG_PORT),
                  "peer", self.h_pub, "allowed-ips", "10.202.0.2/32,fd00:202::2/128"]
        if wg_knows_endpoint:
            wg_cmd += ["endpoint", outer_h]
        self.psk = None
        if psk:
            self.psk = os.path.join(self.tmp, "psk%d" % g)
            with open(self.psk, "w") as f:
                f.write(run(["wg", "genpsk"]).stdout)
            wg_cmd += ["preshared-key", self.psk]
        run(wg_cmd, ns=self.ns_go)
        run(["ip", "-n", self.ns_go, "link", "set", self.wg_if, "mtu", str(TUNNEL_MTU)])
        run(["ip", "-n", self.ns_go, "addr", "add", "10.202.0.1/24", "dev", self.wg_if])
        run(["ip", "-n", self.ns_go, "addr", "add", "fd00:202::1/64", "dev", self.wg_if, "nodad"])
        run(["ip", "-n", self.ns_go, "link", "set", self.wg_if, "up"])

        # The harness.
        cmd = [self.harness_bin, "--private-key", self.h_key, "--listen-port", str(HARNESS_PORT),
               "--tun", self.tun, "--mtu", str(TUNNEL_MTU), "--control", self.control,
               "--peer", self.go_pub, "--allowed-ip", "10.202.0.1/32", "--allowed-ip", "fd00:202::1/128"]
        if harness_knows_endpoint:
            cmd += ["--endpoint", outer_go]
        if self.psk:
            cmd += ["--preshared-key", self.psk]
        self.decoy_pub = None
        if decoy_peer:
            # A peer with a wider prefix and no endpoint: longest-prefix match
            # must still send 10.202.0.1 to the wireguard-go peer.
            _, self.decoy_pub = wg_genkey(self.tmp, "decoy%d" % g)
            cmd += ["--peer", self.decoy_pub, "--allowed-ip", "10.202.0.0/24"]
        self.harness = self.spawn("harness-%d" % g, cmd, self.ns_h)
        wait_for("harness control socket", lambda: self._ctl_ready() or self._dead(self.harness), 30)
        run(["ip", "-n", self.ns_h, "link", "set", self.tun, "mtu", str(TUNNEL_MTU)])
        run(["ip", "-n", self.ns_h, "addr", "add", "10.202.0.2/24", "dev", self.tun])
        run(["ip", "-n", self.ns_h, "addr", "add", "fd00:202::2/64", "dev", self.tun, "nodad"])
        run(["ip", "-n", self.ns_h, "link", "set", self.tun, "up"])

    def _dead(self, proc):
        if not proc.alive():
            raise Failure("%s exited (%s):\n%s" % (proc.name, proc.popen.returncode, proc.tail()))
        return False

    def _ctl_ready(self):
        try:
            return "public_key" in self.ctl("stats")
        except OSError:
            return False

    def stop(self):
        """Kills this test's processes (by PID) and removes the wg socket.
        Returns (harness exit code, control socket left behind, log tail)
        for the harness of this pair, or None if none was running."""
        harness_exit = None
        if self.harness and self.harness.alive():
            # SIGTERM first and alone: the harness must exit 0 (under ASan
            # that includes LeakSanitizer) and remove its control socket.
            rc = self.harness.stop()
            harness_exit = (rc, os.path.exists(self.control), self.harness.tail())
        for p in reversed(self.procs):
            p.stop()
        self.procs = []
        if self.wg_if:
            sock = "/var/run/wireguard/%s.sock" % self.wg_if
            if os.path.exists(sock):
                os.unlink(sock)
            run(["ip", "-n", self.ns_go, "link", "del", self.wg_if], check=False)
        if os.path.exists(self.control):
            os.unlink(self.control)
        self.harness = None
        self.wg = None
        return harness_exit

    # -- observation ----------------------------------------------------------
    def ctl(self, command, timeout=5.0):
        s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        s.settimeout(timeout)
        try:
            s.connect(self.control)
            s.sendall((command + "\n").encode())
            buf = b""
            while not buf.endswith(b"\n"):
                chunk = s.recv(65536)
                if not chunk:
                    break
                buf += chunk
            return buf.decode().strip()
        finally:
            s.close()

    def stats(self):
        if self.harness and not self.harness.alive():
            raise Failure("harness died (%s):\n%s" % (self.harness.popen.returncode, self.harness.tail()))
        return json.loads(self.ctl("stats"))

    def hpeer(self, st=None, pub=None):
        st = st or self.stats()
        pub = pub or self.go_pub
        for p in st["peers"]:
            if p["public_key"] == pub:
                return p
        raise Failure("harness stats have no peer %s" % pub)

    def wg_dump(self):
        """wireguard-go's view of the harness peer from `wg show dump`."""
        out = run(["wg", "show", self.wg_if, "dump"], ns=self.ns_go).stdout.strip().splitlines()
        for line in out[1:]:
            f = line.split("\t")
            if f[0] == self.h_pub:
                return dict(endpoint=f[2], latest_handshake=int(f[4]), rx=int(f[5]), tx=int(f[6]))
        raise Failure("wg show dump has no peer %s" % self.h_pub)

    def ping(self, from_go, addr, count=5, v6=False):
        ns = self.ns_go if from_go else self.ns_h
        cmd = ["ping", "-n", "-q", "-c", str(count), "-i", "0.2", "-W", "3"]
        if v6:
            cmd.insert(1, "-6")
        p = run(cmd + [addr], ns=ns, check=False, timeout=30)
        for line in p.stdout.splitlines():
            if "packets transmitted" in line:
                parts = line.split(",")
                tx = int(parts[0].split()[0])
                rx = int(parts[1].split()[0])
                return tx, rx
        raise Failure("ping output not understood:\n%s%s" % (p.stdout, p.stderr))

    def start_echo_server(self):
        srv = self.spawn("echo-server", [sys.executable, os.path.abspath(__file__), "--echo-server",
                                         "10.202.0.1", str(ECHO_PORT)], self.ns_go, stdout_pipe=True)
        wait_for("echo server ready", lambda: "ready" in srv.lines or self._dead(srv), 15)
        return srv

    def start_echo_client(self, count, seed, name):
        """count 0: runs until stop_echo_client()."""
        return self.spawn(name, [sys.executable, os.path.abspath(__file__), "--echo-client",
                                 "10.202.0.1", str(ECHO_PORT), str(count), str(WINDOW), str(seed)],
                          self.ns_h, stdout_pipe=True, stdin=count <= 0)


def client_progress(client):
    n = 0
    for line in list(client.lines):
        if line.startswith("progress "):
            n = int(line.split()[1])
    return n


def client_result(client, timeout):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        for line in list(client.lines):
            if line.startswith("result "):
                client.popen.wait(timeout=5)
                return json.loads(line[len("result "):])
        if not client.alive() and client.reader and not client.reader.is_alive():
            for line in list(client.lines):
                if line.startswith("result "):
                    return json.loads(line[len("result "):])
            break
        time.sleep(0.05)
    raise Failure("echo client gave no result:\n%s" % client.tail())


def wait_handshake_both(topo, what, min_hs=1, timeout=15):
    def ok():
        p = topo.hpeer()
        d = topo.wg_dump()
        return (p, d) if p["handshakes_completed"] >= min_hs and d["latest_handshake"] > 0 else None
    return wait_for(what, ok, timeout)


def sum_drops(st):
    return sum(v for k, v in st["drops"].items() if k != "ok")


def udp_kernel_drops(ns):
    """UDP receive-buffer and checksum drops in a namespace (/proc/net/snmp)."""
    p = run(["cat", "/proc/net/snmp"], ns=ns)
    lines = [l.split() for l in p.stdout.splitlines() if l.startswith("Udp:")]
    hdr, val = lines[0], lines[1]
    d = dict(zip(hdr[1:], (int(x) for x in val[1:])))
    return d.get("RcvbufErrors", 0) + d.get("InCsumErrors", 0)


# --------------------------------------------------------------------------
# cases
# --------------------------------------------------------------------------

def case_a1_wg_go_initiates(topo):
    st = topo.stats()
    sent = sum(st["send_verdicts"].values())
    if sent != 0:
        raise Failure("harness had already sent %d packets before the test pinged" % sent)
    tx, rx = topo.ping(True, "10.202.0.2", count=3)
    p, d = wait_handshake_both(topo, "handshake initiated by wireguard-go")
    if rx != tx:
        raise Failure("ping from wireguard-go side: %d/%d replies" % (rx, tx))
    if not p["endpoint"].startswith("[fd00:201::1]"):
        raise Failure("harness endpoint for wireguard-go is %r, expected [fd00:201::1]:%d" % (p["endpoint"], WG_PORT))
    tx2, rx2 = topo.ping(False, "10.202.0.1", count=3)
    if rx2 != tx2:
        raise Failure("ping from harness side: %d/%d" % (rx2, tx2))
    return ("handshakes_completed=%d, wg latest-handshake=%d, harness learned endpoint %s (IPv6 outer), "
            "ping %d/%d + %d/%d" % (p["handshakes_completed"], d["latest_handshake"], p["endpoint"], rx, tx, rx2, tx2))


def case_a2_harness_initiates(topo):
    d0 = topo.wg_dump()
    if d0["endpoint"] != "(none)":
        raise Failure("wireguard-go unexpectedly knows an endpoint %s" % d0["endpoint"])
    tx, rx = topo.ping(False, "10.202.0.1", count=1)
    p, d = wait_handshake_both(topo, "handshake initiated by the harness")
    if rx != tx:
        raise Failure("first ping from harness: %d/%d" % (rx, tx))
    return ("wireguard-go had no endpoint (could not initiate); handshakes_completed=%d, "
            "wg latest-handshake=%d, wg learned endpoint %s" % (p["handshakes_completed"], d["latest_handshake"], d["endpoint"]))


def case_b_ping(topo):
    res = []
    for from_go, addr, v6 in ((False, "10.202.0.1", False), (True, "10.202.0.2", False),
                              (False, "fd00:202::1", True), (True, "fd00:202::2", True)):
        tx, rx = topo.ping(from_go, addr, count=5, v6=v6)
        who = "wg-go->harness" if from_go else "harness->wg-go"
        if tx != 5 or rx != 5:
            raise Failure("ping %s %s: %d/%d replies" % (who, addr, rx, tx))
        res.append("%s %s %d/%d" % (who, addr, rx, tx))
    return "; ".join(res)


def run_echo(topo, count, seed, name, during=None):
    client = topo.start_echo_client(count, seed, name)
    extra = during(client) if during else None
    r = client_result(client, timeout=240)
    client.stop()
    return r, extra


def case_c_echo(topo):
    seed = random.randrange(1 << 30)
    r, _ = run_echo(topo, 10000, seed, "echo-c")
    detail = ("seed=%d sent=%d ok=%d lost=%d corrupt=%d unmatched=%d late=%d payload=%d B in %.2fs"
              % (seed, r["sent"], r["ok"], r["lost"], r["corrupt"], r["unmatched"], r["late"], r["bytes"], r["elapsed"]))
    if r["sent"] != 10000 or r["ok"] != 10000 or r["lost"] or r["corrupt"] or r["unmatched"]:
        raise Failure(detail + " lost_ids=%s" % r["lost_ids"])
    return detail


def case_d_rekey(topo):
    """Echo traffic runs until told to stop; in the middle of it the harness
    is told to rekey, and the traffic continues for a good while on the new
    session before it stops."""
    seed = random.randrange(1 << 30)
    hs0 = topo.hpeer()["handshakes_completed"]
    wg0 = topo.wg_dump()["latest_handshake"]
    info = {}

    def during(client):
        def progressed(n):
            def check():
                if client_progress(client) >= n:
                    return True
                if not client.alive():
                    raise Failure("echo client ended early:\n" + client.tail())
                return False
            return check
        wait_for("echo traffic under way", progressed(2000), 120)
        t0 = time.monotonic()

        def initiate():
            reply = topo.ctl("initiate " + topo.go_pub)
            if reply == "ok":
                return True
            if reply != "error rate_limited":
                raise Failure("initiate replied %r" % reply)
            info["rate_limited"] = info.get("rate_limited", 0) + 1
            return False
        # The core allows one initiation per REKEY_TIMEOUT (5 s): retry.
        wait_for("initiate accepted (not rate limited)", initiate, 10, interval=0.25)
        t1 = time.monotonic()
        info["progress_at_initiate"] = client_progress(client)
        wait_for("handshakes_completed to increase", lambda: topo.hpeer()["handshakes_completed"] > hs0, 10, interval=0.01)
        info["rekey_ms"] = (time.monotonic() - t1) * 1000
        info["wait_rate_limit_s"] = t1 - t0
        info["progress_at_rekey"] = client_progress(client)
        # Keep the traffic going over the new session, then stop it.
        wait_for("3000 more datagrams after the rekey", progressed(info["progress_at_rekey"] + 3000), 120)
        client.popen.stdin.write("stop\n")
        client.popen.stdin.flush()

    r, _ = run_echo(topo, 0, seed, "echo-d", during)
    p = topo.hpeer()
    d = topo.wg_dump()
    detail = ("seed=%d initiate accepted after %.1fs of rate limiting at %d done; handshake completed %.1f ms later "
              "at %d done; handshakes_completed %d->%d; wg latest-handshake %d->%d; sent=%d ok=%d lost=%d corrupt=%d "
              "unmatched=%d late=%d in %.2fs (window %d)"
              % (seed, info["wait_rate_limit_s"], info["progress_at_initiate"], info["rekey_ms"], info["progress_at_rekey"],
                 hs0, p["handshakes_completed"], wg0, d["latest_handshake"], r["sent"], r["ok"], r["lost"],
                 r["corrupt"], r["unmatched"], r["late"], r["elapsed"], WINDOW))
    if r["lost"] > WINDOW or r["corrupt"] or r["unmatched"] or r["ok"] + r["lost"] != r["sent"]:
        raise Failure(detail + " lost_ids=%s" % r["lost_ids"])
    if p["handshakes_completed"] != hs0 + 1:
        raise Failure("expected exactly one more handshake: " + detail)
    # The previous handshake was at least REKEY_TIMEOUT (5 s) earlier, so
    # wireguard-go's seconds-resolution timestamp must have moved.
    if d["latest_handshake"] <= wg0:
        raise Failure("wireguard-go latest handshake did not move: " + detail)
    return detail


def case_e_counters(topo):
    """Waits until both sides' counters are stable for 1 s and equal."""
    t0 = time.monotonic()
    history = []

    def snapshot():
        p = topo.hpeer()
        d = topo.wg_dump()
        history.append((p["tx_bytes"], p["rx_bytes"], d["rx"], d["tx"]))
        if len(history) < 5:
            return None
        recent = history[-5:]  # 5 reads 0.25 s apart: 1 s without change
        if len(set(recent)) != 1:
            return None
        htx, hrx, grx, gtx = recent[-1]
        return recent[-1] if (htx == grx and hrx == gtx) else None

    try:
        htx, hrx, grx, gtx = wait_for("counters equal and stable", snapshot, 40, interval=0.25)
    except Failure:
        htx, hrx, grx, gtx = history[-1]
        raise Failure("counters never matched: harness tx=%d rx=%d, wireguard-go rx=%d tx=%d "
                      "(diff tx-rx=%d, rx-tx=%d)" % (htx, hrx, grx, gtx, htx - grx, hrx - gtx))
    return ("harness tx_bytes=%d == wg rx=%d; harness rx_bytes=%d == wg tx=%d (stable after %.1fs)"
            % (htx, grx, hrx, gtx, time.monotonic() - t0))


def case_g_routing(topo):
    st0 = topo.stats()
    # 1. Longest-prefix match: 10.202.0.50 is only in the decoy's /24, which
    #    has no endpoint, so nothing may leave and the verdict is no_endpoint.
    run(["ping", "-n", "-q", "-c", "2", "-i", "0.2", "-W", "1", "10.202.0.50"], ns=topo.ns_h, check=False)
    # 2. Source filter: wireguard-go encrypts whatever its TUN gives it, so a
    #    datagram from a source outside the harness's allowed IPs for that
    #    peer (10.202.0.77 lies in the decoy's /24) arrives authenticated and
    #    must be dropped by the harness.
    run(["ip", "-n", topo.ns_go, "addr", "add", "10.202.0.77/32", "dev", topo.wg_if])
    code = ("import socket,sys\n"
            "s=socket.socket(socket.AF_INET,socket.SOCK_DGRAM)\n"
            "s.bind(('10.202.0.77',0))\n"
            "[s.sendto(b'spoofed-%d'%i,('10.202.0.2',9)) for i in range(5)]\n")
    run([sys.executable, "-c", code], ns=topo.ns_go)

    def settled():
        st = topo.stats()
        ok = (st["harness"]["bad_inner_source"] - st0["harness"]["bad_inner_source"] >= 5 and
              st["send_verdicts"]["no_endpoint"] - st0["send_verdicts"]["no_endpoint"] >= 2)
        return st if ok else None
    try:
        st = wait_for("bad_inner_source +5 and no_endpoint +2", settled, 10)
    except Failure:
        st = topo.stats()
        raise Failure("bad_inner_source %d->%d, no_endpoint %d->%d, no_route %d->%d" % (
            st0["harness"]["bad_inner_source"], st["harness"]["bad_inner_source"],
            st0["send_verdicts"]["no_endpoint"], st["send_verdicts"]["no_endpoint"],
            st0["harness"]["no_route"], st["harness"]["no_route"]))
    run(["ip", "-n", topo.ns_go, "addr", "del", "10.202.0.77/32", "dev", topo.wg_if])
    tun_delivered = st["harness"]["tun_tx_packets"] - st0["harness"]["tun_tx_packets"]
    if tun_delivered:
        raise Failure("%d spoofed packets reached the harness TUN" % tun_delivered)
    return ("decoy /24 peer got the 2 pings (no_endpoint %d->%d, nothing sent); 5 datagrams from "
            "10.202.0.77 via wireguard-go dropped (bad_inner_source %d->%d), 0 written to TUN"
            % (st0["send_verdicts"]["no_endpoint"], st["send_verdicts"]["no_endpoint"],
               st0["harness"]["bad_inner_source"], st["harness"]["bad_inner_source"]))


def case_d2_wg_go_rehandshake(topo):
    hs0 = topo.hpeer()["handshakes_completed"]
    # Removing and re-adding the peer makes wireguard-go forget every key
    # while the harness still holds a live session: the next packet from
    # wireguard-go starts a handshake that the harness answers as responder.
    run(["wg", "set", topo.wg_if, "peer", topo.h_pub, "remove"], ns=topo.ns_go)
    readd = ["wg", "set", topo.wg_if, "peer", topo.h_pub, "allowed-ips", "10.202.0.2/32,fd00:202::2/128",
             "endpoint", "10.201.0.2:%d" % HARNESS_PORT]
    if topo.psk:
        readd += ["preshared-key", topo.psk]
    run(readd, ns=topo.ns_go)
    tx, rx = topo.ping(True, "10.202.0.2", count=3)
    p, d = wait_handshake_both(topo, "wireguard-go-initiated handshake", min_hs=hs0 + 1)
    if rx != tx:
        raise Failure("ping after wireguard-go re-handshake: %d/%d" % (rx, tx))
    seed = random.randrange(1 << 30)
    r, _ = run_echo(topo, 2000, seed, "echo-d2")
    detail = ("handshakes_completed %d->%d, ping %d/%d, then echo seed=%d sent=%d ok=%d lost=%d corrupt=%d"
              % (hs0, p["handshakes_completed"], rx, tx, seed, r["sent"], r["ok"], r["lost"], r["corrupt"]))
    if r["ok"] != 2000 or r["lost"] or r["corrupt"] or r["unmatched"]:
        raise Failure(detail)
    return detail


def case_f_malformed(topo):
    st0 = topo.stats()
    k0 = udp_kernel_drops(topo.ns_h)
    count = 390  # 30 of each of the 13 categories
    seed = random.randrange(1 << 30)
    p = run([sys.executable, os.path.abspath(__file__), "--junk", "10.201.0.2", str(HARNESS_PORT),
             str(count), str(seed)], ns=topo.ns_go)
    sent = json.loads(p.stdout.strip().splitlines()[-1][len("result "):])
    expected_total = sum(sent.values())

    def counted():
        st = topo.stats()
        delta = sum_drops(st) - sum_drops(st0)
        return st if delta >= expected_total - (udp_kernel_drops(topo.ns_h) - k0) else None
    try:
        st = wait_for("every junk payload counted as a drop", counted, 10)
    except Failure:
        st = topo.stats()
    kernel = udp_kernel_drops(topo.ns_h) - k0
    deltas = {k: st["drops"][k] - st0["drops"][k] for k in st["drops"] if st["drops"][k] != st0["drops"][k]}
    total = sum(v for k, v in deltas.items() if k != "ok")
    exp_malformed = sum(v for k, v in sent.items() if k.startswith("malformed"))
    exp_mac1 = sum(v for k, v in sent.items() if k.startswith("bad_mac1"))
    # Bad control commands get an error line, never a crash.
    for cmd, want in (("initiate not-base64", "error bad public key"),
                      ("initiate " + "A" * 43 + "=", "error unknown peer"),
                      ("bogus", "error unknown command")):
        reply = topo.ctl(cmd)
        if not reply.startswith(want):
            raise Failure("control %r replied %r, expected %r" % (cmd, reply, want))
    if not topo.harness.alive():
        raise Failure("harness died:\n" + topo.harness.tail())
    tx, rx = topo.ping(False, "10.202.0.1", count=3)
    detail = ("seed=%d sent=%d (%d malformed-shaped, %d bad-mac1-shaped), kernel UDP drops=%d, core drop deltas=%s "
              "(total %d); bad control commands answered with errors; ping after: %d/%d"
              % (seed, expected_total, exp_malformed, exp_mac1, kernel, json.dumps(deltas, sort_keys=True), total, rx, tx))
    if total != expected_total - kernel:
        raise Failure("not every junk payload was counted exactly once: " + detail)
    if deltas.get("malformed", 0) < 1 or deltas.get("bad_mac1", 0) < 1:
        raise Failure("malformed/bad_mac1 counters did not increase: " + detail)
    if rx != tx:
        raise Failure("harness no longer pings: " + detail)
    notes = []
    if deltas.get("malformed", 0) != exp_malformed:
        notes.append("note: malformed=%d, %d were malformed-shaped" % (deltas.get("malformed", 0), exp_malformed))
    if deltas.get("bad_mac1", 0) != exp_mac1:
        notes.append("note: bad_mac1=%d, %d had a random mac1" % (deltas.get("bad_mac1", 0), exp_mac1))
    return detail + ("; " + "; ".join(notes) if notes else "")


# --------------------------------------------------------------------------

def main():
    if len(sys.argv) > 1 and sys.argv[1] == "--echo-server":
        return echo_server_main(sys.argv[2:])
    if len(sys.argv) > 1 and sys.argv[1] == "--echo-client":
        return echo_client_main(sys.argv[2:])
    if len(sys.argv) > 1 and sys.argv[1] == "--junk":
        return junk_main(sys.argv[2:])

    if len(sys.argv) != 2:
        print("usage: %s PATH/TO/moongate-wg-harness" % sys.argv[0], file=sys.stderr)
        return 2
    harness = os.path.abspath(sys.argv[1])
    if os.geteuid() != 0:
        print("SKIP: needs root (network namespaces, TUN)")
        return SKIP
    missing = [t for t in ("wireguard-go", "wg", "ip", "ping") if shutil.which(t) is None]
    if missing:
        print("SKIP: missing %s" % ", ".join(missing))
        return SKIP
    if not os.path.exists("/dev/net/tun"):
        print("SKIP: no /dev/net/tun")
        return SKIP
    if not os.access(harness, os.X_OK):
        print("FAIL: harness %s is not executable" % harness)
        return 1

    # meson's timeout sends SIGTERM: turn it into an exception so the
    # finally block below still removes namespaces and processes.
    def on_term(signum, frame):
        raise SystemExit("terminated by signal %d" % signum)
    signal.signal(signal.SIGTERM, on_term)

    tmp = tempfile.mkdtemp(prefix="mgwg-interop-")

    def check_harness_exit(status, setup):
        name = "setup %d harness clean exit" % setup
        if status is None:
            return  # never started, or died: already reported
        rc, sock_left, tail = status
        if rc == 0 and not sock_left:
            results.append((name, True))
            log("PASS %-28s         SIGTERM -> exit 0, control socket removed" % name)
        else:
            results.append((name, False))
            log("FAIL %-28s         exit code %s, control socket left: %s\n%s" % (name, rc, sock_left, tail))
    topo = Topology(harness, tmp)
    results = []
    failed_logs = []

    def case(name, fn):
        t0 = time.monotonic()
        try:
            detail = fn(topo)
            results.append((name, True))
            log("PASS %-28s %6.2fs  %s" % (name, time.monotonic() - t0, detail))
        except Failure as e:
            results.append((name, False))
            log("FAIL %-28s %6.2fs  %s" % (name, time.monotonic() - t0, e))
            failed_logs.append(name)
            return False
        return True

    try:
        log("interop: harness %s, wireguard-go %s, workdir %s" % (
            harness, run(["wireguard-go", "--version"], check=False).stdout.splitlines()[0], tmp))
        topo.create()

        # Setup 1: IPv6 outer addresses; wireguard-go initiates.
        try:
            topo.start(outer_v6=True, harness_knows_endpoint=True, wg_knows_endpoint=True)
            st = topo.stats()
            log("      setup 1: harness %s aead=%s, wireguard-go %s (%s)" % (st["public_key"], st["aead_arch"], topo.go_pub, topo.wg_if))
            case("a1 wg-go initiates", case_a1_wg_go_initiates)
        except Failure as e:
            results.append(("setup 1", False))
            log("FAIL setup 1: %s" % e)
        check_harness_exit(topo.stop(), 1)

        # Setup 2: IPv4 outer; only the harness can initiate.
        try:
            topo.start(outer_v6=False, harness_knows_endpoint=True, wg_knows_endpoint=False, decoy_peer=True,
                       psk=True)
            st = topo.stats()
            log("      setup 2 (with a preshared key): harness %s aead=%s, wireguard-go %s (%s), decoy peer %s" % (
                st["public_key"], st["aead_arch"], topo.go_pub, topo.wg_if, topo.decoy_pub))
            if case("a2 harness initiates", case_a2_harness_initiates):
                case("b ping both ways", case_b_ping)
                topo.start_echo_server()
                case("c 10000 echoed datagrams", case_c_echo)
                case("d rekey mid-traffic", case_d_rekey)
                case("e counters vs wg show", case_e_counters)
                case("g routing and source filter", case_g_routing)
                case("d2 wg-go re-handshake", case_d2_wg_go_rehandshake)
                case("f malformed payloads", case_f_malformed)
            st = topo.stats()
            log("      final harness stats: " + json.dumps(st, sort_keys=True))
        except Failure as e:
            results.append(("setup 2", False))
            log("FAIL setup 2: %s" % e)
        if failed_logs and topo.harness:
            log("---- harness log tail ----\n" + topo.harness.tail())
            if topo.wg:
                log("---- wireguard-go log tail ----\n" + topo.wg.tail())
        check_harness_exit(topo.stop(), 2)
    finally:
        topo.destroy()
        shutil.rmtree(tmp, ignore_errors=True)

    passed = sum(1 for _, ok in results if ok)
    failed = len(results) - passed
    print("%d passed, %d failed" % (passed, failed), flush=True)
    return 0 if failed == 0 and passed > 0 else 1


if __name__ == "__main__":
    sys.exit(main())
