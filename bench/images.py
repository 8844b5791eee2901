"""Helpers for the image metrics of bench/run: the test image (made locally from random
data, no network), its upload to a registry through the distribution HTTP API, and
streaming raw HTTP/1.1 over a daemon's unix socket (bodies sent with sendfile, chunked
responses decoded while counting). Python standard library only."""

from __future__ import annotations

import dataclasses
import hashlib
import http.client
import io
import json
import os
import socket
import tarfile
import time
import urllib.parse
import zlib
from pathlib import Path
from typing import Callable

MTIME = 1_700_000_000
CHUNK = 1 << 20

MT_MANIFEST = "application/vnd.docker.distribution.manifest.v2+json"
MT_CONFIG = "application/vnd.docker.container.image.v1+json"
MT_LAYER_GZ = "application/vnd.docker.image.rootfs.diff.tar.gzip"


# ---------------------------------------------------------------------------------------
# the test image


@dataclasses.dataclass
class Blob:
    path: Path
    digest: str  # sha256:...
    size: int


@dataclasses.dataclass
class TestImage:
    archive: Path  # `docker save` archive, tagged `local_ref`
    local_ref: str
    image_id: str  # sha256:... of the config
    config: bytes
    diff_ids: list[str]
    layer_bytes: int  # sum of the (uncompressed) layer tar sizes: the throughput numerator
    gz_layers: list[Blob]  # the same layers gzip-compressed, for the registry

    def manifest(self) -> bytes:
        m = {
            "schemaVersion": 2,
            "mediaType": MT_MANIFEST,
            "config": {"mediaType": MT_CONFIG, "size": len(self.config),
                       "digest": "sha256:" + hashlib.sha256(self.config).hexdigest()},
            "layers": [{"mediaType": MT_LAYER_GZ, "size": b.size, "digest": b.digest} for b in self.gz_layers],
        }
        return json.dumps(m, indent=3).encode()


def _info(name: str, size: int = 0, dir_: bool = False) -> tarfile.TarInfo:
    ti = tarfile.TarInfo(name)
    ti.mtime = MTIME
    ti.uname = ti.gname = "root"
    if dir_:
        ti.type = tarfile.DIRTYPE
        ti.mode = 0o755
    else:
        ti.size = size
        ti.mode = 0o644
    return ti


def make_test_image(directory: Path, local_ref: str, layers: int = 4, layer_size: int = 50_000_000) -> TestImage:
    """`layers` layer tars holding one file of `layer_size` random bytes each, written as a
    `docker save` archive (docker 20.10's layout: `<dir>/layer.tar`, `<id>.json`,
    `manifest.json` last) plus gzip-compressed copies of the layers for the registry."""
    archive = directory / "image.tar"
    diff_ids: list[str] = []
    gz_layers: list[Blob] = []
    layer_paths: list[str] = []
    layer_bytes = 0
    with tarfile.open(archive, "w", format=tarfile.GNU_FORMAT) as out:
        for i in range(layers):
            data = bytearray()
            while len(data) < layer_size:
                data += os.urandom(min(CHUNK, layer_size - len(data)))
            buf = io.BytesIO()
            with tarfile.open(fileobj=buf, mode="w", format=tarfile.GNU_FORMAT) as t:
                t.addfile(_info(f"layer{i}.bin", layer_size), io.BytesIO(bytes(data)))
            del data
            layer = buf.getvalue()
            del buf
            layer_bytes += len(layer)
            diff_ids.append("sha256:" + hashlib.sha256(layer).hexdigest())
            d = f"{i:02d}" + hashlib.sha256(diff_ids[-1].encode()).hexdigest()[2:]
            layer_paths.append(f"{d}/layer.tar")
            out.addfile(_info(d, dir_=True))
            out.addfile(_info(f"{d}/layer.tar", len(layer)), io.BytesIO(layer))
            gz_layers.append(_gzip_to(directory / f"layer{i}.tar.gz", layer))
        cfg = {
            "architecture": "amd64",
            "os": "linux",
            "created": "2024-01-02T03:04:05Z",
            "config": {"Cmd": ["sh"]},
            "rootfs": {"type": "layers", "diff_ids": diff_ids},
            "history": [{"created": "2024-01-02T03:04:05Z", "created_by": "berth bench"} for _ in diff_ids],
        }
        config = json.dumps(cfg, separators=(",", ":")).encode()
        image_id = hashlib.sha256(config).hexdigest()
        out.addfile(_info(f"{image_id}.json", len(config)), io.BytesIO(config))
        manifest = json.dumps([{"Config": f"{image_id}.json", "RepoTags": [local_ref], "Layers": layer_paths}]).encode()
        out.addfile(_info("manifest.json", len(manifest)), io.BytesIO(manifest))
    return TestImage(archive, local_ref, f"sha256:{image_id}", config, diff_ids, layer_bytes, gz_layers)


