"""No path out of the container root while a container races us (issue 13 §2): a container
flips paths between a directory and a symlink to the host in a tight loop while docker cp
(both ways), export, commit and diff run again and again. No host byte may leave (a marker file
on the host never shows in any tar or committed layer) and no host file may change (a file
copied in never lands on the host).

The writes race a symlink to `/`, as in the issue; the reads race a symlink to a host
directory holding the marker (a symlink to `/` would, on a daemon that follows it, walk the
whole host, which a test should not do). Each case tries `BERTH_RACE_ITERATIONS` times
(default 1000 for cp, fewer for export and commit), within a bound of
`BERTH_RACE_SECONDS` (default 60) per case; the count run is printed."""

from __future__ import annotations

import io
import json
import os
import socket
import tarfile
import time
import uuid
from pathlib import Path

import pytest

from conftest import poll, unix_connect
from test_containers import daemon, dk  # noqa: F401  (the fixture and the CLI helper)

DEFAULT_ITERATIONS = {"cp-in": 1000, "cp-out": 1000, "export": 200, "commit": 100, "diff": 1000}


def _budget(case: str) -> tuple[int, float]:
    n = int(os.environ.get("BERTH_RACE_ITERATIONS", DEFAULT_ITERATIONS[case]))
    secs = float(os.environ.get("BERTH_RACE_SECONDS", "60"))
    return n, secs


def _tar_names(body: bytes) -> list[str] | None:
    """Member names of a tar stream; None when it is cut short (the walk stopped)."""
    names: list[str] = []
    try:
        with tarfile.open(fileobj=io.BytesIO(body), mode="r|") as t:
            for m in t:
                names.append(m.name)
    except (tarfile.TarError, EOFError):
        return None
    return names


def _content(path: Path) -> bytes | None:
    """A file's bytes; None when the flipping container removed it meanwhile (the walk of
    the data root also passes through the shared volume it keeps changing)."""
    try:
        return path.read_bytes()
    except (FileNotFoundError, NotADirectoryError, IsADirectoryError):
        return None


def _one_file_tar(name: str, data: bytes) -> bytes:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w", format=tarfile.GNU_FORMAT) as t:
        info = tarfile.TarInfo(name)
        info.size = len(data)
        info.mode = 0o644
        t.addfile(info, io.BytesIO(data))
    return buf.getvalue()


@pytest.fixture
def race(daemon, tmp_path):
    """A host directory with a unique marker file, a named volume, and a container that
    flips `/v/d` (to `/`), `/v/e` and `/r/e` (to the host directory) between a directory
    and a symlink without pause. Yields (daemon, host dir, marker name, unique name)."""
    tag = uuid.uuid4().hex
    host = tmp_path / "host"
    host.mkdir()
    marker = f"berth-race-marker-{tag}"
    (host / marker).write_text(f"host only {tag}\n")
    # A name only the host has: `docker diff` lists names.
    (host / f"host-name-{tag}").write_text("")
    # One loop per path; `rm -rf` because copies that land in a directory fill it. The
    # directories hold a file of the marker's name (with other content): a walk inside
    # one when it turns into the link would read the host's marker through it.
    loop = "while :; do mkdir {p}; echo container > {p}/{m}; rm -rf {p}; ln -s {t} {p}; rm -f {p}; done"
    flip = (f"mkdir -p /r && ({loop.format(p='/v/d', t='/', m=marker)}) & "
            f"({loop.format(p='/v/e', t=host, m=marker)}) & {loop.format(p='/r/e', t=host, m=marker)}")
    dk(daemon, "volume", "create", "racevol")
    dk(daemon, "run", "-d", "--name", "flipper", "-v", "racevol:/v", "busybox", "sh", "-c", flip)
    # The target of the copies shares the volume; stopped, so that nothing freezes the race.
    dk(daemon, "create", "--name", "target", "-v", "racevol:/v", "busybox", "true")
    poll(lambda: dk(daemon, "exec", "flipper", "ls", "/r", check=False).returncode == 0, 10, "flipper running")
    landed = Path("/") / f"berth-race-{tag}"
    try:
        yield daemon, host, marker, f"host only {tag}\n".encode(), f"berth-race-{tag}"
    finally:
        # Whatever a failure left on the host goes, then the containers.
        if landed.is_symlink() or landed.is_file():
            landed.unlink()
        dk(daemon, "rm", "-f", "flipper", "target", check=False)
        dk(daemon, "volume", "rm", "-f", "racevol", check=False)


def _run(case: str, step) -> int:
    n, secs = _budget(case)
    deadline = time.monotonic() + secs
    done = 0
    while done < n and time.monotonic() < deadline:
        step(done)
        done += 1
    print(f"{case}: {done} tries")
    return done


