"""The `local`, `syslog` and `journald` log drivers through the real docker CLI.

`local`: gzip-compressed rotated files beside the live one, read by `docker logs` with
`--tail`, `--since`, `--until`, `-t`, stream selection and `-f` across rotations, and
still after a daemon restart. `syslog`: RFC 5424 / 3164 messages to a server this test
runs on loopback (udp, tcp) and on a unix socket. `journald`: native-protocol datagrams
to a journal socket this test binds (berthd runs in a private mount namespace where
`/run/systemd/journal/socket` leads to it), and read back by `docker logs` from a private
systemd-journald's journal. Bad options are refused with dockerd's texts.
"""

from __future__ import annotations

import gzip
import json
import os
import re
import shutil
import socket
import subprocess
import threading
from datetime import datetime, timezone
from pathlib import Path

import pytest

from conftest import DOCKER_BIN, import_busybox, leak_check, poll
from test_log_config import d, dk, follow_across_rotation  # noqa: F401 - `d` is a fixture


def numbers(text: str, prefix: str = "line-") -> list[int]:
    return [int(l.split("-", 1)[1]) for l in text.splitlines() if l.startswith(prefix)]


def nanos(ts: str) -> int:
    """An RFC 3339 UTC time with up to 9 fraction digits, as nanoseconds."""
    whole, _, frac = ts.rstrip("Z").partition(".")
    return int(datetime.strptime(whole, "%Y-%m-%dT%H:%M:%S").replace(tzinfo=timezone.utc).timestamp()) * 10**9 + int(frac.ljust(9, "0"))


def local_dir(d, cid: str) -> Path:
    # The container's directory holds `local-logs/` (moby's layout).
    json_log = Path(dk(d, "inspect", "-f", "{{.LogPath}}", cid).stdout.strip())
    return json_log.parent / "local-logs"


# 200 lines (~95 bytes each on disk: about 20 rotations of 1k).
WRITE_200 = "i=0; while [ $i -lt 200 ]; do echo line-$i; i=$((i+1)); done; echo done; sleep 1000"


