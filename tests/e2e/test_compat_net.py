"""Networking and container set-up as dockerd 20.10 does them (issue 15), each compared
with the reference dockerd where it can show it:

- a port published without a host address (`-p 80`, `-p 8080:80`) is bound on 0.0.0.0
  and on `::`, one port for both (two bindings in `NetworkSettings.Ports`, two lines in
  `docker port`), and answers over IPv6 loopback; `-p 127.0.0.1::80` stays IPv4 only; a
  host without IPv6 (`disable_ipv6`, berthd in a network namespace of its own) binds
  0.0.0.0 only and still starts the container;
- `--ipv6` without `--fixed-cidr-v6` refuses to start, in dockerd's words (the default
  bridge would have no IPv6 subnet); with `--bridge=none` it starts, as dockerd;
- `--ipv6 --fixed-cidr-v6` (and daemon.json `ipv6`/`fixed-cidr-v6`) give the default
  bridge its IPv6 subnet, containers their address from the MAC address, and turn IPv6
  forwarding on, unless `--ip-forward=false` (in a network namespace of its own: the
  sysctl is per namespace, and the host's is never touched);
- a created container's init layer: `/.dockerenv`, `/etc/mtab -> /proc/mounts`, the
  empty `/etc/hosts`, `/etc/hostname`, `/etc/resolv.conf`, `/dev/console` and the mount
  point directories, in `export` as dockerd's, not in `docker diff`;
- `docker rm --link` on a running container takes the link's `/etc/hosts` entry out at
  once, as dockerd does."""

from __future__ import annotations

import contextlib
import io
import ipaddress
import json
import re
import secrets
import socket
import subprocess
import tarfile
import tempfile
from typing import Iterator

import pytest

import refdockerd
from conftest import DOCKER_BIN, DaemonStartError, clean_env, import_busybox, leak_check, poll


def dk(env, *args, check=True, timeout=60):
    r = subprocess.run([DOCKER_BIN, *args], env=env, capture_output=True, text=True, timeout=timeout)
    assert not check or r.returncode == 0, (args, r.stderr)
    return r


def _ref_env(ref) -> dict[str, str]:
    return clean_env({"DOCKER_HOST": f"unix://{ref.sock}", "DOCKER_CONFIG": tempfile.mkdtemp(dir=ref.root)})


def _fetch(family: int, host: str, port: int, netns: str | None = None) -> str:
    """The page at host:port, from this namespace or from `netns`."""
    if netns is None:
        with socket.socket(family, socket.SOCK_STREAM) as c:
            c.settimeout(5)
            c.connect((host, port))
            c.sendall(b"GET /i.html HTTP/1.0\r\n\r\n")
            data = b""
            while chunk := c.recv(4096):
                data += chunk
        return data.decode(errors="replace")
    url = f"http://[{host}]:{port}/i.html" if ":" in host else f"http://{host}:{port}/i.html"
    return subprocess.run(["nsenter", f"--net=/var/run/netns/{netns}", "curl", "-s", "-g", "--max-time", "5", url],
                          capture_output=True, text=True).stdout


def _bindings(env, name: str) -> dict[str, list[tuple[str, str]]]:
    ports = json.loads(dk(env, "inspect", "-f", "{{json .NetworkSettings.Ports}}", name).stdout)
    return {k: [(b["HostIp"], b["HostPort"]) for b in (v or [])] for k, v in ports.items()}


def _addresses(bindings: dict[str, list[tuple[str, str]]]) -> dict[str, list[str]]:
    """Host addresses per container port."""
    return {k: [ip for ip, _ in v] for k, v in bindings.items()}


