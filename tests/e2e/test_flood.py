"""Floods: a published port, the TLS port and slow clients must not take berthd's
descriptors, the API or other containers' ports with them; berthd takes its whole hard
open-file limit while containers keep the limit they had.

The caps and timeouts are berthd's own (crates/berth-network/src/proxy.rs,
crates/berth-server/src/serve.rs); the tests shrink them through their documented
test-only environment variables so that a flood is tens of connections, not thousands."""

from __future__ import annotations

import os
import resource
import select
import socket
import ssl
import subprocess
import threading

from conftest import DOCKER_BIN, HTTPStream, free_port, poll

# proxy.rs `MAX_TCP_CONNS_ENV`, serve.rs `HANDSHAKE_TIMEOUT_ENV` / `HEADER_READ_TIMEOUT_ENV`.
PROXY_CAP_ENV = "BERTHD_TEST_PROXY_MAX_CONNS"
HANDSHAKE_ENV = "BERTHD_TEST_HANDSHAKE_TIMEOUT_MS"
HEADER_ENV = "BERTHD_TEST_HEADER_READ_TIMEOUT_MS"
# serve.rs `MAX_HANDSHAKES_PER_IP` (not shrunk).
HANDSHAKES_PER_IP = 32


def dk(d, *args, check=True, timeout=60):
    return subprocess.run([DOCKER_BIN, *args], env=d.docker_env, capture_output=True, text=True,
                          timeout=timeout, check=check)


def _fds(pid: int) -> int:
    return len(os.listdir(f"/proc/{pid}/fd"))


def _pipes(pid: int) -> int:
    n = 0
    for f in os.scandir(f"/proc/{pid}/fd"):
        try:
            n += os.readlink(f.path).startswith("pipe:")
        except OSError:
            pass
    return n


def _echo(port: int, data: bytes = b"ping", host: str = "127.0.0.1") -> bytes:
    """Sends `data`, half-closes, returns all that came back before the other end closed."""
    with socket.create_connection((host, port), timeout=10) as s:
        s.sendall(data)
        s.shutdown(socket.SHUT_WR)
        chunks = []
        while chunk := s.recv(65536):
            chunks.append(chunk)
    return b"".join(chunks)


def _closed(s: socket.socket) -> bool:
    """Whether the other end has closed `s` (end of stream or reset), without blocking."""
    if not select.select([s], [], [], 0)[0]:
        return False
    try:
        return s.recv(1, socket.MSG_PEEK | socket.MSG_DONTWAIT) == b""
    except BlockingIOError:
        return False
    except OSError:
        return True


def _echo_server(d, name: str, port: int) -> None:
    dk(d, "run", "-d", "--name", name, "-p", f"127.0.0.1:{port}:7", "busybox",
       "nc", "-ll", "-p", "7", "-e", "cat")
    # The proxy accepts before nc listens; a refused upstream closes the connection empty.
    poll(lambda: _echo(port) == b"ping", 20, f"{name}'s echo server to answer")


def test_flood_of_a_published_port_leaves_the_api_and_other_ports_working(busybox_daemon, monkeypatch):
    cap = 8
    monkeypatch.setenv(PROXY_CAP_ENV, str(cap))
    d = busybox_daemon()
    flooded, other = free_port(), free_port()
    _echo_server(d, "flooded", flooded)
    _echo_server(d, "other", other)
    fds, pipes = _fds(d.pid), _pipes(d.pid)

    flood = []
    try:
        for _ in range(cap * 5):
            flood.append(socket.create_connection(("127.0.0.1", flooded), timeout=10))
        poll(lambda: sum(map(_closed, flood)) >= cap * 4, 20,
             f"{cap * 4} of {cap * 5} flood connections to be closed")
        # A connection that has sent nothing costs berthd no pipe.
        assert _pipes(d.pid) <= pipes, (pipes, _pipes(d.pid))
        # Bytes on every held connection: the relayed ones then hold their pipes too.
        for s in flood:
            try:
                s.sendall(b"x")
            except OSError:
                pass  # already closed by berthd
        # Every connection past the cap is closed at once; those relayed keep echoing.
        closed = poll(lambda: (n := sum(map(_closed, flood))) >= cap * 4 and n, 20,
                      f"{cap * 4} of {cap * 5} flood connections to be closed")
        held = [s for s in flood if not _closed(s)]
        assert len(held) == cap, f"{closed} closed, {len(held)} held; a cap of {cap} relays {cap}"
        for s in held:
            assert s.recv(1) == b"x"
        # berthd holds at most 6 descriptors per relayed connection (2 sockets, 2 pipes).
        assert _fds(d.pid) <= fds + cap * 6 + 8, (fds, _fds(d.pid))

        # The API answers, and another container's published port relays.
        assert d.request("GET", "/_ping").body == b"OK"
        assert "flooded" in dk(d, "ps").stdout
        assert _echo(other, b"still here") == b"still here"

        # A closed connection frees its slot for the next client of the flooded port.
        held[0].close()
        poll(lambda: _echo(flooded, b"next") == b"next", 20, "a freed slot on the flooded port")
    finally:
        for s in flood:
            s.close()
    # Nothing of the flood stays behind in berthd.
    poll(lambda: _fds(d.pid) <= fds and _pipes(d.pid) <= pipes, 20,
         f"berthd back to {fds} descriptors and {pipes} pipes")
    assert _echo(flooded, b"after") == b"after"


