"""The network controller: networks, their pools and their addresses.

State lives in the store (``networks/<id>``, ``netnames/<name>``,
``ipam/<network>/<ip>``); this class keeps a cache of it and the per-network
``AddressSpace`` that decides the next address. Order of work, so that a crash
at any point leaves something reconcile can finish or undo: a network's record
is written before its kernel objects are made (a failure to make them deletes
the record again), and on removal the kernel objects go first, then the record.
Every kernel object tether makes is therefore named by a record, and reconcile
never has to guess by name patterns.
"""

from __future__ import annotations

import builtins
import datetime as dt
import ipaddress
import logging
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

from tether.contracts.cluster import GlobalNetworks
from tether.contracts.driver import Driver
from tether.contracts.model import (
    OPT_BRIDGE_NAME,
    OPT_DEFAULT_BRIDGE,
    OPT_HOST_BINDING,
    OPT_ICC,
    OPT_MASQ,
    OPT_MTU,
    Network,
    check_name,
    new_id,
)
from tether.contracts.pools import PoolConfig, PoolConfig6, is_v6_config
from tether.engine.ipam import (
    NO_POOL,
    AddressSpace,
    PoolPicker,
    check_overlap,
    validate_any,
)
from tether.engine.nettable import NetworkTable
from tether.engine.phases import Phases
from tether.errors import BadRequest, Conflict, Forbidden, NotFound
from tether.store.base import Op, Store

log = logging.getLogger("tether.engine")

PREDEFINED_DRIVERS = {"host": "host", "none": "null"}
IPV6_DRIVERS = ("bridge", "macvlan", "overlay")  # dual-stack networks (issue 18)
KNOWN_BRIDGE_OPTS = {OPT_BRIDGE_NAME, OPT_MTU, OPT_ICC, OPT_MASQ, OPT_HOST_BINDING}


