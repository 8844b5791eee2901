"""Shims live in their own cgroup, `<cgroup-parent>/shims` (issue 14): a service manager
that stops berthd's cgroup (systemd's `KillMode=control-group` kills every process in it)
must leave the shims, and with them the containers, running; a restarted berthd adopts
them. Before, each shim stayed in berthd's cgroup and died with it.

The test puts berthd in a cgroup of its own, as systemd puts berthd.service, in the
hierarchy systemd tracks services by (the unified one, else `name=systemd`, else pids),
then kills every process in it."""

from __future__ import annotations

import os
import signal
from pathlib import Path

import pytest

from conftest import poll
from hostclean import cleanup_cgroups, pick_cgroup_parent, shim_pids
from test_containers import dk


def service_hierarchy() -> Path:
    """Where systemd would track berthd.service: the cgroup2 mount at /sys/fs/cgroup,
    else the `name=systemd` v1 hierarchy, else the pids one."""
    found: dict[str, Path] = {}
    for line in Path("/proc/self/mountinfo").read_text().splitlines():
        pre, _, post = line.partition(" - ")
        fields = post.split(" ")
        mountpoint = Path(pre.split(" ")[4])
        if fields[0] == "cgroup2" and mountpoint == Path("/sys/fs/cgroup"):
            found["v2"] = mountpoint
        elif fields[0] == "cgroup" and len(fields) > 2:
            for opt in fields[2].split(","):
                found.setdefault(opt, mountpoint)
    for key in ("v2", "name=systemd", "pids"):
        if key in found:
            return found[key]
    raise AssertionError("no cgroup hierarchy to put berthd in")


def cgroups_of(pid: int) -> list[str]:
    """The paths of `/proc/<pid>/cgroup`, one per hierarchy."""
    return [l.split(":", 2)[2] for l in Path(f"/proc/{pid}/cgroup").read_text().splitlines()]


def resource_cgroups_of(pid: int) -> list[str]:
    """Its paths in the pids and memory hierarchies (v1), else in the unified one (v2):
    where a runtime puts a container (libcontainer leaves named v1 hierarchies alone)."""
    lines = [l.split(":", 2) for l in Path(f"/proc/{pid}/cgroup").read_text().splitlines()]
    v1 = [path for _, ctrls, path in lines if {"pids", "memory"} & set(ctrls.split(","))]
    return v1 or [path for _, ctrls, path in lines if ctrls == ""]


def procs(cgroup: Path) -> list[int]:
    try:
        return [int(p) for p in (cgroup / "cgroup.procs").read_text().split()]
    except FileNotFoundError:
        return []


def kill_cgroup(cgroup: Path) -> list[int]:
    """SIGKILLs every process in `cgroup` until none is left, as systemd stops a service;
    returns the pids it killed."""
    killed: list[int] = []

    def empty() -> bool:
        for pid in procs(cgroup):
            try:
                os.kill(pid, signal.SIGKILL)
                killed.append(pid)
            except ProcessLookupError:
                pass
        return not procs(cgroup)

    poll(empty, 20, f"every process of {cgroup} to die")
    return killed


@pytest.mark.parametrize("runtime", ["berth", "runc"])
def test_shims_are_out_of_berthds_cgroup_and_survive_its_stop(busybox_daemon, runtime):
    d = busybox_daemon()
    svc_name = pick_cgroup_parent("berth-e2e-svc")
    svc = service_hierarchy() / svc_name.lstrip("/")
    svc.mkdir()
    try:
        (svc / "cgroup.procs").write_text(str(d.pid))
        dk(d, "run", "-d", "--name", "kept", "--runtime", runtime, "busybox", "sh", "-c",
           "echo before; sleep 1000")
        cid = dk(d, "inspect", "-f", "{{.Id}}", "kept").stdout.strip()
        pid = int(dk(d, "inspect", "-f", "{{.State.Pid}}", "kept").stdout.strip())
        roots = (str(d.data_root), str(d.exec_root))
        shims = shim_pids(roots)
        assert len(shims) == 1, shims
        shim = shims[0]
        # The shim is in <parent>/shims in every hierarchy, not in berthd's cgroup; the
        # container's init was moved on into its own cgroup.
        shim_cgroups = cgroups_of(shim)
        assert all(p == f"{d.cgroup_parent}/shims" for p in shim_cgroups), shim_cgroups
        assert svc_name in cgroups_of(d.pid), cgroups_of(d.pid)
        init_cgroups = resource_cgroups_of(pid)
        assert init_cgroups and all(p == f"{d.cgroup_parent}/{cid}" for p in init_cgroups), cgroups_of(pid)

        # The service manager stops berthd's cgroup: berthd dies, nothing else does.
        killed = kill_cgroup(svc)
        assert d.pid in killed and shim not in killed and pid not in killed, killed
        d.wait_exit()
        assert Path(f"/proc/{shim}").exists() and Path(f"/proc/{pid}").exists()

        # A restarted berthd adopts the container through its shim.
        d.start()
        assert dk(d, "inspect", "-f", "{{.State.Status}} {{.State.Pid}}", "kept").stdout.strip() == \
            f"running {pid}"
        assert dk(d, "exec", "kept", "echo", "after").stdout == "after\n"
        dk(d, "stop", "-t", "1", "kept")
        assert dk(d, "inspect", "-f", "{{.State.Status}} {{.State.ExitCode}}", "kept").stdout.strip() == \
            "exited 137"
        assert dk(d, "logs", "kept").stdout == "before\n"
        dk(d, "rm", "kept")
        # The last shim out removed the shims cgroup.
        assert not shim_pids(roots)
    finally:
        # A berthd still there (the test failed before stopping it) goes back to the root
        # cgroup, so that the fixture can stop it and clean up its containers.
        for pid in procs(svc):
            try:
                (svc.parent / "cgroup.procs").write_text(str(pid))
            except OSError:
                pass
        problems = cleanup_cgroups(svc_name)
        assert not problems, problems
