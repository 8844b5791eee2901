"""More registry tests against Debian's docker-registry on loopback:

- `berth login` / `berth logout` and the credentials `berth pull` / `berth push` send,
  against a registry with htpasswd basic auth; the config.json they write is read by the
  real docker CLI too;
- cross-checks with skopeo: an image skopeo copies into the registry pulls into berthd
  with its image ID, and what berthd pushes skopeo reads and copies to an OCI layout;
- crash safety: `kill -9` of berthd in the middle of a large pull, and the registry
  killed in the middle of one: no broken image, no partial data, and the pull then works.

"Mid-pull" is reached by bounded polling of the daemon's temp blob directory, never by
sleeping.
"""

from __future__ import annotations

import base64
import hashlib
import json
import os
import pty
import select
import shutil
import stat
import subprocess
from pathlib import Path
from typing import Any

import pytest

from conftest import BERTH_BIN, CMD_TIMEOUT, DOCKER_BIN, Daemon, clean_env, poll, run_cmd
from images_util import (
    describe,
    image_root,
    leftovers,
    regular,
    save_archive,
    store_snapshot,
    tar_of,
    write_big_save_archive,
)
from test_registry import Registry, auth_registry, imported, registry  # noqa: F401 - fixtures used by name

SKOPEO = shutil.which("skopeo")
BIG = 128 * 1024 * 1024
PULL_TIMEOUT = 300


def berth_cli(d: Daemon, cfg: Path, *args: str, stdin: str | None = None,
              check: bool = True) -> subprocess.CompletedProcess[str]:
    """The berth client against `d`, its config directory given by $DOCKER_CONFIG."""
    return run_cmd([BERTH_BIN, "-H", d.unix_host, *args], env=clean_env({"DOCKER_CONFIG": str(cfg)}),
                   check=check, input=stdin, timeout=PULL_TIMEOUT)


def docker_cli(d: Daemon, cfg: Path, *args: str, stdin: str | None = None,
               check: bool = True) -> subprocess.CompletedProcess[str]:
    """The real docker CLI against `d` with the config directory `cfg`."""
    return run_cmd([DOCKER_BIN, "-H", d.unix_host, *args], env=clean_env({"DOCKER_CONFIG": str(cfg)}),
                   check=check, input=stdin, timeout=PULL_TIMEOUT)


def image_id(d: Daemon, cfg: Path, ref: str) -> str:
    return docker_cli(d, cfg, "image", "inspect", "-f", "{{.Id}}", ref).stdout.strip()