def test_local_driver_compresses_rotated_files_and_logs_reads_them(d):
    cid = dk(d, "run", "-d", "--log-driver", "local", "--log-opt", "max-size=1k",
             "busybox", "sh", "-c", WRITE_200).stdout.strip()
    poll(lambda: "done" in dk(d, "logs", "--tail", "1", cid).stdout, 30, "the writer to finish")
    cfg = json.loads(dk(d, "inspect", "-f", "{{json .HostConfig.LogConfig}}", cid).stdout)
    assert cfg == {"Type": "local", "Config": {"max-size": "1k"}}, cfg
    logs = local_dir(d, cid)
    # max-file defaults to 5: the live file and four compressed ones.
    want = ["container.log"] + [f"container.log.{n}.gz" for n in range(1, 5)]
    poll(lambda: sorted(p.name for p in logs.iterdir()) == want, 30, "compression of the last rotation")
    for n in range(1, 5):
        raw = (logs / f"container.log.{n}.gz").read_bytes()
        assert raw[:2] == b"\x1f\x8b", n
        text = gzip.decompress(raw).decode()
        assert all(json.loads(l)["stream"] in ("stdout", "stderr") for l in text.splitlines())
    assert (logs / "container.log").stat().st_size <= 1024

    got = numbers(dk(d, "logs", cid).stdout)
    # The oldest lines rotated away; what is left is a contiguous run up to the last one.
    assert got and got[0] > 0 and got == list(range(got[0], 200)), got
    assert numbers(dk(d, "logs", "--tail", "4", cid).stdout) == [197, 198, 199]
    # --tail reaching back into the compressed files.
    assert numbers(dk(d, "logs", "--tail", "30", cid).stdout) == list(range(171, 200))

    stamped = dk(d, "logs", "-t", "--tail", "4", cid).stdout.splitlines()
    assert len(stamped) == 4 and stamped[-1].endswith(" done"), stamped
    assert all(re.match(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d+)?Z line-\d+$", l) for l in stamped[:3]), stamped
    # --since / --until the time of line 197, both inclusive: the lines of one read of
    # the container's output share a time, so the expected lines come from `-t`.
    t197 = stamped[0].split(" ")[0]
    timed = [(nanos(l.split(" ")[0]), n) for l in dk(d, "logs", "-t", cid).stdout.splitlines()
             for n in numbers(l.split(" ", 1)[1])]
    since = numbers(dk(d, "logs", "--since", t197, cid).stdout)
    assert since == [n for t, n in timed if t >= nanos(t197)] and since[-3:] == [197, 198, 199], since
    until = numbers(dk(d, "logs", "--until", t197, cid).stdout)
    assert until == [n for t, n in timed if t <= nanos(t197)] and until[0] == got[0], until
    assert dk(d, "logs", "--since", "2999-01-01T00:00:00Z", cid).stdout == ""
    assert dk(d, "logs", "--until", "2000-01-01T00:00:00Z", cid).stdout == ""
    dk(d, "rm", "-f", cid)


def test_json_file_compress(d):
    cid = dk(d, "run", "-d", "--log-opt", "max-size=1k", "--log-opt", "max-file=3", "--log-opt", "compress=true",
             "busybox", "sh", "-c", WRITE_200).stdout.strip()
    poll(lambda: "done" in dk(d, "logs", "--tail", "1", cid).stdout, 30, "the writer to finish")
    log = Path(dk(d, "inspect", "-f", "{{.LogPath}}", cid).stdout.strip())
    want = [log.name, log.name + ".1.gz", log.name + ".2.gz"]
    poll(lambda: sorted(p.name for p in log.parent.glob(log.name + "*")) == want, 30, "compressed rotated files")
    got = numbers(dk(d, "logs", cid).stdout)
    assert got and got[0] > 0 and got == list(range(got[0], 200)), got
    dk(d, "rm", "-f", cid)


def test_local_driver_keeps_streams_apart(d):
    cid = dk(d, "run", "-d", "--log-driver", "local", "busybox", "sh", "-c",
             "echo out-1; echo err-1 >&2; echo out-2; echo err-2 >&2; sleep 1000").stdout.strip()
    poll(lambda: len(dk(d, "logs", cid).stderr.split()) == 2, 30, "both stderr lines")
    r = dk(d, "logs", cid)
    assert (r.stdout, r.stderr) == ("out-1\nout-2\n", "err-1\nerr-2\n")
    api = d.request("GET", f"/containers/{cid}/logs?stderr=1")
    assert api.status == 200 and b"out-" not in api.body and b"err-1" in api.body, api.body
    dk(d, "rm", "-f", cid)


def test_local_follow_survives_compressed_rotation(d, tmp_path):
    # As json-file's test: batches of 6 lines (~570 bytes: at most two rotations of a
    # 512-byte file), each acknowledged once the follower showed its last line; the
    # rotated files are compressed while the follower reads.
    cid = follow_across_rotation(d, tmp_path, ["--log-driver", "local", "--log-opt", "max-size=512",
                                               "--log-opt", "max-file=4"])
    assert (local_dir(d, cid) / "container.log.2.gz").exists(), "the log did not rotate"
    dk(d, "rm", "-f", cid)


def test_local_logs_readable_after_daemon_restart(busybox_daemon):
    d = busybox_daemon(config={"log-driver": "local", "log-opts": {"max-size": "1k", "max-file": "3"}})
    cid = dk(d, "run", "-d", "busybox", "sh", "-c", WRITE_200).stdout.strip()
    poll(lambda: "done" in dk(d, "logs", "--tail", "1", cid).stdout, 30, "the writer to finish")
    cfg = json.loads(dk(d, "inspect", "-f", "{{json .HostConfig.LogConfig}}", cid).stdout)
    assert cfg == {"Type": "local", "Config": {"max-file": "3", "max-size": "1k"}}, cfg
    assert dk(d, "info", "--format", "{{.LoggingDriver}}").stdout.strip() == "local"
    plugins = json.loads(dk(d, "info", "--format", "{{json .Plugins.Log}}").stdout)
    assert plugins == ["journald", "json-file", "local", "syslog"], plugins
    before = dk(d, "logs", cid).stdout
    d.restart()
    assert dk(d, "logs", cid).stdout == before
    assert numbers(dk(d, "logs", "--tail", "2", cid).stdout) == [199]
    dk(d, "rm", "-f", cid)


class SyslogServer:
    """Collects the lines a syslog client sends: udp datagrams, or newline-ended
    messages on tcp / unix stream connections."""

    def __init__(self, kind: str, path: Path | None = None):
        self.lines: list[str] = []
        self.lock = threading.Lock()
        if kind == "udp":
            self.sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
            self.sock.bind(("127.0.0.1", 0))
            self.address = f"udp://127.0.0.1:{self.sock.getsockname()[1]}"
        elif kind == "tcp":
            self.sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            self.sock.bind(("127.0.0.1", 0))
            self.sock.listen(4)
            self.address = f"tcp://127.0.0.1:{self.sock.getsockname()[1]}"
        else:
            assert path is not None
            self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
            self.sock.bind(str(path))
            self.sock.listen(4)
            self.address = f"unix://{path}"
        self.kind = kind
        self.thread = threading.Thread(target=self.run, daemon=True)
        self.thread.start()

    def run(self) -> None:
        try:
            if self.kind == "udp":
                while True:
                    data = self.sock.recv(65536)
                    with self.lock:
                        self.lines += data.decode().splitlines()
            while True:
                conn, _ = self.sock.accept()
                threading.Thread(target=self.read, args=(conn,), daemon=True).start()
        except OSError:
            return  # closed

    def read(self, conn: socket.socket) -> None:
        buf = b""
        with conn:
            while chunk := conn.recv(65536):
                buf += chunk
                *done, buf = buf.split(b"\n")
                with self.lock:
                    self.lines += [l.decode() for l in done]

    def got(self) -> list[str]:
        with self.lock:
            return list(self.lines)

    def close(self) -> None:
        self.sock.close()


RFC5424 = re.compile(r"^<(\d+)>1 (\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d{6})?Z) (\S+) (\S+) (\d+) (\S+) - (.*)$")


@pytest.mark.parametrize("kind", ["udp", "tcp", "unix"])
def test_syslog_rfc5424(d, tmp_path, kind):
    server = SyslogServer(kind, tmp_path / "syslog.sock")
    try:
        fmt = "rfc5424micro" if kind == "tcp" else "rfc5424"
        cid = dk(d, "run", "-d", "--name", f"sl-{kind}", "--log-driver", "syslog",
                 "--log-opt", f"syslog-address={server.address}", "--log-opt", f"syslog-format={fmt}",
                 "--log-opt", "syslog-facility=local3", "--log-opt", "tag={{.Name}}/{{.ImageName}}",
                 "busybox", "sh", "-c", "echo hello; echo oops >&2; echo bye; sleep 1000").stdout.strip()
        lines = poll(lambda: len(server.got()) >= 3 and server.got(), 30, "three syslog messages")
        parsed = [RFC5424.match(l) for l in lines]
        assert all(parsed), lines
        by_msg = {m.group(8): m for m in parsed if m}
        assert set(by_msg) == {"hello", "oops", "bye"}, lines
        # local3 is 19: 19*8 + 6 (info) for stdout, + 3 (err) for stderr.
        assert by_msg["hello"].group(1) == str(19 * 8 + 6)
        assert by_msg["oops"].group(1) == str(19 * 8 + 3)
        for m in by_msg.values():
            assert m.group(5) == m.group(7) == f"sl-{kind}/busybox", m.group(0)
            assert (m.group(3) is not None) == (fmt == "rfc5424micro"), m.group(0)
        r = dk(d, "logs", cid, check=False)
        assert r.returncode != 0 and "configured logging driver does not support reading" in r.stderr, r.stderr
        dk(d, "rm", "-f", cid)
    finally:
        server.close()


def test_syslog_rfc3164_and_default_tag(d):
    server = SyslogServer("udp")
    try:
        cid = dk(d, "run", "-d", "--log-driver", "syslog", "--log-opt", f"syslog-address={server.address}",
                 "--log-opt", "syslog-format=rfc3164", "busybox", "sh", "-c", "echo hi; sleep 1000").stdout.strip()
        line = poll(lambda: server.got() and server.got()[0], 30, "a syslog message")
        # <daemon.info>Mmm dd hh:mm:ss host tag[pid]: msg, the tag the short ID by default.
        assert re.match(r"^<30>[A-Z][a-z]{2} [ \d]\d \d\d:\d\d:\d\d \S+ " + cid[:12] + r"\[\d+\]: hi$", line), line
        dk(d, "rm", "-f", cid)
    finally:
        server.close()


def test_bad_log_options_refused_with_dockerds_texts(d, tmp_path):
    before = dk(d, "ps", "-aq").stdout.split()
    for args, want in (
        (["--log-driver", "local", "--log-opt", "x=1"], "unknown log opt 'x' for log driver local"),
        # dockerd's local driver takes no labels, env or tag (20.10 answers this).
        (["--log-driver", "local", "--log-opt", "labels=a"], "unknown log opt 'labels' for log driver local"),
        (["--log-driver", "journald", "--log-opt", "max-size=1m"], "unknown log opt 'max-size' for journald log driver"),
        (["--log-driver", "syslog", "--log-opt", "max-file=2"], "unknown log opt 'max-file' for syslog log driver"),
        (["--log-driver", "syslog", "--log-opt", "syslog-address=127.0.0.1:514"],
         "syslog-address should be in form proto://address, got 127.0.0.1:514"),
        (["--log-driver", "syslog", "--log-opt", f"syslog-address=unix://{tmp_path}/none"],
         f"stat {tmp_path}/none: no such file or directory"),
        (["--log-driver", "syslog", "--log-opt", "syslog-address=udp://127.0.0.1", "--log-opt", "syslog-facility=nope"],
         "invalid syslog facility"),
        (["--log-driver", "syslog", "--log-opt", "syslog-address=udp://127.0.0.1", "--log-opt", "syslog-format=json"],
         "Invalid syslog format"),
        (["--log-driver", "gelf"], "logger: no log driver named 'gelf' is registered"),
    ):
        r = dk(d, "create", *args, "busybox", "true", check=False)
        assert r.returncode != 0 and want in r.stderr, (args, r.stderr)
    assert dk(d, "ps", "-aq").stdout.split() == before
    # What dockerd checks only when the logger starts: the container is created, and its
    # start refused.
    for args, want in (
        (["--log-driver", "local", "--log-opt", "max-file=1"], "compression cannot be enabled when max file count is 1"),
        (["--log-opt", "compress=true"], "compress cannot be true when max-file is less than 2 or max-size is not set"),
    ):
        cid = dk(d, "create", *args, "busybox", "true").stdout.strip()
        r = dk(d, "start", cid, check=False)
        assert r.returncode != 0 and f"failed to initialize logging driver: {want}" in r.stderr, (args, r.stderr)
        assert dk(d, "inspect", "-f", "{{.State.Status}}", cid).stdout.strip() == "created"
        dk(d, "rm", cid)


def parse_journal(d: bytes) -> dict[str, str]:
    """One datagram of journald's native protocol."""
    fields: dict[str, str] = {}
    while d:
        nl = d.index(b"\n")
        head = d[:nl]
        if b"=" in head:
            k, v = head.split(b"=", 1)
            fields[k.decode()] = v.decode()
            d = d[nl + 1:]
        else:
            n = int.from_bytes(d[nl + 1:nl + 9], "little")
            fields[head.decode()] = d[nl + 9:nl + 9 + n].decode()
            assert d[nl + 9 + n:nl + 10 + n] == b"\n"
            d = d[nl + 10 + n:]
    return fields


def test_journald_sends_dockerds_fields(berthd, docker_env, tmp_path):
    # berthd in its own mount namespace, where /run/systemd is a fresh tmpfs whose
    # journal/socket is a symlink to the socket this test binds (none at first).
    journal = tmp_path / "journal.sock"
    daemon = berthd(start=False)
    argv = daemon.argv
    setup = ("mount -t tmpfs tmpfs /run/systemd && mkdir /run/systemd/journal && "
             "ln -s \"$0\" /run/systemd/journal/socket && exec \"$@\"")
    daemon.argv = lambda: ["unshare", "-m", "--propagation", "private", "sh", "-c", setup, str(journal), *argv()]
    daemon.start()
    daemon.docker_env = docker_env({"DOCKER_HOST": daemon.unix_host})
    import_busybox(daemon.docker_env)
    try:
        cid = dk(daemon, "create", "--name", "jd", "--log-driver", "journald", "--label", "team=blue",
                 "-e", "STAGE=prod", "--log-opt", "labels=team", "--log-opt", "env=STAGE",
                 "busybox", "sh", "-c", "echo hello; echo oops >&2; sleep 1000").stdout.strip()
        r = dk(daemon, "start", cid, check=False)
        assert r.returncode != 0 and "failed to initialize logging driver: journald is not enabled on this host" in r.stderr, r.stderr
        # Reading answers as dockerd's (which opens a logger to read a stopped container).
        r = dk(daemon, "logs", cid, check=False)
        assert r.returncode != 0 and "journald is not enabled on this host" in r.stderr, r.stderr
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        sock.bind(str(journal))
        sock.settimeout(30)
        try:
            dk(daemon, "start", cid)
            got = [parse_journal(sock.recv(65536)) for _ in range(2)]
        finally:
            sock.close()
        by_msg = {f["MESSAGE"]: f for f in got}
        assert set(by_msg) == {"hello", "oops"}, got
        f = by_msg["hello"]
        assert f["CONTAINER_ID"] == cid[:12] and f["CONTAINER_ID_FULL"] == cid
        assert f["CONTAINER_NAME"] == "jd" and f["IMAGE_NAME"] == "busybox"
        assert f["CONTAINER_TAG"] == f["SYSLOG_IDENTIFIER"] == cid[:12]
        assert f["TEAM"] == "blue" and f["STAGE"] == "prod", f
        assert (f["PRIORITY"], by_msg["oops"]["PRIORITY"]) == ("6", "3")
        assert "CONTAINER_PARTIAL_MESSAGE" not in f
    finally:
        leak_check(daemon)


@pytest.fixture
def private_journal():
    """A systemd-journald of the test's own, in a mount namespace where /run/systemd,
    /run/log and /var/log/journal are fresh tmpfs (nothing of the host's journal is read
    or written); yields its pid, whose mount namespace berthd joins (`nsenter -m`), so
    that the shim sends to it and journalctl reads what it wrote. Stopped afterwards."""
    journald = shutil.which("systemd-journald") or "/lib/systemd/systemd-journald"
    assert os.access(journald, os.X_OK) and shutil.which("journalctl"), \
        "systemd-journald and journalctl are needed (Debian's systemd package)"
    made = [p for p in (Path("/run/systemd"), Path("/run/log")) if not p.exists()]
    for p in made:
        p.mkdir()
    setup = ("mount -t tmpfs tmpfs /run/systemd && mount -t tmpfs tmpfs /run/log && "
             "{ [ ! -d /var/log/journal ] || mount -t tmpfs tmpfs /var/log/journal; } && exec \"$0\"")
    proc = subprocess.Popen(["unshare", "-m", "--propagation", "private", "sh", "-c", setup, journald],
                            stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    try:
        sock = Path(f"/proc/{proc.pid}/root/run/systemd/journal/socket")
        poll(lambda: sock.exists() or (proc.poll() is not None and AssertionError(proc.stderr.read())),
             30, "the private journald's socket")
        assert proc.poll() is None, proc.stderr.read() if proc.stderr else ""
        yield proc.pid
    finally:
        proc.terminate()
        try:
            proc.wait(30)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(10)
        for p in made:
            p.rmdir()


def frames(body: bytes) -> list[tuple[int, bytes]]:
    """A multiplexed stream as (stream, payload) frames."""
    out = []
    while len(body) >= 8:
        n = int.from_bytes(body[4:8], "big")
        out.append((body[0], body[8:8 + n]))
        body = body[8 + n:]
    return out


def journalctl_readers(cid: str) -> list[int]:
    """The journalctl processes reading container `cid`'s entries."""
    pids = []
    for p in Path("/proc").iterdir():
        try:
            if p.name.isdigit() and f"CONTAINER_ID_FULL={cid}".encode() in (p / "cmdline").read_bytes():
                pids.append(int(p.name))
        except OSError:
            continue
    return pids


def test_journald_logs_read_back(berthd, docker_env, private_journal, tmp_path):
    # berthd in the private journald's mount namespace: its shims write to that journal,
    # and `docker logs` reads it back as dockerd does (stream by priority, attrs with
    # --details, tail, since/until, follow until the container stops).
    daemon = berthd(start=False)
    argv = daemon.argv
    daemon.argv = lambda: ["nsenter", "-t", str(private_journal), "-m", "--", *argv()]
    daemon.start()
    daemon.docker_env = docker_env({"DOCKER_HOST": daemon.unix_host})
    import_busybox(daemon.docker_env)
    acks = tmp_path / "acks"
    acks.mkdir()
    try:
        script = ("echo line-1; echo err-1 >&2; echo line-2; echo line-3; "
                  "while [ ! -e /acks/more ]; do usleep 5000; done; echo line-4; printf line-5")
        cid = dk(daemon, "run", "-d", "--log-driver", "journald", "--label", "team=blue", "-e", "STAGE=prod",
                 "--log-opt", "labels=team", "--log-opt", "env=STAGE", "-v", f"{acks}:/acks:ro",
                 "busybox", "sh", "-c", script).stdout.strip()
        both = f"/containers/{cid}/logs?stdout=1&stderr=1"
        order = poll(lambda: len(f := frames(daemon.request("GET", both).body)) == 4 and f, 30, "the first lines")
        assert sorted(order) == [(1, b"line-1\n"), (1, b"line-2\n"), (1, b"line-3\n"), (2, b"err-1\n")], order
        r = dk(daemon, "logs", cid)
        assert (r.stdout, r.stderr) == ("line-1\nline-2\nline-3\n", "err-1\n"), r
        # The journal's order across streams, as dockerd's tail counts it.
        assert frames(daemon.request("GET", both + "&tail=2").body) == order[-2:]
        assert dk(daemon, "logs", "--tail", "0", cid).stdout == ""
        r = dk(daemon, "logs", "--details", cid)
        assert (r.stdout, r.stderr) == ("".join(f"STAGE=prod,TEAM=blue line-{n}\n" for n in (1, 2, 3)),
                                        "STAGE=prod,TEAM=blue err-1\n"), r
        api = daemon.request("GET", f"/containers/{cid}/logs?stderr=1")
        assert api.status == 200 and api.body == b"\x02\0\0\0\0\0\0\x06err-1\n", api.body
        stamped = dk(daemon, "logs", "-t", cid).stdout.splitlines()
        assert all(re.match(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{9}Z line-\d$", l) for l in stamped), stamped
        t2 = stamped[1].split(" ")[0]
        since = dk(daemon, "logs", "--since", t2, cid).stdout
        assert since == "".join(l.split(" ", 1)[1] + "\n" for l in stamped if nanos(l.split(" ")[0]) >= nanos(t2)), since
        assert since.startswith("line-2\n") or since.startswith("line-1\n"), since
        until = dk(daemon, "logs", "--until", t2, cid).stdout
        assert until == "".join(l.split(" ", 1)[1] + "\n" for l in stamped if nanos(l.split(" ")[0]) <= nanos(t2)), until
        assert until.startswith("line-1\nline-2\n"), until

        # A follower shows what comes, and ends by itself once the container stopped.
        follower = subprocess.Popen([DOCKER_BIN, "logs", "-f", cid], env=daemon.docker_env,
                                    stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        try:
            assert follower.stdout is not None
            assert [follower.stdout.readline() for _ in range(3)] == ["line-1\n", "line-2\n", "line-3\n"]
            (acks / "more").touch()
            out, err = follower.communicate(timeout=60)
        finally:
            follower.kill()
        assert (out, err) == ("line-4\nline-5", "err-1\n"), (out, err)
        assert dk(daemon, "inspect", "-f", "{{.State.Status}}", cid).stdout.strip() == "exited"
        assert dk(daemon, "logs", "--tail", "1", cid).stdout == "line-5"

        # journalctl goes with the client: a follower of a running container, cut off.
        cid2 = dk(daemon, "run", "-d", "--log-driver", "journald", "busybox", "sh", "-c",
                  "echo up; sleep 1000").stdout.strip()
        follower = subprocess.Popen([DOCKER_BIN, "logs", "-f", cid2], env=daemon.docker_env,
                                    stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
        try:
            assert follower.stdout is not None and follower.stdout.readline() == "up\n"
            assert journalctl_readers(cid2), "no journalctl reads the journal"
        finally:
            follower.kill()
            follower.wait(30)
        poll(lambda: not journalctl_readers(cid2), 30, "journalctl to end with its client")
    finally:
        leak_check(daemon)
