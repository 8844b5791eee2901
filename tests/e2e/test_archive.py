"""The container filesystem through the real docker CLI and docker-py: docker cp both ways
(running and stopped containers, files and directories, the trailing `/.` rule), the
symlink escapes of CVE-2018-15664 / CVE-2019-14271 refused, docker diff, export, commit."""

from __future__ import annotations

import importlib
import base64
import io
import json
import subprocess
import tarfile

import pytest

from test_containers import daemon, dk  # noqa: F401  (the fixture and the CLI helper)


def test_cp_in_and_out_of_running_and_stopped(daemon, tmp_path):
    src = tmp_path / "src"
    (src / "sub").mkdir(parents=True)
    (src / "top.txt").write_text("top\n")
    (src / "sub" / "deep.txt").write_text("deep\n")
    dk(daemon, "run", "-d", "--name", "live", "-v", "cpvol:/vol", "busybox", "sleep", "100")
    dk(daemon, "create", "--name", "cold", "-v", "cpvol2:/vol", "busybox", "true")
    for ctr in ("live", "cold"):
        # A directory, a single file, and a file renamed on the way.
        dk(daemon, "cp", str(src), f"{ctr}:/tmp/")
        dk(daemon, "cp", str(src / "top.txt"), f"{ctr}:/root/renamed.txt")
        dk(daemon, "cp", str(src / "top.txt"), f"{ctr}:/vol/")
        out = tmp_path / f"out-{ctr}"
        out.mkdir()
        dk(daemon, "cp", f"{ctr}:/tmp/src", str(out))
        assert (out / "src" / "sub" / "deep.txt").read_text() == "deep\n"
        dk(daemon, "cp", f"{ctr}:/tmp/src/.", str(out / "contents"))
        assert sorted(p.name for p in (out / "contents").iterdir()) == ["sub", "top.txt"]
        dk(daemon, "cp", f"{ctr}:/root/renamed.txt", str(out / "single"))
        assert (out / "single").read_text() == "top\n"
        dk(daemon, "cp", f"{ctr}:/vol/top.txt", str(out / "from-volume"))
        assert (out / "from-volume").read_text() == "top\n"
        dk(daemon, "cp", f"{ctr}:/etc/passwd", str(out / "passwd"))
        assert (out / "passwd").read_text().startswith("root:")
    # What was copied into the running container is there for its processes.
    r = dk(daemon, "exec", "live", "cat", "/tmp/src/sub/deep.txt", "/root/renamed.txt", "/vol/top.txt")
    assert r.stdout == "deep\ntop\ntop\n"
    # The container was frozen only for the copies (moby's CVE-2018-15664 fix): it runs on,
    # and one the user paused stays paused.
    assert dk(daemon, "inspect", "-f", "{{.State.Running}} {{.State.Paused}}", "live").stdout == "true false\n"
    dk(daemon, "pause", "live")
    dk(daemon, "cp", "live:/vol/top.txt", str(tmp_path / "while-paused"))
    assert dk(daemon, "inspect", "-f", "{{.State.Paused}}", "live").stdout == "true\n"
    dk(daemon, "unpause", "live")
    assert "cannot thaw" not in daemon.log_text()
    # The stopped container sees its copies once started.
    dk(daemon, "commit", "cold", "cold:img")
    r = dk(daemon, "run", "--rm", "-v", "cpvol2:/vol", "cold:img", "cat", "/tmp/src/top.txt", "/vol/top.txt")
    assert r.stdout == "top\ntop\n"
    dk(daemon, "rm", "-f", "live", "cold")
    dk(daemon, "volume", "rm", "cpvol", "cpvol2")


def test_stat_header_and_errors(daemon, tmp_path):
    dk(daemon, "create", "--name", "st", "busybox", "true")
    resp = daemon.request("HEAD", "/containers/st/archive?path=/etc/passwd")
    assert resp.status == 200
    stat = json.loads(base64.b64decode(resp.header("X-Docker-Container-Path-Stat")))
    assert stat["name"] == "passwd" and stat["size"] > 0 and stat["linkTarget"] == ""
    assert stat["mode"] & 0o777 == 0o644 and not stat["mode"] & (1 << 31)
    resp = daemon.request("HEAD", "/containers/st/archive?path=/etc")
    stat = json.loads(base64.b64decode(resp.header("X-Docker-Container-Path-Stat")))
    assert stat["mode"] & (1 << 31), "directories carry Go's ModeDir"
    resp = daemon.request("GET", "/containers/st/archive?path=/nope")
    assert resp.status == 404 and resp.json()["message"] == "Could not find the file /nope in container st"
    # cp to a path in a missing directory: Docker's error, nothing made.
    f = tmp_path / "f"
    f.write_text("x")
    r = dk(daemon, "cp", str(f), "st:/missing/dir/f", check=False)
    assert r.returncode != 0 and "Could not find the file /missing/dir in container st" in r.stderr, r.stderr
    # A file where a directory is: refused (noOverwriteDirNonDir), the directory kept.
    d = tmp_path / "etc"
    d.write_text("not a dir")
    r = dk(daemon, "cp", str(d), "st:/", check=False)
    assert r.returncode != 0 and "cannot overwrite directory" in r.stderr, r.stderr
    assert dk(daemon, "cp", "st:/etc/passwd", "-").returncode == 0
    dk(daemon, "rm", "st")


