"""Image history, save (docker save archives, whiteouts back to AUFS style), prune."""

from __future__ import annotations

import asyncio
import hashlib
import io
import json
import os
import stat
import tarfile
from pathlib import Path
from typing import Any

import pytest
from tests.unit.apiclient import api_client
from tests.unit.test_images import ROOTFS, make_tar

from tether.api import httpd as web
from tether.api.app import make_app
from tether.api.image_extra import go_duration, prune_filters
from tether.errors import BadRequest, Conflict, NotFound
from tether.runtime.images import ImageStore
from tether.runtime.layers import extract_layer
from tether.runtime.layertar import LayerTar

ROOT = os.geteuid() == 0
needs_root = pytest.mark.skipif(not ROOT, reason="overlay whiteouts (0/0 char devices) need root")


def run(coro: Any) -> Any:
    return asyncio.run(coro)


async def collect(chunks: Any) -> bytes:
    return b"".join([c async for c in chunks])


UPPER = make_tar(
    [("etc/", None), ("etc/.wh.passwd", b""), ("var/", None), ("var/.wh..wh..opq", b""),
     ("var/new", b"fresh")]
)  # fmt: skip


def two_layer_archive() -> tuple[bytes, str]:
    """A legacy save archive: ROOTFS then UPPER, with a history that has an empty layer."""
    diff_ids = ["sha256:" + hashlib.sha256(t).hexdigest() for t in (ROOTFS, UPPER)]
    config = json.dumps(
        {
            "architecture": "amd64",
            "os": "linux",
            "created": "2024-01-02T00:00:00Z",
            "config": {"Cmd": ["sh"], "Labels": {"team": "a"}},
            "rootfs": {"type": "layers", "diff_ids": diff_ids},
            "history": [
                {"created": "2024-01-01T00:00:00Z", "created_by": "ADD rootfs"},
                {"created": "2024-01-01T00:00:01Z", "created_by": "ENV A=1", "empty_layer": True},
                {"created": "2024-01-02T00:00:00Z", "created_by": "RUN rm", "comment": "c"},
            ],
        }
    ).encode()
    config_hex = hashlib.sha256(config).hexdigest()
    layers = [f"{d.split(':')[1]}/layer.tar" for d in diff_ids]
    manifest = [{"Config": f"{config_hex}.json", "RepoTags": ["two:1"], "Layers": layers}]
    files = [
        (f"{config_hex}.json", config),
        (layers[0], ROOTFS),
        (layers[1], UPPER),
        ("manifest.json", json.dumps(manifest).encode()),
    ]
    return make_tar(list(files)), f"sha256:{config_hex}"


# -- history -----------------------------------------------------------------------


def test_history_of_an_imported_image(tmp_path: Path) -> None:
    store = ImageStore(tmp_path)
    image = run(store.import_tar(ROOTFS, "alpine", []))
    [entry] = store.history("alpine")
    assert entry["Id"] == image.id
    assert entry["Tags"] == ["alpine:latest"]
    assert entry["Comment"] == "Imported from -"
    assert entry["CreatedBy"] == ""
    assert entry["Size"] == image.size > 0
    assert entry["Created"] > 1_600_000_000
    with pytest.raises(NotFound, match="No such image: nosuch"):
        store.history("nosuch")


def test_history_from_config_history(tmp_path: Path) -> None:
    store = ImageStore(tmp_path)
    data, image_id = two_layer_archive()
    run(store.load(data))
    hist = store.history("two:1")
    assert [h["CreatedBy"] for h in hist] == ["RUN rm", "ENV A=1", "ADD rootfs"]
    assert [h["Id"] for h in hist] == [image_id, "<missing>", "<missing>"]
    assert hist[0]["Tags"] == ["two:1"] and hist[1]["Tags"] is None
    assert hist[0]["Comment"] == "c"
    assert hist[1]["Size"] == 0 and hist[2]["Size"] == len(b"\x7fELF fake") + 30
    assert hist[2]["Created"] == 1704067200


# -- layer tars --------------------------------------------------------------------


@needs_root
def test_layer_tar_turns_overlay_whiteouts_into_aufs_ones(tmp_path: Path) -> None:
    layer = tmp_path / "l"
    extract_layer(io.BytesIO(UPPER), layer)
    assert stat.S_ISCHR(os.lstat(layer / "etc" / "passwd").st_mode)
    tar = LayerTar(layer)
    data = b"".join(tar.chunks())
    assert len(data) == tar.size
    with tarfile.open(fileobj=io.BytesIO(data)) as t:
        members = {m.name: m for m in t.getmembers()}
    assert list(members) == [
        "etc", "etc/.wh.passwd", "var", "var/.wh..wh..opq", "var/new"
    ]  # fmt: skip
    wh = members["etc/.wh.passwd"]
    assert wh.isreg() and wh.size == 0 and wh.mode == 0o600
    assert members["var/.wh..wh..opq"].isreg()
    assert not any("trusted.overlay" in k for m in members.values() for k in m.pax_headers)
    again = tmp_path / "again"
    extract_layer(io.BytesIO(data), again)  # and back: the same overlay whiteouts
    st = os.lstat(again / "etc" / "passwd")
    assert stat.S_ISCHR(st.st_mode) and st.st_rdev == 0
    assert os.getxattr(again / "var", "trusted.overlay.opaque") == b"y"


