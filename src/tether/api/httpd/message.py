"""Requests and responses of :mod:`tether.api.httpd` (aiohttp's names and behaviour).

A response is framed when it is prepared: a :class:`Response` with its ``Content-Length``,
a :class:`StreamResponse` chunked (HTTP/1.1; close-delimited for HTTP/1.0), or, after
:meth:`StreamResponse.raw_stream` (the attach/exec hijack), not at all: the handler then
owns the connection's bytes both ways and the connection ends with it.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Iterable, Iterator, Mapping
from http import HTTPStatus
from typing import Any, overload
from urllib.parse import parse_qsl

from tether.api.httpd.base import HTTPBadRequest, HTTPRequestEntityTooLarge, MatchInfo


class Headers:
    """Case-insensitive headers that keep the spelling they were given."""

    def __init__(self, init: Mapping[str, str] | Iterable[tuple[str, str]] | None = None) -> None:
        self._d: dict[str, tuple[str, str]] = {}
        if init is not None:
            for k, v in init.items() if isinstance(init, Mapping) else init:
                self[k] = v

    def __setitem__(self, key: str, value: str) -> None:
        self._d[key.lower()] = (key, str(value))

    def __getitem__(self, key: str) -> str:
        return self._d[key.lower()][1]

    def __delitem__(self, key: str) -> None:
        del self._d[key.lower()]

    def __contains__(self, key: object) -> bool:
        return isinstance(key, str) and key.lower() in self._d

    def __iter__(self) -> Iterator[str]:
        return (k for k, _ in self._d.values())

    def __len__(self) -> int:
        return len(self._d)

    @overload
    def get(self, key: str) -> str | None: ...
    @overload
    def get(self, key: str, default: str) -> str: ...
    def get(self, key: str, default: str | None = None) -> str | None:
        item = self._d.get(key.lower())
        return default if item is None else item[1]

    def setdefault(self, key: str, value: str) -> str:
        if key not in self:
            self[key] = value
        return self[key]

    def pop(self, key: str, default: str | None = None) -> str | None:
        item = self._d.pop(key.lower(), None)
        return default if item is None else item[1]

    def add(self, key: str, value: str) -> None:
        """A repeated request header: the values joined with ``", "`` (RFC 9110 5.3)."""
        old = self.get(key)
        self[key] = value if old is None else f"{old}, {value}"

    def items(self) -> list[tuple[str, str]]:
        return list(self._d.values())


class Query:
    """The query string's parameters, in order; ``get`` gives the first of a name."""

    def __init__(self, raw: str) -> None:
        self.pairs = parse_qsl(raw, keep_blank_values=True)

    @overload
    def get(self, name: str) -> str | None: ...
    @overload
    def get(self, name: str, default: str) -> str: ...
    def get(self, name: str, default: str | None = None) -> str | None:
        for k, v in self.pairs:
            if k == name:
                return v
        return default

    def __getitem__(self, name: str) -> str:
        value = self.get(name)
        if value is None:
            raise KeyError(name)
        return value

    def getall(self, name: str, default: list[str] | None = None) -> list[str]:
        values = [v for k, v in self.pairs if k == name]
        if values:
            return values
        if default is None:
            raise KeyError(name)
        return default

    def __contains__(self, name: object) -> bool:
        return any(k == name for k, _ in self.pairs)

    def __iter__(self) -> Iterator[str]:
        return (k for k, _ in self.pairs)

    def keys(self) -> list[str]:
        return [k for k, _ in self.pairs]


