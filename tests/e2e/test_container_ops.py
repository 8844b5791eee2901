"""Operations on a running container, through the real docker CLI and docker-py: exec
(exit codes, output, env/user/workdir, stdin, a pseudo-terminal, detached), top, stats,
pause/unpause, update, and exec into a container that outlived a `kill -9` of berthd."""

from __future__ import annotations

import importlib
import fcntl
import json
import os
import pty
import re
import select
import signal
import socket
import struct
import subprocess
import termios
import time
from pathlib import Path


from conftest import BERTH_BIN, DOCKER_BIN, definition, poll, schema_errors, swagger
from test_containers import daemon, dk  # noqa: F401 - the fixture and the CLI helper

MIB = 1024 * 1024


def run_sleeper(d, *flags: str, name: str = "c1") -> str:
    return dk(d, "run", "-d", "--name", name, *flags, "busybox", "sleep", "1000").stdout.strip()


def cgroup_file(d, controller: str, cid: str, name: str) -> Path:
    return Path("/sys/fs/cgroup") / controller / d.cgroup_parent.lstrip("/") / cid / name


def test_exec_exit_codes_and_output(daemon):
    run_sleeper(daemon)
    r = dk(daemon, "exec", "c1", "echo", "hi")
    assert (r.returncode, r.stdout) == (0, "hi\n")
    r = dk(daemon, "exec", "c1", "sh", "-c", "echo out; echo err >&2; exit 7", check=False)
    assert (r.returncode, r.stdout, r.stderr) == (7, "out\n", "err\n")
    r = dk(daemon, "exec", "c1", "nosuchbinary", check=False)
    assert r.returncode == 127, (r.stdout, r.stderr)
    assert "executable file not found" in r.stdout + r.stderr
    r = dk(daemon, "exec", "c1", "/etc", check=False)
    assert r.returncode == 126, (r.stdout, r.stderr)
    # A detached exec runs on its own; its effect shows up later.
    r = dk(daemon, "exec", "-d", "c1", "sh", "-c", "echo done > /tmp/detached")
    assert r.stdout == ""
    poll(lambda: dk(daemon, "exec", "c1", "cat", "/tmp/detached", check=False).stdout == "done\n", 10,
         "the detached exec's file")
    # stdin reaches the process and its end closes the process's stdin.
    r = subprocess.run([DOCKER_BIN, "exec", "-i", "c1", "sh", "-c", "cat; echo end"], input="abc\n",
                       env=daemon.docker_env, capture_output=True, text=True, timeout=60)
    assert (r.returncode, r.stdout) == (0, "abc\nend\n"), r.stderr


def test_exec_env_user_workdir(daemon):
    run_sleeper(daemon, "-e", "KEEP=1", "-e", "A=image")
    r = dk(daemon, "exec", "-e", "A=1", "-u", "1000:1001", "-w", "/tmp", "c1",
           "sh", "-c", 'echo $A $KEEP; id -u; id -g; pwd')
    assert r.stdout == "1 1\n1000\n1001\n/tmp\n"
    r = dk(daemon, "exec", "-u", "nobody", "c1", "id", "-un")
    assert r.stdout == "nobody\n"
    r = dk(daemon, "exec", "-u", "ghost", "c1", "true", check=False)
    assert r.returncode == 126 and "unable to find user ghost" in r.stdout + r.stderr
    r = dk(daemon, "exec", "-w", "relative", "c1", "true", check=False)
    assert r.returncode != 0 and "absolute path" in r.stderr
    # --privileged: every capability (CAP_SYS_ADMIN is bit 21) in the effective set.
    cap_eff = "grep CapEff /proc/self/status | cut -f2"
    plain = int(dk(daemon, "exec", "c1", "sh", "-c", cap_eff).stdout, 16)
    r = dk(daemon, "exec", "--privileged", "c1", "sh", "-c", cap_eff, check=False)
    assert r.returncode == 0, r.stdout
    full = int(r.stdout, 16)
    assert not plain & (1 << 21) and full & (1 << 21) and full & plain == plain


