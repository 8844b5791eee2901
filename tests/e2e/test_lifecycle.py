"""Daemon lifecycle: the data-root lock, pidfiles, clean SIGTERM, the unix socket's mode and
group, daemon.json validation, a stable daemon ID, systemd socket activation."""

from __future__ import annotations

import grp
import json
import os
import secrets
import shutil
import signal
import socket
import stat
import subprocess

import pytest

from conftest import (
    BERTHD_BIN,
    START_TIMEOUT,
    STOP_TIMEOUT,
    Daemon,
    clean_env,
    expect_start_failure,
    isolated_network,
    poll,
    unix_connect,
    unix_request,
)


def read_pid(path) -> int:
    return int(path.read_text().strip())


@pytest.mark.parametrize("shared", ["everything", "data-root-only"])
def test_second_daemon_on_same_data_root_refused(berthd, shared):
    d1 = berthd(name="first")
    d2 = berthd(name="second", start=False)
    d2.data_root = d1.data_root
    if shared == "everything":
        d2.sock, d2.exec_root, d2.pidfile = d1.sock, d1.exec_root, d1.pidfile
    proc = expect_start_failure(d2.argv())
    assert proc.stderr.strip(), "no error message"
    # The first daemon is untouched: still serving, its socket and pidfile intact.
    assert d1.sock.exists()
    assert d1.request("GET", "/_ping").status == 200
    assert read_pid(d1.pidfile) == d1.pid
    assert d1.get_json("/info")["DockerRootDir"] == str(d1.data_root)


def test_pidfile_holds_daemon_pid(berthd):
    d = berthd()
    assert read_pid(d.pidfile) == d.pid


def _dead_pid() -> int:
    p = subprocess.Popen(["true"])
    p.wait()
    assert not os.path.exists(f"/proc/{p.pid}")
    return p.pid


@pytest.mark.parametrize("content", ["dead-pid", "empty"])
def test_stale_pidfile_is_ignored(berthd, content):
    d = berthd(start=False)
    d.pidfile.parent.mkdir(parents=True, exist_ok=True)
    d.pidfile.write_text(f"{_dead_pid()}\n" if content == "dead-pid" else "")
    d.start()
    assert read_pid(d.pidfile) == d.pid
    assert d.request("GET", "/_ping").status == 200


def test_restart_after_sigkill(berthd):
    """A crashed daemon leaves its socket and pidfile behind; the next start copes."""
    d = berthd()
    d.signal(signal.SIGKILL)
    d.wait_exit()
    d.start()
    assert d.request("GET", "/_ping").status == 200
    assert read_pid(d.pidfile) == d.pid


def test_sigterm_exits_zero_and_removes_socket(berthd):
    d = berthd()
    assert d.sock.exists()
    d.signal(signal.SIGTERM)
    assert d.wait_exit(STOP_TIMEOUT) == 0, d.log_tail()
    assert not d.sock.exists(), "unix socket left behind after SIGTERM"


def test_sigterm_with_idle_keepalive_connections(tls_daemon):
    """Clients keep connections open (the docker CLI does); shutdown must not wait on them."""
    from conftest import tls_connect

    d = tls_daemon
    unix = unix_connect(d.sock)
    tls = tls_connect(d.port, d.tls_ctx())
    try:
        assert unix.request("GET", "/_ping").status == 200
        assert tls.request("GET", "/_ping").status == 200
        d.signal(signal.SIGTERM)
        assert d.wait_exit(STOP_TIMEOUT) == 0, d.log_tail()
    finally:
        unix.close()
        tls.close()
    assert not d.sock.exists()


def test_sigint_exits_cleanly(berthd):
    d = berthd()
    d.signal(signal.SIGINT)
    assert d.wait_exit(STOP_TIMEOUT) == 0, d.log_tail()


def test_socket_mode_0660(berthd):
    d = berthd()
    mode = stat.S_IMODE(os.stat(d.sock).st_mode)
    assert mode == 0o660, oct(mode)
    assert stat.S_ISSOCK(os.stat(d.sock).st_mode)