def now_rfc3339() -> str:
    return dt.datetime.now(dt.UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


@dataclass
class CreateRequest:
    name: str
    driver: str = "bridge"
    internal: bool = False
    attachable: bool = False
    ipv6: bool = False
    ipam_driver: str = "default"
    ipam_options: dict[str, str] | None = None
    configs: builtins.list[dict[str, Any]] = field(default_factory=list)
    options: dict[str, str] = field(default_factory=dict)
    labels: dict[str, str] = field(default_factory=dict)
    check_duplicate: bool = True


class NetworkController:
    def __init__(
        self,
        store: Store,
        drivers: dict[str, Driver],
        picker: PoolPicker,
        host_routes: Callable[[], Any] | None = None,
        on_change: Callable[[], Any] | None = None,
        *,
        table: NetworkTable | None = None,
        cluster: GlobalNetworks | None = None,
    ) -> None:
        self.store = store
        self.drivers = drivers
        self.picker = picker
        self._host_routes = host_routes
        self._on_change = on_change
        # the table is shared with the cluster view and the gateway bridge (daemon.py)
        self.table = table if table is not None else NetworkTable(store)
        self.networks: dict[str, Network] = self.table.networks
        self.spaces: dict[str, list[AddressSpace]] = self.table.spaces
        self.lock = self.table.lock
        self.cluster = cluster  # the cluster view with --cluster-store (global networks)

    # ---- loading -----------------------------------------------------------
    async def load(self) -> None:
        """Read every network and address holding from the store."""
        self.networks.clear()
        self.spaces.clear()
        for rec in await self.store.list("networks/"):
            net = Network.from_dict(rec.value)
            self._index(net)
        for rec in await self.store.list("ipam/"):
            _, net_id, ip = rec.key.split("/", 2)
            for space in self.spaces.get(net_id, []):
                addr = ipaddress.ip_address(ip)
                if addr in space.cfg.subnet:
                    space.reserve(addr)
        if self.cluster is not None:
            await self.cluster.start()  # global networks and their holdings, from etcd

    def _index(self, net: Network) -> None:
        self.table.index(net)

    async def ensure_predefined(self, bip: str | None = None, fixed_v6: str | None = None) -> None:
        """Make ``bridge``, ``host`` and ``none`` exist (once, with stable ids); the default
        bridge is dual-stack with ``fixed_v6`` (daemon.json ``ipv6`` + ``fixed-cidr-v6``)."""
        v6 = _fixed_v6(fixed_v6)
        for name, driver in PREDEFINED_DRIVERS.items():
            if self.find(name) is None:
                await self._persist_new(Network(new_id(), name, driver, created=now_rfc3339()))
        if self.find("bridge") is None:
            avoid = await self._routes()
            if bip:
                iface = ipaddress.ip_interface(bip)
                cfg = PoolConfig(
                    iface.network,  # type: ignore[arg-type]
                    iface.ip,  # type: ignore[arg-type]
                    user_subnet=False,
                )
            else:
                subnet = self.picker.pick(self._used_subnets(), avoid)
                cfg = PoolConfig(subnet, subnet.network_address + 1, user_subnet=False)
            net = Network(
                new_id(),
                "bridge",
                "bridge",
                created=now_rfc3339(),
                configs=[cfg.to_json()] + ([v6.to_json()] if v6 else []),
                user_subnet=False,
                ipv6=v6 is not None,
                options={
                    OPT_DEFAULT_BRIDGE: "true",
                    OPT_ICC: "true",
                    OPT_MASQ: "true",
                    OPT_HOST_BINDING: "0.0.0.0",
                    OPT_BRIDGE_NAME: "tether0",
                    OPT_MTU: "1500",
                },
            )
            await self._persist_new(net)
            await self._make_kernel(net)
            return
        await self._update_default_v6(v6)

    async def _update_default_v6(self, v6: PoolConfig6 | None) -> None:
        """A changed ``fixed-cidr-v6`` (or ``ipv6``) applies to the existing default bridge
        when nothing holds an address on it; else it waits (a warning) for a start when none
        does. The kernel side follows in ``restore_all``."""
        net = self.find("bridge")
        if net is None:
            return
        want = [v6.to_json()] if v6 else []
        if [c for c in net.configs if is_v6_config(c)] == want and net.ipv6 == bool(v6):
            return
        if await self.store.list(f"ipam/{net.id}/"):
            log.warning("fixed-cidr-v6 changed: applied once no container is on the bridge")
            return
        net.configs = [c for c in net.configs if not is_v6_config(c)] + want
        net.ipv6 = v6 is not None
        await self.table.save(net)
        self._index(net)

    async def _routes(self) -> builtins.list[ipaddress.IPv4Network]:
        if self._host_routes is None:
            return []
        routes: builtins.list[ipaddress.IPv4Network] = await self._host_routes()
        return routes

    # ---- lookups -----------------------------------------------------------
    def find(self, ref: str) -> Network | None:
        """By exact id, exact name, then unique id prefix (Docker's order)."""
        if ref in self.networks:
            return self.networks[ref]
        for net in self.networks.values():
            if net.name == ref:
                return net
        if ref:
            matches = [n for n in self.networks.values() if n.id.startswith(ref)]
            if len(matches) == 1:
                return matches[0]
            if len(matches) > 1:
                raise BadRequest(f"network {ref} is ambiguous ({len(matches)} matches found)")
        return None

    def get(self, ref: str) -> Network:
        """A network a user named: as ``find``, but a name two networks share is an error (a
        global network named like a local one of this host, made on another host that could
        not know: Docker's FindNetwork answer)."""
        if ref not in self.networks:
            named = sum(1 for n in self.networks.values() if n.name == ref)
            if named > 1:
                raise BadRequest(
                    f"network {ref} is ambiguous ({named} matches found based on name)"
                )
        net = self.find(ref)
        if net is None:
            raise NotFound(f"network {ref} not found")
        return net

    def list(self) -> builtins.list[Network]:
        return sorted(self.networks.values(), key=lambda n: n.name)

    def _used_subnets(self) -> builtins.list[ipaddress.IPv4Network]:
        """Every network's subnets (see ``NetworkTable.used_subnets``)."""
        return self.table.used_subnets()

    def _check_parent_free(self, net: Network) -> None:
        """One macvlan (ipvlan) network per parent interface, and never the loopback
        (libnetwork's rules and texts; ``dm-<id>`` is the name Docker gives the network's
        parent link)."""
        parent = net.options.get("parent", "")
        if net.driver not in ("macvlan", "ipvlan") or not parent:
            return
        if parent == "lo":
            raise BadRequest(f"loopback interface is not a valid {net.driver} parent link")
        for other in self.networks.values():
            if other.driver == net.driver and other.options.get("parent") == parent:
                raise Conflict(
                    f"network dm-{other.id[:12]} is already using parent interface {parent}"
                )

    # ---- create / remove -----------------------------------------------------
    def _driver(self, name: str) -> Driver:
        drv = self.drivers.get(name)
        if drv is None:
            raise NotFound(f'plugin "{name}" not found')
        return drv

    async def create(self, req: CreateRequest, clock: Phases | None = None) -> Network:
        check_name(req.name)
        if req.driver in ("host", "null"):
            raise Forbidden(f'only one instance of "{req.driver}" network is allowed')
        if req.driver == "overlay" and "overlay" not in self.drivers:
            raise Forbidden(
                "overlay networks need a cluster store: start the daemon with "
                "--cluster-store etcd://HOST:PORT"
            )
        driver = self._driver(req.driver)
        if req.ipv6 and req.driver not in IPV6_DRIVERS:
            raise BadRequest(
                f"tether supports IPv6 on bridge, macvlan and overlay networks only, "
                f"not {req.driver}"
            )
        if req.ipam_driver not in ("", "default"):
            raise NotFound(f'plugin "{req.ipam_driver}" not found')
        async with self.lock:
            if any(n.name == req.name for n in self.networks.values()):
                raise Conflict(f"network with name {req.name} already exists")
            net = Network(
                id=new_id(),
                name=req.name,
                driver=req.driver,
                scope=driver.scope,
                created=now_rfc3339(),
                internal=req.internal,
                attachable=req.attachable,
                ipv6=req.ipv6,
                ipam_options=None if req.ipam_options is None else dict(req.ipam_options),
                options=dict(req.options),
                labels=dict(req.labels),
            )
            if net.driver in ("macvlan", "ipvlan") and not net.options.get("parent"):
                net.internal = True  # Docker: no parent means an internal network
            net.configs, net.user_subnet = self._pools_for(req)
            driver.validate(net)
            self._check_parent_free(net)
            if net.scope == "global":
                assert self.cluster is not None  # global drivers exist with a cluster only
                await self.cluster.create_network(net)  # etcd: name, VNI, pools, record
                await driver.create(net)
                self._changed()
                return net
            await self._persist_new(net)
            if clock is not None:
                clock.mark("store")
            try:
                await self._make_kernel(net, clock)
            except BaseException:
                await self._forget(net)
                raise
        self._changed()
        return net

    def _pools_for(self, req: CreateRequest) -> tuple[builtins.list[dict[str, Any]], bool]:
        """The network's IPAM configs: IPv4 first (given, or picked from the default pools),
        then the IPv6 ones (always given: as Docker 20.10, tether has no default IPv6 pools)."""
        used = self._used_subnets()
        used6 = self.table.used_subnets6()
        out: builtins.list[PoolConfig] = []
        out6: builtins.list[PoolConfig6] = []
        for c in req.configs:
            if not c.get("Subnet"):
                if c.get("Gateway") or c.get("IPRange"):
                    raise BadRequest("a gateway or ip-range needs a subnet")
                continue
            cfg = validate_any(
                c["Subnet"], c.get("Gateway"), c.get("IPRange"), c.get("AuxiliaryAddresses")
            )
            if isinstance(cfg, PoolConfig6):
                check_overlap(cfg.subnet, used6 + [o.subnet for o in out6])
                out6.append(cfg)
            else:
                check_overlap(cfg.subnet, used + [o.subnet for o in out])
                out.append(cfg)
        if req.ipv6 and not out6:
            raise Forbidden(NO_POOL.format(6))
        v6 = [o.to_json() for o in out6]
        if out:
            return [o.to_json() for o in out] + v6, True
        subnet = self.picker.pick(used)
        cfg4 = PoolConfig(subnet, subnet.network_address + 1, user_subnet=False)
        # an IPv6 subnet with a picked IPv4 one: --ip6 is allowed, --ip is not (Docker
        # checks each family's configs); the flag tells the IPv4 side
        return [cfg4.to_json(), *v6], False

    async def _persist_new(self, net: Network) -> None:
        await self.table.persist_new(net)

    async def _make_kernel(self, net: Network, clock: Phases | None = None) -> None:
        """The driver's kernel objects, then the record again only if the driver changed it
        (a bridge's name is set at ``validate``: its first write already holds it)."""
        driver = self._driver(net.driver)
        written = net.to_dict()
        await driver.create(net)
        if clock is not None:
            clock.mark("kernel")
        if net.to_dict() != written:
            await self.table.save(net)
            if clock is not None:
                clock.mark("save")

    async def _forget(self, net: Network) -> None:
        await self.table.forget(net)

    async def remove(self, ref: str, in_use: Callable[[Network], bool]) -> None:
        net = self.get(ref)
        if net.predefined:
            raise Forbidden(f"{net.name} is a pre-defined network and cannot be removed")
        async with self.lock:
            if in_use(net):
                raise Forbidden(
                    f"error while removing network: network {net.name} id {net.id} "
                    "has active endpoints"
                )
            if net.scope == "global" and self.cluster is not None:
                await self.cluster.remove_network(net)
                await self._driver(net.driver).delete(net)
                self._changed()
                return
            await self._driver(net.driver).delete(net)
            await self.store.txn(
                [Op("delete", f"networks/{net.id}"), Op("delete", f"netnames/{net.name}")]
                + [Op("delete", r.key) for r in await self.store.list(f"ipam/{net.id}/")]
            )
            self.networks.pop(net.id, None)
            self.spaces.pop(net.id, None)
        self._changed()

    async def prune(
        self, in_use: Callable[[Network], bool], keep: Callable[[Network], bool]
    ) -> builtins.list[str]:
        gone: builtins.list[str] = []
        for net in self.list():
            if net.predefined or in_use(net) or keep(net):
                continue
            try:
                await self.remove(net.id, in_use)
            except (Forbidden, NotFound):
                continue
            gone.append(net.name)
        return gone

    async def restore_all(self) -> None:
        for net in self.networks.values():
            await self._driver(net.driver).restore(net)

    def owned_links(self) -> set[str]:
        out: set[str] = set()
        for net in self.networks.values():
            drv = self.drivers.get(net.driver)
            if drv is not None:
                out |= drv.owned_links(net)
        return out

    def _changed(self) -> None:
        if self._on_change is not None:
            self._on_change()

    # ---- addresses -----------------------------------------------------------
    def allocate(self, net: Network, static: str | None, version: int = 4) -> tuple[str, int, str]:
        """Pick an address (the caller persists ``ipam/<net>/<ip>`` in its transaction).

        Returns (ip, prefixlen, gateway). Raises before anything is held on error.
        """
        return self.table.allocate(net, static, version)

    async def hold_global(
        self, net: Network, ip: str, static: str, owner: str, version: int = 4
    ) -> str:
        """On a global network, hold ``ip`` (from ``allocate``) in the cluster store too.

        Another host may hold it already (create-if-absent fails): a static address is
        then ``Address already in use``; an automatic one moves on to the next free one.
        Returns the address held. Local networks: ``ip`` unchanged.
        """
        if net.scope != "global" or self.cluster is None:
            return ip
        for _ in range(256):
            try:
                ok = await self.cluster.claim_ip(net.id, ip, owner)
            except BaseException:
                self.release(net.id, ip)
                raise
            if ok:
                return ip
            # someone else holds it: keep it reserved here, try another
            if static:
                raise Conflict("Address already in use")
            ip, _prefix, _gw = self.allocate(net, None, version)
        raise Conflict("Address already in use")

    async def release_global(self, net_id: str, ip: str) -> None:
        if self.cluster is not None and ip and self.cluster.is_global(net_id):
            await self.cluster.release_ip(net_id, ip)

    def release(self, net_id: str, ip: str) -> None:
        self.table.release(net_id, ip)

    @staticmethod
    def ipam_key(net_id: str, ip: str) -> str:
        return f"ipam/{net_id}/{ip}"


def _fixed_v6(text: str | None) -> PoolConfig6 | None:
    """``fixed-cidr-v6`` checked: an IPv6 subnet; its gateway is its first address."""
    if not text:
        return None
    cfg = validate_any(text, None, None, None)
    if not isinstance(cfg, PoolConfig6):
        raise BadRequest(f"fixed-cidr-v6 {text} is not an IPv6 subnet")
    return cfg


def subnets_of(nets: Iterable[Network]) -> Sequence[ipaddress.IPv4Network]:
    return [p.subnet for n in nets for p in n.pools]
