"""The daemon's HTTP/1.1 server (``tether.api.httpd``, issue 20) over a real unix socket:
request heads and bodies (Content-Length, chunked), keep-alive, chunked responses, HEAD,
the attach/exec hijack, limits, bad requests and the graceful close."""

from __future__ import annotations

import asyncio
import contextlib
import tempfile
from collections.abc import AsyncIterator

from tests.unit.test_container_controller import aio

from tether.api import httpd as web
from tether.api.httpd import server as srv

KEY: web.AppKey[list[str]] = web.AppKey("seen", list)


async def echo(request: web.Request) -> web.Response:
    body = await request.read()
    return web.Response(body=body, content_type="application/octet-stream",
                        headers={"X-Method": request.method})  # fmt: skip


async def streamed(request: web.Request) -> web.StreamResponse:
    resp = web.StreamResponse(headers={"Content-Type": "application/json"})
    await resp.prepare(request)
    for part in (b"one\n", b"two\n", b"three\n"):
        await resp.write(part)
    await resp.write_eof()
    return resp


async def pieces(request: web.Request) -> web.Response:
    sizes = [len(chunk) async for chunk in request.content.iter_chunked(4)]
    return web.Response(text=f"{sum(sizes)} {max(sizes, default=0)}")


async def params(request: web.Request) -> web.Response:
    q = request.query
    text = f"{request.match_info['name']}|{q.get('a')}|{','.join(q.getall('b', []))}"
    return web.Response(text=text)


async def hijack(request: web.Request) -> web.StreamResponse:
    resp = web.StreamResponse(status=101, reason="UPGRADED")
    resp.headers["Upgrade"] = "tcp"
    resp.headers["Connection"] = "Upgrade"
    resp.raw_stream()
    await resp.prepare(request)
    got = b""
    while data := await request.reader.read(100):
        got += data
    request.writer.write(b"got " + got)  # after the client's half-close: still delivered
    await request.writer.drain()
    request.writer.close()
    return resp


async def slow(request: web.Request) -> web.Response:
    await asyncio.sleep(float(request.query.get("s", "0")))
    return web.Response(text="done")


@web.middleware
async def wording(request: web.Request, handler: web.Handler) -> web.StreamResponse:
    request.app[KEY].append(request.path)
    try:
        return await handler(request)
    except web.HTTPNotFound:
        return web.Response(status=404, text="no such page")


def make_app() -> web.Application:
    app = web.Application(middlewares=[wording], client_max_size=64,
                          headers={"Server": "Test/1"})  # fmt: skip
    app[KEY] = []
    app.router.add_route("POST", "/echo", echo)
    app.router.add_route("HEAD", "/echo", echo)
    app.router.add_route("GET", "/stream", streamed)
    app.router.add_route("POST", "/pieces", pieces)
    app.router.add_route("GET", "/p/{name:.+}/x", params)
    app.router.add_route("POST", "/hijack", hijack)
    app.router.add_route("GET", "/slow", slow)
    return app


@contextlib.asynccontextmanager
async def serving(app: web.Application | None = None) -> AsyncIterator[tuple[web.Server, str]]:
    with tempfile.TemporaryDirectory(prefix="tether-httpd-") as folder:
        server = web.Server(app or make_app())
        path = f"{folder}/s.sock"
        await server.start_unix(path)
        try:
            yield server, path
        finally:
            await server.close(0.5)


class Conn:
    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.reader, self.writer = reader, writer

    @classmethod
    async def open(cls, path: str) -> Conn:
        return cls(*await asyncio.open_unix_connection(path))

    async def send(self, raw: bytes) -> None:
        self.writer.write(raw)
        await self.writer.drain()

    async def response(self) -> tuple[int, dict[str, str], bytes]:
        head = await asyncio.wait_for(self.reader.readuntil(b"\r\n\r\n"), 5)
        lines = head.decode("latin-1").split("\r\n")
        status = int(lines[0].split()[1])
        headers = {k.lower(): v.strip() for k, _, v in (ln.partition(":") for ln in lines[1:-2])}
        if "content-length" in headers:
            body = await self.reader.readexactly(int(headers["content-length"]))
        elif headers.get("transfer-encoding") == "chunked":
            body = b""
            while size := int((await self.reader.readuntil(b"\r\n"))[:-2], 16):
                body += await self.reader.readexactly(size)
                assert await self.reader.readexactly(2) == b"\r\n"
            assert await self.reader.readexactly(2) == b"\r\n"
        else:
            body = b""
        return status, headers, body

    async def closed(self) -> bool:
        return await asyncio.wait_for(self.reader.read(), 2) == b""

    def close(self) -> None:
        self.writer.close()


