"""The container filesystem through the real docker CLI and docker-py: docker cp both ways
(running and stopped containers, files and directories, the trailing `/.` rule), the
symlink escapes of CVE-2018-15664 / CVE-2019-14271 refused, docker diff, export, commit."""

from __future__ import annotations

import importlib
import base64
import io
import json
import os
import signal
import socket
import subprocess
import tarfile

import pytest

from conftest import DOCKER_BIN, poll
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


# ---------------------------------------------------------------------------------------
# helpers for streamed bodies: nothing here holds a whole archive in memory


def _tar_of_one_file(name: str, size: int, chunk: int = 1 << 20):
    """The bytes of a tar holding `name` with `size` zero bytes, as a generator of chunks."""
    info = tarfile.TarInfo(name)
    info.size, info.mode = size, 0o644
    yield info.tobuf(format=tarfile.GNU_FORMAT)
    zeros = bytes(chunk)
    left = size
    while left:
        n = min(left, chunk)
        yield zeros[:n]
        left -= n
    yield bytes((512 - size % 512) % 512) + bytes(1024)


def _http_status(s: socket.socket) -> tuple[int, bytes]:
    head = b""
    while b"\r\n\r\n" not in head:
        got = s.recv(65536)
        assert got, "connection closed before the answer"
        head += got
    return int(head.split(b" ", 2)[1]), head.split(b"\r\n\r\n", 1)[1]


def _put_chunked(sock_path, url: str, chunks) -> tuple[int, bytes]:
    """PUT with a chunked body sent as the generator yields it; (status, rest read)."""
    with socket.socket(socket.AF_UNIX) as s:
        s.settimeout(120)
        s.connect(str(sock_path))
        s.sendall((f"PUT {url} HTTP/1.1\r\nHost: e2e\r\nContent-Type: application/x-tar\r\n"
                   "Transfer-Encoding: chunked\r\nConnection: close\r\n\r\n").encode())
        for c in chunks:
            s.sendall(b"%x\r\n" % len(c) + c + b"\r\n")
        s.sendall(b"0\r\n\r\n")
        status, rest = _http_status(s)
        while True:
            got = s.recv(65536)
            if not got:
                return status, rest
            rest += got


def _get_counted(sock_path, url: str) -> tuple[int, int]:
    """GET, counting the body's bytes without keeping them (chunk framing included,
    which only adds a little); (status, bytes)."""
    with socket.socket(socket.AF_UNIX) as s:
        s.settimeout(120)
        s.connect(str(sock_path))
        s.sendall(f"GET {url} HTTP/1.1\r\nHost: e2e\r\nConnection: close\r\n\r\n".encode())
        status, rest = _http_status(s)
        n = len(rest)
        while True:
            got = s.recv(1 << 20)
            if not got:
                return status, n
            n += len(got)


def _peak_rss_mib(pid: int) -> float:
    for line in open(f"/proc/{pid}/status"):
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    raise AssertionError("no VmHWM")


def test_archives_stream_without_buffering(daemon, tmp_path):
    """PUT archive extracts while the body arrives, GET archive and export send while
    they read, and `berth cp` streams both ways: a 256 MB copy never makes berthd (or
    berth) hold it in memory."""
    size = 256 << 20
    dk(daemon, "run", "-d", "--name", "big", "busybox", "sleep", "1000")
    base = _peak_rss_mib(daemon.pid)
    status, body = _put_chunked(daemon.sock, "/containers/big/archive?path=/tmp&noOverwriteDirNonDir=true",
                                _tar_of_one_file("big.bin", size))
    assert status == 200, body
    assert dk(daemon, "exec", "big", "stat", "-c", "%s", "/tmp/big.bin").stdout == f"{size}\n"
    status, n = _get_counted(daemon.sock, "/containers/big/archive?path=/tmp/big.bin")
    assert status == 200 and n > size
    dk(daemon, "stop", "-t", "0", "big")
    status, n = _get_counted(daemon.sock, "/containers/big/export")
    assert status == 200 and n > size
    status, n = _get_counted(daemon.sock, "/containers/big/archive?path=/tmp/big.bin")  # through a view
    assert status == 200 and n > size
    grown = _peak_rss_mib(daemon.pid) - base
    assert grown < 96, f"berthd's peak RSS grew by {grown:.0f} MiB while moving {size >> 20} MiB archives"
    # The berth CLI: a tar built while it is sent, extracted while it arrives.
    from conftest import BERTH_BIN
    local = tmp_path / "local.bin"
    with open(local, "wb") as f:
        f.truncate(size)  # sparse here, but read (and sent) as 256 MB of zeros
    for args in (["cp", str(local), "big:/root/"], ["cp", "big:/root/local.bin", str(tmp_path / "back.bin")]):
        p = subprocess.Popen([str(BERTH_BIN), "-H", daemon.unix_host, *args], stdout=subprocess.PIPE,
                             stderr=subprocess.PIPE)
        _, status, usage = os.wait4(p.pid, 0)
        p.returncode = os.waitstatus_to_exitcode(status)
        assert p.returncode == 0, p.stderr.read()
        assert usage.ru_maxrss < 96 * 1024, f"berth {args[0]} peaked at {usage.ru_maxrss >> 10} MiB"
    assert (tmp_path / "back.bin").stat().st_size == size
    dk(daemon, "rm", "big")


