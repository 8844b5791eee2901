"""SPDY/3.1 on the CRI streaming server: crictl's default transport (client-go's
remotecommand and portforward over moby/spdystream, as the kubelet's clients speak it)
for exec (both streams apart, the exit code from the v4 status, stdin, output past the
SPDY windows), attach (stdin to the container, closing it ends stdin_once) and
port-forward (`crictl port-forward POD 0:PORT`, two ports of the pod at once, each
connection a stream pair to the pod's loopback); the handshake's refusals and hostile
frames from a raw client (the session ends, the daemon serves on)."""

from __future__ import annotations

import fcntl
import os
import pty
import re
import select
import socket
import struct
import subprocess
import termios
import time
import urllib.parse
from pathlib import Path

from conftest import CMD_TIMEOUT, clean_env, container_ids, leak_check, poll
from test_cri import (Crictl, cri_daemon, cri_registry, crictl_bin, pulled_busybox,  # noqa: F401 (fixtures)
                      stream_url, write_json)


def pod_with(d, docker, workdir: Path, crictl: Crictl, registry, name: str):
    """A running pod; `container(name, script, **config)` starts a busybox container in it."""
    ref = pulled_busybox(docker, d, workdir, crictl, registry)
    pod = write_json(workdir / "pod.json", {
        "metadata": {"name": name, "namespace": "n", "uid": f"u-{name}"},
        "log_directory": str(workdir / "logs")})
    pod_id = crictl("runp", str(pod)).stdout.strip()

    def container(cname: str, script: str, **extra) -> str:
        config = write_json(workdir / f"{cname}.json", {
            "metadata": {"name": cname}, "image": {"image": ref},
            "command": ["sh", "-c", script], "log_path": f"{cname}/0.log", **extra})
        cid = crictl("create", pod_id, str(config), str(pod)).stdout.strip()
        crictl("start", cid)
        return cid

    return pod_id, container


def on_a_terminal(crictl: Crictl, *args: str) -> tuple[str, int]:
    """Runs crictl on a new pseudo-terminal of 33 rows and 101 columns: what it wrote
    there, and its exit status."""
    master, slave = pty.openpty()
    fcntl.ioctl(slave, termios.TIOCSWINSZ, struct.pack("HHHH", 33, 101, 0, 0))
    proc = subprocess.Popen([str(crictl.binary), "--config", str(crictl.config), *args],
                            stdin=slave, stdout=slave, stderr=slave, env=clean_env(), start_new_session=True)
    os.close(slave)
    out = b""
    try:
        deadline = time.monotonic() + CMD_TIMEOUT
        while time.monotonic() < deadline:
            ready, _, _ = select.select([master], [], [], max(0.0, deadline - time.monotonic()))
            if not ready:
                break
            try:
                chunk = os.read(master, 4096)
            except OSError:  # EIO: every writer closed the terminal
                break
            if not chunk:
                break
            out += chunk
        return out.decode(errors="replace"), proc.wait(timeout=CMD_TIMEOUT)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait(timeout=30)
        os.close(master)


def remove_pod(crictl: Crictl, d, pod_id: str) -> None:
    crictl("stopp", pod_id)
    crictl("rmp", pod_id)
    assert container_ids(d) == []


