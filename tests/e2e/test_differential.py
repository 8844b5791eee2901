"""berthd against the reference dockerd 20.10, request for request (tests/e2e/differential.py):
every answer that differs must be a known, explained difference (differential_known.json),
and a known difference that is gone must leave that file, so it stays the true list.
The full report goes to target/differential-report.json."""

from __future__ import annotations

import json
from collections import Counter
from pathlib import Path

import pytest

import differential
import refdockerd
from conftest import REPO_ROOT, import_busybox

KNOWN = Path(__file__).with_name("differential_known.json")
REPORT = REPO_ROOT / "target" / "differential-report.json"


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
    report = [
        {"case": o.case.id, "berthd": o.berth[0], "dockerd": o.dockerd[0], "diffs": o.diffs}
        for o in outcomes
    ]
    REPORT.parent.mkdir(exist_ok=True)
    REPORT.write_text(json.dumps(report, indent=1))
    known: dict[str, str] = json.loads(KNOWN.read_text())
    differing = {o.case.id: "; ".join(o.diffs) for o in outcomes if o.diffs}
    new = {k: v for k, v in differing.items() if k not in known}
    fixed = sorted(k for k in known if k not in differing and any(o.case.id == k for o in outcomes))
    kinds = Counter(d.split(" ", 1)[0] for v in differing.values() for d in v.split("; "))
    summary = (f"{len(outcomes)} cases over {len({(o.case.method, o.case.path) for o in outcomes})} operations; "
               f"{len(differing)} differ ({dict(kinds)}); report: {REPORT}")
    print(summary)
    assert not new, f"new differences from dockerd ({summary}):\n" + "\n".join(f"{k}: {v}" for k, v in sorted(new.items()))
    assert not fixed, "these now answer as dockerd: remove them from differential_known.json:\n" + "\n".join(fixed)
