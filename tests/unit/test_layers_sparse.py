"""Sparse tar members are stored sparse: a small archive holding a 10 GiB sparse file must
not use 10 GiB of disk on ``docker import`` / ``docker load`` (issue 16, hardening)."""

from __future__ import annotations

import asyncio
import hashlib
import io
import json
import os
import shutil
import subprocess
import tarfile
from pathlib import Path

import pytest

from tether.errors import BadRequest
from tether.runtime.images import ImageStore
from tether.runtime.layers import extract_layer

BIG = 10 << 30  # 10 GiB apparent size
TAIL = BIG - 100

pytestmark = pytest.mark.skipif(shutil.which("tar") is None, reason="needs GNU tar")


def sparse_tar(tmp: Path, fmt: str) -> bytes:
    """A tar (GNU ``S`` member or PAX 1.0 sparse) of a 10 GiB file with two small data runs."""
    src = tmp / "src"
    src.mkdir()
    with open(src / "big", "wb") as f:
        f.truncate(BIG)
        f.seek(4096)
        f.write(b"hello")
        f.seek(TAIL)
        f.write(b"tail")
    if os.stat(src / "big").st_blocks * 512 > 1 << 20:
        pytest.skip("this filesystem does not keep files sparse")
    out = tmp / f"{fmt}.tar"
    subprocess.run(
        ["tar", "--sparse", f"--format={fmt}", "-C", str(src), "-cf", str(out), "big"],
        check=True,
    )
    shutil.rmtree(src)
    return out.read_bytes()


def check_sparse(path: Path) -> None:
    st = os.stat(path)
    assert st.st_size == BIG
    assert st.st_blocks * 512 < 1 << 20, f"{st.st_blocks * 512} bytes on disk"
    with open(path, "rb") as f:
        assert f.read(8) == b"\0" * 8
        f.seek(4096)
        assert f.read(5) == b"hello"
        f.seek(TAIL)
        assert f.read(4) == b"tail"
        f.seek(BIG - 96)
        assert f.read() == b"\0" * 96


@pytest.mark.parametrize("fmt", ["gnu", "posix"])
def test_extract_layer_keeps_sparse_files_sparse(tmp_path: Path, fmt: str) -> None:
    data = sparse_tar(tmp_path, fmt)
    assert len(data) < 64 << 10
    diff_id, size = extract_layer(io.BytesIO(data), tmp_path / "layer")
    assert diff_id == "sha256:" + hashlib.sha256(data).hexdigest()
    assert size == BIG
    check_sparse(tmp_path / "layer" / "big")


def test_import_and_load_of_sparse_layer(tmp_path: Path) -> None:
    layer = sparse_tar(tmp_path, "posix")
    store = ImageStore(tmp_path / "root")
    image = asyncio.run(store.import_tar(layer, "sparse", []))
    check_sparse(store.layer_paths(image)[0] / "big")

    # The same layer inside a `docker save` archive, loaded into a fresh store.
    layer_hex = hashlib.sha256(layer).hexdigest()
    config = json.dumps(
        {"architecture": "amd64", "os": "linux", "config": {},
         "rootfs": {"type": "layers", "diff_ids": [f"sha256:{layer_hex}"]}}
    ).encode()  # fmt: skip
    config_hex = hashlib.sha256(config).hexdigest()
    manifest = [{"Config": f"{config_hex}.json", "RepoTags": ["sparse:2"],
                 "Layers": [f"{layer_hex}/layer.tar"]}]  # fmt: skip
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w") as tar:
        for name, raw in [(f"{config_hex}.json", config), (f"{layer_hex}/layer.tar", layer),
                          ("manifest.json", json.dumps(manifest).encode())]:  # fmt: skip
            info = tarfile.TarInfo(name)
            info.size = len(raw)
            tar.addfile(info, io.BytesIO(raw))
    other = ImageStore(tmp_path / "root2")
    assert asyncio.run(other.load(buf.getvalue())) == ["sparse:2"]
    check_sparse(other.layer_paths(other.get("sparse:2"))[0] / "big")


def test_sparse_map_outside_the_file_is_refused(tmp_path: Path) -> None:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w", format=tarfile.PAX_FORMAT) as tar:
        info = tarfile.TarInfo("evil")
        info.size = 20
        info.pax_headers = {"GNU.sparse.map": "0,10,100,10", "GNU.sparse.size": "50"}
        tar.addfile(info, io.BytesIO(b"x" * 20))
    with pytest.raises(BadRequest, match="sparse map"):
        extract_layer(io.BytesIO(buf.getvalue()), tmp_path / "layer")
