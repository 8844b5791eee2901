"""Networking through the real docker CLI and docker-py: the default bridge, user networks
with the embedded DNS, isolation, none/host/container modes, published ports (loopback,
the host's address, hairpin), bad input, a daemon restart, and nothing left on the host.

Every daemon has its own bridge and subnets (conftest `pick_network`)."""

from __future__ import annotations

import ctypes
import importlib
import ipaddress
import json
import os
import socket
import struct
import subprocess
import threading

import pytest

from conftest import DOCKER_BIN, REPO_ROOT, cleanup_network, free_port, poll


def dk(d, *args, check=True, timeout=60):
    return subprocess.run([DOCKER_BIN, *args], env=d.docker_env, capture_output=True, text=True,
                          timeout=timeout, check=check)


def _links(master: str | None = None) -> list[str]:
    args = ["ip", "-o", "link", "show"] + (["master", master] if master else [])
    out = subprocess.run(args, capture_output=True, text=True).stdout
    return [l.split(":")[1].strip().split("@")[0] for l in out.splitlines() if ":" in l]


def _rules(tag: str) -> list[str]:
    out = subprocess.run(["iptables-save"], capture_output=True, text=True, check=True).stdout
    return [l for l in out.splitlines() if tag in l]


def _user_bridges(d) -> list[str]:
    out = dk(d, "network", "ls", "-q", "--filter", "type=custom").stdout.split()
    return [dk(d, "network", "inspect", "-f", '{{index .Options "com.docker.network.bridge.name"}}', n).stdout.strip()
            or f"br-{n[:12]}" for n in out]


@pytest.fixture
def daemon(berthd, docker_env):
    d = berthd()
    env = docker_env({"DOCKER_HOST": d.unix_host})
    rootfs = subprocess.run([str(REPO_ROOT / "scripts" / "busybox-rootfs")], check=True, capture_output=True).stdout
    subprocess.run(
        [DOCKER_BIN, "import", "-c", 'CMD ["sh"]', "-", "busybox:latest"],
        input=rootfs, env=env, check=True, capture_output=True, timeout=60,
    )
    d.docker_env = env
    yield d
    # Leak checks: remove every container and network; nothing of theirs may remain.
    ids = dk(d, "ps", "-aq", check=False).stdout.split()
    if ids:
        dk(d, "rm", "-f", *ids, check=False)
    bridges = _user_bridges(d) if d.running() else []
    dk(d, "network", "prune", "-f", check=False)
    if d.running():
        # A stopped container's veth is removed in the background (the kernel takes ~20 ms).
        poll(lambda: _links(master=d.bridge) == [], 10, "no veths left on the default bridge")
        for br in bridges:
            assert br not in _links(), f"bridge {br} left behind"
        rules = _rules(d.bridge)
        assert not [r for r in rules if "br-" in r], rules
    d.stop()
    assert cleanup_network(d) == []
    assert d.bridge not in _links()
    assert _rules(d.bridge) == []


def _serve(d, name: str, *extra: str) -> str:
    """A busybox httpd answering `hello from <name>` on port 80; returns its ID."""
    cid = dk(d, "run", "-d", "--name", name, *extra, "busybox", "sh", "-c",
             f"mkdir -p /www && echo hello from {name} > /www/index.html && exec httpd -f -p 80 -h /www").stdout.strip()
    return cid


def _http_get(host: str, port: int, timeout: float = 3) -> str:
    with socket.create_connection((host, port), timeout=timeout) as s:
        s.sendall(b"GET / HTTP/1.0\r\nHost: x\r\n\r\n")
        data = b""
        while chunk := s.recv(4096):
            data += chunk
    return data.decode(errors="replace")


def _host_address() -> str:
    out = subprocess.run(["ip", "-4", "route", "get", "192.0.2.123"], capture_output=True, text=True).stdout
    if " src " not in out:
        out = subprocess.run(["ip", "-4", "route", "get", "1.1.1.1"], capture_output=True, text=True).stdout
    return out.split(" src ")[1].split()[0]


