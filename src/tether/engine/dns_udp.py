"""The embedded DNS server's UDP transport: every datagram that is ready, per wakeup.

asyncio's own datagram transport reads one datagram per call of the loop's callback and
sends through a buffered path; on the plain asyncio loop that cost ~24 µs of CPU per cached
query against uvloop's ~7 (``bench/dns_bench.py``). This transport registers the socket
with ``loop.add_reader`` and, at each wakeup, reads up to ``BATCH`` datagrams in one Python
loop and answers each with a direct ``sendto``; an answer the socket cannot take at once
(full send buffer) is dropped, as a router would: the client asks again. It has the
interface of an :class:`asyncio.DatagramTransport` that :class:`DnsServer` uses
(``sendto``, ``close``, ``is_closing``) and calls the protocol's ``connection_made``,
``datagram_received``, ``error_received`` and ``connection_lost``.
"""

from __future__ import annotations

import asyncio
import socket
from typing import Any

BATCH = 64
MAX_DATAGRAM = 65535


class UdpReader(asyncio.DatagramTransport):
    def __init__(
        self,
        loop: asyncio.AbstractEventLoop,
        sock: socket.socket,
        protocol: asyncio.DatagramProtocol,
    ) -> None:
        super().__init__()
        self._loop = loop
        self._sock = sock
        self._fd = sock.fileno()
        self._protocol = protocol
        self._closing = False
        sock.setblocking(False)
        protocol.connection_made(self)
        loop.add_reader(self._fd, self._readable)

    def _readable(self) -> None:
        recv = self._sock.recvfrom
        received = self._protocol.datagram_received
        for _ in range(BATCH):
            try:
                data, addr = recv(MAX_DATAGRAM)
            except (BlockingIOError, InterruptedError):
                return
            except OSError as exc:
                self._protocol.error_received(exc)
                return
            received(data, addr)
            if self._closing:
                return

    def sendto(self, data: Any, addr: Any = None) -> None:
        if self._closing:
            return
        try:
            self._sock.sendto(data, addr)
        except (BlockingIOError, InterruptedError):
            pass  # the send buffer is full: dropped (UDP; the client retries)
        except OSError as exc:
            self._protocol.error_received(exc)

    def is_closing(self) -> bool:
        return self._closing

    def close(self) -> None:
        if self._closing:
            return
        self._closing = True
        self._loop.remove_reader(self._fd)
        self._loop.call_soon(self._finish)

    def abort(self) -> None:
        self.close()

    def _finish(self) -> None:
        self._sock.close()
        self._protocol.connection_lost(None)

    def get_extra_info(self, name: str, default: Any = None) -> Any:
        if name == "socket":
            return self._sock
        if name == "sockname":
            return self._sock.getsockname()
        return default
