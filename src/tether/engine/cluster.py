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

Global networks are shown through the ``NetworkController`` (its ``networks``
dict and address spaces), so lookups, ``ls`` and ``inspect`` need no special
case; the controller calls this class for creating, removing and holding
addresses on global networks (``networks.cluster``).
"""

from __future__ import annotations

import asyncio
import contextlib
import ipaddress
import logging
import time
from collections.abc import Awaitable, Callable
from typing import Any

from tether.contracts.model import (
    OPT_BRIDGE_NAME,
    OPT_ICC,
    OPT_MASQ,
    OPT_VXLANID,
    Endpoint,
    Network,
    mac_for,
)
from tether.contracts.pools import PoolConfig
from tether.drivers.overlay import VNI_MIN, OverlayDriver, Peer, requested_vni
from tether.engine.ipam import PoolPicker, check_overlap
from tether.errors import BadRequest, Conflict, Forbidden, TetherError
from tether.store.base import Event, Op, Store, WatchCompacted
from tether.store.etcd import EtcdStore, LeaseKeeper

log = logging.getLogger("tether.cluster")

ROOT = "cluster/"
LEASE_TTL = 10
SWEEP_AFTER = 300.0  # seconds a host must be gone before its address holdings are freed
POOLS_KEY = ROOT + "pool-index"


GLOBAL_POOL = PoolPicker([("10.0.0.0/8", 24)])


class ClusterView:
    def __init__(
        self,
        store: EtcdStore,
        host: str,
        vtep: str,
        networks: Any,
        ttl: int = LEASE_TTL,
        sweep_after: float = SWEEP_AFTER,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.store = store
        self.host = host
        self.vtep = vtep
        self.networks = networks  # the NetworkController
        self.ttl = ttl
        self.sweep_after = sweep_after
        self.clock = clock
        self.global_ids: set[str] = set()
        self.endpoints: dict[str, dict[str, dict[str, Any]]] = {}  # net id -> ep id -> record
        self.holdings: dict[str, dict[str, str]] = {}  # net id -> ip held cluster-wide -> host
        self.gone_since: dict[str, float] = {}  # host without a host record -> since (clock)
        self.hosts: dict[str, dict[str, Any]] = {}
        self.mine: dict[str, dict[str, Any]] = {}  # key -> value of this host's endpoint records
        # ipam and own endpoint keys to delete when etcd is back (released while it was away)
        self.pending_release: set[str] = set()
        self.on_peer: Callable[[Network, Peer, bool], Awaitable[None]] | None = None
        self.on_network_gone: Callable[[Network], Awaitable[None]] | None = None
        self.on_resync: Callable[[Network], Awaitable[None]] | None = None
        self.listeners: list[Callable[[], None]] = []
        self.lease: LeaseKeeper | None = None
        self._task: asyncio.Task[None] | None = None
        self._sweeper: asyncio.Task[None] | None = None
        self._taken_vni: set[int] = set()
        self.revision = 0
        self.ready = asyncio.Event()
        self.adopted = False  # own stale records are deleted only after adopt_local
        self._containers: Any = None  # the container controller, once adopt_local was called
        self.driver: Any = None  # the OverlayDriver (set by build_cluster)

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
        lease = LeaseKeeper(self.store, self.ttl, on_regrant=self._regranted)
        await lease.start()
        self.lease = lease
        try:
            await self._register()
            await self._resync()
        except BaseException:
            self.lease = None
            await lease.close(revoke=False)
            raise
        self.ready.set()

    async def _connect_then_run(self) -> None:
        while True:
            await asyncio.sleep(1.0)
            try:
                await self._connect()
                break
            except TetherError as exc:
                log.debug("cluster store still unreachable: %s", exc)
        if self._containers is not None and not self.adopted:
            await self.adopt_local(self._containers)
        await self._run()

    async def adopt_local(self, containers: Any) -> None:
        """After start: running local containers on overlays keep their records and data path.

        Not before the store has answered: until then the global networks are unknown, and
        adopting nothing would sweep every overlay namespace, cutting the running containers'
        interfaces (and then delete this host's endpoint records as stale). The adoption runs
        when the background connection succeeds."""
        self._containers = containers
        if not self.ready.is_set():
            log.warning("overlay endpoints are adopted once the cluster store answers")
            return
        for c in containers.containers.values():
            if not c.running:
                continue
            for ep in c.eps():
                net = self.networks.networks.get(ep.network_id)
                if net is None or net.id not in self.global_ids or self.driver is None:
                    continue
                try:
                    await self.driver.adopt(net, ep)
                    await containers.ensure_dns(c)
                except TetherError as exc:
                    log.error("re-wiring overlay %s for %s: %s", net.name, c.name, exc.message)
                self.adopt(net, ep)
        if self.driver is not None:
            await self.driver.sweep()
        self.adopted = True
        if self.lease is not None:
            try:
                # put again under this run's lease: the old run's lease is about to expire
                for key, value in list(self.mine.items()):
                    await self.store.put(key, value, lease=self.lease.lease_id)
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
        if self.lease is not None:
            # Not revoked: containers outlive the daemon, and so must their records; if
            # this host does not come back they expire with the lease.
            await self.lease.close(revoke=False)
        await self.store.close()

    async def _register(self) -> None:
        assert self.lease is not None
        await self.store.put(
            f"{ROOT}hosts/{self.host}", {"vtep": self.vtep}, lease=self.lease.lease_id
        )

    async def _regranted(self, lease_id: int) -> None:
        await self._register()
        for key, value in list(self.mine.items()):
            await self.store.put(key, value, lease=lease_id)

    # ---- watch -------------------------------------------------------------------
    async def _run(self) -> None:
        while True:
            try:
                async for ev in self.store.watch(ROOT, self.revision + 1):
                    await self._apply(ev)
                    self.revision = ev.revision
                return  # the store was closed
            except WatchCompacted:
                log.warning("cluster watch compacted at %d: full resync", self.revision)
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                log.warning("cluster watch failed: %s; resync", exc)
            while True:
                try:
                    await self._resync()
                    break
                except TetherError as exc:
                    log.warning("cluster resync failed: %s", exc)
                    await asyncio.sleep(1.0)

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
        self._notify()

    def _add_network(self, net: Network) -> None:
        have = self.networks.networks.get(net.id)
        self.global_ids.add(net.id)
        if have is not None and have.vni == net.vni:
            return
        self.networks._index(net)
        for ip in self.holdings.get(net.id, {}):
            self._reserve(net.id, ip, True)

    async def _drop_network(self, net_id: str) -> None:
        net = self.networks.networks.pop(net_id, None)
        self.networks.spaces.pop(net_id, None)
        self.global_ids.discard(net_id)
        self.endpoints.pop(net_id, None)
        self.holdings.pop(net_id, None)
        if net is not None and self.on_network_gone is not None:
            await self.on_network_gone(net)

    def _reserve(self, net_id: str, ip: str, held: bool) -> None:
        addr = ipaddress.IPv4Address(ip)
        for space in self.networks.spaces.get(net_id, []):
            if addr in space.cfg.subnet:
                if held:
                    space.reserve(addr)
                else:
                    space.release(addr)

    def _hold(self, net_id: str, ip: str, owner: str | None) -> None:
        """``owner`` is the holding host, None when the holding went away."""
        ips = self.holdings.setdefault(net_id, {})
        if owner is not None:
            ips[ip] = owner
        else:
            ips.pop(ip, None)
        self._reserve(net_id, ip, owner is not None)

    async def _endpoint(self, net_id: str, ep_id: str, value: dict[str, Any] | None) -> None:
        key = f"{ROOT}endpoints/{net_id}/{ep_id}"
        if value is None and key in self.mine and self.lease is not None:
            # one of ours vanished (an older lease of this host expired): put it back
            value = self.mine[key]
            try:
                await self.store.put(key, value, lease=self.lease.lease_id)
            except TetherError as exc:
                log.warning("endpoint record %s not restored yet: %s", ep_id[:12], exc)
        eps = self.endpoints.setdefault(net_id, {})
        old = eps.get(ep_id)
        if value is None:
            eps.pop(ep_id, None)
        else:
            eps[ep_id] = value
        net = self.networks.networks.get(net_id)
        if net is None or self.on_peer is None:
            return
        changed = value is None or (old is not None and _peer(ep_id, old) != _peer(ep_id, value))
        if old is not None and old.get("host") != self.host and changed:
            await self.on_peer(net, _peer(ep_id, old), False)
        if value is not None and value.get("host") != self.host:
            await self.on_peer(net, _peer(ep_id, value), True)

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
        old_eps = self.endpoints
        self.endpoints = endpoints
        for net in nets.values():
            self.global_ids.add(net.id)
            self.networks._index(net)  # fresh spaces: held addresses re-reserved below
            for ip in holdings.get(net.id, {}):
                self._reserve(net.id, ip, True)
        # addresses this host is using but whose holdings were lost are claimed again
        self.revision = rev
        await self._reconcile_mine(endpoints)
        for net in nets.values():
            if self.on_resync is not None:
                await self.on_resync(net)
        del old_eps
        self._notify()

    async def _reconcile_mine(self, seen: dict[str, dict[str, dict[str, Any]]]) -> None:
        """Own records: put the missing ones, delete the ones no longer wanted."""
        if self.lease is None:
            return
        for key, value in list(self.mine.items()):
            _, _, nid, eid = key.split("/")
            if eid not in seen.get(nid, {}):
                await self.store.put(key, value, lease=self.lease.lease_id)
                seen.setdefault(nid, {})[eid] = value
        for nid, eps in seen.items():
            for eid, value in list(eps.items()):
                key = f"{ROOT}endpoints/{nid}/{eid}"
                if self.adopted and value.get("host") == self.host and key not in self.mine:
                    await self.store.delete(key)
                    eps.pop(eid, None)
        await self._flush_pending()
        await self._reclaim_mine()

    async def _flush_pending(self) -> None:
        """Delete the records and holdings released while the store was away."""
        for key in list(self.pending_release):
            await self.store.delete(key)
            self.pending_release.discard(key)

    async def _reclaim_mine(self) -> None:
        """Addresses of this host's endpoints whose holdings are gone (swept while this
        host was away) are claimed again; one taken by another host is an error to see."""
        for value in list(self.mine.values()):
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
        while True:
            await asyncio.sleep(interval)
            try:
                # not only on a full resync: the watch may resume (or the lease be granted
                # again) without one, and a release made meanwhile must not stay held
                await self._flush_pending()
                await self.sweep()
            except TetherError as exc:
                log.debug("holdings sweep skipped: %s", exc)

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

    # ---- what the driver and the resolver read ------------------------------------
    def peers(self, net_id: str) -> list[Peer]:
        return [
            _peer(eid, rec)
            for eid, rec in self.endpoints.get(net_id, {}).items()
            if rec.get("host") != self.host
        ]

    def remote_endpoints(self, net_id: str) -> list[dict[str, Any]]:
        return [
            rec for rec in self.endpoints.get(net_id, {}).values() if rec.get("host") != self.host
        ]

    # ---- global networks ------------------------------------------------------------
    async def create_network(self, net: Network) -> None:
        """Write a new global network: name, VNI, pools and record in one transaction.

        The pools are checked against ``cluster/pool-index`` and the grown index is
        written on the condition that its revision is unchanged (see the module
        docstring); a lost race re-reads and re-checks. An automatic pool that turns out
        to overlap is picked again; a user pool gets Docker's overlap error.
        """
        net.scope = "global"
        wanted = requested_vni(net)
        for _ in range(64):
            rec = await self.store.get(POOLS_KEY)
            listed = list(rec.value.get("pools", [])) if rec is not None else []
            taken = [ipaddress.IPv4Network(p["subnet"]) for p in listed]
            pools = self._fit_pools(net, taken)
            net.vni = wanted or self._next_vni()
            net.options[OPT_VXLANID] = str(net.vni)
            grown = listed + [{"subnet": str(p.subnet), "network": net.id} for p in pools]
            ops = [
                Op("check", POOLS_KEY, revision=rec.revision if rec is not None else 0),
                Op("put", POOLS_KEY, {"pools": grown}),
                Op("create", f"{ROOT}names/{net.name}", {"id": net.id}),
                Op("create", f"{ROOT}vni/{net.vni}", {"network": net.id}),
                Op("create", f"{ROOT}networks/{net.id}", net.to_dict()),
            ]
            res = await self.store.txn(ops)
            if res.ok:
                self._add_network(net)
                self._notify()
                return
            failed = res.failed_key or ""
            if failed == POOLS_KEY:
                continue  # another pool change won: read the index again
            if failed.startswith(f"{ROOT}vni/"):
                if wanted:
                    raise Conflict(f"vxlan id {wanted} is already in use")
                self._taken_vni.add(net.vni)
                continue
            raise Conflict(f"network with name {net.name} already exists")
        raise Conflict("could not create the network: too many concurrent network changes")

    def _fit_pools(self, net: Network, taken: list[ipaddress.IPv4Network]) -> list[PoolConfig]:
        """The network's pools, checked against the global ones (re-picked if automatic)."""
        pools = net.pools
        if net.user_subnet:
            for p in pools:
                check_overlap(p.subnet, taken)
            return pools
        # Automatic: from the global default pool (Docker's GlobalDefault, 10.0.0.0/8 in /24s),
        # not the local one, whose subnets other hosts pick for their own bridges.
        used = list(self.networks._used_subnets()) + taken
        subnet = GLOBAL_POOL.pick(used)
        cfg = PoolConfig(subnet, subnet.network_address + 1, user_subnet=False)
        net.configs = [cfg.to_json()]
        return [cfg]

    def _next_vni(self) -> int:
        used = {n.vni for n in self.networks.networks.values() if n.vni} | self._taken_vni
        vni = VNI_MIN
        while vni in used:
            vni += 1
        return vni

    async def remove_network(self, net: Network) -> None:
        prefix_ipam = f"{ROOT}ipam/{net.id}/"
        prefix_eps = f"{ROOT}endpoints/{net.id}/"
        if await self.store.list(prefix_ipam) or await self.store.list(prefix_eps):
            raise Forbidden(
                f"error while removing network: network {net.name} id {net.id} has active endpoints"
            )
        for _ in range(64):
            rec = await self.store.get(f"{ROOT}networks/{net.id}")
            if rec is None:
                break  # removed by another host meanwhile
            index = await self.store.get(POOLS_KEY)
            listed = list(index.value.get("pools", [])) if index is not None else []
            kept = [p for p in listed if p.get("network") != net.id]
            ops = [
                Op("check", f"{ROOT}networks/{net.id}", revision=rec.revision),
                Op("check", POOLS_KEY, revision=index.revision if index is not None else 0),
                Op("put", POOLS_KEY, {"pools": kept}),
                Op("delete", f"{ROOT}networks/{net.id}"),
                Op("delete", f"{ROOT}names/{net.name}"),
                Op("delete", f"{ROOT}vni/{net.vni}"),
            ]
            if (await self.store.txn(ops)).ok:
                break
        else:
            raise Conflict("could not remove the network: too many concurrent network changes")
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

    # ---- this host's endpoints ---------------------------------------------------------
    async def publish(self, net: Network, ep: Endpoint, present: bool) -> None:
        key = f"{ROOT}endpoints/{net.id}/{ep.id}"
        if not present:
            self.mine.pop(key, None)
            self.endpoints.get(net.id, {}).pop(ep.id, None)
            try:
                await self.store.delete(key)
            except TetherError:
                self.pending_release.add(key)  # deleted when the store answers again
                raise
            return
        value = self._record(net, ep)
        assert self.lease is not None
        await self.store.put(key, value, lease=self.lease.lease_id)
        self.mine[key] = value
        self.endpoints.setdefault(net.id, {})[ep.id] = value

    def adopt(self, net: Network, ep: Endpoint) -> None:
        """A running local endpoint found at start: its record must exist (put on resync)."""
        self.mine[f"{ROOT}endpoints/{net.id}/{ep.id}"] = self._record(net, ep)

    def _record(self, net: Network, ep: Endpoint) -> dict[str, Any]:
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
        }


