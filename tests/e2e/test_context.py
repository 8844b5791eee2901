"""`berth context`: named remote daemons with their TLS material, in the docker CLI's
context store, so that a context made by either client works with the other. Every test
points HOME and DOCKER_CONFIG at its own temp dir (the real ~/.docker is never touched)."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

from conftest import BERTH_BIN, DOCKER_BIN, Daemon, TlsFiles, berth, clean_env, run_cmd, tls_init


@pytest.fixture
def cfg_env(workdir: Path) -> dict[str, str]:
    home = workdir / "home"
    cfg = workdir / "docker-cfg"
    home.mkdir()
    cfg.mkdir()
    return {"HOME": str(home), "DOCKER_CONFIG": str(cfg)}


def docker_cli(*args: str, env: dict[str, str], check: bool = True):
    return run_cmd([DOCKER_BIN, *args], env=clean_env(env), check=check)


def docker_spec(d: Daemon, files: TlsFiles) -> str:
    return f"host=tcp://127.0.0.1:{d.port},ca={files.ca},cert={files.client_cert},key={files.client_key}"


def server_version(out: str) -> None:
    assert "Server:" in out, out


def test_create_with_docker_flag_then_context_flag_env_and_use(tls_daemon, tls_files, cfg_env):
    berth("context", "create", "remote", "--description", "tls one", "--docker",
          docker_spec(tls_daemon, tls_files), env=cfg_env)
    # not selected: the default (unix:///run/berth.sock of no daemon here) is used
    assert "remote" in berth("context", "ls", "-q", env=cfg_env).stdout
    out = berth("--context", "remote", "version", env=cfg_env).stdout
    server_version(out)
    assert re.search(r"^ Context:\s+remote$", out, re.M), out
    server_version(berth("version", env={**cfg_env, "DOCKER_CONTEXT": "remote"}).stdout)
    berth("context", "use", "remote", env=cfg_env)
    assert berth("context", "show", env=cfg_env).stdout.strip() == "remote"
    server_version(berth("version", env=cfg_env).stdout)
    ls = berth("context", "ls", env=cfg_env).stdout
    assert re.search(r"^remote \*\s+tls one\s+tcp://127\.0\.0\.1:\d+", ls, re.M), ls
    cfg = json.loads((Path(cfg_env["DOCKER_CONFIG"]) / "config.json").read_text())
    assert cfg["currentContext"] == "remote"
    # the real docker CLI uses the context berth made, by flag and as the current one
    server_version(docker_cli("--context", "remote", "version", env=cfg_env).stdout)
    server_version(docker_cli("version", env=cfg_env).stdout)


def test_tls_dir_shortcut(tls_daemon, tls_files, cfg_env):
    berth("context", "create", "short", "--tls-dir", str(tls_files.dir), "--host",
          f"tcp://127.0.0.1:{tls_daemon.port}", env=cfg_env)
    server_version(berth("--context", "short", "version", env=cfg_env).stdout)
    server_version(docker_cli("--context", "short", "version", env=cfg_env).stdout)


def test_context_made_by_docker_works_with_berth(tls_daemon, tls_files, cfg_env):
    docker_cli("context", "create", "fromdocker", "--docker", docker_spec(tls_daemon, tls_files), env=cfg_env)
    server_version(berth("--context", "fromdocker", "version", env=cfg_env).stdout)
    docker_cli("context", "use", "fromdocker", env=cfg_env)
    server_version(berth("version", env=cfg_env).stdout)
    assert berth("context", "show", env=cfg_env).stdout.strip() == "fromdocker"


def test_inspect_and_ls_match_docker(tls_daemon, tls_files, cfg_env):
    berth("context", "create", "mine", "--description", "d", "--docker", docker_spec(tls_daemon, tls_files),
          env=cfg_env)
    docker_cli("context", "create", "theirs", "--description", "d", "--docker", docker_spec(tls_daemon, tls_files),
               env=cfg_env)
    ours = json.loads(berth("context", "inspect", "mine", "theirs", env=cfg_env).stdout)
    docker_view = json.loads(docker_cli("context", "inspect", "mine", "theirs", env=cfg_env).stdout)
    assert ours == docker_view
    assert ours[0]["TLSMaterial"] == {"docker": ["ca.pem", "cert.pem", "key.pem"]}
    assert list(ours[0]) == ["Name", "Metadata", "Endpoints", "TLSMaterial", "Storage"]
    fmt = "{{.Name}} {{.Current}} {{.DockerEndpoint}}"
    b = berth("context", "ls", "--format", fmt, env=cfg_env).stdout.splitlines()
    d = docker_cli("context", "ls", "--format", fmt, env=cfg_env).stdout.splitlines()
    # the default context's endpoint differs by design (berth's socket, docker's socket)
    assert [l for l in b if not l.startswith("default")] == [l for l in d if not l.startswith("default")]
    fmt = "table {{.Name}}\t{{.Description}}\t{{.Current}}"
    b = berth("context", "ls", "--format", fmt, env=cfg_env).stdout
    assert b == docker_cli("context", "ls", "--format", fmt, env=cfg_env).stdout


def test_rm_of_current_refused_then_forced(tls_daemon, tls_files, cfg_env):
    berth("context", "create", "cur", "--docker", docker_spec(tls_daemon, tls_files), env=cfg_env)
    berth("context", "use", "cur", env=cfg_env)
    proc = berth("context", "rm", "cur", env=cfg_env, check=False)
    assert proc.returncode == 1
    assert 'context "cur" is in use, set -f flag to force remove' in proc.stderr, proc.stderr
    berth("context", "rm", "-f", "cur", env=cfg_env)
    assert berth("context", "show", env=cfg_env).stdout.strip() == "default"
    assert "cur" not in berth("context", "ls", "-q", env=cfg_env).stdout.split()
    proc = berth("context", "rm", "default", env=cfg_env, check=False)
    assert proc.returncode == 1 and "cannot be removed" in proc.stderr, proc.stderr


def test_wrong_ca_fails_the_handshake(tls_daemon, tls_files, workdir, cfg_env):
    other = tls_init(workdir / "other-ca")
    berth("context", "create", "wrong", "--docker",
          f"host=tcp://127.0.0.1:{tls_daemon.port},ca={other.ca},cert={tls_files.client_cert},"
          f"key={tls_files.client_key}", env=cfg_env)
    proc = berth("--context", "wrong", "version", env=cfg_env, check=False)
    assert proc.returncode != 0, proc.stdout
    assert "Server:" not in proc.stdout, proc.stdout
    assert re.search(r"certificate|x509|tls|issuer|trust", proc.stderr, re.I), proc.stderr


def test_unverified_tcp_refused(tls_daemon, cfg_env):
    proc = berth("context", "create", "nossl", "--docker",
                 f"host=tcp://127.0.0.1:{tls_daemon.port},skip-tls-verify=true", env=cfg_env, check=False)
    assert proc.returncode != 0 and "skip-tls-verify" in proc.stderr, proc.stderr
    proc = berth("context", "create", "nossl", "--docker", f"host=tcp://127.0.0.1:{tls_daemon.port}",
                 env=cfg_env, check=False)
    assert proc.returncode != 0 and "mutual TLS" in proc.stderr, proc.stderr
    # docker lets one make it; berth refuses to use it
    docker_cli("context", "create", "plain", "--docker", f"host=tcp://127.0.0.1:{tls_daemon.port}", env=cfg_env)
    proc = berth("--context", "plain", "version", env=cfg_env, check=False)
    assert proc.returncode != 0 and "mutual TLS" in proc.stderr, proc.stderr
    assert "Server:" not in proc.stdout


def test_host_and_context_conflict_and_precedence(tls_daemon, tls_files, cfg_env):
    berth("context", "create", "remote", "--docker", docker_spec(tls_daemon, tls_files), env=cfg_env)
    proc = berth("-H", tls_daemon.unix_host, "--context", "remote", "version", env=cfg_env, check=False)
    assert proc.returncode != 0 and "either specify --host or --context" in proc.stderr, proc.stderr
    # DOCKER_HOST wins over DOCKER_CONTEXT and currentContext: the unix socket is used
    berth("context", "use", "remote", env=cfg_env)
    env = {**cfg_env, "DOCKER_HOST": tls_daemon.unix_host, "DOCKER_CONTEXT": "nonexistent"}
    server_version(berth("version", env=env).stdout)
    proc = berth("version", env={**cfg_env, "DOCKER_CONTEXT": "nonexistent"}, check=False)
    assert proc.returncode != 0 and 'context "nonexistent": context not found' in proc.stderr, proc.stderr


def test_export_import_update(tls_daemon, tls_files, cfg_env, workdir):
    berth("context", "create", "orig", "--docker", docker_spec(tls_daemon, tls_files), env=cfg_env)
    archive = workdir / "orig.tar"
    berth("context", "export", "orig", str(archive), env=cfg_env)
    docker_cli("context", "import", "bydocker", str(archive), env=cfg_env)
    server_version(docker_cli("--context", "bydocker", "version", env=cfg_env).stdout)
    darchive = workdir / "d.tar"
    docker_cli("context", "export", "bydocker", str(darchive), env=cfg_env)
    berth("context", "import", "byberth", str(darchive), env=cfg_env)
    server_version(berth("--context", "byberth", "version", env=cfg_env).stdout)
    berth("context", "update", "byberth", "--description", "changed", env=cfg_env)
    out = json.loads(docker_cli("context", "inspect", "byberth", env=cfg_env).stdout)
    assert out[0]["Metadata"] == {"Description": "changed"}


# ---------------------------------------------------------------------------------------
# system info/events/prune and search, with the docker CLI's output as reference


def normalize(text: str) -> str:
    text = re.sub(r"\b[0-9a-f]{64}\b", "<id>", text)
    text = re.sub(r"sha256:<id>", "<digest>", text)
    return text


def test_system_prune_matches_docker(busybox_daemon, cfg_env):
    d = busybox_daemon()
    env = {**d.docker_env, **cfg_env, "DOCKER_HOST": d.unix_host}

    def make_garbage() -> None:
        for _ in range(2):
            docker_cli("create", "busybox", "true", env=env)
        docker_cli("network", "create", "prune-net", env=env)

    outs = []
    for cli in (lambda *a: berth(*a, env=env), lambda *a: docker_cli(*a, env=env)):
        make_garbage()
        outs.append(normalize(cli("system", "prune", "-f").stdout))
        assert docker_cli("ps", "-aq", env=env).stdout.strip() == ""
    assert outs[0] == outs[1], outs
    assert outs[0].startswith("Deleted Containers:\n<id>\n<id>\n\nDeleted Networks:\nprune-net\n\n"), outs[0]
    assert outs[0].rstrip().splitlines()[-1].startswith("Total reclaimed space: "), outs[0]
    # the prompt, answered no, removes nothing
    docker_cli("create", "busybox", "true", env=env)
    b = run_cmd([str(BERTH_BIN), "system", "prune"], env=clean_env(env), input="n\n")
    dk = run_cmd([DOCKER_BIN, "system", "prune", "-a", "--volumes"], env=clean_env(env), input="n\n")
    assert b.stdout == ("WARNING! This will remove:\n  - all stopped containers\n"
                        "  - all networks not used by at least one container\n  - all dangling images\n"
                        "  - unused build cache\n\nAre you sure you want to continue? [y/N] "), b.stdout
    berth_all = run_cmd([str(BERTH_BIN), "system", "prune", "-a", "--volumes"], env=clean_env(env), input="n\n")
    assert berth_all.stdout == dk.stdout
    assert len(docker_cli("ps", "-aq", env=env).stdout.split()) == 1
    docker_cli("container", "prune", "-f", env=env)


def test_system_info_and_events_are_info_and_events(busybox_daemon, cfg_env):
    d = busybox_daemon()
    env = {**cfg_env, "DOCKER_HOST": d.unix_host}
    fmt = "{{.ID}} {{.DockerRootDir}} {{.Images}}"
    assert berth("system", "info", "--format", fmt, env=env).stdout == berth("info", "--format", fmt, env=env).stdout
    assert berth("system", "info", "--format", fmt, env=env).stdout == docker_cli(
        "system", "info", "--format", fmt, env=env).stdout
    docker_cli("create", "--name", "evt", "busybox", "true", env=env)
    docker_cli("rm", "evt", env=env)
    args = ("--since", "0", "--until", str(int(__import__("time").time()) + 1), "--filter", "container=evt",
            "--format", "{{.Type}} {{.Action}} {{.Actor.Attributes.name}}")
    b = berth("system", "events", *args, env=env).stdout
    assert b == docker_cli("system", "events", *args, env=env).stdout
    assert "container create evt" in b and "container destroy evt" in b, b


def test_search_errors_as_docker(tls_daemon, cfg_env):
    # no internet here: the daemon's error is printed as docker prints it
    env = {**cfg_env, "DOCKER_HOST": tls_daemon.unix_host}
    b = berth("search", "--limit", "3", "busybox", env=env, check=False)
    dk = docker_cli("search", "--limit", "3", "busybox", env=env, check=False)
    assert b.returncode == dk.returncode != 0
    assert b.stderr.strip() == dk.stderr.strip(), (b.stderr, dk.stderr)
    bad = berth("search", "--filter", "nope=1", "busybox", env=env, check=False)
    dbad = docker_cli("search", "--filter", "nope=1", "busybox", env=env, check=False)
    assert bad.returncode == dbad.returncode != 0 and bad.stderr.strip() == dbad.stderr.strip(), (bad.stderr,
                                                                                                  dbad.stderr)
