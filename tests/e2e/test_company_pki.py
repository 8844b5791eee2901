"""Company-managed certificates made with `openssl`, not with `berth tls`: a root CA, an
intermediate CA, a server certificate signed by the intermediate, and client certificates
(ECDSA P-256 and RSA) that present the chain. berthd must serve the docker CLI, docker-py
and berth with them."""

from __future__ import annotations

import shutil
from dataclasses import dataclass
from pathlib import Path

import pytest

import certs
from conftest import API_VERSION, TlsFiles, berth, client_context, tls_refused, tls_request


@dataclass
class CompanyPki:
    daemon: TlsFiles  # ca.pem = root, server-cert.pem = server + intermediate
    ec_client: Path  # DOCKER_CERT_PATH dirs
    rsa_client: Path
    root: certs.Cert
    intermediate: certs.Cert


def make_pki(workdir: Path, server_key: str = "rsa") -> CompanyPki:
    base = workdir / "pki"
    root = certs.make_root_ca(base / "root", cn="ACME Root CA")
    inter = certs.make_intermediate(base / "inter", "inter", root, cn="ACME Issuing CA 1")
    server = certs.make_leaf(
        base / "server",
        "server",
        inter,
        cn="berthd.acme.example",
        usages=("serverAuth",),
        sans=("127.0.0.1", "localhost", "berthd.acme.example"),
        key_kind=server_key,
        key_format="traditional",  # PKCS#1 / SEC1, as many company tools still write
    )
    ec = certs.make_leaf(base / "ec", "ec", inter, cn="alice", key_kind="ec", key_format="traditional")
    rsa = certs.make_leaf(base / "rsa", "rsa", inter, cn="bob", key_kind="rsa")

    daemon_dir = base / "daemon"
    daemon_dir.mkdir()
    shutil.copyfile(root.cert, daemon_dir / "ca.pem")
    shutil.copyfile(server.chain, daemon_dir / "server-cert.pem")
    shutil.copyfile(server.key, daemon_dir / "server-key.pem")
    # The daemon dir also holds a client set, so TlsFiles.client_ctx() works for polling.
    shutil.copyfile(rsa.chain, daemon_dir / "cert.pem")
    shutil.copyfile(rsa.key, daemon_dir / "key.pem")
    return CompanyPki(
        daemon=TlsFiles(daemon_dir),
        ec_client=certs.docker_cert_dir(base / "ec-client", ec),
        rsa_client=certs.docker_cert_dir(base / "rsa-client", rsa),
        root=root,
        intermediate=inter,
    )


@pytest.fixture(params=["rsa", "ec"], ids=["rsa-server", "ecdsa-server"])
def pki(request, workdir) -> CompanyPki:
    return make_pki(workdir, server_key=request.param)


@pytest.fixture
def pki_daemon(berthd, pki):
    return berthd(tls=pki.daemon)


def env_for(d, cert_dir: Path, host: str = "127.0.0.1") -> dict[str, str]:
    return {"DOCKER_HOST": f"tcp://{host}:{d.port}", "DOCKER_TLS_VERIFY": "1", "DOCKER_CERT_PATH": str(cert_dir)}


@pytest.mark.parametrize("client", ["ec_client", "rsa_client"])
def test_docker_cli(pki_daemon, pki, docker, client):
    cert_dir = getattr(pki, client)
    out = docker("version", "--format", "{{.Server.APIVersion}}", env=env_for(pki_daemon, cert_dir)).stdout
    assert out.strip() == API_VERSION
    out = docker("info", env=env_for(pki_daemon, cert_dir, host="localhost")).stdout
    assert f"Docker Root Dir: {pki_daemon.data_root}" in out, out


@pytest.mark.parametrize("client", ["ec_client", "rsa_client"])
def test_docker_py(pki_daemon, pki, client):
    docker = pytest.importorskip("docker")
    import docker.tls

    cert_dir = getattr(pki, client)
    tls = docker.tls.TLSConfig(
        client_cert=(str(cert_dir / "cert.pem"), str(cert_dir / "key.pem")),
        ca_cert=str(cert_dir / "ca.pem"),
        verify=True,
    )
    c = docker.DockerClient(base_url=f"https://127.0.0.1:{pki_daemon.port}", tls=tls, timeout=30)
    try:
        assert c.ping() is True
        assert c.version()["ApiVersion"] == API_VERSION
        assert c.info()["DockerRootDir"] == str(pki_daemon.data_root)
    finally:
        c.close()


@pytest.mark.parametrize("client", ["ec_client", "rsa_client"])
def test_berth_cli(pki_daemon, pki, client):
    out = berth("version", env=env_for(pki_daemon, getattr(pki, client))).stdout
    assert "Server:" in out, out


def test_client_leaf_without_intermediate_is_refused(berthd, pki, workdir):
    """A client presenting only its leaf cannot be chained to the root alone."""
    leaf_only = workdir / "leaf-only.pem"
    certs.openssl("x509", "-in", str(pki.ec_client / "cert.pem"), "-out", str(leaf_only))
    d = berthd(tls=pki.daemon)
    ctx = client_context(pki.root.cert, leaf_only, pki.ec_client / "key.pem")
    tls_refused(d.port, ctx)
    assert tls_request(d.port, d.tls_ctx()).status == 200


def test_daemon_ca_bundle_with_intermediate(berthd, pki, workdir):
    """--tlscacert holding root + intermediate (a common company bundle) also works, even
    for a client that presents only its leaf."""
    bundle_dir = workdir / "bundle"
    shutil.copytree(pki.daemon.dir, bundle_dir)
    (bundle_dir / "ca.pem").write_text(pki.root.cert.read_text() + pki.intermediate.cert.read_text())
    d = berthd(tls=TlsFiles(bundle_dir))
    leaf_only = workdir / "leaf-only.pem"
    certs.openssl("x509", "-in", str(pki.ec_client / "cert.pem"), "-out", str(leaf_only))
    ctx = client_context(pki.root.cert, leaf_only, pki.ec_client / "key.pem")
    assert tls_request(d.port, ctx).status == 200
    ctx = client_context(pki.root.cert, pki.rsa_client / "cert.pem", pki.rsa_client / "key.pem")
    assert tls_request(d.port, ctx).status == 200


def test_client_subject_logged(pki_daemon, pki):
    from conftest import poll

    ctx = client_context(pki.ec_client / "ca.pem", pki.ec_client / "cert.pem", pki.ec_client / "key.pem")
    assert tls_request(pki_daemon.port, ctx, path="/info").status == 200
    poll(
        lambda: any("/info" in ln and "alice" in ln for ln in pki_daemon.log_text().splitlines()),
        10,
        "a log line for GET /info naming CN=alice",
    )
