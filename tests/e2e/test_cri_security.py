"""CRI security contexts and mounts through crictl (issue 19): ExecSync's timeout (the
process killed before the answer), masked and read-only paths from the request, seccomp
RuntimeDefault / Localhost / Unconfined at the pod and container level (and the
deprecated seccomp_profile_path), AppArmor as containerd answers it on a host without
AppArmor, no Docker /.dockerenv in CRI containers, bind mounts with rshared / rslave
propagation, devices, the stop signal and hugepage limits."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import pytest

from conftest import leak_check, poll
from test_cri import cri_daemon, cri_registry, crictl_bin, pulled_busybox, write_json  # noqa: F401 (fixtures)


class Pod:
    """A pod sandbox on a CRI-enabled berthd, with the busybox test image pulled."""

    def __init__(self, d, crictl, ref: str, workdir: Path, name: str, linux: dict | None = None):
        self.d, self.crictl, self.ref, self.workdir = d, crictl, ref, workdir / name
        self.workdir.mkdir()
        self.config = write_json(self.workdir / "pod.json", {
            "metadata": {"name": name, "namespace": "n", "uid": f"u-{name}"}, "linux": linux or {}})
        self.id = crictl("runp", str(self.config)).stdout.strip()
        self.n = 0

    def create(self, linux: dict | None = None, command: list[str] | None = None, **extra) -> subprocess.CompletedProcess[str]:
        self.n += 1
        config = write_json(self.workdir / f"c{self.n}.json", {
            "metadata": {"name": f"c{self.n}"}, "image": {"image": self.ref},
            "command": command or ["busybox", "sleep", "600"], "linux": linux or {}, **extra})
        return self.crictl("create", self.id, str(config), str(self.config), check=False)

    def run(self, linux: dict | None = None, **extra) -> str:
        created = self.create(linux, **extra)
        assert created.returncode == 0, created.stderr
        cid = created.stdout.strip()
        self.crictl("start", cid)
        return cid

    def exec(self, cid: str, *cmd: str, timeout: int | None = None) -> subprocess.CompletedProcess[str]:
        t = ["--timeout", str(timeout)] if timeout else []
        return self.crictl("exec", "-s", *t, cid, *cmd, check=False)


@pytest.fixture
def cri_pod(berthd, docker, docker_env, workdir, crictl_bin, cri_registry):
    """Factory: a pod (its `linux` config given) on one CRI daemon, leak-checked after."""
    d, crictl = cri_daemon(berthd, workdir, crictl_bin)
    d.docker_env = docker_env({"DOCKER_HOST": d.unix_host})
    try:
        ref = pulled_busybox(docker, d, workdir, crictl, cri_registry)
        pods: list[Pod] = []

        def make(linux: dict | None = None) -> Pod:
            pods.append(Pod(d, crictl, ref, workdir, f"pod{len(pods)}", linux))
            return pods[-1]

        yield make
        for p in pods:
            crictl("stopp", p.id, check=False)
            crictl("rmp", p.id, check=False)
    finally:
        leak_check(d)


def inspect(pod: Pod, cid: str) -> dict:
    return pod.crictl.json("inspect", cid)["info"]


def test_exec_sync_timeout_kills_before_answering(cri_pod):
    """A timed-out ExecSync answers DeadlineExceeded, and its process is gone by then
    (critest looks for it right after the answer)."""
    pod = cri_pod()
    cid = pod.run()
    r = pod.exec(cid, "busybox", "sleep", "4321", timeout=1)
    assert r.returncode != 0 and "DeadlineExceeded" in r.stderr and "timed out" in r.stderr, r.stderr
    left = pod.exec(cid, "busybox", "ps", "-o", "args")
    assert left.returncode == 0 and "sleep 4321" not in left.stdout, left.stdout


def mount_points(pod: Pod, cid: str) -> list[str]:
    info = pod.exec(cid, "cat", "/proc/self/mountinfo")
    assert info.returncode == 0, info.stderr
    return [l.split(" ")[4] for l in info.stdout.splitlines() if l.strip()]


def test_masked_and_readonly_paths(cri_pod):
    """The request's masked and read-only paths replace the runtime's defaults; none
    asked (the protocol cannot tell an empty list from none) keeps the defaults."""
    pod = cri_pod()
    cid = pod.run({"security_context": {"masked_paths": ["/bin/ls"], "readonly_paths": ["/etc"]}})
    ls = pod.exec(cid, "/bin/ls", "/")
    assert ls.returncode != 0 and "permission denied" in ls.stderr.lower(), ls
    touch = pod.exec(cid, "sh", "-c", "echo x > /etc/new")
    assert touch.returncode != 0 and "Read-only file system" in touch.stderr, touch
    points = mount_points(pod, cid)
    assert "/bin/ls" in points and "/proc/keys" not in points, points
    default = pod.run()
    points = mount_points(pod, default)
    assert "/proc/keys" in points and "/bin/ls" not in points, points
    assert pod.exec(default, "sh", "-c", "echo x > /etc/new").returncode == 0



RUNTIME_DEFAULT, UNCONFINED, LOCALHOST = 0, 1, 2


def seccomp_mode(pod: Pod, cid: str) -> str:
    """The `Seccomp:` of the container's main process (0 none, 2 a filter)."""
    pid = pod.crictl.json("inspect", cid)["info"]["State"]["Pid"]
    lines = Path(f"/proc/{pid}/status").read_text().splitlines()
    return next(l.split()[1] for l in lines if l.startswith("Seccomp:"))


