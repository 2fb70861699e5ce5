"""The DNS server's UDP transport (``tether.engine.dns_udp``, issue 20): a burst larger than
one wakeup's batch is answered whole; close removes the reader, closes the socket and tells
the protocol."""

from __future__ import annotations

import asyncio
import socket

from tests.unit.test_container_controller import aio

from tether.engine import dns_udp


class Echo(asyncio.DatagramProtocol):
    def __init__(self) -> None:
        self.transport: asyncio.DatagramTransport | None = None
        self.lost = asyncio.get_running_loop().create_future()

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.DatagramTransport)
        self.transport = transport

    def datagram_received(self, data: bytes, addr: tuple[str, int]) -> None:
        assert self.transport is not None
        self.transport.sendto(b"re:" + data, addr)

    def connection_lost(self, exc: Exception | None) -> None:
        self.lost.set_result(exc)


@aio
async def test_a_burst_is_answered_whole_and_close_ends_it() -> None:
    loop = asyncio.get_running_loop()
    server = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    server.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 1 << 20)
    server.bind(("127.0.0.1", 0))
    proto = Echo()
    transport = dns_udp.UdpReader(loop, server, proto)
    client = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    client.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 1 << 20)
    client.setblocking(False)
    count = dns_udp.BATCH * 3 + 5
    for i in range(count):
        client.sendto(b"%d" % i, server.getsockname())
    got: set[bytes] = set()
    async with asyncio.timeout(5):
        while len(got) < count:
            got.add(await loop.sock_recv(client, 100))
    assert got == {b"re:%d" % i for i in range(count)}
    assert transport.get_extra_info("socket") is server
    transport.close()
    assert transport.is_closing()
    transport.sendto(b"late", ("127.0.0.1", 9))  # dropped, no error
    assert await asyncio.wait_for(proto.lost, 2) is None
    assert server.fileno() == -1
    client.close()
