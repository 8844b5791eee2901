"""Role-based authorization: `berth tls client NAME --role viewer|operator|admin` puts
`OU=berth:ROLE` in the certificate, `berthd --authorization roles` enforces it, and
`--authorization-policy FILE` maps other subjects and OUs (company certificates) to roles.
Checked with real TLS clients and the docker CLI: a viewer reads but cannot create, an
operator runs plain containers but not privileged ones or ones binding `/`, an admin can;
a client with no role reaches only /_ping and /version; the unix socket's root is admin."""

from __future__ import annotations

import json
import ssl
import subprocess
import tempfile
from pathlib import Path
from typing import Any, Callable

import certs
from conftest import (
    DOCKER_BIN,
    Daemon,
    TlsFiles,
    berth,
    client_context,
    clean_env,
    expect_start_failure,
    run_cmd,
    tls_init,
    tls_request,
)


def new_client(files: TlsFiles, name: str, role: str | None = None) -> Path:
    args = ["tls", "client", name, "--dir", str(files.dir)]
    if role:
        args += ["--role", role]
    berth(*args)
    return files.dir / "clients" / name


def ctx_of(files: TlsFiles, cert_dir: Path) -> ssl.SSLContext:
    return client_context(files.ca, cert_dir / "cert.pem", cert_dir / "key.pem")


def docker_as(d: Daemon, cert_dir: Path, *args: str, check: bool = True) -> Any:
    env = clean_env(
        {
            "DOCKER_CONFIG": str(cert_dir / "docker-config"),
            "DOCKER_HOST": f"tcp://127.0.0.1:{d.port}",
            "DOCKER_TLS_VERIFY": "1",
            "DOCKER_CERT_PATH": str(cert_dir),
        }
    )
    return run_cmd([DOCKER_BIN, *args], env=env, check=check)


def refused(proc: Any, rule: str) -> None:
    """The docker CLI failed with the daemon's 403 naming `rule`."""
    assert proc.returncode != 0, proc.stdout
    assert "authorization denied" in proc.stderr, proc.stderr
    assert f"(rule: {rule})" in proc.stderr, proc.stderr


def roles_daemon(
    busybox_daemon: Callable[..., Daemon], files: TlsFiles, policy: dict[str, Any] | None = None, root: Path | None = None
) -> Daemon:
    args = ["--authorization", "roles"]
    if policy is not None:
        assert root is not None
        path = root / "policy.json"
        path.write_text(json.dumps(policy))
        args += ["--authorization-policy", str(path)]
    # busybox_daemon imports the test image over the unix socket as root: an admin.
    return busybox_daemon(tls=files, extra_args=args)


