"""The rest of the container API through the real docker CLI (issue 17): pause/unpause, top,
stats, export, diff, cp both ways, exec -u with a name, and the events Docker emits."""

from __future__ import annotations

import io
import json
import subprocess
import tarfile
import time
from pathlib import Path
from typing import Any

import pytest

from tether.lab.lab import LabHost

from .helpers import docker, docker_fails, docker_ok
from .imagefix import build_busybox_tar, import_alpine

pytestmark = pytest.mark.lab

A = "alpine"


ok = docker_ok


def fails(host: LabHost, *args: str, code: int = 1) -> str:
    return docker_fails(host, *args, code=code)


def state(host: LabHost, name: str) -> dict[str, Any]:
    out: dict[str, Any] = json.loads(ok(host, "inspect", name))[0]
    return out


@pytest.fixture(scope="module")
def h(host1: LabHost, tmp_path_factory: pytest.TempPathFactory) -> LabHost:
    tar = build_busybox_tar(tmp_path_factory.mktemp("img") / "busybox.tar")
    import_alpine(host1, tar)
    return host1


def test_pause_unpause_and_refusals(h: LabHost) -> None:
    ok(h, "run", "-d", "--name", "pz", A, "sleep", "600")
    ok(h, "pause", "pz")
    st = state(h, "pz")["State"]
    assert st["Status"] == "paused" and st["Paused"] and st["Running"]
    assert "(Paused)" in ok(h, "ps", "--filter", "name=pz", "--format", "{{.Status}}")
    assert ok(h, "ps", "-q", "--filter", "status=paused").strip()
    err = fails(h, "exec", "pz", "true", code=1)
    assert "is paused, unpause the container before exec" in err
    err = fails(h, "pause", "pz")
    assert "is already paused" in err
    err = fails(h, "rm", "pz")
    assert "You cannot remove a paused container" in err and "Unpause and then stop" in err
    ok(h, "unpause", "pz")
    assert state(h, "pz")["State"]["Status"] == "running"
    err = fails(h, "unpause", "pz")
    assert "is not paused" in err
    # stop of a paused container works (Docker: signal, then resume)
    ok(h, "pause", "pz")
    ok(h, "stop", "-t", "1", "pz", timeout=30)
    st = state(h, "pz")["State"]
    assert st["Status"] == "exited" and not st["Paused"]
    ok(h, "rm", "pz")


def test_top_and_stats(h: LabHost) -> None:
    ok(h, "run", "-d", "--name", "tp", A, "sleep", "600")
    out = ok(h, "top", "tp")
    lines = out.splitlines()
    assert lines[0].split()[:3] == ["UID", "PID", "PPID"]
    assert any("sleep 600" in line for line in lines[1:]), out
    out = ok(h, "top", "tp", "-o", "pid,comm")
    assert out.splitlines()[0].split() == ["PID", "COMMAND"] and "sleep" in out
    fmt = "{{.Name}} {{.MemUsage}} {{.NetIO}} {{.PIDs}} {{.CPUPerc}}"
    out = ok(h, "stats", "--no-stream", "--format", fmt, "tp", timeout=30).strip()
    name, *rest = out.split()
    assert name == "tp" and "--" not in out, out
    assert rest[-2] == "1", out  # one process
    ok(h, "stop", "-t", "0", "tp")
    assert "is not running" in fails(h, "top", "tp")
    ok(h, "rm", "tp")


