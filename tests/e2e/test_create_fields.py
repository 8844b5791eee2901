"""Create fields that were stored and ignored: block I/O throttles and weights, memory
swappiness, the OOM killer switch, CpusetMems, device cgroup rules, annotations, real-time
CPU, GPU requests, UsernsMode and StorageOpt. Each is seen applied from outside the
container (its v1 cgroup files under the daemon's cgroup parent, the OCI config.json the
runtime was given) or refused in dockerd's words, with nothing left behind. The berth CLI's
new run/create flags send the same create body as docker's (both captured by a fake
daemon on a unix socket)."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import threading
from pathlib import Path

import pytest

from conftest import BERTH_BIN, DOCKER_BIN, clean_env
from test_security_opts import d, dk, ids  # noqa: F401 - the fixture and the CLI helpers

V1 = Path("/sys/fs/cgroup")


def create_status(d, host_config: dict) -> tuple[int, str]:
    before = len(ids(d))
    r = d.request("POST", "/containers/create", headers={"Content-Type": "application/json"},
                  body=json.dumps({"Image": "busybox", "Cmd": ["true"], "HostConfig": host_config}).encode())
    if r.status >= 400:
        assert len(ids(d)) == before, "a refused create left a container"
        return r.status, r.json().get("message", "")
    return r.status, json.dumps(r.json())


def cgroup_file(d, cid: str, controller: str, name: str) -> str:
    return (V1 / controller / d.cgroup_parent.strip("/") / cid / name).read_text()


def block_device() -> tuple[str, int, int]:
    """A block device of this host, with its major:minor."""
    for name in sorted(os.listdir("/sys/block")):
        p = Path("/dev") / name
        if p.is_block_device() and not name.startswith(("loop", "ram")):
            st = p.stat()
            return str(p), os.major(st.st_rdev), os.minor(st.st_rdev)
    pytest.fail("no block device on this host")


def spec_of(d, cid: str) -> dict:
    found = [p for root in (d.exec_root, d.data_root) for p in root.rglob("config.json") if cid[:12] in str(p)]
    assert found, (cid, sorted(str(p) for p in d.exec_root.rglob("*"))[:50])
    return json.loads(found[0].read_text())


def test_blkio_throttles_reach_the_cgroup(d):
    dev, major, minor = block_device()
    r = dk(d, "run", "-d", "--device-read-bps", f"{dev}:1mb", "--device-write-bps", f"{dev}:2mb",
           "--device-read-iops", f"{dev}:100", "--device-write-iops", f"{dev}:200",
           "--blkio-weight", "300", "busybox", "sleep", "1000")
    cid = r.stdout.strip()
    try:
        for name, want in [("read_bps_device", 1 << 20), ("write_bps_device", 2 << 20),
                           ("read_iops_device", 100), ("write_iops_device", 200)]:
            got = cgroup_file(d, cid, "blkio", f"blkio.throttle.{name}")
            assert f"{major}:{minor} {want}" in got, (name, got)
        weight = V1 / "blkio" / "blkio.weight"
        inspected = json.loads(dk(d, "inspect", cid).stdout)[0]["HostConfig"]["BlkioWeight"]
        if weight.exists():
            assert cgroup_file(d, cid, "blkio", "blkio.weight").strip() == "300"
            assert inspected == 300
        else:
            # No CFQ/BFQ here: dockerd's warning, and the weight is dropped, not ignored.
            assert "Your kernel does not support Block I/O weight or the cgroup is not mounted. " \
                   "Weight discarded." in r.stderr, r.stderr
            assert inspected == 0
    finally:
        dk(d, "rm", "-f", cid)
    status, msg = create_status(d, {"BlkioDeviceReadBps": [{"Path": "/dev/berth-no-such", "Rate": 1}]})
    assert (status, msg) == (400, "stat /dev/berth-no-such: no such file or directory")
    status, msg = create_status(d, {"BlkioDeviceReadBps": [{"Path": "/dev/null", "Rate": 1}]})
    assert (status, msg) == (400, "/dev/null is not a block device")
    status, msg = create_status(d, {"BlkioWeight": 5})
    if (V1 / "blkio" / "blkio.weight").exists():
        assert (status, msg) == (400, "Range of blkio weight is from 10 to 1000")
    else:
        # dockerd drops an unsupported weight before its range check.
        assert status == 201 and "Weight discarded." in msg, msg
        dk(d, "rm", json.loads(msg)["Id"])


def test_memory_swappiness_oom_kill_disable_and_cpuset_mems(d):
    r = dk(d, "run", "-d", "--memory-swappiness", "17", "--oom-kill-disable", "--cpuset-mems", "0",
           "busybox", "sleep", "1000")
    cid = r.stdout.strip()
    try:
        assert "OOM killer is disabled for the container, but no memory limit is set" in r.stderr, r.stderr
        assert cgroup_file(d, cid, "memory", "memory.swappiness").strip() == "17"
        assert "oom_kill_disable 1" in cgroup_file(d, cid, "memory", "memory.oom_control")
        assert cgroup_file(d, cid, "cpuset", "cpuset.mems").strip() == "0"
    finally:
        dk(d, "rm", "-f", cid)
    status, msg = create_status(d, {"MemorySwappiness": 101})
    assert (status, msg) == (400, "Invalid value: 101, valid memory swappiness range is 0-100")
    online = Path("/sys/devices/system/node/online").read_text().strip()
    status, msg = create_status(d, {"CpusetMems": "63"})
    assert (status, msg) == (400, f"Requested memory nodes are not available - requested 63, available: {online}")


def test_device_cgroup_rules_and_annotations(d):
    r = d.request("POST", "/containers/create", headers={"Content-Type": "application/json"},
                  body=json.dumps({"Image": "busybox", "Cmd": ["sleep", "1000"],
                                   "HostConfig": {"DeviceCgroupRules": ["c 42:* rmw"],
                                                  "Annotations": {"org.example.berth": "yes"}}}).encode())
    assert r.status == 201, r.text
    cid = r.json()["Id"]
    try:
        dk(d, "start", cid)
        assert "c 42:* rwm" in cgroup_file(d, cid, "devices", "devices.list")
        spec = spec_of(d, cid)
        assert spec["annotations"]["org.example.berth"] == "yes"
        rules = spec["linux"]["resources"]["devices"]
        assert {"allow": True, "type": "c", "major": 42, "access": "rmw"} in rules, rules
    finally:
        dk(d, "rm", "-f", cid)
    status, msg = create_status(d, {"DeviceCgroupRules": ["c 42 rmw"]})
    assert (status, msg) == (400, "invalid device cgroup rule format: 'c 42 rmw'")


def test_refused_in_dockerds_words(d):
    status, msg = create_status(d, {"StorageOpt": {"size": "1G"}})
    assert (status, msg) == (400, "--storage-opt is supported only for overlay over xfs with 'pquota' mount option")
    status, msg = create_status(d, {"UsernsMode": "ns:/proc/1/ns/user"})
    assert (status, msg) == (400, "invalid USER mode: ns:/proc/1/ns/user")
    status, msg = create_status(d, {"CpuRealtimePeriod": 1000, "CpuRealtimeRuntime": 2000})
    assert (status, msg) == (400, "cpu real-time runtime cannot be higher than cpu real-time period")
    if not (V1 / "cpu" / "cpu.rt_runtime_us").exists():
        status, msg = create_status(d, {"CpuRealtimeRuntime": 1000})
        assert (status, msg) == (400, "Your kernel does not support cgroup cpu real-time runtime")
    # No GPU and no device driver here: dockerd fails the start with these words.
    r = dk(d, "run", "--rm", "--gpus", "all", "busybox", "true", check=False)
    assert r.returncode == 125, r
    assert 'could not select device driver "" with capabilities: [[gpu]]' in r.stderr, r.stderr
    assert ids(d) == [], "the --rm container was left"


class FakeDaemon:
    """A unix socket answering like a daemon that has no image: `POST /containers/create`
    bodies are kept and refused with a 500, so that neither CLI goes further."""

    def __init__(self, path: Path):
        self.path = path
        self.bodies: list[dict] = []
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.sock.bind(str(path))
        self.sock.listen(8)
        self.thread = threading.Thread(target=self.serve, daemon=True)
        self.thread.start()

    def serve(self) -> None:
        while True:
            try:
                conn, _ = self.sock.accept()
            except OSError:
                return
            with conn:
                conn.settimeout(10)
                try:
                    self.answer(conn)
                except OSError:
                    pass

    def answer(self, conn: socket.socket) -> None:
        data = b""
        while b"\r\n\r\n" not in data:
            chunk = conn.recv(65536)
            if not chunk:
                return
            data += chunk
        head, _, body = data.partition(b"\r\n\r\n")
        lines = head.decode().split("\r\n")
        length = 0
        for line in lines[1:]:
            k, _, v = line.partition(":")
            if k.lower() == "content-length":
                length = int(v.strip())
        while len(body) < length:
            chunk = conn.recv(65536)
            if not chunk:
                break
            body += chunk
        method, target = lines[0].split(" ")[:2]
        if method == "POST" and "/containers/create" in target:
            self.bodies.append(json.loads(body))
            status, payload = "500 Internal Server Error", b'{"message":"captured"}'
        else:
            status, payload = "200 OK", b"OK" if "_ping" in target else b"{}"
        conn.sendall(f"HTTP/1.1 {status}\r\nContent-Type: application/json\r\nApi-Version: 1.47\r\n"
                     f"Content-Length: {len(payload)}\r\nConnection: close\r\n\r\n".encode() + payload)

    def close(self) -> None:
        self.sock.close()


FLAGS = ["--blkio-weight", "300", "--blkio-weight-device", "/dev/vda:200",
         "--device-read-bps", "/dev/vda:1mb", "--device-write-bps", "/dev/vda:2kb",
         "--device-read-iops", "/dev/vda:10", "--device-write-iops", "/dev/vda:20",
         "--device-cgroup-rule", "c 42:* rmw", "--cpu-rt-period", "1000000", "--cpu-rt-runtime", "950000",
         "--cpuset-mems", "0", "--memory-swappiness", "10", "--oom-kill-disable", "--gpus", "all",
         "--userns", "host", "--cgroup-parent", "/custom", "--annotation", "a=b", "--storage-opt", "size=1G",
         "--domainname", "example.org", "-a", "STDOUT"]

KEYS = ["BlkioWeight", "BlkioWeightDevice", "BlkioDeviceReadBps", "BlkioDeviceWriteBps", "BlkioDeviceReadIOps",
        "BlkioDeviceWriteIOps", "DeviceCgroupRules", "CpuRealtimePeriod", "CpuRealtimeRuntime", "CpusetMems",
        "MemorySwappiness", "OomKillDisable", "DeviceRequests", "UsernsMode", "CgroupParent", "Annotations",
        "StorageOpt"]


def no_nulls(v):
    """`null` and absent are the same to the daemon."""
    if isinstance(v, dict):
        return {k: no_nulls(x) for k, x in v.items() if x is not None}
    if isinstance(v, list):
        return [no_nulls(x) for x in v]
    return v


def test_cli_flags_send_dockers_body(workdir):
    sock = workdir / "fake.sock"
    fake = FakeDaemon(sock)
    env_file = workdir / "env"
    env_file.write_text("# comment\nA=1\n  B=two words\n")
    label_file = workdir / "labels"
    label_file.write_text("l1=x\nl2=y\n")
    extra = ["--env-file", str(env_file), "--label-file", str(label_file), "-e", "C=3", "--label", "l2=z"]
    try:
        env = clean_env({"DOCKER_CONFIG": str(workdir / "cfg")})
        for argv in ([DOCKER_BIN, "-H", f"unix://{sock}"], [str(BERTH_BIN), "-H", f"unix://{sock}"]):
            r = subprocess.run([*argv, "create", *FLAGS, *extra, "busybox", "true"], env=env,
                               capture_output=True, text=True, timeout=60)
            assert r.returncode != 0 and "captured" in r.stderr, (argv, r.stdout, r.stderr)
    finally:
        fake.close()
    assert len(fake.bodies) == 2, fake.bodies
    docker_body, berth_body = (no_nulls(b) for b in fake.bodies)
    for key in KEYS:
        assert berth_body["HostConfig"].get(key) == docker_body["HostConfig"].get(key), key
    for key in ["Domainname", "Env", "Labels", "AttachStdout", "AttachStderr", "AttachStdin"]:
        assert berth_body.get(key) == docker_body.get(key), key
    assert docker_body["Env"] == ["A=1", "B=two words", "C=3"]


def test_cli_refusals_read_as_dockers(d, workdir):
    """The client-side checks, before any request: docker's words."""
    cid_file = workdir / "cid"
    cid_file.write_text("x")
    env = clean_env({"DOCKER_HOST": d.unix_host, "DOCKER_CONFIG": str(workdir / "cfg")})
    cases = [
        (["--memory-swappiness", "200"], "invalid value: 200. Valid memory swappiness range is 0-100"),
        (["--userns", "foo"], "--userns: invalid USER mode"),
        (["--storage-opt", "foo"], "invalid storage option"),
        (["--pull", "foo"], "invalid pull option: 'foo': must be one of \"always\", \"missing\" or \"never\""),
        (["--cidfile", str(cid_file)],
         f"container ID file found, make sure the other container isn't running or delete {cid_file}"),
        (["--env-file", "/berth-no-such-file"], "open /berth-no-such-file: no such file or directory"),
        (["--device-cgroup-rule", "x"], "invalid device cgroup format 'x'"),
        (["--blkio-weight-device", "/dev/vda:5"], "invalid weight for device: /dev/vda:5"),
        (["-a", "stdout", "-d"], "conflicting options: cannot specify both --attach and --detach"),
        (["-a", "foo"], "valid streams are STDIN, STDOUT and STDERR"),
    ]
    for flags, text in cases:
        for cli in (DOCKER_BIN, str(BERTH_BIN)):
            r = subprocess.run([cli, "run", *flags, "busybox", "true"], env=env, capture_output=True, text=True,
                               timeout=60)
            assert r.returncode != 0 and text in r.stderr, (cli, flags, r.stderr)
    assert ids(d) == []
    # --cidfile written after the create, --pull never finds no image.
    cid_new = workdir / "cid-new"
    r = subprocess.run([str(BERTH_BIN), "create", "--cidfile", str(cid_new), "busybox", "true"], env=env,
                       capture_output=True, text=True, timeout=60)
    assert r.returncode == 0, r.stderr
    assert cid_new.read_text() == r.stdout.strip()
    dk(d, "rm", r.stdout.strip())
    # -a stderr: only the error stream comes back.
    r = subprocess.run([str(BERTH_BIN), "run", "--rm", "-a", "stderr", "busybox", "sh", "-c", "echo out; echo err >&2"],
                       env=env, capture_output=True, text=True, timeout=60)
    assert (r.returncode, r.stdout, r.stderr) == (0, "", "err\n"), r
    r = subprocess.run([str(BERTH_BIN), "run", "--pull", "never", "berth-absent:1", "true"], env=env,
                       capture_output=True, text=True, timeout=60)
    assert r.returncode == 125 and "No such image: berth-absent:1" in r.stderr, r.stderr