def test_default_bridge(daemon):
    d = daemon
    out = dk(d, "run", "--rm", "--hostname", "h1", "busybox", "sh", "-c",
             "ip -o -4 addr show eth0; ip route; cat /etc/hosts /etc/resolv.conf /etc/hostname").stdout
    subnet = ipaddress.ip_network(d.bip, strict=False)
    gateway = d.bip.split("/")[0]
    addr = out.split("inet ")[1].split("/")[0]
    assert ipaddress.ip_address(addr) in subnet, out
    assert f"default via {gateway} dev eth0" in out, out
    assert f"{addr}\th1" in out, out
    assert "nameserver 127." not in out and "nameserver" in out, out
    # Reaches its gateway (the host) and other containers on the bridge.
    cid = _serve(d, "web")
    info = json.loads(dk(d, "inspect", cid).stdout)[0]
    ns = info["NetworkSettings"]
    assert ns["IPAddress"] and ns["Gateway"] == gateway and ns["IPPrefixLen"] == subnet.prefixlen
    assert ns["Networks"]["bridge"]["IPAddress"] == ns["IPAddress"]
    assert ns["Networks"]["bridge"]["MacAddress"] == ns["MacAddress"]
    assert ns["Networks"]["bridge"]["NetworkID"] == dk(d, "network", "inspect", "-f", "{{.Id}}", "bridge").stdout.strip()
    body = dk(d, "run", "--rm", "busybox", "wget", "-qO-", f"http://{ns['IPAddress']}/").stdout
    assert body == "hello from web\n"
    net = json.loads(dk(d, "network", "inspect", "bridge").stdout)[0]
    assert net["IPAM"]["Config"] == [{"Subnet": str(subnet), "Gateway": gateway}]
    assert net["Options"]["com.docker.network.bridge.name"] == d.bridge
    assert cid in net["Containers"]


def test_user_network_names_aliases_and_isolation(daemon):
    d = daemon
    dk(d, "network", "create", "n1")
    dk(d, "network", "create", "n2")
    _serve(d, "web", "--network", "n1", "--network-alias", "webalias")
    for name in ("web", "webalias"):
        out = dk(d, "run", "--rm", "--network", "n1", "busybox", "wget", "-qO-", f"http://{name}/").stdout
        assert out == "hello from web\n"
    r = dk(d, "run", "--rm", "--network", "n1", "busybox", "cat", "/etc/resolv.conf").stdout
    assert "nameserver 127.0.0.11" in r
    # The embedded DNS also answers over TCP (queried from inside web's netns).
    pid = dk(d, "inspect", "-f", "{{.State.Pid}}", "web").stdout.strip()
    script = (
        "import socket,struct\n"
        "q=b'\\x12\\x34\\x01\\x00\\x00\\x01\\x00\\x00\\x00\\x00\\x00\\x00\\x08webalias\\x00\\x00\\x01\\x00\\x01'\n"
        "s=socket.create_connection(('127.0.0.11',53),timeout=5)\n"
        "s.sendall(struct.pack('>H',len(q))+q)\n"
        "n=struct.unpack('>H',s.recv(2))[0]\n"
        "r=b''\n"
        "while len(r)<n: r+=s.recv(n-len(r))\n"
        "print('.'.join(map(str,r[-4:])), struct.unpack('>H',r[6:8])[0])\n"
    )
    out = subprocess.run(["nsenter", f"--net=/proc/{pid}/ns/net", "python3", "-c", script],
                         capture_output=True, text=True, timeout=30)
    ip_web = dk(d, "inspect", "-f", "{{.NetworkSettings.Networks.n1.IPAddress}}", "web").stdout.strip()
    assert out.stdout.split() == [ip_web, "1"], out.stderr
    # Unknown names get NXDOMAIN (or the upstream's answer), not a hang.
    r = dk(d, "run", "--rm", "--network", "n1", "busybox", "nslookup", "no-such-container-xyz", check=False)
    assert r.returncode != 0
    # n2 cannot resolve or reach web.
    ip = dk(d, "inspect", "-f", "{{.NetworkSettings.Networks.n1.IPAddress}}", "web").stdout.strip()
    assert ipaddress.ip_address(ip)
    r = dk(d, "run", "--rm", "--network", "n2", "busybox", "ping", "-c1", "-W1", ip, check=False)
    assert r.returncode != 0, r.stdout
    r = dk(d, "run", "--rm", "--network", "n2", "busybox", "ping", "-c1", "-W1", "web", check=False)
    assert r.returncode != 0, r.stdout
    # The default bridge cannot reach n1 either.
    r = dk(d, "run", "--rm", "busybox", "ping", "-c1", "-W1", ip, check=False)
    assert r.returncode != 0, r.stdout
    # Network inspect lists the endpoint; rm while in use is refused.
    net = json.loads(dk(d, "network", "inspect", "n1").stdout)[0]
    web_id = dk(d, "inspect", "-f", "{{.Id}}", "web").stdout.strip()
    assert net["Containers"][web_id]["IPv4Address"].startswith(ip + "/")
    r = dk(d, "network", "rm", "n1", check=False)
    assert r.returncode != 0
    assert f"error while removing network: network n1 id {net['Id']} has active endpoints" in r.stderr


