"""The engine: networks, containers and the firewall behind one facade.

The API layer talks only to this class. It owns every long-lived part
(controllers, DNS server, background tasks) and closes them on shutdown.

Firewall: the desired state is derived from the store (networks and running
containers' published ports) and applied whole at start and on every network
change (``sync_firewall()``). When one container's ports change (start, stop,
disconnect: ``sync_firewall(container_id)``), only that container's port map
elements are updated, against the rules the engine last handed the firewall
(``_fw_ports``), so publishing costs the same with 10 or 10,000 ports
published; an update that does not fit falls back to the whole apply. A
background task owned by the engine checks every ``firewall_check_s`` seconds
that tether's nftables tables are still exactly what it installed and
re-applies them otherwise (``nft flush ruleset``, a firewall reload, a table
deleted by hand); ``close`` cancels it.
"""

from __future__ import annotations

import asyncio
import logging
from typing import Any

from tether.config import DaemonConfig
from tether.contracts.model import OPT_HOST_BINDING, OPT_ICC, OPT_MASQ, Network, opt_true
from tether.engine.networks import CreateRequest, NetworkController
from tether.errors import BadRequest, Internal

log = logging.getLogger("tether.engine")


class Engine:
    def __init__(
        self,
        cfg: DaemonConfig,
        networks: NetworkController,
        firewall: Any,
        containers: Any = None,
        images: Any = None,
    ) -> None:
        self.cfg = cfg
        self.networks = networks
        self.firewall = firewall
        self.containers = containers
        self.images = images
        from tether.engine.events import Events

        self.events = Events()
        self.runtime: Any = None
        self._fw_lock = asyncio.Lock()
        # each container's port rules as the firewall holds them (None: unknown, apply whole)
        self._fw_ports: dict[str, tuple[Any, ...]] | None = None
        self._tasks: set[asyncio.Task[Any]] = set()
        self.firewall_check_s = 5.0

    # ---- lifecycle -------------------------------------------------------------
    async def start(self) -> None:
        await self.networks.load()
        await self.networks.ensure_predefined(self.cfg.bip)
        await self.networks.restore_all()
        if self.containers is not None:
            await self.containers.start()
        await self.sync_firewall()
        if self.cfg.iptables and self.firewall_check_s > 0:
            self.spawn(self._watch_firewall())

    async def close(self) -> None:
        for task in list(self._tasks):
            task.cancel()
        if self._tasks:
            await asyncio.gather(*self._tasks, return_exceptions=True)
        if self.containers is not None:
            await self.containers.close()

    def spawn(self, coro: Any) -> asyncio.Task[Any]:
        """Start a background task the engine owns (cancelled by ``close``)."""
        task: asyncio.Task[Any] = asyncio.ensure_future(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
        return task

    # ---- firewall --------------------------------------------------------------
    def firewall_state(self) -> tuple[list[Any], list[Any]]:
        from tether.engine.firewall import NetRule

        nets = []
        for net in self.networks.list():
            if net.driver != "bridge" or not net.pools:
                continue
            pool = net.pools[0]
            nets.append(
                NetRule(
                    id=net.id,
                    bridge=net.ifname,
                    subnet=str(pool.subnet),
                    gateway=str(pool.gateway),
                    internal=net.internal,
                    icc=opt_true(net.options, OPT_ICC),
                    masquerade=opt_true(net.options, OPT_MASQ),
                    host_binding_ipv4=net.options.get(OPT_HOST_BINDING) or "0.0.0.0",
                )
            )
        ports = self.containers.port_rules() if self.containers is not None else []
        return nets, ports

    async def sync_firewall(self, container_id: str | None = None) -> None:
        """Make the firewall match the store.

        With ``container_id`` (its ports were published or unpublished), only that
        container's port map elements change, in one small batch whose cost does not
        grow with the number of published ports; otherwise (networks changed, start-up)
        or when the small update does not fit, tether's tables are replaced whole.
        """
        if not self.cfg.iptables:
            return
        async with self._fw_lock:
            if container_id is not None and self._fw_ports is not None:
                try:
                    self._update_ports(container_id, self._fw_ports)
                    return
                except Internal as exc:
                    log.warning("firewall: %s; replacing tether's tables whole", exc.message)
            self._fw_ports = None
            nets, ports = self.firewall_state()
            by_container = self._ports_by_container()
            self.firewall.apply(nets, ports)
            self._fw_ports = by_container

    def _ports_by_container(self) -> dict[str, tuple[Any, ...]]:
        if self.containers is None or not hasattr(self.containers, "container_port_rules"):
            return {}
        rules = {
            cid: tuple(self.containers.container_port_rules(cid))
            for cid in self.containers.containers
        }
        return {cid: r for cid, r in rules.items() if r}

    def _update_ports(self, cid: str, held: dict[str, tuple[Any, ...]]) -> None:
        if self.containers is None or not hasattr(self.firewall, "update_ports"):
            raise Internal("firewall: no port updates here")
        new = tuple(self.containers.container_port_rules(cid))
        old = held.get(cid, ())
        if new == old:
            return
        self.firewall.update_ports(
            [r for r in old if r not in new], [r for r in new if r not in old]
        )
        if new:
            held[cid] = new
        else:
            held.pop(cid, None)

    async def check_firewall(self) -> bool:
        """Re-apply tether's tables when someone changed them; True when it did."""
        if not self.cfg.iptables:
            return False
        async with self._fw_lock:
            nets, ports = self.firewall_state()
            by_container = self._ports_by_container()
            # listing a large table takes tens of ms: keep it off the event loop
            redone: bool = await asyncio.to_thread(self.firewall.ensure, nets, ports)
            if redone:
                self._fw_ports = by_container
        if redone:
            log.warning("firewall: tether's nftables tables were changed or removed; re-applied")
        return redone

    async def _watch_firewall(self) -> None:
        while True:
            await asyncio.sleep(self.firewall_check_s)
            try:
                await self.check_firewall()
            except Exception as exc:  # keep checking: the next round may succeed
                log.error("firewall check failed: %s", exc)

    # ---- networks ----------------------------------------------------------------
    def network_in_use(self, net: Network) -> bool:
        if self.containers is None:
            return False
        return bool(self.containers.endpoints_on(net.id))

    def network_containers(self, net: Network) -> dict[str, Any]:
        if self.containers is None:
            return {}
        return dict(self.containers.network_containers_json(net))

    async def create_network(self, req: CreateRequest) -> Network:
        net = await self.networks.create(req)
        try:
            await self.sync_firewall()
        except Exception:
            await self.networks.remove(net.id, lambda _n: False)
            raise
        self._network_event("create", net)
        return net

    def _network_event(self, action: str, net: Network) -> None:
        self.events.emit("network", action, net.id, {"name": net.name, "type": net.driver})

    async def remove_network(self, ref: str) -> None:
        net = self.networks.get(ref)
        await self.networks.remove(ref, self.network_in_use)
        await self.sync_firewall()
        self._network_event("destroy", net)

    async def prune_networks(self, filters: dict[str, list[str]]) -> list[str]:
        from tether.engine.filters import check_prune_filters, prune_match

        check_prune_filters(filters)

        def keep(net: Network) -> bool:
            return not prune_match(net.labels, net.created, filters)

        before = {n.name: n for n in self.networks.list()}
        gone = await self.networks.prune(self.network_in_use, keep)
        await self.sync_firewall()
        for name in gone:
            if name in before:
                self._network_event("destroy", before[name])
        return gone

    async def connect(self, net_ref: str, container_ref: str, cfg: dict[str, Any]) -> None:
        if self.containers is None:
            raise BadRequest("containers are not available")
        await self.containers.connect(net_ref, container_ref, cfg)

    async def disconnect(self, net_ref: str, container_ref: str, force: bool) -> None:
        if self.containers is None:
            raise BadRequest("containers are not available")
        await self.containers.disconnect(net_ref, container_ref, force)

    # ---- system ------------------------------------------------------------------
    def info(self) -> dict[str, Any]:
        from tether.engine.hostinfo import host_info

        counts: dict[str, int] = {}
        if self.containers is not None:
            counts.update(self.containers.counts())
        if self.images is not None:
            counts["images"] = len(self.images.list())
        return host_info(counts, str(self.cfg.data_root), "tether")
