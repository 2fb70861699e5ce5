"""The Store contract against the in-memory and SQLite stores."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

import pytest
from tests.storecontract import StoreContract, aclose, take

from tether.store.base import Op, Store, WatchCompacted
from tether.store.sqlite import SqliteStore
from tether.testing.store import MemoryStore


class TestMemoryStore(StoreContract):
    @asynccontextmanager
    async def open_store(self) -> AsyncIterator[Store]:
        store = MemoryStore()
        try:
            yield store
        finally:
            await store.close()

    async def compact(self, store: Store, revision: int) -> None:
        assert isinstance(store, MemoryStore)
        store.compact(revision)


class TestSqliteStore(StoreContract):
    @pytest.fixture(autouse=True)
    def _tmp(self, tmp_path: Path) -> None:
        self.path = tmp_path / "state" / "tether.db"

    @asynccontextmanager
    async def open_store(self) -> AsyncIterator[Store]:
        store = SqliteStore(self.path)
        try:
            yield store
        finally:
            await store.close()

    async def compact(self, store: Store, revision: int) -> None:
        pytest.skip("SQLite history is per process: see test_reopen_forgets_history")


def test_sqlite_reopen_keeps_data_and_revision(tmp_path: Path) -> None:
    path = tmp_path / "t.db"

    async def main() -> None:
        store = SqliteStore(path)
        await store.put("a", {"v": 1})
        await store.txn([Op("create", "b", {"v": 2}), Op("put", "c", {"v": 3})])
        await store.delete("c")
        last = store.revision
        await store.close()

        store = SqliteStore(path)
        try:
            assert store.revision == last
            assert [(r.key, r.value) for r in await store.list("")] == [
                ("a", {"v": 1}),
                ("b", {"v": 2}),
            ]
            assert await store.put("d", {}) == last + 1
            # history from before the reopen is gone: the watcher must resync
            with pytest.raises(WatchCompacted):
                await take(store.watch("", 1), 1)
            events = store.watch("", last + 2)
            await store.put("e", {})
            assert [e.key for e in await take(events, 1)] == ["e"]
            await aclose(events)
        finally:
            await store.close()

    asyncio.run(main())


def test_sqlite_closed_store_refuses(tmp_path: Path) -> None:
    async def main() -> None:
        store = SqliteStore(tmp_path / "t.db")
        await store.close()
        await store.close()  # idempotent
        with pytest.raises(RuntimeError):
            await store.get("a")

    asyncio.run(main())


def test_memory_slow_watcher_is_dropped_as_compacted(monkeypatch: pytest.MonkeyPatch) -> None:
    import tether.store.watchhub as memory

    monkeypatch.setattr(memory, "WATCH_QUEUE_LIMIT", 3)

    async def main() -> None:
        store = MemoryStore()
        events = store.watch("")
        for i in range(5):
            await store.put(f"k{i}", {})
        got = []
        with pytest.raises(WatchCompacted):
            while True:
                got.append(await asyncio.wait_for(events.__anext__(), 5))
        assert [e.key for e in got] == ["k0", "k1", "k2"]

    asyncio.run(main())


def test_memory_history_bound_compacts() -> None:
    async def main() -> None:
        store = MemoryStore(history=2)
        for i in range(4):
            await store.put(f"k{i}", {})
        with pytest.raises(WatchCompacted):
            await take(store.watch("", 1), 1)
        events = store.watch("", 3)
        assert [e.key for e in await take(events, 2)] == ["k2", "k3"]
        await aclose(events)

    asyncio.run(main())