def exit_code(pod: Pod, cid: str) -> int:
    status = poll(lambda: (s := pod.crictl.json("inspect", cid)["status"])["state"] == "CONTAINER_EXITED" and s,
                  30, "the container to exit")
    return status["exitCode"]


def test_seccomp_profiles(cri_pod, workdir):
    """RuntimeDefault is the engine's profile, Unconfined and no profile none, Localhost
    the node's file; the container's profile wins over its pod's; privileged: none."""
    blocks_chmod = write_json(workdir / "block-chmod.json", {
        "defaultAction": "SCMP_ACT_ALLOW", "syscalls": [{"names": ["chmod", "fchmodat"], "action": "SCMP_ACT_ERRNO"}]})
    local = {"profile_type": LOCALHOST, "localhost_ref": str(blocks_chmod)}

    def sec(profile: dict | None, **more) -> dict:
        return {"security_context": {**({"seccomp": profile} if profile else {}), **more}}

    pod = cri_pod(sec({"profile_type": RUNTIME_DEFAULT}))
    assert seccomp_mode(pod, pod.run()) == "2", "the pod's RuntimeDefault"
    assert seccomp_mode(pod, pod.run(sec({"profile_type": UNCONFINED}))) == "0", "the container's Unconfined"
    assert seccomp_mode(pod, pod.run(sec(local, privileged=True))) == "0", "privileged: no filter"
    chmod = ["sh", "-c", "busybox chmod 700 /bin; exit $?"]
    assert exit_code(pod, pod.run(sec(local), command=chmod)) == 1, "chmod blocked by the localhost profile"
    assert exit_code(pod, pod.run(sec({"profile_type": UNCONFINED}), command=chmod)) == 0

    # Exec'd processes (ExecSync) run under the container's filter too, as with runc.
    default, blocked = pod.run(), pod.run(sec(local, capabilities={"add_capabilities": ["SYS_ADMIN"]}))
    status = pod.exec(default, "busybox", "grep", "Seccomp:", "/proc/self/status")
    assert status.returncode == 0 and status.stdout.split()[1] == "2", status
    denied = pod.exec(blocked, "busybox", "chmod", "700", "/bin")
    assert denied.returncode != 0 and "Operation not permitted" in denied.stderr, denied
    assert pod.exec(blocked, "busybox", "hostname", "renamed").returncode == 0, "SYS_ADMIN, not blocked"
    unconfined = pod.run(sec({"profile_type": UNCONFINED}))
    status = pod.exec(unconfined, "busybox", "grep", "Seccomp:", "/proc/self/status")
    assert status.returncode == 0 and status.stdout.split()[1] == "0", status

    bare = cri_pod()
    assert seccomp_mode(bare, bare.run()) == "0", "no profile anywhere: unconfined (containerd's reading)"
    # The deprecated seccomp_profile_path, read when no profile is given, as containerd does.
    legacy = {"runtime/default": "2", "docker/default": "2", "unconfined": "0"}
    for path, mode in legacy.items():
        assert seccomp_mode(bare, bare.run(sec(None, seccomp_profile_path=path))) == mode, path
    local_path = sec(None, seccomp_profile_path=f"localhost/{blocks_chmod}")
    assert exit_code(bare, bare.run(local_path, command=chmod)) == 1, "chmod blocked by localhost/<path>"
    assert seccomp_mode(bare, bare.run(sec({"profile_type": UNCONFINED}, seccomp_profile_path="runtime/default"))) == "0", \
        "the profile wins over the string"
    legacy_pod = cri_pod({"security_context": {"seccomp_profile_path": "runtime/default"}})
    assert seccomp_mode(legacy_pod, legacy_pod.run()) == "2", "the pod's seccomp_profile_path"
    r = bare.create(sec(None, seccomp_profile_path="/abs/profile.json"))
    assert r.returncode != 0 and "InvalidArgument" in r.stderr and "invalid seccomp profile" in r.stderr, r.stderr
    for bad, why in [({"profile_type": LOCALHOST, "localhost_ref": "rel.json"}, "must be an absolute path"),
                     ({"profile_type": LOCALHOST, "localhost_ref": str(workdir / "none.json")}, "cannot load seccomp profile")]:
        r = bare.create(sec(bad))
        assert r.returncode != 0 and "InvalidArgument" in r.stderr and why in r.stderr, r.stderr


