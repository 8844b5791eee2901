"""`POST /build` (the classic builder) driven by `DOCKER_BUILDKIT=0 docker build` and
docker-py: real RUN steps, COPY, the cache, build args, multi-stage targets, .dockerignore,
failures with dockerd's message, and a hostile symlink in the context."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import docker as dockerpy

from conftest import DOCKER_BIN

APP = """FROM busybox
ENV GREETING=hello
WORKDIR /app
COPY hello.txt .
RUN echo "$GREETING from run" > /app/ran.txt
CMD ["sh", "-c", "cat /app/ran.txt /app/hello.txt"]
"""


def build(d, ctx: Path, *args: str, check: bool = True, buildkit_env: bool = True) -> subprocess.CompletedProcess[str]:
    # Without DOCKER_BUILDKIT the CLI 28 also takes the classic path: no buildx here and
    # the daemon pings Builder-Version 1.
    env = dict(d.docker_env, DOCKER_BUILDKIT="0") if buildkit_env else dict(d.docker_env)
    r = subprocess.run([DOCKER_BIN, "build", *args, str(ctx)], env=env, capture_output=True,
                       text=True, timeout=300)
    assert not check or r.returncode == 0, (r.stdout, r.stderr)
    return r


def dk(d, *args: str) -> str:
    return subprocess.run([DOCKER_BIN, *args], env=d.docker_env, capture_output=True, text=True,
                          timeout=120, check=True).stdout


def make_ctx(tmp: Path, dockerfile: str, files: dict[str, str] | None = None) -> Path:
    ctx = tmp / "ctx"
    ctx.mkdir(parents=True)
    (ctx / "Dockerfile").write_text(dockerfile)
    for name, content in (files or {}).items():
        p = ctx / name
        p.parent.mkdir(parents=True, exist_ok=True)
        p.write_text(content)
    return ctx


def test_build_run_history_and_cache(busybox_daemon, tmp_path: Path) -> None:
    d = busybox_daemon()
    ctx = make_ctx(tmp_path, APP, {"hello.txt": "copied file\n"})
    first = build(d, ctx, "-t", "app")
    assert "Step 1/6 : FROM busybox" in first.stdout, first.stdout
    assert " ---> Running in " in first.stdout
    assert "Removing intermediate container" in first.stdout
    assert "Successfully tagged app:latest" in first.stdout
    assert dk(d, "run", "--rm", "app") == "hello from run\ncopied file\n"
    # What dockerd 20.10.24 recorded for the same Dockerfile and file (the COPY hash is
    # tarsum over name, mode 0644, root owner, size and content).
    history = dk(d, "history", "--no-trunc", "--format", "{{.CreatedBy}}", "app").splitlines()
    assert history[:5] == [
        '/bin/sh -c #(nop)  CMD ["sh" "-c" "cat /app/ran.txt /app/hello.txt"]',
        '/bin/sh -c echo "$GREETING from run" > /app/ran.txt',
        "/bin/sh -c #(nop) COPY file:6c4069795303a06cf06a7e765cde2ad5c53e25d0c94ec0d9fee20e09c6210385 in . ",
        "/bin/sh -c #(nop) WORKDIR /app",
        "/bin/sh -c #(nop)  ENV GREETING=hello",
    ], history
    cfg = json.loads(dk(d, "inspect", "--format", "{{json .Config}}", "app"))
    assert cfg["Env"] == ["PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin", "GREETING=hello"]
    assert (cfg["Cmd"], cfg["WorkingDir"], cfg.get("Entrypoint")) == (["sh", "-c", "cat /app/ran.txt /app/hello.txt"], "/app", None)
    image = dk(d, "inspect", "--format", "{{.Id}}", "app").strip()
    # Intermediate images are hidden from `docker images` as dockerd hides them.
    assert sorted(dk(d, "images", "--format", "{{.Repository}}").split()) == ["app", "busybox"]
    second = build(d, ctx, "-t", "app")
    assert second.stdout.count(" ---> Using cache") == 5, second.stdout
    assert dk(d, "inspect", "--format", "{{.Id}}", "app").strip() == image
    assert f"Successfully built {image.removeprefix('sha256:')[:12]}" in second.stdout
    # A changed file misses the cache from its COPY on.
    (ctx / "hello.txt").write_text("changed\n")
    third = build(d, ctx, "-t", "app")
    assert third.stdout.count(" ---> Using cache") == 2, third.stdout
    assert dk(d, "run", "--rm", "app") == "hello from run\nchanged\n"
    assert dk(d, "ps", "-aq") == ""


def test_failing_run_reports_dockerds_message_and_leaves_no_container(busybox_daemon, tmp_path: Path) -> None:
    d = busybox_daemon()
    ctx = make_ctx(tmp_path, "FROM busybox\nRUN false\n")
    r = build(d, ctx, "-t", "bad", check=False)
    assert r.returncode == 1, (r.stdout, r.stderr)
    assert "The command '/bin/sh -c false' returned a non-zero code: 1" in r.stderr, r.stderr
    assert dk(d, "ps", "-aq") == ""
    bad = build(d, make_ctx(tmp_path / "p", "FORM busybox\n"), check=False)
    assert bad.returncode == 1
    assert "unknown instruction: FORM" in bad.stderr, bad.stderr


def test_build_args_target_and_copy_from(busybox_daemon, tmp_path: Path) -> None:
    d = busybox_daemon()
    df = """FROM busybox AS builder
