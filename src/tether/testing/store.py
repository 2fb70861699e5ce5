"""An in-memory Store (a test double with the real stores' contract).

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

import builtins
from collections.abc import AsyncIterator, Sequence

from tether.store.base import Event, Op, Record, TxnResult, Value
from tether.store.codec import decode_value, encode_ops
from tether.store.watchhub import LocalWatchHub


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
