"""Container lifecycle through the real docker CLI and docker-py: events (history, filters,
live stream), restart, rename, prune, wait conditions, restart policies (also across a
daemon kill -9 and restart), logs --since/--until and logs -f ending with the container."""

from __future__ import annotations

import importlib
import json
import os
import re
import signal
import socket
import subprocess
import threading
import time
from pathlib import Path


from conftest import BERTH_BIN, DOCKER_BIN, poll, unix_connect
from test_containers import _shims, daemon, dk  # noqa: F401 - `daemon` is a fixture

JSON = {"Content-Type": "application/json"}


def inspect(d, name: str, fmt: str) -> str:
    return dk(d, "inspect", "-f", fmt, name).stdout.strip()


def events(d, since: float, until: float, *filters: str, fmt: str = "{{json .}}") -> list:
    args = ["events", "--since", f"{since:.6f}", "--until", f"{until:.6f}", "--format", fmt]
    for f in filters:
        args += ["--filter", f]
    out = dk(d, *args, timeout=30).stdout.splitlines()
    return [json.loads(l) for l in out] if fmt == "{{json .}}" else out


def test_events_of_a_run_in_order_with_filters(daemon):
    t0 = time.time()
    r = dk(daemon, "run", "--name", "evt", "--label", "tier=front", "busybox", "sh", "-c", "exit 3", check=False)
    assert r.returncode == 3, r.stderr
    dk(daemon, "rm", "evt")
    t1 = time.time()
    evs = [e for e in events(daemon, t0, t1) if e["Type"] == "container"]
    assert [e["Action"] for e in evs] == ["create", "attach", "start", "die", "destroy"], evs
    die = evs[3]
    assert die["Actor"]["Attributes"]["exitCode"] == "3"
    assert die["Actor"]["Attributes"]["name"] == "evt"
    assert die["Actor"]["Attributes"]["tier"] == "front"
    # Docker's message shape, legacy fields included.
    assert die["status"] == "die" and die["id"] == die["Actor"]["ID"] and die["from"] == "busybox"
    assert die["scope"] == "local" and die["time"] == die["timeNano"] // 10**9
    assert all(a["timeNano"] <= b["timeNano"] for a, b in zip(evs, evs[1:]))
    # Filters.
    assert [e["Action"] for e in events(daemon, t0, t1, "event=die")] == ["die"]
    assert [e["Action"] for e in events(daemon, t0, t1, "event=start", "event=die")] == ["start", "die"]
    assert len(events(daemon, t0, t1, "container=evt")) == 5
    assert events(daemon, t0, t1, "container=other") == []
    assert len(events(daemon, t0, t1, "label=tier=front")) == 5
    assert events(daemon, t0, t1, "type=image") == []
    assert len(events(daemon, t0, t1, "image=busybox", "type=container")) == 5
    # until before the run: nothing; since after it: nothing (until bounds the stream).
    assert events(daemon, t0 - 60, t0, "type=container") == []
    assert events(daemon, t1, t1 + 0.001) == []
    # The default line format.
    lines = events(daemon, t0, t1, "event=die", fmt="")
    assert len(lines) == 1 and " container die " in lines[0] and "exitCode=3" in lines[0], lines
    # Bad filters and times: docker's 400s.
    assert daemon.request("GET", '/events?filters={"nope":["x"]}').status == 400
    assert daemon.request("GET", "/events?since=yesterday").status == 400


def test_events_live_stream_and_docker_py(daemon):
    proc = subprocess.Popen([DOCKER_BIN, "events", "--filter", "event=start", "--format", "{{.Actor.Attributes.name}}"],
                            env=daemon.docker_env, stdout=subprocess.PIPE, text=True)
    try:
        # The subscription is live once a start shows up; start containers until one does.
        got: list[str] = []
        reader = threading.Thread(target=lambda: got.append(proc.stdout.readline().strip()), daemon=True)
        reader.start()
        t0 = time.time()
        dk(daemon, "run", "--rm", "--name", "live1", "busybox", "true")

        def seen():
            if not got:
                dk(daemon, "run", "--rm", "busybox", "true")
            return got
        assert poll(seen, 30, "a live start event")[0] != ""
    finally:
        proc.terminate()
        proc.wait(timeout=10)
    docker = importlib.import_module("docker")  # docker-py: .ci/run installs it
    client = docker.DockerClient(base_url=daemon.unix_host, version="auto")
    try:
        t1 = time.time()
        evs = list(client.events(since=int(t0), until=int(t1) + 1, decode=True, filters={"container": "live1"}))
        assert [e["Action"] for e in evs] == ["create", "attach", "start", "die", "destroy"], evs
    finally:
        client.close()


