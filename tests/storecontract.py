"""The Store contract, as reusable tests every backend must pass.

Use it by subclassing ``StoreContract`` in a test module and implementing
``open_store`` (an async context manager yielding a fresh, empty store);
optionally ``compact`` (drop watch history up to a revision) to run the
compaction check. Each contract test runs in its own event loop with an
overall guard timeout so a broken watch fails instead of hanging.

    class TestMemoryStore(StoreContract):
        @contextlib.asynccontextmanager
        async def open_store(self):
            store = MemoryStore()
            yield store
            await store.close()
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import AbstractAsyncContextManager
from typing import Any

import pytest

from tether.store.base import Event, Op, Store, WatchCompacted

GUARD = 20.0  # seconds: a hang guard, not a timing assertion

ContractFn = Callable[[Any, Store], Awaitable[None]]


def contract(fn: ContractFn) -> Callable[[Any], None]:
    """Turn ``async def test_x(self, store)`` into a sync pytest test."""

    def test(self: StoreContract) -> None:
        async def main() -> None:
            async with self.open_store() as store:
                await asyncio.wait_for(fn(self, store), GUARD)

        asyncio.run(main())

    # No functools.wraps: pytest would follow __wrapped__ and ask for a
    # fixture named "store".
    test.__name__ = fn.__name__
    test.__qualname__ = fn.__qualname__
    test.__doc__ = fn.__doc__
    return test


async def take(events: AsyncIterator[Event], n: int) -> list[Event]:
    out: list[Event] = []
    while len(out) < n:
        out.append(await asyncio.wait_for(events.__anext__(), GUARD))
    return out


async def aclose(events: AsyncIterator[Event]) -> None:
    close = getattr(events, "aclose", None)
    if close is not None:
        await close()


def summary(events: list[Event]) -> list[tuple[str, str, Any]]:
    return [(e.kind, e.key, e.value) for e in events]


class StoreContract:
    def open_store(self) -> AbstractAsyncContextManager[Store]:
        raise NotImplementedError

    async def compact(self, store: Store, revision: int) -> None:
        pytest.skip("this backend has no manual compaction")

    @contract
    async def test_get_put_roundtrip(self, store: Store) -> None:
        assert await store.get("a/x") is None
        value = {"name": "x", "nested": {"list": [1, 2.5, None, True], "s": "é"}}
        rev = await store.put("a/x", value)
        assert rev > 0
        rec = await store.get("a/x")
        assert rec is not None
        assert (rec.key, rec.value, rec.revision) == ("a/x", value, rev)
        rev2 = await store.put("a/x", {"v": 2})
        assert rev2 > rev
        rec = await store.get("a/x")
        assert rec is not None and rec.value == {"v": 2} and rec.revision == rev2

    @contract
    async def test_values_are_copies(self, store: Store) -> None:
        value: dict[str, Any] = {"l": [1]}
        await store.put("k", value)
        value["l"].append(2)
        rec = await store.get("k")
        assert rec is not None and rec.value == {"l": [1]}
        rec.value["l"].append(3)
        again = await store.get("k")
        assert again is not None and again.value == {"l": [1]}

    @contract
    async def test_revisions_are_global_and_increase(self, store: Store) -> None:
        r1 = await store.put("a", {})
        r2 = await store.put("b", {})
        assert await store.delete("a")
        r3 = await store.put("c", {})
        assert r1 < r2 < r3
        assert r3 >= r2 + 2  # the delete took a revision of its own

    @contract
    async def test_create_if_absent(self, store: Store) -> None:
        assert await store.create("n/1", {"owner": "first"})
        assert not await store.create("n/1", {"owner": "second"})
        rec = await store.get("n/1")
        assert rec is not None and rec.value == {"owner": "first"}
        assert await store.delete("n/1")
        assert await store.create("n/1", {"owner": "third"})

    @contract
    async def test_concurrent_creates_exactly_one_wins(self, store: Store) -> None:
        results = await asyncio.gather(*(store.create("vni/42", {"n": i}) for i in range(8)))
        assert sorted(results) == [False] * 7 + [True]
        rec = await store.get("vni/42")
        assert rec is not None and rec.value == {"n": results.index(True)}

    @contract
    async def test_check_revision(self, store: Store) -> None:
        rev = await store.put("ip/10.0.0.2", {"ep": "a"})
        ok = await store.txn([Op("check", "ip/10.0.0.2", revision=rev), Op("put", "other", {})])
        assert ok.ok and ok.failed_key is None
        stale = await store.txn(
            [Op("check", "ip/10.0.0.2", revision=rev + 100), Op("put", "other2", {})]
        )
        assert not stale.ok and stale.failed_key == "ip/10.0.0.2"
        assert await store.get("other2") is None
        # revision 0 asserts absence
        absent = await store.txn([Op("check", "ip/10.0.0.3", revision=0)])
        assert absent.ok
        present = await store.txn([Op("check", "ip/10.0.0.2", revision=0)])
        assert not present.ok and present.failed_key == "ip/10.0.0.2"

    @contract
    async def test_compare_and_swap(self, store: Store) -> None:
        rev = await store.put("cfg", {"v": 1})
        first = await store.txn([Op("check", "cfg", revision=rev), Op("put", "cfg", {"v": 2})])
        second = await store.txn([Op("check", "cfg", revision=rev), Op("put", "cfg", {"v": 3})])
        assert first.ok and not second.ok and second.failed_key == "cfg"
        rec = await store.get("cfg")
        assert rec is not None and rec.value == {"v": 2} and rec.revision == first.revision

    @contract
    async def test_txn_all_or_nothing(self, store: Store) -> None:
        await store.put("taken", {"x": 1})
        await store.put("doomed", {"x": 1})
        result = await store.txn(
            [
                Op("put", "new/a", {"a": 1}),
                Op("delete", "doomed"),
                Op("create", "taken", {"x": 2}),
                Op("create", "new/b", {"b": 1}),
            ]
        )
        assert not result.ok and result.failed_key == "taken"
        assert await store.get("new/a") is None
        assert await store.get("new/b") is None
        assert await store.get("doomed") is not None
        rec = await store.get("taken")
        assert rec is not None and rec.value == {"x": 1}

    @contract
    async def test_txn_applies_all_at_one_revision(self, store: Store) -> None:
        await store.put("gone", {})
        result = await store.txn(
            [
                Op("create", "t/a", {"a": 1}),
                Op("put", "t/b", {"b": 1}),
                Op("delete", "gone"),
                Op("delete", "never-existed"),
                Op("check", "t/c", revision=0),
            ]
        )
        assert result.ok and result.failed_key is None
        recs = await store.list("t/")
        assert [(r.key, r.value) for r in recs] == [("t/a", {"a": 1}), ("t/b", {"b": 1})]
        assert {r.revision for r in recs} == {result.revision}
        assert await store.get("gone") is None

    @contract
    async def test_list_by_prefix_sorted(self, store: Store) -> None:
        for key in ["net/b", "net/a/2", "net/a/10", "netx", "ne", "net/", "zzz", "net/é"]:
            await store.put(key, {"k": key})
        keys = [r.key for r in await store.list("net/")]
        assert keys == ["net/", "net/a/10", "net/a/2", "net/b", "net/é"]
        assert [r.key for r in await store.list("net/a/")] == ["net/a/10", "net/a/2"]
        assert await store.list("nothing/") == []
        assert [r.value["k"] for r in await store.list("zz")] == ["zzz"]
        everything = [r.key for r in await store.list("")]
        assert everything == sorted(everything) and len(everything) == 8

    @contract
    async def test_snapshot_then_watch(self, store: Store) -> None:
        """Stores also offer ``snapshot(prefix) -> (records, revision)``."""
        await store.put("s/a", {})
        await store.put("s/b", {})
        await store.delete("s/a")
        await store.put("t/x", {})
        records, rev = await store.snapshot("s/")  # type: ignore[attr-defined]
        assert [r.key for r in records] == ["s/b"]
        assert rev == await store.current_revision()  # type: ignore[attr-defined]
        events = store.watch("s/", rev + 1)
        try:
            await store.put("s/c", {"v": 1})
            assert summary(await take(events, 1)) == [("put", "s/c", {"v": 1})]
        finally:
            await aclose(events)

    @contract
    async def test_delete(self, store: Store) -> None:
        assert not await store.delete("d/1")
        await store.put("d/1", {})
        await store.put("d/2", {})
        assert await store.delete("d/1")
        assert not await store.delete("d/1")
        assert await store.get("d/1") is None
        assert [r.key for r in await store.list("d/")] == ["d/2"]

    @contract
    async def test_watch_replays_from_start_revision_then_follows(self, store: Store) -> None:
        await store.put("w/before", {"n": 0})
        start = await store.put("w/a", {"n": 1})
        await store.put("elsewhere", {"n": 2})
        await store.put("w/b", {"n": 3})
        assert await store.delete("w/a")
        events = store.watch("w/", start)
        try:
            got = await take(events, 3)
            await store.put("w/c", {"n": 4})
            await store.txn([Op("put", "w/d", {"n": 5}), Op("delete", "w/b")])
            got += await take(events, 3)
        finally:
            await aclose(events)
        assert summary(got) == [
            ("put", "w/a", {"n": 1}),
            ("put", "w/b", {"n": 3}),
            ("delete", "w/a", None),
            ("put", "w/c", {"n": 4}),
            ("put", "w/d", {"n": 5}),
            ("delete", "w/b", None),
        ]
        revs = [e.revision for e in got]
        assert revs[0] == start
        assert revs == sorted(revs) and revs[4] == revs[5]
        rec = await store.get("w/c")
        assert rec is not None and rec.revision == got[3].revision

    @contract
    async def test_watch_from_now(self, store: Store) -> None:
        await store.put("n/old", {})
        events = store.watch("n/")
        try:
            await store.put("n/new", {"v": 1})
            got = await take(events, 1)
        finally:
            await aclose(events)
        assert summary(got) == [("put", "n/new", {"v": 1})]

    @contract
    async def test_failed_txn_emits_nothing(self, store: Store) -> None:
        await store.put("f/taken", {})
        events = store.watch("f/")
        try:
            result = await store.txn([Op("put", "f/a", {}), Op("create", "f/taken", {})])
            assert not result.ok
            await store.put("f/b", {})
            got = await take(events, 1)
        finally:
            await aclose(events)
        assert summary(got) == [("put", "f/b", {})]

    @contract
    async def test_watch_cancellation_is_clean(self, store: Store) -> None:
        before = asyncio.all_tasks()
        seen: list[Event] = []

        async def follow() -> None:
            async for event in store.watch("c/"):
                seen.append(event)

        task = asyncio.create_task(follow())
        await asyncio.sleep(0)
        await store.put("c/1", {})
        while not seen:
            await asyncio.sleep(0.01)
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
        for _ in range(50):  # let finalizers run (bounded)
            if asyncio.all_tasks() <= before:
                break
            await asyncio.sleep(0.02)
        assert asyncio.all_tasks() <= before
        # the store still works afterwards
        await store.put("c/2", {})
        assert [r.key for r in await store.list("c/")] == ["c/1", "c/2"]

    @contract
    async def test_watch_ends_when_store_closes(self, store: Store) -> None:
        events = store.watch("e/")
        await store.put("e/1", {})
        assert [e.key for e in await take(events, 1)] == ["e/1"]
        pending = asyncio.ensure_future(events.__anext__())
        await asyncio.sleep(0.1)  # let the iterator block waiting for more
        await store.close()
        with pytest.raises(StopAsyncIteration):
            await asyncio.wait_for(pending, GUARD)

    @contract
    async def test_watch_compacted(self, store: Store) -> None:
        r1 = await store.put("k/1", {})
        r2 = await store.put("k/2", {})
        await store.put("k/3", {})
        await self.compact(store, r2)
        events = store.watch("k/", r1)
        with pytest.raises(WatchCompacted) as info:
            await take(events, 1)
        assert info.value.compact_revision >= r2
        # after a resync, watching from the current revision + 1 works
        last = max(r.revision for r in await store.list("k/"))
        events = store.watch("k/", last + 1)
        try:
            await store.put("k/4", {})
            assert summary(await take(events, 1)) == [("put", "k/4", {})]
        finally:
            await aclose(events)

    @contract
    async def test_bad_values_rejected_before_writing(self, store: Store) -> None:
        with pytest.raises((TypeError, ValueError)):
            await store.txn([Op("put", "ok", {}), Op("put", "bad", {"x": object()})])
        assert await store.get("ok") is None
