#!/usr/bin/env python3
"""End to end: moongate-control and the data plane together (issue 4).

The subnet-router topology of test_dataplane.py, with moongate-control
owning the netmap and the data plane following it over shared memory:

  - stock `wg show` lists the peer with transfer counters equal to what the
    remote wireguard-go counted;
  - `wg set ... allowed-ips` reaches the data plane: a prefix routed before
    only after the change;
  - a peer removed and added back (on the other lcore, then into a reused
    slot owned by another lcore) forwards both ways at once;
  - moongatectl status (text and JSON) and netmap; the Prometheus endpoint
    scraped and parsed;
  - killing moongate-control does not interrupt forwarding (a ping running
    across the kill and the restart loses nothing); restarted, it shows the
    same state, including the change made through `wg`, which it saved;
  - `wg syncconf` with 10 000 peers while a steady ping to the unchanged
    peer loses no packet;
  - broken configuration files: one clear message with file and line, a
    non-zero exit, and the running appliance keeps its netmap.
  - a static route changed by a reload applies at once, also to a
    destination the data plane's per-lcore route memo already holds.

usage: test_control.py DATAPLANE_BIN CONTROL_BIN MOONGATECTL_BIN
"""
import base64
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import time
import traceback

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from topology import Topology, sh, wait_for, wg_keypair  # noqa: E402
from test_dataplane import RESULTS, answered, case, ping, assert_pings, build_subnet_router, dataplane_status  # noqa: E402

METRICS_URL = "http://127.0.0.1:9586/metrics"


def wg_dump(ifname, ns=None):
    """`wg show IF dump` as (interface fields, {public key: peer fields})."""
    lines = sh("wg", "show", ifname, "dump", ns=ns, capture=True).splitlines()
    peers = {}
    for line in lines[1:]:
        f = line.split("\t")
        peers[f[0]] = f
    return lines[0].split("\t"), peers


def scrape(ns):
    """GETs the metrics page from inside the gateway's namespace and parses
    the Prometheus text format strictly: every sample belongs to a family
    declared with # TYPE, names and labels are well-formed, values numeric."""
    body = sh("python3", "-c", f"import urllib.request;print(urllib.request.urlopen('{METRICS_URL}').read().decode(),end='')",
              ns=ns, capture=True)
    types, samples = {}, {}
    sample_re = re.compile(r'^([a-zA-Z_:][a-zA-Z0-9_:]*)(\{(?:[a-zA-Z_][a-zA-Z0-9_]*="(?:[^"\\]|\\.)*",?)*\})? (-?[0-9.e+]+)$')
    for line in body.splitlines():
        if line.startswith("# TYPE "):
            _, _, name, kind = line.split(" ")
            assert kind in ("counter", "gauge"), line
            types[name] = kind
            continue
        if line.startswith("# HELP ") or not line:
            continue
        m = sample_re.match(line)
        assert m, f"not a Prometheus sample: {line!r}"
        assert m.group(1) in types, f"sample of an undeclared family: {line!r}"
        samples[m.group(1) + (m.group(2) or "")] = float(m.group(3))
    return types, samples


def ctl(moongatectl, ifname, *args, check=True):
    r = subprocess.run([moongatectl, "-i", ifname, *args], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                       timeout=30)
    if check and r.returncode != 0:
        raise AssertionError(f"moongatectl {' '.join(args)}: {r.stderr.decode()}{r.stdout.decode()}")
    return r.stdout.decode()


def last_apply(log):
    """The data plane's own account of its last netmap change."""
    lines = [l for l in open(log).read().splitlines() if "netmap: generation" in l and "applied in" in l]
    return lines[-1].split("netmap: ", 1)[1] if lines else "(none logged)"


def ctl_socket(ifname, command):
    """One command on moongate-control's control socket (no process spawned:
    fast enough to time a netmap change)."""
    import socket
    s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    s.connect(f"/run/moongate/{ifname}.ctl")
    s.sendall(command.encode() + b"\n")
    out = b""
    while chunk := s.recv(65536):
        out += chunk
    s.close()
    return out.decode()


def generation(ifname):
    """(published, applied by the data plane) netmap generations."""
    js = json.loads(ctl_socket(ifname, "status json"))
    return js["generation"], js["dataplane"]["applied_generation"]