def apparmor_enabled() -> bool:
    try:
        return Path("/sys/module/apparmor/parameters/enabled").read_text().startswith("Y")
    except OSError:
        return False


def test_apparmor_on_a_host_without_it(cri_pod):
    """Where the kernel has no AppArmor (these hosts'; tests/vm/apparmor.sh checks a
    kernel with it), containerd's answers: nothing or unconfined runs, any profile asked
    for (RuntimeDefault or Localhost, as a profile or as the deprecated string) is refused
    rather than silently not applied."""
    if apparmor_enabled():
        pytest.fail("this host's kernel has AppArmor: the VM step (tests/vm/apparmor.sh) covers that case")
    pod = cri_pod()
    for linux in ({}, {"security_context": {"apparmor": {"profile_type": UNCONFINED}}},
                  {"security_context": {"apparmor_profile": "unconfined"}}):
        cid = pod.run(linux)
        assert pod.exec(cid, "true").returncode == 0, linux
    for sc in ({"apparmor": {"profile_type": RUNTIME_DEFAULT}},
               {"apparmor": {"profile_type": LOCALHOST, "localhost_ref": "localhost/my-profile"}},
               {"apparmor_profile": "runtime/default"},
               {"apparmor_profile": "localhost/my-profile"}):
        r = pod.create({"security_context": sc})
        assert r.returncode != 0 and "apparmor is not supported" in r.stderr, (sc, r.stderr)
    r = pod.create({"security_context": {"apparmor_profile": "my-profile"}})
    assert r.returncode != 0 and "invalid apparmor profile" in r.stderr, r.stderr
    # The pod's profile is the container's when the container names none.
    strict = cri_pod({"security_context": {"apparmor": {"profile_type": RUNTIME_DEFAULT}}})
    r = strict.create()
    assert r.returncode != 0 and "apparmor is not supported" in r.stderr, r.stderr


def test_no_dockerenv_in_cri_containers(cri_pod, docker):
    """A pod's containers and its sandbox have no /.dockerenv, as containerd's; a
    container of the Docker API on the same daemon and image keeps it."""
    pod = cri_pod()
    cid = pod.run()
    seen = pod.exec(cid, "ls", "-a", "/")
    assert seen.returncode == 0 and "proc" in seen.stdout.split(), seen
    assert ".dockerenv" not in seen.stdout.split(), seen.stdout
    assert pod.exec(cid, "sh", "-c", "test -e /proc").returncode == 0
    assert pod.exec(cid, "sh", "-c", "test -e /.dockerenv").returncode != 0
    pause_pid = pod.crictl.json("inspectp", pod.id)["info"]["State"]["Pid"]
    assert Path(f"/proc/{pause_pid}/root/pause").exists()
    assert not Path(f"/proc/{pause_pid}/root/.dockerenv").exists(), "the sandbox's root"
    r = docker("-H", pod.d.unix_host, "run", "--rm", "--network", "none", pod.ref, "sh", "-c", "test -e /.dockerenv",
               check=False)
    assert r.returncode == 0, r


