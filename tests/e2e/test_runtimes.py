"""External OCI runtimes through the real docker CLI: runc beside the embedded `berth`
runtime (`--runtime`, `HostConfig.Runtime`, `docker info`), exec/logs/stop/pause of a runc
container, Docker's exit codes, dockerd's refusals of unknown runtimes and bad daemon
settings, a daemon.json runtime with runtimeArgs, survival across a berthd kill -9, a
runtime that hangs (bounded, the shim serving meanwhile), and no runc state, mounts,
shims or cgroups left after removal."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
from pathlib import Path

import pytest

from conftest import BERTHD_BIN, DOCKER_BIN, container_ids, expect_start_failure, isolated_network, poll
from test_containers import dk

JSON = {"Content-Type": "application/json"}


def runc_path() -> str:
    path = shutil.which("runc") or shutil.which("runc", path="/usr/sbin:/usr/bin")
    assert path, "these tests need runc (apt-get install runc)"
    return path


def runtime_dirs(d) -> list[Path]:
    """The runtime state directories (runc's --root, libcontainer's root) under the exec root."""
    return list((d.exec_root / "containers").glob("*/runtime"))


@pytest.fixture
def make_daemon(busybox_daemon):
    """Factory: a leak-checked berthd with busybox (as `busybox_daemon`) whose containers'
    runtime state directories must also be gone once they are removed."""
    made = []

    def make(**kw):
        d = busybox_daemon(**kw)
        made.append(d)
        return d

    yield make
    for d in made:
        subprocess.run([DOCKER_BIN, "rm", "-f", *container_ids(d)], env=d.docker_env, capture_output=True,
                       timeout=60)
        assert not runtime_dirs(d), "runtime state left after removal"


@pytest.fixture
def daemon(make_daemon):
    return make_daemon()


def inspect(d, name: str, fmt: str) -> str:
    return dk(d, "inspect", "-f", fmt, name).stdout.strip()


def rid(d, name: str) -> str:
    """The runtime's name for a container (a 24-hex prefix of its ID)."""
    return inspect(d, name, "{{.Id}}")[:24]


def runc_status(d, name: str) -> str:
    """What runc itself says of the container (its state lives in the exec root)."""
    r = rid(d, name)
    root = d.exec_root / "containers" / r / "runtime"
    out = subprocess.run([runc_path(), "--root", str(root), "state", r], capture_output=True, text=True,
                         timeout=30)
    assert out.returncode == 0, out.stderr
    return json.loads(out.stdout)["status"]


def test_run_rm_echo_with_runc(daemon):
    r = dk(daemon, "run", "--rm", "--runtime", "runc", "busybox", "echo", "hi")
    assert (r.returncode, r.stdout) == (0, "hi\n"), r.stderr
    # A tty too (runc sends the pty master to the shim's console socket).
    r = dk(daemon, "run", "--rm", "-t", "--runtime", "runc", "busybox", "tty")
    assert r.stdout.startswith("/dev/pts/"), r
    assert dk(daemon, "ps", "-aq").stdout.strip() == ""


def test_runtime_in_inspect_and_info(daemon):
    dk(daemon, "create", "--name", "viarunc", "--runtime", "runc", "busybox", "true")
    dk(daemon, "create", "--name", "plain", "busybox", "true")
    assert inspect(daemon, "viarunc", "{{.HostConfig.Runtime}}") == "runc"
    assert inspect(daemon, "plain", "{{.HostConfig.Runtime}}") == "berth"
    info = json.loads(dk(daemon, "info", "--format", "{{json .}}").stdout)
    assert info["DefaultRuntime"] == "berth"
    assert info["Runtimes"]["berth"]["path"] == "berth-shim"
    assert info["Runtimes"]["runc"] == {"path": "runc"}
    text = dk(daemon, "info").stdout
    # The docker CLI prints the runtimes in Go map order, which varies from run to run.
    runtimes = [l for l in text.splitlines() if l.startswith(" Runtimes: ")]
    assert len(runtimes) == 1 and sorted(runtimes[0].split()[1:]) == ["berth", "runc"], text
    assert " Default Runtime: berth" in text, text
    api = daemon.get_json("/info")
    assert api["Runtimes"] == info["Runtimes"] and api["DefaultRuntime"] == "berth"