class Body:
    """The request's body as it arrives (``request.content``): by ``Content-Length``, chunked,
    or empty. ``100-continue`` is answered at the first read."""

    def __init__(
        self,
        reader: asyncio.StreamReader,
        writer: asyncio.StreamWriter,
        length: int | None,
        chunked: bool,
        expect: bool,
    ) -> None:
        self._reader, self._writer = reader, writer
        self._left = 0 if length is None else length  # of the body, or of the current chunk
        self._chunked = chunked
        self._expect = expect
        self.at_eof = not chunked and self._left == 0
        self.received = 0
        self.failed = False  # a malformed chunked body: the connection cannot go on

    async def readany(self, n: int = 1 << 16) -> bytes:
        """Up to ``n`` bytes (at least one), b"" at the end of the body; a client that hangs up
        inside the body is :class:`ConnectionResetError`, a malformed one 400."""
        if self.failed:
            raise HTTPBadRequest(text="malformed chunked body")
        if self.at_eof:
            return b""
        try:
            return await self._read(n)
        except asyncio.IncompleteReadError:
            self.failed = True
            raise ConnectionResetError("the client hung up inside the request body") from None
        except asyncio.LimitOverrunError:
            self.failed = True
            raise HTTPBadRequest(text="chunk size line too long") from None

    async def _read(self, n: int) -> bytes:
        if self._expect:
            self._expect = False
            self._writer.write(b"HTTP/1.1 100 Continue\r\n\r\n")
        if self._chunked and self._left == 0 and not await self._next_chunk():
            return b""
        data = await self._reader.read(min(n, self._left))
        if not data:
            raise asyncio.IncompleteReadError(b"", self._left)
        self._left -= len(data)
        self.received += len(data)
        if self._left == 0 and not self._chunked:
            self.at_eof = True
        elif self._left == 0:
            await self._crlf()
        return data

    async def _next_chunk(self) -> bool:
        line = await self._reader.readuntil(b"\r\n")
        size = line[:-2].split(b";", 1)[0].strip()
        if not size or size.lstrip(b"0123456789abcdefABCDEF"):
            self.failed = True
            raise HTTPBadRequest(text="invalid chunk size")
        self._left = int(size, 16)
        if self._left == 0:  # the last chunk: trailers up to an empty line
            while await self._reader.readuntil(b"\r\n") != b"\r\n":
                pass
            self.at_eof = True
            return False
        return True

    async def _crlf(self) -> None:
        if await self._reader.readexactly(2) != b"\r\n":
            self.failed = True
            raise HTTPBadRequest(text="chunk not followed by CRLF")

    async def iter_chunked(self, n: int) -> AsyncIterator[bytes]:
        while data := await self.readany(n):
            yield data

    async def read(self, limit: int) -> bytes:
        """The whole body; :class:`HTTPRequestEntityTooLarge` past ``limit`` bytes."""
        parts = bytearray()
        while data := await self.readany(1 << 16):
            parts += data
            if len(parts) > limit:
                raise HTTPRequestEntityTooLarge()
        return bytes(parts)


class Request:
    def __init__(
        self,
        app: Any,  # the Application (tether.api.httpd.app imports this module)
        method: str,
        path: str,
        query_string: str,
        version: tuple[int, int],
        headers: Headers,
        body: Body,
        reader: asyncio.StreamReader,
        writer: asyncio.StreamWriter,
        match_info: MatchInfo,
    ) -> None:
        self.app, self.method, self.path = app, method, path
        self.query_string = query_string
        self.version = version
        self.headers = headers
        self.content = body
        self.reader, self.writer = reader, writer
        self.match_info = match_info
        self._query: Query | None = None
        self.keep_alive = _keep_alive(version, headers)

    @property
    def query(self) -> Query:
        if self._query is None:
            self._query = Query(self.query_string)
        return self._query

    @property
    def transport(self) -> asyncio.Transport | None:
        transport: Any = self.writer.transport
        return None if transport.is_closing() else transport

    async def read(self) -> bytes:
        return await self.content.read(self.app.client_max_size)


def _keep_alive(version: tuple[int, int], headers: Headers) -> bool:
    conn = headers.get("Connection", "").lower()
    if version >= (1, 1):
        return "close" not in conn
    return "keep-alive" in conn


_date: tuple[int, bytes] = (0, b"")


def http_date() -> bytes:
    global _date
    now = int(time.time())
    if _date[0] != now:
        _date = (now, time.strftime("%a, %d %b %Y %H:%M:%S GMT", time.gmtime(now)).encode())
    return _date[1]


