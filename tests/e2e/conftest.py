"""Shared fixtures and helpers for the end-to-end tests.

Every test gets its own berthd (or several): its own short temp dir holding the unix
socket, --data-root, --exec-root and --pidfile, and its own free TCP port on 127.0.0.1.
The `berthd` factory starts a daemon, waits for `/_ping` by bounded polling, and on
teardown sends SIGTERM (SIGKILL after a bound), checks that it exited and removes its
dirs, whether the test passed or not. A failing test gets the daemon's stderr attached.

Binaries come from $BERTHD_BIN / $BERTH_BIN, defaulting to target/debug/ in the repo.
The API spec comes from $BERTH_SHARED/reference or ../shared/reference beside the repo.
"""

from __future__ import annotations

import dataclasses
import json
import os
import shutil
import signal
import socket
import ssl
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any, Callable, Iterable, Sequence

import pytest

from hostclean import (
    cleanup_bridges,
    cleanup_cgroups,
    container_cgroups,
    no_bridge_tag,
    pick_cgroup_parent,
    pick_network,
    shim_pids,
)

REPO_ROOT = Path(__file__).resolve().parents[2]
BERTHD_BIN = Path(os.environ.get("BERTHD_BIN", REPO_ROOT / "target" / "debug" / "berthd"))
BERTH_BIN = Path(os.environ.get("BERTH_BIN", REPO_ROOT / "target" / "debug" / "berth"))
DOCKER_BIN = os.environ.get("DOCKER_BIN") or shutil.which("docker") or "/usr/local/bin/docker"

API_VERSION = "1.50"
MIN_API_VERSION = "1.24"

# Bounds for polling. Generous: CI runs a debug build on 2 cores with tests in parallel.
START_TIMEOUT = float(os.environ.get("BERTH_E2E_START_TIMEOUT", "30"))
STOP_TIMEOUT = float(os.environ.get("BERTH_E2E_STOP_TIMEOUT", "15"))
CMD_TIMEOUT = 60


def shared_dir() -> Path:
    env = os.environ.get("BERTH_SHARED")
    if env:
        return Path(env)
    return REPO_ROOT.parent / "shared"


def swagger_path() -> Path:
    return shared_dir() / "reference" / "docker-engine-api-v1.50.yaml"


# ---------------------------------------------------------------------------------------
# polling


def poll(
    fn: Callable[[], Any],
    timeout: float,
    what: str,
    interval: float = 0.01,
    fatal: tuple[type[BaseException], ...] = (),
) -> Any:
    """Call fn until it returns a truthy value or timeout seconds pass; return that value.

    Exceptions from fn count as "not yet" (the last one is reported on timeout), except
    those in `fatal`, which propagate at once.
    """
    deadline = time.monotonic() + timeout
    last_exc: BaseException | None = None
    delay = interval
    while True:
        try:
            value = fn()
            if value:
                return value
        except fatal:
            raise
        except Exception as exc:  # noqa: BLE001 - reported below
            last_exc = exc
        if time.monotonic() >= deadline:
            raise TimeoutError(f"timed out after {timeout}s waiting for {what}; last error: {last_exc!r}")
        time.sleep(delay)
        delay = min(delay * 1.5, 0.2)


# ---------------------------------------------------------------------------------------
# minimal HTTP/1.1 over any socket (unix, TCP, TLS)


@dataclasses.dataclass
class Response:
    status: int
    reason: str
    headers: dict[str, str]  # keys lower-cased
    body: bytes

    def header(self, name: str) -> str | None:
        return self.headers.get(name.lower())

    def json(self) -> Any:
        return json.loads(self.body)

    @property
    def text(self) -> str:
        return self.body.decode("utf-8", "replace")


