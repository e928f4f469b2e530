#!/usr/bin/env python3
"""deploy/ and `moongatectl doctor` on this machine.

1. The systemd units, filled in with this build's binaries, pass
   `systemd-analyze verify` (as instances for an interface "mg0").
2. `moongatectl doctor` reports this host as /proc and /sys describe it:
   the IOMMU groups, the NICs and their drivers, the hugepages. It exits 0
   without a config (a host without NIC or IOMMU is still usable with
   af_packet ports) and 1, naming the port, for a config whose PCI NIC is
   not here. `--json` gives the same findings.
3. The set-up scripts parse (bash -n) and the NIC script lists this host's
   network functions.

Usage: test_deploy.py SOURCE_ROOT MOONGATECTL MOONGATE_CONTROL MOONGATE_DATAPLANE [MOONGATE_RELAY MOONGATE_MOON]
"""
import json
import re
import os
import shutil
import subprocess
import sys
import tempfile

src, ctl, control, dataplane = sys.argv[1:5]
extra_bins = sys.argv[5:]  # moongate-relay, moongate-moon
failures = []


def check(cond, what):
    print(("ok   " if cond else "FAIL ") + what)
    if not cond:
        failures.append(what)


def units():
    if shutil.which("systemd-analyze") is None:
        print("systemd-analyze not installed: unit check skipped")
        return
    with tempfile.TemporaryDirectory(prefix="mg-deploy-") as tmp:
        bindir = os.path.join(tmp, "bin")
        os.mkdir(bindir)
        for b in (ctl, control, dataplane, *extra_bins):
            os.symlink(os.path.abspath(b), os.path.join(bindir, os.path.basename(b)))
        units_dir = os.path.join(tmp, "units")
        os.mkdir(units_dir)
        subst = {"@BINDIR@": bindir, "@LIBEXECDIR@": os.path.join(src, "deploy", "scripts"),
                 "@DOCDIR@": os.path.join(src, "docs")}
        names = []
        for f in sorted(os.listdir(os.path.join(src, "deploy", "systemd"))):
            text = open(os.path.join(src, "deploy", "systemd", f)).read()
            for k, v in subst.items():
                text = text.replace(k, v)
            check(re.search(r"@[A-Z]+@", text) is None, f"{f}: every @VAR@ filled in")
            name = f[:-3] if f.endswith(".in") else f
            open(os.path.join(units_dir, name), "w").write(text)
            # Templates are verified as instances.
            inst = name.replace("@.", "@mg0.")
            if inst != name:
                open(os.path.join(units_dir, inst), "w").write(text)
            names.append(inst)
        r = subprocess.run(["systemd-analyze", "verify", "--man=no"] +
                           [os.path.join(units_dir, n) for n in names],
                           capture_output=True, text=True, timeout=60)
        # verify also reports problems of unrelated units on this host
        # (e.g. a missing binary of a Debian unit): keep only ours.
        ours = [l for l in (r.stdout + r.stderr).splitlines() if "moongate" in l]
        for l in ours:
            print("  systemd-analyze: " + l)
        check(not ours, "systemd-analyze verify: no finding in " + ", ".join(names))


def read(path, default=""):
    try:
        return open(path).read().strip()
    except OSError:
        return default


def doctor():
    r = subprocess.run([ctl, "doctor"], capture_output=True, text=True, timeout=30)
    print(r.stdout)
    check(r.returncode == 0, f"doctor without config exits 0 (got {r.returncode}: {r.stderr.strip()})")
    check(r.stdout.rstrip().splitlines()[-1].startswith("0 failed"), "doctor: summary line, nothing failed")
    groups = os.listdir("/sys/kernel/iommu_groups") if os.path.isdir("/sys/kernel/iommu_groups") else []
    if groups:
        check(f"{len(groups)} IOMMU groups" in r.stdout, "doctor counts the IOMMU groups")
    else:
        check("no IOMMU groups" in r.stdout, "doctor reports no IOMMU (there is none)")
    nics = {}
    for a in sorted(os.listdir("/sys/bus/pci/devices")):
        d = f"/sys/bus/pci/devices/{a}"
        if read(d + "/class").startswith("0x02"):
            drv = os.path.basename(os.readlink(d + "/driver")) if os.path.islink(d + "/driver") else "none"
            nics[a] = drv
    for a, drv in nics.items():
        check(any(a in l and f"driver {drv}" in l for l in r.stdout.splitlines()),
              f"doctor lists NIC {a} with driver {drv}")
    if not any(d in ("vfio-pci", "uio_pci_generic", "igb_uio") for d in nics.values()):
        check("no PCI network device" in r.stdout or "no NIC bound" in r.stdout,
              "doctor says no NIC is available to DPDK (none is)")
    total = sum(int(read(f"/sys/kernel/mm/hugepages/{h}/nr_hugepages", "0"))
                for h in os.listdir("/sys/kernel/mm/hugepages"))
    if total == 0:
        check("none reserved" in r.stdout, "doctor reports no hugepages reserved (none are)")
    else:
        check("none reserved" not in r.stdout, "doctor sees the reserved hugepages")

    j = subprocess.run([ctl, "doctor", "--json"], capture_output=True, text=True, timeout=30)
    doc = json.loads(j.stdout)
    check(doc["failed"] == 0 and len(doc["findings"]) == len(
        [l for l in r.stdout.splitlines() if l[:4] in ("ok  ", "warn", "FAIL")]),
        "doctor --json has the same findings as the text")

    # A config naming a PCI NIC this host does not have.
    with tempfile.TemporaryDirectory(prefix="mg-doctor-") as tmp:
        cfg = os.path.join(tmp, "mg0.yaml")
        open(cfg, "w").write("""
interface:
  name: mg0
  private_key: yAnz5TF+lXXJte14tji3zlMNq+hd2rYUIgJBgB3fBmk=
  listen_port: 51820
  addresses: [10.99.0.1/24]
ports:
  - {name: wan, role: wan, device: "0000:7f:1f.7", address: 192.0.2.2/24}
dataplane:
  lcores: [1000]
  hugepages: true
  memory_mb: 1024
""")
        r = subprocess.run([ctl, "doctor", "--config", cfg], capture_output=True, text=True, timeout=30)
        print(r.stdout, r.stderr)
        check(r.returncode == 1, f"doctor with an impossible config exits 1 (got {r.returncode})")
        check(any(l.startswith("FAIL") and "port wan" in l and "0000:7f:1f.7" in l for l in r.stdout.splitlines()),
              "doctor fails the missing NIC, naming the port")
        check(any(l.startswith("FAIL") and "1000" in l for l in r.stdout.splitlines()),
              "doctor fails the lcore that does not exist")


