"""Image mounts (`--mount type=image`, Docker 28 / API 1.48, and what the CRI's image
volumes become): another image's filesystem, read-only, at a path in the container, or
one path of it (`image-subpath`), through the real docker CLI, docker-py and the raw API.
A subpath that leads out of the image through a symlink is refused; an image a container
mounts cannot be removed; nothing stays mounted on the host, while it runs, across a
daemon restart, or after `rm`."""

from __future__ import annotations

import io
import json
import subprocess
import tarfile
from pathlib import Path

import docker
import pytest

from conftest import DOCKER_BIN, REPO_ROOT, import_busybox, leak_check, poll
from test_containers import daemon, dk  # noqa: F401  (the fixture and the CLI helper)
from test_cri import Crictl, crictl_bin, write_json  # noqa: F401  (the fixture)

IMAGE = "imgdata:1"


def import_data_image(d, tag: str = IMAGE) -> str:
    """busybox plus /data/hello, and symlinks: `in-link` → data (stays inside), `abs-link`
    → /etc and `rel-link` → ../../../../etc (lead out of the image). Returns its ID."""
    base = subprocess.run([str(REPO_ROOT / "scripts" / "busybox-rootfs")], check=True,
                          capture_output=True).stdout
    out = io.BytesIO()
    with tarfile.open(fileobj=io.BytesIO(base)) as src, tarfile.open(fileobj=out, mode="w") as dst:
        for m in src.getmembers():
            dst.addfile(m, src.extractfile(m) if m.isfile() else None)
        di = tarfile.TarInfo("./data")
        di.type, di.mode = tarfile.DIRTYPE, 0o755
        dst.addfile(di)
        fi = tarfile.TarInfo("./data/hello")
        fi.size, fi.mode = 6, 0o644
        dst.addfile(fi, io.BytesIO(b"hello\n"))
        for name, target in [("in-link", "data"), ("abs-link", "/etc"), ("rel-link", "../../../../etc")]:
            li = tarfile.TarInfo(f"./{name}")
            li.type, li.linkname = tarfile.SYMTYPE, target
            dst.addfile(li)
    subprocess.run([DOCKER_BIN, "import", "-c", 'CMD ["sh"]', "-", tag], input=out.getvalue(),
                   env=d.docker_env, check=True, capture_output=True, timeout=60)
    return dk(d, "image", "inspect", "-f", "{{.Id}}", tag).stdout.strip()


def create(d, mount: dict, cmd=("sleep", "1000"), name: str | None = None):
    url = "/v1.50/containers/create" + (f"?name={name}" if name else "")
    return d.request("POST", url, body=json.dumps({
        "Image": "busybox", "Cmd": list(cmd),
        "HostConfig": {"Mounts": [{"Target": "/img", **mount}]},
    }).encode(), headers={"Content-Type": "application/json"})


def host_mounts_under(*roots: Path) -> list[str]:
    points = [l.split(" ")[4] for l in Path("/proc/self/mountinfo").read_text().splitlines()]
    return [p for p in points if p.startswith(tuple(str(r) for r in roots))]


def container_mount(pid: int, target: str) -> list[str]:
    """The fields of `target`'s line in the container's own mountinfo (empty if none)."""
    for line in Path(f"/proc/{pid}/mountinfo").read_text().splitlines():
        fields = line.split(" ")
        if fields[4] == target:
            return fields
    return []


