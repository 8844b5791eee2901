"""Networks as dockerd answers them (issue 15 §2): create refusals worded like dockerd's
(host/null drivers, ingress without swarm, duplicate names, bad driver options, IPAM
checks), what inspect reports (Scope, Attachable, Labels, Options, AuxiliaryAddresses),
IPRange and AuxAddress in address allocation, and the bridge driver's
`enable_ip_masquerade` / `enable_icc` options in berth's own iptables chains.

Every daemon has its own bridge and address pool (conftest `pick_network`); the subnets
used here are carved from the end of that pool, and each test checks that no bridge or
iptables rule of its networks stays behind."""

from __future__ import annotations

import ipaddress
import json
import subprocess

from conftest import DOCKER_BIN


def dk(d, *args, check=True, timeout=60):
    return subprocess.run([DOCKER_BIN, *args], env=d.docker_env, capture_output=True, text=True,
                          timeout=timeout, check=check)


def _create(d, body: dict):
    return d.request("POST", "/v1.43/networks/create", headers={"Content-Type": "application/json"},
                     body=json.dumps(body).encode())


def _subnet(d, i: int) -> ipaddress.IPv4Network:
    """The `i`th /24 from the end of the daemon's own pool (auto-allocation takes them from
    the start)."""
    return list(ipaddress.ip_network(d.pool).subnets(new_prefix=24))[-1 - i]


def _rules(word: str) -> list[str]:
    out = subprocess.run(["iptables-save"], capture_output=True, text=True, check=True).stdout
    return [l for l in out.splitlines() if word in l.split()]


def _link_exists(name: str) -> bool:
    return subprocess.run(["ip", "link", "show", name], capture_output=True).returncode == 0


def test_create_refusals_worded_like_dockerd(busybox_daemon):
    d = busybox_daemon()
    net = str(_subnet(d, 0))
    cases = [
        ({"Name": "h", "Driver": "host"}, 403, 'only one instance of "host" network is allowed'),
        ({"Name": "n", "Driver": "null"}, 403, 'only one instance of "null" network is allowed'),
        ({"Name": "i", "Ingress": True}, 403, "Ingress network can only be global scope network"),
        ({"Name": "p", "Driver": "nope"}, 404, 'plugin "nope" not found'),
        ({"Name": "m", "Options": {"com.docker.network.bridge.enable_ip_masquerade": "maybe"}}, 400,
         "com.docker.network.bridge.enable_ip_masquerade value: maybe"),
        ({"Name": "c", "Options": {"com.docker.network.bridge.enable_icc": "x"}}, 400,
         "com.docker.network.bridge.enable_icc value: x"),
        ({"Name": "a", "IPAM": {"Config": [{"Subnet": net, "AuxiliaryAddresses": {"x": "192.0.2.1"}}]}}, 400,
         f"invalid auxiliary address x: parent subnet {net} doesn't contain this address"),
        ({"Name": "s", "IPAM": {"Config": [{"Subnet": net}, {"Subnet": str(_subnet(d, 1))}]}}, 403,
         "bridge driver doesn't support multiple subnets"),
        ({"Name": "v6", "EnableIPv6": True}, 404,
         "could not find an available, non-overlapping IPv6 address pool among the defaults"),
    ]
    for body, status, words in cases:
        r = _create(d, body)
        assert r.status == status and words in r.json()["message"], (body, r.status, r.text)
    # The docker CLI says the same.
    r = dk(d, "network", "create", "-d", "host", "h2", check=False)
    assert r.returncode != 0 and 'only one instance of "host" network is allowed' in r.stderr, r.stderr
    r = dk(d, "network", "create", "--ingress", "i2", check=False)
    assert r.returncode != 0 and "Ingress network can only be global scope network" in r.stderr, r.stderr
    # CheckDuplicate (API < 1.44): a second network of that name is a conflict.
    assert _create(d, {"Name": "dup", "CheckDuplicate": True}).status == 201
    r = _create(d, {"Name": "dup", "CheckDuplicate": True})
    assert r.status == 409 and r.json()["message"] == "network with name dup already exists", r.text
    names = sorted(dk(d, "network", "ls", "--format", "{{.Name}}").stdout.split())
    assert names == ["bridge", "dup", "host", "none"], names
    dk(d, "network", "rm", "dup")


def test_inspect_reports_what_was_asked(busybox_daemon):
    d = busybox_daemon()
    net = _subnet(d, 0)
    aux = str(net[200])
    br = d.bridge + "c"
    body = {
        "Name": "rep", "Attachable": True, "Labels": {"tier": "db"},
        "Options": {"com.docker.network.bridge.name": br, "com.example.unknown": "kept"},
        "IPAM": {"Config": [{"Subnet": str(net), "Gateway": str(net[254]),
                             "IPRange": str(ipaddress.ip_network(f"{net[128]}/25")),
                             "AuxiliaryAddresses": {"router": aux}}]},
    }
    r = _create(d, body)
    assert r.status == 201, r.text
    v = json.loads(dk(d, "network", "inspect", "rep").stdout)[0]
    assert v["Scope"] == "local" and v["Attachable"] is True and v["Ingress"] is False, v
    assert v["Labels"] == {"tier": "db"}
    assert v["Options"] == body["Options"], v["Options"]
    assert v["IPAM"]["Config"] == [{"Subnet": str(net), "Gateway": str(net[254]),
                                    "IPRange": f"{net[128]}/25", "AuxiliaryAddresses": {"router": aux}}], v["IPAM"]
    assert _link_exists(br)
    dk(d, "network", "rm", "rep")
    assert not _link_exists(br)