def test_exec_and_attach_over_spdy(berthd, docker, docker_env, workdir, crictl_bin, cri_registry):
    d, crictl = cri_daemon(berthd, workdir, crictl_bin)
    d.docker_env = docker_env({"DOCKER_HOST": d.unix_host})
    try:
        pod_id, container = pod_with(d, docker, workdir, crictl, cri_registry, "spdy-exec")
        sleeper = container("sleeper", "exec busybox sleep 600")

        # Each stream apart, and the exit code from the v4 error stream's status.
        r = crictl("exec", sleeper, "sh", "-c", "echo out; echo err >&2; exit 3", check=False)
        assert r.stdout == "out\n", r
        assert r.stderr.startswith("err\n") and "command terminated with exit code 3" in r.stderr, r
        assert r.returncode != 0
        assert crictl("exec", sleeper, "echo", "fine").stdout == "fine\n"
        # Stdin reaches the process, and its end (the stream's FIN) ends the process's stdin.
        r = crictl("exec", "-i", sleeper, "busybox", "tr", "a-z", "A-Z", input="hello\nstdin\n")
        assert r.stdout == "HELLO\nSTDIN\n", r
        # More than SPDY's 64 KiB windows, both ways: nothing stalls, nothing is lost.
        big = "".join(f"{i}\n" for i in range(60000))
        r = crictl("exec", "-i", sleeper, "cat", input=big)
        assert r.stdout == big, (len(r.stdout), len(big))
        # A terminal (crictl needs one for -t): output on one stream, and the client's
        # size through the resize stream (the process waits for it, 10 s at most).
        out, code = on_a_terminal(crictl, "exec", "-i", "-t", sleeper, "sh", "-c",
                                  "i=0; while [ \"$(busybox stty size)\" != '33 101' ] && [ $i -lt 100 ];"
                                  " do i=$((i+1)); busybox sleep 0.1; done;"
                                  " echo size=$(busybox stty size); busybox tty; exit 4")
        assert "size=33 101\r\n/dev/pts/" in out and code != 0, (out, code)

        # Attach: stdin to the container, its output back; closing stdin ends it (stdin_once).
        echo = container("echo", "echo started; while read l; do echo got:$l; done; echo bye",
                         stdin=True, stdin_once=True)
        poll(lambda: "started" in crictl("logs", echo).stdout, 30, "the echo container to start")
        r = crictl("attach", "-i", echo, input="one\ntwo\n")
        assert r.stdout == "got:one\ngot:two\nbye\n", r
        poll(lambda: crictl.json("inspect", echo)["status"]["state"] == "CONTAINER_EXITED", 30, "echo to exit")
        r = crictl("attach", echo, check=False)
        assert r.returncode != 0 and "CONTAINER_EXITED" in r.stderr, r.stderr

        remove_pod(crictl, d, pod_id)
    finally:
        leak_check(d)


def read_until(sock: socket.socket, want: bytes) -> bytes:
    got = b""
    while want not in got:
        chunk = sock.recv(4096)
        if not chunk:
            break
        got += chunk
    return got


def test_port_forward_over_spdy(berthd, docker, docker_env, workdir, crictl_bin, cri_registry):
    d, crictl = cri_daemon(berthd, workdir, crictl_bin)
    d.docker_env = docker_env({"DOCKER_HOST": d.unix_host})
    forwarder = None
    try:
        pod_id, container = pod_with(d, docker, workdir, crictl, cri_registry, "spdy-forward")
        # nc's stdin stays open a while: at its end busybox nc may stop reading, and the
        # client's bytes must still reach it.
        servers = {port: container(f"server{port}", f"(echo hello-{port}; sleep 30) | busybox nc -l -p {port}")
                   for port in (8080, 8081)}
        for port, server in servers.items():
            poll(lambda: re.search(rf":{port:04X} [0-9A-F:]+ 0A",
                                   crictl("exec", "-s", server, "cat", "/proc/net/tcp", "/proc/net/tcp6").stdout),
                 30, f"the server listening on :{port}")

        forwarder = subprocess.Popen(
            [str(crictl.binary), "--config", str(crictl.config), "port-forward", pod_id, "0:8080", "0:8081"],
            stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, env=clean_env(), bufsize=0)
        local: dict[int, int] = {}
        seen = ""
        deadline = time.monotonic() + CMD_TIMEOUT
        while len(local) < 2 and time.monotonic() < deadline:
            ready, _, _ = select.select([forwarder.stdout], [], [], max(0.0, deadline - time.monotonic()))
            chunk = os.read(forwarder.stdout.fileno(), 4096) if ready else b""
            if not chunk:
                break
            seen += chunk.decode(errors="replace")
            local = {int(r): int(l) for l, r in re.findall(r"Forwarding from 127\.0\.0\.1:(\d+) -> (\d+)", seen)}
        assert sorted(local) == [8080, 8081], seen

        # Both connections at once, each its own stream pair to its port.
        conns = {port: socket.create_connection(("127.0.0.1", local[port]), timeout=30) for port in local}
        try:
            for port, conn in conns.items():
                conn.sendall(f"ping-{port}-from-client\n".encode())
            for port, conn in conns.items():
                assert read_until(conn, f"hello-{port}\n".encode()) == f"hello-{port}\n".encode()
        finally:
            for conn in conns.values():
                conn.close()
        for port, server in servers.items():
            poll(lambda: f"ping-{port}-from-client" in crictl("logs", server).stdout, 30,
                 f"the forwarded bytes in server{port}'s log")
        assert forwarder.poll() is None, seen

        forwarder.terminate()
        forwarder.wait(timeout=30)
        forwarder = None
        remove_pod(crictl, d, pod_id)
    finally:
        if forwarder is not None:
            forwarder.kill()
            forwarder.wait(timeout=30)
        leak_check(d)