class StreamResponse:
    def __init__(
        self,
        *,
        status: int = 200,
        reason: str | None = None,
        headers: Mapping[str, str] | None = None,
    ) -> None:
        self.status = status
        self.reason = reason
        self.headers = Headers(headers)
        self.prepared = False
        self._request: Request | None = None
        self._chunked = False
        self._raw = False
        self._close = False
        self._eof = False

    @property
    def content_type(self) -> str:
        return self.headers.get("Content-Type", "application/octet-stream")

    @content_type.setter
    def content_type(self, value: str) -> None:
        self.headers["Content-Type"] = value

    def force_close(self) -> None:
        self._close = True

    def raw_stream(self) -> None:
        """No framing: after the head the connection's bytes are the handler's (hijack)."""
        self._raw = True
        self._close = True

    @property
    def keep_alive(self) -> bool:
        return not self._close

    def _frame(self, request: Request) -> None:
        """Set the framing headers; a streamed body is chunked."""
        if self._raw or self.status in (101, 204, 304) or request.method == "HEAD":
            return
        if "Content-Length" not in self.headers:
            if request.version >= (1, 1):
                self._chunked = True
                self.headers["Transfer-Encoding"] = "chunked"
            else:
                self._close = True

    async def prepare(self, request: Request) -> None:
        if self.prepared:
            return
        self.prepared = True
        self._request = request
        if not request.keep_alive:
            self._close = True
        self._frame(request)
        for k, v in request.app.headers.items():
            self.headers.setdefault(k, v)
        self.headers.setdefault("Date", http_date().decode())
        if self._close and not self._raw:
            self.headers["Connection"] = "close"
        elif request.version < (1, 1) and not self._raw:
            self.headers["Connection"] = "keep-alive"
        reason = self.reason or _reason(self.status)
        head = [f"HTTP/1.1 {self.status} {reason}\r\n".encode()]
        head += [f"{k}: {v}\r\n".encode("latin-1") for k, v in self.headers.items()]
        head.append(b"\r\n")
        request.writer.write(b"".join(head))

    async def write(self, data: bytes) -> None:
        request = self._request
        if request is None:
            raise RuntimeError("write before prepare")
        if self._eof:
            raise RuntimeError("write after write_eof")
        if not data:
            return
        writer = request.writer
        if writer.transport.is_closing():
            raise ConnectionResetError("the client has gone")
        if self._chunked:
            writer.write(b"%x\r\n%b\r\n" % (len(data), data))
        else:
            writer.write(data)
        await writer.drain()

    async def write_eof(self, data: bytes = b"") -> None:
        if self._eof:
            return
        if data:
            await self.write(data)
        self._eof = True
        request = self._request
        if request is not None and self._chunked and not request.writer.transport.is_closing():
            request.writer.write(b"0\r\n\r\n")
            await request.writer.drain()


class Response(StreamResponse):
    def __init__(
        self,
        *,
        body: bytes | None = None,
        status: int = 200,
        reason: str | None = None,
        text: str | None = None,
        headers: Mapping[str, str] | None = None,
        content_type: str | None = None,
    ) -> None:
        super().__init__(status=status, reason=reason, headers=headers)
        if text is not None:
            body = text.encode()
            content_type = (content_type or "text/plain") + "; charset=utf-8"
        self.body = body or b""
        if content_type is not None:
            self.headers["Content-Type"] = content_type

    @property
    def text(self) -> str:
        return self.body.decode()

    def _frame(self, request: Request) -> None:
        if self.status in (101, 204, 304):
            return
        if request.method != "HEAD" or self.body:
            self.headers["Content-Length"] = str(len(self.body))

    async def write_eof(self, data: bytes = b"") -> None:
        if self._eof:
            return
        request = self._request
        if request is not None and self.body and request.method != "HEAD":
            request.writer.write(self.body)
        self._eof = True
        if request is not None:
            await request.writer.drain()


def _reason(status: int) -> str:
    try:
        return HTTPStatus(status).phrase
    except ValueError:
        return "Unknown"


_TYPES = {".html": "text/html; charset=utf-8", ".js": "application/javascript",
          ".css": "text/css", ".json": "application/json", ".svg": "image/svg+xml"}  # fmt: skip


class FileResponse(Response):
    """A small file, read whole (the ``--web-addr`` page and its vendored script)."""

    def __init__(self, path: Any, *, headers: Mapping[str, str] | None = None) -> None:
        with open(path, "rb") as f:
            body = f.read()
        suffix = str(path)[str(path).rfind(".") :]
        super().__init__(body=body, headers=headers,
                         content_type=_TYPES.get(suffix, "application/octet-stream"))  # fmt: skip
