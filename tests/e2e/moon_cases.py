"""The moon's protocol cases, shared by its three hosts (suite e2e).

test_moon.py runs them against moongate-moon and against the moon in
moongate-relay, test_moon_dataplane.py against the moon in
moongate-dataplane: the same checks, so a host cannot quietly answer less
than the others. Each case talks to the moon through two Clients of
test_moon.py (A and B, both unknown to the moon at first, bound to
`client_ip`) and reads the host's counters through `moon.stats()` /
`moon.wait_stat()`. Run them in the order cases() returns them: later ones
rely on the identities the first one introduced.
"""
import os
import socket
import struct
import time

import ztref
from ztref import Identity


def cases(a, b, moon, clients, client_ip, thief_ip, new_client):
    """The shared cases as named functions, in order. `clients` collects
    the Clients a case makes (closed by the caller); `new_client(ident,
    ip)` makes one bound to `ip` on this host's path to the moon."""

    def hello_ok_and_world():
        t0 = time.monotonic()
        # A new identity: answered once the moon has hashed it.
        assert a.hello() == b'', 'World sent to a client that does not orbit us'
        first_ms = (time.monotonic() - t0) * 1000
        w = a.hello(moons=[(moon.world['id'], 0)])
        assert w == moon.world_bytes, 'World in OK(HELLO) differs from the .moon file'
        pw = ztref.parse_world(w)
        roots = [(r.serialize(), eps) for r, eps in pw['roots']]
        msg = ztref.world_signed_message(pw['type'], pw['id'], pw['timestamp'], pw['update_key'], roots)
        assert Identity.verify(pw['update_key'], msg, pw['signature']), 'World signature'
        assert pw['roots'][0][0].address == moon.identity.address
        # Orbiting with the current World: not sent again.
        assert a.hello(moons=[(moon.world['id'], moon.world['timestamp'])]) == b''
        b.hello()
        s = moon.wait_stat('hello_answered', lambda v: v >= 4)
        assert s['hello_new_identity'] == 2 and s['peers'] == 2, s
        return 'world %d bytes; a new identity\'s OK(HELLO) after %.0f ms (hash included)' % (len(w), first_ms)

    def whois_and_echo():
        # B's identity, an unknown address (left out of the answer), ours.
        pid = os.urandom(8)
        a.send(a.to_moon(ztref.VERB_WHOIS, b.id.address + b'\x01\x02\x03\x04\x05' + moon.identity.address, pid))
        body = a.expect_ok(ztref.VERB_WHOIS, pid)
        got, used = Identity.parse(body)
        got2, used2 = Identity.parse(body[used:])
        assert (got.address, got.public) == (b.id.address, b.id.public)
        assert (got2.address, got2.public) == (moon.identity.address, moon.identity.public)
        assert used + used2 == len(body)
        pid = os.urandom(8)
        payload = os.urandom(1000)
        a.send(a.to_moon(ztref.VERB_ECHO, payload, pid))
        assert a.expect_ok(ztref.VERB_ECHO, pid) == payload

    def relay_with_rendezvous():
        key_ab = a.id.agree(b.id.public)
        payload = os.urandom(100)
        a.send(ztref.armor(ztref.packet(b.id.address, a.id.address, ztref.VERB_FRAME, payload), key_ab, True))
        got = {}
        # B gets the packet and a RENDEZVOUS (either order); A a RENDEZVOUS.
        for _ in range(2):
            d = b.recv()
            if d[13:18] == a.id.address:  # from A (relayed), not from the moon
                got['relayed'] = d
            else:
                got['rv_b'] = b.open(d)
        got['rv_a'] = a.open(a.recv())
        r = got['relayed']
        assert r[18] & 7 == 1, 'hops %d' % (r[18] & 7)
        p = ztref.dearmor(r, b.id.agree(a.id.public))
        assert p is not None and p[28:] == payload, 'relayed packet does not authenticate at B'
        for rv, other in ((got['rv_a'], b), (got['rv_b'], a)):
            assert rv[27] & 0x1F == ztref.VERB_RENDEZVOUS
            assert rv[29:34] == other.id.address
            port, alen = struct.unpack('>HB', rv[34:37])
            assert (port, alen, rv[37:41]) == (other.port, 4, socket.inet_aton(client_ip)), rv[28:].hex()
        # Again within 30 s: relayed, no new RENDEZVOUS (B's next datagram
        # is the packet, then the marker; A gets nothing before its echo).
        a.send(ztref.armor(ztref.packet(b.id.address, a.id.address, ztref.VERB_FRAME, b'x'), key_ab, True))
        marker = os.urandom(8)
        a.send(ztref.armor(ztref.packet(b.id.address, a.id.address, ztref.VERB_FRAME, marker), key_ab, True))
        assert ztref.dearmor(b.recv(), b.id.agree(a.id.public))[28:] == b'x'
        assert ztref.dearmor(b.recv(), b.id.agree(a.id.public))[28:] == marker
        pid = os.urandom(8)
        a.send(a.to_moon(ztref.VERB_ECHO, b'm', pid))
        a.expect_ok(ztref.VERB_ECHO, pid)
        s = moon.wait_stat('relayed', lambda v: v >= 3)
        assert s['rendezvous_sent'] == 2, s

    def hop_limit():
        key_ab = a.id.agree(b.id.public)
        before = moon.stats()['drop_hop_limit']
        a.send(ztref.armor(ztref.packet(b.id.address, a.id.address, ztref.VERB_FRAME, b'h3', hops=3), key_ab, True))
        a.send(ztref.armor(ztref.packet(b.id.address, a.id.address, ztref.VERB_FRAME, b'h4', hops=4), key_ab, True))
        a.send(ztref.armor(ztref.packet(b.id.address, a.id.address, ztref.VERB_FRAME, b'h0'), key_ab, True))
        d = b.recv()
        assert d[18] & 7 == 4 and ztref.dearmor(d, key_ab)[28:] == b'h3'
        assert ztref.dearmor(b.recv(), key_ab)[28:] == b'h0', 'the hops=4 packet was relayed'
        moon.wait_stat('drop_hop_limit', lambda v: v == before + 1)

    def forged_macs_refused():
        before = moon.stats()['drop_bad_mac']
        pid = os.urandom(8)
        forged = bytearray(a.to_moon(ztref.VERB_ECHO, b'forged', pid))
        forged[-1] ^= 0x40
        a.send(forged)
        forged_hello = bytearray(b.hello_packet(os.urandom(8), 1))
        forged_hello[40] ^= 1
        b.send(forged_hello)
        # Signed with the wrong key: A's packet MACed with B's moon key.
        wrong = ztref.armor(ztref.packet(moon.identity.address, a.id.address, ztref.VERB_ECHO, b'w', pid), b.key, True)
        a.send(wrong)
        pid2 = os.urandom(8)
        a.send(a.to_moon(ztref.VERB_ECHO, b'good', pid2))
        assert a.expect_ok(ztref.VERB_ECHO, pid2) == b'good', 'a forged packet was answered'
        moon.wait_stat('drop_bad_mac', lambda v: v == before + 3)

    def multicast_like_and_gather():
        nwid = 0x8056c2e21c000001
        group = struct.pack('>Q', nwid) + b'\xff' * 6 + struct.pack('>I', 0x7f000001)
        b.send(b.to_moon(ztref.VERB_MULTICAST_LIKE, group, os.urandom(8)))
        moon.wait_stat('multicast_likes', lambda v: v >= 1)
        pid = os.urandom(8)
        a.send(a.to_moon(ztref.VERB_MULTICAST_GATHER, group + bytes([0]) + struct.pack('>I', 16), pid))
        body = a.expect_ok(ztref.VERB_MULTICAST_GATHER, pid)
        assert body[:18] == group, body.hex()
        total, count = struct.unpack('>IH', body[18:24])
        assert (total, count, body[24:]) == (1, 1, b.id.address), body.hex()

    def fragments_relayed():
        # A 2000-byte packet A -> B in a head and one fragment, as a client
        # splits it; B reassembles what the moon relays.
        key_ab = a.id.agree(b.id.public)
        payload = os.urandom(2000)
        p = bytearray(ztref.packet(b.id.address, a.id.address, ztref.VERB_FRAME, payload))
        p[18] |= ztref.FLAG_FRAGMENTED  # before armouring: it is part of the key
        p = ztref.armor(bytes(p), key_ab, True)
        head, rest = p[:1400], p[1400:]
        a.send(head)
        a.send(p[0:8] + p[8:13] + bytes([0xFF, (2 << 4) | 1, 0]) + rest)
        got = [b.recv(), b.recv()]
        h = [g for g in got if g[13] != 0xFF][0]
        f = [g for g in got if g[13] == 0xFF][0]
        assert h[18] & 7 == 1 and f[15] == 1, 'hops not bumped'
        back = ztref.dearmor(h + f[16:], b.id.agree(a.id.public))
        assert back is not None and back[28:] == payload, 'reassembled relay does not authenticate at B'

    def identity_collision_refused():
        thief = new_client(Identity.unchecked(a.id.address), thief_ip)
        clients.append(thief)
        pid = os.urandom(8)
        thief.send(thief.hello_packet(pid, 1))
        p = thief.open(thief.recv())
        assert p[27] & 0x1F == ztref.VERB_ERROR
        assert p[28] == ztref.VERB_HELLO and p[29:37] == pid and p[37] == 0x04, p[27:].hex()
        pid = os.urandom(8)
        b.send(b.to_moon(ztref.VERB_WHOIS, a.id.address, pid))
        got, _ = Identity.parse(b.expect_ok(ztref.VERB_WHOIS, pid))
        assert got.public == a.id.public, 'the thief replaced the real identity'
        moon.wait_stat('drop_identity_collision', lambda v: v == 1)

    return [hello_ok_and_world, whois_and_echo, relay_with_rendezvous, hop_limit, forged_macs_refused,
            multicast_like_and_gather, fragments_relayed, identity_collision_refused]
