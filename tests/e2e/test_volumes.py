"""Volumes and container mounts through the real docker CLI and docker-py: named and
anonymous volumes, binds, tmpfs, copy-up of image content, --volumes-from, --read-only,
and Docker's refusals for bad input (nothing half-made left behind)."""

from __future__ import annotations

import importlib
import io
import json
import subprocess
import tarfile
from pathlib import Path

import pytest

from conftest import DOCKER_BIN, REPO_ROOT, definition, schema_errors
from test_containers import daemon, dk  # noqa: F401  (the fixture and the CLI helper)


def volumes(d) -> list[str]:
    return dk(d, "volume", "ls", "-q").stdout.split()


def mounts_of(d, name) -> list[dict]:
    return json.loads(dk(d, "inspect", "-f", "{{json .Mounts}}", name).stdout)


def import_image_with_data(d, tag: str, volume: str | None = "/data") -> None:
    """busybox plus /data/hello (owned 1000:1000, mode 0750) and, optionally, a VOLUME."""
    base = subprocess.run([str(REPO_ROOT / "scripts" / "busybox-rootfs")], check=True, capture_output=True).stdout
    out = io.BytesIO()
    with tarfile.open(fileobj=io.BytesIO(base)) as src, tarfile.open(fileobj=out, mode="w") as dst:
        for m in src.getmembers():
            dst.addfile(m, src.extractfile(m) if m.isfile() else None)
        di = tarfile.TarInfo("./data")
        di.type, di.mode, di.uid, di.gid = tarfile.DIRTYPE, 0o750, 1000, 1000
        dst.addfile(di)
        fi = tarfile.TarInfo("./data/hello")
        fi.size, fi.mode = 6, 0o644
        dst.addfile(fi, io.BytesIO(b"hello\n"))
    args = [DOCKER_BIN, "import", "-c", 'CMD ["sh"]']
    if volume:
        args += ["-c", f"VOLUME {volume}"]
    subprocess.run([*args, "-", tag], input=out.getvalue(), env=d.docker_env, check=True, capture_output=True,
                   timeout=60)


def test_named_volume_survives_container_and_daemon_restart(daemon):
    assert dk(daemon, "volume", "create", "--label", "team=a", "data1").stdout.strip() == "data1"
    v = json.loads(dk(daemon, "volume", "inspect", "data1").stdout)[0]
    assert v["Name"] == "data1" and v["Driver"] == "local" and v["Scope"] == "local"
    assert v["Labels"] == {"team": "a"} and v["Options"] is None
    assert v["Mountpoint"] == str(daemon.data_root / "volumes" / "data1" / "_data")
    assert v["CreatedAt"].endswith("Z")
    dk(daemon, "run", "--name", "wr", "-v", "data1:/data", "busybox", "sh", "-c", "echo kept > /data/f")
    m = mounts_of(daemon, "wr")
    assert m == [{"Type": "volume", "Name": "data1", "Source": v["Mountpoint"], "Destination": "/data",
                  "Driver": "local", "Mode": "z", "RW": True, "Propagation": ""}]
    # In use: Docker's 409 and words, over the API and the CLI.
    r = dk(daemon, "volume", "rm", "data1", check=False)
    assert r.returncode != 0 and "volume is in use" in r.stderr
    cid = dk(daemon, "inspect", "-f", "{{.Id}}", "wr").stdout.strip()
    resp = daemon.request("DELETE", "/volumes/data1")
    assert resp.status == 409 and resp.json()["message"] == f"remove data1: volume is in use - [{cid}]"
    assert daemon.request("DELETE", "/volumes/data1?force=1").status == 409
    assert dk(daemon, "ps", "-a", "--format", "{{.Mounts}}").stdout.strip() == "data1"
    dk(daemon, "rm", "wr")
    daemon.restart()
    r = dk(daemon, "run", "--rm", "-v", "data1:/data", "busybox", "cat", "/data/f")
    assert r.stdout == "kept\n"
    assert volumes(daemon) == ["data1"]
    dk(daemon, "volume", "rm", "data1")
    assert volumes(daemon) == []
    assert not (daemon.data_root / "volumes" / "data1").exists()
    resp = daemon.request("GET", "/volumes/data1")
    assert resp.status == 404 and resp.json()["message"] == "get data1: no such volume"


