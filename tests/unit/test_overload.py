"""Overload behaviour of the cluster store client (issue 20): back-off with jitter, the
in-flight limiter, the lease keeper that retries keep-alives instead of granting new leases,
and the counters the fault test reads. See docs/cluster-overload.md."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
from tests.unit.clusterfakes import LeaseBackend
from tests.unit.test_container_controller import aio

from tether.engine.clusterstats import ClusterStats
from tether.errors import Unavailable
from tether.store import lease as lease_mod
from tether.store.backoff import JITTER, Backoff, Limiter, jittered
from tether.store.etcd import EtcdStore
from tether.store.lease import LeaseKeeper


def test_backoff_doubles_with_equal_jitter_up_to_the_cap() -> None:
    low = Backoff(1.0, 8.0, rand=lambda: 0.0)
    assert [low.next() for _ in range(6)] == [0.5, 1.0, 2.0, 4.0, 4.0, 4.0]
    high = Backoff(1.0, 8.0, rand=lambda: 0.999999)
    assert [round(high.next(), 3) for _ in range(6)] == [1.0, 2.0, 4.0, 8.0, 8.0, 8.0]
    high.reset()
    assert round(high.next(), 3) == 1.0
    with pytest.raises(ValueError):
        Backoff(2.0, 1.0)


def test_jittered_periods_stay_within_the_band() -> None:
    assert jittered(10.0, rand=lambda: 0.0) == pytest.approx(10.0 * (1 - JITTER))
    assert jittered(10.0, rand=lambda: 1.0) == pytest.approx(10.0 * (1 + JITTER))
    spread = {round(jittered(10.0), 2) for _ in range(50)}
    assert len(spread) > 10  # not every daemon in step


@aio
async def test_limiter_holds_at_most_its_limit_in_fifo_order() -> None:
    lim = Limiter(2)
    peak = 0
    order: list[int] = []

    async def work(i: int) -> None:
        nonlocal peak
        async with lim:
            peak = max(peak, lim.in_flight)
            order.append(i)
            await asyncio.sleep(0.01)

    await asyncio.gather(*(work(i) for i in range(8)))
    assert peak == 2 and order == list(range(8)) and lim.in_flight == 0
    assert lim.waited == 6


@aio
async def test_limiter_halves_on_overload_and_grows_back_one_by_one() -> None:
    lim = Limiter(4)
    lim.failed()
    assert lim.limit == 2
    lim.failed()
    lim.failed()
    assert lim.limit == 1  # one probe in flight while the store is slow
    for expected in (2, 3, 4, 4):
        lim.succeeded()
        assert lim.limit == expected


@aio
async def test_a_cancelled_waiter_does_not_leak_a_slot() -> None:
    lim = Limiter(1)
    await lim.acquire()
    waiter = asyncio.create_task(lim.acquire())
    await asyncio.sleep(0)
    waiter.cancel()
    with pytest.raises(asyncio.CancelledError):
        await waiter
    lim.release()
    assert lim.in_flight == 0 and lim.queued == 0
    await asyncio.wait_for(lim.acquire(), 1)


@aio
async def test_a_waiter_cancelled_after_the_handover_gives_the_slot_back() -> None:
    lim = Limiter(1)
    await lim.acquire()
    waiter = asyncio.create_task(lim.acquire(timeout=5))
    await asyncio.sleep(0)
    lim.release()  # the slot goes to the waiter ...
    waiter.cancel()  # ... which is cancelled before it runs again
    with pytest.raises(asyncio.CancelledError):
        await waiter
    assert lim.in_flight == 0 and lim.queued == 0


@aio
async def test_a_waiter_times_out_of_the_line_without_taking_a_slot() -> None:
    lim = Limiter(1)
    await lim.acquire()
    with pytest.raises(TimeoutError):
        await lim.acquire(timeout=0.05)
    assert lim.in_flight == 1 and lim.queued == 0
    lim.release()
    await lim.acquire(timeout=0.05)
    assert lim.in_flight == 1


class _Client:
    metadata = None

    async def connect(self) -> None:
        return None


def _store(timeout: float = 0.05) -> tuple[EtcdStore, ClusterStats]:
    store = EtcdStore(["127.0.0.1:1"], timeout=timeout)
    client = _Client()
    store._client = lambda: (0, client)  # type: ignore[method-assign]

    async def same_leader(_term: int) -> bool:  # overload, not an election: members answer
        return False

    store._elected_since = same_leader  # type: ignore[method-assign]
    stats = ClusterStats()
    store.observer = stats.store_event
    return store, stats


@aio
async def test_sixteen_parallel_calls_become_one_queue_of_four() -> None:
    store, stats = _store(timeout=1.0)
    live = peak = 0

    async def rpc(_client: Any) -> Any:
        nonlocal live, peak
        live += 1
        peak = max(peak, live)
        await asyncio.sleep(0.01)
        live -= 1
        return object()

    await asyncio.gather(*(store._call(rpc) for _ in range(16)))
    assert peak == 4
    assert stats.events["request"] == 16 and stats.events["queued"] == 12


@aio
async def test_timeouts_shrink_the_limit_to_one_probe_and_are_counted() -> None:
    store, stats = _store(timeout=0.05)
    live = peak_after = 0

    async def slow(_client: Any) -> Any:
        await asyncio.sleep(1.0)

    async def fast(_client: Any) -> Any:
        nonlocal live, peak_after
        live += 1
        peak_after = max(peak_after, live)
        await asyncio.sleep(0.01)
        live -= 1
        return object()

    results = await asyncio.gather(*(store._call(slow) for _ in range(4)), return_exceptions=True)
    assert all(isinstance(r, Unavailable) for r in results), results
    assert "no answer within" in str(results[0])
    assert stats.events["timeout"] == 4 and store.limiter.limit == 1
    # the store is slow: the next callers go one at a time until answers come back
    await asyncio.gather(*(store._call(fast) for _ in range(3)))
    assert peak_after <= 2
    assert store.limiter.limit == 4


@aio
async def test_a_call_waiting_in_line_too_long_is_shed_with_a_clear_error() -> None:
    store, stats = _store(timeout=0.05)
    store.limiter = Limiter(1)

    async def hold(_client: Any) -> Any:
        await asyncio.sleep(0.04)  # under the timeout: answers, slowly
        return object()

    results = await asyncio.gather(*(store._call(hold) for _ in range(6)), return_exceptions=True)
    shed = [r for r in results if isinstance(r, Unavailable)]
    assert shed and "overloaded" in str(shed[0]), results
    assert stats.events["shed"] == len(shed)


class _FlakyStore:
    """Keep-alives fail (no answer) ``failures`` times, then work; counts grants."""

    def __init__(self, failures: int) -> None:
        self.failures = failures
        self.grants = 0
        self.keepalives = 0

    async def grant_lease(self, ttl: int) -> int:
        self.grants += 1
        return 100 + self.grants

    async def keepalive(self, lease_id: int) -> int:
        self.keepalives += 1
        if self.failures > 0:
            self.failures -= 1
            raise Unavailable("cluster store etcd://x is unreachable: no answer within 3s")
        return 20

    async def revoke_lease(self, lease_id: int) -> None:
        return None


@aio
async def test_keepalives_that_time_out_are_retried_with_backoff_not_regranted(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(lease_mod, "RETRY_BASE", 0.02)
    store = _FlakyStore(failures=5)
    stats = ClusterStats()
    keeper = LeaseKeeper(
        store,  # type: ignore[arg-type]
        2,
        on_renewal=stats.lease_renewal,
        on_backoff=stats.backoff,
    )
    await keeper.start()
    for _ in range(200):
        if stats.renewals.get("ok"):
            break
        await asyncio.sleep(0.02)
    await keeper.close(revoke=False)
    assert stats.renewals.get("failed") == 5 and stats.renewals.get("ok", 0) >= 1
    assert store.grants == 1 and "granted" not in stats.renewals  # one lease, kept
    assert stats.backoffs["keepalive"] == 5
    assert stats.backoff_seconds["keepalive"] > 0


@aio
async def test_a_lease_etcd_says_is_gone_is_granted_once_again() -> None:
    backend = LeaseBackend()
    stats = ClusterStats()
    regranted: list[int] = []

    async def on_regrant(lease_id: int) -> None:
        regranted.append(lease_id)

    keeper = LeaseKeeper(
        backend.host_store(),  # type: ignore[arg-type]
        2,
        on_regrant=on_regrant,
        on_renewal=stats.lease_renewal,
    )
    first = await keeper.start()
    await backend.expire(first)
    for _ in range(100):
        if regranted:
            break
        await asyncio.sleep(0.02)
    await asyncio.sleep(0.1)
    await keeper.close(revoke=False)
    assert len(regranted) == 1 and regranted[0] != first
    assert stats.renewals.get("granted") == 1 and stats.renewals.get("expired") == 1


@aio
async def test_a_watch_that_keeps_breaking_is_not_answered_with_a_resync_loop() -> None:
    from tests.unit.clusterfakes import FakeHost

    from tether.errors import Internal

    backend = LeaseBackend()
    host = FakeHost(backend, "h1", "192.0.2.1")
    stats = ClusterStats()
    host.view.stats = stats
    snapshots = 0
    real_snapshot = host.store.snapshot

    async def counting_snapshot(prefix: str) -> Any:
        nonlocal snapshots
        snapshots += 1
        return await real_snapshot(prefix)

    async def broken_watch(prefix: str, start_revision: int = 0) -> Any:
        raise Internal("cluster store watch was cancelled: overloaded")
        yield  # an async generator

    host.store.snapshot = counting_snapshot  # type: ignore[method-assign]
    host.store.watch = broken_watch  # type: ignore[method-assign]
    await host.start()
    await asyncio.sleep(0.3)
    await host.stop()
    # the start's snapshot, then the broken watch waits (0.5-1 s) before any resync
    assert snapshots == 1, snapshots
    assert stats.backoffs == {"rewatch": 1}


@aio
async def test_the_lease_calls_are_the_stores_etcd_is_back_signal() -> None:
    """``wait_answered`` ends when a lease call answers after one that got none; plain calls
    timing out and answering (a store merely slow for them) do not wake it."""
    store, _stats = _store(timeout=0.05)

    async def slow(_client: Any) -> Any:
        await asyncio.sleep(1.0)

    async def fast(_client: Any) -> Any:
        return object()

    waiting = asyncio.create_task(store.wait_answered(10.0))
    with pytest.raises(Unavailable):
        await store._call(slow)
    await store._call(fast)  # a user call answered after a timeout: merely slow
    await asyncio.sleep(0.01)
    assert not waiting.done()
    with pytest.raises(Unavailable):
        await store._call(slow, priority=True)  # the keep-alive got no answer
    assert not waiting.done()
    await store._call(fast, priority=True)  # and now it has one: etcd is back
    assert await asyncio.wait_for(waiting, 1.0) is True
    assert await store.wait_answered(0.01) is False  # nothing new since
