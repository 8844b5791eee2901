"""`--bridge=none` (and daemon.json `"bridge": "none"`), as dockerd's DisableBridge: no
default `bridge` network, interface or iptables chains for it; containers left on the
default network start with loopback only; user networks, `host` and `none` still work.
Moving a data root between bridge settings leaves no earlier run's bridge or chains.

The daemons here run without conftest's `--bridge`/`--bip` (`bridge_flags=False`); their
chains are named after their data root (hostclean `no_bridge_tag`)."""

from __future__ import annotations

import ipaddress
import json
import subprocess
from pathlib import Path

from conftest import DOCKER_BIN, expect_start_failure, poll
from hostclean import cleanup_bridges, no_bridge_tag, pick_network


def dk(d, *args, check=True, timeout=60):
    return subprocess.run([DOCKER_BIN, *args], env=d.docker_env, capture_output=True, text=True,
                          timeout=timeout, check=check)


def _links() -> list[str]:
    out = subprocess.run(["ip", "-o", "link", "show"], capture_output=True, text=True).stdout
    return [l.split(":")[1].strip().split("@")[0] for l in out.splitlines() if ":" in l]


def _rules(tag: str) -> list[str]:
    """Every line of `iptables-save` naming one of the chains `BERTH-*-<tag>`."""
    out = subprocess.run(["iptables-save"], capture_output=True, text=True, check=True).stdout
    return [l for l in out.splitlines() if f"-{tag}" in l and "BERTH-" in l]


def _interfaces(d, *run_args: str) -> list[str]:
    """The interfaces a container run with `run_args` sees (from /proc/net/dev)."""
    out = dk(d, "run", "--rm", *run_args, "busybox", "cat", "/proc/net/dev").stdout
    return sorted(l.split(":")[0].strip() for l in out.splitlines() if ":" in l)


def _names(d) -> list[str]:
    return sorted(dk(d, "network", "ls", "--format", "{{.Name}}").stdout.split())


def _record_drivers(d) -> list[str]:
    return sorted(json.loads(p.read_text())["driver"] for p in (d.data_root / "network" / "networks").glob("*.json"))


def _no_bridge_daemon(busybox_daemon, **kw):
    kw.setdefault("extra_args", ["--bridge=none"])
    return busybox_daemon(bridge_flags=False, **kw)


def test_no_default_bridge(busybox_daemon):
    berth0_before = "berth0" in _links()
    d = _no_bridge_daemon(busybox_daemon)
    tag = no_bridge_tag(d.data_root)
    assert _names(d) == ["host", "none"]
    r = dk(d, "network", "inspect", "bridge", check=False)
    assert r.returncode != 0 and "network bridge not found" in r.stderr, r.stderr
    # No bridge record, no default bridge interface, no chains.
    assert _record_drivers(d) == ["host", "null"]
    assert ("berth0" in _links()) == berth0_before
    assert d.bridge not in _links()
    assert _rules(tag) == []
    # The default network and `--network bridge`: loopback only; `none` as before.
    assert _interfaces(d) == ["lo"]
    assert _interfaces(d, "--network", "bridge") == ["lo"]
    assert _interfaces(d, "--network", "none") == ["lo"]
    assert _interfaces(d, "--network", "host") != ["lo"]
    out = dk(d, "run", "--rm", "busybox", "ping", "-c", "1", "-W", "1", "127.0.0.1").stdout
    assert "1 packets received" in out, out
    # Inspect: no address, the default network shown with no endpoint; a published port
    # has nothing to forward to and is not bound (as with dockerd).
    dk(d, "run", "-d", "--name", "c1", "-p", "80", "busybox", "sleep", "300")
    info = json.loads(dk(d, "inspect", "c1").stdout)[0]
    ns = info["NetworkSettings"]
    assert ns["IPAddress"] == "" and ns["Gateway"] == "", ns
    assert list(ns["Networks"]) == ["bridge"], ns["Networks"]
    assert ns["Networks"]["bridge"]["IPAddress"] == "" and ns["Networks"]["bridge"]["NetworkID"] == ""
    assert info["HostConfig"]["NetworkMode"] in ("default", "bridge")
    assert dk(d, "port", "c1").stdout.strip() == ""
    assert dk(d, "ps", "--format", "{{.Networks}}", "--filter", "name=c1").stdout.strip() == "bridge"
    assert dk(d, "exec", "c1", "cat", "/proc/net/dev").stdout.count(":") == 1
    # An IP address or alias on the default network is still refused, as dockerd does.
    r = dk(d, "run", "--rm", "--network", "bridge", "--ip", "10.1.2.3", "busybox", "true", check=False)
    assert r.returncode != 0 and "user defined networks only" in r.stderr, r.stderr
    # `docker info` still works and still offers the bridge driver.
    plugins = json.loads(dk(d, "info", "--format", "{{json .Plugins.Network}}").stdout)
    assert "bridge" in plugins
    dk(d, "rm", "-f", "c1")
    assert _rules(tag) == []