def spdy_upgrade(url: str, protocols: list[str]) -> tuple[socket.socket, str]:
    """A raw SPDY/3.1 upgrade of a streaming URL: the socket and the response head."""
    u = urllib.parse.urlsplit(url)
    sock = socket.create_connection((u.hostname, u.port), timeout=30)
    offered = "".join(f"X-Stream-Protocol-Version: {p}\r\n" for p in protocols)
    sock.sendall((f"POST {u.path} HTTP/1.1\r\nHost: {u.netloc}\r\nConnection: Upgrade\r\n"
                  f"Upgrade: SPDY/3.1\r\n{offered}Content-Length: 0\r\n\r\n").encode())
    head = read_until(sock, b"\r\n\r\n").decode(errors="replace")
    return sock, head


def test_spdy_handshake_and_hostile_frames(berthd, docker, docker_env, workdir, crictl_bin, cri_registry):
    d, crictl = cri_daemon(berthd, workdir, crictl_bin)
    d.docker_env = docker_env({"DOCKER_HOST": d.unix_host})
    try:
        pod_id, container = pod_with(d, docker, workdir, crictl, cri_registry, "spdy-hostile")
        sleeper = container("sleeper", "exec busybox sleep 600")

        # No protocol offered: 400; none shared: 403 naming ours. The token stays unused.
        url = stream_url(crictl, "port-forward", pod_id, "0:8080")
        sock, head = spdy_upgrade(url, [])
        sock.close()
        assert head.startswith("HTTP/1.1 400") and "X-Stream-Protocol-Version" in head, head
        sock, head = spdy_upgrade(url, ["v4.channel.k8s.io"])
        sock.close()
        assert head.startswith("HTTP/1.1 403"), head
        assert "x-accepted-stream-protocol-versions: portforward.k8s.io" in head.lower(), head

        # A header block that is not zlib ends the session; a huge control frame as well.
        bad_zlib = struct.pack(">IIH", 1, 0, 0) + b"\x78\x9cnot zlib at all"
        huge = b"\x80\x03\x00\x01\x00\xff\xff\xff"
        for frame in (b"\x80\x03\x00\x01\x00" + len(bad_zlib).to_bytes(3, "big") + bad_zlib, huge):
            url = stream_url(crictl, "port-forward", pod_id, "0:8080")
            sock, head = spdy_upgrade(url, ["portforward.k8s.io"])
            try:
                assert head.startswith("HTTP/1.1 101"), head
                assert "x-stream-protocol-version: portforward.k8s.io" in head.lower(), head
                sock.sendall(frame)
                # The server closes: the read ends (within the socket's timeout).
                assert read_until(sock, b"never sent") == b""
            finally:
                sock.close()
        # The daemon serves on.
        assert crictl("exec", sleeper, "echo", "still-here").stdout == "still-here\n"
        remove_pod(crictl, d, pod_id)
    finally:
        leak_check(d)