def test_viewer_operator_admin_with_the_docker_cli(busybox_daemon, workdir):
    files = tls_init(workdir / "tls")
    d = roles_daemon(busybox_daemon, files)
    viewer = new_client(files, "vera", "viewer")
    operator = new_client(files, "otto", "operator")
    admin = new_client(files, "ada", "admin")

    # Viewer: reads, never creates.
    assert docker_as(d, viewer, "ps", "-a").returncode == 0
    assert "busybox" in docker_as(d, viewer, "images").stdout
    p = docker_as(d, viewer, "create", "busybox", "true", check=False)
    refused(p, "viewer.read_only")
    assert "role viewer may not POST /containers/create" in p.stderr, p.stderr
    assert docker_as(d, viewer, "ps", "-aq").stdout.strip() == ""

    # Operator: plain containers yes, confinement-weakening options no.
    out = docker_as(d, operator, "run", "--rm", "busybox", "echo", "hello-operator").stdout
    assert "hello-operator" in out
    for opts, rule in [
        (["--privileged"], "operator.privileged"),
        (["-v", "/:/host"], "operator.bind"),
        (["--mount", "type=bind,source=/etc,target=/e"], "operator.bind"),
        (["--pid", "host"], "operator.host_namespaces"),
        (["--network", "host"], "operator.host_namespaces"),
        (["--cap-add", "SYS_ADMIN"], "operator.cap_add"),
        (["--security-opt", "seccomp=unconfined"], "operator.security_opt"),
        (["--device", "/dev/null:/dev/xnull"], "operator.devices"),
    ]:
        p = docker_as(d, operator, "run", "--rm", *opts, "busybox", "true", check=False)
        refused(p, rule)
        assert "role operator may not" in p.stderr, p.stderr
    # Nothing was created by the refused runs.
    assert docker_as(d, operator, "ps", "-aq").stdout.strip() == ""
    p = docker_as(d, operator, "volume", "create", "-o", "type=none", "-o", "o=bind", "-o", "device=/", "rootvol",
                  check=False)
    refused(p, "operator.bind")
    p = docker_as(d, operator, "network", "create", "-o", "com.docker.network.bridge.name=bzauthz0", "opnet", check=False)
    refused(p, "operator.bridge_name")
    # A subnet the host routes to (here the daemon's own bridge, a link route like eth0's)
    # would take the host's traffic for it: refused before the engine sees it.
    host_net = subprocess.run(["ip", "-4", "route", "show", "scope", "link"], capture_output=True,
                              text=True, check=True).stdout.split()[0]
    p = docker_as(d, operator, "network", "create", "--subnet", host_net, "opnet2", check=False)
    refused(p, "operator.host_subnet")

    # Admin: everything.
    out = docker_as(d, admin, "run", "--rm", "--privileged", "busybox", "echo", "hello-admin").stdout
    assert "hello-admin" in out
    cid = docker_as(d, admin, "create", "-v", "/etc:/host-etc", "--pid", "host", "busybox", "true").stdout.strip()
    docker_as(d, admin, "rm", cid)
    # ... binding the host's root too (what an operator may not: `-v /:/host` above).
    out = docker_as(d, admin, "run", "--rm", "-v", "/:/host:ro", "busybox", "cat", "/host/etc/os-release").stdout
    assert out == Path("/etc/os-release").read_text()

    # An operator may exec in its own containers, not in an admin's privileged one, nor
    # join its namespaces.
    docker_as(d, operator, "run", "-d", "--name", "opbox", "busybox", "sleep", "300")
    assert "in-opbox" in docker_as(d, operator, "exec", "opbox", "echo", "in-opbox").stdout
    docker_as(d, admin, "run", "-d", "--privileged", "--name", "adminbox", "busybox", "sleep", "300")
    refused(docker_as(d, operator, "exec", "adminbox", "true", check=False), "operator.unconfined_target")
    p = docker_as(d, operator, "run", "--rm", "--pid", "container:adminbox", "busybox", "true", check=False)
    refused(p, "operator.unconfined_target")
    docker_as(d, operator, "stop", "-t", "0", "adminbox")
    docker_as(d, admin, "rm", "-f", "adminbox", "opbox")

    # The refusals are logged with the client's identity.
    log = d.log_text()
    assert "authorization: request refused" in log
    assert "CN=vera" in log and "viewer.read_only" in log


def test_no_role_reaches_only_ping_and_version(berthd, workdir):
    files = tls_init(workdir / "tls")
    d = berthd(tls=files, extra_args=["--authorization", "roles"])
    # `berth tls init`'s own client certificate has no role.
    ctx = files.client_ctx()
    for method, path in [("GET", "/_ping"), ("HEAD", "/_ping"), ("GET", "/version"), ("GET", "/v1.43/version"),
                         ("GET", "/v1.43/_ping")]:
        r = tls_request(d.port, ctx, method, path)
        assert r.status == 200, (method, path, r.status, r.body)
    for method, path in [("GET", "/containers/json"), ("GET", "/v1.43/containers/json"), ("GET", "/info"),
                         ("POST", "/containers/create"), ("GET", "/nonexistent")]:
        r = tls_request(d.port, ctx, method, path)
        assert r.status == 403, (method, path, r.status, r.body)
        assert "(rule: no_role)" in r.json()["message"], r.body
    viewer = new_client(files, "vic", "viewer")
    r = tls_request(d.port, ctx_of(files, viewer), "GET", "/containers/json")
    assert r.status == 200, r.body
    # Logs and archive reads are not a viewer's.
    r = tls_request(d.port, ctx_of(files, viewer), "GET", "/v1.43/containers/x/logs?stdout=1")
    assert r.status == 403 and "(rule: viewer.logs)" in r.json()["message"], r.body


