"""Image store without root: changes parsing, import, save-format load, tags, removal."""

from __future__ import annotations

import asyncio
import gzip
import hashlib
import io
import json
import os
import stat
import tarfile
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

from tether.errors import BadRequest, Conflict, NotFound
from tether.runtime.changes import apply_changes
from tether.runtime.images import ImageStore
from tether.runtime.layers import extract_layer


def make_tar(entries: list[tuple[str, Any]]) -> bytes:
    """entries: (name, bytes) file | (name, None) dir | (name, ("sym", target)) symlink."""
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w", format=tarfile.PAX_FORMAT) as tar:
        for name, value in entries:
            info = tarfile.TarInfo(name)
            info.mtime = 1_700_000_000
            if value is None:
                info.type = tarfile.DIRTYPE
                info.mode = 0o755
                tar.addfile(info)
            elif isinstance(value, tuple):
                kind, target = value
                info.type = tarfile.SYMTYPE if kind == "sym" else tarfile.LNKTYPE
                info.linkname = target
                tar.addfile(info)
            else:
                info.size = len(value)
                info.mode = 0o755
                tar.addfile(info, io.BytesIO(value))
    return buf.getvalue()


ROOTFS = make_tar(
    [
        ("./", None),
        ("bin/", None),
        ("bin/busybox", b"\x7fELF fake"),
        ("bin/sh", ("sym", "busybox")),
        ("etc/", None),
        ("etc/passwd", b"root:x:0:0:root:/root:/bin/sh\n"),
    ]
)


def run(coro: Any) -> Any:
    return asyncio.run(coro)


# -- changes -------------------------------------------------------------------


def test_changes_json_and_shell_forms() -> None:
    cfg = apply_changes(['CMD ["/bin/sh"]', "ENTRYPOINT echo hi"])
    assert cfg["Cmd"] == ["/bin/sh"]
    assert cfg["Entrypoint"] == ["/bin/sh", "-c", "echo hi"]


def test_changes_env_label_expose_workdir() -> None:
    cfg = apply_changes(
        [
            'ENV A=1 B="two words"',
            "ENV LEGACY some value",
            "ENV A=3",
            'LABEL maintainer="me" version=1',
            "EXPOSE 80 53/udp 8000-8001",
            "WORKDIR /srv",
            "WORKDIR app",
            "USER nobody",
        ]
    )
    assert cfg["Env"] == ["B=two words", "LEGACY=some value", "A=3"]
    assert cfg["Labels"] == {"maintainer": "me", "version": "1"}
    assert cfg["ExposedPorts"] == {"80/tcp": {}, "53/udp": {}, "8000/tcp": {}, "8001/tcp": {}}
    assert cfg["WorkingDir"] == "/srv/app"
    assert cfg["User"] == "nobody"


def test_changes_rejects_unknown_instruction() -> None:
    with pytest.raises(BadRequest, match="run is not a valid change command"):
        apply_changes(["RUN echo"])
    with pytest.raises(BadRequest):
        apply_changes(["EXPOSE notaport"])


# -- layers ----------------------------------------------------------------------


def test_extract_refuses_path_traversal(tmp_path: Path) -> None:
    bad = make_tar([("../evil", b"x")])
    with pytest.raises(BadRequest):
        extract_layer(io.BytesIO(bad), tmp_path / "l")
    assert not (tmp_path / "evil").exists()


def test_extract_refuses_writing_through_symlink(tmp_path: Path) -> None:
    outside = tmp_path / "outside"
    outside.mkdir()
    bad = make_tar([("link", ("sym", str(outside))), ("link/pwned", b"x")])
    with pytest.raises(BadRequest):
        extract_layer(io.BytesIO(bad), tmp_path / "l")
    assert not (outside / "pwned").exists()


