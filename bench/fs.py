"""Helpers for the container filesystem metrics of bench/run (the volumes and container
filesystem issue): a 100 MB test directory made here from random data, `docker cp` of it
into and out of a running container, and `docker commit` of a container whose writable
layer holds a 100 MB change. Every engine is driven by the real docker CLI (what the
targets name) over its unix socket; containers run with `--network none`, as in
bench/containers.py. Python standard library only."""

from __future__ import annotations

import dataclasses
import os
import subprocess
import time
from pathlib import Path

from containers import DOCKER, IMAGE

# The tree: BIG_FILES random files of BIG_SIZE bytes, plus SMALL_FILES small ones spread
# over SMALL_DIRS directories (what a source tree or a data directory looks like).
BIG_FILES = 100
BIG_SIZE = 1_000_000
SMALL_FILES = 200
SMALL_DIRS = 10
SMALL_SIZE = 1_000
# Where the tree goes inside the containers.
CTR_DIR = "/bench"


class CliError(RuntimeError):
    pass


@dataclasses.dataclass
class Tree:
    path: Path  # the directory (its name is `tree`)
    files: int  # regular files in it
    nbytes: int  # sum of their sizes: the throughput numerator


def make_tree(directory: Path) -> Tree:
    """Writes the test tree under `directory/tree` (random, incompressible data)."""
    root = directory / "tree"
    (root / "big").mkdir(parents=True)
    nbytes = 0
    for i in range(BIG_FILES):
        data = os.urandom(BIG_SIZE)
        (root / "big" / f"f{i:03d}.bin").write_bytes(data)
        nbytes += len(data)
    for i in range(SMALL_FILES):
        sub = root / "small" / f"d{i % SMALL_DIRS}"
        sub.mkdir(parents=True, exist_ok=True)
        data = os.urandom(SMALL_SIZE)
        (sub / f"s{i:03d}.txt").write_bytes(data)
        nbytes += len(data)
    return Tree(root, BIG_FILES + SMALL_FILES, nbytes)


def count_files(path: Path) -> tuple[int, int]:
    """(regular files, bytes) under path."""
    files = nbytes = 0
    for dirpath, _dirs, names in os.walk(path):
        for n in names:
            st = os.lstat(os.path.join(dirpath, n))
            files += 1
            nbytes += st.st_size
    return files, nbytes


def cli(sock: Path, *args: str, timeout: float = 300) -> str:
    """Runs the docker CLI against the daemon at `sock`; its stdout, or CliError."""
    env = {**os.environ, "DOCKER_HOST": f"unix://{sock}"}
    env.pop("DOCKER_CONTEXT", None)
    out = subprocess.run([DOCKER, *args], env=env, capture_output=True, timeout=timeout)
    if out.returncode != 0:
        raise CliError(f"docker {' '.join(args[:2])}: {out.returncode} {out.stderr.decode(errors='replace')[:300]}")
    return out.stdout.decode(errors="replace")


def fresh_page_cache(tree: Tree) -> bool:
    """Drops the clean page cache (after writing back dirty pages) and reads `tree` back
    in, so that every engine's filesystem metric starts from the same memory state: on
    these VMs a page cache grown to several GB by earlier metrics made each 100 MB copy
    take two to three times the CPU, for whichever engine happened to run then. False
    when the cache cannot be dropped (not root)."""
    os.sync()
    try:
        Path("/proc/sys/vm/drop_caches").write_text("1")
    except OSError:
        return False
    for dirpath, _dirs, names in os.walk(tree.path):
        for n in names:
            with open(os.path.join(dirpath, n), "rb") as f:
                while f.read(1 << 20):
                    pass
    return True


def timed_cli(sock: Path, *args: str) -> float:
    """The seconds `docker ARGS` takes. Dirty pages left by earlier runs (and metrics) are
    written back first, untimed: the kernel's flusher would otherwise take CPU from
    whichever run it happens to overlap, on any engine."""
    os.sync()
    t0 = time.perf_counter()
    cli(sock, *args)
    return time.perf_counter() - t0


