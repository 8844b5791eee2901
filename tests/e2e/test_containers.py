"""Containers through the real docker CLI and docker-py: run, exit codes, detached
lifecycle, name conflicts, and no leaked mounts or shims."""

from __future__ import annotations

import subprocess

import pytest

from conftest import DOCKER_BIN, poll
from hostclean import shim_pids


@pytest.fixture
def daemon(busybox_daemon):
    return busybox_daemon()


def _shims(d) -> list[int]:
    return shim_pids((str(d.data_root), str(d.exec_root)))


def dk(d, *args, check=True, timeout=60):
    return subprocess.run([DOCKER_BIN, *args], env=d.docker_env, capture_output=True, text=True,
                          timeout=timeout, check=check)


def test_run_rm_echo(daemon):
    r = dk(daemon, "run", "--rm", "busybox", "echo", "hi")
    assert r.returncode == 0, r.stderr
    assert r.stdout == "hi\n"
    assert dk(daemon, "ps", "-aq").stdout.strip() == ""


def test_exit_codes(daemon):
    r = dk(daemon, "run", "busybox", "sh", "-c", "exit 3", check=False)
    assert r.returncode == 3, r.stderr
    r = dk(daemon, "run", "--rm", "busybox", "/no/such/binary", check=False)
    assert r.returncode == 127, r.stderr
    r = dk(daemon, "run", "--rm", "busybox", "nosuchcommand", check=False)
    assert r.returncode == 127, r.stderr
    assert "executable file not found" in r.stderr or "no such file or directory" in r.stderr
    # Only the `exit 3` container (no --rm) is left.
    assert len(dk(daemon, "ps", "-aq").stdout.split()) == 1


def test_detached_lifecycle(daemon):
    cid = dk(daemon, "run", "-d", "--name", "sleeper", "busybox", "sh", "-c", "echo started; sleep 100").stdout.strip()
    assert len(cid) == 64
    ps = dk(daemon, "ps").stdout
    assert "sleeper" in ps and cid[:12] in ps
    assert _shims(daemon), "the leak check cannot see a running shim"
    poll(lambda: "started" in dk(daemon, "logs", "sleeper").stdout, 10, "log line")
    info = dk(daemon, "inspect", "-f", "{{.State.Status}} {{.State.Running}} {{.Name}}", "sleeper").stdout.strip()
    assert info == "running true /sleeper"
    r = dk(daemon, "rm", "sleeper", check=False)
    assert r.returncode != 0 and "container is running" in r.stderr
    dk(daemon, "stop", "-t", "1", "sleeper")
    st = dk(daemon, "inspect", "-f", "{{.State.Status}}", "sleeper").stdout.strip()
    assert st == "exited"
    assert "sleeper" not in dk(daemon, "ps").stdout
    assert "sleeper" in dk(daemon, "ps", "-a").stdout
    dk(daemon, "rm", "sleeper")
    r = dk(daemon, "inspect", "sleeper", check=False)
    assert r.returncode != 0 and "No such" in r.stderr


def test_name_conflict(daemon):
    dk(daemon, "create", "--name", "twin", "busybox", "true")
    r = dk(daemon, "create", "--name", "twin", "busybox", "true", check=False)
    assert r.returncode != 0
    assert 'The container name "/twin" is already in use' in r.stderr
    resp = daemon.request("POST", "/containers/create?name=twin", headers={"Content-Type": "application/json"},
                          body=b'{"Image":"busybox","Cmd":["true"]}')
    assert resp.status == 409
    resp = daemon.request("POST", "/containers/create?name=-bad", headers={"Content-Type": "application/json"},
                          body=b'{"Image":"busybox","Cmd":["true"]}')
    assert resp.status == 400
    assert daemon.request("GET", "/containers/nope/json").status == 404
    dk(daemon, "rm", "twin")


def test_docker_py_run(daemon):
    docker = pytest.importorskip("docker")
    client = docker.DockerClient(base_url=daemon.unix_host, version="auto")
    try:
        assert client.containers.run("busybox", "echo hi", remove=True) == b"hi\n"
        assert client.containers.list(all=True) == []
    finally:
        client.close()
