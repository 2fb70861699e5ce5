"""The embedded DNS server: 127.0.0.11:53 (UDP and TCP) inside every sandbox's namespace.

Like Docker's embedded DNS, each container on a user-defined network gets
``nameserver 127.0.0.11`` and a listener on that address in its own network namespace. Unlike
Docker (one goroutine set per container), every listener is served by the daemon's single
asyncio loop: the sockets are created inside the namespace by a short-lived forked helper
(:mod:`tether.linux.nsock`) and then used from the host side like any other socket; no daemon
thread ever changes namespace.

Answers
- ``A`` for a name the engine's :class:`Resolver` knows for that sandbox (TTL 600, as Docker);
  several addresses are shuffled per query (round robin).
- any other type for a known name: an empty NOERROR answer (NODATA), never NXDOMAIN, so a
  client asking ``AAAA`` next to ``A`` keeps the IPv4 answer.
- ``PTR`` for ``d.c.b.a.in-addr.arpa`` when the resolver knows the address.
- everything else is forwarded upstream (see :mod:`tether.engine.dns_forward`: up to three
  servers, 2 s each, TCP retry of truncated answers, from the host namespace so a host
  loopback resolver works), through the forwarding cache (:mod:`tether.engine.dns_cache`:
  answers kept for their TTL, negative ones per RFC 2308, identical queries in flight
  coalesced). No upstreams → SERVFAIL at once (Docker 20.10 stays silent).
Names match case-insensitively, with or without the trailing dot; the question is echoed with
the client's own spelling. Optional search domains (``add_sandbox(search_domains=...)``) let
``web.<domain>`` resolve like ``web`` when ``web.<domain>`` itself is not a container name.

Speed: the hot path is a dictionary lookup keyed by the query bytes after the 2-byte id
(flags, question, EDNS record); the value is the finished answer without its id, so a
repeated question costs one slice, one dict lookup, one concatenation and one ``sendto``.
Names the resolver does not know are cached as "forward" so they skip the parse. The cache is
per sandbox, bounded, and emptied by :meth:`DnsServer.invalidate` whenever records change.
A forwarded answer from the forwarding cache is kept the same way in a second per-sandbox
dict (``hot``) with the time it stays exact (at most the end of the current second of its
age: TTLs count down), so a repeated forwarded question costs one more dict lookup and a
clock read; past that time the query takes the slow path, which asks the resolver for the
upstreams again (a changed resolv.conf is therefore seen within a second).
Queries with EDNS get a minimal OPT record back (our UDP size 1232, no options); EDNS
versions above 0 get BADVERS; opcodes other than QUERY get NOTIMP; malformed queries get
FORMERR when their header is readable and are dropped otherwise.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
import socket
import struct
import time
from collections.abc import Callable, Sequence
from typing import Protocol, cast

from tether.engine import dns_wire as wire
from tether.engine.dns_cache import Answer, ForwardCache
from tether.engine.dns_forward import DEFAULT_TIMEOUT, Forwarder
from tether.engine.dns_udp import UdpReader
from tether.engine.dnsstats import DnsStats
from tether.errors import Internal
from tether.linux.nsock import SocketSpec, open_sockets_in_netns

log = logging.getLogger("tether.dns")

LISTEN_ADDRESS = "127.0.0.11"
LISTEN_PORT = 53
TTL = 600
CACHE_LIMIT = 4096  # entries per sandbox; the cache is emptied when full
MAX_INFLIGHT = 256  # forwarded queries per sandbox (Docker: 100); beyond that, SERVFAIL
TCP_IDLE_TIMEOUT = 10.0
_U16 = struct.Struct("!H")
_FORWARD = b""  # cache value: "not ours, forward" (a real answer tail is never empty)
_monotonic = time.monotonic

Reply = Callable[[bytes], None]


class Resolver(Protocol):
    """What the engine provides: the records each sandbox can see."""

    def lookup(self, sandbox: str, name: str) -> list[str] | None:
        """IPv4 and IPv6 addresses of ``name`` (lower case, no trailing dot) as seen by
        ``sandbox`` (A queries answer with the IPv4 ones, AAAA with the IPv6 ones).

        ``None``: not a container name (the query is forwarded upstream).
        """
        ...

    def reverse(self, sandbox: str, ip: str) -> str | None:
        """The PTR name for a container address visible to ``sandbox``, or ``None``."""
        ...

    def upstreams(self, sandbox: str) -> list[str]:
        """Upstream servers, ``"ip"`` or ``"ip:port"``; the first three are used."""
        ...


class _Listener:
    """One sandbox's sockets, answer caches and count of forwarded queries in flight."""

    def __init__(self, sandbox: str, search_domains: Sequence[str]) -> None:
        self.sandbox = sandbox
        self.search = tuple("." + d.strip(".").lower() for d in search_domains if d.strip("."))
        self.cache: dict[bytes, bytes] = {}
        self.hot: dict[bytes, Answer] = {}  # forwarded answers: query bytes -> (tail, until)
        self.udp: asyncio.DatagramTransport | None = None
        self.udp_closed: asyncio.Future[None] | None = None
        self.tcp: asyncio.Server | None = None
        self.conns: set[_TcpConnection] = set()
        self.pending = 0  # forwarded queries waiting for an upstream exchange
        self.closed = False  # removed: answers still arriving are dropped


