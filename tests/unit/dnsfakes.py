"""The embedded DNS server's test doubles and harness (tests of tether.engine.dns,
dns_cache, the IPv6 answers and the metrics): a fake resolver, fake upstream DNS servers on
127.0.0.1 (``upstream(env, handler)``: one as the sandbox's only server for a block), a
server on 127.0.0.1 high ports (``scenario``), UDP/TCP clients, and the ``run`` fixture (every
test on plain asyncio and on uvloop, the daemon's loop; import it with ``__all__ = ["run"]``).
"""

from __future__ import annotations

import asyncio
import contextlib
import socket
import struct
from collections.abc import AsyncIterator, Awaitable, Callable, Coroutine, Iterator
from dataclasses import dataclass, field
from typing import Any

import pytest
import uvloop
from dnslib import QTYPE, RR, A, DNSRecord

from tether.engine.dns import DnsServer

Addr = tuple[str, int]


# -- fakes ----------------------------------------------------------------------------------


@dataclass
class FakeResolver:
    names: dict[str, list[str]] = field(default_factory=dict)
    ptrs: dict[str, str] = field(default_factory=dict)
    servers: list[str] = field(default_factory=list)
    lookups: list[tuple[str, str]] = field(default_factory=list)
    fail: bool = False

    def lookup(self, sandbox: str, name: str) -> list[str] | None:
        self.lookups.append((sandbox, name))
        if self.fail:
            raise RuntimeError("resolver broke")
        found = self.names.get(name)
        return None if found is None else list(found)

    def reverse(self, sandbox: str, ip: str) -> str | None:
        return self.ptrs.get(ip)

    def upstreams(self, sandbox: str) -> list[str]:
        return list(self.servers)


Handler = Callable[[DNSRecord, bool], bytes | None]
Runner = Callable[[Coroutine[Any, Any, None]], None]


