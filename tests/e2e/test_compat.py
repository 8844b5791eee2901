"""Places where berthd answered differently from dockerd (issue 15 §2), each checked with
the docker CLI, docker-py or the raw API against moby's behaviour: a SIGKILL answered once
the exit is recorded, commit of a stopped container, exec inspect's ProcessConfig and
docker-py's tty execs, a missing working directory created, an empty entrypoint, the
images list trimmed to the matching references, swarm routes as on a node outside any
swarm, and the container list filters."""

from __future__ import annotations

import json

from urllib.parse import quote

import docker
import pytest

from conftest import poll
from test_containers import daemon, dk  # noqa: F401 - the fixture and the CLI helper

JSON = {"Content-Type": "application/json"}

# moby daemon/cluster: errNoManager for a node with no swarm, and errNoSwarm.
NOT_A_MANAGER = ('This node is not a swarm manager. Use "docker swarm init" or "docker swarm join" '
                 "to connect this node to swarm and try again.")
NOT_IN_SWARM = "This node is not part of a swarm"


def q(filters: dict) -> str:
    return quote(json.dumps(filters))


def client(d) -> docker.DockerClient:
    return docker.DockerClient(base_url="unix://" + str(d.sock), timeout=60)


def post_json(d, path: str, body: dict):
    return d.request("POST", path, headers=JSON, body=json.dumps(body).encode())


def test_sigkill_answers_once_the_container_is_exited(daemon):
    # moby `daemon.kill`: SIGKILL waits (10 s at most) for the exit before answering, so an
    # inspect right after already shows the end. Several rounds: the race was likely, not
    # certain, on each.
    for i in range(5):
        name = f"k{i}"
        dk(daemon, "run", "-d", "--name", name, "busybox", "sleep", "1000")
        r = daemon.request("POST", f"/containers/{name}/kill")
        assert r.status == 204, r.text
        state = daemon.get_json(f"/containers/{name}/json")["State"]
        assert (state["Status"], state["Running"], state["ExitCode"]) == ("exited", False, 137), state
    # Other signals answer at once, as dockerd's do (the container may still be running).
    dk(daemon, "run", "-d", "--name", "tt", "busybox", "sleep", "1000")
    assert daemon.request("POST", "/containers/tt/kill?signal=SIGWINCH").status == 204
    assert daemon.get_json("/containers/tt/json")["State"]["Running"] is True


def test_commit_of_a_stopped_container_without_pause(daemon):
    dk(daemon, "run", "--name", "done", "busybox", "sh", "-c", "echo made > /made")
    # No `pause` parameter: moby pauses only a running container.
    r = daemon.request("POST", "/commit?container=done&repo=committed&tag=v1", headers=JSON, body=b"{}")
    assert r.status == 201, r.text
    assert r.json()["Id"].startswith("sha256:")
    assert dk(daemon, "run", "--rm", "committed:v1", "cat", "/made").stdout == "made\n"
    # And the CLI's own commit (it sends pause=true) of the stopped container.
    dk(daemon, "commit", "done", "committed:v2")
    assert dk(daemon, "run", "--rm", "committed:v2", "cat", "/made").stdout == "made\n"


def test_exec_inspect_process_config_and_docker_py_tty(daemon):
    dk(daemon, "run", "-d", "--name", "c1", "busybox", "sleep", "1000")
    r = post_json(daemon, "/containers/c1/exec", {"Cmd": ["echo", "a", "b"], "Tty": True,
                                                  "AttachStdout": True})
    assert r.status == 201, r.text
    exec_id = r.json()["Id"]
    info = daemon.get_json(f"/exec/{exec_id}/json")
    # moby `ContainerExecInspect` on Linux: `privileged` always present, `user` only when set.
    assert info["ProcessConfig"] == {"tty": True, "entrypoint": "echo", "arguments": ["a", "b"],
                                     "privileged": False}, info
    assert {k: info[k] for k in ("OpenStdin", "OpenStdout", "OpenStderr", "Running", "ExitCode",
                                 "ContainerID", "Pid")} == {
        "OpenStdin": False, "OpenStdout": True, "OpenStderr": False, "Running": False,
        "ExitCode": None, "ContainerID": daemon.get_json("/containers/c1/json")["Id"], "Pid": 0}
    r = post_json(daemon, "/containers/c1/exec", {"Cmd": ["id", "-u"], "User": "1000",
                                                  "Privileged": True})
    info = daemon.get_json(f"/exec/{r.json()['Id']}/json")
    assert info["ProcessConfig"] == {"tty": False, "entrypoint": "id", "arguments": ["-u"],
                                     "privileged": True, "user": "1000"}, info
    # docker-py reads the stream's framing from the exec's ProcessConfig.tty.
    c = client(daemon)
    try:
        ctr = c.containers.get("c1")
        res = ctr.exec_run("echo hi", tty=True)
        assert (res.exit_code, res.output) == (0, b"hi\r\n")
        res = ctr.exec_run("echo hi", tty=False)
        assert (res.exit_code, res.output) == (0, b"hi\n")
        res = ctr.exec_run(["sh", "-c", "echo one; echo two"], stream=True, tty=True)
        assert b"".join(res.output) == b"one\r\ntwo\r\n"
        res = ctr.exec_run(["sh", "-c", "echo out; echo err >&2"], demux=True)
        assert res.output == (b"out\n", b"err\n")
    finally:
        c.close()


