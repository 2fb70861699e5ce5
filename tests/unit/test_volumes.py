"""Volumes and mounts without root (issue 16, P2): Docker's mount parsing and texts, the
volume service over an in-memory store and a temporary data root, the OCI mount order."""

from __future__ import annotations

import asyncio
import os
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest

from tether.engine import mounts as m
from tether.engine import psfilter
from tether.engine.volumes import VolumeService
from tether.errors import BadRequest, Conflict, Internal, NotFound
from tether.runtime.oci import UserMount, build_spec
from tether.testing.runtime import FakeVolumeMounts
from tether.testing.store import MemoryStore


def run(coro: Any) -> Any:
    return asyncio.run(coro)


# ---- parsing ---------------------------------------------------------------------------------


def test_binds_as_docker_parses_them() -> None:
    b = m.parse_bind("/srv/x:/x:ro")
    assert (b["Type"], b["Source"], b["Destination"], b["RW"], b["Mode"]) == (
        "bind", "/srv/x", "/x", False, "ro"
    )  # fmt: skip
    assert b["Propagation"] == "rprivate" and b["Create"]
    v = m.parse_bind("data:/data")
    assert (v["Type"], v["Name"], v["Mode"], v["Named"], v["CopyData"]) == (
        "volume", "data", "z", True, True
    )  # fmt: skip
    assert not m.parse_bind("data:/data:nocopy")["CopyData"]
    assert m.parse_bind("/h:/c:rshared")["Propagation"] == "rshared"
    for raw, text in (
        ("/a:ro", "invalid volume specification: '/a:ro'"),
        ("a:b:c:d:e", "invalid volume specification: 'a:b:c:d:e'"),
        ("/a:/b:rw,ro", "invalid mode: rw,ro"),
        ("/a:/", "destination can't be '/'"),
        ("/a:b", "invalid mount path: 'b' mount path must be absolute"),
        ("vol:/b:rshared", 'type "volume": field BindOptions must not be specified'),
    ):
        with pytest.raises(BadRequest) as exc:
            m.parse_bind(raw)
        assert text in exc.value.message, raw


def test_mounts_as_docker_parses_them() -> None:
    with pytest.raises(BadRequest) as exc:
        m.parse_mount({"Type": "bind", "Source": "/no/such", "Target": "/x"}, lambda _p: False)
    assert exc.value.message == (
        'invalid mount config for type "bind": bind source path does not exist: /no/such'
    )
    t = m.parse_mount(
        {"Type": "tmpfs", "Target": "/t", "TmpfsOptions": {"SizeBytes": 64 << 20, "Mode": 0o1777}}
    )
    assert t["Data"] == "mode=1777,size=64m"
    v = m.parse_mount(
        {"Type": "volume", "Source": "n", "Target": "/d",
         "VolumeOptions": {"NoCopy": True, "Labels": {"a": "b"}}}
    )  # fmt: skip
    assert v["Name"] == "n" and not v["CopyData"] and v["Labels"] == {"a": "b"}
    for spec, text in (
        ({"Type": "foo", "Target": "/x"}, 'type "foo": mount type unknown'),
        ({"Type": "volume", "Target": "/x", "ReadOnly": True}, "anonymous volumes"),
        ({"Type": "tmpfs", "Target": "/x", "Source": "s"}, "field Source must not be specified"),
        ({"Type": "volume", "Target": "/x", "BindOptions": {}}, "field BindOptions must not"),
        ({"Type": "bind", "Source": "/", "Target": ""}, "field Target must not be empty"),
        ({"Type": "bind", "Source": "/", "Target": "/x", "BindOptions": {"Propagation": "x"}},
         "invalid propagation mode: x"),
    ):  # fmt: skip
        with pytest.raises(BadRequest) as exc:
            m.parse_mount(spec, lambda _p: True)
        assert text in exc.value.message, spec


