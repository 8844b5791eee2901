"""Healthchecks (issue 15 §1): `Config.Healthcheck` from `docker run --health-*` or the
image's HEALTHCHECK is probed as an exec in the container, as dockerd does; State.Health,
`health_status` events, `docker ps` status and `health=` filter; probing goes on across a
daemon restart; beyond dockerd, `berth.health-on-failure` acts on an unhealthy container.

Every wait is a bounded poll of the daemon's state; no test asserts a timing."""

from __future__ import annotations

import json
import os
import subprocess
import time
import urllib.parse
from pathlib import Path

import pytest

from conftest import DOCKER_BIN, berth, poll
from test_containers import dk  # noqa: F401 - the CLI helper

# Probes every second: a status change takes a few seconds; the bound is generous for a
# loaded 2-core machine running a debug build.
BOUND = 60


@pytest.fixture
def daemon(busybox_daemon):
    return busybox_daemon()


def health(d, name: str):
    out = dk(d, "inspect", "-f", "{{json .State.Health}}", name).stdout.strip()
    return json.loads(out)


def status(d, name: str) -> str:
    h = health(d, name)
    return h["Status"] if h else "none"


def wait_status(d, name: str, want: str) -> dict:
    poll(lambda: status(d, name) == want, BOUND, f"{name} to be {want}")
    return health(d, name)


def events(d, name: str) -> list[str]:
    """The actions of `name`'s container events so far (`docker events` up to now)."""
    until = str(int(time.time()) + 1)
    out = dk(d, "events", "--since", "0", "--until", until, "--filter", f"container={name}",
             "--format", "{{.Action}}").stdout
    return out.splitlines()


def run_probed(d, name: str, cmd: str, *extra: str) -> str:
    return dk(d, "run", "-d", "--name", name, "--health-cmd", cmd, "--health-interval", "1s",
              *extra, "busybox", "sleep", "1000").stdout.strip()


def test_unhealthy_then_healthy_with_ps_filter_and_events(daemon):
    cid = run_probed(daemon, "c1", "test -f /tmp/ok", "--health-retries", "2")
    cfg = json.loads(dk(daemon, "inspect", "-f", "{{json .Config.Healthcheck}}", "c1").stdout)
    assert cfg["Test"] == ["CMD-SHELL", "test -f /tmp/ok"]
    assert cfg["Interval"] == 1_000_000_000 and cfg["Retries"] == 2
    h = wait_status(daemon, "c1", "unhealthy")
    assert h["FailingStreak"] >= 2
    assert h["Log"] and all(r["ExitCode"] == 1 for r in h["Log"])
    assert all(r["Start"] <= r["End"] for r in h["Log"])
    assert "(unhealthy)" in dk(daemon, "ps", "--filter", "name=c1").stdout
    dk(daemon, "exec", "c1", "touch", "/tmp/ok")
    h = wait_status(daemon, "c1", "healthy")
    assert h["FailingStreak"] == 0 and h["Log"][-1]["ExitCode"] == 0
    assert len(h["Log"]) <= 5
    ps = dk(daemon, "ps", "--format", "{{.Names}} {{.Status}}").stdout
    assert "c1 Up" in ps and "(healthy)" in ps, ps
    assert dk(daemon, "ps", "-q", "--no-trunc", "--filter", "health=healthy").stdout.split() == [cid]
    assert dk(daemon, "ps", "-q", "--filter", "health=unhealthy").stdout.split() == []
    actions = events(daemon, "c1")
    assert "health_status: unhealthy" in actions and "health_status: healthy" in actions, actions
    # dockerd runs probes as execs and says so in the events.
    assert any(a.startswith("exec_create: /bin/sh -c test -f /tmp/ok") for a in actions), actions
    assert any(a.startswith("exec_die") for a in actions), actions
    # The berth CLI: inspect --format and ps.
    host = ("-H", daemon.unix_host)
    assert berth(*host, "inspect", "--format", "{{.State.Health.Status}}", "c1").stdout.strip() == "healthy"
    assert "(healthy)" in berth(*host, "ps").stdout
    # Stopped: the monitor ends, the status is unhealthy as dockerd leaves it.
    dk(daemon, "stop", "-t", "1", "c1")
    assert status(daemon, "c1") == "unhealthy"
    dk(daemon, "rm", "-f", "c1")


