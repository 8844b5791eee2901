"""IPv6 networks, one subnet per family, legacy links on the default bridge, and
link-local addresses (issue 15 §2), as dockerd 20.10 answers them.

- `EnableIPv6` with an IPv6 subnet: the bridge carries the IPv6 gateway (the subnet's
  first address unless given), each container an address handed out in order from the
  subnet (or its IPRange), its default route through the gateway, its `/etc/hosts` line;
  inspect shows `GlobalIPv6Address`, `GlobalIPv6PrefixLen`, `IPv6Gateway`; `--ip6` asks
  for one. ip6tables gets the same chains and rules as iptables (masquerade of the IPv6
  subnet, isolation from other bridges); they go with the last IPv6 network.
- What dockerd refuses: `EnableIPv6` without an IPv6 subnet (20.10 has no default IPv6
  pools), a second subnet of one family ("bridge driver doesn't support multiple subnets"),
  a gateway outside the subnet, an overlap. The differential test asks the reference
  dockerd the same and compares.
- `--link` on the default bridge: `/etc/hosts` entries and the `ALIAS_*` environment of
  the linked container, `HostConfig.Links` as `/db:/web/alias` (following renames,
  removable with `rm --link`); with `--icc=false` the linked container's exposed ports stay
  open to the linking one; a missing or stopped container refused in dockerd's words.

Every daemon has its own bridge and IPv4 pool (conftest `pick_network`); the IPv6 subnets
here are made from that pool's numbers, so two test daemons never share one. Each test
checks that no bridge, address, route or ip6tables rule of its networks stays behind."""

from __future__ import annotations

import ipaddress
import json
import socket
import subprocess

import pytest

import refdockerd
from conftest import DOCKER_BIN, berth, poll, unix_request


def dk(d, *args, check=True, timeout=60):
    r = subprocess.run([DOCKER_BIN, *args], env=d.docker_env, capture_output=True, text=True, timeout=timeout)
    assert not check or r.returncode == 0, (args, r.stderr)
    return r


def _create(sock_owner, body: dict):
    return sock_owner.request("POST", "/v1.41/networks/create", headers={"Content-Type": "application/json"},
                              body=json.dumps(body).encode())


def _subnet(d, i: int) -> ipaddress.IPv4Network:
    """The `i`th /24 from the end of the daemon's own IPv4 pool."""
    return list(ipaddress.ip_network(d.pool).subnets(new_prefix=24))[-1 - i]


def _subnet6(d, i: int) -> ipaddress.IPv6Network:
    """An IPv6 /64 of this daemon's own: fd42:A:B:i::/64 from its pool 10.A.B.0/20."""
    _, a, b, _ = str(ipaddress.ip_network(d.pool).network_address).split(".")
    return ipaddress.ip_network(f"fd42:{int(a):x}:{int(b):x}:{i:x}::/64")


def _ip6tables(table: str) -> list[str]:
    return subprocess.run(["ip6tables", "-w", "-t", table, "-S"], capture_output=True, text=True,
                          check=True).stdout.splitlines()


def _left_behind(d, subnets6, bridges) -> list[str]:
    """What of these networks is still on the host: bridges, IPv6 routes, ip6tables rules
    or chains of this daemon."""
    out = []
    for br in bridges:
        if subprocess.run(["ip", "link", "show", br], capture_output=True).returncode == 0:
            out.append(f"bridge {br}")
    for s in subnets6:
        r = subprocess.run(["ip", "-6", "route", "show", str(s)], capture_output=True, text=True).stdout
        if r.strip():
            out.append(f"route {r.strip()}")
        a = subprocess.run(["ip", "-6", "addr"], capture_output=True, text=True).stdout
        if str(s.network_address).rstrip(":") in a:
            out.append(f"address of {s}")
    for table in ("filter", "nat"):
        out += [l for l in _ip6tables(table) if d.bridge in l]
    return out


@pytest.fixture
def busybox_daemon(busybox_daemon):
    """These daemons run in the host's network namespace: `--ip-forward=false`, so that
    their IPv6 networks leave the host's `net.ipv6.conf.*.forwarding` as it is (berthd
    turns it on as dockerd does otherwise: test_compat_net checks that in a namespace of
    its own)."""
    def make(**kw):
        kw["extra_args"] = ["--ip-forward=false", *kw.get("extra_args", ())]
        return busybox_daemon(**kw)
    return make