def test_rename_updates_embedded_dns(daemon):
    """After `docker rename`, containers on a user network resolve the new name and no longer
    the old one, and DNSNames shows the new name (moby daemon/rename.go updates the
    endpoints' DNS names)."""
    d = daemon
    dk(d, "network", "create", "rnm")
    dk(d, "run", "-d", "--name", "dns-old-1", "--network", "rnm", "busybox", "sleep", "600")
    ip = dk(d, "inspect", "-f", "{{.NetworkSettings.Networks.rnm.IPAddress}}", "dns-old-1").stdout.strip()
    assert ipaddress.ip_address(ip)
    before = dk(d, "run", "--rm", "--network", "rnm", "busybox", "nslookup", "dns-old-1").stdout
    assert ip in before, before
    dk(d, "rename", "dns-old-1", "dns-new-1")
    after = dk(d, "run", "--rm", "--network", "rnm", "busybox", "nslookup", "dns-new-1").stdout
    assert ip in after, after
    old = dk(d, "run", "--rm", "--network", "rnm", "busybox", "nslookup", "dns-old-1", check=False)
    assert old.returncode != 0 and ip not in old.stdout, old.stdout
    names = json.loads(dk(d, "inspect", "-f", "{{json .NetworkSettings.Networks.rnm.DNSNames}}", "dns-new-1").stdout)
    assert "dns-new-1" in names and "dns-old-1" not in names, names
    # A stopped and restarted container keeps answering to its new name.
    dk(d, "restart", "-t", "0", "dns-new-1")
    ip2 = dk(d, "inspect", "-f", "{{.NetworkSettings.Networks.rnm.IPAddress}}", "dns-new-1").stdout.strip()
    again = dk(d, "run", "--rm", "--network", "rnm", "busybox", "nslookup", "dns-new-1").stdout
    assert ip2 in again, again


def test_connect_disconnect_and_static_ip(daemon):
    d = daemon
    dk(d, "network", "create", "--subnet", "10.99.77.0/24", "--gateway", "10.99.77.254", "ns1")
    dk(d, "run", "-d", "--name", "c1", "busybox", "sleep", "600")
    dk(d, "network", "connect", "--alias", "other", "--ip", "10.99.77.50", "ns1", "c1")
    info = json.loads(dk(d, "inspect", "c1").stdout)[0]
    assert info["NetworkSettings"]["Networks"]["ns1"]["IPAddress"] == "10.99.77.50"
    r = dk(d, "run", "--rm", "--network", "ns1", "busybox", "ping", "-c1", "-W2", "other")
    assert "10.99.77.50" in r.stdout
    dk(d, "network", "disconnect", "ns1", "c1")
    info = json.loads(dk(d, "inspect", "c1").stdout)[0]
    assert "ns1" not in info["NetworkSettings"]["Networks"]
    assert json.loads(dk(d, "network", "inspect", "ns1").stdout)[0]["Containers"] == {}
    dk(d, "network", "rm", "ns1")


def test_none_host_and_container_modes(daemon):
    d = daemon
    out = dk(d, "run", "--rm", "--network", "none", "busybox", "ip", "-o", "link").stdout
    names = [l.split(":")[1].strip() for l in out.splitlines()]
    assert names == ["lo"], out
    out = dk(d, "run", "--rm", "--network", "host", "busybox", "ip", "-o", "link").stdout
    assert "eth0" in out or len(out.splitlines()) > 1
    assert dk(d, "run", "--rm", "--network", "host", "busybox", "hostname").stdout.strip() == socket.gethostname()
    _serve(d, "web")
    out = dk(d, "run", "--rm", "--network", "container:web", "busybox", "wget", "-qO-", "http://127.0.0.1/").stdout
    assert out == "hello from web\n"
    info = json.loads(dk(d, "inspect", "web").stdout)[0]
    assert list(info["NetworkSettings"]["Networks"]) == ["bridge"]


