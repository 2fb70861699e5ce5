"""Volumes and mounts through the real docker CLI against a tether daemon in a lab host
(issue 16, P2): the volume API, ``-v``/``--mount``/``--tmpfs``/``--volumes-from``, anonymous
volumes, copy-up, and each effect checked inside the container. Docker 20.10's texts."""

from __future__ import annotations

import json
import os
import re
from pathlib import Path
from typing import Any

import pytest

from tether.lab.lab import Lab, LabHost

from .helpers import docker, docker_fails, docker_ok
from .imagefix import build_busybox_tar, import_alpine

pytestmark = pytest.mark.lab

HEX64 = re.compile(r"^[0-9a-f]{64}$")
A = "alpine"


ok = docker_ok


def fails(host: LabHost, *args: str, code: int = 125) -> str:
    return docker_fails(host, *args, code=code)


def inspect(host: LabHost, *args: str) -> Any:
    return json.loads(ok(host, *args))[0]


def volume_names(host: LabHost, *args: str) -> list[str]:
    return ok(host, "volume", "ls", "-q", *args).split()


@pytest.fixture(scope="module")
def h(host1: LabHost, tmp_path_factory: pytest.TempPathFactory) -> LabHost:
    tar = build_busybox_tar(tmp_path_factory.mktemp("img") / "busybox.tar")
    import_alpine(host1, tar)
    r = docker(host1, "import", "-c", "VOLUME /etc", "-c", 'CMD ["/bin/sh"]', str(tar), "volimg")
    assert r.returncode == 0, r.stderr
    return host1


@pytest.fixture
def hostdir(h: LabHost) -> Path:
    d = Path(h.data_root).parent / "hostdir"
    d.mkdir(exist_ok=True)
    (d / "f").write_text("from the host\n")
    return d


def test_volume_api(h: LabHost) -> None:
    assert ok(h, "volume", "create", "--label", "team=a", "v1").strip() == "v1"
    v = inspect(h, "volume", "inspect", "v1")
    assert v["Name"] == "v1" and v["Driver"] == "local" and v["Scope"] == "local"
    assert v["Labels"] == {"team": "a"} and not v["Options"]  # {} or null: as the CLI sends
    assert v["Mountpoint"] == os.path.join(h.data_root, "volumes", "v1", "_data")
    assert os.path.isdir(v["Mountpoint"])
    anon = ok(h, "volume", "create").strip()
    assert HEX64.match(anon), anon
    assert {"v1", anon} <= set(volume_names(h))
    assert volume_names(h, "--filter", "label=team=a") == ["v1"]
    assert volume_names(h, "--filter", "name=v1") == ["v1"]
    assert "v1" in volume_names(h, "--filter", "dangling=true")
    ls = ok(h, "volume", "ls")
    assert re.search(r"^local\s+v1$", ls, re.M), ls
    # Docker's texts
    err = fails(h, "volume", "create", "-d", "nfsplugin", "v2", code=1)
    assert 'error looking up volume plugin nfsplugin: plugin "nfsplugin" not found' in err
    err = fails(h, "volume", "create", "bad/name", code=1)
    assert '"bad/name" includes invalid characters for a local volume name' in err
    err = fails(h, "volume", "create", "-o", "foo=bar", "v3", code=1)
    assert 'create v3: invalid option: "foo"' in err
    err = fails(h, "volume", "rm", "nope", code=1)
    assert "get nope: no such volume" in err
    assert "v2" not in volume_names(h) and "v3" not in volume_names(h)
    ok(h, "volume", "rm", anon)
    assert not os.path.exists(os.path.join(h.data_root, "volumes", anon))
    with open(os.path.join(v["Mountpoint"], "big"), "wb") as f:
        f.write(b"x" * 4096)
    out = ok(h, "volume", "prune", "-f", "--filter", "label=team=a")
    assert "Deleted Volumes:\nv1\n" in out and "Total reclaimed space: 4.096kB" in out, out
    assert "v1" not in volume_names(h)