class HTTPStream:
    """HTTP/1.1 requests over one connected socket, keeping it alive between requests."""

    def __init__(self, sock: socket.socket, host: str = "localhost"):
        self.sock = sock
        self.host = host
        self.rfile = sock.makefile("rb")

    def request(
        self,
        method: str,
        path: str,
        headers: dict[str, str] | None = None,
        body: bytes = b"",
        keepalive: bool = True,
    ) -> Response:
        lines = [f"{method} {path} HTTP/1.1", f"Host: {self.host}", "User-Agent: berth-e2e"]
        hdrs = dict(headers or {})
        if body or method in ("POST", "PUT"):
            hdrs.setdefault("Content-Length", str(len(body)))
        if not keepalive:
            hdrs.setdefault("Connection", "close")
        lines += [f"{k}: {v}" for k, v in hdrs.items()]
        self.sock.sendall(("\r\n".join(lines) + "\r\n\r\n").encode() + body)
        return self.read_response(head=(method == "HEAD"))

    def read_response(self, head: bool = False) -> Response:
        status, reason, headers = self.read_head()
        return Response(status, reason, headers, self.read_body(status, headers, head))

    def read_head(self) -> tuple[int, str, dict[str, str]]:
        """The status line and headers only: for endpoints (wait, attach) that answer
        headers once a request is registered and the body later."""
        status_line = self.rfile.readline(65537)
        if not status_line:
            raise ConnectionError("connection closed before a response")
        parts = status_line.decode("latin-1").rstrip("\r\n").split(" ", 2)
        if len(parts) < 2 or not parts[0].startswith("HTTP/"):
            raise ValueError(f"bad status line {status_line!r}")
        status = int(parts[1])
        reason = parts[2] if len(parts) > 2 else ""
        headers: dict[str, str] = {}
        while True:
            line = self.rfile.readline(65537)
            if not line:
                raise ConnectionError("connection closed in headers")
            line_s = line.decode("latin-1").rstrip("\r\n")
            if not line_s:
                break
            k, _, v = line_s.partition(":")
            headers[k.strip().lower()] = v.strip()
        return status, reason, headers

    def read_body(self, status: int, headers: dict[str, str], head: bool = False) -> bytes:
        body = b""
        if head or status in (204, 304) or 100 <= status < 200:
            pass
        elif headers.get("transfer-encoding", "").lower() == "chunked":
            chunks = []
            while True:
                size_line = self.rfile.readline(65537)
                size = int(size_line.split(b";")[0].strip(), 16)
                if size == 0:
                    while self.rfile.readline(65537) not in (b"\r\n", b"\n", b""):
                        pass
                    break
                chunks.append(self._read_exact(size))
                self.rfile.readline(65537)
            body = b"".join(chunks)
        elif "content-length" in headers:
            body = self._read_exact(int(headers["content-length"]))
        else:
            body = self.rfile.read()
        return body

    def _read_exact(self, n: int) -> bytes:
        data = self.rfile.read(n)
        if len(data) != n:
            raise ConnectionError(f"short body: {len(data)} of {n} bytes")
        return data

    def close(self) -> None:
        try:
            self.rfile.close()
        finally:
            self.sock.close()


def unix_connect(path: Path | str, timeout: float = 10) -> HTTPStream:
    s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    s.settimeout(timeout)
    try:
        s.connect(str(path))
    except BaseException:
        s.close()
        raise
    return HTTPStream(s)


def unix_request(path: Path | str, method: str, url: str, **kw: Any) -> Response:
    stream = unix_connect(path)
    try:
        return stream.request(method, url, keepalive=False, **kw)
    finally:
        stream.close()


def client_context(
    ca: Path | None = None,
    cert: Path | None = None,
    key: Path | None = None,
    *,
    verify: bool = True,
    check_hostname: bool = True,
    min_version: ssl.TLSVersion | None = None,
    max_version: ssl.TLSVersion | None = None,
) -> ssl.SSLContext:
    """A client SSLContext (the system OpenSSL through Python's ssl module)."""
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    if verify:
        ctx.check_hostname = check_hostname
        ctx.verify_mode = ssl.CERT_REQUIRED
        if ca is not None:
            ctx.load_verify_locations(cafile=str(ca))
    else:
        ctx.check_hostname = False
        ctx.verify_mode = ssl.CERT_NONE
    if cert is not None:
        ctx.load_cert_chain(str(cert), str(key) if key else None)
    if min_version is not None:
        ctx.minimum_version = min_version
    if max_version is not None:
        ctx.maximum_version = max_version
    return ctx


