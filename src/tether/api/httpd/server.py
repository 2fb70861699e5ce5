"""The HTTP/1.1 server of :mod:`tether.api.httpd`: one task per connection on asyncio streams.

Each connection reads a request head (at most ``HEAD_LIMIT`` bytes: 431 past it; a head that
is not HTTP/1.x: 400), runs the app's handler in the middlewares, frames its response, reads
what is left of the request body (at most ``DRAIN_LIMIT`` bytes, else the connection is
closed) and waits for the next request (keep-alive). :meth:`Server.close` stops listening,
closes idle connections, gives requests in flight ``grace`` seconds and then cancels them.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import re
from typing import Any
from urllib.parse import unquote

from tether.api.httpd.app import Application
from tether.api.httpd.base import HTTPException
from tether.api.httpd.message import Body, Headers, Request, Response, StreamResponse

log = logging.getLogger("tether.api.httpd")

HEAD_LIMIT = 1 << 16
MAX_HEADERS = 200
DRAIN_LIMIT = 1 << 20
_REQUEST_LINE = re.compile(r"([!#$%&'*+.^_`|~0-9A-Za-z-]+) (\S+) HTTP/(\d)\.(\d)")
_TOKEN = re.compile(r"[!#$%&'*+.^_`|~0-9A-Za-z-]+")


_REASONS = {400: "Bad Request", 431: "Request Header Fields Too Large",
            501: "Not Implemented", 505: "HTTP Version Not Supported"}  # fmt: skip


class BadHead(Exception):
    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.message = message


Head = tuple[str, str, str, tuple[int, int], Headers]


def parse_head(raw: bytes) -> Head:
    """``(method, path, query, version, headers)`` of a request head (CRLF CRLF included)."""
    try:
        text = raw.decode("latin-1")
    except UnicodeDecodeError:  # pragma: no cover (latin-1 decodes every byte)
        raise BadHead(400, "undecodable request head") from None
    lines = text[:-4].split("\r\n")
    m = _REQUEST_LINE.fullmatch(lines[0])
    if m is None:
        raise BadHead(400, f"bad request line {lines[0][:80]!r}")
    method, target = m.group(1), m.group(2)
    version = (int(m.group(3)), int(m.group(4)))
    if version[0] != 1:
        raise BadHead(505, "HTTP version not supported")
    if not target.startswith("/"):
        raise BadHead(400, f"bad request target {target[:80]!r}")
    if len(lines) - 1 > MAX_HEADERS:
        raise BadHead(431, "too many header fields")
    headers = Headers()
    for line in lines[1:]:
        name, sep, value = line.partition(":")
        if not sep or not _TOKEN.fullmatch(name):
            raise BadHead(400, f"bad header line {line[:80]!r}")
        headers.add(name, value.strip(" \t"))
    path, _, query = target.partition("?")
    return method, unquote(path), query, version, headers


def body_framing(headers: Headers) -> tuple[int | None, bool]:
    """``(Content-Length, chunked)`` of a request; :class:`BadHead` for what RFC 9112 refuses."""
    te = headers.get("Transfer-Encoding")
    cl = headers.get("Content-Length")
    if te is not None:
        if cl is not None:
            raise BadHead(400, "both Transfer-Encoding and Content-Length")
        if te.strip().lower() != "chunked":
            raise BadHead(501, f"transfer encoding {te!r} is not supported")
        return None, True
    if cl is None:
        return None, False
    if not cl.isdigit():
        raise BadHead(400, f"bad Content-Length {cl[:40]!r}")
    return int(cl), False


class Server:
    def __init__(self, app: Application) -> None:
        self.app = app
        self._server: asyncio.Server | None = None
        self._busy: set[asyncio.Task[Any]] = set()  # connections inside a request
        self._idle: dict[asyncio.Task[Any], asyncio.StreamWriter] = {}
        self._closing = False

    async def start_unix(self, path: str, backlog: int = 4096) -> None:
        self._server = await asyncio.start_unix_server(
            self._connection, path, backlog=backlog, limit=HEAD_LIMIT
        )

    async def start_tcp(self, host: str, port: int) -> None:
        self._server = await asyncio.start_server(self._connection, host, port, limit=HEAD_LIMIT)

    @property
    def sockets(self) -> list[Any]:
        return list(self._server.sockets) if self._server is not None else []

    async def close(self, grace: float = 1.5) -> None:
        """Stop listening; idle connections close now, requests in flight get ``grace``."""
        self._closing = True
        if self._server is not None:
            self._server.close()
        for writer in list(self._idle.values()):
            writer.close()
        busy = set(self._busy) | set(self._idle)
        if busy:
            _, late = await asyncio.wait(busy, timeout=grace)
            for task in late:
                task.cancel()
            if late:
                await asyncio.wait(late, timeout=grace)

    async def _connection(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        assert task is not None
        try:
            while not self._closing:
                self._idle[task] = writer
                try:
                    raw = await reader.readuntil(b"\r\n\r\n")
                except asyncio.LimitOverrunError:
                    await _refuse(writer, 431, "request head too large")
                    return
                except (asyncio.IncompleteReadError, ConnectionError):
                    return
                finally:
                    self._idle.pop(task, None)
                self._busy.add(task)
                try:
                    if not await self._request(raw, reader, writer):
                        return
                finally:
                    self._busy.discard(task)
        except (ConnectionError, asyncio.IncompleteReadError):
            pass
        finally:
            writer.close()

    async def _request(
        self, raw: bytes, reader: asyncio.StreamReader, writer: asyncio.StreamWriter
    ) -> bool:
        """Serve one request; False when the connection must end."""
        try:
            method, path, query, version, headers = parse_head(raw)
            length, chunked = body_framing(headers)
        except BadHead as exc:
            await _refuse(writer, exc.status, exc.message)
            return False
        expect = headers.get("Expect", "").lower() == "100-continue"
        body = Body(reader, writer, length, chunked, expect)
        handler, info = self.app.router.resolve(method, path)
        request = Request(
            self.app, method, path, query, version, headers, body, reader, writer, info
        )
        resp = await self._respond(request, handler)
        if resp is None or not resp.keep_alive or self._closing:
            return False
        return await _drain(body)

    async def _respond(self, request: Request, handler: Any) -> StreamResponse | None:
        try:
            resp: StreamResponse = await self.app.chain(handler)(request)
        except HTTPException as exc:
            resp = Response(status=exc.status, text=exc.text)
        except (ConnectionError, asyncio.IncompleteReadError):
            return None
        except Exception:
            log.exception("%s %s failed", request.method, request.path)
            resp = Response(status=500, text="500 Internal Server Error")
            resp.force_close()
        if self._closing or request.content.failed:
            resp.force_close()
        try:
            await resp.prepare(request)
            await resp.write_eof()
        except ConnectionError:
            return None
        if resp._raw:
            return None
        return resp


async def _drain(body: Body) -> bool:
    """Read the rest of a request body the handler left; False if it is too long."""
    while not body.at_eof:
        if body.received > DRAIN_LIMIT:
            return False
        try:
            if not await body.readany(1 << 16):
                break
        except (HTTPException, ConnectionError, asyncio.IncompleteReadError):
            return False
    return True


async def _refuse(writer: asyncio.StreamWriter, status: int, message: str) -> None:
    text = f"{status} {message}\n".encode()
    reason = _REASONS.get(status, "Error")
    writer.write(
        f"HTTP/1.1 {status} {reason}\r\nContent-Type: text/plain; charset=utf-8\r\n"
        f"Content-Length: {len(text)}\r\nConnection: close\r\n\r\n".encode()
        + text
    )
    with contextlib.suppress(ConnectionError):
        await writer.drain()


def unlink_socket(path: str) -> None:
    if os.path.exists(path):
        os.unlink(path)
