"""An in-memory Store, plus the local watch hub the SQLite store shares.

``MemoryStore`` follows the same contract as the SQLite and etcd stores
(see ``tether.store.base``): one global revision counter that every write
(or every transaction that writes) bumps once; a record's revision is the
revision of its last modification; a watch replays history from a start
revision and then follows live changes, in revision order.

History is bounded (``history`` events). A watch asking for a revision older
than the retained history, or a watcher that falls too far behind, gets
``WatchCompacted`` (the caller does a full resync), exactly as with etcd.
``compact(revision)`` drops history by hand so tests can exercise that path.
"""

from __future__ import annotations

import asyncio
import builtins
import json
import weakref
from collections import deque
from collections.abc import AsyncIterator, Sequence

from tether.store.base import Event, Op, Record, TxnResult, Value
from tether.store.etcd import WatchCompacted

__all__ = [
    "LocalWatchHub",
    "MemoryStore",
    "WatchCompacted",
    "decode_value",
    "encode_ops",
    "encode_value",
]

# Events a single watcher may have queued before it is dropped as too slow.
WATCH_QUEUE_LIMIT = 10_000


def encode_value(value: Value) -> str:
    """The canonical JSON text of a value (also validates it is JSON-able)."""
    if not isinstance(value, dict):
        raise TypeError(f"store values must be dicts, not {type(value).__name__}")
    return json.dumps(value, separators=(",", ":"), sort_keys=True)


def decode_value(text: str) -> Value:
    value = json.loads(text)
    if not isinstance(value, dict):
        raise ValueError("stored value is not a JSON object")
    return value


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


class MemoryStore:
    """The whole store in a dict; for unit tests and fakes."""

    def __init__(self, history: int = 10_000) -> None:
        self._data: dict[str, tuple[str, int]] = {}
        self._revision = 0
        self._hub = LocalWatchHub(history)
        self._closed = False

    @property
    def revision(self) -> int:
        """The store's current revision (that of the last write)."""
        return self._revision

    async def get(self, key: str) -> Record | None:
        self._check_open()
        item = self._data.get(key)
        if item is None:
            return None
        return Record(key, decode_value(item[0]), item[1])

    async def list(self, prefix: str) -> list[Record]:
        self._check_open()
        return [
            Record(key, decode_value(text), rev)
            for key, (text, rev) in sorted(self._data.items())
            if key.startswith(prefix)
        ]

    async def snapshot(self, prefix: str) -> tuple[builtins.list[Record], int]:
        """``list(prefix)`` and the revision it reflects (watch from rev + 1)."""
        return await self.list(prefix), self._revision

    async def current_revision(self) -> int:
        self._check_open()
        return self._revision

    async def put(self, key: str, value: Value) -> int:
        result = await self.txn([Op("put", key, value)])
        return result.revision

    async def create(self, key: str, value: Value) -> bool:
        result = await self.txn([Op("create", key, value)])
        return result.ok

    async def delete(self, key: str) -> bool:
        self._check_open()
        if key not in self._data:
            return False
        await self.txn([Op("delete", key)])
        return True

    async def txn(self, ops: Sequence[Op]) -> TxnResult:
        self._check_open()
        encoded = encode_ops(ops)
        for op in ops:
            item = self._data.get(op.key)
            current = item[1] if item else 0
            if (op.kind == "create" and item is not None) or (
                op.kind == "check" and current != op.revision
            ):
                return TxnResult(ok=False, failed_key=op.key, revision=self._revision)
        events: list[Event] = []
        rev = self._revision + 1
        for op, text in zip(ops, encoded, strict=True):
            if op.kind in ("put", "create"):
                assert text is not None
                self._data[op.key] = (text, rev)
                events.append(Event("put", op.key, decode_value(text), rev))
            elif op.kind == "delete" and self._data.pop(op.key, None) is not None:
                events.append(Event("delete", op.key, None, rev))
        if events:
            self._revision = rev
            self._hub.publish(events)
        return TxnResult(ok=True, revision=self._revision)

    def watch(self, prefix: str, start_revision: int = 0) -> AsyncIterator[Event]:
        self._check_open()
        return self._hub.watch(prefix, start_revision, self._revision)

    def compact(self, revision: int) -> None:
        """Drop watch history up to ``revision`` (as ``etcdctl compact``)."""
        self._hub.compact(revision)

    async def close(self) -> None:
        self._closed = True
        self._hub.close()

    def _check_open(self) -> None:
        if self._closed:
            raise RuntimeError("store is closed")


def encode_ops(ops: Sequence[Op]) -> list[str | None]:
    """Validate every op before anything is applied (all or nothing)."""
    out: list[str | None] = []
    written: set[str] = set()
    for op in ops:
        if op.kind != "check":
            if op.key in written:
                raise ValueError(f"duplicate key {op.key!r} in transaction")
            written.add(op.key)
        if op.kind in ("put", "create"):
            if op.value is None:
                raise ValueError(f"{op.kind} of {op.key!r} needs a value")
            out.append(encode_value(op.value))
        elif op.kind in ("delete", "check"):
            out.append(None)
        else:
            raise ValueError(f"unknown op kind {op.kind!r}")
    return out
