"""Remote endpoints from the cluster watch, applied to the data path in batches (issue 20).

Every host watches every endpoint record (one prefix watch on ``cluster/``), but it does
work for one only where it matters, as Docker's overlay driver does: the record goes into
the ``EndpointBook`` at once (a dict write: what the embedded DNS and a later first join
read), while the kernel entries (FDB and neighbour, through the overlay driver) and the DNS
answer caches are touched only for overlay networks with a local endpoint here. A network
without one has no devices here, so nothing is programmed for it; when its first local
container joins, the driver wires it and catches up on every remote endpoint the book holds
in one batch; when the last one leaves, the devices go and with them every entry.

A burst of records (200 ``docker run`` across the cluster) comes as one event each. The
``PeerBatcher`` coalesces them: the first change marks its network and endpoint dirty and
starts a flush after ``window`` seconds (20 ms); the flush reads each dirty endpoint's
*current* record from the book (so a put and a delete inside one window cost nothing, and
the order of events needs no care) and hands each network's changes to the driver as one
netlink batch: one socket, one device lookup, one request per entry, instead of a socket
and a lookup per entry. Changes made while a flush runs are taken by the next one.

A network's batch that fails (a netlink error on a loaded host, or any other error) is marked
dirty again and tried again after a back-off (0.1 s doubling up to 5 s, equal jitter), and
the other networks of the flush go on: a change was once dropped until the next full resync,
which only a broken watch brings, so a new remote endpoint could stay unreachable.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable

from tether.contracts.cluster import OverlayDataPath, Peer
from tether.engine.cluster_endpoints import EndpointBook, peer_of
from tether.engine.nettable import NetworkTable
from tether.errors import TetherError
from tether.store.backoff import Backoff

log = logging.getLogger("tether.cluster")

BATCH_WINDOW = 0.02  # seconds a change waits for others to join its batch
RETRY_BASE = 0.1  # a failed batch is tried again after 0.1 s, doubling ...
RETRY_CAP = 5.0  # ... up to 5 s while it keeps failing


class PeerBatcher:
    """Coalesces remote endpoint changes per network and applies them in batches.

    ``wait`` (tests) replaces the ``window`` sleep; ``notify`` is called after a flush that
    changed a network with a local endpoint (the DNS answer caches)."""

    def __init__(
        self,
        book: EndpointBook,
        driver: OverlayDataPath,
        table: NetworkTable,
        notify: Callable[[], None],
        window: float = BATCH_WINDOW,
        wait: Callable[[], Awaitable[object]] | None = None,
    ) -> None:
        self.book = book
        self.driver = driver
        self.table = table
        self.notify = notify
        self.window = window
        self._wait = wait
        self._dirty: dict[str, set[str]] = {}  # network id -> endpoint ids changed
        self._task: asyncio.Task[None] | None = None
        self.batches = 0  # flushes that programmed something (read by tests and the bench)

    def mark(self, net_id: str, ep_id: str) -> None:
        """An endpoint record changed (the book holds the new state already)."""
        self._dirty.setdefault(net_id, set()).add(ep_id)
        if self._task is None or self._task.done():
            self._task = asyncio.create_task(self._run(), name="cluster-peers")

    async def _run(self) -> None:
        retry = Backoff(RETRY_BASE, RETRY_CAP)
        delay = self.window
        while self._dirty:
            if self._wait is not None:
                await self._wait()
            else:
                await asyncio.sleep(delay)
            if await self.flush():
                retry.reset()
                delay = self.window
            else:
                delay = max(self.window, retry.next())

    async def flush(self) -> bool:
        """Apply every pending change now; False when a network's batch failed (its changes
        are pending again)."""
        dirty, self._dirty = self._dirty, {}
        ok = True
        local_changed = False
        for net_id, ep_ids in dirty.items():
            net = self.table.networks.get(net_id)
            if net is None or not self.driver.wired(net_id):
                continue  # no local endpoint here: the book is enough (caught up at first join)
            local_changed = True
            records = self.book.endpoints.get(net_id, {})
            changes: dict[str, Peer | None] = {}
            for eid in ep_ids:
                rec = records.get(eid)
                mine = rec is not None and rec.get("host") == self.book.host
                changes[eid] = peer_of(eid, rec) if rec is not None and not mine else None
            try:
                await self.driver.peers_changed(net, changes)
                self.batches += 1
            except Exception as exc:  # tried again (the records are read anew then)
                ok = False
                self._dirty.setdefault(net_id, set()).update(ep_ids)
                text = exc.message if isinstance(exc, TetherError) else repr(exc)
                log.error("programming %d peers of %s (tried again): %s", len(changes), net.name,
                          text, exc_info=not isinstance(exc, TetherError))  # fmt: skip
        if local_changed:
            self.notify()
        return ok

    async def close(self) -> None:
        task, self._task = self._task, None
        if task is not None:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