def test_binds_both_ways_and_read_only(daemon, tmp_path):
    host = tmp_path / "shared"
    host.mkdir()
    (host / "from-host").write_text("h\n")
    r = dk(daemon, "run", "--rm", "-v", f"{host}:/h", "busybox", "sh", "-c", "cat /h/from-host; echo c > /h/from-ctr")
    assert r.stdout == "h\n"
    assert (host / "from-ctr").read_text() == "c\n"
    r = dk(daemon, "run", "--rm", "-v", f"{host}:/h:ro", "busybox", "sh", "-c", "cat /h/from-host; touch /h/nope",
           check=False)
    assert r.returncode != 0 and "Read-only file system" in r.stderr
    assert not (host / "nope").exists()
    # A missing host directory is made for -v (at start), as Docker does.
    made = tmp_path / "made" / "deep"
    dk(daemon, "run", "--rm", "-v", f"{made}:/m", "busybox", "touch", "/m/x")
    assert (made / "x").exists()
    # --mount bind, read-only, and the inspect shape.
    dk(daemon, "create", "--name", "mb", "--mount", f"type=bind,src={host},dst=/b,readonly", "-v", f"{host}:/h2:ro",
       "busybox", "true")
    assert mounts_of(daemon, "mb") == [
        {"Type": "bind", "Source": str(host), "Destination": "/b", "Mode": "", "RW": False,
         "Propagation": "rprivate"},
        {"Type": "bind", "Source": str(host), "Destination": "/h2", "Mode": "ro", "RW": False,
         "Propagation": "rprivate"},
    ]
    assert json.loads(dk(daemon, "inspect", "-f", "{{json .HostConfig.Binds}}", "mb").stdout) == [f"{host}:/h2:ro"]


def test_tmpfs_is_memory_and_empty_each_start(daemon):
    dk(daemon, "create", "--name", "tm", "--tmpfs", "/t:size=1m", "--mount", "type=tmpfs,dst=/t2,tmpfs-size=2m",
       "busybox", "sh", "-c", "ls -A /t /t2 | wc -l; touch /t/x /t2/y; grep -E ' /t2? ' /proc/mounts")
    for _ in range(2):
        out = dk(daemon, "start", "-a", "tm").stdout.splitlines()
        # `ls -A` of two empty dirs prints only their two headers and one blank line.
        assert out[0].strip() == "3", out
        assert sorted(l.split()[2] for l in out[1:]) == ["tmpfs", "tmpfs"], out
        assert any(" /t " in l and "size=1024k" in l for l in out[1:]), out
    assert mounts_of(daemon, "tm") == [{"Type": "tmpfs", "Source": "", "Destination": "/t2", "Mode": "", "RW": True,
                                       "Propagation": ""}]


def test_copy_up_and_anonymous_volumes(daemon):
    import_image_with_data(daemon, "withdata:1")
    # The image's VOLUME becomes an anonymous volume filled with the image's content.
    dk(daemon, "run", "--name", "an", "withdata:1", "sh", "-c", "cat /data/hello; stat -c '%u:%g %a' /data")
    assert dk(daemon, "logs", "an").stdout == "hello\n1000:1000 750\n"
    (anon,) = mounts_of(daemon, "an")
    assert anon["Type"] == "volume" and len(anon["Name"]) == 64 and anon["Mode"] == ""
    labels = json.loads(dk(daemon, "volume", "inspect", "-f", "{{json .Labels}}", anon["Name"]).stdout)
    assert "com.docker.volume.anonymous" in labels
    # A new named volume over image content is filled too; nocopy leaves it empty.
    r = dk(daemon, "run", "--rm", "-v", "named:/data", "withdata:1", "cat", "/data/hello")
    assert r.stdout == "hello\n"
    r = dk(daemon, "run", "--rm", "--mount", "type=volume,src=empty,dst=/data,volume-nocopy", "withdata:1",
           "ls", "-A", "/data")
    assert r.stdout == ""
    # A volume that has content is not overwritten.
    dk(daemon, "run", "--rm", "-v", "named:/data", "busybox", "sh", "-c", "echo mine > /data/hello")
    assert dk(daemon, "run", "--rm", "-v", "named:/data", "withdata:1", "cat", "/data/hello").stdout == "mine\n"
    # --rm removed its anonymous volume; `rm` without -v keeps it, `rm -v` removes it.
    before = set(volumes(daemon))
    dk(daemon, "run", "--rm", "-v", "/scratch", "busybox", "touch", "/scratch/x")
    assert set(volumes(daemon)) == before
    dk(daemon, "rm", "-v", "an")
    assert anon["Name"] not in volumes(daemon)
    dk(daemon, "run", "--name", "bk", "-v", "/keep", "busybox", "true")
    kept = mounts_of(daemon, "bk")[0]["Name"]
    dk(daemon, "rm", "bk")
    assert kept in volumes(daemon)
    # dangling filter, then prune: anonymous only by default, named ones with --all.
    assert set(dk(daemon, "volume", "ls", "-q", "-f", "dangling=true").stdout.split()) == {kept, "named", "empty"}
    r = dk(daemon, "volume", "prune", "-f")
    assert kept in r.stdout and "named" not in r.stdout
    assert sorted(volumes(daemon)) == ["empty", "named"]
    dk(daemon, "volume", "prune", "-a", "-f")
    assert volumes(daemon) == []


