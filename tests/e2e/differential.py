"""A differential harness: the same requests to berthd and to the reference dockerd 20.10,
their answers compared — status codes, JSON shapes (keys and types, not values) and error
texts (IDs normalised). The requests come from the Engine API 1.41 swagger that dockerd
20.10 implements: for every operation a base request on fresh objects, one with a missing
object, one per query parameter with a valid value, and one per boolean or integer
parameter with an invalid value.

Each case gets fresh objects of its own (a running container, a tagged image, a network,
a volume, an exec) made the same way on both engines with the same names, so one case's
changes cannot leak into the next. Routes that need the internet (pull, search, login),
would turn dockerd into a swarm manager, or hijack the connection are listed in SKIP with
the reason."""

from __future__ import annotations

import io
import json
import re
import socket
import tarfile
import threading
import time
import urllib.parse
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

import yaml

from conftest import Response, shared_dir, unix_connect

SWAGGER = "docker-engine-api-v1.41.yaml"
MISSING = "berth-diff-missing"
# Seconds one request may take, answer included.
REQUEST_DEADLINE = 30

# (method, path) -> why the harness does not send it.
SKIP: dict[tuple[str, str], str] = {
    ("GET", "/containers/{id}/attach/ws"): "a websocket upgrade",
    ("POST", "/containers/{id}/attach"): "hijacks the connection (covered by the CLI tests)",
    ("POST", "/session"): "BuildKit's session protocol",
    ("GET", "/distribution/{name}/json"): "needs a registry on the internet",
    ("POST", "/auth"): "needs a registry on the internet",
    ("GET", "/images/search"): "needs Docker Hub",
    ("POST", "/images/create"): "pulls from Docker Hub",
    ("POST", "/images/{name}/push"): "pushes to Docker Hub",
    ("POST", "/plugins/pull"): "needs Docker Hub",
    ("GET", "/plugins/privileges"): "needs Docker Hub",
    ("POST", "/plugins/{name}/upgrade"): "needs Docker Hub",
    ("POST", "/plugins/{name}/push"): "needs Docker Hub",
    ("POST", "/swarm/init"): "would make the reference a swarm manager (berthd has no swarm mode)",
    ("POST", "/swarm/join"): "would reach for a manager on the network",
    ("GET", "/containers/{id}/logs"): "streams raw frames (covered by the CLI tests); shape n/a",
    ("GET", "/containers/{id}/export"): "a tar stream; compared by the archive tests",
    ("GET", "/images/{name}/get"): "a tar stream; compared by the image tests",
    ("GET", "/images/get"): "a tar stream; compared by the image tests",
}

# Operations whose answer is a stream of JSON messages, compared by status only.
STATUS_ONLY = {
    ("POST", "/build"), ("POST", "/images/load"), ("GET", "/events"),
    ("GET", "/containers/{id}/archive"), ("PUT", "/containers/{id}/archive"),
    ("HEAD", "/containers/{id}/archive"),
}

# Objects whose keys are data, not schema (labels, options, network names...).
DYNAMIC_KEYS = {
    "Labels", "Options", "Networks", "Ports", "ExposedPorts", "Volumes", "DriverOpts",
    "Status", "Data", "IndexConfigs", "Runtimes", "Containers", "Sysctls", "Tmpfs",
    "LogConfig.Config", "StorageOpt", "Annotations", "RegistryConfig.IndexConfigs", "Aliases",
}


@dataclass
class World:
    """Names of one case's fresh objects (the same on both engines)."""
    n: int
    container: str = ""
    image: str = ""
    network: str = ""
    volume: str = ""
    exec_id: dict[str, str] = field(default_factory=dict)  # engine -> exec id


@dataclass
class Case:
    id: str
    method: str
    path: str  # swagger template
    variant: str  # base, missing, param:NAME, bad:NAME
    query: dict[str, str]
    needs: set[str]  # container, image, network, volume, exec


@dataclass
class Outcome:
    case: Case
    berth: tuple[int, Any]
    dockerd: tuple[int, Any]
    diffs: list[str]


def load_operations() -> list[tuple[str, str, dict[str, Any]]]:
    spec = yaml.safe_load((shared_dir() / "reference" / SWAGGER).read_text())
    ops = []
    for path, methods in spec["paths"].items():
        for method, op in methods.items():
            if method == "parameters":
                continue
            ops.append((method.upper(), path, op))
    return ops


