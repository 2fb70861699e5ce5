"""The watch of the etcd store (``EtcdWatches``, a base of ``tether.store.etcd.EtcdStore``).

``watch`` follows a prefix from a start revision over its own gRPC stream; it resumes by
itself after etcd restarts (from the last revision seen, with back-off and jitter, earlier
when etcd is back: ``wait_answered``) and raises ``WatchCompacted`` when the history it
needs is gone. Cancelling the consuming task (or ``aclose()``) cancels the stream: no task
is left behind.
"""

from __future__ import annotations

import asyncio
import importlib
import logging
from collections.abc import AsyncIterator
from typing import Any

from tether.errors import Internal, TetherError, Unavailable
from tether.store.backoff import Backoff
from tether.store.base import Event, WatchCompacted
from tether.store.etcdcall import EtcdCalls, read_stream
from tether.store.etcdconn import StaleToken, stale_token

log = logging.getLogger("tether.store.etcd")

# Watch resume back-off after the stream broke (etcd restarting or overloaded): equal
# jitter from 0.2 s up to 5 s, so a hundred watches broken together come back spread out.
_RESUME_MIN = 0.2
_RESUME_MAX = 5.0
_RESUME_FLOOR = 1.0  # a watch resumes early when etcd answers again, but not sooner than this


def range_end(prefix: bytes) -> bytes:
    """The etcd ``range_end`` that selects every key starting with prefix."""
    out = bytearray(prefix)
    while out:
        if out[-1] < 0xFF:
            out[-1] += 1
            return bytes(out)
        out.pop()
    return b"\0"  # empty prefix: every key


class EtcdWatches(EtcdCalls):
    """``watch``: a prefix followed over a gRPC stream that resumes by itself."""

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
                    created = await asyncio.wait_for(read_stream(call), self.timeout)
                    self._check_watch_response(created, start, next_revision)
                    if next_revision <= 0:
                        next_revision = int(created.header.revision) + 1
                    if outage:
                        log.info("watch on %s%s resumed at %d", self, prefix, next_revision)
                        outage = False
                    while True:
                        response = await read_stream(call)
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
