"""An independent reference of the ZeroTier wire formats the moon speaks.

Written from the protocol description (docs/moon.md, the project's
reference notes), not from moongate's C++: the unit tests compare the C++
against it byte for byte, and the e2e tests use it as the client. Salsa20
and Poly1305 are written out here in pure Python; X25519 and Ed25519 come
from PyNaCl (libsodium through a different binding and a different caller).
"""
import hashlib
import os
import struct

import nacl.bindings as nb

MASK32 = 0xFFFFFFFF


def _rotl(v, c):
    return ((v << c) & MASK32) | (v >> (32 - c))


def salsa20_block(key, nonce, counter, rounds):
    """One 64-byte Salsa20 block (key 32 bytes, nonce 8, 64-bit counter)."""
    k = struct.unpack('<8I', key)
    n = struct.unpack('<2I', nonce)
    c = (0x61707865, 0x3320646e, 0x79622d32, 0x6b206574)
    st = [c[0], k[0], k[1], k[2], k[3], c[1], n[0], n[1],
          counter & MASK32, counter >> 32, c[2], k[4], k[5], k[6], k[7], c[3]]
    x = list(st)
    for _ in range(rounds // 2):
        # columns
        x[4] ^= _rotl((x[0] + x[12]) & MASK32, 7); x[8] ^= _rotl((x[4] + x[0]) & MASK32, 9)
        x[12] ^= _rotl((x[8] + x[4]) & MASK32, 13); x[0] ^= _rotl((x[12] + x[8]) & MASK32, 18)
        x[9] ^= _rotl((x[5] + x[1]) & MASK32, 7); x[13] ^= _rotl((x[9] + x[5]) & MASK32, 9)
        x[1] ^= _rotl((x[13] + x[9]) & MASK32, 13); x[5] ^= _rotl((x[1] + x[13]) & MASK32, 18)
        x[14] ^= _rotl((x[10] + x[6]) & MASK32, 7); x[2] ^= _rotl((x[14] + x[10]) & MASK32, 9)
        x[6] ^= _rotl((x[2] + x[14]) & MASK32, 13); x[10] ^= _rotl((x[6] + x[2]) & MASK32, 18)
        x[3] ^= _rotl((x[15] + x[11]) & MASK32, 7); x[7] ^= _rotl((x[3] + x[15]) & MASK32, 9)
        x[11] ^= _rotl((x[7] + x[3]) & MASK32, 13); x[15] ^= _rotl((x[11] + x[7]) & MASK32, 18)
        # rows
        x[1] ^= _rotl((x[0] + x[3]) & MASK32, 7); x[2] ^= _rotl((x[1] + x[0]) & MASK32, 9)
        x[3] ^= _rotl((x[2] + x[1]) & MASK32, 13); x[0] ^= _rotl((x[3] + x[2]) & MASK32, 18)
        x[6] ^= _rotl((x[5] + x[4]) & MASK32, 7); x[7] ^= _rotl((x[6] + x[5]) & MASK32, 9)
        x[4] ^= _rotl((x[7] + x[6]) & MASK32, 13); x[5] ^= _rotl((x[4] + x[7]) & MASK32, 18)
        x[11] ^= _rotl((x[10] + x[9]) & MASK32, 7); x[8] ^= _rotl((x[11] + x[10]) & MASK32, 9)
        x[9] ^= _rotl((x[8] + x[11]) & MASK32, 13); x[10] ^= _rotl((x[9] + x[8]) & MASK32, 18)
        x[12] ^= _rotl((x[15] + x[14]) & MASK32, 7); x[13] ^= _rotl((x[12] + x[15]) & MASK32, 9)
        x[14] ^= _rotl((x[13] + x[12]) & MASK32, 13); x[15] ^= _rotl((x[14] + x[13]) & MASK32, 18)
    return struct.pack('<16I', *[(a + b) & MASK32 for a, b in zip(x, st)])


def salsa20_stream(key, nonce, nbytes, rounds, first_block=0):
    out = bytearray()
    b = first_block
    while len(out) < nbytes:
        out += salsa20_block(key, nonce, b, rounds)
        b += 1
    return bytes(out[:nbytes])


def xor(a, b):
    return bytes(x ^ y for x, y in zip(a, b))


def poly1305(key, msg):
    r = int.from_bytes(key[:16], 'little') & 0x0ffffffc0ffffffc0ffffffc0fffffff
    s = int.from_bytes(key[16:32], 'little')
    p = (1 << 130) - 5
    acc = 0
    for i in range(0, len(msg), 16):
        chunk = msg[i:i + 16] + b'\x01'
        acc = (acc + int.from_bytes(chunk, 'little')) * r % p
    return ((acc + s) & ((1 << 128) - 1)).to_bytes(16, 'little')


# --- identities -----------------------------------------------------------

GEN_MEMORY = 2097152


def memory_hard_digest(pub):
    """The 64-byte digest whose bytes 59..63 are a type-0 identity's address."""
    d = hashlib.sha512(pub).digest()
    key, nonce = d[:32], d[32:40]
    nblocks = GEN_MEMORY // 64
    # Words are kept as big-endian integers of their 8 memory bytes, which
    # makes the "ntoh" index reads plain values; XOR does not care.
    gen = []
    prev = [0] * 8
    for b in range(nblocks):
        ks = salsa20_block(key, nonce, b, 20)
        prev = [p ^ int.from_bytes(ks[8 * j:8 * j + 8], 'big') for j, p in enumerate(prev)]
        gen.extend(prev)
    dw = [int.from_bytes(d[8 * j:8 * j + 8], 'big') for j in range(8)]
    counter = nblocks
    nwords = len(gen)
    for i in range(0, nwords, 2):
        idx1 = gen[i] % 8
        idx2 = gen[i + 1] % nwords
        gen[idx2], dw[idx1] = dw[idx1], gen[idx2]
        ks = salsa20_block(key, nonce, counter, 20)
        counter += 1
        dw = [w ^ int.from_bytes(ks[8 * j:8 * j + 8], 'big') for j, w in enumerate(dw)]
    return b''.join(w.to_bytes(8, 'big') for w in dw)


def address_of(pub):
    """(address bytes, valid) for a 64-byte public key."""
    d = memory_hard_digest(pub)
    addr = d[59:64]
    valid = d[0] < 17 and addr != b'\0' * 5 and addr[0] != 0xFF
    return addr, valid


class Identity:
    """x25519 public ‖ ed25519 public, and the secrets likewise."""

    def __init__(self, address, public, secret=None):
        self.address = address
        self.public = public
        self.secret = secret

    @staticmethod
    def keys_from_seed(seed64):
        xpriv = seed64[:32]
        xpub = nb.crypto_scalarmult_base(xpriv)
        epub, _ = nb.crypto_sign_seed_keypair(seed64[32:])
        return xpub + epub, xpriv + seed64[32:]

    @staticmethod
    def generate():
        while True:
            pub, sec = Identity.keys_from_seed(os.urandom(64))
            addr, ok = address_of(pub)
            if ok:
                return Identity(addr, pub, sec)

    @staticmethod
    def unchecked(address=None):
        """Fresh keys with any address (for floods and collisions)."""
        pub, sec = Identity.keys_from_seed(os.urandom(64))
        return Identity(address or os.urandom(5), pub, sec)

    def to_string(self, secret=False):
        s = '%s:0:%s' % (self.address.hex(), self.public.hex())
        if secret and self.secret:
            s += ':' + self.secret.hex()
        return s

    @staticmethod
    def from_string(s):
        f = s.strip().split(':')
        return Identity(bytes.fromhex(f[0]), bytes.fromhex(f[2]),
                        bytes.fromhex(f[3]) if len(f) > 3 else None)

    def serialize(self):
        return self.address + b'\x00' + self.public + b'\x00'

    @staticmethod
    def parse(b):
        """(Identity, bytes used) from the binary form."""
        if b[5] != 0:
            raise ValueError('identity type')
        sl = b[70]
        return Identity(b[:5], b[6:70], b[71:71 + sl] or None), 71 + sl

    def agree(self, other_public):
        shared = nb.crypto_scalarmult(self.secret[:32], other_public[:32])
        return hashlib.sha512(shared).digest()[:48]

    def sign(self, msg):
        digest = hashlib.sha512(msg).digest()[:32]
        sk = nb.crypto_sign_seed_keypair(self.secret[32:])[1]
        sig = nb.crypto_sign(digest, sk)[:64]
        return sig + digest

    @staticmethod
    def verify(public, msg, sig):
        digest = hashlib.sha512(msg).digest()[:32]
        if len(sig) != 96 or sig[64:] != digest:
            return False
        try:
            nb.crypto_sign_open(sig[:64] + digest, public[32:])
            return True
        except Exception:
            return False


# --- packets ---------------------------------------------------------------

VERB_NOP, VERB_HELLO, VERB_ERROR, VERB_OK, VERB_WHOIS, VERB_RENDEZVOUS = 0, 1, 2, 3, 4, 5
VERB_FRAME, VERB_EXT_FRAME, VERB_ECHO, VERB_MULTICAST_LIKE = 6, 7, 8, 9
VERB_MULTICAST_GATHER = 0x0D
SUITE_POLY1305_NONE, SUITE_POLY1305_SALSA2012 = 0, 1
FLAG_FRAGMENTED = 0x40
FLAG_ENCRYPTED_LEGACY = 0x80


def packet(dest, source, verb, payload, packet_id=None, hops=0):
    """An unarmoured packet (MAC zero, cipher suite unset)."""
    pid = packet_id if packet_id is not None else os.urandom(8)
    if isinstance(pid, int):
        pid = struct.pack('>Q', pid)
    return bytearray(pid + dest + source + bytes([hops & 7]) + b'\0' * 8 + bytes([verb]) + payload)


def mangle_key(key, pkt):
    k = bytearray(key[:32])
    for i in range(18):
        k[i] ^= pkt[i]
    k[18] ^= pkt[18] & 0xF8
    n = len(pkt)
    k[19] ^= n & 0xFF
    k[20] ^= (n >> 8) & 0xFF
    return bytes(k)


def armor(pkt, key, encrypt):
    pkt = bytearray(pkt)
    suite = SUITE_POLY1305_SALSA2012 if encrypt else SUITE_POLY1305_NONE
    flags = (pkt[18] & 0x47) | (suite << 3)
    if encrypt:
        flags |= FLAG_ENCRYPTED_LEGACY
    pkt[18] = flags
    mk = mangle_key(key, pkt)
    body_len = len(pkt) - 27
    ks = salsa20_stream(mk, bytes(pkt[0:8]), 64 + body_len, 12)
    if encrypt:
        pkt[27:] = xor(pkt[27:], ks[64:])
    mac = poly1305(ks[:32], bytes(pkt[27:]))
    pkt[19:27] = mac[:8]
    return bytes(pkt)


def dearmor(pkt, key):
    """The packet with payload in clear, or None when the MAC is wrong."""
    pkt = bytearray(pkt)
    suite = (pkt[18] >> 3) & 7
    if suite not in (0, 1):
        return None
    mk = mangle_key(key, pkt)
    body_len = len(pkt) - 27
    ks = salsa20_stream(mk, bytes(pkt[0:8]), 64 + body_len, 12)
    if poly1305(ks[:32], bytes(pkt[27:]))[:8] != bytes(pkt[19:27]):
        return None
    if suite == 1:
        pkt[27:] = xor(pkt[27:], ks[64:])
    return bytes(pkt)


def crypt_field(pkt, key, start):
    """HELLO's encrypted tail: Salsa20/12 with the plain key, IV = id & ~7."""
    pkt = bytearray(pkt)
    iv = bytearray(pkt[0:8])
    iv[7] &= 0xF8
    ks = salsa20_stream(bytes(key[:32]), bytes(iv), len(pkt) - start, 12)
    pkt[start:] = xor(pkt[start:], ks)
    return pkt


def inet(ip, port):
    import ipaddress
    a = ipaddress.ip_address(ip)
    return bytes([4 if a.version == 4 else 6]) + a.packed + struct.pack('>H', port)


def parse_inet(b):
    """((ip text, port) or None, bytes used)."""
    import ipaddress
    t = b[0]
    if t == 0:
        return None, 1
    if t == 4:
        return (str(ipaddress.ip_address(b[1:5])), struct.unpack('>H', b[5:7])[0]), 7
    if t == 6:
        return (str(ipaddress.ip_address(b[1:17])), struct.unpack('>H', b[17:19])[0]), 19
    raise ValueError('address type %d' % t)


# --- worlds ----------------------------------------------------------------

def world_bytes(wtype, wid, ts, update_key, roots, signature=None):
    """roots: [(identity public bytes (71), [(ip, port), ...])]."""
    b = bytes([wtype]) + struct.pack('>QQ', wid, ts) + update_key
    if signature is not None:
        b += signature
    b += bytes([len(roots)])
    for ident, eps in roots:
        b += ident + bytes([len(eps)])
        for ip, port in eps:
            b += inet(ip, port)
    if wtype == 0x7F:
        b += b'\0\0'
    return b


def world_signed_message(wtype, wid, ts, update_key, roots):
    return b'\x7f' * 8 + world_bytes(wtype, wid, ts, update_key, roots) + b'\xf7' * 8


def parse_world(b):
    wtype = b[0]
    wid, ts = struct.unpack('>QQ', b[1:17])
    update_key = b[17:81]
    sig = b[81:177]
    n = b[177]
    p = 178
    roots = []
    for _ in range(n):
        ident, used = Identity.parse(b[p:])
        p += used
        ne = b[p]
        p += 1
        eps = []
        for _ in range(ne):
            ep, used = parse_inet(b[p:])
            p += used
            eps.append(ep)
        roots.append((ident, eps))
    if wtype == 0x7F:
        dl = struct.unpack('>H', b[p:p + 2])[0]
        p += 2 + dl
    return dict(type=wtype, id=wid, timestamp=ts, update_key=update_key,
                signature=sig, roots=roots, size=p)
