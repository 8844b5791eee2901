"""Pull and push through berthd with the real docker CLI and docker-py, against Debian's
docker-registry (distribution) on loopback: plain HTTP, and with htpasswd basic auth."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import docker as dockerpy
import pytest

from conftest import free_port, poll
from images_util import busybox_rootfs_tar, image_root

REGISTRY = shutil.which("docker-registry")
HTPASSWD = shutil.which("htpasswd")


class Registry:
    def __init__(self, root: Path, auth: bool = False, tls: tuple[Path, Path] | None = None):
        self.root = root
        self.port = free_port()
        self.addr = f"127.0.0.1:{self.port}"
        config = root / "registry.yml"
        self.log = root / "registry.log"
        auth_block = ""
        if auth:
            htpasswd = root / "htpasswd"
            subprocess.run([HTPASSWD, "-Bbc", str(htpasswd), "alice", "s3cret"], check=True, capture_output=True)
            auth_block = f"auth:\n  htpasswd:\n    realm: berth-test\n    path: {htpasswd}\n"
        tls_block = ""
        if tls is not None:
            tls_block = f"  tls:\n    certificate: {tls[0]}\n    key: {tls[1]}\n"
        config.write_text(
            "version: 0.1\nlog:\n  level: info\n"
            f"storage:\n  filesystem:\n    rootdirectory: {root / 'data'}\n"
            f"http:\n  addr: {self.addr}\n" + tls_block + auth_block
        )
        out = open(self.log, "ab")
        self.proc = subprocess.Popen([REGISTRY, "serve", str(config)], stdout=out, stderr=out,
                                     stdin=subprocess.DEVNULL, start_new_session=True)
        poll(lambda: f"listening on {self.addr}" in self.log.read_text(errors="replace")
             or (self.proc.poll() is not None and pytest.fail(self.log.read_text())),
             30, "docker-registry to listen")

    def stop(self) -> None:
        self.proc.terminate()
        try:
            self.proc.wait(10)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait(10)


@pytest.fixture
def registry(workdir: Path):
    if REGISTRY is None:
        pytest.fail("docker-registry is missing (.ci/run installs it)")
    (workdir / "registry").mkdir()
    r = Registry(workdir / "registry")
    yield r
    r.stop()


@pytest.fixture
def auth_registry(workdir: Path):
    if REGISTRY is None or HTPASSWD is None:
        pytest.fail("docker-registry or htpasswd is missing (.ci/run installs docker-registry and apache2-utils)")
    (workdir / "auth-registry").mkdir()
    r = Registry(workdir / "auth-registry", auth=True)
    yield r
    r.stop()


def imported(docker, d, workdir: Path, ref: str) -> str:
    tar = busybox_rootfs_tar(workdir / "rootfs.tar")
    docker("-H", d.unix_host, "import", "-c", 'CMD ["sh"]', str(tar), ref)
    return docker("-H", d.unix_host, "image", "inspect", "-f", "{{.Id}}", ref).stdout.strip()


def test_push_remove_pull_keeps_the_image_id(berthd, docker, registry, workdir):
    d = berthd()
    ref = f"{registry.addr}/berth/busybox:1"
    image_id = imported(docker, d, workdir, ref)
    pushed = docker("-H", d.unix_host, "push", ref).stdout
    assert f"The push refers to repository [{registry.addr}/berth/busybox]" in pushed, pushed
    assert ": Pushed" in pushed and "1: digest: sha256:" in pushed, pushed
    again = docker("-H", d.unix_host, "push", ref).stdout
    assert "Layer already exists" in again, again
    docker("-H", d.unix_host, "rmi", ref)
    assert docker("-H", d.unix_host, "images", "-q").stdout == ""
    pulled = docker("-H", d.unix_host, "pull", ref).stdout
    assert f"Status: Downloaded newer image for {ref}" in pulled, pulled
    assert docker("-H", d.unix_host, "image", "inspect", "-f", "{{.Id}}", ref).stdout.strip() == image_id
    digests = docker("-H", d.unix_host, "image", "inspect", "-f", "{{json .RepoDigests}}", ref).stdout
    assert f"{registry.addr}/berth/busybox@sha256:" in digests, digests
    # A second repository gets the layer by cross-repository mount, not a second upload.
    other = f"{registry.addr}/other/busybox:1"
    docker("-H", d.unix_host, "tag", ref, other)
    mounted = docker("-H", d.unix_host, "push", other).stdout
    assert "Mounted from berth/busybox" in mounted, mounted


def test_docker_py_pull_and_missing_image(berthd, docker, registry, workdir):
    d = berthd()
    ref = f"{registry.addr}/py/busybox:2"
    image_id = imported(docker, d, workdir, ref)
    docker("-H", d.unix_host, "push", ref)
    docker("-H", d.unix_host, "rmi", ref)
    client = dockerpy.DockerClient(base_url=d.unix_host)
    try:
        image = client.images.pull(f"{registry.addr}/py/busybox", tag="2")
        assert image.id == image_id
        with pytest.raises(dockerpy.errors.NotFound):
            client.images.pull(f"{registry.addr}/py/nope", tag="1")
    finally:
        client.close()
    # The failed pull left nothing half-made.
    layers = [p.name for p in (image_root(d.data_root) / "layers").iterdir() if not p.name.startswith(".")]
    assert len(layers) == 1, layers


def test_login_and_wrong_password(berthd, docker, auth_registry, workdir):
    d = berthd()
    ref = f"{auth_registry.addr}/secure/busybox:1"
    imported(docker, d, workdir, ref)
    denied = docker("-H", d.unix_host, "push", ref, check=False)
    assert denied.returncode != 0
    assert "no basic auth credentials" in denied.stdout + denied.stderr, denied
    env = {"PATH": "/usr/local/bin:/usr/bin:/bin", "DOCKER_CONFIG": str(workdir / "dockercfg")}

    def cli(*args: str, stdin: str | None = None) -> subprocess.CompletedProcess[str]:
        return subprocess.run(["docker", "-H", d.unix_host, *args], input=stdin, capture_output=True,
                              text=True, timeout=120, env=env)

    bad = cli("login", "-u", "alice", "--password-stdin", auth_registry.addr, stdin="wrong\n")
    assert bad.returncode != 0, bad
    good = cli("login", "-u", "alice", "--password-stdin", auth_registry.addr, stdin="s3cret\n")
    assert good.returncode == 0 and "Login Succeeded" in good.stdout, good
    pushed = cli("push", ref)
    assert pushed.returncode == 0 and ": Pushed" in pushed.stdout, pushed
    # The password never reaches berthd's log.
    assert "s3cret" not in d.log_text()