def sample(name: str, schema_type: str, enum: list[Any] | None) -> str:
    special = {
        "filters": "{}", "signal": "SIGTERM", "condition": "not-running", "repo": "diffrepo",
        "tag": "v1", "since": "0", "until": str(int(time.time()) + 1), "name": "renamed",
        "container": "", "t": "1", "timeout": "1", "h": "24", "w": "80", "ps_args": "-ef",
        "path": "/etc/hostname", "changes": "", "platform": "", "dockerfile": "Dockerfile",
        "fromImage": "", "fromSrc": "", "comment": "x", "author": "x", "keep-storage": "0",
        "detachKeys": "ctrl-p,ctrl-q", "version": "0", "remote": "", "buildargs": "{}",
        "labels": "{}", "cachefrom": "[]", "target": "", "networkmode": "", "outputs": "",
        "extrahosts": "", "cpusetcpus": "", "shmsize": "0", "memory": "0", "memswap": "0",
        "cpushares": "0", "cpuperiod": "0", "cpuquota": "0", "ulimits": "[]",
        "isolation": "", "squash": "0", "pull": "", "message": "", "tail": "all",
    }
    if name in special:
        return special[name]
    if enum:
        return str(enum[0])
    return {"boolean": "1", "integer": "1"}.get(schema_type, "x")


def cases() -> list[Case]:
    out: list[Case] = []
    for method, path, op in load_operations():
        if (method, path) in SKIP:
            continue
        needs = needs_of(path)
        params = [p for p in op.get("parameters", []) if p.get("in") == "query"]
        base_q = {p["name"]: sample(p["name"], p.get("type", "string"), p.get("enum"))
                  for p in params if p.get("required")}
        cid = f"{method} {path}"
        out.append(Case(f"{cid} base", method, path, "base", base_q, needs))
        if "{" in path:
            out.append(Case(f"{cid} missing", method, path, "missing", base_q, needs))
        for p in params:
            if p.get("required"):
                continue
            q = dict(base_q)
            q[p["name"]] = sample(p["name"], p.get("type", "string"), p.get("enum"))
            out.append(Case(f"{cid} param:{p['name']}", method, path, f"param:{p['name']}", q, needs))
            if p.get("type") in ("boolean", "integer"):
                q = dict(base_q)
                q[p["name"]] = "notanumber"
                out.append(Case(f"{cid} bad:{p['name']}", method, path, f"bad:{p['name']}", q, needs))
    return out


def needs_of(path: str) -> set[str]:
    if path == "/containers/{id}/wait":
        return {"container", "short"}  # a container that ends at once: wait answers
    if path.startswith("/containers/{id}") or path == "/commit":
        return {"container"}
    if path.startswith("/images/{name}"):
        return {"image"}
    if path.startswith("/networks/{id}"):
        return {"network", "container"} if path.endswith(("connect", "disconnect")) else {"network"}
    if path.startswith("/volumes/{name}"):
        return {"volume"}
    if path.startswith("/exec/{id}"):
        return {"container", "exec"}
    return set()


def build_context() -> bytes:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w") as t:
        data = b"FROM busybox\nLABEL berth.diff=1\n"
        info = tarfile.TarInfo("Dockerfile")
        info.size = len(data)
        t.addfile(info, io.BytesIO(data))
    return buf.getvalue()


def body_for(case: Case, w: World) -> tuple[bytes, dict[str, str]]:
    j: Any = None
    m, p = case.method, case.path
    if (m, p) == ("POST", "/containers/create"):
        j = {"Image": "busybox", "Cmd": ["true"]}
    elif p == "/containers/{id}/update":
        j = {"CpuShares": 512}
    elif p == "/containers/{id}/exec":
        j = {"Cmd": ["true"]}
    elif p == "/exec/{id}/start":
        j = {"Detach": True}
    elif p == "/networks/create":
        j = {"Name": f"dn-new-{w.n}"}
    elif p in ("/networks/{id}/connect", "/networks/{id}/disconnect"):
        j = {"Container": w.container}
    elif p == "/volumes/create":
        j = {"Name": f"dv-new-{w.n}"}
    elif p == "/build":
        return build_context(), {"Content-Type": "application/x-tar"}
    elif m in ("POST", "PUT") and p not in ("/containers/{id}/archive", "/images/load"):
        j = {}
    if j is None:
        return b"", {}
    return json.dumps(j).encode(), {"Content-Type": "application/json"}