def test_named_volume_shared_and_in_use(h: LabHost) -> None:
    ok(h, "run", "--name", "w1", "-v", "data1:/data", A, "sh", "-c", "echo hi > /data/f")
    out = ok(h, "run", "--rm", "-v", "data1:/data", A, "cat", "/data/f")
    assert out == "hi\n"
    c = inspect(h, "inspect", "w1")
    src = os.path.join(h.data_root, "volumes", "data1", "_data")
    assert c["Mounts"] == [
        {"Type": "volume", "Name": "data1", "Source": src, "Destination": "/data",
         "Driver": "local", "Mode": "z", "RW": True, "Propagation": ""}
    ]  # fmt: skip
    assert c["HostConfig"]["Binds"] == ["data1:/data"]
    assert ok(h, "ps", "-a", "--filter", "volume=data1", "--format", "{{.Names}}").split() == ["w1"]
    assert ok(h, "ps", "-a", "--filter", "volume=/data", "-q") != ""
    err = fails(h, "volume", "rm", "data1", code=1)
    assert f"remove data1: volume is in use - [{c['Id']}]" in err
    assert "data1" in volume_names(h) and Path(src, "f").read_text() == "hi\n"
    ok(h, "rm", "-v", "w1")  # a named volume survives rm -v
    assert "data1" in volume_names(h)
    ok(h, "volume", "rm", "data1")
    assert not os.path.exists(src)


def test_bind_read_only_and_created(h: LabHost, hostdir: Path) -> None:
    r = docker(h, "run", "--rm", "-v", f"{hostdir}:/x:ro", A, "sh", "-c", "cat /x/f; touch /x/g")
    assert r.returncode != 0 and r.stdout == "from the host\n", r
    assert "Read-only file system" in r.stderr
    assert not (hostdir / "g").exists()
    ok(h, "run", "--rm", "-v", f"{hostdir}:/x", A, "touch", "/x/g")
    assert (hostdir / "g").exists()
    new = hostdir / "made" / "here"
    ok(h, "run", "--rm", "-v", f"{new}:/y", A, "true")
    assert new.is_dir()
    ok(h, "create", "--name", "b1", "--mount", f"type=bind,src={hostdir},dst=/x,readonly", A)
    m = inspect(h, "inspect", "b1")["Mounts"]
    assert m == [{"Type": "bind", "Source": str(hostdir), "Destination": "/x", "Mode": "",
                  "RW": False, "Propagation": "rprivate"}]  # fmt: skip
    ok(h, "rm", "b1")
    err = fails(h, "run", "--rm", "--mount", "type=bind,src=/no/such/dir,dst=/x", A, "true")
    assert (
        'invalid mount config for type "bind": bind source path does not exist: /no/such/dir' in err
    )


def test_tmpfs(h: LabHost) -> None:
    out = ok(h, "run", "--rm", "--mount", "type=tmpfs,dst=/t,tmpfs-size=1048576", A,
             "grep", " /t ", "/proc/mounts")  # fmt: skip
    assert out.startswith("tmpfs /t tmpfs rw,nosuid,nodev,noexec") and "size=1024k" in out, out
    out = ok(h, "run", "--rm", "--tmpfs", "/run:rw,size=64m,exec", A, "grep", " /run ",
             "/proc/mounts")  # fmt: skip
    assert "size=65536k" in out and "noexec" not in out, out
    ok(h, "create", "--name", "t1", "--tmpfs", "/run", "--mount", "type=tmpfs,dst=/t", A)
    c = inspect(h, "inspect", "t1")
    assert c["HostConfig"]["Tmpfs"] == {"/run": ""}
    assert c["Mounts"] == [{"Type": "tmpfs", "Source": "", "Destination": "/t", "Mode": "",
                            "RW": True, "Propagation": ""}]  # fmt: skip
    ok(h, "rm", "t1")


def test_anonymous_volumes(h: LabHost) -> None:
    before = set(volume_names(h))
    ok(h, "run", "-d", "--name", "an1", "-v", "/data", A, "sleep", "300")
    m = inspect(h, "inspect", "an1")["Mounts"]
    assert len(m) == 1 and HEX64.match(m[0]["Name"]), m
    assert m[0]["Mode"] == "" and m[0]["RW"] is True and m[0]["Driver"] == "local"
    name = m[0]["Name"]
    assert inspect(h, "inspect", "an1")["Config"]["Volumes"] == {"/data": {}}
    ok(h, "exec", "an1", "sh", "-c", "echo kept > /data/k")
    assert Path(h.data_root, "volumes", name, "_data", "k").read_text() == "kept\n"
    ok(h, "rm", "-fv", "an1")
    assert set(volume_names(h)) == before
    ok(h, "run", "--rm", "-v", "/data", A, "true")  # --rm removes the anonymous volume
    assert set(volume_names(h)) == before
    ok(h, "run", "--name", "an2", "-v", "/data", A, "true")
    kept = set(volume_names(h)) - before
    assert len(kept) == 1
    ok(h, "rm", "an2")  # without -v it stays
    assert set(volume_names(h)) - before == kept
    ok(h, "volume", "rm", *kept)