def tls_connect(
    port: int,
    ctx: ssl.SSLContext,
    *,
    host: str = "127.0.0.1",
    server_hostname: str | None = None,
    timeout: float = 10,
) -> HTTPStream:
    """TCP connect + full TLS handshake; raises ssl.SSLError etc. if the handshake fails."""
    raw = socket.create_connection((host, port), timeout=timeout)
    try:
        tls = ctx.wrap_socket(raw, server_hostname=server_hostname or host)
    except BaseException:
        raw.close()
        raise
    return HTTPStream(tls, host=f"{host}:{port}")


def tls_request(port: int, ctx: ssl.SSLContext, method: str = "GET", path: str = "/_ping", **kw: Any) -> Response:
    stream = tls_connect(port, ctx, **kw)
    try:
        return stream.request(method, path, keepalive=False)
    finally:
        stream.close()


REFUSAL_ERRORS = (ssl.SSLError, ConnectionError, OSError, ValueError)


def tls_refused(port: int, ctx: ssl.SSLContext, **kw: Any) -> str:
    """Try a TLS connection + GET /_ping. Return a description of how it was refused;
    fail the test if an HTTP response came back at all.

    With TLS 1.3 the server's verdict on the client certificate arrives after the
    client's handshake completes, so the refusal surfaces on the first read."""
    try:
        stream = tls_connect(port, ctx, **kw)
    except REFUSAL_ERRORS as exc:
        return f"handshake failed: {exc!r}"
    try:
        try:
            resp = stream.request("GET", "/_ping", keepalive=False)
        except REFUSAL_ERRORS as exc:
            return f"first read failed: {exc!r}"
        pytest.fail(f"connection was not refused: got HTTP {resp.status} {resp.body[:200]!r}")
    finally:
        try:
            stream.close()
        except OSError:
            pass
    raise AssertionError("unreachable")


# ---------------------------------------------------------------------------------------
# TLS material made by `berth tls init`


@dataclasses.dataclass
class TlsFiles:
    """Server and client files as `berth tls init` lays them out in one directory."""

    dir: Path

    @property
    def ca(self) -> Path:
        return self.dir / "ca.pem"

    @property
    def ca_key(self) -> Path:
        return self.dir / "ca-key.pem"

    @property
    def server_cert(self) -> Path:
        return self.dir / "server-cert.pem"

    @property
    def server_key(self) -> Path:
        return self.dir / "server-key.pem"

    @property
    def client_cert(self) -> Path:
        return self.dir / "cert.pem"

    @property
    def client_key(self) -> Path:
        return self.dir / "key.pem"

    def daemon_flags(self) -> list[str]:
        return [
            "--tlsverify",
            f"--tlscacert={self.ca}",
            f"--tlscert={self.server_cert}",
            f"--tlskey={self.server_key}",
        ]

    def client_ctx(self, **kw: Any) -> ssl.SSLContext:
        return client_context(self.ca, self.client_cert, self.client_key, **kw)


def run_cmd(
    argv: Sequence[str | os.PathLike[str]],
    *,
    env: dict[str, str] | None = None,
    check: bool = True,
    timeout: float = CMD_TIMEOUT,
    input: str | None = None,
) -> subprocess.CompletedProcess[str]:
    proc = subprocess.run(
        [str(a) for a in argv],
        env=env,
        capture_output=True,
        text=True,
        timeout=timeout,
        input=input,
        stdin=None if input is not None else subprocess.DEVNULL,
    )
    if check and proc.returncode != 0:
        raise AssertionError(
            f"command failed ({proc.returncode}): {' '.join(map(str, argv))}\n"
            f"--- stdout ---\n{proc.stdout}\n--- stderr ---\n{proc.stderr}"
        )
    return proc