def test_extract_gzip_digest_is_of_uncompressed_tar(tmp_path: Path) -> None:
    diff_id, size = extract_layer(io.BytesIO(gzip.compress(ROOTFS)), tmp_path / "l")
    assert diff_id == "sha256:" + hashlib.sha256(ROOTFS).hexdigest()
    assert size == len(b"\x7fELF fake") + len(b"root:x:0:0:root:/root:/bin/sh\n")
    assert os.readlink(tmp_path / "l" / "bin" / "sh") == "busybox"
    assert os.stat(tmp_path / "l" / "bin" / "busybox").st_mode & 0o777 == 0o755


def test_extract_hardlink(tmp_path: Path) -> None:
    data = make_tar([("a", b"hello"), ("b", ("lnk", "a"))])
    extract_layer(io.BytesIO(data), tmp_path / "l")
    assert os.stat(tmp_path / "l" / "a").st_ino == os.stat(tmp_path / "l" / "b").st_ino


# -- import ----------------------------------------------------------------------


async def chunks(data: bytes) -> AsyncIterator[bytes]:
    for i in range(0, len(data), 1000):
        yield data[i : i + 1000]


def test_import_tags_config_and_persistence(tmp_path: Path) -> None:
    store = ImageStore(tmp_path)
    image = run(store.import_tar(chunks(ROOTFS), "alpine", ['CMD ["/bin/sh"]']))
    raw = (tmp_path / "images" / f"{image.hex}.json").read_bytes()
    assert image.id == "sha256:" + hashlib.sha256(raw).hexdigest()
    assert image.repo_tags == ["alpine:latest"]
    assert image.cmd == ["/bin/sh"]
    assert image.layers == ["sha256:" + hashlib.sha256(ROOTFS).hexdigest()]
    layer_dir = store.layer_paths(image)[0]
    assert (layer_dir / "etc" / "passwd").read_bytes().startswith(b"root:")

    again = ImageStore(tmp_path)  # a daemon restart
    refs = ["alpine", "alpine:latest", image.id, image.hex, image.hex[:12]]
    refs += ["sha256:" + image.hex[:6], "docker.io/library/alpine:latest"]
    for ref in refs:
        assert again.get(ref).id == image.id, ref
    with pytest.raises(NotFound, match="No such image: alpine:3"):
        again.get("alpine:3")


def test_inspect_and_summary_shapes(tmp_path: Path) -> None:
    store = ImageStore(tmp_path)
    image = run(store.import_tar(ROOTFS, "web:1", ['CMD ["httpd"]', "LABEL a=b"]))
    inspect = store.inspect_json(image)
    assert inspect["Id"] == image.id
    assert inspect["RepoTags"] == ["web:1"]
    assert inspect["Config"]["Cmd"] == ["httpd"]
    assert inspect["Config"]["Labels"] == {"a": "b"}
    assert inspect["RootFS"] == {"Type": "layers", "Layers": image.layers}
    assert inspect["Os"] == "linux"
    summary = store.summary_json(image)
    assert summary["RepoTags"] == ["web:1"]
    assert summary["Size"] == image.size > 0
    assert isinstance(summary["Created"], int) and summary["Created"] > 1_600_000_000


def test_import_bad_change_rejected_before_upload(tmp_path: Path) -> None:
    store = ImageStore(tmp_path)
    with pytest.raises(BadRequest):
        run(store.import_tar(ROOTFS, "x", ["FROM scratch"]))
    assert store.list() == []


def test_tag_and_remove(tmp_path: Path) -> None:
    store = ImageStore(tmp_path)
    image = run(store.import_tar(ROOTFS, "alpine", []))
    run(store.tag("alpine", "mine", "v1"))
    assert store.get("mine:v1").id == image.id
    assert sorted(store.get(image.id).repo_tags) == ["alpine:latest", "mine:v1"]
    with pytest.raises(Conflict, match="referenced in multiple repositories"):
        run(store.remove(image.hex[:12]))
    assert run(store.remove("mine:v1")) == [{"Untagged": "mine:v1"}]

    def used(_image_id: str) -> tuple[str, bool]:
        return ("c" * 64, False)

    with pytest.raises(Conflict, match="must force"):
        run(store.remove("alpine", in_use=used))
    result = run(store.remove("alpine"))
    assert result[0] == {"Untagged": "alpine:latest"}
    assert {"Deleted": image.id} in result
    assert store.list() == []
    assert not store.layer_paths(image)[0].exists()
    with pytest.raises(BadRequest, match="lowercase"):
        run(store.import_tar(ROOTFS, "Alpine", []))