def test_missing_working_directory_is_created(daemon):
    # moby `SetupWorkingDirectory`: made with its missing parents, root-owned, 0755.
    r = dk(daemon, "run", "--rm", "-w", "/new/dir", "busybox", "sh", "-c",
           "pwd; stat -c '%u:%g %a' /new/dir /new")
    assert r.stdout == "/new/dir\n0:0 755\n0:0 755\n", r.stderr
    # A user's working directory is made by root all the same (dockerd's root pair).
    r = dk(daemon, "run", "--rm", "-u", "1000", "-w", "/made/for/user", "busybox", "sh", "-c",
           "pwd; stat -c '%u' /made/for/user")
    assert r.stdout == "/made/for/user\n0\n", r.stderr
    # A symlink in the image resolves inside the root: /bin/x names the root's /bin/x.
    dk(daemon, "run", "--name", "linker", "busybox", "ln", "-s", "/", "/up")
    dk(daemon, "commit", "linker", "linked")
    r = dk(daemon, "run", "--rm", "-w", "/up/../../../wd", "linked", "pwd")
    assert r.stdout == "/wd\n", r.stderr
    r = dk(daemon, "run", "--rm", "-w", "/etc/passwd", "busybox", "pwd", check=False)
    assert r.returncode != 0
    assert "Cannot mkdir: /etc/passwd is not a directory" in r.stderr, r.stderr


def test_empty_entrypoint_runs_the_command(daemon):
    # The CLI sends `--entrypoint ""` as `Entrypoint: [""]`; moby resets it.
    dk(daemon, "run", "--name", "ep", "busybox", "true")
    dk(daemon, "commit", "--change", 'ENTRYPOINT ["/bin/false"]', "ep", "withentry")
    assert dk(daemon, "run", "--rm", "withentry", "echo", "hi", check=False).returncode == 1
    r = dk(daemon, "run", "--rm", "--entrypoint", "", "withentry", "echo", "hi")
    assert r.stdout == "hi\n", r.stderr
    r = dk(daemon, "run", "--rm", "--entrypoint", "", "busybox", "echo", "hi")
    assert r.stdout == "hi\n", r.stderr
    r = dk(daemon, "create", "--entrypoint", "", "withentry", check=False)
    assert r.returncode != 0 and "no command specified" in r.stderr.lower(), r.stderr


def test_images_reference_filter_trims_repo_tags(daemon):
    dk(daemon, "tag", "busybox:latest", "busybox:second")
    image_id = dk(daemon, "image", "inspect", "-f", "{{.Id}}", "busybox:latest").stdout.strip()
    r = dk(daemon, "images", "-q", "busybox:latest")
    assert r.stdout.split() == [image_id[len("sha256:"):][:12]], r.stdout
    rows = daemon.get_json("/images/json?filters=" + q({"reference": ["busybox:latest"]}))
    assert [i["RepoTags"] for i in rows] == [["busybox:latest"]]
    rows = daemon.get_json("/images/json?filters=" + q({"reference": ["busybox"]}))
    assert [sorted(i["RepoTags"]) for i in rows] == [["busybox:latest", "busybox:second"]]
    # Without the filter the entry keeps both.
    rows = [i for i in daemon.get_json("/images/json") if i["Id"] == image_id]
    assert sorted(rows[0]["RepoTags"]) == ["busybox:latest", "busybox:second"]


