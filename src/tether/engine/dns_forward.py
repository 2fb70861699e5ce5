"""Forwarding queries the embedded DNS cannot answer to upstream servers.

The forwarding sockets are the daemon's own, in the *host* network namespace (only the
listeners live in the container's namespace). So an upstream on the host's loopback, such as
systemd-resolved's 127.0.0.53 taken from the host's resolv.conf, is reachable, exactly as with
Docker's embedded DNS, although the container itself could never reach it.

Policy (Docker's, from libnetwork's resolver): up to three upstreams are tried in order, each
with its own timeout (2 s). SERVFAIL, REFUSED, other errors and a non-authoritative NXDOMAIN
move on to the next upstream; NOERROR (and an authoritative NXDOMAIN) is final. When every
upstream failed, the best answer seen is returned (an NXDOMAIN first, else the last error);
when none answered at all, or there are no upstreams, the client gets SERVFAIL at once.
Docker 20.10 sends nothing in that case, leaving the client to time out (5 s per try);
SERVFAIL tells it straight away, which is what later moby releases do as well.

Sockets: one long-lived connected UDP socket per upstream (:class:`_UdpChannel`), shared by
every query to that upstream and multiplexed by query id: each exchange takes a random id
(``os.urandom``) not in flight on that socket, and a reply is accepted only from the connected
address (the kernel filters), with an id in flight, QR set and the exchange's own question
(name case-insensitively, type and class). Anything else is dropped and the wait goes on. A
channel is replaced by a fresh socket (a new random source port) after ``CHANNEL_USES``
exchanges; the old one closes when its last exchange ends. An ICMP error on a channel fails
every exchange in flight on it (they move on to the next upstream). A truncated UDP answer is
retried over TCP with the same upstream (a connection per exchange: rare); when that fails the
truncated answer is returned. Queries that reached us over TCP are forwarded over TCP.

The answer cache and the coalescing of identical queries are :mod:`tether.engine.dns_cache`'s;
this module only exchanges one prepared query with the upstreams.
"""

from __future__ import annotations

import asyncio
import ipaddress
import logging
import os
import socket
import struct
from collections.abc import Sequence
from dataclasses import dataclass
from functools import lru_cache

from tether.engine import dns_wire as wire

log = logging.getLogger("tether.dns")

MAX_UPSTREAMS = 3
DEFAULT_TIMEOUT = 2.0
CHANNEL_USES = 4096  # exchanges on one UDP socket before a fresh one (new source port)
_U16 = struct.Struct("!H")


@dataclass(frozen=True, slots=True)
class Upstream:
    host: str
    port: int


@lru_cache(maxsize=256)
def parse_upstream(text: str) -> Upstream:
    """``"1.2.3.4"``, ``"1.2.3.4:5353"``, ``"::1"`` or ``"[::1]:5353"`` → :class:`Upstream`."""
    text = text.strip()
    port = 53
    if text.startswith("["):
        host, sep, rest = text[1:].partition("]")
        if not sep:
            raise ValueError(f"bad upstream DNS server {text!r}")
        if rest:
            if not rest.startswith(":"):
                raise ValueError(f"bad upstream DNS server {text!r}")
            port = int(rest[1:])
    elif text.count(":") == 1:
        host, _, port_text = text.partition(":")
        port = int(port_text)
    else:
        host = text
    ipaddress.ip_address(host)  # raises ValueError for a non-address
    if not 0 < port < 65536:
        raise ValueError(f"bad upstream DNS port in {text!r}")
    return Upstream(host, port)


def parse_upstreams(upstreams: Sequence[str]) -> tuple[Upstream, ...]:
    """The first three valid upstreams of ``upstreams`` (invalid ones logged and skipped)."""
    targets: list[Upstream] = []
    for text in upstreams:
        try:
            targets.append(parse_upstream(text))
        except ValueError:
            log.warning("ignoring invalid upstream DNS server %r", text)
        if len(targets) == MAX_UPSTREAMS:
            break
    return tuple(targets)


class _BadReply(Exception):
    """The upstream answered something that is not a reply to our query."""