def start_idle(sock: Path) -> str:
    """A running `sleep` container: the target of the cp metrics."""
    return cli(sock, "run", "-d", "--network", "none", IMAGE, "sleep", "100000").strip()


def remove(sock: Path, cid: str) -> None:
    cli(sock, "rm", "-f", cid)


def files_in(sock: Path, cid: str, path: str) -> int:
    """Regular files below `path` in a running container (through exec, not timed)."""
    return int(cli(sock, "exec", cid, "sh", "-c", f"find {path} -type f | wc -l").strip())


def cp_in(sock: Path, cid: str, tree: Tree, n: int) -> float:
    """`docker cp TREE CID:/bench/N` (the destination made by the copy): seconds. Checks
    the files arrived (not timed). Copies are kept until the container goes: deleting
    300 files just before the next run makes ext4 slower to allocate its inodes (its
    `recently_deleted` scan), for every engine alike, which would hide the engines' own
    costs."""
    cli(sock, "exec", cid, "mkdir", "-p", CTR_DIR)
    dest = f"{CTR_DIR}/{n}"
    t = timed_cli(sock, "cp", str(tree.path), f"{cid}:{dest}")
    got = files_in(sock, cid, dest)
    if got != tree.files:
        raise CliError(f"cp in: {got} files arrived, expected {tree.files}")
    return t


def cp_out(sock: Path, cid: str, tree: Tree, out_dir: Path, n: int) -> float:
    """`docker cp CID:/bench/tree OUT/N` of the tree copied in before: seconds. Checks
    what came out (not timed); the caller removes `out_dir` after the last run (see
    `cp_in` on deleting between runs)."""
    dest = out_dir / str(n)
    t = timed_cli(sock, "cp", f"{cid}:{CTR_DIR}/tree", str(dest))
    got = count_files(dest)
    if got != (tree.files, tree.nbytes):
        raise CliError(f"cp out: {got[0]} files, {got[1]} bytes; expected {tree.files}, {tree.nbytes}")
    return t


def prepare_cp_out(sock: Path, cid: str, tree: Tree) -> None:
    cli(sock, "exec", cid, "mkdir", "-p", CTR_DIR)
    cli(sock, "cp", str(tree.path), f"{cid}:{CTR_DIR}/")


# The change committed: BIG_FILES files of BIG_SIZE random bytes written by the container.
CHANGE_CMD = (f"mkdir -p {CTR_DIR} && i=0; while [ $i -lt {BIG_FILES} ]; do "
              f"head -c {BIG_SIZE} /dev/urandom > {CTR_DIR}/f$i || exit 1; i=$((i+1)); done")
CHANGE_BYTES = BIG_FILES * BIG_SIZE


def commit_runs(sock: Path, runs: int) -> list[float]:
    """One warm-up and `runs` timed commits: each time a container writes CHANGE_BYTES and
    exits (not timed), `docker commit` of it is timed and the image checked. Containers
    and images are removed after the last run (see `cp_in` on deleting between runs).
    Seconds per run."""
    made: list[tuple[str, str]] = []
    try:
        samples = []
        for n in range(runs + 1):
            cid = cli(sock, "run", "-d", "--network", "none", IMAGE, "sh", "-c", CHANGE_CMD).strip()
            ref = f"bench/commit:{n}"
            made.append((cid, ref))
            code = cli(sock, "wait", cid).strip()
            if code != "0":
                raise CliError(f"the writer exited {code}")
            t = timed_cli(sock, "commit", cid, ref)
            layers = cli(sock, "image", "inspect", "-f", "{{len .RootFS.Layers}}", ref).strip()
            if layers != "2":
                raise CliError(f"committed image has {layers} layers, expected 2")
            if n > 0:  # the first is the warm-up
                samples.append(t)
        return samples
    finally:
        for cid, ref in made:
            cli(sock, "rm", "-f", cid)
            if cli(sock, "images", "-q", ref).strip():
                cli(sock, "rmi", ref)
