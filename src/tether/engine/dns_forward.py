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

Each UDP exchange uses a fresh connected socket (random source port, chosen by the kernel) and a
random query id, restored to the client's id on the way back; replies from another address,
with another id or another question are ignored. A truncated UDP answer is retried over TCP
with the same upstream and the full answer is relayed when it fits the client's UDP limit;
otherwise the truncated answer goes to the client, which then retries over TCP itself. Queries
that reached us over TCP are forwarded over TCP.
"""

from __future__ import annotations

import asyncio
import ipaddress
import logging
import os
import socket
import struct
from dataclasses import dataclass
from functools import lru_cache

from tether.engine import dns_wire as wire

log = logging.getLogger("tether.dns")

MAX_UPSTREAMS = 3
DEFAULT_TIMEOUT = 2.0
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


class _BadReply(Exception):
    """The upstream answered something that is not a reply to our query."""


def _udp_readable(
    sock: socket.socket, query: bytes, question_end: int, fut: asyncio.Future[bytes]
) -> None:
    """Reader callback of one exchange socket: accept the first reply that matches."""
    while not fut.done():
        try:
            data = sock.recv(65535)
        except (BlockingIOError, InterruptedError):
            return
        except OSError as exc:  # ICMP port unreachable and the like: next upstream, now
            fut.set_exception(exc)
            return
        if (
            len(data) >= wire.HEADER.size
            and data[:2] == query[:2]
            and data[2] & 0x80
            and wire.question_matches(query, question_end, data)
        ):
            fut.set_result(data)


class Forwarder:
    """Sends one query to the upstreams and returns the answer carrying the client's id."""

    def __init__(self, timeout: float = DEFAULT_TIMEOUT) -> None:
        self.timeout = timeout

    async def forward(
        self,
        data: bytes,
        query: wire.Query,
        upstreams: list[str],
        *,
        tcp: bool,
    ) -> bytes:
        targets: list[Upstream] = []
        for text in upstreams:
            try:
                targets.append(parse_upstream(text))
            except ValueError:
                log.warning("ignoring invalid upstream DNS server %r", text)
            if len(targets) == MAX_UPSTREAMS:
                break
        out = wire.with_id(data, int.from_bytes(os.urandom(2), "big"))
        fallback: bytes | None = None
        for target in targets:
            try:
                if tcp:
                    resp = await self._tcp(target, out, query.question_end)
                else:
                    resp = await self._udp(target, out, query.question_end)
                    if resp[2] & 0x02:  # TC
                        resp = await self._tcp_after_truncation(target, out, query, resp)
            except (OSError, TimeoutError, asyncio.IncompleteReadError, _BadReply) as exc:
                log.debug("upstream %s:%d failed: %r", target.host, target.port, exc)
                continue
            rcode = wire.rcode_of(resp)
            if rcode == wire.RCODE_NOERROR or (
                rcode == wire.RCODE_NXDOMAIN and resp[2] & 0x04  # authoritative (RFC 8020)
            ):
                return wire.with_id(resp, query.id)
            if fallback is None or wire.rcode_of(fallback) != wire.RCODE_NXDOMAIN:
                fallback = resp
        if fallback is not None:
            return wire.with_id(fallback, query.id)
        return wire.build_response(
            data,
            query,
            [],
            rcode=wire.RCODE_SERVFAIL,
            max_size=wire.TCP_MAX if tcp else query.max_udp_size(),
        )

    async def _tcp_after_truncation(
        self, target: Upstream, out: bytes, query: wire.Query, truncated: bytes
    ) -> bytes:
        try:
            full = await self._tcp(target, out, query.question_end)
        except (OSError, TimeoutError, asyncio.IncompleteReadError, _BadReply) as exc:
            log.debug("TCP retry to %s:%d failed: %r", target.host, target.port, exc)
            return truncated
        return full if len(full) <= query.max_udp_size() else truncated

    async def _udp(self, target: Upstream, out: bytes, question_end: int) -> bytes:
        # A plain non-blocking connected socket watched with add_reader: cheaper than a
        # transport per query, and still a fresh random source port for every exchange.
        loop = asyncio.get_running_loop()
        family = socket.AF_INET6 if ":" in target.host else socket.AF_INET
        sock = socket.socket(family, socket.SOCK_DGRAM)
        try:
            sock.setblocking(False)
            sock.connect((target.host, target.port))
            fut: asyncio.Future[bytes] = loop.create_future()
            loop.add_reader(sock.fileno(), _udp_readable, sock, out, question_end, fut)
            try:
                sock.send(out)
                async with asyncio.timeout(self.timeout):
                    return await fut
            finally:
                loop.remove_reader(sock.fileno())
        finally:
            sock.close()

    async def _tcp(self, target: Upstream, out: bytes, question_end: int) -> bytes:
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