def test_volumes_from_and_read_only_rootfs(daemon, tmp_path):
    dk(daemon, "run", "--name", "src", "-v", "shared:/s", "-v", f"{tmp_path}:/h", "busybox", "sh", "-c",
       "echo from-src > /s/f")
    r = dk(daemon, "run", "--rm", "--volumes-from", "src:ro", "busybox", "sh", "-c", "cat /s/f; touch /s/g",
           check=False)
    assert r.stdout == "from-src\n" and "Read-only file system" in r.stderr
    r = dk(daemon, "run", "--rm", "--volumes-from", "src", "busybox", "sh", "-c", "touch /s/g /h/g && echo ok")
    assert r.stdout == "ok\n" and (tmp_path / "g").exists()
    r = dk(daemon, "run", "--rm", "--read-only", "-v", "rw:/w", "--tmpfs", "/tmp", "busybox", "sh", "-c",
           "touch /w/x /tmp/y && echo ok; touch /root/z", check=False)
    assert r.stdout == "ok\n" and "Read-only file system" in r.stderr
    r = dk(daemon, "volume", "rm", "shared", check=False)
    assert "volume is in use" in r.stderr
    dk(daemon, "rm", "src")
    dk(daemon, "volume", "rm", "shared", "rw")


def test_volume_driver_options(daemon, tmp_path):
    dk(daemon, "volume", "create", "-d", "local", "-o", "type=tmpfs", "-o", "device=tmpfs", "-o", "o=size=1m", "tv")
    v = json.loads(dk(daemon, "volume", "inspect", "tv").stdout)[0]
    assert v["Options"] == {"type": "tmpfs", "device": "tmpfs", "o": "size=1m"}
    r = dk(daemon, "run", "--rm", "-v", "tv:/t", "busybox", "sh", "-c", "grep ' /t ' /proc/mounts")
    assert r.stdout.split()[2] == "tmpfs"
    dk(daemon, "volume", "create", "-o", "type=none", "-o", "o=bind", "-o", f"device={tmp_path}", "bv")
    dk(daemon, "run", "--rm", "-v", "bv:/b", "busybox", "sh", "-c", "echo via-device > /b/f")
    assert (tmp_path / "f").read_text() == "via-device\n"
    dk(daemon, "volume", "rm", "tv", "bv")


def test_bad_input_gets_dockers_errors_and_leaves_nothing(daemon, tmp_path):
    before_vols = volumes(daemon)
    cases = [
        (["-v", "foo/bar:/x"], '"foo/bar" includes invalid characters for a local volume name, only '
                               '"[a-zA-Z0-9][a-zA-Z0-9_.-]" are allowed. If you intended to pass a host directory, '
                               'use absolute path'),
        (["-v", "myvol:rel"], "invalid volume specification: 'myvol:rel': invalid mount config for type \"volume\": "
                              "invalid mount path: 'rel' mount path must be absolute"),
        (["--mount", "type=bind,src=/nonexistent/x,dst=/x"],
         'invalid mount config for type "bind": bind source path does not exist: /nonexistent/x'),
        (["--mount", "type=bind,src=rel,dst=/x"],
         "invalid mount config for type \"bind\": invalid mount path: 'rel' mount path must be absolute"),
        (["-v", f"{tmp_path}:/x", "-v", "okvol:/x"], "Duplicate mount point: /x"),
        (["--volumes-from", "ghost"], "No such container: ghost"),
    ]
    for args, msg in cases:
        r = dk(daemon, "create", *args, "busybox", "true", check=False)
        assert r.returncode != 0 and msg in r.stderr, (args, r.stderr)
    r = dk(daemon, "volume", "create", "b@d", check=False)
    assert r.returncode != 0 and '"b@d" includes invalid characters' in r.stderr
    resp = daemon.request("POST", "/volumes/create", headers={"Content-Type": "application/json"},
                          body=b'{"Name": "x"}')
    assert resp.status == 400 and "volume name is too short" in resp.json()["message"]
    assert dk(daemon, "ps", "-aq").stdout == ""
    assert volumes(daemon) == before_vols