@pytest.mark.parametrize("running", [True, False], ids=["running", "stopped"])
def test_symlink_escapes_stay_inside(daemon, tmp_path, running):
    """CVE-2018-15664 / CVE-2019-14271 shapes: symlinks planted in the container must
    resolve inside it, for reads and for writes."""
    host = tmp_path / "host"
    host.mkdir()
    (host / "secret").write_text("host secret\n")
    planted = (f"mkdir -p /inside{host} && echo container > /inside{host}/secret && "
               f"ln -s / /rootlink && ln -s ../../../../../../{host.relative_to('/')} /rel && "
               f"ln -s {host} /abs")
    if running:
        dk(daemon, "run", "-d", "--name", "evil", "busybox", "sh", "-c", planted + " && sleep 100")
        from conftest import poll
        poll(lambda: dk(daemon, "exec", "evil", "test", "-L", "/abs", check=False).returncode == 0
             or daemon.request("HEAD", "/containers/evil/archive?path=/abs").status == 200, 10, "symlinks planted")
    else:
        dk(daemon, "run", "--name", "evil", "busybox", "sh", "-c", planted)
    out = tmp_path / "out"
    out.mkdir()
    # Reads through /abs and /rel land in the container (where nothing exists at that path,
    # or the container's own copy), never on the host file.
    for link in ("/abs/secret", "/rel/secret"):
        r = dk(daemon, "cp", f"evil:{link}", str(out / "got"), check=False)
        if r.returncode == 0:
            assert (out / "got").read_text() != "host secret\n"
            (out / "got").unlink()
    r = dk(daemon, "cp", f"evil:/rootlink{host}/secret", str(out / "got"), check=False)
    assert r.returncode != 0 or (out / "got").read_text() != "host secret\n"
    # Writes through the links land inside the container.
    payload = tmp_path / "payload"
    payload.write_text("pwned\n")
    for dest in ("/abs/", "/rel/", f"/rootlink{host}/"):
        dk(daemon, "cp", str(payload), f"evil:{dest}", check=False)
    assert sorted(p.name for p in host.iterdir()) == ["secret"], "something was written on the host"
    assert (host / "secret").read_text() == "host secret\n"
    # The stat names link targets as container paths, relative ones resolved.
    for link in ("/abs", "/rel"):
        resp = daemon.request("HEAD", f"/containers/evil/archive?path={link}")
        assert json.loads(base64.b64decode(resp.header("X-Docker-Container-Path-Stat")))["linkTarget"] == str(host)
    # The links themselves come out as links.
    dk(daemon, "cp", "evil:/abs", str(out / "abs"))
    assert (out / "abs").is_symlink() and str((out / "abs").readlink()) == str(host)
    dk(daemon, "rm", "-f", "evil")


def test_diff_commit_and_export(daemon):
    dk(daemon, "run", "--name", "chg", "busybox", "sh", "-c",
       "echo new > /newfile; echo extra >> /etc/passwd; rm /etc/group; mkdir -p /home/d/e")
    diff = dk(daemon, "diff", "chg").stdout.splitlines()
    for line in ("A /newfile", "C /etc", "C /etc/passwd", "D /etc/group", "C /home", "A /home/d", "A /home/d/e"):
        assert line in diff, diff
    changes = daemon.get_json("/containers/chg/changes")
    kinds = {c["Path"]: c["Kind"] for c in changes}
    assert kinds["/newfile"] == 1 and kinds["/etc/passwd"] == 0 and kinds["/etc/group"] == 2
    rw, rootfs = map(int, dk(daemon, "inspect", "--size", "-f", "{{.SizeRw}} {{.SizeRootFs}}", "chg").stdout.split())
    assert rw >= len("new\n") and rootfs > rw
    assert "B" in dk(daemon, "ps", "-a", "-s", "--format", "{{.Size}}").stdout
    # commit with --change and a message, then run the new image.
    dk(daemon, "commit", "-c", 'CMD ["cat", "/newfile"]', "-m", "my change", "-a", "me", "chg", "committed:v1")
    assert dk(daemon, "run", "--rm", "committed:v1").stdout == "new\n"
    r = dk(daemon, "run", "--rm", "committed:v1", "sh", "-c", "ls /etc; tail -1 /etc/passwd")
    assert "group" not in r.stdout.split() and r.stdout.endswith("extra\n")
    info = json.loads(dk(daemon, "image", "inspect", "committed:v1").stdout)[0]
    assert info["Comment"] == "my change" and info["Author"] == "me"
    assert info["Config"]["Cmd"] == ["cat", "/newfile"]
    hist = dk(daemon, "history", "--no-trunc", "--format", "{{.Comment}}", "committed:v1")
    assert "my change" in hist.stdout
    # export: the merged view as a tar.
    data = subprocess.run(["docker", "export", "chg"], env=daemon.docker_env, capture_output=True, check=True,
                          timeout=60).stdout
    with tarfile.open(fileobj=io.BytesIO(data)) as t:
        names = {n.rstrip("/") for n in t.getnames()}
        assert {"newfile", "etc/passwd", "home/d/e", "bin/busybox"} <= names
        assert "etc/group" not in names
        assert t.extractfile("newfile").read() == b"new\n"
    # The tar matches the merged view as a container of the committed image sees it.
    seen = dk(daemon, "run", "--rm", "committed:v1", "find", "/etc", "/home", "/bin", "/var", "/newfile").stdout
    exported = {"/" + n for n in names if n.split("/")[0] in ("etc", "home", "bin", "var", "newfile")}
    assert exported == set(seen.split()), exported ^ set(seen.split())
    assert daemon.request("GET", "/containers/ghost/export").status == 404
    dk(daemon, "rm", "chg")
    dk(daemon, "rmi", "committed:v1")