def _gzip_to(path: Path, data: bytes) -> Blob:
    z = zlib.compressobj(1, zlib.DEFLATED, 31)  # gzip framing, fast level (random data)
    h = hashlib.sha256()
    size = 0
    view = memoryview(data)
    with open(path, "wb") as f:
        for off in range(0, len(data), 8 * CHUNK):
            piece = z.compress(view[off : off + 8 * CHUNK])
            f.write(piece)
            h.update(piece)
            size += len(piece)
        piece = z.flush()
        f.write(piece)
        h.update(piece)
        size += len(piece)
    return Blob(path, "sha256:" + h.hexdigest(), size)


# ---------------------------------------------------------------------------------------
# registry (distribution HTTP API v2), from a client in the current thread's netns


def registry_ready(port: int, timeout: float = 30, alive: Callable[[], bool] = lambda: True) -> None:
    deadline = time.monotonic() + timeout
    while True:
        try:
            c = http.client.HTTPConnection("127.0.0.1", port, timeout=5)
            c.request("GET", "/v2/")
            r = c.getresponse()
            r.read()
            c.close()
            if r.status == 200:
                return
        except OSError:
            pass
        if not alive():
            raise RuntimeError("docker-registry exited")
        if time.monotonic() > deadline:
            raise RuntimeError(f"docker-registry on port {port} not ready within {timeout}s")
        time.sleep(0.05)


def registry_upload(port: int, repo: str, tag: str, img: TestImage) -> None:
    """Upload img's config, gzip layers and schema-2 manifest as repo:tag."""
    c = http.client.HTTPConnection("127.0.0.1", port, timeout=300, blocksize=CHUNK)
    try:
        blobs: list[tuple[bytes | Path, str, int]] = [
            (img.config, "sha256:" + hashlib.sha256(img.config).hexdigest(), len(img.config))]
        blobs += [(b.path, b.digest, b.size) for b in img.gz_layers]
        for content, digest, size in blobs:
            c.request("POST", f"/v2/{repo}/blobs/uploads/", headers={"Content-Length": "0"})
            r = c.getresponse()
            r.read()
            if r.status != 202:
                raise RuntimeError(f"registry upload start: {r.status}")
            loc = urllib.parse.urlsplit(r.getheader("Location") or "")
            url = loc.path + "?" + (loc.query + "&" if loc.query else "") + urllib.parse.urlencode({"digest": digest})
            hdrs = {"Content-Length": str(size), "Content-Type": "application/octet-stream"}
            if isinstance(content, Path):
                with open(content, "rb") as f:
                    c.request("PUT", url, body=f, headers=hdrs)
                    r = c.getresponse()
            else:
                c.request("PUT", url, body=content, headers=hdrs)
                r = c.getresponse()
            body = r.read()
            if r.status != 201:
                raise RuntimeError(f"registry upload of {digest}: {r.status} {body[:200]!r}")
        c.request("PUT", f"/v2/{repo}/manifests/{tag}", body=img.manifest(), headers={"Content-Type": MT_MANIFEST})
        r = c.getresponse()
        body = r.read()
        if r.status != 201:
            raise RuntimeError(f"registry manifest put: {r.status} {body[:200]!r}")
    finally:
        c.close()


def registry_has(port: int, repo: str, tag: str) -> bool:
    c = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
    try:
        c.request("HEAD", f"/v2/{repo}/manifests/{tag}",
                  headers={"Accept": MT_MANIFEST + ", application/vnd.oci.image.manifest.v1+json"})
        r = c.getresponse()
        r.read()
        return r.status == 200
    finally:
        c.close()


# ---------------------------------------------------------------------------------------
# streaming raw HTTP/1.1 over a unix socket


