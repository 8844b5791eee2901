"""The classic builder against the reference dockerd 20.10, Dockerfile for Dockerfile: each
context in build_corpus/ is built by both with `DOCKER_BUILDKIT=0 docker build`, and the
images must agree on their config (Env, Cmd, Entrypoint, WorkingDir, User, Labels,
ExposedPorts, Volumes, Healthcheck, StopSignal, OnBuild, Shell), their history (the
instruction each entry records and which ones add no layer), their file tree (type, mode,
owner, size, content, link target of every file a container of the image exports), and
which steps a rebuild takes from the cache, unchanged and after one source file changed."""

from __future__ import annotations

import hashlib
import io
import json
import re
import shutil
import subprocess
import tarfile
from pathlib import Path

import refdockerd
from conftest import DOCKER_BIN, import_busybox

CORPUS = Path(__file__).with_name("build_corpus")
CASES = sorted(p.name for p in CORPUS.iterdir() if (p / "Dockerfile").is_file())
# COPY steps whose source hash cannot agree, with why; the hash is masked in their
# history text, everything else about them (files, layers, cache) is still compared.
UNCOMPARABLE_HASH = {
    # Files made by an earlier stage carry that build's own times, and moby hashes a
    # file with its times: two engines building at different moments cannot agree.
    ("multistage", "/out"): "made at build time by another stage",
    ("multistage", "/tree"): "made at build time by another stage",
    # An image's file: dockerd hashes it from its layer store's view, Berth from the
    # copy it takes out of the image (same content, owner and mode; compared below).
    ("multistage", "/copied-busybox"): "hashed from a different view of the image",
    # The context root itself: dockerd's hash covers the directory it extracted the
    # context into (its time and mode), which is the daemon's, not the client's.
    ("copy", "/all/"): "the context root's own metadata is the daemon's",
}
CONFIG_KEYS = ["Env", "Cmd", "Entrypoint", "WorkingDir", "User", "Labels", "ExposedPorts",
               "Volumes", "Healthcheck", "StopSignal", "OnBuild", "Shell"]
BUILD_ARGS = {"args": ["--build-arg", "GIVEN=given value"]}




def docker(env: dict[str, str], *args: str, check: bool = True, stdin: bytes | None = None
           ) -> subprocess.CompletedProcess[bytes]:
    r = subprocess.run([str(DOCKER_BIN), *args], env={**env, "DOCKER_BUILDKIT": "0"},
                       capture_output=True, input=stdin, timeout=300)
    if check and r.returncode != 0:
        raise AssertionError(f"docker {' '.join(args)} failed ({r.returncode}):\n"
                             f"{r.stdout.decode(errors='replace')}\n{r.stderr.decode(errors='replace')}")
    return r


def build(env: dict[str, str], ctx: Path, tag: str, extra: list[str]) -> list[int]:
    """Builds; returns the numbers of the steps that were taken from the cache."""
    args = ("build", "--network", "none", "-t", tag, *extra, str(ctx))
    r = docker(env, *args, check=False)
    if r.returncode != 0 and b"executable file not found in $PATH" in r.stdout + r.stderr:
        # The reference dockerd 20.10 now and then starts a container without the default
        # PATH (seen in test_differential too); the same build again is the comparison.
        r = docker(env, *args, check=False)
    if r.returncode != 0:
        raise AssertionError(f"docker {' '.join(args)} failed ({r.returncode}):\n"
                             f"{r.stdout.decode(errors='replace')}\n{r.stderr.decode(errors='replace')}")
    out = r.stdout.decode()
    cached, step = [], 0
    for line in out.splitlines():
        if line.startswith("Step "):
            step = int(line.split()[1].split("/")[0])
        elif "Using cache" in line:
            cached.append(step)
    return cached


def merged_tree(save_tar: bytes) -> dict[str, tuple]:
    """The image's file tree from `docker save`: its layers applied in order, whiteouts
    (`.wh.NAME`, `.wh..wh..opq`) removing what lower layers had."""
    tree: dict[str, tuple] = {}
    with tarfile.open(fileobj=io.BytesIO(save_tar)) as outer:
        manifest = json.load(outer.extractfile("manifest.json"))[0]
        for layer in manifest["Layers"]:
            with tarfile.open(fileobj=io.BytesIO(outer.extractfile(layer).read())) as tf:
                for m in tf.getmembers():
                    name = m.name.removeprefix("./").rstrip("/")
                    parent, _, base = name.rpartition("/")
                    if base == ".wh..wh..opq":
                        for k in [k for k in tree if k.startswith(parent + "/")]:
                            del tree[k]
                        continue
                    if base.startswith(".wh."):
                        gone = f"{parent}/{base[4:]}".lstrip("/")
                        for k in [k for k in tree if k == gone or k.startswith(gone + "/")]:
                            del tree[k]
                        continue
                    if not name:
                        continue
                    digest = ""
                    if m.isfile():
                        f = tf.extractfile(m)
                        digest = hashlib.sha256(f.read() if f else b"").hexdigest()[:16]
                    tree[name] = (m.type.decode(), oct(m.mode), m.uid, m.gid,
                                  m.size if m.isfile() else 0, digest, m.linkname)
    return tree