def test_ports_without_host_address_bind_both_families(busybox_daemon):
    d = busybox_daemon()
    env = d.docker_env
    dk(env, "run", "-d", "--name", "web", "-p", "80", "-p", "127.0.0.1::81", "-p", "53/udp", "busybox", "sh", "-c",
       "echo both > /i.html && exec httpd -f -p 80 -h /")
    try:
        b = _bindings(env, "web")
        port = b["80/tcp"][0][1]
        assert b["80/tcp"] == [("0.0.0.0", port), ("::", port)], b
        assert [ip for ip, _ in b["81/tcp"]] == ["127.0.0.1"], b
        assert [ip for ip, _ in b["53/udp"]] == ["0.0.0.0", "::"] and len({p for _, p in b["53/udp"]}) == 1, b
        assert dk(env, "port", "web", "80").stdout.split() == [f"0.0.0.0:{port}", f"[::]:{port}"]
        ps = dk(env, "ps", "--format", "{{.Ports}}").stdout
        assert f"0.0.0.0:{port}->80/tcp" in ps and f"[::]:{port}->80/tcp" in ps, ps
        listed = d.get_json("/v1.41/containers/json")[0]["Ports"]
        assert {"IP": "::", "PrivatePort": 80, "PublicPort": int(port), "Type": "tcp"} in listed, listed
        # Over IPv6 loopback and over IPv4, through berthd's proxy.
        assert "both" in poll(lambda: _fetch(socket.AF_INET6, "::1", int(port)), 30, "the page over [::1]")
        assert "both" in _fetch(socket.AF_INET, "127.0.0.1", int(port))
        # A daemon restart binds both again (from what was recorded).
        d.restart()
        assert _bindings(env, "web") == b
        assert "both" in poll(lambda: _fetch(socket.AF_INET6, "::1", int(port)), 30, "the page over [::1] again")
    finally:
        dk(env, "rm", "-f", "web", check=False)


def test_ports_match_the_reference(busybox_daemon):
    """The same `docker run -p` on a user network of berthd and of dockerd 20.10: the same
    host addresses per port. (dockerd 20.10 may give the two bindings of an ephemeral
    port two different host ports, each family's allocator on its own; Docker 28 takes
    one port for both, as berthd does, checked above.)"""
    d = busybox_daemon()
    args = ["run", "-d", "--name", "pw", "--network", "pn", "-p", "80", "-p", "127.0.0.1::81", "-p", "53/udp",
            "busybox", "sleep", "600"]
    with refdockerd.running() as ref:
        renv = _ref_env(ref)
        import_busybox(renv)
        shapes = []
        for env in (d.docker_env, renv):
            dk(env, "network", "create", "pn")
            try:
                dk(env, *args)
                shapes.append(_addresses(_bindings(env, "pw")))
            finally:
                dk(env, "rm", "-f", "pw", check=False)
                dk(env, "network", "rm", "pn", check=False)
    assert shapes[0] == shapes[1], shapes
    assert shapes[0]["80/tcp"] == ["0.0.0.0", "::"], shapes


@contextlib.contextmanager
def _netns(ipv6: bool = True) -> Iterator[str]:
    """A network namespace of this test's (loopback up; IPv6 disabled unless `ipv6`)."""
    name = f"berth-t-{secrets.token_hex(3)}"
    subprocess.run(["ip", "netns", "add", name], check=True)
    try:
        ns = ["nsenter", f"--net=/var/run/netns/{name}"]
        if not ipv6:
            for k in ("all", "default", "lo"):
                subprocess.run([*ns, "sysctl", "-qw", f"net.ipv6.conf.{k}.disable_ipv6=1"], check=True)
        subprocess.run(["ip", "-n", name, "link", "set", "lo", "up"], check=True)
        yield name
    finally:
        subprocess.run(["ip", "netns", "del", name], capture_output=True)


def _daemon_in(berthd, docker_env, netns: str, **kw):
    """A berthd started inside network namespace `netns`, with the test image."""
    d = berthd(start=False, **kw)
    argv = d.argv
    d.argv = lambda: ["nsenter", f"--net=/var/run/netns/{netns}", "--", *argv()]
    d.start()
    d.docker_env = docker_env({"DOCKER_HOST": d.unix_host})
    import_busybox(d.docker_env)
    return d


def _sysctl(netns: str, key: str) -> str:
    return subprocess.run(["nsenter", f"--net=/var/run/netns/{netns}", "sysctl", "-n", key],
                          capture_output=True, text=True, check=True).stdout.strip()


def test_a_host_without_ipv6_binds_ipv4_only(berthd, docker_env):
    with _netns(ipv6=False) as ns:
        d = _daemon_in(berthd, docker_env, ns)
        try:
            dk(d.docker_env, "run", "-d", "--name", "web", "-p", "80", "busybox", "sh", "-c",
               "echo v4 > /i.html && exec httpd -f -p 80 -h /")
            b = _bindings(d.docker_env, "web")
            assert [ip for ip, _ in b["80/tcp"]] == ["0.0.0.0"], b
            port = int(b["80/tcp"][0][1])
            assert "v4" in poll(lambda: _fetch(socket.AF_INET, "127.0.0.1", port, ns), 30, "the page")
        finally:
            leak_check(d)


