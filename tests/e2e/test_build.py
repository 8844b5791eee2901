"""`POST /build` (the classic builder) driven by `DOCKER_BUILDKIT=0 docker build` and
docker-py: real RUN steps, COPY, the cache, build args, multi-stage targets, .dockerignore,
failures with dockerd's message, and a hostile symlink in the context."""

from __future__ import annotations

import json
import os
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


def start_sleeping_build(d, dockerfile: bytes = b"FROM busybox\nRUN echo started; sleep 600\n"):
    """Posts a build whose RUN sleeps; returns the socket once the RUN has printed."""
    import io
    import socket
    import tarfile

    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w") as t:
        data = dockerfile
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


# --- berth build, cache sources, remote and compressed contexts, limits, cache management


def bb(d, *args: str, stdin: str | bytes | None = None, check: bool = True) -> subprocess.CompletedProcess:
    """`berth build ...` against daemon `d`."""
    from conftest import BERTH_BIN, clean_env

    binary = isinstance(stdin, bytes)
    r = subprocess.run([BERTH_BIN, *args], env=clean_env(d.docker_env), input=stdin,
                       capture_output=True, text=not binary, timeout=300)
    if binary:
        r = subprocess.CompletedProcess(r.args, r.returncode, r.stdout.decode(), r.stderr.decode())
    assert not check or r.returncode == 0, (r.stdout, r.stderr)
    return r


def test_berth_build_cli(busybox_daemon, tmp_path: Path) -> None:
    d = busybox_daemon()
    df = "FROM busybox\nARG WHO=nobody\nCOPY . /ctx/\nRUN echo \"hi $WHO\" > /who\n"
    ctx = make_ctx(tmp_path, df, {"keep.txt": "k\n", "big.log": "x\n", "sub/skip.txt": "s\n",
                                  "sub/keep.txt": "k\n", ".dockerignore": "*.log\nsub\n!sub/keep.txt\nDockerfile\n"})
    iid = tmp_path / "iid"
    r = bb(d, "build", "-t", "cli:1", "-t", "cli:2", "--build-arg", "WHO=berth", "--iidfile", str(iid), str(ctx))
    assert "Sending build context to Docker daemon" in r.stdout, r.stdout
    assert "Step 4/4 : RUN echo \"hi $WHO\" > /who" in r.stdout, r.stdout
    assert "Successfully tagged cli:1\nSuccessfully tagged cli:2\n" in r.stdout, r.stdout
    image = dk(d, "inspect", "--format", "{{.Id}}", "cli:2").strip()
    assert iid.read_text() == image
    assert dk(d, "run", "--rm", "cli:1", "cat", "/who") == "hi berth\n"
    # The CLI filtered the context: excluded files never reached the daemon; the
    # exception did, and so did the excluded Dockerfile, which the daemon drops after
    # reading it, as dockerd does (.dockerignore itself is not excluded here).
    listing = dk(d, "run", "--rm", "cli:1", "find", "/ctx", "-type", "f").split()
    assert sorted(listing) == ["/ctx/.dockerignore", "/ctx/keep.txt", "/ctx/sub/keep.txt"], listing
    # -q prints the ID alone; -f - reads the Dockerfile from stdin into the context.
    r = bb(d, "build", "-q", "-f", "-", str(ctx), stdin="FROM busybox\nCOPY keep.txt /k\n")
    quiet_id = r.stdout.strip()
    assert quiet_id.startswith("sha256:") and "\n" not in quiet_id, r.stdout
    assert dk(d, "run", "--rm", quiet_id, "cat", "/k") == "k\n"
    # A Dockerfile outside the context goes into it under a random name, as with -f -.
    outside = tmp_path / "elsewhere.Dockerfile"
    outside.write_text("FROM busybox\nCOPY keep.txt /outside\n")
    bb(d, "build", "-t", "outside", "-f", str(outside), str(ctx))
    assert dk(d, "run", "--rm", "outside", "cat", "/outside") == "k\n"
    # A lone Dockerfile on stdin is the whole context.
    r = bb(d, "build", "-t", "stdin", "-", stdin="FROM busybox\nLABEL from=stdin\n")
    assert dk(d, "inspect", "--format", "{{index .Config.Labels \"from\"}}", "stdin") == "stdin\n"
    # A failing RUN: the step's exit code and dockerd's text, as the docker CLI gives them.
    bad = make_ctx(tmp_path / "bad", "FROM busybox\nRUN exit 3\n")
    r = bb(d, "build", str(bad), check=False)
    ref = build(d, bad, check=False)
    assert (r.returncode, ref.returncode) == (3, 3), (r, ref)
    assert "The command '/bin/sh -c exit 3' returned a non-zero code: 3" in r.stderr, r.stderr
    r = bb(d, "build", str(tmp_path / "missing"), check=False)
    assert r.returncode == 1 and "unable to prepare context: path" in r.stderr, r.stderr