def test_docker_py_archive(daemon):
    docker = importlib.import_module("docker")  # docker-py: .ci/run installs it
    client = docker.DockerClient(base_url=daemon.unix_host, version="auto")
    try:
        c = client.containers.create("busybox", "true", name="pyarch")
        buf = io.BytesIO()
        with tarfile.open(fileobj=buf, mode="w") as t:
            info = tarfile.TarInfo("hello.txt")
            info.size, info.uid, info.gid = 3, 1234, 4321
            t.addfile(info, io.BytesIO(b"hi\n"))
        assert c.put_archive("/root", buf.getvalue())
        stream, stat = c.get_archive("/root/hello.txt")
        assert stat["name"] == "hello.txt" and stat["size"] == 3
        with tarfile.open(fileobj=io.BytesIO(b"".join(stream))) as t:
            m = t.getmember("hello.txt")
            assert t.extractfile(m).read() == b"hi\n"
            assert (m.uid, m.gid) == (0, 0), "without copyUIDGID files belong to root"
        with pytest.raises(docker.errors.NotFound):
            c.get_archive("/no/such")
        with pytest.raises(docker.errors.APIError, match="extraction point is not a directory"):
            c.put_archive("/etc/passwd", buf.getvalue())
        # copyUIDGID keeps the archive's owners.
        resp = daemon.request("PUT", f"/containers/{c.id}/archive?path=/tmp&copyUIDGID=1",
                              headers={"Content-Type": "application/x-tar"}, body=buf.getvalue())
        assert resp.status == 200, resp.text
        stream, _ = c.get_archive("/tmp/hello.txt")
        with tarfile.open(fileobj=io.BytesIO(b"".join(stream))) as t:
            assert (t.getmember("hello.txt").uid, t.getmember("hello.txt").gid) == (1234, 4321)
        assert c.diff() == [{"Path": "/root", "Kind": 0}, {"Path": "/root/hello.txt", "Kind": 1},
                            {"Path": "/tmp", "Kind": 0}, {"Path": "/tmp/hello.txt", "Kind": 1}]
        img = c.commit(repository="pyimg", tag="1", changes=["ENV A=b"])
        assert "A=b" in img.attrs["Config"]["Env"]
        client.images.remove("pyimg:1")
        c.remove()
    finally:
        client.close()



def test_commit_running_container(daemon):
    dk(daemon, "run", "-d", "--name", "busy", "busybox", "sh", "-c", "echo live > /state; sleep 100")
    from conftest import poll
    poll(lambda: "A /state" in dk(daemon, "diff", "busy").stdout, 10, "the file written")
    dk(daemon, "commit", "busy", "busy:snap")
    assert dk(daemon, "inspect", "-f", "{{.State.Running}} {{.State.Paused}}", "busy").stdout == "true false\n"
    assert dk(daemon, "run", "--rm", "--entrypoint", "cat", "busy:snap", "/state").stdout == "live\n"
    dk(daemon, "rm", "-f", "busy")
    dk(daemon, "rmi", "busy:snap")


def test_stale_view_of_a_dead_daemon_is_reaped(daemon):
    """A daemon killed mid-copy leaves a mounted `view-*` of a stopped container's root; the
    next copy from that container unmounts and removes it."""
    cid = dk(daemon, "create", "busybox", "true").stdout.strip()
    stale = daemon.data_root / "containers" / cid / "view-stale"
    (stale / "merged").mkdir(parents=True)
    subprocess.run(["mount", "-t", "tmpfs", "tmpfs", str(stale / "merged")], check=True)
    try:
        assert dk(daemon, "cp", f"{cid}:/etc/passwd", "-").returncode == 0
        assert not stale.exists()
        mounts = [l.split(" ")[4] for l in open("/proc/self/mountinfo").read().splitlines()]
        assert str(stale / "merged") not in mounts
    finally:
        subprocess.run(["umount", "-l", str(stale / "merged")], capture_output=True)
    dk(daemon, "rm", cid)
