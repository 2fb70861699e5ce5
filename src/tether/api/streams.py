"""Hijacked connections: attach and exec streams over the API socket.

The Docker API answers ``101 UPGRADED`` and then uses the raw connection both
ways. aiohttp has no public hijack: we answer the 101 as a prepared
``StreamResponse``, then write raw bytes to the transport and take incoming
bytes through ``request.protocol.set_parser`` (pinned aiohttp version; tested
through the real docker CLI). Without a TTY, output is framed as Docker does:
an 8-byte header (stream 1 stdout / 2 stderr, three zero bytes, big-endian
length) before each chunk.
"""

from __future__ import annotations

import asyncio
import contextlib
import struct
from typing import Any

from aiohttp import web

STREAM_IDS = {"stdin": 0, "stdout": 1, "stderr": 2}


def frame(stream: str, data: bytes) -> bytes:
    return struct.pack(">BxxxL", STREAM_IDS.get(stream, 1), len(data)) + data


class _RawInput(asyncio.Protocol):
    """The hijacked connection's protocol: client bytes into a queue, EOF as None."""

    def __init__(self, queue: asyncio.Queue[bytes | None], previous: Any) -> None:
        self.queue = queue
        self.previous = previous
        tail = getattr(previous, "_message_tail", b"")
        if tail:
            queue.put_nowait(bytes(tail))

    def data_received(self, data: bytes) -> None:
        self.queue.put_nowait(bytes(data))

    def eof_received(self) -> bool:
        self.queue.put_nowait(None)
        return True

    def connection_lost(self, exc: Exception | None) -> None:
        self.queue.put_nowait(None)
        with contextlib.suppress(Exception):
            self.previous.connection_lost(exc)

    def pause_writing(self) -> None:
        self.previous.pause_writing()

    def resume_writing(self) -> None:
        self.previous.resume_writing()


class Hijacked:
    def __init__(self, request: web.Request, resp: web.StreamResponse, multiplex: bool) -> None:
        self.request = request
        self.resp = resp
        self.multiplex = multiplex
        self.input: asyncio.Queue[bytes | None] = asyncio.Queue()
        self.eof_seen = False
        transport = request.transport
        assert transport is not None
        self.transport: Any = transport

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
        resp._length_check = False  # raw stream: no chunked framing
        resp.force_close()
        writer = await resp.prepare(request)
        if writer is not None:
            writer.send_headers()  # flush the 101 before raw bytes
        self = cls(request, resp, multiplex)
        # Take the connection over: from now on our protocol gets the client's bytes.
        # It keeps the transport open on EOF (a client with no stdin half-closes at
        # once, as docker exec without -i does; asyncio would otherwise close the
        # transport and drop the output still to come).
        self.transport.set_protocol(_RawInput(self.input, request.protocol))
        return self

    def write(self, stream: str, data: bytes) -> None:
        if not data or self.transport.is_closing():
            return
        self.transport.write(frame(stream, data) if self.multiplex else data)

    async def drain(self) -> None:
        await asyncio.sleep(0)

    async def read(self) -> bytes | None:
        data = await self.input.get()
        if data is None:
            self.eof_seen = True
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
