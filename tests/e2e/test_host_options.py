"""HostConfig options beyond resources and mounts, through the real docker CLI: ulimits,
sysctls, extra groups, PID/IPC/UTS modes (host and container:), --init, security options,
devices and the OOM score; each one checked from inside the container, and each bad value
refused at create with a 400 and nothing left behind."""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path

import pytest

from conftest import DOCKER_BIN


@pytest.fixture
def d(busybox_daemon):
    return busybox_daemon()


def _ids(d) -> list[str]:
    return subprocess.run([DOCKER_BIN, "ps", "-aq"], env=d.docker_env, capture_output=True, text=True).stdout.split()


def run(d, *args, check=True):
    r = subprocess.run([DOCKER_BIN, "run", "--rm", *args], env=d.docker_env, capture_output=True, text=True,
                       timeout=60)
    if check:
        assert r.returncode == 0, (args, r.stdout, r.stderr)
    return r


def dk(d, *args):
    r = subprocess.run([DOCKER_BIN, *args], env=d.docker_env, capture_output=True, text=True, timeout=60)
    assert r.returncode == 0, (args, r.stdout, r.stderr)
    return r.stdout


def create_status(d, host_config: dict) -> tuple[int, str]:
    before = len(_ids(d))
    r = d.request("POST", "/containers/create", headers={"Content-Type": "application/json"},
                  body=json.dumps({"Image": "busybox", "Cmd": ["true"], "HostConfig": host_config}).encode())
    msg = r.json().get("message", "") if r.status >= 400 else ""
    if r.status >= 400:
        assert len(_ids(d)) == before, "a refused create left a container"
    return r.status, msg


def test_ulimits_and_sysctls(d):
    assert run(d, "--ulimit", "nofile=100:200", "busybox", "sh", "-c", "ulimit -n; ulimit -Hn").stdout == "100\n200\n"
    hard = int(Path("/proc/self/limits").read_text().split("Max open files")[1].split()[1])
    r = run(d, "--ulimit", f"nofile=100:{hard + 1}", "busybox", "true", check=False)
    has_sys_resource = int([l for l in Path("/proc/self/status").read_text().splitlines()
                            if l.startswith("CapEff:")][0].split()[1], 16) & (1 << 24)
    if not has_sys_resource:
        assert r.returncode == 125 and "cannot raise" in r.stderr, r.stderr
    assert run(d, "--sysctl", "net.ipv4.ip_forward=0", "busybox",
               "cat", "/proc/sys/net/ipv4/ip_forward").stdout == "0\n"
    assert run(d, "--sysctl", "kernel.shmmni=1234", "busybox", "cat", "/proc/sys/kernel/shmmni").stdout == "1234\n"
    status, msg = create_status(d, {"Sysctls": {"kernel.panic": "1"}})
    assert status == 400 and "kernel.panic" in msg, msg
    status, msg = create_status(d, {"Sysctls": {"net.ipv4.ip_forward": "1"}, "NetworkMode": "host"})
    assert status == 400 and "host network namespace" in msg, msg
    status, msg = create_status(d, {"Ulimits": [{"Name": "bogus", "Soft": 1, "Hard": 1}]})
    assert status == 400 and msg == "invalid ulimit type: bogus", msg


def test_groups(d):
    out = run(d, "--group-add", "1234", "--group-add", "daemon", "busybox", "id").stdout
    assert out == "uid=0(root) gid=0(root) groups=0(root),1(daemon),1234\n", out
    # moby's getUser since 20.10.18 (CVE-2022-36109): the primary group is a supplementary
    # one too, for the container's process and for an exec with a user of its own
    # (dockerd 20.10 printed exactly these lines for this image).
    assert run(d, "--user", "nobody", "busybox", "id").stdout == \
        "uid=65534(nobody) gid=65534(nogroup) groups=65534(nogroup)\n"
    assert run(d, "--user", "nobody:daemon", "busybox", "id").stdout == \
        "uid=65534(nobody) gid=1(daemon) groups=1(daemon)\n"
    cid = dk(d, "run", "-d", "--group-add", "daemon", "busybox", "sleep", "30").strip()
    try:
        assert dk(d, "exec", "-u", "nobody", cid, "id") == \
            "uid=65534(nobody) gid=65534(nogroup) groups=1(daemon),65534(nogroup)\n"
        assert dk(d, "exec", cid, "id") == "uid=0(root) gid=0(root) groups=0(root),1(daemon)\n"
    finally:
        dk(d, "rm", "-f", cid)
    r = run(d, "--group-add", "no-such-group", "busybox", "true", check=False)
    assert r.returncode == 125 and "Unable to find group no-such-group" in r.stderr, r.stderr


