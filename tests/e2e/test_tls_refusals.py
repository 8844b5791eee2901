"""The refusal matrix: each bad client (or bad set-up) is refused, and the same daemon
keeps serving a good mutual-TLS client afterwards.

Raw handshakes go through Python's ssl module (the system OpenSSL), so these are real TLS
clients. The bad client certificates are made with `openssl`, signed by the CA key that
`berth tls init` wrote (or by an unrelated CA)."""

from __future__ import annotations

import socket
import ssl
from pathlib import Path

import pytest

import certs
from conftest import (
    BERTHD_BIN,
    Daemon,
    TlsFiles,
    client_context,
    expect_start_failure,
    free_port,
    poll,
    tls_refused,
    tls_request,
)

TLS_VERSIONS = {
    "tls1.2": ssl.TLSVersion.TLSv1_2,
    "tls1.3": ssl.TLSVersion.TLSv1_3,
}


def assert_still_serves(d: Daemon) -> None:
    resp = tls_request(d.port, d.tls_ctx())
    assert resp.status == 200 and resp.body == b"OK", resp
    assert d.running()


def berth_ca(files: TlsFiles) -> certs.Cert:
    return certs.from_files("berth-ca", files.ca, files.ca_key, files.ca)


def make_bad_client(kind: str, files: TlsFiles, workdir: Path) -> tuple[Path | None, Path | None]:
    """(cert chain, key) of a client certificate the daemon must refuse."""
    out = workdir / f"bad-{kind}"
    if kind == "none":
        return None, None
    if kind == "other-ca":
        other = certs.make_root_ca(out / "ca", cn="Some Other CA")
        c = certs.make_leaf(out, "client", other, cn="client")
    elif kind == "expired":
        c = certs.make_leaf(
            out, "client", berth_ca(files), cn="client", startdate="20200101000000Z", enddate="20210101000000Z"
        )
    elif kind == "not-yet-valid":
        c = certs.make_leaf(
            out, "client", berth_ca(files), cn="client", startdate="20990101000000Z", enddate="21000101000000Z"
        )
    elif kind == "server-auth-only":
        c = certs.make_leaf(out, "client", berth_ca(files), cn="client", usages=("serverAuth",))
    elif kind == "self-signed":
        c = certs.make_root_ca(out, name="client", cn="client")
    else:
        raise ValueError(kind)
    return c.chain, c.key


BAD_CLIENTS = ["none", "other-ca", "expired", "not-yet-valid", "server-auth-only", "self-signed"]


@pytest.mark.parametrize("version", list(TLS_VERSIONS))
@pytest.mark.parametrize("kind", BAD_CLIENTS)
def test_bad_client_certificate_refused(tls_daemon, tls_files, workdir, kind, version):
    cert, key = make_bad_client(kind, tls_files, workdir)
    v = TLS_VERSIONS[version]
    # The client itself trusts the daemon's CA, so only the daemon can be the one refusing.
    ctx = client_context(tls_files.ca, cert, key, min_version=v, max_version=v)
    how = tls_refused(tls_daemon.port, ctx)
    print(f"{kind}/{version}: {how}")
    assert_still_serves(tls_daemon)
    # and again, to be sure the refusal left nothing behind
    tls_refused(tls_daemon.port, ctx)
    assert_still_serves(tls_daemon)


def test_good_client_both_tls_versions(tls_daemon, tls_files):
    for v in TLS_VERSIONS.values():
        ctx = tls_files.client_ctx(min_version=v, max_version=v)
        assert tls_request(tls_daemon.port, ctx).status == 200


def test_tls_1_1_refused(tls_daemon, tls_files):
    # TLS 1.2+ only. The local OpenSSL may not even offer 1.1 at its security level; either
    # way no connection may come up.
    import warnings

    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", DeprecationWarning)
            ctx = tls_files.client_ctx(min_version=ssl.TLSVersion.TLSv1, max_version=ssl.TLSVersion.TLSv1_1)
        ctx.set_ciphers("DEFAULT:@SECLEVEL=0")
    except (ssl.SSLError, ValueError) as exc:
        pytest.skip(f"local OpenSSL cannot make a TLS 1.1 client: {exc}")
    tls_refused(tls_daemon.port, ctx)
    assert_still_serves(tls_daemon)


def test_plain_http_to_tls_port(tls_daemon):
    with socket.create_connection(("127.0.0.1", tls_daemon.port), timeout=10) as s:
        s.sendall(b"GET /_ping HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n")
        data = b""
        try:
            while len(data) < 4096:
                chunk = s.recv(4096)
                if not chunk:
                    break
                data += chunk
        except (ConnectionError, socket.timeout):
            pass
    assert not data.startswith(b"HTTP/1.1 200"), data[:200]
    assert_still_serves(tls_daemon)


def test_garbage_to_tls_port(tls_daemon):
    with socket.create_connection(("127.0.0.1", tls_daemon.port), timeout=10) as s:
        s.sendall(b"\x16\x03\x01\x00\x05hello" + b"\x00" * 512)
        try:
            while s.recv(4096):
                pass
        except (ConnectionError, socket.timeout):
            pass
    assert_still_serves(tls_daemon)


