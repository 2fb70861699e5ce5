"""What one can do to a container besides run it: pause and unpause, look at its processes
(``docker top``) and figures (``docker stats``), and at its files (``docker cp``,
``export``, ``diff``), with Docker's checks and texts.

A running container's files are reached through its PID 1 (its monitor's mount namespace);
a stopped one's through its overlay (mounted by the runtime's helper, never here).
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

from tether.engine.core import EngineCore
from tether.engine.record import Container
from tether.engine.top import check_ps_args, parse_ps_output
from tether.errors import BadRequest, Conflict, Forbidden, NotFound, TetherError
from tether.linux.nsthread import OverlayMount


def _restarting(c: Container) -> Conflict:
    return Conflict(f"Container {c.id} is restarting, wait until the container is running")


class Operations:
    def __init__(self, core: EngineCore) -> None:
        self.core = core

    # ---- pause ---------------------------------------------------------------------
    async def pause(self, ref: str) -> Container:
        c = self.core.table.get(ref)
        async with self.core.lock(c.id):
            if c.state.status == "restarting":
                raise _restarting(c)
            if not c.running:
                raise Conflict(f"Container {c.id} is not running")
            if c.state.paused:
                raise Conflict(f"Container {c.id} is already paused")
            try:
                await self.core.runtime.pause(c.id)
            except TetherError as exc:
                raise Conflict(f"Cannot pause container {c.id}: {exc.message}") from None
            c.state.paused = True
            await self.core.save(c)
        self.core.emit("pause", c)
        return c

    async def unpause(self, ref: str) -> Container:
        c = self.core.table.get(ref)
        async with self.core.lock(c.id):
            if not c.state.paused or not c.running:
                raise Conflict(f"Container {c.id} is not paused")
            try:
                await self.core.runtime.resume(c.id)
            except TetherError as exc:
                raise Conflict(f"Cannot unpause container {c.id}: {exc.message}") from None
            c.state.paused = False
            await self.core.save(c)
        self.core.emit("unpause", c)
        return c

    # ---- processes and figures ---------------------------------------------------------
    def _running(self, ref: str) -> Container:
        c = self.core.table.get(ref)
        if c.state.status == "restarting":
            raise _restarting(c)
        if not c.running:
            raise Conflict(f"Container {c.id} is not running")
        return c

    async def top(self, ref: str, ps_args: str) -> dict[str, Any]:
        args = check_ps_args(ps_args or "-ef")
        c = self._running(ref)
        pids, output = await self.core.runtime.top(c.id, args)
        out = parse_ps_output(output, pids)
        self.core.emit("top", c)
        return out

    async def stats(self, c: Container) -> dict[str, Any] | None:
        """One runtime sample, None when the container is not running (any more)."""
        if not c.running:
            return None
        try:
            return await self.core.runtime.stats(c.id)
        except (Conflict, NotFound):
            return None

    # ---- files ---------------------------------------------------------------------------
    def _root(self, c: Container) -> tuple[int | None, OverlayMount | None]:
        if c.running and c.state.pid > 0:
            return c.state.pid, None
        return None, self.core.images.overlay_for(c.id)

    @staticmethod
    def _binds(c: Container, pid: int | None) -> list[tuple[str, str, bool]]:
        """A stopped container's volumes and bind mounts, mounted over its root for ``cp``
        (as Docker mounts them); a running one's are in its own mount namespace."""
        if pid is not None:
            return []
        return [
            (str(m["Source"]), str(m["Destination"]), not m.get("RW", True))
            for m in c.mounts
            if m.get("Type") in ("bind", "volume") and m.get("Source") and m.get("Destination")
        ]

    def _not_found(self, ref: str, path: str) -> NotFound:
        return NotFound(f"Could not find the file {path} in container {ref}")

    async def path_stat(self, ref: str, path: str) -> dict[str, Any]:
        c = self.core.table.get(ref)
        pid, overlay = self._root(c)
        try:
            return await self.core.runtime.path_stat(pid, overlay, path, self._binds(c, pid))
        except NotFound:
            raise self._not_found(ref, path) from None

    async def archive(self, ref: str, path: str) -> tuple[dict[str, Any], AsyncIterator[bytes]]:
        """The path's stat (for the header) and a tar of it."""
        c = self.core.table.get(ref)
        pid, overlay = self._root(c)
        binds = self._binds(c, pid)
        try:
            st = await self.core.runtime.path_stat(pid, overlay, path, binds)
        except NotFound:
            raise self._not_found(ref, path) from None
        self.core.emit("archive-path", c)
        return st, self.core.runtime.archive(pid, overlay, path, binds)

    async def extract(
        self, ref: str, path: str, data: AsyncIterator[bytes], no_overwrite: bool
    ) -> None:
        c = self.core.table.get(ref)
        if c.host_config.get("ReadonlyRootfs"):
            raise Forbidden("container rootfs is marked read-only")
        pid, overlay = self._root(c)
        try:
            await self.core.runtime.extract(
                pid, overlay, path, data, no_overwrite, self._binds(c, pid)
            )
        except NotFound:
            raise self._not_found(ref, path) from None
        self.core.emit("extract-to-dir", c)

    def export(self, ref: str) -> AsyncIterator[bytes]:
        c = self.core.table.get(ref)
        overlay = self.core.images.overlay_for(c.id)
        if overlay is None:
            raise BadRequest(f"container {c.id[:12]}: root filesystem mounted by an old version")
        self.core.emit("export", c)
        return self.core.runtime.export(overlay)

    async def size_rw(self, c: Container) -> int:
        """Bytes in the container's own layer (Docker's SizeRw); 0 when unknown."""
        try:
            overlay = self.core.images.overlay_for(c.id)
        except TetherError:
            return 0
        return 0 if overlay is None else await self.core.runtime.size_rw(overlay)

    async def changes(self, ref: str) -> list[dict[str, Any]]:
        c = self.core.table.get(ref)
        overlay = self.core.images.overlay_for(c.id)
        if overlay is None:
            return []
        return await self.core.runtime.changes(overlay)