@aio
async def test_keep_alive_content_length_and_chunked_bodies() -> None:
    async with serving() as (_, path):
        c = await Conn.open(path)
        await c.send(b"POST /echo HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\n\r\nhello")
        status, headers, body = await c.response()
        assert (status, body, headers["x-method"], headers["server"]) == (
            200,
            b"hello",
            "POST",
            "Test/1",
        )
        assert headers["content-type"] == "application/octet-stream" and "date" in headers
        chunked = b"3;ext=1\r\nabc\r\n0a\r\n0123456789\r\n0\r\nTrailer: t\r\n\r\n"
        await c.send(b"POST /echo HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n" + chunked)
        assert (await c.response())[2] == b"abc0123456789"  # same connection
        await c.send(b"POST /pieces HTTP/1.1\r\nContent-Length: 10\r\n\r\n0123456789")
        assert (await c.response())[2] == b"10 4"  # streamed in reads of at most 4
        await c.send(b"HEAD /echo HTTP/1.1\r\nContent-Length: 2\r\n\r\nhi")
        head = await c.reader.readuntil(b"\r\n\r\n")  # and no body follows
        assert head.startswith(b"HTTP/1.1 200 OK\r\n") and b"Content-Length: 2\r\n" in head
        await c.send(b"GET /p/a%2Fb%20c/x?a=1&b=2&b=3&a=4 HTTP/1.1\r\n\r\n")
        assert (await c.response())[2] == b"a/b c|1|2,3"
        c.close()


@aio
async def test_streamed_response_is_chunked_and_http10_is_closed_after() -> None:
    async with serving() as (_, path):
        c = await Conn.open(path)
        await c.send(b"GET /stream HTTP/1.1\r\n\r\n")
        _, headers, body = await c.response()
        assert headers["transfer-encoding"] == "chunked" and body == b"one\ntwo\nthree\n"
        await c.send(b"GET /stream HTTP/1.0\r\n\r\n")
        head = await c.reader.readuntil(b"\r\n\r\n")
        assert b"Connection: close" in head and b"Transfer-Encoding" not in head
        assert await c.reader.read() == b"one\ntwo\nthree\n"  # ended by the close
        c = await Conn.open(path)
        await c.send(b"POST /echo HTTP/1.1\r\nConnection: close\r\nContent-Length: 1\r\n\r\nx")
        assert (await c.response())[1]["connection"] == "close"
        assert await c.closed()


@aio
async def test_unread_body_is_drained_and_the_connection_kept() -> None:
    async with serving() as (_, path):
        c = await Conn.open(path)
        await c.send(b"GET /stream HTTP/1.1\r\nContent-Length: 3\r\n\r\nabc")
        assert (await c.response())[0] == 200
        await c.send(b"GET /stream HTTP/1.1\r\n\r\n")
        assert (await c.response())[0] == 200


@aio
async def test_not_found_and_method_not_allowed_pass_the_middlewares() -> None:
    app = make_app()
    async with serving(app) as (_, path):
        c = await Conn.open(path)
        await c.send(b"GET /nope HTTP/1.1\r\n\r\n")
        assert (await c.response())[::2] == (404, b"no such page")
        await c.send(b"GET /echo HTTP/1.1\r\n\r\n")
        status, headers, _ = await c.response()
        assert status == 405 and headers["content-type"] == "text/plain; charset=utf-8"
        assert app[KEY] == ["/nope", "/echo"]


@aio
async def test_a_body_past_client_max_size_is_413() -> None:
    async with serving() as (_, path):
        c = await Conn.open(path)
        await c.send(b"POST /echo HTTP/1.1\r\nContent-Length: 100\r\n\r\n" + b"x" * 100)
        assert (await c.response())[0] == 413


