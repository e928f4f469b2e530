#!/usr/bin/env python3
"""Hostile input on the data plane's WAN port (suite e2e).

The subnet-router topology of test_dataplane.py (lan host, data plane,
wan ns with wireguard-go, remote host), plus one extra peer of the data
plane whose private key this test holds (a "python peer", 10.30.0.0/24),
so it can build real Noise initiations. From the wan namespace it sends
garbage UDP, other protocols, broken Ethernet/IPv4 frames, truncated and
forged WireGuard messages, replays of real wireguard-go traffic, spoofed
inner sources and handshake floods, and after each step checks the named
drop counters (exactly where the count is deterministic), that no other
drop counter moved, that the data plane is alive and that good traffic
still flows.

Stdlib only: X25519, ChaCha20-Poly1305 and the Noise initiation are
implemented below (slow, but only a handful are needed) and checked
against RFC 7748 / RFC 8439 vectors and `wg pubkey` before use.

Usage: test_hostile.py PATH/TO/moongate-dataplane
Exit 77 (skip) when not root or a tool is missing.
"""
import base64
import ctypes
import hashlib
import hmac
import json
import os
import random
import shutil
import socket
import struct
import subprocess
import sys
import time
import traceback

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from topology import Topology, sh, wg_keypair  # noqa: E402
from test_dataplane import build_subnet_router, dataplane_status, ping  # noqa: E402

RESULTS = []
NOTES = []
WG_PORT = 51820
DP_WAN = "192.0.2.2"
WAN_HOST = "192.0.2.10"
PY_PEER_ADDR = "192.0.2.11"  # the python peer's (extra) address on wr0
OTHER_SRC = "192.0.2.12"     # another source for garbage
SPOOF_SRC = "192.0.2.66"     # never assigned: only in forged frames
RNG = random.Random(int(os.environ.get("HOSTILE_SEED", "0")) or None)


def case(name):
    def wrap(fn):
        t0 = time.monotonic()
        try:
            detail = fn()
            RESULTS.append((name, True, detail or "", time.monotonic() - t0))
            print(f"PASS {name} ({time.monotonic() - t0:.1f}s) {detail or ''}", flush=True)
        except Exception as e:  # a failed case must not stop the others
            RESULTS.append((name, False, str(e), time.monotonic() - t0))
            print(f"FAIL {name} ({time.monotonic() - t0:.1f}s): {e}", flush=True)
            traceback.print_exc()
        return fn
    return wrap


def note(msg):
    NOTES.append(msg)
    print(f"NOTE {msg}", flush=True)


# --- network namespaces from this process -------------------------------------

_libc = ctypes.CDLL(None, use_errno=True)
CLONE_NEWNET = 0x40000000


class netns:
    """Runs the block in a named network namespace (this thread only): sockets
    created inside stay in that namespace after the block."""

    def __init__(self, name):
        self.name = name

    def __enter__(self):
        self.orig = os.open("/proc/thread-self/ns/net", os.O_RDONLY)
        fd = os.open(f"/var/run/netns/{self.name}", os.O_RDONLY)
        try:
            if _libc.setns(fd, CLONE_NEWNET) != 0:
                raise OSError(ctypes.get_errno(), f"setns {self.name}")
        finally:
            os.close(fd)

    def __exit__(self, *exc):
        if _libc.setns(self.orig, CLONE_NEWNET) != 0:
            raise OSError(ctypes.get_errno(), "setns back")
        os.close(self.orig)


# --- crypto (stdlib only) -----------------------------------------------------

_P = 2 ** 255 - 19


def x25519(k, u):
    k = bytearray(k)
    k[0] &= 248
    k[31] &= 127
    k[31] |= 64
    k = int.from_bytes(k, "little")
    u = int.from_bytes(u, "little") & ((1 << 255) - 1)
    x1, x2, z2, x3, z3, swap = u, 1, 0, u, 1, 0
    for t in reversed(range(255)):
        kt = (k >> t) & 1
        swap ^= kt
        if swap:
            x2, x3, z2, z3 = x3, x2, z3, z2
        swap = kt
        a = x2 + z2
        aa = a * a
        b = x2 - z2
        bb = b * b
        e = aa - bb
        c = x3 + z3
        d = x3 - z3
        da = d * a
        cb = c * b
        x3 = (da + cb) ** 2 % _P
        z3 = x1 * (da - cb) ** 2 % _P
        x2 = aa * bb % _P
        z2 = e * (aa + 121665 * e) % _P
    if swap:
        x2, x3, z2, z3 = x3, x2, z3, z2
    return (x2 * pow(z2, _P - 2, _P) % _P).to_bytes(32, "little")


def x25519_base(k):
    return x25519(k, (9).to_bytes(32, "little"))


def _rotl(v, c):
    return ((v << c) & 0xffffffff) | (v >> (32 - c))


def _qr(s, a, b, c, d):
    s[a] = (s[a] + s[b]) & 0xffffffff
    s[d] = _rotl(s[d] ^ s[a], 16)
    s[c] = (s[c] + s[d]) & 0xffffffff
    s[b] = _rotl(s[b] ^ s[c], 12)
    s[a] = (s[a] + s[b]) & 0xffffffff
    s[d] = _rotl(s[d] ^ s[a], 8)
    s[c] = (s[c] + s[d]) & 0xffffffff
    s[b] = _rotl(s[b] ^ s[c], 7)


def chacha20_block(key, counter, nonce):
    st = ([0x61707865, 0x3320646e, 0x79622d32, 0x6b206574] + list(struct.unpack("<8I", key)) +
          [counter] + list(struct.unpack("<3I", nonce)))
    w = st[:]
    for _ in range(10):
        _qr(w, 0, 4, 8, 12)
        _qr(w, 1, 5, 9, 13)
        _qr(w, 2, 6, 10, 14)
        _qr(w, 3, 7, 11, 15)
        _qr(w, 0, 5, 10, 15)
        _qr(w, 1, 6, 11, 12)
        _qr(w, 2, 7, 8, 13)
        _qr(w, 3, 4, 9, 14)
    return struct.pack("<16I", *[(a + b) & 0xffffffff for a, b in zip(w, st)])


