"""The audit log: `berthd --audit-log FILE` (daemon.json "audit-log", `-` for stderr) holds
one JSON line per mutating request and per attach, exec, archive and export, naming the
client (certificate subject and serial over TLS, uid/gid/pid on the unix socket), the
route, the target object, the status and the duration; never a request body or header
(registry credentials, environment values). The line is written before the answer goes
out, so a test reads the file right after a request returns. Rotation is by size."""

from __future__ import annotations

import json
import os
import stat
from pathlib import Path
from typing import Any, Callable

from conftest import (
    BERTHD_BIN,
    Daemon,
    TlsFiles,
    expect_start_failure,
    run_cmd,
    tls_connect,
    unix_connect,
)

SECRETS = ("hunter2", "hunter3", "hunter4", "hunter5", "eyJ")
# base64 of {"username":"u","password":"hunter3"}
REGISTRY_AUTH = "eyJ1c2VybmFtZSI6InUiLCJwYXNzd29yZCI6Imh1bnRlcjMifQ=="


def lines_of(text: str) -> list[dict[str, Any]]:
    return [json.loads(l) for l in text.splitlines() if l.startswith('{"')]


def audit_lines(path: Path) -> list[dict[str, Any]]:
    return lines_of(path.read_text())


def find(lines: list[dict[str, Any]], method: str, route: str, target: str | None = None) -> dict[str, Any]:
    hits = [l for l in lines if l["method"] == method and l["route"] == route
            and (target is None or l["target"] == target)]
    assert len(hits) == 1, f"{method} {route} {target}: {len(hits)} lines in\n" + "\n".join(map(json.dumps, lines))
    return hits[0]


def cert_identity(cert: Path) -> tuple[str, str]:
    """(subject in RFC 2253 form, serial in lower-case hex without leading zeros)."""
    subject = run_cmd(["openssl", "x509", "-in", cert, "-noout", "-subject", "-nameopt", "RFC2253"]).stdout
    serial = run_cmd(["openssl", "x509", "-in", cert, "-noout", "-serial"]).stdout
    subject = subject.strip().removeprefix("subject=").strip()
    serial = serial.strip().removeprefix("serial=").lower().lstrip("0") or "0"
    return subject, serial


def test_mutating_requests_are_logged_with_who_what_and_outcome_and_no_secret(
    busybox_daemon: Callable[..., Daemon], docker: Callable[..., Any], tls_files: TlsFiles, workdir: Path
) -> None:
    log = workdir / "audit" / "audit.log"
    log.parent.mkdir()
    d = busybox_daemon(tls=tls_files, extra_args=["--audit-log", str(log)])
    env = {"DOCKER_HOST": d.unix_host}
    assert stat.S_IMODE(log.stat().st_mode) == 0o600

    # Over the unix socket, through the docker CLI.
    docker("create", "--name", "web", "-e", "SECRET=hunter2", "busybox", "sleep", "1000", env=env)
    docker("start", "web", env=env)
    docker("exec", "-e", "EXECSECRET=hunter5", "web", "true", env=env)
    docker("cp", "web:/etc/hostname", str(workdir / "hostname"), env=env)
    docker("ps", "-a", env=env)
    docker("run", "--name", "runner", "-e", "RUNSECRET=hunter4", "busybox", "echo", "hi", env=env)
    docker("rm", "-f", "web", "runner", env=env)

    # A raw request from this process: its pid is known; registry credentials in a header.
    s = unix_connect(d.sock)
    try:
        pull = s.request("POST", "/v1.50/images/create?fromImage=127.0.0.1:1/nothing&tag=1",
                         headers={"X-Registry-Auth": REGISTRY_AUTH})
        listed = s.request("GET", "/v1.50/containers/json")
    finally:
        s.close()
    assert listed.status == 200

    # Over TLS: the client certificate names the client.
    t = tls_connect(d.port, d.tls_ctx())
    try:
        body = json.dumps({"Image": "busybox", "Env": ["TLSSECRET=hunter2"]}).encode()
        created = t.request("POST", "/v1.50/containers/create?name=tlsbox", body=body,
                            headers={"Content-Type": "application/json"})
        assert created.status == 201, created.text
        removed = t.request("DELETE", "/v1.50/containers/tlsbox", keepalive=False)
        assert removed.status == 204, removed.text
    finally:
        t.close()

    text = log.read_text()
    for secret in SECRETS:
        assert secret not in text, f"{secret!r} in the audit log:\n{text}"
    lines = lines_of(text)
    assert len(lines) == len(text.splitlines()), "every line is one JSON object"

    me = {"uid": os.getuid(), "gid": os.getgid()}
    create = find(lines, "POST", "/containers/create", "web")
    assert create["status"] == 201 and create["path"].endswith("/containers/create"), create
    assert {k: create["client"][k] for k in ("uid", "gid")} == me
    assert isinstance(create["client"]["pid"], int) and create["client"]["pid"] > 0
    assert isinstance(create["duration_ms"], (int, float)) and create["duration_ms"] >= 0
    assert create["time"].endswith("Z") and "T" in create["time"]
    assert find(lines, "POST", "/containers/{id}/start", "web")["status"] == 204
    exec_create = find(lines, "POST", "/containers/{id}/exec", "web")
    assert exec_create["status"] == 201
    exec_start = [l for l in lines if l["route"] == "/exec/{id}/start"]
    assert len(exec_start) == 1 and exec_start[0]["status"] in (101, 200), exec_start
    assert exec_start[0]["target"] and exec_start[0]["target"] != "web"
    archive = [l for l in lines if l["route"] == "/containers/{id}/archive"]
    assert archive and all(l["target"] == "web" and l["method"] in ("GET", "HEAD") for l in archive), archive
    assert any(l["method"] == "GET" and l["status"] == 200 for l in archive), archive
    # docker run: create, then attach (hijacked: logged when the upgrade is answered) and
    # start by the ID the create answered.
    find(lines, "POST", "/containers/create", "runner")
    attach = find(lines, "POST", "/containers/{id}/attach")
    assert attach["status"] in (101, 200) and len(attach["target"]) == 64, attach
    find(lines, "POST", "/containers/{id}/start", attach["target"])
    for name in ("web", "runner"):
        assert find(lines, "DELETE", "/containers/{id}", name)["status"] == 204

    mine = find(lines, "POST", "/images/create", "127.0.0.1:1/nothing:1")
    assert mine["client"] == {**me, "pid": os.getpid()}

    subject, serial = cert_identity(tls_files.client_cert)
    for l in (find(lines, "POST", "/containers/create", "tlsbox"),
              find(lines, "DELETE", "/containers/{id}", "tlsbox")):
        assert l["client"] == {"subject": subject, "serial": serial}, l

    # Reads that hand out nothing of a container are not logged.
    logged_routes = {l["route"] for l in lines}
    assert "/containers/json" not in logged_routes and "/_ping" not in logged_routes, logged_routes
    assert not [l for l in lines if l["method"] == "GET" and l["route"] in ("/containers/{id}/json", "/exec/{id}/json")]