def test_user_network_without_default_bridge(busybox_daemon):
    d = _no_bridge_daemon(busybox_daemon, extra_args=[], config={"bridge": "none"})
    tag = no_bridge_tag(d.data_root)
    assert _names(d) == ["host", "none"]
    dk(d, "network", "create", "un")
    net = json.loads(dk(d, "network", "inspect", "un").stdout)[0]
    subnet = ipaddress.ip_network(net["IPAM"]["Config"][0]["Subnet"])
    br = net["Options"].get("com.docker.network.bridge.name") or f"br-{net['Id'][:12]}"
    assert br in _links()
    assert _names(d) == ["host", "none", "un"]
    # The user network's rules live in this daemon's own chains.
    rules = _rules(tag)
    assert any(f"BERTH-FWD-{tag}" in l and br in l for l in rules), rules
    assert any(f"BERTH-POST-{tag}" in l and str(subnet) in l for l in rules), rules
    dk(d, "run", "-d", "--name", "ca", "--network", "un", "busybox", "sleep", "300")
    ip = dk(d, "inspect", "-f", "{{.NetworkSettings.Networks.un.IPAddress}}", "ca").stdout.strip()
    assert ipaddress.ip_address(ip) in subnet
    out = dk(d, "run", "--rm", "--network", "un", "busybox", "ping", "-c", "1", "-W", "2", "ca").stdout
    assert ip in out, out
    assert "1 packets received" in out, out
    assert "eth0" in _interfaces(d, "--network", "un")
    # A container created on the default network can join the user network.
    dk(d, "create", "--name", "cb", "busybox", "sleep", "300")
    dk(d, "network", "connect", "un", "cb")
    dk(d, "start", "cb")
    ipb = dk(d, "inspect", "-f", "{{.NetworkSettings.Networks.un.IPAddress}}", "cb").stdout.strip()
    assert ipaddress.ip_address(ipb) in subnet
    out = dk(d, "exec", "cb", "ping", "-c", "1", "-W", "2", "ca").stdout
    assert "1 packets received" in out, out
    dk(d, "rm", "-f", "ca", "cb")
    dk(d, "network", "rm", "un")
    # The last bridge network gone: the bridge and our chains go with it.
    assert br not in _links()
    assert _rules(tag) == []


