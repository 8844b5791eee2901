"""--security-opt beyond no-new-privileges: custom seccomp profiles in Docker's JSON format
(the docker CLI and `berth run` read the file and send its text), the default profile
without io_uring, and AppArmor / SELinux options refused where this host cannot apply
them instead of being silently ignored."""

from __future__ import annotations

import json
import platform
import struct
import subprocess
from pathlib import Path

import pytest

from conftest import DOCKER_BIN, berth

DENY_MKDIR = {
    "defaultAction": "SCMP_ACT_ALLOW",
    "syscalls": [{"names": ["mkdir", "mkdirat"], "action": "SCMP_ACT_ERRNO", "errnoRet": 1}],
}


@pytest.fixture
def d(busybox_daemon):
    return busybox_daemon()


def dk(d, *args, check=True):
    r = subprocess.run([DOCKER_BIN, *args], env=d.docker_env, capture_output=True, text=True, timeout=60)
    if check:
        assert r.returncode == 0, (args, r.stdout, r.stderr)
    return r


def ids(d) -> list[str]:
    return dk(d, "ps", "-aq").stdout.split()


def create_status(d, security_opt: list[str]) -> tuple[int, str]:
    before = len(ids(d))
    r = d.request("POST", "/containers/create", headers={"Content-Type": "application/json"},
                  body=json.dumps({"Image": "busybox", "Cmd": ["true"],
                                   "HostConfig": {"SecurityOpt": security_opt}}).encode())
    if r.status >= 400:
        assert len(ids(d)) == before, "a refused create left a container"
        return r.status, r.json().get("message", "")
    return r.status, ""


def test_custom_profile_denies_mkdir(d, workdir: Path):
    profile = workdir / "deny-mkdir.json"
    profile.write_text(json.dumps(DENY_MKDIR, indent=2))
    r = dk(d, "run", "--rm", "--security-opt", f"seccomp={profile}", "busybox", "mkdir", "/x", check=False)
    assert r.returncode == 1 and "Operation not permitted" in r.stderr, (r.returncode, r.stderr)
    r = dk(d, "run", "--rm", "busybox", "sh", "-c", "mkdir /x && echo made")
    assert r.stdout == "made\n", r.stdout
    # The profile is the container's only filter: what the default profile denies passes.
    r = dk(d, "run", "--rm", "--security-opt", f"seccomp={profile}", "busybox", "sh", "-c",
           "grep Seccomp: /proc/self/status; unshare -U true && echo unshared")
    assert r.stdout == "Seccomp:\t2\nunshared\n", r.stdout
    # Privileged containers get a custom profile too (not the default one), as with dockerd.
    r = dk(d, "run", "--rm", "--privileged", "--security-opt", f"seccomp={profile}", "busybox",
           "mkdir", "/x", check=False)
    assert r.returncode == 1 and "Operation not permitted" in r.stderr, r.stderr
    # The CLI sent the profile's text: inspect shows it as dockerd does.
    cid = dk(d, "create", "--security-opt", f"seccomp={profile}", "busybox", "true").stdout.strip()
    [opt] = json.loads(dk(d, "inspect", cid).stdout)[0]["HostConfig"]["SecurityOpt"]
    assert opt.startswith("seccomp=") and json.loads(opt.removeprefix("seccomp=")) == DENY_MKDIR, opt
    dk(d, "rm", cid)


def test_berth_run_reads_the_profile_file(d, workdir: Path):
    profile = workdir / "deny-mkdir.json"
    profile.write_text(json.dumps(DENY_MKDIR))
    env = {"DOCKER_HOST": d.unix_host}
    r = berth("run", "--rm", "--security-opt", f"seccomp={profile}", "busybox", "mkdir", "/x", env=env, check=False)
    assert r.returncode == 1 and "Operation not permitted" in r.stderr, (r.returncode, r.stderr)
    r = berth("run", "--rm", "--security-opt", f"seccomp={workdir / 'missing.json'}", "busybox", "true",
              env=env, check=False)
    assert r.returncode != 0 and "opening seccomp profile" in r.stderr, r.stderr


def test_bad_profiles_refused_at_create(d, workdir: Path):
    for opt, want in (
        ("seccomp={nope", "Decoding seccomp profile failed: "),
        ('seccomp={"defaultAction": "SCMP_ACT_SOMETIMES"}',
         "Decoding seccomp profile failed: unknown variant `SCMP_ACT_SOMETIMES`"),
        ('seccomp={"defaultAction": "SCMP_ACT_ALLOW", "listenerPath": "/run/x.sock"}',
         "seccomp user notification (SCMP_ACT_NOTIFY, listenerPath) is not supported by berthd"),
    ):
        status, msg = create_status(d, [opt])
        assert status == 400 and msg.startswith(want), (opt, status, msg)
    # Through the docker CLI: valid JSON, but not a profile.
    bad = workdir / "bad.json"
    bad.write_text('{"defaultAction": "SCMP_ACT_ALLOW", "syscalls": [{"names": ["mkdir"]}]}')
    r = dk(d, "run", "--rm", "--security-opt", f"seccomp={bad}", "busybox", "true", check=False)
    assert r.returncode == 125 and "Decoding seccomp profile failed: missing field `action`" in r.stderr, r.stderr


