"""berthd against the reference dockerd 20.10, request for request (tests/e2e/differential.py):
every answer that differs must be a known, explained difference (differential_known.json),
and a known difference that is gone must leave that file, so it stays the true list.
The full report goes to target/differential-report.json."""

from __future__ import annotations

import contextlib
import json
import shutil
import socket
import subprocess
from collections import Counter
from pathlib import Path
from typing import Iterator

import pytest

import differential
import refdockerd
import wsclient
from conftest import REPO_ROOT, free_port, import_busybox, poll

KNOWN = Path(__file__).with_name("differential_known.json")
REPORT = REPO_ROOT / "target" / "differential-report.json"
REGISTRY_REPORT = REPO_ROOT / "target" / "differential-registry-report.json"


@pytest.fixture
def reference(docker_env):
    with refdockerd.running() as ref:
        import_busybox(docker_env({"DOCKER_HOST": f"unix://{ref.sock}"}))
        yield ref


def test_answers_match_dockerd(busybox_daemon, reference):
    d = busybox_daemon()
    berth = differential.Engine("berthd", d.sock)
    ref = differential.Engine("dockerd", reference.sock)
    outcomes = differential.run_all(berth, ref)
    check_known(outcomes, REPORT)


def check_known(outcomes: list[differential.Outcome], report_path: Path) -> None:
    """Writes the report; every difference must be known, every known one (of the cases
    run) still there."""
    report = [
        {"case": o.case.id, "berthd": o.berth[0], "dockerd": o.dockerd[0], "diffs": o.diffs}
        for o in outcomes
    ]
    report_path.parent.mkdir(exist_ok=True)
    report_path.write_text(json.dumps(report, indent=1))
    known: dict[str, str] = json.loads(KNOWN.read_text())
    differing = {o.case.id: "; ".join(o.diffs) for o in outcomes if o.diffs}
    new = {k: v for k, v in differing.items() if k not in known}
    fixed = sorted(k for k in known if k not in differing and any(o.case.id == k for o in outcomes))
    kinds = Counter(d.split(" ", 1)[0] for v in differing.values() for d in v.split("; "))
    summary = (f"{len(outcomes)} cases over {len({(o.case.method, o.case.path) for o in outcomes})} operations; "
               f"{len(differing)} differ ({dict(kinds)}); report: {report_path}")
    print(summary)
    assert not new, f"new differences from dockerd ({summary}):\n" + "\n".join(f"{k}: {v}" for k, v in sorted(new.items()))
    assert not fixed, "these now answer as dockerd: remove them from differential_known.json:\n" + "\n".join(fixed)


REGISTRY = shutil.which("docker-registry")
HTPASSWD = shutil.which("htpasswd")


@contextlib.contextmanager
def registry_process(root: Path, port: int, netns: str | None, auth: bool) -> Iterator[None]:
    """Debian's docker-registry on 127.0.0.1:`port` (in `netns` if given), storage under
    `root`; with htpasswd basic auth if `auth`."""
    root.mkdir(parents=True)
    addr = f"127.0.0.1:{port}"
    auth_block = ""
    if auth:
        htpasswd = root / "htpasswd"
        subprocess.run([HTPASSWD, "-Bbc", str(htpasswd), differential.REGISTRY_USER, differential.REGISTRY_PASSWORD],
                       check=True, capture_output=True)
        auth_block = f"auth:\n  htpasswd:\n    realm: berth-test\n    path: {htpasswd}\n"
    (root / "registry.yml").write_text(
        "version: 0.1\nlog:\n  level: info\n"
        f"storage:\n  filesystem:\n    rootdirectory: {root / 'data'}\n"
        f"http:\n  addr: {addr}\n" + auth_block)
    log = root / "registry.log"
    ns = ["nsenter", f"--net=/var/run/netns/{netns}"] if netns else []
    with open(log, "ab") as out:
        proc = subprocess.Popen([*ns, REGISTRY, "serve", str(root / "registry.yml")], stdout=out, stderr=out,
                                stdin=subprocess.DEVNULL, start_new_session=True)
    try:
        poll(lambda: f"listening on {addr}" in log.read_text(errors="replace")
             or (proc.poll() is not None and pytest.fail(log.read_text())), 30, "docker-registry to listen")
        yield
    finally:
        proc.terminate()
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(10)


