"""The real docker CLI (v28, API 1.50) against berthd, over the unix socket and mutual TLS."""

from __future__ import annotations

import re

from conftest import API_VERSION, MIN_API_VERSION, Daemon, TlsFiles


def server_section(text: str) -> str:
    idx = text.find("\nServer:")
    assert idx >= 0, f"no Server: section in\n{text}"
    return text[idx:]


def test_version_over_unix_socket(berthd, docker):
    d: Daemon = berthd()
    out = docker("-H", d.unix_host, "version").stdout
    server = server_section(out)
    assert re.search(rf"API version:\s+{re.escape(API_VERSION)}\b", server), out
    assert re.search(rf"minimum version {re.escape(MIN_API_VERSION)}\b", server), out
    # The client negotiated 1.50 through /_ping, so nothing was downgraded.
    assert "downgraded" not in out, out


def test_version_format_api_version(berthd, docker):
    d = berthd()
    out = docker("-H", d.unix_host, "version", "--format", "{{.Server.APIVersion}}").stdout
    assert out.strip() == API_VERSION


def test_version_format_json_has_engine_component(berthd, docker):
    import json

    d = berthd()
    out = docker("-H", d.unix_host, "version", "--format", "{{json .Server}}").stdout
    server = json.loads(out)
    assert server["ApiVersion"] == API_VERSION
    assert server["MinAPIVersion"] == MIN_API_VERSION
    assert server["Os"] == "linux"
    names = [c["Name"] for c in server.get("Components") or []]
    assert "Engine" in names, server


def test_info_over_unix_socket(berthd, docker):
    d = berthd()
    proc = docker("-H", d.unix_host, "info")
    out = proc.stdout
    assert "Server:" in out
    assert f"Docker Root Dir: {d.data_root}" in out, out
    assert re.search(r"Server Version: \S+", out), out
    assert re.search(r"Cgroup Driver: \S+", out), out
    assert re.search(r"Kernel Version: \S+", out), out
    # docker info prints server-side problems as "ERROR:" lines on stderr.
    assert "ERROR" not in proc.stderr + out, proc.stderr


def test_info_format_matches_api(berthd, docker):
    d = berthd()
    root = docker("-H", d.unix_host, "info", "--format", "{{.DockerRootDir}}").stdout.strip()
    assert root == str(d.data_root)
    ident = docker("-H", d.unix_host, "info", "--format", "{{.ID}}").stdout.strip()
    assert ident and ident == d.get_json("/info")["ID"]


def test_docker_host_env_unix(berthd, docker):
    d = berthd()
    out = docker("version", "--format", "{{.Server.APIVersion}}", env={"DOCKER_HOST": d.unix_host}).stdout
    assert out.strip() == API_VERSION


def tls_env(d: Daemon, files: TlsFiles, host: str = "127.0.0.1") -> dict[str, str]:
    return {
        "DOCKER_HOST": f"tcp://{host}:{d.port}",
        "DOCKER_TLS_VERIFY": "1",
        "DOCKER_CERT_PATH": str(files.dir),
    }


def test_version_over_tls_env(tls_daemon, tls_files, docker):
    out = docker("version", env=tls_env(tls_daemon, tls_files)).stdout
    assert re.search(rf"API version:\s+{re.escape(API_VERSION)}\b", server_section(out)), out


def test_info_over_tls_env(tls_daemon, tls_files, docker):
    out = docker("info", env=tls_env(tls_daemon, tls_files)).stdout
    assert f"Docker Root Dir: {tls_daemon.data_root}" in out, out


def test_version_over_tls_localhost_san(tls_daemon, tls_files, docker):
    # tls_files was made with --san 127.0.0.1 --san localhost
    out = docker(
        "version", "--format", "{{.Server.APIVersion}}", env=tls_env(tls_daemon, tls_files, host="localhost")
    ).stdout
    assert out.strip() == API_VERSION


def test_version_over_tls_flags(tls_daemon, tls_files, docker):
    out = docker(
        "--tlsverify",
        f"--tlscacert={tls_files.ca}",
        f"--tlscert={tls_files.client_cert}",
        f"--tlskey={tls_files.client_key}",
        "-H",
        tls_daemon.tcp_host,
        "version",
        "--format",
        "{{.Server.APIVersion}}",
    ).stdout
    assert out.strip() == API_VERSION


def test_docker_cli_refuses_daemon_from_other_ca(tls_daemon, workdir, docker):
    from conftest import tls_init

    other = tls_init(workdir / "other-ca")
    proc = docker("version", env=tls_env(tls_daemon, other), check=False)
    assert proc.returncode != 0
    assert "Server:" not in proc.stdout or "API version" not in server_section(proc.stdout)
    assert re.search(r"certificate|x509|tls", proc.stderr, re.I), proc.stderr


def test_docker_cli_without_client_cert_is_refused(tls_daemon, tls_files, workdir, docker):
    import shutil

    only_ca = workdir / "only-ca"
    only_ca.mkdir()
    shutil.copy(tls_files.ca, only_ca / "ca.pem")
    # --tls (verify the server) but present no client certificate.
    proc = docker(
        "--tls", f"--tlscacert={only_ca / 'ca.pem'}", "-H", tls_daemon.tcp_host, "version", check=False
    )
    assert proc.returncode != 0, proc.stdout
    # ...and the daemon still serves a good client.
    out = docker("version", "--format", "{{.Server.APIVersion}}", env=tls_env(tls_daemon, tls_files)).stdout
    assert out.strip() == API_VERSION
