"""The Kubernetes CRI v1 API (berth-cri) driven by the upstream client, crictl from
sigs.k8s.io/cri-tools: version, status, the image service against Debian's
docker-registry on loopback (plain HTTP and htpasswd), and unimplemented calls answered
cleanly while the Docker API keeps serving.

crictl is built once with `go install` into $BERTH_GO_BIN (default /var/tmp/berth-go-bin)
when missing, within a bound."""

from __future__ import annotations

import fcntl
import json
import os
import shutil
import socket
import stat
import subprocess
from pathlib import Path

import pytest

from conftest import CMD_TIMEOUT, clean_env, poll
from test_registry import HTPASSWD, REGISTRY, Registry, imported

CRICTL_VERSION = "v1.37.0"
GO_BIN_DIR = Path(os.environ.get("BERTH_GO_BIN", "/var/tmp/berth-go-bin"))
CRICTL = GO_BIN_DIR / "crictl"
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

    def __call__(self, *args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
        argv = [str(self.binary), "--config", str(self.config), *args]
        proc = subprocess.run(argv, capture_output=True, text=True, timeout=CMD_TIMEOUT * 3,
                              stdin=subprocess.DEVNULL, env=clean_env())
        if check and proc.returncode != 0:
            raise AssertionError(
                f"crictl failed ({proc.returncode}): {' '.join(args)}\n"
                f"--- stdout ---\n{proc.stdout}\n--- stderr ---\n{proc.stderr}"
            )
        return proc

    def json(self, command: str, *args: str) -> dict:
        # urfave/cli reads flags only before the first positional argument.
        return json.loads(self(command, "-o", "json", *args).stdout)


def cri_daemon(berthd, workdir: Path, crictl_bin: Path, via_file: bool = False):
    sock = workdir / "cri" / "cri.sock"
    if via_file:
        d = berthd(config={"cri": {"enabled": True, "socket": str(sock)}})
    else:
        d = berthd(extra_args=[f"--cri-socket={sock}"])
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
    d, crictl = cri_daemon(berthd, workdir, crictl_bin)
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
    pods = crictl("pods", check=False)
    assert pods.returncode != 0
    assert "Unimplemented" in pods.stderr and "ListPodSandbox" in pods.stderr, pods.stderr
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
    d, crictl = cri_daemon(berthd, workdir, crictl_bin, via_file=True)
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
    d, crictl = cri_daemon(berthd, workdir, crictl_bin)
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
