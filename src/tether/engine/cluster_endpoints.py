"""Endpoints on global networks: every host's, as the cluster store holds them, and this
host's own records (``cluster/endpoints/<net>/<ep>``, written under this host's lease).

The ``EndpointBook`` is built before the overlay driver and the cluster view and given to
both: the driver reads the remote endpoints of a network (``peers``) when it wires it and
writes its local endpoints' records (``publish``); the view keeps ``endpoints`` equal to
the store from its watch, holds the lease, and puts this host's records back (``mine``)
when the lease was granted again or the store lost them. The embedded DNS reads
``remote_endpoints``.
"""

from __future__ import annotations

import builtins
import logging
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from typing import Any, Protocol, TypeVar

from tether.contracts.cluster import Peer
from tether.contracts.model import Endpoint, Network
from tether.errors import TetherError
from tether.store.base import Event, Op, Record, TxnResult, Value

log = logging.getLogger("tether.cluster")

T = TypeVar("T")

ROOT = "cluster/"


class ClusterStore(Protocol):
    """The store a cluster view needs (``tether.store.etcd.EtcdStore``): writes under a
    lease, a snapshot with its revision, a watch from a revision, and "the store is back"
    (``wait_answered``) to end back-off sleeps early."""

    async def get(self, key: str) -> Record | None: ...

    async def list(self, prefix: str) -> builtins.list[Record]: ...

    async def snapshot(self, prefix: str) -> tuple[builtins.list[Record], int]: ...

    async def put(self, key: str, value: Value, *, lease: int = 0) -> int: ...

    async def create(self, key: str, value: Value, *, lease: int = 0) -> bool: ...

    async def delete(self, key: str) -> bool: ...

    async def txn(self, ops: Sequence[Op], *, lease: int = 0) -> TxnResult: ...

    def watch(self, prefix: str, start_revision: int = 0) -> AsyncIterator[Event]: ...

    async def wait_answered(self, timeout: float) -> bool:
        """Up to ``timeout`` seconds for the store to answer again after failing (True);
        False when the time ran out. A store merely slow answers nothing here."""
        ...

    async def close(self) -> None: ...


class Lease(Protocol):
    """A lease kept alive (``tether.store.lease.LeaseKeeper``)."""

    @property
    def lease_id(self) -> int: ...

    async def start(self) -> int: ...

    async def under(self, write: Callable[[int], Awaitable[T]]) -> T:
        """``write(lease_id)``, once more under a new lease if the store says it is gone."""
        ...

    async def close(self, revoke: bool = True) -> None: ...


# (ttl, on_regrant) -> a lease not started yet; on_regrant gets the new lease's id
LeaseFactory = Callable[[int, Callable[[int], Awaitable[None]]], Lease]


def endpoint_key(net_id: str, ep_id: str) -> str:
    return f"{ROOT}endpoints/{net_id}/{ep_id}"


def peer_of(ep_id: str, rec: dict[str, Any]) -> Peer:
    return Peer(
        ep_id,
        str(rec.get("ip", "")),
        str(rec.get("mac", "")),
        str(rec.get("vtep", "")),
        str(rec.get("ip6", "")),
    )


class EndpointBook:
    def __init__(self, store: ClusterStore, host: str, vtep: str) -> None:
        self.store = store
        self.host = host
        self.vtep = vtep
        self.endpoints: dict[str, dict[str, dict[str, Any]]] = {}  # net id -> ep id -> record
        self.mine: dict[str, dict[str, Any]] = {}  # key -> value of this host's endpoint records
        # ipam and own endpoint keys to delete when etcd is back (released while it was away)
        self.pending_release: set[str] = set()
        self.lease: Lease | None = None  # this run's lease, once the store answered

    # ---- what the driver and the resolver read ------------------------------------
    def peers(self, net_id: str) -> list[Peer]:
        return [
            peer_of(eid, rec)
            for eid, rec in self.endpoints.get(net_id, {}).items()
            if rec.get("host") != self.host
        ]

    def remote_endpoints(self, net_id: str) -> list[dict[str, Any]]:
        return [
            rec for rec in self.endpoints.get(net_id, {}).values() if rec.get("host") != self.host
        ]

    # ---- this host's endpoints ---------------------------------------------------------
    async def publish(self, net: Network, ep: Endpoint, present: bool) -> None:
        key = endpoint_key(net.id, ep.id)
        if not present:
            self.mine.pop(key, None)
            self.endpoints.get(net.id, {}).pop(ep.id, None)
            try:
                await self.store.delete(key)
            except TetherError:
                self.pending_release.add(key)  # deleted when the store answers again
                raise
            return
        value = self.record(net, ep)
        await self._put_leased(key, value)
        self.mine[key] = value
        self.endpoints.setdefault(net.id, {})[ep.id] = value

    def adopt(self, net: Network, ep: Endpoint) -> None:
        """A running local endpoint found at start: its record must exist (put on resync)."""
        self.mine[endpoint_key(net.id, ep.id)] = self.record(net, ep)

    def record(self, net: Network, ep: Endpoint) -> dict[str, Any]:
        """What the other hosts learn of a local endpoint (``cluster/endpoints/...``)."""
        return {
            "network": net.id,
            "container": ep.container_id,
            "name": ep.container_name,
            "aliases": list(ep.aliases),
            "ip": ep.ip,
            "prefixlen": ep.prefixlen,
            "mac": ep.mac,
            "host": self.host,
            "vtep": self.vtep,
            **({"ip6": ep.ip6, "prefixlen6": ep.prefixlen6} if ep.ip6 else {}),
        }

    async def _put_leased(self, key: str, value: dict[str, Any]) -> None:
        """Put one of this host's records under the live lease (replaced first if etcd
        says it is gone: the write may be the first to learn it)."""
        assert self.lease is not None

        async def put(lease_id: int) -> None:
            await self.store.put(key, value, lease=lease_id)

        await self.lease.under(put)

    async def put_mine(self, lease_id: int) -> None:
        """Put every own record again under ``lease_id``."""
        for key, value in list(self.mine.items()):
            await self.store.put(key, value, lease=lease_id)

    async def reconcile(self, seen: dict[str, dict[str, dict[str, Any]]], adopted: bool) -> None:
        """Own records: put the missing ones, delete the ones no longer wanted (only once the
        running containers were adopted: before, every own record looks unwanted)."""
        if self.lease is None:
            return
        for key, value in list(self.mine.items()):
            _, _, nid, eid = key.split("/")
            if eid not in seen.get(nid, {}):
                await self._put_leased(key, value)
                seen.setdefault(nid, {})[eid] = value
        for nid, eps in seen.items():
            for eid, value in list(eps.items()):
                key = endpoint_key(nid, eid)
                if adopted and value.get("host") == self.host and key not in self.mine:
                    await self.store.delete(key)
                    eps.pop(eid, None)
        await self.flush_pending()

    async def flush_pending(self) -> None:
        """Delete the records and holdings released while the store was away."""
        for key in list(self.pending_release):
            await self.store.delete(key)
            self.pending_release.discard(key)

    async def restore(self, key: str, ep_id: str) -> dict[str, Any] | None:
        """One of ours vanished (an older lease of this host expired): put it back. Returns
        the record, or None when it is not ours."""
        if key not in self.mine or self.lease is None:
            return None
        value = self.mine[key]
        try:
            await self._put_leased(key, value)
        except TetherError as exc:
            log.warning("endpoint record %s not restored yet: %s", ep_id[:12], exc)
        return value
