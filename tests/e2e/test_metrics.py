"""Prometheus metrics on `--metrics-addr` (dockerd's daemon.json `metrics-addr`): scraped
over loopback after real work — containers by state, shim and daemon memory, pulled bytes
from a loopback registry, healthcheck outcomes, and API requests by route template, status
and latency."""

from __future__ import annotations

import re
import urllib.error
import urllib.request

from conftest import expect_start_failure, free_port, poll
from test_registry import Registry, imported

import pytest


def scrape(port: int) -> dict[str, float]:
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=10) as r:
        assert r.status == 200
        assert r.headers["Content-Type"].startswith("text/plain; version=0.0.4")
        text = r.read().decode()
    samples: dict[str, float] = {}
    for line in text.splitlines():
        if not line or line.startswith("#"):
            continue
        m = re.fullmatch(r"(\S+(?:\{.*\})?) (\S+)", line)
        assert m, f"not a sample line: {line!r}"
        samples[m.group(1)] = float(m.group(2))
    return samples


@pytest.fixture
def registry(workdir):
    (workdir / "registry").mkdir()
    r = Registry(workdir / "registry")
    yield r
    r.stop()


def test_metrics_after_real_work(busybox_daemon, docker, registry, workdir):
    port = free_port()
    d = busybox_daemon(extra_args=["--metrics-addr", f"127.0.0.1:{port}"])
    env = {"DOCKER_HOST": d.unix_host}
    before = scrape(port)
    assert before['engine_daemon_container_states_containers{state="running"}'] == 0
    assert before["berth_image_pulled_bytes_total"] == 0
    assert before["berth_daemon_resident_memory_bytes"] > 1 << 20

    # One running, one paused, one stopped.
    run = docker("run", "-d", "busybox", "sleep", "300", env=env).stdout.strip()
    paused = docker("run", "-d", "busybox", "sleep", "300", env=env).stdout.strip()
    docker("pause", paused, env=env)
    docker("run", "busybox", "true", env=env)
    # A pull through a loopback registry counts its bytes.
    ref = f"{registry.addr}/berth/metrics:1"
    imported(docker, d, workdir, ref)  # an image of its own, gone after the rmi
    docker("push", ref, env=env)
    docker("rmi", ref, env=env)
    docker("pull", ref, env=env)
    for _ in range(3):
        assert d.request("GET", "/containers/json").status == 200
    assert d.request("GET", f"/containers/{run}/json").status == 200
    assert d.request("GET", "/containers/no-such-container/json").status == 404
    assert d.request("GET", "/no/such/route/abc123").status == 404

    after = scrape(port)
    states = {s: after[f'engine_daemon_container_states_containers{{state="{s}"}}'] for s in ("running", "paused", "stopped")}
    assert states == {"running": 1, "paused": 1, "stopped": 1}, states
    assert after["berth_shims"] >= 2
    assert after["berth_shim_resident_memory_bytes"] > 0
    assert after["berth_image_pulled_bytes_total"] > 100_000  # busybox's layer, compressed
    # Requests by route template: IDs and unknown paths never become labels.
    assert after['berth_api_requests_total{method="GET",route="/containers/json",status="200"}'] >= 3
    assert after['berth_api_requests_total{method="GET",route="/containers/{id}/json",status="404"}'] == 1
    assert after['berth_api_requests_total{method="GET",route="(unmatched)",status="404"}'] >= 1
    assert not any(run in k or "abc123" in k or "no-such-container" in k for k in after), [
        k for k in after if run in k
    ]
    count = after['berth_api_request_duration_seconds_count{method="GET",route="/containers/json"}']
    inf = after['berth_api_request_duration_seconds_bucket{method="GET",route="/containers/json",le="+Inf"}']
    assert count == inf >= 3
    # Healthcheck outcomes: a probe that fails twice turns its container unhealthy.
    sick = docker("run", "-d", "--health-cmd", "false", "--health-interval", "1s", "--health-retries", "2",
                  "busybox", "sleep", "300", env=env).stdout.strip()
    poll(lambda: scrape(port)["berth_health_unhealthy_total"] >= 1, 30, "the container turning unhealthy")
    health = scrape(port)
    assert health['berth_health_probes_total{result="failed"}'] >= 2
    assert health['berth_health_probes_total{result="passed"}'] == 0
    docker("rm", "-f", run, paused, sick, env=env)
    docker("container", "prune", "-f", env=env)
    poll(lambda: scrape(port)['engine_daemon_container_states_containers{state="running"}'] == 0, 20,
         "the running count back at 0")


def test_metrics_addr_must_be_loopback(berthd):
    d = berthd(start=False, extra_args=["--metrics-addr", "0.0.0.0:9323"])
    proc = expect_start_failure(d.argv())
    assert "loopback only" in proc.stderr, proc.stderr


def test_metrics_endpoint_serves_only_metrics(berthd):
    port = free_port()
    berthd(extra_args=["--metrics-addr", f"127.0.0.1:{port}"])
    with pytest.raises(urllib.error.HTTPError) as e:
        urllib.request.urlopen(f"http://127.0.0.1:{port}/containers/json", timeout=10)
    assert e.value.code == 404