def test_plan_order_duplicates_and_volumes_from() -> None:
    theirs = [m.parse_bind("shared:/s"), m.parse_bind("/h:/x")]
    for p in theirs:
        p["Source"] = p["Source"] or "/vols/shared/_data"
    hc = {"VolumesFrom": ["other:ro"], "Binds": ["/h2:/x"], "Tmpfs": {"/run": "size=1m"}}
    pts = m.plan(hc, {"/data": {}, "/s": {}, "/run": {}}, lambda ref: [dict(p) for p in theirs])
    by = {p["Destination"]: p for p in pts}
    assert set(by) == {"/s", "/x", "/data"}
    assert by["/s"]["RW"] is False and by["/s"]["Mode"] == "" and not by["/s"]["CopyData"]
    assert by["/x"]["Source"] == "/h2"  # a bind replaces the other container's
    assert by["/data"]["Name"] == "" and by["/data"]["CopyData"] and not by["/data"]["Named"]
    with pytest.raises(BadRequest, match="Duplicate mount point: /a"):
        m.plan({"Binds": ["v:/a"], "Mounts": [{"Type": "tmpfs", "Target": "/a"}]}, None, list)
    with pytest.raises(BadRequest, match="Duplicate mount point: /run"):
        m.plan({"Binds": ["v:/run"], "Tmpfs": {"/run": ""}}, None, list)

    def missing(ref: str) -> list[Any]:
        raise NotFound(f"No such container: {ref}")

    with pytest.raises(BadRequest, match="No such container: x"):
        m.plan({"VolumesFrom": ["x"]}, None, missing)
    with pytest.raises(BadRequest, match="invalid mode: rshared"):
        m.plan({"VolumesFrom": ["x:rshared"]}, None, missing)


def test_public_shape_and_options() -> None:
    b = m.parse_bind("/h:/c")
    assert m.public(b) == {"Type": "bind", "Source": "/h", "Destination": "/c", "Mode": "",
                           "RW": True, "Propagation": "rprivate"}  # fmt: skip
    assert m.bind_options({"RW": False, "Propagation": ""}) == ["rbind", "ro", "rprivate"]
    opts = m.tmpfs_options("rw,size=64m,exec")
    assert opts == ["exec", "nosuid", "nodev", "rprivate", "rw", "size=64m"]
    assert "noexec" not in m.tmpfs_options("exec")
    assert m.merge_tmpfs_options(["size=1m", "size=2m", "ro", "rw"]) == ["size=2m", "rw"]


def test_oci_user_mounts_replace_defaults_and_sort_by_depth() -> None:
    spec = build_spec(
        args=["sh"], rootfs="/r",
        user_mounts=[UserMount("/a/b/c", "bind", "/x", ("rbind",)),
                     UserMount("/dev/shm", "tmpfs", "tmpfs", ("size=1m",)),
                     UserMount("/a", "tmpfs", "tmpfs", ())],
    )  # fmt: skip
    dests = [x["destination"] for x in spec["mounts"]]
    assert dests.count("/dev/shm") == 1 and dests[-3:] == ["/a", "/dev/shm", "/a/b/c"]
    shm = next(x for x in spec["mounts"] if x["destination"] == "/dev/shm")
    assert shm["options"] == ["size=1m"]


def test_ps_volume_filter() -> None:
    c = SimpleNamespace(mounts=[{"Name": "v", "Source": "/s", "Destination": "/d"},
                                {"Name": "", "Source": "/host", "Destination": "/h"}])  # fmt: skip
    match = psfilter.matcher({"volume": ["v"]}, lambda r: r)
    assert match(c)
    assert psfilter.matcher({"volume": ["/host"]}, lambda r: r)(c)
    assert psfilter.matcher({"volume": ["/h"]}, lambda r: r)(c)
    assert not psfilter.matcher({"volume": ["nope"]}, lambda r: r)(c)


# ---- the volume service ------------------------------------------------------------------------


def _svc(tmp_path: Path, users: dict[str, list[str]] | None = None) -> VolumeService:
    containers = {
        cid: SimpleNamespace(id=cid, mounts=[{"Type": "volume", "Name": n} for n in names])
        for cid, names in (users or {}).items()
    }
    table: Any = SimpleNamespace(containers=containers)
    svc = VolumeService(MemoryStore(), tmp_path, table, FakeVolumeMounts())
    run(svc.load())
    return svc


