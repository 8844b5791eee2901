"""Container records written before the typed model (no `version`, issue 14) are read at
daemon start: the containers are kept, with their settings, and are written back with the
version; a create stores what the map-based berthd stored."""

from __future__ import annotations

import json
from pathlib import Path

from test_containers import daemon, dk  # noqa: F401 - the fixture and the CLI helper


def record_path(d, cid: str):
    return d.data_root / "containers" / cid / "record.json"


def test_an_old_data_root_starts_and_keeps_its_containers(daemon):
    d = daemon
    dk(d, "create", "--name", "old", "--restart", "on-failure:2", "-l", "k=v", "-e", "A=b",
       "--memory", "64m", "busybox", "sh", "-c", "echo $A")
    cid = dk(d, "inspect", "-f", "{{.Id}}", "old").stdout.strip()
    before = d.get_json(f"/containers/{cid}/json")
    d.stop()
    # As the map-based berthd wrote it: no version; and a field it stored unchecked, of the
    # wrong JSON type (it read it as absent).
    rec = json.loads(record_path(d, cid).read_text())
    rec.pop("version", None)
    rec["host_config"]["ShmSize"] = "big"
    record_path(d, cid).write_text(json.dumps(rec))
    d.start()
    # Through the API: the docker CLI cannot decode a string ShmSize.
    after = d.get_json(f"/containers/{cid}/json")
    assert after["Id"] == cid
    assert after["HostConfig"]["RestartPolicy"] == {"Name": "on-failure", "MaximumRetryCount": 2}
    assert after["Config"]["Labels"] == {"k": "v"}
    assert after["HostConfig"]["Memory"] == 64 * 1024 * 1024
    assert after["HostConfig"]["ShmSize"] == "big"
    before["HostConfig"]["ShmSize"] = "big"
    assert after == before
    # Starts and runs as configured (through the API, as for inspect).
    r = d.request("POST", f"/containers/{cid}/start")
    assert r.status == 204, r.text
    r = d.request("POST", f"/containers/{cid}/wait")
    assert r.status == 200 and r.json()["StatusCode"] == 0, r.text
    r = d.request("GET", f"/containers/{cid}/logs?stdout=1")
    assert r.status == 200 and r.body.endswith(b"b\n"), r.text
    written = json.loads(record_path(d, cid).read_text())
    assert written["version"] == 1
    assert written["host_config"]["ShmSize"] == "big"


def test_a_record_from_a_later_berthd_is_left_alone(daemon):
    d = daemon
    dk(d, "create", "--name", "later", "busybox", "true")
    cid = dk(d, "inspect", "-f", "{{.Id}}", "later").stdout.strip()
    d.stop()
    rec = json.loads(record_path(d, cid).read_text())
    rec["version"] = 99
    record_path(d, cid).write_text(json.dumps(rec))
    d.start()
    assert dk(d, "ps", "-aq").stdout.strip() == ""
    # Skipped, not removed as a half-made container.
    assert json.loads(record_path(d, cid).read_text())["version"] == 99
    assert "newer than this berthd reads" in d.log_text()


FULL_CREATE = ["--restart", "on-failure:3", "-e", "A=b", "-l", "k=v", "-p", "127.0.0.1:8080:80",
               "-v", "/tmp:/host-tmp:ro", "--tmpfs", "/run:size=64k", "--memory", "64m",
               "--ulimit", "nofile=1024:2048", "--cap-add", "NET_ADMIN", "--log-opt", "max-size=1m",
               "--stop-signal", "SIGUSR1", "--stop-timeout", "5", "-w", "/tmp", "-u", "1000",
               "--hostname", "h1", "--device", "/dev/null:/dev/xnull:rw",
               "--sysctl", "net.ipv4.ip_forward=1", "busybox", "sh", "-c", "exit 3"]


def test_a_create_stores_what_the_map_based_berthd_stored(daemon):
    """The fixture is the record the map-based berthd wrote for this same `docker create`."""
    d = daemon
    dk(d, "create", "--name", "full", *FULL_CREATE)
    cid = dk(d, "inspect", "-f", "{{.Id}}", "full").stdout.strip()
    got = json.loads(record_path(d, cid).read_text())
    fixture = Path(__file__).parents[2] / "crates/berth-engine/tests/fixtures/record_v0_created.json"
    want = json.loads(fixture.read_text())
    for k in ("id", "created", "image_id"):
        got.pop(k)
        want.pop(k)
    assert got.pop("version") == 1
    # Since then, as dockerd: the default PATH belongs to the process, not to Config.Env.
    want["config"]["Env"] = [e for e in want["config"]["Env"] if not e.startswith("PATH=")]
    assert got == want
