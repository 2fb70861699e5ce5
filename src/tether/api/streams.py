"""Hijacked connections: attach and exec streams over the API socket.

The Docker API answers ``101 UPGRADED`` and then uses the raw connection both
ways: the 101 is a ``StreamResponse`` made :meth:`~tether.api.httpd.StreamResponse.raw_stream`
(no framing; the connection ends with the handler), then raw bytes go to the transport
and the client's bytes come from the request's stream reader (which keeps the transport
open on the client's half-close: a client with no stdin half-closes at once, as docker
exec without -i does). Without a TTY, output is framed as Docker does:
an 8-byte header (stream 1 stdout / 2 stderr, three zero bytes, big-endian
length) before each chunk.

After the 101 the first output waits until the client has read the response head
(``_head_read``): a client that reads the head through a buffered reader and then the raw
socket (docker-py's ``attach``: ``response.raw._fp.fp.raw``) loses whatever bytes arrived
with the head. ``attach?logs=1&stream=0`` right after ``wait`` returned nothing about half
the time (docker-py's ``test_attach_no_stream``), since the log replay is ready at once.
"""

from __future__ import annotations

import asyncio
import contextlib
import fcntl
import struct
import termios
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

from tether.api import httpd as web

STREAM_IDS = {"stdin": 0, "stdout": 1, "stderr": 2}


def frame(stream: str, data: bytes) -> bytes:
    return struct.pack(">BxxxL", STREAM_IDS.get(stream, 1), len(data)) + data


HEAD_READ_LIMIT_S = 2.0


async def _head_read(transport: Any) -> None:
    """Wait (at most ``HEAD_READ_LIMIT_S``) until the client has read all we sent: the
    socket's unread bytes (``SIOCOUTQ``, which on a unix socket counts what the peer has
    not read yet) and the transport's buffer are empty."""
    sock = transport.get_extra_info("socket")
    if sock is None:
        return
    buf = bytearray(4)
    loop = asyncio.get_running_loop()
    deadline = loop.time() + HEAD_READ_LIMIT_S
    delay = 0.0005
    while loop.time() < deadline and not transport.is_closing():
        try:
            fcntl.ioctl(sock.fileno(), termios.TIOCOUTQ, buf)  # SIOCOUTQ
        except OSError:
            return
        if struct.unpack("i", buf)[0] == 0 and transport.get_write_buffer_size() == 0:
            return
        await asyncio.sleep(delay)
        delay = min(delay * 2, 0.02)


class Hijacked:
    def __init__(self, request: web.Request, resp: web.StreamResponse, multiplex: bool) -> None:
        self.request = request
        self.resp = resp
        self.multiplex = multiplex
        self.reader = request.reader
        self.eof_seen = False
        self.transport: Any = request.writer.transport

    @classmethod
    async def open(cls, request: web.Request, multiplex: bool) -> Hijacked:
        upgrade = "upgrade" in request.headers.get("Connection", "").lower()
        ctype = (
            "application/vnd.docker.multiplexed-stream"
            if multiplex
            else "application/vnd.docker.raw-stream"
        )
        if upgrade:
            resp = web.StreamResponse(status=101, reason="UPGRADED")
            resp.headers["Connection"] = "Upgrade"
            resp.headers["Upgrade"] = "tcp"
        else:
            resp = web.StreamResponse(status=200)
        resp.headers["Content-Type"] = ctype
        resp.raw_stream()
        await resp.prepare(request)
        self = cls(request, resp, multiplex)
        if upgrade:
            await _head_read(self.transport)  # (the client's input is taken meanwhile)
        return self

    def write(self, stream: str, data: bytes) -> None:
        if not data or self.transport.is_closing():
            return
        self.transport.write(frame(stream, data) if self.multiplex else data)

    async def drain(self) -> None:
        await asyncio.sleep(0)

    async def read(self) -> bytes | None:
        """The client's next bytes; None at its EOF (or when the connection is lost)."""
        if self.eof_seen:
            return None
        try:
            data = await self.reader.read(1 << 16)
        except (ConnectionError, OSError):
            data = b""
        if not data:
            self.eof_seen = True
            return None
        return data

    async def finish(self) -> None:
        """End the output: half-close, give the client a moment to read and hang up, close."""
        if self.transport.is_closing():
            return
        try:
            if self.transport.can_write_eof():
                self.transport.write_eof()
        except OSError:
            pass
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(2):
                while not self.eof_seen and (await self.read()) is not None:
                    pass
        self.close()

    def close(self) -> None:
        if not self.transport.is_closing():
            self.transport.close()


