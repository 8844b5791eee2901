"""Revocation: `berth tls revoke NAME --dir DIR` writes DIR/crl.pem, `berthd --tlscrl`
(or daemon.json "tlscrl") refuses the certificates it lists at the handshake, and SIGHUP
reloads it and closes the open connections (an `events` stream, a hijacked attach) of the
certificates revoked since, while other clients' connections stay open."""

from __future__ import annotations

import json
import signal
import socket
import ssl
import time
from pathlib import Path

import pytest

from conftest import (
    BERTHD_BIN,
    DOCKER_BIN,
    HTTPStream,
    TlsFiles,
    berth,
    clean_env,
    client_context,
    expect_start_failure,
    free_port,
    poll,
    run_cmd,
    tls_connect,
    tls_init,
    tls_refused,
    tls_request,
)

# Bound on every wait for the daemon: a stream to close, an event to arrive, a reload.
LIMIT = 15


def new_client(files: TlsFiles, name: str) -> Path:
    berth("tls", "client", name, "--dir", files.dir)
    return files.dir / "clients" / name


def ctx_of(files: TlsFiles, cert_dir: Path) -> ssl.SSLContext:
    return client_context(files.ca, cert_dir / "cert.pem", cert_dir / "key.pem")


def revoke(files: TlsFiles, name: str) -> str:
    return berth("tls", "revoke", name, "--dir", files.dir).stdout


def open_stream(port: int, ctx: ssl.SSLContext, request: bytes) -> HTTPStream:
    """Sends `request` and reads the response head; the body stays unread."""
    s = tls_connect(port, ctx, timeout=LIMIT)
    s.sock.sendall(request)
    status = s.rfile.readline(65537)
    assert status.split(b" ")[1:2] in ([b"200"], [b"101"]), status
    while s.rfile.readline(65537) not in (b"\r\n", b""):
        pass
    return s


def open_events(port: int, ctx: ssl.SSLContext) -> HTTPStream:
    return open_stream(port, ctx, b"GET /v1.50/events HTTP/1.1\r\nHost: berth\r\n\r\n")


def assert_closed_by_daemon(stream: HTTPStream, what: str) -> None:
    """Reads until end of stream or a connection error; fails if the daemon keeps the
    connection open for LIMIT seconds (each read is bounded by the socket timeout)."""
    deadline = time.monotonic() + LIMIT
    while time.monotonic() < deadline:
        try:
            data = stream.rfile.read1(65536)
        except TimeoutError:
            break
        except (ssl.SSLError, OSError):
            return
        if not data:
            return
    pytest.fail(f"{what} still open {LIMIT}s after the reload")


def read_until(stream: HTTPStream, needle: bytes) -> bytes:
    seen = b""
    deadline = time.monotonic() + LIMIT
    while needle not in seen:
        assert time.monotonic() < deadline, seen
        chunk = stream.rfile.read1(65536)
        assert chunk, f"stream closed before {needle!r}: {seen!r}"
        seen += chunk
    return seen


def docker_with(d, cert_dir: Path, *args: str):
    env = clean_env(
        {"DOCKER_HOST": f"tcp://127.0.0.1:{d.port}", "DOCKER_TLS_VERIFY": "1", "DOCKER_CERT_PATH": str(cert_dir)}
    )
    return run_cmd([DOCKER_BIN, *args], env=env, check=False)


def test_revoked_client_refused_at_handshake_others_accepted(berthd, tls_files):
    bob = new_client(tls_files, "bob")
    alice = new_client(tls_files, "alice")
    out = revoke(tls_files, "bob")
    assert 'Revoked "bob"' in out and "kill -HUP" in out and "--tlscrl=" in out, out
    # The list comes from daemon.json here; the flag is the same setting.
    d = berthd(tls=tls_files, config={"tlscrl": str(tls_files.dir / "crl.pem")})

    refusal = tls_refused(d.port, ctx_of(tls_files, bob))
    assert "revoked" in refusal.lower(), refusal
    assert tls_request(d.port, ctx_of(tls_files, alice)).status == 200
    # The first client of `berth tls init` is unaffected too.
    assert tls_request(d.port, tls_files.client_ctx()).status == 200

    # The docker CLI with bob's files is refused; with alice's it works.
    refused = docker_with(d, bob, "version", "--format", "{{.Server.APIVersion}}")
    assert refused.returncode != 0, refused.stdout
    assert "remote error: tls: revoked certificate" in refused.stderr, refused.stderr
    ok = docker_with(d, alice, "version", "--format", "{{.Server.APIVersion}}")
    assert ok.returncode == 0 and ok.stdout.strip(), ok.stderr

    # Revoking twice is harmless, and an unknown name is an error.
    assert "Already revoked" in revoke(tls_files, "bob")
    unknown = berth("tls", "revoke", "nobody", "--dir", tls_files.dir, check=False)
    assert unknown.returncode == 1 and "no certificate named" in unknown.stderr, unknown
    assert d.running()


