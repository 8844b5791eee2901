"""Log drivers and json-file rotation through the real docker CLI: `--log-opt max-size` /
`max-file` keep at most that many files of about that size, `docker logs` reads across
them oldest first, `logs -f` follows a container through rotations without losing a line,
the `none` driver keeps nothing, and unknown drivers and options are refused at create."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import pytest

from conftest import DOCKER_BIN, poll


@pytest.fixture
def d(busybox_daemon):
    return busybox_daemon()


def dk(d, *args, check=True, timeout=60):
    r = subprocess.run([DOCKER_BIN, *args], env=d.docker_env, capture_output=True, text=True, timeout=timeout)
    if check:
        assert r.returncode == 0, (args, r.stdout, r.stderr)
    return r


def numbers(text: str) -> list[int]:
    return [int(l.split("-", 1)[1]) for l in text.splitlines() if l.startswith("line-")]


WRITE_200 = "i=0; while [ $i -lt 200 ]; do echo line-$i; i=$((i+1)); done; echo done; sleep 1000"


def test_rotation_keeps_max_files_and_logs_reads_them_in_order(d):
    cid = dk(d, "run", "-d", "--log-opt", "max-size=1k", "--log-opt", "max-file=3",
             "busybox", "sh", "-c", WRITE_200).stdout.strip()
    poll(lambda: "done" in dk(d, "logs", "--tail", "1", cid).stdout, 30, "the writer to finish")
    log = Path(dk(d, "inspect", "-f", "{{.LogPath}}", cid).stdout.strip())
    files = sorted(p.name for p in log.parent.glob(log.name + "*"))
    assert files == [log.name, log.name + ".1", log.name + ".2"], files
    for p in log.parent.glob(log.name + "*"):
        assert p.stat().st_size <= 1024, (p, p.stat().st_size)
    cfg = json.loads(dk(d, "inspect", "-f", "{{json .HostConfig.LogConfig}}", cid).stdout)
    assert cfg == {"Type": "json-file", "Config": {"max-size": "1k", "max-file": "3"}}
    got = numbers(dk(d, "logs", cid).stdout)
    # The oldest lines rotated away; what is left is a contiguous run up to the last one.
    assert got and got[-1] == 199 and got[0] > 0, got
    assert got == list(range(got[0], 200)), got
    tail = numbers(dk(d, "logs", "--tail", "5", cid).stdout)
    assert tail == [196, 197, 198, 199], tail  # the 5th line from the end is "done"
    dk(d, "rm", "-f", cid)


def follow_across_rotation(d, tmp_path: Path, log_args: list[str]) -> str:
    """Runs a writer of 16 acknowledged batches of 6 lines with `log_args` and checks that
    `docker logs -f` shows all 96 lines in order while the log rotates; returns the ID.
    Each batch is acknowledged (a file in a bind-mounted directory) once the follower has
    shown its last line, so the follower is never more than a batch behind."""
    acks = tmp_path / "acks"
    acks.mkdir()
    script = ("echo ready; b=0; i=0; while [ $b -lt 16 ]; do "
              "n=0; while [ $n -lt 6 ]; do echo line-$i; i=$((i+1)); n=$((n+1)); done; "
              "while [ ! -e /acks/ack-$b ]; do usleep 5000; done; b=$((b+1)); done")
    cid = dk(d, "run", "-d", *log_args,
             "-v", f"{acks}:/acks:ro", "busybox", "sh", "-c", script).stdout.strip()
    follower = subprocess.Popen([DOCKER_BIN, "logs", "-f", cid], env=d.docker_env,
                                stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    seen: list[int] = []
    try:
        assert follower.stdout is not None
        assert follower.stdout.readline() == "ready\n"
        for batch in range(16):
            while len(seen) < 6 * (batch + 1):
                line = follower.stdout.readline()
                assert line, f"the follower stopped after {seen[-3:]}: {follower.stderr.read() if follower.stderr else ''}"
                seen += numbers(line)
            (acks / f"ack-{batch}").touch()
        out, err = follower.communicate(timeout=60)
    finally:
        follower.kill()
    seen += numbers(out)
    assert seen == list(range(96)), (seen, err)
    return cid


def test_follow_survives_rotation(d, tmp_path):
    # The writer writes batches of 6 lines (~450 bytes: at most one rotation of a 512-byte
    # file each) and waits for the test to acknowledge each batch, which it does once the
    # follower has shown the batch's last line. So the follower is never more than one
    # rotation behind (max-file 3 keeps two), and every line of 16 batches must reach it.
    # Acks are files the test makes in a bind-mounted directory (an exec making them
    # could still be running, and be killed, when the writer sees the last one and exits).
    cid = follow_across_rotation(d, tmp_path, ["--log-opt", "max-size=512", "--log-opt", "max-file=3"])
    log = Path(dk(d, "inspect", "-f", "{{.LogPath}}", cid).stdout.strip())
    assert Path(f"{log}.2").exists(), "the log did not rotate"
    dk(d, "rm", "-f", cid)


def test_single_file_is_truncated(d):
    cid = dk(d, "run", "-d", "--log-opt", "max-size=1k", "busybox", "sh", "-c", WRITE_200).stdout.strip()
    poll(lambda: "done" in dk(d, "logs", "--tail", "1", cid).stdout, 30, "the writer to finish")
    log = Path(dk(d, "inspect", "-f", "{{.LogPath}}", cid).stdout.strip())
    assert sorted(p.name for p in log.parent.glob(log.name + "*")) == [log.name]
    got = numbers(dk(d, "logs", cid).stdout)
    assert got and got[-1] == 199 and got == list(range(got[0], 200)), got
    dk(d, "rm", "-f", cid)


def test_none_driver_and_bad_config(d):
    cid = dk(d, "run", "-d", "--log-driver", "none", "busybox", "sh", "-c", "echo hidden; sleep 1000").stdout.strip()
    r = dk(d, "logs", cid, check=False)
    assert r.returncode != 0 and "configured logging driver does not support reading" in r.stderr, r.stderr
    assert d.request("GET", f"/containers/{cid}/logs?stdout=1").status == 501
    assert dk(d, "inspect", "-f", "{{.HostConfig.LogConfig.Type}}", cid).stdout.strip() == "none"
    log = Path(dk(d, "inspect", "-f", "{{.LogPath}}", cid).stdout.strip())
    assert not log.exists()
    dk(d, "rm", "-f", cid)

    before = dk(d, "ps", "-aq").stdout.split()
    for args, want in (
        (["--log-driver", "gelf"], "logger: no log driver named 'gelf' is registered"),
        (["--log-opt", "foo=bar"], "unknown log opt 'foo' for json-file log driver"),
        (["--log-opt", "max-file=0"], "max-file cannot be less than 1"),
        (["--log-opt", "max-size=lots"], "invalid size: 'lots'"),
    ):
        r = dk(d, "create", *args, "busybox", "true", check=False)
        assert r.returncode != 0 and want in r.stderr, (args, r.stderr)
    assert dk(d, "ps", "-aq").stdout.split() == before


def test_daemon_log_defaults(busybox_daemon):
    daemon = busybox_daemon(config={"log-driver": "json-file", "log-opts": {"max-size": "1k", "max-file": "2"}})
    cid = dk(daemon, "run", "-d", "--log-opt", "max-file=3", "busybox", "sh", "-c", WRITE_200).stdout.strip()
    poll(lambda: "done" in dk(daemon, "logs", "--tail", "1", cid).stdout, 30, "the writer to finish")
    cfg = json.loads(dk(daemon, "inspect", "-f", "{{json .HostConfig.LogConfig}}", cid).stdout)
    assert cfg == {"Type": "json-file", "Config": {"max-file": "3", "max-size": "1k"}}, cfg
    log = Path(dk(daemon, "inspect", "-f", "{{.LogPath}}", cid).stdout.strip())
    assert len(list(log.parent.glob(log.name + "*"))) == 3
    dk(daemon, "rm", "-f", cid)
    # A container naming another driver does not get the json-file defaults.
    cid = dk(daemon, "create", "--log-driver", "none", "busybox", "true").stdout.strip()
    cfg = json.loads(dk(daemon, "inspect", "-f", "{{json .HostConfig.LogConfig}}", cid).stdout)
    assert cfg == {"Type": "none", "Config": {}}, cfg


def test_bad_daemon_log_defaults_refuse_to_start(berthd):
    daemon = berthd(config={"log-opts": {"max-size": "huge"}}, start=False)
    proc = daemon.spawn()
    assert proc.wait(timeout=30) != 0
    assert "invalid size: 'huge'" in daemon.log_text(), daemon.log_tail()


def test_json_file_attrs_and_logs_details(d):
    # Labels, environment and tag as each line's `attrs`, byte for byte as dockerd 20.10
    # wrote them for the same container (Go's map encoding: keys sorted, `&<>` escaped);
    # `logs --details` shows them before each line as dockerd does (url query escaping,
    # sorted by key), and a line without attributes gets a lone space.
    cid = dk(d, "run", "-d", "--name", "attrs", "--label", "a=1 2&<x>", "--label", "b.c=é,=",
             "-e", "X=v w", "-e", "Y=y", "-e", "ZZ=z",
             "--log-opt", "labels=a,b.c,none", "--log-opt", "env=X,none", "--log-opt", "env-regex=^Z",
             "--log-opt", "tag={{.Name}}/x",
             "busybox", "sh", "-c", "echo hi; echo err >&2; printf nonl").stdout.strip()
    assert dk(d, "wait", cid).stdout.strip() == "0"
    log = Path(dk(d, "inspect", "-f", "{{.LogPath}}", cid).stdout.strip())
    lines = log.read_text().splitlines()
    want = '"attrs":{"X":"v w","ZZ":"z","a":"1 2\\u0026\\u003cx\\u003e","b.c":"é,=","tag":"attrs/x"}'
    assert len(lines) == 3 and all(f'"stream":"std' in l and f',{want},"time":"' in l for l in lines), lines
    prefix = "X=v+w,ZZ=z,a=1+2%26%3Cx%3E,b.c=%C3%A9%2C%3D,tag=attrs%2Fx "
    r = dk(d, "logs", "--details", cid)
    assert (r.stdout, r.stderr) == (f"{prefix}hi\n{prefix}nonl", f"{prefix}err\n"), r
    stamped = dk(d, "logs", "--details", "-t", cid).stdout.splitlines()
    assert all(l.split(" ", 1)[1].startswith(prefix) for l in stamped), stamped
    r = dk(d, "logs", cid)
    assert (r.stdout, r.stderr) == ("hi\nnonl", "err\n"), r
    from conftest import BERTH_BIN, clean_env
    r = subprocess.run([str(BERTH_BIN), "logs", "--details", cid], env=clean_env(d.docker_env),
                       capture_output=True, text=True, timeout=60)
    assert (r.returncode, r.stdout, r.stderr) == (0, f"{prefix}hi\n{prefix}nonl", f"{prefix}err\n"), r

    plain = dk(d, "run", "-d", "busybox", "echo", "plain").stdout.strip()
    dk(d, "wait", plain)
    assert '"attrs"' not in Path(dk(d, "inspect", "-f", "{{.LogPath}}", plain).stdout.strip()).read_text()
    assert dk(d, "logs", "--details", plain).stdout == " plain\n"
    dk(d, "rm", "-f", cid, plain)
