"""The reference engine for differential tests: Debian's dockerd 20.10 (docker.io), started
in a network namespace of its own (its `--bridge=none` would delete the host's docker0, and
nothing of it may touch the host's interfaces or firewall), with its own data root, exec
root, pidfile, socket and cgroup parent; stopped and removed without a trace."""

from __future__ import annotations

import contextlib
import json
import os
import secrets
import shutil
import signal
import subprocess
import tempfile
from pathlib import Path
from typing import Iterator

import pytest

from conftest import poll, unix_request

DOCKERD = shutil.which("dockerd") or "/usr/sbin/dockerd"


def available() -> str | None:
    """Why the reference cannot run here, or None."""
    if not os.access(DOCKERD, os.X_OK):
        return "dockerd (Debian's docker.io) is not installed"
    if not shutil.which("ip") or not shutil.which("nsenter"):
        return "ip and nsenter are needed"
    return None


class RefDockerd:
    def __init__(self, bridge: bool = False, args: tuple[str, ...] = (), config: dict | None = None) -> None:
        # True: its default bridge (docker0 inside its own network namespace) instead of
        # `--bridge=none`, for what needs one (legacy links, the default network's ports).
        self.bridge = bridge
        # More daemon flags (--ipv6, --fixed-cidr-v6, ...).
        self.args = list(args)
        # daemon.json's settings ({} unless given).
        self.config = dict(config or {})
        # Short: containerd's sockets live under the exec root.
        self.root = Path(tempfile.mkdtemp(prefix="rd-", dir="/tmp"))
        self.sock = self.root / "d.sock"
        tag = secrets.token_hex(3)
        self.netns = f"berth-ref-{tag}"
        self.cgroup_parent = f"/berth-ref-{tag}"
        self.proc: subprocess.Popen[bytes] | None = None
        self.log = self.root / "dockerd.log"

    def argv(self) -> list[str]:
        """dockerd's command line, run in the namespace."""
        return [
            "nsenter", f"--net=/var/run/netns/{self.netns}", DOCKERD,
            *([] if self.bridge else ["--bridge=none"]), "--iptables=false", "--ip6tables=false", "--ip-masq=false",
            f"--config-file={self.root / 'daemon.json'}", "-H", f"unix://{self.sock}",
            f"--data-root={self.root / 'data'}", f"--exec-root={self.root / 'exec'}",
            f"--pidfile={self.root / 'd.pid'}", f"--cgroup-parent={self.cgroup_parent}",
            "--log-level=error", *self.args,
        ]

    def spawn(self) -> None:
        """Its namespace, its daemon.json and the dockerd process (not waited for)."""
        subprocess.run(["ip", "netns", "add", self.netns], check=True)
        subprocess.run(["ip", "-n", self.netns, "link", "set", "lo", "up"], check=True)
        (self.root / "daemon.json").write_text(json.dumps(self.config))
        with open(self.log, "ab") as log:
            self.proc = subprocess.Popen(self.argv(), stdout=log, stderr=log, stdin=subprocess.DEVNULL,
                                         start_new_session=True)

    def start(self) -> "RefDockerd":
        self.spawn()
        poll(lambda: self.sock.exists() and unix_request(self.sock, "GET", "/_ping").status == 200
             or (self.proc.poll() is not None and RuntimeError(self.log.read_text())),
             60, "the reference dockerd to answer")
        if self.proc.poll() is not None:
            raise RuntimeError(f"dockerd exited: {self.log.read_text()[-2000:]}")
        return self

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            # Its containers first: dockerd stops them on SIGTERM, but only within its timeout.
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(60)
            except subprocess.TimeoutExpired:
                os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait(10)
        # Mounts it may have left (overlay layers, netns files), deepest first.
        with open("/proc/self/mountinfo") as f:
            mounts = [line.split()[4] for line in f]
        for m in sorted((m for m in mounts if m.startswith(str(self.root))), key=len, reverse=True):
            subprocess.run(["umount", "-l", m], check=False, capture_output=True)
        subprocess.run(["ip", "netns", "del", self.netns], check=False, capture_output=True)
        for base in Path("/sys/fs/cgroup").iterdir():
            leftover = base / self.cgroup_parent.lstrip("/")
            if leftover.is_dir():
                for d in sorted(leftover.rglob("*"), key=lambda p: len(str(p)), reverse=True):
                    if d.is_dir():
                        try:
                            d.rmdir()
                        except OSError:
                            pass
                try:
                    leftover.rmdir()
                except OSError:
                    pass
        shutil.rmtree(self.root, ignore_errors=True)


@contextlib.contextmanager
def running(bridge: bool = False, args: tuple[str, ...] = (), config: dict | None = None) -> Iterator[RefDockerd]:
    """A started reference dockerd (with its default bridge if `bridge`, more flags
    `args` and daemon.json settings `config`), stopped and removed at the end; the test fails (never skips) when it cannot
    run here."""
    why = available()
    if why:
        pytest.fail(f"the reference dockerd cannot run: {why} (scripts/deps tests installs docker.io)")
    ref = RefDockerd(bridge, tuple(args), config)
    try:
        ref.start()
        yield ref
    finally:
        ref.stop()


def start_error(bridge: bool = False, args: tuple[str, ...] = (), config: dict | None = None,
                timeout: float = 60) -> str | None:
    """What the reference dockerd says when it refuses to start with these flags and
    daemon.json settings (its log's last lines), or None when it starts (it is then
    stopped at once). Fails the test (never skips) when it cannot run here."""
    why = available()
    if why:
        pytest.fail(f"the reference dockerd cannot run: {why} (scripts/deps tests installs docker.io)")
    ref = RefDockerd(bridge, tuple(args), config)
    try:
        ref.spawn()

        def answered_or_exited():
            if ref.proc.poll() is not None:
                return "exited"
            try:
                return ref.sock.exists() and unix_request(ref.sock, "GET", "/_ping").status == 200 and "up"
            except OSError:
                return False

        if poll(answered_or_exited, timeout, "the reference dockerd to answer or exit") == "exited":
            return ref.log.read_text()[-2000:]
        return None
    finally:
        ref.stop()