def test_without_authorization_every_client_may_do_everything(berthd, workdir):
    files = tls_init(workdir / "tls")
    d = berthd(tls=files)
    r = tls_request(d.port, files.client_ctx(), "GET", "/containers/json")
    assert r.status == 200, r.body


def company_cert(files: TlsFiles, directory: Path, name: str, subject: str) -> Path:
    """A client certificate with `subject` made by openssl, signed by berth's CA (as a
    company PKI would issue it: no OU=berth:ROLE)."""
    directory.mkdir(parents=True, exist_ok=True)
    ca = certs.from_files("berth-ca", files.ca, files.ca_key, files.ca)
    key = certs.gen_key(directory / f"{name}-key.pem", "rsa")
    csr = directory / f"{name}.csr"
    certs.openssl("req", "-new", "-key", str(key), "-out", str(csr), "-subj", subject)
    cert = certs._sign(directory, name, csr, ca, certs._ext_section(ca=False, usages=("clientAuth",)))
    leaf = certs.Cert(name=name, cert=cert, key=key, chain=cert, root=files.ca)
    return certs.docker_cert_dir(directory / f"{name}-dir", leaf, files.ca)


def test_policy_maps_company_subjects_ous_and_bind_allow(busybox_daemon, workdir):
    files = tls_init(workdir / "tls")
    allowed = workdir / "allowed"
    allowed.mkdir()
    (allowed / "f").write_text("from-host\n")
    policy = {
        "subjects": {"CN=ci": "operator"},
        "ous": {"Platform": "admin", "Dev": "viewer"},
        "bind_allow": [str(allowed)],
    }
    d = roles_daemon(busybox_daemon, files, policy, workdir)
    ci = new_client(files, "ci")  # no --role: the policy's subject makes it an operator
    out = docker_as(d, ci, "run", "--rm", "-v", f"{allowed}:/data:ro", "busybox", "cat", "/data/f").stdout
    assert "from-host" in out
    refused(docker_as(d, ci, "run", "--rm", "--privileged", "busybox", "true", check=False), "operator.privileged")
    refused(docker_as(d, ci, "run", "--rm", "-v", f"{workdir}:/w", "busybox", "true", check=False), "operator.bind")

    platform = company_cert(files, workdir / "company", "carol", "/O=Acme/OU=Platform/CN=carol")
    out = docker_as(d, platform, "run", "--rm", "--privileged", "busybox", "echo", "platform-admin").stdout
    assert "platform-admin" in out
    dev = company_cert(files, workdir / "company", "dan", "/O=Acme/OU=Dev/CN=dan")
    assert docker_as(d, dev, "ps").returncode == 0
    refused(docker_as(d, dev, "create", "busybox", check=False), "viewer.read_only")
    other = company_cert(files, workdir / "company", "eve", "/O=Other/CN=eve")
    refused(docker_as(d, other, "ps", check=False), "no_role")


def test_unix_socket_root_is_admin(busybox_daemon, workdir):
    files = tls_init(workdir / "tls")
    d = roles_daemon(busybox_daemon, files)
    env = d.docker_env
    out = run_cmd([DOCKER_BIN, "run", "--rm", "--privileged", "busybox", "echo", "root-admin"], env=env).stdout
    assert "root-admin" in out