def io_uring_probe_elf() -> bytes:
    """A static x86_64 ELF that calls io_uring_setup(1, &zeroed params) and exits with the
    negated result: 1 for EPERM, 253 for a new fd 3 (busybox has no way to make the call)."""
    code = bytes.fromhex(
        "4881ec80000000"  # sub rsp, 128: io_uring_params (120 bytes), zero on a fresh stack
        "bf01000000"      # mov edi, 1 (entries)
        "4889e6"          # mov rsi, rsp
        "b8a9010000"      # mov eax, 425 (io_uring_setup)
        "0f05"            # syscall
        "f7d8"            # neg eax: errno, or -fd
        "89c7"            # mov edi, eax
        "b83c000000"      # mov eax, 60 (exit)
        "0f05"            # syscall
    )
    base, headers = 0x400000, 64 + 56
    ehdr = struct.pack("<4sBBBBB7xHHIQQQIHHHHHH", b"\x7fELF", 2, 1, 1, 0, 0, 2, 62, 1, base + headers, 64, 0,
                       0, 64, 56, 1, 0, 0, 0)
    size = headers + len(code)
    phdr = struct.pack("<IIQQQQQQ", 1, 5, 0, base, base, size, size, 0x1000)
    return ehdr + phdr + code


def test_io_uring_denied_by_the_default_profile(d, workdir: Path):
    assert platform.machine() == "x86_64", "the probe is x86_64 machine code"
    probe = workdir / "io-uring-probe"
    probe.write_bytes(io_uring_probe_elf())
    probe.chmod(0o755)
    # The probe works here: unconfined, io_uring_setup gives fd 3 (unless the host turned
    # io_uring off, which would make this test meaningless).
    assert subprocess.run([str(probe)], pass_fds=()).returncode == 253
    run = ["run", "--rm", "-v", f"{probe}:/probe:ro"]
    assert dk(d, *run, "busybox", "/probe", check=False).returncode == 1  # EPERM
    assert dk(d, *run, "--cap-add", "ALL", "busybox", "/probe", check=False).returncode == 1
    assert dk(d, *run, "--security-opt", "seccomp=unconfined", "busybox", "/probe", check=False).returncode == 253


def test_default_profile_has_no_io_uring(d):
    cid = dk(d, "run", "-d", "busybox", "sleep", "600").stdout.strip()
    try:
        # `run -d` returns once the container started from this bundle (its dir is named by
        # a prefix of the id).
        [config] = [p / "bundle" / "config.json" for p in (Path(d.exec_root) / "containers").iterdir()
                    if cid.startswith(p.name)]
        seccomp = json.loads(config.read_text())["linux"]["seccomp"]
        assert seccomp["defaultAction"] == "SCMP_ACT_ERRNO"
        named = {n for rule in seccomp["syscalls"] for n in rule["names"]}
        assert "read" in named and "mkdir" in named
        assert not {n for n in named if n.startswith("io_uring")}, sorted(named)
    finally:
        dk(d, "rm", "-f", cid)


def apparmor_enabled() -> bool:
    p = Path("/sys/module/apparmor/parameters/enabled")
    return Path("/sys/kernel/security/apparmor").exists() and p.exists() and p.read_text().startswith("Y")


def test_apparmor_and_labels_never_silently_ignored(d):
    # Accepted everywhere: they ask for nothing this host lacks.
    for opts in (["apparmor=unconfined"], ["label=disable"], ["label:disable"], ["disable"]):
        status, msg = create_status(d, opts)
        assert status == 201, (opts, status, msg)
    selinux = Path("/sys/fs/selinux/enforce").exists()
    status, msg = create_status(d, ["label=type:svirt_apache_t"])
    assert status == 400, (status, msg)
    if selinux:
        assert msg.startswith("SELinux labels are not supported by berthd"), msg
    else:
        assert msg == ('SELinux is not enabled on this host: cannot apply label "type:svirt_apache_t" '
                       "(only label=disable is accepted)"), msg
    r = dk(d, "run", "--rm", "--security-opt", "apparmor=docker-default", "busybox", "true", check=False)
    if apparmor_enabled():
        # Applied: the profile is loaded on such a host only if dockerd loaded it.
        assert r.returncode == 0 or "docker-default" in r.stderr, r.stderr
    else:
        assert r.returncode == 125 and (
            'AppArmor is not enabled on this host: cannot apply the AppArmor profile "docker-default" '
            "(only apparmor=unconfined is accepted)") in r.stderr, r.stderr
    for cid in ids(d):
        dk(d, "rm", cid)
