"""Container root filesystems: overlayfs folders over an image's unpacked layers.

Layout under the image store's root::

    containers/<cid>/        upper/ work/ layers.json (the DiffIDs, bottom first)
    m/<12 hex of cid>        where the root is mounted (``containers/<cid>/merged`` for
                             roots mounted by older versions)
    l/<12 hex of a layer>    short links to ``layers/<hex>``, so mount options stay short

Blocking work (mounting, deleting trees) runs in the default executor.
"""

from __future__ import annotations

import asyncio
import contextlib
import ctypes
import ctypes.util
import json
import os
import shutil
import uuid
from collections.abc import Iterable
from pathlib import Path

from tether.errors import Internal
from tether.linux.nsthread import OverlayMount

_libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6", use_errno=True)
_libc.umount2.argtypes = [ctypes.c_char_p, ctypes.c_int]
_MNT_DETACH = 2


def link_target(hex_id: str) -> str:
    """What a short link in ``l/`` points at: its layer, relative to ``l/``."""
    return os.path.join("..", "layers", hex_id)


def _short_link(links_dir: Path, layer: Path) -> Path:
    """``links_dir/<first 12 hex of the layer>``, a symlink to the layer (made if missing).

    Returns the layer's own path when the short name is taken by another layer.
    """
    link = links_dir / layer.name[:12]
    target = link_target(layer.name)
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


def _write_json(path: Path, value: object) -> None:
    tmp = path.with_name(f".{path.name}.{uuid.uuid4().hex[:8]}.tmp")
    tmp.write_bytes(json.dumps(value, indent=1, sort_keys=True).encode())
    os.replace(tmp, path)


class RootFilesystems:
    """The containers' root filesystems of one image store (folders under ``root``)."""

    def __init__(self, root: Path) -> None:
        self.layers_dir = root / "layers"
        self.links_dir = root / "l"
        self.mounts_dir = root / "m"
        self.containers_dir = root / "containers"
        for d in (self.layers_dir, self.links_dir, self.mounts_dir, self.containers_dir):
            d.mkdir(parents=True, exist_ok=True)

    def layer_dirs(self, diff_ids: Iterable[str]) -> list[Path]:
        """Directories of layers given bottom first (as images list them), top first."""
        return [self.layers_dir / d.split(":", 1)[-1] for d in reversed(list(diff_ids))]

    def used_layers(self) -> set[str]:
        """DiffIDs the containers' root filesystems are made of."""
        used: set[str] = set()
        for meta in self.containers_dir.glob("*/layers.json"):
            with contextlib.suppress(OSError, ValueError):
                used.update(json.loads(meta.read_bytes()))
        return used

    def drop_short_link(self, hex_id: str) -> None:
        """Remove the layer's short link in ``l/`` (when it is the layer's)."""
        link = self.links_dir / hex_id[:12]
        with contextlib.suppress(OSError):
            if os.readlink(link) == link_target(hex_id):
                link.unlink()

    def path(self, container_id: str) -> Path:
        """Where the container's root is mounted: ``<root>/m/<short id>``.

        A short mount point keeps the machine's mount table small (runc reads it many times
        per start). Roots mounted by older versions stay at ``containers/<id>/merged``.
        """
        legacy = self.containers_dir / container_id / "merged"
        if os.path.ismount(legacy):
            return legacy
        return self.mounts_dir / container_id[:12]

    async def prepare(self, diff_ids: list[str], short_id: str, container_id: str) -> Path:
        """Make the container's folders (upper, work, mount point) and return the mount point.

        ``diff_ids`` are the image's layers (bottom first), ``short_id`` names the image in
        errors. Nothing is mounted here: the root filesystem is mounted at each start inside
        the mount namespace the container's runtime gets (:meth:`overlay_for`,
        ``tether.linux.nsthread.PrivateMounts``), never in the daemon's, and goes away when
        the container's monitor exits.
        """
        base = self.containers_dir / container_id
        lower = self.layer_dirs(diff_ids)

        def prepare() -> Path:
            if not lower:
                raise Internal(f"image {short_id} has no layers")
            missing = [p for p in lower if not p.is_dir()]
            if missing:
                raise Internal(f"image {short_id}: layer {missing[0].name} is missing")
            merged = self.path(container_id)
            for d in (base / "upper", base / "work", merged):
                d.mkdir(parents=True, exist_ok=True)
            meta = base / "layers.json"
            if not meta.exists():
                _write_json(meta, diff_ids)
            return merged

        return await asyncio.get_running_loop().run_in_executor(None, prepare)

    def overlay_for(self, container_id: str) -> OverlayMount | None:
        """The overlay to mount for the container's start (None: mounted already, legacy).

        Layer paths are short links relative to the container's folder
        (``../../l/<12 hex>``): the kernel prints them in every read of mountinfo.
        Raises ``Internal`` when the container's folder or one of its layers is missing.
        """
        base = self.containers_dir / container_id
        target = self.path(container_id)
        if os.path.ismount(target):
            return None
        try:
            layers = json.loads((base / "layers.json").read_bytes())
        except (OSError, ValueError) as exc:
            raise Internal(f"root filesystem of {container_id[:12]} is missing: {exc}") from exc
        lower = self.layer_dirs(layers)
        missing = [p for p in lower if not p.is_dir()]
        if missing or not lower:
            raise Internal(f"container {container_id[:12]}: a layer of its image is missing")
        rel = [os.path.relpath(_short_link(self.links_dir, p), base) for p in lower]
        if len(":".join(rel)) + 64 >= 4096:
            raise Internal(f"too many layers to mount ({len(lower)})")
        return OverlayMount(str(base), tuple(rel), "upper", "work", str(target))

    def _unmount_both(self, container_id: str) -> None:
        _umount(self.containers_dir / container_id / "merged")
        short = self.mounts_dir / container_id[:12]
        _umount(short)
        with contextlib.suppress(OSError):
            short.rmdir()

    async def unmount(self, container_id: str) -> None:
        """Unmount the container's root (no error when it is not mounted)."""
        await asyncio.get_running_loop().run_in_executor(None, self._unmount_both, container_id)

    async def remove(self, container_id: str) -> None:
        """Unmount and delete the container's upper/work directories (idempotent)."""
        base = self.containers_dir / container_id

        def remove() -> None:
            self._unmount_both(container_id)
            shutil.rmtree(base, ignore_errors=True)

        await asyncio.get_running_loop().run_in_executor(None, remove)

    def ids(self) -> list[str]:
        """Ids of containers that have a root filesystem here (for reconcile on start)."""
        return sorted(p.name for p in self.containers_dir.iterdir() if p.is_dir())
