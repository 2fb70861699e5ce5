"""Test doubles for the cluster view: an etcd-like store with leases, and fake hosts.

``LeaseBackend`` is one "etcd": a ``MemoryStore`` plus leases (grant, keepalive,
revoke, and ``expire`` to make one run out now, deleting its keys in one
revision as etcd does). ``HostStore`` is one host's client of it: the same
calls as ``EtcdStore`` (``lease=`` on writes, ``snapshot``, leases), each of
which first yields to the event loop so that two hosts' coroutines really
interleave (without it a ``MemoryStore`` call never suspends and no race can
happen); ``close`` closes only this client. Its ``recovery`` is the store's "etcd is
back" signal (``wait_answered``): tests call ``recovery.failed()`` / ``answered()`` as the
etcd store's keep-alives do.

``FakeHost`` builds what ``tether.daemon`` builds for a cluster daemon (an
``EndpointBook``, an ``OverlayDriver`` over a ``FakeNetlink``, a ``ClusterView``,
a ``NetworkController`` over its own local ``MemoryStore``, the controller and the
view sharing one ``NetworkTable``), without a gateway bridge.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from typing import Any

from tether.contracts.model import Endpoint, Network, mac_for, new_id
from tether.drivers.overlay import OverlayDriver
from tether.engine.cluster import ClusterView
from tether.engine.cluster_endpoints import EndpointBook, Lease
from tether.engine.ipam import PoolPicker
from tether.engine.nettable import NetworkTable
from tether.engine.networks import CreateRequest, NetworkController
from tether.store.backoff import Recovery
from tether.store.base import Event, LeaseExpired, Op, Record, TxnResult, Value
from tether.store.lease import LeaseKeeper
from tether.testing.netlink import FakeNetlink
from tether.testing.store import MemoryStore

GUARD = 10.0  # seconds: a hang guard for waits, never a timing assertion


class LeaseBackend:
    def __init__(self) -> None:
        self.mem = MemoryStore()
        self.leases: dict[int, set[str]] = {}
        self._next = 0x1000
        self.grants = 0

    def attach(self, lease: int, keys: Sequence[str]) -> None:
        if lease == 0:
            return
        if lease not in self.leases:
            raise LeaseExpired(lease)  # as EtcdStore does for "requested lease not found"
        for owned in self.leases.values():
            owned.difference_update(keys)
        self.leases[lease].update(keys)

    def detach(self, keys: Sequence[str]) -> None:
        for owned in self.leases.values():
            owned.difference_update(keys)

    async def expire(self, lease: int) -> None:
        """The lease runs out now: its keys are deleted in one revision."""
        keys = sorted(self.leases.pop(lease, set()))
        if keys:
            await self.mem.txn([Op("delete", k) for k in keys])

    def host_store(self) -> HostStore:
        return HostStore(self)


class HostStore:
    def __init__(self, backend: LeaseBackend) -> None:
        self.b = backend
        self.mem = backend.mem
        self.closed = False
        self.name = "etcd://fake:2379"
        self.recovery = Recovery()

    async def _yield(self) -> None:
        if self.closed:
            raise RuntimeError("store is closed")
        await asyncio.sleep(0)

    async def get(self, key: str) -> Record | None:
        await self._yield()
        return await self.mem.get(key)

    async def list(self, prefix: str) -> list[Record]:
        await self._yield()
        return await self.mem.list(prefix)

    async def snapshot(self, prefix: str) -> tuple[list[Record], int]:
        await self._yield()
        return await self.mem.snapshot(prefix)

    async def current_revision(self) -> int:
        await self._yield()
        return self.mem.revision

    async def put(self, key: str, value: Value, *, lease: int = 0) -> int:
        res = await self.txn([Op("put", key, value)], lease=lease)
        return res.revision

    async def create(self, key: str, value: Value, *, lease: int = 0) -> bool:
        return (await self.txn([Op("create", key, value)], lease=lease)).ok

    async def delete(self, key: str) -> bool:
        await self._yield()
        self.b.detach([key])
        return await self.mem.delete(key)

    async def txn(self, ops: Sequence[Op], *, lease: int = 0) -> TxnResult:
        await self._yield()
        if lease and lease not in self.b.leases:
            raise LeaseExpired(lease)
        res = await self.mem.txn(ops)
        if res.ok:
            written = [op.key for op in ops if op.kind in ("put", "create")]
            if lease:
                self.b.attach(lease, written)
            else:
                self.b.detach(written)
            self.b.detach([op.key for op in ops if op.kind == "delete"])
        return res

    def watch(self, prefix: str, start_revision: int = 0) -> AsyncIterator[Event]:
        return self.mem.watch(prefix, start_revision)

    async def wait_answered(self, timeout: float) -> bool:
        return await self.recovery.wait(timeout)

    async def grant_lease(self, ttl: int) -> int:
        await self._yield()
        self.b._next += 1
        self.b.grants += 1
        self.b.leases[self.b._next] = set()
        return self.b._next

    async def keepalive(self, lease_id: int) -> int:
        await self._yield()
        if lease_id not in self.b.leases:
            raise LeaseExpired(lease_id)
        return 10

    async def revoke_lease(self, lease_id: int) -> None:
        await self.b.expire(lease_id)

    async def close(self) -> None:
        self.closed = True


class FakeClock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


class FakeHost:
    def __init__(self, backend: LeaseBackend, name: str, vtep: str, **options: Any) -> None:
        self.name = name
        self.nl = FakeNetlink()
        self.store = backend.host_store()
        book = EndpointBook(self.store, host=name, vtep=vtep)
        # no gateway bridge: no eth<n+1>
        self.driver = OverlayDriver(self.nl, vtep, peers=book.peers, publish=book.publish)
        local = MemoryStore()
        table = NetworkTable(local)

        def lease(ttl: int, on_regrant: Callable[[int], Awaitable[None]]) -> Lease:
            return LeaseKeeper(self.store, ttl, on_regrant=on_regrant)  # type: ignore[arg-type]

        self.view: ClusterView = ClusterView(self.store, book, self.driver, table, lease, **options)
        self.networks = NetworkController(
            local,
            {"overlay": self.driver},
            PoolPicker([("10.200.0.0/16", 24)]),
            table=table,
            cluster=self.view,
        )

    async def start(self) -> None:
        await self.networks.load()
        await asyncio.wait_for(self.view.ready.wait(), GUARD)

    async def stop(self) -> None:
        await self.view.close()

    async def die(self) -> None:
        """The daemon stops without a word: tasks end, nothing is revoked or deleted."""
        for task in (self.view._task, self.view._sweeper):
            if task is not None:
                task.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await task
        if self.view.lease is not None and self.view.lease._task is not None:
            self.view.lease._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self.view.lease._task
        self.store.closed = True

    async def create(self, name: str, subnet: str | None = None) -> Network:
        configs = [{"Subnet": subnet}] if subnet else []
        return await self.networks.create(CreateRequest(name, "overlay", configs=configs))

    async def join(self, net: Network, cname: str) -> Endpoint:
        """A container joins ``net`` here: address held cluster-wide, data path, record."""
        ip, plen, gw = self.networks.allocate(net, None)
        ip = await self.networks.hold_global(net, ip, "", cname)
        ep = Endpoint(
            id=new_id(),
            network_id=net.id,
            network_name=net.name,
            container_id=cname,
            container_name=cname,
            ip=ip,
            prefixlen=plen,
            gateway=gw,
            mac=mac_for(ip),
            ifname="eth0",
        )
        await self.driver.join(net, ep, f"/run/fake/{cname}")
        return ep

    async def leave(self, net: Network, ep: Endpoint) -> None:
        await self.driver.leave(net, ep, f"/run/fake/{ep.container_name}")
        await self.networks.release_global(net.id, ep.ip)
        self.networks.release(net.id, ep.ip)


async def wait_for(cond: Callable[[], bool], what: str) -> None:
    """Let the watch tasks run until ``cond`` holds (bounded by GUARD)."""

    async def loop() -> None:
        while not cond():
            await asyncio.sleep(0.001)

    try:
        await asyncio.wait_for(loop(), GUARD)
    except TimeoutError:
        raise AssertionError(f"never happened: {what}") from None


def run(coro: Any) -> Any:
    return asyncio.run(asyncio.wait_for(coro, 60))
