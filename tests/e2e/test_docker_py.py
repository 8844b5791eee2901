"""docker-py (the `docker` package) against berthd over the unix socket and mutual TLS."""

from __future__ import annotations

import pytest

from conftest import API_VERSION, Daemon, TlsFiles

docker = pytest.importorskip("docker")
import docker.tls  # noqa: E402


def unix_client(d: Daemon, **kw):
    return docker.DockerClient(base_url="unix://" + str(d.sock), timeout=30, **kw)


def tls_client(d: Daemon, files: TlsFiles, host: str = "127.0.0.1", **kw):
    tls = docker.tls.TLSConfig(
        client_cert=(str(files.client_cert), str(files.client_key)),
        ca_cert=str(files.ca),
        verify=True,
    )
    return docker.DockerClient(base_url=f"https://{host}:{d.port}", tls=tls, timeout=30, **kw)


def check_client(client, d: Daemon) -> None:
    try:
        assert client.ping() is True
        version = client.version()
        assert version["ApiVersion"] == API_VERSION
        assert version["Os"] == "linux"
        info = client.info()
        assert info["DockerRootDir"] == str(d.data_root)
        assert info["ID"]
        assert isinstance(info["NCPU"], int) and info["NCPU"] >= 1
    finally:
        client.close()


def test_unix_socket(berthd):
    d = berthd()
    check_client(unix_client(d), d)


def test_unix_socket_auto_version(berthd):
    d = berthd()
    client = unix_client(d, version="auto")
    try:
        assert client.api.api_version == API_VERSION
    finally:
        client.close()
    check_client(unix_client(d, version="auto"), d)


@pytest.mark.parametrize("pinned", ["1.24", "1.30", "1.41"])
def test_unix_socket_pinned_old_version(berthd, pinned):
    # docker-compose 1.x pins old API versions such as 1.30.
    d = berthd()
    client = unix_client(d, version=pinned)
    assert client.api.api_version == pinned
    check_client(client, d)


def test_low_level_api_client(berthd):
    d = berthd()
    api = docker.APIClient(base_url="unix://" + str(d.sock), version="auto")
    try:
        assert api.ping() is True
        assert api.version()["ApiVersion"] == API_VERSION
        assert api.info()["DockerRootDir"] == str(d.data_root)
    finally:
        api.close()


def test_tls(tls_daemon, tls_files):
    check_client(tls_client(tls_daemon, tls_files), tls_daemon)


def test_tls_localhost(tls_daemon, tls_files):
    check_client(tls_client(tls_daemon, tls_files, host="localhost"), tls_daemon)


def test_tls_pinned_old_version(tls_daemon, tls_files):
    client = tls_client(tls_daemon, tls_files, version="1.30")
    check_client(client, tls_daemon)


def test_tls_refuses_daemon_from_other_ca(tls_daemon, workdir):
    from conftest import tls_init

    other = tls_init(workdir / "other-ca")
    # version="auto" makes the constructor itself call /version; a pinned version only
    # connects on ping(). Both must fail verification.
    with pytest.raises(docker.errors.DockerException) as exc:
        tls_client(tls_daemon, other, version="auto")
    assert "certificate" in str(exc.value).lower(), exc.value
    client = tls_client(tls_daemon, other, version="1.44")
    try:
        with pytest.raises(Exception) as exc2:
            client.ping()
        assert "certificate" in str(exc2.value).lower() or "ssl" in str(exc2.value).lower(), exc2.value
    finally:
        client.close()


def test_from_env_tls(tls_daemon, tls_files, monkeypatch):
    monkeypatch.setenv("DOCKER_HOST", tls_daemon.tcp_host)
    monkeypatch.setenv("DOCKER_TLS_VERIFY", "1")
    monkeypatch.setenv("DOCKER_CERT_PATH", str(tls_files.dir))
    check_client(docker.from_env(timeout=30), tls_daemon)