@pytest.fixture(autouse=True)
def _ipv6_host():
    v = subprocess.run(["sysctl", "-n", "net.ipv6.conf.all.disable_ipv6"], capture_output=True, text=True)
    assert v.stdout.strip() == "0", "IPv6 is disabled on this host (net.ipv6.conf.all.disable_ipv6)"
    assert subprocess.run(["ip6tables", "-w", "-S"], capture_output=True).returncode == 0, "ip6tables is missing"


def test_dual_stack_network(busybox_daemon):
    d = busybox_daemon()
    v4, v6 = _subnet(d, 0), _subnet6(d, 0)
    br = d.bridge + "6"
    dk(d, "network", "create", "--ipv6", "--subnet", str(v4), "--subnet", str(v6),
       "-o", f"com.docker.network.bridge.name={br}", "n6")
    try:
        net = json.loads(dk(d, "network", "inspect", "n6").stdout)[0]
        assert net["EnableIPv6"] is True, net
        assert {"Subnet": str(v6)} in net["IPAM"]["Config"], net["IPAM"]
        # The bridge has the IPv6 gateway (the subnet's first address).
        addrs = subprocess.run(["ip", "-6", "addr", "show", "dev", br], capture_output=True, text=True).stdout
        assert f"{v6[1]}/64" in addrs, addrs
        dk(d, "run", "-d", "--name", "ca", "--network", "n6", "busybox", "sleep", "600")
        dk(d, "run", "-d", "--name", "cb", "--network", "n6", "--ip6", str(v6[0x99]), "busybox", "sleep", "600")
        ep = json.loads(dk(d, "inspect", "ca").stdout)[0]["NetworkSettings"]["Networks"]["n6"]
        assert (ep["GlobalIPv6Address"], ep["GlobalIPv6PrefixLen"], ep["IPv6Gateway"]) == (str(v6[2]), 64, str(v6[1])), ep
        assert ep["IPAddress"] == str(v4[2]), ep
        ep = json.loads(dk(d, "inspect", "cb").stdout)[0]["NetworkSettings"]["Networks"]["n6"]
        assert ep["GlobalIPv6Address"] == str(v6[0x99]), ep
        assert ep["IPAMConfig"] == {"IPv6Address": str(v6[0x99])}, ep
        # Inside: the address, the default route through the gateway, /etc/hosts.
        inside = dk(d, "exec", "ca", "ip", "-6", "addr", "show", "dev", "eth0").stdout
        assert f"{v6[2]}/64" in inside, inside
        routes = dk(d, "exec", "ca", "ip", "-6", "route").stdout
        assert f"default via {v6[1]}" in routes, routes
        hosts = dk(d, "exec", "ca", "cat", "/etc/hosts").stdout
        assert f"{v6[2]}\t" in hosts, hosts
        # The embedded DNS answers AAAA with the IPv6 address.
        out = dk(d, "exec", "ca", "nslookup", "-type=AAAA", "cb").stdout
        assert str(v6[0x99]) in out, out
        # Containers reach each other and the gateway over IPv6.
        dk(d, "exec", "ca", "ping", "-6", "-c", "1", "-W", "5", str(v6[0x99]))
        dk(d, "exec", "ca", "ping", "-6", "-c", "1", "-W", "5", str(v6[1]))
        # Asked-for addresses: taken, or outside the subnet.
        r = dk(d, "run", "--rm", "--network", "n6", "--ip6", str(v6[0x99]), "busybox", "true", check=False)
        assert r.returncode != 0 and "Address already in use" in r.stderr, r.stderr
        other = _subnet6(d, 9)[5]
        r = dk(d, "run", "--rm", "--network", "n6", "--ip6", str(other), "busybox", "true", check=False)
        assert r.returncode != 0 and f"Invalid address {other}: It does not belong to any of this network's subnets" in r.stderr, r.stderr
        r = dk(d, "run", "--rm", "--ip6", str(v6[7]), "busybox", "true", check=False)
        assert r.returncode != 0 and "user specified IP address is supported on user defined networks only" in r.stderr, r.stderr
        # The network's view.
        cs = json.loads(dk(d, "network", "inspect", "n6").stdout)[0]["Containers"]
        assert sorted(c["IPv6Address"] for c in cs.values()) == sorted([f"{v6[2]}/64", f"{v6[0x99]}/64"]), cs
        # ip6tables mirrors iptables: masquerade of the IPv6 subnet, isolation, forwarding.
        nat = _ip6tables("nat")
        assert any(f"-s {v6}" in l and "MASQUERADE" in l and d.bridge in l for l in nat), nat
        filt = _ip6tables("filter")
        assert f"-A BERTH-ISO-{d.bridge} -o {br} -j DROP" in filt, filt
        assert f"-A BERTH-FWD-{d.bridge} -i {br} ! -o {br} -j ACCEPT" in filt, filt
        assert any(l == f"-A FORWARD -j BERTH-FWD-{d.bridge}" for l in filt), filt
    finally:
        dk(d, "rm", "-f", "ca", "cb", check=False)
        dk(d, "network", "rm", "n6", check=False)
    assert _left_behind(d, [v6], [br]) == []


