#!/usr/bin/env python3
"""The moon end to end, with an independent Python client (suite e2e).

Two hosts of the same moon, the same cases: moongate-moon (its own UDP
socket, counters from its --stats file) and, with --relay, moongate-relay
--moon-config (the moon on shard 0 of a 2-shard relay, counters from
/debug/varz; DERP and STUN checked on the same relay during the HELLO
flood, and the relay's refusal of a World that does not list the moon).
The moon runs on 127.0.0.1 (ephemeral port) with an identity and World
made by `moongatectl moon`; the clients are tests/zerotier/ztref.py (pure
Python Salsa20/12 and Poly1305, PyNaCl for X25519/Ed25519) with identities
that ztref.py generated itself (tests/zerotier/identities.txt). Checked
(the protocol cases are moon_cases.py's, which test_moon_dataplane.py
runs against the moon in the data plane too):
  - HELLO -> OK(HELLO) (echoed timestamp, surface address, the World when
    the client orbits with an older one, its signature verified here);
  - WHOIS -> OK with the identities; ECHO -> OK;
  - A -> B relayed with one more hop and the MAC intact, RENDEZVOUS to
    both with each other's address; the hop limit; a fragmented packet
    relayed piece by piece and reassembled at B;
  - MULTICAST_LIKE then MULTICAST_GATHER -> OK with the member;
  - operator errors (moongatectl moon, moongate-moon --config) are clear;
  - forged MACs and an identity collision refused (ERROR 0x04 to the
    thief, the real identity kept);
  - a flood of HELLOs from fresh identities on many source addresses does
    not starve known clients, and the drops show in the counters.
Non-events ("nothing relayed") are checked by ordering: a marker sent after
the packet must be the next thing to arrive. No root needed; nothing but
the moon process and a temp dir is created, and both go away at the end.

Usage: test_moon.py PATH/TO/moongate-moon PATH/TO/moongatectl [--relay PATH/TO/moongate-relay]
"""
import os
import shutil
import socket
import struct
import subprocess
import sys
import tempfile
import threading
import time
import traceback

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, '..', 'zerotier'))
import ztref  # noqa: E402
from ztref import Identity  # noqa: E402
from relay_util import Relay  # noqa: E402
from derp_client import DerpClient  # noqa: E402
import moon_cases  # noqa: E402

RESULTS = []
MOON = [None]


def case(fn):
    t0 = time.monotonic()
    try:
        detail = fn()
        RESULTS.append((fn.__name__, True))
        print('PASS %s (%.1fs) %s' % (fn.__name__, time.monotonic() - t0, detail or ''), flush=True)
    except Exception:
        RESULTS.append((fn.__name__, False))
        print('FAIL %s\n%s' % (fn.__name__, traceback.format_exc()), flush=True)
        if MOON[0]:
            print('moon counters: %s' % MOON[0].stats(), flush=True)


def wait_for(cond, what, timeout=10.0):
    """Polls cond() until true; fails after timeout (bounded, not a sleep)."""
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        v = cond()
        if v:
            return v
        time.sleep(0.02)
    raise AssertionError('timed out waiting for ' + what)