class _Reader:
    def __init__(self, s: socket.socket):
        self.s = s
        self.buf = bytearray()
        self.scratch = bytearray(CHUNK)

    def _more(self) -> bool:
        n = self.s.recv_into(self.scratch)
        if n == 0:
            return False
        self.buf += memoryview(self.scratch)[:n]
        return True

    def line(self) -> bytes:
        while True:
            i = self.buf.find(b"\r\n")
            if i >= 0:
                out = bytes(self.buf[:i])
                del self.buf[: i + 2]
                return out
            if not self._more():
                raise ConnectionError("connection closed")

    def take(self, n: int | None, sink: Callable[[memoryview | bytearray], None]) -> None:
        """Pass n bytes (None: everything up to EOF) to sink."""
        left = n
        if self.buf:
            k = len(self.buf) if left is None else min(left, len(self.buf))
            sink(self.buf[:k])
            del self.buf[:k]
            if left is not None:
                left -= k
        mv = memoryview(self.scratch)
        while left is None or left > 0:
            want = len(self.scratch) if left is None else min(left, len(self.scratch))
            got = self.s.recv_into(self.scratch, want)
            if got == 0:
                if left is None:
                    return
                raise ConnectionError("connection closed in body")
            sink(mv[:got])
            if left is not None:
                left -= got


@dataclasses.dataclass
class Response:
    status: int
    headers: dict[str, str]
    body: bytes  # empty when not collected
    nbytes: int  # body length (decoded)

    def json_lines(self) -> list[dict]:
        """The JSON objects of a streamed body (Docker's progress messages)."""
        out, dec, text, i = [], json.JSONDecoder(), self.body.decode(errors="replace"), 0
        while True:
            while i < len(text) and text[i] in " \t\r\n":
                i += 1
            if i >= len(text):
                return out
            obj, i = dec.raw_decode(text, i)
            out.append(obj)

    def stream_error(self) -> str | None:
        for m in self.json_lines():
            if isinstance(m, dict) and (m.get("error") or m.get("errorDetail")):
                return str(m.get("error") or m.get("errorDetail"))
        return None


def unix_request(sock_path: Path, method: str, path: str, *, headers: dict[str, str] | None = None,
                 body: bytes = b"", body_path: Path | None = None, collect: bool = True,
                 timeout: float = 600) -> Response:
    """One request on a fresh connection (Connection: close); reads the whole response
    (Content-Length, chunked or to EOF). With collect=False the body is only counted."""
    with socket.socket(socket.AF_UNIX) as s:
        s.settimeout(timeout)
        s.connect(str(sock_path))
        length = body_path.stat().st_size if body_path else len(body)
        head = f"{method} {path} HTTP/1.1\r\nHost: bench\r\nConnection: close\r\n"
        for k, v in (headers or {}).items():
            head += f"{k}: {v}\r\n"
        if method in ("POST", "PUT") or length:
            head += f"Content-Length: {length}\r\n"
        try:
            s.sendall(head.encode() + b"\r\n")
            if body_path:
                with open(body_path, "rb") as f:
                    s.sendfile(f)
            elif body:
                s.sendall(body)
        except (BrokenPipeError, ConnectionResetError):
            pass  # the server answered early (an error); read what it said
        r = _Reader(s)
        while True:
            status_line = r.line().decode("latin-1")
            status = int(status_line.split(" ", 2)[1])
            hdrs: dict[str, str] = {}
            while True:
                ln = r.line()
                if not ln:
                    break
                k, _, v = ln.decode("latin-1").partition(":")
                hdrs[k.strip().lower()] = v.strip()
            if status != 100:
                break
        parts: list[bytes] = []
        count = [0]

        def sink(b: memoryview | bytearray) -> None:
            count[0] += len(b)
            if collect:
                parts.append(bytes(b))

        if method == "HEAD" or status in (204, 304):
            pass
        elif "chunked" in hdrs.get("transfer-encoding", "").lower():
            while True:
                size = int(r.line().split(b";")[0].strip(), 16)
                if size == 0:
                    while r.line():
                        pass
                    break
                r.take(size, sink)
                if r.line() != b"":
                    raise ConnectionError("bad chunk framing")
        elif "content-length" in hdrs:
            r.take(int(hdrs["content-length"]), sink)
        else:
            r.take(None, sink)
        return Response(status, hdrs, b"".join(parts), count[0])


# ---------------------------------------------------------------------------------------
# disk


def disk_write_mbps(directory: Path, size: int = 200_000_000) -> float:
    """Sequential write of `size` random bytes plus fsync, in MB/s (1 MB = 10^6 bytes).
    Other dirty data (the test image just written, earlier metrics) is written back first,
    untimed: the fsync would otherwise wait behind it and report a slower disk."""
    block = os.urandom(4 * CHUNK)
    path = directory / "disk-speed.bin"
    os.sync()
    try:
        t0 = time.perf_counter()
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        try:
            left = size
            while left > 0:
                left -= os.write(fd, block[: min(left, len(block))])
            os.fsync(fd)
        finally:
            os.close(fd)
        return size / 1e6 / (time.perf_counter() - t0)
    finally:
        path.unlink(missing_ok=True)