ARG WHO=nobody
RUN echo "built by $WHO" > /out.txt
FROM busybox AS final
COPY --from=builder /out.txt /final/out.txt
CMD ["cat", "/final/out.txt"]
FROM busybox AS unused
RUN false
"""
    ctx = make_ctx(tmp_path, df)
    r = build(d, ctx, "--build-arg", "WHO=tests", "--target", "final", "-t", "multi")
    assert "RUN false" not in r.stdout
    assert dk(d, "run", "--rm", "multi") == "built by tests\n"
    history = dk(d, "history", "--no-trunc", "--format", "{{.CreatedBy}}", "multi")
    assert "#(nop) COPY file:" in history


def test_dockerignore_excludes_and_symlink_is_copied_as_symlink(busybox_daemon, tmp_path: Path) -> None:
    d = busybox_daemon()
    df = "FROM busybox\nCOPY . /ctx/\n"
    ctx = make_ctx(tmp_path, df, {"keep.txt": "keep\n", "secret.txt": "secret\n", ".dockerignore": "secret.txt\n"})
    (ctx / "shadow").symlink_to("/etc/shadow")
    build(d, ctx, "-t", "ign", buildkit_env=False)
    listing = dk(d, "run", "--rm", "ign", "ls", "-A", "/ctx")
    assert "keep.txt" in listing and "secret.txt" not in listing, listing
    link = dk(d, "run", "--rm", "ign", "readlink", "/ctx/shadow")
    assert link == "/etc/shadow\n"
    # Inside the image the link points at the image's own /etc/shadow, never the host's.
    host_shadow = Path("/etc/shadow").read_text()
    seen = subprocess.run([DOCKER_BIN, "run", "--rm", "ign", "cat", "/ctx/shadow"], env=d.docker_env,
                          capture_output=True, text=True, timeout=60)
    assert host_shadow not in seen.stdout or not host_shadow


def test_docker_py_build(busybox_daemon, tmp_path: Path) -> None:
    d = busybox_daemon()
    ctx = make_ctx(tmp_path, "FROM busybox\nLABEL a=b\nRUN echo hi\n")
    client = dockerpy.DockerClient(base_url=d.unix_host, version="auto")
    try:
        image, logs = client.images.build(path=str(ctx), tag="pyapp", labels={"via": "py"})
        text = "".join(l.get("stream", "") for l in logs)
        assert "Step 1/4 : FROM busybox" in text, text
        assert image.labels == {"a": "b", "via": "py"}
        assert "pyapp:latest" in image.tags
    finally:
        client.close()


def test_add_local_tar_extracts_and_quiet_prints_the_id(busybox_daemon, tmp_path: Path) -> None:
    import io
    import tarfile

    d = busybox_daemon()
    ctx = make_ctx(tmp_path, "FROM busybox\nADD files.tar.gz /opt/\nCOPY files.tar.gz /raw/\n")
    with tarfile.open(ctx / "files.tar.gz", "w:gz") as t:
        for name, data in (("a/one.txt", b"one\n"), ("../../escape.txt", b"out\n")):
            info = tarfile.TarInfo(name)
            info.size = len(data)
            t.addfile(info, io.BytesIO(data))
    r = build(d, ctx, "-q", "-t", "tarred")
    image = dk(d, "inspect", "--format", "{{.Id}}", "tarred").strip()
    assert r.stdout.strip() == image, r.stdout
    assert dk(d, "run", "--rm", "tarred", "cat", "/opt/a/one.txt") == "one\n"
    # `..` cannot climb out of the destination; COPY keeps the archive as it is.
    assert dk(d, "run", "--rm", "tarred", "cat", "/opt/escape.txt") == "out\n"
    assert dk(d, "run", "--rm", "tarred", "ls", "/raw") == "files.tar.gz\n"


def test_onbuild_triggers_run_in_the_child_and_config_is_recorded(busybox_daemon, tmp_path: Path) -> None:
    import json

    d = busybox_daemon()
    parent = make_ctx(tmp_path / "parent", """FROM busybox