class _UdpProtocol(asyncio.DatagramProtocol):
    __slots__ = (
        "_closed",
        "_get",
        "_hot_get",
        "_listener",
        "_sendto",
        "_server",
        "_stats",
        "transport",
    )

    def __init__(self, server: DnsServer, listener: _Listener, closed: asyncio.Future[None]):
        self._server = server
        self._listener = listener
        self._get = listener.cache.get
        self._hot_get = listener.hot.get
        self._closed = closed
        self.transport: asyncio.DatagramTransport | None = None
        self._sendto: Callable[[bytes, tuple[str, int]], None] = self.send
        self._stats = server.stats

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = cast(asyncio.DatagramTransport, transport)
        self._sendto = self.transport.sendto

    def datagram_received(self, data: bytes, addr: tuple[str, int]) -> None:
        key = data[2:]
        tail = self._get(key)
        if tail:  # hot path: a precomputed answer, only the id differs
            self._sendto(data[:2] + tail, addr)
            self._stats.cached += 1
            return
        hot = self._hot_get(key)
        if hot is not None and hot[1] > _monotonic():  # a forwarded answer, still exact
            self._sendto(data[:2] + hot[0], addr)
            self._stats.forward_cached += 1
            return
        self._server._udp_query(self._listener, self, data, addr)

    def send(self, packet: bytes, addr: tuple[str, int]) -> None:
        if self.transport is not None and not self.transport.is_closing():
            self.transport.sendto(packet, addr)

    def error_received(self, exc: Exception) -> None:
        log.debug("DNS listener %s: %r", self._listener.sandbox, exc)

    def connection_lost(self, exc: Exception | None) -> None:
        if not self._closed.done():
            self._closed.set_result(None)


class _TcpConnection(asyncio.Protocol):
    """RFC 7766 DNS over TCP: 2-byte length prefixed messages, pipelined, idle timeout."""

    def __init__(self, server: DnsServer, listener: _Listener) -> None:
        self._server = server
        self._listener = listener
        self._buf = bytearray()
        self.transport: asyncio.Transport | None = None
        self._idle: asyncio.TimerHandle | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = cast(asyncio.Transport, transport)
        self._listener.conns.add(self)
        self._arm()

    def _arm(self) -> None:
        if self._idle is not None:
            self._idle.cancel()
        loop = asyncio.get_running_loop()
        self._idle = loop.call_later(TCP_IDLE_TIMEOUT, self.close)

    def data_received(self, data: bytes) -> None:
        self._buf += data
        self._arm()
        while len(self._buf) >= 2:
            (length,) = _U16.unpack_from(self._buf)
            if len(self._buf) < 2 + length:
                break
            message = bytes(self._buf[2 : 2 + length])
            del self._buf[: 2 + length]
            self._server._tcp_query(self._listener, self, message)

    def send(self, packet: bytes) -> None:
        if self.transport is not None and not self.transport.is_closing():
            self.transport.write(_U16.pack(len(packet)) + packet)

    def close(self) -> None:
        if self.transport is not None:
            self.transport.close()

    def connection_lost(self, exc: Exception | None) -> None:
        if self._idle is not None:
            self._idle.cancel()
        self._listener.conns.discard(self)


