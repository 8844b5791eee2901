"""Helpers for the container metrics of bench/run (issue 4): the busybox image imported
into any engine through the API, the timed operations (create+start+wait+delete, exec,
logs), memory per running container, and a bare `runc run` of the same bundle as the
floor. Every engine is driven through the same Docker API calls over its unix socket, and
the docker CLI for `docker run`. Python standard library only."""

from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
import tarfile
import threading
import time
import urllib.parse
from pathlib import Path

from images import unix_request

REPO_ROOT = Path(__file__).resolve().parents[1]
IMAGE = "busybox:latest"
# Every container runs without a network so that the engines do the same work (dockerd
# runs with --bridge=none here); the network's own cost is a separate metric.
NO_NET = {"NetworkMode": "none"}
DOCKER = shutil.which("docker") or "/usr/bin/docker"


class ApiError(RuntimeError):
    pass


def call(sock: Path, method: str, path: str, body: dict | None = None, ok: tuple[int, ...] = (200, 201, 204),
         collect: bool = True) -> bytes:
    data = json.dumps(body).encode() if body is not None else b""
    headers = {"Content-Type": "application/json"} if body is not None else {}
    r = unix_request(sock, method, path, headers=headers, body=data, collect=collect)
    if r.status not in ok:
        raise ApiError(f"{method} {path}: {r.status} {r.body[:300].decode(errors='replace').strip()}")
    return r.body


def busybox_rootfs() -> bytes:
    return subprocess.run([str(REPO_ROOT / "scripts" / "busybox-rootfs")], check=True,
                          capture_output=True).stdout


def ensure_busybox(sock: Path) -> None:
    """Imports the bundled busybox rootfs as busybox:latest (same bytes for every engine)."""
    r = unix_request(sock, "GET", f"/images/{IMAGE}/json")
    if r.status == 200:
        return
    changes = urllib.parse.quote('CMD ["sh"]')
    r = unix_request(sock, "POST", f"/images/create?fromSrc=-&repo=busybox&tag=latest&changes={changes}",
                     headers={"Content-Type": "application/x-tar"}, body=busybox_rootfs())
    if r.status != 200 or r.stream_error():
        raise ApiError(f"import busybox: {r.status} {r.stream_error() or r.body[:200]!r}")


def create(sock: Path, cmd: list[str], host_config: dict | None = None) -> str:
    body = {"Image": IMAGE, "Cmd": cmd, "HostConfig": {**NO_NET, **(host_config or {})}}
    return json.loads(call(sock, "POST", "/containers/create", body))["Id"]


def start(sock: Path, cid: str) -> None:
    call(sock, "POST", f"/containers/{cid}/start")


def wait(sock: Path, cid: str) -> int:
    return json.loads(call(sock, "POST", f"/containers/{cid}/wait"))["StatusCode"]


def remove(sock: Path, cid: str) -> None:
    call(sock, "DELETE", f"/containers/{cid}?force=1", ok=(204, 404))


def lifecycle(sock: Path, cmd: list[str] | None = None) -> float:
    """create + start + wait + delete of `true`: seconds."""
    t0 = time.perf_counter()
    cid = create(sock, cmd or ["true"])
    start(sock, cid)
    code = wait(sock, cid)
    remove(sock, cid)
    elapsed = time.perf_counter() - t0
    if code != 0:
        raise ApiError(f"true exited {code}")
    return elapsed


def cli_run(sock: Path) -> float:
    """`docker run --rm --network none busybox true` through the real docker CLI."""
    env = {**os.environ, "DOCKER_HOST": f"unix://{sock}"}
    env.pop("DOCKER_CONTEXT", None)
    t0 = time.perf_counter()
    out = subprocess.run([DOCKER, "run", "--rm", "--network", "none", IMAGE, "true"], env=env,
                         capture_output=True, timeout=120)
    elapsed = time.perf_counter() - t0
    if out.returncode != 0:
        raise ApiError(f"docker run: {out.returncode} {out.stderr.decode(errors='replace')[:300]}")
    return elapsed


