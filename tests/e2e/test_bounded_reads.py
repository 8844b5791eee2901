"""No unbounded reads: `logs --tail N` reads from the end of a large log, `docker load`
refuses an oversized JSON entry or too many entries without holding them, and exec
records are pruned in the daemon and in the shim (issue 13)."""

from __future__ import annotations

import io
import json
import socket
import tarfile
from pathlib import Path

from conftest import poll, unix_connect
from images_util import error_message, store_snapshot
from test_containers import daemon, dk  # noqa: F401 - the fixture and the CLI helper

MIB = 1024 * 1024
HDR = {"Content-Type": "application/json"}


def test_logs_tail_of_a_50_mb_log_gives_its_last_lines(daemon):
    # ~50 MB of output (about 75 MB of json-file log), then three known lines.
    script = (
        "yes 0123456789abcdefghijklmnopqrstuvwxyz0123456789abcdefghijklmnopqrstuvwxyz"
        " | head -c 52428800; echo; echo last-a; echo last-b; echo last-c"
    )
    dk(daemon, "run", "-d", "--name", "big", "busybox", "sh", "-c", script)
    assert dk(daemon, "wait", "big", timeout=300).stdout.strip() == "0"
    log = Path(daemon.get_json("/containers/big/json")["LogPath"])
    assert log.stat().st_size > 50 * MIB
    r = dk(daemon, "logs", "--tail", "3", "big")
    assert (r.stdout, r.stderr) == ("last-a\nlast-b\nlast-c\n", "")
    stamped = dk(daemon, "logs", "--tail", "2", "-t", "big").stdout.splitlines()
    assert [l.split(" ", 1)[1] for l in stamped] == ["last-b", "last-c"]
    r = dk(daemon, "logs", "--tail", "3", "-f", "big")
    assert (r.stdout, r.stderr) == ("last-a\nlast-b\nlast-c\n", "")
    assert dk(daemon, "logs", "--tail", "0", "big").stdout == ""


def test_logs_tail_across_rotated_files(daemon):
    script = "i=0; while [ $i -lt 4000 ]; do echo line-$i; i=$((i+1)); done"
    dk(daemon, "run", "-d", "--name", "rot", "--log-opt", "max-size=16k", "--log-opt", "max-file=5",
       "busybox", "sh", "-c", script)
    assert dk(daemon, "wait", "rot").stdout.strip() == "0"
    log = Path(daemon.get_json("/containers/rot/json")["LogPath"])
    rotated = sorted(p.name for p in log.parent.glob(log.name + ".*"))
    assert len(rotated) == 4, rotated
    kept = dk(daemon, "logs", "rot").stdout.splitlines()
    assert kept[-1] == "line-3999" and len(kept) < 4000
    # More lines than the live file holds: the reader goes back into the rotated files.
    live_lines = len(log.read_bytes().splitlines())
    n = live_lines + 300
    assert dk(daemon, "logs", "--tail", str(n), "rot").stdout.splitlines() == kept[-n:]
    assert dk(daemon, "logs", "--tail", "100000", "rot").stdout.splitlines() == kept


def _post_tar_stream(sock: Path, head: bytes, filler: int, tail: bytes) -> tuple[int, str]:
    """POSTs `head`, `filler` spaces and `tail` to /images/load, made as they are sent;
    the daemon may answer and stop reading early."""
    stream = unix_connect(sock, timeout=60)
    try:
        length = len(head) + filler + len(tail)
        stream.sock.sendall(
            (f"POST /images/load HTTP/1.1\r\nHost: localhost\r\nContent-Type: application/x-tar\r\n"
             f"Content-Length: {length}\r\nConnection: close\r\n\r\n").encode() + head)
        chunk = b" " * MIB
        try:
            left = filler
            while left > 0:
                stream.sock.sendall(chunk[: min(left, len(chunk))])
                left -= min(left, len(chunk))
            stream.sock.sendall(tail)
        except (BrokenPipeError, ConnectionResetError, socket.timeout):
            pass  # refused before the end: the answer is already there
        resp = stream.read_response()
        try:
            payload = resp.json()
        except ValueError:
            payload = resp.text
        return resp.status, error_message(payload)
    finally:
        stream.close()


