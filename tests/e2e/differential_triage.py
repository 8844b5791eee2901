"""Writes differential_known.json from a differential report: each differing case with the
reason it differs, by the rules below (first match wins). A case no rule explains is
written as "untriaged: ..." — a difference nobody has looked at yet, counted in the note.
Also writes docs/compatibility.md: per API operation, how many cases answer as dockerd
20.10 and why the others differ.

    python3 tests/e2e/differential_triage.py [REPORT...]  (default: target/differential-report.json,
                          target/differential-registry-report.json, target/differential-attach-report.json)
"""

from __future__ import annotations

import json
import re
import sys
from pathlib import Path

HERE = Path(__file__).parent

# (regex on "case | diffs", reason). "deliberate": Berth answers so on purpose (Docker 28's
# behaviour, or the project's rule that bad input is a 4xx); "to fix": Berth is wrong.
RULES: list[tuple[str, str]] = [
    (r"^GET /(services|tasks)/\{id\}/logs .*\| status 400 \(dockerd 500\)$",
     "deliberate: a log request for neither stream is the client's error (400); dockerd 20.10 answers 500"),
    (r"^POST /plugins/\{name\}/enable .*\| status 400 \(dockerd 500\)$",
     "deliberate: a missing or malformed timeout is the client's error (400), in strconv's words; dockerd answers 500"),
    (r"^POST /plugins/create base", "minor: berthd answers 501 (it runs no managed plugins) before reading the body"),
    (r"DELETE /containers/\{id\} (base|param:v|bad:v) \| message 'cannot remove container",
     "deliberate: Docker 28's wording (moby 25+), as the issue asks"),
    (r"DELETE /containers/\{id\} (param|bad):link", "deliberate: 409 Conflict for the default link name, as moby's errdefs; 20.10 answered 500"),
    (r"bad:[\w-]+ \| status 400 \(dockerd 500\)", "deliberate: a malformed parameter is the client's error (400); dockerd 20.10 answers 500 from strconv"),
    (r"bad:[\w-]+ \| status 400 \(dockerd 500\); message", "deliberate: a malformed parameter is the client's error (400)"),
    (r"^POST /build bad:(memory|memswap|cpushares|cpuperiod|cpuquota) \| status 400 \(dockerd 200\)",
     "deliberate: a malformed limit is refused; dockerd 20.10 ignores it"),
    (r"^POST /containers/\{id\}/unpause base \| status 409", "deliberate: 409 Conflict 'is not paused', as Docker 28 (errdefs.Conflict)"),
    (r"^POST /exec/\{id\}/resize base", "deliberate: an exec that already ended is a 409 with what happened; 20.10 times out with a 500"),
    (r"^PUT /containers/\{id\}/archive .*status 400 \(dockerd 500\)", "deliberate: an empty archive body is a 400"),
    (r"^POST /images/load .*status 400 \(dockerd 200\)", "deliberate: an empty load body is refused up front (400), not inside a 200 stream"),
    (r"^POST /networks/\{id\}/disconnect base \| status 403", "deliberate: 403 for a container not connected, as Docker 28"),
    (r"^POST /build/prune base \| extra \['\.CachesDeleted\[\]'\]", "deliberate: berthd reports the classic builder's real cache (dockerd 20.10 reports none)"),
    (r"^GET /info base \| missing \['\.KernelMemory'\]; extra \['\.CDISpecDirs'\]", "deliberate: Docker 28's /info (KernelMemory gone, CDISpecDirs added)"),
    (r"^POST /build param:version \| status 400 \(dockerd 500\)$",
     "deliberate: an unknown builder version is the client's error (400), in dockerd's words; dockerd 20.10 answers 500"),
    (r"^POST /build bad:shmsize", "deliberate: a malformed parameter is the client's error (400)"),
    (r"^GET /networks.*\| extra \['(\[\])?\.EnableIPv4'\]$", "deliberate: Docker 28's EnableIPv4 field"),
    (r"^GET /containers/\{id\}/json .*\| missing \['\.HostConfig\.KernelMemory', '\.HostConfig\.KernelMemoryTCP'\]; "
     r"extra \['\.NetworkSettings\.Networks\.\*\.DNSNames', '\.NetworkSettings\.Networks\.\*\.GwPriority'\]$",
     "deliberate: Docker 28's inspect (KernelMemory* omitted when 0 since moby 25; endpoint DNSNames and GwPriority added)"),
    # The registry walk (differential.registry_cases).
    (r"^(POST /images/create|GET /distribution/\{name\}/json|POST /auth) [\w-]+ \| status 401 \(dockerd 500\)$",
     "deliberate: missing or refused registry credentials are the client's error (401), in dockerd's words; "
     "dockerd 20.10 answers 500 (and 401 itself for GET /distribution with a wrong password)"),
    (r"^(POST /images/create|GET /distribution/\{name\}/json|POST /auth) unreachable \| status 503 \(dockerd 500\)$",
     "deliberate: a registry nothing answers at is 503 Service Unavailable, in dockerd's words; dockerd 20.10 answers 500"),
    (r"^POST /auth no-body \| status 400 \(dockerd 500\)$",
     "deliberate: a login without a body is the client's error (400), in dockerd's words ('EOF'); dockerd 20.10 answers 500"),
    (r"bad-reference \| message 'invalid reference format: repository name \(.*\) must be lowercase' "
     r"\(dockerd 'invalid reference format: repository name must be lowercase'\)$",
     "deliberate: Docker 28's wording (distribution/reference 0.5+ names the repository)"),
    (r"^POST /images/\{name\}/push no-body \| status 200 \(dockerd 400\)$",
     "deliberate: a push with neither X-Registry-Auth nor a body is anonymous, as Docker 25+ (whose client "
     "sends '{}' because 20.10 answered 400 'Bad parameters and missing X-Registry-Auth: EOF', moby ea29dff)"),
    # The attach sessions (test_attach_upgrades_match_dockerd).
    (r"^POST /containers/\{id\}/attach no-upgrade-frames \|",
     "to fix: without `Upgrade: tcp` berthd sends the output as a chunked HTTP body and reads no stdin; "
     "dockerd hijacks the connection anyway (hyper hands over a connection only after a 101)"),
    (r"^GET /images/\{name\}/json missing \| message 'No such image: berth-diff-missing:latest' "
     r"\(dockerd 'no such image: berth-diff-missing: No such image: berth-diff-missing:latest'\)$",
     "deliberate: Docker 28's wording (20.10 said it twice)"),
]