def test_exec_errors_over_the_api(daemon):
    cid = run_sleeper(daemon)
    hdr = {"Content-Type": "application/json"}
    resp = daemon.request("POST", "/containers/c1/exec", headers=hdr, body=b'{"Cmd": []}')
    assert resp.status == 400 and "No exec command specified" in resp.text
    resp = daemon.request("POST", "/containers/nope/exec", headers=hdr, body=b'{"Cmd": ["true"]}')
    assert resp.status == 404
    assert daemon.request("GET", "/exec/nope/json").status == 404
    assert daemon.request("POST", "/exec/nope/start", headers=hdr, body=b"{}").status == 404
    resp = daemon.request("POST", "/containers/c1/exec", headers=hdr,
                          body=b'{"Cmd": ["sh", "-c", "exit 5"], "AttachStdout": true}')
    assert resp.status == 201
    eid = resp.json()["Id"]
    v = daemon.get_json(f"/exec/{eid}/json")
    assert v["Running"] is False and v["ExitCode"] is None and v["ContainerID"] == cid
    # moby on Linux: `privileged` is always there.
    assert v["ProcessConfig"] == {"tty": False, "entrypoint": "sh", "arguments": ["-c", "exit 5"],
                                  "privileged": False}
    resp = daemon.request("POST", f"/exec/{eid}/start", headers=hdr, body=b'{"Detach": true}')
    assert resp.status == 200, resp.text
    v = poll(lambda: (lambda v: v if not v["Running"] else None)(daemon.get_json(f"/exec/{eid}/json")), 10,
             "the exec to finish")
    assert v["ExitCode"] == 5 and v["Pid"] > 0
    resp = daemon.request("POST", f"/exec/{eid}/start", headers=hdr, body=b'{"Detach": true}')
    assert resp.status == 409
    dk(daemon, "stop", "-t", "0", "c1")
    r = dk(daemon, "exec", "c1", "true", check=False)
    assert r.returncode != 0 and "is not running" in r.stderr
    resp = daemon.request("POST", "/containers/c1/exec", headers=hdr, body=b'{"Cmd": ["true"]}')
    assert resp.status == 409


def _read_until(fd: int, pattern: bytes, timeout: float) -> bytes:
    """Reads the pty until `pattern` (a regex) matches what was read."""
    buf = b""
    deadline = time.monotonic() + timeout
    while not re.search(pattern, buf):
        left = deadline - time.monotonic()
        if left <= 0:
            raise AssertionError(f"no {pattern!r} in {buf!r}")
        r, _, _ = select.select([fd], [], [], left)
        if r:
            try:
                chunk = os.read(fd, 4096)
            except OSError:
                break
            if not chunk:
                break
            buf += chunk
    return buf


def test_exec_it_through_a_pseudo_terminal(daemon):
    run_sleeper(daemon)
    master, slave = pty.openpty()
    # A size for the CLI to pass on (docker skips the resize of a 0x0 terminal).
    fcntl.ioctl(master, termios.TIOCSWINSZ, struct.pack("HHHH", 30, 100, 0, 0))
    proc = subprocess.Popen([DOCKER_BIN, "exec", "-it", "c1", "sh"], stdin=slave, stdout=slave, stderr=slave,
                            env=daemon.docker_env, start_new_session=True)
    os.close(slave)
    try:
        # Type only once the shell shows its prompt (the CLI has the terminal in raw mode)
        # and the CLI's resize, sent after the exec starts, has been applied: on a loaded
        # machine the prompt can come first, and stty would read a 0x0 terminal.
        _read_until(master, b"# ", 20)
        poll(lambda: re.search(r"path=/v[\d.]+/exec/\w+/resize status=200", daemon.log_text()),
             20, "the CLI's exec resize")
        os.write(master, b"tty; echo ok$((40+2)); stty size\r")
        # The echo of the typed line comes first; then tty's answer, ok42, and the size.
        out = _read_until(master, rb"ok42\r?\n\d+ \d+", 20)
        assert b"/dev/pts/" in out, out
        assert b"30 100" in out, out
        os.write(master, b"exit 3\r")
        assert proc.wait(timeout=20) == 3
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        os.close(master)


def test_exec_docker_py(daemon):
    docker = importlib.import_module("docker")  # docker-py: .ci/run installs it
    run_sleeper(daemon)
    client = docker.DockerClient(base_url=daemon.unix_host, version="auto")
    try:
        c = client.containers.get("c1")
        r = c.exec_run(["sh", "-c", "echo out; echo err >&2; exit 4"], demux=True)
        assert r.exit_code == 4
        assert r.output == (b"out\n", b"err\n")
        r = c.exec_run("sh -c 'echo $X; pwd; id -u'", environment={"X": "y"}, workdir="/tmp", user="65534")
        assert (r.exit_code, r.output) == (0, b"y\n/tmp\n65534\n")
        r = c.exec_run("tty", tty=True)
        assert r.exit_code == 0 and r.output.startswith(b"/dev/pts/")
    finally:
        client.close()


