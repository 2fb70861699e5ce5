"""The etcd v3 store (cluster scope), over the asyncio gRPC client aetcd.

``EtcdStore`` implements ``tether.store.base.Store``:

- keys live under ``prefix`` (default ``/tether/``); values are JSON;
- a record's revision is its etcd ``mod_revision``; etcd's revision is
  global, so revisions compare across keys exactly as in the SQLite store;
- ``txn(ops)`` is one etcd transaction: ``create`` compares ``version == 0``,
  ``check`` compares ``mod_revision == rev`` (0 = absent); on failure the
  same transaction reads the compared keys back, so ``failed_key`` names
  the first op whose condition did not hold without a racy second read;
- ``watch`` follows a prefix from a start revision over its own gRPC stream;
  it resumes by itself after etcd restarts (from the last revision seen) and
  raises ``WatchCompacted`` when the history it needs is gone. Cancelling the
  consuming task (or ``aclose()``) cancels the stream: no task is left behind;
- leases: ``grant_lease`` / ``keepalive`` / ``revoke_lease``, ``lease=`` on
  ``put``/``create``/``txn`` (``tether.store.lease.LeaseKeeper`` keeps a lease alive).

Errors: when etcd cannot be reached every call fails within ``timeout``
seconds with ``tether.errors.Unavailable("cluster store etcd://HOST:PORT is
unreachable: ...")``; the same object works again once etcd is back (the
gRPC channel reconnects with a short capped back-off). With several
endpoints a failed call moves the next call on to the next endpoint, and a
call that never reached etcd (no connection, TLS refused, a member without a
leader) is tried on the next endpoints at once, within ``timeout``.

TLS and user/password (``security=``, Docker's ``kv.*`` options) and the
connection to one member are in ``tether.store.etcdconn``; TLS and
authentication failures are named as such ("TLS: cluster store ... refused
this daemon's client certificate ..."), not as "unreachable".

Overload (docs/cluster-overload.md): at most ``LIMITER_SIZE`` calls are in flight, fewer
while calls time out (``tether.store.backoff.Limiter``); the others wait in line up to
2 × ``timeout`` and then fail with ``Unavailable("... is overloaded ...")``; the lease's
own calls go around the line. ``observer`` counts requests, timeouts and waits.

gRPC and fork: the daemon forks short-lived helpers (pyroute2 opens sockets
in network namespaces that way). With gRPC loaded every fork logs a warning
and gRPC's fork handlers run; this module sets ``GRPC_ENABLE_FORK_SUPPORT=false``
before gRPC is imported. That only works if nothing imported ``grpc`` first:
import ``tether.store.etcd`` (cheap: aetcd and grpc load lazily, on first
connect) before anything else that may import grpc.
"""

from __future__ import annotations

import asyncio
import contextlib
import importlib
import logging
import os
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from typing import Any, TypeVar

from tether.errors import Internal, TetherError, Unavailable
from tether.store.backoff import Backoff, Limiter, Recovery
from tether.store.base import (
    Event,
    LeaseExpired,
    Op,
    Record,
    TxnResult,
    Value,
    WatchCompacted,
)
from tether.store.etcdconn import (
    Endpoint,
    EtcdConnection,
    EtcdSecurity,
    Failover,
    StaleToken,
    StoreAccessRefused,
    ambiguous,
    details,
    explain,
    landed,
    member_lost,
    not_sent,
    parse_endpoint,
    stale_token,
    timed_out,
)

os.environ["GRPC_ENABLE_FORK_SUPPORT"] = "false"
# gRPC core's own log lines (several per failed TLS handshake, on every retry) add nothing
# to the errors named here; GRPC_VERBOSITY=ERROR in the environment brings them back.
os.environ.setdefault("GRPC_VERBOSITY", "NONE")

__all__ = [
    "EtcdStore",
    "LeaseExpired",
    "WatchCompacted",
    "parse_endpoint",
]

log = logging.getLogger(__name__)

# gRPC channel options: reconnect quickly once etcd is back (the default
# back-off grows to two minutes), notice dead peers on long streams (etcd
# refuses pings more often than every 5 s), and accept large listings.
_CHANNEL_OPTIONS: dict[str, Any] = {
    "grpc.initial_reconnect_backoff_ms": 200,
    "grpc.min_reconnect_backoff_ms": 200,
    "grpc.max_reconnect_backoff_ms": 1000,
    "grpc.keepalive_time_ms": 10_000,
    "grpc.keepalive_timeout_ms": 5_000,
    "grpc.keepalive_permit_without_calls": 0,
    "grpc.max_receive_message_length": 256 * 1024 * 1024,
}