def test_starting_status_and_filters(daemon):
    dk(daemon, "run", "-d", "--name", "slow", "--health-cmd", "true", "--health-interval", "1h",
       "busybox", "sleep", "1000")
    dk(daemon, "run", "-d", "--name", "plain", "busybox", "sleep", "1000")
    assert status(daemon, "slow") == "starting"
    assert health(daemon, "plain") is None
    ps = dk(daemon, "ps", "--format", "{{.Names}} {{.Status}}").stdout
    assert "(health: starting)" in ps, ps
    names = lambda f: set(dk(daemon, "ps", "--format", "{{.Names}}", "--filter", f).stdout.split())
    assert names("health=starting") == {"slow"}
    assert names("health=none") == {"plain"}
    r = dk(daemon, "ps", "--filter", "health=fine", check=False)
    assert r.returncode != 0
    assert "invalid filter 'health=fine'" in r.stderr and "must be one of none, starting, healthy, unhealthy" in r.stderr
    dk(daemon, "rm", "-f", "slow", "plain")


def test_a_probe_past_its_timeout_is_killed_and_fails(daemon):
    run_probed(daemon, "t1", "echo begun; sleep 30", "--health-timeout", "500ms", "--health-retries", "1")
    h = wait_status(daemon, "t1", "unhealthy")
    last = h["Log"][-1]
    assert last["ExitCode"] == -1
    assert last["Output"] == "Health check exceeded timeout (500ms): begun\n", last
    # The probe was killed: no `sleep 30` outlives a few probes.
    top = lambda: dk(daemon, "exec", "t1", "ps", "-o", "args").stdout
    poll(lambda: top().count("sleep 30") <= 1, BOUND, "timed-out probes to be killed")
    dk(daemon, "rm", "-f", "t1")


def test_create_refuses_bad_healthchecks_and_cli_flags(daemon):
    r = daemon.request("POST", "/containers/create", body=json.dumps(
        {"Image": "busybox", "Cmd": ["true"], "Healthcheck": {"Test": ["CMD", "true"], "Interval": 10}}).encode(),
        headers={"Content-Type": "application/json"})
    assert r.status == 400, r.text
    assert r.json()["message"] == "Interval in Healthcheck cannot be less than 1ms"
    r = dk(daemon, "create", "--label", "berth.health-on-failure=reboot", "busybox", check=False)
    assert r.returncode != 0 and "use restart, stop, kill or none" in r.stderr
    host = ("-H", daemon.unix_host)
    r = berth(*host, "run", "--no-healthcheck", "--health-cmd", "true", "busybox", check=False)
    assert r.returncode == 125 and "--no-healthcheck conflicts with --health-* options" in r.stderr
    r = berth(*host, "create", "--health-interval", "-1s", "busybox", check=False)
    assert r.returncode == 125 and "--health-interval cannot be negative" in r.stderr
    out = berth(*host, "create", "--name", "b1", "--health-cmd", "true", "--health-interval", "2s",
                "--health-timeout", "3s", "--health-retries", "4", "--health-start-period", "5s",
                "--health-start-interval", "1s", "busybox").stdout
    assert out.strip()
    cfg = json.loads(dk(daemon, "inspect", "-f", "{{json .Config.Healthcheck}}", "b1").stdout)
    assert cfg == {"Test": ["CMD-SHELL", "true"], "Interval": 2_000_000_000, "Timeout": 3_000_000_000,
                   "Retries": 4, "StartPeriod": 5_000_000_000, "StartInterval": 1_000_000_000}, cfg
    dk(daemon, "rm", "b1")


def test_image_healthcheck_applies_and_none_disables_it(daemon, workdir):
    ctx = workdir / "ctx"
    ctx.mkdir()
    (ctx / "Dockerfile").write_text(
        "FROM busybox\nHEALTHCHECK --interval=1s --retries=1 CMD test -f /tmp/ok\n")
    env = {**daemon.docker_env, "DOCKER_BUILDKIT": "0"}
    subprocess.run([DOCKER_BIN, "build", "-q", "-t", "probed", str(ctx)], env=env, check=True,
                   capture_output=True, text=True, timeout=120)
    dk(daemon, "run", "-d", "--name", "img", "probed", "sleep", "1000")
    cfg = json.loads(dk(daemon, "inspect", "-f", "{{json .Config.Healthcheck}}", "img").stdout)
    assert cfg["Test"] == ["CMD-SHELL", "test -f /tmp/ok"], cfg
    wait_status(daemon, "img", "unhealthy")
    dk(daemon, "run", "-d", "--name", "off", "--no-healthcheck", "probed", "sleep", "1000")
    assert health(daemon, "off") is None
    names = dk(daemon, "ps", "--format", "{{.Names}}", "--filter", "health=none").stdout.split()
    assert names == ["off"]
    dk(daemon, "rm", "-f", "img", "off")