def test_layer_tar_links_and_modes(tmp_path: Path) -> None:
    layer = tmp_path / "l"
    data = make_tar([("a", b"hello"), ("b", ("lnk", "a")), ("d/", None), ("d/s", ("sym", "../a"))])
    extract_layer(io.BytesIO(data), layer)
    tar = LayerTar(layer)
    out = b"".join(tar.chunks())
    assert len(out) == tar.size and tar.size % 512 == 0
    with tarfile.open(fileobj=io.BytesIO(out)) as t:
        members = {m.name: m for m in t.getmembers()}
        assert t.extractfile("a").read() == b"hello"  # type: ignore[union-attr]
    assert members["b"].islnk() and members["b"].linkname == "a"
    assert members["d/s"].issym() and members["d/s"].linkname == "../a"
    assert members["a"].mode == 0o755 and members["a"].mtime == 1_700_000_000


# -- save --------------------------------------------------------------------------


def archive_members(data: bytes) -> dict[str, bytes | None]:
    out: dict[str, bytes | None] = {}
    with tarfile.open(fileobj=io.BytesIO(data)) as t:
        for m in t.getmembers():
            f = t.extractfile(m)
            out[m.name] = f.read() if f is not None else None
    return out


def test_save_archive_layout(tmp_path: Path) -> None:
    store = ImageStore(tmp_path)
    image = run(store.import_tar(ROOTFS, "alpine", ['CMD ["/bin/sh"]']))
    run(store.tag("alpine", "alpine", "3"))
    members = archive_members(run(collect(store.save(["alpine"]))))
    [entry] = json.loads(members["manifest.json"] or b"")
    assert entry["RepoTags"] == ["alpine:3", "alpine:latest"]  # a bare repository: every tag
    [layer] = entry["Layers"]
    v1 = layer.split("/")[0]
    assert members[f"{v1}/VERSION"] == b"1.0"
    assert json.loads(members[f"{v1}/json"] or b"")["id"] == v1
    config = members[entry["Config"]] or b""
    assert entry["Config"] == hashlib.sha256(config).hexdigest() + ".json"
    assert json.loads(config)["config"]["Cmd"] == ["/bin/sh"]
    diff_id = "sha256:" + hashlib.sha256(members[layer] or b"").hexdigest()
    assert json.loads(config)["rootfs"]["diff_ids"] == [diff_id]
    assert json.loads(members["repositories"] or b"") == {"alpine": {"3": v1, "latest": v1}}
    # by tag: that tag only; by id: no tag and no repositories file
    [entry] = json.loads(archive_members(run(collect(store.save(["alpine:3"]))))["manifest.json"])
    assert entry["RepoTags"] == ["alpine:3"]
    by_id = archive_members(run(collect(store.save([image.hex[:12]]))))
    assert json.loads(by_id["manifest.json"] or b"")[0]["RepoTags"] is None
    assert "repositories" not in by_id
    with pytest.raises(NotFound, match="No such image: nosuch:1"):
        store.save(["alpine", "nosuch:1"])


@needs_root
def test_save_load_round_trip(tmp_path: Path) -> None:
    first = ImageStore(tmp_path / "a")
    data, _ = two_layer_archive()
    run(first.load(data))
    saved = run(collect(first.save(["two:1"])))

    second = ImageStore(tmp_path / "b")
    assert run(second.load(saved)) == ["two:1"]
    image = second.get("two:1")
    assert image.cmd == ["sh"] and image.labels == {"team": "a"}
    assert len(image.layers) == 2
    upper, lower = second.layer_paths(image)
    assert (lower / "bin" / "busybox").read_bytes() == b"\x7fELF fake"
    assert os.readlink(lower / "bin" / "sh") == "busybox"
    st = os.lstat(upper / "etc" / "passwd")
    assert stat.S_ISCHR(st.st_mode) and st.st_rdev == 0
    assert os.getxattr(upper / "var", "trusted.overlay.opaque") == b"y"
    assert [h["CreatedBy"] for h in second.history("two:1")] == ["RUN rm", "ENV A=1", "ADD rootfs"]

    # tether's own tars come back byte for byte: a second round trip keeps the id
    third = ImageStore(tmp_path / "c")
    run(third.load(run(collect(second.save(["two:1"])))))
    assert third.get("two:1").id == image.id


def test_save_several_images_shares_layers(tmp_path: Path) -> None:
    store = ImageStore(tmp_path)
    run(store.import_tar(ROOTFS, "one", []))
    run(store.import_tar(ROOTFS, "two", ["ENV X=1"]))
    members = archive_members(run(collect(store.save(["one", "two:latest"]))))
    manifest = json.loads(members["manifest.json"] or b"")
    assert [m["RepoTags"] for m in manifest] == [["one:latest"], ["two:latest"]]
    assert manifest[0]["Layers"] == manifest[1]["Layers"]  # one layer.tar for both
    other = ImageStore(tmp_path / "other")
    assert sorted(run(other.load(b"".join(_tar_of(members))))) == ["one:latest", "two:latest"]