def test_cli_mounts_an_image_read_only(daemon):
    image_id = import_data_image(daemon)
    r = dk(daemon, "run", "--rm", "--mount", f"type=image,source={IMAGE},target=/img", "busybox",
           "sh", "-c", "cat /img/data/hello; ls -A /img/bin/sh; /img/bin/busybox echo exec-ok; "
                       "touch /img/x 2>&1; echo rc=$?", check=False)
    assert r.returncode == 0, r.stderr
    assert r.stdout.splitlines()[:3] == ["hello", "/img/bin/sh", "exec-ok"], r.stdout
    assert "Read-only file system" in r.stdout and r.stdout.endswith("rc=1\n"), r.stdout
    # inspect: the image as named and its ID, read-only, as dockerd shows it.
    dk(daemon, "create", "--name", "mounter", "--mount", f"type=image,source={IMAGE},target=/img", "busybox")
    mounts = json.loads(dk(daemon, "inspect", "-f", "{{json .Mounts}}", "mounter").stdout)
    assert mounts == [{"Type": "image", "Name": IMAGE, "Source": image_id, "Destination": "/img",
                       "Mode": "", "RW": False, "Propagation": "rprivate"}]
    hc = json.loads(dk(daemon, "inspect", "-f", "{{json .HostConfig.Mounts}}", "mounter").stdout)
    assert hc[0]["Type"] == "image" and hc[0]["Source"] == IMAGE


def test_cli_subpath_and_layers(daemon):
    import_data_image(daemon)
    r = dk(daemon, "run", "--rm", "--mount", f"type=image,source={IMAGE},target=/img,image-subpath=data",
           "busybox", "ls", "/img")
    assert r.stdout.split() == ["hello"]
    # A symlink that stays inside the image is followed.
    r = dk(daemon, "run", "--rm", "--mount", f"type=image,source={IMAGE},target=/img,image-subpath=in-link",
           "busybox", "cat", "/img/hello")
    assert r.stdout == "hello\n"
    # A file as the subpath.
    r = dk(daemon, "run", "--rm", "--mount",
           f"type=image,source={IMAGE},target=/hello.txt,image-subpath=data/hello", "busybox", "cat", "/hello.txt")
    assert r.stdout == "hello\n"
    # An image of several layers reads as their overlay: a file removed in an upper layer
    # (a whiteout) is gone, one added is there.
    ctx = Path(daemon.root) / "ctx"
    ctx.mkdir()
    (ctx / "Dockerfile").write_text(f"FROM {IMAGE}\nRUN rm /data/hello && echo two > /data/two\n"
                                    "RUN echo three > /data/three\n")
    dk(daemon, "build", "-q", "-t", "layered", str(ctx), timeout=120)
    r = dk(daemon, "run", "--rm", "--mount", "type=image,source=layered,target=/img,image-subpath=data",
           "busybox", "ls", "/img")
    assert r.stdout.split() == ["three", "two"]


def test_bad_mounts_are_refused_and_leave_nothing(daemon):
    import_data_image(daemon)
    cases = [
        ({"Type": "image", "Source": "nope"}, 404, "No such image: nope:latest"),
        ({"Type": "image"}, 400, 'invalid mount config for type "image": field Source must not be empty'),
        ({"Type": "image", "Source": IMAGE, "ImageOptions": {"Subpath": "../etc"}}, 400,
         "subpath must be a relative path within the volume"),
        ({"Type": "image", "Source": IMAGE, "ImageOptions": {"Subpath": "/etc"}}, 400,
         "subpath must be a relative path within the volume"),
        ({"Type": "image", "Source": IMAGE, "ImageOptions": {"Subpath": "abs-link"}}, 400,
         "escapes the base directory"),
        ({"Type": "image", "Source": IMAGE, "ImageOptions": {"Subpath": "rel-link"}}, 400,
         "escapes the base directory"),
        ({"Type": "image", "Source": IMAGE, "ImageOptions": {"Subpath": "data/../rel-link/passwd"}}, 400,
         "escapes the base directory"),
        ({"Type": "image", "Source": IMAGE, "ImageOptions": {"Subpath": "not-there"}}, 400,
         "cannot access path not-there in image"),
        ({"Type": "bind", "Source": "/tmp", "ImageOptions": {"Subpath": "x"}}, 400,
         "field ImageOptions must not be specified"),
    ]
    for mount, status, words in cases:
        r = create(daemon, mount)
        assert r.status == status and words in r.json()["message"], (mount, r.status, r.text)
    # moby's gate: image mounts came with API 1.48.
    r = daemon.request("POST", "/v1.47/containers/create", body=json.dumps({
        "Image": "busybox", "HostConfig": {"Mounts": [{"Type": "image", "Source": IMAGE, "Target": "/img"}]},
    }).encode(), headers={"Content-Type": "application/json"})
    assert r.status == 400 and r.json()["message"] == 'Mount type "Image" needs API v1.48 or newer', r.text
    assert dk(daemon, "ps", "-aq").stdout.split() == []
    assert host_mounts_under(daemon.exec_root, daemon.data_root) == []
    # The CLI shows the refusal too.
    r = dk(daemon, "run", "--rm", "--mount", f"type=image,source={IMAGE},target=/img,image-subpath=abs-link",
           "busybox", "true", check=False)
    assert r.returncode != 0 and "escapes the base directory" in r.stderr, r.stderr


