"""Image rules that depend on the rest of the engine or on registry settings: `rmi` and
`image prune` respect containers (moby's conflict texts), `pull -a` fetches every tag,
and `insecure-registries` is what lets berthd use a registry whose certificate it cannot
verify."""

from __future__ import annotations

import subprocess

import pytest

from conftest import DOCKER_BIN, REPO_ROOT, tls_init
from test_registry import REGISTRY, Registry, registry  # noqa: F401 - fixture used by name


def _import(d, docker, ref: str, cmd: str = "sh") -> str:
    rootfs = subprocess.run([str(REPO_ROOT / "scripts" / "busybox-rootfs")], check=True,
                            capture_output=True).stdout
    subprocess.run([DOCKER_BIN, "-H", d.unix_host, "import", "-c", f'CMD ["{cmd}"]', "-", ref],
                   input=rootfs, check=True, capture_output=True, timeout=60)
    return docker("-H", d.unix_host, "image", "inspect", "-f", "{{.Id}}", ref).stdout.strip()


def test_rmi_and_prune_respect_containers(berthd, docker):
    d = berthd()
    h = ("-H", d.unix_host)
    image_id = _import(d, docker, "busybox:latest")
    short = image_id.removeprefix("sha256:")[:12]
    stopped = docker(*h, "create", "busybox", "true").stdout.strip()
    try:
        # The last name of an image a container uses is pinned unless forced.
        out = docker(*h, "rmi", "busybox", check=False)
        assert out.returncode == 1
        assert (f'conflict: unable to remove repository reference "busybox" (must force) - '
                f"container {stopped[:12]} is using its referenced image {short}") in out.stderr, out.stderr
        out = docker(*h, "rmi", image_id, check=False)
        assert (f"conflict: unable to delete {short} (must be forced) - image is being used by "
                f"stopped container {stopped[:12]}") in out.stderr, out.stderr
        # A second name can go: that only untags.
        docker(*h, "tag", "busybox", "other:1")
        assert "Untagged: other:1" in docker(*h, "rmi", "other:1").stdout
        # prune -a keeps images that containers use.
        docker(*h, "image", "prune", "-af")
        assert docker(*h, "images", "-q", "--no-trunc").stdout.split() == [image_id]

        running = docker(*h, "run", "-d", "busybox", "sleep", "300").stdout.strip()
        out = docker(*h, "rmi", "-f", image_id, check=False)
        assert (f"conflict: unable to delete {short} (cannot be forced) - image is being used by "
                f"running container {running[:12]}") in out.stderr, out.stderr
        # Forcing the name only untags; the image stays for the containers.
        out = docker(*h, "rmi", "-f", "busybox").stdout
        assert "Untagged: busybox:latest" in out and "Deleted" not in out, out
        assert docker(*h, "image", "inspect", "-f", "{{.Id}}", image_id).stdout.strip() == image_id
        docker(*h, "rm", "-f", running, stopped)
        # Unused and dangling now: prune removes it.
        assert f"deleted: {image_id}" in docker(*h, "image", "prune", "-f").stdout
    finally:
        docker(*h, "rm", "-f", stopped, check=False)


def test_pull_all_tags(berthd, docker, registry, workdir):  # noqa: F811
    d = berthd()
    h = ("-H", d.unix_host)
    repo = f"{registry.addr}/all/busybox"
    ids = {"1": _import(d, docker, f"{repo}:1", "sh"), "2": _import(d, docker, f"{repo}:2", "true")}
    assert ids["1"] != ids["2"]
    docker(*h, "push", "-a", repo)
    docker(*h, "rmi", f"{repo}:1", f"{repo}:2")
    out = docker(*h, "pull", "-a", repo).stdout
    assert "1: Pulling from all/busybox" in out and "2: Pulling from all/busybox" in out, out
    for tag, image_id in ids.items():
        assert docker(*h, "image", "inspect", "-f", "{{.Id}}", f"{repo}:{tag}").stdout.strip() == image_id
    # A plain pull still means :latest only (the CLI sends the tag), and it does not exist.
    out = docker(*h, "pull", repo, check=False)
    assert out.returncode == 1 and "manifest unknown" in out.stderr, out.stderr


def test_insecure_registry_is_the_only_way_past_an_unverifiable_certificate(berthd, docker, workdir):
    if REGISTRY is None:
        pytest.fail("docker-registry is missing (.ci/run installs it)")
    # A registry with a certificate from a CA that no daemon trusts.
    tls = tls_init(workdir / "reg-tls", sans=("127.0.0.1",))
    (workdir / "tls-registry").mkdir()
    reg = Registry(workdir / "tls-registry", tls=(tls.server_cert, tls.server_key))
    try:
        ref = f"{reg.addr}/sec/busybox:1"
        strict = berthd(name="strict")
        _import(strict, docker, ref)
        out = docker("-H", strict.unix_host, "push", ref, check=False)
        assert out.returncode == 1 and "certificate" in out.stderr.lower(), out.stderr

        trusting = berthd(name="trusting", extra_args=[f"--insecure-registry={reg.addr}"])
        image_id = _import(trusting, docker, ref)
        docker("-H", trusting.unix_host, "push", ref)
        docker("-H", trusting.unix_host, "rmi", ref)
        docker("-H", trusting.unix_host, "pull", ref)
        assert docker("-H", trusting.unix_host, "image", "inspect", "-f", "{{.Id}}", ref).stdout.strip() == image_id
        # The strict daemon still refuses to pull it.
        docker("-H", strict.unix_host, "rmi", ref)
        out = docker("-H", strict.unix_host, "pull", ref, check=False)
        assert out.returncode == 1 and "certificate" in out.stderr.lower(), out.stderr
    finally:
        reg.stop()