def test_system_df_and_list_filters(daemon):
    dk(daemon, "volume", "create", "--label", "k=v", "df1")
    dk(daemon, "volume", "create", "df2")
    dk(daemon, "run", "--name", "user", "-v", "df1:/d", "busybox", "sh", "-c", "head -c 5000 /dev/zero > /d/f")
    assert dk(daemon, "volume", "ls", "-q", "-f", "label=k=v").stdout.split() == ["df1"]
    assert dk(daemon, "volume", "ls", "-q", "-f", "name=df2").stdout.split() == ["df2"]
    assert dk(daemon, "volume", "ls", "-q", "-f", "dangling=false").stdout.split() == ["df1"]
    df = daemon.get_json("/system/df")
    assert set(df) >= {"LayersSize", "Images", "Containers", "Volumes", "BuildCache"}
    vols = {v["Name"]: v for v in df["Volumes"]}
    assert vols["df1"]["UsageData"] == {"Size": 5000, "RefCount": 1}
    assert vols["df2"]["UsageData"] == {"Size": 0, "RefCount": 0}
    (ctr,) = df["Containers"]
    assert ctr["SizeRw"] >= 0
    r = dk(daemon, "system", "df", "-v")
    assert r.returncode == 0 and "df1" in r.stdout, r.stderr
    dk(daemon, "rm", "user")
    dk(daemon, "volume", "rm", "df1", "df2")


def test_docker_py_volumes(daemon, tmp_path):
    docker = importlib.import_module("docker")  # docker-py: .ci/run installs it
    client = docker.DockerClient(base_url=daemon.unix_host, version="auto")
    try:
        v = client.volumes.create("pyvol", labels={"x": "y"})
        assert v.name == "pyvol" and client.volumes.get("pyvol").attrs["Labels"] == {"x": "y"}
        assert [x.name for x in client.volumes.list(filters={"label": "x=y"})] == ["pyvol"]
        out = client.containers.run("busybox", ["sh", "-c", "echo py > /v/f; cat /h/f"], remove=True,
                                    volumes={"pyvol": {"bind": "/v", "mode": "rw"},
                                             str(tmp_path): {"bind": "/h", "mode": "ro"}},
                                    ) if (tmp_path / "f").write_text("host\n") else None
        assert out == b"host\n"
        out = client.containers.run("busybox", "cat /v/f", remove=True, volumes=["pyvol:/v:ro"])
        assert out == b"py\n"
        with pytest.raises(docker.errors.NotFound):
            client.volumes.get("nope")
        df = client.df()
        assert [x["UsageData"] for x in df["Volumes"] if x["Name"] == "pyvol"] == [{"Size": 3, "RefCount": 0}]
        v.remove()
        assert client.volumes.list() == []
        assert client.volumes.prune() == {"VolumesDeleted": [], "SpaceReclaimed": 0}
        # An API 1.41 client prunes named volumes too, as before 1.42.
        client.volumes.create("oldapi")
        resp = daemon.request("POST", "/v1.41/volumes/prune")
        assert resp.status == 200 and resp.json()["VolumesDeleted"] == ["oldapi"]
    finally:
        client.close()