@pytest.mark.parametrize("method,path", [
    ("GET", "/swarm"), ("GET", "/swarm/unlockkey"), ("POST", "/swarm/update?version=1"),
    ("POST", "/swarm/unlock"), ("GET", "/services"), ("GET", "/services/x"),
    ("POST", "/services/create"), ("POST", "/services/x/update"), ("DELETE", "/services/x"),
    ("GET", "/services/x/logs?stdout=1"), ("GET", "/nodes"), ("GET", "/nodes/x"), ("DELETE", "/nodes/x"),
    ("POST", "/nodes/x/update"), ("GET", "/tasks"), ("GET", "/tasks/x"), ("GET", "/tasks/x/logs?stderr=1"),
    ("GET", "/secrets"), ("POST", "/secrets/create"), ("GET", "/secrets/x"),
    ("DELETE", "/secrets/x"), ("POST", "/secrets/x/update"), ("GET", "/configs"),
    ("POST", "/configs/create"), ("GET", "/configs/x"), ("DELETE", "/configs/x"),
    ("POST", "/configs/x/update"), ("GET", "/v1.41/services"),
])
def test_swarm_routes_answer_as_a_node_outside_any_swarm(berthd, method, path):
    d = berthd()
    r = d.request(method, path)
    assert (r.status, r.json()) == (503, {"message": NOT_A_MANAGER}), (method, path, r.text)


def test_swarm_leave_and_cli_messages(busybox_daemon):
    d = busybox_daemon()
    for q in ("", "?force=1"):
        r = d.request("POST", "/swarm/leave" + q)
        assert (r.status, r.json()) == (503, {"message": NOT_IN_SWARM}), r.text
    # No plugins are installed.
    assert d.get_json("/plugins") == []
    r = dk(d, "swarm", "leave", "--force", check=False)
    assert (r.returncode, r.stderr.strip()) == (1, "Error response from daemon: " + NOT_IN_SWARM)
    for args in (("service", "ls"), ("node", "ls"), ("secret", "ls"), ("config", "ls")):
        r = dk(d, *args, check=False)
        assert (r.returncode, r.stderr.strip()) == (1, "Error response from daemon: " + NOT_A_MANAGER), args
    # docker-py's clean-up calls leave(force=True), which tolerates exactly a 503 (or a
    # 406); without force it raises dockerd's error.
    c = client(d)
    try:
        assert c.swarm.leave(force=True) is True
        with pytest.raises(docker.errors.APIError) as e:
            c.swarm.leave()
        assert (e.value.status_code, e.value.explanation) == (503, NOT_IN_SWARM)
        with pytest.raises(docker.errors.APIError) as e:
            c.services.list()
        assert (e.value.status_code, e.value.explanation) == (503, NOT_A_MANAGER)
    finally:
        c.close()


def names(d, *filters: str, all_: bool = True) -> list[str]:
    args = ["ps", "--format", "{{.Names}}"] + (["-a"] if all_ else [])
    for f in filters:
        args += ["--filter", f]
    return dk(d, *args).stdout.split()


