"""The embedded store (one host): a SQLite file in WAL mode.

Schema: ``kv(key PRIMARY KEY, value TEXT, rev INTEGER)`` plus ``meta``
holding the global revision counter, which survives restarts. Every write
(or transaction that writes) takes ``BEGIN IMMEDIATE``, bumps the counter
once and stamps every row it touches with the new revision, so revisions
mean the same as in etcd.

All SQLite calls run on one worker thread the store owns (the event loop
never blocks on the file; the single thread serialises access), and
``close()`` stops it. Only one daemon owns the file, so watches are served
in-process: events are published to local subscribers after each commit.
History for replay is kept in memory since this process opened the file; a
watch from an older revision raises ``WatchCompacted`` (caller resyncs). It is
bounded to the last ``HISTORY`` events: each holds a decoded record (a container's
is ~5 KiB), so 10,000 of them made the daemon's RSS grow by ~50 MiB under churn.
"""

from __future__ import annotations

import asyncio
import builtins
import contextlib
import os
import sqlite3
from collections.abc import AsyncIterator, Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import TypeVar

from tether.store.base import Event, Op, Record, TxnResult, Value
from tether.store.codec import decode_value, encode_ops
from tether.store.watchhub import LocalWatchHub

__all__ = ["SqliteStore"]

T = TypeVar("T")

_SCHEMA = """
CREATE TABLE IF NOT EXISTS kv (
    key   TEXT PRIMARY KEY,
    value TEXT NOT NULL,
    rev   INTEGER NOT NULL
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS meta (
    name  TEXT PRIMARY KEY,
    value INTEGER NOT NULL
) WITHOUT ROWID;
INSERT OR IGNORE INTO meta (name, value) VALUES ('revision', 0);
"""


def prefix_end(prefix: str) -> str | None:
    """The smallest string greater than every string starting with prefix."""
    chars = list(prefix)
    while chars:
        last = ord(chars[-1])
        if last < 0x10FFFF:
            chars[-1] = chr(last + 1)
            return "".join(chars)
        chars.pop()
    return None


HISTORY = 1000