def test_restart_bumps_started_at(daemon):
    dk(daemon, "run", "-d", "--name", "rs", "busybox", "sleep", "1000")
    before = inspect(daemon, "rs", "{{.State.StartedAt}} {{.State.Pid}}")
    t0 = time.time()
    assert dk(daemon, "restart", "-t", "1", "rs").stdout.strip() == "rs"
    after = inspect(daemon, "rs", "{{.State.StartedAt}} {{.State.Pid}} {{.State.Status}}")
    assert after.split()[0] > before.split()[0]
    assert after.split()[1] != before.split()[1] and after.split()[2] == "running"
    acts = [e["Action"] for e in events(daemon, t0, time.time(), "container=rs")]
    # SIGTERM (ignored by `sleep` as PID 1), SIGKILL after 1 s, as dockerd reports them.
    assert acts == ["kill", "kill", "die", "stop", "start", "restart"], acts
    sigs = [e["Actor"]["Attributes"]["signal"] for e in events(daemon, t0, time.time(), "container=rs", "event=kill")]
    assert sigs == ["15", "9"]
    # A stopped container restarts too.
    dk(daemon, "stop", "-t", "1", "rs")
    dk(daemon, "restart", "rs")
    assert inspect(daemon, "rs", "{{.State.Running}}") == "true"
    assert daemon.request("POST", "/containers/nope/restart").status == 404
    docker = importlib.import_module("docker")  # docker-py: .ci/run installs it
    client = docker.DockerClient(base_url=daemon.unix_host, version="auto")
    try:
        c = client.containers.get("rs")
        started = c.attrs["State"]["StartedAt"]
        c.restart(timeout=1)
        c.reload()
        assert c.status == "running" and c.attrs["State"]["StartedAt"] > started
        c.rename("rs2")
        c.reload()
        assert c.name == "rs2"
    finally:
        client.close()


def test_rename(daemon):
    cid = dk(daemon, "create", "--name", "old", "busybox", "true").stdout.strip()
    t0 = time.time()
    r = dk(daemon, "rename", "old", "new")
    assert r.stdout == "" and r.stderr == ""
    assert inspect(daemon, "new", "{{.Name}} {{.Id}}") == f"/new {cid}"
    assert dk(daemon, "ps", "-a", "--filter", "name=new", "--format", "{{.Names}}").stdout.strip() == "new"
    assert "No such" in dk(daemon, "inspect", "old", check=False).stderr
    assert daemon.request("GET", "/containers/old/json").status == 404
    ev = events(daemon, t0, time.time(), "event=rename")
    assert ev[0]["Actor"]["Attributes"]["oldName"] == "/old" and ev[0]["Actor"]["Attributes"]["name"] == "new"
    # Conflict: 409 and docker's words; the container keeps its name.
    dk(daemon, "create", "--name", "other", "busybox", "true")
    r = dk(daemon, "rename", "new", "other", check=False)
    assert r.returncode != 0 and 'The container name "/other" is already in use' in r.stderr
    assert daemon.request("POST", "/containers/new/rename?name=other").status == 409
    assert daemon.request("POST", "/containers/new/rename?name=-bad").status == 400
    assert daemon.request("POST", "/containers/new/rename?name=new").status == 400
    assert daemon.request("POST", "/containers/nope/rename?name=x").status == 404
    assert inspect(daemon, cid, "{{.Name}}") == "/new"
    # The old name is free again.
    dk(daemon, "create", "--name", "old", "busybox", "true")