# -- detach keys (Docker's moby/term ToBytes and escapeProxy) --------------------------------

#: ``ctrl-@`` is 0, ``ctrl-a`` 1 ... ``ctrl-_`` 31 (moby/term's ASCII table)
_CTRL = ["ctrl-@", *(f"ctrl-{chr(c)}" for c in range(ord("a"), ord("z") + 1)),
         "ctrl-[", "ctrl-\\", "ctrl-]", "ctrl-^", "ctrl-_"]  # fmt: skip
DEFAULT_DETACH_KEYS = b"\x10\x11"  # ctrl-p,ctrl-q


def parse_detach_keys(spec: str) -> bytes:
    """``"ctrl-p,ctrl-q"`` -> ``b"\\x10\\x11"``; ``ValueError`` for a key Docker does not know.

    Each comma-separated key is one character, ``ctrl-<x>`` (lower case, as Docker's table)
    or ``DEL``."""
    codes = bytearray()
    for key in spec.split(","):
        if len(key) == 1:
            codes += key.encode()[:1]
        elif key in _CTRL:
            codes.append(_CTRL.index(key))
        elif key == "DEL":
            codes.append(127)
        else:
            raise ValueError(f"Unknown character: '{key}'")
    return bytes(codes)


class EscapeProxy:
    """Docker's escape proxy on a stream's input: a read of exactly one byte that continues
    the key sequence is held back; the last key of the sequence means "detach"; anything
    else lets the held bytes through in front of it."""

    def __init__(self, keys: bytes) -> None:
        self.keys = keys or DEFAULT_DETACH_KEYS
        self.pos = 0

    def feed(self, chunk: bytes) -> tuple[bytes, bool]:
        """``(bytes to pass on, detached)`` for one read from the client."""
        if len(chunk) != 1 or chunk[0] != self.keys[self.pos]:
            held, self.pos = self.keys[: self.pos], 0
            return held + chunk, False
        if self.pos == len(self.keys) - 1:
            self.pos = 0
            return b"", True
        self.pos += 1
        return b"", False


async def copy_streams(
    hj: Hijacked,
    output: AsyncIterator[tuple[str, bytes]],
    *,
    write: Callable[[bytes], Awaitable[None]] | None = None,
    close_stdin: Callable[[], None] | None = None,
    keys: bytes | None = None,
    wanted: frozenset[str] | None = None,
    end_on_eof: bool = False,
) -> bool:
    """Copy ``output`` to the client, and the client's bytes to ``write`` (when given),
    until the output ends or the client typed the detach ``keys`` (None: none apply), or,
    with ``end_on_eof``, the client's stdin ended (Docker's attach without StdinOnce).

    True when the client detached (the process keeps running; its output is the caller's)."""
    detached = asyncio.Event()
    ended = asyncio.Event()

    async def stdin_pump() -> None:
        assert write is not None
        proxy = EscapeProxy(keys) if keys is not None else None
        while True:
            data = await hj.read()
            if data is None:
                if close_stdin is not None:
                    close_stdin()
                if end_on_eof:
                    ended.set()
                return
            if proxy is not None:
                data, leave = proxy.feed(data)
                if leave:
                    detached.set()
                    return
            if data:
                await write(data)

    async def out_pump() -> None:
        async for stream, data in output:
            if wanted is None or stream in wanted:
                hj.write(stream, data)

    out = asyncio.ensure_future(out_pump())
    gate = asyncio.ensure_future(detached.wait())
    eof = asyncio.ensure_future(ended.wait())
    pump = asyncio.ensure_future(stdin_pump()) if write is not None else None
    try:
        await asyncio.wait([out, gate, eof], return_when=asyncio.FIRST_COMPLETED)
    finally:
        for task in (out, gate, eof, pump):
            if task is not None and not task.done():
                task.cancel()
        for task in (out, gate, eof, pump):
            if task is not None:
                with contextlib.suppress(BaseException):
                    await task
    failure = out.exception() if out.done() and not out.cancelled() else None
    if failure is not None:
        raise failure
    return detached.is_set()
