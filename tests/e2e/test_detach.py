"""Detach keys: the real docker CLI (and berth's) driven through a pseudo-terminal for
`run -it`, `attach` and `exec -it`, and raw attach streams over the API.

What docker does, checked against dockerd 20.10 with the docker 28 CLI: with a tty, the
CLI itself watches the keys (ctrl-p ctrl-q, `--detach-keys`, or `detachKeys` in
config.json) and drops the connection; `run` and `start -a` then exit 0 silently,
`attach` and `exec` print "read escape sequence" and exit 1. The daemon must leave the
container running with its stdin open (even with StdinOnce), and it watches a tty's input
for the keys too (`detachKeys` query parameter, exec `DetachKeys`), ending the stream
there. A partial sequence is forwarded as typed. Bad keys: 400 on attach, 500 at exec
create."""

from __future__ import annotations

import base64
import fcntl
import json
import os
import pty
import re
import select
import socket
import struct
import subprocess
import termios
import time
from pathlib import Path

from conftest import BERTH_BIN, DOCKER_BIN, poll
from test_containers import daemon, dk  # noqa: F401 - the fixture and the CLI helper

CTRL_P, CTRL_Q = b"\x10", b"\x11"
LIMIT = 20


class Terminal:
    """A command on a pseudo-terminal. Keys are typed one at a time, each once the
    previous one has been read, as a person types them (the docker CLI only recognises
    keys that arrive in reads of their own)."""

    def __init__(self, argv: list[str], env: dict[str, str]):
        self.master, self.slave = pty.openpty()
        # A size for the CLI to pass on (docker skips the resize of a 0x0 terminal).
        fcntl.ioctl(self.master, termios.TIOCSWINSZ, struct.pack("HHHH", 30, 100, 0, 0))
        self.proc = subprocess.Popen(argv, stdin=self.slave, stdout=self.slave, stderr=self.slave, env=env,
                                     start_new_session=True)
        self.out = b""

    def read_until(self, pattern: bytes, timeout: float = LIMIT) -> bytes:
        """Reads until `pattern` (a regex) matches the output so far; returns that output."""
        deadline = time.monotonic() + timeout
        while not re.search(pattern, self.out, re.S):
            left = deadline - time.monotonic()
            if left <= 0:
                raise AssertionError(f"no {pattern!r} in {self.out!r}")
            r, _, _ = select.select([self.master], [], [], left)
            if r:
                try:
                    chunk = os.read(self.master, 4096)
                except OSError:
                    break
                if not chunk:
                    break
                self.out += chunk
        return self.out

    def unread(self) -> int:
        return struct.unpack("i", fcntl.ioctl(self.slave, termios.FIONREAD, b"\0\0\0\0"))[0]

    def type(self, keys: bytes) -> None:
        for k in keys:
            os.write(self.master, bytes([k]))
            poll(lambda: self.unread() == 0, LIMIT, "the client to read the key")

    def finish(self) -> tuple[int, str]:
        """Waits for the command to exit; its status and everything it wrote."""
        try:
            code = self.proc.wait(timeout=LIMIT)
        finally:
            if self.proc.poll() is None:
                self.proc.kill()
                self.proc.wait()
        os.close(self.slave)
        while select.select([self.master], [], [], 2)[0]:
            try:
                chunk = os.read(self.master, 4096)
            except OSError:
                break
            if not chunk:
                break
            self.out += chunk
        os.close(self.master)
        return code, self.out.decode("utf-8", "replace")

    def close(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()
        for fd in (self.slave, self.master):
            try:
                os.close(fd)
            except OSError:
                pass


def docker_term(d, *args: str, env: dict[str, str] | None = None) -> Terminal:
    return Terminal([DOCKER_BIN, *args], env or d.docker_env)


def state(d, name: str) -> dict:
    return json.loads(dk(d, "inspect", "-f", "{{json .State}}", name).stdout)


def typed_bytes(d, name: str, path: str) -> str:
    """The bytes of a file in the container, in hex as `od` prints them."""
    return " ".join(dk(d, "exec", name, "od", "-An", "-tx1", path).stdout.split())


def start_cat(t: Terminal, path: str) -> None:
    """Starts `cat > path` in the attached shell, then `echo cat-5` once cat ends. Returns
    once the shell has given the terminal back to its canonical mode (it prints go-7 after
    that), so that what is typed next reaches cat, and ctrl-d ends it."""
    t.type(f"echo go-$((1+6)); cat > {path}; echo cat-$((2+3))\r".encode())
    t.read_until(rb"go-7\r\n")


def shell_answers(d, name: str, *, args: tuple[str, ...] = ()) -> None:
    """`docker attach` again: the shell still reads its stdin (so it was not closed)."""
    t = docker_term(d, "attach", *args, name)
    try:
        t.type(b"echo again-$((40+2))\r")
        t.read_until(rb"again-42\r\n")
    finally:
        t.close()


def exec_ids(d, name: str, count: int) -> list[str]:
    """The container's running execs, once there are `count` (short ones may linger a
    moment after they exit)."""
    def ids():
        v = json.loads(dk(d, "inspect", "-f", "{{json .ExecIDs}}", name).stdout) or []
        return v if len(v) == count else None
    return poll(ids, LIMIT, f"{count} running execs")


def test_run_it_detaches_and_attach_resumes(daemon):
    t = docker_term(daemon, "run", "-it", "--name", "dt", "busybox", "sh")
    try:
        t.read_until(rb"# ")
        t.type(b"echo hi > /marker; echo wrote-$((1+1))\r")
        t.read_until(rb"wrote-2\r\n")
        t.type(CTRL_P + CTRL_Q)
        code, out = t.finish()
    finally:
        t.close()
    # docker/cli run.go: a detach is not an error.
    assert code == 0, out
    assert "read escape sequence" not in out
    st = state(daemon, "dt")
    assert st["Running"] is True and st["Status"] == "running"
    assert dk(daemon, "inspect", "-f", "{{.Config.StdinOnce}}", "dt").stdout == "true\n"
    assert dk(daemon, "exec", "dt", "cat", "/marker").stdout == "hi\n"

    # attach again: stdin was not closed; detach again, with attach's message and status.
    t = docker_term(daemon, "attach", "dt")
    try:
        t.type(b"echo again-$((40+2))\r")
        t.read_until(rb"again-42\r\n")
        t.type(CTRL_P + CTRL_Q)
        code, out = t.finish()
    finally:
        t.close()
    assert code == 1, out
    assert out.endswith("read escape sequence\r\n"), out
    assert state(daemon, "dt")["Running"] is True

    # Custom keys; the default ones and a partial custom sequence reach the process.
    t = docker_term(daemon, "attach", "--detach-keys", "ctrl-a,a", "dt")
    try:
        start_cat(t, "/tmp/typed")
        t.type(CTRL_P + b"x" + b"\x01b\r\x04")
        t.read_until(rb"cat-5\r\n")
        t.type(b"\x01a")
        code, out = t.finish()
    finally:
        t.close()
    assert (code, out.endswith("read escape sequence\r\n")) == (1, True), out
    assert typed_bytes(daemon, "dt", "/tmp/typed") == "10 78 01 62 0a"
    shell_answers(daemon, "dt")
    assert state(daemon, "dt")["Running"] is True
    # The CLI detached by itself, closing its connection: no detach event (as dockerd).
    assert "detach" not in events(daemon, "dt", "0")


def test_start_ai_detaches(daemon):
    for cli, name in ((DOCKER_BIN, "sd"), (str(BERTH_BIN), "sb")):
        dk(daemon, "create", "-it", "--name", name, "busybox", "sh")
        t = Terminal([cli, "start", "-ai", "--detach-keys", "ctrl-a,a", name], daemon.docker_env)
        try:
            t.read_until(rb"# ")
            t.type(b"echo up-$((2*4))\r")
            t.read_until(rb"up-8\r\n")
            t.type(b"\x01a")
            code, out = t.finish()
        finally:
            t.close()
        # docker/cli start.go: a detach is not an error.
        assert code == 0 and "read escape sequence" not in out, (cli, out)
        assert state(daemon, name)["Running"] is True
        shell_answers(daemon, name)


def test_exec_it_detaches_and_the_process_runs_on(daemon):
    dk(daemon, "run", "-d", "--name", "ex", "busybox", "sleep", "1000")
    t = docker_term(daemon, "exec", "-it", "ex", "sh")
    try:
        t.read_until(rb"# ")
        t.type(b"echo $$ > /tmp/pid; echo saved-$((3*3))\r")
        t.read_until(rb"saved-9\r\n")
        t.type(CTRL_P + CTRL_Q)
        code, out = t.finish()
    finally:
        t.close()
    assert code == 1, out
    assert out.endswith("read escape sequence\r\n"), out
    # The exec's shell is still there, and so is its record.
    assert dk(daemon, "exec", "ex", "sh", "-c", "kill -0 $(cat /tmp/pid)", check=False).returncode == 0
    ids = exec_ids(daemon, "ex", 1)
    v = daemon.get_json(f"/exec/{ids[0]}/json")
    assert v["Running"] is True and v["DetachKeys"] == ""

    t = docker_term(daemon, "exec", "-it", "--detach-keys", "ctrl-x,x", "ex", "sh")
    try:
        t.read_until(rb"# ")
        t.type(b"\x18x")
        code, out = t.finish()
    finally:
        t.close()
    assert (code, out.endswith("read escape sequence\r\n")) == (1, True), out
    ids = exec_ids(daemon, "ex", 2)
    keys = sorted(daemon.get_json(f"/exec/{i}/json")["DetachKeys"] for i in ids)
    # dockerd shows the parsed bytes, which Go's JSON writes in base64.
    assert keys == ["", base64.b64encode(b"\x18x").decode()]


def test_bad_detach_keys(daemon):
    dk(daemon, "run", "-d", "-it", "--name", "bk", "busybox", "sh")
    t = docker_term(daemon, "attach", "--detach-keys", "foo", "bk")
    try:
        code, out = t.finish()
    finally:
        t.close()
    assert (code, out) == (1, "unable to upgrade to tcp, received 400\r\n")
    # The keys are checked before the container is looked for.
    for name in ("bk", "nope"):
        resp = daemon.request("POST", f"/containers/{name}/attach?stream=1&stdout=1&detachKeys=ctrl-p,",
                              headers={"Upgrade": "tcp", "Connection": "Upgrade"})
        assert resp.status == 400 and resp.json()["message"] == "Invalid detach keys (ctrl-p,) provided"

    t = docker_term(daemon, "exec", "-it", "--detach-keys", "ctrl-P", "bk", "sh")
    try:
        code, out = t.finish()
    finally:
        t.close()
    assert (code, out) == (1, "Error response from daemon: Invalid escape keys (ctrl-P) provided\r\n")
    hdr = {"Content-Type": "application/json"}
    resp = daemon.request("POST", "/containers/bk/exec", headers=hdr, body=b'{"Cmd": ["sh"], "DetachKeys": "x,yz"}')
    assert resp.status == 500 and resp.json()["message"] == "Invalid escape keys (x,yz) provided"
    resp = daemon.request("POST", "/containers/nope/exec", headers=hdr, body=b'{"Cmd": ["sh"], "DetachKeys": "x,yz"}')
    assert resp.status == 404

    # run: the container is made, the attach refused, nothing started.
    t = docker_term(daemon, "run", "-it", "--name", "never", "--detach-keys", "foo", "busybox", "sh")
    try:
        code, out = t.finish()
    finally:
        t.close()
    assert (code, out) == (1, "unable to upgrade to tcp, received 400\r\n")
    assert state(daemon, "never")["Status"] == "created"


def test_config_json_detach_keys(daemon):
    dk(daemon, "run", "-d", "-it", "--name", "cj", "busybox", "sh")
    config = Path(daemon.docker_env["DOCKER_CONFIG"]) / "config.json"
    # The CLI sends config.json's keys to the daemon, which checks them.
    config.write_text(json.dumps({"detachKeys": "bogus"}))
    t = docker_term(daemon, "attach", "cj")
    try:
        code, out = t.finish()
    finally:
        t.close()
    assert (code, out) == (1, "unable to upgrade to tcp, received 400\r\n")

    config.write_text(json.dumps({"detachKeys": "ctrl-e,e"}))
    t = docker_term(daemon, "attach", "cj")
    try:
        start_cat(t, "/tmp/cfg")
        t.type(CTRL_P + CTRL_Q + b"\r\x04")
        t.read_until(rb"cat-5\r\n")
        t.type(b"\x05e")
        code, out = t.finish()
    finally:
        t.close()
    assert (code, out.endswith("read escape sequence\r\n")) == (1, True), out
    # ctrl-q went to the terminal's flow control; ctrl-p reached cat.
    assert typed_bytes(daemon, "cj", "/tmp/cfg").startswith("10")
    shell_answers(daemon, "cj", args=("--detach-keys", "ctrl-e,e"))


class RawAttach:
    """`POST /containers/{id}/attach` (or with `body`, `POST /exec/{id}/start`) upgraded,
    as an API client other than the docker CLI uses it: bytes go out as written, so the
    daemon sees the whole sequence."""

    def __init__(self, d, name: str, query: str, body: bytes | None = None):
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.sock.settimeout(LIMIT)
        self.sock.connect(str(d.sock))
        if body is None:
            head = f"POST /v1.50/containers/{name}/attach?stream=1&stdin=1&stdout=1&stderr=1{query} HTTP/1.1\r\n"
        else:
            head = (f"POST /v1.50/exec/{name}/start HTTP/1.1\r\nContent-Type: application/json\r\n"
                    f"Content-Length: {len(body)}\r\n")
        self.sock.sendall(f"{head}Host: berth\r\nUpgrade: tcp\r\nConnection: Upgrade\r\n\r\n".encode()
                          + (body or b""))
        self.buf = b""
        head = self.read_until(rb"\r\n\r\n")
        assert head.startswith(b"HTTP/1.1 101"), head
        self.buf = self.buf[self.buf.index(b"\r\n\r\n") + 4:]

    def read_until(self, pattern: bytes) -> bytes:
        deadline = time.monotonic() + LIMIT
        while not re.search(pattern, self.buf, re.S):
            assert time.monotonic() < deadline, self.buf
            chunk = self.sock.recv(4096)
            assert chunk, f"closed before {pattern!r}: {self.buf!r}"
            self.buf += chunk
        return self.buf

    def read_to_end(self) -> bytes:
        """What comes until the daemon closes the stream (bounded by the socket timeout)."""
        while chunk := self.sock.recv(4096):
            self.buf += chunk
        return self.buf

    def close(self) -> None:
        self.sock.close()


def events(d, name: str, since: str) -> list[str]:
    """The container's events so far: `Action execID`."""
    out = dk(d, "events", "--since", since, "--until", f"{time.time():.3f}", "--filter", f"container={name}",
             "--format", '{{.Action}} {{index .Actor.Attributes "execID"}}').stdout
    return [line.strip() for line in out.splitlines()]


def test_the_daemon_detaches_a_tty_stream(daemon):
    since = f"{time.time() - 1:.3f}"
    dk(daemon, "run", "-d", "-it", "--name", "api", "busybox", "sh")
    a = RawAttach(daemon, "api", "")
    try:
        a.sock.sendall(b"echo api-$((6*7))\r")
        a.read_until(rb"api-42\r\n")
        # The whole sequence in one write, with something after it that must not arrive.
        a.sock.sendall(b"echo before > /tmp/api\r" + CTRL_P + CTRL_Q + b"echo after > /tmp/api\r")
        a.read_to_end()
    finally:
        a.close()
    # The shell answers a new attach, so it has read all it was sent: the line before the
    # keys, not the one after.
    shell_answers(daemon, "api")
    assert dk(daemon, "exec", "api", "cat", "/tmp/api").stdout == "before\n"
    assert state(daemon, "api")["Running"] is True

    # Custom keys split across writes; a diverging partial sequence is forwarded.
    a = RawAttach(daemon, "api", "&detachKeys=ctrl-a,a")
    try:
        a.sock.sendall(b"echo go-$((1+6)); cat > /tmp/part; echo cat-$((2+3))\r")
        a.read_until(rb"go-7\r\n")
        a.sock.sendall(b"\x01")
        a.sock.sendall(b"b\r\x04")
        a.read_until(rb"cat-5\r\n")
        a.sock.sendall(b"\x01")
        a.sock.sendall(b"a")
        a.read_to_end()
    finally:
        a.close()
    assert typed_bytes(daemon, "api", "/tmp/part") == "01 62 0a"
    shell_answers(daemon, "api")
    # moby `daemon/attach.go`: a detach the daemon saw is an event (the CLI's own is not).
    poll(lambda: events(daemon, "api", since).count("detach") == 2, LIMIT, "two detach events")

    # An exec's stream: its own keys; the process runs on (moby `daemon/exec.go`).
    hdr = {"Content-Type": "application/json"}
    body = b'{"Cmd": ["sh"], "AttachStdin": true, "AttachStdout": true, "Tty": true, "DetachKeys": "ctrl-x,x"}'
    eid = daemon.request("POST", "/containers/api/exec", headers=hdr, body=body).json()["Id"]
    a = RawAttach(daemon, eid, "", body=b'{"Tty": true}')
    try:
        a.sock.sendall(b"echo ex-$((5+5))\r")
        a.read_until(rb"ex-10\r\n")
        # The default keys are not this exec's: they reach the shell (its ctrl-p recalls
        # the last line, to which the new command is appended).
        a.sock.sendall(CTRL_P + CTRL_Q + b"echo still-$((1+2))\r")
        a.read_until(rb"still-3\r\n")
        a.sock.sendall(b"\x18x")
        a.read_to_end()
    finally:
        a.close()
    assert daemon.get_json(f"/exec/{eid}/json")["Running"] is True
    poll(lambda: f"exec_detach {eid}" in events(daemon, "api", since), LIMIT, "the exec_detach event")


def test_no_detach_without_a_tty(daemon):
    """moby watches only a tty's input: other streams carry the keys as data."""
    dk(daemon, "run", "-d", "-i", "--name", "pipe", "busybox", "cat")
    a = RawAttach(daemon, "pipe", "&detachKeys=ctrl-a,a")
    try:
        a.sock.sendall(CTRL_P + CTRL_Q + b"\x01a-data\n")
        # Multiplexed frames: stdout, three zeros, the length, then the bytes cat echoed.
        a.read_until(re.escape(CTRL_P + CTRL_Q + b"\x01a-data\n"))
    finally:
        a.close()
    assert state(daemon, "pipe")["Running"] is True


def test_exec_records_go_with_their_container(daemon):
    """Regression: exec records of a removed container were dropped only at the next
    exec create, so their inspect still answered."""
    dk(daemon, "run", "-d", "--name", "gone", "busybox", "sleep", "1000")
    hdr = {"Content-Type": "application/json"}
    eid = daemon.request("POST", "/containers/gone/exec", headers=hdr, body=b'{"Cmd": ["true"]}').json()["Id"]
    assert daemon.request("GET", f"/exec/{eid}/json").status == 200
    dk(daemon, "rm", "-f", "gone")
    resp = daemon.request("GET", f"/exec/{eid}/json")
    assert resp.status == 404 and resp.json()["message"] == f"No such exec instance: {eid}"


def test_berth_cli_detaches_like_docker(daemon):
    env = daemon.docker_env
    t = Terminal([str(BERTH_BIN), "run", "-it", "--name", "bc", "busybox", "sh"], env)
    try:
        t.read_until(rb"# ")
        t.type(b"echo hi > /marker; echo wrote-$((1+1))\r")
        t.read_until(rb"wrote-2\r\n")
        t.type(CTRL_P + CTRL_Q)
        code, out = t.finish()
    finally:
        t.close()
    assert code == 0 and "read escape sequence" not in out, out
    assert state(daemon, "bc")["Running"] is True

    t = Terminal([str(BERTH_BIN), "attach", "--detach-keys", "ctrl-a,a", "bc"], env)
    try:
        start_cat(t, "/tmp/typed")
        t.type(CTRL_P + b"x" + b"\x01b\r\x04")
        t.read_until(rb"cat-5\r\n")
        t.type(b"\x01a")
        code, out = t.finish()
    finally:
        t.close()
    assert (code, out.endswith("read escape sequence\r\n")) == (1, True), out
    assert typed_bytes(daemon, "bc", "/tmp/typed") == "10 78 01 62 0a"

    (Path(env["DOCKER_CONFIG"]) / "config.json").write_text(json.dumps({"detachKeys": "ctrl-e,e"}))
    t = Terminal([str(BERTH_BIN), "exec", "-it", "bc", "sh"], env)
    try:
        t.read_until(rb"# ")
        t.type(b"\x05e")
        code, out = t.finish()
    finally:
        t.close()
    assert (code, out.endswith("read escape sequence\r\n")) == (1, True), out
    ids = exec_ids(daemon, "bc", 1)
    assert [daemon.get_json(f"/exec/{i}/json")["DetachKeys"] for i in ids] == [base64.b64encode(b"\x05e").decode()]

    t = Terminal([str(BERTH_BIN), "attach", "--detach-keys", "foo", "bc"], env)
    try:
        code, out = t.finish()
    finally:
        t.close()
    assert (code, out) == (1, "Error response from daemon: Invalid detach keys (foo) provided\r\n")
    shell_answers(daemon, "bc")
    r = subprocess.run([str(BERTH_BIN), "attach", "bc"], env=env, capture_output=True, text=True, timeout=60,
                       stdin=subprocess.DEVNULL)
    assert (r.returncode, r.stderr) == (1, "the input device is not a TTY\n")
