"""Cgroup v2 and cgroup namespaces.

These machines boot with the hybrid layout (v1 controllers, an empty cgroup2 hierarchy at
/sys/fs/cgroup/unified); most users' machines are pure v2. To drive the v2 code for real, a
berthd runs in a private mount namespace where /sys/fs/cgroup is that cgroup2 hierarchy:
it detects v2, and containers get v2 cgroups, a private cgroup namespace by default,
freezing through `cgroup.freeze`, stats from v2 files, and removal of their cgroups. The
hierarchy has no controllers here (all are bound to v1), so limits cannot be tested on it;
the v1 tests cover them."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

from conftest import DOCKER_BIN, import_busybox, poll
from hostclean import container_cgroups, shim_pids

UNIFIED = Path("/sys/fs/cgroup/unified")
V2_WRAPPER = (
    "set -e; umount -l /sys/fs/cgroup; mount -t cgroup2 cgroup2 /sys/fs/cgroup; exec \"$@\""
)


def _with_image(d, docker_env):
    env = docker_env({"DOCKER_HOST": d.unix_host})
    import_busybox(env)
    return env


def _dk(env, *args, check=True):
    r = subprocess.run([DOCKER_BIN, *args], env=env, capture_output=True, text=True, timeout=60)
    if check:
        assert r.returncode == 0, (args, r.stdout, r.stderr)
    return r


def _v2_daemon(berthd):
    assert UNIFIED.is_dir() or Path("/sys/fs/cgroup/cgroup.controllers").exists()
    d = berthd(start=False)
    plain = d.argv
    d.argv = lambda: ["unshare", "--mount", "--propagation", "private", "sh", "-c", V2_WRAPPER, "sh", *plain()]
    return d.start()


def test_cgroup_v2_lifecycle(berthd, docker_env):
    d = _v2_daemon(berthd)
    env = _with_image(d, docker_env)
    assert "2" == _dk(env, "info", "-f", "{{.CgroupVersion}}").stdout.strip()

    # A private cgroup namespace by default on v2, as dockerd: the container sees itself at /.
    out = _dk(env, "run", "--rm", "busybox", "cat", "/proc/self/cgroup").stdout
    assert "0::/\n" in out, out
    out = _dk(env, "run", "--rm", "--cgroupns", "host", "busybox", "cat", "/proc/self/cgroup").stdout
    assert f"0::{d.cgroup_parent}/" in out, out

    cid = _dk(env, "run", "-d", "--name", "v2box", "busybox", "sleep", "1000").stdout.strip()
    assert _dk(env, "inspect", "-f", "{{.HostConfig.CgroupnsMode}}", cid).stdout.strip() == "private"
    # The host sees it in the unified hierarchy, under the daemon's cgroup parent.
    cg = UNIFIED / d.cgroup_parent.lstrip("/") / cid
    pid = int(_dk(env, "inspect", "-f", "{{.State.Pid}}", cid).stdout)
    assert str(pid) in (cg / "cgroup.procs").read_text().split()
    # Its shim is beside it in <parent>/shims, out of berthd's cgroup (issue 14).
    shims = shim_pids((str(d.data_root), str(d.exec_root)))
    in_shims = (UNIFIED / d.cgroup_parent.lstrip("/") / "shims" / "cgroup.procs").read_text().split()
    assert shims and all(str(s) in in_shims for s in shims), (shims, in_shims)
    assert _dk(env, "exec", cid, "echo", "in").stdout == "in\n"

    _dk(env, "pause", cid)
    assert (cg / "cgroup.freeze").read_text().strip() == "1"
    poll(lambda: "frozen 1" in (cg / "cgroup.events").read_text(), 10, "the cgroup to freeze")
    assert _dk(env, "inspect", "-f", "{{.State.Status}}", cid).stdout.strip() == "paused"
    _dk(env, "unpause", cid)
    assert (cg / "cgroup.freeze").read_text().strip() == "0"
    assert _dk(env, "exec", cid, "echo", "thawed").stdout == "thawed\n"

    stats = json.loads(_dk(env, "stats", "--no-stream", "--format", "{{json .}}", cid).stdout)
    assert stats["Name"] == "v2box"
    raw = d.get_json(f"/containers/{cid}/stats?stream=0")
    assert raw["cpu_stats"]["cpu_usage"]["total_usage"] > 0, raw["cpu_stats"]

    # Live restore works the same: a daemon restart keeps it, and removal removes the cgroup.
    d.restart()
    assert _dk(env, "exec", cid, "echo", "after").stdout == "after\n"
    _dk(env, "rm", "-f", cid)
    poll(lambda: not cg.exists(), 20, "the container's v2 cgroup to be removed")
    assert not container_cgroups(d.cgroup_parent), container_cgroups(d.cgroup_parent)


def test_cgroupns_mode_on_v1(berthd, docker_env):
    d = berthd()
    env = _with_image(d, docker_env)
    # Host by default on v1, as dockerd; private on request.
    cid = _dk(env, "create", "busybox", "true").stdout.strip()
    assert _dk(env, "inspect", "-f", "{{.HostConfig.CgroupnsMode}}", cid).stdout.strip() == "host"
    out = _dk(env, "run", "--rm", "--cgroupns", "private", "busybox", "cat", "/proc/self/cgroup").stdout
    assert all(line.endswith(":/") for line in out.splitlines()), out
    out = _dk(env, "run", "--rm", "busybox", "cat", "/proc/self/cgroup").stdout
    assert any(d.cgroup_parent in line for line in out.splitlines()), out
    r = d.request("POST", "/containers/create", headers={"Content-Type": "application/json"},
                  body=json.dumps({"Image": "busybox", "HostConfig": {"CgroupnsMode": "bogus"}}).encode())
    assert r.status == 400 and r.json()["message"] == "invalid cgroup namespace mode: bogus", r.text
    assert len(d.get_json("/containers/json?all=1")) == 1