def scripts():
    for s in ("moongate-bind-nic", "moongate-sriov", "moongate-hugepages"):
        path = os.path.join(src, "deploy", "scripts", s)
        check(subprocess.run(["bash", "-n", path]).returncode == 0, f"{s} parses")
    r = subprocess.run([os.path.join(src, "deploy", "scripts", "moongate-bind-nic"), "--status"],
                       capture_output=True, text=True, timeout=30)
    listed = {l.split()[0] for l in r.stdout.splitlines() if l.strip()}
    want = {a for a in os.listdir("/sys/bus/pci/devices")
            if read(f"/sys/bus/pci/devices/{a}/class").startswith("0x02")}
    check(r.returncode == 0 and listed == want, f"moongate-bind-nic --status lists the network functions {sorted(want)}")
    r = subprocess.run([os.path.join(src, "deploy", "scripts", "moongate-bind-nic"), "0000:7f:1f.7"],
                       capture_output=True, text=True, timeout=30)
    check(r.returncode == 1 and "no such PCI device" in r.stderr, "moongate-bind-nic refuses an absent device")
    bind_nic_guard()


def bind_nic_guard():
    """moongate-bind-nic never takes the host's own NIC: a made-up sysfs
    (MOONGATE_SYSFS) holds a virtio NIC whose interface is the one carrying
    this host's default route (virtio keeps it under virtioN/net), and one
    whose interface carries nothing."""
    route = subprocess.run(["ip", "route", "show", "default"], capture_output=True, text=True).stdout.split()
    if "dev" not in route:
        print("no default route here: bind-nic guard check skipped")
        return
    dev = route[route.index("dev") + 1]
    with tempfile.TemporaryDirectory(prefix="mg-sysfs-") as sysfs:
        for addr, netdev in (("0000:00:09.0", dev), ("0000:00:0a.0", "mgnone0")):
            d = os.path.join(sysfs, "bus/pci/devices", addr)
            os.makedirs(os.path.join(d, "virtio7/net", netdev))
            for f, v in (("class", "0x020000"), ("vendor", "0x1af4"), ("device", "0x1041"),
                         ("driver_override", "")):
                open(os.path.join(d, f), "w").write(v + "\n")
        os.makedirs(os.path.join(sysfs, "bus/pci/drivers/vfio-pci"))
        os.makedirs(os.path.join(sysfs, "kernel/iommu_groups/1"))
        open(os.path.join(sysfs, "bus/pci/drivers_probe"), "w").close()
        env = dict(os.environ, MOONGATE_SYSFS=sysfs)
        tool = os.path.join(src, "deploy", "scripts", "moongate-bind-nic")
        r = subprocess.run([tool, "0000:00:09.0"], capture_output=True, text=True, timeout=30, env=env)
        check(r.returncode == 1 and "--force" in r.stderr and
              open(os.path.join(sysfs, "bus/pci/devices/0000:00:09.0/driver_override")).read().strip() == "",
              f"moongate-bind-nic refuses the NIC of the default route ({dev}): {r.stderr.strip()}")
        r = subprocess.run([tool, "0000:00:0a.0"], capture_output=True, text=True, timeout=30, env=env)
        check(open(os.path.join(sysfs, "bus/pci/devices/0000:00:0a.0/driver_override")).read().strip() == "vfio-pci",
              f"moongate-bind-nic takes an idle NIC (driver_override set): {r.stderr.strip()}")


units()
doctor()
scripts()
if failures:
    print(f"{len(failures)} failed")
    sys.exit(1)
print("all passed")
