"""``docker commit`` in the image store (no root): the container's upper directory as a new
layer, Docker's config merge, the parent link, an empty commit, persistence."""

from __future__ import annotations

import asyncio
import io
import os
import tarfile
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

from tether.errors import BadRequest
from tether.runtime.commit import EMPTY_LAYER, merge_config
from tether.runtime.images import ImageStore


def _tar(files: dict[str, bytes]) -> bytes:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w", format=tarfile.PAX_FORMAT) as tar:
        for d in ("bin", "etc"):
            info = tarfile.TarInfo(d)
            info.type, info.mode = tarfile.DIRTYPE, 0o755
            tar.addfile(info)
        for name, data in files.items():
            info = tarfile.TarInfo(name)
            info.size, info.mode = len(data), 0o755
            tar.addfile(info, io.BytesIO(data))
    return buf.getvalue()


async def _chunks(data: bytes) -> AsyncIterator[bytes]:
    yield data


def run(coro: Any) -> Any:
    return asyncio.run(coro)


CID = "c" * 64
CONTAINER_CONFIG = {
    "Hostname": "cccccccccccc",
    "Env": ["PATH=/bin", "A=1"],
    "Cmd": ["sh", "-c", "echo hi > /x"],
    "Image": "alpine",
    "ExposedPorts": {"80/tcp": {}},
    "Labels": {"a": "1"},
}


def _store_with_container(tmp_path: Path) -> tuple[ImageStore, Any, Path]:
    store = ImageStore(tmp_path)
    base = run(store.import_tar(_chunks(_tar({"bin/sh": b"sh", "etc/passwd": b"root"})), "alpine"))
    run(store.prepare_rootfs(base, CID))
    return store, base, tmp_path / "containers" / CID / "upper"


def test_commit_adds_the_upper_dir_as_a_layer(tmp_path: Path) -> None:
    store, base, upper = _store_with_container(tmp_path)
    (upper / "x").write_bytes(b"hi\n")
    (upper / "etc").mkdir()
    (upper / "etc" / "hosts").write_bytes(b"")  # an init-layer path: left out
    image = run(
        store.commit(
            base.id,
            CID,
            container_config=CONTAINER_CONFIG,
            changes=["EXPOSE 8000", 'CMD ["bash"]'],
            author="me",
            comment="msg",
            tag="mine:1",
        )
    )
    assert image.parent == base.id
    assert image.repo_tags == ["mine:1"]
    assert image.layers[:-1] == base.layers and len(image.layers) == 2
    top = store.layer_paths(image)[0]
    assert (top / "x").read_bytes() == b"hi\n"
    assert not (top / "etc" / "hosts").exists()
    doc = image.document
    assert doc["container"] == CID and doc["author"] == "me"
    assert doc["container_config"] == CONTAINER_CONFIG
    assert doc["config"]["Cmd"] == ["bash"]
    assert doc["config"]["ExposedPorts"] == {"80/tcp": {}, "8000/tcp": {}}
    assert doc["config"]["Env"] == ["PATH=/bin", "A=1"]
    assert doc["history"][-1] == {
        "created": doc["created"],
        "author": "me",
        "created_by": "sh -c echo hi > /x",
        "comment": "msg",
    }
    inspect = store.inspect_json(image)
    assert inspect["Parent"] == base.id and inspect["Author"] == "me"
    assert inspect["Container"] == CID
    assert image.size == base.size + 3
    assert ImageStore(tmp_path).get("mine:1").parent == base.id  # kept across a restart


def test_commit_without_changes_adds_no_layer(tmp_path: Path) -> None:
    store, base, _ = _store_with_container(tmp_path)
    image = run(store.commit(base.id, CID, container_config=CONTAINER_CONFIG))
    assert image.layers == base.layers
    assert image.document["history"][-1]["empty_layer"] is True
    assert not (tmp_path / "layers" / EMPTY_LAYER.split(":")[1]).exists()
    assert store.history(image.id)[0]["CreatedBy"] == "sh -c echo hi > /x"


@pytest.mark.skipif(os.geteuid() != 0, reason="a whiteout is a 0/0 character device")
def test_commit_keeps_a_deletion(tmp_path: Path) -> None:
    store, base, upper = _store_with_container(tmp_path)
    (upper / "bin").mkdir()
    os.mknod(upper / "bin" / "sh", 0o600 | 0o020000, 0)
    image = run(store.commit(base.id, CID, container_config=CONTAINER_CONFIG))
    top = store.layer_paths(image)[0]
    assert os.stat(top / "bin" / "sh").st_rdev == 0  # a whiteout again, in the new layer


def test_commit_bad_change_or_tag_is_refused_before_the_layer(tmp_path: Path) -> None:
    store, base, upper = _store_with_container(tmp_path)
    (upper / "x").write_bytes(b"1")
    with pytest.raises(BadRequest):
        run(store.commit(base.id, CID, container_config={}, changes=["NOPE x"]))
    with pytest.raises(BadRequest):
        run(store.commit(base.id, CID, container_config={}, tag="Bad:Tag"))
    assert len(store.list()) == 1
    assert sorted(p.name for p in (tmp_path / "layers").iterdir() if p.is_dir()) == [
        base.layers[0].split(":")[1]
    ]


def test_merge_config_is_dockers() -> None:
    user = {"Env": ["A=2", "B=1"], "Labels": {"b": "2"}, "Entrypoint": ["/x"]}
    out = merge_config(user, {**CONTAINER_CONFIG, "WorkingDir": "/w", "User": "u"})
    assert out["Env"] == ["PATH=/bin", "A=2", "B=1"]
    assert out["Labels"] == {"a": "1", "b": "2"}
    assert out["Entrypoint"] == ["/x"] and "Cmd" not in out  # the user's entrypoint wins
    assert out["WorkingDir"] == "/w" and out["User"] == "u"
    assert merge_config({}, CONTAINER_CONFIG)["Cmd"] == CONTAINER_CONFIG["Cmd"]