def test_registry_answers_match_dockerd(busybox_daemon, reference, workdir):
    """Pull, push, distribution and auth against registries both daemons reach at the same
    address (each its own: berthd's on the host's loopback, the reference's on its
    namespace's), compared as the API walk compares (progress streams as the messages a
    client acts on). Known differences are in differential_known.json with the rest."""
    if REGISTRY is None or HTPASSWD is None:
        pytest.fail("docker-registry or htpasswd is missing (.ci/run installs docker-registry and apache2-utils)")
    d = busybox_daemon()
    berth = differential.Engine("berthd", d.sock)
    ref = differential.Engine("dockerd", reference.sock)
    ports = [free_port() for _ in range(3)]
    addrs = [f"127.0.0.1:{p}" for p in ports]
    regs = {e: differential.Registries(open=addrs[0], auth=addrs[1], closed=addrs[2]) for e in ("berthd", "dockerd")}
    with contextlib.ExitStack() as stack:
        for who, netns in (("berthd", None), ("dockerd", reference.netns)):
            stack.enter_context(registry_process(workdir / f"reg-{who}-open", ports[0], netns, auth=False))
            stack.enter_context(registry_process(workdir / f"reg-{who}-auth", ports[1], netns, auth=True))
        outcomes = differential.run_registry(berth, ref, regs)
    check_known(outcomes, REGISTRY_REPORT)


# Headers of an upgrade answer that a client acts on (the rest: Date, Server, Api-Version...).
UPGRADE_HEADERS = ("content-type", "connection", "upgrade", "sec-websocket-accept", "content-length")


def _head(sock: socket.socket) -> tuple[str, dict[str, str]]:
    """The status line and the headers that matter (values; the WebSocket accept key as
    present or not), read byte by byte so that nothing of the stream is consumed."""
    head = b""
    while b"\r\n\r\n" not in head:
        chunk = sock.recv(1)
        if not chunk:
            break
        head += chunk
    lines = head.decode(errors="replace").split("\r\n")
    headers = {}
    for line in lines[1:]:
        name, _, value = line.partition(":")
        if name.strip().lower() in UPGRADE_HEADERS:
            headers[name.strip().lower()] = "<present>" if name.lower() == "sec-websocket-accept" else value.strip()
    return lines[0], headers


def _exact(sock: socket.socket, n: int) -> bytes:
    out = b""
    while len(out) < n:
        chunk = sock.recv(n - len(out))
        if not chunk:
            raise EOFError(f"closed after {out!r}")
        out += chunk
    return out


def _frames(sock: socket.socket, want: int) -> list[tuple[int, bytes]]:
    """`want` multiplexed frames: (stream, payload)."""
    out = []
    for _ in range(want):
        hdr = _exact(sock, 8)
        out.append((hdr[0], _exact(sock, int.from_bytes(hdr[4:8], "big"))))
    return out