def test_detached_runc_container_exec_logs_pause_stop(daemon):
    dk(daemon, "run", "-d", "--name", "svc", "--runtime", "runc", "busybox", "sh", "-c",
       'echo started; trap "exit 7" TERM; while :; do sleep 0.1; done')
    assert runc_status(daemon, "svc") == "running"
    poll(lambda: "started" in dk(daemon, "logs", "svc").stdout, 20, "the first log line")
    assert inspect(daemon, "svc", "{{.State.Status}} {{.HostConfig.Runtime}}") == "running runc"
    # exec: plain, with a tty, exit codes, a missing executable.
    r = dk(daemon, "exec", "svc", "cat", "/proc/1/cmdline")
    assert r.stdout.startswith("sh\0-c\0echo started"), r.stdout
    r = dk(daemon, "exec", "-t", "svc", "tty")
    assert r.stdout.startswith("/dev/pts/"), r
    r = dk(daemon, "exec", "svc", "sh", "-c", "echo out; echo err >&2; exit 4", check=False)
    assert (r.returncode, r.stdout, r.stderr) == (4, "out\n", "err\n")
    r = dk(daemon, "exec", "svc", "nosuchcmd", check=False)
    assert r.returncode == 127, r
    # The CLI prints an attached exec's start failure on stdout, as with the embedded runtime.
    assert 'exec: "nosuchcmd": executable file not found in $PATH' in r.stdout + r.stderr, r
    # The cgroup mount runc makes is read-only.
    r = dk(daemon, "exec", "svc", "sh", "-c", "echo 1 > /sys/fs/cgroup/memory/memory.limit_in_bytes", check=False)
    assert r.returncode != 0 and "Read-only file system" in r.stderr, r
    # pause/unpause: runc's own state follows.
    dk(daemon, "pause", "svc")
    assert inspect(daemon, "svc", "{{.State.Status}}") == "paused"
    assert runc_status(daemon, "svc") == "paused"
    dk(daemon, "unpause", "svc")
    assert runc_status(daemon, "svc") == "running"
    # stop: SIGTERM reaches the trap; the exit code is the container's.
    dk(daemon, "stop", "-t", "20", "svc")
    assert inspect(daemon, "svc", "{{.State.Status}} {{.State.ExitCode}}") == "exited 7"
    # Its runc state went with the process; restarting runs it through runc again.
    assert not runtime_dirs(daemon)
    dk(daemon, "start", "svc")
    assert runc_status(daemon, "svc") == "running"
    dk(daemon, "kill", "svc")
    poll(lambda: inspect(daemon, "svc", "{{.State.Status}}") == "exited", 20, "exit after kill")
    assert inspect(daemon, "svc", "{{.State.ExitCode}}") == "137"
    dk(daemon, "rm", "svc")
    assert not runtime_dirs(daemon)


def test_runc_execs_that_end_before_their_command_do(daemon):
    """A short exec through runc can end, and be reaped by the shim, before the `runc exec`
    command that started it: each still answers its output and exit code (it once failed
    one time in sixteen with "No such process")."""
    dk(daemon, "run", "-d", "--name", "quick", "--runtime", "runc", "busybox", "sleep", "300")
    for i in range(40):
        r = dk(daemon, "exec", "quick", "sh", "-c", f"echo {i}; exit {i % 3}", check=False)
        assert (r.returncode, r.stdout) == (i % 3, f"{i}\n"), (i, r)
    dk(daemon, "rm", "-f", "quick")


def test_missing_executable_exits_127_with_runc(daemon):
    r = dk(daemon, "run", "--rm", "--runtime", "runc", "busybox", "nosuchcmd", check=False)
    assert r.returncode == 127, r
    assert 'exec: "nosuchcmd": executable file not found in $PATH' in r.stderr, r.stderr
    assert "runc create failed" in r.stderr, r.stderr
    r = dk(daemon, "run", "--rm", "--runtime", "runc", "busybox", "/no/such/binary", check=False)
    assert r.returncode == 127, r
    r = dk(daemon, "run", "--rm", "--runtime", "runc", "busybox", "/etc", check=False)
    assert r.returncode == 126, r
    dk(daemon, "create", "--name", "kept", "--runtime", "runc", "busybox", "nosuchcmd")
    r = dk(daemon, "start", "kept", check=False)
    assert r.returncode != 0 and "executable file not found" in r.stderr, r
    assert inspect(daemon, "kept", "{{.State.Status}} {{.State.ExitCode}}") == "created 127"
    assert "executable file not found" in inspect(daemon, "kept", "{{.State.Error}}")
    dk(daemon, "rm", "kept")
    assert dk(daemon, "ps", "-aq").stdout.strip() == ""