def _tls_from(port: int, ctx: ssl.SSLContext, source: str) -> HTTPStream:
    """A TLS connection to 127.0.0.1:port from the loopback address `source`."""
    raw = socket.create_connection(("127.0.0.1", port), timeout=10, source_address=(source, 0))
    try:
        return HTTPStream(ctx.wrap_socket(raw, server_hostname="127.0.0.1"), host=f"127.0.0.1:{port}")
    except BaseException:
        raw.close()
        raise


def _dropped(c: HTTPStream) -> bool:
    """Reads TLS connection `c` until the server closes it (True) or 30 s pass (False)."""
    c.sock.settimeout(30)
    try:
        while c.sock.recv(4096):
            pass
    except TimeoutError:
        return False
    except (ssl.SSLError, OSError):
        pass
    return True


def test_tls_port_drops_silent_and_slow_clients_and_keeps_serving(berthd, tls_files, monkeypatch):
    monkeypatch.setenv(HANDSHAKE_ENV, "3000")
    monkeypatch.setenv(HEADER_ENV, "2000")
    d = berthd(tls=tls_files)
    ctx = d.tls_ctx()
    fds = _fds(d.pid)

    # Many connections from one address that never start a handshake: past the per-address
    # cap they are closed at once, so berthd holds few of them, and a client from
    # another address is served meanwhile.
    idle = []
    try:
        for _ in range(HANDSHAKES_PER_IP * 3):
            idle.append(socket.create_connection(("127.0.0.1", d.port), timeout=10))
        good = _tls_from(d.port, ctx, "127.0.0.2")
        try:
            assert good.request("GET", "/_ping").body == b"OK"
            assert _fds(d.pid) <= fds + HANDSHAKES_PER_IP + 8, (fds, _fds(d.pid))
        finally:
            good.close()
        # The handshake timeout ends the rest.
        poll(lambda: all(map(_closed, idle)), 30, "every connection without a handshake to be closed")
    finally:
        for s in idle:
            s.close()

    # A streaming response (events) outlives the header-read timeout: it is older than the
    # two clients dropped for it, and still delivers an event after.
    events = _tls_from(d.port, ctx, "127.0.0.1")
    silent = _tls_from(d.port, ctx, "127.0.0.1")
    slow = _tls_from(d.port, ctx, "127.0.0.1")
    try:
        events.sock.sendall(b"GET /events HTTP/1.1\r\nHost: x\r\n\r\n")
        assert events.rfile.readline().startswith(b"HTTP/1.1 200"), "events stream started"
        slow.sock.sendall(b"GET /_ping HTTP/1.1\r\nHost: x\r\n")
        # A client that sends no request, and one that never ends its header, are cut off.
        assert _dropped(silent), "a TLS client that sends no request is dropped"
        assert _dropped(slow), "a TLS client that never ends its request header is dropped"
        resp = d.request("POST", "/networks/create", body=b'{"Name": "flood-evt"}',
                         headers={"Content-Type": "application/json"})
        assert resp.status == 201, resp.text
        seen = []

        def read_event() -> None:
            while line := events.rfile.readline():
                seen.append(line)
                if b"flood-evt" in line:
                    return

        reader = threading.Thread(target=read_event, daemon=True)
        reader.start()
        reader.join(30)
        assert any(b"flood-evt" in l for l in seen), seen
        d.request("DELETE", "/networks/flood-evt")
    finally:
        for c in (events, silent, slow):
            c.close()
    assert tls_request_ok(d.port, ctx)
    poll(lambda: _fds(d.pid) <= fds, 20, f"berthd back to {fds} descriptors")


def tls_request_ok(port: int, ctx: ssl.SSLContext) -> bool:
    c = _tls_from(port, ctx, "127.0.0.1")
    try:
        return c.request("GET", "/_ping", keepalive=False).body == b"OK"
    finally:
        c.close()


def test_berthd_takes_the_hard_open_file_limit_and_containers_keep_theirs(busybox_daemon):
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    lower = min(1024, hard)
    resource.setrlimit(resource.RLIMIT_NOFILE, (lower, hard))
    try:
        d = busybox_daemon()
    finally:
        resource.setrlimit(resource.RLIMIT_NOFILE, (soft, hard))
    limits = open(f"/proc/{d.pid}/limits").read()
    line = next(l for l in limits.splitlines() if l.startswith("Max open files"))
    assert line.split()[3:5] == [str(hard), str(hard)], line
    out = dk(d, "run", "--rm", "busybox", "sh", "-c", "ulimit -n").stdout.strip()
    assert out == str(lower), f"a container's open-file limit changed: {out} (berthd was given {lower})"
