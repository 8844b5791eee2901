"""berthd's command line as dockerd's: `--validate`, `--log-format json`, the SIGUSR1 state
dump, and clear start-up errors for the common mistakes (socket in use, not root, a kernel
without overlayfs, a data root on overlayfs)."""

from __future__ import annotations

import json
import signal
import socket
import subprocess

from conftest import (
    BERTHD_BIN,
    clean_env,
    expect_start_failure,
    poll,
)


def run_berthd(*args: str, timeout: float = 20) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(BERTHD_BIN), *args], capture_output=True, text=True, timeout=timeout, env=clean_env()
    )


def test_validate_accepts_a_good_config(workdir):
    cfg = workdir / "daemon.json"
    cfg.write_text(json.dumps({"debug": True, "log-format": "json", "mtu": 1400}))
    proc = run_berthd("--validate", f"--config-file={cfg}", f"--data-root={workdir / 'data'}")
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip() == "configuration OK"
    # Nothing was started or created.
    assert not (workdir / "data").exists()


def test_validate_names_what_is_wrong(workdir):
    cfg = workdir / "daemon.json"
    cfg.write_text(json.dumps({"debug": True, "no-such-key": 1}))
    proc = run_berthd("--validate", f"--config-file={cfg}")
    assert proc.returncode != 0
    assert "no-such-key" in proc.stderr, proc.stderr
    assert "configuration OK" not in proc.stdout
    cfg.write_text(json.dumps({"log-format": "xml"}))
    proc = run_berthd("--validate", f"--config-file={cfg}")
    assert proc.returncode != 0
    assert 'invalid --log-format "xml"' in proc.stderr, proc.stderr


def test_json_log_format(berthd):
    d = berthd(extra_args=["--log-format", "json"])
    assert d.request("GET", "/_ping").status == 200

    def lines() -> list[dict]:
        out = []
        for line in d.log_text().splitlines():
            if line.startswith("{"):
                out.append(json.loads(line))
        return out

    def ping_logged() -> list[dict]:
        return [l for l in lines() if l.get("message") == "request" and l.get("path") == "/_ping"]

    (entry,) = poll(ping_logged, 10, "the /_ping request line")[:1]
    assert entry["level"] == "INFO"
    assert entry["status"] == 200
    assert entry["method"] == "GET"
    assert "timestamp" in entry
    # Every line the daemon wrote after the command line is JSON.
    text_lines = [l for l in d.log_text().splitlines() if l and not l.startswith(("{", "=== start"))]
    assert not text_lines, text_lines[:5]


def test_sigusr1_dumps_state_with_requests_in_flight(berthd):
    d = berthd()
    # A request whose body is still arriving is being answered.
    s = socket.socket(socket.AF_UNIX)
    s.connect(str(d.sock))
    try:
        s.sendall(
            b"POST /v1.41/images/load?quiet=1 HTTP/1.1\r\nHost: d\r\n"
            b"Content-Type: application/x-tar\r\nContent-Length: 100000\r\n\r\n" + b"\0" * 512
        )

        def dump_with_request():
            d.signal(signal.SIGUSR1)
            dumps = sorted(d.exec_root.glob("berthd-dump-*.log"))
            for p in dumps:
                text = p.read_text()
                if "POST /v1.41/images/load" in text:
                    return text
            return None

        text = poll(dump_with_request, 15, "a state dump listing the load request", interval=0.2)
    finally:
        s.close()
    assert "== async runtime" in text
    assert "workers: 2" in text
    assert "== threads:" in text and "tokio" in text
    assert "state dump written" in d.log_text()
    # The daemon goes on serving.
    assert d.request("GET", "/_ping").status == 200


def test_socket_in_use_by_another_daemon_is_refused(berthd):
    first = berthd(name="first")
    second = berthd(name="second", start=False)
    second.sock = first.sock
    proc = expect_start_failure(second.argv())
    assert "another process is listening on this socket" in proc.stderr, proc.stderr
    assert f"unix://{first.sock}" in proc.stderr
    # The first daemon keeps its socket.
    assert first.sock.exists()
    assert first.request("GET", "/_ping").status == 200


def test_stale_socket_file_is_replaced(berthd, workdir):
    d = berthd(start=False)
    stale = socket.socket(socket.AF_UNIX)
    stale.bind(str(d.sock))
    stale.close()  # bound, nobody listening: stale
    d.start()
    assert d.request("GET", "/_ping").status == 200


def test_not_root_is_refused_with_what_to_do(berthd):
    d = berthd(start=False)
    argv = ["setpriv", "--reuid=65534", "--regid=65534", "--clear-groups", *d.argv()]
    proc = expect_start_failure(argv)
    assert "berthd needs root" in proc.stderr, proc.stderr
    assert not d.data_root.exists()


def test_kernel_without_overlayfs_is_refused(berthd, workdir):
    d = berthd(start=False)
    fake = workdir / "filesystems"
    fake.write_text("nodev\tsysfs\nnodev\ttmpfs\nnodev\tproc\n\text4\n")
    script = f'mount --bind "{fake}" /proc/filesystems && exec "$@"'
    proc = expect_start_failure(["unshare", "--mount", "--propagation", "private", "sh", "-c", script, "sh", *d.argv()])
    assert "the kernel lacks overlayfs" in proc.stderr, proc.stderr
    assert "modprobe overlay" in proc.stderr


def test_data_root_on_overlayfs_is_refused(berthd, workdir):
    d = berthd(start=False)
    base = workdir / "ovl"
    for sub in ("lower", "upper", "work", "merged"):
        (base / sub).mkdir(parents=True)
    subprocess.run(
        ["mount", "-t", "overlay", "overlay", "-o",
         f"lowerdir={base / 'lower'},upperdir={base / 'upper'},workdir={base / 'work'}",
         str(base / "merged")],
        check=True,
    )
    try:
        d.data_root = base / "merged" / "data"
        proc = expect_start_failure(d.argv())
        assert "is on overlayfs, which cannot hold overlayfs layers" in proc.stderr, proc.stderr
    finally:
        subprocess.run(["umount", "-l", str(base / "merged")], check=True)