# Watch resume back-off after the stream broke (etcd restarting or overloaded): equal
# jitter from 0.2 s up to 5 s, so a hundred watches broken together come back spread out.
_RESUME_MIN = 0.2
_RESUME_MAX = 5.0
_RESUME_FLOOR = 1.0  # a watch resumes early when etcd answers again, but not sooner than this
# Store calls in flight per daemon (the adaptive limit starts here; docs/cluster-overload.md).
LIMITER_SIZE = 4


def _lease_gone(error: Internal, lease: int) -> TetherError:
    """``LeaseExpired`` when a write attached to ``lease`` failed because etcd no longer
    has that lease (it expired while etcd or this host was away); else ``error``."""
    from aetcd import rpc

    cause = error.__cause__
    if (
        lease
        and isinstance(cause, rpc.AioRpcError)
        and cause.code() == rpc.StatusCode.NOT_FOUND
        and "lease not found" in (cause.details() or "")
    ):
        return LeaseExpired(lease)
    return error


def range_end(prefix: bytes) -> bytes:
    """The etcd ``range_end`` that selects every key starting with prefix."""
    out = bytearray(prefix)
    while out:
        if out[-1] < 0xFF:
            out[-1] += 1
            return bytes(out)
        out.pop()
    return b"\0"  # empty prefix: every key