def test_ip_range_and_aux_addresses_are_respected(busybox_daemon):
    d = busybox_daemon()
    net = _subnet(d, 0)
    rng = ipaddress.ip_network(f"{net[248]}/29")
    aux = str(net[249])
    dk(d, "network", "create", "--subnet", str(net), "--ip-range", str(rng), "--aux-address", f"gw2={aux}", "rng")
    got = []
    for name in ("r1", "r2", "r3"):
        dk(d, "run", "-d", "--name", name, "--network", "rng", "busybox", "sleep", "600")
        ip = dk(d, "inspect", "-f", "{{.NetworkSettings.Networks.rng.IPAddress}}", name).stdout.strip()
        got.append(ip)
    assert all(ipaddress.ip_address(ip) in rng for ip in got), got
    assert aux not in got, got
    assert len(set(got)) == 3, got
    # Asking for the reserved address is refused as an address in use.
    r = dk(d, "run", "--rm", "--network", "rng", "--ip", aux, "busybox", "true", check=False)
    assert r.returncode != 0 and f"Address already in use: {aux}" in r.stderr, r.stderr
    dk(d, "rm", "-f", "r1", "r2", "r3")
    dk(d, "network", "rm", "rng")


def test_masquerade_and_icc_options(busybox_daemon):
    d = busybox_daemon()
    br = d.bridge + "q"
    net = _subnet(d, 0)
    before = _rules(br)
    assert before == []
    dk(d, "network", "create", "--subnet", str(net), "-o", f"com.docker.network.bridge.name={br}",
       "-o", "com.docker.network.bridge.enable_ip_masquerade=false",
       "-o", "com.docker.network.bridge.enable_icc=false", "quiet")
    rules = _rules(br)
    assert not [l for l in rules if "MASQUERADE" in l], rules
    assert [l for l in rules if f"-i {br} -o {br} -j DROP" in l], rules
    assert not [l for l in rules if f"-i {br} -o {br} -j ACCEPT" in l], rules
    # No traffic between the network's containers.
    dk(d, "run", "-d", "--name", "q1", "--network", "quiet", "busybox", "sleep", "600")
    ip = dk(d, "inspect", "-f", "{{.NetworkSettings.Networks.quiet.IPAddress}}", "q1").stdout.strip()
    r = dk(d, "run", "--rm", "--network", "quiet", "busybox", "ping", "-c1", "-W1", ip, check=False)
    assert r.returncode != 0, r.stdout
    dk(d, "rm", "-f", "q1")
    dk(d, "network", "rm", "quiet")
    assert _rules(br) == []
    assert not _link_exists(br)


def test_internal_network_reaches_its_own_containers(busybox_daemon):
    d = busybox_daemon()
    br = d.bridge + "i"
    dk(d, "network", "create", "--internal", "-o", f"com.docker.network.bridge.name={br}", "inner")
    rules = _rules(br)
    assert not [l for l in rules if "MASQUERADE" in l], rules
    dk(d, "run", "-d", "--name", "i1", "--network", "inner", "busybox", "sleep", "600")
    out = dk(d, "run", "--rm", "--network", "inner", "busybox", "ping", "-c1", "-W2", "i1").stdout
    assert "1 packets received" in out, out
    # Nothing outside the subnet is routed: the default bridge's gateway is not reachable.
    gw = d.bip.split("/")[0]
    r = dk(d, "run", "--rm", "--network", "inner", "busybox", "ping", "-c1", "-W1", gw, check=False)
    assert r.returncode != 0, r.stdout
    dk(d, "rm", "-f", "i1")
    dk(d, "network", "rm", "inner")
    assert _rules(br) == []
    assert not _link_exists(br)