def test_cache_from_an_image_built_elsewhere(busybox_daemon, tmp_path: Path) -> None:
    df = "FROM busybox\nRUN echo one > /one\nENV X=1\nRUN echo two > /two\n"
    ctx = make_ctx(tmp_path, df)
    a = busybox_daemon()
    build(a, ctx, "-t", "cached:1")
    tar = tmp_path / "img.tar"
    subprocess.run([DOCKER_BIN, "save", "-o", str(tar), "cached:1", "busybox"], env=a.docker_env, check=True,
                   timeout=120)
    b = busybox_daemon()
    subprocess.run([DOCKER_BIN, "load", "-i", str(tar)], env=b.docker_env, check=True, capture_output=True,
                   timeout=120)
    # Daemon b never built this: no cache without --cache-from, every step with it.
    plain = build(b, ctx, "--no-cache")
    assert "Using cache" not in plain.stdout
    first = build(b, ctx, "-t", "again", "--cache-from", "cached:1")
    assert first.stdout.count(" ---> Using cache") == 3, first.stdout
    assert "Running in" not in first.stdout, first.stdout
    assert dk(b, "run", "--rm", "again", "cat", "/one", "/two") == "one\ntwo\n"


def serve(directory: Path):
    """A loopback HTTP server for `directory`; returns (base URL, stop function)."""
    import functools
    import http.server
    import threading

    handler = functools.partial(http.server.SimpleHTTPRequestHandler, directory=str(directory))
    srv = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    t = threading.Thread(target=srv.serve_forever, daemon=True)
    t.start()

    def stop() -> None:
        srv.shutdown()
        srv.server_close()
        t.join(timeout=10)

    return f"http://127.0.0.1:{srv.server_address[1]}", stop


def context_tar(path: Path, mode: str, files: dict[str, bytes]) -> Path:
    import io
    import tarfile

    with tarfile.open(path, mode) as t:
        for name, data in files.items():
            info = tarfile.TarInfo(name)
            info.size = len(data)
            t.addfile(info, io.BytesIO(data))
    return path


def test_remote_and_compressed_contexts(busybox_daemon, tmp_path: Path) -> None:
    d = busybox_daemon()
    files = {"Dockerfile": b"FROM busybox\nCOPY f /f\n", "f": b"from the archive\n"}
    www = tmp_path / "www"
    www.mkdir()
    context_tar(www / "ctx.tar.xz", "w:xz", files)
    (www / "Dockerfile").write_text("FROM busybox\nLABEL remote=dockerfile\n")
    base, stop = serve(www)
    try:
        bb(d, "build", "-t", "remote-tar", f"{base}/ctx.tar.xz")
        assert dk(d, "run", "--rm", "remote-tar", "cat", "/f") == "from the archive\n"
        bb(d, "build", "-t", "remote-df", f"{base}/Dockerfile")
        assert dk(d, "inspect", "--format", "{{index .Config.Labels \"remote\"}}", "remote-df") == "dockerfile\n"
        r = bb(d, "build", f"{base}/nothing-here", check=False)
        assert r.returncode == 1 and "404" in r.stderr, r.stderr
    finally:
        stop()
    # bzip2 and xz bodies, as `docker build - < ctx.tar.bz2` sends them.
    for mode, suffix in (("w:bz2", "bz2"), ("w:xz", "xz")):
        tar = context_tar(tmp_path / f"ctx.tar.{suffix}", mode, files)
        env = dict(d.docker_env, DOCKER_BUILDKIT="0")
        r = subprocess.run([DOCKER_BIN, "build", "-t", f"z-{suffix}", "-"], stdin=tar.open("rb"), env=env,
                           capture_output=True, timeout=300)
        assert r.returncode == 0, r
        assert dk(d, "run", "--rm", f"z-{suffix}", "cat", "/f") == "from the archive\n"
        # berth build sends a tar on stdin as it is, too.
        bb(d, "build", "-t", f"b-{suffix}", "-", stdin=tar.read_bytes())
        assert dk(d, "run", "--rm", f"b-{suffix}", "cat", "/f") == "from the archive\n"


