"""The forwarding cache: upstream answers kept for their TTL, identical queries coalesced.

Key: (the upstreams, in order, at most three; the question name in lower case; type; class;
the query's RD and CD bits; EDNS: none, present, present with DO). The upstreams are part of
the key, so a container whose ``--dns`` (or the host resolv.conf those come from) differs or
changes never sees another set's answers: a changed set simply misses, and the old set's
entries age out of the LRU. Answers are shared by every sandbox with the same upstreams.

What is kept, for how long (seconds from the moment the answer arrived):
- NOERROR with answers: the smallest TTL of the answer section, capped at ``POSITIVE_TTL_CAP``.
- NXDOMAIN, and NOERROR without answers (NODATA): RFC 2308 §5, min(SOA TTL, SOA MINIMUM) of the
  authority section's SOA, capped at ``NEGATIVE_TTL_CAP``; no SOA → not cached (RFC 2308 §5:
  "SHOULD NOT be cached").
- SERVFAIL, REFUSED, any other error, and "no upstream answered" (SERVFAIL of ours):
  ``FAILURE_TTL`` (1 s: long enough to absorb a client's burst of retries, short enough that
  a recovered upstream is used at once; RFC 2308 §7 allows up to 5 min).
- a truncated answer (TCP retry failed) or a TTL of 0: relayed, not cached.
- a reply that cannot be taken apart safely (no question section, records after the OPT record,
  malformed records): the client gets SERVFAIL, kept ``FAILURE_TTL`` like the other failures.
On the way out every TTL is decremented by the whole seconds the answer has been cached (never
below 0); the client's id, question (its own letter case) and RD bit are put back; the
upstream's OPT record is dropped and ours added when the client sent EDNS; an answer larger
than the client's UDP limit goes out as an empty truncated reply (TC), which makes the client
retry over TCP, where the cached full answer is served.

Bounds: ``FORWARD_CACHE_LIMIT`` entries, least recently used first out. Queries for one key in
flight share one upstream exchange (coalescing); each waiter gets its own rendering.

:meth:`ForwardCache.answer` also returns until when its rendering stays exact (the end of the
current whole second of age, or the expiry): the DNS server keeps that rendering per sandbox
and per query bytes and answers repeats with it, so a hit costs about what a container name
costs.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import struct
import time
from collections import OrderedDict
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from tether.engine import dns_wire as wire
from tether.engine.dns_forward import Forwarder, Upstream, parse_upstreams
from tether.engine.dnsstats import DnsStats

log = logging.getLogger("tether.dns")

POSITIVE_TTL_CAP = 3600
NEGATIVE_TTL_CAP = 300
FAILURE_TTL = 1.0
FORWARD_CACHE_LIMIT = 10_000
_U32 = struct.Struct("!I")
_RR_FIXED = struct.Struct("!HHIH")

Key = tuple[tuple[Upstream, ...], bytes, int, int, int, int]
Answer = tuple[bytes, float]  # (the client's answer, monotonic time it stays exact until)


@dataclass(slots=True)
class Entry:
    """One upstream reply, taken apart: everything but the id, question and OPT record."""

    flags: int  # the reply's header flags
    rcode: int  # with the OPT record's extended bits
    counts: tuple[int, int, int]  # answer, authority, additional (without OPT)
    body: bytes  # the records after the question, OPT removed
    ttls: tuple[tuple[int, int], ...]  # (offset of a TTL field in body, its value)
    stored: float
    expires: float  # == stored: not to be cached


def _ttl(value: int) -> int:
    return 0 if value >= 1 << 31 else value  # RFC 2181 §8


def parse_reply(resp: bytes, question_end: int, now: float) -> Entry | None:
    """``resp`` (whose question ends at ``question_end``) as an :class:`Entry`, with its
    lifetime; None when it cannot be taken apart safely."""
    if len(resp) < question_end or resp[4:6] != b"\x00\x01":
        return None
    flags = _u16(resp, 2)
    an, ns, ar = _u16(resp, 6), _u16(resp, 8), _u16(resp, 10)
    pieces: list[bytes] = []
    ttls: list[tuple[int, int]] = []
    size = 0
    pos = question_end
    ext = 0
    opt_seen = False
    answer_min: int | None = None
    negative: int | None = None
    try:
        for index in range(an + ns + ar):
            start = pos
            pos = wire.skip_name(resp, pos)
            if pos + _RR_FIXED.size > len(resp):
                return None
            rtype, _, ttl, rdlength = _RR_FIXED.unpack_from(resp, pos)
            ttl_at = pos + 4
            pos += _RR_FIXED.size + rdlength
            if pos > len(resp) or opt_seen:  # records after OPT: their pointers would move
                return None
            if rtype == wire.TYPE_OPT and index >= an + ns:
                opt_seen, ext = True, ttl >> 24
                continue
            ttl = _ttl(ttl)
            ttls.append((size + ttl_at - start, ttl))
            pieces.append(resp[start:pos])
            size += pos - start
            if index < an:
                answer_min = ttl if answer_min is None else min(answer_min, ttl)
            elif index < an + ns and rtype == wire.TYPE_SOA and rdlength >= 22:
                minimum = _U32.unpack_from(resp, pos - 4)[0]
                negative = min(ttl, _ttl(minimum))
    except wire.WireError:
        return None
    rcode = ext << 4 | flags & 0xF
    entry = Entry(flags, rcode, (an, ns, ar - opt_seen), b"".join(pieces), tuple(ttls), now, now)
    entry.expires = now + _lifetime(entry, answer_min, negative)
    return entry


def _u16(data: bytes, pos: int) -> int:
    return data[pos] << 8 | data[pos + 1]


def _lifetime(entry: Entry, answer_min: int | None, negative: int | None) -> float:
    if entry.flags & wire.FLAG_TC:
        return 0.0
    if entry.rcode == wire.RCODE_NOERROR and answer_min is not None:
        return float(min(answer_min, POSITIVE_TTL_CAP))
    if entry.rcode in (wire.RCODE_NOERROR, wire.RCODE_NXDOMAIN):
        return float(min(negative, NEGATIVE_TTL_CAP)) if negative is not None else 0.0
    return FAILURE_TTL


def _failure(now: float) -> Entry:
    """No upstream answered: SERVFAIL, kept ``FAILURE_TTL``."""
    flags = wire.FLAG_QR | wire.FLAG_RA | wire.RCODE_SERVFAIL
    return Entry(flags, wire.RCODE_SERVFAIL, (0, 0, 0), b"", (), now, now + FAILURE_TTL)


def render(entry: Entry, data: bytes, query: wire.Query, now: float, *, tcp: bool) -> Answer:
    """The client's answer from ``entry``: its id, question and RD; TTLs aged."""
    age = max(0, int(now - entry.stored))
    body = entry.body
    if age and entry.ttls:
        buf = bytearray(body)
        for offset, ttl in entry.ttls:
            _U32.pack_into(buf, offset, max(0, ttl - age))
        body = bytes(buf)
    question = data[wire.HEADER.size : query.question_end]
    opt = wire.opt_record(entry.rcode) if query.edns is not None else b""
    flags = entry.flags & ~wire.FLAG_RD | query.flags & wire.FLAG_RD
    an, ns, ar = entry.counts
    max_size = wire.TCP_MAX if tcp else query.max_udp_size()
    if wire.HEADER.size + len(question) + len(body) + len(opt) > max_size:
        flags |= 0 if tcp else wire.FLAG_TC  # the client retries over TCP
        an = ns = ar = 0
        body = b""
    header = wire.HEADER.pack(query.id, flags, 1, an, ns, ar + (1 if opt else 0))
    return header + question + body + opt, min(entry.expires, entry.stored + age + 1)