def test_berth_cli_volumes_and_files(daemon, tmp_path):
    """The same operations through `berth` itself."""
    from conftest import BERTH_BIN

    def berth(*args, check=True):
        return subprocess.run([str(BERTH_BIN), "-H", daemon.unix_host, *args], capture_output=True, text=True,
                              timeout=60, check=check)

    assert berth("volume", "create", "--label", "a=b", "bvol").stdout == "bvol\n"
    assert berth("volume", "ls", "-q").stdout.split() == ["bvol"]
    assert json.loads(berth("volume", "inspect", "bvol").stdout)[0]["Labels"] == {"a": "b"}
    r = berth("run", "--rm", "-v", "bvol:/d", "-v", "/anon", "--tmpfs", "/t", "--read-only", "busybox", "sh", "-c",
              "echo hi > /d/f && touch /anon/x /t/y && echo ok; touch /z", check=False)
    assert r.stdout == "ok\n" and "Read-only file system" in r.stderr
    assert berth("volume", "ls", "-q").stdout.split() == ["bvol"], "--rm removes the anonymous volume"
    r = berth("volume", "create", "b@d", check=False)
    assert r.returncode != 0 and "includes invalid characters" in r.stderr
    r = berth("volume", "rm", "nope", check=False)
    assert r.returncode != 0 and "get nope: no such volume" in r.stderr
    assert berth("volume", "rm", "-f", "nope").returncode == 0
    (tmp_path / "f").write_text("from host\n")
    berth("create", "--name", "files", "--mount", "type=volume,src=bvol,dst=/d", "busybox", "true")
    berth("cp", str(tmp_path / "f"), "files:/root/")
    berth("cp", "files:/d/f", str(tmp_path / "back"))
    assert (tmp_path / "back").read_text() == "hi\n"
    assert berth("diff", "files").stdout.splitlines() == ["C /root", "A /root/f"]
    berth("commit", "-c", "CMD [\"cat\", \"/root/f\"]", "files", "bimg:1")
    assert berth("run", "--rm", "bimg:1").stdout == "from host\n"
    out = subprocess.run([str(BERTH_BIN), "-H", daemon.unix_host, "export", "files"], capture_output=True,
                         timeout=60, check=True).stdout
    with tarfile.open(fileobj=io.BytesIO(out)) as t:
        assert t.extractfile("root/f").read() == b"from host\n"
    assert "Local Volumes" in berth("system", "df").stdout
    berth("rm", "files")
    assert "bvol" in berth("volume", "prune", "-a", "-f").stdout


def test_volume_events(daemon):
    import time
    since = str(int(time.time()) - 1)
    dk(daemon, "volume", "create", "evvol")
    dk(daemon, "run", "--rm", "-v", "/anon-ev", "busybox", "true")
    dk(daemon, "volume", "rm", "evvol")
    until = str(int(time.time()) + 1)
    out = dk(daemon, "events", "--since", since, "--until", until, "--filter", "type=volume",
             "--format", "{{.Action}} {{.Actor.ID}}").stdout.splitlines()
    assert "create evvol" in out and "destroy evvol" in out, out
    assert [l for l in out if l.startswith(("mount ", "unmount "))] == [
        f"mount {l.split()[1]}" for l in out if l.startswith("create ") and l != "create evvol"
    ] + [f"unmount {l.split()[1]}" for l in out if l.startswith("create ") and l != "create evvol"], out
    anon = [l.split()[1] for l in out if l.startswith("create ") and l != "create evvol"]
    assert len(anon) == 1 and f"destroy {anon[0]}" in out, out


def test_answers_match_the_api_spec(daemon, tmp_path):
    dk(daemon, "volume", "create", "--label", "s=1", "specvol")
    dk(daemon, "create", "--name", "specctr", "-v", "specvol:/d", "-v", f"{tmp_path}:/h:ro",
       "--mount", "type=tmpfs,dst=/t", "busybox", "true")
    vol = daemon.get_json("/volumes/specvol")
    assert schema_errors(vol, definition("Volume")) == []
    assert set(definition("Volume")["required"]) <= set(vol)
    listed = daemon.get_json("/volumes")
    assert schema_errors(listed, definition("VolumeListResponse")) == []
    assert listed["Warnings"] == []
    for m in daemon.get_json("/containers/specctr/json")["Mounts"]:
        # `Type` is an allOf of a string enum, which the validator reads as an object.
        assert m.pop("Type") in definition("MountType")["enum"]
        assert schema_errors(m, definition("MountPoint")) == [], m
    assert daemon.get_json("/containers/specctr/changes") is None
    dk(daemon, "rm", "specctr")
    dk(daemon, "volume", "rm", "specvol")