def test_probing_goes_on_after_a_daemon_restart(daemon):
    run_probed(daemon, "r1", "false", "--health-retries", "1")
    h = wait_status(daemon, "r1", "unhealthy")
    daemon.restart()
    last = h["Log"][-1]["End"]
    # The restored container is probed again: new probes land in the log.
    poll(lambda: (health(daemon, "r1") or {}).get("Log", [{}])[-1].get("End", "") > last, BOUND,
         "a probe after the restart")
    wait_status(daemon, "r1", "unhealthy")
    assert "health_status: unhealthy" in events(daemon, "r1")
    dk(daemon, "rm", "-f", "r1")


def test_health_on_failure_restart_label(daemon):
    run_probed(daemon, "a1", "false", "--health-retries", "1", "--label", "berth.health-on-failure=restart")
    poll(lambda: int(dk(daemon, "inspect", "-f", "{{.RestartCount}}", "a1").stdout) >= 1, BOUND,
         "the unhealthy container to be restarted")
    poll(lambda: dk(daemon, "inspect", "-f", "{{.State.Running}}", "a1").stdout.strip() == "true", BOUND,
         "the restarted container to run")
    actions = events(daemon, "a1")
    assert "health_status: unhealthy" in actions and "restart" in actions, actions
    dk(daemon, "rm", "-f", "a1")


def test_health_on_failure_daemon_default(busybox_daemon):
    d = busybox_daemon(config={"health-on-failure": "stop"})
    run_probed(d, "s1", "false", "--health-retries", "1")
    # The label wins over the daemon's default.
    run_probed(d, "s2", "false", "--health-retries", "1", "--label", "berth.health-on-failure=none")
    poll(lambda: dk(d, "inspect", "-f", "{{.State.Status}}", "s1").stdout.strip() == "exited", BOUND,
         "the unhealthy container to be stopped")
    wait_status(d, "s2", "unhealthy")
    assert dk(d, "inspect", "-f", "{{.State.Status}}", "s2").stdout.strip() == "running"
    assert "stop" in events(d, "s1")
    dk(d, "rm", "-f", "s1", "s2")


def test_health_on_failure_kill_leaves_it_to_the_restart_policy(daemon):
    run_probed(daemon, "k1", "false", "--health-retries", "1", "--restart", "on-failure",
               "--label", "berth.health-on-failure=kill")
    poll(lambda: int(dk(daemon, "inspect", "-f", "{{.RestartCount}}", "k1").stdout) >= 1, BOUND,
         "the killed container to be restarted by its policy")
    actions = events(daemon, "k1")
    assert "kill" in actions and "die" in actions, actions
    dk(daemon, "rm", "-f", "k1")


def test_pause_stops_probing_and_unpause_resumes_it(daemon):
    run_probed(daemon, "p1", "true")
    wait_status(daemon, "p1", "healthy")
    dk(daemon, "pause", "p1")
    # As dockerd: the monitor stops, leaving the status unhealthy, with no event.
    assert status(daemon, "p1") == "unhealthy"
    assert "(Paused)" in dk(daemon, "ps", "--filter", "name=p1").stdout
    n = len(health(daemon, "p1")["Log"])
    dk(daemon, "unpause", "p1")
    wait_status(daemon, "p1", "healthy")
    assert len(health(daemon, "p1")["Log"]) >= min(n + 1, 5)
    dk(daemon, "rm", "-f", "p1")


def test_docker_py_healthcheck(daemon):
    import docker

    client = docker.DockerClient(base_url="unix://" + str(daemon.sock), timeout=30)
    try:
        c = client.containers.run("busybox", "sleep 1000", detach=True, name="py1",
                                  healthcheck={"test": ["CMD", "true"], "interval": 1_000_000_000,
                                               "retries": 1})

        def healthy() -> bool:
            c.reload()
            return c.health == "healthy"

        poll(healthy, BOUND, "docker-py to see the container healthy")
        assert c.attrs["State"]["Health"]["Log"][-1]["ExitCode"] == 0
        c.remove(force=True)
    finally:
        client.close()
