"""`GET /containers/{id}/attach/ws` against berthd and the reference dockerd 20.10: the
same WebSocket session (stdin in, output out as unmultiplexed binary messages, the log so
far with `logs`) must give the same bytes on both."""

from __future__ import annotations

import base64
import os
import socket
import subprocess
import tempfile

import refdockerd
from conftest import DOCKER_BIN, clean_env, import_busybox, poll
from test_containers import daemon  # noqa: F401 - the fixture


class UnixWebSocket:
    """A minimal RFC 6455 client over the daemon's unix socket."""

    def __init__(self, sock_path, path: str, headers: str = ""):
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.sock.settimeout(30)
        self.sock.connect(str(sock_path))
        key = base64.b64encode(os.urandom(16)).decode()
        self.sock.sendall((f"GET {path} HTTP/1.1\r\nHost: localhost\r\nUpgrade: websocket\r\n"
                           f"Connection: Upgrade\r\nSec-WebSocket-Key: {key}\r\n"
                           f"Sec-WebSocket-Version: 13\r\n{headers}\r\n").encode())
        head = b""
        while b"\r\n\r\n" not in head:
            chunk = self.sock.recv(1)
            if not chunk:
                break
            head += chunk
        self.status = int(head.split(b" ", 2)[1]) if head else 0

    def _exact(self, n: int) -> bytes:
        out = b""
        while len(out) < n:
            chunk = self.sock.recv(n - len(out))
            if not chunk:
                raise EOFError("connection closed")
            out += chunk
        return out

    def send(self, data: bytes) -> None:
        mask = os.urandom(4)
        self.sock.sendall(bytes([0x82, 0x80 | len(data)]) + mask
                          + bytes(b ^ mask[i % 4] for i, b in enumerate(data)))

    def recv_text(self, until: bytes) -> tuple[set[int], bytes]:
        """Message payloads joined until `until` appears; the opcodes seen."""
        got, ops = b"", set()
        while until not in got:
            b0, b1 = self._exact(2)
            n = b1 & 0x7F
            if n == 126:
                n = int.from_bytes(self._exact(2), "big")
            elif n == 127:
                n = int.from_bytes(self._exact(8), "big")
            payload = self._exact(n)
            if b0 & 0x0F == 0x8:
                break
            ops.add(b0 & 0x0F)
            got += payload
        return ops, got

    def close(self) -> None:
        self.sock.close()


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
    why = refdockerd.available()
    assert why is None, f"the reference dockerd cannot run: {why}"
    ref = refdockerd.RefDockerd()
    try:
        ref.start()
        env = clean_env({"DOCKER_HOST": f"unix://{ref.sock}", "DOCKER_CONFIG": tempfile.mkdtemp(dir=ref.root)})
        import_busybox(env)
        assert session(ref.sock, env) == berth
    finally:
        ref.stop()
