"""Helpers for the build metrics of bench/run (issue 16): a 20-step Dockerfile built with
the docker CLI's classic builder (DOCKER_BUILDKIT=0) cold, fully cached, and after one
source file changed; and the upload of a 100 MB context. The `_api` variants time the same
requests without the docker CLI: POST /build with the context tar made beforehand, from
the request to the end of its response (the CLI's own start and tarring are ~20 ms)."""

from __future__ import annotations

import os
import shutil
import subprocess
import tarfile
import tempfile
import time
import urllib.parse
from pathlib import Path

from containers import DOCKER, IMAGE, ApiError
from images import unix_request

CONTEXT_MB = 100


def twenty_steps(ctx: Path) -> None:
    """A context whose Dockerfile has 20 steps: metadata, COPY of sources, RUNs."""
    (ctx / "src").mkdir(parents=True, exist_ok=True)
    for i in range(5):
        (ctx / "src" / f"part{i}.txt").write_text(f"part {i}\n" * 100)
    lines = [f"FROM {IMAGE}", "ENV APP=/app MODE=bench", "WORKDIR /app", 'LABEL bench="builds"',
             "ARG LEVEL=3", "COPY src/part0.txt src/part1.txt ./"]
    lines += [f"RUN echo step{i} > /app/step{i} && cat /app/part0.txt > /dev/null" for i in range(8)]
    lines += ["COPY src/ /app/src/", "RUN ls /app/src > /app/list", "EXPOSE 8080", "USER nobody",
              'HEALTHCHECK CMD ["true"]', 'CMD ["cat", "/app/list"]']
    (ctx / "Dockerfile").write_text("\n".join(lines) + "\n")
    assert len(lines) == 20, len(lines)


def build(sock: Path, ctx: Path, tag: str, *extra: str) -> float:
    """Seconds for `docker build` (classic builder) of `ctx` against `sock`."""
    env = {**os.environ, "DOCKER_HOST": f"unix://{sock}", "DOCKER_BUILDKIT": "0"}
    env.pop("DOCKER_CONTEXT", None)
    t0 = time.perf_counter()
    out = subprocess.run([DOCKER, "build", "-q", "--network", "none", "-t", tag, *extra, str(ctx)],
                         env=env, capture_output=True, timeout=900)
    elapsed = time.perf_counter() - t0
    if out.returncode != 0:
        raise ApiError(f"docker build: {out.returncode} {out.stderr.decode(errors='replace')[:300]}")
    return elapsed


def remove_image(sock: Path, tag: str) -> None:
    env = {**os.environ, "DOCKER_HOST": f"unix://{sock}"}
    env.pop("DOCKER_CONTEXT", None)
    subprocess.run([DOCKER, "rmi", "-f", tag], env=env, capture_output=True, timeout=120)
    subprocess.run([DOCKER, "builder", "prune", "-af"], env=env, capture_output=True, timeout=120)


def cold_cached_changed(sock: Path) -> tuple[float, float, float]:
    """(cold, fully cached, one source changed) seconds for the 20-step Dockerfile."""
    ctx = Path(tempfile.mkdtemp(prefix="bench-build-"))
    tag = "bench-build:20"
    try:
        twenty_steps(ctx)
        remove_image(sock, tag)
        cold = build(sock, ctx, tag, "--no-cache")
        cached = build(sock, ctx, tag)
        (ctx / "src" / "part4.txt").write_text("changed\n")
        changed = build(sock, ctx, tag)
        return cold, cached, changed
    finally:
        remove_image(sock, tag)
        shutil.rmtree(ctx, ignore_errors=True)


def context_upload(sock: Path) -> float:
    """MB/s for a build whose context is 100 MB of incompressible files and whose
    Dockerfile only reads one small file (the time is the upload and its unpacking)."""
    ctx = Path(tempfile.mkdtemp(prefix="bench-ctx-"))
    tag = "bench-ctx:1"
    try:
        (ctx / "data").mkdir()
        for i in range(CONTEXT_MB // 10):
            (ctx / "data" / f"blob{i}").write_bytes(os.urandom(10 * 1024 * 1024))
        (ctx / "small").write_text("x\n")
        (ctx / "Dockerfile").write_text(f"FROM {IMAGE}\nCOPY small /small\n")
        remove_image(sock, tag)
        t = build(sock, ctx, tag, "--no-cache")
        return CONTEXT_MB / t
    finally:
        remove_image(sock, tag)
        shutil.rmtree(ctx, ignore_errors=True)


def context_tar(ctx: Path, out: Path) -> Path:
    """The context directory `ctx` as the tar the docker CLI sends (names relative)."""
    with tarfile.open(out, "w") as t:
        for p in sorted(ctx.rglob("*")):
            t.add(p, arcname=str(p.relative_to(ctx)), recursive=False)
    return out


def api_build(sock: Path, tar: Path, tag: str, *, nocache: bool = False) -> float:
    """Seconds from POST /build (the classic builder's query, as the CLI sends it with
    -q --network none) to the end of its response, the body sent from `tar`."""
    q = {"t": tag, "q": "1", "rm": "1", "networkmode": "none", "version": "1"}
    if nocache:
        q["nocache"] = "1"
    path = "/build?" + urllib.parse.urlencode(q)
    t0 = time.perf_counter()
    r = unix_request(sock, "POST", path, headers={"Content-Type": "application/x-tar"}, body_path=tar)
    elapsed = time.perf_counter() - t0
    if r.status != 200 or r.stream_error():
        raise ApiError(f"POST /build: {r.status} {r.stream_error() or r.body[:300]!r}")
    return elapsed


def cached_api(sock: Path, runs: int) -> list[float]:
    """Seconds of `runs` fully cached rebuilds of the 20-step Dockerfile through the API
    (after one cold build, not timed)."""
    ctx = Path(tempfile.mkdtemp(prefix="bench-build-api-"))
    tag = "bench-build:api"
    try:
        twenty_steps(ctx / "ctx")
        tar = context_tar(ctx / "ctx", ctx / "ctx.tar")
        remove_image(sock, tag)
        api_build(sock, tar, tag, nocache=True)
        return [api_build(sock, tar, tag) for _ in range(runs)]
    finally:
        remove_image(sock, tag)
        shutil.rmtree(ctx, ignore_errors=True)


def context_upload_api(sock: Path, runs: int) -> list[float]:
    """MB/s of `runs` builds of the 100 MB context through the API (the tar made once)."""
    ctx = Path(tempfile.mkdtemp(prefix="bench-ctx-api-"))
    tag = "bench-ctx:api"
    try:
        (ctx / "ctx" / "data").mkdir(parents=True)
        for i in range(CONTEXT_MB // 10):
            (ctx / "ctx" / "data" / f"blob{i}").write_bytes(os.urandom(10 * 1024 * 1024))
        (ctx / "ctx" / "small").write_text("x\n")
        (ctx / "ctx" / "Dockerfile").write_text(f"FROM {IMAGE}\nCOPY small /small\n")
        tar = context_tar(ctx / "ctx", ctx / "ctx.tar")
        shutil.rmtree(ctx / "ctx")
        samples = []
        for _ in range(runs):
            remove_image(sock, tag)
            samples.append(CONTEXT_MB / api_build(sock, tar, tag, nocache=True))
        return samples
    finally:
        remove_image(sock, tag)
        shutil.rmtree(ctx, ignore_errors=True)