def test_dns_and_hosts_options(daemon):
    d = daemon
    out = dk(d, "run", "--rm", "--dns", "192.0.2.53", "--dns-search", "example.test", "--dns-option", "ndots:3",
             "--add-host", "db.local:10.1.2.3", "--mac-address", "02:42:de:ad:be:ef", "busybox", "sh", "-c",
             "cat /etc/resolv.conf /etc/hosts; ip -o link show eth0").stdout
    assert "nameserver 192.0.2.53" in out and "search example.test" in out and "options ndots:3" in out, out
    assert "10.1.2.3\tdb.local" in out, out
    assert "02:42:de:ad:be:ef" in out, out


def test_published_ports(daemon):
    d = daemon
    port = free_port()
    _serve(d, "web", "-p", f"{port}:80", "-p", "127.0.0.1::80")
    out = dk(d, "port", "web").stdout
    assert f"80/tcp -> 0.0.0.0:{port}" in out, out
    eph = [l for l in out.splitlines() if "127.0.0.1:" in l]
    assert eph, out
    eph_port = int(eph[0].rsplit(":", 1)[1])
    for host, p in (("127.0.0.1", port), (_host_address(), port), ("127.0.0.1", eph_port)):
        body = poll(lambda: _http_get(host, p), 10, f"{host}:{p} to answer")
        assert body.endswith("hello from web\n"), body
    # Hairpin: another container reaches the port through the host's address.
    out = dk(d, "run", "--rm", "busybox", "wget", "-qO-", f"http://{_host_address()}:{port}/").stdout
    assert out == "hello from web\n"
    info = json.loads(dk(d, "inspect", "web").stdout)[0]
    assert info["HostConfig"]["PortBindings"]["80/tcp"][0]["HostPort"] == str(port)
    assert info["NetworkSettings"]["Ports"]["80/tcp"][0] == {"HostIp": "0.0.0.0", "HostPort": str(port)}
    ps = dk(d, "ps", "--format", "{{.Ports}}").stdout
    assert f"0.0.0.0:{port}->80/tcp" in ps, ps
    # UDP: the host port is bound (reserved) while the container runs.
    uport = free_port()
    dk(d, "run", "-d", "--name", "udp", "-p", f"{uport}:53/udp", "busybox", "sleep", "600")
    # Without a host address: 0.0.0.0 and :: (as dockerd; test_compat_net has the rest).
    assert dk(d, "port", "udp").stdout == f"53/udp -> 0.0.0.0:{uport}\n53/udp -> [::]:{uport}\n"
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as u, pytest.raises(OSError):
        u.bind(("0.0.0.0", uport))
    with socket.socket(socket.AF_INET6, socket.SOCK_DGRAM) as u, pytest.raises(OSError):
        u.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 1)
        u.bind(("::", uport))
    # -P publishes exposed ports on free host ports.
    dk(d, "run", "-d", "--name", "all", "--expose", "81", "-P", "busybox", "sleep", "600")
    out = dk(d, "port", "all", "81").stdout.strip()
    assert out.startswith("0.0.0.0:") and int(out.rsplit(":", 1)[1]) > 0, out
    # Stopping closes the ports.
    dk(d, "stop", "-t", "1", "web")
    with pytest.raises(OSError):
        _http_get("127.0.0.1", port, timeout=1)


def _pipes(pid: int) -> int:
    """How many pipe ends the process holds."""
    n = 0
    for f in os.scandir(f"/proc/{pid}/fd"):
        try:
            n += os.readlink(f.path).startswith("pipe:")
        except OSError:
            pass
    return n


def _echo_through(port: int, data: bytes, timeout: float = 60) -> bytes:
    """Sends `data` to 127.0.0.1:port while reading the reply, half-closes after the last
    byte, and returns everything read until the other end closes."""
    with socket.create_connection(("127.0.0.1", port), timeout=timeout) as s:
        def send():
            s.sendall(data)
            s.shutdown(socket.SHUT_WR)

        sender = threading.Thread(target=send, daemon=True)
        sender.start()
        chunks = []
        while chunk := s.recv(1 << 20):
            chunks.append(chunk)
        sender.join(timeout)
    return b"".join(chunks)


