"""Writes differential_known.json from a differential report: each differing case with the
reason it differs, by the rules below (first match wins). A case no rule explains is
written as "untriaged: ..." — a difference nobody has looked at yet, counted in the note.
Also writes docs/compatibility.md: per API operation, how many cases answer as dockerd
20.10 and why the others differ.

    python3 tests/e2e/differential_triage.py [target/differential-report.json]
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
    (r"^GET /images/\{name\}/json missing \| message 'No such image: berth-diff-missing:latest' "
     r"\(dockerd 'no such image: berth-diff-missing: No such image: berth-diff-missing:latest'\)$",
     "deliberate: Docker 28's wording (20.10 said it twice)"),
]


def main() -> None:
    report = json.loads(Path(sys.argv[1] if len(sys.argv) > 1 else "target/differential-report.json").read_text())
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