def test_hijacked_stream_starts_after_the_client_read_the_answer(daemon):
    """docker-py reads a 101 answer's head through a buffered reader, then the stream from
    the raw socket: stream bytes that arrive with the head are lost (`exec_run` gave empty
    output now and then). On a unix socket the stream starts once the client has read the
    head, so a client that is slow to read still gets the head alone first."""
    run_sleeper(daemon)
    r = daemon.request("POST", "/containers/c1/exec", headers={"Content-Type": "application/json"},
                       body=json.dumps({"Cmd": ["echo", "hi"], "AttachStdout": True}).encode())
    assert r.status == 201, r.text
    exec_id = r.json()["Id"]
    body = json.dumps({"Detach": False, "Tty": False}).encode()
    with socket.socket(socket.AF_UNIX) as s:
        s.connect(str(daemon.sock))
        s.sendall(f"POST /exec/{exec_id}/start HTTP/1.1\r\nHost: berth\r\nContent-Type: application/json\r\n"
                  f"Connection: Upgrade\r\nUpgrade: tcp\r\nContent-Length: {len(body)}\r\n\r\n".encode() + body)
        time.sleep(0.05)  # a client slow to read: a 2 ms exec would have written by now
        first = s.recv(65536)
        assert first.startswith(b"HTTP/1.1 101") and first.endswith(b"\r\n\r\n"), first
        rest = b""
        while chunk := s.recv(65536):
            rest += chunk
    assert rest == b"\x01\x00\x00\x00\x00\x00\x00\x03hi\n", rest


def test_top(daemon):
    run_sleeper(daemon)
    dk(daemon, "exec", "-d", "c1", "sleep", "999")
    exec_ids = json.loads(dk(daemon, "inspect", "-f", "{{json .ExecIDs}}", "c1").stdout)
    assert isinstance(exec_ids, list) and len(exec_ids) == 1
    lines = poll(lambda: (lambda l: l if len(l) == 3 else None)(dk(daemon, "top", "c1").stdout.splitlines()), 10,
                 "two processes in top")
    assert lines[0].split()[:3] == ["UID", "PID", "PPID"] and lines[0].split()[-1] == "CMD"
    assert any(l.endswith("sleep 1000") for l in lines) and any(l.endswith("sleep 999") for l in lines)
    v = daemon.get_json("/containers/c1/top?ps_args=-o%20pid,comm")
    assert v["Titles"] == ["PID", "COMMAND"]
    assert sorted(p[1] for p in v["Processes"]) == ["sleep", "sleep"]
    resp = daemon.request("GET", "/containers/c1/top?ps_args=-o%20comm")
    assert resp.status == 500 and "Couldn't find PID field" in resp.text
    dk(daemon, "stop", "-t", "0", "c1")
    assert daemon.request("GET", "/containers/c1/top").status == 409


def test_stats(daemon):
    cid = run_sleeper(daemon, "-m", "64m")
    dk(daemon, "exec", "c1", "sh", "-c", "i=0; while [ $i -lt 20000 ]; do i=$((i+1)); done")
    v = daemon.get_json("/containers/c1/stats?stream=false")
    assert v["id"] == cid and v["name"] == "/c1"
    assert v["cpu_stats"]["cpu_usage"]["total_usage"] > 0
    assert v["precpu_stats"]["cpu_usage"]["total_usage"] > 0, "two samples without one-shot"
    assert v["cpu_stats"]["system_cpu_usage"] > v["precpu_stats"]["system_cpu_usage"] > 0
    assert v["cpu_stats"]["online_cpus"] >= 1
    assert v["memory_stats"]["usage"] > 0 and v["memory_stats"]["limit"] == 64 * MIB
    assert "total_inactive_file" in v["memory_stats"]["stats"]
    assert v["pids_stats"]["current"] >= 1
    assert "blkio_stats" in v
    ip = dk(daemon, "inspect", "-f", "{{.NetworkSettings.IPAddress}}", "c1").stdout.strip()
    if ip:  # a bridged container: its interfaces, loopback left out
        assert set(v["networks"]) == {"eth0"} and v["networks"]["eth0"]["rx_packets"] >= 0
    v = daemon.get_json("/containers/c1/stats?stream=false&one-shot=true")
    assert v["preread"] == "0001-01-01T00:00:00Z" and v["precpu_stats"]["cpu_usage"]["total_usage"] == 0
    r = dk(daemon, "stats", "--no-stream", "--format", "{{.Name}} {{.MemUsage}} {{.PIDs}} {{.CPUPerc}}", "c1")
    name, used, slash, limit, pids, cpu = r.stdout.split()
    assert (name, slash, limit) == ("c1", "/", "64MiB"), r.stdout
    assert not used.startswith("0B") and int(pids) >= 1 and cpu.endswith("%")
    table = dk(daemon, "stats", "--no-stream").stdout.splitlines()
    assert table[0].split()[:3] == ["CONTAINER", "ID", "NAME"] and [l for l in table if " c1 " in l], table
    docker = importlib.import_module("docker")  # docker-py: .ci/run installs it
    client = docker.DockerClient(base_url=daemon.unix_host, version="auto")
    try:
        stream = client.containers.get("c1").stats(stream=True, decode=True)
        first, second = next(stream), next(stream)
        assert second["precpu_stats"]["cpu_usage"]["total_usage"] == first["cpu_stats"]["cpu_usage"]["total_usage"]
        assert second["preread"] == first["read"]
    finally:
        client.close()


