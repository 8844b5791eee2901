"""Docker's API conventions: /_ping headers, version prefixes and their errors, 404s,
and /version and /info checked against the v1.50 swagger."""

from __future__ import annotations

from typing import Any

import pytest

from conftest import (
    API_VERSION,
    MIN_API_VERSION,
    Daemon,
    definition,
    poll,
    schema_errors,
    swagger,
    unix_connect,
)

# Key trees of what dockerd 20.10 emits for GET /info and GET /version (captured from
# dockerd 20.10.24 on these machines). None = leaf; a dict = nested object. Maps keyed by
# names (Runtimes, IndexConfigs, Details) are not listed: their keys are data.
DOCKERD_2010_INFO: dict[str, Any] = {
    **dict.fromkeys(
        [
            "ID", "Containers", "ContainersRunning", "ContainersPaused", "ContainersStopped", "Images",
            "Driver", "DriverStatus", "MemoryLimit", "SwapLimit", "KernelMemory", "KernelMemoryTCP",
            "CpuCfsPeriod", "CpuCfsQuota", "CPUShares", "CPUSet", "PidsLimit", "IPv4Forwarding",
            "BridgeNfIptables", "BridgeNfIp6tables", "Debug", "NFd", "OomKillDisable", "NGoroutines",
            "SystemTime", "LoggingDriver", "CgroupDriver", "CgroupVersion", "NEventsListener",
            "KernelVersion", "OperatingSystem", "OSVersion", "OSType", "Architecture",
            "IndexServerAddress", "NCPU", "MemTotal", "GenericResources", "DockerRootDir", "HttpProxy",
            "HttpsProxy", "NoProxy", "Name", "Labels", "ExperimentalBuild", "ServerVersion", "Runtimes",
            "DefaultRuntime", "LiveRestoreEnabled", "Isolation", "InitBinary", "SecurityOptions",
            "Warnings",
        ]
    ),  # fmt: skip
    "Plugins": dict.fromkeys(["Volume", "Network", "Authorization", "Log"]),
    "RegistryConfig": dict.fromkeys(["InsecureRegistryCIDRs", "IndexConfigs", "Mirrors"]),
    "Swarm": dict.fromkeys(["NodeID", "NodeAddr", "LocalNodeState", "ControlAvailable", "Error", "RemoteManagers"]),
    "ContainerdCommit": dict.fromkeys(["ID"]),
    "RuncCommit": dict.fromkeys(["ID"]),
    "InitCommit": dict.fromkeys(["ID"]),
}
DOCKERD_2010_VERSION: dict[str, Any] = {
    **dict.fromkeys(
        ["Version", "ApiVersion", "MinAPIVersion", "GitCommit", "GoVersion", "Os", "Arch", "KernelVersion", "BuildTime"]
    ),
    "Platform": dict.fromkeys(["Name"]),
    "Components": [dict.fromkeys(["Name", "Version"])],
}

# The brief's floor, whatever the tree above says.
INFO_MUST = [
    "ID", "Containers", "Images", "Driver", "DockerRootDir", "KernelVersion", "OperatingSystem", "NCPU",
    "MemTotal", "CgroupDriver", "CgroupVersion", "ServerVersion", "Runtimes", "DefaultRuntime",
    "SecurityOptions", "Name",
]  # fmt: skip


def _resolve(schema: dict[str, Any]) -> dict[str, Any]:
    while "$ref" in schema:
        schema = swagger()["definitions"][schema["$ref"].split("/")[-1]]
    return schema


def missing_keys(value: Any, tree: Any, schema: dict[str, Any], where: str = "$") -> list[str]:
    """Keys in `tree` (dockerd's) that the swagger also defines but `value` lacks."""
    schema = _resolve(schema)
    out: list[str] = []
    if isinstance(tree, list):
        if isinstance(value, list) and "items" in schema:
            for i, item in enumerate(value):
                out += missing_keys(item, tree[0], schema["items"], f"{where}[{i}]")
        return out
    if not isinstance(tree, dict) or not isinstance(value, dict):
        return out
    props = schema.get("properties", {})
    for key, sub in tree.items():
        if key not in props:
            continue  # removed from the API since 20.10 (e.g. KernelMemory)
        if key not in value:
            out.append(f"{where}.{key}")
        elif sub is not None and value[key] is not None:
            out += missing_keys(value[key], sub, props[key], f"{where}.{key}")
    return out


# ---- /_ping


PING_HEADERS = {
    "api-version": API_VERSION,
    "ostype": "linux",
    "docker-experimental": "false",
    "cache-control": "no-cache, no-store, must-revalidate",
    "pragma": "no-cache",
}


@pytest.mark.parametrize("path", ["/_ping", f"/v{API_VERSION}/_ping", f"/v{MIN_API_VERSION}/_ping"])
def test_ping_get(berthd, path):
    d = berthd()
    r = d.request("GET", path)
    assert r.status == 200
    assert r.body == b"OK"
    for k, v in PING_HEADERS.items():
        assert r.header(k) == v, f"{k}: {r.header(k)!r} (headers {r.headers})"
    assert r.header("builder-version") is not None, r.headers
    assert (r.header("content-type") or "").startswith("text/plain"), r.headers


def test_ping_head(berthd):
    d = berthd()
    r = d.request("HEAD", "/_ping")
    assert r.status == 200
    assert r.body == b""
    for k, v in PING_HEADERS.items():
        assert r.header(k) == v, f"{k}: {r.header(k)!r}"
    assert r.header("builder-version") is not None, r.headers


