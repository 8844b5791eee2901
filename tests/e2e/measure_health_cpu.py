"""Not part of the suite (pytest collects `test_*.py` only): the CPU an idle container's
1 s healthcheck costs (issue 15 §1), berthd's and its shim's (children included: the
probe processes) over 60 s from /proc, without and with the healthcheck. Run it alone:

    BERTHD_BIN=... BERTH_BIN=... python3 -m pytest -q -s -p no:cacheprovider \
        tests/e2e/measure_health_cpu.py

It prints figures and asserts none."""

from __future__ import annotations

import os
import time

from hostclean import shim_pids
from test_containers import dk

TICK = os.sysconf("SC_CLK_TCK")
WINDOW = 60


def cpu_seconds(pid: int) -> float:
    """utime + stime + cutime + cstime of `pid`."""
    fields = open(f"/proc/{pid}/stat").read().rsplit(")", 1)[1].split()
    return sum(int(x) for x in fields[11:15]) / TICK


def measure_health_cpu(busybox_daemon) -> None:
    d = busybox_daemon()
    for name, extra in (("plain", []), ("probed", ["--health-cmd", "true", "--health-interval", "1s"])):
        dk(d, "run", "-d", "--name", name, *extra, "busybox", "sleep", "1000")
        time.sleep(3)  # past the start; a measurement window, not a synchronisation
        shims = shim_pids((str(d.data_root), str(d.exec_root)))
        assert len(shims) == 1, shims
        before = (cpu_seconds(d.pid), cpu_seconds(shims[0]))
        time.sleep(WINDOW)
        after = (cpu_seconds(d.pid), cpu_seconds(shims[0]))
        dk(d, "rm", "-f", name)
        berthd, shim = after[0] - before[0], after[1] - before[1]
        print(f"\n{name}: berthd {berthd:.2f} s, shim and probes {shim:.2f} s over {WINDOW} s: "
              f"{100 * (berthd + shim) / WINDOW:.2f} % of one core")


test_measure = measure_health_cpu