ONBUILD RUN echo triggered > /tmp/trig.txt
HEALTHCHECK --interval=5s CMD true
EXPOSE 80 53/udp
USER 1:2
STOPSIGNAL SIGINT
""")
    build(d, parent, "-t", "parent")
    cfg = json.loads(dk(d, "inspect", "--format", "{{json .Config}}", "parent"))
    assert cfg["OnBuild"] == ["RUN echo triggered > /tmp/trig.txt"]
    assert cfg["Healthcheck"] == {"Test": ["CMD-SHELL", "true"], "Interval": 5_000_000_000}
    assert set(cfg["ExposedPorts"]) == {"80/tcp", "53/udp"}
    assert (cfg["User"], cfg["StopSignal"]) == ("1:2", "SIGINT")
    child = make_ctx(tmp_path / "child", "FROM parent\nUSER 0\n")
    r = build(d, child, "-t", "child")
    assert "# Executing 1 build trigger" in r.stdout, r.stdout
    assert dk(d, "run", "--rm", "child", "cat", "/tmp/trig.txt") == "triggered\n"
    assert json.loads(dk(d, "inspect", "--format", "{{json .Config.OnBuild}}", "child")) in ([], None)


def start_sleeping_build(d):
    """Posts a build whose RUN sleeps; returns the socket once the RUN has printed."""
    import io
    import socket
    import tarfile

    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w") as t:
        data = b"FROM busybox\nRUN echo started; sleep 600\n"
        info = tarfile.TarInfo("Dockerfile")
        info.size = len(data)
        t.addfile(info, io.BytesIO(data))
    body = buf.getvalue()
    s = socket.socket(socket.AF_UNIX)
    s.settimeout(60)
    s.connect(str(d.sock))
    s.sendall(b"POST /v1.50/build HTTP/1.1\r\nHost: x\r\nContent-Type: application/x-tar\r\n"
              + f"Content-Length: {len(body)}\r\n\r\n".encode() + body)
    seen = b""
    # The RUN's own output (the Step line also holds the word).
    while b'"stream":"started' not in seen:
        chunk = s.recv(65536)
        assert chunk, seen
        seen += chunk
    assert b"Running in" in seen
    return s


def test_client_gone_mid_run_leaves_no_container(busybox_daemon, tmp_path: Path) -> None:
    import time

    d = busybox_daemon()
    s = start_sleeping_build(d)
    s.close()
    deadline = time.monotonic() + 60
    while dk(d, "ps", "-aq") and time.monotonic() < deadline:
        time.sleep(0.2)
    assert dk(d, "ps", "-aq") == ""
    while list((d.data_root / "build").glob("tmp-*")) and time.monotonic() < deadline:
        time.sleep(0.2)
    assert list((d.data_root / "build").glob("tmp-*")) == []


def test_request_errors_answer_before_the_stream(busybox_daemon, tmp_path: Path) -> None:
    import io
    import tarfile

    d = busybox_daemon()
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w") as t:
        data = b"FROM busybox\n"
        info = tarfile.TarInfo("Dockerfile")
        info.size = len(data)
        t.addfile(info, io.BytesIO(data))
    api = dockerpy.APIClient(base_url=d.unix_host, version="1.50")
    try:
        cases = [
            ({"dockerfile": "nope"}, 400, "Cannot locate specified Dockerfile: nope"),
            ({"platform": "foo"}, 400, '"foo": unknown operating system or architecture: invalid argument'),
            ({"target": "x"}, 400, 'target stage "x" could not be found'),
            ({"buildargs": "[1]"}, 400, "invalid buildargs parameter"),
        ]
        for params, status, message in cases:
            r = api._post(api._url("/build"), params=params, data=buf.getvalue(),
                          headers={"Content-Type": "application/x-tar"})
            assert r.status_code == status, (params, r.status_code, r.text)
            assert message in r.json()["message"], (params, r.text)
        assert not list((d.data_root / "build").glob("tmp-*"))
    finally:
        api.close()


def test_berthd_killed_mid_build_leaves_nothing_after_restart(busybox_daemon, tmp_path: Path) -> None:
    import signal
    import time

    d = busybox_daemon()
    s = start_sleeping_build(d)
    d.signal(signal.SIGKILL)
    d.wait_exit()
    s.close()
    d.start()
    deadline = time.monotonic() + 60
    while dk(d, "ps", "-aq") and time.monotonic() < deadline:
        time.sleep(0.2)
    assert dk(d, "ps", "-aq") == ""
    assert list((d.data_root / "build").glob("tmp-*")) == []
