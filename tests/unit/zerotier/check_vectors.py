#!/usr/bin/env python3
"""Recomputes zt_vectors' output with the independent Python implementation.

Usage: check_vectors.py PATH/TO/zt_vectors [--hash]
Every byte the C++ produced (keys, per-packet keys, MACs, ciphertexts, the
HELLO tail, fragments, the World and its signature) is recomputed here from
the same inputs and compared; the C++ output is also parsed and verified.
With --hash the memory-hard address digest is checked too (~15 s here).
"""
import json
import os
import subprocess
import sys

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), '..', '..', 'zerotier'))
import ztref  # noqa: E402

FAILS = []


def check(name, got, want):
    if got != want:
        FAILS.append(name)
        print('FAIL %s\n  c++:    %s\n  python: %s' % (name, got.hex() if isinstance(got, bytes) else got,
                                                      want.hex() if isinstance(want, bytes) else want))


def main():
    args = [sys.argv[1]] + sys.argv[2:]
    v = json.loads(subprocess.check_output(args))
    h = bytes.fromhex

    # Keys from their seeds: X25519 private ‖ Ed25519 seed.
    for who in ('a', 'b', 'u'):
        pub, _ = ztref.Identity.keys_from_seed(h(v[who + '_secret']))
        check(who + ' public key', h(v[who + '_public']), pub)
    a = ztref.Identity(bytes.fromhex('1234567890'), h(v['a_public']), h(v['a_secret']))
    b = ztref.Identity(bytes.fromhex('0abcdef012'), h(v['b_public']), h(v['b_secret']))
    check('key a->b', h(v['key_ab']), a.agree(b.public))
    check('key b->a', h(v['key_ba']), b.agree(a.public))
    key = a.agree(b.public)

    for i, p in enumerate(v['packets']):
        plain, arm = h(p['plain']), h(p['armored'])
        mine = ztref.armor(plain, key, p['encrypt'])
        check('packet %d (len %d, encrypt %s) armored' % (i, len(plain), p['encrypt']), arm, mine)
        check('packet %d mangled key' % i, h(p['mangled_key']), ztref.mangle_key(key, arm))
        back = ztref.dearmor(arm, key)
        check('packet %d dearmors' % i, back is not None, True)
        if back is not None:
            check('packet %d payload' % i, back[27:], plain[27:])
        # A relay bumping the hop count must not break the MAC.
        hopped = bytearray(arm)
        hopped[18] = (hopped[18] & 0xF8) | 3
        check('packet %d survives a hop' % i, ztref.dearmor(bytes(hopped), key) is not None, True)
        forged = bytearray(arm)
        forged[-1] ^= 1
        check('packet %d forgery refused' % i, ztref.dearmor(bytes(forged), key), None)

    cf = v['crypt_field']
    check('crypt_field', h(cf['out']), bytes(ztref.crypt_field(h(cf['plain']), key, cf['start'])))

    frags = [h(x) for x in v['fragments']]
    head, rest = frags[0], frags[1:]
    check('head flagged fragmented', bool(head[18] & 0x40), True)
    whole = head + b''.join(f[16:] for f in rest)
    for n, f in enumerate(rest, 1):
        check('fragment %d indicator' % n, f[13], 0xFF)
        check('fragment %d count' % n, f[14], (len(frags) << 4) | n)
        check('fragment %d dest' % n, f[8:13], head[8:13])
    dec = ztref.dearmor(whole, key)
    check('reassembled fragments dearmor', dec is not None, True)
    if dec:
        check('reassembled payload', dec[28:], bytes(i & 0xFF for i in range(1500)))

    wb = h(v['world'])
    w = ztref.parse_world(wb)
    check('world parses whole', w['size'], len(wb))
    roots = [(r.serialize(), eps) for r, eps in w['roots']]
    check('world type', w['type'], 0x7F)
    check('world id', w['id'], 0x1234567890)
    check('world endpoints', [eps for _, eps in roots], [[('192.0.2.1', 9993), ('2001:db8::1', 9993)]])
    msg = ztref.world_signed_message(w['type'], w['id'], w['timestamp'], w['update_key'], roots)
    check('world signed message', h(v['world_signed_message']), msg)
    check('world signature verifies', ztref.Identity.verify(w['update_key'], msg, w['signature']), True)
    u = ztref.Identity(b'\0' * 5, h(v['u_public']), h(v['u_secret']))
    check('world signature bytes (Ed25519 is deterministic)', w['signature'], u.sign(msg))
    check('world re-serialized', ztref.world_bytes(w['type'], w['id'], w['timestamp'], w['update_key'], roots,
                                                  w['signature']), wb)
    check('identity text', v['a_identity_text'], a.to_string(secret=True))

    if '--hash' in sys.argv:
        check('memory-hard digest', h(v['a_digest']), ztref.memory_hard_digest(a.public))

    if FAILS:
        print('%d mismatches' % len(FAILS))
        return 1
    print('all vectors match (%d packets)' % len(v['packets']))
    return 0


if __name__ == '__main__':
    sys.exit(main())
