"""The Kubernetes CRI v1 API (berth-cri) driven by the upstream client, crictl from
sigs.k8s.io/cri-tools: version, status, the image service against Debian's
docker-registry on loopback (plain HTTP and htpasswd), pod sandboxes and their containers
(namespaces shared, CRI-format logs, sync exec, nothing left behind), pod networking
through Debian's CNI plugins (bridge, host-local, portmap) with a per-test bridge, subnet
and IPAM dir, stats and container events, streaming exec/attach (crictl --transport websocket) and
port-forward (the WebSocket port-forward protocol, from a small client here), log reopen,
unimplemented calls answered cleanly while the Docker API keeps serving, and the upstream
conformance suite critest with the skip list of tests/cri/.

crictl is built once with `go install` (critest with `go test -c`) into $BERTH_GO_BIN
(default /var/tmp/berth-go-bin) when missing, within a bound."""

from __future__ import annotations

import fcntl
import json
import os
import re
import shutil
import socket
import stat
import subprocess
import urllib.parse
from pathlib import Path

import pytest

from conftest import CMD_TIMEOUT, clean_env, container_ids, free_port, leak_check, poll
from hostclean import pick_network
from test_registry import HTPASSWD, REGISTRY, Registry, imported
import wsclient

CRICTL_VERSION = "v1.37.0"
GO_BIN_DIR = Path(os.environ.get("BERTH_GO_BIN", "/var/tmp/berth-go-bin"))
CRICTL = GO_BIN_DIR / "crictl"
CRITEST = GO_BIN_DIR / "critest"
CRITEST_SCRIPT = Path(__file__).resolve().parent.parent / "cri" / "critest"
BUILD_TIMEOUT = 900


