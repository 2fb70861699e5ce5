"""The cluster's metrics (issue 19) as plain numbers, fed through a small sink Protocol.

``ClusterMetricsSink`` is what the cluster side reports to: the etcd round trip of every
store call (``MeteredStore`` wraps the store the view and the endpoint book use), the watch
lag (the time from this host's own write being sent — a ``put`` or a transaction that
wrote — to the watch delivering its revision: how far behind the store the view runs; the
event may come before the write's own answer), and every lease renewal with its outcome
(``LeaseKeeper``'s ``on_renewal``). ``ClusterStats`` is the daemon's sink: integers and
histogram buckets, no metrics library (``tether.api.metrics`` reads them at scrape time, as
it reads ``dnsstats``).

Overload (docs/cluster-overload.md): the store reports each request and how it failed
(``store_event``: "request", "timeout", "unavailable", "queued" behind the in-flight
limiter, "shed" after waiting too long in line, "watch_resume"), and every back-off sleep of
a retry loop (``backoff``: the lease's keep-alive and grant, the view's resync, connect and
sweep) with its length; the lease keeper's renewals include "granted" (a lease granted
again after the first). Rates of these counters are what the fault test and the bench read.
"""

from __future__ import annotations

import bisect
import builtins
import time
from collections import OrderedDict
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass, field
from typing import Protocol

from tether.engine.cluster_endpoints import ClusterStore
from tether.store.base import Event, Op, Record, TxnResult, Value

# etcd round trips and watch lag, seconds (~0.5 ms on loopback to the 2 s+ of an outage)
BUCKETS = (0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0)
PENDING_MAX = 1024  # own puts waiting for their watch event (older ones are forgotten)


class ClusterMetricsSink(Protocol):
    def store_round_trip(self, op: str, seconds: float) -> None: ...
    def watch_lag(self, seconds: float) -> None: ...
    def lease_renewal(self, outcome: str) -> None: ...
    def store_event(self, kind: str) -> None: ...
    def backoff(self, loop: str, seconds: float) -> None: ...


@dataclass
class Histogram:
    counts: list[int] = field(default_factory=lambda: [0] * (len(BUCKETS) + 1))
    total: float = 0.0

    def observe(self, seconds: float) -> None:
        self.counts[bisect.bisect_left(BUCKETS, seconds)] += 1
        self.total += seconds


@dataclass
class ClusterStats:
    """``ClusterMetricsSink`` as plain numbers."""

    round_trips: dict[str, Histogram] = field(default_factory=dict)  # by store operation
    lag: Histogram = field(default_factory=Histogram)
    renewals: dict[str, int] = field(default_factory=dict)  # ok / expired / failed / granted
    events: dict[str, int] = field(default_factory=dict)  # store requests and their failures
    backoffs: dict[str, int] = field(default_factory=dict)  # back-off sleeps by loop
    backoff_seconds: dict[str, float] = field(default_factory=dict)

    def store_round_trip(self, op: str, seconds: float) -> None:
        self.round_trips.setdefault(op, Histogram()).observe(seconds)

    def watch_lag(self, seconds: float) -> None:
        self.lag.observe(seconds)

    def lease_renewal(self, outcome: str) -> None:
        self.renewals[outcome] = self.renewals.get(outcome, 0) + 1

    def store_event(self, kind: str) -> None:
        self.events[kind] = self.events.get(kind, 0) + 1

    def backoff(self, loop: str, seconds: float) -> None:
        self.backoffs[loop] = self.backoffs.get(loop, 0) + 1
        self.backoff_seconds[loop] = self.backoff_seconds.get(loop, 0.0) + seconds


class MeteredStore:
    """A ``ClusterStore`` that times each call and measures the watch lag of its own puts."""

    def __init__(self, store: ClusterStore, sink: ClusterMetricsSink) -> None:
        self.store = store
        self.sink = sink
        self._sent: OrderedDict[int, float] = OrderedDict()  # own write's revision -> sent at
        self._early: OrderedDict[int, float] = OrderedDict()  # watched before its write returned

    def _wrote(self, revision: int, sent: float) -> None:
        seen = self._early.pop(revision, None)
        if seen is not None:
            self.sink.watch_lag(max(0.0, seen - sent))
            return
        self._sent[revision] = sent
        while len(self._sent) > PENDING_MAX:
            self._sent.popitem(last=False)

    def _watched(self, revision: int) -> None:
        now = time.perf_counter()
        sent = self._sent.pop(revision, None)
        if sent is not None:
            self.sink.watch_lag(max(0.0, now - sent))
            return
        self._early[revision] = now
        while len(self._early) > PENDING_MAX:
            self._early.popitem(last=False)

    def _took(self, op: str, started: float) -> None:
        self.sink.store_round_trip(op, time.perf_counter() - started)

    async def get(self, key: str) -> Record | None:
        t = time.perf_counter()
        try:
            return await self.store.get(key)
        finally:
            self._took("get", t)

    async def list(self, prefix: str) -> builtins.list[Record]:
        t = time.perf_counter()
        try:
            return await self.store.list(prefix)
        finally:
            self._took("list", t)

    async def snapshot(self, prefix: str) -> tuple[builtins.list[Record], int]:
        t = time.perf_counter()
        try:
            return await self.store.snapshot(prefix)
        finally:
            self._took("snapshot", t)

    async def put(self, key: str, value: Value, *, lease: int = 0) -> int:
        t = time.perf_counter()
        try:
            rev = await self.store.put(key, value, lease=lease)
        finally:
            self._took("put", t)
        self._wrote(rev, t)
        return rev

    async def create(self, key: str, value: Value, *, lease: int = 0) -> bool:
        t = time.perf_counter()
        try:
            return await self.store.create(key, value, lease=lease)
        finally:
            self._took("create", t)

    async def delete(self, key: str) -> bool:
        t = time.perf_counter()
        try:
            return await self.store.delete(key)
        finally:
            self._took("delete", t)

    async def txn(self, ops: Sequence[Op], *, lease: int = 0) -> TxnResult:
        t = time.perf_counter()
        try:
            result = await self.store.txn(ops, lease=lease)
        finally:
            self._took("txn", t)
        if result.ok and any(op.kind in ("put", "create", "delete") for op in ops):
            self._wrote(result.revision, t)
        return result

    async def watch(self, prefix: str, start_revision: int = 0) -> AsyncIterator[Event]:
        async for ev in self.store.watch(prefix, start_revision):
            self._watched(ev.revision)
            yield ev

    async def wait_answered(self, timeout: float) -> bool:
        return await self.store.wait_answered(timeout)

    async def close(self) -> None:
        await self.store.close()