def skopeo(*args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
    if SKOPEO is None:
        pytest.fail("skopeo is missing (.ci/run installs it)")
    return run_cmd([SKOPEO, "--insecure-policy", *args], check=check, timeout=PULL_TIMEOUT)


# ---------------------------------------------------------------------------------------
# login / logout


def test_berth_login_push_pull_logout(berthd, auth_registry, workdir):  # noqa: F811
    d = berthd()
    cfg = workdir / "berth-config"
    config = cfg / "config.json"
    addr = auth_registry.addr
    ref = f"{addr}/secure/busybox:1"
    iid = imported(lambda *a, **k: docker_cli(d, cfg, *a[2:], **k), d, workdir, ref)

    denied = berth_cli(d, cfg, "push", ref, check=False)
    assert denied.returncode != 0, denied
    assert "no basic auth credentials" in denied.stdout + denied.stderr, denied

    # Flags checked as docker checks them.
    both = berth_cli(d, cfg, "login", "-u", "alice", "-p", "x", "--password-stdin", addr, stdin="x", check=False)
    assert both.returncode == 1
    assert both.stderr.strip() == "conflicting options: cannot specify both --password and --password-stdin", both
    nouser = berth_cli(d, cfg, "login", "--password-stdin", addr, stdin="x", check=False)
    assert nouser.returncode == 1
    assert nouser.stderr.strip() == "the --password-stdin option requires --username to be set", nouser
    notty = berth_cli(d, cfg, "login", "-u", "alice", addr, stdin="", check=False)
    assert notty.returncode == 1
    assert "Cannot perform an interactive login from a non TTY device" in notty.stderr, notty

    # A wrong password: a clear error, nothing stored.
    bad = berth_cli(d, cfg, "login", "-u", "alice", "--password-stdin", addr, stdin="wrong\n", check=False)
    assert bad.returncode == 1, bad
    assert bad.stdout == "", bad
    assert bad.stderr.startswith("Error response from daemon: "), bad
    assert "401 Unauthorized" in bad.stderr or "unauthorized" in bad.stderr.lower(), bad
    assert not config.exists() or addr not in json.loads(config.read_text()).get("auths", {})

    # Other keys of an existing config.json survive; the file ends up 0600.
    cfg.mkdir(exist_ok=True)
    config.write_text(json.dumps({"psFormat": "table {{.ID}}", "auths": {"other:1": {"auth": "eDp5"}}}))
    config.chmod(0o644)
    good = berth_cli(d, cfg, "login", "-u", "alice", "--password-stdin", addr, stdin="s3cret\n")
    assert good.stdout == "Login Succeeded\n", good
    assert f"WARNING! Your credentials are stored unencrypted in '{config}'." in good.stderr, good
    assert stat.S_IMODE(config.stat().st_mode) == 0o600, oct(config.stat().st_mode)
    saved = json.loads(config.read_text())
    assert saved["auths"][addr] == {"auth": base64.b64encode(b"alice:s3cret").decode()}, saved
    assert saved["auths"]["other:1"] == {"auth": "eDp5"}
    assert saved["psFormat"] == "table {{.ID}}"

    pushed = berth_cli(d, cfg, "push", ref)
    assert ": Pushed" in pushed.stdout, pushed
    docker_cli(d, cfg, "rmi", ref)
    pulled = berth_cli(d, cfg, "pull", ref)
    assert pulled.stdout.rstrip().endswith(ref), pulled
    assert image_id(d, cfg, ref) == iid

    # The real docker CLI reads the file berth wrote.
    docker_cli(d, cfg, "rmi", ref)
    docker_cli(d, cfg, "pull", ref)
    assert image_id(d, cfg, ref) == iid

    # No flags: the stored credentials are tried first.
    again = berth_cli(d, cfg, "login", addr)
    assert again.stdout == "Login Succeeded\n", again
    assert "Authenticating with existing credentials... [Username: alice]" in again.stderr, again

    out = berth_cli(d, cfg, "logout", f"http://{addr}/v2/")
    assert out.stdout == f"Removing login credentials for {addr}\n", out
    saved = json.loads(config.read_text())
    assert addr not in saved["auths"], saved
    assert saved["auths"]["other:1"] == {"auth": "eDp5"} and saved["psFormat"] == "table {{.ID}}"
    assert stat.S_IMODE(config.stat().st_mode) == 0o600

    docker_cli(d, cfg, "rmi", ref)
    anonymous = berth_cli(d, cfg, "pull", ref, check=False)
    assert anonymous.returncode != 0, anonymous
    assert "no basic auth credentials" in anonymous.stderr, anonymous
    assert "s3cret" not in d.log_text()


def test_berth_login_and_logout_print_and_store_like_docker(berthd, auth_registry, workdir):  # noqa: F811
    d = berthd()
    addr = auth_registry.addr
    runs: dict[str, list[Any]] = {}
    for name, cli in (("docker", docker_cli), ("berth", berth_cli)):
        cfg = workdir / f"{name}-config"
        steps = []
        for args, stdin in (
            (("login", "-u", "alice", "-p", "s3cret", addr), None),
            (("login", "-u", "alice", "-p", "nope", addr), None),
            (("logout", addr), None),
            (("logout",), None),
        ):
            r = cli(d, cfg, *args, stdin=stdin, check=False)
            text = (cfg / "config.json").read_text() if (cfg / "config.json").exists() else None
            steps.append((args, r.returncode, r.stdout, r.stderr.replace(str(cfg), "CFG"),
                          json.loads(text) if text else None))
        runs[name] = steps
    for want, got in zip(runs["docker"], runs["berth"]):
        assert got == want, f"berth differs from docker:\n docker: {want}\n berth:  {got}"


def test_berth_login_prompts_on_a_terminal_without_echoing_the_password(berthd, auth_registry, workdir):  # noqa: F811
    d = berthd()
    cfg = workdir / "tty-config"
    master, slave = pty.openpty()
    proc = subprocess.Popen([str(BERTH_BIN), "-H", d.unix_host, "login", auth_registry.addr],
                            stdin=slave, stdout=slave, stderr=slave, start_new_session=True,
                            env=clean_env({"DOCKER_CONFIG": str(cfg)}))
    os.close(slave)
    seen = b""

    def read_until(text: bytes) -> bytes:
        def got() -> bool:
            nonlocal seen
            if select.select([master], [], [], 0.05)[0]:
                try:
                    seen += os.read(master, 4096)
                except OSError:  # the child closed the terminal
                    return True
            return text in seen

        poll(got, CMD_TIMEOUT, f"berth login to print {text!r} (so far {seen!r})")
        return seen

    try:
        read_until(b"Username: ")
        os.write(master, b"alice\n")
        read_until(b"Password: ")
        os.write(master, b"s3cret\n")
        read_until(b"Login Succeeded")
        assert proc.wait(timeout=CMD_TIMEOUT) == 0, seen
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        os.close(master)
    assert b"alice" in seen  # the username is echoed...
    assert b"s3cret" not in seen, seen  # ...the password is not
    saved = json.loads((cfg / "config.json").read_text())
    assert saved["auths"][auth_registry.addr] == {"auth": base64.b64encode(b"alice:s3cret").decode()}


# ---------------------------------------------------------------------------------------
# skopeo cross-checks


def test_skopeo_copies_an_archive_into_the_registry_and_berthd_pulls_it(berthd, docker, registry, workdir):  # noqa: F811
    d = berthd()
    layers = [
        tar_of([regular("hello.txt", b"hello from skopeo\n")]),
        tar_of([regular("data/blob.bin", os.urandom(300_000), 0o600)]),
    ]
    archive, iid = save_archive(layers, ["skopeo/src:1"])
    path = workdir / "skopeo-src.tar"
    path.write_bytes(archive)
    ref = f"{registry.addr}/x/y:1"
    skopeo("copy", "--dest-tls-verify=false", f"docker-archive:{path}", f"docker://{ref}")

    out = docker("-H", d.unix_host, "pull", ref).stdout
    assert f"Status: Downloaded newer image for {ref}" in out, out
    assert docker("-H", d.unix_host, "image", "inspect", "-f", "{{.Id}}", ref).stdout.strip() == iid
    info = json.loads(skopeo("inspect", "--tls-verify=false", f"docker://{ref}").stdout)
    digests = docker("-H", d.unix_host, "image", "inspect", "-f", "{{json .RepoDigests}}", ref).stdout
    assert f"{registry.addr}/x/y@{info['Digest']}" in json.loads(digests), (digests, info["Digest"])
    rootfs = docker("-H", d.unix_host, "image", "inspect", "-f", "{{json .RootFS.Layers}}", ref).stdout
    assert json.loads(rootfs) == [f"sha256:{hashlib.sha256(layer).hexdigest()}" for layer in layers]

    # An archive berthd saved goes the same way.
    saved = workdir / "berthd-save.tar"
    docker("-H", d.unix_host, "save", "-o", str(saved), ref)
    back = f"{registry.addr}/x/from-save:1"
    skopeo("copy", "--dest-tls-verify=false", f"docker-archive:{saved}", f"docker://{back}")
    docker("-H", d.unix_host, "pull", back)
    assert docker("-H", d.unix_host, "image", "inspect", "-f", "{{.Id}}", back).stdout.strip() == iid


def test_skopeo_reads_what_berthd_pushed(berthd, docker, registry, workdir):  # noqa: F811
    d = berthd()
    ref = f"{registry.addr}/berth/pushed:1"
    iid = imported(docker, d, workdir, ref)
    pushed = docker("-H", d.unix_host, "push", ref).stdout
    line = next(ln for ln in pushed.splitlines() if ln.startswith("1: digest: "))
    digest = line.split()[2]

    info = json.loads(skopeo("inspect", "--tls-verify=false", f"docker://{ref}").stdout)
    assert info["Digest"] == digest, (info, pushed)
    raw = skopeo("inspect", "--raw", "--tls-verify=false", f"docker://{ref}").stdout
    assert "sha256:" + hashlib.sha256(raw.encode()).hexdigest() == digest
    manifest = json.loads(raw)
    assert info["Layers"] == [layer["digest"] for layer in manifest["layers"]]
    assert len(info["Layers"]) == 1
    config = skopeo("inspect", "--config", "--raw", "--tls-verify=false", f"docker://{ref}").stdout
    assert "sha256:" + hashlib.sha256(config.encode()).hexdigest() == iid
    assert manifest["config"]["digest"] == iid
    dist = d.get_json(f"/v1.50/distribution/{ref}/json")
    assert dist["Descriptor"]["digest"] == digest, dist

    oci = workdir / "oci-layout"
    skopeo("copy", "--src-tls-verify=false", f"docker://{ref}", f"oci:{oci}:pushed")
    index = json.loads((oci / "index.json").read_text())
    assert [m["annotations"]["org.opencontainers.image.ref.name"] for m in index["manifests"]] == ["pushed"]
    oci_manifest = json.loads((oci / "blobs" / "sha256" / index["manifests"][0]["digest"].split(":")[1]).read_bytes())
    # skopeo rewrites the config as an OCI one (another digest); the layers stay as pushed.
    assert [layer["digest"] for layer in oci_manifest["layers"]] == info["Layers"]
    oci_config = json.loads((oci / "blobs" / "sha256" / oci_manifest["config"]["digest"].split(":")[1]).read_bytes())
    diff_ids = json.loads(docker("-H", d.unix_host, "image", "inspect", "-f", "{{json .RootFS.Layers}}", ref).stdout)
    assert oci_config["rootfs"]["diff_ids"] == diff_ids

    # And back: the OCI layout copied into the registry pulls into berthd as that OCI image.
    back = f"{registry.addr}/berth/from-oci:1"
    skopeo("copy", "--dest-tls-verify=false", f"oci:{oci}:pushed", f"docker://{back}")
    docker("-H", d.unix_host, "pull", back)
    back_id = docker("-H", d.unix_host, "image", "inspect", "-f", "{{.Id}}", back).stdout.strip()
    assert back_id == oci_manifest["config"]["digest"]
    back_layers = docker("-H", d.unix_host, "image", "inspect", "-f", "{{json .RootFS.Layers}}", back).stdout
    assert json.loads(back_layers) == diff_ids


# ---------------------------------------------------------------------------------------
# crash safety


def _big_image_in_registry(docker, d: Daemon, registry: Registry, workdir: Path, name: str) -> tuple[str, str]:  # noqa: F811
    """Loads a one-layer image of random data into `d`, pushes it, removes it locally.
    Returns (reference, image ID)."""
    ref = f"{registry.addr}/big/{name}:1"
    archive, iid = write_big_save_archive(workdir, BIG, ref)
    docker("-H", d.unix_host, "load", "-i", str(archive))
    archive.unlink()
    run_cmd([DOCKER_BIN, "-H", d.unix_host, "push", ref], env=clean_env({"DOCKER_CONFIG": str(workdir / "push-cfg")}),
            timeout=PULL_TIMEOUT)
    docker("-H", d.unix_host, "rmi", ref)
    assert docker("-H", d.unix_host, "images", "-a", "-q").stdout == ""
    return ref, iid


def _pull(d: Daemon, workdir: Path, ref: str) -> subprocess.Popen[str]:
    return subprocess.Popen([DOCKER_BIN, "-H", d.unix_host, "pull", ref], stdin=subprocess.DEVNULL,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            env=clean_env({"DOCKER_CONFIG": str(workdir / "pull-cfg")}))


def _downloading(d: Daemon, proc: subprocess.Popen[str], threshold: int = 8 << 20) -> str:
    """'downloading' once a temp blob in the store holds `threshold` bytes; 'done' if the
    pull ended first."""
    tmp = image_root(d.data_root) / "blobs" / "tmp"
    try:
        if tmp.is_dir() and any(p.stat().st_size >= threshold for p in tmp.iterdir()):
            return "downloading"
    except FileNotFoundError:
        pass  # a temp file renamed away between listing and stat
    return "done" if proc.poll() is not None else ""


def _no_broken_image(docker, d: Daemon, ref: str, iid: str) -> list[str]:
    """Whatever `docker images` lists inspects, with its layers on disk; [] or [iid]."""
    ids = docker("-H", d.unix_host, "images", "-a", "-q", "--no-trunc").stdout.split()
    assert ids in ([], [iid]), ids
    for i in ids:
        info = json.loads(docker("-H", d.unix_host, "image", "inspect", i).stdout)[0]
        for layer in info["RootFS"]["Layers"]:
            diff = image_root(d.data_root) / "layers" / layer.split(":", 1)[1] / "diff"
            assert diff.is_dir(), f"{ref} lists layer {layer} but {diff} is missing"
    return ids


def test_kill_9_mid_pull_leaves_no_broken_image_and_the_pull_then_works(berthd, docker, registry, workdir):  # noqa: F811
    d = berthd()
    ref, iid = _big_image_in_registry(docker, d, registry, workdir, "crash")
    before = store_snapshot(d.data_root)
    problems: list[str] = []

    def check_store(what: str, ids: list[str]) -> None:
        extra = leftovers(before, store_snapshot(d.data_root))
        if ids:  # the pull won the race: only the whole image's own data may be new
            extra = [e for e in extra if not e.startswith(("layers/", "images/", "blobs/sha256/"))]
        if extra:
            problems.append(f"{what} left {describe(d.data_root, extra)}")

    # 1. While a layer is being downloaded.
    proc = _pull(d, workdir, ref)
    state = poll(lambda: _downloading(d, proc), 120, "berthd to be downloading the big layer", interval=0.002)
    d.proc.kill()
    d.proc.wait(timeout=CMD_TIMEOUT)
    proc.wait(timeout=CMD_TIMEOUT)
    assert state == "downloading", f"the pull ended before it could be interrupted: {proc.stderr.read()}"
    assert proc.returncode != 0
    d.start()
    check_store("kill -9 mid-download + restart", _no_broken_image(docker, d, ref, iid))

    # 2. While the layer is being unpacked (if the pull wins the race, the image is whole).
    layers = image_root(d.data_root) / "layers"
    proc = _pull(d, workdir, ref)

    def unpacking_or_done() -> str:
        if layers.is_dir() and any(p.name.startswith(".") for p in layers.iterdir()):
            return "unpacking"
        return "done" if proc.poll() is not None else ""

    poll(unpacking_or_done, PULL_TIMEOUT, "berthd to unpack the big layer", interval=0.002)
    d.proc.kill()
    d.proc.wait(timeout=CMD_TIMEOUT)
    proc.wait(timeout=CMD_TIMEOUT)
    d.start()
    check_store("kill -9 while unpacking + restart", _no_broken_image(docker, d, ref, iid))

    # 3. The same pull now succeeds with the same ID; removing it empties the store again.
    out = docker("-H", d.unix_host, "pull", ref).stdout
    assert "Digest: sha256:" in out, out
    assert docker("-H", d.unix_host, "image", "inspect", "-f", "{{.Id}}", ref).stdout.strip() == iid
    docker("-H", d.unix_host, "rmi", ref)
    check_store("the crashed pulls, a pull and an rmi", [])
    assert not problems, "\n".join(problems)


def test_registry_killed_mid_pull_is_a_clear_error_and_leaves_nothing(berthd, docker, registry, workdir):  # noqa: F811
    d = berthd()
    ref, iid = _big_image_in_registry(docker, d, registry, workdir, "down")
    before = store_snapshot(d.data_root)

    proc = _pull(d, workdir, ref)
    state = poll(lambda: _downloading(d, proc), 120, "berthd to be downloading the big layer", interval=0.002)
    registry.proc.kill()
    registry.proc.wait(timeout=CMD_TIMEOUT)
    try:
        out, err = proc.communicate(timeout=PULL_TIMEOUT)
    except subprocess.TimeoutExpired:
        proc.kill()
        out, err = proc.communicate()
        pytest.fail(f"docker pull still running {PULL_TIMEOUT}s after the registry died:\n{out}\n{err}")
    assert state == "downloading", f"the pull ended before the registry could be stopped: {err}"
    assert proc.returncode != 0, out
    # The CLI shows the daemon's reason: the registry (its address) could not be reached.
    assert registry.addr in err or "connection refused" in err.lower(), (out, err)
    assert docker("-H", d.unix_host, "images", "-a", "-q").stdout == ""
    extra = leftovers(before, store_snapshot(d.data_root))
    assert not extra, f"the failed pull left {describe(d.data_root, extra)}"
    assert d.request("GET", "/_ping").status == 200

    # With the registry back (same storage, new port), the pull works and gives the same ID.
    again = Registry(registry.root)
    try:
        other = ref.replace(registry.addr, again.addr)
        docker("-H", d.unix_host, "pull", other)
        assert docker("-H", d.unix_host, "image", "inspect", "-f", "{{.Id}}", other).stdout.strip() == iid
    finally:
        again.stop()