def test_published_port_relays_large_transfers_both_ways(daemon):
    """20 MB to an echo server through a published port and back, byte for byte: the
    client's half-close reaches the container and the reply still arrives after it."""
    d = daemon
    port = free_port()
    dk(d, "run", "-d", "--name", "echo", "-p", f"127.0.0.1:{port}:7", "busybox",
       "nc", "-ll", "-p", "7", "-e", "cat")
    # The proxy accepts before nc listens; a refused upstream closes the connection empty.
    poll(lambda: _echo_through(port, b"ping") == b"ping", 10, "the echo server to answer")
    pipes = _pipes(d.pid)
    data = os.urandom(20_000_000)
    got = _echo_through(port, data)
    assert len(got) == len(data) and got == data, f"{len(got)} of {len(data)} bytes came back"
    # A client that resets mid-transfer ends its relay too.
    with socket.create_connection(("127.0.0.1", port), timeout=10) as s:
        s.sendall(data[:1_000_000])
        s.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    # The proxy keeps serving new connections afterwards, and no relay's pipes outlive it.
    assert _echo_through(port, b"again") == b"again"
    poll(lambda: _pipes(d.pid) <= pipes, 10, f"berthd back to {pipes} pipes")


def _sockets_of(pid: int) -> list[socket.socket]:
    """Duplicates of the TCP sockets process `pid` holds (pidfd_getfd(2), x86-64 number
    438): their options can be read here. The caller closes them."""
    libc = ctypes.CDLL(None, use_errno=True)
    pidfd = os.pidfd_open(pid)
    found = []
    try:
        for entry in os.scandir(f"/proc/{pid}/fd"):
            try:
                if not os.readlink(entry.path).startswith("socket:"):
                    continue
            except OSError:
                continue
            fd = libc.syscall(438, pidfd, int(entry.name), 0)
            if fd < 0:
                continue
            s = socket.socket(fileno=fd)
            if s.family in (socket.AF_INET, socket.AF_INET6) and s.type == socket.SOCK_STREAM:
                found.append(s)
            else:
                s.close()
    finally:
        os.close(pidfd)
    return found


def _peer(s: socket.socket) -> tuple | None:
    try:
        return s.getpeername()[:2]
    except OSError:
        return None


def test_published_port_relay_sends_without_nagle(daemon):
    """Both sockets of a relayed connection have TCP_NODELAY (as docker-proxy's): with
    Nagle, a request the client writes in two pieces waits at the proxy for the
    container's delayed ACK (~40 ms) before its second piece goes on. Checked on the
    daemon's own sockets, duplicated with pidfd_getfd."""
    d = daemon
    port = free_port()
    dk(d, "run", "-d", "--name", "rr", "-p", f"127.0.0.1:{port}:7", "busybox",
       "nc", "-ll", "-p", "7", "-e", "cat")
    poll(lambda: _echo_through(port, b"x") == b"x", 10, "the echo server to answer")
    ip = dk(d, "inspect", "-f", "{{.NetworkSettings.IPAddress}}", "rr").stdout.strip()
    with socket.create_connection(("127.0.0.1", port), timeout=10) as c:
        c.sendall(b"a")
        assert c.recv(16) == b"a"  # relayed both ways: both of the proxy's sockets exist
        client_end = c.getsockname()[:2]
        socks = _sockets_of(d.pid)
        try:
            facing_client = [s for s in socks if _peer(s) == client_end]
            facing_container = [s for s in socks if _peer(s) == (ip, 7)]
            assert len(facing_client) == 1, [(_peer(s), s.getsockname()) for s in socks]
            assert len(facing_container) == 1, [(_peer(s), s.getsockname()) for s in socks]
            for s in facing_client + facing_container:
                assert s.getsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY) != 0, _peer(s)
        finally:
            for s in socks:
                s.close()