def test_ipv6_network_comes_back_after_a_restart(busybox_daemon):
    d = busybox_daemon()
    v6 = _subnet6(d, 1)
    br = d.bridge + "r"
    dk(d, "network", "create", "--ipv6", "--subnet", str(v6), "-o", f"com.docker.network.bridge.name={br}", "r6")
    try:
        dk(d, "run", "-d", "--name", "keep", "--network", "r6", "busybox", "sleep", "600")
        # Gone from the host (as after a reboot): the daemon makes it all again.
        subprocess.run(["ip", "link", "del", br], check=True)
        d.restart()
        addrs = subprocess.run(["ip", "-6", "addr", "show", "dev", br], capture_output=True, text=True).stdout
        assert f"{v6[1]}/64" in addrs, addrs
        assert any(f"-s {v6}" in l for l in _ip6tables("nat"))
        ip = dk(d, "inspect", "-f", "{{.NetworkSettings.Networks.r6.GlobalIPv6Address}}", "keep").stdout.strip()
        assert ip == str(v6[2]), ip
        # Its address stays its own: the next container gets another.
        dk(d, "run", "-d", "--name", "next", "--network", "r6", "busybox", "sleep", "600")
        ip2 = dk(d, "inspect", "-f", "{{.NetworkSettings.Networks.r6.GlobalIPv6Address}}", "next").stdout.strip()
        assert ip2 == str(v6[3]), ip2
    finally:
        dk(d, "rm", "-f", "keep", "next", check=False)
        dk(d, "network", "rm", "r6", check=False)
    assert _left_behind(d, [v6], [br]) == []


def _refusals(v4a: str, v4b: str, v6a: str, v6b: str, v6other: str) -> list[dict]:
    return [
        {"Name": "x6", "EnableIPv6": True},
        {"Name": "m4", "IPAM": {"Config": [{"Subnet": v4a}, {"Subnet": v4b}]}},
        {"Name": "m6", "EnableIPv6": True, "IPAM": {"Config": [{"Subnet": v6a}, {"Subnet": v6b}]}},
        {"Name": "g6", "EnableIPv6": True, "IPAM": {"Config": [{"Subnet": v6a, "Gateway": v6other}]}},
    ]


def test_ipv6_refusals_worded_like_dockerd(busybox_daemon):
    d = busybox_daemon()
    v6a, v6b = _subnet6(d, 2), _subnet6(d, 3)
    cases = zip(_refusals(str(_subnet(d, 2)), str(_subnet(d, 3)), str(v6a), str(v6b), str(v6b[1])), [
        (404, "could not find an available, non-overlapping IPv6 address pool among the defaults to assign to the network"),
        (403, "bridge driver doesn't support multiple subnets"),
        (403, "bridge driver doesn't support multiple subnets"),
        (400, f"failed to allocate gateway ({v6b[1]}): Requested address is out of range"),
    ])
    for body, (status, words) in cases:
        r = _create(d, body)
        assert (r.status, r.json()["message"]) == (status, words), (body, r.status, r.text)
    # An IPv6 config without EnableIPv6 is kept and shown, and unused (as dockerd does).
    assert _create(d, {"Name": "kept", "IPAM": {"Config": [{"Subnet": str(v6a)}]}}).status == 201
    net = json.loads(dk(d, "network", "inspect", "kept").stdout)[0]
    assert net["EnableIPv6"] is False and {"Subnet": str(v6a)} in net["IPAM"]["Config"], net
    # An overlapping IPv6 subnet.
    r = _create(d, {"Name": "ov", "EnableIPv6": True, "IPAM": {"Config": [{"Subnet": str(v6a)}]}})
    assert (r.status, r.json()["message"]) == (403, "Pool overlaps with other one on this address space"), r.text
    dk(d, "network", "rm", "kept")
    assert _left_behind(d, [v6a, v6b], []) == []