def _tar_of(members: dict[str, bytes | None]) -> list[bytes]:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w") as t:
        for name, data in members.items():
            info = tarfile.TarInfo(name)
            if data is None:
                info.type = tarfile.DIRTYPE
                t.addfile(info)
            else:
                info.size = len(data)
                t.addfile(info, io.BytesIO(data))
    return [buf.getvalue()]


# -- prune -------------------------------------------------------------------------


def test_prune_selection(tmp_path: Path) -> None:
    store = ImageStore(tmp_path)
    tagged = run(store.import_tar(ROOTFS, "keep", []))
    free = run(store.import_tar(ROOTFS, None, ["ENV A=1"]))
    used = run(store.import_tar(ROOTFS, None, ["ENV A=2"]))
    labelled = run(store.import_tar(make_tar([("x", b"12345")]), "lab", ["LABEL k=v"]))

    def in_use(image_id: str) -> tuple[str, bool] | None:
        return ("c" * 64, False) if image_id == used.id else None

    out = run(store.prune(in_use=in_use))
    assert out == {"ImagesDeleted": [{"Deleted": free.id}], "SpaceReclaimed": 0}  # layer shared
    assert {i.id for i in store.list()} == {tagged.id, used.id, labelled.id}
    assert run(store.prune(in_use=in_use)) == {"ImagesDeleted": None, "SpaceReclaimed": 0}

    out = run(store.prune(False, lambda i: i.labels.get("k") == "v", in_use))
    assert out["ImagesDeleted"][:2] == [{"Untagged": "lab:latest"}, {"Deleted": labelled.id}]
    assert out["ImagesDeleted"][2]["Deleted"] == labelled.layers[0]
    assert out["SpaceReclaimed"] == 5

    out = run(store.prune(False, None, in_use))  # -a: every image no container uses
    assert out["ImagesDeleted"][:2] == [{"Untagged": "keep:latest"}, {"Deleted": tagged.id}]
    assert [i.id for i in store.list()] == [used.id]


def test_prune_filters_parsing() -> None:
    assert prune_filters({}) == (True, {})
    assert prune_filters({"dangling": ["false"], "label": ["a"]}) == (False, {"label": ["a"]})
    assert prune_filters({"dangling": ["1"]})[0] is True
    with pytest.raises(BadRequest, match=r"invalid filter 'dangling=\[maybe\]'"):
        prune_filters({"dangling": ["maybe"]})
    with pytest.raises(BadRequest, match="invalid filter 'reference'"):
        prune_filters({"reference": ["x"]})
    with pytest.raises(BadRequest, match="more than one until filter specified"):
        prune_filters({"until": ["1", "2"]})
    until = float(prune_filters({"until": ["1h30m"]})[1]["until"][0])
    assert abs(until - (__import__("time").time() - 5400)) < 5
    assert prune_filters({"until": ["2024-01-01T00:00:00Z"]})[1] == {
        "until": ["2024-01-01T00:00:00Z"]
    }
    assert go_duration("10m") == 600 and go_duration("1.5s") == 1.5 and go_duration("10") is None


def test_prune_already_running(tmp_path: Path) -> None:
    store = ImageStore(tmp_path)
    store._pruning = True
    with pytest.raises(Conflict, match="a prune operation is already running"):
        run(store.prune())


# -- routes ------------------------------------------------------------------------


class _Containers:
    containers: dict[str, Any] = {}


class _Engine:
    def __init__(self, images: ImageStore) -> None:
        self.images = images
        self.containers = _Containers()


def test_routes(tmp_path: Path) -> None:
    store = ImageStore(tmp_path)

    async def scenario() -> None:
        image = await store.import_tar(ROOTFS, "alpine", [])
        app: web.Application = make_app(_Engine(store))
        async with api_client(app) as client:
            resp = await client.get("/v1.41/images/alpine/history")
            assert resp.status == 200
            assert (await resp.json())[0]["Id"] == image.id
            resp = await client.get("/images/nosuch/get")
            assert resp.status == 404
            assert (await resp.json()) == {"message": "No such image: nosuch"}
            resp = await client.get("/images/get", params=[("names", "alpine")])
            assert resp.headers["Content-Type"] == "application/x-tar"
            members = archive_members(await resp.read())
            assert json.loads(members["manifest.json"] or b"")[0]["RepoTags"] == ["alpine:latest"]
            resp = await client.post("/images/prune", params={"filters": '{"dangling":["0"]}'})
            body = await resp.json()
            deleted = [{"Untagged": "alpine:latest"}, {"Deleted": image.id}]
            assert body["ImagesDeleted"][:2] == deleted
            resp = await client.post("/images/prune", params={"filters": '{"x":["0"]}'})
            assert resp.status == 400

    run(scenario())