def test_connect_static_ip_needs_a_configured_subnet_and_mac_is_honoured(busybox_daemon):
    d = busybox_daemon()
    dk(d, "network", "create", "auto")
    sub = json.loads(dk(d, "network", "inspect", "auto").stdout)[0]["IPAM"]["Config"][0]["Subnet"]
    ip = str(ipaddress.ip_network(sub)[9])
    dk(d, "run", "-d", "--name", "m1", "busybox", "sleep", "600")
    r = dk(d, "network", "connect", "--ip", ip, "auto", "m1", check=False)
    assert r.returncode != 0 and ("user specified IP address is supported only when connecting to networks "
                                  "with user configured subnets") in r.stderr, r.stderr
    r = dk(d, "run", "--rm", "--network", "auto", "--ip", ip, "busybox", "true", check=False)
    assert r.returncode != 0 and "user configured subnets" in r.stderr, r.stderr
    # MacAddress on connect, to a running container, is the interface's.
    mac = "02:aa:bb:cc:dd:01"
    r = d.request("POST", "/v1.43/networks/auto/connect", headers={"Content-Type": "application/json"},
                  body=json.dumps({"Container": "m1", "EndpointConfig": {"MacAddress": mac}}).encode())
    assert r.status == 200, r.text
    out = dk(d, "exec", "m1", "cat", "/sys/class/net/eth1/address").stdout.strip()
    assert out == mac, out
    got = dk(d, "inspect", "-f", "{{.NetworkSettings.Networks.auto.MacAddress}}", "m1").stdout.strip()
    assert got == mac, got
    dk(d, "create", "--name", "m2", "busybox", "true")
    r = d.request("POST", "/v1.43/networks/auto/connect", headers={"Content-Type": "application/json"},
                  body=json.dumps({"Container": "m2", "EndpointConfig": {"MacAddress": "zz"}}).encode())
    assert r.status == 400 and "invalid MAC address: zz" in r.json()["message"], r.text
    dk(d, "rm", "-f", "m1", "m2")
    dk(d, "network", "rm", "auto")


def test_host_binding_ipv4_is_where_ports_bind(busybox_daemon):
    d = busybox_daemon()
    dk(d, "network", "create", "-o", "com.docker.network.bridge.host_binding_ipv4=127.0.0.1", "lo-only")
    dk(d, "run", "-d", "--name", "p1", "--network", "lo-only", "-p", "80", "busybox", "sleep", "600")
    out = dk(d, "port", "p1", "80").stdout.split()
    assert len(out) == 1 and out[0].startswith("127.0.0.1:"), out
    # An address given with -p still wins.
    dk(d, "run", "-d", "--name", "p2", "--network", "lo-only", "-p", "0.0.0.0::80", "busybox", "sleep", "600")
    out = dk(d, "port", "p2", "80").stdout.split()
    assert out and out[0].startswith("0.0.0.0:"), out
    r = _create(d, {"Name": "bad", "Options": {"com.docker.network.bridge.host_binding_ipv4": "nope"}})
    assert r.status == 400 and "host_binding_ipv4: nope" in r.json()["message"], r.text
    dk(d, "rm", "-f", "p1", "p2")
    dk(d, "network", "rm", "lo-only")


def test_links_and_link_local_ips_on_a_user_network(busybox_daemon):
    d = busybox_daemon()
    dk(d, "network", "create", "lk")
    dk(d, "run", "-d", "--name", "db", "--network", "lk", "busybox", "sleep", "600")
    db_ip = dk(d, "inspect", "-f", "{{.NetworkSettings.Networks.lk.IPAddress}}", "db").stdout.strip()
    # A link's alias resolves in the linking container only.
    out = dk(d, "run", "--rm", "--network", "lk", "--link", "db:store", "busybox", "nslookup", "store").stdout
    assert db_ip in out, out
    r = dk(d, "run", "--rm", "--network", "lk", "busybox", "nslookup", "store", check=False)
    assert db_ip not in r.stdout, r.stdout
    # On connect too, with link-local addresses kept and reported (`app` runs on a user
    # network, so it has the embedded DNS).
    dk(d, "network", "create", "lk2")
    dk(d, "run", "-d", "--name", "app", "--network", "lk2", "busybox", "sleep", "600")
    dk(d, "network", "connect", "--link", "db:cache", "--link-local-ip", "169.254.7.7", "lk", "app")
    ep = json.loads(dk(d, "inspect", "app").stdout)[0]["NetworkSettings"]["Networks"]["lk"]
    assert ep["IPAMConfig"] == {"LinkLocalIPs": ["169.254.7.7"]}, ep
    assert ep["Links"] == ["db:cache"], ep
    out = dk(d, "exec", "app", "nslookup", "cache").stdout
    assert db_ip in out, out
    r = d.request("POST", "/v1.43/networks/lk/connect", headers={"Content-Type": "application/json"},
                  body=json.dumps({"Container": "db", "EndpointConfig": {}}).encode())
    assert r.status == 403, r.text
    dk(d, "create", "--name", "c3", "busybox", "true")
    for ec, words in [({"IPAMConfig": {"LinkLocalIPs": ["x"]}}, "invalid link-local IP address: x"),
                      ({"Links": [":a"]}, "invalid link format: :a")]:
        r = d.request("POST", "/v1.43/networks/lk/connect", headers={"Content-Type": "application/json"},
                      body=json.dumps({"Container": "c3", "EndpointConfig": ec}).encode())
        assert r.status == 400 and words in r.json()["message"], (ec, r.text)
    dk(d, "rm", "-f", "db", "app", "c3")
    dk(d, "network", "rm", "lk", "lk2")