def test_run_steps_get_limits_hosts_and_ulimits(busybox_daemon, tmp_path: Path) -> None:
    d = busybox_daemon()
    df = ("FROM busybox\n"
          "RUN cat /sys/fs/cgroup/memory/memory.limit_in_bytes > /mem; grep -c berth-extra /etc/hosts > /hosts;"
          " ulimit -n > /nofile; df -k /dev/shm | tail -1 | awk '{print $2}' > /shm\n")
    ctx = make_ctx(tmp_path, df)
    bb(d, "build", "-t", "lim", "-m", "64m", "--add-host", "berth-extra:10.9.8.7", "--ulimit", "nofile=123:456",
       "--shm-size", "8m", str(ctx))
    out = dk(d, "run", "--rm", "lim", "cat", "/mem", "/hosts", "/nofile", "/shm").split()
    assert out == [str(64 << 20), "1", "123", str(8 << 10)], out


def test_pull_without_a_registry_fails_the_build(busybox_daemon, tmp_path: Path) -> None:
    d = busybox_daemon()
    ctx = make_ctx(tmp_path, "FROM busybox\n")
    r = bb(d, "build", "--pull", str(ctx), check=False)
    assert r.returncode == 1, (r.stdout, r.stderr)
    assert "Successfully built" not in r.stdout
    # Without --pull the local image serves.
    bb(d, "build", str(ctx))


def test_builder_prune_and_system_df(busybox_daemon, tmp_path: Path) -> None:
    d = busybox_daemon()
    # A failed build leaves its first steps' images behind: the dangling cache.
    ctx = make_ctx(tmp_path, "FROM busybox\nRUN head -c 70000 /dev/zero > /blob\nRUN exit 1\n")
    build(d, ctx, check=False)
    df = json.loads(dk(d, "system", "df", "--format", "{{json .}}").splitlines()[-1])
    assert df["Type"] == "Build Cache" and df["TotalCount"] == "1", df
    assert df["Size"] != "0B", df
    verbose = dk(d, "system", "df", "-v")
    assert "Build cache usage: 70kB" in verbose and " regular " in verbose, verbose
    out = dk(d, "builder", "prune", "-f")
    assert "Total reclaimed space: 70kB" in out, out
    after = d.get_json("/system/df")
    assert after["BuildCache"] is None, after["BuildCache"]
    assert "Using cache" not in build(d, ctx, check=False).stdout
    # A tagged build's steps are in use: kept by a plain prune, dropped from the cache
    # (the images stay) by --all.
    good = make_ctx(tmp_path / "good", "FROM busybox\nRUN echo ok > /ok\n")
    build(d, good, "-t", "good")
    usage = [c for c in d.get_json("/system/df")["BuildCache"] if "echo ok" in c["Description"]]
    assert len(usage) == 1 and usage[0]["InUse"], usage
    dk(d, "builder", "prune", "-f")
    assert "Using cache" in build(d, good).stdout
    bb(d, "builder", "prune", "-f", "--all")
    assert "Using cache" not in build(d, good).stdout
    assert dk(d, "run", "--rm", "good", "cat", "/ok") == "ok\n"


def test_build_cancel_by_buildid(busybox_daemon) -> None:
    import io
    import socket
    import tarfile

    d = busybox_daemon()
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
    try:
        s.sendall(b"POST /v1.50/build?buildid=b1 HTTP/1.1\r\nHost: x\r\nContent-Type: application/x-tar\r\n"
                  + f"Content-Length: {len(body)}\r\n\r\n".encode() + body)
        seen = b""
        while b'"stream":"started' not in seen:
            chunk = s.recv(65536)
            assert chunk, seen
            seen += chunk
        assert d.request("POST", "/v1.50/build/cancel?id=b1").status == 200
        while b"context canceled" not in seen:
            chunk = s.recv(65536)
            assert chunk, seen
            seen += chunk
    finally:
        s.close()
    assert d.request("POST", "/v1.50/build/cancel?id=unknown").status == 200