def test_restart_into_bridge_none(busybox_daemon):
    """A daemon that had a default bridge, restarted with `--bridge=none`: the old bridge,
    its chains and its network go; a container made on it then starts with loopback only."""
    d = busybox_daemon()
    assert d.bridge in _links()
    dk(d, "create", "--name", "old", "busybox", "sleep", "300")
    dk(d, "network", "create", "un")
    d.stop()
    d.bridge_flags = False
    d.extra_args = ["--bridge=none"]
    d.start()
    tag = no_bridge_tag(d.data_root)
    assert _names(d) == ["host", "none", "un"]
    poll(lambda: d.bridge not in _links(), 10, "the old default bridge to go")
    poll(lambda: _rules(d.bridge) == [], 10, "the old default bridge's chains to go")
    poll(lambda: _rules(tag) != [], 10, "the user network's rules in the new chains")
    dk(d, "start", "old")
    assert dk(d, "inspect", "-f", "{{.NetworkSettings.IPAddress}}", "old").stdout.strip() == ""
    assert dk(d, "exec", "old", "cat", "/proc/net/dev").stdout.count(":") == 1
    dk(d, "rm", "-f", "old")
    dk(d, "network", "rm", "un")
    assert _rules(tag) == []


def _ping_between_containers(d, *net_args: str) -> None:
    """A container on `net_args` (the default network without) answers a ping from another:
    by name on a user network, by address on the default one."""
    dk(d, "run", "-d", "--name", "ca", *net_args, "busybox", "sleep", "300")
    target = "ca" if net_args else dk(d, "inspect", "-f", "{{.NetworkSettings.IPAddress}}", "ca").stdout.strip()
    out = dk(d, "run", "--rm", *net_args, "busybox", "ping", "-c", "1", "-W", "2", target).stdout
    assert "1 packets received" in out, out
    dk(d, "rm", "-f", "ca")


def test_restart_out_of_bridge_none(busybox_daemon):
    """A `--bridge=none` daemon with a user network, restarted with a default bridge: the
    user network's rules move to the new bridge's chains, and the chains named after the
    data root go."""
    d = _no_bridge_daemon(busybox_daemon)
    tag = no_bridge_tag(d.data_root)
    try:
        dk(d, "network", "create", "un")
        assert _rules(tag) != []
        d.stop()
        d.bridge_flags = True
        d.extra_args = []
        d.start()
        assert _names(d) == ["bridge", "host", "none", "un"]
        poll(lambda: _rules(tag) == [], 10, f"the chains of the --bridge=none run ({tag}) to go")
        poll(lambda: any("BERTH-POST-" + d.bridge in l for l in _rules(d.bridge)), 10,
             "the new default bridge's chains")
        _ping_between_containers(d, "--network", "un")
        dk(d, "network", "rm", "un")
    finally:
        cleanup_bridges(tag, d.data_root)


def test_renamed_default_bridge(busybox_daemon):
    """Restarted with another `--bridge` name (same `--bip`): the old bridge and its chains
    go, the default network and a user network work on the new ones."""
    d = busybox_daemon()
    old = d.bridge
    try:
        dk(d, "network", "create", "un")
        assert _rules(old) != []
        d.stop()
        d.bridge = pick_network()[0]
        d.start()
        poll(lambda: old not in _links(), 10, f"the old bridge ({old}) to go")
        poll(lambda: _rules(old) == [], 10, f"the old bridge's chains ({old}) to go")
        poll(lambda: _rules(d.bridge) != [], 10, "the new bridge's chains")
        assert d.bridge in _links()
        _ping_between_containers(d)
        dk(d, "network", "rm", "un")
    finally:
        cleanup_bridges(old, d.data_root)


def test_bridge_none_with_bip_is_refused(berthd):
    d = berthd(bridge_flags=False, extra_args=["--bridge=none", "--bip=10.250.0.1/24"], start=False)
    r = expect_start_failure(d.argv())
    assert "mutually exclusive" in r.stderr, r.stderr
    d = berthd(bridge_flags=False, config={"bridge": "none", "bip": "10.250.0.1/24"}, start=False)
    r = expect_start_failure(d.argv())
    assert "mutually exclusive" in r.stderr, r.stderr
    assert not Path(f"/sys/class/net/{d.bridge}").exists()
    assert _rules(no_bridge_tag(d.data_root)) == []