def test_unknown_runtime_is_refused_and_nothing_is_left(daemon):
    r = dk(daemon, "run", "--name", "ghost", "--runtime", "nope", "busybox", "true", check=False)
    assert r.returncode == 125, r
    assert "unknown or invalid runtime name: nope" in r.stderr, r.stderr
    assert dk(daemon, "ps", "-aq").stdout.strip() == ""
    resp = daemon.request("POST", "/containers/create?name=ghost", headers=JSON,
                          body=json.dumps({"Image": "busybox", "Cmd": ["true"],
                                           "HostConfig": {"Runtime": "nope"}}).encode())
    assert resp.status == 400, resp.text
    assert resp.json() == {"message": "unknown or invalid runtime name: nope"}
    assert daemon.request("GET", "/containers/ghost/json").status == 404
    assert not list((daemon.data_root / "containers").iterdir())
    # The name is free: nothing was reserved.
    dk(daemon, "create", "--name", "ghost", "busybox", "true")


def test_daemon_json_runtime_with_args_and_default(make_daemon):
    d = make_daemon(config={
        "runtimes": {"dbg": {"path": runc_path(), "runtimeArgs": ["--debug"]}},
        "default-runtime": "dbg",
    })
    info = d.get_json("/info")
    assert info["DefaultRuntime"] == "dbg"
    assert info["Runtimes"]["dbg"] == {"path": runc_path(), "runtimeArgs": ["--debug"]}
    assert set(info["Runtimes"]) == {"berth", "dbg", "runc"}
    r = dk(d, "run", "--rm", "busybox", "echo", "hi")
    assert (r.returncode, r.stdout) == (0, "hi\n"), r.stderr
    dk(d, "run", "-d", "--name", "dbg1", "busybox", "sleep", "1000")
    assert inspect(d, "dbg1", "{{.HostConfig.Runtime}}") == "dbg"
    assert runc_status(d, "dbg1") == "running"
    # runtimeArgs reach the binary: runc --debug logs at debug level.
    log = (d.exec_root / "containers" / rid(d, "dbg1") / "runtime.log").read_text()
    assert '"level":"debug"' in log, log[:2000]
    assert dk(d, "exec", "dbg1", "echo", "in").stdout == "in\n"
    # The embedded runtime is still there by name.
    r = dk(d, "run", "--rm", "--runtime", "berth", "busybox", "echo", "embedded")
    assert r.stdout == "embedded\n"


def test_add_runtime_flag_and_missing_binary(make_daemon):
    d = make_daemon(extra_args=["--add-runtime", "oci=runc", "--add-runtime", "vm=/nonexistent/vm-manager"])
    assert set(d.get_json("/info")["Runtimes"]) == {"berth", "oci", "runc", "vm"}
    r = dk(d, "run", "--rm", "--runtime", "oci", "busybox", "echo", "hi")
    assert r.stdout == "hi\n", r
    # dockerd's words for a runtime binary that is not there; the CLI makes it 127.
    r = dk(d, "run", "--rm", "--runtime", "vm", "busybox", "true", check=False)
    assert r.returncode == 127, r
    assert "/nonexistent/vm-manager: no such file or directory" in r.stderr, r.stderr
    assert dk(d, "ps", "-aq").stdout.strip() == ""


def test_runc_container_survives_berthd_kill_9(daemon):
    dk(daemon, "run", "-d", "--name", "survivor", "--runtime", "runc", "busybox", "sh", "-c",
       "echo before; sleep 1000")
    pid = int(inspect(daemon, "survivor", "{{.State.Pid}}"))
    daemon.signal(signal.SIGKILL)
    daemon.wait_exit()
    assert Path(f"/proc/{pid}").exists(), "the container died with berthd"
    daemon.start()
    assert inspect(daemon, "survivor", "{{.State.Status}} {{.State.Pid}}") == f"running {pid}"
    assert runc_status(daemon, "survivor") == "running"
    assert dk(daemon, "exec", "survivor", "echo", "after").stdout == "after\n"
    assert dk(daemon, "exec", "-t", "survivor", "tty").stdout.startswith("/dev/pts/")
    dk(daemon, "stop", "-t", "1", "survivor")
    assert inspect(daemon, "survivor", "{{.State.Status}} {{.State.ExitCode}}") == "exited 137"
    assert dk(daemon, "logs", "survivor").stdout == "before\n"
    dk(daemon, "rm", "survivor")
    assert not Path(f"/proc/{pid}").exists()