def test_cp_into_read_only_rootfs_gets_dockers_error(daemon, tmp_path):
    """moby `checkWritablePath`: outside every mount of a `--read-only` container a copy is
    refused, into a read-only mount too; a writable volume takes it. `--tmpfs` mounts are
    no mount points to dockerd there, so they count as the rootfs. Checked against dockerd
    20.10 (which answers 500; current moby 400, as here)."""
    f = tmp_path / "f"
    f.write_text("x\n")
    big = tmp_path / "bigdir"  # refused while the CLI still sends: the answer still arrives
    big.mkdir()
    for i in range(16):
        (big / f"b{i}").write_bytes(os.urandom(1 << 20))
    host = tmp_path / "host"
    host.mkdir()
    dk(daemon, "create", "--name", "rofs", "--read-only", "-v", "rovol:/v", "-v", f"{host}:/h:ro",
       "--tmpfs", "/run", "busybox", "sleep", "100")
    for state in ("stopped", "running"):
        if state == "running":
            dk(daemon, "start", "rofs")
        dests = ["/tmp/", "/", "/etc"] + (["/run/"] if state == "running" else [])
        for src, dest in [(f, d) for d in dests] + [(big, "/tmp/")]:
            r = dk(daemon, "cp", str(src), f"rofs:{dest}", check=False)
            assert r.returncode != 0, (state, dest)
            assert "Error response from daemon: container rootfs is marked read-only" in r.stderr, (state, dest, r.stderr)
        r = dk(daemon, "cp", str(f), "rofs:/h/", check=False)
        assert r.returncode != 0 and "Error response from daemon: mounted volume is marked read-only" in r.stderr
        dk(daemon, "cp", str(f), f"rofs:/v/{state}")
    assert list(host.iterdir()) == [], "written through a read-only bind"
    assert dk(daemon, "exec", "rofs", "cat", "/v/stopped", "/v/running").stdout == "x\nx\n"
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w") as t:
        t.addfile(tarfile.TarInfo("empty"), io.BytesIO(b""))
    resp = daemon.request("PUT", "/containers/rofs/archive?path=/tmp", headers={"Content-Type": "application/x-tar"},
                          body=buf.getvalue())
    assert resp.status == 400 and resp.json()["message"] == "container rootfs is marked read-only"
    changed = [line.split()[1] for line in dk(daemon, "diff", "rofs").stdout.splitlines()]
    assert not [p for p in changed if p.startswith(("/tmp", "/etc", "/f", "/bigdir"))], changed
    dk(daemon, "rm", "-f", "rofs")
    dk(daemon, "volume", "rm", "rovol")


def test_cp_tmpfs_paths_of_stopped_container(daemon, tmp_path):
    """As dockerd 20.10: a stopped container's tmpfs mounts (`--tmpfs`, `--mount
    type=tmpfs`) are not there for the archive API; their paths are the rootfs' own (the
    mount points the runtime made, once the container ran), and what is copied there
    stays hidden under the tmpfs when it runs again."""
    f = tmp_path / "f"
    f.write_text("copied\n")
    dk(daemon, "create", "--name", "tmpc", "--tmpfs", "/run/t", "--mount", "type=tmpfs,dst=/mt", "busybox",
       "sh", "-c", "echo gone > /run/t/a; ls -A /run/t /mt")
    for path in ("/run/t", "/mt"):
        resp = daemon.request("HEAD", f"/containers/tmpc/archive?path={path}")
        assert resp.status == 404
        resp = daemon.request("GET", f"/containers/tmpc/archive?path={path}")
        assert resp.status == 404 and resp.json()["message"] == f"Could not find the file {path} in container tmpc"
        assert dk(daemon, "cp", str(f), f"tmpc:{path}/", check=False).returncode != 0
    # After a run the mount points exist, empty: what the tmpfs held is gone.
    assert dk(daemon, "start", "-a", "tmpc").stdout == "/mt:\n\n/run/t:\na\n"
    for path, name in (("/run/t", "t"), ("/mt", "mt")):
        with tarfile.open(fileobj=io.BytesIO(dk_bytes(daemon, "cp", f"tmpc:{path}", "-"))) as t:
            assert [m.name.rstrip("/") for m in t.getmembers()] == [name]
        dk(daemon, "cp", str(f), f"tmpc:{path}/")
        with tarfile.open(fileobj=io.BytesIO(dk_bytes(daemon, "cp", f"tmpc:{path}/f", "-"))) as t:
            assert t.extractfile("f").read() == b"copied\n"
    # Running, the tmpfs hides the copies again.
    assert dk(daemon, "start", "-a", "tmpc").stdout == "/mt:\n\n/run/t:\na\n"
    dk(daemon, "rm", "tmpc")


def dk_bytes(d, *args) -> bytes:
    return subprocess.run([DOCKER_BIN, *args], env=d.docker_env, capture_output=True, timeout=60,
                          check=True).stdout