def clean_env(extra: dict[str, str] | None = None) -> dict[str, str]:
    """The environment without any DOCKER_*/BERTH_* client settings, plus extra."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("DOCKER_", "BERTH_"))}
    env.update(extra or {})
    return env


def berth(*args: str | os.PathLike[str], env: dict[str, str] | None = None, check: bool = True,
          timeout: float = CMD_TIMEOUT) -> subprocess.CompletedProcess[str]:
    return run_cmd([BERTH_BIN, *args], env=clean_env(env), check=check, timeout=timeout)


def import_busybox(docker_env: dict[str, str], tag: str = "busybox:latest") -> None:
    """Imports the test image (Debian's busybox-static as a rootfs, `CMD ["sh"]`) into the
    daemon that `docker_env` points the docker CLI at."""
    rootfs = subprocess.run([str(REPO_ROOT / "scripts" / "busybox-rootfs")], check=True, capture_output=True).stdout
    subprocess.run([DOCKER_BIN, "import", "-c", 'CMD ["sh"]', "-", tag],
                   input=rootfs, env=docker_env, check=True, capture_output=True, timeout=60)


def tls_init(directory: Path, sans: Iterable[str] = ("127.0.0.1",)) -> TlsFiles:
    directory.mkdir(parents=True, exist_ok=True)
    args: list[str] = ["tls", "init", "--dir", str(directory)]
    for s in sans:
        args += ["--san", s]
    berth(*args)
    files = TlsFiles(directory)
    for p in (files.ca, files.ca_key, files.server_cert, files.server_key, files.client_cert, files.client_key):
        assert p.is_file(), f"`berth tls init` did not write {p.name}"
    return files


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


# ---------------------------------------------------------------------------------------
# berthd


class DaemonStartError(AssertionError):
    pass


def isolated_network() -> tuple[list[str], Callable[[Path], list[str]]]:
    """For a berthd started without `Daemon`: its `--bridge`/`--bip` flags, and the cleanup
    to call with its data root once it has exited."""
    bridge, bip, _pool = pick_network()
    return [f"--bridge={bridge}", f"--bip={bip}"], lambda data_root: cleanup_bridges(bridge, data_root)


def cleanup_network(d: "Daemon") -> list[str]:
    """Removes what berthd `d` may leave on the host by design (its bridges and its iptables
    chains stay while a daemon is stopped, as docker0 does); returns what failed. A daemon
    started without its own `--bridge` (`bridge_flags=False`, for `--bridge=none`) names its
    chains after its data root."""
    problems = cleanup_bridges(d.bridge, d.data_root)
    if not d.bridge_flags:
        problems += cleanup_bridges(no_bridge_tag(d.data_root), d.data_root)
    return problems


class Daemon:
    """One berthd process with its own dirs under `root`, and its own default bridge name
    and subnets (`--bridge`, `--bip`, `default-address-pools`)."""

    def __init__(self, root: Path, name: str):
        self.name = name
        self.root = root
        self.root.mkdir(parents=True, exist_ok=True)
        self.sock = root / "berth.sock"
        self.data_root = root / "data"
        self.exec_root = root / "exec"
        self.pidfile = root / "berthd.pid"
        self.log_path = root / "berthd.log"
        self.port: int | None = None
        self.tls: TlsFiles | None = None
        self.tcp = False
        self.unix = True
        self.extra_args: list[str] = []
        # Environment beyond clean_env()'s (BERTH_* settings the daemon and its shims read).
        self.env: dict[str, str] = {}
        self.config: dict[str, Any] | None = None
        self.config_path = root / "daemon.json"
        self.use_data_root_flag = True
        self.proc: subprocess.Popen[bytes] | None = None
        self.starts = 0
        self.bridge, self.bip, self.pool = pick_network()
        # False: no `--bridge`/`--bip` (the test gives `--bridge=none` itself).
        self.bridge_flags = True
        self.cgroup_parent = pick_cgroup_parent()

    # -- command line

    @property
    def unix_host(self) -> str:
        return f"unix://{self.sock}"

    @property
    def tcp_host(self) -> str:
        assert self.port is not None
        return f"tcp://127.0.0.1:{self.port}"

    def argv(self) -> list[str]:
        argv = [str(BERTHD_BIN)]
        if self.unix:
            argv += ["-H", self.unix_host]
        if self.tcp:
            argv += ["-H", self.tcp_host]
        if self.tls is not None:
            argv += self.tls.daemon_flags()
        if self.use_data_root_flag:
            argv += [f"--data-root={self.data_root}"]
        argv += [f"--exec-root={self.exec_root}", f"--pidfile={self.pidfile}"]
        # Always an explicit daemon.json (empty unless the test sets keys), so that no
        # system-wide default config file can change what a test sees.
        config = dict(self.config or {})
        config.setdefault("default-address-pools", [{"base": self.pool, "size": 24}])
        self.config_path.write_text(json.dumps(config, indent=2))
        argv += [f"--config-file={self.config_path}"]
        if self.bridge_flags:
            argv += [f"--bridge={self.bridge}", f"--bip={self.bip}"]
        argv += [f"--cgroup-parent={self.cgroup_parent}"]
        argv += self.extra_args
        return argv

    # -- process control

    @property
    def pid(self) -> int:
        assert self.proc is not None
        return self.proc.pid

    def running(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def spawn(self) -> subprocess.Popen[bytes]:
        if self.tcp and self.port is None:
            self.port = free_port()
        self.starts += 1
        argv = self.argv()
        with open(self.log_path, "ab") as log:
            log.write(f"=== start #{self.starts}: {' '.join(argv)}\n".encode())
            log.flush()
            self.proc = subprocess.Popen(
                argv, stdin=subprocess.DEVNULL, stdout=log, stderr=log, env=clean_env(self.env),
                start_new_session=True
            )
        return self.proc

    def start(self, wait: bool = True, attempts: int = 3) -> "Daemon":
        for attempt in range(attempts):
            self.spawn()
            if not wait:
                return self
            try:
                self.wait_ready()
                return self
            except DaemonStartError:
                # Another test may have grabbed our free port between probe and bind.
                if self.tcp and not self.running() and "in use" in self.log_text().lower() and attempt + 1 < attempts:
                    self.port = free_port()
                    continue
                raise
        raise AssertionError("unreachable")

    def wait_ready(self, timeout: float = START_TIMEOUT) -> None:
        def ready() -> bool:
            if not self.running():
                raise DaemonStartError(
                    f"berthd exited with {self.proc.returncode if self.proc else None} before answering /_ping\n"
                    f"{self.log_tail()}"
                )
            if self.unix:
                resp = unix_request(self.sock, "GET", "/_ping")
                return resp.status == 200
            assert self.tls is not None
            return tls_request(self.port, self.tls.client_ctx()).status == 200

        try:
            poll(ready, timeout, f"berthd {self.name} to answer /_ping", fatal=(DaemonStartError,))
        except DaemonStartError:
            raise
        except TimeoutError as exc:
            raise DaemonStartError(f"{exc}\n{self.log_tail()}") from None

    def signal(self, sig: int) -> None:
        assert self.proc is not None
        self.proc.send_signal(sig)

    def wait_exit(self, timeout: float = STOP_TIMEOUT) -> int:
        assert self.proc is not None
        return self.proc.wait(timeout=timeout)

    def stop(self, timeout: float = STOP_TIMEOUT) -> int | None:
        """SIGTERM, then SIGKILL after timeout. Returns the exit status, or None if it had
        to be killed."""
        if self.proc is None:
            return None
        if self.proc.poll() is not None:
            return self.proc.returncode
        self.proc.send_signal(signal.SIGTERM)
        try:
            return self.proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait(timeout=timeout)
            return None

    def restart(self) -> "Daemon":
        code = self.stop()
        assert code == 0, f"berthd did not exit cleanly on SIGTERM (status {code})\n{self.log_tail()}"
        return self.start()

    # -- logs

    def log_text(self) -> str:
        try:
            return self.log_path.read_text(errors="replace")
        except FileNotFoundError:
            return ""

    def log_tail(self, n: int = 200) -> str:
        lines = self.log_text().splitlines()
        return f"--- berthd {self.name} stderr (last {n} lines) ---\n" + "\n".join(lines[-n:])

    # -- API over the unix socket

    def request(self, method: str, path: str, **kw: Any) -> Response:
        return unix_request(self.sock, method, path, **kw)

    def get_json(self, path: str) -> Any:
        resp = self.request("GET", path)
        assert resp.status == 200, f"GET {path}: {resp.status} {resp.text}"
        return resp.json()

    def tls_ctx(self, **kw: Any) -> ssl.SSLContext:
        assert self.tls is not None
        return self.tls.client_ctx(**kw)


def expect_start_failure(argv: Sequence[str], timeout: float = START_TIMEOUT) -> subprocess.CompletedProcess[str]:
    """Run berthd expecting it to exit non-zero by itself within timeout."""
    try:
        proc = subprocess.run(
            [str(a) for a in argv],
            stdin=subprocess.DEVNULL,
            capture_output=True,
            text=True,
            timeout=timeout,
            env=clean_env(),
        )
    except subprocess.TimeoutExpired as exc:
        raise AssertionError(
            f"berthd kept running (should have refused to start): {' '.join(argv)}\n{exc.stderr!r}"
        ) from None
    assert proc.returncode != 0, (
        f"berthd exited 0 but should have refused to start: {' '.join(argv)}\n{proc.stderr}"
    )
    return proc


# ---------------------------------------------------------------------------------------
# fixtures


def _base_tmp() -> Path:
    # Short: a unix socket path must fit in 108 bytes.
    return Path(tempfile.mkdtemp(prefix="berth-e2e-", dir=os.environ.get("BERTH_E2E_TMP", "/tmp")))


@pytest.fixture
def workdir(request: pytest.FixtureRequest) -> Any:
    path = _base_tmp()
    yield path
    shutil.rmtree(path, ignore_errors=True)


@pytest.fixture(autouse=True)
def _no_ca_bundle_override(monkeypatch: pytest.MonkeyPatch) -> None:
    """requests (under docker-py) lets $REQUESTS_CA_BUNDLE / $CURL_CA_BUNDLE replace the CA
    that docker.tls.TLSConfig(ca_cert=...) sets, and these machines export them: without
    this, docker-py would verify berthd against the system CAs instead of the test CA."""
    for var in ("REQUESTS_CA_BUNDLE", "CURL_CA_BUNDLE"):
        monkeypatch.delenv(var, raising=False)


@pytest.fixture(scope="session", autouse=True)
def _binaries_exist() -> None:
    missing = [str(p) for p in (BERTHD_BIN, BERTH_BIN) if not os.access(p, os.X_OK)]
    if missing:
        pytest.exit(f"berth binaries not built: {', '.join(missing)} (run `cargo build --workspace`)", returncode=2)


@pytest.fixture
def berthd(request: pytest.FixtureRequest, workdir: Path) -> Any:
    """Factory: `berthd(tls=..., tcp=..., extra_args=[...], config={...}, start=True)`;
    `bridge_flags=False` leaves out the daemon's own `--bridge`/`--bip`; `env` adds to the
    daemon's (otherwise clean) environment."""
    daemons: list[Daemon] = []
    request.node._berth_daemons = daemons

    def make(
        *,
        tls: TlsFiles | None = None,
        tcp: bool | None = None,
        unix: bool = True,
        extra_args: Sequence[str] = (),
        config: dict[str, Any] | None = None,
        data_root: Path | None = None,
        data_root_flag: bool = True,
        start: bool = True,
        name: str | None = None,
        bridge_flags: bool = True,
        env: dict[str, str] | None = None,
    ) -> Daemon:
        name = name or f"d{len(daemons)}"
        d = Daemon(workdir / name, name)
        d.env = dict(env or {})
        d.tls = tls
        d.tcp = bool(tls) if tcp is None else tcp
        d.unix = unix
        d.extra_args = list(extra_args)
        d.config = config
        d.use_data_root_flag = data_root_flag
        d.bridge_flags = bridge_flags
        if data_root is not None:
            d.data_root = data_root
        daemons.append(d)
        if start:
            d.start()
        return d

    yield make

    problems = []
    for d in daemons:
        if d.proc is None:
            continue
        was_running = d.running()
        code = d.stop()
        if d.running():
            problems.append(f"berthd {d.name} (pid {d.pid}) still running after SIGKILL")
        elif was_running and code is None:
            problems.append(f"berthd {d.name} did not exit within {STOP_TIMEOUT}s of SIGTERM; killed")
    for d in daemons:
        if d.proc is not None and not d.running():
            problems += cleanup_network(d)
            problems += cleanup_cgroups(d.cgroup_parent)
    request.node._berth_saved_logs = {d.name: d.log_tail() for d in daemons}
    if problems:
        pytest.fail("\n".join(problems) + "\n" + "\n".join(d.log_tail() for d in daemons), pytrace=False)


@pytest.fixture
def docker_env(workdir: Path) -> Callable[..., dict[str, str]]:
    """Environment for the docker CLI: no inherited DOCKER_*, a private DOCKER_CONFIG."""
    cfg = workdir / "docker-config"
    cfg.mkdir(exist_ok=True)

    def make(extra: dict[str, str] | None = None) -> dict[str, str]:
        return clean_env({"DOCKER_CONFIG": str(cfg), **(extra or {})})

    return make


@pytest.fixture
def docker(docker_env: Callable[..., dict[str, str]]) -> Callable[..., subprocess.CompletedProcess[str]]:
    """Run the real docker CLI: docker(*args, env={...}, check=True)."""
    if not (os.access(DOCKER_BIN, os.X_OK)):
        pytest.fail(f"docker CLI not found at {DOCKER_BIN}")

    def run(*args: str, env: dict[str, str] | None = None, check: bool = True) -> subprocess.CompletedProcess[str]:
        return run_cmd([DOCKER_BIN, *args], env=docker_env(env), check=check)

    return run


def container_ids(d: Daemon) -> list[str]:
    """Every container of daemon `d` (`docker ps -aq` through its docker_env)."""
    out = subprocess.run([DOCKER_BIN, "ps", "-aq"], env=d.docker_env, capture_output=True, text=True, timeout=60)
    return out.stdout.split()


def leak_check(d: Daemon) -> None:
    """Removes every container of `d` and stops it; then none of its mounts, shims or
    container cgroups may remain."""
    subprocess.run([DOCKER_BIN, "rm", "-f", *container_ids(d)], env=d.docker_env, capture_output=True, timeout=60)
    d.stop()
    roots = (str(d.data_root), str(d.exec_root))
    mounts = [l.split(" ")[4] for l in Path("/proc/self/mountinfo").read_text().splitlines()]
    assert not [m for m in mounts if m.startswith(roots)], mounts
    assert not shim_pids(roots), "shim processes left behind"
    assert not container_cgroups(d.cgroup_parent), "container cgroups left behind"


@pytest.fixture
def busybox_daemon(berthd: Callable[..., Daemon], docker_env: Callable[..., dict[str, str]]) -> Any:
    """Factory: a berthd (arguments as for `berthd`) with the busybox test image loaded and
    `.docker_env` set for the docker CLI; each one is leak-checked on teardown."""
    made: list[Daemon] = []

    def make(**kw: Any) -> Daemon:
        d = berthd(**kw)
        d.docker_env = docker_env({"DOCKER_HOST": d.unix_host})
        import_busybox(d.docker_env)
        made.append(d)
        return d

    yield make
    for d in made:
        leak_check(d)


@pytest.fixture
def tls_files(workdir: Path) -> TlsFiles:
    """`berth tls init --san 127.0.0.1 --san localhost` in a fresh dir."""
    return tls_init(workdir / "tls", sans=("127.0.0.1", "localhost"))


@pytest.fixture
def tls_daemon(berthd: Callable[..., Daemon], tls_files: TlsFiles) -> Daemon:
    """A berthd on its unix socket and on 127.0.0.1:PORT with mutual TLS."""
    return berthd(tls=tls_files)


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[None]) -> Any:
    outcome = yield
    report = outcome.get_result()
    if not report.failed:
        return
    saved = getattr(item, "_berth_saved_logs", None)
    if saved:
        for name, text in saved.items():
            report.sections.append((f"Captured stderr berthd {name}", text))
        return
    for d in getattr(item, "_berth_daemons", []):
        report.sections.append((f"Captured stderr berthd {d.name}", d.log_tail()))