def test_cgroup_parent_per_container(d):
    """`--cgroup-parent` puts the container's cgroup there, not under the daemon's."""
    parent = f"berth-e2e-parent-{os.getpid()}"
    cid = ""
    try:
        cid = dk(d, "run", "-d", "--cgroup-parent", parent, "busybox", "sleep", "1000").stdout.strip()
        procs = (V1 / "memory" / parent / cid / "cgroup.procs").read_text().split()
        state = json.loads(dk(d, "inspect", cid).stdout)[0]
        assert str(state["State"]["Pid"]) in procs, procs
        assert state["HostConfig"]["CgroupParent"] == parent
        assert not (V1 / "memory" / d.cgroup_parent.strip("/") / cid).exists()
        # stats read the same cgroup
        stats = json.loads(dk(d, "stats", "--no-stream", "--format", "{{json .}}", cid).stdout)
        assert stats["PIDs"] == "1", stats
        dk(d, "rm", "-f", cid)
        gone, cid = cid, ""
        assert not (V1 / "memory" / parent / gone).exists(), "the container's cgroup was left"

    finally:
        if cid:
            dk(d, "rm", "-f", cid, check=False)
        for h in V1.iterdir():
            p = h / parent
            if p.is_dir() and not h.is_symlink():
                for child in sorted(p.glob("*/"), reverse=True):
                    if child.is_dir():
                        child.rmdir()
                p.rmdir()
    status, msg = create_status(d, {"CgroupParent": "/x/../../etc"})
    assert (status, msg) == (400, 'invalid cgroup parent: "/x/../../etc"')