@pytest.fixture
def reference(docker_env):
    with refdockerd.running() as ref:
        yield ref


class _Ref:
    def __init__(self, sock):
        self.sock = sock

    def request(self, method, path, **kw):
        return unix_request(self.sock, method, path, **kw)


def test_ipv6_refusals_match_the_reference(busybox_daemon, reference):
    """The same create bodies against berthd and dockerd 20.10: the same status and words,
    and the same IPAM config and EnableIPv6 where both accept."""
    d = busybox_daemon()
    ref = _Ref(reference.sock)
    v6a, v6b = _subnet6(d, 4), _subnet6(d, 5)
    # Subnets of this daemon's own (the reference runs in a network namespace of its own).
    bodies = _refusals(str(_subnet(d, 4)), str(_subnet(d, 5)), str(v6a), str(v6b), str(v6b[1]))
    bodies.append({"Name": "ok6", "EnableIPv6": True,
                   "IPAM": {"Config": [{"Subnet": str(_subnet(d, 6))},
                                       {"Subnet": str(v6a), "IPRange": f"{v6a[256]}/120"}]}})
    for body in bodies:
        got = [_create(x, body) for x in (d, ref)]
        ok = [r.status == 201 for r in got]
        assert ok[0] == ok[1], (body, [(r.status, r.text) for r in got])
        if not ok[0]:
            assert got[0].json()["message"] == got[1].json()["message"], (body, [r.text for r in got])
            continue
        views = [x.request("GET", f"/v1.41/networks/{body['Name']}").json() for x in (d, ref)]
        assert [(v["EnableIPv6"], v["IPAM"]["Config"]) for v in views][0] == \
               [(v["EnableIPv6"], v["IPAM"]["Config"]) for v in views][1], views
        for x in (d, ref):
            x.request("DELETE", f"/v1.41/networks/{body['Name']}")
    assert _left_behind(d, [v6a, v6b], []) == []