def test_pause_blocks_and_unpause_resumes(daemon):
    cid = dk(daemon, "run", "-d", "--name", "c1", "busybox", "sh", "-c",
             "i=0; while true; do i=$((i+1)); echo $i > /tmp/n; usleep 20000; done").stdout.strip()
    counter = daemon.data_root / "containers" / cid / "rw" / "diff" / "tmp" / "n"

    def value() -> int:
        try:
            return int(counter.read_text().strip() or "0")
        except (FileNotFoundError, ValueError):
            return 0

    poll(lambda: value() > 2, 10, "the counter to run")
    dk(daemon, "pause", "c1")
    assert cgroup_file(daemon, "freezer", cid, "freezer.state").read_text().strip() == "FROZEN"
    st = dk(daemon, "inspect", "-f", "{{.State.Status}} {{.State.Paused}} {{.State.Running}}", "c1").stdout.split()
    assert st == ["paused", "true", "true"]
    assert "(Paused)" in dk(daemon, "ps").stdout
    assert dk(daemon, "ps", "-q", "--no-trunc", "--filter", "status=paused").stdout.split() == [cid]
    assert dk(daemon, "ps", "-q", "--filter", "status=running").stdout.split() == []
    frozen = value()
    time.sleep(0.3)  # an observation window, not synchronisation: nothing may move in it
    assert value() == frozen
    r = dk(daemon, "exec", "c1", "true", check=False)
    assert r.returncode != 0 and "is paused" in r.stderr
    r = dk(daemon, "pause", "c1", check=False)
    assert r.returncode != 0 and "already paused" in r.stderr
    dk(daemon, "unpause", "c1")
    poll(lambda: value() > frozen, 10, "the counter to move again")
    assert dk(daemon, "inspect", "-f", "{{.State.Status}}", "c1").stdout.strip() == "running"
    r = dk(daemon, "unpause", "c1", check=False)
    assert r.returncode != 0 and "is not paused" in r.stderr
    # A paused container can be stopped and killed.
    dk(daemon, "pause", "c1")
    dk(daemon, "kill", "c1")
    poll(lambda: dk(daemon, "inspect", "-f", "{{.State.Status}}", "c1").stdout.strip() == "exited", 20,
         "the killed paused container to exit")
    run_sleeper(daemon, name="c2")
    dk(daemon, "pause", "c2")
    dk(daemon, "stop", "-t", "5", "c2")
    assert dk(daemon, "inspect", "-f", "{{.State.Status}} {{.State.Paused}}", "c2").stdout.split() == ["exited", "false"]