def test_create_inspect_remove(tmp_path: Path) -> None:
    svc = _svc(tmp_path, {"c1": ["used"]})
    v = run(svc.create("v1", None, {}, {"a": "b"}))
    js = svc.json(v)
    assert list(js) == ["CreatedAt", "Driver", "Labels", "Mountpoint", "Name", "Options", "Scope"]
    assert js["Mountpoint"] == str(tmp_path / "volumes" / "v1" / "_data")
    assert (
        os.path.isdir(js["Mountpoint"]) and oct(os.stat(tmp_path / "volumes").st_mode)[-3:] == "701"
    )
    assert run(svc.create("v1")) is v  # idempotent
    anon = run(svc.create())
    assert len(anon.name) == 64 and anon.labels is None and anon.options is None
    # a second service over the same store sees them (a daemon restart)
    again = VolumeService(svc.store, tmp_path, svc.table)
    run(again.load())
    assert set(again.volumes) == {"v1", anon.name}
    run(svc.create("used"))
    with pytest.raises(Conflict) as exc:
        run(svc.remove("used"))
    assert exc.value.message == "remove used: volume is in use - [c1]"
    assert (tmp_path / "volumes" / "used" / "_data").is_dir()
    with pytest.raises(NotFound, match="get nope: no such volume"):
        run(svc.remove("nope"))
    run(svc.remove("nope", force=True))
    run(svc.remove("v1"))
    assert not (tmp_path / "volumes" / "v1").exists() and "v1" not in svc.volumes


def test_create_refusals_leave_nothing(tmp_path: Path) -> None:
    svc = _svc(tmp_path)
    for args, exc_type, text in (
        (("x",), BadRequest, "create x: volume name is too short"),
        (("a/b",), BadRequest, '"a/b" includes invalid characters'),
        (("vv", "flocker"), NotFound, 'error looking up volume plugin flocker: plugin "flocker"'),
        (("vv", None, {"size": "1"}), BadRequest, 'create vv: invalid option: "size"'),
        (("vv", None, {"type": "tmpfs"}), BadRequest, 'missing required option: "device"'),
    ):
        with pytest.raises(exc_type) as exc:
            run(svc.create(*args))
        assert text in exc.value.message
    assert svc.volumes == {} and os.listdir(tmp_path / "volumes") == []


def test_store_failure_removes_folder(tmp_path: Path) -> None:
    svc = _svc(tmp_path)

    async def broken(key: str, value: Any) -> bool:
        raise Internal("store down")

    svc.store.create = broken  # type: ignore[method-assign]
    with pytest.raises(Internal):
        run(svc.create("v1"))
    assert os.listdir(tmp_path / "volumes") == [] and svc.volumes == {}


def test_list_filters_and_prune(tmp_path: Path) -> None:
    svc = _svc(tmp_path, {"c1": ["busy"]})
    for name, labels in (("busy", None), ("a1", {"k": "1"}), ("a2", {"k": "2"})):
        run(svc.create(name, None, None, labels))
    names = lambda f: [v.name for v in svc.list(f)]  # noqa: E731
    assert names({"dangling": ["true"]}) == ["a1", "a2"]
    assert names({"dangling": ["false"]}) == ["busy"]
    assert names({"label": ["k=2"]}) == ["a2"] and names({"name": ["^a"]}) == ["a1", "a2"]
    with pytest.raises(BadRequest, match="invalid filter 'foo'"):
        svc.list({"foo": ["x"]})
    (tmp_path / "volumes" / "a1" / "_data" / "f").write_bytes(b"x" * 100)
    gone, size = run(svc.prune({"label!": ["k=2"]}))
    assert gone == ["a1"] and size == 100
    gone, size = run(svc.prune({}))
    assert gone == ["a2"] and "busy" in svc.volumes


def test_driver_options_mount_at_first_use(tmp_path: Path) -> None:
    svc = _svc(tmp_path)
    run(svc.create("tt", None, {"type": "tmpfs", "device": "tmpfs", "o": "size=1m"}))
    path = run(svc.source("tt"))
    assert svc.mounts.mounted[path] == ("tmpfs", "tmpfs", "size=1m")  # type: ignore[union-attr]
    run(svc.remove("tt"))
    assert svc.mounts.mounted == {}  # type: ignore[union-attr]


def test_attach_undoes_on_failure(tmp_path: Path) -> None:
    svc = _svc(tmp_path)
    points = m.plan({"Binds": ["named:/n", "bad/name:/b"]}, {"/anon": {}}, list)
    with pytest.raises(BadRequest):
        run(svc.attach(points))
    assert svc.volumes == {}
    points = m.plan({"Binds": ["named:/n", "/h:/h"]}, {"/anon": {}}, list)
    made = run(svc.attach(points))
    assert len(made) == 2 and "named" in made
    assert all(p["Source"] for p in points)
