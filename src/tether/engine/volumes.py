"""Volumes: Docker's ``local`` driver, with Docker 20.10's texts.

A volume is a record in the store (``volumes/<name>``: name, driver, options, labels,
creation time) and a folder, ``<data-root>/volumes/<name>/_data`` (Docker's layout). Both are
made together and removed together: the folder first then the record at create (a failed
write removes the folder), the record then the folder at remove (the folder is renamed aside
first and put back when the record cannot be deleted), so a failure leaves neither half.

Which containers use a volume is read from their records (``Container.mounts``): a volume
named by any container, running or not, is in use (``remove NAME: volume is in use - [ID]``).

Driver options (``-o type=tmpfs -o device=tmpfs -o o=size=64m``, ``-o type=none -o
o=bind -o device=/srv``) are Docker's local driver's: the folder is mounted with them
(``mount -t TYPE -o O DEVICE _data``, through ``VolumeMounts``) at the first start of a
container that uses the volume. Unlike Docker, the mount stays until the volume is removed
(Docker unmounts when its last container stops, losing a tmpfs's files then).
"""

from __future__ import annotations

import asyncio
import builtins
import datetime as dt
import logging
import os
import re
import shutil
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from tether.engine.mounts import volume_names
from tether.engine.seams import VolumeMounts
from tether.engine.table import ContainerTable
from tether.errors import BadRequest, Conflict, Internal, NotFound
from tether.store.base import Store

log = logging.getLogger("tether.volumes")

NAME_RE = re.compile(r"^[a-zA-Z0-9][a-zA-Z0-9_.-]+$")
DRIVER = "local"
VALID_OPTS = ("type", "device", "o")
MANDATORY_OPTS = {"device": ("type",), "type": ("device",), "o": ("device",)}
LIST_FILTERS = ("dangling", "driver", "label", "name")
PRUNE_FILTERS = ("label", "label!")


@dataclass
class Volume:
    name: str
    created_at: str
    driver: str = DRIVER
    labels: dict[str, str] | None = None
    options: dict[str, str] | None = None

    def to_dict(self) -> dict[str, Any]:
        return {"name": self.name, "created_at": self.created_at, "driver": self.driver,
                "labels": self.labels, "options": self.options}  # fmt: skip

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> Volume:
        return cls(d["name"], d["created_at"], d.get("driver") or DRIVER, d.get("labels"),
                   d.get("options"))  # fmt: skip