def test_system_df_reclaimable_like_dockerd(daemon):
    """`docker system df [-v]` figures as dockerd 20.10 gives them: layers counted once,
    images sharing a layer show it as shared (so an unused image's share stays
    reclaimable while a used one holds it), stopped containers' layers and unused
    volumes reclaimable, containers listed with their mounts, no build cache. `berth
    system df` prints what docker prints for the same answer."""
    from conftest import BERTH_BIN
    dk(daemon, "tag", "busybox", "other:1")
    import_image_with_data(daemon, "data:1", volume=None)  # a layer of its own
    base = subprocess.run([str(REPO_ROOT / "scripts" / "busybox-rootfs")], check=True, capture_output=True).stdout
    subprocess.run([DOCKER_BIN, "import", "-", "unused:1"], input=base, env=daemon.docker_env, check=True,
                   capture_output=True, timeout=60)
    dk(daemon, "run", "--name", "stopped", "busybox", "sh", "-c", "head -c 5000 /dev/zero > /f")
    dk(daemon, "run", "-d", "--name", "up", "-v", "dfa:/d", "busybox", "sh", "-c",
       "head -c 3000 /dev/zero > /d/x; head -c 2000 /dev/zero > /y; sleep 1000")
    dk(daemon, "run", "--rm", "-v", "dfb:/d", "busybox", "sh", "-c", "head -c 7000 /dev/zero > /d/y")
    from conftest import poll
    poll(lambda: dk(daemon, "exec", "up", "test", "-f", "/y", check=False).returncode == 0, 10, "the writes")
    df = daemon.get_json("/system/df")
    images = {i["RepoTags"][0] if i["RepoTags"] else i["Id"]: i for i in df["Images"]}
    busybox_size = images["busybox:latest"]["Size"]
    # busybox:latest and unused:1 have the same single layer: one copy on disk, shared.
    assert images["unused:1"]["Size"] == busybox_size == images["unused:1"]["SharedSize"]
    assert images["busybox:latest"]["SharedSize"] == busybox_size and images["busybox:latest"]["Containers"] == 2
    assert images["data:1"]["SharedSize"] == 0 and images["data:1"]["Containers"] == 0
    assert df["LayersSize"] == busybox_size + images["data:1"]["Size"]
    ctrs = {c["Names"][0]: c for c in df["Containers"]}
    assert ctrs["/stopped"]["SizeRw"] == 5000 and ctrs["/stopped"]["SizeRootFs"] == 5000 + busybox_size
    assert [m["Name"] for m in ctrs["/up"]["Mounts"]] == ["dfa"] and ctrs["/up"]["Mounts"][0]["Driver"] == "local"
    assert df["BuildCache"] is None and df["BuilderSize"] == 0
    lines = dk(daemon, "system", "df").stdout.splitlines()
    assert lines[0].split() == ["TYPE", "TOTAL", "ACTIVE", "SIZE", "RECLAIMABLE"]
    rows = {l[:16].strip(): l[16:].split() for l in lines[1:]}
    total = df["LayersSize"]
    unique_used = 0  # busybox is the only used image and shares all it has
    reclaim = total - unique_used
    assert rows["Images"][:2] == ["3", "1"] and rows["Images"][-1] == f"({reclaim * 100 // total}%)"
    assert rows["Containers"] == ["2", "1", "7kB", "5kB", "(71%)"]
    assert rows["Local Volumes"] == ["2", "1", "10kB", "7kB", "(70%)"]
    assert rows["Build Cache"] == ["0", "0", "0B", "0B"]
    verbose = dk(daemon, "system", "df", "-v").stdout
    assert "dfa           1         3kB" in verbose and "dfb           0         7kB" in verbose
    import re
    up = [l for l in verbose.splitlines() if l.endswith(" up")][0]
    assert re.search(r'"\s+1\s+2kB\s', up), up  # LOCAL VOLUMES, SIZE after COMMAND
    # The berth CLI renders the same answer the same way.
    berth = [str(BERTH_BIN), "-H", daemon.unix_host, "system", "df"]
    assert subprocess.run(berth, capture_output=True, text=True, check=True, timeout=60).stdout == \
        dk(daemon, "system", "df").stdout

    def timeless(text: str) -> str:  # CREATED and STATUS ("Up …") may tick between the two commands
        text = re.sub(r"Up (\d+|Less than a|About an?) \w+", "Up T", text)
        return re.sub(r"(\d+|Less than a|About an?) \w+ ago", "T ago", text)

    got = subprocess.run([*berth, "-v"], capture_output=True, text=True, check=True, timeout=60).stdout
    assert re.sub(r" +", " ", timeless(got)) == re.sub(r" +", " ", timeless(verbose))
    dk(daemon, "rm", "-f", "up", "stopped")
    dk(daemon, "volume", "rm", "dfa", "dfb")
    dk(daemon, "rmi", "other:1", "data:1", "unused:1")