def test_legacy_links_on_the_default_bridge(busybox_daemon):
    d = busybox_daemon()
    dk(d, "run", "-d", "--name", "db", "-e", "FOO=bar", "--expose", "5432", "--expose", "53/udp",
       "busybox", "sleep", "600")
    db_ip = dk(d, "inspect", "-f", "{{.NetworkSettings.IPAddress}}", "db").stdout.strip()
    db_id = dk(d, "inspect", "-f", "{{.Id}}", "db").stdout.strip()
    out = dk(d, "run", "--name", "web", "--link", "db:store", "--link", "db", "busybox",
             "sh", "-c", "env; echo ---; cat /etc/hosts").stdout
    env, hosts = out.split("---\n")
    env = set(env.split("\n"))
    for want in [f"STORE_PORT=udp://{db_ip}:53", f"STORE_PORT_5432_TCP=tcp://{db_ip}:5432",
                 f"STORE_PORT_5432_TCP_ADDR={db_ip}", "STORE_PORT_5432_TCP_PORT=5432",
                 "STORE_PORT_5432_TCP_PROTO=tcp", f"STORE_PORT_53_UDP=udp://{db_ip}:53",
                 "STORE_NAME=/web/store", "STORE_ENV_FOO=bar", "DB_NAME=/web/db", "DB_ENV_FOO=bar"]:
        assert want in env, (want, env)
    assert not any(e.startswith("STORE_ENV_PATH=") for e in env), env
    assert f"{db_ip}\tstore {db_id[:12]} db\n" in hosts, hosts
    assert f"{db_ip}\tdb {db_id[:12]}\n" in hosts, hosts
    links = json.loads(dk(d, "inspect", "-f", "{{json .HostConfig.Links}}", "web").stdout)
    assert links == ["/db:/web/store", "/db:/web/db"], links
    # A link removed (`docker rm --link`) is gone from inspect and from the next start.
    r = d.request("DELETE", "/v1.41/containers/web/store?link=1")
    assert r.status == 204, r.text
    links = json.loads(dk(d, "inspect", "-f", "{{json .HostConfig.Links}}", "web").stdout)
    assert links == ["/db:/web/db"], links
    out = dk(d, "start", "-a", "web").stdout
    assert "STORE_" not in out and "DB_NAME=/web/db" in out, out
    assert f"{db_ip}\tstore" not in out and f"{db_ip}\tdb {db_id[:12]}\n" in out, out
    r = d.request("DELETE", "/v1.41/containers/web/store?link=1")
    assert (r.status, r.json()["message"]) == (404, "No such container: web/store"), r.text
    # Links follow a rename of either end.
    dk(d, "rename", "db", "db2")
    dk(d, "rename", "web", "web2")
    links = json.loads(dk(d, "inspect", "-f", "{{json .HostConfig.Links}}", "web2").stdout)
    assert links == ["/db2:/web2/db"], links
    out = dk(d, "start", "-a", "web2").stdout
    assert "DB_NAME=/web2/db" in out and f"{db_ip}\tdb {db_id[:12]} db2\n" in out, out
    dk(d, "rename", "db2", "db")
    # The container's own variable wins over a link's.
    out = dk(d, "run", "--rm", "--link", "db:store", "-e", "STORE_NAME=mine", "busybox", "sh", "-c", "echo $STORE_NAME").stdout
    assert out.strip() == "mine", out
    # A missing container, a stopped one: dockerd's words.
    r = d.request("POST", "/v1.41/containers/create", headers={"Content-Type": "application/json"},
                  body=json.dumps({"Image": "busybox", "HostConfig": {"Links": ["nope:x"]}}).encode())
    assert (r.status, r.json()["message"]) == (400, "could not get container for nope: No such container: nope"), r.text
    r = d.request("POST", "/v1.41/containers/create", headers={"Content-Type": "application/json"},
                  body=json.dumps({"Image": "busybox", "HostConfig": {"Links": ["db:x"], "NetworkMode": "host"}}).encode())
    assert r.status == 400 and "host type networking can't be used with links" in r.json()["message"], r.text
    dk(d, "create", "--name", "stopped", "busybox", "true")
    r = dk(d, "run", "--rm", "--name", "lk", "--link", "stopped:x", "busybox", "true", check=False)
    assert r.returncode != 0 and "Cannot link to a non running container: /stopped AS /lk/x" in r.stderr, r.stderr
    dk(d, "rm", "-f", "db", "web2", "stopped", "lk", check=False)


def test_link_local_addresses_are_set(busybox_daemon):
    d = busybox_daemon()
    dk(d, "network", "create", "--subnet", str(_subnet(d, 6)), "ll")
    try:
        out = dk(d, "run", "--rm", "--network", "ll", "--link-local-ip", "169.254.9.9",
                 "--link-local-ip", "fe80::99", "busybox", "ip", "addr", "show", "dev", "eth0").stdout
        assert "169.254.9.9/16" in out and "fe80::99/64" in out, out
        # On connect too.
        dk(d, "run", "-d", "--name", "llc", "busybox", "sleep", "600")
        dk(d, "network", "connect", "--link-local-ip", "169.254.9.10", "ll", "llc")
        out = dk(d, "exec", "llc", "ip", "addr", "show", "dev", "eth1").stdout
        assert "169.254.9.10/16" in out, out
    finally:
        dk(d, "rm", "-f", "llc", check=False)
        dk(d, "network", "rm", "ll", check=False)


def test_berth_cli_flags(busybox_daemon):
    """`berth network create --ipv6` (a gateway goes with the subnet of its family), `berth
    run --ip6 --link-local-ip --link`."""
    d = busybox_daemon()
    v4, v6 = _subnet(d, 7), _subnet6(d, 7)
    br = d.bridge + "b"
    berth("network", "create", "--ipv6", "--subnet", str(v4), "--subnet", str(v6), "--gateway", str(v6[0xfe]),
          "-o", f"com.docker.network.bridge.name={br}", "bn6", env=d.docker_env)
    try:
        cfg = json.loads(dk(d, "network", "inspect", "bn6").stdout)[0]["IPAM"]["Config"]
        assert cfg == [{"Subnet": str(v4)}, {"Subnet": str(v6), "Gateway": str(v6[0xfe])}], cfg
        berth("run", "-d", "--name", "bc1", "--network", "bn6", "--ip6", str(v6[0x42]),
              "--link-local-ip", "169.254.3.3", "busybox", "sleep", "600", env=d.docker_env)
        out = dk(d, "exec", "bc1", "ip", "addr", "show", "dev", "eth0").stdout
        assert f"{v6[0x42]}/64" in out and "169.254.3.3/16" in out, out
        berth("run", "-d", "--name", "bdb", "busybox", "sleep", "600", env=d.docker_env)
        out = berth("run", "--rm", "--name", "bweb", "--link", "bdb:store", "busybox", "sh", "-c", "echo $STORE_NAME",
                    env=d.docker_env).stdout
        assert out.strip() == "/bweb/store", out
    finally:
        dk(d, "rm", "-f", "bc1", "bdb", check=False)
        dk(d, "network", "rm", "bn6", check=False)
    assert _left_behind(d, [v6], [br]) == []


