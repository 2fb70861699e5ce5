"""The per-host gateway bridge (Docker's ``docker_gwbridge``): outside access for overlays."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable

from tether.contracts.driver import Driver
from tether.contracts.model import (
    OPT_BRIDGE_NAME,
    OPT_ICC,
    OPT_MASQ,
    Endpoint,
    Network,
    mac_for,
    new_id,
)
from tether.contracts.pools import PoolConfig
from tether.engine.ipam import PoolPicker
from tether.engine.nettable import NetworkTable
from tether.engine.networks import NetworkController, now_rfc3339
from tether.errors import Conflict
from tether.linux.netlink import LinkSpec, Netlink
from tether.store.base import Op, Store


class GatewayBridge:
    """The gateway bridge: each overlay endpoint's second interface, with the default route.

    A local bridge network ``tether_gwbridge`` (ICC off, masquerade on) made on
    first use, as the network controller makes a bridge network with an automatic
    pool (its records in the local store, through the shared ``NetworkTable``, under
    the table's lock); each overlay endpoint ``eth<n>`` gets a second interface
    ``eth<n+1>`` on it, which carries the default route. Its address is held in
    the local store (``ipam/<gwnet>/<ip>``) and remembered under ``gwep/<ep>``.
    ``on_change`` is awaited once the bridge network was made (the firewall's rules
    for it).
    """

    NAME = "tether_gwbridge"

    def __init__(
        self,
        table: NetworkTable,
        bridge: Driver,
        picker: PoolPicker,
        netlink: Netlink,
        store: Store,
        on_change: Callable[[], Awaitable[None]] | None = None,
    ) -> None:
        self.table = table
        self.bridge = bridge
        self.picker = picker
        self.nl = netlink
        self.store = store
        self.on_change = on_change
        self._lock = asyncio.Lock()

    async def _network(self) -> Network:
        async with self._lock:  # held until the bridge exists, not only its record
            net = self.table.by_name(self.NAME)
            if net is not None:
                return net
            net = await self._create()
            if self.on_change is not None:
                await self.on_change()
            return net

    async def _create(self) -> Network:
        async with self.table.lock:
            if self.table.by_name(self.NAME) is not None:
                raise Conflict(f"network with name {self.NAME} already exists")
            subnet = self.picker.pick(self.table.used_subnets())
            cfg = PoolConfig(subnet, subnet.network_address + 1, user_subnet=False)
            net = Network(
                id=new_id(),
                name=self.NAME,
                driver="bridge",
                scope=self.bridge.scope,
                created=now_rfc3339(),
                configs=[cfg.to_json()],
                user_subnet=False,
                options={OPT_BRIDGE_NAME: self.NAME, OPT_ICC: "false", OPT_MASQ: "true"},
            )
            self.bridge.validate(net)
            await self.table.persist_new(net)
            try:
                await self.bridge.create(net)
                await self.table.save(net)
            except BaseException:
                await self.table.forget(net)
                raise
            return net

    @staticmethod
    def ifname_for(ep: Endpoint) -> str:
        n = int(ep.ifname[3:]) if ep.ifname.startswith("eth") and ep.ifname[3:].isdigit() else 0
        return f"eth{n + 1}"

    async def attach(self, ep: Endpoint, ns_path: str) -> None:
        net = await self._network()
        ip, prefix, gw = self.table.allocate(net, None)
        key = NetworkController.ipam_key(net.id, ip)
        res = await self.store.txn(
            [
                Op("create", key, {"gateway_for": ep.id}),
                Op("put", f"gwep/{ep.id}", {"network": net.id, "ip": ip}),
            ]
        )
        if not res.ok:
            self.table.release(net.id, ip)
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
        key = NetworkController.ipam_key(net_id, ip)
        await self.store.txn([Op("delete", key), Op("delete", f"gwep/{ep_id}")])
        self.table.release(net_id, ip)