def burst(sock: Path, total: int = 50, parallel: int = 8) -> float:
    """`total` create+start+wait+delete cycles, `parallel` at a time: seconds for all."""
    todo = list(range(total))
    lock = threading.Lock()
    errors: list[str] = []

    def worker() -> None:
        while True:
            with lock:
                if not todo or errors:
                    return
                todo.pop()
            try:
                lifecycle(sock)
            except Exception as exc:  # noqa: BLE001 - reported after the burst
                with lock:
                    errors.append(str(exc))

    threads = [threading.Thread(target=worker) for _ in range(parallel)]
    t0 = time.perf_counter()
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    elapsed = time.perf_counter() - t0
    if errors:
        raise ApiError(errors[0])
    return elapsed


def exec_once(sock: Path, cid: str) -> float:
    """exec create + attached start of `true`, until the stream ends: seconds."""
    t0 = time.perf_counter()
    body = {"Cmd": ["true"], "AttachStdout": True, "AttachStderr": True}
    eid = json.loads(call(sock, "POST", f"/containers/{cid}/exec", body))["Id"]
    payload = json.dumps({"Detach": False, "Tty": False}).encode()
    with socket.socket(socket.AF_UNIX) as s:
        s.settimeout(60)
        s.connect(str(sock))
        s.sendall((f"POST /exec/{eid}/start HTTP/1.1\r\nHost: bench\r\nContent-Type: application/json\r\n"
                   f"Connection: Upgrade\r\nUpgrade: tcp\r\nContent-Length: {len(payload)}\r\n\r\n").encode()
                  + payload)
        head = b""
        while b"\r\n\r\n" not in head:
            chunk = s.recv(4096)
            if not chunk:
                raise ApiError("exec start: connection closed before the answer")
            head += chunk
        status = int(head.split(b" ", 2)[1])
        if status not in (101, 200):
            raise ApiError(f"exec start: {head[:300]!r}")
        while s.recv(65536):
            pass
    elapsed = time.perf_counter() - t0
    code = json.loads(call(sock, "GET", f"/exec/{eid}/json"))["ExitCode"]
    if code != 0:
        raise ApiError(f"exec true exited {code}")
    return elapsed


# ---------------------------------------------------------------------------------------
# memory


def pss_kib(pid: int) -> int:
    try:
        with open(f"/proc/{pid}/smaps_rollup") as f:
            for line in f:
                if line.startswith("Pss:"):
                    return int(line.split()[1])
    except OSError:
        pass
    return 0


def shim_pids(root: Path, exclude: set[int]) -> list[int]:
    """Processes outside the daemon's tree that belong to it: cmdline or an open file
    under its root (berth-shim, containerd-shim-runc-v2, conmon)."""
    prefix = str(root)
    out = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit() or int(entry) in exclude:
            continue
        pid = int(entry)
        try:
            cmdline = Path(f"/proc/{pid}/cmdline").read_bytes()
            if prefix.encode() in cmdline:
                out.append(pid)
                continue
            for fd in os.listdir(f"/proc/{pid}/fd"):
                try:
                    if os.readlink(f"/proc/{pid}/fd/{fd}").startswith(prefix):
                        out.append(pid)
                        break
                except OSError:
                    continue
        except OSError:
            continue
    return out


def container_pids(sock: Path, ids: list[str]) -> set[int]:
    pids = set()
    for cid in ids:
        state = json.loads(call(sock, "GET", f"/containers/{cid}/json"))["State"]
        if state.get("Pid"):
            pids.add(state["Pid"])
    return pids


# ---------------------------------------------------------------------------------------
# logs


LOG_BYTES = 100_000_000
# 100 MB of 50-byte lines (yes repeats its argument plus a newline).
LOG_CMD = ["sh", "-c", f"yes 0123456789012345678901234567890123456789abcdefgh | head -c {LOG_BYTES}"]


def logs_write(sock: Path) -> tuple[float, str]:
    """A container writing 100 MB to stdout: seconds from start until it has exited."""
    cid = create(sock, LOG_CMD)
    t0 = time.perf_counter()
    start(sock, cid)
    code = wait(sock, cid)
    elapsed = time.perf_counter() - t0
    if code != 0:
        raise ApiError(f"log writer exited {code}")
    return elapsed, cid


