"""berthd against the reference dockerd 20.10, request for request (tests/e2e/differential.py):
every answer that differs must be a known, explained difference (differential_known.json),
and a known difference that is gone must leave that file, so it stays the true list.
The full report goes to target/differential-report.json."""

from __future__ import annotations

import contextlib
import json
import shutil
import subprocess
from collections import Counter
from pathlib import Path
from typing import Iterator

import pytest

import differential
import refdockerd
from conftest import REPO_ROOT, free_port, import_busybox, poll

KNOWN = Path(__file__).with_name("differential_known.json")
REPORT = REPO_ROOT / "target" / "differential-report.json"
REGISTRY_REPORT = REPO_ROOT / "target" / "differential-registry-report.json"


@pytest.fixture
def reference(docker_env):
    with refdockerd.running() as ref:
        import_busybox(docker_env({"DOCKER_HOST": f"unix://{ref.sock}"}))
        yield ref


def test_answers_match_dockerd(busybox_daemon, reference):
    d = busybox_daemon()
    berth = differential.Engine("berthd", d.sock)
    ref = differential.Engine("dockerd", reference.sock)
    outcomes = differential.run_all(berth, ref)
    check_known(outcomes, REPORT)


def check_known(outcomes: list[differential.Outcome], report_path: Path) -> None:
    """Writes the report; every difference must be known, every known one (of the cases
    run) still there."""
    report = [
        {"case": o.case.id, "berthd": o.berth[0], "dockerd": o.dockerd[0], "diffs": o.diffs}
        for o in outcomes
    ]
    report_path.parent.mkdir(exist_ok=True)
    report_path.write_text(json.dumps(report, indent=1))
    known: dict[str, str] = json.loads(KNOWN.read_text())
    differing = {o.case.id: "; ".join(o.diffs) for o in outcomes if o.diffs}
    new = {k: v for k, v in differing.items() if k not in known}
    fixed = sorted(k for k in known if k not in differing and any(o.case.id == k for o in outcomes))
    kinds = Counter(d.split(" ", 1)[0] for v in differing.values() for d in v.split("; "))
    summary = (f"{len(outcomes)} cases over {len({(o.case.method, o.case.path) for o in outcomes})} operations; "
               f"{len(differing)} differ ({dict(kinds)}); report: {report_path}")
    print(summary)
    assert not new, f"new differences from dockerd ({summary}):\n" + "\n".join(f"{k}: {v}" for k, v in sorted(new.items()))
    assert not fixed, "these now answer as dockerd: remove them from differential_known.json:\n" + "\n".join(fixed)


REGISTRY = shutil.which("docker-registry")
HTPASSWD = shutil.which("htpasswd")


@contextlib.contextmanager
def registry_process(root: Path, port: int, netns: str | None, auth: bool) -> Iterator[None]:
    """Debian's docker-registry on 127.0.0.1:`port` (in `netns` if given), storage under
    `root`; with htpasswd basic auth if `auth`."""
    root.mkdir(parents=True)
    addr = f"127.0.0.1:{port}"
    auth_block = ""
    if auth:
        htpasswd = root / "htpasswd"
        subprocess.run([HTPASSWD, "-Bbc", str(htpasswd), differential.REGISTRY_USER, differential.REGISTRY_PASSWORD],
                       check=True, capture_output=True)
        auth_block = f"auth:\n  htpasswd:\n    realm: berth-test\n    path: {htpasswd}\n"
    (root / "registry.yml").write_text(
        "version: 0.1\nlog:\n  level: info\n"
        f"storage:\n  filesystem:\n    rootdirectory: {root / 'data'}\n"
        f"http:\n  addr: {addr}\n" + auth_block)
    log = root / "registry.log"
    ns = ["nsenter", f"--net=/var/run/netns/{netns}"] if netns else []
    with open(log, "ab") as out:
        proc = subprocess.Popen([*ns, REGISTRY, "serve", str(root / "registry.yml")], stdout=out, stderr=out,
                                stdin=subprocess.DEVNULL, start_new_session=True)
    try:
        poll(lambda: f"listening on {addr}" in log.read_text(errors="replace")
             or (proc.poll() is not None and pytest.fail(log.read_text())), 30, "docker-registry to listen")
        yield
    finally:
        proc.terminate()
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(10)


def test_registry_answers_match_dockerd(busybox_daemon, reference, workdir):
    """Pull, push, distribution and auth against registries both daemons reach at the same
    address (each its own: berthd's on the host's loopback, the reference's on its
    namespace's), compared as the API walk compares (progress streams as the messages a
    client acts on). Known differences are in differential_known.json with the rest."""
    if REGISTRY is None or HTPASSWD is None:
        pytest.fail("docker-registry or htpasswd is missing (.ci/run installs docker-registry and apache2-utils)")
    d = busybox_daemon()
    berth = differential.Engine("berthd", d.sock)
    ref = differential.Engine("dockerd", reference.sock)
    ports = [free_port() for _ in range(3)]
    addrs = [f"127.0.0.1:{p}" for p in ports]
    regs = {e: differential.Registries(open=addrs[0], auth=addrs[1], closed=addrs[2]) for e in ("berthd", "dockerd")}
    with contextlib.ExitStack() as stack:
        for who, netns in (("berthd", None), ("dockerd", reference.netns)):
            stack.enter_context(registry_process(workdir / f"reg-{who}-open", ports[0], netns, auth=False))
            stack.enter_context(registry_process(workdir / f"reg-{who}-auth", ports[1], netns, auth=True))
        outcomes = differential.run_registry(berth, ref, regs)
    check_known(outcomes, REGISTRY_REPORT)
