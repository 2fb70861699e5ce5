"""``docker save`` keeps image ids (issue 17): layer tars put together again from the
skeleton kept at unpack (``runtime.tarsplit``) and the unpacked files."""

from __future__ import annotations

import hashlib
import io
import json
import tarfile
from pathlib import Path

from tests.unit.test_image_extra import archive_members, collect, run

from tether.runtime import tarsplit
from tether.runtime.images import ImageStore


def quirky_tar(entries: list[tuple[str, bytes]]) -> bytes:
    """A tar tether's own writer would not make: GNU format, owner names, odd order and
    modes, a big file, and tar's 10 KiB record padding at the end."""
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w", format=tarfile.GNU_FORMAT) as tar:
        for name, data in entries:
            info = tarfile.TarInfo(name)
            info.size, info.mtime, info.mode = len(data), 1_600_000_123, 0o640
            info.uname, info.gname, info.uid, info.gid = "alice", "staff", 1000, 50
            tar.addfile(info, io.BytesIO(data))
    return buf.getvalue()


def archive(layer: bytes, tag: str = "q:1") -> tuple[bytes, str]:
    diff_id = "sha256:" + hashlib.sha256(layer).hexdigest()
    config = json.dumps({"architecture": "amd64", "os": "linux", "config": {"Cmd": ["sh"]},
                         "rootfs": {"type": "layers", "diff_ids": [diff_id]}}).encode()  # fmt: skip
    hexid = hashlib.sha256(config).hexdigest()
    manifest = [{"Config": f"{hexid}.json", "RepoTags": [tag], "Layers": ["l/layer.tar"]}]
    out = io.BytesIO()
    with tarfile.open(fileobj=out, mode="w") as t:
        for name, data in ((f"{hexid}.json", config), ("l/layer.tar", layer),
                           ("manifest.json", json.dumps(manifest).encode())):  # fmt: skip
            info = tarfile.TarInfo(name)
            info.size = len(data)
            t.addfile(info, io.BytesIO(data))
    return out.getvalue(), f"sha256:{hexid}"


LAYER = quirky_tar([("z", b"last first"), ("a/b", b"x" * 300_000), ("empty", b"")])


def test_save_gives_back_the_imported_tar_and_the_id(tmp_path: Path) -> None:
    data, image_id = archive(LAYER)
    first = ImageStore(tmp_path / "a")
    run(first.load(data))
    assert first.get("q:1").id == image_id
    saved = run(collect(first.save(["q:1"])))
    [entry] = json.loads(archive_members(saved)["manifest.json"] or b"")
    assert archive_members(saved)[entry["Layers"][0]] == LAYER  # byte for byte
    second = ImageStore(tmp_path / "b")
    run(second.load(saved))
    assert second.get("q:1").id == image_id
    # the skeleton holds no file data, and goes with its layer
    layer_dir = next(p for p in (tmp_path / "a").rglob("*.split")).with_suffix("")
    assert b"x" * 1000 not in tarsplit.paths(layer_dir)[0].read_bytes()
    run(first.remove("q:1"))
    assert not any((tmp_path / "a").rglob("*.split*"))


def test_a_layer_that_cannot_be_given_back_is_made_again(tmp_path: Path) -> None:
    # the same path twice: the second contents win on disk, the first is not kept
    twice = quirky_tar([("f", b"one"), ("f", b"two!")])
    store = ImageStore(tmp_path / "a")
    data, image_id = archive(twice)
    run(store.load(data))
    assert not any((tmp_path / "a").rglob("*.split"))
    saved = run(collect(store.save(["q:1"])))
    other = ImageStore(tmp_path / "b")
    run(other.load(saved))  # a valid archive, with a new tar (so another id)
    assert other.get("q:1").id != image_id
    # a file changed under a kept skeleton (size): made again too, still loadable
    data, image_id = archive(LAYER, "r:1")
    run(store.load(data))
    layer_dir = next(p for p in (tmp_path / "a").rglob("*.split")).with_suffix("")
    (layer_dir / "z").write_bytes(b"changed")
    assert tarsplit.SplitTar.open(layer_dir) is None
    third = ImageStore(tmp_path / "c")
    run(third.load(run(collect(store.save(["r:1"])))))
    assert third.get("r:1").id != image_id
