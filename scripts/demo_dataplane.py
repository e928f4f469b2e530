#!/usr/bin/env python3
"""The demo: moongate as the subnet router of a site — moongate-control and
the DPDK data plane, started together by scripts/moongate-up.

  LAN host 10.10.0.2 --- [ moongate-dataplane ] ==WireGuard== remote site (wireguard-go) --- remote host 10.20.0.2
                         lan 10.10.0.1/24 (AF_PACKET)         192.0.2.10
                         wan 192.0.2.2/24 (AF_PACKET)
                         netmap from moongate-control (stock `wg` works on it)

Everything runs in network namespaces created here and removed at the end.
Usage: demo_dataplane.py BUILD_DIR   (with dataplane/, control/ built in it)
"""
import json
import os
import subprocess
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "tests", "e2e"))
from topology import Topology, sh  # noqa: E402
from test_dataplane import build_subnet_router, iperf, ping, telemetry  # noqa: E402

BOLD, BLUE, OFF = "\033[1m", "\033[1;34m", "\033[0m"


def step(text):
    print(f"\n{BLUE}==> {text}{OFF}", flush=True)


def main():
    if os.geteuid() != 0:
        print("the demo needs root (network namespaces, AF_PACKET)", file=sys.stderr)
        return 1
    build = os.path.abspath(sys.argv[1])
    binary = os.path.join(build, "dataplane", "moongate-dataplane")
    os.environ["MOONGATE_BIN"] = os.path.join(build, "bin-demo")
    os.makedirs(os.environ["MOONGATE_BIN"], exist_ok=True)
    for name, sub in (("moongate-control", "control"), ("moongate-dataplane", "dataplane"), ("moongatectl", "control")):
        link = os.path.join(os.environ["MOONGATE_BIN"], name)
        if not os.path.exists(link):
            os.symlink(os.path.join(build, sub, name), link)
    ctl = os.path.join(os.environ["MOONGATE_BIN"], "moongatectl")
    print(f"{BOLD}moongate demo: a site's subnet router (moongate-control + the DPDK data plane){OFF}")
    topo = Topology("d")
    try:
        step("1/7 Topology: LAN host, moongate (DPDK on AF_PACKET), remote site with wireguard-go")
        t = build_subnet_router(topo, binary, launcher=os.path.join(HERE, "moongate-up"))
        print("    data plane up; its configuration:")
        with open(os.path.join(topo.tmp, "dataplane.yaml")) as f:
            for line in f:
                if "private_key" in line:
                    line = line.split(":")[0] + ": (hidden)\n"
                print("      " + line, end="")

        step("2/7 Ping through the tunnel, both ways (the first packet starts the handshake)")
        got, out = ping(t["lan"], "10.20.0.2", count=3)
        print("    LAN host -> remote host: " + [l for l in out.splitlines() if "transmitted" in l][0])
        got, out = ping(t["rem"], "10.10.0.2", count=3)
        print("    remote host -> LAN host: " + [l for l in out.splitlines() if "transmitted" in l][0])

        step("3/7 The remote site's view (wg show on wireguard-go)")
        for line in sh("wg", "show", t["wgif"], ns=t["wan"], capture=True).splitlines():
            print("    " + line)

        step("4/7 moongate's view with the stock tool (wg show mg0, over moongate-control's UAPI socket)")
        time.sleep(1.2)  # the data plane reports transfer counters every second
        for line in sh("wg", "show", "mg0", capture=True).splitlines():
            print("    " + line)

        step("5/7 TCP through the tunnel (iperf3, 3 s each way)")
        up = iperf(topo, t["lan"], "10.10.0.2", t["rem"])
        down = iperf(topo, t["lan"], "10.10.0.2", t["rem"], reverse=True)
        print(f"    remote -> LAN: {up['bits_per_second'] / 1e6:.0f} Mbit/s")
        print(f"    LAN -> remote: {down['bits_per_second'] / 1e6:.0f} Mbit/s")
        print("    (AF_PACKET on veth pairs sharing this machine's CPUs with wireguard-go and iperf3:")
        print("     a functional demo, not a benchmark; see docs/perf.md)")

        step("6/7 moongatectl status")
        for line in subprocess.run([ctl, "-i", "mg0", "status"], capture_output=True, text=True).stdout.splitlines():
            print("    " + line)

        step("7/7 The data plane's counters (DPDK telemetry: /moongate/stats)")
        stats = telemetry("moongate-mg0", "/moongate/stats")
        shown = {k: v for k, v in stats.items() if v and not k.startswith(("drop_", "wg_drop_"))}
        drops = {k: v for k, v in stats.items() if v and k.startswith(("drop_", "wg_drop_"))}
        print("    " + json.dumps(shown))
        print("    drops: " + (json.dumps(drops) if drops else "none"))
    finally:
        step("Tearing down")
        topo.cleanup()
        print("    namespaces, processes and temporary files removed")
    print(f"{BOLD}Demo finished.{OFF}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
