"""A process started with ``runc exec`` (docker exec).

Without a TTY, ``runc exec`` runs as an asyncio subprocess whose stdin/stdout/stderr are
the process's own pipes; its exit status is the process's. With a TTY, ``runc exec
--detach`` sends the container's pty master to the daemon, which reads/writes it directly
(one pty, as with Docker); ``proc`` is then ``execshim``, the process's subreaper, whose
exit status is the process's.
"""

from __future__ import annotations

import asyncio
import contextlib
import fcntl
import os
import shutil
import signal
import struct
import termios
from collections.abc import AsyncIterator
from pathlib import Path


class ExecProcess:
    """A running exec; use ``output()``, ``write()``, ``close_stdin()``, ``wait()``."""

    def __init__(
        self,
        proc: asyncio.subprocess.Process,
        pid: int,
        workdir: Path,
        master_fd: int | None = None,
    ) -> None:
        self.proc = proc
        self.pid = pid  # host pid of the exec'd process
        self.tty = master_fd is not None
        self._workdir = workdir
        self._master = master_fd
        self._loop = asyncio.get_running_loop()
        self._exit: int | None = None
        if master_fd is not None:
            os.set_blocking(master_fd, False)

    @property
    def stdout(self) -> asyncio.StreamReader | None:
        """The process's stdout pipe (None with a TTY: use ``output()``)."""
        return self.proc.stdout

    @property
    def stderr(self) -> asyncio.StreamReader | None:
        return None if self.tty else self.proc.stderr

    async def output(self) -> AsyncIterator[tuple[str, bytes]]:
        """``("stdout"|"stderr", data)`` until the process closed its output."""
        if self._master is not None:
            while data := await self._read_master():
                yield "stdout", data
            return
        readers = {"stdout": self.proc.stdout, "stderr": self.proc.stderr}
        pending: dict[asyncio.Future[bytes], str] = {}
        for name, reader in readers.items():
            if reader is not None:
                pending[asyncio.ensure_future(reader.read(65536))] = name
        try:
            while pending:
                done, _ = await asyncio.wait(pending, return_when=asyncio.FIRST_COMPLETED)
                for fut in done:
                    name = pending.pop(fut)
                    data = fut.result()
                    if data:
                        yield name, data
                        reader = readers[name]
                        assert reader is not None
                        pending[asyncio.ensure_future(reader.read(65536))] = name
        finally:
            for fut in pending:
                fut.cancel()

    async def _read_master(self) -> bytes:
        assert self._master is not None
        fd = self._master
        while True:
            try:
                return os.read(fd, 65536)
            except BlockingIOError:
                pass
            except OSError:  # EIO: the slave side is closed, the process is gone
                return b""
            await wait_fd(fd)

    async def write(self, data: bytes) -> None:
        """Send bytes to the process's stdin (or the TTY)."""
        if self._master is not None:
            view = memoryview(data)
            while view:
                try:
                    n = os.write(self._master, view)
                    view = view[n:]
                except BlockingIOError:
                    await wait_fd(self._master, write=True)
            return
        if self.proc.stdin is None:
            return
        self.proc.stdin.write(data)
        await self.proc.stdin.drain()

    def close_stdin(self) -> None:
        """EOF on stdin (with a TTY: send ^D)."""
        if self._master is not None:
            with contextlib.suppress(OSError):
                os.write(self._master, b"\x04")
        elif self.proc.stdin is not None:
            self.proc.stdin.close()

    def resize(self, height: int, width: int) -> None:
        """Set the TTY size (the kernel sends SIGWINCH to the pty's foreground group)."""
        if self._master is not None:
            fcntl.ioctl(self._master, termios.TIOCSWINSZ, struct.pack("HHHH", height, width, 0, 0))

    def kill(self, sig: int = signal.SIGKILL) -> None:
        with contextlib.suppress(ProcessLookupError):
            os.kill(self.pid, sig)

    @property
    def returncode(self) -> int | None:
        return self._exit

    async def wait(self) -> int:
        """The exit code (128+N when killed by signal N). Cleans up afterwards."""
        if self._exit is None:
            code = await self.proc.wait()
            self._exit = 128 - code if code < 0 else code
            self._cleanup()
        return self._exit

    def _cleanup(self) -> None:
        if self._master is not None:
            with contextlib.suppress(OSError):
                self._loop.remove_reader(self._master)
                os.close(self._master)
            self._master = None
        shutil.rmtree(self._workdir, ignore_errors=True)


async def wait_fd(fd: int, write: bool = False) -> None:
    """Wait until ``fd`` is readable (or writable)."""
    loop = asyncio.get_running_loop()
    fut: asyncio.Future[None] = loop.create_future()

    def ready() -> None:
        if not fut.done():
            fut.set_result(None)

    if write:
        loop.add_writer(fd, ready)
    else:
        loop.add_reader(fd, ready)
    try:
        await fut
    finally:
        if write:
            loop.remove_writer(fd)
        else:
            loop.remove_reader(fd)