def url_for(case: Case, w: World, engine: str) -> str:
    path = case.path
    subst = {
        "/containers/{id}": w.container, "/images/{name}": w.image, "/networks/{id}": w.network,
        "/volumes/{name}": w.volume, "/exec/{id}": w.exec_id.get(engine, ""),
    }
    for prefix, value in subst.items():
        if path.startswith(prefix):
            path = path.replace(prefix.rsplit("/", 1)[1], MISSING if case.variant == "missing" else value, 1)
    path = re.sub(r"\{[^}]+\}", MISSING, path)
    q = dict(case.query)
    if case.path == "/commit":
        q["container"] = MISSING if case.variant == "missing" else w.container
    if case.path == "/containers/{id}/rename" and "name" in q:
        q["name"] = f"dc-renamed-{w.n}"
    if case.path == "/images/{name}/tag":
        q.setdefault("repo", f"diffrepo{w.n}")
    if case.path == "/containers/create":
        q["name"] = f"dc-new-{w.n}"
    if case.path.startswith("/containers/{id}/archive"):
        q.setdefault("path", "/etc/hostname")
    if case.path == "/containers/{id}/stats":
        q["stream"] = "0"  # a stream never ends: its first answer only
    if case.path == "/events":
        q.setdefault("until", str(int(time.time()) + 1))
    qs = urllib.parse.urlencode(q)
    return f"/v1.41{path}" + (f"?{qs}" if qs else "")


def parse(resp: Response) -> Any:
    if not resp.body:
        return None
    ctype = resp.header("content-type") or ""
    if "json" in ctype:
        try:
            return json.loads(resp.body)
        except ValueError:
            return "<bad json>"
    return f"<{ctype or 'no content-type'}>"


def shape(v: Any, where: str = "") -> dict[str, str]:
    """Flattened key paths with JSON types (an empty list is an "empty array": the shape
    of its items is unknown, not different)."""
    out: dict[str, str] = {}
    name = where.rsplit(".", 1)[-1]
    if isinstance(v, dict):
        out[where or "$"] = "object"
        dynamic = name in DYNAMIC_KEYS or any(where.endswith(k) for k in DYNAMIC_KEYS if "." in k)
        for k, sub in v.items():
            out.update(shape(sub, f"{where}.{'*' if dynamic else k}"))
    elif isinstance(v, list):
        out[where or "$"] = "array" if v else "empty array"
        for sub in v:
            out.update(shape(sub, f"{where}[]"))
    else:
        out[where or "$"] = {bool: "bool", int: "number", float: "number", str: "string", type(None): "null"}[type(v)]
    return out


def normalise(msg: str, w: World) -> str:
    msg = re.sub(r"\b[0-9a-f]{64}\b", "<id>", msg)
    msg = re.sub(r"\b[0-9a-f]{12}\b", "<id>", msg)
    msg = re.sub(r"sha256:<id>", "<id>", msg)
    return msg.strip()


def items_unknown(path: str, other: dict[str, str]) -> bool:
    """Whether `path` lies inside a list that is empty on the other side: which items a
    list holds (a block device read, a digest) is a value, not a shape."""
    parts = path.split("[]")
    return any(other.get("[]".join(parts[:i])) == "empty array" for i in range(1, len(parts)))


def without_reference_artefacts(case: Case, bj: Any, dj: Any) -> Any:
    """berthd's answer less what differs only because the reference runs with
    `--bridge=none` (refdockerd.py: it must not touch the host's interfaces), so it has no
    default bridge network: its containers have no network (`Config.NetworkDisabled`
    set, no stats `networks`) and its network list no `bridge`."""
    if (case.method, case.path) == ("GET", "/networks") and isinstance(bj, list) and isinstance(dj, list):
        if not any(isinstance(n, dict) and n.get("Name") == "bridge" for n in dj):
            return [n for n in bj if not (isinstance(n, dict) and n.get("Name") == "bridge")]
    if isinstance(bj, dict) and isinstance(dj, dict):
        bj = dict(bj)
        if case.path == "/containers/{id}/stats" and "networks" not in dj:
            bj.pop("networks", None)
        if (case.path == "/containers/{id}/json" and isinstance(dj.get("Config"), dict)
                and dj["Config"].get("NetworkDisabled") is True and isinstance(bj.get("Config"), dict)):
            bj["Config"] = dict(bj["Config"], NetworkDisabled=True)
    return bj