def _peer(ep_id: str, rec: dict[str, Any]) -> Peer:
    return Peer(ep_id, str(rec.get("ip", "")), str(rec.get("mac", "")), str(rec.get("vtep", "")))


class GatewayBridge:
    """The per-host gateway bridge (Docker's ``docker_gwbridge``): outside access for overlays.

    A local bridge network ``tether_gwbridge`` (ICC off, masquerade on) made on
    first use; each overlay endpoint ``eth<n>`` gets a second interface
    ``eth<n+1>`` on it, which carries the default route. Its address is held in
    the local store (``ipam/<gwnet>/<ip>``) and remembered under ``gwep/<ep>``.
    """

    NAME = "tether_gwbridge"

    def __init__(
        self,
        networks: Any,
        netlink: Any,
        store: Store,
        on_change: Callable[[], Awaitable[None]] | None = None,
    ) -> None:
        self.networks = networks
        self.nl = netlink
        self.store = store
        self.on_change = on_change
        self._lock = asyncio.Lock()

    async def _network(self) -> Network:
        from tether.engine.networks import CreateRequest

        async with self._lock:  # held until the bridge exists, not only its record
            net = self.networks.find(self.NAME)
            if net is not None and net.name == self.NAME:
                return net  # type: ignore[no-any-return]
            net = await self.networks.create(
                CreateRequest(
                    name=self.NAME,
                    driver="bridge",
                    options={OPT_BRIDGE_NAME: self.NAME, OPT_ICC: "false", OPT_MASQ: "true"},
                )
            )
            if self.on_change is not None:
                await self.on_change()
            return net  # type: ignore[no-any-return]

    @staticmethod
    def ifname_for(ep: Endpoint) -> str:
        n = int(ep.ifname[3:]) if ep.ifname.startswith("eth") and ep.ifname[3:].isdigit() else 0
        return f"eth{n + 1}"

    async def attach(self, ep: Endpoint, ns_path: str) -> None:
        from tether.linux.netlink import LinkSpec

        net = await self._network()
        ip, prefix, gw = self.networks.allocate(net, None)
        key = self.networks.ipam_key(net.id, ip)
        res = await self.store.txn(
            [
                Op("create", key, {"gateway_for": ep.id}),
                Op("put", f"gwep/{ep.id}", {"network": net.id, "ip": ip}),
            ]
        )
        if not res.ok:
            self.networks.release(net.id, ip)
            raise Conflict("Address already in use")
        spec = LinkSpec(
            ns_path=ns_path,
            ifname=self.ifname_for(ep),
            mac=mac_for(ip),
            address=f"{ip}/{prefix}",
            gateway=gw,
            mtu=1500,
        )
        try:
            await self.nl.add_veth("tg" + ep.id[:13], net.ifname, spec)
        except BaseException:
            await self._release(ep.id, net.id, ip)
            raise

    async def detach(self, ep: Endpoint) -> None:
        await self.nl.delete_link("tg" + ep.id[:13])
        rec = await self.store.get(f"gwep/{ep.id}")
        if rec is not None:
            await self._release(ep.id, str(rec.value["network"]), str(rec.value["ip"]))

    async def _release(self, ep_id: str, net_id: str, ip: str) -> None:
        await self.store.txn(
            [Op("delete", self.networks.ipam_key(net_id, ip)), Op("delete", f"gwep/{ep_id}")]
        )
        self.networks.release(net_id, ip)