def upstream_query(data: bytes, query: wire.Query) -> bytes:
    """What goes upstream for ``query``: its question, RD and CD, and EDNS (our size) with its
    DO bit when it had EDNS. The id is the forwarder's."""
    opt = wire.opt_record(do=query.edns.do) if query.edns is not None else b""
    flags = query.flags & (wire.FLAG_RD | wire.FLAG_CD)
    header = wire.HEADER.pack(0, flags, 1, 0, 0, 1 if opt else 0)
    return header + data[wire.HEADER.size : query.question_end] + opt


class ForwardCache:
    """Upstream answers by :data:`Key`, bounded LRU; owns the upstream exchanges in flight."""

    def __init__(
        self, forwarder: Forwarder, stats: DnsStats, limit: int = FORWARD_CACHE_LIMIT
    ) -> None:
        self._forwarder = forwarder
        self._stats = stats
        self._limit = limit
        self._entries: OrderedDict[Key, Entry] = OrderedDict()
        self._inflight: dict[Key, asyncio.Future[Entry]] = {}
        self._tasks: set[asyncio.Task[None]] = set()

    def __len__(self) -> int:
        return len(self._entries)

    @staticmethod
    def key(query: wire.Query, upstreams: Sequence[str]) -> Key | None:
        """The cache key of ``query`` for ``upstreams``; None when none of them is valid."""
        targets = parse_upstreams(upstreams)
        if not targets:
            return None
        edns = -1 if query.edns is None else int(query.edns.do)
        bits = query.flags & (wire.FLAG_RD | wire.FLAG_CD)
        return targets, query.qname.lower(), query.qtype, query.qclass, bits, edns

    def cached(self, key: Key, data: bytes, query: wire.Query, *, tcp: bool) -> Answer | None:
        """The answer from the cache (a hit), else None."""
        entry = self._entries.get(key)
        if entry is None:
            return None
        now = time.monotonic()
        if entry.expires <= now:
            del self._entries[key]
            return None
        self._entries.move_to_end(key)
        self._stats.forward_hits += 1
        return render(entry, data, query, now, tcp=tcp)

    def resolve(
        self,
        key: Key,
        data: bytes,
        query: wire.Query,
        *,
        tcp: bool,
        done: Callable[[Answer | None], None],
    ) -> None:
        """Ask the upstreams (or join the exchange in flight for ``key``); ``done`` gets the
        client's answer (None: the exchange broke, a bug; nothing when it was cancelled).

        Waiters are callbacks on the exchange's future, not tasks: a miss costs one task."""
        fut = self._inflight.get(key)
        if fut is None:
            self._stats.forward_misses += 1
            loop = asyncio.get_running_loop()
            fut = loop.create_future()
            self._inflight[key] = fut
            task = loop.create_task(
                self._exchange(key, upstream_query(data, query), query.question_end, tcp, fut)
            )
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)
        else:
            self._stats.forward_coalesced += 1

        def finish(f: asyncio.Future[Entry]) -> None:
            if f.cancelled():
                return
            if f.exception() is not None:
                done(None)
                return
            done(render(f.result(), data, query, time.monotonic(), tcp=tcp))

        fut.add_done_callback(finish)

    async def _exchange(
        self, key: Key, out: bytes, question_end: int, tcp: bool, fut: asyncio.Future[Entry]
    ) -> None:
        try:
            resp = await self._forwarder.forward(out, question_end, key[0], tcp=tcp)
            now = time.monotonic()
            entry = None if resp is None else parse_reply(resp, question_end, now)
            if entry is None:
                entry = _failure(now)
            if entry.expires > now:
                self._store(key, entry)
            fut.set_result(entry)
        except asyncio.CancelledError:
            fut.cancel()
            raise
        except Exception as exc:  # a bug: every waiter gets SERVFAIL
            log.exception("forwarding a DNS query failed")
            fut.set_exception(exc)
        finally:
            if self._inflight.get(key) is fut:
                del self._inflight[key]

    def _store(self, key: Key, entry: Entry) -> None:
        self._entries[key] = entry
        self._entries.move_to_end(key)
        while len(self._entries) > self._limit:
            self._entries.popitem(last=False)

    def clear(self) -> None:
        """Forget every answer (exchanges in flight go on)."""
        self._entries.clear()

    async def close(self) -> None:
        """Cancel the exchanges in flight, forget every answer, close the upstream sockets."""
        tasks = list(self._tasks)
        for task in tasks:
            task.cancel()
        if tasks:
            with contextlib.suppress(Exception):
                await asyncio.gather(*tasks, return_exceptions=True)
        self._entries.clear()
        self._forwarder.close()
