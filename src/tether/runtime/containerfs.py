"""A container's root filesystem from the daemon's side: ``docker cp`` both ways, ``docker
export`` and ``docker diff``.

Reads and writes go through a helper process (``tether.runtime.fsjob``) that enters the
container's root (``/proc/<pid>/root`` while it runs, its overlay mounted in a private mount
namespace when it does not) and ``chroot``s there: paths resolve as the container sees them
and nothing is mounted in the daemon's namespace. ``changes`` reads the upper layer on the
host (Docker's overlay rules).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import subprocess
import sys
from collections.abc import AsyncIterator, Sequence
from typing import Any

from tether.errors import BadRequest, Internal, NotFound
from tether.linux.nsthread import OverlayMount
from tether.runtime.diff import overlay_changes

Binds = Sequence[tuple[str, str, bool]]


def _spec(pid: int | None, overlay: OverlayMount | None, **extra: Any) -> str:
    ov = None
    if overlay is not None:
        ov = {"cwd": overlay.cwd, "lower": list(overlay.lower), "upper": overlay.upper,
              "work": overlay.work, "target": overlay.target}  # fmt: skip
    return json.dumps({"pid": pid, "overlay": ov, **extra})


def _error(code: int, stderr: bytes) -> Exception:
    try:
        message = str(json.loads(stderr.decode().strip().splitlines()[-1])["message"])
    except (ValueError, KeyError, IndexError, TypeError):
        message = stderr.decode(errors="replace").strip()[-500:] or f"exit status {code}"
    if code == 2:
        return NotFound(message)
    if code in (3, 4):
        return BadRequest(message)
    return Internal(message)


class _Job:
    """One helper process: its stdout read without blocking the loop."""

    def __init__(self, proc: subprocess.Popen[bytes]) -> None:
        self.proc = proc
        self.loop = asyncio.get_running_loop()

    @classmethod
    async def start(cls, op: str, spec: str, stdin: bool = False) -> _Job:
        argv = [sys.executable, "-m", "tether.runtime.fsjob", op, spec]
        kw: dict[str, Any] = {
            "stdin": subprocess.PIPE if stdin else subprocess.DEVNULL,
            "stdout": subprocess.PIPE,
            "stderr": subprocess.PIPE,
        }
        loop = asyncio.get_running_loop()
        proc = await loop.run_in_executor(None, lambda: subprocess.Popen(argv, **kw))
        return cls(proc)

    async def chunks(self) -> AsyncIterator[bytes]:
        assert self.proc.stdout is not None
        fd = self.proc.stdout.fileno()
        os.set_blocking(fd, False)
        while True:
            try:
                data = os.read(fd, 1 << 16)
            except BlockingIOError:
                await self._readable(fd)
                continue
            if not data:
                return
            yield data

    async def _readable(self, fd: int) -> None:
        fut: asyncio.Future[None] = self.loop.create_future()

        def ready() -> None:
            if not fut.done():
                fut.set_result(None)

        self.loop.add_reader(fd, ready)
        try:
            await fut
        finally:
            self.loop.remove_reader(fd)

    async def finish(self) -> None:
        """Wait for the exit; raise the helper's error."""
        assert self.proc.stderr is not None
        err = await self.loop.run_in_executor(None, self.proc.stderr.read)
        code = await self.loop.run_in_executor(None, self.proc.wait)
        if code != 0:
            raise _error(code, err)

    def kill(self) -> None:
        with contextlib.suppress(ProcessLookupError):
            self.proc.kill()
        for f in (self.proc.stdin, self.proc.stdout, self.proc.stderr):
            if f is not None:
                with contextlib.suppress(OSError):
                    f.close()
        with contextlib.suppress(Exception):
            self.proc.wait(5)


async def _stream(op: str, spec: str) -> AsyncIterator[bytes]:
    job = await _Job.start(op, spec)
    try:
        async for data in job.chunks():
            yield data
        await job.finish()
    finally:
        job.kill()


