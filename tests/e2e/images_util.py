"""Helpers for the image tests: tarballs built in Python (a busybox rootfs, `docker save`
style archives, malicious layers), looks into a berthd data root, and a real dockerd 20.10
started in its own network namespace for cross-checks."""

from __future__ import annotations

import dataclasses
import hashlib
import io
import json
import os
import shutil
import signal
import subprocess
import tarfile
import uuid
from pathlib import Path
from typing import Any, Iterable

from conftest import STOP_TIMEOUT, poll, unix_request

BUSYBOX = Path("/bin/busybox")
# Applets linked to busybox in the test rootfs.
APPLETS = ("sh", "ls", "cat", "echo", "true")
# Fixed so the same rootfs tar (and so the same diffID) is built every time.
MTIME = 1_700_000_000


# ---------------------------------------------------------------------------------------
# tarballs


def _file_info(name: str, size: int, mode: int = 0o644) -> tarfile.TarInfo:
    ti = tarfile.TarInfo(name)
    ti.size = size
    ti.mode = mode
    ti.mtime = MTIME
    ti.uname = ti.gname = "root"
    return ti


def _dir_info(name: str) -> tarfile.TarInfo:
    ti = tarfile.TarInfo(name)
    ti.type = tarfile.DIRTYPE
    ti.mode = 0o755
    ti.mtime = MTIME
    return ti


def _symlink_info(name: str, target: str) -> tarfile.TarInfo:
    ti = tarfile.TarInfo(name)
    ti.type = tarfile.SYMTYPE
    ti.linkname = target
    ti.mode = 0o777
    ti.mtime = MTIME
    return ti


def busybox_rootfs_tar(path: Path) -> Path:
    """`bin/busybox` from Debian's busybox-static plus a few applet symlinks."""
    data = BUSYBOX.read_bytes()
    with tarfile.open(path, "w", format=tarfile.GNU_FORMAT) as tar:
        tar.addfile(_dir_info("bin"))
        tar.addfile(_file_info("bin/busybox", len(data), 0o755), io.BytesIO(data))
        for applet in APPLETS:
            tar.addfile(_symlink_info(f"bin/{applet}", "busybox"))
    return path


def rootfs_size() -> int:
    """The image size docker reports for the busybox rootfs: moby's `directory.Size`
    adds the lstat size of everything but directories, so symlinks count their target's
    length."""
    return BUSYBOX.stat().st_size + sum(len("busybox") for _ in APPLETS)


def tar_of(entries: Iterable[tuple[tarfile.TarInfo, bytes | None]]) -> bytes:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w", format=tarfile.GNU_FORMAT) as tar:
        for info, data in entries:
            if data is not None:
                info.size = len(data)
                tar.addfile(info, io.BytesIO(data))
            else:
                tar.addfile(info)
    return buf.getvalue()


def regular(name: str, data: bytes, mode: int = 0o644) -> tuple[tarfile.TarInfo, bytes]:
    return _file_info(name, len(data), mode), data


def symlink(name: str, target: str) -> tuple[tarfile.TarInfo, None]:
    return _symlink_info(name, target), None


def hardlink(name: str, target: str) -> tuple[tarfile.TarInfo, None]:
    ti = tarfile.TarInfo(name)
    ti.type = tarfile.LNKTYPE
    ti.linkname = target
    ti.mtime = MTIME
    return ti, None


