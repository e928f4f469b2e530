"""An independent DERP client for the relay tests (PyNaCl; shares no code
with the server): the HTTP upgrade, the NaCl-box handshake, and frames.

Written from the protocol description (docs/relay.md, Tailscale's derp
package): frame = type(1) | big-endian length(4) | payload.
"""
import os
import socket
import ssl
import struct
import time
import json
import hashlib

from nacl.public import Box, PrivateKey, PublicKey

MAGIC = b"DERP\xf0\x9f\x94\x91"
SERVER_KEY, CLIENT_INFO, SERVER_INFO = 0x01, 0x02, 0x03
SEND_PACKET, RECV_PACKET, KEEP_ALIVE, NOTE_PREFERRED = 0x04, 0x05, 0x06, 0x07
PEER_GONE, PEER_PRESENT, FORWARD_PACKET = 0x08, 0x09, 0x0A
WATCH_CONNS, CLOSE_PEER, PING, PONG, HEALTH, RESTARTING = 0x10, 0x11, 0x12, 0x13, 0x14, 0x15
DISCO_MAGIC = b"TS\xf0\x9f\x92\xac"


class Closed(Exception):
    pass


def disco_payload(n=100):
    return DISCO_MAGIC + os.urandom(n - len(DISCO_MAGIC))


class DerpClient:
    def __init__(self, host, port, tls=False, fast_start=False, key=None,
                 mesh_key=None, handshake=True, timeout=10.0, server_name=None, tls12=False):
        self.priv = key or PrivateKey.generate()
        self.pub = bytes(self.priv.public_key)
        raw = socket.create_connection((host, port), timeout=timeout)
        raw.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self.peer_cert = None
        if tls:
            ctx = ssl.create_default_context()
            ctx.check_hostname = False
            ctx.verify_mode = ssl.CERT_NONE
            if tls12:  # the relay keeps TLS 1.2 in OpenSSL (its "openssl" layer)
                ctx.maximum_version = ssl.TLSVersion.TLSv1_2
            self.sock = ctx.wrap_socket(raw, server_hostname=server_name)
            self.peer_cert = self.sock.getpeercert(binary_form=True)
        else:
            self.sock = raw
        self.sock.settimeout(timeout)
        self.buf = b""
        self.server_key = None
        self.server_info = None
        self.mesh_key = mesh_key
        req = (f"GET /derp HTTP/1.1\r\nHost: {host}\r\nUpgrade: DERP\r\n"
               f"Connection: Upgrade\r\n")
        if fast_start:
            req += "Derp-Fast-Start: 1\r\n"
        self.sock.sendall((req + "\r\n").encode())
        if not fast_start:
            head = self._read_until(b"\r\n\r\n")
            status = head.split(b"\r\n")[0]
            if b" 101 " not in status:
                raise Closed("upgrade refused: %r" % status)
            self.headers = head
        if handshake:
            self.handshake()

    # --- bytes ---
    def _fill(self):
        try:
            d = self.sock.recv(65536)
        except (ConnectionResetError, ssl.SSLError, BrokenPipeError) as e:
            raise Closed(str(e))
        if not d:
            raise Closed("eof")
        self.buf += d

    def _read_until(self, marker):
        while marker not in self.buf:
            self._fill()
        i = self.buf.index(marker) + len(marker)
        out, self.buf = self.buf[:i], self.buf[i:]
        return out

    def read_frame(self, timeout=None):
        if timeout is not None:
            self.sock.settimeout(timeout)
        while len(self.buf) < 5:
            self._fill()
        t, n = struct.unpack(">BI", self.buf[:5])
        while len(self.buf) < 5 + n:
            self._fill()
        p = self.buf[5:5 + n]
        self.buf = self.buf[5 + n:]
        return t, p

    def read_until_type(self, want, timeout=5.0, skip=(KEEP_ALIVE,)):
        deadline = time.monotonic() + timeout
        while True:
            left = deadline - time.monotonic()
            if left <= 0:
                raise TimeoutError("no frame of type %#x" % want)
            t, p = self.read_frame(timeout=left)
            if t == want:
                return p
            if t not in skip:
                raise AssertionError("unexpected frame %#x while waiting for %#x" % (t, want))

    def write_frame(self, t, payload=b""):
        self.sock.sendall(struct.pack(">BI", t, len(payload)) + payload)

    # --- protocol ---
    def handshake(self):
        t, p = self.read_frame()
        assert t == SERVER_KEY, "first frame %#x" % t
        assert p[:8] == MAGIC, "bad magic"
        self.server_key = p[8:40]
        self.write_frame(CLIENT_INFO, self.client_info_payload())
        t, p = self.read_frame()
        if t != SERVER_INFO:
            raise Closed("expected ServerInfo, got %#x" % t)
        box = Box(self.priv, PublicKey(self.server_key))
        self.server_info = json.loads(box.decrypt(p[24:], p[:24]))
        return self.server_info

    def client_info_payload(self, info=None):
        info = info or {"version": 2, "CanAckPings": True}
        if self.mesh_key:
            info["meshKey"] = self.mesh_key.hex()
        box = Box(self.priv, PublicKey(self.server_key))
        nonce = os.urandom(24)
        sealed = box.encrypt(json.dumps(info).encode(), nonce)  # nonce || box
        return self.pub + bytes(sealed)

    def send_packet(self, dst, data):
        self.write_frame(SEND_PACKET, dst + data)

    def recv_packet(self, timeout=5.0):
        p = self.read_until_type(RECV_PACKET, timeout)
        return p[:32], p[32:]

    def ping(self, data=None, timeout=5.0):
        data = data or os.urandom(8)
        self.write_frame(PING, data)
        assert self.read_until_type(PONG, timeout) == data
        return data

    def close(self):
        try:
            self.sock.close()
        except OSError:
            pass

    def expect_closed(self, timeout=5.0):
        """True when the server closes the connection within `timeout`
        (frames it sends first are read and ignored)."""
        deadline = time.monotonic() + timeout
        try:
            while time.monotonic() < deadline:
                self.read_frame(timeout=max(0.05, deadline - time.monotonic()))
        except (Closed, ConnectionError):
            return True
        except (socket.timeout, TimeoutError):
            return False
        return False