@pytest.fixture
def throwaway_group():
    if os.geteuid() != 0 or not shutil.which("groupadd"):
        pytest.skip("needs root and groupadd")
    name = "berthe2e" + secrets.token_hex(4)
    # groupadd takes a lock on /etc/group; retry briefly if another process holds it.
    poll(
        lambda: subprocess.run(["groupadd", name], capture_output=True).returncode == 0,
        10,
        f"groupadd {name}",
    )
    try:
        yield name
    finally:
        subprocess.run(["groupdel", name], capture_output=True)


def test_socket_group(berthd, throwaway_group):
    d = berthd(extra_args=["--group", throwaway_group])
    st = os.stat(d.sock)
    assert st.st_gid == grp.getgrnam(throwaway_group).gr_gid
    assert stat.S_IMODE(st.st_mode) == 0o660, oct(st.st_mode)


def test_config_file_unknown_key_refused(berthd):
    d = berthd(start=False, config={"no-such-option-xyz": True})
    proc = expect_start_failure(d.argv())
    assert "no-such-option-xyz" in proc.stderr + proc.stdout, proc.stderr


def test_config_file_invalid_json_refused(berthd):
    d = berthd(start=False, config={})
    argv = d.argv()  # writes daemon.json
    d.config_path.write_text("{not json")
    proc = expect_start_failure(argv)
    assert proc.stderr.strip()


def test_config_file_data_root(berthd, workdir):
    root = workdir / "from-json"
    d = berthd(config={"data-root": str(root)}, data_root_flag=False, data_root=root)
    assert d.get_json("/info")["DockerRootDir"] == str(root)


def test_daemon_id_stable_across_restart(berthd):
    d = berthd()
    first = d.get_json("/info")["ID"]
    assert first
    d.restart()
    assert d.get_json("/info")["ID"] == first
    other = berthd(name="other")
    assert other.get_json("/info")["ID"] != first


def test_systemd_socket_activation(workdir):
    """-H fd:// serves the listening socket systemd passes as fd 3 (LISTEN_FDS=1)."""
    path = workdir / "activated.sock"
    listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    listener.bind(str(path))
    listener.listen(16)
    fd = listener.fileno()
    net_flags, net_cleanup = isolated_network()
    argv = [
        str(BERTHD_BIN), "-H", "fd://",
        f"--data-root={workdir / 'data'}", f"--exec-root={workdir / 'exec'}", f"--pidfile={workdir / 'p.pid'}",
        *net_flags,
    ]  # fmt: skip
    log = open(workdir / "berthd.log", "wb")
    # The socket must be fd 3 and LISTEN_PID berthd's own pid: bash moves the fd, sets
    # LISTEN_PID to its $$ and execs berthd in place.
    move = "" if fd == 3 else f"exec 3<&{fd} {fd}<&-; "
    proc = subprocess.Popen(
        ["bash", "-c", move + 'LISTEN_PID=$$ LISTEN_FDS=1 exec "$0" "$@"', *argv],
        pass_fds=(fd,),
        env=clean_env(),
        stdin=subprocess.DEVNULL,
        stdout=log,
        stderr=log,
    )
    listener.close()
    try:

        def ready() -> bool:
            if proc.poll() is not None:
                raise AssertionError(f"berthd exited {proc.returncode}: {(workdir / 'berthd.log').read_text()}")
            return unix_request(path, "GET", "/_ping").status == 200

        poll(ready, START_TIMEOUT, "berthd on the activated socket", fatal=(AssertionError,))
        assert json.loads(unix_request(path, "GET", "/version").body)["ApiVersion"]
    finally:
        if proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
            try:
                proc.wait(STOP_TIMEOUT)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
        log.close()
        assert net_cleanup(workdir / "data") == []
    assert proc.returncode == 0, (workdir / "berthd.log").read_text()


def test_exec_and_data_root_created(berthd):
    d: Daemon = berthd()
    assert d.data_root.is_dir()
    assert d.exec_root.is_dir()