# ---------------------------------------------------------------------------------------
# swagger


_SWAGGER: dict[str, Any] | None = None


def swagger() -> dict[str, Any]:
    global _SWAGGER
    if _SWAGGER is None:
        import yaml

        path = swagger_path()
        if not path.is_file():
            pytest.fail(f"API spec not found at {path} (set BERTH_SHARED)")
        with open(path) as f:
            _SWAGGER = yaml.safe_load(f)
    return _SWAGGER


def _resolve(schema: dict[str, Any]) -> dict[str, Any]:
    seen = 0
    while "$ref" in schema:
        ref = schema["$ref"]
        assert ref.startswith("#/definitions/"), ref
        schema = swagger()["definitions"][ref.split("/")[-1]]
        seen += 1
        assert seen < 20
    if "allOf" in schema:
        merged: dict[str, Any] = {"type": "object", "properties": {}}
        for part in schema["allOf"]:
            part = _resolve(part)
            merged["properties"].update(part.get("properties", {}))
        return merged
    return schema


_TYPES: dict[str, tuple[type, ...]] = {
    "string": (str,),
    "integer": (int,),
    "number": (int, float),
    "boolean": (bool,),
    "array": (list,),
    "object": (dict,),
}


def schema_errors(value: Any, schema: dict[str, Any], where: str = "$") -> list[str]:
    """Type errors of value against a swagger 2 schema. null is accepted anywhere (Go
    encodes nil slices and maps as null, and clients cope), unknown keys are allowed."""
    schema = _resolve(schema)
    if value is None:
        return []
    errors: list[str] = []
    typ = schema.get("type")
    if typ in _TYPES:
        ok = isinstance(value, _TYPES[typ]) and not (typ in ("integer", "number") and isinstance(value, bool))
        if not ok:
            return [f"{where}: expected {typ}, got {type(value).__name__} {value!r:.80}"]
    if isinstance(value, dict):
        props = schema.get("properties", {})
        for k, v in value.items():
            if k in props:
                errors += schema_errors(v, props[k], f"{where}.{k}")
            elif isinstance(schema.get("additionalProperties"), dict):
                errors += schema_errors(v, schema["additionalProperties"], f"{where}.{k}")
    elif isinstance(value, list) and "items" in schema:
        for i, v in enumerate(value):
            errors += schema_errors(v, schema["items"], f"{where}[{i}]")
    if "enum" in schema and value not in schema["enum"] and typ == "string":
        errors.append(f"{where}: {value!r} not in {schema['enum']}")
    return errors