def test_client_refuses_server_name_mismatch(tls_daemon, tls_files):
    # A verifying client asking for a name not in the server certificate's SANs refuses.
    ctx = tls_files.client_ctx(check_hostname=True)
    with pytest.raises(ssl.SSLCertVerificationError) as exc:
        tls_request(tls_daemon.port, ctx, server_hostname="wrong.example")
    assert "hostname" in str(exc.value).lower() or "match" in str(exc.value).lower(), exc.value
    assert_still_serves(tls_daemon)


def test_client_refuses_server_from_other_ca(tls_daemon, workdir):
    other = certs.make_root_ca(workdir / "other", cn="Other CA")
    ctx = client_context(other.cert, tls_daemon.tls.client_cert, tls_daemon.tls.client_key)
    with pytest.raises(ssl.SSLCertVerificationError):
        tls_request(tls_daemon.port, ctx)
    assert_still_serves(tls_daemon)


def test_many_refusals_then_good_client(tls_daemon, tls_files, workdir):
    cert, key = make_bad_client("other-ca", tls_files, workdir)
    bad = client_context(tls_files.ca, cert, key)
    for _ in range(20):
        tls_refused(tls_daemon.port, bad)
        tls_refused(tls_daemon.port, client_context(tls_files.ca))
    assert_still_serves(tls_daemon)


def test_idle_half_open_connection_does_not_block_others(tls_daemon):
    # A client that connects and never speaks must not stall the accept loop.
    with socket.create_connection(("127.0.0.1", tls_daemon.port), timeout=10):
        assert_still_serves(tls_daemon)


# ---- berthd refuses to start


def _tcp_argv(workdir: Path, port: int, extra: list[str]) -> list[str]:
    return [
        str(BERTHD_BIN),
        "-H", f"tcp://127.0.0.1:{port}",
        f"--data-root={workdir / 'data'}",
        f"--exec-root={workdir / 'exec'}",
        f"--pidfile={workdir / 'berthd.pid'}",
        *extra,
    ]  # fmt: skip


def _assert_port_closed(port: int) -> None:
    with socket.socket() as s:
        s.settimeout(2)
        assert s.connect_ex(("127.0.0.1", port)) != 0, f"something listens on {port}"


def test_tcp_without_tls_refuses_to_start(workdir):
    port = free_port()
    proc = expect_start_failure(_tcp_argv(workdir, port, []))
    assert "berth tls init" in proc.stderr + proc.stdout, proc.stderr
    _assert_port_closed(port)


@pytest.mark.parametrize(
    "variant",
    ["tlsverify-only", "files-without-tlsverify", "no-ca", "no-key", "missing-files"],
)
def test_tcp_with_incomplete_tls_refuses_to_start(workdir, tls_files, variant):
    f = tls_files
    extra = {
        "tlsverify-only": ["--tlsverify"],
        "files-without-tlsverify": [f"--tlscacert={f.ca}", f"--tlscert={f.server_cert}", f"--tlskey={f.server_key}"],
        "no-ca": ["--tlsverify", f"--tlscert={f.server_cert}", f"--tlskey={f.server_key}"],
        "no-key": ["--tlsverify", f"--tlscacert={f.ca}", f"--tlscert={f.server_cert}"],
        "missing-files": [
            "--tlsverify",
            f"--tlscacert={workdir / 'nope-ca.pem'}",
            f"--tlscert={workdir / 'nope-cert.pem'}",
            f"--tlskey={workdir / 'nope-key.pem'}",
        ],
    }[variant]
    port = free_port()
    proc = expect_start_failure(_tcp_argv(workdir, port, extra))
    msg = proc.stderr + proc.stdout
    assert msg.strip(), "no error message"
    if variant == "files-without-tlsverify":
        assert "--tlsverify" in msg, msg  # the files exist: the hint is the missing flag
    elif variant != "missing-files":
        assert "berth tls" in msg, msg
    _assert_port_closed(port)


def test_tcp_refusal_leaves_no_socket_or_lock(workdir, berthd):
    """After a refused start, a good daemon can use the same dirs right away."""
    port = free_port()
    expect_start_failure(_tcp_argv(workdir / "d0", port, []))
    d = berthd(name="d0")
    assert d.get_json("/version")["ApiVersion"]


def test_request_log_names_client_subject(tls_daemon):
    assert tls_request(tls_daemon.port, tls_daemon.tls_ctx(), path="/version").status == 200

    def logged() -> bool:
        return any(
            "/version" in line and "200" in line and "CN=client" in line for line in tls_daemon.log_text().splitlines()
        )

    poll(logged, 10, "a request log line with GET /version 200 CN=client")
    line = next(ln for ln in tls_daemon.log_text().splitlines() if "/version" in ln and "CN=client" in ln)
    assert "GET" in line, line
