"""``LeaseKeeper``: one etcd lease kept alive by a refresh task its owner cancels."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable
from typing import TypeVar

from tether.errors import Unavailable
from tether.store.backoff import Backoff, jittered
from tether.store.base import LeaseExpired
from tether.store.etcd import EtcdStore

T = TypeVar("T")

log = logging.getLogger("tether.store.etcd")


# Keep-alive every ttl/KEEPALIVE_PER_TTL seconds (jittered); a keep-alive that fails (etcd
# slow or away) is retried with back-off from RETRY_BASE up to RETRY_CAP, still within the
# TTL; a new lease is granted only when etcd answers that the lease is gone, with back-off
# from REGRANT_BASE up to REGRANT_CAP between refused grants. See docs/cluster-overload.md.
KEEPALIVE_PER_TTL = 4
RETRY_BASE = 1.0
RETRY_CAP = 5.0
REGRANT_BASE = 1.0
REGRANT_CAP = 30.0


class LeaseKeeper:
    """Keeps one etcd lease alive with an owned refresh task.

    ``await start()`` grants the lease and starts refreshing it every ttl/4 seconds
    (±20 %); ``lease_id`` is the live lease. A refresh that fails (etcd slow or
    unreachable) is retried with exponential back-off and jitter (1 s, 2 s, 4 s, then the
    keep-alive interval: a slow etcd costs two or three more keep-alives per outage, never
    a faster cadence than the healthy one for long, and never a new lease). Only when etcd
    answers that the lease is gone (it was away for longer than the TTL) does the keeper
    grant a new one (after 0.5-1 s, then with back-off from 1 s up to 30 s while refused)
    and await ``on_regrant(new_id)`` so the owner can put its keys again. ``close()`` stops
    the task and, by default, revokes the lease (deleting its keys).

    A write can find the lease gone before the next keep-alive does (etcd was away for
    longer than the TTL, or restarted without it): ``under(write)`` runs ``write(lease_id)``
    and, when it raises ``LeaseExpired``, replaces the lease at once (``replace``: one grant
    however many writers found it gone together, ``on_regrant`` awaited) and runs the write
    once more, so a ``docker run`` right after an outage does not fail on a stale lease.

    ``on_renewal`` gets each
    refresh's outcome ("ok", "expired", "failed") and "granted" for every lease granted after
    the first; ``on_backoff(what, seconds)`` each back-off sleep.
    """

    def __init__(
        self,
        store: EtcdStore,
        ttl: int,
        on_regrant: Callable[[int], Awaitable[None]] | None = None,
        on_renewal: Callable[[str], None] | None = None,
        on_backoff: Callable[[str, float], None] | None = None,
    ) -> None:
        if ttl < 2:
            raise ValueError("lease ttl must be at least 2 seconds")
        self.store = store
        self.ttl = ttl
        self.on_regrant = on_regrant
        self.on_renewal = on_renewal
        self.on_backoff = on_backoff
        self.lease_id = 0
        self._task: asyncio.Task[None] | None = None
        self._granting = asyncio.Lock()  # one grant at a time (``replace``)

    async def start(self) -> int:
        if self._task is not None:
            raise RuntimeError("lease keeper already started")
        self.lease_id = await self.store.grant_lease(self.ttl)
        self._task = asyncio.create_task(self._run(), name=f"lease-keeper-{self.lease_id:x}")
        return self.lease_id

    @property
    def running(self) -> bool:
        return self._task is not None and not self._task.done()

    @property
    def interval(self) -> float:
        return max(self.ttl / KEEPALIVE_PER_TTL, 0.5)

    async def _run(self) -> None:
        retry = Backoff(min(RETRY_BASE, self.interval), min(RETRY_CAP, self.interval))
        delay = jittered(self.interval)
        while True:
            await asyncio.sleep(delay)
            try:
                await self.store.keepalive(self.lease_id)
                self._renewed("ok")
            except LeaseExpired:
                self._renewed("expired")
                log.warning("etcd lease %x expired; granting a new one", self.lease_id)
                await self._regrant()
            except Exception as error:
                self._renewed("failed")
                if isinstance(error, Unavailable):
                    log.warning("lease %x not refreshed: %s", self.lease_id, error)
                else:
                    log.exception("lease %x refresh failed", self.lease_id)
                delay = retry.next()
                self._backed_off("keepalive", delay)
                continue
            retry.reset()
            delay = jittered(self.interval)

    def _renewed(self, outcome: str) -> None:
        if self.on_renewal is not None:
            self.on_renewal(outcome)

    def _backed_off(self, what: str, seconds: float) -> None:
        if self.on_backoff is not None:
            self.on_backoff(what, seconds)

    async def _regrant(self) -> None:
        lost = self.lease_id
        backoff = Backoff(REGRANT_BASE, REGRANT_CAP)
        while self.lease_id == lost:  # a writer's ``replace`` may get there first
            # even the first grant waits 0.5-1 s: when etcd comes back after more than a
            # TTL, every host's lease is gone at once and their grants must not all land
            # (with every host's records put again) in the same instant
            delay = backoff.next()
            self._backed_off("grant", delay)
            await asyncio.sleep(delay)
            try:
                await self.replace(lost, announce_errors=False)
            except Unavailable:
                continue

    async def replace(self, lost: int, announce_errors: bool = True) -> int:
        """The live lease, granted anew if it is still ``lost`` (found gone by a write or a
        keep-alive); ``on_regrant`` is awaited before this returns. Writers that found the
        same lease gone together share one grant. ``Unavailable`` when etcd refuses the
        grant; with ``announce_errors`` an ``on_regrant`` failure is raised too (without
        it, logged: the keeper's own path has nobody to raise to)."""
        async with self._granting:
            if self.lease_id != lost:
                return self.lease_id
            self.lease_id = await self.store.grant_lease(self.ttl)
            self._renewed("granted")
            if self.on_regrant is not None:
                try:
                    await self.on_regrant(self.lease_id)
                except Exception:
                    if announce_errors:
                        raise
                    log.exception("re-registering under lease %x failed", self.lease_id)
            return self.lease_id

    async def under(self, write: Callable[[int], Awaitable[T]]) -> T:
        """``write(lease_id)``; if etcd answers that the lease is gone, the lease is
        replaced (``replace``) and the write runs once more under the new one."""
        lease_id = self.lease_id
        try:
            return await write(lease_id)
        except LeaseExpired as gone:
            self._renewed("expired")
            log.warning("etcd lease %x is gone (found by a write); granting a new one", lease_id)
            return await write(await self.replace(gone.lease_id))

    async def close(self, revoke: bool = True) -> None:
        task, self._task = self._task, None
        if task is not None:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
        if revoke and self.lease_id:
            with contextlib.suppress(Unavailable):
                await self.store.revoke_lease(self.lease_id)