def definition(name: str) -> dict[str, Any]:
    return swagger()["definitions"][name]


# ---------------------------------------------------------------------------------------
# the host after the whole suite

_HOST_CHECK = os.environ.get("BERTH_E2E_HOST_CHECK") == "1"


def _host_state() -> set[str]:
    """The host's network interfaces, iptables/ip6tables chains (filter and nat) and the
    test daemons' cgroup parents (berth-e2e-*): what a test could leave behind. Any kind
    counts, not only berth's: a CNI plugin run for a pod makes its own bridge and chains."""
    state = {f"link {p.name}" for p in Path("/sys/class/net").iterdir()}
    for root in (Path("/sys/fs/cgroup/memory"), Path("/sys/fs/cgroup")):
        if root.is_dir():
            state |= {f"cgroup /{p.name}" for p in root.glob("berth-e2e-*") if p.is_dir()}
    for tool in ("iptables", "ip6tables"):
        for table in ("filter", "nat"):
            out = subprocess.run([tool, "-w", "-t", table, "-S"], capture_output=True, text=True).stdout
            state |= {f"{tool} {table} {l.split()[1]}" for l in out.splitlines() if l.startswith("-N ")}
    return state


def _is_berths(entry: str) -> bool:
    """Whether a leftover is berth's own, which the check removes (others are reported)."""
    name = entry.split()[-1]
    return (entry.startswith("cgroup ") or name.startswith("BERTH-") or name == "berth0"
            or (entry.startswith("link ") and name.startswith("bt") and len(name) == 8))


def pytest_sessionstart(session: pytest.Session) -> None:
    # Only the controlling process (not an xdist worker), and only where the suite runs
    # alone on the host (tests/run sets BERTH_E2E_HOST_CHECK=1).
    if _HOST_CHECK and not hasattr(session.config, "workerinput"):
        session.config._berth_host_before = _host_state()  # type: ignore[attr-defined]


def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    before = getattr(session.config, "_berth_host_before", None)
    if before is None:
        return
    left = sorted(_host_state() - before)
    if left:
        # Every test daemon's bridge and chains are removed by its fixture: these came
        # from a daemon started outside one (or on berthd's defaults).
        print(f"\nFAILED: the suite left on the host: {', '.join(left)} "
              "(berth's removed; others to remove by hand)", file=sys.stderr)
        session.exitstatus = pytest.ExitCode.TESTS_FAILED
        tags = {e.split()[-1].split("-", 2)[-1] if " BERTH-" in e else e.split()[-1]
                for e in left if _is_berths(e) and not e.startswith("cgroup ")}
        for tag in sorted(tags):
            cleanup_bridges(tag, Path("/nonexistent"))
        for e in left:
            if e.startswith("cgroup "):
                cleanup_cgroups(e.split()[1])