def test_sighup_closes_the_open_streams_of_a_revoked_client(berthd, tls_files):
    bob = new_client(tls_files, "bob")
    alice = new_client(tls_files, "alice")
    # `berth tls init` wrote an empty list: the daemon runs with it from the start.
    d = berthd(tls=tls_files, extra_args=[f"--tlscrl={tls_files.dir / 'crl.pem'}"])

    bob_events = open_events(d.port, ctx_of(tls_files, bob))
    alice_events = open_events(d.port, ctx_of(tls_files, alice))
    try:
        revoke(tls_files, "bob")
        d.signal(signal.SIGHUP)
        assert_closed_by_daemon(bob_events, "bob's events stream")
        tls_refused(d.port, ctx_of(tls_files, bob))

        # alice's stream is still open and still delivers events.
        resp = d.request("POST", "/volumes/create", body=json.dumps({"Name": "after-revoke"}).encode())
        assert resp.status == 201, resp
        read_until(alice_events, b'"after-revoke"')
        assert tls_request(d.port, ctx_of(tls_files, alice)).status == 200
    finally:
        bob_events.close()
        alice_events.close()
    log = d.log_text()
    assert "closing a connection: its client certificate is revoked" in log, d.log_tail()
    assert d.running()


def test_sighup_closes_the_attach_and_logs_follow_of_a_revoked_client(busybox_daemon, tls_files, docker):
    bob = new_client(tls_files, "bob")
    d = busybox_daemon(tls=tls_files, extra_args=[f"--tlscrl={tls_files.dir / 'crl.pem'}"])
    docker("run", "-d", "-i", "--name", "held", "busybox", "cat", env=d.docker_env)
    attach = open_stream(
        d.port,
        ctx_of(tls_files, bob),
        b"POST /v1.50/containers/held/attach?stream=1&stdin=1&stdout=1 HTTP/1.1\r\n"
        b"Host: berth\r\nUpgrade: tcp\r\nConnection: Upgrade\r\n\r\n",
    )
    logs = open_stream(
        d.port,
        ctx_of(tls_files, bob),
        b"GET /v1.50/containers/held/logs?follow=1&stdout=1 HTTP/1.1\r\nHost: berth\r\n\r\n",
    )
    try:
        # The streams work: cat echoes what bob types (raw stream, no tty: 8-byte headers),
        # and `logs -f` follows it.
        attach.sock.sendall(b"ping-before\n")
        read_until(attach, b"ping-before")
        read_until(logs, b"ping-before")
        revoke(tls_files, "bob")
        d.signal(signal.SIGHUP)
        assert_closed_by_daemon(attach, "bob's attach stream")
        assert_closed_by_daemon(logs, "bob's logs -f stream")
    finally:
        attach.close()
        logs.close()
    # The container is untouched by its client going away.
    state = d.get_json("/containers/held/json")["State"]
    assert state["Running"], state
    docker("rm", "-f", "held", env=d.docker_env)


def _tls_argv(workdir: Path, port: int, files: TlsFiles, extra: list[str]) -> list[str]:
    return [
        str(BERTHD_BIN),
        "-H", f"tcp://127.0.0.1:{port}",
        f"--data-root={workdir / 'data'}",
        f"--exec-root={workdir / 'exec'}",
        f"--pidfile={workdir / 'berthd.pid'}",
        *files.daemon_flags(),
        *extra,
    ]  # fmt: skip


def _assert_port_closed(port: int) -> None:
    with socket.socket() as s:
        assert s.connect_ex(("127.0.0.1", port)) != 0, f"port {port} is listening"


def test_crl_of_another_ca_missing_or_without_tls_refuses_to_start(workdir, tls_files):
    other = tls_init(workdir / "other", sans=("127.0.0.1",))
    port = free_port()
    proc = expect_start_failure(_tls_argv(workdir, port, tls_files, [f"--tlscrl={other.dir / 'crl.pem'}"]))
    assert "is not signed by a CA in" in proc.stderr, proc.stderr
    _assert_port_closed(port)

    proc = expect_start_failure(_tls_argv(workdir, port, tls_files, [f"--tlscrl={workdir / 'none.pem'}"]))
    assert "none.pem" in proc.stderr and "berth tls revoke" in proc.stderr, proc.stderr
    _assert_port_closed(port)

    argv = [a for a in _tls_argv(workdir, port, tls_files, []) if not a.startswith("--tls")]
    proc = expect_start_failure([*argv, f"--tlscrl={tls_files.dir / 'crl.pem'}"])
    assert "needs --tlsverify" in proc.stderr, proc.stderr


def test_failed_crl_reload_keeps_the_previous_list(berthd, tls_files):
    bob = new_client(tls_files, "bob")
    revoke(tls_files, "bob")
    d = berthd(tls=tls_files, extra_args=[f"--tlscrl={tls_files.dir / 'crl.pem'}"])
    log_len = len(d.log_text())
    (tls_files.dir / "crl.pem").write_text("-----BEGIN X509 CRL-----\nAAAA\n-----END X509 CRL-----\n")
    d.signal(signal.SIGHUP)
    poll(lambda: "TLS reload failed" in d.log_text()[log_len:], LIMIT, "the failed reload to be logged")
    tls_refused(d.port, ctx_of(tls_files, bob))
    assert tls_request(d.port, tls_files.client_ctx()).status == 200
