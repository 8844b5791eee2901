"""docker-compose 1.29 (Debian's package, installed by `scripts/deps tests`) against
berthd: a service built from a Dockerfile (`build:`), a second one on the project network
that reaches the first by its service name, a named volume, `depends_on` with
`condition: service_healthy`, then `up -d`, `ps`, `logs`, `exec`, and `down -v` leaving
no container, network or volume behind."""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path

import pytest

from conftest import DOCKER_BIN, clean_env, poll

COMPOSE = shutil.which("docker-compose") or "/usr/bin/docker-compose"

COMPOSE_FILE = """version: "2.4"
services:
  db:
    build:
      context: ./db
      args:
        GREETING: hello from the volume
    healthcheck:
      test: ["CMD", "test", "-f", "/data/ready"]
      interval: 1s
      timeout: 5s
      retries: 60
    volumes:
      - data:/data
    stop_signal: SIGKILL
  web:
    image: busybox
    stop_signal: SIGKILL
    depends_on:
      db:
        condition: service_healthy
    command: ["sh", "-c", "wget -qO- http://db:8080/msg; exec sleep 600"]
volumes:
  data:
"""

DB_DOCKERFILE = """FROM busybox
ARG GREETING
RUN echo "$GREETING" > /msg
CMD ["sh", "-c", "cp /msg /data/msg && touch /data/ready && exec httpd -f -p 8080 -h /data"]
"""


def compose(d, project: Path, *args: str, check: bool = True, cli_build: bool = False) -> subprocess.CompletedProcess[str]:
    # COMPOSE_DOCKER_CLI_BUILD=0: compose builds through docker-py's POST /build itself;
    # =1: it runs `docker build` (the CLI's classic path).
    env = clean_env({"DOCKER_HOST": d.unix_host, "COMPOSE_PROJECT_NAME": "proj",
                     "COMPOSE_DOCKER_CLI_BUILD": "1" if cli_build else "0", "DOCKER_CONFIG": d.docker_env["DOCKER_CONFIG"],
                     "PATH": f"{Path(DOCKER_BIN).parent}:/usr/bin:/bin"})
    r = subprocess.run([COMPOSE, *args], cwd=project, env=env, capture_output=True, text=True,
                       timeout=300, stdin=subprocess.DEVNULL)
    assert not check or r.returncode == 0, (args, r.stdout, r.stderr)
    return r


def dk(d, *args: str) -> str:
    return subprocess.run([DOCKER_BIN, *args], env=d.docker_env, capture_output=True, text=True,
                          timeout=120, check=True).stdout


def test_compose_build_network_volume_healthy_dependency(busybox_daemon, tmp_path: Path) -> None:
    if not shutil.which(COMPOSE):
        pytest.fail(f"docker-compose is not at {COMPOSE}: run scripts/deps tests")
    d = busybox_daemon()
    project = tmp_path / "proj"
    (project / "db").mkdir(parents=True)
    (project / "docker-compose.yml").write_text(COMPOSE_FILE)
    (project / "db" / "Dockerfile").write_text(DB_DOCKERFILE)
    networks_before = set(dk(d, "network", "ls", "-q").split())
    try:
        up = compose(d, project, "up", "-d")
        assert "Successfully tagged proj_db:latest" in up.stdout, up.stdout
        # web started only once db was healthy, so its first request found the file.
        ps = compose(d, project, "ps").stdout
        assert "proj_db_1" in ps and "proj_web_1" in ps and "(healthy)" in ps, ps
        poll(lambda: "hello from the volume" in compose(d, project, "logs", "web").stdout, 60, "web's log")
        # The image was built by the classic builder with the build arg.
        assert dk(d, "run", "--rm", "proj_db", "cat", "/msg") == "hello from the volume\n"
        out = compose(d, project, "exec", "-T", "db", "cat", "/data/msg").stdout
        assert out == "hello from the volume\n", out
        out = compose(d, project, "exec", "-T", "web", "wget", "-qO-", "http://db:8080/msg").stdout
        assert out == "hello from the volume\n", out
        # `docker-compose build` through the docker CLI finds every step in the cache.
        rebuilt = compose(d, project, "build", cli_build=True).stdout
        assert rebuilt.count(" ---> Using cache") == 3, rebuilt
        vols = dk(d, "volume", "ls", "--format", "{{.Name}}").split()
        assert vols == ["proj_data"], vols
        labels = json.loads(dk(d, "inspect", "--format", "{{json .Config.Labels}}", "proj_web_1"))
        assert labels["com.docker.compose.service"] == "web", labels
    finally:
        r = compose(d, project, "down", "-v", check=False)
    assert r.returncode == 0, (r.stdout, r.stderr)
    assert dk(d, "ps", "-aq") == ""
    assert dk(d, "volume", "ls", "-q") == ""
    assert set(dk(d, "network", "ls", "-q").split()) == networks_before


RECREATE_FILE = """version: "2.4"
services:
  app:
    image: busybox
    stop_signal: SIGKILL
    environment:
      GREETING: "{greeting}"
    ports:
      - "80"
    command: ["sh", "-c", "echo $$GREETING; exec sleep 600"]
"""


def test_compose_recreates_a_changed_service(busybox_daemon, tmp_path: Path) -> None:
    """`up -d`, an environment variable changed in the file, `up -d` again: compose
    (config-hash label) stops the old container, renames it aside, creates and starts the
    new one under the service's name and removes the old one; a third `up -d` with
    nothing changed leaves the container alone."""
    if not shutil.which(COMPOSE):
        pytest.fail(f"docker-compose is not at {COMPOSE}: run scripts/deps tests")
    d = busybox_daemon()
    project = tmp_path / "proj"
    project.mkdir()
    f = project / "docker-compose.yml"
    try:
        f.write_text(RECREATE_FILE.format(greeting="one"))
        compose(d, project, "up", "-d")
        first = dk(d, "ps", "-aq", "--no-trunc").split()
        assert len(first) == 1, first
        f.write_text(RECREATE_FILE.format(greeting="two"))
        up = compose(d, project, "up", "-d")
        assert "Recreating proj_app_1" in up.stderr + up.stdout, (up.stdout, up.stderr)
        now = dk(d, "ps", "-aq", "--no-trunc").split()
        assert len(now) == 1 and now != first, (first, now)
        env = json.loads(dk(d, "inspect", "--format", "{{json .Config.Env}}", "proj_app_1"))
        assert "GREETING=two" in env, env
        assert dk(d, "inspect", "--format", "{{.State.Running}} {{.Name}}", now[0]) == "true /proj_app_1\n"
        poll(lambda: "two" in compose(d, project, "logs", "app").stdout, 60, "the new container's log")
        # Its published port again, on both families.
        port = dk(d, "port", "proj_app_1", "80").split()
        assert len(port) == 2 and port[0].startswith("0.0.0.0:") and port[1].startswith("[::]:"), port
        again = compose(d, project, "up", "-d")
        assert "proj_app_1 is up-to-date" in again.stderr + again.stdout, (again.stdout, again.stderr)
        assert dk(d, "ps", "-aq", "--no-trunc").split() == now
    finally:
        r = compose(d, project, "down", check=False)
    assert r.returncode == 0, (r.stdout, r.stderr)
    assert dk(d, "ps", "-aq") == ""