def test_audit_log_to_stderr_and_from_daemon_json(berthd: Callable[..., Daemon], workdir: Path) -> None:
    d = berthd(extra_args=["--audit-log", "-"])
    resp = d.request("POST", "/v1.50/containers/nosuch/start")
    assert resp.status == 404
    hit = find(lines_of(d.log_text()), "POST", "/containers/{id}/start", "nosuch")
    assert hit["status"] == 404 and hit["path"] == "/v1.50/containers/nosuch/start"
    assert set(hit["client"]) == {"uid", "gid", "pid"}

    log = workdir / "from-config.log"
    e = berthd(config={"audit-log": str(log)}, name="json")
    assert e.request("DELETE", "/v1.50/volumes/nosuch").status == 404
    # A volume create's name is in its body, which the log never reads: the target is the
    # name the answer reports.
    made = e.request("POST", "/v1.50/volumes/create", body=json.dumps({"Name": "vol1"}).encode(),
                     headers={"Content-Type": "application/json"})
    assert made.status == 201 and made.json()["Name"] == "vol1", made.text
    assert e.request("DELETE", "/v1.50/volumes/vol1").status == 204
    lines = audit_lines(log)
    assert find(lines, "DELETE", "/volumes/{name}", "nosuch")["status"] == 404
    assert find(lines, "POST", "/volumes/create", "vol1")["status"] == 201
    assert find(lines, "DELETE", "/volumes/{name}", "vol1")["status"] == 204


def test_audit_log_rotates_by_size(berthd: Callable[..., Daemon], workdir: Path) -> None:
    log = workdir / "rot" / "audit.log"
    log.parent.mkdir()
    d = berthd(extra_args=["--audit-log", str(log), "--audit-log-max-size", "1k", "--audit-log-max-files", "2"])
    for i in range(40):
        assert d.request("POST", f"/v1.50/containers/nosuch{i}/start").status == 404
    files = sorted(p.name for p in log.parent.iterdir())
    assert files == ["audit.log", "audit.log.1"], files
    for p in log.parent.iterdir():
        assert 0 < p.stat().st_size <= 1024, (p, p.stat().st_size)
    older, newer = audit_lines(log.parent / "audit.log.1"), audit_lines(log)
    targets = [l["target"] for l in older + newer]
    # The kept lines are the newest ones, in order, the last one last.
    assert targets == [f"nosuch{i}" for i in range(40 - len(targets), 40)], targets


def test_bad_audit_settings_are_refused_at_start(workdir: Path) -> None:
    base = [str(BERTHD_BIN), "-H", f"unix://{workdir}/b.sock", f"--data-root={workdir}/data",
            f"--exec-root={workdir}/exec", f"--pidfile={workdir}/b.pid", f"--config-file={workdir}/none.json"]
    (workdir / "none.json").write_text("{}")
    out = expect_start_failure(base + ["--audit-log", "relative.log"])
    assert "--audit-log must be an absolute path" in out.stderr, out.stderr
    out = expect_start_failure(base + ["--audit-log", str(workdir / "a.log"), "--audit-log-max-size", "ten"])
    assert "invalid --audit-log-max-size" in out.stderr, out.stderr
    out = expect_start_failure(base + ["--audit-log", str(workdir / "missing-dir" / "a.log")])
    assert "cannot open the audit log" in out.stderr, out.stderr