def test_heredocs_chmod_and_add_url(busybox_daemon, tmp_path: Path) -> None:
    import hashlib

    d = busybox_daemon()
    www = tmp_path / "www"
    www.mkdir()
    (www / "data.bin").write_bytes(b"downloaded\n")
    digest = hashlib.sha256(b"downloaded\n").hexdigest()
    base, stop = serve(www)
    try:
        df = ("FROM busybox\nARG WHO=heredoc\n"
              "RUN <<EOF\necho one > /one\necho two >> /one\nEOF\n"
              "RUN cat <<EOF > /two\nshell $WHO\nEOF\n"
              "COPY <<EOF /expanded\nhi $WHO \"q\"\nEOF\n"
              "COPY <<'EOF' /raw\nhi $WHO\nEOF\n"
              "COPY --chmod=0741 f /f\n"
              f"ADD --checksum=sha256:{digest} {base}/data.bin /dl/\n")
        ctx = make_ctx(tmp_path, df, {"f": "f\n"})
        bb(d, "build", "-t", "here", str(ctx))
        out = dk(d, "run", "--rm", "here", "sh", "-c",
                 "cat /one /two /expanded /raw /dl/data.bin; stat -c '%a %n' /f /dl/data.bin")
        assert out == ("one\ntwo\nshell heredoc\nhi heredoc \"q\"\nhi $WHO\ndownloaded\n"
                       "741 /f\n600 /dl/data.bin\n"), out
        bad = make_ctx(tmp_path / "bad", f"FROM busybox\nADD --checksum=sha256:{'0' * 64} {base}/data.bin /x\n")
        r = bb(d, "build", str(bad), check=False)
        assert r.returncode == 1 and f"digest mismatch sha256:{'0' * 64}: sha256:{digest}" in r.stderr, r.stderr
    finally:
        stop()


def test_builder_prune_leaves_a_running_builds_steps(busybox_daemon) -> None:
    from conftest import poll

    d = busybox_daemon()
    s = start_sleeping_build(d, b"FROM busybox AS a\nENV STEP=1\n"
                                b"FROM busybox\nRUN echo started; sleep 600\nCOPY --from=a /etc/passwd /p\n")
    try:
        # Stage a's ENV image is untagged, used by no container and no parent of the
        # running step's, but the build will copy from it.
        assert [c["Description"] for c in d.get_json("/system/df")["BuildCache"]] == [
            "/bin/sh -c #(nop)  ENV STEP=1"]
        out = dk(d, "builder", "prune", "-f")
        assert "Deleted build cache objects" not in out, out
    finally:
        s.close()
    # Once the build is over (its client gone), the step is dangling cache.
    poll(lambda: "Deleted build cache objects" in dk(d, "builder", "prune", "-f"), 60, "the prune")
    assert d.get_json("/system/df")["BuildCache"] is None


# --- git contexts (`remote` a git URL), cloned by the daemon as dockerd's classic builder


def git(cwd: Path, *args: str) -> str:
    env = {"PATH": "/usr/bin:/bin", "HOME": str(cwd), "GIT_CONFIG_NOSYSTEM": "1",
           "GIT_AUTHOR_NAME": "t", "GIT_AUTHOR_EMAIL": "t@t", "GIT_COMMITTER_NAME": "t",
           "GIT_COMMITTER_EMAIL": "t@t"}
    return subprocess.run(["git", "-c", "init.defaultBranch=master", "-c", "protocol.file.allow=always",
                           *args], cwd=cwd, env=env, capture_output=True, text=True, timeout=60,
                          check=True).stdout


def git_server(srv: Path):
    """`git daemon` on loopback exporting the bare repositories in `srv`; returns (base
    URL, stop function)."""
    import socket

    from conftest import free_port, poll

    port = free_port()
    proc = subprocess.Popen(["git", "daemon", "--export-all", "--reuseaddr", f"--base-path={srv}",
                             "--listen=127.0.0.1", f"--port={port}", str(srv)],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)

    def up() -> bool:
        assert proc.poll() is None, "git daemon exited"
        with socket.create_connection(("127.0.0.1", port), timeout=1):
            return True

    def stop() -> None:
        proc.terminate()
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout=10)

    try:
        poll(up, 30, "git daemon", fatal=(AssertionError,))
    except BaseException:
        stop()
        raise
    return f"git://127.0.0.1:{port}", stop


