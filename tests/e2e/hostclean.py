"""What a berthd leaves on the host by design, and how to give each daemon its own: a
unique bridge name and 10.x.y.0/20 block (`pick_network`) whose bridges and iptables chains
stay after it exits, as docker0 does (`cleanup_bridges`), and a cgroup parent of its own
(`pick_cgroup_parent`, `container_cgroups`, `cleanup_cgroups`). Shared by the e2e tests
(conftest) and bench/run. Python standard library only."""

from __future__ import annotations

import ipaddress
import json
import os
import random
import shutil
import subprocess
import time
from pathlib import Path
from typing import Any


def _host_subnets() -> list[Any]:
    out = subprocess.run(["ip", "-4", "route", "show"], capture_output=True, text=True).stdout
    nets = []
    for line in out.splitlines():
        dest = line.split(" ", 1)[0]
        if "/" in dest:
            try:
                nets.append(ipaddress.ip_network(dest, strict=False))
            except ValueError:
                pass
    return nets


def pick_network() -> tuple[str, str, str]:
    """A bridge name and a 10.x.y.0/20 block unique to one test daemon: (bridge, bip, pool).
    The block is random in 10.128.0.0/9 and overlaps no route of the host (so no other
    daemon's bridge); the default bridge takes its first /24, user networks the rest."""
    taken = _host_subnets()
    for _ in range(200):
        a, b = random.randint(128, 255), random.randint(0, 15) * 16
        block = ipaddress.ip_network(f"10.{a}.{b}.0/20")
        if not any(block.overlaps(t) for t in taken):
            return f"bt{os.urandom(3).hex()}", f"10.{a}.{b}.1/24", str(block)
    raise AssertionError("no free 10.x.y.0/20 block for a test daemon")


def no_bridge_tag(data_root: Path) -> str:
    """The tag of the iptables chains of a berthd run with `--bridge=none`: `none-` and the
    FNV-1a (32-bit) hash of its data root (berth-engine `networks::firewall_tag`)."""
    h = 0x811C9DC5
    for b in os.fsencode(str(data_root)):
        h = ((h ^ b) * 0x01000193) & 0xFFFFFFFF
    return f"none-{h:08x}"


def cleanup_bridges(tag: str, data_root: Path) -> list[str]:
    """Deletes the daemon's default bridge `tag`, the bridges its records name, and its
    iptables and ip6tables chains (named after `tag`)."""
    problems = []
    bridges = {tag}
    for f in (data_root / "network" / "networks").glob("*.json"):
        try:
            br = json.loads(f.read_text()).get("bridge") or ""
        except (OSError, ValueError):
            continue
        if br:
            bridges.add(br)
    for br in sorted(bridges):
        if Path(f"/sys/class/net/{br}").exists():
            r = subprocess.run(["ip", "link", "del", "dev", br], capture_output=True, text=True)
            if r.returncode != 0:
                problems.append(f"cannot delete bridge {br}: {r.stderr.strip()}")
    # ip6tables too: networks with IPv6 have the same chains there.
    for tool in ("iptables", "ip6tables"):
        if not shutil.which(tool):
            continue
        for table, parent, chain in (("filter", "FORWARD", f"BERTH-FWD-{tag}"), ("nat", "POSTROUTING", f"BERTH-POST-{tag}")):
            while subprocess.run([tool, "-w", "-t", table, "-D", parent, "-j", chain], capture_output=True).returncode == 0:
                pass
        for table, chain in (("filter", f"BERTH-FWD-{tag}"), ("filter", f"BERTH-ISO-{tag}"), ("nat", f"BERTH-POST-{tag}")):
            subprocess.run([tool, "-w", "-t", table, "-F", chain], capture_output=True)
            subprocess.run([tool, "-w", "-t", table, "-X", chain], capture_output=True)
    return problems


def pick_cgroup_parent(prefix: str = "berth-e2e") -> str:
    """A `--cgroup-parent` no other daemon uses."""
    return f"/{prefix}-{os.urandom(4).hex()}"


def _cgroup_roots() -> list[Path]:
    """Every cgroup hierarchy mounted (v1 controllers and the v2 unified one)."""
    roots = []
    for line in Path("/proc/self/mountinfo").read_text().splitlines():
        pre, _, post = line.partition(" - ")
        if post.split(" ", 1)[0] in ("cgroup", "cgroup2"):
            roots.append(Path(pre.split(" ")[4]))
    return roots


def container_cgroups(parent: str) -> list[Path]:
    """The cgroups under `parent` in every hierarchy (what containers left), deepest first."""
    found = []
    for root in _cgroup_roots():
        base = root / parent.lstrip("/")
        if base.is_dir():
            found += [p for p in base.rglob("*") if p.is_dir()]
    return sorted(found, key=lambda p: len(p.parts), reverse=True)


def cleanup_cgroups(parent: str) -> list[str]:
    """Kills what still runs under `parent` and removes its cgroups; returns what failed."""
    problems = []
    dirs = container_cgroups(parent)
    for d in dirs:
        try:
            for pid in (d / "cgroup.procs").read_text().split():
                try:
                    os.kill(int(pid), 9)
                except ProcessLookupError:
                    pass
        except OSError:
            pass
    for d in [*dirs, *(root / parent.lstrip("/") for root in _cgroup_roots())]:
        if d.is_dir() and not _wait_empty(d, timeout=5.0):
            problems.append(f"processes still in cgroup {d}")
        try:
            d.rmdir()
        except FileNotFoundError:
            pass
        except OSError as e:
            problems.append(f"cannot remove cgroup {d}: {e}")
    return problems


def _wait_empty(cgroup: Path, timeout: float) -> bool:
    """Polls until no process is left in `cgroup` (killed ones take a moment to leave)."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            if not (cgroup / "cgroup.procs").read_text().split():
                return True
        except OSError:
            return True  # gone already
        if time.monotonic() > deadline:
            return False
        time.sleep(0.02)



def shim_pids(roots: tuple[str, ...]) -> list[int]:
    """berth-shim processes holding a file under one of `roots` (a daemon's data and exec
    roots): the shims of that daemon's containers."""
    found = []
    for p in Path("/proc").iterdir():
        if not p.name.isdigit():
            continue
        try:
            if b"berth-shim" not in (p / "cmdline").read_bytes():
                continue
            targets = [os.readlink(f) for f in (p / "fd").iterdir()]
        except OSError:
            continue
        if any(t.startswith(roots) for t in targets):
            found.append(int(p.name))
    return found
