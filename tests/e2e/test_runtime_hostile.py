"""A hostile container on the external runtime runc (issue 13: no request may hang).

`runc exec` opens the container's `/etc/passwd` itself (libcontainer's setupUser), so a
container that replaces it by a FIFO with no writer makes every `runc exec` block for
ever. The shim must go on serving: the exec fails within its bound, `kill` and `rm -f`
of the container work while an exec is stuck (and end it), the daemon keeps answering,
and nothing (runc processes, runc state, shims) is left behind."""

from __future__ import annotations

import subprocess
from pathlib import Path

from conftest import DOCKER_BIN, poll
from test_containers import dk
from test_hostile_images import answers, release_fifo_readers
from test_runtimes import daemon, make_daemon  # noqa: F401 - the fixtures

# The shim gives a `runc exec` 30 s to start the process; the CLI must be back well
# within this.
EXEC_BOUND = 90
# kill and rm -f do not wait for a stuck exec at all.
KILL_BOUND = 30


def runc_processes(container: str) -> list[int]:
    """Pids of the runc commands naming the container (its runtime name, a prefix of
    `container`) and of the `runc init` processes in its cgroup, seen through /proc."""
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            argv = (entry / "cmdline").read_bytes().split(b"\0")
            if not argv[0].endswith(b"runc"):
                continue
            if container[:24].encode() in argv or (
                    argv[1:2] == [b"init"] and container in (entry / "cgroup").read_text()):
                found.append(int(entry.name))
        except OSError:
            continue
    return found


def no_runc_left(container: str, what: str) -> None:
    try:
        poll(lambda: not runc_processes(container), 20, what)
    except TimeoutError:
        left = runc_processes(container)
        ps = subprocess.run(["ps", "-o", "pid,ppid,pgid,sid,stat,wchan:20,args", "-p", ",".join(map(str, left))],
                            capture_output=True, text=True).stdout if left else ""
        raise AssertionError(f"timed out waiting for {what}:\n{ps}") from None


def plant_fifo(d, name: str) -> str:
    dk(d, "run", "-d", "--name", name, "--runtime", "runc", "busybox", "sleep", "1000")
    dk(d, "exec", name, "sh", "-c", "rm /etc/passwd && mkfifo /etc/passwd")
    return dk(d, "inspect", "-f", "{{.Id}}", name).stdout.strip()


def test_stuck_runc_exec_is_bounded_and_kill_still_works(daemon):  # noqa: F811
    cid = plant_fifo(daemon, "c1")
    stuck = None
    try:
        # An exec alone: it fails within the bound and leaves no runc command behind.
        r = dk(daemon, "exec", "c1", "true", check=False, timeout=EXEC_BOUND)
        # As dockerd reports an exec that could not start: 126, the runtime's reason.
        assert r.returncode == 126, r
        assert "runc exec did not start the process within 30s: killed" in r.stdout + r.stderr, r
        no_runc_left(cid, "the stuck runc exec to end")
        answers(daemon)
        assert dk(daemon, "inspect", "-f", "{{.State.Status}}", "c1").stdout.strip() == "running"

        # Another exec stuck in runc: the shim still serves state, kill and rm -f, which
        # end the stuck exec too.
        stuck = subprocess.Popen([DOCKER_BIN, "exec", "c1", "true"], env=daemon.docker_env,
                                 stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        poll(lambda: runc_processes(cid), 20, "a runc exec of the container")
        answers(daemon)
        assert dk(daemon, "inspect", "-f", "{{.State.Status}}", "c1").stdout.strip() == "running"
        assert dk(daemon, "kill", "-s", "USR1", "c1", timeout=KILL_BOUND).returncode == 0
        assert dk(daemon, "rm", "-f", "c1", timeout=KILL_BOUND).returncode == 0
        out, err = stuck.communicate(timeout=KILL_BOUND)
        assert stuck.returncode != 0, (out, err)
        no_runc_left(cid, "no runc process of the removed container")
        assert dk(daemon, "ps", "-aq").stdout.strip() == ""
        answers(daemon)
    finally:
        # Without the fix, a writer lets the blocked runc go on, so the teardown can run.
        release_fifo_readers(daemon)
        if stuck is not None and stuck.poll() is None:
            stuck.kill()
            stuck.wait(timeout=10)
        dk(daemon, "rm", "-f", "c1", check=False)