def test_update_memory_cpu_pids_restart(daemon):
    cid = run_sleeper(daemon, "-m", "64m")
    limit = cgroup_file(daemon, "memory", cid, "memory.limit_in_bytes")
    assert int(limit.read_text()) == 64 * MIB
    r = dk(daemon, "update", "-m", "128m", "--memory-swap", "256m", "c1")
    assert r.stdout.strip() == "c1"
    assert int(limit.read_text()) == 128 * MIB
    dk(daemon, "update", "-m", "32m", "c1")
    assert int(limit.read_text()) == 32 * MIB
    hc = json.loads(dk(daemon, "inspect", "-f", "{{json .HostConfig}}", "c1").stdout)
    assert (hc["Memory"], hc["MemorySwap"]) == (32 * MIB, 256 * MIB)
    r = dk(daemon, "update", "-m", "300m", "c1", check=False)
    assert r.returncode != 0 and "Memory limit should be smaller than already set memoryswap limit" in r.stderr
    r = dk(daemon, "update", "-m", "1k", "c1", check=False)
    assert r.returncode != 0 and "Minimum memory limit allowed is 6MB" in r.stderr
    assert int(limit.read_text()) == 32 * MIB
    dk(daemon, "update", "--cpus", "0.5", "--pids-limit", "20", "--cpu-shares", "512", "--restart", "on-failure:2", "c1")
    assert int(cgroup_file(daemon, "cpu", cid, "cpu.cfs_quota_us").read_text()) == 50000
    assert int(cgroup_file(daemon, "cpu", cid, "cpu.shares").read_text()) == 512
    assert cgroup_file(daemon, "pids", cid, "pids.max").read_text().strip() == "20"
    hc = json.loads(dk(daemon, "inspect", "-f", "{{json .HostConfig}}", "c1").stdout)
    assert hc["NanoCpus"] == 500_000_000 and hc["PidsLimit"] == 20
    assert hc["RestartPolicy"] == {"Name": "on-failure", "MaximumRetryCount": 2}
    docker = importlib.import_module("docker")  # docker-py: .ci/run installs it
    client = docker.DockerClient(base_url=daemon.unix_host, version="auto")
    try:
        assert client.api.update_container("c1", mem_limit="48m") == {"Warnings": []}
        assert int(limit.read_text()) == 48 * MIB
    finally:
        client.close()
    # A write the kernel refuses (no memory node 5) undoes the ones before it.
    r = dk(daemon, "update", "-m", "40m", "--cpuset-mems", "5", "c1", check=False)
    assert r.returncode != 0 and "Cannot update container" in r.stderr
    assert int(limit.read_text()) == 48 * MIB
    # The record keeps it across a restart of the daemon.
    daemon.stop()
    daemon.start()
    hc = json.loads(dk(daemon, "inspect", "-f", "{{json .HostConfig}}", "c1").stdout)
    assert hc["Memory"] == 48 * MIB


def test_exec_into_a_survivor_of_kill_9(daemon):
    run_sleeper(daemon)
    daemon.signal(signal.SIGKILL)
    daemon.wait_exit()
    daemon.start()
    assert dk(daemon, "exec", "c1", "echo", "alive").stdout == "alive\n"
    assert dk(daemon, "inspect", "-f", "{{.State.Status}}", "c1").stdout.strip() == "running"
    r = dk(daemon, "exec", "c1", "sh", "-c", "exit 9", check=False)
    assert r.returncode == 9


def test_events_of_running_container_operations(daemon):
    since = str(int(time.time()) - 1)
    run_sleeper(daemon)
    r = dk(daemon, "exec", "c1", "sh", "-c", "exit 3", check=False)
    assert r.returncode == 3
    dk(daemon, "pause", "c1")
    dk(daemon, "unpause", "c1")
    dk(daemon, "update", "--pids-limit", "30", "c1")
    dk(daemon, "top", "c1")

    def actions() -> list[str]:
        until = str(int(time.time()) + 1)
        out = dk(daemon, "events", "--since", since, "--until", until, "--filter", "container=c1",
                 "--format", "{{.Action}} {{index .Actor.Attributes \"exitCode\"}}").stdout
        return [l.strip() for l in out.splitlines()]

    want = ["exec_create: sh -c exit 3", "exec_start: sh -c exit 3", "exec_die 3", "pause", "unpause", "update", "top"]
    got = poll(lambda: (lambda a: a if all(w in a for w in want) else None)(actions()), 10, "the events")
    order = [got.index(w) for w in want[3:]]
    assert order == sorted(order), got


def bt(d, *args: str, check: bool = True, input: str | None = None):
    return subprocess.run([str(BERTH_BIN), *args], env=d.docker_env, capture_output=True, text=True,
                          timeout=60, check=check, input=input)