def _attach_session(e: differential.Engine) -> dict[str, object]:
    """A container that wrote a line to each stream and echoes stdin: its hijacked attach
    (with and without `Upgrade: tcp`) and its attach/ws, as raw bytes; a missing one's."""
    def unix() -> socket.socket:
        s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        s.settimeout(10)
        s.connect(str(e.sock))
        return s

    r = e.json_req("POST", "/v1.41/containers/create?name=diff-attach",
                   {"Image": "busybox", "Cmd": ["sh", "-c", "echo out; echo err >&2; exec cat"],
                    "OpenStdin": True, "AttachStdin": True})
    assert r.status == 201, r.text
    seen: dict[str, object] = {}
    try:
        assert e.req("POST", "/v1.41/containers/diff-attach/start").status == 204
        poll(lambda: b"err" in e.req("GET", "/v1.41/containers/diff-attach/logs?stdout=1&stderr=1").body,
             20, "both lines in the log")
        q = "logs=1&stream=1&stdin=1&stdout=1&stderr=1"
        for how, upgrade in (("upgrade", "Connection: Upgrade\r\nUpgrade: tcp\r\n"), ("plain", "")):
            with unix() as s:
                s.sendall((f"POST /v1.41/containers/diff-attach/attach?{q} HTTP/1.1\r\nHost: localhost\r\n"
                           f"Content-Type: text/plain\r\n{upgrade}\r\n").encode())
                seen[f"attach {how} head"] = _head(s)
                try:
                    # The log's two streams in either order: dockerd's copies of stdout
                    # and stderr into the log race each other.
                    first = sorted(_frames(s, 2))
                    s.sendall(b"typed\n")
                    seen[f"attach {how} frames"] = (first, _frames(s, 1))
                except (TimeoutError, EOFError) as exc:
                    seen[f"attach {how} frames"] = f"cut short: {exc!r}"
        with unix() as s:
            ws = wsclient.WebSocket(s, "localhost", f"/v1.41/containers/diff-attach/attach/ws?{q}")
            s.settimeout(30)
            status_line = ws.head.split("\r\n", 1)[0]
            headers = {}
            for line in ws.head.split("\r\n")[1:]:
                name, _, value = line.partition(":")
                if name.strip().lower() in UPGRADE_HEADERS:
                    headers[name.strip().lower()] = "<present>" if name.lower() == "sec-websocket-accept" else value.strip()
            seen["ws head"] = (status_line, headers)
            got = b""
            ops = set()
            while b"err\n" not in got or b"out\n" not in got:
                op, payload = ws.recv()
                ops.add(op)
                got += payload
            seen["ws first"] = (sorted(ops), sorted(got.splitlines(keepends=True)))
        with unix() as s:
            s.sendall(b"POST /v1.41/containers/diff-missing/attach?stream=1&stdout=1 HTTP/1.1\r\nHost: localhost\r\n"
                      b"Connection: Upgrade\r\nUpgrade: tcp\r\n\r\n")
            seen["attach missing"] = _head(s)[0]
        with unix() as s:
            ws = wsclient.WebSocket(s, "localhost", "/v1.41/containers/diff-missing/attach/ws?stream=1&stdout=1")
            seen["ws missing"] = ws.head.split("\r\n", 1)[0]
    finally:
        e.req("DELETE", "/v1.41/containers/diff-attach?force=1")
    return seen


# What each compared piece of an attach session is, as a case of the report.
ATTACH_CASES = {
    "attach upgrade head": ("POST", "/containers/{id}/attach", "upgrade-head"),
    "attach upgrade frames": ("POST", "/containers/{id}/attach", "upgrade-frames"),
    "attach plain head": ("POST", "/containers/{id}/attach", "no-upgrade-head"),
    "attach plain frames": ("POST", "/containers/{id}/attach", "no-upgrade-frames"),
    "attach missing": ("POST", "/containers/{id}/attach", "missing"),
    "ws head": ("GET", "/containers/{id}/attach/ws", "head"),
    "ws first": ("GET", "/containers/{id}/attach/ws", "frames"),
    "ws missing": ("GET", "/containers/{id}/attach/ws", "missing"),
}
ATTACH_REPORT = REPO_ROOT / "target" / "differential-attach-report.json"


def test_attach_upgrades_match_dockerd(busybox_daemon, reference):
    """`POST /containers/{id}/attach` (hijacked, with and without `Upgrade: tcp`) and
    `GET /containers/{id}/attach/ws` on raw sockets: the upgrade answer's status line and
    the headers a client acts on, then the first frames (the log replayed, then stdin
    echoed), compared byte for byte with dockerd 20.10's; a missing container's status
    line too. Differences must be known (differential_known.json), as the API walk's."""
    d = busybox_daemon()
    berth = _attach_session(differential.Engine("berthd", d.sock))
    ref = _attach_session(differential.Engine("dockerd", reference.sock))
    outcomes = []
    for key, (method, path, variant) in ATTACH_CASES.items():
        case = differential.Case(f"{method} {path} {variant}", method, path, variant, {}, set())
        b, r = berth.get(key), ref.get(key)
        diffs = [] if b == r else [f"{variant} {b!r} (dockerd {r!r})"[:300]]
        outcomes.append(differential.Outcome(case, (0, repr(b)), (0, repr(r)), diffs))
    check_known(outcomes, ATTACH_REPORT)