def _tar_header(name: str, size: int) -> bytes:
    info = tarfile.TarInfo(name)
    info.size = size
    return info.tobuf(format=tarfile.GNU_FORMAT)


def test_load_refuses_an_oversized_manifest(daemon):
    before = store_snapshot(daemon.data_root)
    # Over the 16 MiB an entry may have, under the 64 MiB of before (then read whole).
    size = 48 * MIB
    pad = (-size) % 512
    status, message = _post_tar_stream(daemon.sock, _tar_header("manifest.json", size), size,
                                       b"\0" * (pad + 1024))
    assert status == 400, message
    assert "manifest.json is too large" in message, message
    assert store_snapshot(daemon.data_root) == before
    assert daemon.request("GET", "/_ping").status == 200


def test_load_refuses_too_many_entries(daemon):
    before = store_snapshot(daemon.data_root)
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w", format=tarfile.GNU_FORMAT) as tar:
        for i in range(65_537):
            info = tarfile.TarInfo(f"l{i}")
            info.type = tarfile.SYMTYPE
            info.linkname = "manifest.json"
            tar.addfile(info)
    body = buf.getvalue()
    resp = daemon.request("POST", "/images/load", headers={"Content-Type": "application/x-tar"},
                          body=body)
    assert resp.status == 400, resp.text
    assert "more than 65536 files" in resp.json()["message"]
    assert store_snapshot(daemon.data_root) == before


def _exec_true(d) -> str:
    eid = d.request("POST", "/containers/ex/exec", headers=HDR, body=b'{"Cmd": ["true"]}').json()["Id"]
    resp = d.request("POST", f"/exec/{eid}/start", headers=HDR, body=b'{"Detach": true}')
    assert resp.status == 200, resp.text
    return eid


def _shim_exec_state(d, cid: str, eid: str) -> dict:
    """Asks the container's shim itself about an exec (one request line, one answer)."""
    sock = Path(d.exec_root) / "containers" / cid[:24] / "shim.sock"
    s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    s.settimeout(10)
    try:
        s.connect(str(sock))
        s.sendall(json.dumps({"op": "exec_state", "exec_id": eid}).encode() + b"\n")
        f = s.makefile("rb")
        return json.loads(f.readline())
    finally:
        s.close()


def test_exec_records_are_pruned_in_daemon_and_shim(daemon):
    cid = dk(daemon, "run", "-d", "--name", "ex", "busybox", "sleep", "1000").stdout.strip()
    first = _exec_true(daemon)
    done = lambda eid: (lambda v: v if v["Running"] is False and v["ExitCode"] is not None else None)(
        daemon.get_json(f"/exec/{eid}/json"))
    assert poll(lambda: done(first), 30, "the first exec to end")["ExitCode"] == 0
    assert _shim_exec_state(daemon, cid, first)["result"] == "exec", "the shim keeps a fresh record"
    ids = [first]
    for _ in range(299):
        ids.append(_exec_true(daemon))
    # Right after its exit, the last exec still answers with its exit code.
    assert poll(lambda: done(ids[-1]), 30, "the last exec to end")["ExitCode"] == 0
    # One more: the table trims at each new exec, once the others have ended.
    poll(lambda: all(done(e) for e in ids[-5:]), 30, "the last execs to end")
    last = _exec_true(daemon)
    assert poll(lambda: done(last), 30, "the extra exec to end")["ExitCode"] == 0
    resp = daemon.request("GET", f"/exec/{first}/json")
    assert resp.status == 404 and resp.json()["message"] == f"No such exec instance: {first}"
    assert daemon.get_json(f"/exec/{ids[-1]}/json")["ExitCode"] == 0
    # The shim forgot the first exec's record too, and keeps the latest.
    answer = _shim_exec_state(daemon, cid, first)
    assert (answer["result"], answer.get("kind")) == ("error", "not_found"), answer
    assert _shim_exec_state(daemon, cid, last)["exec_id"] == last