class Moon:
    """moongate-moon; `settings` are given as flags (they override the file)."""
    host = 'moongate-moon'

    def __init__(self, moon_bin, ctl_bin, tmp, settings=()):
        self.tmp = tmp
        sec = os.path.join(tmp, 'identity.secret')
        if not os.path.exists(sec):
            subprocess.check_call([ctl_bin, 'moon', 'identity', sec], stdout=subprocess.DEVNULL)
            with open(os.path.join(tmp, 'moon.yaml'), 'w') as f:
                f.write(subprocess.check_output([ctl_bin, 'moon', 'init', sec, '127.0.0.1/9993'], text=True))
            out = subprocess.check_output([ctl_bin, 'moon', 'gen', os.path.join(tmp, 'moon.yaml'), tmp], text=True)
            self.world_path = out.strip()
        else:
            self.world_path = [os.path.join(tmp, n) for n in os.listdir(tmp) if n.endswith('.moon')][0]
        with open(sec) as f:
            self.identity = Identity.from_string(f.read())
        with open(self.world_path, 'rb') as f:
            self.world_bytes = f.read()
        self.world = ztref.parse_world(self.world_bytes)
        self.stats_path = os.path.join(tmp, 'stats')
        if os.path.exists(self.stats_path):
            os.unlink(self.stats_path)
        # Settings from a `moon:` YAML file (paths relative to it); flags add to it.
        self.config_path = os.path.join(tmp, 'moongate-moon.yaml')
        with open(self.config_path, 'w') as f:
            f.write('moon:\n  identity: identity.secret\n  world: %s\n  listen: 127.0.0.1/0\n  stats: stats\n'
                    % os.path.basename(self.world_path))
        self.start(moon_bin, settings)

    def start(self, moon_bin, settings):
        extra = []
        for k, v in settings:
            extra += ['--' + k.replace('_', '-'), v]
        self.proc = subprocess.Popen([moon_bin, '--config', self.config_path] + extra,
                                     stdout=subprocess.PIPE, text=True)
        line = self.proc.stdout.readline()
        assert 'serving world' in line, line
        self.port = int(line.split()[-1])
        self.addr = ('127.0.0.1', self.port)

    def stats(self):
        try:
            with open(self.stats_path) as f:
                return {k: int(v) for k, v in (ln.split() for ln in f if ln.strip())}
        except (FileNotFoundError, ValueError):
            return {}

    def wait_stat(self, name, pred, timeout=10.0):
        return wait_for(lambda: pred(self.stats().get(name, 0)) and self.stats(), '%s to satisfy the condition (now %s)'
                        % (name, self.stats().get(name)), timeout)

    def stop(self):
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()


class RelayMoon(Moon):
    """The same moon hosted by moongate-relay (2 shards, plain DERP, STUN on an
    ephemeral port); `settings` go into the moon's YAML file, which the relay
    reads with --moon-config."""
    host = 'moongate-relay'

    def start(self, relay_bin, settings):
        with open(self.config_path, 'w') as f:
            f.write('moon:\n  identity: identity.secret\n  world: %s\n  listen: 127.0.0.1/0\n'
                    % os.path.basename(self.world_path))
            for k, v in settings:
                f.write('  %s: %s\n' % (k, v))
        self.relay = Relay(relay_bin, '--moon-config', self.config_path, shards=2)
        out = self.relay.output()
        assert 'moon %s serving world %016x' % (self.identity.address.hex(), self.world['id']) in out, out
        self.port = int(out.split('moon udp port ')[1].split()[0])
        self.addr = ('127.0.0.1', self.port)

    def stats(self):
        """The moongate_moon_* lines of /debug/varz, named as in --stats."""
        try:
            v = self.relay.varz()
        except OSError:
            return {}
        st = {}
        for k, val in v.items():
            if k.startswith('moongate_moon_'):
                k = k[len('moongate_moon_'):]
                st[k[:-len('_total')] if k.endswith('_total') else k] = val
        return st

    def stop(self):
        self.relay.stop()


def stun_binding(port):
    """A plain RFC 5389 binding request to the relay's STUN port; returns
    the response (checked: a success with our transaction id)."""
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    try:
        s.settimeout(5)
        tx = os.urandom(12)
        s.sendto(struct.pack('>HHI', 0x0001, 0, 0x2112A442) + tx, ('127.0.0.1', port))
        resp, _ = s.recvfrom(2048)
        assert resp[:2] == b'\x01\x01' and resp[8:20] == tx, resp.hex()
        return resp
    finally:
        s.close()


