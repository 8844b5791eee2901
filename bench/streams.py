"""Streams at scale for bench/run's `--scale` mode (issue 17, point 5): a stats stream for
every running container at once, and one events stream that sees every container's
events. Raw HTTP over the daemon's unix socket, many connections served by one selector
loop (no thread per stream). Python standard library only."""

from __future__ import annotations

import json
import os
import resource
import selectors
import socket
import threading
import time
import urllib.parse
from pathlib import Path
from typing import Callable

# A stats sample is one JSON object; every engine's has a "read" timestamp key.
SAMPLE_KEY = b'"read":'


def process_counts(pid: int) -> dict[str, int]:
    """A process's open files and threads."""
    return {"fds": len(os.listdir(f"/proc/{pid}/fd")), "threads": len(os.listdir(f"/proc/{pid}/task"))}


def _allow_files(n: int) -> None:
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft < n:
        resource.setrlimit(resource.RLIMIT_NOFILE, (min(n, hard), hard))


def _open(sock: Path, path: str) -> socket.socket:
    s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    s.connect(str(sock))
    s.sendall(f"GET {path} HTTP/1.1\r\nHost: bench\r\n\r\n".encode())
    s.setblocking(False)
    return s


def stats_all(sock: Path, ids: list[str], daemon_pid: int, samples: int = 2,
              timeout: float = 120.0) -> dict[str, list[float]]:
    """Opens `GET /containers/{id}/stats?stream=1` for every id at once and reads until each
    stream has sent `samples` samples. Returns the time from the first request to every
    stream's first sample and to every stream's `samples`th, and the daemon's open files
    and threads while all streams are open."""
    _allow_files(len(ids) + 256)
    sel = selectors.DefaultSelector()
    seen: dict[socket.socket, int] = {}
    carry: dict[socket.socket, bytes] = {}
    t0 = time.perf_counter()
    for cid in ids:
        s = _open(sock, f"/containers/{cid}/stats?stream=1")
        sel.register(s, selectors.EVENT_READ)
        seen[s] = 0
        carry[s] = b""
    first_all = None
    during: dict[str, int] = {}
    deadline = t0 + timeout
    try:
        while min(seen.values()) < samples:
            if time.perf_counter() > deadline:
                slow = sum(1 for v in seen.values() if v < samples)
                raise RuntimeError(f"stats: {slow} of {len(ids)} streams sent fewer than {samples} samples")
            for key, _ in sel.select(timeout=1.0):
                s = key.fileobj
                data = s.recv(65536)
                if not data:
                    raise RuntimeError("stats: the daemon closed a stream")
                # A key split across two reads is counted once, in the read that completes it.
                buf = carry[s] + data
                seen[s] += buf.count(SAMPLE_KEY)
                carry[s] = buf[-(len(SAMPLE_KEY) - 1):]
            if first_all is None and min(seen.values()) >= 1:
                first_all = time.perf_counter()
                during = process_counts(daemon_pid)
        all_samples = time.perf_counter()
    finally:
        for s in seen:
            sel.unregister(s)
            s.close()
        sel.close()
    return {"stats_first_all_ms": [((first_all or all_samples) - t0) * 1e3],
            "stats_all_ms": [(all_samples - t0) * 1e3],
            "stats_daemon_fds": [float(during.get("fds", 0))],
            "stats_daemon_threads": [float(during.get("threads", 0))]}


def events_while(sock: Path, action: str, n: int, work: Callable[[], None],
                 timeout: float = 300.0) -> dict[str, list[float]]:
    """With one `GET /events` stream open (container events of `action`), runs `work` and
    reads until `n` such events came. Returns the time from the start of `work` to the
    last event."""
    filters = urllib.parse.quote(json.dumps({"type": ["container"], "event": [action]}))
    s = _open(sock, f"/events?filters={filters}")
    s.setblocking(True)
    s.settimeout(timeout)
    # The answer's head comes at once; the events follow as the work makes them.
    head = b""
    while b"\r\n\r\n" not in head:
        chunk = s.recv(4096)
        if not chunk:
            raise RuntimeError("events: the daemon closed the stream")
        head += chunk
    got = head.split(b"\r\n\r\n", 1)[1].count(b'"Action":')
    t0 = time.perf_counter()
    # The work runs beside the reading, so the daemon never waits on a full socket.
    errors: list[BaseException] = []

    def run() -> None:
        try:
            work()
        except BaseException as exc:  # noqa: BLE001 - reported after the stream closes
            errors.append(exc)

    worker = threading.Thread(target=run)
    worker.start()
    carry = b""
    try:
        while got < n:
            data = s.recv(65536)
            if not data:
                raise RuntimeError(f"events: the stream ended after {got} of {n} events")
            buf = carry + data
            got += buf.count(b'"Action":')
            carry = buf[-8:]
        took = (time.perf_counter() - t0) * 1e3
    finally:
        s.close()
        worker.join()
    if errors:
        raise errors[0]
    return {"events_all_ms": [took]}