def sha256_hex(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def sha256_file(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def image_config(diff_ids: list[str], labels: dict[str, str] | None = None) -> bytes:
    cfg = {
        "architecture": "amd64",
        "os": "linux",
        "created": "2024-01-02T03:04:05Z",
        "config": {"Cmd": ["sh"], "Labels": labels or None},
        "rootfs": {"type": "layers", "diff_ids": diff_ids},
        "history": [{"created": "2024-01-02T03:04:05Z", "created_by": "berth e2e"} for _ in diff_ids],
    }
    return json.dumps(cfg, separators=(",", ":")).encode()


def save_archive(
    layers: list[bytes | None],
    repo_tags: list[str],
    *,
    diff_ids: list[str] | None = None,
    with_manifest: bool = True,
) -> tuple[bytes, str]:
    """A `docker save` archive (the legacy layout docker 20.10 writes: `<dir>/layer.tar`,
    `<id>.json`, `manifest.json` last). A layer given as None is named in the manifest but
    left out of the archive. Returns the archive and the image ID."""
    if diff_ids is None:
        diff_ids = [f"sha256:{sha256_hex(layer or b'')}" for layer in layers]
    config = image_config(diff_ids)
    image_id = sha256_hex(config)
    entries: list[tuple[tarfile.TarInfo, bytes | None]] = []
    layer_paths = []
    for i, layer in enumerate(layers):
        d = sha256_hex(f"{image_id}-{i}".encode())
        layer_paths.append(f"{d}/layer.tar")
        if layer is not None:
            entries.append((_dir_info(d), None))
            entries.append(regular(f"{d}/layer.tar", layer))
    entries.append(regular(f"{image_id}.json", config))
    if with_manifest:
        manifest = [{"Config": f"{image_id}.json", "RepoTags": repo_tags, "Layers": layer_paths}]
        entries.append(regular("manifest.json", json.dumps(manifest).encode()))
    return tar_of(entries), f"sha256:{image_id}"


def write_big_save_archive(directory: Path, size: int, tag: str) -> tuple[Path, str]:
    """A one-layer `docker save` archive on disk whose layer holds `size` bytes of random
    data, written in pieces so it never sits in memory whole. Returns (path, image ID)."""
    layer_path = directory / "big-layer.tar"
    with open(layer_path, "wb") as raw, tarfile.open(fileobj=raw, mode="w", format=tarfile.GNU_FORMAT) as tar:
        info = _file_info("random.bin", size)

        class RandomReader(io.RawIOBase):
            def __init__(self, n: int):
                self.left = n

            def readable(self) -> bool:
                return True

            def readinto(self, b: Any) -> int:
                n = min(len(b), self.left, 1 << 20)
                b[:n] = os.urandom(n)
                self.left -= n
                return n

        tar.addfile(info, io.BufferedReader(RandomReader(size)))
    diff_id = f"sha256:{sha256_file(layer_path)}"
    config = image_config([diff_id])
    image_id = sha256_hex(config)
    archive = directory / "big.tar"
    with tarfile.open(archive, "w", format=tarfile.GNU_FORMAT) as tar:
        tar.addfile(_dir_info("layer0"))
        info = _file_info("layer0/layer.tar", layer_path.stat().st_size)
        with open(layer_path, "rb") as f:
            tar.addfile(info, f)
        tar.addfile(_file_info(f"{image_id}.json", len(config)), io.BytesIO(config))
        manifest = json.dumps([{"Config": f"{image_id}.json", "RepoTags": [tag], "Layers": ["layer0/layer.tar"]}]).encode()
        tar.addfile(_file_info("manifest.json", len(manifest)), io.BytesIO(manifest))
    layer_path.unlink()
    return archive, f"sha256:{image_id}"


# ---------------------------------------------------------------------------------------
# the berthd image store on disk


def image_root(data_root: Path) -> Path:
    return data_root / "image"


def store_snapshot(data_root: Path) -> dict[str, list[str]]:
    """Names in each directory of the image store (temp files included)."""
    root = image_root(data_root)
    out = {}
    for sub in ("layers", "images", "blobs/sha256", "blobs/tmp"):
        p = root / sub
        out[sub] = sorted(e.name for e in p.iterdir()) if p.is_dir() else []
    return out


def leftovers(before: dict[str, list[str]], after: dict[str, list[str]]) -> list[str]:
    """Store entries present after but not before, plus anything at all in blobs/tmp."""
    extra = []
    for sub, names in after.items():
        old = set(before.get(sub, []))
        extra += [f"{sub}/{n}" for n in names if n not in old]
    extra += [f"blobs/tmp/{n}" for n in after.get("blobs/tmp", []) if f"blobs/tmp/{n}" not in extra]
    return extra


def describe(data_root: Path, entries: list[str]) -> list[str]:
    """`entries` (from `leftovers`) with the size of each file, for failure messages."""
    out = []
    for e in entries:
        p = image_root(data_root) / e
        out.append(f"{e} ({p.stat().st_size} bytes)" if p.is_file() else e)
    return out


def api(sock: Path, method: str, path: str, body: bytes = b"", headers: dict[str, str] | None = None):
    """One API request at the current version; returns (status, parsed JSON or text)."""
    resp = unix_request(sock, method, f"/v1.50{path}", body=body, headers=headers)
    try:
        payload: Any = resp.json()
    except ValueError:
        payload = resp.text
    return resp.status, payload


def error_message(payload: Any) -> str:
    if isinstance(payload, dict):
        return str(payload.get("message", payload))
    return str(payload)


# ---------------------------------------------------------------------------------------
# a real dockerd, in its own network namespace


@dataclasses.dataclass
class RealDockerd:
    """dockerd 20.10 (Debian's docker.io) with private dirs, started through `nsenter` in a
    fresh network namespace, with no bridge and no iptables rules: it touches nothing of
    the host's networking. `stop()` kills it (and its managed containerd), unmounts what it
    left, and deletes the namespace."""

    root: Path
    netns: str = dataclasses.field(default_factory=lambda: f"berth-e2e-{uuid.uuid4().hex[:8]}")
    proc: subprocess.Popen[bytes] | None = None
    netns_made: bool = False
    registry: subprocess.Popen[bytes] | None = None

    @property
    def sock(self) -> Path:
        return self.root / "d.sock"

    @property
    def host(self) -> str:
        return f"unix://{self.sock}"

    @property
    def exec_root(self) -> Path:
        return self.root / "exec"

    @property
    def log_path(self) -> Path:
        return self.root / "dockerd.log"

    def start(self, timeout: float = 60) -> "RealDockerd":
        self.root.mkdir(parents=True, exist_ok=True)
        config = self.root / "daemon.json"
        config.write_text("{}")
        subprocess.run(["ip", "netns", "add", self.netns], check=True, capture_output=True)
        self.netns_made = True
        # Loopback up, for a registry on 127.0.0.1 inside the namespace.
        subprocess.run(self.nsenter("ip", "link", "set", "lo", "up"), check=True, capture_output=True)
        argv = [
            "nsenter",
            f"--net=/var/run/netns/{self.netns}",
            "dockerd",
            "-H",
            self.host,
            "--data-root",
            str(self.root / "data"),
            "--exec-root",
            str(self.exec_root),
            "--pidfile",
            str(self.root / "dockerd.pid"),
            "--config-file",
            str(config),
            "--bridge=none",
            "--iptables=false",
            "--ip6tables=false",
        ]
        with open(self.log_path, "ab") as log:
            self.proc = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=log, stderr=log, start_new_session=True)

        def ready() -> bool:
            if self.proc is not None and self.proc.poll() is not None:
                raise RuntimeError(f"dockerd exited with {self.proc.returncode}:\n{self.log_tail()}")
            return unix_request(self.sock, "GET", "/_ping").status == 200

        poll(ready, timeout, "dockerd to answer /_ping", fatal=(RuntimeError,))
        return self

    def nsenter(self, *argv: str) -> list[str]:
        """argv run inside this daemon's network namespace (never `ip netns exec`)."""
        return ["nsenter", f"--net=/var/run/netns/{self.netns}", *argv]

    def start_registry(self, port: int = 5000, timeout: float = 30) -> str:
        """Debian's docker-registry (distribution) on 127.0.0.1:PORT inside the namespace,
        plain HTTP (dockerd allows that for loopback). Returns `localhost:PORT`."""
        config = self.root / "registry.yml"
        log = self.root / "registry.log"
        config.write_text(
            "version: 0.1\n"
            "log:\n  level: info\n"
            f"storage:\n  filesystem:\n    rootdirectory: {self.root / 'registry'}\n"
            f"http:\n  addr: 127.0.0.1:{port}\n"
        )
        with open(log, "ab") as out:
            self.registry = subprocess.Popen(
                self.nsenter("docker-registry", "serve", str(config)),
                stdin=subprocess.DEVNULL,
                stdout=out,
                stderr=out,
                start_new_session=True,
            )

        def listening() -> bool:
            if self.registry is not None and self.registry.poll() is not None:
                raise RuntimeError(f"docker-registry exited: {log.read_text(errors='replace')}")
            return f"listening on 127.0.0.1:{port}" in log.read_text(errors="replace")

        poll(listening, timeout, "docker-registry to listen", fatal=(RuntimeError,))
        return f"localhost:{port}"

    def log_tail(self, n: int = 40) -> str:
        try:
            return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-n:])
        except FileNotFoundError:
            return ""

    def stop(self) -> list[str]:
        """Tries every step; returns what went wrong."""
        problems: list[str] = []
        if self.registry is not None and self.registry.poll() is None:
            self.registry.kill()
            try:
                self.registry.wait(timeout=STOP_TIMEOUT)
            except subprocess.TimeoutExpired:
                problems.append(f"docker-registry {self.registry.pid} survived SIGKILL")
        containerd_pid = None
        try:
            containerd_pid = int((self.exec_root / "containerd" / "containerd.pid").read_text().strip())
        except (OSError, ValueError):
            pass
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=STOP_TIMEOUT)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                try:
                    self.proc.wait(timeout=STOP_TIMEOUT)
                except subprocess.TimeoutExpired:
                    problems.append(f"dockerd {self.proc.pid} survived SIGKILL")
        if containerd_pid is not None and _alive(containerd_pid) and _cmdline_mentions(containerd_pid, str(self.exec_root)):
            os.kill(containerd_pid, signal.SIGKILL)
            try:
                poll(lambda: not _alive(containerd_pid), STOP_TIMEOUT, "containerd to exit")
            except TimeoutError as exc:
                problems.append(str(exc))
        for mount in reversed(_mounts_under(self.root)):
            r = subprocess.run(["umount", "-l", mount], capture_output=True, text=True)
            if r.returncode != 0:
                problems.append(f"umount {mount}: {r.stderr.strip()}")
        if self.netns_made:
            r = subprocess.run(["ip", "netns", "del", self.netns], capture_output=True, text=True)
            if r.returncode != 0:
                problems.append(f"ip netns del {self.netns}: {r.stderr.strip()}")
            self.netns_made = False
        shutil.rmtree(self.root, ignore_errors=True)
        return problems


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    # A zombie is as good as gone.
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
        return state != "Z"
    except (OSError, IndexError):
        return False


def _cmdline_mentions(pid: int, text: str) -> bool:
    try:
        return text in Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
    except OSError:
        return False


def _mounts_under(root: Path) -> list[str]:
    prefix = str(root.resolve())
    out = []
    for line in Path("/proc/self/mountinfo").read_text().splitlines():
        mount_point = line.split()[4].encode().decode("unicode_escape")
        if mount_point == prefix or mount_point.startswith(prefix + "/"):
            out.append(mount_point)
    return out