def compare(case: Case, w: World, b: Response, d: Response) -> list[str]:
    diffs: list[str] = []
    if b.status != d.status:
        diffs.append(f"status {b.status} (dockerd {d.status})")
    bj, dj = parse(b), parse(d)
    if (case.method, case.path) in STATUS_ONLY:
        return diffs
    if b.status >= 400 and d.status >= 400:
        bm = normalise(bj.get("message", "") if isinstance(bj, dict) else str(bj), w)
        dm = normalise(dj.get("message", "") if isinstance(dj, dict) else str(dj), w)
        if bm != dm:
            diffs.append(f"message {bm!r} (dockerd {dm!r})")
        return diffs
    if b.status < 300 and d.status < 300:
        if isinstance(bj, (dict, list)) and isinstance(dj, (dict, list)):
            bs, ds = shape(without_reference_artefacts(case, bj, dj)), shape(dj)
            missing = sorted(k for k in ds if k not in bs and not items_unknown(k, bs))
            extra = sorted(k for k in bs if k not in ds and not items_unknown(k, ds))
            lists = {"array", "empty array"}
            types = sorted(k for k in ds if k in bs and bs[k] != ds[k] and "null" not in (bs[k], ds[k])
                           and {bs[k], ds[k]} != lists)
            if missing:
                diffs.append(f"missing {missing[:8]}{'...' if len(missing) > 8 else ''}")
            if extra:
                diffs.append(f"extra {extra[:8]}{'...' if len(extra) > 8 else ''}")
            if types:
                diffs.append(f"types {[(k, bs[k], ds[k]) for k in types[:5]]}")
        elif type(bj) is not type(dj):
            diffs.append(f"body {str(bj)[:60]!r} (dockerd {str(dj)[:60]!r})")
    return diffs


class Engine:
    def __init__(self, name: str, sock: Path):
        self.name = name
        self.sock = sock

    def req(self, method: str, url: str, body: bytes = b"", headers: dict[str, str] | None = None) -> Response:
        # A bound on the whole exchange: an answer that streams forever is cut, not waited for.
        stream = unix_connect(self.sock)
        watchdog = threading.Timer(REQUEST_DEADLINE, lambda: stream.sock.shutdown(socket.SHUT_RDWR))
        watchdog.start()
        try:
            return stream.request(method, url, keepalive=False, body=body, headers=headers or {})
        finally:
            watchdog.cancel()
            stream.close()

    def json_req(self, method: str, url: str, j: Any) -> Response:
        return self.req(method, url, json.dumps(j).encode(), {"Content-Type": "application/json"})

    def make(self, w: World, needs: set[str]) -> None:
        def ok(r: Response, what: str) -> Response:
            assert r.status < 300, f"{self.name}: {what}: {r.status} {r.text}"
            return r
        if "container" in needs:
            cmd = ["true"] if "short" in needs else ["sleep", "300"]
            ok(self.json_req("POST", f"/v1.41/containers/create?name={w.container}",
                             {"Image": "busybox", "Cmd": cmd}), "create")
            ok(self.req("POST", f"/v1.41/containers/{w.container}/start"), "start")
        if "image" in needs:
            ok(self.req("POST", f"/v1.41/images/busybox:latest/tag?repo=diffimg{w.n}&tag=latest"), "tag")
        if "network" in needs:
            ok(self.json_req("POST", "/v1.41/networks/create", {"Name": w.network}), "network")
        if "volume" in needs:
            ok(self.json_req("POST", "/v1.41/volumes/create", {"Name": w.volume}), "volume")
        if "exec" in needs:
            r = ok(self.json_req("POST", f"/v1.41/containers/{w.container}/exec", {"Cmd": ["true"]}), "exec")
            w.exec_id[self.name] = r.json()["Id"]

    def clean(self, w: World) -> None:
        for c in (w.container, f"dc-new-{w.n}", f"dc-renamed-{w.n}"):
            self.req("DELETE", f"/v1.41/containers/{c}?force=1&v=1")
        for i in (f"diffimg{w.n}:latest", f"diffrepo{w.n}:v1", f"diffrepo{w.n}:latest", "diffrepo:v1"):
            self.req("DELETE", f"/v1.41/images/{i}")
        for n in (w.network, f"dn-new-{w.n}"):
            self.req("DELETE", f"/v1.41/networks/{n}")
        for v in (w.volume, f"dv-new-{w.n}"):
            self.req("DELETE", f"/v1.41/volumes/{v}")


def run_all(berth: Engine, dockerd: Engine, selected: Callable[[Case], bool] = lambda c: True) -> list[Outcome]:
    outcomes = []
    for n, case in enumerate(c for c in cases() if selected(c)):
        w = World(n, container=f"dc{n}", image=f"diffimg{n}:latest", network=f"dn{n}", volume=f"dv{n}")
        for e in (berth, dockerd):
            e.make(w, case.needs)
        body, headers = body_for(case, w)
        answers = {}
        for e in (berth, dockerd):
            try:
                answers[e.name] = e.req(case.method, url_for(case, w, e.name), body, headers)
            except (ConnectionError, OSError, ValueError) as exc:
                answers[e.name] = Response(0, str(exc), {}, b"")
        b, d = answers[berth.name], answers[dockerd.name]
        outcomes.append(Outcome(case, (b.status, parse(b)), (d.status, parse(d)), compare(case, w, b, d)))
        for e in (berth, dockerd):
            e.clean(w)
    return outcomes