@pytest.mark.parametrize(
    "args,config,words",
    [
        (["--default-runtime", "crun"], {}, "specified default runtime 'crun' does not exist"),
        (["--add-runtime", "berth=/usr/sbin/runc"], {}, "runtime name 'berth' is reserved"),
        ([], {"runtimes": {"berth": {"path": "/usr/sbin/runc"}}}, "runtime name 'berth' is reserved"),
        ([], {"runtimes": {"vm": {"runtimeArgs": ["--debug"]}}}, "runtime vm: a path must be configured"),
        (["--add-runtime", "nopath"], {}, "invalid runtime argument: nopath"),
        (["--add-runtime", "vm=/x"], {"runtimes": {"oci": {"path": "runc"}}},
         "specified both as a flag and in the configuration file: runtimes"),
    ],
)
def test_bad_runtime_settings_stop_the_daemon(workdir, args, config, words):
    net_flags, cleanup = isolated_network()
    cfg = workdir / "daemon.json"
    cfg.write_text(json.dumps(config))
    argv = [str(BERTHD_BIN), "-H", f"unix://{workdir}/s.sock", f"--data-root={workdir}/data",
            f"--exec-root={workdir}/exec", f"--pidfile={workdir}/pid", f"--config-file={cfg}",
            *net_flags, *args]
    try:
        proc = expect_start_failure(argv)
    finally:
        cleanup(workdir / "data")
    assert words in proc.stderr, proc.stderr


def hang_runtime(directory: Path, step: str) -> Path:
    """A runtime that is runc but for `step`, where it writes its pid to
    `directory/<step>.pid` and hangs."""
    script = directory / f"hang-{step}"
    script.write_text(f"""#!/bin/sh
for a in "$@"; do
    if [ "$a" = {step} ]; then echo $$ > {directory}/{step}.pid; exec sleep 1000; fi
done
exec {runc_path()} "$@"
""")
    script.chmod(0o755)
    return script


def alive(pid: int) -> bool:
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return False
    return not stat.rsplit(")", 1)[-1].lstrip().startswith("Z")


def test_a_hung_runtime_pause_is_bounded_and_the_shim_serves_meanwhile(make_daemon, workdir):
    """A runtime whose `pause` never returns: the shim kills it past its bound
    ($BERTH_SHIM_RUNTIME_TIMEOUT: 10 s here, room for runc's other steps on a loaded host)
    and the pause fails naming the runtime and the step; logs, exec, inspect and stop are
    served meanwhile (before: the shim waited for the runtime, so every request to it
    hung with the pause)."""
    rt = hang_runtime(workdir, "pause")
    pid_file = workdir / "pause.pid"
    d = make_daemon(config={"runtimes": {"hang": {"path": str(rt)}}},
                    env={"BERTH_SHIM_RUNTIME_TIMEOUT": "10"})
    pauses = []

    def pause_in_background() -> int:
        pid_file.unlink(missing_ok=True)
        pauses.append(subprocess.Popen([DOCKER_BIN, "pause", "hung"], env=d.docker_env,
                                       stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True))
        poll(lambda: pid_file.exists() and pid_file.read_text().strip(), 30, "the runtime's pause to hang")
        return int(pid_file.read_text())

    try:
        r = dk(d, "run", "-d", "--name", "hung", "--runtime", "hang", "busybox", "sh", "-c",
               'echo started; trap "exit 7" TERM; while :; do sleep 0.1; done', check=False)
        assert r.returncode == 0, r.stderr
        poll(lambda: "started" in dk(d, "logs", "hung").stdout, 20, "the first log line")
        hung = pause_in_background()
        assert "started" in dk(d, "logs", "hung", timeout=30).stdout
        assert dk(d, "exec", "hung", "echo", "in", timeout=30).stdout == "in\n"
        assert inspect(d, "hung", "{{.State.Status}}") == "running"
        out, err = pauses[0].communicate(timeout=60)
        assert pauses[0].returncode != 0, (out, err)
        assert "pause: hang pause did not finish within 10s: killed" in err, err
        poll(lambda: not alive(hung), 20, "the hung runtime command to be killed")
        assert inspect(d, "hung", "{{.State.Status}}") == "running"
        assert runc_status(d, "hung") == "running"

        # Hung again: a stop ends the container under it, and the pause with it.
        hung = pause_in_background()
        dk(d, "stop", "-t", "20", "hung", timeout=60)
        assert inspect(d, "hung", "{{.State.Status}} {{.State.ExitCode}}") == "exited 7"
        out, err = pauses[1].communicate(timeout=60)
        assert pauses[1].returncode != 0, (out, err)
        poll(lambda: not alive(hung), 20, "the hung runtime command to be killed")
        dk(d, "rm", "hung")
    finally:
        # Without the fix nothing ends the hung command: end it so the teardown can run.
        if pid_file.exists() and pid_file.read_text().strip():
            try:
                os.kill(int(pid_file.read_text()), signal.SIGKILL)
            except ProcessLookupError:
                pass
        for p in pauses:
            if p.poll() is None:
                p.kill()
                p.wait(timeout=10)
