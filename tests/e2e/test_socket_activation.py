"""`-H fd://`: berthd adopts the sockets systemd passes (here via systemd-socket-activate,
which sets LISTEN_FDS/LISTEN_PID exactly as systemd does), and refuses a passed TCP socket
without mutual TLS, like a `tcp://` host."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest

from conftest import BERTHD_BIN, DOCKER_BIN, clean_env, free_port, isolated_network, poll, unix_request

ACTIVATE = shutil.which("systemd-socket-activate")
pytestmark = pytest.mark.skipif(ACTIVATE is None, reason="systemd-socket-activate is not installed (package systemd)")


# Each daemon here gets its own bridge and subnet (by its tmp dir), removed after the test.
_NETS: dict[Path, tuple[list[str], object]] = {}


@pytest.fixture(autouse=True)
def _own_bridge(tmp_path: Path):
    yield
    if tmp_path in _NETS:
        _flags, cleanup = _NETS.pop(tmp_path)
        assert cleanup(tmp_path / "data") == []  # type: ignore[operator]


def activated(tmp: Path, listen: str, *extra: str) -> subprocess.Popen[bytes]:
    flags, _cleanup = _NETS.setdefault(tmp, isolated_network())
    extra = (*flags, *extra)
    argv = [
        ACTIVATE, "-l", listen,
        str(BERTHD_BIN), "-H", "fd://",
        f"--data-root={tmp / 'data'}", f"--exec-root={tmp / 'exec'}",
        f"--pidfile={tmp / 'berthd.pid'}", f"--config-file={tmp / 'daemon.json'}", *extra,
    ]
    (tmp / "daemon.json").write_text("{}")
    log = open(tmp / "berthd.log", "wb")
    return subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=log, stderr=log, env=clean_env(), start_new_session=True)


def stop(proc: subprocess.Popen[bytes]) -> None:
    if proc.poll() is None:
        proc.terminate()
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(10)


def test_unix_socket_from_systemd_serves_docker_cli(tmp_path: Path) -> None:
    sock = tmp_path / "activated.sock"
    proc = activated(tmp_path, str(sock))
    try:
        poll(lambda: sock.exists(), 10, "systemd-socket-activate to create the socket")
        # The first connection starts berthd, which then answers it on the passed socket.
        resp = poll(lambda: unix_request(sock, "GET", "/_ping"), 30, "berthd to answer on the passed socket")
        assert resp.status == 200 and resp.text == "OK"
        out = subprocess.run([DOCKER_BIN, "-H", f"unix://{sock}", "version", "--format", "{{.Server.APIVersion}}"],
                             capture_output=True, text=True, timeout=60, env=clean_env())
        assert out.returncode == 0, out.stderr
        assert out.stdout.strip() == "1.50"
    finally:
        stop(proc)
    assert proc.returncode == 0, (tmp_path / "berthd.log").read_text()


def test_tcp_socket_from_systemd_without_tls_is_refused(tmp_path: Path) -> None:
    port = free_port()
    proc = activated(tmp_path, f"127.0.0.1:{port}")
    try:
        import socket

        # Connecting makes systemd-socket-activate exec berthd, which must refuse to start.
        def connect() -> bool:
            try:
                socket.create_connection(("127.0.0.1", port), timeout=2).close()
                return True
            except OSError:
                return False

        poll(connect, 10, "the activation socket to accept")
        code = proc.wait(30)
    finally:
        stop(proc)
    log = (tmp_path / "berthd.log").read_text()
    assert code != 0, log
    assert "berth tls init" in log, log
