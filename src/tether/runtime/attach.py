"""conmon's attach socket (``SOCKS/CID/attach``, SOCK_SEQPACKET).

Each packet from conmon is one byte naming the pipe (2 stdout, 3 stderr) and the data.
Bytes written go to the container's stdin (conmon started with ``-i``); shutting down
the write side closes it. With a TTY everything arrives as "stdout", raw.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import socket
from collections.abc import AsyncIterator
from pathlib import Path

from tether.errors import Conflict

_STREAMS = {2: "stdout", 3: "stderr"}


class Attachment:
    """One attach session to a container's conmon."""

    def __init__(self, sock: socket.socket) -> None:
        self._sock = sock
        self._loop = asyncio.get_running_loop()
        self._stdin_closed = False

    @classmethod
    async def connect(cls, sock_dir: Path) -> Attachment:
        """Connect to ``sock_dir/attach`` (through ``/proc/self/fd`` so long paths work)."""
        loop = asyncio.get_running_loop()
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_SEQPACKET | socket.SOCK_CLOEXEC)
        sock.setblocking(False)
        try:
            dirfd = os.open(sock_dir, os.O_PATH | os.O_DIRECTORY | os.O_CLOEXEC)
        except FileNotFoundError:
            sock.close()
            raise Conflict("container is not running (no attach socket)") from None
        try:
            await loop.sock_connect(sock, f"/proc/self/fd/{dirfd}/attach")
        except (FileNotFoundError, ConnectionRefusedError):
            sock.close()
            raise Conflict("container is not running (attach socket refused)") from None
        except BaseException:
            sock.close()
            raise
        finally:
            os.close(dirfd)
        return cls(sock)

    async def read(self) -> tuple[str, bytes] | None:
        """Next ``(stream, data)``; None when the container's output ended."""
        while True:
            try:
                packet = await self._loop.sock_recv(self._sock, 65536)
            except (ConnectionResetError, OSError):
                return None
            if not packet:
                return None
            if len(packet) > 1:
                return _STREAMS.get(packet[0], "stdout"), packet[1:]

    def __aiter__(self) -> AsyncIterator[tuple[str, bytes]]:
        return self._iter()

    async def _iter(self) -> AsyncIterator[tuple[str, bytes]]:
        while (item := await self.read()) is not None:
            yield item

    async def write(self, data: bytes) -> None:
        """Send bytes to the container's stdin."""
        view = memoryview(data)
        while view:  # keep packets small enough for conmon's buffer
            await self._loop.sock_sendall(self._sock, view[:8192])
            view = view[8192:]

    def close_stdin(self) -> None:
        """Close the container's stdin (EOF), keep reading output."""
        if not self._stdin_closed:
            self._stdin_closed = True
            with contextlib.suppress(OSError):
                self._sock.shutdown(socket.SHUT_WR)

    def close(self) -> None:
        self._sock.close()
