"""The cluster view: global networks, global IPAM and remote endpoints, kept in etcd.

With ``--cluster-store`` the daemon builds one ``ClusterView``. Everything
global lives in etcd under ``cluster/`` (below the store's own prefix):

==============================  ====================================  =========
key                             value                                 lifetime
==============================  ====================================  =========
``cluster/names/<name>``        ``{"id"}``                             network
``cluster/networks/<id>``       the Network record (scope global)      network
``cluster/vni/<vni>``           ``{"network"}``                        network
``cluster/pool-index``          ``{"pools": [{"subnet", "network"}]}`` cluster
``cluster/ipam/<net>/<ip>``     ``{"container", "host"}``              see below
``cluster/endpoints/<net>/<ep>`` name, aliases, ip, mac, vtep, host    host lease
``cluster/hosts/<host>``        ``{"vtep"}``                           host lease
==============================  ====================================  =========

Every write that must not collide (a name, a VNI, a pool, an address) is an
etcd transaction, so two hosts racing can never both win; the loser retries
(VNI, automatic addresses and automatic pools) or gets Docker's error text
(names, user pools, static addresses). Names, VNIs and addresses are
create-if-absent keys. Pools cannot be: two *different* subnets may overlap
(10.1.0.0/16 and 10.1.2.0/24), and two create-if-absent keys named by subnet
would both succeed. So every global pool is listed in one document,
``cluster/pool-index``: a create reads it, checks its subnets against the
list, and writes the grown list in the same transaction as the network, on the
condition that the document's revision did not change (compare-and-swap).
Any concurrent pool change (a create or a remove on another host) fails the
transaction, and the create re-reads and re-checks. The document is small (one
line per global network) and pool changes are rare, so one hot key costs
nothing measurable. An automatic pool is a /24 of 10.0.0.0/8 (Docker's global default
pool), apart from this host's local networks and every global one; the local default pools
(172.17-31, 192.168) stay for bridges, which every host picks on its own.

Endpoint and host records are written under this host's lease
(``LeaseKeeper``): when a host dies its records expire and every other host
removes its FDB/neighbour entries from the watch.

Address holdings (``cluster/ipam``) are *not* leased: a daemon restart, or an
etcd outage longer than the lease TTL, must not free the address of a
container that keeps running (another host would hand it out again and two
containers would answer for one IP). They are released when the container is
removed, and the holdings of a host that is gone are *swept*: once a host's
record (``cluster/hosts/<host>``, leased) has been absent for ``sweep_after``
seconds (default 300 s, as seen by a live host's clock), the live host with
the smallest name deletes that host's holdings in one transaction that also
checks that the host record is still absent, so a host that came back in the
meantime keeps them. A host that returns after the sweep claims the addresses
of its running endpoints again (create-if-absent, on resync); if another host
took one meanwhile, that is logged as an error naming both. Sweeping after a
grace period (rather than leasing the holdings) keeps short outages and
restarts harmless while still bounding the leak to ``sweep_after``.

Every daemon reads a snapshot and then watches ``cluster/`` from the
snapshot's revision + 1; ``WatchCompacted`` means a full resync (a new
snapshot, compared with what is known, differences applied). While etcd is
unreachable the watch waits and retries inside the store; the kernel entries
stay, so existing containers keep talking; global writes fail with the
store's ``Unavailable`` (503, naming the store). When etcd returns the watch
resumes where it stopped, and this host re-puts its own endpoint records if
its lease had expired meanwhile (``on_regrant``) and removes records of
endpoints that went away while the store was unreachable.

Global networks are shown through the ``NetworkTable`` the view shares with the
``NetworkController`` (its ``networks`` dict and address spaces), so lookups,
``ls`` and ``inspect`` need no special case; the controller, given this view at
construction, calls it for creating, removing and holding addresses on global
networks. The view calls the overlay driver (given at construction) for the data
path; the endpoint records live in the ``EndpointBook`` (``cluster_endpoints``),
which the driver reads and writes without knowing the view.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Awaitable, Callable, Mapping, Sequence
from typing import Any, Protocol, TypeVar

from tether.contracts.cluster import OverlayDataPath, Peer
from tether.contracts.model import Endpoint, Network
from tether.engine.cluster_batch import PeerBatcher
from tether.engine.cluster_endpoints import (
    ROOT,
    ClusterStore,
    EndpointBook,
    Lease,
    LeaseFactory,
    endpoint_key,
)
from tether.engine.cluster_networks import POOLS_KEY, delete_network, write_network
from tether.engine.clusterstats import ClusterStats
from tether.engine.nettable import NetworkTable
from tether.errors import TetherError
from tether.store.backoff import Backoff, jittered
from tether.store.base import Event, Op, WatchCompacted

log = logging.getLogger("tether.cluster")

__all__ = ["LEASE_TTL", "POOLS_KEY", "ROOT", "SWEEP_AFTER", "ClusterView"]

LEASE_TTL = 20  # seconds; kept alive every TTL/4 (docs/cluster-overload.md)
RETRY_BASE = 1.0  # the connect and resync loops back off from 1 s ...
RETRY_CAP = 30.0  # ... up to 30 s (equal jitter), and start over after a success
SWEEP_AFTER = 300.0  # seconds a host must be gone before its address holdings are freed


class LocalContainer(Protocol):
    """A container of this host, as the adoption at start reads it."""

    @property
    def running(self) -> bool: ...

    @property
    def name(self) -> str: ...

    def eps(self) -> list[Endpoint]: ...


C = TypeVar("C", bound=LocalContainer)


class LocalContainers(Protocol[C]):
    """This host's containers (the container controller)."""

    @property
    def containers(self) -> Mapping[str, C]: ...

    async def ensure_dns(self, c: C) -> None: ...


