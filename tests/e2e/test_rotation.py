"""Certificate rotation: SIGHUP reloads --tlscacert/--tlscert/--tlskey without dropping
the listener; open connections finish on the old set, new ones use the new set."""

from __future__ import annotations

import re
import shutil
import signal
import ssl
import subprocess
from pathlib import Path

import pytest

import certs
from conftest import (
    TlsFiles,
    client_context,
    poll,
    tls_connect,
    tls_init,
    tls_refused,
    tls_request,
)

DAEMON_FILES = ("ca.pem", "server-cert.pem", "server-key.pem")
RELOAD_TIMEOUT = 15


def install(src: Path, dst: Path, names=DAEMON_FILES + ("cert.pem", "key.pem")) -> None:
    """Overwrite dst's files in place with src's (what an admin's `cp` does)."""
    dst.mkdir(parents=True, exist_ok=True)
    for name in names:
        shutil.copyfile(src / name, dst / name)


def peer_cert_der(port: int, ctx: ssl.SSLContext) -> bytes:
    stream = tls_connect(port, ctx)
    try:
        der = stream.sock.getpeercert(binary_form=True)
        assert stream.request("GET", "/_ping", keepalive=False).status == 200
        return der
    finally:
        stream.close()


def pem_to_der(path: Path) -> bytes:
    return ssl.PEM_cert_to_DER_cert(path.read_text().split("-----END CERTIFICATE-----")[0] + "-----END CERTIFICATE-----\n")


def test_sighup_rotates_to_new_ca(berthd, workdir):
    ca1 = tls_init(workdir / "ca1", sans=("127.0.0.1",))
    ca2 = tls_init(workdir / "ca2", sans=("127.0.0.1",))
    live = workdir / "live"
    install(ca1.dir, live)
    d = berthd(tls=TlsFiles(live))
    port = d.port

    old = tls_connect(port, ca1.client_ctx())
    try:
        first = old.request("GET", "/_ping")
        assert first.status == 200 and first.body == b"OK"
        assert (first.header("connection") or "").lower() != "close"

        install(ca2.dir, live)
        d.signal(signal.SIGHUP)

        poll(
            lambda: tls_request(port, ca2.client_ctx()).status == 200,
            RELOAD_TIMEOUT,
            "a new connection with CA2 client files to succeed after SIGHUP",
        )
        assert d.running() and d.port == port

        # New CA1 clients are refused by the daemon (the client here trusts the new server
        # certificate, so the refusal is the daemon's)...
        tls_refused(port, client_context(ca2.ca, ca1.client_cert, ca1.client_key))
        # ...and a pure CA1 client cannot verify the new server certificate either.
        with pytest.raises(ssl.SSLCertVerificationError):
            tls_request(port, ca1.client_ctx())

        # The connection opened before the reload still answers.
        again = old.request("GET", "/_ping")
        assert again.status == 200 and again.body == b"OK"
        version = old.request("GET", "/version")
        assert version.status == 200 and version.json()["ApiVersion"]
    finally:
        old.close()

    # the unix socket was never affected
    assert d.request("GET", "/_ping").status == 200


def test_sighup_renews_server_certificate_same_ca(berthd, workdir):
    ca = tls_init(workdir / "ca", sans=("127.0.0.1",))
    live = workdir / "live"
    install(ca.dir, live)
    d = berthd(tls=TlsFiles(live))
    before = peer_cert_der(d.port, ca.client_ctx())
    assert before == pem_to_der(ca.server_cert)

    issuer = certs.from_files("ca", ca.ca, ca.ca_key, ca.ca)
    renewed = certs.make_leaf(
        workdir / "renewed", "server", issuer, cn="renewed", usages=("serverAuth",), sans=("127.0.0.1",)
    )
    shutil.copyfile(renewed.chain, live / "server-cert.pem")
    shutil.copyfile(renewed.key, live / "server-key.pem")
    d.signal(signal.SIGHUP)

    new_der = pem_to_der(renewed.cert)
    poll(lambda: peer_cert_der(d.port, ca.client_ctx()) == new_der, RELOAD_TIMEOUT, "the renewed server cert")
    # existing client certificates keep working: same CA
    assert tls_request(d.port, ca.client_ctx()).status == 200


def test_failed_reload_keeps_serving_old_certificates(berthd, workdir):
    ca1 = tls_init(workdir / "ca1", sans=("127.0.0.1",))
    ca2 = tls_init(workdir / "ca2", sans=("127.0.0.1",))
    live = workdir / "live"
    install(ca1.dir, live)
    d = berthd(tls=TlsFiles(live))

    log_len = len(d.log_text())
    (live / "server-key.pem").write_text("-----BEGIN PRIVATE KEY-----\nnot a key\n-----END PRIVATE KEY-----\n")
    d.signal(signal.SIGHUP)
    # Nothing else happens meanwhile, so the next log lines are the reload's outcome.
    poll(
        lambda: re.search(r"reload|tls|cert|key|error|warn", d.log_text()[log_len:], re.I),
        RELOAD_TIMEOUT,
        "berthd to log the failed reload",
    )
    assert d.running(), d.log_tail()
    assert tls_request(d.port, ca1.client_ctx()).status == 200

    # A later good reload still works.
    install(ca2.dir, live)
    d.signal(signal.SIGHUP)
    poll(lambda: tls_request(d.port, ca2.client_ctx()).status == 200, RELOAD_TIMEOUT, "reload to CA2")
    assert d.running()


def test_sighup_without_tls_is_harmless(berthd):
    d = berthd()
    d.signal(signal.SIGHUP)
    # SIGHUP must neither kill nor stop the daemon; several in a row too.
    d.signal(signal.SIGHUP)
    for _ in range(3):
        try:
            assert d.request("GET", "/_ping").status == 200
        except OSError as exc:
            try:
                status = d.wait_exit(5)
            except subprocess.TimeoutExpired:
                status = "still running"
            pytest.fail(f"berthd stopped serving after SIGHUP (exit status {status}): {exc!r}")
    # Signals are delivered lowest number first, so had SIGHUP's default action (terminate)
    # applied, stop() would see it rather than a clean exit.
    assert d.stop() == 0, d.log_tail()