def main():
    if os.geteuid() != 0:
        print("SKIP: needs root (network namespaces)")
        return 77
    for tool in ("ip", "wg", "wireguard-go", "ping", "ethtool"):
        if shutil.which(tool) is None:
            print(f"SKIP: {tool} not installed")
            return 77
    dataplane_bin, control_bin, moongatectl = (os.path.abspath(a) for a in sys.argv[1:4])

    topo = Topology("c")
    ifname = f"mgc{topo.tag}"[:15]
    try:
        # Two workers: netmap changes reach both lcores (RCU, per-lcore command rings).
        t = build_subnet_router(topo, dataplane_bin, control_bin=control_bin, ifname=ifname, lcores=(0, 1))
        gw = t["gw"]
        site = t["site_pub"]
        # A prefix at the remote site that the data plane does not route yet.
        sh("ip", "addr", "add", "10.21.0.1/24", "dev", "rs0", ns=t["wan"])
        sh("ip", "addr", "add", "10.21.0.2/24", "dev", "rh0", ns=t["rem"])

        @case("control: the data plane forwards with the netmap from moongate-control")
        def _():
            log = open(t["log"]).read()
            assert "netmap from moongate-control" in log, log[-2000:]
            return f"{assert_pings(t['lan'], '10.20.0.2', 5)} lan->remote, {assert_pings(t['rem'], '10.10.0.2', 5)} back"
        _()

        @case("control: stock `wg show` lists the peer; its counters equal the remote wireguard-go's")
        def _():
            ping(t["lan"], "10.20.0.2", count=20)
            # Counters reach moongate-control within a second; the tunnel is
            # quiet afterwards, so both ends must agree exactly.
            def agree():
                _, ours = wg_dump(ifname)
                _, theirs = wg_dump(t["wgif"], ns=t["wan"])
                mine, far = ours.get(site), theirs.get(t["dp_pub"])
                return mine and far and int(mine[5]) == int(far[6]) and int(mine[6]) == int(far[5]) and int(mine[5]) > 0
            wait_for("wg show on both ends to agree", agree, timeout=20)
            _, ours = wg_dump(ifname)
            p = ours[site]
            # public key, preshared key, endpoint, allowed IPs, handshake, rx, tx, keepalive
            assert p[2] == "192.0.2.10:51820" and p[4] != "0", p
            return f"rx {p[5]} B, tx {p[6]} B on both ends; endpoint {p[2]}, handshake at {p[4]}"
        _()

        @case("control: `wg set ... allowed-ips` reaches the data plane")
        def _():
            got, _ = ping(t["lan"], "10.21.0.2", count=2)
            assert got == 0, "10.21.0.2 reachable before the change"
            before, _ = generation(ifname)
            t0 = time.monotonic()
            sh("wg", "set", ifname, "peer", site, "allowed-ips", "10.20.0.0/24,fd20::/64,10.21.0.0/24")
            wait_for("the data plane to apply the change",
                     lambda: generation(ifname)[1] > before, timeout=10, interval=0.005)
            elapsed = (time.monotonic() - t0) * 1000
            n = assert_pings(t["lan"], "10.21.0.2", 3)
            return (f"10.21.0.2: 0/2 before, {n} after; data plane: {last_apply(t['log'])}; "
                    f"seen applied through the control socket {elapsed:.0f} ms after `wg set` returned")
        _()

        @case("control: a peer removed and added back forwards at once from another lcore, then from a reused id")
        def _():
            # Run-time adds and removes must keep every per-id structure the
            # packet path reads (the PeerCtx slot, the LAN path's flat
            # Shared::refs) in step: LAN -> tunnel packets go by id to the
            # owner, which encrypts for the wg::Peer the slot names.
            def wg_set(*args):
                before, _ = generation(ifname)
                sh("wg", "set", ifname, "peer", *args)
                wait_for(f"the data plane to apply `wg set {args[1]}`", lambda: generation(ifname)[1] > before,
                         timeout=30, interval=0.01)

            def lines():
                # peer <id> worker <owner> endpoint <endpoint> ...; the copy
                # of the endpoint is refreshed by the owner every second.
                return [l.split() for l in dataplane_status(topo, t["dp"], gw).splitlines() if l.startswith("peer ")]

            def site_line():
                # Called once an add is applied: a removed peer's line went
                # with it (no wg::Peer), so the line seen is the new one.
                found = [None]
                def seen():
                    found[0] = next((f for f in lines() if f[5] == "192.0.2.10:51820"), None)
                    return found[0] is not None
                wait_for("the site peer in the data plane's status", seen, timeout=20)
                return found[0]

            site_args = ["allowed-ips", "10.20.0.0/24,fd20::/64,10.21.0.0/24", "endpoint", "192.0.2.10:51820"]

            def crypto_per_lcore():
                # worker <n> rx <n> decrypted <n> encrypted <n> ...
                return {f[1]: (int(f[5]), int(f[7])) for f in (l.split() for l in dataplane_status(
                    topo, t["dp"], gw).splitlines()) if f[:1] == ["worker"]}

            def forwards(owner):
                # Our side has no session with the added-back peer: the first
                # packet is staged and the data plane starts the handshake.
                before = crypto_per_lcore()
                wait_for("a session with the added-back peer",
                         lambda: ping(t["lan"], "10.20.0.2", count=1)[0] == 1, timeout=30)
                result = (f"lan->remote {assert_pings(t['lan'], '10.20.0.2', 3)}, "
                          f"remote->lan {assert_pings(t['rem'], '10.10.0.2', 3)}, "
                          f"lan->remote v6 {assert_pings(t['lan'], 'fd20::2', 3)}")
                # The only peer with traffic: its owner alone decrypts and
                # encrypts for it, whichever lcore a packet arrived on.
                after = crypto_per_lcore()
                for lcore, (dec, enc) in after.items():
                    grew = dec > before[lcore][0] and enc > before[lcore][1]
                    still = (dec, enc) == before[lcore]
                    assert grew if lcore == owner else still, (owner, before, after)
                return result + f"; crypto on lcore {owner} only"

            # New peers go to the worker owning the fewest (ties: the lower
            # lcore); removed ids are reused, last freed first, once their
            # 2 s quarantine is over (netmap_service.cc: alloc_id,
            # kIdQuarantineNs).
            first = site_line()
            wg_set(site, "remove")
            got, _ = ping(t["lan"], "10.20.0.2", count=1)
            assert got == 0, "forwarded to a removed peer"
            # Another peer takes lcore 0, so the site comes back on lcore 1.
            other = base64.b64encode(os.urandom(32)).decode()
            wg_set(other, "allowed-ips", "10.60.0.0/24")
            wg_set(site, *site_args)
            second = site_line()
            assert second[3] != first[3], (first, second)
            moved = forwards(second[3])
            # Both removed (the site last), both ids free after the
            # quarantine: the site is added back into its own previous slot,
            # now owned by lcore 0 (both lcores own none).
            wg_set(other, "remove")
            wg_set(site, "remove")
            removed_at = time.monotonic()
            wait_for("the quarantine of the removed ids to end", lambda: time.monotonic() > removed_at + 2.5,
                     timeout=10)
            wg_set(site, *site_args)
            third = site_line()
            assert third[1] == second[1] and third[3] != second[3], (second, third)
            reused = forwards(third[3])
            assert len(lines()) == 1
            # Its handshake reaches moongate-control (the next cases read it).
            wait_for("the new handshake in wg show", lambda: wg_dump(ifname)[1][site][4] != "0", timeout=20)
            return (f"id {first[1]} on lcore {first[3]} -> id {second[1]} on lcore {second[3]}: {moved}; "
                    f"-> the same slot {third[1]} on lcore {third[3]}: {reused}")
        _()

        @case("control: moongatectl status, --json and netmap")
        def _():
            text = ctl(moongatectl, ifname, "status")
            assert f"peer: {site}" in text and "latest handshake:" in text and "seconds ago" in text, text
            assert "10.21.0.0/24" in text, text
            js = json.loads(ctl(moongatectl, ifname, "status", "--json"))
            peer = [p for p in js["peers"] if p["public_key"] == site][0]
            assert peer["rx_bytes"] > 0 and peer["latest_handshake"] > 0 and js["dataplane"]["pid"] > 0, js
            assert js["generation"] == js["dataplane"]["applied_generation"], js
            nm = ctl(moongatectl, ifname, "netmap")
            assert f"peer {site} endpoint 192.0.2.10:51820" in nm and "route 10.11.0.0/24 via 10.10.0.2" in nm, nm
            assert "PrivateKey" not in nm and "psk" not in nm
            return f"{len(js['peers'])} peer, rx {peer['rx_bytes']} B, generation {js['generation']}"
        _()

        @case("control: moongatectl peer add / remove, and import of a wg-quick file")
        def _():
            key = base64.b64encode(os.urandom(32)).decode()
            ctl(moongatectl, ifname, "peer", "add", key, "allowed-ips", "10.50.0.0/24,fd50::/64",
                "endpoint", "198.51.100.50:51820", "keepalive", "25")
            _, peers = wg_dump(ifname)
            assert key in peers and peers[key][3] == "10.50.0.0/24,fd50::/64" and peers[key][7] == "25", peers.get(key)
            ctl(moongatectl, ifname, "peer", "remove", key)
            assert key not in wg_dump(ifname)[1]
            bad = subprocess.run([moongatectl, "-i", ifname, "peer", "add", "not-a-key"], capture_output=True, text=True)
            assert bad.returncode != 0 and "not a base64 public key" in bad.stderr, bad
            quick = os.path.join(topo.tmp, "wg0.conf")
            with open(quick, "w") as f:
                f.write(f"[Interface]\nPrivateKey = {wg_keypair()[0]}\nAddress = 10.200.0.1/24\nDNS = 1.1.1.1\n"
                        f"[Peer]\nPublicKey = {key}\nAllowedIPs = 10.200.0.2/32\nEndpoint = 203.0.113.5:51820\n")
            r = subprocess.run([moongatectl, "import", quick], capture_output=True, text=True)
            assert r.returncode == 0 and f"public_key: {key}" in r.stdout and "10.200.0.2/32" in r.stdout, r
            assert "DNS: not used by moongate" in r.stderr, r.stderr
            # wg addconf / setconf are the same protocol with other flags.
            extra = os.path.join(topo.tmp, "extra.conf")
            with open(extra, "w") as f:
                f.write(f"[Peer]\nPublicKey = {key}\nAllowedIPs = 10.51.0.0/24\n")
            sh("wg", "addconf", ifname, extra)
            assert wg_dump(ifname)[1][key][3] == "10.51.0.0/24"
            full = sh("wg", "showconf", ifname, capture=True)
            sh("wg", "set", ifname, "peer", key, "remove")
            setconf = os.path.join(topo.tmp, "setconf.conf")
            with open(setconf, "w") as f:
                f.write(full)
            sh("wg", "setconf", ifname, setconf)  # replaces the peers: the removed one is back
            assert key in wg_dump(ifname)[1] and site in wg_dump(ifname)[1]
            sh("wg", "set", ifname, "peer", key, "remove")
            return ("a peer added and removed through moongatectl (seen by wg show); wg addconf / setconf; "
                    "a wg-quick file imported as YAML")
        _()

        @case("control: the Prometheus endpoint is scraped and parsed")
        def _():
            # The case before publishes several generations back to back and
            # does not wait for them: on a loaded machine the data plane may
            # still be applying them.
            wait_for("the data plane to apply the latest netmap",
                     lambda: len(set(generation(ifname))) == 1, timeout=30)
            types, s = scrape(gw)
            key = f'moongate_peer_rx_bytes_total{{public_key="{site}"}}'
            assert s[key] > 0, s
            assert s["moongate_netmap_generation"] == s["moongate_dataplane_applied_generation"], s
            assert types["moongate_peer_rx_bytes_total"] == "counter" and types["moongate_peers"] == "gauge"
            assert s['moongate_lcore_packets_total{lcore="0",counter="decrypted"}'] > 0, s
            drops = [k for k in s if k.startswith("moongate_lcore_drops_total")]
            return f"{len(s)} samples in {len(types)} families; peer rx {int(s[key])} B; {len(drops)} drop series"
        _()

        @case("control: killing moongate-control does not interrupt forwarding; restarted, it has the same state")
        def _():
            _, before = wg_dump(ifname)
            rx_before = int(before[site][5])
            pinger = subprocess.Popen(["ip", "netns", "exec", t["lan"], "ping", "-i", "0.05", "-c", "100", "-W", "1", "-w", "30",
                                       "10.20.0.2"], stdout=subprocess.PIPE, stderr=subprocess.DEVNULL)
            time.sleep(0.5)  # the ping is under way when control dies
            t["ctl"].send_signal(signal.SIGKILL)
            t["ctl"].wait(timeout=10)
            for left in (f"/var/run/wireguard/{ifname}.sock", f"/run/moongate/{ifname}.ctl"):
                os.unlink(left)  # what a killed process leaves
            got, _ = ping(t["lan"], "10.21.0.2", count=3)  # still the netmap with the wg change
            assert got == 3, "forwarding with the last netmap failed while control was down"
            t["ctl"] = topo.spawn([control_bin, "--config", t["cfg"], "--state-dir", os.path.join(topo.tmp, "state")],
                                  ns=gw, log=os.path.join(topo.tmp, "control2.log"))
            wait_for("moongate-control's UAPI socket again",
                     lambda: os.path.exists(f"/var/run/wireguard/{ifname}.sock"))
            out = pinger.communicate(timeout=30)[0].decode()
            line = [l for l in out.splitlines() if "packets transmitted" in l][0]
            assert answered(out, 100) == 100, line
            # The same state: the saved change, and counters that continue.
            allowed = sh("wg", "show", ifname, "allowed-ips", capture=True)
            assert "10.21.0.0/24" in allowed, allowed
            wait_for("counters after the restart", lambda: int(wg_dump(ifname)[1][site][5]) > rx_before, timeout=10)
            pub, applied = generation(ifname)
            wait_for("the data plane to follow the republished netmap", lambda: generation(ifname)[1] == generation(ifname)[0])
            return f"ping across kill and restart: {line.strip()}; wg change kept; generation {generation(ifname)[0]}"
        _()

        @case("control: a restarted data plane gets the netmap again (with the change made through wg)")
        def _():
            t["dp"].send_signal(signal.SIGTERM)
            t["dp"].wait(timeout=30)
            got, _ = ping(t["lan"], "10.20.0.2", count=1)
            assert got == 0, "forwarding without a data plane?"
            t["dp"] = topo.spawn([dataplane_bin, "--config", t["cfg"], "--status-file", t["status"], "--control"],
                                 ns=gw, log=t["log"] + ".2")
            wait_for("the new data plane to answer ping", lambda: ping(t["lan"], "10.10.0.1", count=1)[0] == 1,
                     timeout=60)
            n = assert_pings(t["lan"], "10.21.0.2", 3)  # the route added through `wg set`
            pub, applied = generation(ifname)
            assert applied == pub, (pub, applied)
            t["log"] = t["log"] + ".2"
            return f"10.21.0.2 {n} through the restarted data plane; it runs generation {applied}"
        _()

        @case("control: `wg syncconf` to 10 000 peers and back while a steady ping to the unchanged peer loses nothing")
        def _():
            conf = os.path.join(topo.tmp, "syncconf.conf")
            showconf = sh("wg", "showconf", ifname, capture=True)
            keep = showconf.strip().split("\n\n")  # [Interface] and the site peer, as they are
            with open(conf, "w") as f:
                f.write("\n\n".join(keep) + "\n")
                for k in range(9999):
                    key = base64.b64encode(os.urandom(32)).decode()
                    f.write(f"\n[Peer]\nPublicKey = {key}\nAllowedIPs = 10.{100 + k // 250}.{k % 250}.0/24\n")
            pinger = subprocess.Popen(["ip", "netns", "exec", t["lan"], "ping", "-i", "0.01", "-c", "400", "-W", "1", "-w", "30",
                                       "10.20.0.2"], stdout=subprocess.PIPE, stderr=subprocess.DEVNULL)
            time.sleep(0.3)
            before, _ = generation(ifname)
            t0 = time.monotonic()
            sh("wg", "syncconf", ifname, conf, timeout=120)
            t_wg = time.monotonic() - t0
            wait_for("the data plane to apply 10 000 peers", lambda: generation(ifname)[1] > before, timeout=60,
                     interval=0.01)
            t_applied = time.monotonic() - t0
            added = last_apply(t["log"])
            out = pinger.communicate(timeout=60)[0].decode()
            line = [l for l in out.splitlines() if "packets transmitted" in l][0]
            assert answered(out, 400) == 400, line
            js = json.loads(ctl(moongatectl, ifname, "status", "--json"))
            assert len(js["peers"]) == 10000, len(js["peers"])
            peers = sh("wg", "show", ifname, "peers", capture=True).split()
            assert len(peers) == 10000, len(peers)
            # The data plane itself: 10 000 distinct peers, spread over both lcores.
            status = dataplane_status(topo, t["dp"], gw)
            lines = [l.split() for l in status.splitlines() if l.startswith("peer ")]
            ids = {l[1] for l in lines}
            owners = {l[3] for l in lines}
            assert len(lines) == 10000 and len(ids) == 10000 and owners == {"0", "1"}, (len(lines), len(ids), owners)
            assert_pings(t["lan"], "10.20.0.2", 3)
            # And back: 9 999 peers removed while the ping runs.
            with open(conf, "w") as f:
                f.write("\n\n".join(keep) + "\n")
            pinger = subprocess.Popen(["ip", "netns", "exec", t["lan"], "ping", "-i", "0.01", "-c", "200", "-W", "1", "-w", "30",
                                       "10.20.0.2"], stdout=subprocess.PIPE, stderr=subprocess.DEVNULL)
            time.sleep(0.3)
            before, _ = generation(ifname)
            sh("wg", "syncconf", ifname, conf, timeout=120)
            wait_for("the data plane to remove 9 999 peers", lambda: generation(ifname)[1] > before, timeout=60)
            removal = last_apply(t["log"])
            back = pinger.communicate(timeout=60)[0].decode()
            back_line = [l for l in back.splitlines() if "packets transmitted" in l][0]
            assert answered(back, 200) == 200, back_line
            status = dataplane_status(topo, t["dp"], gw)
            assert len([l for l in status.splitlines() if l.startswith("peer ")]) == 1, status[-2000:]
            return (f"wg syncconf returned in {t_wg:.2f} s, seen applied {t_applied:.2f} s after the start; "
                    f"data plane: {added}; {line.strip()}; back to 1 peer: {removal}; {back_line.strip()}")
        _()

        @case("control: broken configuration files give one message with file and line; the running netmap stays")
        def _():
            good = open(t["cfg"]).read()
            key = re.search(r"public_key: (\S+)", good).group(1)
            broken = {
                "syntax": good.replace("ports:\n", "ports: [\n", 1),
                "wrong type": good.replace("listen_port: 51820", "listen_port: \"51820\""),
                "bad key": good.replace(key, key[:-2] + "!="),
                "duplicate peer": good.replace("peers:\n", f"peers:\n  - public_key: {key}\n    allowed_ips: [10.99.0.0/24]\n", 1),
                # Nested prefixes are legitimate (longest match); the same
                # prefix at two peers is ambiguous and refused.
                "overlapping allowed-ips": good.replace(
                    "peers:\n", f"peers:\n  - public_key: {base64.b64encode(os.urandom(32)).decode()}\n"
                    "    allowed_ips: [10.20.0.0/24]\n", 1),
                "unknown port": good.replace("port: lan0", "port: lan9", 1),
            }
            msgs = []
            for what, text in broken.items():
                assert text != good, what
                path = os.path.join(topo.tmp, f"broken-{what.replace(' ', '-')}.yaml")
                with open(path, "w") as f:
                    f.write(text)
                r = subprocess.run([control_bin, "--config", path, "--check"], stdout=subprocess.PIPE,
                                   stderr=subprocess.PIPE, timeout=30)
                err = r.stderr.decode().strip()
                assert r.returncode != 0, what
                assert len(err.splitlines()) == 1 and err.startswith(path + ":") and re.match(r".*:\d+:\d+: ", err), (what, err)
                msgs.append(err[len(topo.tmp) + 1:])
            # The running appliance: the file on disk breaks (inotify reloads).
            pub, applied = generation(ifname)
            restore = t.setdefault("restore", [])
            restore.append((t["cfg"], good))  # put back even if this case fails
            with open(t["cfg"], "w") as f:
                f.write(broken["bad key"])
            wait_for("the refused reload in the log",
                     lambda: "NOT reloaded" in open(os.path.join(topo.tmp, "control2.log")).read(), timeout=10)
            r = ctl(moongatectl, ifname, "reload", check=False)
            assert r.startswith("error:") and "public_key" in r, r
            assert generation(ifname) == (pub, applied), "the netmap changed after a refused reload"
            assert len(json.loads(ctl(moongatectl, ifname, "status", "--json"))["peers"]) == 1
            assert_pings(t["lan"], "10.20.0.2", 3)
            with open(t["cfg"], "w") as f:
                f.write(good)
            return "; ".join(msgs)
        _()

        @case("control: a static route changed by a reload applies at once to a destination in use")
        def _():
            # Each lcore remembers the LAN route of its last destination
            # (Worker::lan_route); a new Routing must make it forget. The
            # remote site pings 10.11.0.2 (route 10.11.0.0/24 via 10.10.0.2),
            # the route moves to a neighbour that does not exist, and the
            # same destination must stop answering, then answer again.
            good = open(t["cfg"]).read()
            moved = good.replace("via: 10.10.0.2", "via: 10.10.0.99", 1)
            assert moved != good
            t.setdefault("restore", []).append((t["cfg"], good))

            def reload_to(text):
                with open(t["cfg"], "w") as f:
                    f.write(text)
                ctl(moongatectl, ifname, "reload")  # synchronous (inotify may reload it too)
                published, _applied = generation(ifname)
                wait_for("the reloaded netmap applied by the data plane",
                         lambda: generation(ifname)[1] >= published, timeout=20)

            first = assert_pings(t["rem"], "10.11.0.2", 3)
            reload_to(moved)
            got, out = ping(t["rem"], "10.11.0.2", count=3)
            assert got == 0, f"10.11.0.2 still answered through the old route: {got}/3\n{out}"
            reload_to(good)
            back = assert_pings(t["rem"], "10.11.0.2", 3)
            return f"via 10.10.0.2 {first}; via 10.10.0.99 0/3; back {back}"
        _()

        @case("control: scripts/moongate-up starts both, restarts a killed moongate-control, stops both")
        def _():
            launcher = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "scripts", "moongate-up")
            for path, text in t.get("restore", []):
                with open(path, "w") as f:
                    f.write(text)
            for p in (t["dp"], t["ctl"]):
                p.send_signal(signal.SIGTERM)
                p.wait(timeout=30)
            env = dict(os.environ, MOONGATE_BIN=os.path.join(topo.tmp, "bin"))
            os.makedirs(env["MOONGATE_BIN"])
            for b in (dataplane_bin, control_bin):
                os.symlink(b, os.path.join(env["MOONGATE_BIN"], os.path.basename(b)))
            up = subprocess.Popen(["ip", "netns", "exec", gw, launcher, "--config", t["cfg"], "--state-dir",
                                   os.path.join(topo.tmp, "state")], env=env, stdout=subprocess.DEVNULL,
                                  stderr=open(os.path.join(topo.tmp, "up.log"), "wb"))
            topo.procs.append(up)
            wait_for("the appliance under moongate-up", lambda: ping(t["lan"], "10.20.0.2", count=1)[0] == 1, timeout=60)
            first = json.loads(ctl_socket(ifname, "status json"))["control_pid"]
            os.kill(first, signal.SIGKILL)
            def restarted():
                try:
                    return json.loads(ctl_socket(ifname, "status json"))["control_pid"] != first
                except OSError:
                    return False
            wait_for("moongate-up to restart moongate-control", restarted, timeout=20)
            dp_pid = json.loads(ctl_socket(ifname, "status json"))["dataplane"]["pid"]
            n = assert_pings(t["lan"], "10.20.0.2", 3)
            up.send_signal(signal.SIGTERM)
            up.wait(timeout=30)
            for pid in (dp_pid,):
                assert not os.path.exists(f"/proc/{pid}"), f"pid {pid} left running"
            assert not os.path.exists(f"/run/moongate/{ifname}.ctl")
            log = open(os.path.join(topo.tmp, "up.log")).read()
            assert "restarting it" in log, log
            return f"control restarted by moongate-up (pid {first} killed); ping {n}; both stopped on SIGTERM"
        _()
    except Exception as e:
        RESULTS.append(("setup", False, str(e), 0))
        print(f"FAIL setup: {e}", flush=True)
        traceback.print_exc()
        for name in ("dataplane.log", "control.log", "control2.log"):
            p = os.path.join(topo.tmp, name)
            if os.path.exists(p):
                print(f"--- {name} ---\n" + open(p).read()[-3000:])
    finally:
        topo.cleanup()

    passed = sum(1 for r in RESULTS if r[1])
    failed = len(RESULTS) - passed
    print(f"{passed} passed, {failed} failed")
    return 0 if failed == 0 and passed > 0 else 1


if __name__ == "__main__":
    sys.exit(main())