def test_fixed_cidr_v6_and_ipv6_forwarding(berthd, docker_env):
    """`--ipv6 --fixed-cidr-v6` in flags and in daemon.json, in network namespaces of
    their own (the forwarding sysctl is per namespace). dockerd 20.10 with `--ipv6
    --fixed-cidr-v6 fd77:1::/64` answers EnableIPv6 true, IPAM config `[{Subnet:
    172.17.0.0/16}, {Subnet: fd77:1::/64}]`, a container `fd77:1::242:ac11:2` (its MAC
    02:42:ac:11:00:02) with gateway `fd77:1::1`, and both forwarding sysctls 1."""
    v6 = ipaddress.ip_network(f"fd42:{secrets.randbelow(0xffff):x}:{secrets.randbelow(0xffff):x}::/64")
    for how in ("flags", "daemon.json"):
        with _netns() as ns:
            assert _sysctl(ns, "net.ipv6.conf.all.forwarding") == "0"
            if how == "flags":
                d = _daemon_in(berthd, docker_env, ns, extra_args=["--ipv6", f"--fixed-cidr-v6={v6}"])
            else:
                d = _daemon_in(berthd, docker_env, ns, config={"ipv6": True, "fixed-cidr-v6": str(v6)})
            try:
                net = json.loads(dk(d.docker_env, "network", "inspect", "bridge").stdout)[0]
                assert net["EnableIPv6"] is True and {"Subnet": str(v6)} in net["IPAM"]["Config"], net
                dk(d.docker_env, "run", "-d", "--name", "c6", "busybox", "sleep", "600")
                s = json.loads(dk(d.docker_env, "inspect", "c6").stdout)[0]["NetworkSettings"]
                mac = int(s["MacAddress"].replace(":", ""), 16)
                assert s["GlobalIPv6Address"] == str(v6[mac]), s
                assert (s["GlobalIPv6PrefixLen"], s["IPv6Gateway"]) == (64, str(v6[1])), s
                inside = dk(d.docker_env, "exec", "c6", "ip", "-6", "addr", "show", "dev", "eth0").stdout
                assert f"{v6[mac]}/64" in inside, inside
                dk(d.docker_env, "exec", "c6", "ping", "-6", "-c", "1", "-W", "5", str(v6[1]))
                for scope in ("all", "default"):
                    assert _sysctl(ns, f"net.ipv6.conf.{scope}.forwarding") == "1", scope
            finally:
                leak_check(d)
    # `--ip-forward=false`: an IPv6 network, and forwarding left as it was.
    with _netns() as ns:
        d = _daemon_in(berthd, docker_env, ns, extra_args=["--ip-forward=false"])
        try:
            dk(d.docker_env, "network", "create", "--ipv6", "--subnet", str(v6), "n6")
            assert _sysctl(ns, "net.ipv6.conf.all.forwarding") == "0"
            dk(d.docker_env, "network", "rm", "n6")
        finally:
            leak_check(d)


# A CGI that answers with the address the container sees the request come from.
_PEER_SERVER = ("mkdir -p /w/cgi-bin && printf '#!/bin/sh\\necho Content-Type: text/plain\\necho\\n"
                "echo \"peer=$REMOTE_ADDR\"\\n' > /w/cgi-bin/peer && chmod +x /w/cgi-bin/peer && exec httpd -f -p 80 -h /w")
# The "host's" own IPv6 address (on loopback, in the namespace a daemon runs in).
_HOST6 = "fd0f:ee::5"


def _peer(host: str, port: int, netns: str) -> str:
    """The address the container saw a request to host:port (from `netns`) come from."""
    url = f"http://[{host}]:{port}/cgi-bin/peer" if ":" in host else f"http://{host}:{port}/cgi-bin/peer"
    out = subprocess.run(["nsenter", f"--net=/var/run/netns/{netns}", "curl", "-s", "-g", "--max-time", "5", url],
                         capture_output=True, text=True).stdout
    m = re.search(r"peer=\[?([0-9a-fA-F:.]+)\]?", out)
    return m.group(1).removeprefix("::ffff:") if m else ""