def open_cluster_store(url: str) -> EtcdStore:
    """``etcd://HOST:PORT[,HOST:PORT]`` -> an ``EtcdStore`` (it connects lazily)."""
    text = url.split("://", 1)[1] if "://" in url else url
    endpoints = [e for e in text.split(",") if e]
    if not url.startswith("etcd://") and "://" in url:
        raise BadRequest(f"unsupported cluster store {url}: only etcd:// is supported")
    return EtcdStore(endpoints)


def advertise_address(value: str | None) -> str:
    """``--cluster-advertise IP|IFACE[:PORT]`` -> the IPv4 address used as VTEP and host id."""
    if not value:
        raise BadRequest("--cluster-store needs --cluster-advertise IP|IFACE")
    head = value.rsplit(":", 1)[0] if value.count(":") == 1 else value
    try:
        return str(ipaddress.IPv4Address(head))
    except ValueError:
        pass
    import subprocess

    out = subprocess.run(
        ["ip", "-4", "-o", "addr", "show", "dev", head], capture_output=True, text=True
    ).stdout.split()
    if "inet" in out:
        return out[out.index("inet") + 1].split("/")[0]
    raise BadRequest(f"--cluster-advertise {value}: no IPv4 address on interface {head}")


def build_cluster(
    url: str,
    driver: OverlayDriver,
    networks: Any,
    gateway: GatewayBridge,
    invalidate: Callable[[], None],
    store: EtcdStore | None = None,
    **options: Any,
) -> ClusterView:
    """Wire the cluster view, the overlay driver and the gateway bridge together.

    ``store`` replaces the etcd store named by ``url`` (tests pass a fake);
    ``options`` go to ``ClusterView`` (``ttl``, ``sweep_after``, ``clock``).
    """
    view = ClusterView(
        store if store is not None else open_cluster_store(url),
        driver.vtep,
        driver.vtep,
        networks,
        **options,
    )
    view.driver = driver
    view.on_peer = driver.peer_changed
    view.on_resync = driver.resync
    view.on_network_gone = driver.delete
    view.listeners.append(invalidate)
    driver.peers = view.peers
    driver.publish = view.publish
    driver.gateway = gateway
    networks.cluster = view
    return view