LINKS = ("mkdir /target && echo data > /target/data.txt && ln -s /target/data.txt /link && "
         "ln -s target/data.txt /rel && ln -s /target /dlink && ln -s /target /dlink2")
# What docker 28.2's CLI makes against dockerd 20.10 for each (args, destination).
FOLLOWED = {
    ("lk:/link", "o1/"): ("o1/link", "l"),
    ("-L lk:/link", "o2/"): ("o2/link", "f"),
    ("-L lk:/rel", "o2/"): ("o2/rel", "f"),
    ("-L lk:/link", "o2/new"): ("o2/new", "f"),
    ("-L lk:/dlink", "o2/"): ("o2/dlink/data.txt", "f"),
    ("-L lk:/dlink2/.", "o2/dd"): ("o2/dd/data.txt", "f"),
    ("-L lk:/dlink2/", "o2/de"): ("o2/de/data.txt", "f"),
    ("lk:/dlink/", "o2/df"): ("o2/df/data.txt", "f"),
}


@pytest.mark.parametrize("client", ["docker", "berth"])
def test_cp_follow_link(daemon, tmp_path, client):
    """`cp -L` copies what a symlink in the source points to, under the link's name, both
    ways; without it the link itself is copied (docker/cli `cp.go`, `GetRebaseName`)."""
    from conftest import BERTH_BIN
    cli = [DOCKER_BIN] if client == "docker" else [str(BERTH_BIN), "-H", daemon.unix_host]

    def cp(*args):
        r = subprocess.run([*cli, "cp", *args], env=daemon.docker_env, capture_output=True, text=True,
                           timeout=60, cwd=tmp_path)
        assert r.returncode == 0, (args, r.stderr)

    dk(daemon, "run", "--name", "lk", "busybox", "sh", "-c", LINKS)
    (tmp_path / "o1").mkdir()
    (tmp_path / "o2").mkdir()
    for (src, dst), (made, kind) in FOLLOWED.items():
        cp(*src.split(), dst)
        p = tmp_path / made
        assert (p.is_symlink() if kind == "l" else p.is_file() and not p.is_symlink()), (src, dst)
        if kind == "f":
            assert p.read_text() == "data\n"
    assert str((tmp_path / "o1/link").readlink()) == "/target/data.txt"
    # Local links into the container.
    (tmp_path / "lfile").write_text("hi\n")
    (tmp_path / "llink").symlink_to("lfile")
    (tmp_path / "ldir").symlink_to(tmp_path / "o2" / "dlink")
    cp("-L", "llink", "lk:/tmp/")
    cp("llink", "lk:/tmp/nolink")
    cp("-L", "ldir", "lk:/tmp/")
    cp("-L", "llink", "lk:/tmp/renamed")
    dk(daemon, "commit", "lk", "lk:img")
    r = dk(daemon, "run", "--rm", "lk:img", "sh", "-c",
           "cat /tmp/llink /tmp/renamed /tmp/ldir/data.txt; readlink /tmp/nolink; "
           "test -L /tmp/llink || test -L /tmp/ldir || echo not-links")
    assert r.stdout == "hi\nhi\ndata\nlfile\nnot-links\n"
    dk(daemon, "rm", "lk")
    dk(daemon, "rmi", "lk:img")


def test_killed_daemon_mid_copy_leaves_no_mounted_view(daemon):
    """berthd killed while `docker cp` streams out of a stopped container (through a view
    of its rootfs mounted for the copy): the next start unmounts and removes the view, so
    nothing of it stays mounted and the container works as before."""
    dk(daemon, "run", "--name", "cold", "busybox", "sh", "-c", "head -c 67108864 /dev/zero > /big")
    cid = dk(daemon, "inspect", "-f", "{{.Id}}", "cold").stdout.strip()
    ctr_dir = daemon.data_root / "containers" / cid

    def views_mounted() -> list[str]:
        mounts = [l.split(" ")[4] for l in open("/proc/self/mountinfo").read().splitlines()]
        return [m for m in mounts if m.startswith(str(ctr_dir) + "/view-")]

    reader = subprocess.Popen([DOCKER_BIN, "cp", "cold:/big", "-"], env=daemon.docker_env,
                              stdout=subprocess.PIPE, stderr=subprocess.DEVNULL)
    try:
        assert reader.stdout.read(65536), "the copy started"  # then stop reading: it stalls
        poll(views_mounted, 10, "the view mounted for the copy")
        daemon.signal(signal.SIGKILL)
        daemon.wait_exit()
    finally:
        reader.kill()
        reader.wait()
    assert views_mounted(), "the killed daemon left its view mounted"
    daemon.start()
    assert views_mounted() == []
    assert not [p for p in ctr_dir.iterdir() if p.name.startswith("view-")]
    assert "removing a stale rootfs view" in daemon.log_text()
    with tarfile.open(fileobj=io.BytesIO(dk_bytes(daemon, "cp", "cold:/etc/passwd", "-"))) as t:
        assert t.extractfile("passwd").read().startswith(b"root:")
    assert dk(daemon, "start", "-a", "cold").returncode == 0
    dk(daemon, "rm", "cold")