class Client:
    def __init__(self, ident, moon, bind_ip='127.0.0.1'):
        self.id = ident
        self.moon = moon
        self.key = ident.agree(moon.identity.public)
        # Any address of either family (test_moon_dataplane.py reuses this
        # client from another namespace, over IPv4 and IPv6).
        self.ip = bind_ip
        self.sock = socket.socket(socket.AF_INET6 if ':' in bind_ip else socket.AF_INET, socket.SOCK_DGRAM)
        self.sock.bind((bind_ip, 0))
        self.port = self.sock.getsockname()[1]

    def close(self):
        self.sock.close()

    def send(self, b):
        self.sock.sendto(bytes(b), self.moon.addr)

    def recv(self, timeout=5.0):
        self.sock.settimeout(timeout)
        data, _ = self.sock.recvfrom(65535)
        return data

    def hello_packet(self, pid, ts, moons=()):
        p = ztref.packet(self.moon.identity.address, self.id.address, ztref.VERB_HELLO, b'', pid)
        p += bytes([11, 1, 14]) + struct.pack('>HQ', 2, ts) + self.id.serialize()
        p += ztref.inet(self.moon.addr[0], self.moon.port) + struct.pack('>QQ', 0x8056c2e21c000001, 1)
        start = len(p)
        p += struct.pack('>H', len(moons))
        for wid, wts in moons:
            p += bytes([0x7F]) + struct.pack('>QQ', wid, wts)
        p = ztref.crypt_field(p, self.key, start)
        return ztref.armor(p, self.key, False)

    def to_moon(self, verb, payload, pid):
        return ztref.armor(ztref.packet(self.moon.identity.address, self.id.address, verb, payload, pid), self.key,
                           True)

    def open(self, data):
        """Dearmours a packet from the moon; asserts it authenticates."""
        assert data[13] != 0xFF, 'a fragment'
        assert data[8:13] == self.id.address, 'not addressed to us'
        p = ztref.dearmor(data, self.key)
        assert p is not None, 'MAC from the moon does not verify'
        return p

    def expect_ok(self, in_re_verb, pid, timeout=5.0):
        p = self.open(self.recv(timeout))
        assert p[27] & 0x1F == ztref.VERB_OK, 'verb %d' % p[27]
        assert p[28] == in_re_verb and p[29:37] == pid, 'in-re %d %s' % (p[28], p[29:37].hex())
        return p[37:]

    def hello(self, moons=()):
        pid = os.urandom(8)
        ts = int(time.time() * 1000)  # the client's clock, as zerotier-one sends it
        self.send(self.hello_packet(pid, ts, moons))
        body = self.expect_ok(ztref.VERB_HELLO, pid)
        assert struct.unpack('>Q', body[:8])[0] == ts, 'timestamp echo'
        assert body[8] >= 4, 'protocol %d' % body[8]
        surface, used = ztref.parse_inet(body[13:])
        assert surface == (self.ip, self.port), surface
        wl = struct.unpack('>H', body[13 + used:15 + used])[0]
        return body[15 + used:15 + used + wl]


def load_identities():
    ids = []
    with open(os.path.join(HERE, '..', 'zerotier', 'identities.txt')) as f:
        for line in f:
            if line.strip() and not line.startswith('#'):
                ids.append(Identity.from_string(line))
    return ids


