"""Image store: ``docker import`` / ``docker load`` tarballs, tags, containers' root filesystems.

Layout under ``root`` (all metadata is JSON, so it survives a daemon restart)::

    images/<hex>.json        the image config document, byte for byte (id = its sha256)
    images/<hex>.meta.json   {"size": N, "last_tag_time": "..."}
    repositories.json        {"alpine:latest": "sha256:<hex>", ...}
    layers/<hex>/            one unpacked layer per DiffID (overlayfs whiteouts)
    layers/<hex>.json        {"size": N}
    containers/<cid>/        upper/ work/ layers.json  (a container's rootfs: runtime.rootfs)
    tmp/                     uploads being unpacked

The image model is in ``runtime.image``, Docker's JSON views in ``runtime.imagejson``,
reading ``docker save`` archives in ``runtime.imagearchive``, writing them in
``runtime.imagesave``.
Blocking work (unpacking, hashing, mounting, deleting trees) runs in the default executor.
"""

from __future__ import annotations

import asyncio
import builtins
import contextlib
import gzip
import hashlib
import json
import lzma
import os
import shutil
import tempfile
import uuid
import zlib
from collections.abc import AsyncIterator, Callable, Iterable, Iterator
from pathlib import Path
from typing import IO, Any

from tether.errors import BadRequest, Conflict, NotFound
from tether.linux.nsthread import OverlayMount
from tether.runtime import imagejson, refs, tarsplit
from tether.runtime.changes import apply_changes
from tether.runtime.commit import EMPTY_LAYER, CommitSpec, commit_document
from tether.runtime.diff import INIT_PATHS
from tether.runtime.image import (
    CONTAINER_CONFIG_DEFAULTS,
    Image,
    arch,
    now_rfc3339,
    parse_rfc3339,
)
from tether.runtime.imagearchive import read_archive
from tether.runtime.imagesave import SaveEntry, save_chunks
from tether.runtime.layers import extract_layer
from tether.runtime.layertar import LayerTar
from tether.runtime.rootfs import RootFilesystems

__all__ = ["Image", "ImageStore", "UsedBy", "now_rfc3339", "parse_rfc3339"]

UsedBy = Callable[[str], "tuple[str, bool] | None"]
"""``in_use(image_id)`` -> ``(container_id, running)`` of a container using the image, or None."""


def _write_json(path: Path, value: Any) -> None:
    tmp = path.with_name(f".{path.name}.{uuid.uuid4().hex[:8]}.tmp")
    tmp.write_bytes(json.dumps(value, indent=1, sort_keys=True).encode())
    os.replace(tmp, path)


def _write_bytes(path: Path, data: bytes) -> None:
    tmp = path.with_name(f".{path.name}.{uuid.uuid4().hex[:8]}.tmp")
    tmp.write_bytes(data)
    os.replace(tmp, path)