def test_berth_cli_commands(daemon):
    cid = run_sleeper(daemon, "-m", "64m")
    assert bt(daemon, "exec", "c1", "echo", "hi").stdout == "hi\n"
    assert bt(daemon, "exec", "c1", "sh", "-c", "exit 4", check=False).returncode == 4
    assert bt(daemon, "exec", "c1", "nosuchbinary", check=False).returncode == 127
    r = bt(daemon, "exec", "-e", "A=1", "-w", "/tmp", "-u", "1000", "c1", "sh", "-c", "echo $A; pwd; id -u")
    assert r.stdout == "1\n/tmp\n1000\n"
    assert bt(daemon, "exec", "-i", "c1", "cat", input="piped\n").stdout == "piped\n"
    assert bt(daemon, "exec", "-d", "c1", "sleep", "777").stdout == ""
    top = bt(daemon, "top", "c1").stdout.splitlines()
    assert top[0].split()[:2] == ["UID", "PID"] and any(l.endswith("sleep 777") for l in top[1:])
    assert bt(daemon, "top", "c1", "-o", "pid,comm").stdout.splitlines()[0].split() == ["PID", "COMMAND"]
    r = bt(daemon, "stats", "--no-stream", "--format", "{{.Name}} {{.MemUsage}} {{.PIDs}}", "c1")
    name, used, _, limit, pids = r.stdout.split()
    assert (name, limit) == ("c1", "64MiB") and not used.startswith("0B") and int(pids) >= 2
    table = bt(daemon, "stats", "--no-stream", "c1").stdout.splitlines()
    assert table[0].split()[:3] == ["CONTAINER", "ID", "NAME"] and table[1].startswith(cid[:12])
    assert bt(daemon, "pause", "c1").stdout == "c1\n"
    r = bt(daemon, "exec", "c1", "true", check=False)
    assert r.returncode != 0 and "is paused" in r.stderr
    assert bt(daemon, "unpause", "c1").stdout == "c1\n"
    assert bt(daemon, "update", "-m", "96m", "--memory-swap", "192m", "c1").stdout == "c1\n"
    assert int(cgroup_file(daemon, "memory", cid, "memory.limit_in_bytes").read_text()) == 96 * MIB
    r = bt(daemon, "update", "c1", check=False)
    assert r.returncode != 0 and "one or more flags" in r.stderr
    master, slave = pty.openpty()
    fcntl.ioctl(master, termios.TIOCSWINSZ, struct.pack("HHHH", 25, 90, 0, 0))
    proc = subprocess.Popen([str(BERTH_BIN), "exec", "-it", "c1", "sh"], stdin=slave, stdout=slave, stderr=slave,
                            env=daemon.docker_env, start_new_session=True)
    os.close(slave)
    try:
        _read_until(master, b"# ", 20)
        os.write(master, b"tty; stty size\r")
        out = _read_until(master, rb"25 90", 20)
        assert b"/dev/pts/" in out, out
        os.write(master, b"exit 6\r")
        assert proc.wait(timeout=20) == 6
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        os.close(master)


def test_answers_match_the_spec(daemon):
    run_sleeper(daemon)
    hdr = {"Content-Type": "application/json"}
    created = daemon.request("POST", "/containers/c1/exec", headers=hdr, body=b'{"Cmd": ["true"]}').json()
    assert not schema_errors(created, definition("IDResponse"))
    exec_schema = swagger()["paths"]["/exec/{id}/json"]["get"]["responses"][200]["schema"]
    v = daemon.get_json(f"/exec/{created['Id']}/json")
    assert not schema_errors(v, exec_schema), schema_errors(v, exec_schema)
    want = ["CanRemove", "ContainerID", "DetachKeys", "ExitCode", "ID", "OpenStderr", "OpenStdin", "OpenStdout",
            "ProcessConfig", "Running", "Pid"]
    assert not [k for k in want if k not in v]
    stats = daemon.get_json("/containers/c1/stats?stream=false&one-shot=true")
    assert not schema_errors(stats, definition("ContainerStatsResponse")), schema_errors(
        stats, definition("ContainerStatsResponse"))
    keys = ["id", "name", "read", "preread", "pids_stats", "blkio_stats", "num_procs", "storage_stats", "cpu_stats",
            "precpu_stats", "memory_stats"]
    assert not [k for k in keys if k not in stats]
    top = daemon.get_json("/containers/c1/top")
    assert not schema_errors(top, definition("ContainerTopResponse"))
    upd = daemon.request("POST", "/containers/c1/update", headers=hdr, body=b'{"CpuShares": 256}').json()
    assert upd == {"Warnings": []} and not schema_errors(upd, definition("ContainerUpdateResponse"))
    for path in ("/containers/c1/resize?h=x&w=1", "/containers/c1/resize?h=10"):
        assert daemon.request("POST", path).status == 400
    # The container has no tty: as dockerd (containerd resizes no console), a no-op 200.
    assert daemon.request("POST", "/containers/c1/resize?h=10&w=20").status == 200
    assert daemon.request("POST", "/containers/nope/pause").status == 404
    assert daemon.request("GET", "/containers/nope/stats?stream=false").status == 404