def test_taken_port_fails_cleanly(daemon):
    d = daemon
    with socket.socket() as s:
        s.bind(("0.0.0.0", 0))
        s.listen()
        port = s.getsockname()[1]
        r = dk(d, "run", "-d", "--name", "clash", "-p", f"{port}:80", "busybox", "sleep", "600", check=False)
        assert r.returncode != 0
        assert "address already in use" in r.stderr, r.stderr
    info = json.loads(dk(d, "inspect", "clash").stdout)[0]
    assert info["State"]["Running"] is False
    assert json.loads(dk(d, "network", "inspect", "bridge").stdout)[0]["Containers"] == {}
    assert _links(master=d.bridge) == []


def test_bad_input(daemon):
    d = daemon
    dk(d, "network", "create", "--subnet", "10.98.0.0/24", "a1")
    r = dk(d, "network", "create", "--subnet", "10.98.0.0/16", "a2", check=False)
    assert r.returncode != 0 and "Pool overlaps with other one on this address space" in r.stderr, r.stderr
    r = d.request("POST", "/v1.50/networks/create", headers={"Content-Type": "application/json"},
                  body=json.dumps({"Name": "a3", "IPAM": {"Config": [{"Subnet": "10.97.0.0/24", "Gateway": "10.96.0.1"}]}}).encode())
    assert r.status == 400 and "failed to allocate gateway (10.96.0.1)" in r.json()["message"], r.text
    r = dk(d, "network", "create", "a1", check=False)
    assert r.returncode != 0 and "network with name a1 already exists" in r.stderr
    r = dk(d, "network", "create", "-d", "overlay-x", "a4", check=False)
    assert r.returncode != 0 and 'plugin "overlay-x" not found' in r.stderr
    r = dk(d, "network", "rm", "nope", check=False)
    assert r.returncode != 0 and "network nope not found" in r.stderr
    r = dk(d, "run", "--rm", "--network", "nope", "busybox", "true", check=False)
    assert r.returncode != 0 and "network nope not found" in r.stderr
    r = dk(d, "run", "--rm", "--ip", "10.98.0.9", "busybox", "true", check=False)
    assert r.returncode != 0 and "user defined networks only" in r.stderr
    names = dk(d, "network", "ls", "--format", "{{.Name}}").stdout.split()
    assert sorted(names) == ["a1", "bridge", "host", "none"]
    assert dk(d, "ps", "-aq").stdout.strip() == ""


def test_restart_keeps_addresses_and_ports(daemon):
    d = daemon
    port = free_port()
    dk(d, "network", "create", "rn")
    _serve(d, "web", "--network", "rn", "-p", f"{port}:80")
    ip = dk(d, "inspect", "-f", "{{.NetworkSettings.Networks.rn.IPAddress}}", "web").stdout.strip()
    # httpd binds port 80 a moment after `docker run -d` returns.
    body = poll(lambda: _http_get("127.0.0.1", port), 10, "the published port")
    assert body.endswith("hello from web\n")
    d.restart()
    assert dk(d, "inspect", "-f", "{{.NetworkSettings.Networks.rn.IPAddress}}", "web").stdout.strip() == ip
    body = poll(lambda: _http_get("127.0.0.1", port), 10, "the published port after restart")
    assert body.endswith("hello from web\n")
    out = dk(d, "run", "--rm", "--network", "rn", "busybox", "wget", "-qO-", "http://web/").stdout
    assert out == "hello from web\n"
    # A new container gets a different address.
    ip2 = dk(d, "run", "--rm", "--network", "rn", "busybox", "sh", "-c",
             "ip -o -4 addr show eth0").stdout.split("inet ")[1].split("/")[0]
    assert ip2 != ip


def test_docker_py_networks(daemon):
    docker = importlib.import_module("docker")  # docker-py: .ci/run installs it
    d = daemon
    client = docker.DockerClient(base_url=d.unix_host)
    try:
        net = client.networks.create("pynet", driver="bridge", labels={"k": "v"})
        assert client.networks.get("pynet").attrs["Labels"] == {"k": "v"}
        assert [n.name for n in client.networks.list(filters={"label": "k=v"})] == ["pynet"]
        c = client.containers.run("busybox", "sleep 600", detach=True, name="pyc")
        net.connect(c, aliases=["pyalias"])
        net.reload()
        assert c.id in net.attrs["Containers"]
        out = client.containers.run("busybox", "ping -c1 -W2 pyalias", network="pynet", remove=True)
        assert b"1 packets received" in out
        net.disconnect(c)
        c.remove(force=True)
        pruned = client.networks.prune()
        assert pruned["NetworksDeleted"] == ["pynet"]
    finally:
        client.close()