def test_container_list_filters(daemon):
    dk(daemon, "volume", "create", "vol")
    dk(daemon, "network", "create", "net1")
    assert dk(daemon, "run", "--name", "first", "busybox", "sh", "-c", "exit 3", check=False).returncode == 3
    dk(daemon, "run", "-d", "--name", "second", "-p", "127.0.0.1:18081:80", "--expose", "9000-9001/udp",
       "-v", "vol:/data", "busybox", "sleep", "1000")
    dk(daemon, "create", "--name", "third", "--network", "net1", "busybox", "true")
    dk(daemon, "run", "-d", "--name", "fourth", "--network", "net1", "busybox", "sleep", "1000")
    assert names(daemon) == ["fourth", "third", "second", "first"]
    assert names(daemon, "before=third") == ["second", "first"]
    assert names(daemon, "since=second") == ["fourth", "third"]
    assert names(daemon, "since=first", "before=fourth") == ["third", "second"]
    assert names(daemon, "before=third", all_=False) == ["second"]
    # exited: a stopped container that ran, with that code; `third` never started.
    assert names(daemon, "exited=3") == ["first"]
    assert names(daemon, "exited=0") == []
    assert names(daemon, "exited=0", "exited=3") == ["first"]
    assert names(daemon, "is-task=true") == []
    assert names(daemon, "is-task=false") == ["fourth", "third", "second", "first"]
    assert names(daemon, "network=net1") == ["fourth", "third"]
    net_id = dk(daemon, "network", "inspect", "-f", "{{.Id}}", "net1").stdout.strip()
    assert names(daemon, f"network={net_id[:10]}") == ["fourth", "third"]
    assert names(daemon, "network=bridge", all_=False) == ["second"]
    assert names(daemon, "publish=18081") == ["second"]
    assert names(daemon, "publish=18081/udp") == []
    assert names(daemon, "publish=18080-18090/tcp") == ["second"]
    assert names(daemon, "expose=80/tcp") == ["second"]
    assert names(daemon, "expose=9001/udp") == ["second"]
    assert names(daemon, "expose=9001") == []
    assert names(daemon, "volume=vol") == ["second"]
    assert names(daemon, "volume=/data") == ["second"]
    assert names(daemon, "volume=other") == []
    # Bad values: moby's texts (dockerd answers the port ones with 500; a client's mistake
    # is a 400 here, as for the other filters).
    for f, status, message in [
        ({"exited": ["x"]}, 400, "invalid filter 'exited=x': strconv.Atoi: parsing \"x\": invalid syntax"),
        ({"is-task": ["maybe"]}, 400, "invalid filter 'is-task=maybe'"),
        ({"before": ["nosuch"]}, 404, "No such container: nosuch"),
        ({"since": ["nosuch"]}, 404, "No such container: nosuch"),
        ({"publish": ["80:80"]}, 400, "filter for 'publish' should not contain ':': 80:80"),
        ({"expose": ["x"]}, 400,
         "error while looking up for expose x: strconv.ParseUint: parsing \"x\": invalid syntax"),
    ]:
        r = daemon.request("GET", "/containers/json?all=1&filters=" + q(f))
        assert (r.status, r.json()) == (status, {"message": message}), (f, r.text)
    dk(daemon, "rm", "-f", "first", "second", "third", "fourth")
    dk(daemon, "network", "rm", "net1")
    dk(daemon, "volume", "rm", "vol")


def test_remove_link_answers_as_dockerd_without_legacy_links(daemon):
    dk(daemon, "create", "--name", "db", "busybox", "true")
    # moby `rmLink`: a plain name is the container's default link, which cannot go; the
    # container must stay (it was removed before).
    r = dk(daemon, "rm", "--link", "db", check=False)
    assert r.returncode == 1
    assert "Conflict, cannot remove the default link name of the container" in r.stderr, r.stderr
    assert daemon.request("GET", "/containers/db/json").status == 200
    r = daemon.request("DELETE", "/containers/db?link=1")
    assert (r.status, r.json()) == (409, {"message": "Conflict, cannot remove the default link name of the container"})
    # `parent/alias` with no such link names no container.
    for path in ("/containers/web/db?link=1", "/v1.41/containers/web/db?link=true", "/containers/web/db"):
        r = daemon.request("DELETE", path)
        assert (r.status, r.json()) == (404, {"message": "No such container: web/db"}), (path, r.text)
    r = dk(daemon, "rm", "--link", "/web/db", check=False)
    assert r.returncode == 1 and "No such container: web/db" in r.stderr, r.stderr
    r = daemon.request("DELETE", "/containers/nosuch?link=1")
    assert (r.status, r.json()) == (404, {"message": "No such container: nosuch"})
    assert daemon.request("GET", "/containers/db/json").status == 200


def attach_raw(d, name: str, query: str, until: bytes | None = None, timeout: float = 20) -> tuple[int, bytes]:
    """POST /containers/{name}/attach?{query} with an upgrade; the status, and the bytes
    after the head until EOF (or until `until` shows up)."""
    import socket
    import time
    s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    s.settimeout(timeout)
    try:
        s.connect(str(d.sock))
        s.sendall(f"POST /containers/{name}/attach?{query} HTTP/1.1\r\nHost: x\r\n"
                  "Connection: Upgrade\r\nUpgrade: tcp\r\nContent-Length: 0\r\n\r\n".encode())
        buf = b""
        while b"\r\n\r\n" not in buf:
            chunk = s.recv(4096)
            assert chunk, buf
            buf += chunk
        head, rest = buf.split(b"\r\n\r\n", 1)
        status = int(head.split(b" ")[1])
        deadline = time.monotonic() + timeout
        while until is None or until not in rest:
            assert time.monotonic() < deadline, rest
            chunk = s.recv(4096)
            if not chunk:
                break
            rest += chunk
        return status, rest
    finally:
        s.close()