def test_exec_env_file_and_container_port(d, workdir):
    env_file = workdir / "exec.env"
    env_file.write_text("# c\nFROM_FILE=1\nBOTH=file\n")
    env = clean_env({"DOCKER_HOST": d.unix_host})
    cid = dk(d, "run", "-d", "-p", "127.0.0.1::80", "busybox", "sleep", "1000").stdout.strip()
    try:
        r = subprocess.run([str(BERTH_BIN), "exec", "--env-file", str(env_file), "-e", "BOTH=flag", cid,
                            "sh", "-c", "echo $FROM_FILE $BOTH"], env=env, capture_output=True, text=True, timeout=60)
        assert (r.returncode, r.stdout) == (0, "1 flag\n"), r.stderr
        want = dk(d, "port", cid).stdout
        r = subprocess.run([str(BERTH_BIN), "container", "port", cid], env=env, capture_output=True, text=True,
                           timeout=60)
        assert (r.returncode, r.stdout) == (0, want), r.stderr
        assert want.startswith("80/tcp -> 127.0.0.1:"), want
    finally:
        dk(d, "rm", "-f", cid)


def test_console_size_is_the_first_tty_size(d):
    r = d.request("POST", "/containers/create", headers={"Content-Type": "application/json"},
                  body=json.dumps({"Image": "busybox", "Cmd": ["stty", "size"], "Tty": True,
                                   "HostConfig": {"ConsoleSize": [31, 101]}}).encode())
    assert r.status == 201, r.text
    cid = r.json()["Id"]
    try:
        dk(d, "start", cid)
        assert dk(d, "wait", cid).stdout.strip() == "0"
        assert dk(d, "logs", cid).stdout.strip() == "31 101"
    finally:
        dk(d, "rm", "-f", cid)
