"""Files read from images and containers are hostile (issue 13): an `/etc/passwd` that is
a FIFO or a link to a device makes `run -u` and `exec -u` fail with an error, never hang a
daemon worker or read without bound, and the daemon keeps answering."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path
from typing import Callable

from conftest import DOCKER_BIN, REPO_ROOT
from test_containers import daemon, dk  # noqa: F401 - the fixture and the CLI helper


def import_with_passwd(d, tag: str, make: Callable[[Path], None], tmp: Path) -> None:
    """The busybox test image with `etc/passwd` replaced by what `make(path)` creates (in a
    ustar archive: GNU and PAX archives leave a FIFO's device fields empty, which berth's
    importer refuses)."""
    root = tmp / tag.replace(":", "-")
    root.mkdir()
    rootfs = subprocess.run([str(REPO_ROOT / "scripts" / "busybox-rootfs")], check=True,
                            capture_output=True).stdout
    subprocess.run(["tar", "-C", str(root), "-xf", "-"], input=rootfs, check=True)
    (root / "etc" / "passwd").unlink()
    make(root / "etc" / "passwd")
    tar = subprocess.run(["tar", "--format=ustar", "--numeric-owner", "-C", str(root), "-cf", "-", "."], check=True,
                         capture_output=True).stdout
    r = subprocess.run([DOCKER_BIN, "import", "-c", 'CMD ["sh"]', "-", tag], input=tar,
                       env=d.docker_env, capture_output=True, timeout=60)
    assert r.returncode == 0, r.stderr


def release_fifo_readers(d) -> None:
    """Opens (and closes) for writing every `etc/passwd` FIFO of `d`'s mounted rootfs, so
    a reader blocked on one (a daemon without the fix) gets EOF and the teardown can run."""
    for rootfs in (d.exec_root / "containers").glob("*/rootfs"):
        try:
            fd = os.open(rootfs / "etc" / "passwd", os.O_WRONLY | os.O_NONBLOCK)
        except OSError:
            continue  # not a FIFO with a reader (ENXIO), or gone
        os.close(fd)


def answers(d) -> None:
    assert dk(d, "ps", "-a", timeout=30).returncode == 0


def test_run_user_with_a_fifo_passwd_fails_without_hanging(daemon, tmp_path):
    import_with_passwd(daemon, "fifo:img", os.mkfifo, tmp_path)
    try:
        for args in (["-u", "nobody"], ["-u", "1000"], []):
            r = dk(daemon, "run", "--rm", *args, "fifo:img", "true", check=False, timeout=30)
            assert r.returncode != 0
            assert "cannot read /etc/passwd: not a regular file" in r.stderr, r.stderr
            answers(daemon)
    finally:
        release_fifo_readers(daemon)
        dk(daemon, "rm", "-f", *dk(daemon, "ps", "-aq").stdout.split(), check=False)
    dk(daemon, "rmi", "fifo:img")


def test_exec_user_with_a_fifo_made_by_the_container_fails_without_hanging(daemon):
    dk(daemon, "run", "-d", "--name", "c1", "busybox", "sleep", "1000")
    # exec -u reads the database the container's process sees.
    dk(daemon, "exec", "c1", "sh", "-c", "echo 'ghost:x:4242:4343::/:/bin/sh' >> /etc/passwd")
    assert dk(daemon, "exec", "-u", "ghost", "c1", "id", "-u").stdout.strip() == "4242"
    dk(daemon, "exec", "c1", "sh", "-c", "rm /etc/passwd && mkfifo /etc/passwd")
    try:
        r = dk(daemon, "exec", "-u", "nobody", "c1", "id", check=False, timeout=30)
        assert r.returncode != 0
        # The CLI prints an exec's start error on stdout.
        assert "cannot read /etc/passwd: not a regular file" in r.stdout + r.stderr, r
        answers(daemon)
        # Without -u nothing reads it: HOME came with the container's spec, so the runtime
        # does not look the user up in the FIFO either (it used to hang there, and the
        # shim with it: `rm -f` waited as long).
        r = dk(daemon, "exec", "c1", "sh", "-c", "echo $HOME", timeout=30)
        assert r.stdout == "/root\n"
        assert dk(daemon, "rm", "-f", "c1", timeout=30).returncode == 0
    finally:
        release_fifo_readers(daemon)
        dk(daemon, "rm", "-f", "c1", check=False)


def test_passwd_linked_to_dev_zero(daemon, tmp_path):
    import_with_passwd(daemon, "zero:img", lambda p: p.symlink_to("/dev/zero"), tmp_path)
    # Not started yet: the link resolves inside the image's rootfs, whose /dev is empty.
    r = dk(daemon, "run", "--rm", "-u", "nobody", "zero:img", "true", check=False, timeout=30)
    assert r.returncode != 0
    assert "unable to find user nobody: no matching entries in passwd file" in r.stderr, r.stderr
    answers(daemon)
    # Running: the container's /dev/zero is a device, refused without reading it.
    dk(daemon, "run", "-d", "--name", "z1", "zero:img", "sleep", "1000")
    r = dk(daemon, "exec", "-u", "nobody", "z1", "true", check=False, timeout=30)
    assert r.returncode != 0
    assert "cannot read /etc/passwd: not a regular file" in r.stdout + r.stderr, r
    answers(daemon)
    dk(daemon, "rm", "-f", "z1")
    dk(daemon, "rmi", "zero:img")


def test_home_is_the_users_as_runc_sets_it(daemon):
    """berthd sets HOME (the runtime would read /etc/passwd inside the container for it)."""
    home = lambda *a: dk(daemon, "run", "--rm", *a, "busybox", "sh", "-c", "echo $HOME").stdout.strip()
    assert home() == "/root"
    assert home("-u", "nobody") == "/nonexistent"
    assert home("-u", "4242") == "/"
    assert home("-e", "HOME=/x", "-u", "nobody") == "/x"
    dk(daemon, "run", "-d", "--name", "c1", "busybox", "sleep", "1000")
    try:
        ex = lambda *a: dk(daemon, "exec", *a, "c1", "sh", "-c", "echo $HOME").stdout.strip()
        assert ex() == "/root"
        assert ex("-u", "nobody") == "/nonexistent"
        assert ex("-u", "nobody", "-e", "HOME=/y") == "/y"
    finally:
        dk(daemon, "rm", "-f", "c1")