def main():
    args = sys.argv[1:]
    relay_bin = None
    if len(args) == 4 and args[2] == '--relay':
        relay_bin = args[3]
        args = args[:2]
    if len(args) != 2:
        print(__doc__)
        return 2
    moon_bin, ctl_bin = args
    ids = load_identities()
    tmp = tempfile.mkdtemp(prefix='hz-moon-' if relay_bin is None else 'hr-moon-')
    while len(ids) < 2:
        # Generating in pure Python takes minutes; let moongatectl make one
        # and check its address with the Python hash instead (~15 s).
        path = os.path.join(tmp, 'client%d.secret' % len(ids))
        subprocess.check_call([ctl_bin, 'moon', 'identity', path], stdout=subprocess.DEVNULL)
        with open(path) as f:
            ident = Identity.from_string(f.read())
        addr, ok = ztref.address_of(ident.public)
        assert ok and addr == ident.address, 'moongatectl made an identity the Python hash refuses'
        print('client identity %s from moongatectl, address checked by ztref' % ident.address.hex(), flush=True)
        ids.append(ident)
    moon = None
    clients = []
    try:
        settings = [('verify_per_second', '5'), ('verify_burst', '5')]
        if relay_bin:
            moon = RelayMoon(relay_bin, ctl_bin, tmp, settings)
        else:
            moon = Moon(moon_bin, ctl_bin, tmp, settings)
        print('host: %s, moon on udp port %d' % (moon.host, moon.port), flush=True)
        MOON[0] = moon
        a = Client(ids[0], moon)
        b = Client(ids[1], moon)
        clients += [a, b]

        def hello_flood_does_not_starve():
            s0 = moon.stats()
            stop = threading.Event()
            sent = [0]

            def flood():
                socks = []
                for i in range(2, 42):  # 40 source addresses on lo
                    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
                    s.bind(('127.0.0.%d' % i, 0))
                    socks.append(s)
                try:
                    while not stop.is_set():
                        c = Client.__new__(Client)
                        c.id = Identity.unchecked()
                        c.moon = moon
                        c.key = c.id.agree(moon.identity.public)
                        socks[sent[0] % len(socks)].sendto(c.hello_packet(os.urandom(8), 1), moon.addr)
                        sent[0] += 1
                finally:
                    for s in socks:
                        s.close()

            t = threading.Thread(target=flood)
            t0 = time.monotonic()
            t.start()
            answered = 0
            others = ''
            try:
                wait_for(lambda: sent[0] >= 50, 'the flood to start')
                if relay_bin:
                    # The relay's other services on the same process, mid-flood:
                    # one DERP exchange between two clients, one STUN binding.
                    d1 = DerpClient('127.0.0.1', moon.relay.port)
                    d2 = DerpClient('127.0.0.1', moon.relay.port)
                    try:
                        data = os.urandom(500)
                        d1.send_packet(d2.pub, data)
                        src, got = d2.recv_packet()
                        assert src == d1.pub and got == data, 'DERP packet mangled during the flood'
                    finally:
                        d1.close()
                        d2.close()
                    stun_binding(moon.relay.stun_port)
                    others = '; DERP and STUN answered during the flood'

                # Known clients ask throughout: at least 40 answers and at
                # least 1000 fresh HELLOs (or 5 s of flood).
                i = 0
                while i < 40 or (sent[0] < 1000 and time.monotonic() - t0 < 5):
                    pid = os.urandom(8)
                    c = a if i % 2 else b
                    c.send(c.to_moon(ztref.VERB_ECHO, b'still here', pid))
                    assert c.expect_ok(ztref.VERB_ECHO, pid, timeout=3.0) == b'still here'
                    answered += 1
                    if i % 10 == 0:
                        c.hello()
                    i += 1
            finally:
                stop.set()
                t.join()
            elapsed = time.monotonic() - t0
            # Every fresh HELLO ends in exactly one of these counters.
            fates = ('drop_hello_rate_limited', 'hello_deferred', 'drop_hello_deferred_full', 'rx_fragments',
                     'drop_malformed')

            def accounted():
                st = moon.stats()
                done = st and sum(st[k] - s0[k] for k in fates) >= sent[0]
                # ... and the worker finished every hash it was given.
                return st if done and (st['drop_identity_invalid'] - s0['drop_identity_invalid']
                                       >= st['hello_deferred'] - s0['hello_deferred']) else None
            s = wait_for(accounted, 'the moon to account for every fresh HELLO')
            d = {k: s[k] - s0[k] for k in fates + ('drop_identity_invalid',)}
            checked, limited = d['hello_deferred'], d['drop_hello_rate_limited']
            # Budget: burst 5 + 5/s; every checked identity was refused.
            assert checked <= 5 + 5 * (elapsed + 1), (checked, elapsed)
            assert d['drop_identity_invalid'] == checked, d
            assert sum(d[k] for k in fates) == sent[0], (d, sent[0])
            assert limited >= sent[0] - checked - d['rx_fragments'] - d['drop_hello_deferred_full'], d
            assert s['hello_new_identity'] == s0['hello_new_identity']
            return '%d fresh HELLOs in %.1fs: %d verified, %d rate-limited; known clients: %d/%d answered%s' % (
                sent[0], elapsed, checked, limited, answered, answered, others)

        def operator_errors_are_clear():
            def run(args):
                r = subprocess.run(args, capture_output=True, text=True)
                return r.returncode, r.stderr
            sec = os.path.join(tmp, 'identity.secret')
            rc, err = run([ctl_bin, 'moon', 'identity', sec])
            assert rc == 1 and 'File exists' in err, (rc, err)
            with open(os.path.join(tmp, 'moon.yaml')) as f:
                y = f.read()
            bad = os.path.join(tmp, 'bad.yaml')
            line = [ln for ln in y.splitlines() if ln.startswith('signing_key_secret:')][0]
            digit = line[-1]
            with open(bad, 'w') as f:
                f.write(y.replace(line, line[:-1] + ('0' if digit != '0' else '1')))
            rc, err = run([ctl_bin, 'moon', 'gen', bad, tmp])
            assert rc == 1 and "signing_key_secret is not signing_key's secret" in err, (rc, err)
            with open(bad, 'w') as f:
                f.write(y.replace('127.0.0.1/9993', '127.0.0.1'))
            rc, err = run([ctl_bin, 'moon', 'gen', bad, tmp])
            assert rc == 1 and 'stable_endpoints: 127.0.0.1: expected IP/PORT' in err, (rc, err)
            tampered = os.path.join(tmp, 'tampered.moon')
            w = bytearray(moon.world_bytes)
            w[12] ^= 1  # inside the timestamp
            with open(tampered, 'wb') as f:
                f.write(w)
            rc, err = run([ctl_bin, 'moon', 'show', tampered])
            assert rc == 1 and 'signature does not verify' in err, (rc, err)
            rc, err = run([moon_bin, '--identity', sec, '--world', tampered, '--listen', '127.0.0.1/0'])
            assert rc == 1 and 'signature does not verify' in err, (rc, err)
            other = os.path.join(tmp, 'other.secret')
            subprocess.check_call([ctl_bin, 'moon', 'identity', other], stdout=subprocess.DEVNULL)
            rc, err = run([moon_bin, '--identity', other, '--world', moon.world_path, '--listen', '127.0.0.1/0'])
            assert rc == 1 and 'is not a root of the World' in err, (rc, err)
            with open(bad, 'w') as f:
                f.write('moon:\n  identity: identity.secret\n  bogus: 1\n  max_hops: 9\n')
            rc, err = run([moon_bin, '--config', bad])
            assert rc == 1 and 'bad.yaml:3:10: moon.bogus: unknown setting' in err, (rc, err)
            assert 'bad.yaml:4:13: moon.max_hops: unknown setting or value out of range' in err, err
            out = subprocess.check_output([ctl_bin, 'moon', 'show', moon.world_path], text=True)
            assert 'signature: valid' in out and moon.identity.address.hex() in out, out
            if relay_bin:
                # The relay refuses the same mistakes, with the same messages.
                relay = [relay_bin, '--addr', '127.0.0.1:0', '--plain', '--stun-port', '-1', '--moon-config']
                rc, err = run(relay + [bad])
                assert rc == 1 and 'bad.yaml:3:10: moon.bogus: unknown setting' in err, (rc, err)
                with open(bad, 'w') as f:
                    f.write('moon:\n  identity: other.secret\n  world: %s\n  listen: 127.0.0.1/0\n'
                            % os.path.basename(moon.world_path))
                rc, err = run(relay + [bad])
                assert rc == 1 and 'is not a root of the World' in err, (rc, err)
                with open(bad, 'w') as f:
                    f.write('moon:\n  identity: identity.secret\n  world: tampered.moon\n')
                rc, err = run(relay + [bad])
                assert rc == 1 and 'signature does not verify' in err, (rc, err)

        shared = moon_cases.cases(a, b, moon, clients, '127.0.0.1', '127.0.0.1',
                                  lambda ident, ip: Client(ident, moon, ip))
        for fn in [operator_errors_are_clear] + shared + [hello_flood_does_not_starve]:
            case(fn)
    finally:
        for c in clients:
            c.close()
        if moon:
            moon.stop()
        shutil.rmtree(tmp, ignore_errors=True)
    failed = [n for n, ok in RESULTS if not ok]
    print('%d passed, %d failed %s' % (len(RESULTS) - len(failed), len(failed), failed))
    return 1 if failed else 0


if __name__ == '__main__':
    sys.exit(main())