def image_view(env: dict[str, str], tag: str) -> dict:
    """What must agree: the config keys, the history, and the merged file tree."""
    inspect = json.loads(docker(env, "image", "inspect", tag).stdout)[0]
    cfg = inspect["Config"]
    lines = docker(env, "history", "--no-trunc", "--format", "{{json .}}", tag).stdout.decode()
    history = [json.loads(line) for line in lines.splitlines() if line.strip()]
    return {
        "config": {k: cfg.get(k) or None for k in CONFIG_KEYS},
        "history": [(current_moby(h["CreatedBy"]), h["Size"] in ("0B", "0")) for h in history],
        "files": merged_tree(docker(env, "save", tag).stdout),
        "layers": len(inspect["RootFS"]["Layers"]),
    }


def current_moby(created_by: str) -> str:
    """dockerd 20.10's history text in current moby's words, which Berth follows (see
    berth-build's cache.rs): a space after `--chown=X`, and HEALTHCHECK printed with `%+v`
    (with StartInterval) where 20.10 used `%q`."""
    created_by = re.sub(r"(--chown=\S+?)((?:file|dir|multi):)", r"\1 \2", created_by)
    m = re.search(r"HEALTHCHECK &\{\[(.*?)\] \"(.*?)\" \"(.*?)\" \"(.*?)\" '\\x(..)'\}", created_by)
    if m:
        test = " ".join(json.loads(f"[{m.group(1).replace(chr(34) + ' ' + chr(34), chr(34) + ', ' + chr(34))}]"))
        created_by = (created_by[:m.start()] + f"HEALTHCHECK &{{Test:[{test}] Interval:{m.group(2)} "
                      f"Timeout:{m.group(3)} StartPeriod:{m.group(4)} StartInterval:0s "
                      f"Retries:{int(m.group(5), 16)}}}" + created_by[m.end():])
    return created_by


def masked(case: str, history: list) -> list:
    out = []
    for created_by, empty in history:
        for (c, dest), _why in UNCOMPARABLE_HASH.items():
            if c == case and created_by.endswith(f" in {dest} "):
                created_by = re.sub(r"\b(file|dir|multi):[0-9a-f]{64}", r"\1:<hash>", created_by)
        out.append((created_by, empty))
    return out


def differences(case: str, a: dict, b: dict) -> list[str]:
    a = {**a, "history": masked(case, a["history"])}
    b = {**b, "history": masked(case, b["history"])}
    out = []
    for k in CONFIG_KEYS:
        if a["config"][k] != b["config"][k]:
            out.append(f"Config.{k}: berthd {a['config'][k]!r} dockerd {b['config'][k]!r}")
    if a["layers"] != b["layers"]:
        out.append(f"layers: berthd {a['layers']} dockerd {b['layers']}")
    if a["history"] != b["history"]:
        out.append(f"history: berthd {a['history']} dockerd {b['history']}")
    for name in sorted(set(a["files"]) | set(b["files"])):
        if a["files"].get(name) != b["files"].get(name):
            out.append(f"/{name}: berthd {a['files'].get(name)} dockerd {b['files'].get(name)}")
    return out


def test_corpus_builds_as_dockerd(busybox_daemon, docker_env, tmp_path):
    d = busybox_daemon()
    with refdockerd.running() as ref:
        ref_env = docker_env({"DOCKER_HOST": f"unix://{ref.sock}"})
        import_busybox(ref_env)
        envs = {"berthd": d.docker_env, "dockerd": ref_env}
        problems = []
        for case in CASES:
            ctx = tmp_path / case
            shutil.copytree(CORPUS / case, ctx)
            extra = BUILD_ARGS.get(case, [])
            tag = f"corpus-{case}"
            first = {e: build(env, ctx, tag, extra) for e, env in envs.items()}
            views = {e: image_view(env, tag) for e, env in envs.items()}
            problems += [f"{case}: {p}" for p in differences(case, views["berthd"], views["dockerd"])]
            again = {e: build(env, ctx, tag, extra) for e, env in envs.items()}
            # Change the last file the Dockerfile copies (or the Dockerfile's context only).
            (ctx / "a.txt").write_text("changed\n")
            changed = {e: build(env, ctx, tag, extra) for e, env in envs.items()}
            for label, got in (("first build", first), ("rebuild", again), ("after a change", changed)):
                if got["berthd"] != got["dockerd"]:
                    problems.append(f"{case}: cached steps {label}: berthd {got['berthd']} "
                                    f"dockerd {got['dockerd']}")
            assert again["dockerd"], f"{case}: the reference took nothing from its cache"
        assert not problems, "differences from dockerd 20.10's classic builder:\n" + "\n".join(problems)
