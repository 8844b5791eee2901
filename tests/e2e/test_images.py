"""Images: import, inspect, tag, rmi, save/load, filters and prune against berthd, driven by
the real docker CLI (v28), docker-py and the berth client; archives cross-checked with
skopeo and with a real dockerd 20.10; malicious input and a kill -9 in the middle of a
load leave nothing behind.

Every test builds its own tiny rootfs from Debian's busybox-static (`/bin/busybox` plus a
few applet symlinks); nothing is pulled from a registry.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import tarfile
import threading
import time
import urllib.parse
import uuid
from pathlib import Path
from typing import Any, Callable

import pytest

from conftest import (
    BERTH_BIN,
    CMD_TIMEOUT,
    DOCKER_BIN,
    Daemon,
    berth,
    clean_env,
    definition,
    poll,
    run_cmd,
    schema_errors,
)
from images_util import (
    RealDockerd,
    api,
    busybox_rootfs_tar,
    describe,
    error_message,
    image_root,
    leftovers,
    regular,
    rootfs_size,
    save_archive,
    sha256_file,
    sha256_hex,
    store_snapshot,
    symlink,
    tar_of,
    write_big_save_archive,
)

ID_RE = re.compile(r"sha256:[0-9a-f]{64}")


# ---------------------------------------------------------------------------------------
# fixtures and helpers


@pytest.fixture
def rootfs(workdir: Path) -> Path:
    """A rootfs tarball: /bin/busybox (Debian's busybox-static) and applet symlinks."""
    if not Path("/bin/busybox").is_file():
        pytest.fail("/bin/busybox is missing: install busybox-static (.ci/run does)")
    return busybox_rootfs_tar(workdir / "rootfs.tar")


@pytest.fixture
def dk(docker: Callable[..., subprocess.CompletedProcess[str]]):
    """`dk(daemon, *args, check=True)`: the real docker CLI against one daemon."""

    def run(d: Daemon | RealDockerd, *args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
        host = d.unix_host if isinstance(d, Daemon) else d.host
        return docker("-H", host, *args, check=check)

    return run


@pytest.fixture
def real_dockerd(workdir: Path):
    """A real dockerd 20.10 in its own network namespace (see images_util.RealDockerd)."""
    if shutil.which("dockerd") is None:
        pytest.skip("dockerd is not installed (Debian's docker.io): the cross-check against a real Docker needs it")
    d = RealDockerd(workdir / "dockerd")
    try:
        d.start()
    except BaseException:
        problems = d.stop()
        raise AssertionError(f"dockerd did not start; cleanup problems: {problems}\n{d.log_tail()}")
    yield d
    problems = d.stop()
    if problems:
        pytest.fail("real dockerd teardown: " + "; ".join(problems), pytrace=False)


def import_image(dk, d, rootfs: Path, ref: str | None = None, *changes: str, message: str | None = None) -> str:
    args = ["import"]
    for c in changes:
        args += ["-c", c]
    if message is not None:
        args += ["-m", message]
    args.append(str(rootfs))
    if ref:
        args.append(ref)
    out = dk(d, *args).stdout.strip()
    assert ID_RE.fullmatch(out), f"docker import printed {out!r}"
    return out


def inspect(dk, d, name: str) -> dict[str, Any]:
    return json.loads(dk(d, "image", "inspect", name).stdout)[0]


def go_size(n: float) -> str:
    """go-units HumanSizeWithPrecision(n, 3), as `docker images` prints sizes."""
    units = ["B", "kB", "MB", "GB", "TB"]
    i = 0
    while n >= 1000 and i < len(units) - 1:
        n /= 1000
        i += 1
    return f"{n:.3g}{units[i]}"


def table(out: str) -> list[list[str]]:
    """Rows of a docker table, cells split on runs of 2+ spaces."""
    return [re.split(r"\s{2,}", line.strip()) for line in out.splitlines() if line.strip()]


def created(d: Daemon, image_id: str) -> int:
    return next(i["Created"] for i in d.get_json("/images/json?all=1") if i["Id"] == image_id)


def wait_next_second(after: int) -> None:
    """Images are ordered by creation time in whole seconds; make the next one later."""
    poll(lambda: int(time.time()) > after, 3, f"the clock to pass {after}", interval=0.02)


def assert_schema(value: Any, name: str) -> None:
    errors = schema_errors(value, definition(name))
    assert not errors, f"{name} does not match the API spec: {errors}"


def assert_store_unchanged(d: Daemon, before: dict[str, list[str]], what: str) -> None:
    after = store_snapshot(d.data_root)
    extra = leftovers(before, after)
    assert not extra, f"{what} left this in {image_root(d.data_root)}: {describe(d.data_root, extra)}"


# ---------------------------------------------------------------------------------------
# import, images, inspect


def test_import_with_change_and_tag_is_listed_with_its_size(berthd, dk, rootfs):
    d = berthd()
    iid = import_image(dk, d, rootfs, "bb:1", 'CMD ["sh"]')
    rows = table(dk(d, "images").stdout)
    assert rows[0] == ["REPOSITORY", "TAG", "IMAGE ID", "CREATED", "SIZE"], rows
    assert len(rows) == 2, rows
    repo, tag, short_id, age, size = rows[1]
    assert (repo, tag, short_id) == ("bb", "1", iid[7:19])
    assert age == "Less than a second ago" or re.fullmatch(r"\d+ seconds? ago", age), age
    assert size == go_size(rootfs_size()) == "1.98MB", rows
    listed = d.get_json("/images/json")
    assert [i["Id"] for i in listed] == [iid]
    assert listed[0]["RepoTags"] == ["bb:1"]
    for item in listed:
        assert_schema(item, "ImageSummary")
    assert dk(d, "images", "-q").stdout.split() == [iid[7:19]]
    assert dk(d, "images", "--no-trunc", "--format", "{{.ID}} {{.Repository}}:{{.Tag}}").stdout.strip() == f"{iid} bb:1"


def test_image_size_counts_symlinks_like_dockerd(berthd, rootfs):
    """dockerd sizes a layer with moby's directory.Size: the lstat size of every
    non-directory, so each applet symlink adds len("busybox")."""
    d = berthd()
    status, _ = api(d.sock, "POST", "/images/create?fromSrc=-&repo=bb&tag=1", body=rootfs.read_bytes())
    assert status == 200
    assert d.get_json("/images/json")[0]["Size"] == rootfs_size()
    assert d.get_json("/images/bb:1/json")["Size"] == rootfs_size()


def test_inspect_fields(berthd, dk, rootfs, workdir):
    d = berthd()
    iid = import_image(dk, d, rootfs, "bb:1", 'CMD ["sh"]', "ENV A=b", message="made by e2e")
    info = inspect(dk, d, "bb:1")
    assert_schema(info, "ImageInspect")
    assert info["Id"] == iid
    assert info["RepoTags"] == ["bb:1"]
    # A plain tar imports as one layer whose diffID is the tar's own digest.
    assert info["RootFS"] == {"Type": "layers", "Layers": [f"sha256:{sha256_file(rootfs)}"]}
    assert info["Config"]["Cmd"] == ["sh"]
    assert "A=b" in info["Config"]["Env"]
    assert info["Comment"] == "made by e2e"
    assert (info["Os"], info["Architecture"]) == ("linux", "amd64")
    # The ID is the sha256 of the image config, as the saved archive holds it.
    archive = workdir / "bb.tar"
    dk(d, "save", "-o", str(archive), "bb:1")
    with tarfile.open(archive) as tar:
        manifest = json.load(tar.extractfile("manifest.json"))
        config = tar.extractfile(manifest[0]["Config"]).read()
    assert f"sha256:{sha256_hex(config)}" == iid
    assert json.loads(config)["rootfs"]["diff_ids"] == info["RootFS"]["Layers"]
    assert dk(d, "image", "inspect", "-f", "{{.Id}} {{json .Config.Cmd}}", "bb:1").stdout.strip() == f'{iid} ["sh"]'


def test_import_without_message_comments_like_docker(berthd, dk, rootfs):
    """dockerd (daemon/images/image_import.go) writes "Imported from -" into both the
    image's comment and its history entry when `docker import` has no -m."""
    d = berthd()
    import_image(dk, d, rootfs, "bb:2")
    history = d.get_json("/images/bb:2/history")
    for item in history:
        assert_schema(item, "ImageHistoryResponseItem")
    assert history[0]["Comment"] == "Imported from -"
    rows = table(dk(d, "history", "bb:2").stdout)
    assert rows[0] == ["IMAGE", "CREATED", "CREATED BY", "SIZE", "COMMENT"], rows
    assert rows[1][-1] == "Imported from -" and rows[1][-2] == "1.98MB", rows
    assert inspect(dk, d, "bb:2")["Comment"] == "Imported from -"


def test_import_changes_may_be_newline_separated(berthd, rootfs):
    """moby joins the `changes` parameters with newlines and parses the result as a
    Dockerfile (daemon/images/image_import.go), so clients that send one newline-joined
    `changes` value (bollard does) get the same image as the docker CLI's repeated ones."""
    d = berthd()
    changes = urllib.parse.quote('CMD ["sh"]\nLABEL a=b')
    status, body = api(d.sock, "POST", f"/images/create?fromSrc=-&repo=nl&tag=1&changes={changes}", body=rootfs.read_bytes())
    assert status == 200, body
    config = d.get_json("/images/nl:1/json")["Config"]
    assert config["Cmd"] == ["sh"], config
    assert config["Labels"] == {"a": "b"}, config


# ---------------------------------------------------------------------------------------
# tag and rmi


def test_tag_adds_a_repo_tag_and_rmi_of_one_tag_only_untags(berthd, dk, rootfs):
    d = berthd()
    iid = import_image(dk, d, rootfs, "bb:1")
    dk(d, "tag", "bb:1", "bb:2")
    assert sorted(inspect(dk, d, "bb:1")["RepoTags"]) == ["bb:1", "bb:2"]
    assert inspect(dk, d, "bb:2")["Id"] == iid
    assert dk(d, "rmi", "bb:2").stdout == "Untagged: bb:2\n"
    info = inspect(dk, d, "bb:1")
    assert (info["Id"], info["RepoTags"]) == (iid, ["bb:1"])
    proc = dk(d, "image", "inspect", "bb:2", check=False)
    assert proc.returncode == 1
    assert "No such image: bb:2" in proc.stderr


def test_rmi_of_the_last_tag_deletes_image_and_layer(berthd, dk, rootfs):
    d = berthd()
    before = store_snapshot(d.data_root)
    iid = import_image(dk, d, rootfs, "bb:1")
    layers = image_root(d.data_root) / "layers"
    assert len(list(layers.iterdir())) == 1
    out = dk(d, "rmi", "bb:1").stdout.splitlines()
    assert out[0] == "Untagged: bb:1", out
    assert f"Deleted: {iid}" in out, out
    assert dk(d, "images", "-a", "-q").stdout == ""
    assert list(layers.iterdir()) == [], "layer directory left after its last image was removed"
    assert_store_unchanged(d, before, "import + rmi")


def test_rmi_by_id_of_an_image_with_two_tags_must_be_forced(berthd, dk, rootfs):
    d = berthd()
    iid = import_image(dk, d, rootfs, "bb:1")
    dk(d, "tag", "bb:1", "bb:2")
    short = iid[7:19]
    status, body = api(d.sock, "DELETE", f"/images/{short}")
    assert status == 409, body
    assert "must be forced" in error_message(body), body
    proc = dk(d, "rmi", short, check=False)
    assert proc.returncode == 1
    assert proc.stderr.startswith("Error response from daemon: "), proc.stderr
    assert "must be forced" in proc.stderr
    assert sorted(inspect(dk, d, iid)["RepoTags"]) == ["bb:1", "bb:2"]
    out = dk(d, "rmi", "-f", short).stdout.splitlines()
    assert sorted(line for line in out if line.startswith("Untagged:")) == ["Untagged: bb:1", "Untagged: bb:2"], out
    assert f"Deleted: {iid}" in out, out
    assert list((image_root(d.data_root) / "layers").iterdir()) == []


def test_missing_image_is_404_no_such_image(berthd, dk):
    d = berthd()
    for method, path in (("GET", "/images/x/json"), ("DELETE", "/images/x"), ("GET", "/images/x/history")):
        status, body = api(d.sock, method, path)
        assert status == 404, (method, path, body)
        assert error_message(body).startswith("No such image: x"), body
    proc = dk(d, "image", "inspect", "x", check=False)
    assert proc.returncode == 1
    assert proc.stdout == "[]\n"
    assert "Error response from daemon: No such image: x" in proc.stderr
    proc = dk(d, "rmi", "x", check=False)
    assert proc.returncode == 1
    assert proc.stderr.startswith("Error response from daemon: No such image: x"), proc.stderr


def test_tag_with_uppercase_is_invalid_reference_format(berthd, dk, rootfs):
    d = berthd()
    import_image(dk, d, rootfs, "bb:1")
    status, body = api(d.sock, "POST", "/images/bb:1/tag?repo=Bad&tag=x")
    assert status == 400, body
    assert "invalid reference format" in error_message(body), body
    # docker refuses it before asking the daemon; berth lets the daemon say it.
    proc = dk(d, "tag", "bb:1", "Bad:x", check=False)
    assert proc.returncode == 1 and "invalid reference format" in proc.stderr, proc.stderr
    proc = berth("-H", d.unix_host, "tag", "bb:1", "Bad:x", check=False)
    assert proc.returncode == 1
    assert proc.stderr.startswith("Error response from daemon: invalid reference format"), proc.stderr
    assert inspect(dk, d, "bb:1")["RepoTags"] == ["bb:1"]


# ---------------------------------------------------------------------------------------
# save and load


def test_save_load_round_trip_into_a_fresh_daemon_keeps_the_id(berthd, dk, docker_env, rootfs, workdir):
    d1 = berthd()
    iid = import_image(dk, d1, rootfs, "bb:1", 'CMD ["sh"]', "LABEL a=b")
    d2 = berthd()
    # docker save | docker load
    save = subprocess.Popen(
        [DOCKER_BIN, "-H", d1.unix_host, "save", "bb:1"], stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=docker_env()
    )
    try:
        load = subprocess.run(
            [DOCKER_BIN, "-H", d2.unix_host, "load"],
            stdin=save.stdout,
            capture_output=True,
            text=True,
            env=docker_env(),
            timeout=CMD_TIMEOUT,
        )
    finally:
        save.stdout.close()
        save_err = save.stderr.read().decode()
        save.wait(timeout=CMD_TIMEOUT)
    assert save.returncode == 0, save_err
    assert load.returncode == 0, load.stderr
    assert load.stdout == "Loaded image: bb:1\n"
    a, b = inspect(dk, d1, "bb:1"), inspect(dk, d2, "bb:1")
    assert b["Id"] == iid
    assert b["RootFS"] == a["RootFS"]
    assert b["Config"]["Labels"] == {"a": "b"}
    # and once more through a file, by ID into a third daemon
    archive = workdir / "by-id.tar"
    dk(d1, "save", "-o", str(archive), iid[7:19])
    d3 = berthd()
    out = dk(d3, "load", "-i", str(archive)).stdout
    assert out in ("Loaded image: bb:1\n", f"Loaded image ID: {iid}\n"), out
    assert inspect(dk, d3, iid)["Id"] == iid


def test_saved_archive_reads_with_skopeo(berthd, dk, rootfs, workdir):
    if shutil.which("skopeo") is None:
        pytest.skip("skopeo is not installed (.ci/run installs it)")
    d = berthd()
    iid = import_image(dk, d, rootfs, "bb:1", 'CMD ["sh"]')
    archive = workdir / "bb.tar"
    dk(d, "save", "-o", str(archive), "bb:1")
    info = json.loads(run_cmd(["skopeo", "inspect", f"docker-archive:{archive}"]).stdout)
    assert (info["Os"], info["Architecture"]) == ("linux", "amd64")
    assert len(info["Layers"]) == 1, info
    raw_config = subprocess.run(
        ["skopeo", "inspect", "--config", "--raw", f"docker-archive:{archive}"], capture_output=True, timeout=CMD_TIMEOUT
    )
    assert raw_config.returncode == 0, raw_config.stderr
    assert f"sha256:{sha256_hex(raw_config.stdout)}" == iid
    config = json.loads(raw_config.stdout)
    assert config["rootfs"]["diff_ids"] == [f"sha256:{sha256_file(rootfs)}"]
    assert config["config"]["Cmd"] == ["sh"]
    # skopeo can also copy it out whole (digests verified on the way).
    oci = workdir / "oci"
    run_cmd(["skopeo", "copy", f"docker-archive:{archive}", f"oci:{oci}:bb"])
    assert (oci / "index.json").is_file()


def test_berthd_save_loads_into_real_dockerd_with_the_same_id(berthd, dk, real_dockerd, rootfs, workdir):
    d = berthd()
    iid = import_image(dk, d, rootfs, "bb:1", 'CMD ["sh"]', "LABEL a=b", message="from berthd")
    archive = workdir / "from-berthd.tar"
    dk(d, "save", "-o", str(archive), "bb:1")
    assert dk(real_dockerd, "load", "-i", str(archive)).stdout.strip() == "Loaded image: bb:1"
    theirs, ours = inspect(dk, real_dockerd, "bb:1"), inspect(dk, d, "bb:1")
    assert theirs["Id"] == iid
    assert theirs["RootFS"] == ours["RootFS"]
    assert theirs["Config"]["Cmd"] == ["sh"] and theirs["Config"]["Labels"] == {"a": "b"}
    assert theirs["Comment"] == "from berthd"


def test_real_dockerd_save_loads_into_berthd_with_the_same_id(berthd, dk, real_dockerd, rootfs, workdir):
    iid = import_image(dk, real_dockerd, rootfs, "dk:1", 'CMD ["sh"]')
    archive = workdir / "from-dockerd.tar"
    dk(real_dockerd, "save", "-o", str(archive), "dk:1")
    d = berthd()
    before = store_snapshot(d.data_root)
    assert dk(d, "load", "-i", str(archive)).stdout.strip() == "Loaded image: dk:1"
    theirs, ours = inspect(dk, real_dockerd, "dk:1"), inspect(dk, d, "dk:1")
    assert ours["Id"] == iid
    assert ours["RootFS"] == theirs["RootFS"]
    assert ours["Comment"] == theirs["Comment"] == "Imported from -"
    assert ours["Config"]["Cmd"] == ["sh"]
    dk(d, "rmi", "dk:1")
    assert_store_unchanged(d, before, "load + rmi")


def test_berth_pull_and_push_print_like_docker_against_real_dockerd(dk, real_dockerd, rootfs):
    """berthd cannot pull or push yet, so the client's progress output is compared with
    the docker CLI's against a real dockerd and a local registry (non-terminal output:
    plain lines)."""
    if shutil.which("docker-registry") is None:
        pytest.skip("docker-registry is not installed (.ci/run installs it)")
    registry = real_dockerd.start_registry()
    ref = f"{registry}/bb:1"
    import_image(dk, real_dockerd, rootfs, ref)
    h = ("-H", real_dockerd.host)
    first = berth(*h, "push", ref).stdout.splitlines()
    assert first[0] == f"The push refers to repository [{registry}/bb]", first
    assert re.fullmatch(r"[0-9a-f]{12}: Pushed", first[-2]), first
    assert re.fullmatch(r"1: digest: sha256:[0-9a-f]{64} size: \d+", first[-1]), first
    assert berth(*h, "push", ref).stdout == dk(real_dockerd, "push", ref).stdout
    assert berth(*h, "push", "-q", ref).stdout == f"{ref}\n"
    # push without a tag pushes :latest, which does not exist
    ours, theirs = berth(*h, "push", f"{registry}/bb", check=False), dk(real_dockerd, "push", f"{registry}/bb", check=False)
    assert (ours.returncode, ours.stdout, ours.stderr) == (theirs.returncode, theirs.stdout, theirs.stderr) == (
        1,
        f"Using default tag: latest\nThe push refers to repository [{registry}/bb]\n",
        f"tag does not exist: {registry}/bb:latest\n",
    )
    dk(real_dockerd, "rmi", ref)
    ours = berth(*h, "pull", ref).stdout
    dk(real_dockerd, "rmi", ref)
    theirs = dk(real_dockerd, "pull", ref).stdout
    # dockerd reports "Verifying Checksum" and "Download complete" from concurrent
    # goroutines: their order varies from run to run, and a fast download can skip either
    # (a transfer's watchers see only its latest progress). Both pulls here are dockerd's,
    # so compare the other lines, as a multiset.
    def lines(out: str) -> list[str]:
        return sorted(l for l in out.splitlines()
                      if not l.endswith((": Verifying Checksum", ": Download complete")))

    assert lines(ours) == lines(theirs), (ours, theirs)
    assert ours.endswith(f"Status: Downloaded newer image for {ref}\n{ref}\n"), ours
    assert berth(*h, "pull", "-q", ref).stdout == f"{ref}\n"
    ours, theirs = berth(*h, "pull", f"{registry}/nope", check=False), dk(real_dockerd, "pull", f"{registry}/nope", check=False)
    assert ours.returncode == theirs.returncode == 1
    assert (ours.stdout, ours.stderr) == (theirs.stdout, theirs.stderr)


# ---------------------------------------------------------------------------------------
# filters and prune


def test_list_filters(berthd, dk, rootfs):
    d = berthd()
    a = import_image(dk, d, rootfs, "alpha:1", "LABEL a=b")
    wait_next_second(created(d, a))
    b = import_image(dk, d, rootfs, "beta:1", "LABEL a=c")
    wait_next_second(created(d, b))
    c = import_image(dk, d, rootfs, None, 'CMD ["sh"]')
    assert len({a, b, c}) == 3

    def names(*args: str) -> list[str]:
        out = dk(d, "images", "--format", "{{.Repository}}:{{.Tag}}", *args).stdout
        return sorted(out.split())

    assert names() == ["<none>:<none>", "alpha:1", "beta:1"]
    assert names("--filter", "dangling=true") == ["<none>:<none>"]
    assert dk(d, "images", "-q", "--no-trunc", "-f", "dangling=true").stdout.split() == [c]
    assert names("--filter", "dangling=false") == ["alpha:1", "beta:1"]
    assert names("--filter", "reference=alpha") == ["alpha:1"]
    assert names("--filter", "reference=b*") == ["beta:1"]
    assert names("--filter", "reference=*:1") == ["alpha:1", "beta:1"]
    assert names("beta") == ["beta:1"]
    assert names("--filter", "label=a=b") == ["alpha:1"]
    assert names("--filter", "label=a") == ["alpha:1", "beta:1"]
    assert names("--filter", "label=a=nope") == []
    assert names("--filter", "before=beta:1") == ["alpha:1"]
    assert names("--filter", "since=alpha:1") == ["<none>:<none>", "beta:1"]
    assert names("--filter", "since=alpha:1", "--filter", "before=" + c[7:19]) == ["beta:1"]
    proc = dk(d, "images", "--filter", "bogus=1", check=False)
    assert proc.returncode == 1 and "invalid filter" in proc.stderr, proc.stderr


def test_image_prune_removes_dangling_images_only(berthd, dk, docker_env, rootfs):
    d = berthd()
    tagged = import_image(dk, d, rootfs, "keep:1")
    dangling = import_image(dk, d, rootfs, None, 'CMD ["sh"]')
    # Without -f docker asks; "n" keeps everything.
    proc = subprocess.run(
        [DOCKER_BIN, "-H", d.unix_host, "image", "prune"],
        input="n\n",
        capture_output=True,
        text=True,
        env=docker_env(),
        timeout=CMD_TIMEOUT,
    )
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.startswith("WARNING! This will remove all dangling images.\nAre you sure you want to continue? [y/N] ")
    assert len(dk(d, "images", "-a", "-q").stdout.split()) == 2
    out = dk(d, "image", "prune", "-f").stdout
    assert out.startswith("Deleted Images:\n"), out
    assert f"deleted: {dangling}" in out.splitlines(), out
    assert re.search(r"^Total reclaimed space: \S+$", out, re.M), out
    assert dk(d, "images", "-a", "-q", "--no-trunc").stdout.split() == [tagged]
    assert dk(d, "image", "prune", "-f").stdout == "Total reclaimed space: 0B\n"
    report = api(d.sock, "POST", "/images/prune")
    assert report[0] == 200 and report[1]["ImagesDeleted"] is None, report
    assert dk(d, "images", "-a", "-q", "--no-trunc").stdout.split() == [tagged]


# ---------------------------------------------------------------------------------------
# docker-py


def test_docker_py_list_get_tag_remove_save_load(berthd, dk, rootfs):
    dockerpy = pytest.importorskip("docker")
    d = berthd()
    client = dockerpy.DockerClient(base_url=f"unix://{d.sock}", timeout=60)
    try:
        # docker-py sends each change as its own `changes` parameter.
        result = client.api.import_image_from_data(
            rootfs.read_bytes(), repository="py", tag="1", changes=['CMD ["sh"]', "LABEL from=py"]
        )
        iid = json.loads(result)["status"] if isinstance(result, str) else result["status"]
        assert ID_RE.fullmatch(iid), result
        img = client.images.get("py:1")
        assert img.id == iid
        assert img.tags == ["py:1"]
        assert img.attrs["Config"]["Cmd"] == ["sh"] and img.labels == {"from": "py"}
        assert [i.id for i in client.images.list()] == [iid]
        assert img.tag("pyrepo", "t1") is True
        assert sorted(client.images.get(iid).tags) == ["py:1", "pyrepo:t1"]
        data = b"".join(img.save(named=True))
        client.images.remove("pyrepo:t1")
        client.images.remove("py:1")
        with pytest.raises(dockerpy.errors.ImageNotFound):
            client.images.get(iid)
        assert client.images.list(all=True) == []
        loaded = client.images.load(data)
        assert [i.id for i in loaded] == [iid]
        assert client.images.get("py:1").id == iid
        with pytest.raises(dockerpy.errors.ImageNotFound):
            client.images.get("nosuch")
    finally:
        client.close()


# ---------------------------------------------------------------------------------------
# bad input: a clear error, the right status, nothing left behind


def _good_layer() -> bytes:
    return tar_of([regular("hello.txt", b"hello\n")])


LOAD_CASES: dict[str, Callable[[], bytes]] = {
    "not-a-tar": lambda: b"this is not a tar archive\n" * 100,
    "tar-without-manifest": lambda: tar_of([regular("hello.txt", b"hi\n"), regular("x/layer.tar", _good_layer())]),
    # Two layers named, the second absent: the first must not stay behind either.
    "manifest-names-a-missing-layer": lambda: save_archive(
        [_good_layer(), None], ["broken:1"], diff_ids=[f"sha256:{sha256_hex(_good_layer())}", "sha256:" + "ab" * 32]
    )[0],
}


@pytest.mark.parametrize("case", sorted(LOAD_CASES))
def test_load_of_bad_archive_is_refused_and_leaves_nothing(berthd, dk, workdir, case):
    d = berthd()
    before = store_snapshot(d.data_root)
    body = LOAD_CASES[case]()
    status, payload = api(d.sock, "POST", "/images/load", body=body, headers={"Content-Type": "application/x-tar"})
    assert status == 400, (status, payload)
    assert error_message(payload).strip(), payload
    assert_store_unchanged(d, before, f"load of {case}")
    archive = workdir / f"{case}.tar"
    archive.write_bytes(body)
    proc = dk(d, "load", "-i", str(archive), check=False)
    assert proc.returncode == 1, proc.stdout
    assert proc.stderr.startswith("Error response from daemon: "), proc.stderr
    assert dk(d, "images", "-a", "-q").stdout == ""
    assert_store_unchanged(d, before, f"docker load of {case}")


def _import_cases(outside: Path, token: str) -> dict[str, bytes]:
    deep = "../" * 40 + str(outside / "deep-escape")[1:]
    return {
        "dotdot-entry": tar_of([regular("ok.txt", b"fine\n"), regular(f"../escape-{token}", b"escaped\n")]),
        "deep-dotdot-entry": tar_of([regular("ok.txt", b"fine\n"), regular(deep, b"escaped\n")]),
        "absolute-symlink-then-write": tar_of([symlink("evil", str(outside)), regular("evil/pwned", b"escaped\n")]),
        "relative-symlink-then-write": tar_of(
            [symlink("evil", "../" * 40 + str(outside)[1:]), regular("evil/pwned", b"escaped\n")]
        ),
        "symlinked-dir-chain-then-write": tar_of(
            [
                symlink("a", "."),
                symlink("a/b", "../" * 40 + str(outside)[1:]),
                regular("a/b/pwned-chain", b"escaped\n"),
            ]
        ),
    }


IMPORT_CASES = [
    "dotdot-entry",
    "deep-dotdot-entry",
    "absolute-symlink-then-write",
    "relative-symlink-then-write",
    "symlinked-dir-chain-then-write",
]


@pytest.mark.parametrize("case", IMPORT_CASES)
def test_import_of_malicious_layer_is_refused_and_writes_nothing_outside(berthd, dk, workdir, case):
    d = berthd()
    outside = workdir / "outside"
    outside.mkdir()
    token = uuid.uuid4().hex[:12]
    body = _import_cases(outside, token)[case]
    before = store_snapshot(d.data_root)
    status, payload = api(d.sock, "POST", "/images/create?fromSrc=-&repo=evil&tag=1", body=body)
    assert list(outside.iterdir()) == [], f"{case}: wrote outside the layer: {list(outside.iterdir())}"
    # Walk with errors ignored: parallel tests create and remove their dirs meanwhile.
    escaped = [
        os.path.join(root, name)
        for root, dirs, files in os.walk(workdir.parent, onerror=lambda _e: None)
        for name in dirs + files
        if name == f"escape-{token}"
    ]
    assert not escaped, f"{case}: wrote outside the layer: {escaped}"
    assert status == 400, (status, payload)
    assert error_message(payload).strip(), payload
    assert_store_unchanged(d, before, f"import of {case}")
    assert dk(d, "images", "-a", "-q").stdout == ""


# ---------------------------------------------------------------------------------------
# crash safety


def _feed(proc: subprocess.Popen[bytes], path: Path, limit: int | None = None) -> threading.Thread:
    """Writes `path` (or its first `limit` bytes) to proc's stdin on a thread."""

    def run() -> None:
        sent = 0
        try:
            with open(path, "rb") as f:
                while limit is None or sent < limit:
                    chunk = f.read(1 << 20)
                    if not chunk:
                        break
                    proc.stdin.write(chunk)
                    sent += len(chunk)
            if limit is None:
                proc.stdin.close()
            else:
                proc.stdin.flush()
        except (BrokenPipeError, ValueError, OSError):
            pass

    t = threading.Thread(target=run, daemon=True)
    t.start()
    return t


def _consistent(dk, d: Daemon, tag: str, image_id: str) -> None:
    """No broken image: whatever `docker images` lists inspects, with its layers on disk."""
    ids = dk(d, "images", "-a", "-q", "--no-trunc").stdout.split()
    assert ids in ([], [image_id]), ids
    if ids:
        info = inspect(dk, d, tag)
        for layer in info["RootFS"]["Layers"]:
            assert (image_root(d.data_root) / "layers" / layer.split(":", 1)[1] / "diff").is_dir()


def test_kill_during_large_load_leaves_no_broken_image(berthd, dk, docker_env, workdir):
    d = berthd()
    store = image_root(d.data_root)
    before = store_snapshot(d.data_root)
    archive, image_id = write_big_save_archive(workdir, 100 * 1024 * 1024, "big:1")
    # Every phase runs even when an earlier one leaves something behind; all are reported.
    problems: list[str] = []

    def check_store(what: str) -> None:
        extra = leftovers(before, store_snapshot(d.data_root))
        if extra:
            problems.append(f"{what} left {describe(d.data_root, extra)}")

    def load_proc() -> subprocess.Popen[bytes]:
        return subprocess.Popen(
            [DOCKER_BIN, "-H", d.unix_host, "load"],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            env=docker_env(),
        )

    def crash_and_restart(proc: subprocess.Popen[bytes], feeder: threading.Thread) -> None:
        d.proc.kill()
        d.proc.wait(timeout=CMD_TIMEOUT)
        proc.kill()
        proc.wait(timeout=CMD_TIMEOUT)
        feeder.join(timeout=CMD_TIMEOUT)
        d.start()
        _consistent(dk, d, "big:1", image_id)

    # 1. Mid-upload: half the archive sent, the layer half-written in the daemon.
    proc = load_proc()
    feeder = _feed(proc, archive, limit=archive.stat().st_size // 2)

    def receiving() -> bool:
        # A plain layer unpacks as it streams in (`.incoming-*` under layers/); anything
        # else is first stored as a blob (blobs/tmp/).
        def big(files) -> bool:
            try:
                return sum(f.stat().st_size for f in files if f.is_file() and not f.is_symlink()) > (8 << 20)
            except OSError:  # moved into place or removed while we looked
                return False
        incoming = [p for p in (store / "layers").iterdir() if p.name.startswith(".incoming")] \
            if (store / "layers").is_dir() else []
        tmp = store / "blobs" / "tmp"
        return any(big(p.rglob("*")) for p in incoming) or (tmp.is_dir() and big(tmp.iterdir()))

    poll(receiving, 60, "berthd to be storing the big layer")
    crash_and_restart(proc, feeder)
    assert dk(d, "images", "-a", "-q").stdout == ""
    check_store("kill -9 mid-upload + restart")

    # 2. While unpacking: the whole archive sent, killed once the layer directory is being
    #    made (if the load wins the race, the image must be whole).
    proc = load_proc()
    feeder = _feed(proc, archive)
    layers = store / "layers"

    def unpacking_or_done() -> str:
        if any(p.name.startswith(".") for p in layers.iterdir()):
            return "unpacking"
        return "done" if proc.poll() is not None else ""

    state = poll(unpacking_or_done, 120, "berthd to unpack the big layer", interval=0.002)
    crash_and_restart(proc, feeder)
    if state == "unpacking" and not dk(d, "images", "-a", "-q").stdout:
        check_store("kill -9 while unpacking + restart")

    # 3. The same load now succeeds, and removing the image empties the store again.
    out = dk(d, "load", "-i", str(archive)).stdout
    assert out == "Loaded image: big:1\n", out
    assert inspect(dk, d, "big:1")["Id"] == image_id
    dk(d, "rmi", "big:1")
    check_store("load + rmi after the crashes")
    assert not problems, "\n".join(problems)


# ---------------------------------------------------------------------------------------
# the berth client


def test_berth_client_images_inspect_rmi_save_load(berthd, dk, rootfs, workdir):
    d = berthd()
    h = ("-H", d.unix_host)
    iid = berth(*h, "import", "-c", 'CMD ["sh"]', "-c", "LABEL a=b", "-m", "via berth", str(rootfs), "bb:1").stdout.strip()
    assert ID_RE.fullmatch(iid), iid
    assert inspect(dk, d, "bb:1")["Config"]["Labels"] == {"a": "b"}
    berth(*h, "tag", "bb:1", "bb:2")

    ours = table(berth(*h, "images").stdout)
    theirs = table(dk(d, "images").stdout)
    assert ours[0] == theirs[0] == ["REPOSITORY", "TAG", "IMAGE ID", "CREATED", "SIZE"]
    without_age = lambda rows: [r[:3] + r[4:] for r in rows[1:]]  # noqa: E731
    assert without_age(ours) == without_age(theirs) == [["bb", "1", iid[7:19], "1.98MB"], ["bb", "2", iid[7:19], "1.98MB"]]
    fmt = "{{.Repository}}:{{.Tag}} {{.ID}} {{.Size}}"
    assert berth(*h, "images", "--format", fmt).stdout == dk(d, "images", "--format", fmt).stdout
    assert berth(*h, "images", "-q").stdout == dk(d, "images", "-q").stdout
    assert berth(*h, "image", "inspect", "-f", "{{.Id}}", "bb:1").stdout == f"{iid}\n"
    assert json.loads(berth(*h, "image", "inspect", "bb:1").stdout) == json.loads(dk(d, "image", "inspect", "bb:1").stdout)
    rows = table(berth(*h, "history", "bb:1").stdout)
    assert rows[0] == ["IMAGE", "CREATED", "CREATED BY", "SIZE", "COMMENT"]
    assert rows[1][0] == iid[7:19] and rows[1][-1] == "via berth", rows

    archive = workdir / "berth.tar"
    berth(*h, "save", "-o", str(archive), "bb:1")
    assert [p.name for p in workdir.iterdir() if p.name.startswith(".berth_temp")] == []
    out = berth(*h, "rmi", "bb:1", "bb:2").stdout.splitlines()
    assert out[:2] == ["Untagged: bb:1", "Untagged: bb:2"] and f"Deleted: {iid}" in out, out
    assert berth(*h, "images", "-q").stdout == ""
    assert berth(*h, "load", "-i", str(archive)).stdout == "Loaded image: bb:1\n"
    assert berth(*h, "image", "inspect", "-f", "{{.Id}} {{.RepoTags}}", "bb:1").stdout == f"{iid} [bb:1]\n"

    proc = berth(*h, "rmi", "nosuch", check=False)
    assert proc.returncode == 1
    assert proc.stderr.strip() == "Error response from daemon: No such image: nosuch:latest"
    proc = berth(*h, "image", "inspect", "nosuch", check=False)
    assert (proc.returncode, proc.stdout) == (1, "[]\n")
    proc = berth(*h, "save", "-o", str(workdir / "no" / "dir.tar"), "bb:1", check=False)
    assert proc.returncode == 1 and proc.stderr.startswith("failed to save image: invalid output path"), proc.stderr


def test_berth_client_pipe_prune_and_pull_errors(berthd, rootfs):
    d1, d2 = berthd(), berthd()
    iid = berth("-H", d1.unix_host, "import", str(rootfs), "bb:1").stdout.strip()
    dangling = berth("-H", d1.unix_host, "import", "-c", 'CMD ["sh"]', str(rootfs)).stdout.strip()
    # berth save | berth load
    save = subprocess.Popen(
        [str(BERTH_BIN), "-H", d1.unix_host, "save", "bb:1"], stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=clean_env()
    )
    try:
        load = subprocess.run(
            [str(BERTH_BIN), "-H", d2.unix_host, "load"],
            stdin=save.stdout,
            capture_output=True,
            text=True,
            env=clean_env(),
            timeout=CMD_TIMEOUT,
        )
    finally:
        save.stdout.close()
        save.wait(timeout=CMD_TIMEOUT)
    assert save.returncode == 0 and load.returncode == 0, load.stderr
    assert load.stdout == "Loaded image: bb:1\n"
    assert berth("-H", d2.unix_host, "image", "inspect", "-f", "{{.Id}}", "bb:1").stdout.strip() == iid

    out = berth("-H", d1.unix_host, "image", "prune", "-f").stdout
    assert out.startswith("Deleted Images:\n") and f"deleted: {dangling}" in out, out
    assert berth("-H", d1.unix_host, "images", "-a", "-q", "--no-trunc").stdout.split() == [iid]

    # Pull and push either work or fail with the daemon's error, exit 1.
    for args in (("pull", "127.0.0.1:9/nothing/here:1"), ("push", "bb:1")):
        proc = berth("-H", d1.unix_host, *args, check=False)
        assert proc.returncode == 1, (args, proc.stdout, proc.stderr)
        assert proc.stderr.strip(), args