def frames(data: bytes) -> list[tuple[int, bytes]]:
    out = []
    while len(data) >= 8:
        kind, size = data[0], int.from_bytes(data[4:8], "big")
        out.append((kind, data[8:8 + size]))
        data = data[8 + size:]
    return out


def test_attach_logs_and_stream_parameters(daemon):
    dk(daemon, "run", "-d", "--name", "talker", "busybox", "sh", "-c",
       "echo one; echo err >&2; while [ ! -f /tmp/go ]; do sleep 0.1; done; "
       "while true; do echo two; sleep 0.2; done")
    poll(lambda: "err" in dk(daemon, "logs", "talker").stderr, 20, "the first lines in the log")
    # logs without stream: the log so far, of the streams asked for, then the end.
    status, out = attach_raw(daemon, "talker", "logs=1&stdout=1&stderr=1")
    assert status == 101
    assert sorted(frames(out)) == [(1, b"one\n"), (2, b"err\n")]
    status, out = attach_raw(daemon, "talker", "logs=1&stream=0&stdout=1")
    assert frames(out) == [(1, b"one\n")]
    # Neither: nothing, at once (moby returns before attaching).
    status, out = attach_raw(daemon, "talker", "stdout=1")
    assert (status, out) == (101, b"")
    # logs and stream: the log first, then what comes live.
    import threading
    import time

    def attaches() -> int:
        f = q({"event": ["attach"], "container": ["talker"]})
        r = daemon.request("GET", f"/events?since=0&until={int(time.time()) + 1}&filters={f}")
        return r.text.count('"attach"')

    before = attaches()
    result: dict = {}
    t = threading.Thread(target=lambda: result.setdefault(
        "v", attach_raw(daemon, "talker", "logs=1&stream=1&stdout=1", until=b"two\n")))
    t.start()
    try:
        # The live part starts once the attach is answered (its event is out), and repeats:
        # a line written between the end of the log and the live attach is in neither
        # (as with dockerd).
        poll(lambda: attaches() > before, 20, "the attach event")
        dk(daemon, "exec", "talker", "touch", "/tmp/go")
    finally:
        t.join(30)
    assert not t.is_alive()
    status, out = result["v"]
    got = frames(out)
    assert got[0] == (1, b"one\n") and (1, b"two\n") in got and (2, b"err\n") not in got, out


def test_image_search_when_the_index_cannot_be_reached(daemon):
    # An index that cannot resolve (RFC 2606 `.invalid`): dockerd's 500 with Go's url.Error
    # shape, `Get "<url>": <cause>` (the query left out here).
    r = daemon.request("GET", "/images/search?term=nosuch.invalid/busybox")
    assert r.status == 500, r.text
    assert r.json()["message"].startswith('Get "https://nosuch.invalid/v1/search": '), r.text
    r = dk(daemon, "search", "nosuch.invalid/busybox", check=False)
    assert r.returncode == 1
    assert r.stderr.startswith('Error response from daemon: Get "https://nosuch.invalid/v1/search": '), r.stderr
    # What dockerd refuses before asking the index (moby registry/search.go).
    for query, message in [
        ("term=busybox&limit=x", 'invalid limit specified: strconv.Atoi: parsing "x": invalid syntax'),
        ("term=busybox&limit=101", "limit 101 is outside the range of [1, 100]"),
        ("term=busybox&limit=-1", "limit -1 is outside the range of [1, 100]"),
        ("term=https://x/busybox",
         "invalid repository name: repository name (https://x/busybox) should not have a scheme"),
        ("term=busybox&filters=" + q({"stars": ["many"]}),
         'invalid filter \'stars=many\': strconv.Atoi: parsing "many": invalid syntax'),
        ("term=busybox&filters=" + q({"is-official": ["maybe"]}), "invalid filter 'is-official=maybe'"),
        ("term=busybox&filters=" + q({"nope": ["1"]}), "invalid filter 'nope'"),
    ]:
        r = daemon.request("GET", "/images/search?" + query)
        assert (r.status, r.json()) == (400, {"message": message}), (query, r.text)
    # is-automated=true: nothing is automated any more; dockerd answers [] without asking.
    r = daemon.request("GET", "/images/search?term=nosuch.invalid/x&filters=" + q({"is-automated": ["true"]}))
    assert (r.status, r.json()) == (200, [])