@aio
async def test_bad_requests_get_400_and_the_connection_ends() -> None:
    bad = [
        b"NOT HTTP\r\n\r\n",
        b"GET /x HTTP/1.1\r\nno colon here\r\n\r\n",
        b"GET /x HTTP/1.1\r\nBad Name: v\r\n\r\n",
        b"GET x HTTP/1.1\r\n\r\n",
        b"POST /echo HTTP/1.1\r\nContent-Length: 3\r\nTransfer-Encoding: chunked\r\n\r\n",
        b"POST /echo HTTP/1.1\r\nContent-Length: -3\r\n\r\n",
        b"POST /echo HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\nab\r\n0\r\n\r\n",
    ]
    async with serving() as (_, path):
        for raw in bad:
            c = await Conn.open(path)
            await c.send(raw)
            status, _, body = await c.response()
            assert status == 400, (raw, status, body)
            assert await c.closed()
        c = await Conn.open(path)
        await c.send(b"GET /x HTTP/1.1\r\nX: " + b"y" * srv.HEAD_LIMIT + b"\r\n\r\n")
        assert (await c.response())[0] == 431
        c = await Conn.open(path)
        await c.send(b"POST /echo HTTP/1.1\r\nTransfer-Encoding: gzip\r\n\r\n")
        assert (await c.response())[0] == 501


@aio
async def test_a_client_gone_inside_the_body_is_a_connection_error() -> None:
    seen: list[BaseException] = []

    async def reader(request: web.Request) -> web.Response:
        try:
            await request.read()
        except BaseException as exc:
            seen.append(exc)
            raise
        return web.Response(text="whole")

    app = make_app()
    app.router.add_route("POST", "/read", reader)
    async with serving(app) as (_, path):
        for raw in (b"Content-Length: 10\r\n\r\nabc", b"Transfer-Encoding: chunked\r\n\r\n5\r\nab"):
            c = await Conn.open(path)
            await c.send(b"POST /read HTTP/1.1\r\n" + raw)
            c.writer.write_eof()
            assert await c.closed()  # no answer
        assert [type(e) for e in seen] == [ConnectionResetError, ConnectionResetError]


@aio
async def test_expect_100_continue() -> None:
    async with serving() as (_, path):
        c = await Conn.open(path)
        await c.send(b"POST /echo HTTP/1.1\r\nExpect: 100-continue\r\nContent-Length: 2\r\n\r\n")
        assert await c.reader.readuntil(b"\r\n\r\n") == b"HTTP/1.1 100 Continue\r\n\r\n"
        await c.send(b"ok")
        assert (await c.response())[2] == b"ok"


@aio
async def test_hijack_gives_the_handler_the_raw_connection() -> None:
    async with serving() as (_, path):
        c = await Conn.open(path)
        await c.send(b"POST /hijack HTTP/1.1\r\nConnection: Upgrade\r\nUpgrade: tcp\r\n\r\nearly ")
        head = await c.reader.readuntil(b"\r\n\r\n")
        assert head.startswith(b"HTTP/1.1 101 UPGRADED\r\n") and b"Transfer-Encoding" not in head
        await c.send(b"late")
        c.writer.write_eof()  # half-close: the handler sees EOF and still answers
        assert await c.reader.read() == b"got early late"


@aio
async def test_close_waits_for_requests_in_flight_then_cancels_them() -> None:
    async with serving() as (server, path):
        idle, quick, stuck = [await Conn.open(path) for _ in range(3)]
        await idle.send(b"GET /stream HTTP/1.1\r\n\r\n")
        await idle.response()  # now idle in keep-alive
        await quick.send(b"GET /slow?s=0.2 HTTP/1.1\r\n\r\n")
        await stuck.send(b"GET /slow?s=60 HTTP/1.1\r\n\r\n")
        await asyncio.sleep(0.05)
        loop = asyncio.get_running_loop()
        started = loop.time()
        await server.close(0.5)
        assert loop.time() - started < 5
        assert await idle.closed()
        status, headers, body = await quick.response()
        assert (status, body, headers["connection"]) == (200, b"done", "close")
        assert await stuck.closed()  # cancelled after the grace: no answer