def test_diff_export_and_cp(h: LabHost, tmp_path: Path) -> None:
    script = "echo hi > /tmp/new && rm -f /etc/group && mkdir -p /data/sub && echo x > /data/sub/f"
    ok(h, "run", "--name", "fs", A, "sh", "-c", script)
    diff = ok(h, "diff", "fs").splitlines()
    assert "A /tmp/new" in diff and "D /etc/group" in diff and "C /etc" in diff, diff
    assert "A /data" in diff and "A /data/sub/f" in diff, diff
    assert not any("hosts" in d or "resolv" in d for d in diff), diff
    # export: the merged root of a stopped container
    r = subprocess.run(
        ["docker", "export", "fs"], env=h.docker_env(None), capture_output=True, timeout=60
    )
    assert r.returncode == 0, r.stderr
    with tarfile.open(fileobj=io.BytesIO(r.stdout)) as tar:
        names = tar.getnames()
    assert "tmp/new" in names and "bin/sh" in names and "etc/group" not in names
    # cp out of a stopped container, a file and a folder
    ok(h, "cp", "fs:/tmp/new", str(tmp_path / "new"))
    assert (tmp_path / "new").read_text() == "hi\n"
    ok(h, "cp", "fs:/data", str(tmp_path / "data"))
    assert (tmp_path / "data" / "sub" / "f").read_text() == "x\n"
    err = fails(h, "cp", "fs:/nope", str(tmp_path / "x"))
    assert "Could not find the file /nope in container fs" in err
    # cp into a stopped container, then into a running one
    (tmp_path / "in.txt").write_text("in\n")
    ok(h, "cp", str(tmp_path / "in.txt"), "fs:/tmp/in.txt")
    ok(h, "start", "-a", "fs")  # runs the same command again; /tmp/in.txt stays
    ok(h, "run", "-d", "--name", "fs2", A, "sleep", "600")
    ok(h, "cp", str(tmp_path / "in.txt"), "fs2:/root/")
    assert ok(h, "exec", "fs2", "cat", "/root/in.txt") == "in\n"
    ok(h, "cp", "fs2:/etc/passwd", str(tmp_path / "passwd"))
    assert (tmp_path / "passwd").read_text().startswith("root:x:0:0")
    assert "in.txt" in ok(h, "diff", "fs")
    ok(h, "rm", "-f", "fs", "fs2")


def test_exec_user_names(h: LabHost) -> None:
    ok(h, "run", "-d", "--name", "ux", A, "sleep", "600")
    assert ok(h, "exec", "-u", "nobody", "ux", "id", "-u").strip() == "65534"
    assert (
        ok(h, "exec", "-u", "www-data:nogroup", "ux", "id")
        .strip()
        .startswith("uid=33(www-data) gid=65534(nogroup)")
    )
    assert ok(h, "exec", "-u", "1000:1000", "ux", "id", "-u").strip() == "1000"
    r = docker(h, "exec", "-u", "postgres", "ux", "true")
    assert r.returncode == 126, (r.returncode, r.stdout, r.stderr)
    assert "unable to find user postgres: no matching entries in passwd file" in (
        r.stdout + r.stderr
    )
    ok(h, "rm", "-f", "ux")


def test_events_in_dockers_order(h: LabHost) -> None:
    time.sleep(0.01)
    since = f"{time.time():.6f}"
    ok(h, "run", "-d", "--name", "ev", A, "sleep", "600")
    ok(h, "exec", "ev", "true")
    ok(h, "pause", "ev")
    ok(h, "unpause", "ev")
    ok(h, "stop", "-t", "0", "ev")
    ok(h, "rm", "ev")
    until = str(int(time.time()) + 1)
    out = ok(h, "events", "--since", since, "--until", until, "--format",
             "{{.Type}} {{.Action}}")  # fmt: skip
    got = [line for line in out.splitlines() if line]
    want = [
        "container create", "network connect", "container start",
        "container exec_create: true ", "container exec_start: true ", "container exec_die",
        "container pause", "container unpause",
        # stop -t 0 of a PID 1 that ignores SIGTERM: TERM, then KILL, as Docker
        "container kill", "container kill", "container die", "network disconnect",
        "container stop",
        "container destroy",
    ]  # fmt: skip
    assert got == want, "\n".join(got)
    out = ok(h, "events", "--since", since, "--until", until, "--filter", "event=exec_create")
    assert out.count("exec_create") == 1


def test_rm_link_prune_size_and_inspect_keys(h: LabHost) -> None:
    ok(h, "run", "-d", "--name", "db", A, "sleep", "600")
    ok(h, "run", "-d", "--name", "web", "--link", "db:db", A, "sleep", "600")
    names = ok(h, "ps", "--no-trunc", "--filter", "name=db", "--format", "{{.Names}}")
    assert "web/db" in names, names
    hc = state(h, "web")["HostConfig"]
    assert hc["Links"] == ["/db:/web/db"] and hc["Runtime"] == "runc"
    assert hc["CpuRealtimePeriod"] == 0 and hc["CpuRealtimeRuntime"] == 0
    ok(h, "rm", "--link", "/web/db")
    assert state(h, "web")["HostConfig"]["Links"] is None
    assert "No such container" in fails(h, "rm", "--link", "/web/db")
    ok(h, "rm", "-f", "web", "db")
    ok(h, "run", "--name", "big", A, "sh", "-c", "head -c 200000 /dev/zero > /big")
    out = ok(h, "container", "prune", "-f")
    assert "Total reclaimed space: 200kB" in out or "Total reclaimed space: 20" in out, out
