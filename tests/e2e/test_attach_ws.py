"""`GET /containers/{id}/attach/ws` against berthd and the reference dockerd 20.10: the
same WebSocket session (stdin in, output out as unmultiplexed binary messages, the log so
far with `logs`) must give the same bytes on both."""

from __future__ import annotations

import socket
import subprocess
import tempfile

import refdockerd
import wsclient
from conftest import DOCKER_BIN, clean_env, import_busybox, poll
from test_containers import daemon  # noqa: F401 - the fixture


class UnixWebSocket(wsclient.WebSocket):
    """A WebSocket over the daemon's unix socket, reading messages until a marker."""

    def __init__(self, sock_path, path: str):
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        sock.settimeout(30)
        sock.connect(str(sock_path))
        super().__init__(sock, "localhost", path)

    def recv_text(self, until: bytes) -> tuple[set[int], bytes]:
        """Message payloads joined until `until` appears; the opcodes seen."""
        got, ops = b"", set()
        while until not in got:
            op, payload = self.recv()
            if op == 0x8:
                break
            ops.add(op)
            got += payload
        return ops, got


def session(sock_path, env: dict[str, str]) -> tuple:
    """Starts `cat` after printing a line, attaches over a WebSocket with logs, types a
    line and reads the echo; what came back, the opcodes, and an error answer."""
    dk = lambda *a: subprocess.run([str(DOCKER_BIN), *a], env=env, capture_output=True, text=True,
                                   timeout=60)
    cid = dk("run", "-d", "-i", "--network", "none", "busybox", "sh", "-c", "echo early; exec cat").stdout.strip()
    assert cid, "docker run failed"
    try:
        poll(lambda: dk("logs", cid).stdout == "early\n", 20, "the first line")
        ws = UnixWebSocket(sock_path, f"/v1.41/containers/{cid}/attach/ws?logs=1&stream=1&stdin=1&stdout=1&stderr=1")
        try:
            ops, early = ws.recv_text(b"early\n")
            ws.send(b"typed line\n")
            ops2, echo = ws.recv_text(b"typed line\n")
        finally:
            ws.close()
        missing = UnixWebSocket(sock_path, "/v1.41/containers/no-such-container/attach/ws?stream=1&stdout=1")
        missing.close()
        return ws.status, early, echo, ops | ops2, missing.status
    finally:
        dk("rm", "-f", cid)


def test_attach_ws_as_dockerd(daemon):
    berth = session(daemon.sock, daemon.docker_env)
    assert berth[:4] == (101, b"early\n", b"typed line\n", {0x2}), berth
    with refdockerd.running() as ref:
        env = clean_env({"DOCKER_HOST": f"unix://{ref.sock}", "DOCKER_CONFIG": tempfile.mkdtemp(dir=ref.root)})
        import_busybox(env)
        assert session(ref.sock, env) == berth