def test_plugin_routes_answer_as_a_daemon_without_plugins(berthd):
    """moby's plugin manager with nothing installed: a named plugin is not found (the
    docker CLI prints dockerd's text); installing one is not implemented here."""
    d = berthd()
    for method, path, body in [("GET", "/plugins/foo/json", b""), ("DELETE", "/plugins/foo", b""),
                               ("POST", "/plugins/foo/enable?timeout=8", b""),
                               ("POST", "/plugins/foo/disable", b""), ("POST", "/plugins/foo/set", b'["A=1"]')]:
        r = d.request(method, f"/v1.41{path}", headers=JSON, body=body)
        assert r.status == 404, (method, path, r.status, r.text)
        assert r.json() == {"message": 'plugin "foo" not found'}, (method, path, r.text)
    # As moby's plugin router, parameters are read before the plugin is looked up.
    for path, body, message in [
            ("/plugins/foo/enable", b"", 'strconv.Atoi: parsing "": invalid syntax'),
            ("/plugins/foo/enable?timeout=x", b"", 'strconv.Atoi: parsing "x": invalid syntax'),
            ("/plugins/foo/set", b"", "got EOF while reading request body"),
            ("/plugins/foo/set", b"{}", "json: cannot unmarshal object into Go value of type []string"),
            ("/plugins/foo/set", b"[1]", "json: cannot unmarshal number into Go value of type string")]:
        r = d.request("POST", f"/v1.41{path}", headers=JSON, body=body)
        assert (r.status, r.json()) == (400, {"message": message}), (path, r.text)
    r = d.request("POST", "/v1.41/plugins/pull?remote=foo")
    assert r.status == 501 and "not supported" in r.json()["message"], r.text
    assert d.get_json("/v1.41/plugins") == []


def test_kill_errors_carry_dockerds_prefix(daemon):
    """moby's router wraps every kill error as "Cannot kill container: NAME: ..."; the docker
    CLI prints it after "Error response from daemon:"."""
    r = daemon.request("POST", "/containers/nope/kill")
    assert r.status == 404
    assert r.json() == {"message": "Cannot kill container: nope: No such container: nope"}
    dk(daemon, "create", "--name", "idle", "busybox", "true")
    r = daemon.request("POST", "/containers/idle/kill")
    assert r.status == 409
    assert r.json()["message"].startswith("Cannot kill container: idle: Container "), r.text
    assert r.json()["message"].endswith(" is not running"), r.text
    out = dk(daemon, "kill", "idle", check=False)
    assert out.returncode != 0
    assert "Error response from daemon: Cannot kill container: idle: Container " in out.stderr, out.stderr


# dockerd 20.10's `HostConfig` keys in the inspect of `docker create busybox`, less
# `KernelMemory` and `KernelMemoryTCP` (Docker 28 leaves them out when 0).
DOCKERD_HOST_CONFIG_KEYS = {
    "AutoRemove", "Binds", "BlkioDeviceReadBps", "BlkioDeviceReadIOps", "BlkioDeviceWriteBps",
    "BlkioDeviceWriteIOps", "BlkioWeight", "BlkioWeightDevice", "CapAdd", "CapDrop", "Cgroup",
    "CgroupParent", "CgroupnsMode", "ConsoleSize", "ContainerIDFile", "CpuCount", "CpuPercent",
    "CpuPeriod", "CpuQuota", "CpuRealtimePeriod", "CpuRealtimeRuntime", "CpuShares", "CpusetCpus",
    "CpusetMems", "DeviceCgroupRules", "DeviceRequests", "Devices", "Dns", "DnsOptions", "DnsSearch",
    "ExtraHosts", "GroupAdd", "IOMaximumBandwidth", "IOMaximumIOps", "IpcMode", "Isolation", "Links",
    "LogConfig", "MaskedPaths", "Memory", "MemoryReservation", "MemorySwap", "MemorySwappiness",
    "NanoCpus", "NetworkMode", "OomKillDisable", "OomScoreAdj", "PidMode", "PidsLimit", "PortBindings",
    "Privileged", "PublishAllPorts", "ReadonlyPaths", "ReadonlyRootfs", "RestartPolicy", "Runtime",
    "SecurityOpt", "ShmSize", "UTSMode", "Ulimits", "UsernsMode", "VolumeDriver", "VolumesFrom",
}
# moby's container.Config keys without `omitempty` (what 20.10 sends for an image's config).
LEGACY_CONFIG_KEYS = {
    "Hostname", "Domainname", "User", "AttachStdin", "AttachStdout", "AttachStderr", "Tty",
    "OpenStdin", "StdinOnce", "Env", "Cmd", "Image", "Volumes", "WorkingDir", "Entrypoint",
    "OnBuild", "Labels",
}


