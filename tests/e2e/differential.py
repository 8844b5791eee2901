"""A differential harness: the same requests to berthd and to the reference dockerd 20.10,
their answers compared — status codes, JSON shapes (keys and types, not values) and error
texts (IDs normalised). The requests come from the Engine API 1.41 swagger that dockerd
20.10 implements: for every operation a base request on fresh objects, one with a missing
object, one per query parameter with a valid value, and one per boolean or integer
parameter with an invalid value.

Each case gets fresh objects of its own (a running container, a tagged image, a network,
a volume, an exec) made the same way on both engines with the same names, so one case's
changes cannot leak into the next. Routes that need the internet (search, plugins),
would turn dockerd into a swarm manager, or hijack the connection are listed in SKIP with
the reason. Pull, push, distribution and login go to local registries in a walk of their
own (`registry_cases`, end of this file)."""

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

REGISTRY_WALK = ("sent by the registry walk instead (`registry_cases`, test_registry_answers_match_dockerd: "
                 "local registries, open and htpasswd)")
# (method, path) -> why the harness does not send it.
SKIP: dict[tuple[str, str], str] = {
    ("GET", "/containers/{id}/attach/ws"): "a websocket upgrade: compared on raw sockets by test_attach_upgrades_match_dockerd",
    ("POST", "/containers/{id}/attach"): "hijacks the connection: compared on raw sockets by test_attach_upgrades_match_dockerd",
    ("POST", "/session"): "BuildKit's session protocol",
    ("GET", "/distribution/{name}/json"): REGISTRY_WALK,
    ("POST", "/auth"): REGISTRY_WALK,
    ("GET", "/images/search"): "needs Docker Hub",
    ("POST", "/images/create"): REGISTRY_WALK + " (`fromSrc` imports: by the image tests)",
    ("POST", "/images/{name}/push"): REGISTRY_WALK,
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


# ---------------------------------------------------------------------------------------
# The registry routes (pull, push, distribution, auth), against Debian's docker-registry.
# Each engine gets registries of its own on the same addresses: berthd's on the host's
# loopback, the reference's on its network namespace's loopback (the same port there), so
# every reference both daemons print is the same text. 127.0.0.0/8 is an insecure (plain
# HTTP) registry to both without any flag. One registry is open, one wants htpasswd basic
# auth (alice / s3cret).

REGISTRY_USER, REGISTRY_PASSWORD = "alice", "s3cret"
# Registry routes: (method, path) -> the cases that send it.
REGISTRY_ROUTES = {
    ("POST", "/images/create"), ("POST", "/images/{name}/push"),
    ("GET", "/distribution/{name}/json"), ("POST", "/auth"),
}


@dataclass
class RegistryCase:
    id: str
    method: str
    path: str  # swagger template, for the page
    url: str  # with {open}, {auth}, {digest}, {closed} filled per engine
    body: Any = None  # JSON body
    auth: str | None = None  # "right", "wrong": an X-Registry-Auth header for {auth}
    stream: bool = False  # a JSON-lines progress stream


def registry_auth_header(registry: str, password: str) -> str:
    import base64
    j = {"username": REGISTRY_USER, "password": password, "serveraddress": registry}
    return base64.urlsafe_b64encode(json.dumps(j).encode()).decode()


def registry_cases() -> list[RegistryCase]:
    c = RegistryCase
    pull, push, dist = "/images/create", "/images/{name}/push", "/distribution/{name}/json"
    return [
        c("POST /images/create pull-fresh", "POST", pull, "/images/create?fromImage={open}/difffresh&tag=v1", stream=True),
        c("POST /images/create pull-tag", "POST", pull, "/images/create?fromImage={open}/diffpull&tag=v1", stream=True),
        c("POST /images/create pull-tag-again", "POST", pull, "/images/create?fromImage={open}/diffpull&tag=v1", stream=True),
        c("POST /images/create pull-digest", "POST", pull, "/images/create?fromImage={open}/diffpull@{digest}", stream=True),
        c("POST /images/create pull-in-fromImage", "POST", pull, "/images/create?fromImage={open}/diffpull:v1", stream=True),
        c("POST /images/create missing-repo", "POST", pull, "/images/create?fromImage={open}/nosuchrepo&tag=v1", stream=True),
        c("POST /images/create missing-tag", "POST", pull, "/images/create?fromImage={open}/diffpull&tag=nosuchtag", stream=True),
        c("POST /images/create missing-digest", "POST", pull, "/images/create?fromImage={open}/diffpull@sha256:" + "0" * 64, stream=True),
        c("POST /images/create bad-reference", "POST", pull, "/images/create?fromImage={open}/Bad//Ref&tag=v1", stream=True),
        c("POST /images/create bad-tag", "POST", pull, "/images/create?fromImage={open}/diffpull&tag=bad:tag", stream=True),
        c("POST /images/create unreachable", "POST", pull, "/images/create?fromImage={closed}/diffpull&tag=v1", stream=True),
        c("POST /images/create auth-none", "POST", pull, "/images/create?fromImage={auth}/diffpull&tag=v1", stream=True),
        c("POST /images/create auth-wrong", "POST", pull, "/images/create?fromImage={auth}/diffpull&tag=v1", auth="wrong", stream=True),
        c("POST /images/create auth-right", "POST", pull, "/images/create?fromImage={auth}/diffpull&tag=v1", auth="right", stream=True),
        c("POST /images/{name}/push base", "POST", push, "/images/{open}/diffpush/push?tag=v1", body={}, stream=True),
        c("POST /images/{name}/push no-body", "POST", push, "/images/{open}/diffpush/push?tag=v1", stream=True),
        c("POST /images/{name}/push all-tags", "POST", push, "/images/{open}/diffpush/push", body={}, stream=True),
        c("POST /images/{name}/push missing", "POST", push, "/images/{open}/nosuchimage/push?tag=v1", body={}, stream=True),
        c("POST /images/{name}/push missing-tag", "POST", push, "/images/{open}/diffpush/push?tag=nosuchtag", body={},
          stream=True),
        c("POST /images/{name}/push auth-none", "POST", push, "/images/{auth}/diffpush/push?tag=v1", body={}, stream=True),
        c("POST /images/{name}/push auth-wrong", "POST", push, "/images/{auth}/diffpush/push?tag=v1", auth="wrong", stream=True),
        c("POST /images/{name}/push auth-right", "POST", push, "/images/{auth}/diffpush/push?tag=v1", auth="right", stream=True),
        c("POST /images/{name}/push unreachable", "POST", push, "/images/{closed}/diffpush/push?tag=v1", body={},
          stream=True),
        c("GET /distribution/{name}/json base", "GET", dist, "/distribution/{open}/diffpull:v1/json"),
        c("GET /distribution/{name}/json digest", "GET", dist, "/distribution/{open}/diffpull@{digest}/json"),
        c("GET /distribution/{name}/json missing-repo", "GET", dist, "/distribution/{open}/nosuchrepo:v1/json"),
        c("GET /distribution/{name}/json missing-tag", "GET", dist, "/distribution/{open}/diffpull:nosuchtag/json"),
        c("GET /distribution/{name}/json bad-reference", "GET", dist, "/distribution/{open}/Bad/json"),
        c("GET /distribution/{name}/json unreachable", "GET", dist, "/distribution/{closed}/diffpull:v1/json"),
        c("GET /distribution/{name}/json auth-none", "GET", dist, "/distribution/{auth}/diffpull:v1/json"),
        c("GET /distribution/{name}/json auth-wrong", "GET", dist, "/distribution/{auth}/diffpull:v1/json", auth="wrong"),
        c("GET /distribution/{name}/json auth-right", "GET", dist, "/distribution/{auth}/diffpull:v1/json", auth="right"),
        c("POST /auth right", "POST", "/auth", "/auth",
          body={"username": REGISTRY_USER, "password": REGISTRY_PASSWORD, "serveraddress": "{auth}"}),
        c("POST /auth wrong", "POST", "/auth", "/auth",
          body={"username": REGISTRY_USER, "password": "wrong", "serveraddress": "{auth}"}),
        c("POST /auth open", "POST", "/auth", "/auth",
          body={"username": REGISTRY_USER, "password": "any", "serveraddress": "{open}"}),
        c("POST /auth http-url", "POST", "/auth", "/auth",
          body={"username": REGISTRY_USER, "password": REGISTRY_PASSWORD, "serveraddress": "http://{auth}"}),
        c("POST /auth unreachable", "POST", "/auth", "/auth",
          body={"username": REGISTRY_USER, "password": "x", "serveraddress": "{closed}"}),
        c("POST /auth no-body", "POST", "/auth", "/auth"),
    ]


@dataclass
class Registries:
    """One engine's registries: `open`, `auth` (addresses), `closed` (nothing listens) and
    the digest of the seeded `{open}/diffpull:v1`."""
    open: str
    auth: str
    closed: str
    digest: str = ""


def fill(text: str, r: Registries) -> str:
    return (text.replace("{open}", r.open).replace("{auth}", r.auth).replace("{closed}", r.closed)
            .replace("{digest}", r.digest))


# A layer's progress that depends on timing, not on what happened: dockerd reports
# "Verifying Checksum" and "Download complete" from concurrent goroutines (either may be
# skipped on a fast transfer), and progress lines only while bytes move.
TIMING_STATUSES = {"Waiting", "Downloading", "Verifying Checksum", "Download complete", "Extracting", "Pushing"}


def stream_summary(body: bytes, r: Registries) -> list[str]:
    """A progress stream as the messages a client acts on: each status (a layer's
    repeated lines once; the timing-dependent ones of TIMING_STATUSES left out), errors,
    aux keys; IDs and digests normalised."""
    out: list[str] = []
    for line in body.decode(errors="replace").splitlines():
        if not line.strip():
            continue
        try:
            m = json.loads(line)
        except ValueError:
            out.append(f"<not json: {line[:60]}>")
            continue
        if not isinstance(m, dict):
            out.append(f"<{type(m).__name__}>")
            continue
        if "error" in m or "errorDetail" in m:
            out.append(f"error: {normalise_registry(str(m.get('error')), r)}"
                       f" (keys {sorted(m)})")
            continue
        if "aux" in m:
            out.append(f"aux {sorted(m['aux']) if isinstance(m['aux'], dict) else type(m['aux']).__name__}")
            continue
        status = normalise_registry(str(m.get("status", "")), r)
        if status in TIMING_STATUSES:
            continue
        item = f"{'layer ' if m.get('id') and re.fullmatch(r'[0-9a-f]{12}', m['id']) else ''}{status}"
        if not out or out[-1] != item:
            out.append(item)
    return out


def normalise_registry(msg: str, r: Registries) -> str:
    msg = re.sub(r"sha256:[0-9a-f]{64}", "<digest>", msg)
    msg = re.sub(r"\b[0-9a-f]{64}\b", "<id>", msg)
    msg = re.sub(r"\b[0-9a-f]{12}\b", "<id>", msg)
    msg = re.sub(r"size: \d+", "size: <n>", msg)
    return msg.strip()


def registry_compare(case: RegistryCase, r: Registries, b: Response, d: Response) -> list[str]:
    diffs: list[str] = []
    if b.status != d.status:
        diffs.append(f"status {b.status} (dockerd {d.status})")
    if case.stream and b.status == 200 and d.status == 200:
        bs, ds = stream_summary(b.body, r), stream_summary(d.body, r)
        if bs != ds:
            diffs.append(f"stream {bs} (dockerd {ds})")
        return diffs
    bj, dj = parse(b), parse(d)
    if b.status >= 400 and d.status >= 400:
        bm = normalise_registry(bj.get("message", "") if isinstance(bj, dict) else str(bj), r)
        dm = normalise_registry(dj.get("message", "") if isinstance(dj, dict) else str(dj), r)
        if bm != dm:
            diffs.append(f"message {bm!r} (dockerd {dm!r})")
        return diffs
    if b.status < 300 and d.status < 300:
        bs, ds = shape(bj), shape(dj)
        if bs != ds:
            missing = sorted(k for k in ds if k not in bs)
            extra = sorted(k for k in bs if k not in ds)
            types = sorted(k for k in ds if k in bs and bs[k] != ds[k])
            diffs.append(f"shape missing {missing} extra {extra} types {types}")
        if case.path == "/auth" and isinstance(bj, dict) and isinstance(dj, dict) and bj.get("Status") != dj.get("Status"):
            diffs.append(f"Status {bj.get('Status')!r} (dockerd {dj.get('Status')!r})")
    return diffs


def registry_setup(e: Engine, r: Registries) -> None:
    """Seeds `{open}/diffpull:v1` (its digest into `r`) and tags `{open}/diffpush:v1` and
    `{auth}/diffpush:v1` (and `{auth}/diffpull:v1` pushed with credentials)."""
    def ok(resp: Response, what: str) -> Response:
        assert resp.status < 300 and b'"error"' not in resp.body, f"{e.name}: {what}: {resp.status} {resp.text}"
        return resp
    for ref in (f"{r.open}/diffpull", f"{r.open}/diffpush", f"{r.auth}/diffpull", f"{r.auth}/diffpush",
                f"{r.closed}/diffpush"):
        repo = urllib.parse.quote(ref, safe="")
        ok(e.req("POST", f"/v1.41/images/busybox:latest/tag?repo={repo}&tag=v1"), f"tag {ref}")
    out = ok(e.req("POST", f"/v1.41/images/{r.open}/diffpull/push?tag=v1", b"{}",
                   {"Content-Type": "application/json"}), "seed push").text
    m = re.search(r"digest: (sha256:[0-9a-f]{64})", out)
    assert m, out
    r.digest = m.group(1)
    hdr = {"X-Registry-Auth": registry_auth_header(r.auth, REGISTRY_PASSWORD)}
    ok(e.req("POST", f"/v1.41/images/{r.auth}/diffpull/push?tag=v1", headers=hdr), "seed auth push")
    # Pulls must fetch: the seeded image leaves the engine (busybox keeps the layers).
    for ref in (f"{r.open}/diffpull:v1", f"{r.auth}/diffpull:v1"):
        ok(e.req("DELETE", f"/v1.41/images/{urllib.parse.quote(ref, safe='')}"), f"untag {ref}")
    # An image of a layer of its own, pushed and then gone from the engine altogether, so
    # that its pull downloads and unpacks.
    fresh = f"{r.open}/difffresh"
    ok(e.req("POST", f"/v1.41/images/create?fromSrc=-&repo={urllib.parse.quote(fresh, safe='')}&tag=v1",
             fresh_layer(), {"Content-Type": "application/x-tar"}), "import")
    ok(e.req("POST", f"/v1.41/images/{fresh}/push?tag=v1", b"{}", {"Content-Type": "application/json"}), "push fresh")
    iid = ok(e.req("GET", f"/v1.41/images/{fresh}:v1/json"), "inspect fresh").json()["Id"]
    ok(e.req("DELETE", f"/v1.41/images/{iid}?force=1"), "remove fresh")


def fresh_layer() -> bytes:
    """A one-file layer, the same bytes for both engines."""
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w") as t:
        data = b"berth differential\n" * 4096
        info = tarfile.TarInfo("fresh.txt")
        info.size, info.mtime = len(data), 1700000000
        t.addfile(info, io.BytesIO(data))
    return buf.getvalue()


def run_registry(berth: Engine, dockerd: Engine, regs: dict[str, Registries]) -> list[Outcome]:
    outcomes = []
    for e in (berth, dockerd):
        registry_setup(e, regs[e.name])
    for case in registry_cases():
        answers = {}
        for e in (berth, dockerd):
            r = regs[e.name]
            headers: dict[str, str] = {}
            body = b""
            if case.auth:
                headers["X-Registry-Auth"] = registry_auth_header(
                    r.auth, REGISTRY_PASSWORD if case.auth == "right" else "wrong")
            if case.body is not None:
                body = fill(json.dumps(case.body), r).encode()
                headers["Content-Type"] = "application/json"
            elif case.method == "POST" and case.path == "/auth":
                headers["Content-Type"] = "application/json"
            try:
                answers[e.name] = e.req(case.method, "/v1.41" + fill(case.url, r), body, headers)
            except (ConnectionError, OSError, ValueError) as exc:
                answers[e.name] = Response(0, str(exc), {}, b"")
        b, d = answers[berth.name], answers[dockerd.name]
        pseudo = Case(case.id, case.method, case.path, case.id.rsplit(" ", 1)[1], {}, set())
        rb, rd = regs[berth.name], regs[dockerd.name]
        assert (rb.open, rb.auth, rb.closed) == (rd.open, rd.auth, rd.closed)
        outcomes.append(Outcome(pseudo, (b.status, stream_or_json(case, b, rb)), (d.status, stream_or_json(case, d, rd)),
                                registry_compare(case, rb, b, d)))
    return outcomes


def stream_or_json(case: RegistryCase, resp: Response, r: Registries) -> Any:
    return stream_summary(resp.body, r) if case.stream and resp.status == 200 else parse(resp)
