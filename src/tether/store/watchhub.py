"""The local watch hub: live events and bounded history for a single-process store.

Used by the SQLite store (and the in-memory test store): writers ``publish``
events in revision order, each watcher gets its own queue; a watcher that asks
for history older than what is kept, or falls too far behind, gets
``WatchCompacted``, exactly as with etcd.
"""

from __future__ import annotations

import asyncio
import weakref
from collections import deque
from collections.abc import AsyncIterator, Sequence

from tether.store.base import Event, WatchCompacted

# Events a single watcher may have queued before it is dropped as too slow.
WATCH_QUEUE_LIMIT = 10_000


class _Subscription:
    def __init__(self, prefix: str, start: int) -> None:
        self.prefix = prefix
        self.start = start
        self.queue: asyncio.Queue[Event | None] = asyncio.Queue()
        self.compacted_at: int | None = None

    def offer(self, event: Event) -> bool:
        """Queue an event; False when the watcher is too far behind."""
        if event.revision < self.start or not event.key.startswith(self.prefix):
            return True
        if self.queue.qsize() >= WATCH_QUEUE_LIMIT:
            return False
        self.queue.put_nowait(event)
        return True


class LocalWatchHub:
    """In-process fan-out of change events with bounded replay history.

    Subscribers are held weakly: a watch iterator that is dropped without
    being iterated (or after being cancelled) disappears by itself.
    """

    def __init__(self, history: int = 10_000) -> None:
        self._history: deque[Event] = deque(maxlen=history)
        # Every revision <= this one may be missing from the history.
        self._compacted = 0
        self._subs: weakref.WeakSet[_Subscription] = weakref.WeakSet()

    @property
    def compacted_revision(self) -> int:
        return self._compacted

    def reset(self, revision: int) -> None:
        """Forget history; revisions <= ``revision`` can no longer be replayed."""
        self._history.clear()
        self._compacted = max(self._compacted, revision)

    def compact(self, revision: int) -> None:
        while self._history and self._history[0].revision <= revision:
            self._history.popleft()
        self._compacted = max(self._compacted, revision)

    def publish(self, events: Sequence[Event]) -> None:
        for event in events:
            if len(self._history) == self._history.maxlen:
                self._compacted = max(self._compacted, self._history[0].revision)
            self._history.append(event)
        for sub in list(self._subs):
            for event in events:
                if not sub.offer(event):
                    self._drop(sub)
                    break

    def close(self) -> None:
        for sub in list(self._subs):
            sub.queue.put_nowait(None)
        self._subs.clear()

    def _drop(self, sub: _Subscription) -> None:
        sub.compacted_at = self._compacted
        self._subs.discard(sub)
        sub.queue.put_nowait(None)

    def watch(self, prefix: str, start_revision: int, current: int) -> AsyncIterator[Event]:
        """Subscribe now (so nothing after this call is missed); iterate later."""
        start = start_revision if start_revision > 0 else current + 1
        sub = _Subscription(prefix, start)
        if start <= self._compacted:
            sub.compacted_at = self._compacted
            sub.queue.put_nowait(None)
        else:
            for event in self._history:
                sub.offer(event)
            self._subs.add(sub)
        return self._iterate(sub)

    async def _iterate(self, sub: _Subscription) -> AsyncIterator[Event]:
        try:
            while True:
                event = await sub.queue.get()
                if event is None:
                    if sub.compacted_at is not None:
                        raise WatchCompacted(sub.start, sub.compacted_at)
                    return
                yield event
        finally:
            self._subs.discard(sub)
