"""Image store: ``docker import`` / ``docker load`` tarballs, tags, overlayfs root filesystems.

Layout under ``root`` (all metadata is JSON, so it survives a daemon restart)::

    images/<hex>.json        the image config document, byte for byte (id = its sha256)
    images/<hex>.meta.json   {"size": N, "last_tag_time": "..."}
    repositories.json        {"alpine:latest": "sha256:<hex>", ...}
    layers/<hex>/            one unpacked layer per DiffID (overlayfs whiteouts)
    layers/<hex>.json        {"size": N}
    containers/<cid>/        upper/ work/ merged/ layers.json  (a container's rootfs)
    tmp/                     uploads being unpacked

Blocking work (unpacking, hashing, mounting, deleting trees) runs in the default executor.
"""

from __future__ import annotations

import asyncio
import builtins
import contextlib
import ctypes
import ctypes.util
import gzip
import hashlib
import json
import lzma
import os
import platform
import shutil
import tarfile
import tempfile
import time
import uuid
import zlib
from collections.abc import AsyncIterator, Callable, Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import IO, Any

from tether.errors import BadRequest, Conflict, Internal, NotFound
from tether.linux.nsthread import OverlayMount
from tether.runtime import refs
from tether.runtime.changes import apply_changes
from tether.runtime.layers import extract_layer

UsedBy = Callable[[str], "tuple[str, bool] | None"]
"""``in_use(image_id)`` -> ``(container_id, running)`` of a container using the image, or None."""

_CONTAINER_CONFIG_DEFAULTS: dict[str, Any] = {
    "Hostname": "",
    "Domainname": "",
    "User": "",
    "AttachStdin": False,
    "AttachStdout": False,
    "AttachStderr": False,
    "Tty": False,
    "OpenStdin": False,
    "StdinOnce": False,
    "Env": None,
    "Cmd": None,
    "Image": "",
    "Volumes": None,
    "WorkingDir": "",
    "Entrypoint": None,
    "OnBuild": None,
    "Labels": None,
}