def _peers_seen(env, netns: str, network: str, name: str) -> dict[str, str]:
    """Container `name` (on `network`, port 80 published on both families): per way in
    (127.0.0.1, [::1], the host's IPv6 address), what it saw as the peer: the network's
    IPv4 gateway (the proxy reached its IPv4 address), or an IPv6 address of the host
    (the proxy reached its IPv6 address; which of the host's addresses the kernel picks
    as the source depends on whether the bridge's has left DAD, so only its family is
    compared)."""
    s = json.loads(dk(env, "inspect", name).stdout)[0]["NetworkSettings"]
    ep = s["Networks"][network]
    assert ep["GlobalIPv6Address"], ep
    ports = {b["HostIp"]: int(b["HostPort"]) for b in s["Ports"]["80/tcp"]}
    assert set(ports) == {"0.0.0.0", "::"}, s["Ports"]
    seen = {}
    for host, bound in (("127.0.0.1", "0.0.0.0"), ("::1", "::"), (_HOST6, "::")):
        peer = poll(lambda: _peer(host, ports[bound], netns), 30, f"{name}'s page over {host}")
        seen[host] = "IPv4 gateway" if peer == ep["Gateway"] else "IPv6" if ":" in peer else peer
    return seen


def _add_host6(netns: str) -> None:
    subprocess.run(["ip", "-n", netns, "addr", "add", f"{_HOST6}/128", "dev", "lo", "nodad"], check=True)


def test_ports_of_a_container_with_ipv6_as_the_reference(berthd, docker_env):
    """A container with an IPv6 address (a user network with `EnableIPv6`, the default
    bridge with `--ipv6 --fixed-cidr-v6`), its port published without a host address:
    the `::` binding reaches the container's IPv6 address (it sees an IPv6 address of the
    host as the peer, over [::1] and over the host's IPv6 address) and 0.0.0.0 its
    IPv4 address, as dockerd 20.10's docker-proxy (run with --ip6tables=false, as the
    reference is). berthd relayed `::` to the IPv4 address. Both daemons in network
    namespaces of their own, each with the same IPv6 address of the "host"."""
    v6_default, v6_user = "fd0f:d::/64", "fd0f:e::/64"
    flags = ("--ipv6", f"--fixed-cidr-v6={v6_default}")
    seen = {}
    with refdockerd.running(bridge=True, args=flags) as ref, _netns() as ns:
        d = _daemon_in(berthd, docker_env, ns, extra_args=list(flags))
        renv = _ref_env(ref)
        import_busybox(renv)
        try:
            for who, env, netns in (("berthd", d.docker_env, ns), ("dockerd", renv, ref.netns)):
                _add_host6(netns)
                dk(env, "network", "create", "--ipv6", "--subnet", v6_user, "pn6")
                for network in ("bridge", "pn6"):
                    name = f"w-{network}"
                    dk(env, "run", "-d", "--name", name, "--network", network, "-p", "80", "busybox", "sh", "-c",
                       _PEER_SERVER)
                    seen[(who, network)] = _peers_seen(env, netns, network, name)
                    dk(env, "rm", "-f", name)
                dk(env, "network", "rm", "pn6")
        finally:
            leak_check(d)
    want = {"127.0.0.1": "IPv4 gateway", "::1": "IPv6", _HOST6: "IPv6"}
    for network in ("bridge", "pn6"):
        assert seen[("dockerd", network)] == want, seen
        assert seen[("berthd", network)] == seen[("dockerd", network)], seen


def test_ipv6_without_fixed_cidr_v6_as_the_reference(berthd):
    """`--ipv6` (or daemon.json `"ipv6": true`) without `--fixed-cidr-v6`: dockerd 20.10
    refuses to start ("failed to start daemon: Error initializing network controller: IPv6
    is enabled for the default bridge, but no subnet is configured. ..."), and berthd
    with the same words; without a default bridge (`--bridge=none`) both start."""
    want = ("IPv6 is enabled for the default bridge, but no subnet is configured. "
            "Specify an IPv6 subnet using --fixed-cidr-v6")
    for args, config in ((["--ipv6"], None), ([], {"ipv6": True})):
        said = refdockerd.start_error(bridge=True, args=tuple(args), config=config)
        assert said is not None and want in said, said
        d = berthd(start=False, extra_args=args, config=config)
        with pytest.raises(DaemonStartError) as refused:
            d.start()
        assert want in str(refused.value), refused.value
    assert refdockerd.start_error(args=("--ipv6",)) is None
    d = berthd(extra_args=["--ipv6", "--bridge=none"], bridge_flags=False)
    assert all(n["Name"] != "bridge" for n in d.get_json("/v1.41/networks"))