def chacha20_xor(key, counter, nonce, data):
    out = bytearray()
    for i in range(0, len(data), 64):
        ks = chacha20_block(key, counter + i // 64, nonce)
        out += bytes(x ^ y for x, y in zip(data[i:i + 64], ks))
    return bytes(out)


def poly1305(key, msg):
    r = int.from_bytes(key[:16], "little") & 0x0ffffffc0ffffffc0ffffffc0fffffff
    s = int.from_bytes(key[16:], "little")
    p = (1 << 130) - 5
    acc = 0
    for i in range(0, len(msg), 16):
        acc = (acc + int.from_bytes(msg[i:i + 16] + b"\x01", "little")) * r % p
    return ((acc + s) & ((1 << 128) - 1)).to_bytes(16, "little")


def _pad16(b):
    return b"\0" * (-len(b) % 16)


def chachapoly_seal_raw(key, nonce, pt, ad):
    otk = chacha20_block(key, 0, nonce)[:32]
    ct = chacha20_xor(key, 1, nonce, pt)
    return ct + poly1305(otk, ad + _pad16(ad) + ct + _pad16(ct) + struct.pack("<QQ", len(ad), len(ct)))


def aead_seal(key, counter, pt, ad):  # WireGuard's nonce: 4 zero bytes, LE counter
    return chachapoly_seal_raw(key, b"\0" * 4 + struct.pack("<Q", counter), pt, ad)


def crypto_self_test():
    k = bytes.fromhex("a546e36bf0527c9d3b16154b82465edd62144c0ac1fc5a18506a2244ba449ac4")
    u = bytes.fromhex("e6db6867583030db3594c1a424b15f7c726624ec26b3353b10a903a6d0ab1c4c")
    assert x25519(k, u).hex() == "c3da55379de9c6908e94ea4df28d084f32eccf03491c71f754b4075577a28552"
    key = bytes(range(0x80, 0xa0))
    sealed = chachapoly_seal_raw(
        key, bytes.fromhex("070000004041424344454647"),
        b"Ladies and Gentlemen of the class of '99: If I could offer you only one tip for "
        b"the future, sunscreen would be it.", bytes.fromhex("50515253c0c1c2c3c4c5c6c7"))
    assert sealed[:16].hex() == "d31a8d34648e60db7b86afbc53ef7ec2"
    assert sealed[-16:].hex() == "1ae10b594f09e26a7e902ecbd0600691"


def HASH(*parts):
    h = hashlib.blake2s()
    for p in parts:
        h.update(p)
    return h.digest()


def HMAC(key, data):
    return hmac.new(key, data, hashlib.blake2s).digest()


def KDF(key, data, n):
    t0 = HMAC(key, data)
    out, prev = [], b""
    for i in range(1, n + 1):
        prev = HMAC(t0, prev + bytes([i]))
        out.append(prev)
    return out


def mac1(body, responder_pub):
    return hashlib.blake2s(body, key=HASH(b"mac1----", responder_pub), digest_size=16).digest()


def with_mac1(msg, responder_pub):
    """Replaces mac1 (and zeroes mac2) of a handshake message."""
    body = msg[:len(msg) - 32]
    return body + mac1(body, responder_pub) + b"\0" * 16


def tai64n(secs, nanos):
    return struct.pack(">QI", 0x400000000000000a + secs, nanos)


def noise_initiation(sender, s_priv, s_pub, r_pub, ts):
    """A complete WireGuard handshake initiation (no psk, no cookie)."""
    c = HASH(b"Noise_IKpsk2_25519_ChaChaPoly_BLAKE2s")
    h = HASH(HASH(c, b"WireGuard v1 zx2c4 Jason@zx2c4.com"), r_pub)
    e_priv = os.urandom(32)
    e_pub = x25519_base(e_priv)
    c = KDF(c, e_pub, 1)[0]
    h = HASH(h, e_pub)
    c, k = KDF(c, x25519(e_priv, r_pub), 2)
    enc_static = aead_seal(k, 0, s_pub, h)
    h = HASH(h, enc_static)
    c, k = KDF(c, x25519(s_priv, r_pub), 2)
    enc_ts = aead_seal(k, 0, ts, h)
    body = struct.pack("<II", 1, sender) + e_pub + enc_static + enc_ts
    assert len(body) == 116
    return body + mac1(body, r_pub) + b"\0" * 16


def b64(s):
    return base64.b64decode(s)


# --- frames -------------------------------------------------------------------

def ip_checksum(b):
    if len(b) % 2:
        b += b"\0"
    s = sum(struct.unpack(f"!{len(b) // 2}H", b))
    while s >> 16:
        s = (s & 0xffff) + (s >> 16)
    return (~s) & 0xffff


def ipv4(src, dst, proto, payload, ihl=5, total=None, version=4, frag=0x4000, ttl=64,
         options=None, bad_checksum=False):
    opts = options if options is not None else b"\x01" * (max(ihl, 5) * 4 - 20)
    total = total if total is not None else 20 + len(opts) + len(payload)
    h = struct.pack("!BBHHHBBH4s4s", (version << 4) | (ihl & 0xf), 0, total & 0xffff,
                    RNG.randrange(65536), frag, ttl, proto, 0,
                    socket.inet_aton(src), socket.inet_aton(dst)) + opts
    c = ip_checksum(h)
    if bad_checksum:
        c ^= 0x5a5a
    return h[:10] + struct.pack("!H", c) + h[12:] + payload


def udp(sport, dport, payload, length=None):
    return struct.pack("!HHHH", sport, dport, length if length is not None else 8 + len(payload), 0) + payload


def eth(dst, src, ethertype, payload):
    return dst + src + struct.pack("!H", ethertype) + payload


def not_a_wg_type(payload):
    """Makes sure a random payload cannot classify as a WireGuard message."""
    b = bytearray(payload)
    if len(b) >= 4 and struct.unpack("<I", bytes(b[:4]))[0] in (1, 2, 3, 4):
        b[1] = 0xff
    return bytes(b)


def ip_fragments(udp_payload_len, mtu=1500):
    per = (mtu - 20) // 8 * 8
    return -(-(8 + udp_payload_len) // per)


# --- status -------------------------------------------------------------------

def parse_status(text):
    s = {}
    for line in text.splitlines():
        p = line.split()
        if not p:
            continue
        if p[0] == "port" and len(p) >= 9:
            s[f"rx:{p[1]}"] = int(p[p.index("rx") + 1])
            s[f"tx:{p[1]}"] = int(p[p.index("tx") + 1])
        elif p[0] == "drop":
            s[f"drop:{p[1]}"] = int(p[2])
        elif p[0] == "wg_drop":
            s[f"wg:{p[1]}"] = int(p[2])
        elif p[0] == "peer":
            pid = p[1]
            s[f"peer{pid}.endpoint"] = p[p.index("endpoint") + 1]
            for k in ("rx", "tx", "handshakes", "staged"):
                s[f"peer{pid}.{k}"] = int(p[p.index(k) + 1])
        elif p[0] == "decrypted":
            for i in range(0, len(p) - 1, 2):
                s[p[i]] = int(p[i + 1])
    return s


def is_drop(k):
    return k.startswith("drop:") or k.startswith("wg:")


def deltas(a, b):
    keys = {k for k in set(a) | set(b) if not k.endswith(".endpoint")}
    return {k: b.get(k, 0) - a.get(k, 0) for k in keys if b.get(k, 0) != a.get(k, 0)}


def fmt(d):
    return ", ".join(f"{k}+{v}" for k, v in sorted(d.items()))


class H:
    """The test's handles: topology, sockets, status."""

    def __init__(self, topo, t, bin_path):
        self.topo, self.t, self.bin = topo, t, bin_path
        self.dp = t["dp"]

    def alive(self):
        if self.dp.poll() is not None:
            raise AssertionError(f"data plane exited ({self.dp.returncode}): " +
                                 open(self.t["log"]).read()[-2000:])

    def snap(self):
        self.alive()
        return parse_status(dataplane_status(self.topo, self.dp, self.t["gw"]))

    def settle(self, before, target, timeout=5.0):
        """Snapshots until every counter in `target` rose by at least its value
        (or timeout), then once more after a short pause to catch overshoot."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            s = self.snap()
            if all(s.get(k, 0) - before.get(k, 0) >= v for k, v in target.items()):
                break
            time.sleep(0.05)
        time.sleep(0.3)
        return self.snap()

    def expect(self, before, after, exact=None, allow=(), where=""):
        """Exact drop deltas for the named counters and no other drop counter moved
        (except those in `allow`)."""
        d = deltas(before, after)
        problems = []
        for k, v in (exact or {}).items():
            if d.get(k, 0) != v:
                problems.append(f"{k}: expected +{v}, got +{d.get(k, 0)}")
        for k, v in d.items():
            if is_drop(k) and k not in (exact or {}) and k not in allow:
                problems.append(f"unexpected {k} +{v}")
        if problems:
            raise AssertionError(f"{where}: " + "; ".join(problems) + f" (all deltas: {fmt(d)})")
        return d

    def good_traffic(self, count=5):
        got, out = ping(self.t["lan"], "10.20.0.2", count=count)
        assert got == count, f"good traffic: {got}/{count} lan->remote replies\n{out}"


def paced_send(send, items, every=16, pause=0.002):
    n = 0
    for i, it in enumerate(items):
        send(it)
        n += 1
        if i % every == every - 1:
            time.sleep(pause)
    return n


def icmp_counters(ns):
    lines = [l.split() for l in sh("cat", "/proc/net/snmp", ns=ns, capture=True).splitlines()
             if l.startswith("Icmp:")]
    return dict(zip(lines[0][1:], map(int, lines[1][1:])))


def sniff_open(ns, iface):
    with netns(ns):
        s = socket.socket(socket.AF_PACKET, socket.SOCK_RAW, socket.htons(0x0003))
        s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 8 << 20)
        s.bind((iface, 0x0003))
    s.setblocking(False)
    return s


def sniff_drain(s):
    out = []
    while True:
        try:
            data, addr = s.recvfrom(65535)
        except BlockingIOError:
            return out
        out.append((data, addr[2]))


def wg_frames(captured, src, sport, dst, dport, wg_type):
    """Outgoing frames (on the sniffed interface) carrying WireGuard `wg_type`."""
    res = []
    for data, pkttype in captured:
        if pkttype != socket.PACKET_OUTGOING or len(data) < 14 + 20 + 8 + 4:
            continue
        if data[12:14] != b"\x08\x00" or data[14 + 9] != 17:
            continue
        ihl = (data[14] & 0xf) * 4
        ip = data[14:]
        if ip[12:16] != socket.inet_aton(src) or ip[16:20] != socket.inet_aton(dst):
            continue
        sp, dp_, ulen = struct.unpack("!HHH", ip[ihl:ihl + 6])
        if sp != sport or dp_ != dport:
            continue
        wg = ip[ihl + 8:ihl + ulen]
        if len(wg) >= 4 and struct.unpack("<I", wg[:4])[0] == wg_type:
            res.append(data)
    return res


def rewrite_frame(frame, src=None, sport=None, wg=None):
    """A copy of an Ethernet/IPv4/UDP frame with another source and/or WireGuard
    payload; IPv4 checksum recomputed, UDP checksum zeroed."""
    ihl = (frame[14] & 0xf) * 4
    ip = bytearray(frame[14:14 + ihl])
    u = bytearray(frame[14 + ihl:14 + ihl + 8])
    payload = frame[14 + ihl + 8:14 + struct.unpack("!H", bytes(ip[2:4]))[0]] if wg is None else wg
    if src:
        ip[12:16] = socket.inet_aton(src)
    if sport:
        u[0:2] = struct.pack("!H", sport)
    u[4:6] = struct.pack("!H", 8 + len(payload))
    u[6:8] = b"\0\0"
    ip[2:4] = struct.pack("!H", ihl + 8 + len(payload))
    ip[10:12] = b"\0\0"
    ip[10:12] = struct.pack("!H", ip_checksum(bytes(ip)))
    return frame[:14] + bytes(ip) + bytes(u) + payload


# --- the test -----------------------------------------------------------------

def main():
    if os.geteuid() != 0:
        print("SKIP: needs root (network namespaces)")
        return 77
    for tool in ("ip", "wg", "wireguard-go", "ping", "ethtool", "sysctl"):
        if shutil.which(tool) is None:
            print(f"SKIP: {tool} not installed")
            return 77
    if len(sys.argv) < 2:
        print("usage: test_hostile.py PATH/TO/moongate-dataplane")
        return 2
    dataplane_bin = os.path.abspath(sys.argv[1])
    t_start = time.monotonic()

    topo = Topology("h")
    socks = []
    try:
        crypto_self_test()
        py_priv_b64, py_pub_b64 = wg_keypair()
        py_priv, py_pub = b64(py_priv_b64), b64(py_pub_b64)
        assert x25519_base(py_priv) == py_pub, "pure-python X25519 disagrees with `wg pubkey`"

        t = build_subnet_router(topo, dataplane_bin, extra_peers=(
            f"  - public_key: {py_pub_b64}\n    allowed_ips: [10.30.0.0/24]\n"))
        h = H(topo, t, dataplane_bin)
        lan, gw, wan = t["lan"], t["gw"], t["wan"]
        dp_pub = b64(t["dp_pub"])
        # No kernel IPv6 chatter (RS, MLD, DAD) from the wan side: every frame
        # reaching the WAN port is either ours or wireguard-go's.
        sh("sysctl", "-qw", "net.ipv6.conf.wr0.disable_ipv6=1", ns=wan)
        sh("sysctl", "-qw", "net.ipv6.conf.lh0.disable_ipv6=1", ns=lan)  # LAN side likewise
        for a in (PY_PEER_ADDR, OTHER_SRC):
            sh("ip", "addr", "add", f"{a}/24", "dev", "wr0", ns=wan)
        dp_mac = bytes.fromhex(json.loads(sh("ip", "-j", "link", "show", "gw0", ns=gw, capture=True))[0]
                               ["address"].replace(":", ""))
        wr_mac = bytes.fromhex(json.loads(sh("ip", "-j", "link", "show", "wr0", ns=wan, capture=True))[0]
                               ["address"].replace(":", ""))

        def udp_sock(src, port=0):
            with netns(wan):
                s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
                s.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, 4 << 20)
                s.setsockopt(socket.IPPROTO_IP, 10, 0)  # IP_MTU_DISCOVER = IP_PMTUDISC_DONT
                s.bind((src, port))
            socks.append(s)
            return s

        with netns(wan):
            raw_eth = socket.socket(socket.AF_PACKET, socket.SOCK_RAW)
            raw_eth.bind(("wr0", 0))
        socks.append(raw_eth)
        wg_sock = udp_sock(WAN_HOST)

        def to_wg(payload, s=None):
            (s or wg_sock).sendto(payload, (DP_WAN, WG_PORT))

        # ---- 0: real traffic; wireguard-go initiates first so its initiation
        # can be replayed later.
        captured_init = []

        @case("baseline: remote->lan (wireguard-go initiates), then lan->remote 5/5")
        def _():
            sn = sniff_open(wan, "wr0")
            try:
                got_r, out_r = ping(t["rem"], "10.10.0.2", count=5)
                time.sleep(0.2)
                cap = sniff_drain(sn)
            finally:
                sn.close()
            captured_init.extend(wg_frames(cap, WAN_HOST, WG_PORT, DP_WAN, WG_PORT, 1))
            got, out = ping(lan, "10.20.0.2", count=5)
            assert got_r >= 4, f"remote->lan {got_r}/5\n{out_r}"
            assert got == 5, f"lan->remote {got}/5\n{out}"
            assert captured_init, "no handshake initiation from wireguard-go captured on wr0"
            return f"remote->lan {got_r}/5, lan->remote 5/5, {len(captured_init)} initiation(s) captured"

        # ---- 1: garbage ---------------------------------------------------
        @case("1a garbage UDP payloads (0..1500 B, and fragmenting sizes) to :51820")
        def _():
            small = [RNG.randrange(0, 1473) for _ in range(300)] + [0, 1, 2, 3, 4, 1472]
            big = [RNG.randrange(1473, 1501) for _ in range(6)] + [1473, 1500, 1800, 2000, 4000]
            b = h.snap()
            paced_send(lambda z: to_wg(not_a_wg_type(os.urandom(z))), small)
            exp = {"wg:malformed": len(small)}
            a = h.settle(b, exp)
            h.expect(b, a, exp, where="garbage to :51820")
            # Over the 1500 MTU: the kernel fragments them. A NIC hands the data
            # plane every fragment (-> drop unsupported each); the net_af_packet
            # vdev joins its socket's fanout with PACKET_FANOUT_FLAG_DEFRAG, so
            # here the kernel reassembles first and the data plane sees one frame
            # per datagram: whole (-> wg_drop malformed) or cut at the vdev's
            # 2048-byte ring frame (-> drop malformed, total length > frame).
            b = h.snap()
            paced_send(lambda z: to_wg(not_a_wg_type(os.urandom(z))), big, every=4)
            n_frags = sum(ip_fragments(z) for z in big)
            a = h.settle(b, {"wg:malformed": 1})
            d = h.expect(b, a, {}, allow=("wg:malformed", "drop:malformed", "drop:unsupported"),
                         where="oversize garbage")
            seen = d.get("wg:malformed", 0) + d.get("drop:malformed", 0) + d.get("drop:unsupported", 0)
            if d.get("drop:unsupported", 0) == n_frags and seen == n_frags:
                how = f"each fragment -> drop unsupported +{n_frags}"
            else:
                assert seen == len(big) and d.get("drop:unsupported", 0) == 0, \
                    (f"{len(big)} oversize datagrams ({n_frags} fragments): expected one drop per datagram "
                     f"(reassembled by the vdev) or unsupported per fragment, got {fmt(d)}")
                how = (f"reassembled by the vdev: wg_drop malformed +{d.get('wg:malformed', 0)} (whole), "
                       f"drop malformed +{d.get('drop:malformed', 0)} (cut at the ring frame)")
            h.alive()
            return f"{len(small)} datagrams 0..1472 B -> wg_drop malformed +{len(small)}; {len(big)} over the MTU: {how}"

        @case("1b garbage UDP to other ports")
        def _():
            s2 = udp_sock(OTHER_SRC)
            ports = [WG_PORT - 1, WG_PORT + 1, 53, 123, 500, 4500, 65535]
            while len(ports) < 100:
                p = RNG.randrange(1, 65536)
                if p != WG_PORT:
                    ports.append(p)
            b = h.snap()
            paced_send(lambda p: s2.sendto(os.urandom(RNG.randrange(0, 1473)), (DP_WAN, p)), ports)
            exp = {"drop:local_unhandled": len(ports)}
            a = h.settle(b, exp)
            h.expect(b, a, exp, where="UDP to other ports")
            return f"{len(ports)} datagrams -> drop local_unhandled +{len(ports)}"

        @case("1c non-UDP IP protocols and non-echo ICMP to the WAN address")
        def _():
            sent = 0
            b = h.snap()
            for proto in (6, 47, 50, 51, 132, 4, 41, 253, 254):
                with netns(wan):
                    r = socket.socket(socket.AF_INET, socket.SOCK_RAW, proto)
                with r:
                    for _ in range(5):
                        r.sendto(os.urandom(RNG.randrange(0, 1400)), (DP_WAN, 0))
                        sent += 1
            with netns(wan):
                r = socket.socket(socket.AF_INET, socket.SOCK_RAW, socket.IPPROTO_ICMP)
            with r:
                def icmp(tp, code, body):
                    m = struct.pack("!BBHHH", tp, code, 0, 0x4242, 1) + body
                    return m[:2] + struct.pack("!H", ip_checksum(m)) + m[4:]
                bad = [icmp(13, 0, b"\0" * 12), icmp(0, 0, b"x" * 32), icmp(8, 1, b"y" * 32),
                       icmp(3, 3, b"z" * 28), icmp(8, 0, b"")[:4]]
                for m in bad:
                    r.sendto(m, (DP_WAN, 0))
                    sent += 1
                r.sendto(icmp(8, 0, b"good" * 8), (DP_WAN, 0))  # control: answered
            exp = {"drop:local_unhandled": sent}
            a = h.settle(b, dict(exp, icmp_echo_replies=1))
            d = h.expect(b, a, exp, where="non-UDP")
            assert d.get("icmp_echo_replies", 0) == 1, f"echo replies +{d.get('icmp_echo_replies', 0)}, expected +1"
            return f"{sent} packets (9 protocols x5, 5 bad ICMP) -> local_unhandled +{sent}; 1 good echo answered"

        @case("1d raw Ethernet frames: bad ethertypes, broken IPv4/UDP/ARP headers")
        def _():
            src, dst = WAN_HOST, DP_WAN
            u_ok = udp(40000, WG_PORT, b"\x09\0\0\0garbage!")
            frames = []  # (frame, counter)
            for et in (0x1234, 0x88CC, 0x8100, 0x0000, 0xFFFF, 0x05DC, 0x8847, 0x88B5):
                frames.append((eth(dp_mac, wr_mac, et, os.urandom(60)), "drop:not_ip"))
            # IPv6 is the underlay too now: broken headers are malformed, a
            # sound one to another address is not for us.
            frames.append((eth(dp_mac, wr_mac, 0x86DD, b"\0" + os.urandom(59)), "drop:malformed"))  # version 0
            v6_hdr = bytes([0x60, 0, 0, 0, 0, 8, 17, 64]) + bytes(15) + b"\1" + bytes(15) + b"\2"
            frames.append((eth(dp_mac, wr_mac, 0x86DD, v6_hdr[:30]), "drop:malformed"))          # cut header
            frames.append((eth(dp_mac, wr_mac, 0x86DD, v6_hdr + bytes(8)), "drop:not_for_us"))   # to ::2
            E = lambda p: eth(dp_mac, wr_mac, 0x0800, p)  # noqa: E731
            good_ip = ipv4(src, dst, 17, u_ok)
            for cut in (0, 1, 10, 19):
                frames.append((E(good_ip[:cut]), "drop:malformed"))          # truncated header
            for ihl in (0, 1, 4):
                frames.append((E(ipv4(src, dst, 17, u_ok, ihl=ihl, options=b"")), "drop:malformed"))
            frames.append((E(ipv4(src, dst, 17, u_ok, ihl=15, total=40, options=b"\1" * 40)[:40]),
                           "drop:malformed"))                                 # IHL 60 > total
            frames.append((E(ipv4(src, dst, 17, u_ok, ihl=15, options=b"\1" * 40)[:50]),
                           "drop:malformed"))                                 # IHL past the frame
            for ver in (6, 0, 15):
                frames.append((E(ipv4(src, dst, 17, u_ok, version=ver)), "drop:malformed"))
            frames.append((E(ipv4(src, dst, 17, u_ok, total=1400)), "drop:malformed"))  # total > frame
            frames.append((E(ipv4(src, dst, 17, u_ok, total=65535)), "drop:malformed"))
            frames.append((E(ipv4(src, dst, 17, u_ok, total=12)), "drop:malformed"))    # total < IHL
            frames.append((E(ipv4(src, dst, 17, u_ok[:4])), "drop:malformed"))          # UDP header cut
            frames.append((E(ipv4(src, dst, 17, udp(40000, WG_PORT, b"abcd", length=4))), "drop:malformed"))
            frames.append((E(ipv4(src, dst, 17, udp(40000, WG_PORT, b"abcd", length=200))), "drop:malformed"))
            frames.append((E(ipv4(src, dst, 1, b"\x08")), "drop:local_unhandled"))  # 1-byte ICMP
            frames.append((E(ipv4(src, "192.0.2.77", 17, u_ok)), "drop:not_for_us"))
            frames.append((E(ipv4(src, "255.255.255.255", 17, u_ok)), "drop:not_for_us"))
            frames.append((E(ipv4(src, "192.0.2.255", 17, u_ok)), "drop:not_for_us"))
            frames.append((E(ipv4(src, "10.10.0.2", 17, u_ok)), "drop:not_for_us"))  # "route me to the LAN"
            # Well-formed enough to reach WireGuard: options, trailing padding.
            frames.append((E(ipv4(src, dst, 17, u_ok, ihl=7, options=b"\x01" * 8)), "wg:malformed"))
            frames.append((E(ipv4(src, dst, 17, u_ok) + b"\0" * 30), "wg:malformed"))
            frames.append((E(ipv4(src, dst, 17, udp(40000, WG_PORT, b"\x04\0\0\0" + b"\0" * 40, length=8 + 4))),
                           "wg:malformed"))  # UDP says 4 bytes, IP carries more
            # ARP: truncated, wrong hardware type.
            frames.append((eth(dp_mac, wr_mac, 0x0806, b"\x00\x01\x08\x00\x06"), "drop:malformed"))
            arp_bad = struct.pack("!HHBBH6s4s6s4s", 6, 0x0800, 6, 4, 1, wr_mac,
                                  socket.inet_aton(src), b"\0" * 6, socket.inet_aton(dst))
            frames.append((eth(b"\xff" * 6, wr_mac, 0x0806, arp_bad), "drop:malformed"))
            exp = {}
            refused = []
            b = h.snap()
            for i, (f, k) in enumerate(frames):
                try:
                    raw_eth.send(f)
                except OSError as e:  # e.g. a frame the kernel will not send
                    refused.append(f"{len(f)} B: {e.strerror}")
                    continue
                exp[k] = exp.get(k, 0) + 1
                if i % 8 == 7:
                    time.sleep(0.002)
            if refused:
                note(f"kernel refused to send {len(refused)} raw frame(s): {refused}")
            a = h.settle(b, exp)
            h.expect(b, a, exp, where="raw frames")
            n_sent = sum(exp.values())
            rx = a["rx:wan0"] - b["rx:wan0"]
            assert rx >= n_sent, f"WAN rx +{rx} < {n_sent} frames sent"
            # Lone fragments (UDP to :51820): a NIC delivers them (-> unsupported);
            # the vdev's kernel defragmenter holds them until they time out.
            b = h.snap()
            raw_eth.send(E(ipv4(src, dst, 17, u_ok, frag=0x2000)))  # MF
            raw_eth.send(E(ipv4(src, dst, 17, u_ok, frag=0x0010)))  # offset 128
            a = h.settle(b, {}, timeout=0.5)
            d = h.expect(b, a, {}, allow=("drop:unsupported",), where="lone fragments")
            assert d.get("drop:unsupported", 0) in (0, 2), fmt(d)
            frag_note = ("lone fragments: unsupported +2" if d.get("drop:unsupported") else
                         "lone fragments: held by the vdev's kernel defragmenter (not seen)")
            # A bad IPv4 header checksum is dropped before anything else looks
            # at the packet (RFC 1812 5.2.2).
            b = h.snap()
            raw_eth.send(E(ipv4(src, dst, 17, u_ok, bad_checksum=True)))
            exp_ck = {"drop:bad_ip_checksum": 1}
            a = h.settle(b, exp_ck)
            h.expect(b, a, exp_ck, where="bad IPv4 header checksum")
            # An echo request that is only a first fragment is not answered.
            echo = struct.pack("!BBHHH", 8, 0, 0, 7, 7) + b"frag" * 8
            echo = echo[:2] + struct.pack("!H", ip_checksum(echo)) + echo[4:]
            b = h.snap()
            raw_eth.send(E(ipv4(src, dst, 1, echo, frag=0x2000)))
            a = h.settle(b, {}, timeout=0.5)
            d = deltas(b, a)
            assert d.get("icmp_echo_replies", 0) == 0, f"fragmented echo answered: {fmt(d)}"
            return f"{n_sent} frames -> {fmt(exp)}; {frag_note}"

        # ---- 2: truncated / wrong-length WireGuard messages ------------------
        @case("2 WireGuard messages of each type with wrong lengths / reserved bytes")
        def _():
            msgs = []
            for tp, good in ((1, 148), (2, 92), (3, 64)):
                for ln in (1, 2, 3, 4, 5, 8, 16, 31, 32, good - 16, good - 1, good + 1, good + 16, 200, 1000, 1400):
                    if ln != good:
                        msgs.append((struct.pack("<I", tp) + os.urandom(1400))[:ln])
            for ln in (1, 2, 3, 4, 8, 15, 16, 17, 31):
                msgs.append((struct.pack("<I", 4) + os.urandom(64))[:ln])
            # Right length, reserved bytes not zero; unknown types.
            for tp, ln in ((1, 148), (2, 92), (3, 64), (4, 64)):
                for rb in (b"\x01\x00\x00", b"\x00\x00\x01", b"\xff\xff\xff"):
                    msgs.append(bytes([tp]) + rb + os.urandom(ln - 4))
            for tp in (0, 5, 6, 0xff, 0x100, 0x01000000, 0xffffffff):
                msgs.append(struct.pack("<I", tp) + os.urandom(RNG.choice((0, 28, 60, 88, 144, 500))))
            b = h.snap()
            paced_send(to_wg, msgs)
            exp = {"wg:malformed": len(msgs)}
            a = h.settle(b, exp)
            h.expect(b, a, exp, where="truncated messages")
            h.alive()
            return f"{len(msgs)} messages -> wg_drop malformed +{len(msgs)}"

        # ---- 3: unknown receiver indexes ------------------------------------
        @case("3 data messages and cookie replies with unknown receiver indexes")
        def _():
            known = set()
            sn = sniff_open(wan, "wr0")
            try:
                ping(lan, "10.20.0.2", count=2)
                time.sleep(0.1)
                for f in wg_frames(sniff_drain(sn), WAN_HOST, WG_PORT, DP_WAN, WG_PORT, 4):
                    known.add(struct.unpack("<I", f[42 + 4:42 + 8])[0])
            finally:
                sn.close()
            idx = [0, 0xffffffff, 1]
            while len(idx) < 200:
                i = RNG.randrange(1 << 32)
                if i not in known:
                    idx.append(i)
            msgs = [struct.pack("<IIQ", 4, i, RNG.randrange(1 << 63)) + os.urandom(RNG.randrange(16, 1400))
                    for i in idx]
            msgs += [struct.pack("<II", 3, i) + os.urandom(56) for i in idx[:20]]
            b = h.snap()
            paced_send(to_wg, msgs)
            exp = {"wg:unknown_index": len(msgs)}
            a = h.settle(b, exp)
            h.expect(b, a, exp, where="unknown index")
            h.good_traffic()
            return (f"{len(msgs) - 20} data + 20 cookie replies -> wg_drop unknown_index +{len(msgs)} "
                    f"(live index(es) avoided: {len(known)}); ping 5/5")

        # ---- 4: replayed / forged data --------------------------------------
        @case("4 replayed wireguard-go data frames (same and spoofed source), forged counters")
        def _():
            sn = sniff_open(wan, "wr0")
            b0 = h.snap()
            try:
                got, out = ping(lan, "10.20.0.2", count=10)
                time.sleep(0.2)
                cap = wg_frames(sniff_drain(sn), WAN_HOST, WG_PORT, DP_WAN, WG_PORT, 4)
            finally:
                sn.close()
            a0 = h.snap()
            assert got == 10, f"ping while sniffing {got}/10"
            assert len(cap) >= 10, f"only {len(cap)} data frames captured"
            dec = a0["decrypted"] - b0["decrypted"]
            assert dec == len(cap), f"decrypted +{dec} but {len(cap)} data frames captured on wr0"
            ep0 = a0["peer0.endpoint"]

            icmp0 = icmp_counters(lan)
            b = h.snap()
            paced_send(raw_eth.send, cap, every=8)
            exp = {"wg:replay": len(cap)}
            a = h.settle(b, exp)
            h.expect(b, a, exp, where="exact replay")
            d = deltas(b, a)
            icmp1 = icmp_counters(lan)
            assert d.get("decrypted", 0) == 0, f"replayed frames decrypted: +{d.get('decrypted')}"
            assert icmp1["InEchoReps"] == icmp0["InEchoReps"], \
                f"lan host got {icmp1['InEchoReps'] - icmp0['InEchoReps']} echo replies from replays"

            # Same frames from another address: a replay must not move the endpoint.
            spoofed = [rewrite_frame(f, src=SPOOF_SRC, sport=40001) for f in cap]
            b = h.snap()
            paced_send(raw_eth.send, spoofed, every=8)
            a = h.settle(b, exp)
            h.expect(b, a, exp, where="replay from a spoofed source")
            assert a["peer0.endpoint"] == ep0, f"endpoint moved {ep0} -> {a['peer0.endpoint']} by a replay"

            # Forged: a live index with fresh counters (tag cannot verify), from
            # a spoofed source; one far ahead (would poison the window if it
            # were updated before authentication), and counters at/over the limit.
            f = cap[-1]
            wg = f[42:42 + struct.unpack("!H", f[38:40])[0] - 8]
            rx_index = struct.unpack("<I", wg[4:8])[0]
            ctr = struct.unpack("<Q", wg[8:16])[0]
            forged_auth = []
            for c in (ctr + 1, ctr + 2, ctr + 100000, 1 << 60, (1 << 64) - (1 << 13) - 2):
                forged_auth.append(struct.pack("<IIQ", 4, rx_index, c) + wg[16:])
            flipped = bytearray(wg)
            flipped[8:16] = struct.pack("<Q", ctr + 3)
            flipped[20] ^= 1
            forged_auth.append(bytes(flipped))
            forged_limit = [struct.pack("<IIQ", 4, rx_index, c) + wg[16:]
                            for c in ((1 << 64) - (1 << 13) - 1, (1 << 64) - 1)]
            b = h.snap()
            for m in forged_auth + forged_limit:
                raw_eth.send(rewrite_frame(f, src=SPOOF_SRC, sport=40002, wg=m))
                time.sleep(0.002)
            exp2 = {"wg:data_auth": len(forged_auth), "wg:replay": len(forged_limit)}
            a = h.settle(b, exp2)
            h.expect(b, a, exp2, where="forged data")
            assert a["peer0.endpoint"] == ep0, f"endpoint moved {ep0} -> {a['peer0.endpoint']} by forged data"
            b = h.snap()
            h.good_traffic()
            a = h.snap()
            h.expect(b, a, {}, where="traffic after forged counters")
            return (f"{len(cap)} captured frames replayed twice -> wg_drop replay +{len(cap)} each, "
                    f"decrypted +0, lan InEchoReps +0, endpoint stays {ep0}; forged: data_auth "
                    f"+{len(forged_auth)}, replay +{len(forged_limit)} (counter >= limit); ping 5/5 after")

        # ---- 5: wrong keys ----------------------------------------------------
        @case("5 handshakes with wrong keys / MACs / points / peers, replayed initiations")
        def _():
            msgs = [bytes([1, 0, 0, 0]) + os.urandom(144) for _ in range(100)]
            msgs += [bytes([2, 0, 0, 0]) + os.urandom(88) for _ in range(50)]
            b = h.snap()
            paced_send(to_wg, msgs, every=4, pause=0.003)
            exp = {"wg:bad_mac1": len(msgs)}
            a = h.settle(b, exp)
            h.expect(b, a, exp, where="random handshakes", allow=("drop:handshake_queue_full",))
            hsin = a["handshakes_in"] - b["handshakes_in"]
            details = [f"150 random initiations/responses -> bad_mac1 +150 (handshakes_in +{hsin})"]
            time.sleep(1.3)  # past the load detector's 1 s hold

            def one_by_one(ms, s=None):
                for m in ms:
                    to_wg(m, s)
                    time.sleep(0.03)

            # Valid mac1 (anyone can compute it from our public key), garbage inside.
            rnd = [with_mac1(bytes([1, 0, 0, 0]) + os.urandom(144), dp_pub) for _ in range(5)]
            low_order = [b"\0" * 32, (1).to_bytes(32, "little"), bytes.fromhex(
                "e0eb7a7c3b41b8ae1656e3faf19fc46ada098deb9c32b1fd866205165f49b800")]
            for p in low_order:
                assert x25519(os.urandom(32), p) == b"\0" * 32
            low = [with_mac1(struct.pack("<II", 1, RNG.randrange(1 << 32)) + p + os.urandom(108), dp_pub)
                   for p in low_order]
            resp = [with_mac1(struct.pack("<III", 2, RNG.randrange(1 << 32), RNG.randrange(1 << 32)) +
                              os.urandom(80), dp_pub) for _ in range(3)]
            stranger_priv = os.urandom(32)
            now = time.time_ns()
            stranger = [noise_initiation(RNG.randrange(1 << 32), stranger_priv, x25519_base(stranger_priv),
                                         dp_pub, tai64n(now // 10**9, i)) for i in range(3)]
            b = h.snap()
            one_by_one(rnd + low + resp + stranger)
            exp = {"wg:handshake_decrypt": 5, "wg:low_order_point": 3, "wg:unknown_index": 3,
                   "wg:unknown_peer": 3}
            a = h.settle(b, exp)
            h.expect(b, a, exp, where="valid mac1, wrong contents")
            details.append("valid-mac1 junk: handshake_decrypt +5, low_order_point +3, "
                           "unknown_index +3 (responses), unknown_peer +3 (real Noise, unknown static)")

            # The python peer (configured): one valid initiation, 5 more within
            # 20 ms (initiation_flood), then the first one again (stale_timestamp).
            ps = udp_sock(PY_PEER_ADDR)
            ps.settimeout(3)
            now = time.time_ns()
            inits = [noise_initiation(0x1000 + i, py_priv, py_pub, dp_pub, tai64n(now // 10**9, 1000 * i))
                     for i in range(6)]
            time.sleep(1.1)
            b = h.snap()
            for m in inits:
                to_wg(m, ps)
            responses = []
            ps.settimeout(0.5)
            try:
                while True:
                    responses.append(ps.recvfrom(2048)[0])
            except socket.timeout:
                pass
            assert responses, "no response to the python peer's initiation"
            r = responses[0]
            assert len(r) == 92 and r[0] == 2 and struct.unpack("<I", r[8:12])[0] == 0x1000, \
                f"not a response to the python peer's first initiation: {r[:12].hex()}"
            assert r[60:76] == mac1(r[:60], py_pub), "response mac1 invalid for the python peer"
            to_wg(inits[0], ps)
            # Initiations 2..6 follow within well under 20 ms; one that this
            # process was too slow to send in time is (rightly) answered.
            n_resp = len(responses)
            exp = {"wg:initiation_flood": 6 - n_resp, "wg:stale_timestamp": 1}
            a = h.settle(b, exp)
            h.expect(b, a, exp, where="python peer flood/replay")
            assert n_resp <= 2, f"{n_resp} of 6 initiations within a few ms were answered"
            ps.settimeout(0.3)
            try:
                extra = ps.recvfrom(2048)[0]
                raise AssertionError(f"answered a replayed initiation: {extra[:12].hex()}")
            except socket.timeout:
                pass
            details.append(f"python peer: 6 initiations back to back -> {n_resp} answered (92 B response, "
                           f"mac1 ok), initiation_flood +{6 - n_resp}; first replayed -> stale_timestamp +1")

            # wireguard-go's own initiation, captured at the start, replayed
            # (same source, then a spoofed one): stale, no new session.
            b = h.snap()
            for f in captured_init:
                raw_eth.send(f)
                time.sleep(0.03)
            for f in captured_init:
                raw_eth.send(rewrite_frame(f, src=SPOOF_SRC, sport=40003))
                time.sleep(0.03)
            exp = {"wg:stale_timestamp": 2 * len(captured_init)}
            a = h.settle(b, exp)
            h.expect(b, a, exp, where="replayed wireguard-go initiation")
            assert a["peer0.handshakes"] == b["peer0.handshakes"], "a replayed initiation completed a handshake"
            assert a["peer0.endpoint"] == b["peer0.endpoint"], \
                f"endpoint moved to {a['peer0.endpoint']} by a replayed initiation"
            h.good_traffic()
            details.append(f"wireguard-go initiation replayed x{2 * len(captured_init)} -> stale_timestamp "
                           f"+{2 * len(captured_init)}, endpoint/handshakes unchanged; ping 5/5")
            return "; ".join(details)

        # ---- 6: inner source outside the peer's allowed IPs -----------------
        @case("6 wireguard-go sends inner sources outside its allowed IPs (and TTL 1)")
        def _():
            wgif = t["wgif"]
            for a in ("10.66.0.1/32", "10.30.0.1/32"):
                sh("ip", "addr", "add", a, "dev", wgif, ns=wan)
            with netns(lan):
                ls = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
                ls.bind(("10.10.0.2", 7777))
            socks.append(ls)
            ls.settimeout(0.2)

            def drain(wait):
                got = []
                end = time.monotonic() + wait
                while time.monotonic() < end:
                    try:
                        got.append(ls.recvfrom(2048))
                    except socket.timeout:
                        pass
                return got

            def send_from(src, n, ttl=None):
                with netns(wan):
                    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
                    s.bind((src, 0))
                with s:
                    if ttl:
                        s.setsockopt(socket.IPPROTO_IP, socket.IP_TTL, ttl)
                    for i in range(n):
                        s.sendto(f"from {src} #{i}".encode(), ("10.10.0.2", 7777))
                        time.sleep(0.01)

            b = h.snap()
            send_from("10.20.0.1", 3)  # control: allowed source arrives
            ctrl = drain(1.0)
            a = h.snap()
            assert len(ctrl) == 3, f"control: {len(ctrl)}/3 datagrams from 10.20.0.1 arrived"
            h.expect(b, a, {}, where="control")
            b = h.snap()
            send_from("10.66.0.1", 10)   # in nobody's allowed IPs
            send_from("10.30.0.1", 10)   # another peer's (the python peer's) allowed IPs
            send_from("10.20.0.1", 5, ttl=1)
            exp = {"drop:bad_inner_source": 20, "drop:ttl_expired": 5}
            a = h.settle(b, exp)
            leaked = drain(1.5)
            h.expect(b, a, exp, where="inner source")
            assert not leaked, f"LAN host received {len(leaked)}: {[m[1][0] for m in leaked]}"
            dec = a["decrypted"] - b["decrypted"]
            assert dec >= 25, f"decrypted +{dec}: the spoofed packets did not reach the data plane"
            return ("control 3/3 arrive; 10 from 10.66.0.1 + 10 from 10.30.0.1 (python peer's range) "
                    "-> bad_inner_source +20, 5 with TTL 1 -> ttl_expired +5; none arrive at the LAN host")

        # ---- 7: handshake floods with concurrent good traffic -----------------
        def flood(gen, seconds=4.0, cap=400_000, ping_count=40):
            msgs = [gen() for _ in range(2048)]
            fs = udp_sock(WAN_HOST)
            fs.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 1 << 16)
            time.sleep(1.2)
            b = h.snap()
            pinger = subprocess.Popen(["ip", "netns", "exec", lan, "ping", "-c", str(ping_count), "-i", "0.1",
                                       "-W", "2", "10.20.0.2"], stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
            time.sleep(0.15)
            sent = 0
            t0 = time.monotonic()
            dest = (DP_WAN, WG_PORT)
            k = 0
            while sent < cap and time.monotonic() - t0 < seconds:
                for m in msgs[k:k + 256]:
                    fs.sendto(m, dest)
                sent += 256
                k = (k + 256) % len(msgs)
            dt = time.monotonic() - t0
            out = pinger.communicate(timeout=60)[0].decode()
            got = 0
            for line in out.splitlines():
                if "packets transmitted" in line:
                    got = int(line.split(",")[1].split()[0])
            h.alive()
            a = h.settle(b, {}, timeout=1.0)
            d = deltas(b, a)
            replies = 0
            fs.setblocking(False)
            try:
                while True:
                    fs.recv(256)
                    replies += 1
            except BlockingIOError:
                pass
            return dict(sent=sent, dt=dt, got=got, n=ping_count, d=d, replies=replies, out=out)

        @case("7a handshake flood: random 148-byte initiations at full speed, ping concurrently")
        def _():
            r = flood(lambda: bytes([1, 0, 0, 0]) + os.urandom(144))
            d = r["d"]
            counted = d.get("wg:bad_mac1", 0) + d.get("drop:handshake_queue_full", 0)
            rx = d.get("rx:wan0", 0)
            others = {k: v for k, v in d.items() if is_drop(k) and k not in ("wg:bad_mac1", "drop:handshake_queue_full")}
            summary = (f"sent {r['sent']} in {r['dt']:.1f}s ({r['sent'] / r['dt']:.0f}/s); WAN rx +{rx}; "
                       f"bad_mac1 +{d.get('wg:bad_mac1', 0)}, handshake_queue_full "
                       f"+{d.get('drop:handshake_queue_full', 0)}; lost before the data plane "
                       f"{r['sent'] - rx} ({100 * (r['sent'] - rx) / r['sent']:.1f}%); "
                       f"ping {r['got']}/{r['n']} during the flood")
            print("  " + summary, flush=True)
            assert counted > 0 and counted <= r["sent"], summary
            assert 0 <= rx - counted <= 400, f"WAN rx +{rx} but only {counted} counted: {summary}"
            assert not others, f"unexpected drops {fmt(others)}: {summary}"
            assert r["got"] >= 0.8 * r["n"], f"{summary}\n{r['out']}"
            h.good_traffic()
            return summary

        @case("7b handshake flood: valid mac1 (forces the cookie path), ping concurrently")
        def _():
            r = flood(lambda: with_mac1(bytes([1, 0, 0, 0]) + os.urandom(144), dp_pub))
            d = r["d"]
            cookies = d.get("wg:cookie_sent", 0)
            dh = d.get("wg:handshake_decrypt", 0) + d.get("wg:low_order_point", 0)
            hqf = d.get("drop:handshake_queue_full", 0)
            rx = d.get("rx:wan0", 0)
            counted = cookies + dh + hqf
            others = {k: v for k, v in d.items() if is_drop(k) and k not in (
                "wg:cookie_sent", "wg:handshake_decrypt", "wg:low_order_point", "drop:handshake_queue_full",
                "drop:tx_full", "drop:neighbor_pending")}
            summary = (f"sent {r['sent']} in {r['dt']:.1f}s ({r['sent'] / r['dt']:.0f}/s); WAN rx +{rx}; "
                       f"cookie_sent +{cookies}, handshake_decrypt (DH done) +{dh}, handshake_queue_full +{hqf}, "
                       f"tx_full +{d.get('drop:tx_full', 0)}; cookie replies received {r['replies']} "
                       f"(socket buffer 64 KiB); ping {r['got']}/{r['n']} during the flood")
            print("  " + summary, flush=True)
            assert counted > 0, summary
            assert 0 <= rx - counted <= 400, f"WAN rx +{rx} but only {counted} counted: {summary}"
            # Under load every message is either answered with a cookie (no DH)
            # or, once the bounded queue is full, dropped and counted; DH work is
            # done only for the few that arrive before the queue trips cookie mode.
            assert cookies > 0, f"no cookie replies under load: {summary}"
            assert dh <= max(64, 0.01 * counted), f"DH work not avoided under load: {summary}"
            assert not others, f"unexpected drops {fmt(others)}: {summary}"
            assert r["got"] >= 0.8 * r["n"], f"{summary}\n{r['out']}"
            h.good_traffic()
            return summary

        @case("after everything: alive, lan->remote 5/5, remote->lan 5/5")
        def _():
            h.alive()
            got1, o1 = ping(lan, "10.20.0.2", count=5)
            got2, o2 = ping(t["rem"], "10.10.0.2", count=5)
            assert got1 == 5 and got2 == 5, f"lan->remote {got1}/5, remote->lan {got2}/5\n{o1}\n{o2}"
            s = h.snap()
            print("  final counters: " + ", ".join(f"{k}={v}" for k, v in sorted(s.items())
                                                  if is_drop(k) or k in ("decrypted", "encrypted", "handshakes_in")))
            return "5/5 both ways"
    except Exception as e:
        RESULTS.append(("setup", False, str(e), 0))
        print(f"FAIL setup: {e}", flush=True)
        traceback.print_exc()
    finally:
        log = os.path.join(topo.tmp, "dataplane.log")
        if any(not r[1] for r in RESULTS) and os.path.exists(log):
            print("--- data plane log (tail) ---\n" + open(log).read()[-3000:])
        for s in socks:
            s.close()
        topo.cleanup()

    passed = sum(1 for r in RESULTS if r[1])
    failed = len(RESULTS) - passed
    for n in NOTES:
        print(f"NOTE {n}")
    print(f"runtime {time.monotonic() - t_start:.0f}s")
    print(f"{passed} passed, {failed} failed")
    return 0 if failed == 0 and passed > 0 else 1


if __name__ == "__main__":
    sys.exit(main())