def test_prune_removes_only_stopped(daemon):
    dk(daemon, "run", "--name", "done", "busybox", "sh", "-c", "echo x > /f")
    dk(daemon, "create", "--name", "fresh", "busybox", "true")
    dk(daemon, "run", "-d", "--name", "busy", "busybox", "sleep", "1000")
    dk(daemon, "run", "--name", "kept", "--label", "keep=1", "busybox", "true")
    done_id = inspect(daemon, "done", "{{.Id}}")
    fresh_id = inspect(daemon, "fresh", "{{.Id}}")
    r = dk(daemon, "container", "prune", "-f", "--filter", "label!=keep=1")
    assert r.stdout.startswith("Deleted Containers:\n"), r.stdout
    deleted = set(r.stdout.split("\n\n")[0].splitlines()[1:])
    assert deleted == {done_id, fresh_id}
    assert "Total reclaimed space:" in r.stdout
    names = dk(daemon, "ps", "-a", "--format", "{{.Names}}").stdout.split()
    assert sorted(names) == ["busy", "kept"]
    docker = importlib.import_module("docker")  # docker-py: .ci/run installs it
    client = docker.DockerClient(base_url=daemon.unix_host, version="auto")
    try:
        assert client.containers.prune(filters={"until": "1h"}) == {"ContainersDeleted": None, "SpaceReclaimed": 0}
        kept_id = inspect(daemon, "kept", "{{.Id}}")
        assert client.containers.prune()["ContainersDeleted"] == [kept_id]
    finally:
        client.close()
    assert dk(daemon, "ps", "-a", "--format", "{{.Names}}").stdout.split() == ["busy"]
    assert daemon.request("POST", '/containers/prune?filters={"nope":["x"]}').status == 400


def registered_wait(d, cid: str, condition: str, then) -> dict:
    """POST /wait, wait for its headers (the wait is registered), run `then`, and return
    the body the daemon sends once the condition is met."""
    stream = unix_connect(d.sock, timeout=30)
    try:
        stream.sock.sendall(
            f"POST /containers/{cid}/wait?condition={condition} HTTP/1.1\r\nHost: localhost\r\n"
            "Content-Length: 0\r\nConnection: close\r\n\r\n".encode()
        )
        status, _, headers = stream.read_head()
        assert status == 200, status
        then()
        return json.loads(stream.read_body(status, headers))
    finally:
        stream.close()


def test_wait_conditions(daemon):
    docker = importlib.import_module("docker")  # docker-py: .ci/run installs it
    client = docker.DockerClient(base_url=daemon.unix_host, version="auto")
    try:
        c = client.containers.create("busybox", ["sh", "-c", "exit 4"])
        # not-running on a created container answers at once.
        assert c.wait(condition="not-running")["StatusCode"] == 0
        # The daemon answers the headers once the wait is registered, so the start (and
        # the remove) below cannot overtake it.
        assert registered_wait(daemon, c.id, "next-exit", c.start) == {"StatusCode": 4, "Error": None}
        assert registered_wait(daemon, c.id, "removed", lambda: c.remove(v=True))["StatusCode"] == 4
        resp = daemon.request("POST", "/containers/x/wait?condition=sometimes")
        assert resp.status in (400, 404)
    finally:
        client.close()


def test_on_failure_restarts_exactly_twice(daemon):
    t0 = time.time()
    dk(daemon, "run", "-d", "--name", "flaky", "--restart", "on-failure:2", "busybox", "sh", "-c", "exit 3")
    poll(lambda: inspect(daemon, "flaky", "{{.RestartCount}} {{.State.Status}}") == "2 exited", 30,
         "two restarts, then exited")
    assert inspect(daemon, "flaky", "{{.HostConfig.RestartPolicy.Name}}:{{.HostConfig.RestartPolicy.MaximumRetryCount}}") == "on-failure:2"
    assert dk(daemon, "wait", "flaky").stdout.strip() == "3"
    acts = [e["Action"] for e in events(daemon, t0, time.time(), "container=flaky")]
    assert acts.count("start") == 3 and acts.count("die") == 3, acts
    # A user start resets the count.
    dk(daemon, "start", "flaky")
    poll(lambda: inspect(daemon, "flaky", "{{.RestartCount}} {{.State.Status}}") == "2 exited", 30, "again")


def test_restart_with_rm_is_refused(daemon):
    r = dk(daemon, "run", "--rm", "--restart", "always", "busybox", "true", check=False)
    assert r.returncode == 125 and "conflicting options: cannot specify both --restart and --rm" in r.stderr
    body = json.dumps({"Image": "busybox", "Cmd": ["true"],
                       "HostConfig": {"AutoRemove": True, "RestartPolicy": {"Name": "always"}}}).encode()
    resp = daemon.request("POST", "/containers/create", headers=JSON, body=body)
    assert resp.status == 400 and "AutoRemove" in resp.json()["message"]
    body = json.dumps({"Image": "busybox", "Cmd": ["true"], "HostConfig": {"RestartPolicy": {"Name": "sometimes"}}}).encode()
    assert daemon.request("POST", "/containers/create", headers=JSON, body=body).status == 400
    assert dk(daemon, "ps", "-aq").stdout.strip() == ""


