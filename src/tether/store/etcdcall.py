"""The calls of the etcd store: one member's connection after another, failover, and the
overload guards (``EtcdCalls``, the base of ``tether.store.etcd.EtcdStore``).

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
own calls go around the line, and they are the probe of "etcd is back"
(``wait_answered``). ``observer`` counts requests, timeouts and waits.

gRPC and fork: the daemon forks short-lived helpers (pyroute2 opens sockets
in network namespaces that way). With gRPC loaded every fork logs a warning
and gRPC's fork handlers run; this module sets ``GRPC_ENABLE_FORK_SUPPORT=false``
before gRPC is imported. That only works if nothing imported ``grpc`` first:
import ``tether.store.etcd`` (which imports this module; cheap: aetcd and grpc load
lazily, on first connect) before anything else that may import grpc.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
from collections.abc import Awaitable, Callable, Sequence
from typing import Any, TypeVar

from tether.errors import Internal, TetherError, Unavailable
from tether.store.backoff import Limiter, Recovery
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

# Store calls in flight per daemon (the adaptive limit starts here; docs/cluster-overload.md).
LIMITER_SIZE = 4


class EtcdCalls:
    """Connections to the members and one RPC with failover through the limiter; the
    store's state (endpoints, prefix, revisions seen). Connects lazily."""

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

    async def wait_answered(self, timeout: float) -> bool:
        """Up to ``timeout`` seconds for etcd to be back: the lease's keep-alive (or grant)
        answered after one of them got no answer (True); False when the time ran out. A
        store that is merely slow (keep-alives pass, other calls time out) is not "back":
        the back-off sleeps that wait here go on under overload. Each host's keep-alive
        comes at its own jittered time, so the recovery of many hosts is spread too."""
        return await self.recovery.wait(timeout)

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


async def read_stream(call: Any) -> Any:
    """The next message of a gRPC stream (a channel shut down under it: ``ConnectionError``)."""
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
