"""``LeaseKeeper``: one etcd lease kept alive by a refresh task its owner cancels."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable

from tether.errors import Unavailable
from tether.store.etcd import EtcdStore, LeaseExpired

log = logging.getLogger("tether.store.etcd")


class LeaseKeeper:
    """Keeps one etcd lease alive with an owned refresh task.

    ``await start()`` grants the lease and starts refreshing every ttl/3
    seconds; ``lease_id`` is the live lease. While etcd is unreachable the
    keeper retries every second. If the lease expired anyway (etcd down for
    longer than ttl), the keeper grants a new one and awaits
    ``on_regrant(new_id)`` so the owner can put its keys again. ``close()``
    stops the task and, by default, revokes the lease (deleting its keys).
    """

    def __init__(
        self,
        store: EtcdStore,
        ttl: int,
        on_regrant: Callable[[int], Awaitable[None]] | None = None,
        on_renewal: Callable[[str], None] | None = None,
    ) -> None:
        if ttl < 2:
            raise ValueError("lease ttl must be at least 2 seconds")
        self.store = store
        self.ttl = ttl
        self.on_regrant = on_regrant
        self.on_renewal = on_renewal  # each refresh's outcome: "ok", "expired" or "failed"
        self.lease_id = 0
        self._task: asyncio.Task[None] | None = None

    async def start(self) -> int:
        if self._task is not None:
            raise RuntimeError("lease keeper already started")
        self.lease_id = await self.store.grant_lease(self.ttl)
        self._task = asyncio.create_task(self._run(), name=f"lease-keeper-{self.lease_id:x}")
        return self.lease_id

    @property
    def running(self) -> bool:
        return self._task is not None and not self._task.done()

    async def _run(self) -> None:
        interval = max(self.ttl / 3, 0.5)
        while True:
            await asyncio.sleep(interval)
            try:
                await self.store.keepalive(self.lease_id)
                self._renewed("ok")
            except LeaseExpired:
                self._renewed("expired")
                log.warning("etcd lease %x expired; granting a new one", self.lease_id)
                await self._regrant()
            except Unavailable as error:
                self._renewed("failed")
                log.warning("lease %x not refreshed: %s", self.lease_id, error)
                await asyncio.sleep(min(1.0, interval))
            except Exception:
                self._renewed("failed")
                log.exception("lease %x refresh failed", self.lease_id)

    def _renewed(self, outcome: str) -> None:
        if self.on_renewal is not None:
            self.on_renewal(outcome)

    async def _regrant(self) -> None:
        while True:
            try:
                self.lease_id = await self.store.grant_lease(self.ttl)
                break
            except Unavailable:
                await asyncio.sleep(1.0)
        if self.on_regrant is not None:
            try:
                await self.on_regrant(self.lease_id)
            except Exception:
                log.exception("re-registering under lease %x failed", self.lease_id)

    async def close(self, revoke: bool = True) -> None:
        task, self._task = self._task, None
        if task is not None:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
        if revoke and self.lease_id:
            with contextlib.suppress(Unavailable):
                await self.store.revoke_lease(self.lease_id)