# A python other users can run (the test's own may live under /root).
SYSTEM_PYTHON = "/usr/bin/python3"

PEER_REQUEST = """
import json, socket, sys
s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
s.settimeout(10)
s.connect(sys.argv[1])
body = sys.argv[3].encode()
s.sendall(f"{sys.argv[2]} HTTP/1.1\\r\\nHost: x\\r\\nConnection: close\\r\\nContent-Type: application/json\\r\\n"
          f"Content-Length: {len(body)}\\r\\n\\r\\n".encode() + body)
data = b""
while chunk := s.recv(65536):
    data += chunk
print(data.decode(errors="replace"))
"""


def as_user(sock: Path, uid: int, gid: int, request: str, body: str = "") -> str:
    """One HTTP request on the unix socket from a process with that uid and gid (no
    supplementary groups); its raw response."""
    proc = subprocess.run([SYSTEM_PYTHON, "-c", PEER_REQUEST, str(sock), request, body], user=uid, group=gid,
                          extra_groups=[], capture_output=True, text=True, timeout=30)
    assert proc.returncode == 0, proc.stderr
    return proc.stdout


def test_unix_peers_map_through_the_policy_by_uid_and_gid(busybox_daemon, workdir):
    files = tls_init(workdir / "tls")
    # A socket in a directory other users may enter (the test's own dirs are 0700).
    sockdir = Path(tempfile.mkdtemp(prefix="berth-authz-"))
    try:
        sockdir.chmod(0o755)
        sock = sockdir / "b.sock"
        policy = {"uids": {"65534": "viewer"}, "gids": {"65533": "operator"}}
        path = workdir / "policy.json"
        path.write_text(json.dumps(policy))
        # The socket is root:root 0660 without a berth group: gid 0 lets the peers in.
        d = busybox_daemon(tls=files, extra_args=["--authorization", "roles", "--authorization-policy", str(path),
                                                  "-H", f"unix://{sock}"])
        assert sock.exists()
        create = '{"Image": "busybox", "HostConfig": {"Privileged": true}}'
        out = as_user(sock, 65534, 0, "GET /containers/json")
        assert out.startswith("HTTP/1.1 200"), out
        out = as_user(sock, 65534, 0, "POST /containers/create", create)
        assert out.startswith("HTTP/1.1 403") and "(rule: viewer.read_only)" in out, out
        # A member of the socket's group the policy does not name is admin.
        out = as_user(sock, 65532, 0, "POST /containers/create", create)
        assert out.startswith("HTTP/1.1 201"), out
        run_cmd([DOCKER_BIN, "rm", json.loads(out[out.index("{"):])["Id"]], env=d.docker_env)
        # The policy's gids name the peer's primary gid (the socket opened to all for it).
        sock.chmod(0o666)
        out = as_user(sock, 65531, 65533, "POST /containers/create", create)
        assert out.startswith("HTTP/1.1 403") and "(rule: operator.privileged)" in out, out
        out = as_user(sock, 65531, 65533, "POST /containers/create", '{"Image": "busybox"}')
        assert out.startswith("HTTP/1.1 201"), out
        run_cmd([DOCKER_BIN, "rm", json.loads(out[out.index("{"):])["Id"]], env=d.docker_env)
    finally:
        for p in sockdir.iterdir():
            p.unlink()
        sockdir.rmdir()


def test_bad_policy_or_mode_stops_the_daemon(berthd, workdir):
    bad = workdir / "policy.json"
    bad.write_text('{"ous": {"Platform": "root"}}')
    d = berthd(start=False, extra_args=["--authorization", "roles", "--authorization-policy", str(bad)])
    proc = expect_start_failure(d.argv())
    assert "invalid authorization policy" in proc.stderr, proc.stderr
    d = berthd(start=False, extra_args=["--authorization", "rbac"])
    proc = expect_start_failure(d.argv())
    assert 'the only mode is "roles"' in proc.stderr, proc.stderr