def _pid(d, name: str) -> int:
    return int(inspect(d, name, "{{.State.Pid}}"))


def test_always_restarts_after_exit_and_daemon_kill(daemon):
    dk(daemon, "run", "-d", "--name", "phoenix", "--restart", "always", "busybox", "sleep", "1000")
    pid = _pid(daemon, "phoenix")
    os.kill(pid, signal.SIGKILL)  # the process exits on its own (not a docker stop)
    poll(lambda: inspect(daemon, "phoenix", "{{.RestartCount}} {{.State.Running}}") == "1 true"
         and _pid(daemon, "phoenix") not in (0, pid), 30, "restart after the process exited")
    # berthd dies; the container's process exits while it is down; berthd comes back.
    pid = _pid(daemon, "phoenix")
    daemon.signal(signal.SIGKILL)
    daemon.wait_exit()
    os.kill(pid, signal.SIGKILL)
    daemon.start()
    poll(lambda: inspect(daemon, "phoenix", "{{.State.Running}}") == "true"
         and _pid(daemon, "phoenix") not in (0, pid), 30, "restart after berthd came back")
    # docker stop cancels the policy.
    dk(daemon, "stop", "-t", "1", "phoenix")
    assert inspect(daemon, "phoenix", "{{.State.Status}} {{.State.Restarting}}") == "exited false"


def test_unless_stopped_stays_stopped_across_daemon_restart(daemon):
    dk(daemon, "run", "-d", "--name", "quiet", "--restart", "unless-stopped", "busybox", "sleep", "1000")
    dk(daemon, "run", "-d", "--name", "loud", "--restart", "always", "busybox", "sleep", "1000")
    dk(daemon, "stop", "-t", "1", "quiet", "loud")
    daemon.restart()
    # Both are considered at start-up; once `always` runs again, the other was passed over.
    poll(lambda: inspect(daemon, "loud", "{{.State.Running}}") == "true", 30, "always restarted on boot")
    assert inspect(daemon, "quiet", "{{.State.Status}}") == "exited"
    # An unless-stopped container that was running when the daemon stopped comes back.
    dk(daemon, "start", "quiet")
    pid = _pid(daemon, "quiet")
    daemon.signal(signal.SIGKILL)
    daemon.wait_exit()
    os.kill(pid, signal.SIGKILL)
    daemon.start()
    poll(lambda: inspect(daemon, "quiet", "{{.State.Running}}") == "true", 30, "unless-stopped restarted")


