"""Writing ``docker save`` archives in the legacy layout Docker 20.10 writes.

::

    <v1 id>/VERSION          "1.0"
    <v1 id>/json             the layer's v1 image document
    <v1 id>/layer.tar        the layer (runtime.layertar: AUFS-style whiteouts)
    <config hex>.json        the image config
    manifest.json            [{"Config": ..., "RepoTags": [...] | null, "Layers": [...]}]
    repositories             {"repo": {"tag": "<top v1 id>"}} (only when a tag is saved)

A layer tar is the one the layer was imported from, put together again from its
skeleton (``runtime.tarsplit``) and the unpacked files: its digest is the DiffID, so the
image keeps its id through save and load (Docker's rule). A layer without a usable
skeleton (unpacked by an older version; a tar that wrote one path twice; a file changed
since) is made again from its directory (``runtime.layertar``): when that tar's digest
differs from the DiffID, the config in the archive carries the new DiffIDs (and so the
image gets another id on load); a second save of such an archive is stable.

The archive is a generator of byte chunks (nothing is built in memory). Blocking code:
callers step it in an executor.
"""

from __future__ import annotations

import hashlib
import json
import tarfile
from collections.abc import Callable, Generator, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from tether.runtime.image import CONTAINER_CONFIG_DEFAULTS, Image, parse_rfc3339
from tether.runtime.layertar import BLOCK, LayerTar, header, padding
from tether.runtime.tarsplit import SplitTar

_V1_KEYS = (
    "comment",
    "created",
    "container",
    "container_config",
    "docker_version",
    "author",
    "config",
    "architecture",
    "variant",
    "os",
)


@dataclass
class SaveEntry:
    """One image to save, with the tags (``repo:tag``) the archive names it by."""

    image: Image
    tags: list[str]


def _member(name: str, size: int, mtime: int, directory: bool = False) -> bytes:
    info = tarfile.TarInfo(name)
    info.size, info.mtime = size, mtime
    info.mode = 0o755 if directory else 0o644
    if directory:
        info.type = tarfile.DIRTYPE
    return header(info)


def _file(name: str, data: bytes, mtime: int) -> Iterator[bytes]:
    yield _member(name, len(data), mtime)
    yield data
    yield padding(len(data))


def _sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def _chain(parent_chain: str, diff_id: str) -> str:
    """The layer's ChainID (sha256 of ``parent_chain + " " + diff_id``; the DiffID first)."""
    if not parent_chain:
        return diff_id
    return "sha256:" + _sha256(f"{parent_chain} {diff_id}".encode())


def _v1_doc(image: Image, v1_id: str, parent: str, top: bool) -> dict[str, Any]:
    doc: dict[str, Any] = {"id": v1_id}
    if parent:
        doc["parent"] = parent
    if top:
        doc.update((k, image.document[k]) for k in _V1_KEYS if k in image.document)
    else:
        doc["created"] = "1970-01-01T00:00:00Z"
        doc["container_config"] = dict(CONTAINER_CONFIG_DEFAULTS)
    return doc


def _layer(
    directory: Path, v1_id: str, v1_doc: dict[str, Any], mtime: int
) -> Generator[bytes, None, str]:
    """The members of one layer folder; returns the DiffID of the tar written."""
    yield _member(f"{v1_id}/", 0, mtime, directory=True)
    yield from _file(f"{v1_id}/VERSION", b"1.0", mtime)
    yield from _file(f"{v1_id}/json", json.dumps(v1_doc, separators=(",", ":")).encode(), mtime)
    tar: SplitTar | LayerTar = SplitTar.open(directory) or LayerTar(directory)
    yield _member(f"{v1_id}/layer.tar", tar.size, mtime)
    digest = hashlib.sha256()
    for chunk in tar.chunks():
        digest.update(chunk)
        yield chunk
    yield padding(tar.size)
    return "sha256:" + digest.hexdigest()


def save_chunks(
    entries: list[SaveEntry],
    layer_dir: Callable[[str], Path],
    raw_config: Callable[[Image], bytes],
) -> Iterator[bytes]:
    """The archive of ``entries``: ``layer_dir(diff_id)`` is a layer's folder,
    ``raw_config(image)`` the image's config document as stored."""
    written: dict[str, tuple[str, str]] = {}  # DiffID -> (path in the archive, DiffID in it)
    manifest: list[dict[str, Any]] = []
    repositories: dict[str, dict[str, str]] = {}
    for entry in entries:
        image = entry.image
        mtime = max(0, int(parse_rfc3339(image.created)))
        parent = chain = ""
        paths: list[str] = []
        new_ids: list[str] = []
        for i, diff_id in enumerate(image.layers):
            chain = _chain(chain, diff_id)
            top = i == len(image.layers) - 1
            seed = {"layer_id": chain, "parent": parent, "image": image.id if top else ""}
            v1_id = _sha256(json.dumps(seed, sort_keys=True).encode())
            if diff_id not in written:
                v1_doc = _v1_doc(image, v1_id, parent, top)
                new = yield from _layer(layer_dir(diff_id), v1_id, v1_doc, mtime)
                written[diff_id] = (f"{v1_id}/layer.tar", new)
            paths.append(written[diff_id][0])
            new_ids.append(written[diff_id][1])
            parent = v1_id
        raw = raw_config(image)
        if new_ids != image.layers:
            rootfs = {**(image.document.get("rootfs") or {}), "diff_ids": new_ids}
            raw = json.dumps({**image.document, "rootfs": rootfs}, separators=(",", ":")).encode()
        config_name = f"{_sha256(raw)}.json"
        yield from _file(config_name, raw, mtime)
        manifest.append(
            {"Config": config_name, "RepoTags": list(entry.tags) or None, "Layers": paths}
        )
        for tag in entry.tags:
            repo, _, name = tag.rpartition(":")
            repositories.setdefault(repo, {})[name] = parent
    yield from _file("manifest.json", json.dumps(manifest).encode(), 0)
    if repositories:
        yield from _file("repositories", json.dumps(repositories).encode(), 0)
    yield b"\0" * (2 * BLOCK)
