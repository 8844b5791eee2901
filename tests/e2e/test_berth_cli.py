"""The `berth` client: version/info over the unix socket and mutual TLS, `berth tls`."""

from __future__ import annotations

import os
import re
import shutil
import stat

import pytest

from conftest import (API_VERSION, DOCKER_BIN, Daemon, TlsFiles, berth, clean_env, client_context, run_cmd,
                      tls_init, tls_request)


def tls_env(d: Daemon, files: TlsFiles, host: str = "127.0.0.1", prefix: str = "DOCKER") -> dict[str, str]:
    return {
        f"{prefix}_HOST": f"tcp://{host}:{d.port}",
        f"{prefix}_TLS_VERIFY": "1",
        f"{prefix}_CERT_PATH": str(files.dir),
    }


def check_version_output(out: str) -> None:
    assert "Client:" in out, out
    idx = out.find("Server:")
    assert idx >= 0, out
    assert re.search(rf"API version:\s+{re.escape(API_VERSION)}\b", out[idx:]), out


def test_version_unix(berthd):
    d = berthd()
    check_version_output(berth("-H", d.unix_host, "version").stdout)


def test_info_unix(berthd):
    d = berthd()
    out = berth("-H", d.unix_host, "info").stdout
    assert "Server:" in out, out
    assert f"Docker Root Dir: {d.data_root}" in out, out
    assert re.search(r"Server Version: \S+", out), out


def test_docker_host_env_unix(berthd):
    d = berthd()
    check_version_output(berth("version", env={"DOCKER_HOST": d.unix_host}).stdout)


def test_berth_host_env_unix(berthd):
    d = berthd()
    check_version_output(berth("version", env={"BERTH_HOST": d.unix_host}).stdout)


def test_version_tls_env(tls_daemon, tls_files):
    check_version_output(berth("version", env=tls_env(tls_daemon, tls_files)).stdout)


def test_info_tls_env(tls_daemon, tls_files):
    out = berth("info", env=tls_env(tls_daemon, tls_files)).stdout
    assert f"Docker Root Dir: {tls_daemon.data_root}" in out, out


def test_version_tls_berth_env(tls_daemon, tls_files):
    check_version_output(berth("version", env=tls_env(tls_daemon, tls_files, prefix="BERTH")).stdout)


def test_version_tls_localhost(tls_daemon, tls_files):
    check_version_output(berth("version", env=tls_env(tls_daemon, tls_files, host="localhost")).stdout)


def test_version_tls_flags(tls_daemon, tls_files):
    out = berth(
        "-H",
        tls_daemon.tcp_host,
        "--tlsverify",
        f"--tlscacert={tls_files.ca}",
        f"--tlscert={tls_files.client_cert}",
        f"--tlskey={tls_files.client_key}",
        "version",
    ).stdout
    check_version_output(out)


def test_refuses_daemon_from_other_ca(tls_daemon, workdir):
    other = tls_init(workdir / "other-ca")
    proc = berth("version", env=tls_env(tls_daemon, other), check=False)
    assert proc.returncode != 0, proc.stdout
    assert re.search(r"certificate|x509|tls|issuer|trust", proc.stderr, re.I), proc.stderr
    assert "Server:" not in proc.stdout, proc.stdout


def test_refuses_server_name_mismatch(berthd, workdir, docker):
    # `berth tls init` always adds localhost and 127.0.0.1, so make a server certificate
    # (signed by the same CA) that names only berth.example, and connect to 127.0.0.1.
    import certs

    files = tls_init(workdir / "tls", sans=("127.0.0.1",))
    ca = certs.from_files("ca", files.ca, files.ca_key, files.ca)
    other = certs.make_leaf(
        workdir / "named", "server", ca, cn="berth.example", usages=("serverAuth",), sans=("berth.example",)
    )
    shutil.copyfile(other.chain, files.server_cert)
    shutil.copyfile(other.key, files.server_key)
    d = berthd(tls=files)
    for host in ("127.0.0.1", "localhost"):
        proc = berth("version", env=tls_env(d, files, host=host), check=False)
        assert proc.returncode != 0, proc.stdout
        assert "Server:" not in proc.stdout, proc.stdout
        assert re.search(r"certificate|name|x509|tls|host", proc.stderr, re.I), proc.stderr
    # the docker CLI agrees that this certificate does not fit
    assert docker("version", env=tls_env(d, files), check=False).returncode != 0