def _export_listing(env, name: str) -> list[tuple[str, str, int, int, str]]:
    """`docker export` of `name` outside bin/ and usr/: (path, type, mode, uid, link)."""
    data = subprocess.run([DOCKER_BIN, "export", name], env=env, capture_output=True, check=True, timeout=60).stdout
    out = []
    with tarfile.open(fileobj=io.BytesIO(data)) as t:
        for m in t.getmembers():
            path = m.name.removeprefix("./").rstrip("/")
            if not path or path.startswith(("bin/", "usr/")) or path in ("bin", "usr"):
                continue
            kind = "dir" if m.isdir() else "link" if m.issym() else "file" if m.isfile() else "other"
            out.append((path, kind, m.mode & 0o7777, m.uid, m.linkname))
    return sorted(out)


def test_init_layer_as_the_reference(busybox_daemon):
    d = busybox_daemon()
    got = {}
    with refdockerd.running() as ref:
        renv = _ref_env(ref)
        import_busybox(renv)
        for who, env in (("berthd", d.docker_env), ("dockerd", renv)):
            dk(env, "create", "--name", "fresh", "busybox")
            got[who] = (_export_listing(env, "fresh"), dk(env, "diff", "fresh").stdout)
            out = dk(env, "run", "--rm", "busybox", "sh", "-c", "readlink /etc/mtab; ls -a / | grep -c dockerenv").stdout
            assert out == "/proc/mounts\n1\n", (who, out)
            dk(env, "rm", "-f", "fresh")
    assert got["berthd"] == got["dockerd"], got
    listing = got["berthd"][0]
    assert ("etc/mtab", "link", 0o777, 0, "/proc/mounts") in listing, listing
    assert (".dockerenv", "file", 0o755, 0, "") in listing and ("dev/console", "file", 0o755, 0, "") in listing, listing
    # Committed: the init layer stays out of the image.
    dk(d.docker_env, "run", "--name", "touched", "busybox", "touch", "/new")
    dk(d.docker_env, "commit", "touched", "committed")
    assert dk(d.docker_env, "diff", "touched").stdout == "A /new\n"
    dk(d.docker_env, "rm", "touched")
    hist = json.loads(dk(d.docker_env, "image", "inspect", "committed").stdout)[0]["RootFS"]["Layers"]
    base = json.loads(dk(d.docker_env, "image", "inspect", "busybox").stdout)[0]["RootFS"]["Layers"]
    assert hist[:-1] == base
    dk(d.docker_env, "rmi", "committed")


def _hosts_shape(text: str) -> list[str]:
    """/etc/hosts with addresses and short IDs made generic."""
    text = re.sub(r"\b\d+\.\d+\.\d+\.\d+\b", "IP", text)
    return sorted(re.sub(r"\b[0-9a-f]{12}\b", "ID", text).splitlines())


def test_rm_link_on_a_running_container_as_the_reference(busybox_daemon):
    """dockerd 20.10 takes the link's line out of the running container's /etc/hosts at
    once (its environment stays as it started); berthd does the same."""
    d = busybox_daemon()
    seen = {}
    with refdockerd.running(bridge=True) as ref:
        renv = _ref_env(ref)
        import_busybox(renv)
        for who, env in (("berthd", d.docker_env), ("dockerd", renv)):
            dk(env, "run", "-d", "--name", "db", "busybox", "sleep", "600")
            dk(env, "run", "-d", "--name", "web", "--link", "db:store", "--link", "db", "busybox", "sleep", "600")
            try:
                before = dk(env, "exec", "web", "cat", "/etc/hosts").stdout
                assert dk(env, "rm", "--link", "/web/store").stdout.strip() == "/web/store"
                after = dk(env, "exec", "web", "cat", "/etc/hosts").stdout
                links = json.loads(dk(env, "inspect", "-f", "{{json .HostConfig.Links}}", "web").stdout)
                seen[who] = (_hosts_shape(before), _hosts_shape(after), links)
            finally:
                dk(env, "rm", "-f", "web", "db", check=False)
    assert seen["berthd"] == seen["dockerd"], seen
    before, after, links = seen["berthd"]
    assert "IP\tstore ID db" in before and "IP\tstore ID db" not in after and "IP\tdb ID" in after, seen
    assert links == ["/db:/web/db"]
