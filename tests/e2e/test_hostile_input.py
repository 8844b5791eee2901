"""Hostile request input: every parser of client input is total, so bad input is a 400
with Docker's message and the daemon goes on answering (issue 13, "the daemon survives
every input").

Each request here crashed berthd or its connection before: a string slice inside a
multi-byte character, integer overflow (a panic in debug builds, which the e2e suite
runs; a silent wrap in release), an exponential glob. After each, `/_ping` must answer.
"""

from __future__ import annotations

import json
from urllib.parse import quote

import pytest

from conftest import API_VERSION

V = f"/v{API_VERSION}"


def q(value: str) -> str:
    return quote(value, safe="")


# (path, expected status, a piece of the expected message)
HOSTILE_QUERIES = [
    # The reported one: an RFC 3339 fraction of multi-byte characters.
    (f"/events?since={q('2024-01-01T00:00:00.éééééé')}", 400, "parsing time"),
    # A zone whose slice `[3..4]` fell inside `é`: the slice panicked.
    (f"/events?since={q('2024-01-01T00:00:00+0é:0')}", 400, "parsing time"),
    (f"/events?until={q('é')}", 400, "failed to parse value as time or duration"),
    # Durations past Go's range (a panic on overflow in debug builds).
    (f"/events?since={q('-2562047h')}&until=1", 400, "`since` time can't be after `until` time"),
    (f"/events?since=99999999999999999h", 400, "failed to parse value as time or duration"),
    # A year past 2262: days * 86400 * 10^9 overflowed i64.
    (f"/containers/prune?filters={q(json.dumps({'until': ['9999-12-31']}))}", 200, "SpaceReclaimed"),
    (f"/containers/x/logs?stdout=1&since={q('9999-12-31T00:00:00Z')}", 404, "No such container"),
    # Filters: malformed JSON and a malformed or over-long glob pattern.
    (f"/images/json?filters={q('{')}", 400, "invalid filter"),
    (f"/images/json?filters={q(json.dumps({'reference': ['a[']}))}", 400, "syntax error in pattern"),
    (f"/images/json?filters={q(json.dumps({'reference': ['a' * 2000]}))}", 400, "pattern too long"),
    (f"/networks?filters={q(json.dumps({'name': ['*' * 2000]}))}", 400, "pattern too long"),
    # `until` was accepted and never read here: garbage answered 200 (and pruned all).
    (f"/images/prune?filters={q(json.dumps({'until': ['soon']}))}", 400, "failed to parse value as time"),
    (f"/networks/prune?filters={q(json.dumps({'until': ['soon']}))}", 400, "failed to parse value as time"),
    (f"/networks/prune?filters={q(json.dumps({'until': ['1', '2']}))}", 400, "more than one until filter"),
    (f"/images/json?filters={q(json.dumps({'until': ['soon']}))}", 400, "failed to parse value as time"),
]


@pytest.mark.parametrize("path,status,message", HOSTILE_QUERIES, ids=[p for p, _, _ in HOSTILE_QUERIES])
def test_hostile_query_is_answered_and_daemon_lives(berthd, path, status, message):
    d = berthd()
    r = d.request("POST" if "/prune" in path else "GET", V + path)
    assert r.status == status, f"{path}: {r.status} {r.text}\n{d.log_tail()}"
    if status >= 400:
        assert message in r.json()["message"], r.text
    elif message:
        assert message in r.text
    assert d.request("GET", "/_ping").status == 200
    assert d.running()


def test_many_star_glob_answers(berthd):
    """`*a` x 50 + `b` against a network name of 100 `a`s: exponential for the old
    recursive matcher (the request never came back, holding the networks lock)."""
    d = berthd()
    name = "a" * 100
    r = d.request("POST", V + "/networks/create", body=json.dumps({"Name": name}).encode(),
                  headers={"Content-Type": "application/json"})
    assert r.status == 201, r.text
    try:
        pattern = "*a" * 50 + "b"
        r = d.request("GET", V + f"/networks?filters={q(json.dumps({'name': [pattern]}))}")
        assert r.status == 200, r.text
        assert [n["Name"] for n in r.json()] == []
        r = d.request("GET", V + f"/networks?filters={q(json.dumps({'name': ['*a' * 50]}))}")
        assert [n["Name"] for n in r.json()] == [name]
    finally:
        d.request("DELETE", V + f"/networks/{name}")


@pytest.mark.parametrize(
    "host_config,message",
    [
        # NanoCpus * period overflowed at start; dockerd refuses at create.
        ({"NanoCpus": 9_223_372_036_854_775_807}, "Range of CPUs is from 0.01 to"),
        # `as i32` made 2^32 + 1 pass the range check as 1.
        ({"OomScoreAdj": 4_294_967_297}, "Invalid value 4294967297, range for oom score adj is [-1000, 1000]"),
        # `as u64` made -1 the largest share count.
        ({"CpuShares": -1}, "shares: invalid argument"),
    ],
)
def test_create_arithmetic_is_checked(busybox_daemon, host_config, message):
    d = busybox_daemon()
    body = {"Image": "busybox", "Cmd": ["true"], "HostConfig": host_config}
    r = d.request("POST", V + "/containers/create", body=json.dumps(body).encode(),
                  headers={"Content-Type": "application/json"})
    if r.status == 201:
        d.request("DELETE", V + f"/containers/{r.json()['Id']}?force=1")
    assert r.status == 400, r.text
    assert message in r.json()["message"], r.text
    assert d.request("GET", "/_ping").status == 200


def test_network_prune_until_keeps_newer_networks(berthd):
    """`until` bounds a prune: a network created after it stays (it was removed)."""
    d = berthd()
    r = d.request("POST", V + "/networks/create", body=json.dumps({"Name": "keepme"}).encode(),
                  headers={"Content-Type": "application/json"})
    assert r.status == 201, r.text
    try:
        old = q(json.dumps({"until": ["2000-01-01T00:00:00Z"]}))
        r = d.request("POST", V + f"/networks/prune?filters={old}")
        assert r.status == 200, r.text
        assert "keepme" not in (r.json()["NetworksDeleted"] or [])
        assert d.request("GET", V + "/networks/keepme").status == 200
        r = d.request("POST", V + f"/networks/prune?filters={q(json.dumps({'until': ['0s']}))}")
        assert r.status == 200, r.text
        assert "keepme" in r.json()["NetworksDeleted"]
    finally:
        d.request("DELETE", V + "/networks/keepme")