def test_tls_init_files(workdir):
    files = tls_init(workdir / "init", sans=("127.0.0.1", "localhost", "berth.example"))
    for key in (files.ca_key, files.server_key, files.client_key):
        mode = stat.S_IMODE(os.stat(key).st_mode)
        assert mode == 0o600, f"{key.name} has mode {oct(mode)}"
    from certs import openssl

    server = openssl("x509", "-in", str(files.server_cert), "-noout", "-ext", "subjectAltName,extendedKeyUsage")
    assert "IP Address:127.0.0.1" in server, server
    assert "DNS:localhost" in server and "DNS:berth.example" in server, server
    assert "Server Authentication" in server, server
    client = openssl("x509", "-in", str(files.client_cert), "-noout", "-subject", "-ext", "extendedKeyUsage")
    assert "Client Authentication" in client, client
    assert re.search(r"CN\s*=\s*client", client), client
    # both chain to the CA
    for leaf in (files.server_cert, files.client_cert):
        out = openssl("verify", "-CAfile", str(files.ca), str(leaf))
        assert out.strip().endswith("OK"), out


def test_tls_client_command(tls_daemon, tls_files, workdir):
    out_dir = workdir / "alice"
    berth("tls", "client", "alice", "--dir", str(tls_files.dir), "--out", str(out_dir))
    for name in ("ca.pem", "cert.pem", "key.pem"):
        assert (out_dir / name).is_file(), name
    assert stat.S_IMODE(os.stat(out_dir / "key.pem").st_mode) == 0o600
    from certs import openssl

    subject = openssl("x509", "-in", str(out_dir / "cert.pem"), "-noout", "-subject")
    assert "alice" in subject, subject
    alice = TlsFiles(out_dir)
    ctx = client_context(alice.ca, alice.client_cert, alice.client_key)
    assert tls_request(tls_daemon.port, ctx).status == 200
    check_version_output(berth("version", env=tls_env(tls_daemon, alice)).stdout)


def test_tls_init_prints_daemon_flags(workdir):
    proc = berth("tls", "init", "--dir", str(workdir / "p"), "--san", "127.0.0.1")
    text = proc.stdout + proc.stderr
    assert "--tlsverify" in text, text
    assert "DOCKER_CERT_PATH" in text or "BERTH_CERT_PATH" in text, text


@pytest.mark.parametrize("cmd", [["version"], ["info"]])
def test_unreachable_daemon_fails_cleanly(workdir, cmd):
    proc = berth("-H", f"unix://{workdir}/nothing.sock", *cmd, check=False, timeout=60)
    assert proc.returncode != 0
    assert proc.stderr.strip(), "no error message"


_HEX = "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"


@pytest.mark.parametrize("reference", [
    "",
    "a:b:c",
    "Busybox",
    "user/App:Tag",
    _HEX,
    f"busybox@sha256:{_HEX.upper()}",
    f"busybox@sha256:{_HEX[:32]}",
    "a/" + "b" * 260,
])
@pytest.mark.parametrize("cmd", [["pull"], ["push"], ["import", "-"]])
def test_bad_references_refused_like_docker_before_any_request(workdir, cmd, reference):
    """Both CLIs parse the reference before contacting the daemon (there is none here):
    same words, same exit status as docker 28."""
    host = f"unix://{workdir}/nothing.sock"
    args = [*cmd, reference] if cmd[0] != "import" else [*cmd, reference or "x:"]
    ours = berth("-H", host, *args, check=False, timeout=60)
    theirs = run_cmd([DOCKER_BIN, "-H", host, *args], env=clean_env(), check=False, timeout=60)
    assert theirs.returncode != 0 and "Cannot connect" not in theirs.stderr, theirs.stderr
    assert (ours.returncode, ours.stderr) == (theirs.returncode, theirs.stderr)