class ClusterView:
    """This host's view of the cluster store: global networks, holdings, hosts; the watch.

    Given at construction: the store, the ``EndpointBook`` (endpoint records), the overlay
    driver (the data path it keeps equal to the records), the ``NetworkTable`` it shares
    with the network controller, a lease factory (``LeaseKeeper`` in the daemon) and the
    listeners told when records changed (the DNS answer cache)."""

    def __init__(
        self,
        store: ClusterStore,
        book: EndpointBook,
        driver: OverlayDataPath,
        table: NetworkTable,
        leases: LeaseFactory,
        listeners: Sequence[Callable[[], None]] = (),
        ttl: int = LEASE_TTL,
        sweep_after: float = SWEEP_AFTER,
        clock: Callable[[], float] = time.monotonic,
        batch_wait: Callable[[], Awaitable[object]] | None = None,
    ) -> None:
        self.store = store
        self.book = book
        self.driver = driver
        self.table = table  # shared with the NetworkController
        self.leases = leases
        self.listeners = tuple(listeners)
        self.ttl = ttl
        self.sweep_after = sweep_after
        self.clock = clock
        self.global_ids: set[str] = set()
        self.holdings: dict[str, dict[str, str]] = {}  # net id -> ip held cluster-wide -> host
        self.gone_since: dict[str, float] = {}  # host without a host record -> since (clock)
        self.hosts: dict[str, dict[str, Any]] = {}
        self.stats: ClusterStats | None = None  # the metrics sink (daemon.py), read by /metrics
        self._task: asyncio.Task[None] | None = None
        self._sweeper: asyncio.Task[None] | None = None
        self._taken_vni: set[int] = set()
        self.revision = 0
        self.ready = asyncio.Event()
        self.adopted = False  # own stale records are deleted only after adopt_local
        # the adoption asked for before the store answered, run once it does
        self._adopt: Callable[[], Awaitable[None]] | None = None
        # remote endpoints reach the data path in batches (``batch_wait``: tests)
        self.batcher = PeerBatcher(book, driver, table, self._notify, wait=batch_wait)

    # ---- the book's state, read through the view --------------------------------
    @property
    def host(self) -> str:
        return self.book.host

    @property
    def lease(self) -> Lease | None:
        return self.book.lease

    @property
    def endpoints(self) -> dict[str, dict[str, dict[str, Any]]]:
        return self.book.endpoints

    @property
    def pending_release(self) -> set[str]:
        return self.book.pending_release

    def peers(self, net_id: str) -> list[Peer]:
        return self.book.peers(net_id)

    def remote_endpoints(self, net_id: str) -> list[dict[str, Any]]:
        return self.book.remote_endpoints(net_id)

    # ---- start / stop ----------------------------------------------------------
    async def start(self) -> None:
        """Register this host, read the snapshot, start the watch.

        When etcd does not answer, the daemon still starts (local networks work) and
        a background task keeps trying; global operations answer 503 meanwhile.
        """
        self._sweeper = asyncio.create_task(self._sweep_loop(), name="cluster-sweep")
        try:
            await self._connect()
        except TetherError as exc:
            log.warning("cluster store not reachable at start (%s); retrying in background", exc)
            self._task = asyncio.create_task(self._connect_then_run(), name="cluster-watch")
            return
        self._task = asyncio.create_task(self._run(), name="cluster-watch")

    async def _connect(self) -> None:
        lease = self.leases(self.ttl, self._regranted)
        await lease.start()
        self.book.lease = lease
        try:
            await lease.under(self._register)
            await self._resync()
        except BaseException:
            self.book.lease = None
            await lease.close(revoke=False)
            raise
        self.ready.set()

    async def _connect_then_run(self) -> None:
        backoff = Backoff(RETRY_BASE, RETRY_CAP)
        while True:
            await self._back_off("connect", backoff)
            try:
                await self._connect()
                break
            except TetherError as exc:
                log.debug("cluster store still unreachable: %s", exc)
        if self._adopt is not None and not self.adopted:
            await self._adopt()
        await self._run()

    async def adopt_local(self, containers: LocalContainers[C]) -> None:
        """After start: running local containers on overlays keep their records and data path.

        Not before the store has answered: until then the global networks are unknown, and
        adopting nothing would sweep every overlay namespace, cutting the running containers'
        interfaces (and then delete this host's endpoint records as stale). The adoption runs
        when the background connection succeeds."""
        self._adopt = lambda: self.adopt_local(containers)
        if not self.ready.is_set():
            log.warning("overlay endpoints are adopted once the cluster store answers")
            return
        for c in containers.containers.values():
            if not c.running:
                continue
            for ep in c.eps():
                net = self.table.networks.get(ep.network_id)
                if net is None or net.id not in self.global_ids:
                    continue
                try:
                    await self.driver.adopt(net, ep)
                    await containers.ensure_dns(c)
                except TetherError as exc:
                    log.error("re-wiring overlay %s for %s: %s", net.name, c.name, exc.message)
                self.book.adopt(net, ep)
        await self.driver.sweep()
        self.adopted = True
        if self.lease is not None:
            try:
                # put again under this run's lease: the old run's lease is about to expire
                await self.lease.under(self.book.put_mine)
                await self._reconcile_mine({k: dict(v) for k, v in self.endpoints.items()})
            except TetherError as exc:
                log.warning("own endpoint records not refreshed yet: %s", exc)

    async def close(self) -> None:
        tasks = [t for t in (self._task, self._sweeper) if t is not None]
        self._task = self._sweeper = None
        for task in tasks:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
        await self.batcher.close()
        if self.lease is not None:
            # Not revoked: containers outlive the daemon, and so must their records; if
            # this host does not come back they expire with the lease.
            await self.lease.close(revoke=False)
        await self.store.close()

    async def _register(self, lease_id: int) -> None:
        await self.store.put(f"{ROOT}hosts/{self.host}", {"vtep": self.book.vtep}, lease=lease_id)

    async def _regranted(self, lease_id: int) -> None:
        # under the new lease as given: a write here must not replace the lease again
        # (this runs inside ``Lease.replace``)
        await self._register(lease_id)
        await self.book.put_mine(lease_id)

    # ---- watch -------------------------------------------------------------------
    async def _run(self) -> None:
        """The watch; when it fails, a resync (retried with back-off) and a new watch. A
        watch that fails again before delivering anything backs off too, so a store that
        keeps breaking watches is not answered with a resync loop at its own speed."""
        rewatch = Backoff(RETRY_BASE, RETRY_CAP)
        while True:
            delivered = False
            try:
                async for ev in self.store.watch(ROOT, self.revision + 1):
                    await self._apply(ev)
                    self.revision = ev.revision
                    delivered = True
                return  # the store was closed
            except WatchCompacted:
                log.warning("cluster watch compacted at %d: full resync", self.revision)
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                log.warning("cluster watch failed: %s; resync", exc)
            if delivered:
                rewatch.reset()
            else:
                await self._back_off("rewatch", rewatch)
            backoff = Backoff(RETRY_BASE, RETRY_CAP)
            while True:
                try:
                    await self._resync()
                    break
                except TetherError as exc:
                    log.warning("cluster resync failed: %s", exc)
                    await self._back_off("resync", backoff)

    async def _back_off(self, loop: str, backoff: Backoff) -> None:
        """Sleep the next back-off delay of ``loop``, counted in the stats; cut short when
        the store is back (``ClusterStore.wait_answered``: the lease's keep-alive answered
        after a failed one), so the view converges within one keep-alive of etcd's return
        instead of up to RETRY_CAP later; a store merely slow wakes nothing."""
        delay = backoff.next()
        if self.stats is not None:
            self.stats.backoff(loop, delay)
        await self.store.wait_answered(delay)

    def _notify(self) -> None:
        for fn in self.listeners:
            try:
                fn()
            except Exception:  # a listener must not stop the watch
                log.exception("cluster listener failed")

    async def _apply(self, ev: Event) -> None:
        parts = ev.key[len(ROOT) :].split("/")
        kind = parts[0]
        if kind == "networks" and len(parts) == 2:
            if ev.kind == "put" and ev.value is not None:
                self._add_network(Network.from_dict(ev.value))
            else:
                await self._drop_network(parts[1])
            self._notify()
        # holdings, endpoints and hosts change no DNS answer here by themselves: endpoint
        # records reach the answer caches through the batcher, only on local networks
        elif kind == "ipam" and len(parts) == 3:
            owner = str(ev.value.get("host", "")) if ev.value is not None else ""
            self._hold(parts[1], parts[2], owner if ev.kind == "put" else None)
        elif kind == "endpoints" and len(parts) == 3:
            await self._endpoint(parts[1], parts[2], ev.value if ev.kind == "put" else None)
        elif kind == "hosts" and len(parts) == 2:
            if ev.kind == "put" and ev.value is not None:
                self.hosts[parts[1]] = ev.value
                self.gone_since.pop(parts[1], None)
            else:
                self.hosts.pop(parts[1], None)
                self.gone_since.setdefault(parts[1], self.clock())

    def _add_network(self, net: Network) -> None:
        have = self.table.networks.get(net.id)
        self.global_ids.add(net.id)
        if have is not None and have.vni == net.vni:
            return
        self.table.index(net)
        for ip in self.holdings.get(net.id, {}):
            self.table.reserve(net.id, ip, True)

    async def _drop_network(self, net_id: str) -> None:
        net = self.table.drop(net_id)
        self.global_ids.discard(net_id)
        self.endpoints.pop(net_id, None)
        self.holdings.pop(net_id, None)
        if net is not None:
            await self.driver.delete(net)

    def _hold(self, net_id: str, ip: str, owner: str | None) -> None:
        """``owner`` is the holding host, None when the holding went away."""
        ips = self.holdings.setdefault(net_id, {})
        if owner is not None:
            ips[ip] = owner
        else:
            ips.pop(ip, None)
        self.table.reserve(net_id, ip, owner is not None)

    async def _endpoint(self, net_id: str, ep_id: str, value: dict[str, Any] | None) -> None:
        """The book now, the data path (and DNS caches) in the next batch (``cluster_batch``)."""
        if value is None:
            value = await self.book.restore(endpoint_key(net_id, ep_id), ep_id)
        eps = self.endpoints.setdefault(net_id, {})
        if value is None:
            eps.pop(ep_id, None)
        else:
            eps[ep_id] = value
        if net_id in self.table.networks:
            self.batcher.mark(net_id, ep_id)

    async def _resync(self) -> None:
        """Read everything under ``cluster/`` and make the view (and data path) equal to it."""
        records, rev = await self.store.snapshot(ROOT)
        nets: dict[str, Network] = {}
        holdings: dict[str, dict[str, str]] = {}
        endpoints: dict[str, dict[str, dict[str, Any]]] = {}
        hosts: dict[str, dict[str, Any]] = {}
        for rec in records:
            parts = rec.key[len(ROOT) :].split("/")
            if parts[0] == "networks" and len(parts) == 2:
                nets[parts[1]] = Network.from_dict(rec.value)
            elif parts[0] == "ipam" and len(parts) == 3:
                holdings.setdefault(parts[1], {})[parts[2]] = str(rec.value.get("host", ""))
            elif parts[0] == "endpoints" and len(parts) == 3:
                endpoints.setdefault(parts[1], {})[parts[2]] = rec.value
            elif parts[0] == "hosts" and len(parts) == 2:
                hosts[parts[1]] = rec.value
        for gone in self.global_ids - set(nets):
            await self._drop_network(gone)
        self.holdings = holdings
        self.hosts = hosts
        owners = {h for ips in holdings.values() for h in ips.values() if h}
        for h in list(self.gone_since):
            if h in hosts:
                del self.gone_since[h]
        for h in owners - set(hosts) - {self.host}:
            self.gone_since.setdefault(h, self.clock())
        self.book.endpoints = endpoints
        for net in nets.values():
            self.global_ids.add(net.id)
            self.table.index(net)  # fresh spaces: held addresses re-reserved below
            for ip in holdings.get(net.id, {}):
                self.table.reserve(net.id, ip, True)
        # addresses this host is using but whose holdings were lost are claimed again
        self.revision = rev
        await self._reconcile_mine(endpoints)
        for net in nets.values():
            await self.driver.resync(net)
        self._notify()

    async def _reconcile_mine(self, seen: dict[str, dict[str, dict[str, Any]]]) -> None:
        """Own records: put the missing ones, delete the ones no longer wanted."""
        if self.lease is None:
            return
        await self.book.reconcile(seen, self.adopted)
        await self._reclaim_mine()

    async def _reclaim_mine(self) -> None:
        """Addresses of this host's endpoints whose holdings are gone (swept while this
        host was away) are claimed again; one taken by another host is an error to see."""
        for value in list(self.book.mine.values()):
            nid, ip = str(value.get("network", "")), str(value.get("ip", ""))
            if not nid or not ip:
                continue
            owner = self.holdings.get(nid, {}).get(ip)
            if owner in (self.host, ""):
                continue
            if owner is None and await self.claim_ip(nid, ip, str(value.get("container", ""))):
                log.warning("address %s of %s held again after a sweep", ip, value.get("name"))
                continue
            log.error(
                "address %s of container %s on network %s is now held by host %s",
                ip,
                value.get("name"),
                nid[:12],
                owner or "another host",
            )

    # ---- sweeping the holdings of hosts that are gone ----------------------------------
    async def _sweep_loop(self) -> None:
        interval = max(1.0, min(self.sweep_after / 4, 30.0))
        backoff = Backoff(interval, 8 * interval)  # a failing store is swept less often
        while True:
            await asyncio.sleep(jittered(interval))
            try:
                # not only on a full resync: the watch may resume (or the lease be granted
                # again) without one, and a release made meanwhile must not stay held
                await self.book.flush_pending()
                await self.sweep()
                backoff.reset()
            except TetherError as exc:
                log.debug("holdings sweep skipped: %s", exc)
                await self._back_off("sweep", backoff)

    async def sweep(self) -> int:
        """Delete the address holdings of hosts gone for ``sweep_after`` seconds.

        Only the live host with the smallest name sweeps (the others would do the same
        work); each gone host's holdings go in one transaction that checks its host
        record is still absent. Returns how many holdings were deleted.
        """
        live = set(self.hosts) | {self.host}
        if self.lease is None or min(live) != self.host:
            return 0
        now = self.clock()
        removed = 0
        for host, since in list(self.gone_since.items()):
            if host in self.hosts or host == self.host:
                self.gone_since.pop(host, None)
                continue
            if now - since < self.sweep_after:
                continue
            keys = [
                f"{ROOT}ipam/{nid}/{ip}"
                for nid, ips in self.holdings.items()
                for ip, owner in ips.items()
                if owner == host
            ]
            if not keys:
                self.gone_since.pop(host, None)
                continue
            ops = [Op("check", f"{ROOT}hosts/{host}", revision=0)]
            ops += [Op("delete", k) for k in keys]
            res = await self.store.txn(ops)
            if res.ok:
                log.info("host %s gone for %.0fs: freed %d addresses", host, now - since, len(keys))
                removed += len(keys)
                self.gone_since.pop(host, None)
        return removed

    # ---- global networks ------------------------------------------------------------
    async def create_network(self, net: Network) -> None:
        """Write a new global network (``cluster_networks.write_network``), then know it."""
        await write_network(self.store, self.table, net, self._taken_vni)
        self._add_network(net)
        self._notify()

    async def remove_network(self, net: Network) -> None:
        await delete_network(self.store, net)
        await self._drop_network(net.id)
        self._notify()

    def is_global(self, net_id: str) -> bool:
        return net_id in self.global_ids

    # ---- addresses ------------------------------------------------------------------
    async def claim_ip(self, net_id: str, ip: str, container: str) -> bool:
        ok = await self.store.create(
            f"{ROOT}ipam/{net_id}/{ip}", {"container": container, "host": self.host}
        )
        if ok:
            self.holdings.setdefault(net_id, {})[ip] = self.host
        return ok

    async def release_ip(self, net_id: str, ip: str) -> None:
        key = f"{ROOT}ipam/{net_id}/{ip}"
        self.holdings.get(net_id, {}).pop(ip, None)
        try:
            await self.store.delete(key)
        except TetherError as exc:
            log.warning("address %s stays held until the store is back: %s", ip, exc)
            self.pending_release.add(key)
