"""The store interface: a small transactional key-value contract.

Keys are ``/``-separated strings (``networks/<id>``, ``ipam/<pool>/<ip>``);
values are JSON-able dicts. Every record carries a revision so callers can do
compare-and-swap; the SQLite store (one host) and the etcd store (cluster)
implement the same contract, so the engine never knows which it talks to.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal, Protocol

from tether.errors import TetherError

Value = dict[str, Any]


class LeaseExpired(TetherError):
    """The lease is gone (expired or revoked); its keys were deleted. Raised by a
    keep-alive of it and by a write attached to it (etcd: "requested lease not found")."""

    status = 410

    def __init__(self, lease_id: int) -> None:
        super().__init__(f"lease {lease_id:x} has expired")
        self.lease_id = lease_id


@dataclass(frozen=True)
class Record:
    key: str
    value: Value
    revision: int


@dataclass(frozen=True)
class Op:
    """One operation of a transaction.

    kind ``put`` writes unconditionally, ``create`` fails the whole
    transaction if the key exists, ``delete`` removes (missing is fine),
    ``check`` asserts the key's revision (0 = absent) without writing.
    """

    kind: Literal["put", "create", "delete", "check"]
    key: str
    value: Value | None = None
    revision: int = 0


@dataclass(frozen=True)
class Event:
    kind: Literal["put", "delete"]
    key: str
    value: Value | None
    revision: int


@dataclass
class TxnResult:
    ok: bool
    failed_key: str | None = None
    revision: int = 0
    extra: dict[str, Any] = field(default_factory=dict)


class Store(Protocol):
    async def get(self, key: str) -> Record | None: ...

    async def list(self, prefix: str) -> list[Record]: ...

    async def put(self, key: str, value: Value) -> int: ...

    async def create(self, key: str, value: Value) -> bool:
        """Write only if absent; False when the key exists."""
        ...

    async def delete(self, key: str) -> bool: ...

    async def txn(self, ops: Sequence[Op]) -> TxnResult:
        """Apply every op atomically, or none (ok False, failed_key set)."""
        ...

    def watch(self, prefix: str, start_revision: int = 0) -> AsyncIterator[Event]: ...

    async def close(self) -> None: ...


class WatchCompacted(Exception):
    """A watch cannot continue from its revision: the history it needs is gone.

    Raised by every store's watch iterator when ``start_revision`` is older
    than the retained history (etcd compaction) or the watcher fell too far
    behind. The caller lists the prefix again (full resync, e.g. with
    ``snapshot()``) and watches from the listing's revision + 1.
    """

    def __init__(self, start_revision: int, compact_revision: int) -> None:
        super().__init__(
            f"watch from revision {start_revision} is compacted "
            f"(history starts after revision {compact_revision})"
        )
        self.start_revision = start_revision
        self.compact_revision = compact_revision