def test_berth_cli_network_and_port(daemon):
    from conftest import berth

    d = daemon
    env = {"DOCKER_HOST": d.unix_host}
    since = dk(d, "version", "-f", "{{.Server.Version}}").stdout and str(int(__import__("time").time()) - 1)
    out = berth("network", "create", "--subnet", "10.91.3.0/24", "--label", "team=a", "bn", env=env).stdout.strip()
    assert len(out) == 64
    ls = berth("network", "ls", env=env).stdout
    assert ls.splitlines()[0].split() == ["NETWORK", "ID", "NAME", "DRIVER", "SCOPE"]
    assert any(l.split()[1:] == ["bn", "bridge", "local"] for l in ls.splitlines()[1:]), ls
    assert berth("network", "ls", "-q", "--filter", "label=team=a", env=env).stdout.strip() == out[:12]
    assert berth("network", "inspect", "-f", "{{.Driver}} {{.Name}}", "bn", env=env).stdout.strip() == "bridge bn"
    assert json.loads(berth("network", "inspect", "bn", env=env).stdout)[0]["IPAM"]["Config"] == [
        {"Subnet": "10.91.3.0/24"}]
    port = free_port()
    berth("run", "-d", "--name", "bweb", "--network", "bn", "--network-alias", "bw", "--ip", "10.91.3.7",
          "-p", f"127.0.0.1:{port}:80", "busybox", "sh", "-c",
          "mkdir /www && echo berth > /www/index.html && exec httpd -f -p 80 -h /www", env=env)
    assert berth("port", "bweb", env=env).stdout == f"80/tcp -> 127.0.0.1:{port}\n"
    assert berth("port", "bweb", "80", env=env).stdout == f"127.0.0.1:{port}\n"
    assert poll(lambda: _http_get("127.0.0.1", port), 10, "berth -p port").endswith("berth\n")
    out = dk(d, "run", "--rm", "--network", "bn", "busybox", "wget", "-qO-", "http://bw/").stdout
    assert out == "berth\n"
    r = berth("network", "rm", "bn", env=env, check=False)
    assert r.returncode != 0 and "has active endpoints" in r.stderr
    berth("rm", "-f", "bweb", env=env)
    assert berth("network", "rm", "bn", env=env).stdout == "bn\n"
    until = str(int(__import__("time").time()) + 1)
    ev = dk(d, "events", "--since", since, "--until", until, "--filter", "type=network",
            "--format", "{{.Action}} {{.Actor.Attributes.name}}").stdout.split("\n")
    actions = [l for l in ev if l.endswith(" bn")]
    assert actions[0] == "create bn" and actions[-1] == "destroy bn", ev
    assert "connect bn" in actions and "disconnect bn" in actions, ev


def test_internal_network_and_bridge_options(daemon):
    d = daemon
    name = d.bridge + "u"
    dk(d, "network", "create", "-o", f"com.docker.network.bridge.name={name}",
       "-o", "com.docker.network.driver.mtu=1400", "opts")
    assert name in _links()
    out = dk(d, "run", "--rm", "--network", "opts", "busybox", "ip", "-o", "link", "show", "eth0").stdout
    assert "mtu 1400" in out, out
    assert dk(d, "network", "inspect", "-f", "{{.Options}}", "opts").stdout.count(name) == 1
    dk(d, "network", "create", "--internal", "inside")
    host = _host_address()
    r = dk(d, "run", "--rm", "--network", "inside", "busybox", "ping", "-c1", "-W1", host, check=False)
    assert r.returncode != 0, r.stdout
    out = dk(d, "run", "--rm", "--network", "opts", "busybox", "ping", "-c1", "-W2", host).stdout
    assert "1 packets received" in out
    dk(d, "network", "rm", "opts", "inside")
    assert name not in _links()


def test_foreign_interfaces_are_never_adopted(daemon):
    d = daemon
    lo = "lo"
    r = dk(d, "network", "create", "-o", f"com.docker.network.bridge.name={lo}", "adopt", check=False)
    assert r.returncode != 0 and "already in use" in r.stderr, r.stderr
    assert "lo" in _links()
    assert dk(d, "network", "ls", "-q", "--filter", "name=adopt").stdout.strip() == ""