def test_port_published_on_an_ipv6_host_address(busybox_daemon):
    """`-p [::1]::80`: the proxy listens on the IPv6 address (it was refused as an invalid
    IP address) and forwards to the container."""
    d = busybox_daemon()
    dk(d, "run", "-d", "--name", "web6", "-p", "[::1]::80", "busybox", "sh", "-c",
       "echo hello6 > /i.html && httpd -f -p 80 -h /")
    try:
        out = dk(d, "port", "web6", "80").stdout.split()
        assert len(out) == 1 and out[0].startswith("[::1]:"), out
        port = int(out[0].rsplit(":", 1)[1])

        def fetch():
            with socket.create_connection(("::1", port), timeout=5) as c:
                c.sendall(b"GET /i.html HTTP/1.0\r\n\r\n")
                data = b""
                while chunk := c.recv(4096):
                    data += chunk
            return b"hello6" in data

        poll(fetch, 30, "the page over [::1]")
    finally:
        dk(d, "rm", "-f", "web6", check=False)


def _fwd_rules(d) -> list[str]:
    out = subprocess.run(["iptables", "-w", "-S", f"BERTH-FWD-{d.bridge}"], capture_output=True, text=True).stdout
    return out.splitlines()


def test_links_open_their_ports_without_icc(busybox_daemon):
    """`--icc=false`: containers on the default bridge do not reach each other, but a
    legacy link opens the linked container's exposed ports to the one linking (and the
    rules go when it stops)."""
    d = busybox_daemon(extra_args=["--icc=false"])
    assert json.loads(dk(d, "network", "inspect", "bridge").stdout)[0]["Options"][
        "com.docker.network.bridge.enable_icc"] == "false"
    dk(d, "run", "-d", "--name", "db", "--expose", "80", "busybox", "sh", "-c",
       "echo linked > /i.html && httpd -f -p 80 -h /")
    dk(d, "run", "-d", "--name", "other", "--expose", "80", "busybox", "sh", "-c",
       "echo other > /i.html && httpd -f -p 80 -h /")
    db_ip = dk(d, "inspect", "-f", "{{.NetworkSettings.IPAddress}}", "db").stdout.strip()
    other_ip = dk(d, "inspect", "-f", "{{.NetworkSettings.IPAddress}}", "other").stdout.strip()
    try:
        dk(d, "run", "-d", "--name", "web", "--link", "db", "busybox", "sleep", "600")
        web_ip = dk(d, "inspect", "-f", "{{.NetworkSettings.IPAddress}}", "web").stdout.strip()
        rule = f"-s {web_ip}/32 -d {db_ip}/32 -i {d.bridge} -o {d.bridge} -p tcp -m tcp --dport 80 -j ACCEPT"
        assert any(rule in l for l in _fwd_rules(d)), _fwd_rules(d)
        out = poll(lambda: dk(d, "run", "--rm", "--link", "db", "busybox", "wget", "-qO-", f"http://{db_ip}/i.html",
                              check=False).stdout, 30, "the linked port")
        assert "linked" in out, out
        # Not linked: dropped (icc off).
        r = dk(d, "run", "--rm", "--link", "db", "busybox", "wget", "-qO-", "-T", "2", f"http://{other_ip}/i.html",
               check=False)
        assert r.returncode != 0 and "other" not in r.stdout, r.stdout
        dk(d, "stop", "-t", "1", "web")
        assert not any(f"-s {web_ip}/32" in l for l in _fwd_rules(d)), _fwd_rules(d)
    finally:
        dk(d, "rm", "-f", "db", "other", "web", check=False)