def test_namespace_modes(d):
    host_ipc = os.readlink("/proc/self/ns/ipc")
    assert run(d, "--ipc", "host", "busybox", "readlink", "/proc/self/ns/ipc").stdout.strip() == host_ipc
    assert run(d, "busybox", "readlink", "/proc/self/ns/ipc").stdout.strip() != host_ipc
    assert run(d, "--uts", "host", "busybox", "hostname").stdout.strip() == os.uname().nodename
    assert int(run(d, "--pid", "host", "busybox", "sh", "-c", "ls /proc | grep -c '^[0-9]'").stdout) > 5
    r = run(d, "--ipc", "none", "busybox", "ls", "/dev/shm", check=False)
    assert r.returncode != 0 and "No such file" in r.stderr

    donor = dk(d, "run", "-d", "--ipc", "shareable", "busybox", "sh", "-c",
               "echo shared > /dev/shm/x; sleep 1000").strip()
    assert dk(d, "inspect", "-f", "{{.HostConfig.IpcMode}}", donor).strip() == "shareable"
    out = run(d, "--ipc", f"container:{donor}", "--pid", f"container:{donor}", "busybox", "sh", "-c",
              "cat /dev/shm/x; readlink /proc/self/ns/ipc; ps -o comm").stdout
    donor_ipc = dk(d, "exec", donor, "readlink", "/proc/self/ns/ipc").strip()
    assert out.startswith("shared\n") and donor_ipc in out and "sleep" in out, out

    plain = dk(d, "run", "-d", "busybox", "sleep", "1000").strip()
    assert dk(d, "inspect", "-f", "{{.HostConfig.IpcMode}} {{.HostConfig.PidMode}}", plain).strip() == "private"
    r = run(d, "--ipc", f"container:{plain}", "busybox", "true", check=False)
    assert r.returncode == 125 and "non-shareable IPC" in r.stderr, r.stderr
    dk(d, "stop", "-t", "0", plain)
    r = run(d, "--pid", f"container:{plain}", "busybox", "true", check=False)
    assert r.returncode != 0 and "cannot join PID of a non running container" in r.stderr, r.stderr

    for hc, want in (({"PidMode": "bogus"}, "invalid PID mode: bogus"),
                     ({"IpcMode": "bogus"}, "invalid IPC mode: bogus"),
                     ({"UTSMode": "bogus"}, "invalid UTS mode: bogus")):
        status, msg = create_status(d, hc)
        assert (status, msg) == (400, want)
    status, msg = create_status(d, {"PidMode": "container:no-such-container"})
    assert status == 404 and "No such container" in msg, msg


def test_init_security_devices_oom(d):
    ps = run(d, "--init", "busybox", "ps", "-o", "pid,args").stdout
    assert "1 /sbin/docker-init -- ps" in ps, ps
    assert "NoNewPrivs:\t1" in run(d, "--security-opt", "no-new-privileges", "busybox",
                                   "grep", "NoNewPrivs", "/proc/self/status").stdout
    assert "Seccomp:\t2" in run(d, "busybox", "grep", "Seccomp:", "/proc/self/status").stdout
    assert "Seccomp:\t0" in run(d, "--security-opt", "seccomp=unconfined", "busybox",
                                "grep", "Seccomp:", "/proc/self/status").stdout
    assert "Seccomp:\t0" in run(d, "--privileged", "busybox", "grep", "Seccomp:", "/proc/self/status").stdout
    out = run(d, "--device", "/dev/null:/dev/mynull", "busybox", "sh", "-c",
              "ls -l /dev/mynull; echo x > /dev/mynull && echo wrote").stdout
    assert out.startswith("c") and "1,   3" in out and "wrote" in out, out
    assert run(d, "--oom-score-adj", "500", "busybox", "cat", "/proc/self/oom_score_adj").stdout == "500\n"
    # systempaths=unconfined (the CLI sends empty MaskedPaths/ReadonlyPaths): /proc/kcore unmasked
    masked = run(d, "busybox", "sh", "-c", "wc -c < /proc/kcore 2>/dev/null || echo 0").stdout.strip()
    assert masked == "0"
    out = run(d, "--security-opt", "systempaths=unconfined", "busybox", "sh", "-c",
              "grep ' /proc/kcore ' /proc/self/mountinfo || echo unmasked").stdout
    assert out.strip() == "unmasked", out

    for hc, want in (({"SecurityOpt": ["bogus"]}, 'invalid --security-opt 1: "bogus"'),
                     ({"SecurityOpt": ["foo=bar"]}, 'invalid --security-opt 2: "foo=bar"'),
                     ({"OomScoreAdj": 2000}, "Invalid value 2000, range for oom score adj is [-1000, 1000]")):
        status, msg = create_status(d, hc)
        assert (status, msg) == (400, want)
    status, msg = create_status(d, {"Devices": [{"PathOnHost": "/dev/no-such-device",
                                                 "PathInContainer": "/dev/x", "CgroupPermissions": "rwm"}]})
    assert status == 400 and "error gathering device information" in msg, msg


def test_berth_cli_flags(d):
    from conftest import berth

    env = {"DOCKER_HOST": d.unix_host}
    r = berth("run", "--rm", "--init", "--ulimit", "nofile=100:200", "--cpus", "0.5", "--security-opt",
              "no-new-privileges", "--cap-drop", "NET_RAW", "--log-opt", "max-size=1m", "busybox", "sh", "-c",
              "ps -o args | head -2 | tail -1; ulimit -n; grep NoNewPrivs /proc/self/status", env=env)
    assert r.stdout.splitlines() == ["/sbin/docker-init -- sh -c ps -o args | head -2 | tail -1; ulimit -n; "
                                     "grep NoNewPrivs /proc/self/status", "100", "NoNewPrivs:\t1"], r.stdout
    cid = berth("create", "--cpus", "1.5", "--memory-swap", "-1", "--pid", "host", "--ipc", "shareable",
                "--stop-signal", "SIGUSR1", "--stop-timeout", "3", "--log-opt", "max-file=2", "--log-opt",
                "max-size=1k", "busybox", "true", env=env).stdout.strip()
    info = d.get_json(f"/containers/{cid}/json")
    hc = info["HostConfig"]
    assert (hc["NanoCpus"], hc["MemorySwap"], hc["PidMode"], hc["IpcMode"]) == (1_500_000_000, -1, "host", "shareable")
    assert hc["LogConfig"] == {"Type": "json-file", "Config": {"max-file": "2", "max-size": "1k"}}
    assert (info["Config"]["StopSignal"], info["Config"]["StopTimeout"]) == ("SIGUSR1", 3)
    r = berth("run", "--rm", "--ulimit", "nofile=300:200", "busybox", "true", env=env, check=False)
    assert r.returncode == 125 and "soft limit must be less than or equal to hard limit" in r.stderr, r.stderr