class ImageStore:
    """Images on disk under ``root``; safe to use from one event loop."""

    def __init__(self, root: Path) -> None:
        self.root = Path(root)
        self._images_dir = self.root / "images"
        self._tmp_dir = self.root / "tmp"
        for d in (self._images_dir, self._tmp_dir):
            d.mkdir(parents=True, exist_ok=True)
        self._rootfs = RootFilesystems(self.root)
        # As Docker: layers and root filesystems 0710 (its overlay2/), the image metadata
        # and the upload scratch 0700 (its image/ and tmp/).
        rfs = self._rootfs
        for d in (self.root, rfs.layers_dir, rfs.links_dir, rfs.mounts_dir, rfs.containers_dir):
            os.chmod(d, 0o710)
        for d in (self._images_dir, self._tmp_dir):
            os.chmod(d, 0o700)
        self._layers_dir = self._rootfs.layers_dir
        self._lock = asyncio.Lock()
        self._pruning = False
        self._images: dict[str, Image] = {}
        self._tags: dict[str, str] = {}
        self._load_state()

    # -- persistence -------------------------------------------------------------

    def _load_state(self) -> None:
        for path in self._images_dir.glob("*.json"):
            if path.name.endswith(".meta.json") or path.name.startswith("."):
                continue
            raw = path.read_bytes()
            hex_id = path.name[: -len(".json")]
            if hashlib.sha256(raw).hexdigest() != hex_id:
                continue  # torn or foreign file: ignore
            meta_path = self._images_dir / f"{hex_id}.meta.json"
            meta = json.loads(meta_path.read_bytes()) if meta_path.exists() else {}
            self._images[f"sha256:{hex_id}"] = Image(
                id=f"sha256:{hex_id}",
                document=json.loads(raw),
                size=int(meta.get("size", 0)),
                last_tag_time=str(meta.get("last_tag_time", "")),
                parent=str(meta.get("parent", "")),
            )
        repo_file = self.root / "repositories.json"
        tags: dict[str, str] = json.loads(repo_file.read_bytes()) if repo_file.exists() else {}
        self._tags = {t: i for t, i in tags.items() if i in self._images}
        self._refresh_tags()
        shutil.rmtree(self._tmp_dir, ignore_errors=True)
        self._tmp_dir.mkdir(mode=0o700, exist_ok=True)

    def _refresh_tags(self) -> None:
        for image in self._images.values():
            image.repo_tags = sorted(t for t, i in self._tags.items() if i == image.id)

    def _save_tags(self) -> None:
        _write_json(self.root / "repositories.json", self._tags)
        self._refresh_tags()

    def _save_meta(self, image: Image) -> None:
        _write_json(
            self._images_dir / f"{image.hex}.meta.json",
            {"size": image.size, "last_tag_time": image.last_tag_time, "parent": image.parent},
        )

    def _add_image(self, raw_config: bytes, size: int, parent: str = "") -> Image:
        hex_id = hashlib.sha256(raw_config).hexdigest()
        image_id = f"sha256:{hex_id}"
        image = self._images.get(image_id)
        if image is None:
            _write_bytes(self._images_dir / f"{hex_id}.json", raw_config)
            doc = json.loads(raw_config)
            image = Image(id=image_id, document=doc, size=size, parent=parent)
            self._save_meta(image)
            self._images[image_id] = image
        return image

    def _set_tag(self, image: Image, ref: str) -> str:
        repo, tag = refs.split_ref(ref)
        refs.validate(repo, tag)
        full = f"{repo}:{tag}"
        self._tags[full] = image.id
        image.last_tag_time = now_rfc3339()
        self._save_meta(image)
        return full

    # -- queries -----------------------------------------------------------------

    def list(self) -> builtins.list[Image]:
        """All images, newest first."""
        return sorted(self._images.values(), key=lambda i: i.created, reverse=True)

    def get(self, ref: str) -> Image:
        """Resolve ``name[:tag]``, a full or short id, or ``sha256:<id prefix>``."""
        image = self._resolve(ref)
        if image is None:
            raise NotFound(f"No such image: {ref}")
        return image

    def _resolve(self, ref: str) -> Image | None:
        if not ref:
            return None
        if ref.startswith("sha256:"):
            return self._by_prefix(ref[len("sha256:") :])
        if "@" not in ref:
            image_id = self._tags.get(refs.normalize(ref))
            if image_id is not None:
                return self._images[image_id]
        if refs.is_hex_id(ref):
            return self._by_prefix(ref)
        return None

    def _by_prefix(self, prefix: str) -> Image | None:
        if not refs.is_hex_id(prefix):
            return None
        found = [i for i in self._images.values() if i.hex.startswith(prefix)]
        return found[0] if len(found) == 1 else None

    # -- import / load -------------------------------------------------------------

    async def _spool(self, data: bytes | AsyncIterator[bytes]) -> Path:
        fd, name = tempfile.mkstemp(dir=self._tmp_dir, prefix="upload-")
        path = Path(name)
        try:
            with os.fdopen(fd, "wb") as out:
                if isinstance(data, bytes | bytearray | memoryview):
                    await asyncio.get_running_loop().run_in_executor(None, out.write, data)
                else:
                    async for chunk in data:
                        out.write(chunk)
        except BaseException:
            path.unlink(missing_ok=True)
            raise
        return path

    def _unpack_layer(self, stream: IO[bytes], expect: str | None = None) -> tuple[str, int]:
        """Blocking: unpack one layer into layers/<diffid>; return (diff_id, size)."""
        if expect is not None:
            existing = self._layer_size(expect)
            if existing is not None:
                return expect, existing
        tmp = Path(tempfile.mkdtemp(dir=self._tmp_dir, prefix="layer-"))
        try:
            diff_id, size = extract_layer(stream, tmp)
            if expect is not None and diff_id != expect:
                raise BadRequest(f"layer digest mismatch: expected {expect}, got {diff_id}")
            hex_id = diff_id.split(":", 1)[1]
            final = self._layers_dir / hex_id
            if final.exists():
                shutil.rmtree(tmp, ignore_errors=True)
            else:
                _write_json(self._layers_dir / f"{hex_id}.json", {"size": size})
                for made, kept in zip(tarsplit.paths(tmp), tarsplit.paths(final), strict=True):
                    with contextlib.suppress(FileNotFoundError):
                        os.rename(made, kept)
                os.rename(tmp, final)
            return diff_id, size
        except BaseException:
            shutil.rmtree(tmp, ignore_errors=True)
            raise
        finally:
            tarsplit.remove(tmp)

    def _layer_size(self, diff_id: str) -> int | None:
        hex_id = diff_id.split(":", 1)[-1]
        meta = self._layers_dir / f"{hex_id}.json"
        if not (self._layers_dir / hex_id).is_dir() or not meta.exists():
            return None
        return int(json.loads(meta.read_bytes()).get("size", 0))

    async def import_tar(
        self,
        data: bytes | AsyncIterator[bytes],
        tag: str | None = None,
        changes: Iterable[str] = (),
        *,
        message: str = "",
    ) -> Image:
        """``docker import``: one rootfs tarball (maybe gzip) becomes a one-layer image.

        ``tag`` is a full reference (``repo[:tag]``, default tag "latest") or None.
        """
        config = apply_changes(changes)  # validate before the upload is unpacked
        if tag:
            refs.validate(*refs.split_ref(tag))
        loop = asyncio.get_running_loop()
        spool = await self._spool(data)
        try:

            def unpack() -> tuple[str, int]:
                with open(spool, "rb") as f:
                    return self._unpack_layer(f)

            diff_id, size = await loop.run_in_executor(None, unpack)
        finally:
            spool.unlink(missing_ok=True)
        created = now_rfc3339()
        comment = message or "Imported from -"
        document: dict[str, Any] = {
            "architecture": arch(),
            "comment": comment,
            "config": {**CONTAINER_CONFIG_DEFAULTS, **config},
            "created": created,
            "docker_version": "20.10.24",
            "history": [{"created": created, "comment": comment}],
            "os": "linux",
            "rootfs": {"type": "layers", "diff_ids": [diff_id]},
        }
        raw = json.dumps(document, separators=(",", ":")).encode()
        async with self._lock:
            image = self._add_image(raw, size)
            if tag:
                self._set_tag(image, tag)
                self._save_tags()
        return image

    async def load(self, data: bytes | AsyncIterator[bytes]) -> builtins.list[str]:
        """``docker load``: a ``docker save`` archive (legacy or OCI layout, maybe gzip).

        Returns the loaded tags (``"busybox:latest"``), or ``"sha256:<id>"`` for an image
        that came without a tag (Docker prints ``Loaded image ID: sha256:...`` for those).
        """
        loop = asyncio.get_running_loop()
        spool = await self._spool(data)
        try:
            found = await loop.run_in_executor(None, read_archive, spool, self._unpack_size)
        except (EOFError, zlib.error, lzma.LZMAError, gzip.BadGzipFile) as exc:
            raise BadRequest(f"invalid tar archive: {exc}") from None
        finally:
            spool.unlink(missing_ok=True)
        loaded: builtins.list[str] = []
        async with self._lock:
            for raw, size, tags in found:
                image = self._add_image(raw, size)
                if not tags:
                    loaded.append(image.id)
                for t in tags:
                    loaded.append(self._set_tag(image, t))
            self._save_tags()
        return loaded

    async def commit(
        self,
        image_id: str,
        container_id: str,
        *,
        container_config: dict[str, Any],
        config: dict[str, Any] | None = None,
        changes: Iterable[str] = (),
        author: str = "",
        comment: str = "",
        tag: str | None = None,
    ) -> Image:
        """``docker commit``: the container's upper directory as a new layer over the image
        ``image_id`` (``runtime.commit``); ``config`` is the request's, ``changes`` Dockerfile
        instructions applied to it, ``tag`` a full reference or None."""
        user = apply_changes(changes, config)  # validated before the layer is made
        spec = CommitSpec(container_id, container_config, user, author, comment)
        parent = self.get(image_id)
        if tag:
            refs.validate(*refs.split_ref(tag))
        upper = self._rootfs.containers_dir / spec.container_id / "upper"
        if not upper.is_dir():
            raise NotFound(f"root filesystem of container {spec.container_id[:12]} is missing")

        def make_layer() -> tuple[str, int]:
            layer = LayerTar(upper, exclude=INIT_PATHS)
            with tempfile.TemporaryFile(dir=self._tmp_dir) as spool:
                for chunk in layer.chunks():
                    spool.write(chunk)
                spool.seek(0)
                return self._unpack_layer(spool)

        diff_id, size = await asyncio.get_running_loop().run_in_executor(None, make_layer)
        raw = commit_document(parent, diff_id, spec)
        async with self._lock:
            image = self._add_image(raw, parent.size + size, parent=parent.id)
            if tag:
                self._set_tag(image, tag)
                self._save_tags()
        if diff_id == EMPTY_LAYER:
            await asyncio.get_running_loop().run_in_executor(None, self._gc_layers, {diff_id})
        return image

    def _unpack_size(self, stream: IO[bytes], diff_id: str) -> int:
        """Blocking: unpack a layer of a save archive (known DiffID); return its size."""
        return self._unpack_layer(stream, expect=diff_id)[1]

    # -- tags and removal ---------------------------------------------------------

    async def tag(self, ref: str, repo: str, tag: str | None = None) -> Image:
        """``docker tag REF REPO[:TAG]``: ``tag`` defaults to "latest"."""
        image = self.get(ref)
        full = f"{repo}:{tag}" if tag else repo
        async with self._lock:
            self._set_tag(image, full)
            self._save_tags()
        return image

    async def remove(
        self, ref: str, force: bool = False, in_use: UsedBy | None = None
    ) -> builtins.list[dict[str, str]]:
        """``docker rmi``: returns ``[{"Untagged": "x:latest"}, {"Deleted": "sha256:..."}]``.

        ``in_use(image_id)`` tells which container uses the image (Conflict as Docker).
        """
        image = self.get(ref)
        user = in_use(image.id) if in_use is not None else None
        by_id = ref.startswith("sha256:") or (
            refs.is_hex_id(ref) and refs.normalize(ref) not in self._tags
        )
        result: builtins.list[dict[str, str]] = []
        async with self._lock:
            if not by_id:
                name = refs.normalize(ref)
                if len(image.repo_tags) <= 1 and user is not None and not force:
                    raise Conflict(
                        f'conflict: unable to remove repository reference "{ref}" (must force)'
                        f" - container {user[0][:12]} is using its referenced image"
                        f" {image.short_id}"
                    )
                del self._tags[name]
                self._save_tags()
                result.append({"Untagged": name})
                if image.repo_tags or user is not None:
                    return result  # other tags remain, or a container still uses it
            else:
                if user is not None and user[1]:
                    raise Conflict(
                        f"conflict: unable to delete {image.short_id} (cannot be forced) - image"
                        f" is being used by running container {user[0][:12]}"
                    )
                if user is not None and not force:
                    raise Conflict(
                        f"conflict: unable to delete {image.short_id} (must be forced) - image is"
                        f" being used by stopped container {user[0][:12]}"
                    )
                if len(image.repo_tags) > 1 and not force:
                    raise Conflict(
                        f"conflict: unable to delete {image.short_id} (must be forced) - image is"
                        " referenced in multiple repositories"
                    )
                for name in list(image.repo_tags):
                    del self._tags[name]
                    result.append({"Untagged": name})
                self._save_tags()
            del self._images[image.id]
            (self._images_dir / f"{image.hex}.json").unlink(missing_ok=True)
            (self._images_dir / f"{image.hex}.meta.json").unlink(missing_ok=True)
            result.append({"Deleted": image.id})
            dead = await asyncio.get_running_loop().run_in_executor(
                None, self._gc_layers, set(image.layers)
            )
            result.extend({"Deleted": d} for d in dead)
        return result

    def _gc_layers(self, candidates: set[str]) -> builtins.list[str]:
        """Blocking: remove candidate layers no image and no container rootfs uses."""
        used: set[str] = {layer for img in self._images.values() for layer in img.layers}
        used |= self._rootfs.used_layers()
        removed = []
        for diff_id in sorted(candidates - used):
            hex_id = diff_id.split(":", 1)[-1]
            self._rootfs.drop_short_link(hex_id)
            shutil.rmtree(self._layers_dir / hex_id, ignore_errors=True)
            (self._layers_dir / f"{hex_id}.json").unlink(missing_ok=True)
            tarsplit.remove(self._layers_dir / hex_id)
            removed.append(diff_id)
        return removed

    # -- prune, history, save -----------------------------------------------------

    async def prune(
        self,
        dangling: bool = True,
        match: Callable[[Image], bool] | None = None,
        in_use: UsedBy | None = None,
    ) -> dict[str, Any]:
        """``docker image prune``: remove images no container uses, untagged ones only
        unless ``dangling`` is False (``-a``), and only those ``match`` accepts.

        Tagged images go tag by tag, untagged ones by id (as Docker); an image that
        cannot be removed is skipped. Returns Docker's ``{"ImagesDeleted", "SpaceReclaimed"}``.
        """
        if self._pruning:
            raise Conflict("a prune operation is already running")
        self._pruning = True
        try:
            deleted: builtins.list[dict[str, str]] = []
            sizes: dict[str, int] = {}  # DiffID -> size, taken before the layers go
            for image in self.list():
                if dangling and image.repo_tags:
                    continue
                if match is not None and not match(image):
                    continue
                if in_use is not None and in_use(image.id) is not None:
                    continue
                sizes.update((d, self._layer_size(d) or 0) for d in image.layers)
                for ref in builtins.list(image.repo_tags) or [image.hex]:
                    with contextlib.suppress(Conflict, NotFound):
                        deleted.extend(await self.remove(ref, in_use=in_use))
        finally:
            self._pruning = False
        reclaimed = sum(sizes.get(d.get("Deleted", ""), 0) for d in deleted)
        return {"ImagesDeleted": deleted or None, "SpaceReclaimed": reclaimed}

    def disk_usage(self) -> tuple[int, dict[str, int]]:
        """``docker system df``: the size of all layers, and each image's SharedSize (the
        size of its layers that another image has too)."""
        users: dict[str, int] = {}
        for image in self._images.values():
            for d in set(image.layers):
                users[d] = users.get(d, 0) + 1
        sizes = {d: self._layer_size(d) or 0 for d in users}
        shared = {
            i.id: sum(sizes[d] for d in set(i.layers) if users[d] > 1)
            for i in self._images.values()
        }
        return sum(sizes.values()), shared

    def history(self, ref: str) -> builtins.list[dict[str, Any]]:
        """``docker history``: Docker's entries, newest first (``runtime.imagejson``)."""
        return imagejson.history_json(self.get(ref), lambda d: self._layer_size(d) or 0)

    def save(self, names: Iterable[str]) -> AsyncIterator[bytes]:
        """``docker save NAME...``: the archive (``runtime.imagesave``), streamed.

        Names resolve here, before the first byte (``NotFound`` as ``get``): ``repo:tag``
        saves that tag, a bare repository every tag it has, an id the image untagged.
        """
        entries = self._save_entries(names)
        chunks = save_chunks(
            entries,
            lambda d: self._layers_dir / d.split(":", 1)[-1],
            lambda i: (self._images_dir / f"{i.hex}.json").read_bytes(),
        )
        return self._stream(chunks)

    def _save_entries(self, names: Iterable[str]) -> builtins.list[SaveEntry]:
        entries: dict[str, SaveEntry] = {}

        def add(image: Image, tag: str | None) -> None:
            entry = entries.setdefault(image.id, SaveEntry(image, []))
            if tag and tag not in entry.tags:
                entry.tags.append(tag)

        for name in names:
            repo, _ = refs.split_ref(name)
            tagged = ":" in name.rpartition("/")[2]
            found = [
                (t, i)
                for t, i in sorted(self._tags.items())
                if not name.startswith("sha256:")
                and (t == refs.normalize(name) if tagged else t.rpartition(":")[0] == repo)
            ]
            if not found:
                add(self.get(name), None)
            for t, image_id in found:
                add(self._images[image_id], t)
        return builtins.list(entries.values())

    @staticmethod
    async def _stream(chunks: Iterator[bytes]) -> AsyncIterator[bytes]:
        """Step a blocking generator in the executor, about 1 MiB at a time."""
        loop = asyncio.get_running_loop()

        def batch() -> bytes:
            out: builtins.list[bytes] = []
            size = 0
            for chunk in chunks:
                out.append(chunk)
                size += len(chunk)
                if size >= 1 << 20:
                    break
            return b"".join(out)

        while data := await loop.run_in_executor(None, batch):
            yield data

    # -- Docker JSON --------------------------------------------------------------

    def inspect_json(self, image: Image) -> dict[str, Any]:
        """``GET /images/{name}/json``."""
        return imagejson.inspect_json(image, self.layer_paths(image))

    def summary_json(self, image: Image) -> dict[str, Any]:
        """One entry of ``GET /images/json`` (what ``docker images`` prints)."""
        return imagejson.summary_json(image)

    # -- container root filesystems (runtime.rootfs) ------------------------------

    def layer_paths(self, image: Image) -> builtins.list[Path]:
        """Layer directories, top layer first (overlayfs ``lowerdir`` order)."""
        return self._rootfs.layer_dirs(image.layers)

    def rootfs_path(self, container_id: str) -> Path:
        """Where the container's root is mounted (``<root>/m/<short id>``)."""
        return self._rootfs.path(container_id)

    async def prepare_rootfs(self, image: Image, container_id: str) -> Path:
        """Make the container's folders (upper, work, mount point); return the mount point."""
        return await self._rootfs.prepare(image.layers, image.short_id, container_id)

    def overlay_for(self, container_id: str) -> OverlayMount | None:
        """The overlay to mount for the container's start (None: mounted already, legacy)."""
        return self._rootfs.overlay_for(container_id)

    async def unmount_rootfs(self, container_id: str) -> None:
        """Unmount the container's root (no error when it is not mounted)."""
        await self._rootfs.unmount(container_id)

    async def remove_rootfs(self, container_id: str) -> None:
        """Unmount and delete the container's upper/work directories (idempotent)."""
        await self._rootfs.remove(container_id)

    def rootfs_ids(self) -> builtins.list[str]:
        """Ids of containers that have a root filesystem here (for reconcile on start)."""
        return self._rootfs.ids()