class ContainerFiles:
    """cp/export/diff for ``tether.runtime.monitor.Runtime``."""

    async def path_stat(
        self, pid: int | None, overlay: OverlayMount | None, path: str, binds: Binds = ()
    ) -> dict[str, Any]:
        """Docker's ContainerPathStat of ``path`` (``NotFound`` when it does not exist).
        ``binds``: (source, destination, read-only) mounted over a stopped container's root."""
        job = await _Job.start("stat", _spec(pid, overlay, path=path, binds=list(binds)))
        try:
            out = b"".join([c async for c in job.chunks()])
            await job.finish()
        finally:
            job.kill()
        value: dict[str, Any] = json.loads(out)
        return value

    def archive(
        self, pid: int | None, overlay: OverlayMount | None, path: str, binds: Binds = ()
    ) -> AsyncIterator[bytes]:
        """A tar of ``path`` (Docker's rebasing: entries start with the path's base name)."""
        return _stream("get", _spec(pid, overlay, path=path, binds=list(binds)))

    def export(self, overlay: OverlayMount) -> AsyncIterator[bytes]:
        """A tar of the whole root filesystem (the overlay, mounted read-only)."""
        return _stream("export", _spec(None, overlay))

    async def extract(
        self,
        pid: int | None,
        overlay: OverlayMount | None,
        path: str,
        data: AsyncIterator[bytes],
        no_overwrite: bool = False,
        binds: Binds = (),
    ) -> None:
        """Unpack the tar ``data`` into the directory ``path``."""
        spec = _spec(pid, overlay, path=path, no_overwrite=no_overwrite, binds=list(binds))
        await self._feed("put", spec, data)

    async def fill_dir(self, root: str, data: AsyncIterator[bytes]) -> None:
        """Unpack the tar ``data`` (of a folder, ``get PATH/.``) into the host folder ``root``,
        chrooted there (symlinks in the tar cannot lead out): a new volume's copy-up."""
        await self._feed("fill", json.dumps({"root": root}), data)

    async def _feed(self, op: str, spec: str, data: AsyncIterator[bytes]) -> None:
        job = await _Job.start(op, spec, stdin=True)
        stdin = job.proc.stdin
        assert stdin is not None
        loop = asyncio.get_running_loop()
        try:
            try:
                async for chunk in data:
                    await loop.run_in_executor(None, stdin.write, chunk)
            except BrokenPipeError:
                pass  # the helper stopped early: its error says why
            with contextlib.suppress(BrokenPipeError):
                await loop.run_in_executor(None, stdin.close)
            async for _ in job.chunks():
                pass
            await job.finish()
        finally:
            job.kill()

    async def changes(self, overlay: OverlayMount) -> list[dict[str, Any]]:
        """``docker diff``: ``[{"Path", "Kind"}]`` from the upper layer."""
        upper = os.path.join(overlay.cwd, overlay.upper)
        lowers = [os.path.normpath(os.path.join(overlay.cwd, p)) for p in overlay.lower]
        return await asyncio.get_running_loop().run_in_executor(
            None, overlay_changes, lowers, upper
        )

    async def size_rw(self, overlay: OverlayMount) -> int:
        """Bytes of the files in the upper layer (hard links once), Docker's SizeRw."""
        upper = os.path.join(overlay.cwd, overlay.upper)
        return await asyncio.get_running_loop().run_in_executor(None, tree_size, upper)


def tree_size(root: str) -> int:
    seen: set[tuple[int, int]] = set()
    total = 0
    for folder, _dirs, files in os.walk(root):
        for name in files:
            try:
                st = os.lstat(os.path.join(folder, name))
            except OSError:
                continue
            if st.st_nlink > 1:
                key = (st.st_dev, st.st_ino)
                if key in seen:
                    continue
                seen.add(key)
            total += st.st_size
    return total