def _host_dir_unchanged(host: Path, marker: str, content: bytes) -> None:
    assert sorted(p.name for p in host.iterdir() if not p.name.startswith("host-name-")) == [marker]
    assert (host / marker).read_bytes() == content


def _get(sock: Path, path: str) -> tuple[int, bytes]:
    """GET on a connection of its own, the body as far as it came: a walk that met a file
    removed meanwhile cuts its chunked stream short, and what came before still counts."""
    s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    s.settimeout(60)
    s.connect(str(sock))
    try:
        s.sendall(f"GET {path} HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n".encode())
        raw = bytearray()
        while chunk := s.recv(1 << 20):
            raw += chunk
    finally:
        s.close()
    head, _, rest = bytes(raw).partition(b"\r\n\r\n")
    parts = head.split(b" ", 2)
    status = int(parts[1]) if len(parts) > 1 and parts[1].isdigit() else 0
    if b"chunked" not in head.lower():
        return status, rest
    body = bytearray()
    while rest:
        size_line, sep, rest = rest.partition(b"\r\n")
        try:
            size = int(size_line.split(b";")[0], 16)
        except ValueError:
            break
        if not sep or size == 0:
            break
        body += rest[:size]
        rest = rest[size + 2:]
    return status, bytes(body)


def test_cp_in_never_writes_on_the_host(race):
    d, host, marker, content, unique = race
    body = _one_file_tar(unique, b"from the archive\n")
    conn = unix_connect(d.sock)
    statuses: dict[int, int] = {}

    def step(i: int) -> None:
        path = "/v/d" if i % 2 == 0 else "/v/e"
        r = conn.request("PUT", f"/containers/target/archive?path={path}", body=body,
                         headers={"Content-Type": "application/x-tar"})
        statuses[r.status] = statuses.get(r.status, 0) + 1
        assert not (Path("/") / unique).exists() and not (Path("/") / unique).is_symlink(), \
            f"try {i}: the copy landed at the host's root"
        assert not (host / unique).exists(), f"try {i}: the copy landed in a host directory"

    tries = _run("cp-in", step)
    conn.close()
    _host_dir_unchanged(host, marker, content)
    # Some copies did land, inside the volume: the race was run, not refused up front.
    assert statuses.get(200, 0) > 0, statuses
    print(f"cp-in statuses over {tries} tries: {statuses}")


def test_cp_out_never_reads_the_host(race):
    d, host, marker, content, _ = race

    def step(i: int) -> None:
        status, body = _get(d.sock, "/containers/target/archive?path=/v/e")
        assert content not in body, f"try {i}: host bytes in the tar: {_tar_names(body)}"
        # Files that vanish or change kind meanwhile do not cut the stream.
        assert status == 404 or (status == 200 and _tar_names(body) is not None), (i, status)

    _run("cp-out", step)
    _host_dir_unchanged(host, marker, content)


def test_export_never_reads_the_host(race):
    d, host, marker, content, _ = race

    def step(i: int) -> None:
        status, body = _get(d.sock, "/containers/flipper/export")
        assert content not in body, f"try {i}: host bytes in the export"
        assert status == 200 and _tar_names(body) is not None, f"try {i}: export cut short"

    _run("export", step)
    _host_dir_unchanged(host, marker, content)


def test_commit_never_takes_host_files(race):
    d, host, marker, content, _ = race
    conn = unix_connect(d.sock)
    ids: list[str] = []

    def step(i: int) -> None:
        # pause=0: the container races the walk of its own upper dir.
        r = conn.request("POST", "/commit?container=flipper&pause=0", body=b"{}",
                         headers={"Content-Type": "application/json"})
        assert r.status == 201, r.text
        ids.append(r.json()["Id"])

    _run("commit", step)
    conn.close()
    # Every committed layer is unpacked under the data root: files of the marker's name
    # there are the container's own, never the host's.
    leaked = [os.path.join(root, f) for root, _, files in os.walk(d.data_root) for f in files
              if f == marker and _content(Path(root, f)) == content]
    assert not leaked, leaked
    _host_dir_unchanged(host, marker, content)
    for i in set(ids):
        dk(d, "rmi", "-f", i, check=False)


def test_diff_never_lists_host_files(race):
    d, host, marker, content, _ = race
    conn = unix_connect(d.sock)
    hostname = next(p.name for p in host.iterdir() if p.name.startswith("host-name-"))

    def step(i: int) -> None:
        r = conn.request("GET", "/containers/flipper/changes")
        assert r.status == 200, r.text
        assert hostname not in r.text, f"try {i}: a host file's name in docker diff"

    _run("diff", step)
    conn.close()
    _host_dir_unchanged(host, marker, content)