def test_container_inspect_sends_the_fields_dockerd_sends(daemon):
    # The test image (imported, as the reference's) sets no Env: dockerd shows `null` and
    # still gives the process the default PATH.
    assert post_json(daemon, "/containers/create?name=plain", {"Image": "busybox", "Cmd": ["true"]}).status == 201
    v = daemon.get_json("/v1.41/containers/plain/json")
    assert set(v["HostConfig"]) == DOCKERD_HOST_CONFIG_KEYS, sorted(set(v["HostConfig"]) ^ DOCKERD_HOST_CONFIG_KEYS)
    assert LEGACY_CONFIG_KEYS <= set(v["Config"]), sorted(LEGACY_CONFIG_KEYS - set(v["Config"]))
    hc = v["HostConfig"]
    assert (hc["ShmSize"], hc["ConsoleSize"], hc["CapAdd"], hc["BlkioWeight"]) == (67108864, [0, 0], None, 0)
    assert hc["MaskedPaths"][0] == "/proc/asound" and "/proc/sys" in hc["ReadonlyPaths"], hc
    assert (v["Config"]["Env"], v["Config"]["Volumes"], v["Config"]["OnBuild"]) == (None, None, None)
    assert "StopSignal" not in v["Config"] and "Hostname" not in v, v
    # The docker CLI sends ShmSize 0 and MaskedPaths null: dockerd's defaults all the same.
    dk(daemon, "create", "--name", "cli", "busybox", "true")
    hc = daemon.get_json("/containers/cli/json")["HostConfig"]
    assert (hc["ShmSize"], hc["MaskedPaths"][0]) == (67108864, "/proc/asound"), hc
    # What a request set stays as it was set.
    dk(daemon, "create", "--name", "set", "--shm-size", "1m", "--cap-add", "NET_ADMIN",
       "--stop-signal", "SIGINT", "-e", "A=1", "--privileged", "busybox", "true")
    v = daemon.get_json("/containers/set/json")
    assert (v["HostConfig"]["ShmSize"], v["HostConfig"]["CapAdd"]) == (1 << 20, ["CAP_NET_ADMIN"])
    assert (v["HostConfig"]["MaskedPaths"], v["Config"]["StopSignal"], v["Config"]["Env"]) == (None, "SIGINT", ["A=1"])
    # The docker CLI, docker-py and the container itself are content with it.
    assert dk(daemon, "inspect", "-f", "{{.HostConfig.ShmSize}} {{.Config.Env}}", "plain").stdout == "67108864 []\n"
    assert dk(daemon, "run", "--rm", "busybox", "sh", "-c", "echo $PATH").stdout == \
        "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin\n"
    c = client(daemon)
    try:
        assert c.containers.get("plain").attrs["HostConfig"]["ShmSize"] == 67108864
        assert c.containers.run("busybox", ["sh", "-c", "echo $A"], environment=["A=2"], remove=True) == b"2\n"
    finally:
        c.close()


def test_image_answers_keep_the_fields_of_older_api_versions(daemon):
    """moby's image routes: `VirtualSize` (= `Size`) before API 1.44, `Container` and
    `ContainerConfig` before 1.45, an image's container-only `Config` fields before 1.50."""
    old = daemon.get_json("/v1.41/images/json")
    assert old and all(i["VirtualSize"] == i["Size"] for i in old), old
    assert all("VirtualSize" not in i for i in daemon.get_json("/v1.44/images/json"))
    df = daemon.get_json("/v1.41/system/df")
    assert all(i["VirtualSize"] == i["Size"] for i in df["Images"]), df["Images"]
    assert all("VirtualSize" not in i for i in daemon.get_json("/v1.44/system/df")["Images"])
    image = daemon.get_json("/v1.41/images/busybox/json")
    assert (image["VirtualSize"], image["Container"]) == (image["Size"], "")
    assert LEGACY_CONFIG_KEYS <= set(image["Config"]), image["Config"]
    assert LEGACY_CONFIG_KEYS <= set(image["ContainerConfig"]), image["ContainerConfig"]
    assert (image["Config"]["Env"], image["Config"]["Tty"]) == (None, False)
    current = daemon.get_json("/images/busybox/json")
    assert not {"VirtualSize", "Container", "ContainerConfig"} & set(current), current.keys()
    assert dk(daemon, "images", "--format", "{{.Repository}} {{.Size}}", "busybox").stdout.startswith("busybox ")
    c = client(daemon)
    try:
        assert c.images.get("busybox").attrs["Id"] == current["Id"]
    finally:
        c.close()