class FakeUpstream:
    """A DNS server on 127.0.0.1 (UDP and TCP on the same port) answering with ``handler``."""

    def __init__(self, handler: Handler) -> None:
        self.handler = handler
        self.seen: list[tuple[str, DNSRecord]] = []
        self.port = 0
        self._udp: asyncio.DatagramTransport | None = None
        self._tcp: asyncio.Server | None = None

    async def start(self) -> FakeUpstream:
        loop = asyncio.get_running_loop()
        upstream = self

        class Udp(asyncio.DatagramProtocol):
            def connection_made(self, transport: asyncio.BaseTransport) -> None:
                self.transport = transport

            def datagram_received(self, data: bytes, addr: Addr) -> None:
                rec = DNSRecord.parse(data)
                upstream.seen.append(("udp", rec))
                out = upstream.handler(rec, False)
                if out is not None:
                    self.transport.sendto(out, addr)  # type: ignore[attr-defined]

        # a free UDP port whose TCP twin is free too (another test's TCP socket may hold it)
        for _attempt in range(20):
            transport, _ = await loop.create_datagram_endpoint(Udp, local_addr=("127.0.0.1", 0))
            port = transport.get_extra_info("sockname")[1]
            probe = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            try:
                probe.bind(("127.0.0.1", port))
                break
            except OSError:
                transport.close()
            finally:
                probe.close()
        self._udp = transport
        self.port = port

        async def serve(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
            try:
                while True:
                    (n,) = struct.unpack("!H", await reader.readexactly(2))
                    rec = DNSRecord.parse(await reader.readexactly(n))
                    upstream.seen.append(("tcp", rec))
                    out = upstream.handler(rec, True)
                    if out is not None:
                        writer.write(struct.pack("!H", len(out)) + out)
            except (asyncio.IncompleteReadError, ConnectionError):
                pass
            finally:
                writer.close()

        self._tcp = await asyncio.start_server(serve, "127.0.0.1", self.port)
        return self

    @property
    def address(self) -> str:
        return f"127.0.0.1:{self.port}"

    def close(self) -> None:
        if self._udp is not None:
            self._udp.close()
        if self._tcp is not None:
            self._tcp.close()


def answer_a(
    ip: str, *, truncate_udp: bool = False, rcode: int = 0, authoritative: bool = False
) -> Handler:
    def handler(rec: DNSRecord, tcp: bool) -> bytes:
        reply = rec.reply()
        reply.header.aa = int(authoritative)  # dnslib sets AA by default; recursors do not
        reply.header.rcode = rcode
        if truncate_udp and not tcp:
            reply.header.tc = 1
        elif rcode == 0:
            reply.add_answer(RR(rec.q.qname, QTYPE.A, rdata=A(ip), ttl=30))
        return bytes(reply.pack())

    return handler


def never_answer(rec: DNSRecord, tcp: bool) -> None:
    return None


# -- harness --------------------------------------------------------------------------------


@pytest.fixture(params=["asyncio", "uvloop"])
def run(request: pytest.FixtureRequest) -> Iterator[Runner]:
    factory = uvloop.new_event_loop if request.param == "uvloop" else asyncio.new_event_loop

    def runner(coro: Coroutine[Any, Any, None]) -> None:
        with asyncio.Runner(loop_factory=factory) as r:
            r.run(asyncio.wait_for(coro, 20))

    yield runner


def bound_pair() -> tuple[socket.socket, socket.socket, Addr, Addr]:
    udp = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    udp.bind(("127.0.0.1", 0))
    tcp = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    tcp.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    tcp.bind(("127.0.0.1", 0))
    return udp, tcp, udp.getsockname(), tcp.getsockname()


@dataclass
class Env:
    server: DnsServer
    resolver: FakeResolver
    udp: Addr
    tcp: Addr


async def start(resolver: FakeResolver, **kw: Any) -> Env:
    search = kw.pop("search", ())
    server = DnsServer(resolver, upstream_timeout=kw.pop("upstream_timeout", 0.5), **kw)
    udp, tcp, uaddr, taddr = bound_pair()
    await server.serve_sockets("sb1", udp, tcp, search_domains=search)
    return Env(server, resolver, uaddr, taddr)


async def udp_raw(addr: Addr, packet: bytes, timeout: float = 3.0) -> bytes:
    loop = asyncio.get_running_loop()
    fut: asyncio.Future[bytes] = loop.create_future()

    class P(asyncio.DatagramProtocol):
        def datagram_received(self, data: bytes, a: Addr) -> None:
            if not fut.done():
                fut.set_result(data)

    transport, _ = await loop.create_datagram_endpoint(P, remote_addr=addr)
    try:
        transport.sendto(packet)
        return await asyncio.wait_for(fut, timeout)
    finally:
        transport.close()


async def udp_ask(addr: Addr, rec: DNSRecord) -> DNSRecord:
    return DNSRecord.parse(await udp_raw(addr, bytes(rec.pack())))


async def tcp_ask_many(addr: Addr, recs: list[DNSRecord]) -> list[DNSRecord]:
    reader, writer = await asyncio.open_connection(*addr)
    try:
        for rec in recs:
            data = bytes(rec.pack())
            writer.write(struct.pack("!H", len(data)) + data)
        out = []
        for _ in recs:
            (n,) = struct.unpack("!H", await asyncio.wait_for(reader.readexactly(2), 3))
            out.append(DNSRecord.parse(await reader.readexactly(n)))
        return out
    finally:
        writer.close()


async def tcp_ask(addr: Addr, rec: DNSRecord) -> DNSRecord:
    return (await tcp_ask_many(addr, [rec]))[0]


def ips(rec: DNSRecord) -> list[str]:
    return [str(rr.rdata) for rr in rec.rr if rr.rtype == QTYPE.A]


def scenario(
    fn: Callable[[Env], Awaitable[None]], resolver: FakeResolver | None = None, **kw: Any
) -> Coroutine[Any, Any, None]:
    async def main() -> None:
        env = await start(resolver or FakeResolver({"web": ["172.28.0.1"]}), **kw)
        try:
            await fn(env)
        finally:
            await env.server.close()

    return main()


@contextlib.asynccontextmanager
async def upstream(env: Env, handler: Handler) -> AsyncIterator[FakeUpstream]:
    """A ``FakeUpstream`` answering with ``handler``, the only server of ``env``'s resolver
    for the block, closed after it."""
    up = await FakeUpstream(handler).start()
    try:
        env.resolver.servers = [up.address]
        yield up
    finally:
        up.close()
