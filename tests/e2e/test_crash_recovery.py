"""berthd killed mid-operation (issue 13): a container it froze for `cp`/`commit` must not
stay frozen. At start, running containers whose record is not paused are thawed; a
container paused with `docker pause` stays paused."""

from __future__ import annotations

import json
import signal
from pathlib import Path

from conftest import poll
from test_containers import daemon, dk  # noqa: F401 - the fixture and the CLI helper

COUNTER = "i=0; while true; do i=$((i+1)); echo $i > /tmp/n; usleep 20000; done"


def freezer(d, cid: str) -> tuple[Path, str, str]:
    """The container's freezer file, and what it holds frozen and thawed (v1 or v2)."""
    v1 = Path("/sys/fs/cgroup/freezer") / d.cgroup_parent.lstrip("/") / cid / "freezer.state"
    if v1.exists():
        return v1, "FROZEN", "THAWED"
    return Path("/sys/fs/cgroup") / d.cgroup_parent.lstrip("/") / cid / "cgroup.freeze", "1", "0"


def counter(d, cid: str) -> int:
    f = d.data_root / "containers" / cid / "rw" / "diff" / "tmp" / "n"
    try:
        return int(f.read_text().strip() or "0")
    except (FileNotFoundError, ValueError):
        return 0


def state(d, name: str) -> list[str]:
    return dk(d, "inspect", "-f", "{{.State.Status}} {{.State.Paused}} {{.State.Running}}", name).stdout.split()


def test_killed_daemon_leaves_no_container_frozen(daemon):
    cid = dk(daemon, "run", "-d", "--name", "c1", "busybox", "sh", "-c", COUNTER).stdout.strip()
    pid = dk(daemon, "run", "-d", "--name", "p1", "busybox", "sh", "-c", COUNTER).stdout.strip()
    poll(lambda: counter(daemon, cid) > 2 and counter(daemon, pid) > 2, 20, "the counters to run")
    dk(daemon, "pause", "p1")
    # Frozen by hand, as berthd freezes a container for the length of a `cp`.
    path, frozen, thawed = freezer(daemon, cid)
    path.write_text(frozen)
    poll(lambda: path.read_text().strip() == frozen, 20, "the container to freeze")
    daemon.signal(signal.SIGKILL)
    daemon.wait_exit()
    try:
        daemon.start()
        stopped_at = counter(daemon, cid)
        poll(lambda: path.read_text().strip() == thawed, 20, "the container to be thawed")
        poll(lambda: counter(daemon, cid) > stopped_at + 2, 20, "the counter to run again")
        assert state(daemon, "c1") == ["running", "false", "true"]
        assert "thawing a container left frozen by an earlier run" in daemon.log_text()
        # The container paused by `docker pause` is still paused, and unpauses.
        assert state(daemon, "p1") == ["paused", "true", "true"]
        assert freezer(daemon, pid)[0].read_text().strip() == frozen
        dk(daemon, "unpause", "p1")
        assert state(daemon, "p1") == ["running", "false", "true"]
    finally:
        if path.exists():
            path.write_text(thawed)  # a daemon that does not thaw it could not remove it
        if not daemon.running():
            daemon.start()
        dk(daemon, "rm", "-f", "c1", "p1", check=False)


def test_processes_are_addressed_by_pidfd_after_a_restart(daemon):
    """A running container adopted by a restarted daemon: `cp` out of it (its root through
    a pidfd checked against the recorded start time) and `exec -u` still work."""
    dk(daemon, "run", "-d", "--name", "c1", "busybox", "sh", "-c", "echo hello > /tmp/f; exec sleep 1000")
    poll(lambda: dk(daemon, "exec", "c1", "cat", "/tmp/f", check=False).stdout == "hello\n", 20,
         "the file to be written")
    cid = dk(daemon, "inspect", "-f", "{{.Id}}", "c1").stdout.strip()
    daemon.signal(signal.SIGKILL)
    daemon.wait_exit()
    try:
        # A record written before start times were kept: the start fills it in.
        record = daemon.data_root / "containers" / cid / "record.json"
        rec = json.loads(record.read_text())
        assert rec["state"].pop("start_time") > 0
        record.write_text(json.dumps(rec))
        daemon.start()
        assert json.loads(record.read_text())["state"]["start_time"] > 0
        assert dk(daemon, "cp", "c1:/tmp/f", "-").returncode == 0
        assert dk(daemon, "exec", "-u", "nobody", "c1", "id", "-u").stdout.strip() == "65534"
    finally:
        if not daemon.running():
            daemon.start()
        dk(daemon, "rm", "-f", "c1", check=False)
