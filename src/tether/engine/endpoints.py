"""A container's endpoints: made at create, added by ``network connect``, removed by
``network disconnect``.

An endpoint's address is held (``ipam/<net>/<ip>``) and written with the container record in
one transaction, before any kernel object, so a crash leaves either nothing or an endpoint
that start-up reconcile can wire again. A live sandbox is joined or left at once.
"""

from __future__ import annotations

import logging
from typing import Any

from tether.contracts.model import Endpoint, Network, mac_for, mac_ipv6, new_id
from tether.engine import runopts
from tether.engine.core import EngineCore
from tether.engine.networks import NetworkController
from tether.engine.record import Container, network_mode
from tether.engine.request import sent_driver_opts, sent_ipam
from tether.engine.sandboxfiles import SandboxFiles
from tether.errors import BadRequest, Conflict, Forbidden, NotFound, TetherError
from tether.store.base import Op

log = logging.getLogger("tether.containers")

HOST_NET_TEXT = "container cannot be disconnected from host network or connected to host network"


class Endpoints:
    def __init__(self, core: EngineCore, files: SandboxFiles) -> None:
        self.core = core
        self.files = files

    def new_endpoint(
        self, c: Container, net: Network, epcfg: dict[str, Any], ifname: str
    ) -> Endpoint:
        ipam = epcfg.get("IPAMConfig") or {}
        static = ipam.get("IPv4Address") or ""
        static6 = str(ipam.get("IPv6Address") or "")
        if net.predefined and net.name == "bridge" and (static or static6):
            raise BadRequest("user specified IP address is supported on user defined networks only")
        aliases = [a for a in (epcfg.get("Aliases") or []) if isinstance(a, str)]
        mac = runopts.mac_of(epcfg)
        if static6 and not net.pools6:
            raise BadRequest(
                "user specified IP address is supported only when connecting to networks with "
                "user configured subnets"
            )
        ip, prefix, gw = self.core.networks.allocate(net, static or None)
        ip6, prefix6, gw6 = "", 0, ""
        if net.dual_stack:  # (a v6 subnet without EnableIPv6: ignored, as Docker does)
            try:
                want6 = static6 or mac_ipv6(net, mac or mac_for(ip)) or None
                ip6, prefix6, gw6 = self.core.networks.allocate(net, want6, 6)
            except BaseException:
                self.core.networks.release(net.id, ip)
                raise
        return Endpoint(
            id=new_id(),
            network_id=net.id,
            network_name=net.name,
            container_id=c.id,
            container_name=c.name,
            ip=ip,
            prefixlen=prefix,
            gateway="" if net.internal else gw,
            mac=mac or mac_for(ip),
            mac_config=mac,
            ifname=ifname,
            aliases=aliases,
            links=[x for x in (epcfg.get("Links") or []) if isinstance(x, str)],
            static_ip=static,
            ipam_config=sent_ipam(epcfg.get("IPAMConfig")),
            driver_opts=sent_driver_opts(epcfg.get("DriverOpts")),
            ip6=ip6,
            prefixlen6=prefix6,
            gateway6="" if net.internal else gw6,
            static_ip6=static6 if ip6 else "",
        )

    async def release(self, net_id: str, ep: Endpoint) -> None:
        """Free the endpoint's addresses in memory (and the cluster's, global networks)."""
        for ip in ep.addresses():
            self.core.networks.release(net_id, ip)
            await self.core.release_global(net_id, ip)

    def extra_ifs(self, net: Network) -> int:
        """Interfaces the driver adds after an endpoint's own (overlay: the gateway eth<n+1>)."""
        drv = self.core.drivers.get(net.driver)
        return 0 if net.internal or drv is None else drv.extra_interfaces

    def _next_if(self, c: Container) -> int:
        used = {Endpoint.from_dict(e).ifname for e in c.endpoints.values()}
        for e in c.endpoints.values():
            net = self.core.networks.networks.get(e.get("network_id", ""))
            name = str(e.get("ifname", ""))
            extra = self.extra_ifs(net) if net is not None else 0
            if extra and name[3:].isdigit():
                used.add(f"eth{int(name[3:]) + 1}")
        i = 0
        while f"eth{i}" in used:
            i += 1
        return i

    # ---- connect ------------------------------------------------------------------------
    def _check_connect(self, net: Network, c: Container) -> None:
        """Docker's checks, in its order (updateNetworkSettings)."""
        kind, _ = network_mode(c.host_config)
        mode = self.core.sandbox_mode(net)
        if kind == "container" or (kind == "host" and mode != "host"):
            raise Forbidden(
                "container sharing network namespace with another container or host cannot "
                "be connected to any other network"
            )
        if mode == "host":
            raise Forbidden(HOST_NET_TEXT)
        if kind == "none" or mode == "none":
            raise Forbidden(
                "container cannot be connected to multiple networks with one of the networks in "
                "private (none) mode"
            )

    async def connect(self, net_ref: str, container_ref: str, epcfg: dict[str, Any]) -> None:
        core = self.core
        net = core.networks.get(net_ref)
        c = core.table.get(container_ref)
        self._check_connect(net, c)
        async with core.lock(c.id):
            if net.id in c.endpoints:
                raise Forbidden(f"endpoint with name {c.name} already exists in network {net.name}")
            # Under the network lock until the endpoint is committed (see create): a
            # concurrent `network rm` either went first (the network is gone: 404) or sees it.
            async with core.networks.lock:
                net = core.networks.get(net.id)
                ep = await self._commit(c, net, epcfg)
            try:
                await self._join_live(c, net, ep)
                await core.save(c)
            except BaseException:
                await self._undo_connect(c, net, ep)
                raise
        core.invalidate_dns()
        core.emit_network("connect", net, c)

    async def _commit(self, c: Container, net: Network, epcfg: dict[str, Any]) -> Endpoint:
        """Make the endpoint and write it with its address, before any kernel object: a crash
        leaves either nothing or an endpoint reconcile can wire again."""
        core = self.core
        ep = self.new_endpoint(c, net, epcfg, f"eth{self._next_if(c)}")
        await core.hold_global(net, ep, c.id)
        c.endpoints[net.id] = ep.to_dict()
        res = await core.store.txn(
            [
                Op("create", NetworkController.ipam_key(net.id, ip), {"container": c.id})
                for ip in ep.addresses()
            ]
            + [Op("put", f"containers/{c.id}", c.to_dict())]
        )
        if not res.ok:
            c.endpoints.pop(net.id, None)
            await self.release(net.id, ep)
            raise Conflict("Address already in use")
        return ep

    async def _join_live(self, c: Container, net: Network, ep: Endpoint) -> None:
        core = self.core
        if not core.has_sandbox(c):
            return
        ns = core.netns.path(core.ns_name(c))
        await core.driver(net).join(net, ep, ns)
        c.endpoints[net.id] = ep.to_dict()
        if core.dns is not None and not net.predefined:
            # one listener per sandbox, whatever the number of networks
            if c.id not in core.dns.sandboxes():
                await core.dns.add_sandbox(c.id, ns)
            self.files.rewrite_resolv(c)

    async def _undo_connect(self, c: Container, net: Network, ep: Endpoint) -> None:
        core = self.core
        c.endpoints.pop(net.id, None)
        live_ns = core.netns.path(core.ns_name(c)) if core.has_sandbox(c) else ""
        await core.driver(net).leave(net, ep, live_ns)
        await core.store.txn(
            [Op("put", f"containers/{c.id}", c.to_dict())]
            + [Op("delete", NetworkController.ipam_key(net.id, ip)) for ip in ep.addresses()]
        )
        await self.release(net.id, ep)

    # ---- disconnect -----------------------------------------------------------------------
    async def _move_default_route(self, c: Container, ns: str) -> None:
        """After an endpoint with a gateway left a live sandbox, the default route goes through
        the first remaining endpoint that has one (the kernel dropped it with the interface;
        Docker's updateGateway). Best effort: the disconnect itself has happened."""
        for family in ("gateway", "gateway6"):  # IPv4, then IPv6 (dual-stack networks)
            remaining = sorted(
                (e for e in c.eps() if getattr(e, family) and e.ifname[3:].isdigit()),
                key=lambda e: int(e.ifname[3:]),
            )
            if not remaining:
                continue
            gateway, ifname = getattr(remaining[0], family), remaining[0].ifname
            try:
                await self.core.netlink.default_route(ns, gateway, ifname)
            except TetherError as exc:
                log.warning("default route of %s: %s", c.id[:12], exc.message)

    async def disconnect(self, net_ref: str, container_ref: str, force: bool) -> None:
        core = self.core
        net = core.networks.get(net_ref)
        c = core.table.find(container_ref)
        if c is None:
            if force:
                return
            raise NotFound(f"No such container: {container_ref}")
        if core.sandbox_mode(net) == "host":
            raise Forbidden(HOST_NET_TEXT)
        async with core.lock(c.id):
            raw = c.endpoints.get(net.id)
            if raw is None:
                raise Forbidden(f"container {c.id} is not connected to network {net.name}")
            await self._leave(c, net, Endpoint.from_dict(raw))
        core.invalidate_dns()
        if c.ports:
            await core.ports_changed.sync(c.id)
        core.emit_network("disconnect", net, c)

    async def _leave(self, c: Container, net: Network, ep: Endpoint) -> None:
        core = self.core
        live = core.has_sandbox(c)
        ns = core.netns.path(core.ns_name(c)) if live else ""
        if live:
            await core.driver(net).leave(net, ep, ns)
        c.endpoints.pop(net.id)
        if live and (ep.gateway or ep.gateway6):
            await self._move_default_route(c, ns)
        await core.store.txn(
            [Op("put", f"containers/{c.id}", c.to_dict())]
            + [Op("delete", NetworkController.ipam_key(net.id, ip)) for ip in ep.addresses()]
        )
        await self.release(net.id, ep)