def now_rfc3339() -> str:
    """Current UTC time in Docker's RFC 3339 form with nanoseconds."""
    ns = time.time_ns()
    base = datetime.fromtimestamp(ns // 1_000_000_000, UTC).strftime("%Y-%m-%dT%H:%M:%S")
    return f"{base}.{ns % 1_000_000_000:09d}Z"


def parse_rfc3339(text: str) -> float:
    """Unix time of an RFC 3339 timestamp (nanoseconds allowed); 0.0 when unparsable."""
    if not text:
        return 0.0
    s = text.strip()
    frac = 0.0
    if s.endswith("Z"):
        s = s[:-1] + "+00:00"
    if "." in s:
        head, rest = s.split(".", 1)
        digits = ""
        while rest and rest[0].isdigit():
            digits, rest = digits + rest[0], rest[1:]
        frac = float("0." + digits) if digits else 0.0
        s = head + rest
    try:
        return datetime.fromisoformat(s).timestamp() + frac
    except ValueError:
        return 0.0


def _arch() -> str:
    machine = platform.machine()
    return {"x86_64": "amd64", "aarch64": "arm64", "armv7l": "arm", "i686": "386"}.get(
        machine, machine
    )


@dataclass
class Image:
    """One image: its id, its config document and its tags."""

    id: str  # "sha256:<64 hex>"
    document: dict[str, Any]  # the whole image config JSON (architecture, config, rootfs...)
    repo_tags: list[str] = field(default_factory=list)
    size: int = 0
    last_tag_time: str = ""

    @property
    def hex(self) -> str:
        return self.id.split(":", 1)[1]

    @property
    def short_id(self) -> str:
        return self.hex[:12]

    @property
    def config(self) -> dict[str, Any]:
        """The container config of the image (Cmd, Entrypoint, Env, WorkingDir, ...)."""
        cfg = self.document.get("config")
        return cfg if isinstance(cfg, dict) else {}

    @property
    def layers(self) -> list[str]:
        """DiffIDs, bottom layer first."""
        rootfs = self.document.get("rootfs") or {}
        return list(rootfs.get("diff_ids") or [])

    @property
    def created(self) -> str:
        return str(self.document.get("created") or "")

    @property
    def cmd(self) -> list[str] | None:
        return self.config.get("Cmd")

    @property
    def entrypoint(self) -> list[str] | None:
        return self.config.get("Entrypoint")

    @property
    def env(self) -> list[str]:
        return list(self.config.get("Env") or [])

    @property
    def working_dir(self) -> str:
        return str(self.config.get("WorkingDir") or "")

    @property
    def exposed_ports(self) -> dict[str, Any]:
        return dict(self.config.get("ExposedPorts") or {})

    @property
    def labels(self) -> dict[str, str]:
        return dict(self.config.get("Labels") or {})


def _write_json(path: Path, value: Any) -> None:
    tmp = path.with_name(f".{path.name}.{uuid.uuid4().hex[:8]}.tmp")
    tmp.write_bytes(json.dumps(value, indent=1, sort_keys=True).encode())
    os.replace(tmp, path)


def _write_bytes(path: Path, data: bytes) -> None:
    tmp = path.with_name(f".{path.name}.{uuid.uuid4().hex[:8]}.tmp")
    tmp.write_bytes(data)
    os.replace(tmp, path)


_libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6", use_errno=True)
_libc.umount2.argtypes = [ctypes.c_char_p, ctypes.c_int]
_MNT_DETACH = 2


def _link_target(hex_id: str) -> str:
    """What a short link in ``l/`` points at: its layer, relative to ``l/``."""
    return os.path.join("..", "layers", hex_id)


def _short_link(links_dir: Path, layer: Path) -> Path:
    """``links_dir/<first 12 hex of the layer>``, a symlink to the layer (made if missing).

    Returns the layer's own path when the short name is taken by another layer.
    """
    link = links_dir / layer.name[:12]
    target = _link_target(layer.name)
    try:
        os.symlink(target, link)
    except FileExistsError:
        with contextlib.suppress(OSError):
            if os.readlink(link) == target:
                return link
        return layer
    return link


def _umount(target: Path) -> None:
    while os.path.ismount(target):
        if _libc.umount2(os.fsencode(str(target)), _MNT_DETACH) != 0:
            err = ctypes.get_errno()
            raise Internal(f"error unmounting {target}: {os.strerror(err)}")


class ImageStore:
    """Images on disk under ``root``; safe to use from one event loop."""

    def __init__(self, root: Path) -> None:
        self.root = Path(root)
        self._images_dir = self.root / "images"
        self._layers_dir = self.root / "layers"
        self._links_dir = self.root / "l"
        self._mounts_dir = self.root / "m"
        self._containers_dir = self.root / "containers"
        self._tmp_dir = self.root / "tmp"
        dirs = (self._images_dir, self._layers_dir, self._links_dir, self._containers_dir)
        for d in (*dirs, self._mounts_dir, self._tmp_dir):
            d.mkdir(parents=True, exist_ok=True)
        self._lock = asyncio.Lock()
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
            )
        repo_file = self.root / "repositories.json"
        tags: dict[str, str] = json.loads(repo_file.read_bytes()) if repo_file.exists() else {}
        self._tags = {t: i for t, i in tags.items() if i in self._images}
        self._refresh_tags()
        shutil.rmtree(self._tmp_dir, ignore_errors=True)
        self._tmp_dir.mkdir(exist_ok=True)

    def _refresh_tags(self) -> None:
        for image in self._images.values():
            image.repo_tags = sorted(t for t, i in self._tags.items() if i == image.id)

    def _save_tags(self) -> None:
        _write_json(self.root / "repositories.json", self._tags)
        self._refresh_tags()

    def _save_meta(self, image: Image) -> None:
        _write_json(
            self._images_dir / f"{image.hex}.meta.json",
            {"size": image.size, "last_tag_time": image.last_tag_time},
        )

    def _add_image(self, raw_config: bytes, size: int) -> Image:
        hex_id = hashlib.sha256(raw_config).hexdigest()
        image_id = f"sha256:{hex_id}"
        image = self._images.get(image_id)
        if image is None:
            _write_bytes(self._images_dir / f"{hex_id}.json", raw_config)
            image = Image(id=image_id, document=json.loads(raw_config), size=size)
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
                os.rename(tmp, final)
            return diff_id, size
        except BaseException:
            shutil.rmtree(tmp, ignore_errors=True)
            raise

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
            "architecture": _arch(),
            "comment": comment,
            "config": {**_CONTAINER_CONFIG_DEFAULTS, **config},
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
            found = await loop.run_in_executor(None, self._load_archive, spool)
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

    def _load_archive(self, path: Path) -> builtins.list[tuple[bytes, int, builtins.list[str]]]:
        """Blocking: unpack every image of a save archive; return (config, size, tags)."""
        try:
            tar = tarfile.open(path, mode="r:*")  # noqa: SIM115 (closed below)
        except tarfile.TarError as exc:
            raise BadRequest(f"invalid tar archive: {exc}") from None
        with tar:
            members = {_norm(m.name): m for m in tar.getmembers()}

            def read(name: str) -> bytes:
                m = members.get(_norm(name))
                f = tar.extractfile(m) if m is not None else None
                if f is None:
                    raise BadRequest(f"invalid archive: missing {name}")
                return f.read()

            entries: builtins.list[
                tuple[str, builtins.list[str], builtins.list[str]]
            ] = []  # config path, layers, tags
            if "manifest.json" in members:
                for item in json.loads(read("manifest.json")):
                    entries.append(
                        (item["Config"], list(item.get("Layers") or []), item.get("RepoTags") or [])
                    )
            elif "index.json" in members:
                entries = _oci_entries(json.loads(read("index.json")), read)
            else:
                raise BadRequest(
                    "invalid archive: no manifest.json or index.json (not a docker save tarball)"
                )
            out: builtins.list[tuple[bytes, int, builtins.list[str]]] = []
            for config_path, layer_paths, tags in entries:
                raw = read(config_path)
                doc = json.loads(raw)
                diff_ids = list((doc.get("rootfs") or {}).get("diff_ids") or [])
                if len(diff_ids) != len(layer_paths):
                    raise BadRequest("invalid archive: layer count does not match the config")
                total = 0
                for diff_id, layer_path in zip(diff_ids, layer_paths, strict=True):
                    m = members.get(_norm(layer_path))
                    f = tar.extractfile(m) if m is not None else None
                    if f is None:
                        raise BadRequest(f"invalid archive: missing {layer_path}")
                    _, size = self._unpack_layer(f, expect=diff_id)
                    total += size
                out.append((raw, total, [refs.normalize(t) for t in tags]))
            return out

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
        for meta in self._containers_dir.glob("*/layers.json"):
            with contextlib.suppress(OSError, ValueError):
                used.update(json.loads(meta.read_bytes()))
        removed = []
        for diff_id in sorted(candidates - used):
            hex_id = diff_id.split(":", 1)[-1]
            link = self._links_dir / hex_id[:12]
            with contextlib.suppress(OSError):
                if os.readlink(link) == _link_target(hex_id):
                    link.unlink()
            shutil.rmtree(self._layers_dir / hex_id, ignore_errors=True)
            (self._layers_dir / f"{hex_id}.json").unlink(missing_ok=True)
            removed.append(diff_id)
        return removed

    # -- Docker JSON --------------------------------------------------------------

    def inspect_json(self, image: Image) -> dict[str, Any]:
        """``GET /images/{name}/json``."""
        config = {**_CONTAINER_CONFIG_DEFAULTS, **image.config}
        doc = image.document
        return {
            "Id": image.id,
            "RepoTags": list(image.repo_tags),
            "RepoDigests": [],
            "Parent": "",
            "Comment": doc.get("comment", ""),
            "Created": image.created,
            "Container": doc.get("container", ""),
            "ContainerConfig": {
                **_CONTAINER_CONFIG_DEFAULTS,
                **(doc.get("container_config") or {}),
            },
            "DockerVersion": doc.get("docker_version", ""),
            "Author": doc.get("author", ""),
            "Config": config,
            "Architecture": doc.get("architecture", _arch()),
            "Variant": doc.get("variant"),
            "Os": doc.get("os", "linux"),
            "Size": image.size,
            "VirtualSize": image.size,
            "GraphDriver": {
                # the spec wants strings here: leave out what is absent, as Docker does
                "Data": {
                    k: v
                    for k, v in (
                        ("LowerDir", ":".join(str(p) for p in self.layer_paths(image)[1:])),
                        ("UpperDir", str(self.layer_paths(image)[0]) if image.layers else ""),
                    )
                    if v
                }
                or None,
                "Name": "overlay2",
            },
            "RootFS": {"Type": "layers", "Layers": image.layers},
            "Metadata": {"LastTagTime": image.last_tag_time or "0001-01-01T00:00:00Z"},
        }

    def summary_json(self, image: Image) -> dict[str, Any]:
        """One entry of ``GET /images/json`` (what ``docker images`` prints)."""
        return {
            "Containers": -1,
            "Created": int(parse_rfc3339(image.created)),
            "Id": image.id,
            "Labels": image.labels or None,
            "ParentId": "",
            "RepoDigests": [] if image.repo_tags else ["<none>@<none>"],
            "RepoTags": list(image.repo_tags) or ["<none>:<none>"],
            "SharedSize": -1,
            "Size": image.size,
            "VirtualSize": image.size,
        }

    # -- container root filesystems ----------------------------------------------

    def layer_paths(self, image: Image) -> builtins.list[Path]:
        """Layer directories, top layer first (overlayfs ``lowerdir`` order)."""
        return self._layer_dirs(image.layers)

    def _layer_dirs(self, diff_ids: Iterable[str]) -> builtins.list[Path]:
        """Directories of layers given bottom first (as images list them), top first."""
        return [self._layers_dir / d.split(":", 1)[-1] for d in reversed(list(diff_ids))]

    def rootfs_path(self, container_id: str) -> Path:
        """Where the container's root is mounted: ``<root>/m/<short id>``.

        A short mount point keeps the machine's mount table small (runc reads it many times
        per start; see :func:`_mount_overlay`). Roots mounted by older versions stay at
        ``containers/<id>/merged``.
        """
        legacy = self._containers_dir / container_id / "merged"
        if os.path.ismount(legacy):
            return legacy
        return self._mounts_dir / container_id[:12]

    async def prepare_rootfs(self, image: Image, container_id: str) -> Path:
        """Make the container's folders (upper, work, mount point) and return the mount point.

        Nothing is mounted here: the root filesystem is mounted at each start inside the
        mount namespace the container's runtime gets (:meth:`overlay_for`,
        ``tether.linux.nsthread.PrivateMounts``), never in the daemon's, and goes away when the
        container's monitor exits.
        """
        base = self._containers_dir / container_id
        lower = self.layer_paths(image)

        def prepare() -> Path:
            if not lower:
                raise Internal(f"image {image.short_id} has no layers")
            missing = [p for p in lower if not p.is_dir()]
            if missing:
                raise Internal(f"image {image.short_id}: layer {missing[0].name} is missing")
            merged = self.rootfs_path(container_id)
            for d in (base / "upper", base / "work", merged):
                d.mkdir(parents=True, exist_ok=True)
            meta = base / "layers.json"
            if not meta.exists():
                _write_json(meta, image.layers)
            return merged

        return await asyncio.get_running_loop().run_in_executor(None, prepare)

    def overlay_for(self, container_id: str) -> OverlayMount | None:
        """The overlay to mount for the container's start (None: mounted already, legacy).

        Layer paths are short links relative to the container's folder
        (``../../l/<12 hex>``): the kernel prints them in every read of mountinfo.
        Raises ``Internal`` when the container's folder or one of its layers is missing.
        """
        base = self._containers_dir / container_id
        target = self.rootfs_path(container_id)
        if os.path.ismount(target):
            return None
        try:
            layers = json.loads((base / "layers.json").read_bytes())
        except (OSError, ValueError) as exc:
            raise Internal(f"root filesystem of {container_id[:12]} is missing: {exc}") from exc
        lower = self._layer_dirs(layers)
        missing = [p for p in lower if not p.is_dir()]
        if missing or not lower:
            raise Internal(f"container {container_id[:12]}: a layer of its image is missing")
        rel = [os.path.relpath(_short_link(self._links_dir, p), base) for p in lower]
        if len(":".join(rel)) + 64 >= 4096:
            raise Internal(f"too many layers to mount ({len(lower)})")
        return OverlayMount(str(base), tuple(rel), "upper", "work", str(target))

    def _unmount_both(self, container_id: str) -> None:
        _umount(self._containers_dir / container_id / "merged")
        short = self._mounts_dir / container_id[:12]
        _umount(short)
        with contextlib.suppress(OSError):
            short.rmdir()

    async def unmount_rootfs(self, container_id: str) -> None:
        """Unmount the container's root (no error when it is not mounted)."""
        await asyncio.get_running_loop().run_in_executor(None, self._unmount_both, container_id)

    async def remove_rootfs(self, container_id: str) -> None:
        """Unmount and delete the container's upper/work directories (idempotent)."""
        base = self._containers_dir / container_id

        def remove() -> None:
            self._unmount_both(container_id)
            shutil.rmtree(base, ignore_errors=True)

        await asyncio.get_running_loop().run_in_executor(None, remove)

    def rootfs_ids(self) -> builtins.list[str]:
        """Ids of containers that have a root filesystem here (for reconcile on start)."""
        return sorted(p.name for p in self._containers_dir.iterdir() if p.is_dir())