def _now() -> str:
    return dt.datetime.now(dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _str_map(value: Any, what: str) -> dict[str, str] | None:
    if value is None:
        return None
    if not isinstance(value, dict):
        raise BadRequest(f"{what} must be an object")
    return {str(k): str(v) for k, v in value.items()}


def check_options(opts: dict[str, str] | None) -> None:
    """The local driver's option keys (Docker's validateOpts)."""
    for key in opts or {}:
        if key not in VALID_OPTS:
            raise BadRequest(f'invalid option: "{key}"')
    for key, needs in MANDATORY_OPTS.items():
        if key in (opts or {}):
            for need in needs:
                if need not in (opts or {}):
                    raise BadRequest(f'missing required option: "{need}"')


def dir_size(root: str) -> int:
    total = 0
    for folder, _dirs, files in os.walk(root):
        for name in files:
            try:
                total += os.lstat(os.path.join(folder, name)).st_size
            except OSError:
                continue
    return total


def _label_match(labels: dict[str, str] | None, wanted: Iterable[str]) -> bool:
    have = labels or {}
    for item in wanted:
        key, eq, val = item.partition("=")
        if key not in have or (eq and have[key] != val):
            return False
    return True


class VolumeService:
    def __init__(
        self,
        store: Store,
        data_root: Path,
        table: ContainerTable,
        mounts: VolumeMounts | None = None,
    ) -> None:
        self.store = store
        self.root = data_root / "volumes"
        self.table = table
        self.mounts = mounts
        self.volumes: dict[str, Volume] = {}
        self.lock = asyncio.Lock()

    async def load(self) -> None:
        self.root.mkdir(parents=True, exist_ok=True)
        os.chmod(self.root, 0o701)
        for rec in await self.store.list("volumes/"):
            v = Volume.from_dict(rec.value)
            self.volumes[v.name] = v

    # ---- questions -------------------------------------------------------------------
    def path(self, name: str) -> str:
        return str(self.root / name / "_data")

    def get(self, name: str) -> Volume:
        v = self.volumes.get(name)
        if v is None:
            raise NotFound(f"get {name}: no such volume")
        return v

    def users(self, name: str) -> builtins.list[str]:
        return [c.id for c in self.table.containers.values() if name in volume_names(c.mounts)]

    def json(self, v: Volume) -> dict[str, Any]:
        return {"CreatedAt": v.created_at, "Driver": v.driver, "Labels": v.labels,
                "Mountpoint": self.path(v.name), "Name": v.name, "Options": v.options,
                "Scope": "local"}  # fmt: skip

    def list(self, filters: dict[str, builtins.list[str]]) -> builtins.list[Volume]:
        for key, values in filters.items():
            if key not in LIST_FILTERS:
                raise BadRequest(f"invalid filter '{key}'")
            if key == "dangling" and any(v not in ("true", "false", "1", "0") for v in values):
                raise BadRequest(f"invalid filter 'dangling={','.join(values)}'")
        return [v for v in sorted(self.volumes.values(), key=lambda v: v.name)
                if self._match(v, filters)]  # fmt: skip

    def _match(self, v: Volume, filters: dict[str, builtins.list[str]]) -> bool:
        for key, values in filters.items():
            if not values:
                continue
            if key == "dangling" and (values[0] in ("true", "1")) != (not self.users(v.name)):
                return False
            if key == "driver" and v.driver not in values:
                return False
            if key == "name" and not any(_search(p, v.name) for p in values):
                return False
            if key == "label" and not _label_match(v.labels, values):
                return False
        return True

    # ---- create ----------------------------------------------------------------------
    async def create(
        self,
        name: str | None = None,
        driver: str | None = None,
        options: Any = None,
        labels: Any = None,
    ) -> Volume:
        """A volume (the existing one when ``name`` is taken; a 64-hex name when none)."""
        name = name or os.urandom(32).hex()
        driver = driver or DRIVER
        opts = _str_map(options, "DriverOpts")
        lab = _str_map(labels, "Labels")
        if driver != DRIVER:
            raise NotFound(
                f'create {name}: error looking up volume plugin {driver}: plugin "{driver}" '
                "not found"
            )
        async with self.lock:
            existing = self.volumes.get(name)
            if existing is not None:
                return existing
            try:
                if len(name) == 1:
                    raise BadRequest(
                        "volume name is too short, names should be at least two alphanumeric "
                        "characters"
                    )
                if not NAME_RE.match(name):
                    raise BadRequest(
                        f'"{name}" includes invalid characters for a local volume name, only '
                        '"[a-zA-Z0-9][a-zA-Z0-9_.-]" are allowed. If you intended to pass a '
                        "host directory, use absolute path"
                    )
                check_options(opts)
            except BadRequest as exc:
                raise BadRequest(f"create {name}: {exc.message}") from None
            v = Volume(name, _now(), DRIVER, lab, opts)
            await self._make(v)
            self.volumes[name] = v
        return v

    async def _make(self, v: Volume) -> None:
        folder = self.root / v.name
        self.root.mkdir(parents=True, exist_ok=True)
        try:
            (folder / "_data").mkdir(parents=True, mode=0o755)
            ok = await self.store.create(f"volumes/{v.name}", v.to_dict())
        except BaseException:
            shutil.rmtree(folder, ignore_errors=True)
            raise
        if not ok:
            shutil.rmtree(folder, ignore_errors=True)
            raise Conflict(f"create {v.name}: volume already exists")

    async def attach(
        self, points: builtins.list[dict[str, Any]], volume_driver: str = ""
    ) -> builtins.list[str]:
        """Give a new container's volume mount points their volumes: the named ones (made when
        missing, with a ``Mounts`` entry's driver options and labels), a new one for each
        anonymous point. Returns the volumes made here; on failure none is left."""
        made: builtins.list[str] = []
        try:
            for m in points:
                opts, labels = m.pop("DriverOpts", None), m.pop("Labels", None)
                if m["Type"] != "volume" or m.get("Source"):
                    continue  # a bind, a tmpfs, or another container's volume (VolumesFrom)
                name = m.get("Name") or None
                if name is None or name not in self.volumes:
                    v = await self.create(name, m.get("Driver") or volume_driver, opts, labels)
                    made.append(v.name)
                    name = v.name
                m["Name"], m["Source"], m["Driver"] = name, self.path(name), DRIVER
        except BaseException:
            await self.release(made, owner="")
            raise
        return made

    # ---- remove ----------------------------------------------------------------------
    async def remove(self, name: str, force: bool = False, *, owner: str | None = None) -> None:
        """Remove a volume no container uses (``owner``: the container being removed, whose
        own reference does not count)."""
        async with self.lock:
            v = self.volumes.get(name)
            if v is None:
                if force:
                    return
                raise NotFound(f"get {name}: no such volume")
            users = [u for u in self.users(name) if u != owner]
            if users:
                raise Conflict(f"remove {name}: volume is in use - [{', '.join(users)}]")
            await self._unmake(v)

    async def _unmake(self, v: Volume) -> None:
        folder = self.root / v.name
        aside = self.root / f".{v.name}.removing"
        await self._unmount(v)
        moved = False
        if folder.exists():
            os.replace(folder, aside)
            moved = True
        try:
            await self.store.delete(f"volumes/{v.name}")
        except BaseException:
            if moved:
                os.replace(aside, folder)
            raise
        self.volumes.pop(v.name, None)
        shutil.rmtree(aside, ignore_errors=True)

    async def prune(self, filters: dict[str, builtins.list[str]]) -> tuple[builtins.list[str], int]:
        """Every unused volume (Docker 20.10 prunes named ones too) the label filters match."""
        for key in filters:
            if key not in PRUNE_FILTERS:
                raise BadRequest(f"invalid filter '{key}'")
        gone: builtins.list[str] = []
        size = 0
        for v in builtins.list(self.volumes.values()):
            if not _label_match(v.labels, filters.get("label", [])):
                continue
            if any(_label_match(v.labels, [x]) for x in filters.get("label!", [])):
                continue
            if self.users(v.name):
                continue
            used = dir_size(self.path(v.name))
            try:
                await self.remove(v.name)
            except (Conflict, NotFound):
                continue
            gone.append(v.name)
            size += used
        return gone, size

    async def release(self, names: Iterable[str], owner: str) -> None:
        """``rm -v``/``--rm``: remove a removed container's anonymous volumes (ones another
        container still uses stay, as Docker ignores the conflict)."""
        for name in names:
            try:
                await self.remove(name, owner=owner)
            except (Conflict, NotFound):
                continue
            except Exception as exc:
                log.warning("volume %s: %s", name, exc)

    # ---- mounting ----------------------------------------------------------------------
    async def source(self, name: str) -> str:
        """The host folder a container mounts for the volume: ``_data``, mounted first with
        the volume's driver options when it has some."""
        v = self.get(name)
        path = self.path(name)
        os.makedirs(path, mode=0o755, exist_ok=True)
        opts = v.options or {}
        if not (opts.get("type") or opts.get("device")):
            return path
        if self.mounts is None:
            raise Internal(f"volume {name}: this daemon cannot mount volumes with options")
        if not self.mounts.is_mounted(path):
            try:
                await self.mounts.mount(opts.get("type", ""), opts.get("device", ""),
                                        opts.get("o", ""), path)  # fmt: skip
            except OSError as exc:
                raise Internal(
                    f"error while mounting volume '{path}': failed to mount local volume: {exc}"
                ) from None
        return path

    async def _unmount(self, v: Volume) -> None:
        path = self.path(v.name)
        if self.mounts is not None and self.mounts.is_mounted(path):
            try:
                await self.mounts.unmount(path)
            except OSError as exc:
                raise Internal(f"remove {v.name}: unmounting {path}: {exc}") from None


def _search(pattern: str, text: str) -> bool:
    try:
        return re.search(pattern, text) is not None
    except re.error:
        return False