def test_api_version_header_on_other_routes(berthd):
    d = berthd()
    r = d.request("GET", "/version")
    assert r.header("api-version") == API_VERSION, r.headers
    assert r.header("ostype") == "linux", r.headers


# ---- version prefix


@pytest.mark.parametrize("version", ["1.51", "1.100", "2.0", "1.99"])
def test_too_new(berthd, version):
    d = berthd()
    r = d.request("GET", f"/v{version}/version")
    assert r.status == 400, r
    assert (r.header("content-type") or "").startswith("application/json"), r.headers
    assert r.json() == {
        "message": f"client version {version} is too new. Maximum supported API version is {API_VERSION}"
    }


@pytest.mark.parametrize("version", ["1.23", "1.12", "1.9", "1.0"])
def test_too_old(berthd, version):
    d = berthd()
    r = d.request("GET", f"/v{version}/version")
    assert r.status == 400, r
    assert r.json() == {
        "message": f"client version {version} is too old. Minimum supported API version is "
        f"{MIN_API_VERSION}, please upgrade your client to a newer version"
    }


@pytest.mark.parametrize("version", [MIN_API_VERSION, "1.30", "1.41", "1.44", API_VERSION])
def test_supported_versions(berthd, version):
    d = berthd()
    for path in ("/version", "/info"):
        r = d.request("GET", f"/v{version}{path}")
        assert r.status == 200, (path, r.status, r.text)
    assert d.get_json(f"/v{version}/version")["ApiVersion"] == API_VERSION


def test_unversioned(berthd):
    d = berthd()
    assert d.get_json("/version")["ApiVersion"] == API_VERSION
    assert d.get_json("/info")["ID"]


@pytest.mark.parametrize("path", ["/nope", "/v1.50/nope", "/containers/json/extra/deep", "/vX.Y/version"])
def test_unknown_route(berthd, path):
    d = berthd()
    r = d.request("GET", path)
    assert r.status == 404, (r.status, r.text)
    assert (r.header("content-type") or "").startswith("application/json"), r.headers
    assert r.json() == {"message": "page not found"}


def test_keepalive_many_requests(berthd):
    d = berthd()
    stream = unix_connect(d.sock)
    try:
        for i in range(50):
            path = ("/_ping", "/version", "/info")[i % 3]
            r = stream.request("GET", path)
            assert r.status == 200, (i, path, r.status)
    finally:
        stream.close()


# ---- swagger


def test_version_matches_swagger(berthd):
    d = berthd()
    v = d.get_json("/version")
    errors = schema_errors(v, definition("SystemVersion"))
    assert not errors, errors
    missing = missing_keys(v, DOCKERD_2010_VERSION, definition("SystemVersion"))
    assert not missing, f"/version lacks keys dockerd 20.10 sends: {missing}"
    assert v["ApiVersion"] == API_VERSION
    assert v["MinAPIVersion"] == MIN_API_VERSION
    assert v["Os"] == "linux"
    assert v["Arch"] in ("amd64", "arm64", "arm", "386", "ppc64le", "s390x", "riscv64")
    engine = [c for c in v["Components"] if c["Name"] == "Engine"]
    assert engine and engine[0]["Version"] == v["Version"], v["Components"]
    with open("/proc/sys/kernel/osrelease") as f:
        assert v["KernelVersion"] == f.read().strip()


def test_info_matches_swagger(berthd):
    d = berthd()
    info = d.get_json("/info")
    errors = schema_errors(info, definition("SystemInfo"))
    assert not errors, errors
    missing = missing_keys(info, DOCKERD_2010_INFO, definition("SystemInfo"))
    assert not missing, f"/info lacks keys dockerd 20.10 sends: {missing}"
    absent = [k for k in INFO_MUST if k not in info]
    assert not absent, absent


def test_info_values(berthd):
    d: Daemon = berthd()
    info = d.get_json("/info")
    assert info["DockerRootDir"] == str(d.data_root)
    assert info["ID"]
    assert info["Containers"] == 0 and info["Images"] == 0
    assert info["OSType"] == "linux"
    import os

    assert info["NCPU"] in (os.cpu_count(), len(os.sched_getaffinity(0)))
    with open("/proc/meminfo") as f:
        mem_kib = int(f.readline().split()[1])
    assert abs(info["MemTotal"] - mem_kib * 1024) < 64 * 1024 * 1024, (info["MemTotal"], mem_kib)
    with open("/proc/sys/kernel/osrelease") as f:
        assert info["KernelVersion"] == f.read().strip()
    assert info["CgroupDriver"] in ("cgroupfs", "systemd", "none")
    assert info["CgroupVersion"] in ("1", "2")
    assert info["DefaultRuntime"] in info["Runtimes"], info["Runtimes"]
    assert isinstance(info["SecurityOptions"], list)
    assert info["Name"]
    assert info["ServerVersion"] == d.get_json("/version")["Version"]


def test_request_log_lines(berthd):
    d = berthd()
    assert d.request("GET", "/version").status == 200
    assert d.request("GET", "/nope").status == 404

    def logged(path: str, status: str) -> bool:
        return any(path in ln and status in ln and "GET" in ln for ln in d.log_text().splitlines())

    poll(lambda: logged("/version", "200") and logged("/nope", "404"), 10, "request log lines on stderr")