def _norm(name: str) -> str:
    return "/".join(p for p in name.split("/") if p not in ("", "."))


def _oci_entries(
    index: dict[str, Any], read: Callable[[str], bytes]
) -> list[tuple[str, list[str], list[str]]]:
    """Entries of a pure OCI image layout (no manifest.json)."""

    def blob(digest: str) -> str:
        algo, _, hex_id = digest.partition(":")
        return f"blobs/{algo}/{hex_id}"

    out: list[tuple[str, list[str], list[str]]] = []
    for desc in index.get("manifests") or []:
        ann = desc.get("annotations") or {}
        name = ann.get("io.containerd.image.name") or ""
        ref_name = ann.get("org.opencontainers.image.ref.name") or ""
        tags = [name] if name else ([ref_name] if ref_name and ":" in ref_name else [])
        doc = json.loads(read(blob(desc["digest"])))
        while "manifests" in doc:  # an index: take the platform we run on, else the first
            choices = doc["manifests"]
            pick = next(
                (
                    m
                    for m in choices
                    if (m.get("platform") or {}).get("architecture") == _arch()
                    and (m.get("platform") or {}).get("os", "linux") == "linux"
                ),
                choices[0] if choices else None,
            )
            if pick is None:
                break
            doc = json.loads(read(blob(pick["digest"])))
        if "config" not in doc:
            continue
        out.append(
            (
                blob(doc["config"]["digest"]),
                [blob(layer["digest"]) for layer in doc["layers"]],
                tags,
            )
        )
    return out