HOST_TO_CONTAINER, BIDIRECTIONAL = 1, 2


def test_mount_propagation(cri_pod, workdir):
    """A bidirectional mount (rshared) shows the container's mounts on the host and the
    host's in the container; host-to-container (rslave) only the host's; either on a
    private host mount is refused."""
    made: list[Path] = []

    def mount(*args: str, target: Path) -> None:
        subprocess.run(["mount", *args], check=True, capture_output=True, timeout=30)
        made.append(target)

    try:
        sources = {}
        for name, kind in (("shared", "--make-rshared"), ("slave", "--make-rshared"), ("private", "--make-rprivate")):
            src = workdir / name
            (src / "inner").mkdir(parents=True)
            mount("--bind", str(src), str(src), target=src)
            mount(kind, str(src), target=src)
            sources[name] = src
        pod = cri_pod()
        # Nothing could propagate from a private mount: refused, in containerd's words.
        for propagation, what in ((BIDIRECTIONAL, "a shared mount"), (HOST_TO_CONTAINER, "a shared or slave mount")):
            src = str(sources["private"])
            r = pod.create(mounts=[{"host_path": src, "container_path": "/p", "propagation": propagation}])
            said = r.stderr.replace('\\"', '"')
            assert r.returncode != 0 and f'is mounted on "{src}" but it is not {what}' in said, r.stderr

        def run(name: str, propagation: int) -> str:
            src = str(sources[name])
            return pod.run({"security_context": {"privileged": True}},
                           mounts=[{"host_path": src, "container_path": src, "propagation": propagation}])

        shared, slave = run("shared", BIDIRECTIONAL), run("slave", HOST_TO_CONTAINER)
        for name, cid in (("shared", shared), ("slave", slave)):
            inner = sources[name] / "inner"
            # The container mounts its /etc over inner: only the rshared one reaches the host.
            m = pod.exec(cid, "busybox", "mount", "--bind", "/etc", str(inner))
            assert m.returncode == 0, m.stderr
            assert ("passwd" in os.listdir(inner) or "hosts" in os.listdir(inner)) == (name == "shared"), (name, os.listdir(inner))
            if name == "shared":
                made.append(inner)
            # The host mounts a tmpfs with a file under the source: both containers see it.
            host_side = sources[name] / "from-host"
            host_side.mkdir()
            mount("-t", "tmpfs", "tmpfs", str(host_side), target=host_side)
            (host_side / "flag").write_text("x")
            seen = pod.exec(cid, "busybox", "ls", str(host_side))
            assert seen.returncode == 0 and "flag" in seen.stdout, (name, seen)
    finally:
        for target in reversed(made):
            subprocess.run(["umount", "-l", str(target)], capture_output=True, timeout=30)


def test_devices(cri_pod):
    """A device of the request is in the container at its path and the device cgroup lets
    it be written; a host path that is not there is refused at create."""
    pod = cri_pod()
    cid = pod.run(devices=[{"host_path": "/dev/null", "container_path": "/dev/xnull", "permissions": "rwm"}])
    r = pod.exec(cid, "sh", "-c", "test -c /dev/xnull && echo x > /dev/xnull && busybox stat -c %t:%T /dev/xnull")
    assert r.returncode == 0 and r.stdout.strip() == "1:3", r
    pid = inspect(pod, cid)["State"]["Pid"]
    cgroup = next(l.split(":", 2)[2] for l in Path(f"/proc/{pid}/cgroup").read_text().splitlines()
                  if l.split(":")[1] in ("devices", ""))
    allowed = Path("/sys/fs/cgroup/devices") / cgroup.lstrip("/") / "devices.list"
    if allowed.exists():
        assert "c 1:3 rwm" in allowed.read_text().splitlines(), allowed.read_text()
    r = pod.create(devices=[{"host_path": "/dev/berth-nope", "container_path": "/dev/x", "permissions": "rwm"}])
    assert r.returncode != 0 and "/dev/berth-nope" in r.stderr and "no such file or directory" in r.stderr, r.stderr