class DnsServer:
    """Embedded DNS for every sandbox, on the running loop. Owns every socket and task."""

    def __init__(
        self,
        resolver: Resolver,
        *,
        upstream_timeout: float = DEFAULT_TIMEOUT,
        ttl: int = TTL,
    ) -> None:
        self._resolver = resolver
        self.stats = DnsStats()  # read by the metrics (issue 19)
        self._forwards = ForwardCache(Forwarder(upstream_timeout), self.stats)
        self._ttl = ttl
        self._listeners: dict[str, _Listener] = {}
        self._lock = asyncio.Lock()
        self._closed = False

    # -- owner API -------------------------------------------------------------------------

    async def add_sandbox(
        self, sandbox: str, netns_path: str, *, search_domains: Sequence[str] = ()
    ) -> None:
        """Open UDP and TCP listeners at 127.0.0.11:53 inside the namespace at ``netns_path``.

        Re-adding a sandbox replaces its listeners. Raises :class:`tether.errors.Internal`
        when the namespace cannot be entered or the address is taken.
        """
        specs = [
            SocketSpec(socket.AF_INET, socket.SOCK_DGRAM, (LISTEN_ADDRESS, LISTEN_PORT), True),
            SocketSpec(
                socket.AF_INET, socket.SOCK_STREAM, (LISTEN_ADDRESS, LISTEN_PORT), True, True
            ),
        ]
        async with self._lock:
            self._check_open()
            await self._remove(sandbox)
            try:
                udp, tcp = await open_sockets_in_netns(netns_path, specs)
            except OSError as exc:
                raise Internal(
                    f"cannot open the DNS listener in {netns_path}: {exc.strerror or exc}"
                ) from exc
            await self._serve(sandbox, udp, tcp, search_domains)

    async def serve_sockets(
        self,
        sandbox: str,
        udp: socket.socket,
        tcp: socket.socket,
        *,
        search_domains: Sequence[str] = (),
    ) -> None:
        """Serve ``sandbox`` on sockets the caller bound (tests; any namespace, any address).

        The server takes ownership of both sockets.
        """
        async with self._lock:
            self._check_open()
            await self._remove(sandbox)
            await self._serve(sandbox, udp, tcp, search_domains)

    async def remove_sandbox(self, sandbox: str) -> None:
        """Close the sandbox's listeners and its TCP connections; answers to its forwarded
        queries still in flight are dropped (the exchanges go on for other sandboxes)."""
        async with self._lock:
            await self._remove(sandbox)

    def invalidate(self) -> None:
        """Records changed: forget every cached answer (sockets stay as they are).

        The forwarding cache stays (upstream answers do not depend on the records); the
        per-sandbox copies of its answers go, since a forwarded name may now be a container's.
        """
        for listener in self._listeners.values():
            listener.cache.clear()
            listener.hot.clear()

    def forget_forwarded(self) -> None:
        """Forget every upstream answer (e.g. the upstream configuration was reloaded)."""
        self._forwards.clear()
        for listener in self._listeners.values():
            listener.hot.clear()

    async def close(self) -> None:
        """Shut down: cancel every task, close every socket. Idempotent."""
        async with self._lock:
            self._closed = True
            for sandbox in list(self._listeners):
                await self._remove(sandbox)
            await self._forwards.close()

    def sandboxes(self) -> list[str]:
        return sorted(self._listeners)

    # -- listeners -------------------------------------------------------------------------

    def _check_open(self) -> None:
        if self._closed:
            raise Internal("the DNS server is shut down")

    async def _serve(
        self,
        sandbox: str,
        udp: socket.socket,
        tcp: socket.socket,
        search_domains: Sequence[str],
    ) -> None:
        loop = asyncio.get_running_loop()
        listener = _Listener(sandbox, search_domains)
        closed: asyncio.Future[None] = loop.create_future()
        try:
            udp.setblocking(False)
            tcp.setblocking(False)
            transport = UdpReader(loop, udp, _UdpProtocol(self, listener, closed))
            listener.udp = transport
            listener.udp_closed = closed
            listener.tcp = await loop.create_server(
                lambda: _TcpConnection(self, listener), sock=tcp, backlog=128
            )
        except BaseException:
            await self._shutdown(listener)
            udp.close()
            tcp.close()
            raise
        self._listeners[sandbox] = listener

    async def _remove(self, sandbox: str) -> None:
        listener = self._listeners.pop(sandbox, None)
        if listener is not None:
            await self._shutdown(listener)

    async def _shutdown(self, listener: _Listener) -> None:
        if listener.tcp is not None:
            listener.tcp.close()
        for conn in list(listener.conns):
            conn.close()
        if listener.udp is not None:
            listener.udp.close()
        listener.closed = True
        waits: list[asyncio.Future[None]] = []
        if listener.udp_closed is not None:
            waits.append(listener.udp_closed)
        if listener.tcp is not None:
            waits.append(asyncio.ensure_future(listener.tcp.wait_closed()))
        if waits:
            # The transports close their sockets on the next loop iteration.
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(2.0):
                    await asyncio.gather(*waits, return_exceptions=True)
        listener.cache.clear()
        listener.hot.clear()

    # -- queries ---------------------------------------------------------------------------

    def _udp_query(
        self,
        listener: _Listener,
        proto: _UdpProtocol,
        data: bytes,
        addr: tuple[str, int],
    ) -> None:
        """A UDP query that missed the answer cache (or is cached as "forward")."""
        self.stats.queries += 1
        try:
            query = wire.parse_query(data)
        except wire.WireError as exc:
            if exc.query_id is not None and not exc.flags & wire.FLAG_QR:
                proto.send(
                    wire.error_response(data, exc.query_id, exc.flags, wire.RCODE_FORMERR), addr
                )
            return
        key = data[2:]
        if listener.cache.get(key) == _FORWARD:
            self._forward_query(listener, data, query, lambda r: proto.send(r, addr), key)
            return
        answer, cacheable = self._answer_locally(listener, data, query, tcp=False)
        if answer is None:
            self._remember(listener, key, _FORWARD)
            self._forward_query(listener, data, query, lambda r: proto.send(r, addr), key)
            return
        if cacheable:
            self._remember(listener, key, answer[2:])
        self.stats.answered += 1
        self.stats.rcode(answer)
        proto.send(answer, addr)

    def _tcp_query(self, listener: _Listener, conn: _TcpConnection, data: bytes) -> None:
        self.stats.queries += 1
        try:
            query = wire.parse_query(data)
        except wire.WireError as exc:
            if exc.query_id is not None and not exc.flags & wire.FLAG_QR:
                conn.send(wire.error_response(data, exc.query_id, exc.flags, wire.RCODE_FORMERR))
            return
        answer, _ = self._answer_locally(listener, data, query, tcp=True)
        if answer is None:
            self._forward_query(listener, data, query, conn.send, None)
        else:
            self.stats.answered += 1
            self.stats.rcode(answer)
            conn.send(answer)

    @staticmethod
    def _remember(listener: _Listener, key: bytes, value: bytes) -> None:
        if len(listener.cache) >= CACHE_LIMIT:
            listener.cache.clear()
        listener.cache[key] = value

    def _answer_locally(
        self, listener: _Listener, data: bytes, query: wire.Query, *, tcp: bool
    ) -> tuple[bytes | None, bool]:
        """(answer, cacheable), or (None, True) when the query must be forwarded."""
        max_size = wire.TCP_MAX if tcp else query.max_udp_size()

        def respond(answers: list[bytes], rcode: int = wire.RCODE_NOERROR) -> bytes:
            return wire.build_response(
                data, query, answers, rcode=rcode, max_size=max_size, truncate_flag=not tcp
            )

        if query.opcode != 0:
            return respond([], wire.RCODE_NOTIMP), True
        if query.edns is not None and query.edns.version > 0:
            return respond([], wire.EXT_RCODE_BADVERS), True
        if query.qclass != wire.CLASS_IN:
            return None, True
        try:
            if query.qtype == wire.TYPE_PTR:
                ip = wire.reverse_ipv4(query.qname) or wire.reverse_ipv6(query.qname)
                if ip is not None:
                    target = self._resolver.reverse(listener.sandbox, ip)
                    if target:
                        return respond([wire.ptr_record(target, self._ttl)]), True
                    return None, True
            name = wire.name_to_text(query.qname)
            if name is None:
                return None, True
            ips = self._lookup(listener, name)
        except Exception:
            log.exception("DNS resolver failed for sandbox %s", listener.sandbox)
            return respond([], wire.RCODE_SERVFAIL), False
        if ips is None:
            return None, True
        if query.qtype not in (wire.TYPE_A, wire.TYPE_AAAA, wire.TYPE_ANY):
            return respond([]), True
        records: list[bytes] = []
        for ip in ips:
            v6 = ":" in ip  # (dual-stack networks: AAAA answers, issue 18)
            if query.qtype != wire.TYPE_ANY and v6 != (query.qtype == wire.TYPE_AAAA):
                continue
            try:
                records.append((wire.aaaa_record if v6 else wire.a_record)(ip, self._ttl))
            except OSError:
                log.warning("resolver gave an invalid address %r for %s", ip, name)
        if len(records) > 1:
            random.shuffle(records)
            return respond(records), False  # reshuffled per query, not cached
        return respond(records), True

    def _lookup(self, listener: _Listener, name: str) -> list[str] | None:
        ips = self._resolver.lookup(listener.sandbox, name)
        if ips is None:
            for suffix in listener.search:
                if name.endswith(suffix) and len(name) > len(suffix):
                    ips = self._resolver.lookup(listener.sandbox, name[: -len(suffix)])
                    if ips is not None:
                        break
        return ips

    def _forward_query(
        self, listener: _Listener, data: bytes, query: wire.Query, reply: Reply, key: bytes | None
    ) -> None:
        """A name that is not ours: from the forwarding cache, else upstream. ``key``: the
        UDP query's bytes after the id (None over TCP), to keep the answer per sandbox."""
        tcp = key is None
        self.stats.forwarded += 1
        try:
            upstreams = self._resolver.upstreams(listener.sandbox)
        except Exception:
            log.exception("DNS resolver failed for sandbox %s", listener.sandbox)
            upstreams = []
        fkey = self._forwards.key(query, upstreams)
        if fkey is None:  # no (valid) upstream: SERVFAIL at once
            answer = self._servfail(data, query, tcp)
            self.stats.rcode(answer)
            reply(answer)
            return
        hit = self._forwards.cached(fkey, data, query, tcp=tcp)
        if hit is not None:
            self._keep(listener, key, hit)
            self.stats.rcode(hit[0])
            reply(hit[0])
            return
        if listener.pending >= MAX_INFLIGHT:
            self.stats.servfail += 1
            reply(self._servfail(data, query, tcp))
            return
        listener.pending += 1
        started = time.perf_counter()

        def done(answer: Answer | None) -> None:
            listener.pending -= 1
            if listener.closed:
                return
            if answer is None:  # a bug in the exchange (logged by the cache)
                answer = (self._servfail(data, query, tcp), 0.0)
            self._keep(listener, key, answer)
            self.stats.forwarded_reply(time.perf_counter() - started, answer[0])
            reply(answer[0])

        self._forwards.resolve(fkey, data, query, tcp=tcp, done=done)

    @staticmethod
    def _keep(listener: _Listener, key: bytes | None, answer: Answer) -> None:
        if key is None or answer[1] <= _monotonic():
            return
        if len(listener.hot) >= CACHE_LIMIT:
            listener.hot.clear()
        listener.hot[key] = (answer[0][2:], answer[1])

    @staticmethod
    def _servfail(data: bytes, query: wire.Query, tcp: bool) -> bytes:
        max_size = wire.TCP_MAX if tcp else query.max_udp_size()
        return wire.build_response(data, query, [], rcode=wire.RCODE_SERVFAIL, max_size=max_size)