def test_a_missing_image_is_named_with_its_default_tag(daemon):
    # moby `ErrImageDoesNotExist`: the reference with its default tag, in familiar form.
    for method, path in [("GET", "/images/nope/json"), ("GET", "/images/nope/history"),
                         ("DELETE", "/images/nope"), ("POST", "/images/nope/tag?repo=x"),
                         ("GET", "/images/docker.io/library/nope/json")]:
        r = daemon.request(method, path)
        assert (r.status, r.json()) == (404, {"message": "No such image: nope:latest"}), (path, r.text)
    r = daemon.request("GET", "/images/nope:v1/json")
    assert r.json() == {"message": "No such image: nope:v1"}
    out = dk(daemon, "rmi", "nope", check=False)
    assert out.stderr.strip() == "Error response from daemon: No such image: nope:latest", out.stderr


def test_resize_of_a_container_without_a_tty_is_a_no_op(daemon):
    # containerd resizes no console for a process without one, and dockerd answers 200.
    dk(daemon, "run", "-d", "--name", "notty", "busybox", "sleep", "1000")
    assert daemon.request("POST", "/containers/notty/resize?h=10&w=20").status == 200
    assert daemon.request("POST", "/containers/notty/resize?h=x&w=20").status == 400
    dk(daemon, "run", "-d", "-t", "--name", "tty", "busybox", "sleep", "1000")
    assert daemon.request("POST", "/containers/tty/resize?h=10&w=20").status == 200
    out = dk(daemon, "exec", "-t", "tty", "stty", "size")
    assert out.returncode == 0


def test_parameters_are_checked_as_dockerd_checks_them(daemon):
    def refused(method, path, status, message, body=None):
        r = daemon.request(method, path, headers=JSON, body=body or b"")
        assert (r.status, r.json()) == (status, {"message": message}), (path, r.status, r.text)

    dk(daemon, "create", "--name", "src", "busybox", "true")
    refused("GET", "/containers/json?limit=x", 400, 'strconv.Atoi: parsing "x": invalid syntax')
    for action in ("stop", "restart"):
        refused("POST", f"/containers/src/{action}?t=x", 400, 'strconv.Atoi: parsing "x": invalid syntax')
    assert daemon.request("GET", "/containers/json?limit=").status == 200
    refused("POST", "/build?squash=1", 400, "squash is only supported with experimental mode")
    refused("POST", "/build?version=0", 400, 'invalid version "0"')
    refused("POST", "/build/prune?keep-storage=x", 400,
            'keep-storage is in bytes and expects an integer, got x: strconv.Atoi: parsing "x": invalid syntax')
    refused("POST", "/commit?container=src&changes=", 400, "file with no instructions", b"{}")
    r = daemon.request("POST", "/commit?container=src&changes=ENV+A%3D1&changes=", headers=JSON, body=b"{}")
    assert r.status == 201, r.text
    refused("GET", "/networks/bridge?verbose=x", 400,
            'invalid value for verbose: x: strconv.ParseBool: parsing "x": invalid syntax')
    refused("GET", "/networks/bridge?scope=swarm", 404, "network bridge not found")
    assert daemon.get_json("/networks/bridge?scope=local&verbose=1")["Name"] == "bridge"
    # Swarm routes read their parameters before finding this node outside any swarm.
    refused("GET", "/services?status=x", 400,
            'invalid value for status: x: strconv.ParseBool: parsing "x": invalid syntax')
    refused("GET", "/services/s?insertDefaults=x", 400,
            'invalid value for insertDefaults: x: strconv.ParseBool: parsing "x": invalid syntax')
    refused("POST", "/swarm/update?version=1&rotateWorkerToken=x", 400, "invalid value for rotateWorkerToken: x",
            b"{}")
    refused("GET", "/services/s/logs", 400, "Bad parameters: you must choose at least one stream")
    refused("GET", "/tasks/t/logs?stdout=1", 503, NOT_A_MANAGER)
    refused("GET", "/services?status=true", 503, NOT_A_MANAGER)