def test_logs_since_until(daemon):
    dk(daemon, "run", "--name", "talk", "busybox", "sh", "-c", "echo a; sleep 1; echo b; sleep 1; echo c")
    stamped = dk(daemon, "logs", "-t", "talk").stdout.splitlines()
    assert [l.split(" ", 1)[1] for l in stamped] == ["a", "b", "c"]
    ts = [l.split(" ", 1)[0] for l in stamped]
    # moby's RFC3339NanoFixed: always nine digits (the unit test covers trailing zeros).
    assert all(re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{9}Z", t) for t in ts), ts
    assert dk(daemon, "logs", "--since", ts[1], "talk").stdout == "b\nc\n"
    assert dk(daemon, "logs", "--until", ts[1], "talk").stdout == "a\nb\n"
    assert dk(daemon, "logs", "--since", ts[1], "--until", ts[1], "talk").stdout == "b\n"
    assert dk(daemon, "logs", "--since", "1h", "talk").stdout == "a\nb\nc\n"
    assert dk(daemon, "logs", "--until", "1h", "talk").stdout == ""
    assert daemon.request("GET", "/containers/talk/logs?stdout=1&since=nope").status == 400


def test_logs_follow_returns_when_the_container_exits(daemon):
    dk(daemon, "run", "-d", "--name", "tail", "busybox", "sh", "-c", "echo one; sleep 2; echo two")
    r = dk(daemon, "logs", "-f", "tail", timeout=30)
    assert r.returncode == 0 and r.stdout == "one\ntwo\n"
    assert inspect(daemon, "tail", "{{.State.Status}}") == "exited"


def test_logs_follow_sees_new_lines_and_ends_on_stop(daemon):
    dk(daemon, "run", "-d", "--name", "chatty", "busybox", "sh", "-c", "echo one; sleep 1; echo two; sleep 1000")
    proc = subprocess.Popen([DOCKER_BIN, "logs", "-f", "chatty"], env=daemon.docker_env,
                            stdout=subprocess.PIPE, text=True)
    try:
        assert proc.stdout.readline() == "one\n"
        # Written while the follower waits (woken by inotify), the container still running.
        assert proc.stdout.readline() == "two\n"
        assert inspect(daemon, "chatty", "{{.State.Running}}") == "true"
        dk(daemon, "stop", "-t", "1", "chatty")
        assert proc.wait(timeout=30) == 0
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert "no inotify" not in daemon.log_text()


def test_image_events(daemon):
    t0 = time.time()
    dk(daemon, "tag", "busybox", "busybox:two")
    dk(daemon, "rmi", "busybox:two")
    saved = subprocess.run([DOCKER_BIN, "save", "busybox"], env=daemon.docker_env, capture_output=True,
                           timeout=60, check=True).stdout
    subprocess.run([DOCKER_BIN, "load"], input=saved, env=daemon.docker_env, capture_output=True,
                   timeout=60, check=True)
    evs = events(daemon, t0, time.time(), "type=image")
    assert [e["Action"] for e in evs] == ["tag", "untag", "save", "load"], evs
    image_id = inspect(daemon, "busybox", "{{.Id}}")
    assert evs[0]["Actor"]["ID"] == image_id and evs[0]["Actor"]["Attributes"]["name"] == "busybox:two"
    assert evs[0]["status"] == "tag" and "from" not in evs[0]
    assert [e["Action"] for e in events(daemon, t0, time.time(), "image=busybox:two")] == ["tag", "untag"]


def test_berth_cli_lifecycle_commands(daemon):
    """The berth client's own restart, rename, container prune, events and logs flags."""
    env = dict(daemon.docker_env, BERTH_HOST=daemon.unix_host)

    def berth(*args, check=True):
        return subprocess.run([str(BERTH_BIN), *args], env=env, capture_output=True, text=True,
                              timeout=60, check=check)

    r = berth("run", "--rm", "--restart", "always", "busybox", "true", check=False)
    assert r.returncode == 125 and "conflicting options: cannot specify both --restart and --rm" in r.stderr
    t0 = time.time()
    berth("run", "-d", "--name", "b1", "--restart", "on-failure:1", "busybox", "sh", "-c", "echo hi; exit 1")
    poll(lambda: inspect(daemon, "b1", "{{.RestartCount}} {{.State.Status}}") == "1 exited", 30, "one restart")
    assert berth("logs", "--since", "1h", "b1").stdout == "hi\nhi\n"
    assert berth("logs", "--until", "1h", "b1").stdout == ""
    assert berth("rename", "b1", "b2").stdout == ""
    assert inspect(daemon, "b2", "{{.Name}}") == "/b2"
    assert berth("restart", "-t", "1", "b2").stdout == "b2\n"
    out = berth("events", "--since", f"{t0:.6f}", "--until", f"{time.time():.6f}", "--filter", "event=rename").stdout
    assert out.count("\n") == 1 and " container rename " in out and "oldName=/b1" in out, out
    poll(lambda: inspect(daemon, "b2", "{{.State.Status}}") == "exited", 30, "exited again")
    r = berth("container", "prune", "-f")
    assert r.stdout.startswith("Deleted Containers:\n") and "Total reclaimed space:" in r.stdout
    assert dk(daemon, "ps", "-aq").stdout.strip() == ""


def test_berthd_holds_no_descriptor_per_running_container(daemon):
    """Exits come to berthd on one socket for all shims (issue 17): running containers
    cost berthd no descriptor each, so its count does not grow with them."""
    def fds() -> int:
        return len(list(Path(f"/proc/{daemon.pid}/fd").iterdir()))

    dk(daemon, "run", "-d", "--name", "first", "busybox", "sleep", "1000")
    one = fds()
    for i in range(8):
        dk(daemon, "run", "-d", "--name", f"more{i}", "busybox", "sleep", "1000")
    assert int(dk(daemon, "ps", "-q").stdout.count("\n")) == 9
    # The count settles after each start (its start connection closes): compare the lowest.
    assert poll(lambda: fds() <= one + 2, 10, f"berthd's descriptors ({fds()}, {one} with one container)")
    dk(daemon, "rm", "-f", *[f"more{i}" for i in range(8)], "first")


def test_a_stats_stream_costs_berthd_one_descriptor(daemon):
    """A stats stream holds only its connection in berthd (issue 17): neither a duplicate
    of the connection nor the container's process descriptor between samples."""
    for i in range(4):
        dk(daemon, "run", "-d", "--name", f"s{i}", "busybox", "sleep", "1000")
    pid = daemon.pid

    def fds() -> set[str]:
        return {f.name for f in Path(f"/proc/{pid}/fd").iterdir()}

    base = fds()
    streams = []
    try:
        for i in range(4):
            s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
            s.settimeout(30)
            s.connect(str(daemon.sock))
            s.sendall(f"GET /containers/s{i}/stats?stream=1 HTTP/1.1\r\nHost: d\r\n\r\n".encode())
            streams.append(s)
        # Two samples on each: every stream is past its set-up and between samples.
        for s in streams:
            got = b""
            while got.count(b'"read":') < 2:
                chunk = s.recv(65536)
                assert chunk, "a stats stream ended"
                got += chunk
        grown = fds() - base
        assert len(grown) <= len(streams), f"{len(grown)} new descriptors for {len(streams)} streams: " + \
            ", ".join(sorted(os.readlink(f"/proc/{pid}/fd/{f}") for f in grown if os.path.exists(f"/proc/{pid}/fd/{f}")))
    finally:
        for s in streams:
            s.close()
        dk(daemon, "rm", "-f", *[f"s{i}" for i in range(4)])


def test_oom_event(daemon):
    t0 = time.time()
    r = dk(daemon, "run", "--name", "hog", "-m", "16m", "busybox", "tail", "/dev/zero", check=False, timeout=60)
    assert r.returncode == 137, r.stderr
    assert inspect(daemon, "hog", "{{.State.OOMKilled}}") == "true"
    acts = [e["Action"] for e in events(daemon, t0, time.time(), "container=hog")]
    assert acts[-2:] == ["oom", "die"], acts


def _sockets(pid: int) -> int:
    fds = Path(f"/proc/{pid}/fd")
    return sum(1 for f in fds.iterdir() if os.readlink(f).startswith("socket:"))


def _blocked_in_poll(pid: int) -> bool:
    """Whether the process sits in poll(2) or ppoll(2) (x86-64 numbers 7 and 271) rather
    than running: /proc/PID/syscall says "running" while it runs."""
    return Path(f"/proc/{pid}/syscall").read_text().split()[0] in ("7", "271")


def test_shim_drops_connections_of_a_daemon_gone(daemon):
    """berthd holds a connection to a container's shim while a client uses it (attach
    here). When berthd goes, the shim must drop it: one kept after its peer hung up was
    reported (POLLHUP) by every poll, and the shim span on it for ever."""
    dk(daemon, "run", "-d", "--name", "steady", "busybox", "sleep", "1000")
    (shim,) = _shims(daemon)
    settled = _sockets(shim)
    for _ in range(3):
        # stdin a pipe kept open: the attach stays whole until it is killed.
        attach = subprocess.Popen([DOCKER_BIN, "attach", "steady"], env=daemon.docker_env,
                                  stdin=subprocess.PIPE, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        try:
            poll(lambda: _sockets(shim) > settled, 10, "berthd's attach connection to the shim")
            daemon.signal(signal.SIGKILL)
            daemon.wait_exit()
        finally:
            attach.kill()
            attach.wait(10)
        daemon.start()
        assert inspect(daemon, "steady", "{{.State.Running}}") == "true"
    poll(lambda: _sockets(shim) <= settled, 10,
         f"the shim dropping the dead daemons' connections ({_sockets(shim)} sockets, {settled} before)")
    # An idle shim waits in poll: one spinning on a hung-up connection returns from poll
    # at once and is found there in almost no sample, never in 50 in a row.
    poll(lambda: all(_blocked_in_poll(shim) for _ in range(50)), 10,
         "the shim waiting in poll while its container idles")