class WsDerpClient(DerpClient):
    """The same client inside WebSocket (RFC 6455, subprotocol "derp"): what
    browser clients use. Frames out are masked binary messages; frames in
    are unwrapped into the DERP byte stream; pings are answered."""

    def __init__(self, host, port, tls=False, key=None, timeout=10.0, protocol="derp"):
        import base64
        self.priv = key or PrivateKey.generate()
        self.pub = bytes(self.priv.public_key)
        raw = socket.create_connection((host, port), timeout=timeout)
        if tls:
            ctx = ssl.create_default_context()
            ctx.check_hostname = False
            ctx.verify_mode = ssl.CERT_NONE
            raw = ctx.wrap_socket(raw)
        self.sock = raw
        self.sock.settimeout(timeout)
        self.buf = b""
        self.raw = b""
        self.mesh_key = None
        self.server_key = None
        wskey = base64.b64encode(os.urandom(16)).decode()
        req = ("GET /derp HTTP/1.1\r\nHost: %s\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
               "Sec-WebSocket-Version: 13\r\nSec-WebSocket-Key: %s\r\n"
               "Sec-WebSocket-Protocol: %s\r\n\r\n" % (host, wskey, protocol))
        self.sock.sendall(req.encode())
        while b"\r\n\r\n" not in self.raw:
            d = self.sock.recv(4096)
            if not d:
                raise Closed("eof during upgrade")
            self.raw += d
        head, self.raw = self.raw.split(b"\r\n\r\n", 1)
        if b" 101 " not in head.split(b"\r\n")[0]:
            raise Closed("upgrade refused: %r" % head.split(b"\r\n")[0])
        accept = base64.b64encode(hashlib.sha1(
            (wskey + "258EAFA5-E914-47DA-95CA-C5AB0DC85B11").encode()).digest())
        assert b"Sec-WebSocket-Accept: " + accept in head, head
        assert b"Sec-WebSocket-Protocol: derp" in head, head
        self._unwrap()
        self.handshake()

    def _send_ws(self, opcode, payload):
        n = len(payload)
        hdr = bytes([0x80 | opcode])
        if n < 126:
            hdr += bytes([0x80 | n])
        elif n < 65536:
            hdr += bytes([0x80 | 126]) + struct.pack(">H", n)
        else:
            hdr += bytes([0x80 | 127]) + struct.pack(">Q", n)
        mask = os.urandom(4)
        body = bytes(b ^ mask[i & 3] for i, b in enumerate(payload))
        self.sock.sendall(hdr + mask + body)

    def write_frame(self, t, payload=b""):
        self._send_ws(0x2, struct.pack(">BI", t, len(payload)) + payload)

    def ws_ping(self, data):
        self._send_ws(0x9, data)

    def _unwrap(self):
        self.pongs = getattr(self, "pongs", [])
        while len(self.raw) >= 2:
            b0, b1 = self.raw[0], self.raw[1]
            assert not (b1 & 0x80), "server frames are not masked"
            n, off = b1 & 0x7F, 2
            if n == 126:
                if len(self.raw) < 4:
                    return
                n, off = struct.unpack(">H", self.raw[2:4])[0], 4
            elif n == 127:
                if len(self.raw) < 10:
                    return
                n, off = struct.unpack(">Q", self.raw[2:10])[0], 10
            if len(self.raw) < off + n:
                return
            payload, self.raw = self.raw[off:off + n], self.raw[off + n:]
            op = b0 & 0x0F
            if op in (0x0, 0x2):
                self.buf += payload
            elif op == 0xA:
                self.pongs.append(payload)
            elif op == 0x8:
                raise Closed("websocket close")

    def _fill(self):
        try:
            d = self.sock.recv(65536)
        except (ConnectionResetError, ssl.SSLError, BrokenPipeError) as e:
            raise Closed(str(e))
        if not d:
            raise Closed("eof")
        self.raw += d
        self._unwrap()