class EtcdStore:
    """The Store over etcd v3. Connects lazily; see the module docstring."""

    def __init__(
        self,
        endpoints: Sequence[str],
        prefix: str = "/tether/",
        timeout: float = 3.0,
        security: EtcdSecurity | None = None,
    ) -> None:
        if not endpoints:
            raise ValueError("at least one etcd endpoint is needed")
        self.endpoints = [parse_endpoint(e) for e in endpoints]
        self.prefix = prefix
        self.timeout = timeout
        self.security = security or EtcdSecurity()
        self._raw_prefix = prefix.encode()
        self._clients: dict[int, Any] = {}
        self._active = 0
        self._known_revision = 0
        self._closed = False
        self._member_lost = -1e9  # loop time a member was last seen gone (see _call)
        self._raft_term = 0  # the highest raft term seen in a response header
        self._last_probe = -1e9
        self._init_overload()

    @classmethod
    async def connect(
        cls,
        endpoints: Sequence[str],
        prefix: str = "/tether/",
        timeout: float = 3.0,
        security: EtcdSecurity | None = None,
    ) -> EtcdStore:
        """Create a store and check etcd answers (``Unavailable`` if not)."""
        store = cls(endpoints, prefix, timeout, security)
        try:
            await store.current_revision()
        except BaseException:
            await store.close()
            raise
        return store

    def __repr__(self) -> str:
        return f"EtcdStore({self.name!r}, prefix={self.prefix!r})"

    @property
    def name(self) -> str:
        return ",".join(str(e) for e in self.endpoints)

    # -- plumbing -------------------------------------------------------------

    def _client(self) -> tuple[int, Any]:
        if self._closed:
            raise RuntimeError("store is closed")
        index = self._active
        client = self._clients.get(index)
        if client is None:
            client = self._clients[index] = self._open_client(self.endpoints[index])
        return index, client

    def _open_client(self, endpoint: Endpoint) -> EtcdConnection:
        """One member's connection: TLS and credentials from ``self.security``."""
        return EtcdConnection(
            endpoint.host, endpoint.port, self.security, _CHANNEL_OPTIONS, self.timeout
        )

    def _security_error(self, index: int, error: BaseException) -> Unavailable | None:
        """A TLS or authentication failure, named (``etcdconn.explain``); a token etcd
        forgot (it restarted) is dropped so that the next call authenticates again."""
        detail = str(error) if isinstance(error, StaleToken) else details(error)
        if stale_token(detail):
            client = self._clients.get(index)
            if client is not None:
                client.forget_token()
            return self._unavailable(index, "the auth token expired (etcd restarted?)")
        text = explain(error, self.security, str(self.endpoints[index]))
        if text is None:
            return None
        if len(self.endpoints) > 1 and index == self._active:
            self._active = (index + 1) % len(self.endpoints)
        return StoreAccessRefused(text)

    def _unavailable(self, index: int, detail: str) -> Unavailable:
        if len(self.endpoints) > 1 and index == self._active:
            self._active = (index + 1) % len(self.endpoints)
        return Unavailable(f"cluster store {self.endpoints[index]} is unreachable: {detail}")

    def _translate(self, index: int, error: BaseException) -> TetherError:
        from aetcd import exceptions as aexc
        from aetcd import rpc

        if member_lost(error):
            self._member_lost = asyncio.get_running_loop().time()
        named = self._security_error(index, error)
        if named is not None:
            return named
        if isinstance(error, TimeoutError):
            return self._unavailable(index, f"no answer within {self.timeout:g}s")
        code = error.code() if isinstance(error, rpc.AioRpcError) else None
        if isinstance(error, rpc.AioRpcError):
            detail = error.details() or str(code)
        else:
            detail = str(error) or type(error).__name__
        if isinstance(error, aexc.ConnectionFailedError | aexc.ConnectionTimeoutError) or code in (
            rpc.StatusCode.UNAVAILABLE,
            rpc.StatusCode.DEADLINE_EXCEEDED,
            rpc.StatusCode.CANCELLED,
        ):
            return self._unavailable(index, _short(detail))
        if code == rpc.StatusCode.RESOURCE_EXHAUSTED:
            return Unavailable(f"cluster store {self.endpoints[index]} refused the write: {detail}")
        return Internal(f"cluster store {self.endpoints[index]} failed: {detail}")

    async def _call(
        self, fn: Callable[[Any], Awaitable[Any]], *, in_flight: bool = True, priority: bool = False
    ) -> Any:
        """Run one RPC with failover (``etcdconn.Failover`` says when to try again).

        A call that never reached etcd (no connection, TLS refused, a member without a
        leader, a forgotten token) or, with ``in_flight``, whose connection broke under it
        (its member was killed; every call of this store is idempotent but ``txn``, which
        handles that itself) is tried on the next endpoints, backing off after each round,
        until ``timeout``. A timeout is not retried, except once (``timeout`` more) while a
        member was lost in the last seconds or a new leader was elected meanwhile
        (``_elected_since``): a request forwarded to a dead leader hangs until the
        election is over; under plain overload a timeout is never repeated. Each attempt
        goes through the in-flight limiter (``_limited``; ``priority``: around it).
        """
        loop = asyncio.get_running_loop()
        retry = Failover(loop.time(), self.timeout, len(self.endpoints), self._member_lost)
        refusals = 0
        while True:
            term = self._raft_term
            try:
                return await self._limited(fn, priority)
            except StoreAccessRefused:
                refusals += 1  # TLS or auth: no back-off, but every member once
                if refusals >= len(self.endpoints):
                    raise
                continue
            except Unavailable as error:
                if timed_out(error.__cause__) and await self._elected_since(term):
                    self._member_lost = retry.member_lost = loop.time()
                retry.note(error.message)
                delay = retry.next(error.__cause__, loop.time(), in_flight=in_flight)
                if delay is None:
                    summary = retry.summary(self.name)
                    if summary is None:
                        raise
                    raise Unavailable(summary) from error.__cause__
                if delay:
                    await asyncio.sleep(delay)

    async def _txn_call(self, request: Any) -> tuple[Any, bool]:
        """A Txn, and whether a first attempt broke in flight or timed out while a member
        was lost (it may have been applied: a failed compare may be our own write, see
        ``etcdconn.landed``)."""

        def call(c: Any) -> Any:
            return c.kvstub.Txn(request, timeout=self.timeout, metadata=c.metadata)

        try:
            return await self._call(call, in_flight=False), False
        except Unavailable as error:
            now = asyncio.get_running_loop().time()
            if not ambiguous(error.__cause__, now - self._member_lost):
                raise
        return await self._call(call), True

    # -- overload: the in-flight limiter and the counters (docs/cluster-overload.md) ------

    def _init_overload(self) -> None:
        # "etcd is back" (``wait_answered``): the lease's own calls are the probe
        self.recovery = Recovery()
        # ``observer(kind)``: "request", "timeout", "unavailable", "queued", "shed",
        # "watch_resume" (the daemon wires it to ``ClusterStats.store_event``)
        self.observer: Callable[[str], None] | None = None
        self.limiter = Limiter(LIMITER_SIZE)

    def _observe(self, kind: str) -> None:
        if self.observer is not None:
            self.observer(kind)

    async def _limited(self, fn: Callable[[Any], Awaitable[Any]], priority: bool) -> Any:
        """Run one RPC through the in-flight limiter (``priority``: the lease's own calls
        go around it, so user requests queued behind a slow store never starve the lease)."""
        if priority:
            return await self._call_one(fn, probe=True)
        if not self.limiter.try_acquire():
            self._observe("queued")
            try:
                # a call waits in line at most 2 × timeout, then fails like a timeout would
                await self.limiter.acquire(timeout=2 * self.timeout)
            except TimeoutError:
                self._observe("shed")
                raise Unavailable(
                    f"cluster store {self.name} is overloaded: "
                    f"{self.limiter.queued} requests waiting for it"
                ) from None
        try:
            return await self._call_one(fn)
        finally:
            self.limiter.release()

    async def _call_one(self, fn: Callable[[Any], Awaitable[Any]], probe: bool = False) -> Any:
        """One RPC against the active endpoint, bounded by ``timeout``; a ``probe`` (the
        lease's own calls) tells ``recovery`` whether etcd answers."""
        self._observe("request")
        index, client = self._client()
        try:
            await client.connect()
            response = await asyncio.wait_for(_not_foreign_cancel(fn(client)), self.timeout)
        except Exception as error:
            if isinstance(error, TetherError | ValueError | TypeError):
                raise
            translated = self._translate(index, error)
            if isinstance(translated, Unavailable):
                self.limiter.failed()
                if probe:
                    self.recovery.failed()
                self._observe("timeout" if _is_timeout(error) else "unavailable")
            raise translated from error
        self.limiter.succeeded()
        if probe:
            self.recovery.answered()  # after failures: etcd is back, back-off sleeps end
        header = getattr(response, "header", None)
        if header is not None and header.revision > self._known_revision:
            self._known_revision = int(header.revision)
        if header is not None:
            self._raft_term = max(self._raft_term, int(header.raft_term))
        return response

    async def _elected_since(self, term: int) -> bool:
        """After a timeout: is a member gone, or a leader lost or newly elected since
        ``term``? (A request forwarded to a leader that died hangs until our deadline.)
        A cheap ``Status`` to each member in turn, at most once a second; False when the
        live ones answer with the same term and a leader, or not at all (overload)."""
        from aetcd import rpc

        loop = asyncio.get_running_loop()
        if loop.time() - self._last_probe < 1.0:
            return self._raft_term > term or loop.time() - self._member_lost < 2.0
        self._last_probe = loop.time()
        count = len(self.endpoints)
        for index in ((self._active + i) % count for i in range(count)):
            client = self._clients.get(index)
            if client is None:
                client = self._clients[index] = self._open_client(self.endpoints[index])
            try:
                await client.connect()
                stub = rpc.MaintenanceStub(client.channel)
                probe = stub.Status(rpc.StatusRequest(), timeout=1.0, metadata=client.metadata)
                response = await asyncio.wait_for(_not_foreign_cancel(probe), 1.5)
            except Exception as error:
                if member_lost(error) or not_sent(error):
                    return True
                continue
            self._raft_term = max(self._raft_term, int(response.header.raft_term))
            if self._raft_term > term or not response.leader:
                return True
        return False

    def _key(self, key: str) -> bytes:
        return self._raw_prefix + key.encode()

    def _unkey(self, raw: bytes) -> str:
        return raw[len(self._raw_prefix) :].decode()

    def _record(self, kv: Any) -> Record:
        from tether.store.codec import decode_value

        return Record(self._unkey(kv.key), decode_value(kv.value.decode()), int(kv.mod_revision))

    # -- the Store protocol -------------------------------------------------

    async def get(self, key: str) -> Record | None:
        from aetcd import rpc

        request = rpc.RangeRequest(key=self._key(key))
        response = await self._call(
            lambda c: c.kvstub.Range(request, timeout=self.timeout, metadata=c.metadata)
        )
        return self._record(response.kvs[0]) if response.kvs else None

    async def snapshot(self, prefix: str) -> tuple[list[Record], int]:
        """``list(prefix)`` and the store revision it was read at.

        Resync pattern: ``records, rev = await store.snapshot(p)`` then
        ``store.watch(p, rev + 1)`` misses nothing and replays nothing.
        """
        from aetcd import rpc

        start = self._key(prefix)
        request = rpc.RangeRequest(
            key=start or b"\0",  # etcd refuses an empty key; "\0" starts every range
            range_end=range_end(start),
            sort_order=rpc.RangeRequest.SortOrder.ASCEND,
            sort_target=rpc.RangeRequest.SortTarget.KEY,
        )
        response = await self._call(
            lambda c: c.kvstub.Range(request, timeout=self.timeout, metadata=c.metadata)
        )
        return [self._record(kv) for kv in response.kvs], int(response.header.revision)

    async def list(self, prefix: str) -> list[Record]:
        records, _ = await self.snapshot(prefix)
        return records

    async def current_revision(self) -> int:
        """etcd's current revision (that of the last write cluster-wide)."""
        _, revision = await self.snapshot("\0")  # an empty range: just the header
        return revision

    async def put(self, key: str, value: Value, *, lease: int = 0) -> int:
        from aetcd import rpc

        from tether.store.codec import encode_value

        request = rpc.PutRequest(
            key=self._key(key), value=encode_value(value).encode(), lease=lease
        )
        try:
            response = await self._call(
                lambda c: c.kvstub.Put(request, timeout=self.timeout, metadata=c.metadata)
            )
        except Internal as error:
            raise _lease_gone(error, lease) from error.__cause__
        return int(response.header.revision)

    async def put_with_lease(self, key: str, value: Value, lease: int) -> int:
        """``put`` attaching the key to a lease (deleted when it expires)."""
        return await self.put(key, value, lease=lease)

    async def create(self, key: str, value: Value, *, lease: int = 0) -> bool:
        result = await self.txn([Op("create", key, value)], lease=lease)
        return result.ok

    async def delete(self, key: str) -> bool:
        from aetcd import rpc

        request = rpc.DeleteRangeRequest(key=self._key(key))
        response = await self._call(
            lambda c: c.kvstub.DeleteRange(request, timeout=self.timeout, metadata=c.metadata)
        )
        return int(response.deleted) > 0

    async def txn(self, ops: Sequence[Op], *, lease: int = 0) -> TxnResult:
        """One etcd transaction; ``lease`` attaches every written key."""
        from aetcd import rpc

        from tether.store.codec import encode_ops

        encoded = encode_ops(ops)
        compares: list[Any] = []
        conditioned: list[Op] = []
        success: list[Any] = []
        for op, text in zip(ops, encoded, strict=True):
            raw = self._key(op.key)
            if op.kind == "create":
                compares.append(
                    rpc.Compare(
                        key=raw,
                        target=rpc.Compare.CompareTarget.VERSION,
                        result=rpc.Compare.CompareResult.EQUAL,
                        version=0,
                    )
                )
                conditioned.append(op)
            elif op.kind == "check":
                compares.append(
                    rpc.Compare(
                        key=raw,
                        target=rpc.Compare.CompareTarget.MOD,
                        result=rpc.Compare.CompareResult.EQUAL,
                        mod_revision=op.revision,
                    )
                )
                conditioned.append(op)
            if text is not None:
                put = rpc.PutRequest(key=raw, value=text.encode(), lease=lease)
                success.append(rpc.RequestOp(request_put=put))
            elif op.kind == "delete":
                success.append(rpc.RequestOp(request_delete_range=rpc.DeleteRangeRequest(key=raw)))
        # On failure, read back every compared key in the same transaction,
        # to name the op that failed (and to recognise a write of our own).
        failure = [
            rpc.RequestOp(request_range=rpc.RangeRequest(key=self._key(op.key)))
            for op in conditioned
        ]
        request = rpc.TxnRequest(compare=compares, success=success, failure=failure)
        try:
            response, ambiguous = await self._txn_call(request)
        except Internal as error:
            raise _lease_gone(error, lease) from error.__cause__
        revision = int(response.header.revision)
        if response.succeeded:
            return TxnResult(ok=True, revision=revision)
        for op, reply in zip(conditioned, response.responses, strict=True):
            kvs = reply.response_range.kvs
            current = int(kvs[0].mod_revision) if kvs else 0
            if (op.kind == "create" and kvs) or (op.kind == "check" and current != op.revision):
                if ambiguous and landed(ops, encoded, op.key, kvs):
                    return TxnResult(ok=True, revision=revision)
                return TxnResult(ok=False, failed_key=op.key, revision=revision)
        # Only reachable if etcd and this code disagree on a comparison.
        return TxnResult(ok=False, failed_key=conditioned[0].key, revision=revision)

    def watch(self, prefix: str, start_revision: int = 0) -> AsyncIterator[Event]:
        """Events under ``prefix`` from ``start_revision`` (inclusive), in order.

        ``start_revision=0`` means "from now": after the newest revision this
        client has seen, so events after this call are never missed (a few
        just before it may be replayed). Prefer ``snapshot()`` + ``rev + 1``.
        """
        if self._closed:
            raise RuntimeError("store is closed")
        start = start_revision
        if start <= 0 and self._known_revision:
            start = self._known_revision + 1
        return self._follow(prefix, start)

    async def _follow(self, prefix: str, start: int) -> AsyncIterator[Event]:
        next_revision = start
        backoff = Backoff(_RESUME_MIN, _RESUME_MAX)
        outage = False
        while not self._closed:
            index, client = self._client()
            call: Any = None
            try:
                try:
                    call = await self._open_watch(client, prefix, next_revision)
                    created = await asyncio.wait_for(_read(call), self.timeout)
                    self._check_watch_response(created, start, next_revision)
                    if next_revision <= 0:
                        next_revision = int(created.header.revision) + 1
                    if outage:
                        log.info("watch on %s%s resumed at %d", self, prefix, next_revision)
                        outage = False
                    while True:
                        response = await _read(call)
                        self._check_watch_response(response, start, next_revision)
                        backoff.reset()  # not at creation: a stream that breaks at once backs off
                        for event in response.events:
                            ev = self._event(event)
                            next_revision = ev.revision + 1
                            yield ev
                except (WatchCompacted, TetherError):
                    raise
                except Exception as error:
                    if self._closed:
                        return  # the store was closed under us: the watch ends
                    translated = self._translate(index, error)
                    if not isinstance(translated, Unavailable):
                        raise translated from error
                    if not outage:
                        log.warning("watch on %s%s interrupted: %s", self, prefix, translated)
                        outage = True
            finally:
                if call is not None:
                    call.cancel()
            self._observe("watch_resume")
            await self._resume_wait(backoff.next())

    async def _resume_wait(self, delay: float) -> None:
        """Wait ``delay`` before a watch resumes, or less: until etcd is back
        (``wait_answered``)."""
        first = min(delay, _RESUME_FLOOR)  # never sooner than this, answers or not
        await asyncio.sleep(first)
        await self.wait_answered(delay - first)

    async def wait_answered(self, timeout: float) -> bool:
        """Up to ``timeout`` seconds for etcd to be back: the lease's keep-alive (or grant)
        answered after one of them got no answer (True); False when the time ran out. A
        store that is merely slow (keep-alives pass, other calls time out) is not "back":
        the back-off sleeps that wait here go on under overload. Each host's keep-alive
        comes at its own jittered time, so the recovery of many hosts is spread too."""
        return await self.recovery.wait(timeout)

    async def _open_watch(self, client: Any, prefix: str, start: int) -> Any:
        from aetcd import rpc

        await client.connect()
        key = self._key(prefix)
        create = rpc.WatchCreateRequest(
            key=key or b"\0", range_end=range_end(key), start_revision=start
        )
        stub = rpc.WatchStub(client.channel)
        call = stub.Watch(metadata=client.metadata)
        try:
            request = rpc.WatchRequest(create_request=create)
            await asyncio.wait_for(call.write(request), self.timeout)
        except BaseException:
            call.cancel()
            raise
        return call

    def _check_watch_response(self, response: Any, start: int, next_revision: int) -> None:
        if response is importlib.import_module("grpc.aio").EOF:
            raise ConnectionError("watch stream closed by the server")
        if response.compact_revision:
            raise WatchCompacted(max(start, next_revision), int(response.compact_revision))
        if response.canceled and stale_token(response.cancel_reason):
            raise StaleToken(response.cancel_reason)
        if response.canceled:
            raise Internal(f"cluster store watch was cancelled: {response.cancel_reason}")
        if response.header.revision > self._known_revision:
            self._known_revision = int(response.header.revision)

    def _event(self, event: Any) -> Event:
        from aetcd import rpc

        from tether.store.codec import decode_value

        kv = event.kv
        key = self._unkey(kv.key)
        if event.type == rpc.Event.EventType.DELETE:
            return Event("delete", key, None, int(kv.mod_revision))
        return Event("put", key, decode_value(kv.value.decode()), int(kv.mod_revision))

    # -- leases and maintenance ---------------------------------------------

    async def grant_lease(self, ttl: int) -> int:
        """A new lease of ``ttl`` seconds; returns its id."""
        from aetcd import rpc

        request = rpc.LeaseGrantRequest(TTL=ttl)
        response = await self._call(
            lambda c: c.leasestub.LeaseGrant(request, timeout=self.timeout, metadata=c.metadata),
            priority=True,
        )
        if response.error:
            raise Internal(f"cluster store {self.name} refused a lease: {response.error}")
        return int(response.ID)

    async def keepalive(self, lease_id: int) -> int:
        """Refresh a lease once; returns its TTL. ``LeaseExpired`` if gone."""
        from aetcd import rpc

        async def refresh(client: Any) -> Any:
            call = client.leasestub.LeaseKeepAlive(timeout=self.timeout, metadata=client.metadata)
            try:
                await call.write(rpc.LeaseKeepAliveRequest(ID=lease_id))
                return await call.read()
            finally:
                call.cancel()

        response = await self._call(refresh, priority=True)
        if int(response.TTL) <= 0:
            raise LeaseExpired(lease_id)
        return int(response.TTL)

    async def revoke_lease(self, lease_id: int) -> None:
        """Revoke a lease now (its keys are deleted); a missing lease is fine."""
        from aetcd import rpc

        request = rpc.LeaseRevokeRequest(ID=lease_id)
        try:
            await self._call(
                lambda c: c.leasestub.LeaseRevoke(
                    request, timeout=self.timeout, metadata=c.metadata
                )
            )
        except Internal as error:
            cause = error.__cause__
            if not (
                isinstance(cause, rpc.AioRpcError) and cause.code() == rpc.StatusCode.NOT_FOUND
            ):
                raise

    async def compact(self, revision: int) -> None:
        """Drop history up to ``revision`` (watches from before it get
        ``WatchCompacted``)."""
        from aetcd import rpc

        request = rpc.CompactionRequest(revision=revision, physical=True)
        await self._call(
            lambda c: c.kvstub.Compact(request, timeout=self.timeout, metadata=c.metadata)
        )

    async def close(self) -> None:
        self._closed = True
        clients, self._clients = list(self._clients.values()), {}
        for client in clients:
            with contextlib.suppress(Exception):
                await asyncio.wait_for(client.close(), self.timeout)


T = TypeVar("T")


async def _not_foreign_cancel(aw: Awaitable[T]) -> T:
    """Await ``aw``; a CancelledError that is not this task's own cancellation
    (grpc raises one when the channel is closed under a call) becomes
    ``ConnectionError`` so it is handled like a broken connection."""
    try:
        return await aw
    except asyncio.CancelledError:
        task = asyncio.current_task()
        if task is not None and task.cancelling():
            raise
        raise ConnectionError("the call was cancelled by a channel shutdown") from None


async def _read(call: Any) -> Any:
    return await _not_foreign_cancel(call.read())


def _is_timeout(error: BaseException) -> bool:
    """A call that got no answer in time (ours or gRPC's deadline), not a refused one."""
    if isinstance(error, TimeoutError):
        return True
    code = getattr(error, "code", None)
    if callable(code):
        with contextlib.suppress(Exception):
            return "DEADLINE_EXCEEDED" in str(code())
    return False


def _short(detail: str) -> str:
    """gRPC's connection details, trimmed to the part a person needs."""
    lowered = detail.lower()
    if "connection refused" in lowered:
        return "connection refused"
    if "deadline" in lowered:
        return "no answer in time"
    return detail.splitlines()[0][:200] if detail else "unavailable"