def main() -> None:
    # The API walk's report, the registry walk's and the attach sessions' (all three from
    # test_differential.py).
    paths = sys.argv[1:] or ["target/differential-report.json", "target/differential-registry-report.json",
                             "target/differential-attach-report.json"]
    report = [row for path in paths for row in json.loads(Path(path).read_text())]
    known = {}
    for row in report:
        if not row["diffs"]:
            continue
        line = f"{row['case']} | {'; '.join(row['diffs'])}"
        reason = next((why for pat, why in RULES if re.search(pat, line)), None)
        known[row["case"]] = reason or f"untriaged: {'; '.join(row['diffs'])[:200]}"
    (HERE / "differential_known.json").write_text(json.dumps(known, indent=1, sort_keys=True) + "\n")
    write_page(report, known)
    untriaged = sum(1 for v in known.values() if v.startswith("untriaged"))
    print(f"{len(report)} cases, {len(known)} differ, {untriaged} untriaged")


def write_page(report: list[dict], known: dict[str, str]) -> None:
    from differential import SKIP

    ops: dict[str, list[dict]] = {}
    for row in report:
        op = row["case"].rsplit(" ", 1)[0]
        ops.setdefault(op, []).append(row)
    same = sum(1 for r in report if not r["diffs"])
    lines = [
        "# Compatibility with dockerd",
        "",
        "Generated by `tests/e2e/differential_triage.py` from the differential test",
        "(`tests/e2e/test_differential.py`): the same requests to berthd and to Debian's dockerd",
        "20.10 — every operation of the Engine API 1.41 swagger with fresh objects, a missing",
        "object, each query parameter, and a malformed value for each boolean and integer",
        "parameter — comparing status codes, JSON shapes and error texts. Not counted as",
        "differences: the items of a list that is empty on one side (which items a list holds",
        "is a value), and what comes only from the reference running without a default bridge",
        "(`--bridge=none`, so that it leaves the host's interfaces alone): its containers'",
        "`Config.NetworkDisabled`, their stats without `networks`, its network list without",
        "`bridge`.",
        "Pull, push, `GET /distribution` and `POST /auth` are walked apart (`registry_cases`): against",
        "local docker-registry instances at the same address for both daemons (each its own, the",
        "reference's in its network namespace), one open and one with htpasswd auth, by tag, digest,",
        "missing repository/tag/digest, bad reference, unreachable registry, without, with wrong and",
        "with right credentials; progress streams compared as the messages a client acts on. The attach",
        "upgrades (`POST /containers/{id}/attach` with and without `Upgrade: tcp`, `GET .../attach/ws`)",
        "are compared on raw sockets: status line, the headers a client acts on, the first frames.",
        "",
        f"**{len(report)} cases over {len(ops)} operations: {same} answer as dockerd, "
        f"{len(report) - same} differ** (deliberate: Docker 28's behaviour or a 400 for bad "
        "input; to fix: Berth is wrong; minor: the order of checks).",
        "",
        "| operation | cases | same | differences |",
        "| --- | --- | --- | --- |",
    ]
    for op, rows in ops.items():
        n_same = sum(1 for r in rows if not r["diffs"])
        reasons = sorted({known.get(r["case"], "?") for r in rows if r["diffs"]})
        lines.append(f"| `{op}` | {len(rows)} | {n_same} | {'<br>'.join(reasons).replace('|', '/')} |")
    lines += [
        '',
        'Compared outside the API walk (`tests/e2e/test_compat_net.py`, `test_ipv6.py`, `test_compose.py`),',
        'against a reference with its default bridge where needed (in its own network namespace):',
        '',
        '- ports published without a host address: bound on `0.0.0.0` and `::` (two bindings in',
        '  `NetworkSettings.Ports` and `docker port`), as dockerd; one host port for both, as Docker 28',
        "  (dockerd 20.10 may give an ephemeral port's two bindings two ports); IPv4 only on a host",
        "  without IPv6 (`[::1]` cannot be bound), as dockerd's `IsV6Listenable`;",
        "- a published port of a container with an IPv6 address (a user network with `EnableIPv6`, or the",
        "  default bridge with `--fixed-cidr-v6`): `::` reaches the container's IPv6 address and",
        "  0.0.0.0 its IPv4 one (what the container sees as the peer, over `[::1]` and the host's IPv6",
        "  address), as dockerd's docker-proxy; a container without IPv6 gets `::` relayed to IPv4;",
        "- `--ipv6` (or daemon.json `ipv6`) without `--fixed-cidr-v6` refuses to start in dockerd 20.10's",
        "  words; with `--bridge=none` both start;",
        "- `--ipv6 --fixed-cidr-v6` (daemon.json `ipv6`, `fixed-cidr-v6`): the default bridge's IPv6",
        "  subnet, containers' addresses from their MAC address, IPv6 forwarding on with `--ip-forward`,",
        '  as dockerd;',
        '- the init layer (`/.dockerenv`, `/etc/mtab -> /proc/mounts`, empty `/etc/hosts`, `hostname`,',
        '  `resolv.conf`, `/dev/console`, mount point dirs): `docker export` of a new container lists',
        "  the same entries, types, modes and owners as dockerd's; `docker diff` and commits leave it out;",
        "- `docker rm --link` on a running container: its `/etc/hosts` loses the link's entry at once;",
        "- beyond Docker 28: docker-compose 1.x (its User-Agent) gets an image's `ContainerConfig` at",
        '  every API version, so that it can recreate a changed service (Docker 25+ answer',
        "  `KeyError: 'ContainerConfig'` there).",
        "- deliberate: a process started by `docker exec` runs under the container's seccomp filter",
        "  (as runc) and, unless it has `CAP_SYS_ADMIN`, with `no_new_privs` (unlike runc): the",
        "  embedded runtime can load the filter only after the capabilities are set, which needs",
        "  `no_new_privs`; a setuid or file-capability binary run through `docker exec` does not",
        "  gain privileges. `--security-opt seccomp=unconfined` or `--privileged` lifts both.",
        "- image mounts (`--mount type=image`, API 1.48, and CRI image volumes): read-only, with",
        "  dockerd's checks and words; deliberate: a subpath is checked at create (dockerd checks at",
        "  start: the image cannot change, so the answer is the same, earlier), and inspect's `Source`",
        "  is the image's ID (dockerd's is where it mounted the image's layer; berthd stages the mount",
        "  only while the container starts, then it lives in the container's mount namespace).",
    ]
    lines += ["", "Not sent (and why):", ""]
    lines += [f"- `{m} {p}`: {why}" for (m, p), why in sorted(SKIP.items())]
    (HERE.parents[1] / "docs" / "compatibility.md").write_text("\n".join(lines) + "\n")


if __name__ == "__main__":
    main()