# -- docker save format ----------------------------------------------------------


def save_archive(oci: bool) -> tuple[bytes, str]:
    layer = ROOTFS
    diff_id = "sha256:" + hashlib.sha256(layer).hexdigest()
    config = json.dumps(
        {
            "architecture": "amd64",
            "os": "linux",
            "created": "2024-01-01T00:00:00Z",
            "config": {"Cmd": ["sh"], "Env": ["PATH=/bin"]},
            "rootfs": {"type": "layers", "diff_ids": [diff_id]},
        }
    ).encode()
    config_hex = hashlib.sha256(config).hexdigest()
    layer_hex = diff_id.split(":")[1]
    files: list[tuple[str, bytes]] = []
    if oci:  # docker 25+: blobs + index.json + a manifest.json pointing into blobs
        manifest = json.dumps(
            {
                "schemaVersion": 2,
                "config": {"digest": f"sha256:{config_hex}"},
                "layers": [{"digest": diff_id}],
            }
        ).encode()
        man_hex = hashlib.sha256(manifest).hexdigest()
        index = {
            "manifests": [
                {
                    "digest": f"sha256:{man_hex}",
                    "annotations": {"io.containerd.image.name": "docker.io/library/busybox:latest"},
                }
            ]
        }
        files = [
            ("oci-layout", b'{"imageLayoutVersion":"1.0.0"}'),
            ("index.json", json.dumps(index).encode()),
            (f"blobs/sha256/{config_hex}", config),
            (f"blobs/sha256/{layer_hex}", layer),
            (f"blobs/sha256/{man_hex}", manifest),
        ]
    else:
        manifest_json = [
            {"Config": f"{config_hex}.json", "RepoTags": ["busybox:latest"],
             "Layers": [f"{layer_hex}/layer.tar"]}
        ]  # fmt: skip
        files = [
            (f"{config_hex}.json", config),
            (f"{layer_hex}/layer.tar", layer),
            ("manifest.json", json.dumps(manifest_json).encode()),
        ]
    return make_tar(list(files)), f"sha256:{config_hex}"


@pytest.mark.parametrize("oci", [False, True], ids=["legacy", "oci"])
def test_load_save_archive(tmp_path: Path, oci: bool) -> None:
    data, image_id = save_archive(oci)
    store = ImageStore(tmp_path)
    assert run(store.load(data)) == ["busybox:latest"]
    image = store.get("busybox")
    assert image.id == image_id
    assert image.cmd == ["sh"]
    assert (store.layer_paths(image)[0] / "bin" / "busybox").exists()
    # Loading again is a no-op that still reports the tag.
    assert run(store.load(data)) == ["busybox:latest"]
    assert len(store.list()) == 1


def test_load_rejects_non_save_tarball(tmp_path: Path) -> None:
    store = ImageStore(tmp_path)
    with pytest.raises(BadRequest):
        run(store.load(ROOTFS))


@pytest.mark.skipif(os.geteuid() != 0, reason="overlay whiteouts (0/0 char devices) need root")
def test_whiteouts_become_overlay_whiteouts(tmp_path: Path) -> None:
    data = make_tar([("etc/", None), ("etc/.wh.passwd", b""), ("var/", None),
                     ("var/.wh..wh..opq", b"")])  # fmt: skip
    extract_layer(io.BytesIO(data), tmp_path / "l")
    st = os.lstat(tmp_path / "l" / "etc" / "passwd")
    assert stat.S_ISCHR(st.st_mode) and st.st_rdev == 0
    assert not (tmp_path / "l" / "etc" / ".wh.passwd").exists()
    assert os.getxattr(tmp_path / "l" / "var", "trusted.overlay.opaque") == b"y"