class _UdpChannel:
    """One connected UDP socket to one upstream, shared by every exchange (id-multiplexed)."""

    def __init__(self, loop: asyncio.AbstractEventLoop, target: Upstream) -> None:
        family = socket.AF_INET6 if ":" in target.host else socket.AF_INET
        self._loop = loop
        self._sock = socket.socket(family, socket.SOCK_DGRAM)
        try:
            self._sock.setblocking(False)
            self._sock.connect((target.host, target.port))
            loop.add_reader(self._sock.fileno(), self._readable)
        except BaseException:
            self._sock.close()
            raise
        # id -> (the query as sent, its question end, the waiter)
        self._pending: dict[int, tuple[bytes, int, asyncio.Future[bytes]]] = {}
        self.uses = 0
        self.retired = False
        self.closed = False

    def _readable(self) -> None:
        while True:
            try:
                data = self._sock.recv(65535)
            except (BlockingIOError, InterruptedError):
                return
            except OSError as exc:  # ICMP port unreachable and the like: next upstream, now
                for _, _, fut in self._pending.values():
                    if not fut.done():
                        fut.set_exception(OSError(exc.errno, exc.strerror))
                return
            if len(data) < wire.HEADER.size or not data[2] & 0x80:
                continue
            entry = self._pending.get(_U16.unpack_from(data)[0])
            if entry is None:
                continue
            sent, question_end, fut = entry
            if not fut.done() and wire.question_matches(sent, question_end, data):
                fut.set_result(data)

    def _new_id(self) -> int:
        while True:
            qid = int.from_bytes(os.urandom(2), "big")
            if qid not in self._pending:
                return qid

    async def exchange(self, query: bytes, question_end: int, timeout: float) -> bytes:
        """Send ``query`` (its id replaced by a fresh random one); the matching reply."""
        qid = self._new_id()
        out = _U16.pack(qid) + query[2:]
        fut: asyncio.Future[bytes] = self._loop.create_future()
        self._pending[qid] = (out, question_end, fut)
        self.uses += 1
        try:
            self._sock.send(out)
            async with asyncio.timeout(timeout):
                return await fut
        finally:
            del self._pending[qid]
            if self.retired and not self._pending:
                self.close()

    @property
    def idle(self) -> bool:
        return not self._pending

    def close(self) -> None:
        if self.closed:
            return
        self.closed = True
        self._loop.remove_reader(self._sock.fileno())
        self._sock.close()
        for _, _, fut in self._pending.values():
            if not fut.done():
                fut.cancel()


class Forwarder:
    """Exchanges one query with the upstreams (Docker's policy); owns the upstream sockets."""

    def __init__(self, timeout: float = DEFAULT_TIMEOUT) -> None:
        self.timeout = timeout
        self._channels: dict[Upstream, _UdpChannel] = {}
        self._retired: set[_UdpChannel] = set()

    async def forward(
        self, out: bytes, question_end: int, targets: Sequence[Upstream], *, tcp: bool
    ) -> bytes | None:
        """The best reply of up to three ``targets`` to ``out``, None when none answered.

        The reply keeps the upstream's id (``out``'s id is replaced per exchange).
        """
        fallback: bytes | None = None
        for target in targets[:MAX_UPSTREAMS]:
            try:
                if tcp:
                    resp = await self._tcp(target, out, question_end)
                else:
                    resp = await self._udp(target, out, question_end)
                    if resp[2] & 0x02:  # TC
                        resp = await self._tcp_after_truncation(target, out, question_end, resp)
            except (OSError, TimeoutError, asyncio.IncompleteReadError, _BadReply) as exc:
                log.debug("upstream %s:%d failed: %r", target.host, target.port, exc)
                continue
            rcode = wire.rcode_of(resp)
            if rcode == wire.RCODE_NOERROR or (
                rcode == wire.RCODE_NXDOMAIN and resp[2] & 0x04  # authoritative (RFC 8020)
            ):
                return resp
            if fallback is None or wire.rcode_of(fallback) != wire.RCODE_NXDOMAIN:
                fallback = resp
        return fallback

    def close(self) -> None:
        """Close every upstream socket (exchanges in flight are cancelled)."""
        for channel in [*self._channels.values(), *self._retired]:
            channel.close()
        self._channels.clear()
        self._retired.clear()

    async def _tcp_after_truncation(
        self, target: Upstream, out: bytes, question_end: int, truncated: bytes
    ) -> bytes:
        try:
            return await self._tcp(target, out, question_end)
        except (OSError, TimeoutError, asyncio.IncompleteReadError, _BadReply) as exc:
            log.debug("TCP retry to %s:%d failed: %r", target.host, target.port, exc)
            return truncated

    def _channel(self, target: Upstream) -> _UdpChannel:
        channel = self._channels.get(target)
        if channel is not None and channel.uses >= CHANNEL_USES:
            channel.retired = True
            self._retired = {c for c in self._retired if not c.closed}
            if channel.idle:
                channel.close()
            else:
                self._retired.add(channel)
            channel = None
        if channel is None or channel.closed:
            channel = _UdpChannel(asyncio.get_running_loop(), target)
            self._channels[target] = channel
        return channel

    async def _udp(self, target: Upstream, out: bytes, question_end: int) -> bytes:
        return await self._channel(target).exchange(out, question_end, self.timeout)

    async def _tcp(self, target: Upstream, out: bytes, question_end: int) -> bytes:
        out = wire.with_id(out, int.from_bytes(os.urandom(2), "big"))
        async with asyncio.timeout(self.timeout):
            reader, writer = await asyncio.open_connection(target.host, target.port)
            try:
                writer.write(_U16.pack(len(out)) + out)
                (length,) = _U16.unpack(await reader.readexactly(2))
                resp = await reader.readexactly(length)
            finally:
                writer.close()
        if (
            len(resp) < wire.HEADER.size
            or resp[:2] != out[:2]
            or not resp[2] & 0x80
            or not wire.question_matches(out, question_end, resp)
        ):
            raise _BadReply("reply does not match the query")
        return resp