USR1 = 29  # runtime.v1.Signal.SIGUSR1


def test_stop_signal(cri_pod):
    """StopContainer sends the container's stop signal (the request's, before the grace
    period's SIGKILL): a shell trapping SIGUSR1 exits 42 on it; ContainerStatus says it."""
    pod = cri_pod()
    trap = "trap 'exit 42' USR1; touch /ready; while :; do busybox sleep 1; done"
    cid = pod.run(command=["sh", "-c", trap], stop_signal=USR1)
    poll(lambda: pod.exec(cid, "sh", "-c", "test -e /ready").returncode == 0, 30, "the trap to be set")
    pod.crictl("stop", "--timeout", "30", cid)
    assert exit_code(pod, cid) == 42, "SIGUSR1 trapped (143: SIGTERM)"
    assert pod.crictl.json("inspect", cid)["status"]["stopSignal"] == "SIGNAL_SIGUSR1"
    default = pod.run()
    assert pod.crictl.json("inspect", default)["status"]["stopSignal"] == "SIGNAL_SIGTERM"
    r = pod.create(stop_signal=999)
    assert r.returncode != 0 and "unknown CRI stop signal 999" in r.stderr, r.stderr


def hugetlb_present() -> bool:
    try:
        if "hugetlb" in Path("/sys/fs/cgroup/cgroup.controllers").read_text().split():
            return True
    except OSError:
        pass
    return Path("/sys/fs/cgroup/hugetlb").is_dir()


def hugetlb_limit_file(pod, cid, size: str) -> Path:
    """Container `cid`'s hugetlb limit file for page `size`: v2 `hugetlb.<size>.max` in
    its cgroup, v1 `hugetlb.<size>.limit_in_bytes` in its hugetlb hierarchy's."""
    pid = inspect(pod, cid)["State"]["Pid"]
    for line in Path(f"/proc/{pid}/cgroup").read_text().splitlines():
        _, controllers, path = line.split(":", 2)
        if "hugetlb" in controllers.split(","):
            return Path("/sys/fs/cgroup/hugetlb") / path.lstrip("/") / f"hugetlb.{size}.limit_in_bytes"
        if controllers == "" and Path("/sys/fs/cgroup/cgroup.controllers").exists():
            return Path("/sys/fs/cgroup") / path.lstrip("/") / f"hugetlb.{size}.max"
    raise AssertionError(f"no hugetlb cgroup for pid {pid}")


def test_hugepage_limits(cri_pod):
    """Without the hugetlb controller (these hosts' cgroup v1 leaves it unmounted) the
    limits are skipped with a warning, as containerd does by default; with it, they are
    in the container's cgroup. Zeros (the kubelet's for the page sizes a pod does not ask
    for) are no request."""
    pod = cri_pod()
    zeros = {"hugepage_limits": [{"page_size": "2MB", "limit": 0}, {"page_size": "1GB", "limit": 0}]}
    assert pod.exec(pod.run({"resources": zeros}), "true").returncode == 0
    asked = {"hugepage_limits": [{"page_size": "2MB", "limit": 4 << 20}]}
    cid = pod.run({"resources": asked})
    assert pod.exec(cid, "true").returncode == 0
    if hugetlb_present():
        limit = hugetlb_limit_file(pod, cid, "2MB")
        assert limit.read_text().strip() == str(4 << 20), limit
        r = pod.create({"resources": {"hugepage_limits": [{"page_size": "../2MB", "limit": 1}]}})
        assert r.returncode != 0 and "invalid hugepage size" in r.stderr, r.stderr
    else:
        assert "hugetlb cgroup controller is absent; skipping huge pages limits" in pod.d.log_text()
    r = pod.crictl("update", "--memory", str(64 << 20), cid, check=False)
    assert r.returncode == 0, r.stderr
