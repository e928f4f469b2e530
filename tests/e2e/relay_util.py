"""Starting and stopping moongate-relay for the tests (by PID, always)."""
import os
import shutil
import re
import signal
import subprocess
import tempfile
import time
import urllib.request


class Relay:
    def __init__(self, binary, *args, shards=2, plain=True, stun=True):
        self.dir = tempfile.mkdtemp(prefix="hd-relay-")
        cmd = [binary, "--addr", "127.0.0.1:0", "--shards", str(shards),
               "--stun-port", "0" if stun else "-1"]
        if plain:
            cmd.append("--plain")
        cmd += list(args)
        self.out_path = os.path.join(self.dir, "out")
        self.out = open(self.out_path, "w+")
        self.proc = subprocess.Popen(cmd, stdout=self.out, stderr=subprocess.STDOUT)
        deadline = time.monotonic() + 20
        text = ""
        while time.monotonic() < deadline:
            text = open(self.out_path).read()
            if "moongate-relay: ready" in text or self.proc.poll() is not None:
                break
            time.sleep(0.02)
        if "moongate-relay: ready" not in text:
            self.stop()
            raise RuntimeError("relay did not start: " + text)
        self.port = int(re.search(r"derp \S+ port (\d+)", text).group(1))
        self.public_key = bytes.fromhex(re.search(r"public key ([0-9a-f]{64})", text).group(1))
        m = re.search(r"stun udp port (\d+)", text)
        self.stun_port = int(m.group(1)) if m else None
        m = re.search(r'CertName: "(sha256-raw:[0-9a-f]+)"', text)
        self.pin = m.group(1) if m else None
        m = re.search(r"http port (\d+)", text)
        self.http_port = int(m.group(1)) if m else None

    def alive(self):
        return self.proc.poll() is None

    def output(self):
        return open(self.out_path).read() if os.path.exists(self.out_path) else ""


    def varz(self):
        # A TLS relay serves plain HTTP only on its --http-port.
        port = self.http_port or self.port
        with urllib.request.urlopen("http://127.0.0.1:%d/debug/varz" % port, timeout=5) as r:
            text = r.read().decode()
        vals = {}
        for line in text.splitlines():
            if line and not line.startswith("#"):
                name, _, v = line.rpartition(" ")
                vals[name] = int(v)
        return vals

    def wait_varz(self, name, pred, timeout=10.0):
        deadline = time.monotonic() + timeout
        v = None
        while time.monotonic() < deadline:
            v = self.varz().get(name)
            if v is not None and pred(v):
                return v
            time.sleep(0.05)
        raise AssertionError("%s never satisfied the condition (last %r)" % (name, v))

    def stop(self):
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self.out.close()
        text = open(self.out_path).read()
        shutil.rmtree(self.dir, ignore_errors=True)
        # A clean stop exits 0 (a sanitizer report would not).
        if self.proc.returncode != 0 or "Sanitizer" in text or "runtime error" in text:
            raise AssertionError("relay exited %r:\n%s" % (self.proc.returncode, text[-3000:]))
        return self.proc.returncode