def test_volumes_from(h: LabHost) -> None:
    ok(h, "create", "--name", "src", "-v", "vf:/data", "-v", "/anon", A)
    ok(h, "run", "--rm", "--volumes-from", "src", A, "sh", "-c", "echo x > /data/y; touch /anon/z")
    assert ok(h, "run", "--rm", "-v", "vf:/d", A, "cat", "/d/y") == "x\n"
    r = docker(h, "run", "--rm", "--volumes-from", "src:ro", A, "touch", "/data/z")
    assert r.returncode != 0 and "Read-only file system" in r.stderr, r
    ok(h, "create", "--name", "dst", "--volumes-from", "src:ro", A)
    mounts = {m["Destination"]: m for m in inspect(h, "inspect", "dst")["Mounts"]}
    assert mounts["/data"]["Name"] == "vf" and mounts["/data"]["RW"] is False
    ok(h, "rm", "-v", "dst")  # the anonymous volume is still src's
    assert mounts["/anon"]["Name"] in volume_names(h)
    ok(h, "rm", "-v", "src")
    assert mounts["/anon"]["Name"] not in volume_names(h)
    ok(h, "volume", "rm", "vf")


def test_copy_up_from_image(h: LabHost) -> None:
    ok(h, "run", "--name", "cu", "volimg", "grep", "^root:", "/etc/passwd")
    m = inspect(h, "inspect", "cu")["Mounts"]
    assert [x["Destination"] for x in m] == ["/etc"]
    assert os.path.exists(os.path.join(m[0]["Source"], "passwd"))
    ok(h, "rm", "-v", "cu")
    ok(h, "run", "--rm", "-v", "etcvol:/etc", A, "test", "-s", "/etc/passwd")
    src = os.path.join(h.data_root, "volumes", "etcvol", "_data")
    assert os.path.exists(os.path.join(src, "group"))
    ok(h, "volume", "rm", "etcvol")


def test_driver_opts_tmpfs_volume(h: LabHost) -> None:
    ok(h, "volume", "create", "-o", "type=tmpfs", "-o", "device=tmpfs", "-o", "o=size=2m", "tv")
    assert inspect(h, "volume", "inspect", "tv")["Options"] == {
        "type": "tmpfs", "device": "tmpfs", "o": "size=2m"
    }  # fmt: skip
    out = ok(
        h, "run", "--rm", "-v", "tv:/m", A, "sh", "-c", "echo a > /m/a; grep ' /m ' /proc/mounts"
    )
    assert out.startswith("tmpfs /m tmpfs") and "size=2048k" in out, out
    assert ok(h, "run", "--rm", "-v", "tv:/m", A, "cat", "/m/a") == "a\n"
    ok(h, "volume", "rm", "tv")
    assert not os.path.exists(os.path.join(h.data_root, "volumes", "tv"))


def test_refusals_leave_nothing(h: LabHost) -> None:
    before = set(volume_names(h))
    names = ok(h, "ps", "-aq")
    err = fails(h, "run", "--rm", "-v", "fresh:/a", "-v", "other:/a", A, "true")
    assert "Duplicate mount point: /a" in err
    err = fails(h, "run", "--rm", "--volume-driver", "nfsplugin", "-v", "fresh2:/a", A, "true")
    assert 'plugin "nfsplugin" not found' in err
    err = fails(h, "run", "--rm", "--volumes-from", "nosuch", A, "true")
    assert "No such container: nosuch" in err
    assert set(volume_names(h)) == before and ok(h, "ps", "-aq") == names


def test_survives_daemon_restart(lab1: Lab, h: LabHost) -> None:
    ok(h, "volume", "create", "--label", "keep=1", "durable")
    ok(h, "run", "--name", "dw", "-v", "durable:/data", A, "sh", "-c", "echo persist > /data/p")
    lab1.restart_daemon("host1")
    assert inspect(h, "volume", "inspect", "durable")["Labels"] == {"keep": "1"}
    assert ok(h, "run", "--rm", "-v", "durable:/data", A, "cat", "/data/p") == "persist\n"
    err = fails(h, "volume", "rm", "durable", code=1)
    assert "volume is in use" in err
    ok(h, "rm", "dw")
    ok(h, "volume", "rm", "durable")