def test_image_in_use_cannot_be_removed(daemon):
    image_id = import_data_image(daemon)
    r = create(daemon, {"Type": "image", "Source": IMAGE}, name="user")
    assert r.status == 201, r.text
    # Stopped: the last name needs force, as for a container's own image.
    r = daemon.request("DELETE", f"/v1.50/images/{IMAGE}")
    assert r.status == 409 and "is using its referenced image" in r.json()["message"], r.text
    r = daemon.request("DELETE", f"/v1.50/images/{image_id}")
    assert r.status == 409 and "image is being used by stopped container" in r.json()["message"], r.text
    dk(daemon, "start", "user")
    r = daemon.request("DELETE", f"/v1.50/images/{image_id}?force=1")
    assert r.status == 409 and "image is being used by running container" in r.json()["message"], r.text
    r = dk(daemon, "rmi", image_id, check=False)
    assert r.returncode != 0 and "conflict" in r.stderr, r.stderr
    dk(daemon, "rm", "-f", "user")
    dk(daemon, "rmi", IMAGE)


def test_nothing_stays_mounted_across_restart_and_rm(daemon):
    image_id = import_data_image(daemon)
    dk(daemon, "run", "-d", "--name", "keep", "--mount", f"type=image,source={IMAGE},target=/img", "busybox",
       "sleep", "1000")
    pid = int(dk(daemon, "inspect", "-f", "{{.State.Pid}}", "keep").stdout)
    fields = container_mount(pid, "/img")
    assert fields and "ro" in fields[5].split(","), fields
    assert fields[fields.index("-") + 1] == "overlay", fields
    # The staging mounts went once the container had its own: none on the host.
    assert host_mounts_under(daemon.exec_root / "binds") == []
    daemon.restart()
    assert dk(daemon, "exec", "keep", "cat", "/img/data/hello").stdout == "hello\n"
    # The record keeps which images it mounts.
    r = daemon.request("DELETE", f"/v1.50/images/{image_id}?force=1")
    assert r.status == 409 and "being used by running container" in r.json()["message"], r.text
    # Restarted (a new start stages again), then removed.
    dk(daemon, "restart", "-t", "0", "keep")
    assert dk(daemon, "exec", "keep", "cat", "/img/data/hello").stdout == "hello\n"
    assert host_mounts_under(daemon.exec_root / "binds") == []
    dk(daemon, "rm", "-f", "keep")
    poll(lambda: host_mounts_under(daemon.exec_root, daemon.data_root) == [], 10, "no mounts left")
    assert not (daemon.exec_root / "binds").exists() or list((daemon.exec_root / "binds").iterdir()) == []


def test_docker_py(daemon):
    import_data_image(daemon)
    client = docker.DockerClient(base_url=daemon.unix_host, version="1.50")
    try:
        # docker-py 7's Mount type refuses "image"; the API takes the plain dict.
        hc = client.api.create_host_config(mounts=[{"Type": "image", "Source": IMAGE, "Target": "/img",
                                                     "ImageOptions": {"Subpath": "data"}}])
        c = client.api.create_container("busybox", ["cat", "/img/hello"], host_config=hc)
        client.api.start(c)
        assert client.api.wait(c)["StatusCode"] == 0
        assert client.api.logs(c) == b"hello\n"
        assert client.api.inspect_container(c)["Mounts"][0]["Type"] == "image"
        client.api.remove_container(c)
        with pytest.raises(docker.errors.ImageNotFound):
            client.api.create_container("busybox", ["true"], host_config=client.api.create_host_config(
                mounts=[{"Type": "image", "Source": "nope:1", "Target": "/img"}]))
    finally:
        client.close()


