"""1000 `run --rm` cycles leave nothing behind: no mounts, cgroups, veths, shim processes,
zombies, records or daemon file descriptors, and the default bridge's addresses are all
handed back (its /24 has room for 253 containers, far fewer than the cycles).

The cycles go through the API as `docker run --rm` does (create with AutoRemove, start,
wait for `removed`), four at a time, so that a thousand fit in CI; a few real
`docker run --rm` calls come first so the CLI path is part of it."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import threading
from pathlib import Path

from conftest import DOCKER_BIN, import_busybox, poll
from hostclean import container_cgroups, shim_pids

CYCLES = 1000
WORKERS = 4
# Descriptors a daemon may open lazily after the warm-up (a client connection mid-close,
# a log reader); a leak of one per cycle would show as hundreds.
FD_SLACK = 16


def _fds(pid: int) -> list[str]:
    out = []
    for f in Path(f"/proc/{pid}/fd").iterdir():
        try:
            out.append(os.readlink(f))
        except OSError:
            pass
    return out


def _children(pid: int) -> list[tuple[int, str]]:
    """(pid, state) of the daemon's direct children."""
    kids = []
    for p in Path("/proc").iterdir():
        if not p.name.isdigit():
            continue
        try:
            stat = (p / "stat").read_text()
        except OSError:
            continue
        fields = stat.rsplit(")", 1)[1].split()
        if int(fields[1]) == pid:
            kids.append((int(p.name), fields[0]))
    return kids


def _mounts_under(roots: tuple[str, ...]) -> list[str]:
    lines = Path("/proc/self/mountinfo").read_text().splitlines()
    return [m for m in (l.split(" ")[4] for l in lines) if m.startswith(roots)]


def _bridge_ports(bridge: str) -> list[str]:
    brif = Path(f"/sys/class/net/{bridge}/brif")
    return sorted(p.name for p in brif.iterdir()) if brif.exists() else []


def _cycle(d, n: int) -> None:
    body = json.dumps({"Image": "busybox", "Cmd": ["true"], "HostConfig": {"AutoRemove": True}}).encode()
    r = d.request("POST", "/containers/create", headers={"Content-Type": "application/json"}, body=body)
    assert r.status == 201, f"cycle {n}: create {r.status} {r.text}"
    cid = r.json()["Id"]
    # As the CLI does: the wait is registered (its headers come back at once) before start,
    # so the removal cannot be missed.
    s = socket.socket(socket.AF_UNIX)
    s.settimeout(120)
    try:
        s.connect(str(d.sock))
        s.sendall(f"POST /containers/{cid}/wait?condition=removed HTTP/1.1\r\nHost: x\r\n"
                  "Connection: close\r\nContent-Length: 0\r\n\r\n".encode())
        got = b""
        while b"\r\n\r\n" not in got:
            chunk = s.recv(4096)
            assert chunk, f"cycle {n}: wait closed early: {got!r}"
            got += chunk
        assert got.startswith(b"HTTP/1.1 200"), f"cycle {n}: wait {got[:200]!r}"
        r = d.request("POST", f"/containers/{cid}/start")
        assert r.status == 204, f"cycle {n}: start {r.status} {r.text}"
        while chunk := s.recv(4096):
            got += chunk
    finally:
        s.close()
    assert b'"StatusCode":0' in got.replace(b" ", b""), f"cycle {n}: {got[-300:]!r}"


def test_thousand_run_rm_cycles_leak_nothing(berthd, docker_env):
    d = berthd()
    env = docker_env({"DOCKER_HOST": d.unix_host})
    import_busybox(env)
    roots = (str(d.data_root), str(d.exec_root))

    for i in range(5):
        r = subprocess.run([DOCKER_BIN, "run", "--rm", "busybox", "echo", f"cli-{i}"], env=env,
                           capture_output=True, text=True, timeout=60)
        assert r.returncode == 0 and r.stdout == f"cli-{i}\n", r.stderr
    # Warm-up through the API too, then the baseline.
    for i in range(WORKERS * 2):
        _cycle(d, -1 - i)
    fds_before = _fds(d.pid)

    errors: list[str] = []
    counter = iter(range(CYCLES))
    lock = threading.Lock()

    def worker() -> None:
        while True:
            with lock:
                n = next(counter, None)
            if n is None or errors:
                return
            try:
                _cycle(d, n)
            except AssertionError as e:  # collected, reported with the first failure
                errors.append(str(e))
                return

    threads = [threading.Thread(target=worker) for _ in range(WORKERS)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors, errors[:3]

    # Nothing of any container is left while the daemon still runs.
    assert d.get_json("/containers/json?all=1") == []
    poll(lambda: not shim_pids(roots), 30, "shims to exit")
    assert not _mounts_under(roots), _mounts_under(roots)
    assert not container_cgroups(d.cgroup_parent), container_cgroups(d.cgroup_parent)
    # Stopped containers' veths are deleted in the background (the kernel takes ~20 ms each).
    poll(lambda: _bridge_ports(d.bridge) == [], 30, f"the veths on {d.bridge} to go")
    assert not [k for k in _children(d.pid) if k[1] == "Z"], "zombie children of berthd"
    assert not list((d.exec_root / "containers").glob("*")), list((d.exec_root / "containers").iterdir())
    assert not list((d.data_root / "containers").glob("*")), list((d.data_root / "containers").iterdir())
    fds_after = _fds(d.pid)
    assert len(fds_after) <= len(fds_before) + FD_SLACK, (
        f"daemon descriptors grew from {len(fds_before)} to {len(fds_after)}: "
        f"{sorted(set(fds_after) - set(fds_before))[:20]}"
    )
    # Every address went back to the pool: one more container still gets one.
    r = subprocess.run([DOCKER_BIN, "run", "--rm", "busybox", "sh", "-c", "ip -4 -o addr show eth0"],
                       env=env, capture_output=True, text=True, timeout=60)
    assert r.returncode == 0 and "inet " in r.stdout, (r.stdout, r.stderr)