def make_git_repos(tmp: Path, base: str) -> Path:
    """Bare repositories `repo.git` (branches master and dev; a submodule `mod` from
    `mod.git`; a `sub` directory, a symlink `escape` to /etc, a file `file.txt`) under
    the returned directory, also readable over dumb HTTP."""
    srv = tmp / "srv"
    srv.mkdir()
    mod = tmp / "mod"
    mod.mkdir()
    git(mod, "init", "-q")
    (mod / "m.txt").write_text("from the submodule\n")
    git(mod, "add", ".")
    git(mod, "commit", "-qm", "m")
    git(tmp, "clone", "-q", "--bare", str(mod), str(srv / "mod.git"))
    src = tmp / "src"
    src.mkdir()
    git(src, "init", "-q")
    (src / "Dockerfile").write_text("FROM busybox\nCOPY hello.txt /hello\nCOPY mod/m.txt /m\n")
    (src / "hello.txt").write_text("from master\n")
    (src / "sub").mkdir()
    (src / "sub" / "Dockerfile").write_text("FROM busybox\nCOPY . /sub/\n")
    (src / "sub" / "x.txt").write_text("x\n")
    (src / "escape").symlink_to("/etc")
    (src / "file.txt").write_text("f\n")
    git(src, "submodule", "add", "-q", f"{base}/mod.git", "mod")
    git(src, "add", ".")
    git(src, "commit", "-qm", "one")
    git(src, "checkout", "-qb", "dev")
    (src / "hello.txt").write_text("from dev\n")
    git(src, "commit", "-qam", "dev")
    git(tmp, "clone", "-q", "--bare", str(src), str(srv / "repo.git"))
    for r in ("repo.git", "mod.git"):
        git(srv / r, "update-server-info")
    return srv


def test_git_contexts(busybox_daemon, tmp_path: Path) -> None:
    from conftest import poll

    d = busybox_daemon()
    srv = tmp_path / "srv"
    srv.mkdir()
    base, stop_git = git_server(srv)
    srv.rmdir()
    stop_http = None
    try:
        make_git_repos(tmp_path, base)
        # git://: the default ref (master), the submodule cloned too.
        r = bb(d, "build", "-t", "g-master", f"{base}/repo.git")
        assert "Successfully tagged g-master:latest" in r.stdout, r.stdout
        assert dk(d, "run", "--rm", "g-master", "cat", "/hello", "/m") == "from master\nfrom the submodule\n"
        # A ref and a subdirectory; the context is that directory alone.
        bb(d, "build", "-t", "g-sub", f"{base}/repo.git#dev:sub")
        assert sorted(dk(d, "run", "--rm", "g-sub", "ls", "/sub").split()) == ["Dockerfile", "x.txt"]
        # The docker CLI 28 clones a git URL itself and sends the checkout as a tar.
        build(d, f"{base}/repo.git#dev:sub", "-t", "g-cli")
        assert sorted(dk(d, "run", "--rm", "g-cli", "ls", "/sub").split()) == ["Dockerfile", "x.txt"]
        # docker-py sends a git URL as `remote` too; a dumb HTTP server gets a full fetch.
        http_base, stop_http = serve(srv)
        client = dockerpy.DockerClient(base_url=d.unix_host, version="auto")
        try:
            client.images.build(path=f"{http_base}/repo.git#dev", tag="g-dev")
        finally:
            client.close()
        assert dk(d, "run", "--rm", "g-dev", "cat", "/hello", "/m") == "from dev\nfrom the submodule\n"
        # The subdirectory is resolved inside the clone: a symlink to /etc leads nowhere,
        # a file is not a context; an unknown ref fails the fetch (dockerd 20.10's texts,
        # without its host paths).
        for frag, text in (("master:escape", "stat escape: no such file or directory"),
                           ("master:file.txt", "error setting git context, not a directory: file.txt"),
                           ("nope", "error fetching: fatal: couldn't find remote ref nope\n: exit status 128")):
            r = bb(d, "build", f"{base}/repo.git#{frag}", check=False)
            assert r.returncode == 1 and text in r.stderr, (frag, r.stderr)
        r = bb(d, "build", f"{base}/repo.git#--upload-pack=touch", check=False)
        assert r.returncode == 1 and "invalid refspec: --upload-pack=touch" in r.stderr, r.stderr
    finally:
        stop_git()
        if stop_http:
            stop_http()
    # Each clone went with its build's work dir.
    poll(lambda: not list((d.data_root / "build").glob("tmp-*")), 30, "the build dirs' removal")