def test_rm_clears_what_a_killed_daemon_left_staged(daemon):
    """A daemon killed between staging and clearing leaves the staging mounts; the
    container's removal clears them (its next start would, but it has none)."""
    import_data_image(daemon)
    cid = dk(daemon, "create", "--mount", f"type=image,source={IMAGE},target=/img", "busybox").stdout.strip()
    left = daemon.exec_root / "binds" / cid[:24] / "1-0" / "img-0"
    left.mkdir(parents=True)
    subprocess.run(["mount", "-t", "tmpfs", "-o", "size=64k", "leftover", str(left)], check=True)
    try:
        assert host_mounts_under(daemon.exec_root / "binds") == [str(left)]
        dk(daemon, "rm", cid)
        assert host_mounts_under(daemon.exec_root / "binds") == []
        assert not (daemon.exec_root / "binds" / cid[:24]).exists()
    finally:
        subprocess.run(["umount", "-l", str(left)], capture_output=True)


def test_cri_image_volume(berthd, docker_env, workdir, crictl_bin):
    """An image volume through crictl: mounted read-only with its subpath, its image and
    ID in the status; RemoveImage refuses the image while a container mounts it, and
    keeps its name."""
    sock, no_cni = workdir / "cri" / "cri.sock", workdir / "no-cni"
    no_cni.mkdir()
    d = berthd(config={"cri": {"enabled": True, "socket": str(sock), "cni-conf-dir": str(no_cni)}})
    d.docker_env = docker_env({"DOCKER_HOST": d.unix_host})
    poll(lambda: sock.is_socket(), 30, "the CRI socket")
    crictl = Crictl(crictl_bin, sock, workdir)
    try:
        import_busybox(d.docker_env)
        image_id = import_data_image(d)
        pod = write_json(workdir / "pod.json", {"metadata": {"name": "p", "namespace": "n", "uid": "u"}})
        pod_id = crictl("runp", str(pod)).stdout.strip()
        volume = {"container_path": "/mnt/vol", "readonly": True, "image": {"image": image_id},
                  "image_sub_path": "data"}
        config = {"metadata": {"name": "c"}, "image": {"image": "busybox:latest"},
                  "command": ["sleep", "600"], "mounts": [volume]}
        writable = write_json(workdir / "rw.json", {**config, "mounts": [{**volume, "readonly": False}]})
        r = crictl("create", pod_id, str(writable), str(pod), check=False)
        assert r.returncode != 0 and "must be read-only" in r.stderr, r.stderr
        cid = crictl("create", pod_id, str(write_json(workdir / "c.json", config)), str(pod)).stdout.strip()
        crictl("start", cid)
        assert crictl("exec", "-s", cid, "cat", "/mnt/vol/hello").stdout.strip() == "hello"
        r = crictl("exec", "-s", cid, "touch", "/mnt/vol/x", check=False)
        assert r.returncode != 0, r.stdout
        mounts = crictl.json("inspect", cid)["status"]["mounts"]
        assert mounts[0]["containerPath"] == "/mnt/vol" and mounts[0]["readonly"], mounts
        assert mounts[0]["image"]["imageRef"] == image_id, mounts
        # With two names: neither goes (the check comes before any untag).
        dk(d, "tag", IMAGE, "imgdata:2")
        r = crictl("rmi", image_id, check=False)
        assert r.returncode != 0 and "in use by container" in r.stderr, r.stderr
        tags = json.loads(dk(d, "image", "inspect", "-f", "{{json .RepoTags}}", image_id).stdout)
        assert sorted(tags) == ["imgdata:1", "imgdata:2"], tags
        crictl("stopp", pod_id)
        crictl("rmp", pod_id)
        crictl("rmi", image_id)
    finally:
        leak_check(d)