@pytest.fixture(scope="session")
def crictl_bin() -> Path:
    if os.access(CRICTL, os.X_OK):
        return CRICTL
    go = shutil.which("go") or ("/usr/local/go/bin/go" if os.access("/usr/local/go/bin/go", os.X_OK) else None)
    if go is None:
        pytest.fail(f"crictl is not at {CRICTL} and no Go toolchain is there to build it")
    GO_BIN_DIR.mkdir(parents=True, exist_ok=True)
    # One build at a time: pytest-xdist workers each ask for it.
    with open(GO_BIN_DIR / ".crictl.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if not os.access(CRICTL, os.X_OK):
            proc = subprocess.run(
                [go, "install", f"sigs.k8s.io/cri-tools/cmd/crictl@{CRICTL_VERSION}"],
                env={**os.environ, "GOBIN": str(GO_BIN_DIR)},
                capture_output=True, text=True, timeout=BUILD_TIMEOUT, stdin=subprocess.DEVNULL,
            )
            if proc.returncode != 0 or not os.access(CRICTL, os.X_OK):
                pytest.fail(f"building crictl {CRICTL_VERSION} failed:\n{proc.stdout}\n{proc.stderr}")
    return CRICTL


@pytest.fixture(scope="session")
def critest_bin() -> Path:
    """critest has only test files: `go test -c` in a copy of the cri-tools module."""
    if os.access(CRITEST, os.X_OK):
        return CRITEST
    go = shutil.which("go") or ("/usr/local/go/bin/go" if os.access("/usr/local/go/bin/go", os.X_OK) else None)
    if go is None:
        pytest.fail(f"critest is not at {CRITEST} and no Go toolchain is there to build it")
    GO_BIN_DIR.mkdir(parents=True, exist_ok=True)
    with open(GO_BIN_DIR / ".critest.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if not os.access(CRITEST, os.X_OK):
            src = GO_BIN_DIR / "cri-tools-src"
            shutil.rmtree(src, ignore_errors=True)
            dl = subprocess.run([go, "mod", "download", "-json", f"sigs.k8s.io/cri-tools@{CRICTL_VERSION}"],
                                capture_output=True, text=True, timeout=BUILD_TIMEOUT, stdin=subprocess.DEVNULL)
            if dl.returncode != 0:
                pytest.fail(f"downloading cri-tools {CRICTL_VERSION} failed:\n{dl.stdout}\n{dl.stderr}")
            shutil.copytree(json.loads(dl.stdout)["Dir"], src)
            for p in [src, *src.rglob("*")]:
                if not p.is_symlink():
                    p.chmod(p.stat().st_mode | stat.S_IWUSR)
            proc = subprocess.run([go, "test", "-c", "-o", str(CRITEST), "./cmd/critest"], cwd=src,
                                  capture_output=True, text=True, timeout=BUILD_TIMEOUT, stdin=subprocess.DEVNULL)
            shutil.rmtree(src, ignore_errors=True)
            if proc.returncode != 0 or not os.access(CRITEST, os.X_OK):
                pytest.fail(f"building critest {CRICTL_VERSION} failed:\n{proc.stdout}\n{proc.stderr}")
    return CRITEST


class Crictl:
    def __init__(self, binary: Path, socket: Path, workdir: Path):
        self.binary = binary
        self.socket = socket
        # An explicit config file, so that no /etc/crictl.yaml changes what a test sees.
        self.config = workdir / "crictl.yaml"
        self.config.write_text(
            f"runtime-endpoint: unix://{socket}\nimage-endpoint: unix://{socket}\n"
            "timeout: 60\ndebug: false\npull-image-on-create: false\n"
        )

    def __call__(self, *args: str, check: bool = True, input: str | None = None) -> subprocess.CompletedProcess[str]:
        argv = [str(self.binary), "--config", str(self.config), *args]
        stdin = {"stdin": subprocess.DEVNULL} if input is None else {"input": input}
        proc = subprocess.run(argv, capture_output=True, text=True, timeout=CMD_TIMEOUT * 3,
                              env=clean_env(), **stdin)
        if check and proc.returncode != 0:
            raise AssertionError(
                f"crictl failed ({proc.returncode}): {' '.join(args)}\n"
                f"--- stdout ---\n{proc.stdout}\n--- stderr ---\n{proc.stderr}"
            )
        return proc

    def json(self, command: str, *args: str) -> dict:
        # urfave/cli reads flags only before the first positional argument.
        return json.loads(self(command, "-o", "json", *args).stdout)


def cri_daemon(berthd, workdir: Path, crictl_bin: Path, via_flag: bool = False):
    """A berthd with the CRI on, through daemon.json with a CNI conf dir of its own, empty:
    the host's /etc/cni/net.d may hold another engine's network (podman's makes its bridge
    and firewall chains on the host). `via_flag`: through `--cri-socket` instead, on the
    default conf dir, for tests that run no pod."""
    sock = workdir / "cri" / "cri.sock"
    if via_flag:
        d = berthd(extra_args=[f"--cri-socket={sock}"])
    else:
        no_cni = workdir / "cri-no-cni"
        no_cni.mkdir(exist_ok=True)
        d = berthd(config={"cri": {"enabled": True, "socket": str(sock), "cni-conf-dir": str(no_cni)}})
    poll(lambda: sock.is_socket(), 30, "the CRI socket")
    return d, Crictl(crictl_bin, sock, workdir)


@pytest.fixture
def cri_registry(workdir: Path):
    if REGISTRY is None:
        pytest.fail("docker-registry is missing (.ci/run installs it)")
    (workdir / "registry").mkdir()
    r = Registry(workdir / "registry")
    yield r
    r.stop()


@pytest.fixture
def cri_auth_registry(workdir: Path):
    if REGISTRY is None or HTPASSWD is None:
        pytest.fail("docker-registry or htpasswd is missing (.ci/run installs docker-registry and apache2-utils)")
    (workdir / "auth-registry").mkdir()
    r = Registry(workdir / "auth-registry", auth=True)
    yield r
    r.stop()


def test_version_status_and_unimplemented_calls(berthd, docker, workdir, crictl_bin):
    # A CNI conf dir of its own, empty (the host's /etc/cni/net.d may hold podman's).
    sock, no_cni = workdir / "cri" / "cri.sock", workdir / "no-cni"
    no_cni.mkdir()
    d = berthd(config={"cri": {"enabled": True, "socket": str(sock), "cni-conf-dir": str(no_cni)}})
    poll(lambda: sock.is_socket(), 30, "the CRI socket")
    crictl = Crictl(crictl_bin, sock, workdir)
    mode = crictl.socket.stat().st_mode
    assert stat.S_IMODE(mode) == 0o660 and crictl.socket.stat().st_uid == 0, oct(mode)

    version = crictl("version").stdout
    assert "RuntimeName:  berth" in version, version
    assert "RuntimeApiVersion:  v1" in version, version

    info = json.loads(crictl("info").stdout)
    conditions = {c["type"]: c for c in info["status"]["conditions"]}
    assert conditions["RuntimeReady"]["status"] is True, info
    assert conditions["NetworkReady"]["status"] is False, info
    assert conditions["NetworkReady"]["reason"] == "NetworkPluginNotReady", info
    assert conditions["NetworkReady"]["message"], info
    assert info["config"]["cgroupDriver"] == "cgroupfs", info

    # A call of a later increment fails with its name, and nothing else breaks.
    ckpt = crictl("checkpoint", "--export", str(workdir / "c.tar"), "abc", check=False)
    assert ckpt.returncode != 0
    assert "Unimplemented" in ckpt.stderr and "CheckpointContainer" in ckpt.stderr, ckpt.stderr
    assert "RuntimeName:  berth" in crictl("version").stdout
    assert docker("-H", d.unix_host, "version", "-f", "{{.Server.Os}}").stdout.strip() == "linux"

    # Bytes that are not HTTP/2 end that connection only.
    for junk in (b"GET / HTTP/1.1\r\nHost: x\r\n\r\n", b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n" + b"\xff" * 4096, os.urandom(65536)):
        with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as s:
            s.settimeout(10)
            s.connect(str(crictl.socket))
            try:
                s.sendall(junk)
                s.shutdown(socket.SHUT_WR)
                while s.recv(65536):
                    pass
            except OSError:
                pass
    assert d.running()
    assert "RuntimeName:  berth" in crictl("version").stdout

    # The socket goes with the daemon.
    assert d.stop() == 0
    assert not crictl.socket.exists()


def test_pull_list_inspect_remove_through_a_registry(berthd, docker, workdir, crictl_bin, cri_registry):
    d, crictl = cri_daemon(berthd, workdir, crictl_bin)
    ref = f"{cri_registry.addr}/cri/busybox:latest"
    image_id = imported(docker, d, workdir, ref)
    docker("-H", d.unix_host, "push", ref)
    docker("-H", d.unix_host, "rmi", ref)
    assert crictl.json("images")["images"] == []

    # A bare name pulls its latest tag, through the engine's pull path.
    pulled = crictl("pull", f"{cri_registry.addr}/cri/busybox").stdout
    assert f"Image is up to date for {image_id}" in pulled, pulled
    assert docker("-H", d.unix_host, "image", "inspect", "-f", "{{.Id}}", ref).stdout.strip() == image_id

    listed = crictl("images").stdout
    assert f"{cri_registry.addr}/cri/busybox" in listed and "latest" in listed, listed
    images = crictl.json("images")["images"]
    assert [i["id"] for i in images] == [image_id], images
    assert images[0]["repoTags"] == [ref], images
    assert any(dg.startswith(f"{cri_registry.addr}/cri/busybox@sha256:") for dg in images[0]["repoDigests"]), images
    # The filter names one image; a name of none lists nothing.
    assert [i["id"] for i in crictl.json("images", ref)["images"]] == [image_id]
    assert crictl.json("images", f"{cri_registry.addr}/cri/other:1")["images"] == []

    status = crictl.json("inspecti", ref)
    assert status["status"]["id"] == image_id, status
    assert int(status["status"]["size"]) > 0, status
    # The verbose info (crictl shows the "info" entry's JSON as "info").
    assert status["info"]["Id"] == image_id, status

    fs = crictl.json("imagefsinfo")
    usage = fs["status"]["imageFilesystems"][0]
    assert usage["fsId"]["mountpoint"] == str(d.data_root / "image"), fs
    assert int(usage["usedBytes"]["value"]) > 0 and int(usage["inodesUsed"]["value"]) > 0, fs

    # A missing image fails with the registry's answer, and leaves nothing behind.
    missing = crictl("pull", f"{cri_registry.addr}/cri/nope:1", check=False)
    assert missing.returncode != 0
    assert "NotFound" in missing.stderr and "cri/nope" in missing.stderr, missing.stderr

    # An image a container uses stays (as `docker rmi` without force).
    container = docker("-H", d.unix_host, "create", ref).stdout.strip()
    used = crictl("rmi", ref, check=False)
    assert used.returncode != 0 and "FailedPrecondition" in used.stderr, used.stderr
    assert container in used.stderr, used.stderr
    assert crictl.json("images")["images"] == images
    docker("-H", d.unix_host, "rm", container)

    removed = crictl("rmi", ref).stdout
    assert image_id in removed or ref in removed, removed
    assert crictl.json("images")["images"] == []
    assert docker("-H", d.unix_host, "images", "-q").stdout == ""
    assert crictl("inspecti", ref, check=False).returncode != 0


def test_pull_with_credentials(berthd, docker, workdir, crictl_bin, cri_auth_registry):
    d, crictl = cri_daemon(berthd, workdir, crictl_bin, via_flag=True)
    ref = f"{cri_auth_registry.addr}/secure/busybox:1"
    image_id = imported(docker, d, workdir, ref)
    env = clean_env({"DOCKER_CONFIG": str(workdir / "dockercfg")})

    def cli(*args: str, stdin: str | None = None) -> subprocess.CompletedProcess[str]:
        return subprocess.run(["docker", "-H", d.unix_host, *args], input=stdin, capture_output=True,
                              text=True, timeout=CMD_TIMEOUT, env=env)

    login = cli("login", "-u", "alice", "--password-stdin", cri_auth_registry.addr, stdin="s3cret\n")
    assert login.returncode == 0, login
    pushed = cli("push", ref)
    assert pushed.returncode == 0, pushed
    docker("-H", d.unix_host, "rmi", ref)

    denied = crictl("pull", ref, check=False)
    assert denied.returncode != 0 and "Unauthenticated" in denied.stderr, denied.stderr
    wrong = crictl("pull", "--creds", "alice:wrong", ref, check=False)
    assert wrong.returncode != 0 and "Unauthenticated" in wrong.stderr, wrong.stderr
    pulled = crictl("pull", "--creds", "alice:s3cret", ref).stdout
    assert f"Image is up to date for {image_id}" in pulled, pulled
    # The password never reaches berthd's log.
    assert "s3cret" not in d.log_text()


CRI_LOG_LINE = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d+)?Z (stdout|stderr) [PF] ")


def pulled_busybox(docker, d, workdir: Path, crictl: Crictl, registry: Registry) -> str:
    """The busybox test image (applets beyond sh, ls, cat, echo and true are run as
    `busybox <applet>`), pushed to the loopback registry and pulled through the CRI."""
    ref = f"{registry.addr}/cri/busybox:latest"
    imported(docker, d, workdir, ref)
    docker("-H", d.unix_host, "push", ref)
    docker("-H", d.unix_host, "rmi", ref)
    crictl("pull", ref)
    return ref


def write_json(path: Path, value: dict) -> Path:
    path.write_text(json.dumps(value))
    return path


def test_pod_and_containers_through_crictl(berthd, docker, docker_env, workdir, crictl_bin, cri_registry):
    d, crictl = cri_daemon(berthd, workdir, crictl_bin)
    d.docker_env = docker_env({"DOCKER_HOST": d.unix_host})
    try:
        run_pod(d, docker, workdir, crictl, cri_registry)
    finally:
        leak_check(d)


def run_pod(d, docker, workdir: Path, crictl: Crictl, registry: Registry) -> None:
    ref = pulled_busybox(docker, d, workdir, crictl, registry)
    logdir = workdir / "pod-logs"
    pod = write_json(workdir / "pod.json", {
        "metadata": {"name": "web", "namespace": "default", "uid": "uid-web-1", "attempt": 0},
        "hostname": "webhost", "log_directory": str(logdir),
        "labels": {"app": "web"}, "annotations": {"note": "kept"}, "linux": {},
    })
    pod_id = crictl("runp", str(pod)).stdout.strip()
    pods = crictl.json("pods")["items"]
    assert [p["id"] for p in pods] == [pod_id], pods
    assert pods[0]["state"] == "SANDBOX_READY", pods
    meta = pods[0]["metadata"]
    assert (meta["name"], meta["uid"], meta["namespace"]) == ("web", "uid-web-1", "default"), pods
    assert pods[0]["labels"] == {"app": "web"} and pods[0]["annotations"] == {"note": "kept"}, pods
    assert [p["id"] for p in crictl.json("pods", "--label", "app=web")["items"]] == [pod_id]
    assert crictl.json("pods", "--label", "app=db")["items"] == []
    assert crictl.json("pods", "--state", "notready")["items"] == []
    assert [p["id"] for p in crictl.json("pods", "--id", pod_id[:12])["items"]] == [pod_id]
    status = crictl.json("inspectp", pod_id)
    assert status["status"]["state"] == "SANDBOX_READY", status
    pause_pid = status["info"]["State"]["Pid"]
    assert pause_pid > 0 and Path(f"/proc/{pause_pid}").exists(), status
    # The infra process is berth-pause, from the image berthd made of it.
    assert Path(f"/proc/{pause_pid}/cmdline").read_bytes() == b"/pause\x00"
    infra = [i for i in crictl.json("images")["images"] if "localhost/berth-pause:" in " ".join(i["repoTags"])]
    assert len(infra) == 1 and infra[0]["pinned"] is True, infra

    def container(name: str, script: str) -> str:
        config = write_json(workdir / f"{name}.json", {
            "metadata": {"name": name}, "image": {"image": ref},
            "command": ["sh", "-c", script], "log_path": f"{name}/0.log",
            "labels": {"role": name},
        })
        return crictl("create", pod_id, str(config), str(pod)).stdout.strip()

    server = container("server", "echo listening; exec busybox nc -l -p 8080")
    client = container("client", "busybox hostname; echo to-stderr >&2; exec busybox sleep 600")
    created = crictl.json("inspect", server)["status"]
    assert created["state"] == "CONTAINER_CREATED", created
    assert created["logPath"] == str(logdir / "server" / "0.log"), created
    for c in (server, client):
        crictl("start", c)

    listed = crictl.json("ps", "--pod", pod_id)["containers"]
    assert sorted(c["metadata"]["name"] for c in listed) == ["client", "server"], listed
    assert {c["state"] for c in listed} == {"CONTAINER_RUNNING"}, listed
    assert [c["id"] for c in crictl.json("ps", "--label", "role=server")["containers"]] == [server]
    assert crictl.json("ps", "--state", "exited")["containers"] == []

    # Sync exec: output, and the command's exit code (crictl names it).
    # (crictl prints a newline after each of the two streams' bytes.)
    assert crictl("exec", "-s", client, "echo", "hi").stdout.strip() == "hi"
    failed = crictl("exec", "-s", client, "sh", "-c", "echo out; echo err >&2; exit 3", check=False)
    assert failed.returncode != 0 and "exited with 3: err" in failed.stderr, failed
    # Streaming exec over crictl's default transport, SPDY (more in test_cri_spdy).
    assert crictl("exec", client, "echo", "hi").stdout == "hi\n"

    # One network, IPC and UTS namespace for the pod; one hostname.
    def namespaces(c: str) -> str:
        script = "for n in net ipc uts; do busybox readlink /proc/self/ns/$n; done"
        return crictl("exec", "-s", c, "sh", "-c", script).stdout

    assert namespaces(server) == namespaces(client)
    assert Path(f"/proc/{pause_pid}/ns/net").readlink() != Path("/proc/self/ns/net").readlink()
    for c in (server, client):
        assert crictl("exec", "-s", c, "busybox", "hostname").stdout.strip() == "webhost"

    # The client reaches the server on localhost once it listens (port 8080 = 1F90, LISTEN = 0A).
    poll(lambda: re.search(r":1F90 [0-9A-F:]+ 0A", crictl("exec", "-s", server, "cat", "/proc/net/tcp", "/proc/net/tcp6").stdout),
         30, "the server listening on :8080")
    crictl("exec", "-s", client, "sh", "-c", "echo hello-pod | busybox nc 127.0.0.1 8080")
    done = poll(lambda: (s := crictl.json("inspect", server)["status"])["state"] == "CONTAINER_EXITED" and s,
                30, "the server to exit")
    assert done["exitCode"] == 0 and done["reason"] == "Completed", done
    # crictl shows RFC 3339 times: none is the epoch's, and they come in order.
    times = [done[k] for k in ("createdAt", "startedAt", "finishedAt")]
    assert all(t.startswith("20") for t in times) and sorted(t[:19] for t in times) == [t[:19] for t in times], done

    # Logs: the CRI format at the kubelet's path, read back by crictl.
    assert crictl("logs", server).stdout == "listening\nhello-pod\n"
    logs = crictl("logs", client)
    assert logs.stdout == "webhost\n" and logs.stderr == "to-stderr\n", logs
    raw = (logdir / "client" / "0.log").read_text().splitlines()
    assert len(raw) == 2 and all(CRI_LOG_LINE.match(l) for l in raw), raw
    assert {l.split(" ", 3)[1] + " " + l.split(" ", 3)[3] for l in raw} == {"stdout webhost", "stderr to-stderr"}, raw

    # The Docker API sees the CRI objects, told apart by their labels.
    cri = docker("-H", d.unix_host, "ps", "-a", "--filter", "label=io.kubernetes.cri.type",
                 "--format", "{{.ID}} {{.Names}} {{.Label \"io.kubernetes.cri.type\"}}").stdout.split("\n")
    kinds = sorted(l.split()[2] for l in cri if l)
    assert kinds == ["container", "container", "sandbox"], cri
    assert "k8s_POD_web_default_uid-web-1_0" in " ".join(cri), cri
    denied = docker("-H", d.unix_host, "logs", server, check=False)
    assert denied.returncode != 0 and "does not support reading" in denied.stderr, denied.stderr

    crictl("stop", client)
    assert crictl.json("inspect", client)["status"]["state"] == "CONTAINER_EXITED"
    crictl("rm", server, client)
    assert crictl.json("ps", "-a")["containers"] == []
    crictl("stopp", pod_id)
    assert crictl.json("pods")["items"][0]["state"] == "SANDBOX_NOTREADY"
    poll(lambda: not Path(f"/proc/{pause_pid}").exists(), 30, "the pause process to end")
    crictl("rmp", pod_id)
    assert crictl.json("pods")["items"] == []
    assert container_ids(d) == []
    # What is gone is NotFound; stopping it again succeeds (StopPodSandbox is idempotent).
    gone = crictl("inspectp", pod_id, check=False)
    assert gone.returncode != 0 and "NotFound" in gone.stderr, gone.stderr
    crictl("stopp", pod_id)


def test_container_calls_refuse_what_is_not_theirs(berthd, docker, docker_env, workdir, crictl_bin, cri_registry):
    d, crictl = cri_daemon(berthd, workdir, crictl_bin)
    d.docker_env = docker_env({"DOCKER_HOST": d.unix_host})
    try:
        ref = pulled_busybox(docker, d, workdir, crictl, cri_registry)
        # A Docker-API container is no CRI object.
        plain = docker("-H", d.unix_host, "create", ref, "true").stdout.strip()
        for args in (("inspect", plain), ("inspectp", plain), ("start", plain)):
            r = crictl(*args, check=False)
            assert r.returncode != 0 and "NotFound" in r.stderr, (args, r.stderr)
        # Stopping what is not a CRI object is stopping nothing (StopContainer is idempotent).
        crictl("stop", plain)
        assert docker("-H", d.unix_host, "inspect", "-f", "{{.State.Status}}", plain).stdout.strip() == "created"
        assert crictl.json("ps", "-a")["containers"] == [] and crictl.json("pods")["items"] == []
        docker("-H", d.unix_host, "rm", plain)

        pod = write_json(workdir / "pod.json", {"metadata": {"name": "p", "namespace": "n", "uid": "u"}})
        pod_id = crictl("runp", str(pod)).stdout.strip()
        escape = write_json(workdir / "escape.json", {
            "metadata": {"name": "c"}, "image": {"image": ref}, "log_path": "../../escape.log"})
        r = crictl("create", pod_id, str(escape), str(pod), check=False)
        assert r.returncode != 0 and "InvalidArgument" in r.stderr, r.stderr
        missing = write_json(workdir / "missing.json", {"metadata": {"name": "c"}, "image": {"image": "nope:1"}})
        r = crictl("create", pod_id, str(missing), str(pod), check=False)
        assert r.returncode != 0 and "NotFound" in r.stderr, r.stderr
        # Nothing half-made stays.
        assert crictl.json("ps", "-a")["containers"] == []
        # A pod without a log directory runs containers without a log file.
        quiet = write_json(workdir / "quiet.json", {
            "metadata": {"name": "q"}, "image": {"image": ref}, "command": ["busybox", "sleep", "600"],
            "linux": {"resources": {"memory_limit_in_bytes": 64 << 20}}})
        cid = crictl("create", pod_id, str(quiet), str(pod)).stdout.strip()
        crictl("start", cid)
        assert crictl.json("inspect", cid)["status"]["logPath"] == ""
        crictl("update", "--memory", str(96 << 20), cid)
        info = crictl.json("inspect", cid)["info"]
        assert info["HostConfig"]["Memory"] == 96 << 20, info["HostConfig"]
        r = crictl("exec", "-s", "--timeout", "1", cid, "busybox", "sleep", "30", check=False)
        assert r.returncode != 0 and "DeadlineExceeded" in r.stderr, r.stderr
        # The timed-out process was killed: only the container's own sleep is left.
        poll(lambda: crictl("exec", "-s", cid, "sh", "-c", "busybox ps -o args | busybox grep -c '^busybox sleep 30$' || true").stdout.strip() == "0",
             30, "the timed-out exec to be killed")
        crictl("stopp", pod_id)
        crictl("rmp", pod_id)
        assert container_ids(d) == []
    finally:
        leak_check(d)


def test_host_network_pod(berthd, docker, docker_env, workdir, crictl_bin, cri_registry):
    d, crictl = cri_daemon(berthd, workdir, crictl_bin)
    d.docker_env = docker_env({"DOCKER_HOST": d.unix_host})
    try:
        ref = pulled_busybox(docker, d, workdir, crictl, cri_registry)
        node = 2  # NamespaceMode NODE
        pod = write_json(workdir / "pod.json", {
            "metadata": {"name": "hostpod", "namespace": "n", "uid": "u-host"},
            "linux": {"security_context": {"namespace_options": {"network": node}}}})
        pod_id = crictl("runp", str(pod)).stdout.strip()
        assert crictl.json("inspectp", pod_id)["status"]["linux"]["namespaces"]["options"]["network"] == "NODE"
        config = write_json(workdir / "c.json", {
            "metadata": {"name": "c"}, "image": {"image": ref}, "command": ["busybox", "sleep", "600"]})
        cid = crictl("create", pod_id, str(config), str(pod)).stdout.strip()
        crictl("start", cid)
        # The host's network and hostname (UTS follows the network for NODE pods).
        script = "busybox readlink /proc/self/ns/net; busybox readlink /proc/self/ns/uts; busybox hostname"
        net, uts, hostname = crictl("exec", "-s", cid, "sh", "-c", script).stdout.split()
        assert net == os.readlink("/proc/self/ns/net") and uts == os.readlink("/proc/self/ns/uts")
        assert hostname == socket.gethostname()
        crictl("stopp", pod_id)
        crictl("rmp", pod_id)
        assert container_ids(d) == []
    finally:
        leak_check(d)


def test_pods_survive_a_daemon_restart(berthd, docker, docker_env, workdir, crictl_bin, cri_registry):
    d, crictl = cri_daemon(berthd, workdir, crictl_bin)
    d.docker_env = docker_env({"DOCKER_HOST": d.unix_host})
    try:
        ref = pulled_busybox(docker, d, workdir, crictl, cri_registry)
        logdir = workdir / "logs"
        pod = write_json(workdir / "pod.json", {
            "metadata": {"name": "keep", "namespace": "n", "uid": "u-keep"}, "log_directory": str(logdir)})
        pod_id = crictl("runp", str(pod)).stdout.strip()
        config = write_json(workdir / "c.json", {
            "metadata": {"name": "c"}, "image": {"image": ref}, "log_path": "c.log",
            "command": ["sh", "-c", "echo before; exec busybox sleep 600"],
            # A PID namespace of its own: its process is PID 1 there, for the exec below.
            "linux": {"security_context": {"namespace_options": {"pid": 1}}}})
        cid = crictl("create", pod_id, str(config), str(pod)).stdout.strip()
        crictl("start", cid)
        poll(lambda: "before" in crictl("logs", cid).stdout, 30, "the first log line")
        d.restart()
        poll(lambda: crictl.socket.is_socket(), 30, "the CRI socket after the restart")
        assert crictl.json("pods")["items"][0]["state"] == "SANDBOX_READY"
        assert crictl.json("inspect", cid)["status"]["state"] == "CONTAINER_RUNNING"
        assert crictl("exec", "-s", cid, "echo", "after").stdout.strip() == "after"
        # The shim kept writing the CRI log across the restart (through the container's own
        # stdout, PID 1's).
        crictl("exec", "-s", cid, "sh", "-c", "echo from-exec > /proc/1/fd/1")
        poll(lambda: "from-exec" in crictl("logs", cid).stdout, 30, "a log line written after the restart")
        lines = (logdir / "c.log").read_text().splitlines()
        assert all(CRI_LOG_LINE.match(l) for l in lines), lines
        crictl("stopp", pod_id)
        crictl("rmp", pod_id)
        assert container_ids(d) == []
    finally:
        leak_check(d)


CNI_BIN = Path("/usr/lib/cni")


def iptables_lines(markers: list[str]) -> list[str]:
    """The `iptables-save` lines (with their table) naming any of `markers`."""
    out, table = [], ""
    for line in subprocess.run(["iptables-save"], capture_output=True, text=True, check=True).stdout.splitlines():
        if line.startswith("*"):
            table = line[1:]
        elif any(m in line for m in markers):
            out.append(f"{table} {line}")
    return out


def drop_iptables_lines(markers: list[str]) -> None:
    """Deletes the rules naming `markers` and the CNI-DN chains they jump to (cleanup of a
    failed test only: a passing one leaves none)."""
    chains = set()
    for entry in iptables_lines(markers):
        table, line = entry.split(" ", 1)
        if line.startswith("-A "):
            args = line[3:].split(" ")
            subprocess.run(["iptables", "-w", "-t", table, "-D", *args], capture_output=True)
            if "-j" in args and args[args.index("-j") + 1].startswith("CNI-DN-"):
                chains.add((table, args[args.index("-j") + 1]))
    for table, chain in chains:
        subprocess.run(["iptables", "-w", "-t", table, "-F", chain], capture_output=True)
        subprocess.run(["iptables", "-w", "-t", table, "-X", chain], capture_output=True)


def json_stream(text: str) -> list[dict]:
    """The JSON objects printed one after another (crictl events -o json)."""
    dec, out, i = json.JSONDecoder(), [], 0
    while True:
        while i < len(text) and text[i].isspace():
            i += 1
        if i >= len(text):
            return out
        obj, i = dec.raw_decode(text, i)
        out.append(obj)


PORTMAP_JUMPS = [
    ("nat", "PREROUTING", ["-m", "addrtype", "--dst-type", "LOCAL", "-j", "CNI-HOSTPORT-DNAT"]),
    ("nat", "OUTPUT", ["-m", "addrtype", "--dst-type", "LOCAL", "-j", "CNI-HOSTPORT-DNAT"]),
    ("nat", "POSTROUTING", ["-m", "comment", "--comment", "CNI portfwd requiring masquerade", "-j", "CNI-HOSTPORT-MASQ"]),
]


def portmap_chains_exist() -> bool:
    return subprocess.run(["iptables", "-w", "-t", "nat", "-S", "CNI-HOSTPORT-DNAT"], capture_output=True).returncode == 0


def drop_portmap_chains() -> None:
    """Removes the chains portmap shares between its pods (and keeps after the last DEL),
    when this test made them and no pod's CNI-DN chain is left in them."""
    if any(" -j CNI-DN-" in l for l in iptables_lines(["CNI-HOSTPORT-DNAT"])):
        return
    for table, chain, rule in PORTMAP_JUMPS:
        while subprocess.run(["iptables", "-w", "-t", table, "-D", chain, *rule], capture_output=True).returncode == 0:
            pass
    for chain in ("CNI-HOSTPORT-DNAT", "CNI-HOSTPORT-MASQ", "CNI-HOSTPORT-SETMARK"):
        subprocess.run(["iptables", "-w", "-t", "nat", "-F", chain], capture_output=True)
        subprocess.run(["iptables", "-w", "-t", "nat", "-X", chain], capture_output=True)


def veths_on(bridge: str) -> list[str]:
    out = subprocess.run(["ip", "-o", "link", "show", "master", bridge], capture_output=True, text=True).stdout
    return [l for l in out.splitlines() if l.strip()]


def connect_and_send(host: str, port: int, data: bytes) -> bool:
    try:
        with socket.create_connection((host, port), timeout=5) as s:
            s.sendall(data)
        return True
    except OSError:
        return False


def test_pod_network_through_cni_stats_and_events(berthd, docker, docker_env, workdir, crictl_bin, cri_registry):
    if not (CNI_BIN / "bridge").exists():
        pytest.fail("containernetworking-plugins is missing (scripts/deps tests installs it)")
    bridge, bip, _pool = pick_network()
    bridge = "cn" + bridge[2:]
    subnet = bip.rsplit(".", 1)[0] + ".0/24"
    prefix = subnet.rsplit(".", 1)[0] + "."
    conf_dir, ipam_dir = workdir / "cni" / "net.d", workdir / "cni" / "ipam"
    conf_dir.mkdir(parents=True)
    sock = workdir / "cri" / "cri.sock"
    d = berthd(config={"cri": {"enabled": True, "socket": str(sock), "cni-conf-dir": str(conf_dir),
                               "cni-bin-dir": str(CNI_BIN)}})
    poll(lambda: sock.is_socket(), 30, "the CRI socket")
    crictl = Crictl(crictl_bin, sock, workdir)
    d.docker_env = docker_env({"DOCKER_HOST": d.unix_host})
    host_port = free_port()
    markers = [subnet, prefix, bridge]
    before = iptables_lines(markers)
    portmap_before = portmap_chains_exist()
    events = None
    try:
        # No configuration yet: the network is not ready, and says why.
        conditions = {c["type"]: c for c in json.loads(crictl("info").stdout)["status"]["conditions"]}
        net = conditions["NetworkReady"]
        assert net["status"] is False and net["reason"] == "NetworkPluginNotReady", net
        assert "no network config found in" in net["message"] and str(conf_dir) in net["message"], net
        bridge_plugin = {"type": "bridge", "bridge": bridge, "isGateway": True, "ipMasq": False,
                         "ipam": {"type": "host-local", "ranges": [[{"subnet": subnet}]], "dataDir": str(ipam_dir)}}
        pod = write_json(workdir / "pod.json", {
            "metadata": {"name": "net", "namespace": "default", "uid": "uid-net-1"},
            "port_mappings": [{"protocol": 0, "container_port": 8080, "host_port": host_port, "host_ip": "127.0.0.1"}],
            "linux": {},
        })

        def allocated() -> list[str]:
            return [f.name for f in (ipam_dir / "berth-e2e").glob(prefix + "*")] if ipam_dir.exists() else []

        # A list whose second plugin is missing: ADD fails after the bridge plugin ran, and
        # its DEL still releases the address and the veth; no sandbox is left.
        write_json(conf_dir / "10-berth-e2e.conflist", {
            "cniVersion": "1.0.0", "name": "berth-e2e", "plugins": [bridge_plugin, {"type": "berth-no-such-plugin"}]})
        failed = crictl("runp", str(pod), check=False)
        assert failed.returncode != 0 and "failed to setup network for sandbox" in failed.stderr, failed.stderr
        assert "berth-no-such-plugin" in failed.stderr, failed.stderr
        assert veths_on(bridge) == [] and allocated() == [], (veths_on(bridge), allocated())
        assert crictl.json("pods")["items"] == [] and container_ids(d) == []

        write_json(conf_dir / "10-berth-e2e.conflist", {
            "cniVersion": "1.0.0", "name": "berth-e2e", "plugins": [
                bridge_plugin, {"type": "portmap", "capabilities": {"portMappings": True}}]})
        conditions = {c["type"]: c for c in json.loads(crictl("info").stdout)["status"]["conditions"]}
        assert conditions["NetworkReady"]["status"] is True, conditions

        ref = pulled_busybox(docker, d, workdir, crictl, cri_registry)
        events = subprocess.Popen([str(crictl.binary), "--config", str(crictl.config), "events"],
                                  stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=clean_env())
        poll(lambda: "CRI GetContainerEvents: a client subscribed" in d.log_path.read_text(errors="replace"),
             30, "crictl events to subscribe")
        pod_id = crictl("runp", str(pod)).stdout.strip()
        status = crictl.json("inspectp", pod_id)["status"]
        pod_ip = status["network"]["ip"]
        assert pod_ip.startswith(prefix), status["network"]
        # The plugins' work: a veth on the test's bridge, the address allocated in the
        # test's IPAM dir, the pod's eth0 holding it.
        assert len(veths_on(bridge)) == 1, veths_on(bridge)
        assert allocated() == [pod_ip], allocated()
        assert (ipam_dir / "berth-e2e" / pod_ip).read_text().startswith(pod_id)

        config = write_json(workdir / "server.json", {
            "metadata": {"name": "server"}, "image": {"image": ref},
            "command": ["sh", "-c", "while :; do busybox nc -l -p 8080; done"],
        })
        server = crictl("create", pod_id, str(config), str(pod)).stdout.strip()
        crictl("start", server)
        addr = crictl("exec", "-s", server, "busybox", "ip", "-o", "-4", "addr", "show", "eth0").stdout
        assert f" {pod_ip}/24 " in addr, addr

        # The host reaches the pod at its IP, and at 127.0.0.1:hostPort through portmap.
        poll(lambda: connect_and_send(pod_ip, 8080, b"via-pod-ip\n"), 30, "the pod listening at its IP")
        poll(lambda: connect_and_send("127.0.0.1", host_port, b"via-host-port\n"), 30, "the host port")
        assert iptables_lines([pod_id]), "portmap made no rules for the pod"

        # Stats: numbers for the container and the pod.
        stats = crictl.json("stats")["stats"]
        assert [s["attributes"]["id"] for s in stats] == [server], stats
        assert int(stats[0]["cpu"]["usageCoreNanoSeconds"]["value"]) > 0, stats
        assert int(stats[0]["memory"]["workingSetBytes"]["value"]) > 0, stats
        podstats = crictl.json("statsp")["stats"]
        assert [p["attributes"]["id"] for p in podstats] == [pod_id], podstats
        linux = podstats[0]["linux"]
        assert int(linux["cpu"]["usageCoreNanoSeconds"]["value"]) >= int(stats[0]["cpu"]["usageCoreNanoSeconds"]["value"]), linux
        assert [c["attributes"]["id"] for c in linux["containers"]] == [server], linux
        assert int(linux["network"]["defaultInterface"]["rxBytes"]["value"]) > 0, linux["network"]

        # The pod keeps its IP across a berthd restart (kept with what ADD did), and DEL
        # after the restart still finds the pod's rules. (The events stream ends with the
        # daemon; a new one sees the rest.)
        events.terminate()
        out, _ = events.communicate(timeout=30)
        seen = [e.get("containerEventType") for e in json_stream(out) if e.get("containerId") == server]
        assert seen == ["CONTAINER_CREATED_EVENT", "CONTAINER_STARTED_EVENT"], out
        d.restart()
        poll(lambda: crictl.socket.is_socket(), 30, "the CRI socket after the restart")
        assert crictl.json("inspectp", pod_id)["status"]["network"]["ip"] == pod_ip
        poll(lambda: connect_and_send(pod_ip, 8080, b"after-restart\n"), 30, "the pod after the restart")
        subscribed = d.log_path.read_text(errors="replace").count("CRI GetContainerEvents: a client subscribed")
        events = subprocess.Popen([str(crictl.binary), "--config", str(crictl.config), "events"],
                                  stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=clean_env())
        poll(lambda: d.log_path.read_text(errors="replace").count("CRI GetContainerEvents: a client subscribed") > subscribed,
             30, "crictl events to subscribe again")

        crictl("stop", server)
        crictl("rm", server)
        crictl("stopp", pod_id)
        # DEL: no veth, no address, no rule of the pod's left; a second stop is harmless.
        assert veths_on(bridge) == []
        assert allocated() == []
        assert iptables_lines([pod_id]) == []
        crictl("stopp", pod_id)
        crictl("rmp", pod_id)
        assert crictl.json("pods")["items"] == []
        assert iptables_lines(markers + [pod_id]) == before

        # The second events stream saw the container's end, in order.
        events.terminate()
        out, _ = events.communicate(timeout=30)
        seen = [e.get("containerEventType") for e in json_stream(out) if e.get("containerId") == server]
        assert seen == ["CONTAINER_STOPPED_EVENT", "CONTAINER_DELETED_EVENT"], out
    finally:
        if events is not None and events.poll() is None:
            events.kill()
            events.wait()
        for p in crictl.json("pods")["items"] if d.running() else []:
            crictl("stopp", p["id"], check=False)
            crictl("rmp", p["id"], check=False)
        leak_check(d)
        drop_iptables_lines([subnet, bridge])
        if not portmap_before:
            drop_portmap_chains()
        if Path(f"/sys/class/net/{bridge}").exists():
            subprocess.run(["ip", "link", "del", "dev", bridge], capture_output=True)


def WebSocket(url: str, protocol: str) -> wsclient.WebSocket:
    """A WebSocket to the streaming server's URL (crictl cannot speak port-forward's
    channels over plain WebSocket)."""
    u = urllib.parse.urlsplit(url)
    sock = socket.create_connection((u.hostname, u.port), timeout=30)
    return wsclient.WebSocket(sock, u.netloc, u.path + (f"?{u.query}" if u.query else ""), protocol)


def stream_url(crictl: Crictl, command: str, *args: str) -> str:
    """The URL a streaming call answers, from crictl's debug log (its WebSocket transport
    tunnels SPDY, a subprotocol refused, leaving the token unused)."""
    r = crictl("--debug", command, "--transport", "websocket", *args, check=False)
    m = re.search(r"URL: (http://\S+/[a-z]+/[A-Za-z0-9_-]+)", r.stderr)
    assert m, r.stderr
    assert r.returncode != 0, r.stderr
    return m.group(1)


def test_streaming_exec_attach_port_forward_and_log_reopen(berthd, docker, docker_env, workdir, crictl_bin, cri_registry):
    d, crictl = cri_daemon(berthd, workdir, crictl_bin)
    d.docker_env = docker_env({"DOCKER_HOST": d.unix_host})
    ws = ("--transport", "websocket")
    try:
        ref = pulled_busybox(docker, d, workdir, crictl, cri_registry)
        logdir = workdir / "logs"
        pod = write_json(workdir / "pod.json", {
            "metadata": {"name": "stream", "namespace": "n", "uid": "u-stream"}, "log_directory": str(logdir)})
        pod_id = crictl("runp", str(pod)).stdout.strip()

        def container(name: str, script: str, **extra) -> str:
            config = write_json(workdir / f"{name}.json", {
                "metadata": {"name": name}, "image": {"image": ref},
                "command": ["sh", "-c", script], "log_path": f"{name}/0.log", **extra})
            cid = crictl("create", pod_id, str(config), str(pod)).stdout.strip()
            crictl("start", cid)
            return cid

        logger = container("logger", "i=0; while true; do i=$((i+1)); echo line-$i; busybox sleep 0.05; done")

        # Exec (not sync) over WebSocket: each stream apart, the exit code from the status channel.
        r = crictl("exec", *ws, logger, "sh", "-c", "echo out; echo err >&2; exit 3", check=False)
        assert r.stdout == "out\n", r
        assert r.stderr.startswith("err\n") and "command terminated with exit code 3" in r.stderr, r
        assert r.returncode != 0
        assert crictl("exec", *ws, logger, "echo", "fine").stdout == "fine\n"
        # Stdin reaches the process, and its end ends the process's stdin.
        r = crictl("exec", *ws, "-i", logger, "busybox", "tr", "a-z", "A-Z", input="hello\nstdin\n")
        assert r.stdout == "HELLO\nSTDIN\n", r

        # Attach: stdin to the container, its output back; closing stdin ends it (stdin_once).
        echo = container("echo", "echo started; while read l; do echo got:$l; done; echo bye",
                         stdin=True, stdin_once=True)
        poll(lambda: "started" in crictl("logs", echo).stdout, 30, "the echo container to start")
        r = crictl("attach", *ws, "-i", echo, input="one\ntwo\n")
        assert r.stdout == "got:one\ngot:two\nbye\n", r
        poll(lambda: crictl.json("inspect", echo)["status"]["state"] == "CONTAINER_EXITED", 30, "echo to exit")
        r = crictl("attach", *ws, echo, check=False)
        assert r.returncode != 0 and "CONTAINER_EXITED" in r.stderr, r.stderr

        # Port forward: the pod's loopback port, through the WebSocket port-forward protocol.
        # nc's stdin stays open a while: at its end busybox nc may stop reading, and the
        # client's bytes must still reach it.
        server = container("server", "(echo hello-forward; sleep 30) | busybox nc -l -p 8080")
        poll(lambda: re.search(r":1F90 [0-9A-F:]+ 0A", crictl("exec", "-s", server, "cat", "/proc/net/tcp", "/proc/net/tcp6").stdout),
             30, "the server listening on :8080")
        url = stream_url(crictl, "port-forward", pod_id, "18080:8080")
        assert "/portforward/" in url, url
        conn = WebSocket(f"{url}?port=8080", "v4.channel.k8s.io")
        try:
            assert conn.status == 101 and "v4.channel.k8s.io" in conn.head, conn.head
            # Each channel opens with the port, little-endian.
            assert conn.recv() == (2, bytes([0]) + (8080).to_bytes(2, "little"))
            assert conn.recv() == (2, bytes([1]) + (8080).to_bytes(2, "little"))
            conn.send(b"\x00ping-from-client\n")
            got = b""
            while b"hello-forward\n" not in got:
                op, payload = conn.recv()
                assert op == 2 and payload[:1] == b"\x00", (op, payload)
                got += payload[1:]
            assert got == b"hello-forward\n", got
        finally:
            conn.close()
        poll(lambda: "ping-from-client" in crictl("logs", server).stdout, 30, "the forwarded bytes in the server's log")
        # A token serves once.
        again = WebSocket(f"{url}?port=8080", "v4.channel.k8s.io")
        assert again.status == 404, again.head
        again.close()

        # ReopenContainerLog: after a rename, new lines land in a new file at the path.
        log = logdir / "logger" / "0.log"
        poll(lambda: log.exists() and log.stat().st_size > 0, 30, "the logger's log")
        rotated = log.with_name("0.log.20260101-000000")
        log.rename(rotated)
        crictl("logs", "--reopen", logger)
        poll(lambda: log.exists() and len(log.read_text().splitlines()) >= 2, 30, "lines in the reopened log")
        old = rotated.read_text().splitlines()
        new = log.read_text().splitlines()
        assert all(CRI_LOG_LINE.match(l) for l in old + new), (old[-2:], new[:2])
        number = lambda line: int(line.rsplit("line-", 1)[1])
        assert number(old[-1]) < number(new[0]), (old[-1], new[0])
        crictl("stop", "--timeout", "0", logger)
        r = crictl("logs", "--reopen", logger, check=False)
        assert r.returncode != 0 and "container is not running" in r.stderr, r.stderr

        crictl("stopp", pod_id)
        crictl("rmp", pod_id)
        assert container_ids(d) == []
    finally:
        leak_check(d)


def critest_counts(output: str) -> dict[str, int]:
    m = re.search(r"Ran (\d+) of (\d+) Specs.*?\n.*?(\d+) Passed \| (\d+) Failed \| (\d+) Pending \| (\d+) Skipped", output, re.S)
    assert m, output[-3000:]
    ran, total, passed, failed, pending, skipped = map(int, m.groups())
    return {"ran": ran, "total": total, "passed": passed, "failed": failed, "pending": pending, "skipped": skipped}


CRITEST_SKIPS = Path(__file__).resolve().parent.parent / "cri" / "critest-skips.txt"
CRITEST_KNOWN_FAILURES = Path(__file__).resolve().parent.parent / "cri" / "critest-known-failures.txt"

# critest's images rebuilt from Debian's dynamic busybox, as cri-tools' images/ Dockerfiles
# make them (with -registry-prefix, critest pulls <prefix>/<path>:latest whatever the tag).
CRITEST_IMAGES = {
    "e2e-test-images/busybox": [],
    "pause": ["LABEL critest=pause"],
    "k8s-staging-cri-tools/test-image-1": ["LABEL critest=1"],
    "k8s-staging-cri-tools/test-image-2": ["LABEL critest=2"],
    "k8s-staging-cri-tools/test-image-3": ["LABEL critest=3"],
    "k8s-staging-cri-tools/test-image-tag": ["LABEL critest=tag"],
    "k8s-staging-cri-tools/test-image-tags": ["LABEL critest=tags"],
    "k8s-staging-cri-tools/test-image-latest": ["LABEL critest=latest"],
    "k8s-staging-cri-tools/test-image-user-uid": ["USER 1002"],
    "k8s-staging-cri-tools/test-image-user-username": ["USER www-data"],
    "k8s-staging-cri-tools/test-image-user-uid-group": ["USER 1003:1003"],
    "k8s-staging-cri-tools/test-image-user-username-group": ["USER www-data:www-data"],
    "k8s-staging-cri-tools/test-image-predefined-group": ["USER 1000"],
    # webServerTestImage: a page on port 80 (busybox httpd), for the port-forward spec.
    "e2e-test-images/berth-httpd": [
        'CMD ["sh", "-c", "mkdir -p /tmp/www && echo berth > /tmp/www/index.html && exec httpd -f -p 80 -h /tmp/www"]'],
}


# Debian's dynamically linked busybox, unpacked by scripts/deps tests (the package
# conflicts with busybox-static). Its shell runs an applet by exec'ing it through PATH, as
# the upstream images' does (critest's MaskedPaths spec masks /bin/ls and expects
# `sh -c ls` to be denied); busybox-static's runs its applets itself.
DYNAMIC_BUSYBOX = Path(os.environ.get("BERTH_DYNAMIC_BUSYBOX", "/usr/local/lib/berth-tests/busybox/bin/busybox"))


def shared_libraries(binary: Path) -> list[Path]:
    """The libraries `ldd` lists for `binary`, by the paths the loader looks them up at."""
    out = subprocess.run(["ldd", str(binary)], capture_output=True, text=True, check=True).stdout
    libs = [Path(m) for m in re.findall(r"(?:=> )?(/\S+) \(0x", out)]
    assert libs and any(p.name.startswith("ld-linux") for p in libs), out
    return libs


def critest_rootfs(path: Path) -> Path:
    """Debian's dynamic busybox and the libraries it links, with every applet linked, /tmp,
    a pgrep, and the users and groups of busybox's image plus cri-tools'
    image-predefined-group."""
    import io
    import tarfile
    if not os.access(DYNAMIC_BUSYBOX, os.X_OK):
        pytest.fail(f"Debian's dynamic busybox is not at {DYNAMIC_BUSYBOX} (scripts/deps tests unpacks it)")
    applets = subprocess.run([str(DYNAMIC_BUSYBOX), "--list"], capture_output=True, text=True, check=True).stdout.split()
    files = {
        "etc/passwd": "root:x:0:0:root:/root:/bin/sh\nwww-data:x:33:33:www-data:/var/www:/bin/false\n"
                      "default-user:x:1000:1000:Linux User,,,:/home/default-user:/bin/sh\nnobody:x:65534:65534:nobody:/home:/bin/false\n",
        "etc/group": "root:x:0:\nwww-data:x:33:\ndefault-user:x:1000:\ngroup-defined-in-image:x:50000:default-user\nnogroup:x:65534:\n",
        # The upstream busybox image has pgrep (critest's execSync-timeout spec runs
        # `pgrep sleep`); Debian's busybox has pidof only.
        "bin/pgrep": "#!/bin/sh\npids=$(pidof \"$1\") || exit 1\nfor p in $pids; do echo \"$p\"; done\n",
    }
    libs = shared_libraries(DYNAMIC_BUSYBOX)
    dirs = ["bin", "etc", "tmp", "root", "home", "var", "var/www"]
    for lib in libs:
        for parent in reversed(lib.relative_to("/").parents[:-1]):
            if str(parent) not in dirs:
                dirs.append(str(parent))
    with tarfile.open(path, "w", format=tarfile.GNU_FORMAT) as tar:
        for name in dirs:
            info = tarfile.TarInfo(name)
            info.type, info.mode = tarfile.DIRTYPE, 0o1777 if name == "tmp" else 0o755
            tar.addfile(info)
        for src, dest in [(DYNAMIC_BUSYBOX, "bin/busybox"), *((lib, str(lib.relative_to("/"))) for lib in libs)]:
            data = src.resolve().read_bytes()
            info = tarfile.TarInfo(dest)
            info.size, info.mode = len(data), 0o755
            tar.addfile(info, io.BytesIO(data))
        for applet in applets:
            if applet != "busybox":
                link = tarfile.TarInfo(f"bin/{applet}")
                link.type, link.linkname = tarfile.SYMTYPE, "busybox"
                tar.addfile(link)
        for name, text in files.items():
            info = tarfile.TarInfo(name)
            info.size, info.mode = len(text), 0o755 if name.startswith("bin/") else 0o644
            tar.addfile(info, io.BytesIO(text.encode()))
    return path


def critest_list(path: Path) -> list[str]:
    return [l.split("#", 1)[0].strip() for l in path.read_text().splitlines() if l.split("#", 1)[0].strip()]


def test_critest(berthd, docker, docker_env, workdir, crictl_bin, critest_bin, cri_registry):
    """The upstream CRI conformance suite through tests/cri/critest, with the skips of
    tests/cri/critest-skips.txt, against images rebuilt locally and served from a
    loopback registry. A failure not in tests/cri/critest-known-failures.txt fails, and so
    does a listed one that passes (the list must shrink as they are fixed)."""
    if not (CNI_BIN / "bridge").exists():
        pytest.fail("containernetworking-plugins is missing (scripts/deps tests installs it)")
    # Pods get their network from Debian's CNI plugins, on a bridge and subnet of this
    # test's own (the port-forward and runtime-conditions specs need a pod IP).
    bridge, bip, _pool = pick_network()
    bridge = "cn" + bridge[2:]
    subnet = bip.rsplit(".", 1)[0] + ".0/24"
    conf_dir = workdir / "cni" / "net.d"
    conf_dir.mkdir(parents=True)
    write_json(conf_dir / "10-critest.conflist", {
        "cniVersion": "1.0.0", "name": "critest", "plugins": [
            {"type": "bridge", "bridge": bridge, "isGateway": True, "ipMasq": False,
             "ipam": {"type": "host-local", "ranges": [[{"subnet": subnet}]],
                      "dataDir": str(workdir / "cni" / "ipam")}}]})
    sock = workdir / "cri" / "cri.sock"
    d = berthd(config={"cri": {"enabled": True, "socket": str(sock), "cni-conf-dir": str(conf_dir),
                               "cni-bin-dir": str(CNI_BIN)}})
    poll(lambda: sock.is_socket(), 30, "the CRI socket")
    crictl = Crictl(crictl_bin, sock, workdir)
    d.docker_env = docker_env({"DOCKER_HOST": d.unix_host})
    try:
        rootfs = critest_rootfs(workdir / "critest-rootfs.tar")
        for path, changes in CRITEST_IMAGES.items():
            ref = f"{cri_registry.addr}/{path}:latest"
            flags = [a for c in ['CMD ["sh"]', "ENV PATH=/bin:/usr/bin", *changes] for a in ("-c", c)]
            docker("-H", d.unix_host, "import", *flags, str(rootfs), ref)
            docker("-H", d.unix_host, "push", ref)
        default = f"{cri_registry.addr}/e2e-test-images/busybox:latest"
        images = workdir / "critest-images.yaml"
        web = f"{cri_registry.addr}/e2e-test-images/berth-httpd:latest"
        images.write_text(f"defaultTestContainerImage: {default}\nwebServerTestImage: {web}\n")
        proc = subprocess.run([str(CRITEST_SCRIPT), str(crictl.socket), cri_registry.addr, str(images)],
                              capture_output=True, text=True, timeout=570, stdin=subprocess.DEVNULL,
                              env={**clean_env(), "CRITEST": str(critest_bin)}, cwd=workdir)
        out = proc.stdout + proc.stderr
        counts = critest_counts(out)
        print("critest:", counts)
        failed = sorted(set(re.findall(r"^  \[FAIL\] (.*?)\s*$", out, re.M)))
        known = critest_list(CRITEST_KNOWN_FAILURES)
        new = [f for f in failed if not any(k in f for k in known)]
        gone = [k for k in known if not any(k in f for f in failed)]
        assert not new and not gone, {"counts": counts, "new failures": new, "known failures that passed": gone}
        assert veths_on(bridge) == [], "pods' veths left on the test's bridge"
    finally:
        leak_check(d)
        if Path(f"/sys/class/net/{bridge}").exists():
            subprocess.run(["ip", "link", "del", "dev", bridge], capture_output=True)