class SqliteStore:
    def __init__(self, path: str | Path, history: int = HISTORY) -> None:
        self.path = Path(path)
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="tether-sqlite")
        self._conn: sqlite3.Connection | None = None
        try:
            self._revision = self._executor.submit(self._open).result()
        except BaseException:
            self._executor.shutdown(wait=True)
            raise
        self._hub = LocalWatchHub(history)
        self._hub.reset(self._revision)
        self._closed = False

    # -- worker-thread side -------------------------------------------------

    def _open(self) -> int:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        # Readable by root only (Docker's stores are 0600); SQLite gives its -wal and -shm
        # files the database file's mode. Older stores are tightened on open.
        os.close(os.open(self.path, os.O_RDWR | os.O_CREAT, 0o600))
        for suffix in ("", "-wal", "-shm", "-journal"):
            with contextlib.suppress(FileNotFoundError):
                os.chmod(f"{self.path}{suffix}", 0o600)
        conn = sqlite3.connect(self.path, isolation_level=None, check_same_thread=False)
        try:
            conn.execute("PRAGMA journal_mode=WAL")
            conn.execute("PRAGMA synchronous=NORMAL")
            conn.execute("PRAGMA busy_timeout=5000")
            conn.executescript(_SCHEMA)
            row = conn.execute("SELECT value FROM meta WHERE name='revision'").fetchone()
        except BaseException:
            conn.close()
            raise
        self._conn = conn
        return int(row[0])

    def _db(self) -> sqlite3.Connection:
        if self._conn is None:
            raise RuntimeError("store is closed")
        return self._conn

    def _get(self, key: str) -> Record | None:
        row = self._db().execute("SELECT value, rev FROM kv WHERE key=?", (key,)).fetchone()
        return None if row is None else Record(key, decode_value(row[0]), row[1])

    def _list(self, prefix: str) -> list[Record]:
        end = prefix_end(prefix)
        args: tuple[str, ...]
        if end is None:
            sql, args = "SELECT key, value, rev FROM kv WHERE key>=? ORDER BY key", (prefix,)
        else:
            sql = "SELECT key, value, rev FROM kv WHERE key>=? AND key<? ORDER BY key"
            args = (prefix, end)
        rows = self._db().execute(sql, args).fetchall()
        return [Record(k, decode_value(v), r) for k, v, r in rows]

    def _snapshot(self, prefix: str) -> tuple[list[Record], int]:
        # Every write runs on this same thread, so nothing lands in between.
        records = self._list(prefix)
        row = self._db().execute("SELECT value FROM meta WHERE name='revision'").fetchone()
        return records, int(row[0])

    def _txn(
        self,
        ops: Sequence[Op],
        encoded: list[str | None],
        notify: Callable[[int, list[Event]], None],
    ) -> tuple[TxnResult, int]:
        db = self._db()
        db.execute("BEGIN IMMEDIATE")
        try:
            rev = int(db.execute("SELECT value FROM meta WHERE name='revision'").fetchone()[0])
            for op in ops:
                if op.kind not in ("create", "check"):
                    continue
                row = db.execute("SELECT rev FROM kv WHERE key=?", (op.key,)).fetchone()
                current = 0 if row is None else int(row[0])
                if (op.kind == "create" and row is not None) or (
                    op.kind == "check" and current != op.revision
                ):
                    db.execute("ROLLBACK")
                    return TxnResult(ok=False, failed_key=op.key, revision=rev), 0
            new = rev + 1
            events: list[Event] = []
            for op, text in zip(ops, encoded, strict=True):
                if text is not None:
                    db.execute(
                        "INSERT INTO kv (key, value, rev) VALUES (?, ?, ?) "
                        "ON CONFLICT(key) DO UPDATE SET value=excluded.value, rev=excluded.rev",
                        (op.key, text, new),
                    )
                    events.append(Event("put", op.key, decode_value(text), new))
                elif (
                    op.kind == "delete"
                    and db.execute("DELETE FROM kv WHERE key=?", (op.key,)).rowcount
                ):
                    events.append(Event("delete", op.key, None, new))
            if events:
                db.execute("UPDATE meta SET value=? WHERE name='revision'", (new,))
                rev = new
            db.execute("COMMIT")
        except BaseException:
            if db.in_transaction:
                db.execute("ROLLBACK")
            raise
        if events:
            # Published from this (single) worker thread in commit order,
            # before the caller's future resolves.
            notify(rev, events)
        return TxnResult(ok=True, revision=rev), len(events)

    def _close(self) -> None:
        if self._conn is not None:
            self._conn.close()
            self._conn = None

    # -- event-loop side ----------------------------------------------------

    async def _run(self, fn: Callable[..., T], *args: object) -> T:
        if self._closed:
            raise RuntimeError("store is closed")
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(self._executor, fn, *args)

    def _committed(self, revision: int, events: list[Event]) -> None:
        self._revision = max(self._revision, revision)
        self._hub.publish(events)

    async def _apply(self, ops: Sequence[Op]) -> tuple[TxnResult, int]:
        encoded = encode_ops(ops)
        loop = asyncio.get_running_loop()

        def notify(revision: int, events: list[Event]) -> None:
            loop.call_soon_threadsafe(self._committed, revision, events)

        return await self._run(self._txn, ops, encoded, notify)

    @property
    def revision(self) -> int:
        """The revision of the last write this process has seen."""
        return self._revision

    async def get(self, key: str) -> Record | None:
        return await self._run(self._get, key)

    async def list(self, prefix: str) -> list[Record]:
        return await self._run(self._list, prefix)

    async def snapshot(self, prefix: str) -> tuple[builtins.list[Record], int]:
        """``list(prefix)`` and the revision it reflects (watch from rev + 1)."""
        return await self._run(self._snapshot, prefix)

    async def current_revision(self) -> int:
        _, revision = await self._run(self._snapshot, "\0")
        return revision

    async def put(self, key: str, value: Value) -> int:
        result, _ = await self._apply([Op("put", key, value)])
        return result.revision

    async def create(self, key: str, value: Value) -> bool:
        result, _ = await self._apply([Op("create", key, value)])
        return result.ok

    async def delete(self, key: str) -> bool:
        _, changed = await self._apply([Op("delete", key)])
        return changed > 0

    async def txn(self, ops: Sequence[Op]) -> TxnResult:
        result, _ = await self._apply(ops)
        return result

    def watch(self, prefix: str, start_revision: int = 0) -> AsyncIterator[Event]:
        if self._closed:
            raise RuntimeError("store is closed")
        return self._hub.watch(prefix, start_revision, self._revision)

    async def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        self._hub.close()
        loop = asyncio.get_running_loop()
        try:
            await loop.run_in_executor(self._executor, self._close)
        finally:
            self._executor.shutdown(wait=True)