def test_shebang_heredoc_runs_with_its_interpreter(busybox_daemon, tmp_path: Path) -> None:
    d = busybox_daemon()
    df = ("FROM busybox\n"
          "RUN <<EOF\n#!/bin/awk -f\nBEGIN { print \"awk ran\" > \"/awk.txt\" }\nEOF\n"
          "RUN <<SCRIPT\n#!/bin/sh -e\necho \"ran as $0\" > /sh.txt\nSCRIPT\n")
    ctx = make_ctx(tmp_path, df)
    bb(d, "build", "-t", "shebang", str(ctx))
    # The scripts ran as files under /dev/pipes (BuildKit's place), which no layer keeps.
    out = dk(d, "run", "--rm", "shebang", "sh", "-c", "cat /awk.txt /sh.txt; ls /dev/pipes 2>&1 || true")
    assert out.startswith("awk ran\nran as /dev/pipes/SCRIPT\n") and "No such file" in out, out
    # The script's text is the cache key: the same text hits, another misses.
    again = bb(d, "build", "-t", "shebang", str(ctx))
    assert again.stdout.count(" ---> Using cache") == 2, again.stdout
    (ctx / "Dockerfile").write_text(df.replace("awk ran", "awk ran again"))
    changed = bb(d, "build", "-t", "shebang", str(ctx))
    assert changed.stdout.count(" ---> Using cache") == 0, changed.stdout
    assert dk(d, "run", "--rm", "shebang", "cat", "/awk.txt") == "awk ran again\n"


def test_add_mixes_urls_and_context_sources(busybox_daemon, tmp_path: Path) -> None:
    d = busybox_daemon()
    www = tmp_path / "www"
    www.mkdir()
    (www / "a.txt").write_text("remote\n")
    os.utime(www / "a.txt", (1700000000, 1700000000))
    context_tar(www / "r.tar", "w", {"in-remote": b"r\n"})
    base, stop = serve(www)
    try:
        ctx = make_ctx(tmp_path, f"FROM busybox\nADD {base}/a.txt local.txt {base}/r.tar l.tar /dst/\n"
                                 f"ADD {base}/a.txt /single/\n", {"local.txt": "local\n"})
        context_tar(ctx / "l.tar", "w", {"in-local": b"l\n"})
        bb(d, "build", "-t", "mixed", str(ctx))
        out = dk(d, "run", "--rm", "mixed", "sh", "-c",
                 "cd /dst && ls && cat a.txt local.txt in-local && stat -c %Y a.txt /single/a.txt")
        # The URL's tar is copied as it is, the context's extracted (moby's rules per source);
        # a download has the server's Last-Modified time.
        assert out == "a.txt\nin-local\nlocal.txt\nr.tar\nremote\nlocal\nl\n1700000000\n1700000000\n", out
        # What dockerd 20.10 records for that download (no `file:` prefix, its own hash).
        history = dk(d, "history", "--no-trunc", "--format", "{{.CreatedBy}}", "mixed").splitlines()
        assert history[0] == ("/bin/sh -c #(nop) ADD 2924dac1de71a80bade7d9efc1c5553c0b500428f90b7dcf8c4b6c19067ee850"
                              " in /single/ "), history
        assert history[1].startswith("/bin/sh -c #(nop) ADD multi:"), history
        # URLs are downloaded again on each build; the same content is a cache hit,
        # changed content a miss.
        again = bb(d, "build", "-t", "mixed", str(ctx))
        assert again.stdout.count(" ---> Using cache") == 2, again.stdout
        (www / "a.txt").write_text("remote, changed\n")
        changed = bb(d, "build", "-t", "mixed", str(ctx))
        assert " ---> Using cache" not in changed.stdout, changed.stdout
        assert dk(d, "run", "--rm", "mixed", "cat", "/dst/a.txt") == "remote, changed\n"
        bad = make_ctx(tmp_path / "bad", f"FROM busybox\nADD --checksum=sha256:{'0' * 64} {base}/a.txt f /x/\n",
                       {"f": "f\n"})
        r = bb(d, "build", str(bad), check=False)
        assert r.returncode == 1 and "checksum can't be specified for non-HTTP(S) sources" in r.stderr, r.stderr
    finally:
        stop()