def logs_read(sock: Path, cid: str) -> tuple[float, int]:
    """GET /containers/ID/logs?stdout=1: seconds and bytes of the answer."""
    t0 = time.perf_counter()
    r = unix_request(sock, "GET", f"/containers/{cid}/logs?stdout=1&stderr=1", collect=False)
    elapsed = time.perf_counter() - t0
    if r.status != 200:
        raise ApiError(f"logs: {r.status}")
    return elapsed, r.nbytes


# ---------------------------------------------------------------------------------------
# the floor: a bare OCI runtime on the same bundle


class RuncBundle:
    """A `runc spec` bundle of the busybox rootfs running `true`, with its own state dir."""

    def __init__(self, directory: Path):
        self.runc = shutil.which("runc")
        if not self.runc:
            raise RuntimeError("runc is not installed")
        self.dir = directory
        self.state = directory / "state"
        rootfs = directory / "rootfs"
        rootfs.mkdir(parents=True)
        tar_path = directory / "rootfs.tar"
        tar_path.write_bytes(busybox_rootfs())
        with tarfile.open(tar_path) as t:
            t.extractall(rootfs, filter="fully_trusted")
        tar_path.unlink()
        subprocess.run([self.runc, "spec"], cwd=directory, check=True, capture_output=True)
        spec = json.loads((directory / "config.json").read_text())
        spec["process"]["args"] = ["true"]
        spec["process"]["terminal"] = False
        (directory / "config.json").write_text(json.dumps(spec))
        self.n = 0

    def run_once(self) -> float:
        self.n += 1
        t0 = time.perf_counter()
        out = subprocess.run([self.runc, "--root", str(self.state), "run", "--bundle", str(self.dir),
                              f"bench-{os.getpid()}-{self.n}"], capture_output=True, timeout=60)
        elapsed = time.perf_counter() - t0
        if out.returncode != 0:
            raise RuntimeError(f"runc run: {out.returncode} {out.stderr.decode(errors='replace')[:300]}")
        return elapsed


def call_create_default_network(sock: Path, cmd: list[str]) -> str:
    """create with no NetworkMode: the engine's default network (bridge)."""
    body = {"Image": IMAGE, "Cmd": cmd}
    return json.loads(call(sock, "POST", "/containers/create", body))["Id"]


# ---------------------------------------------------------------------------------------
# published ports


PORT = 5001
PORT_BYTES = 200_000_000


def start_sink(sock: Path) -> tuple[str, str, int]:
    """A container on the default bridge that swallows every TCP connection on PORT,
    published on an ephemeral host port: (id, container IP, host port)."""
    body = {
        "Image": IMAGE,
        # A persistent busybox nc server; each connection's bytes go to /dev/null.
        "Cmd": ["nc", "-ll", "-p", str(PORT), "-e", "sh", "-c", "cat >/dev/null"],
        "ExposedPorts": {f"{PORT}/tcp": {}},
        "HostConfig": {"PortBindings": {f"{PORT}/tcp": [{"HostIp": "127.0.0.1", "HostPort": ""}]}},
    }
    cid = json.loads(call(sock, "POST", "/containers/create", body))["Id"]
    start(sock, cid)
    net = json.loads(call(sock, "GET", f"/containers/{cid}/json"))["NetworkSettings"]
    host_port = int(net["Ports"][f"{PORT}/tcp"][0]["HostPort"])
    return cid, net["IPAddress"], host_port


def send_through(addr: str, port: int, nbytes: int = PORT_BYTES, timeout: float = 60) -> float:
    """MB/s of sending `nbytes` to addr:port until the receiver has read them all (it
    closes after our end of stream). Retries the connect while the listener restarts."""
    block = b"\0" * (1 << 20)
    deadline = time.monotonic() + timeout
    while True:
        try:
            s = socket.create_connection((addr, port), timeout=timeout)
            break
        except OSError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.01)
    with s:
        t0 = time.perf_counter()
        left = nbytes
        while left > 0:
            n = min(left, len(block))
            s.sendall(block[:n])
            left -= n
        s.shutdown(socket.SHUT_WR)
        while s.recv(65536):
            pass
        elapsed = time.perf_counter() - t0
    return nbytes / 1e6 / elapsed
