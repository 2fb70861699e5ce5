"""Keeping the host firewall equal to the store: networks and running containers' ports.

The desired state is derived from the networks and the container table's port rules, and
applied whole at start and on every network change (``sync()``). When one container's
ports change (start, stop, disconnect: ``sync(container_id)``), only that container's port
map elements are updated, against the rules last handed to the firewall (``_fw_ports``), so
publishing costs the same with 10 or 10,000 ports published; an update that does not fit
falls back to the whole apply. ``check()`` re-applies tether's tables when someone changed
them (``nft flush ruleset``, a firewall reload, a table deleted by hand).

Built before the container controller (which tells it when ports change) from the container
table (which it reads): neither needs the other.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Mapping
from typing import Protocol

from tether.config import DaemonConfig
from tether.contracts.model import OPT_HOST_BINDING, OPT_ICC, OPT_MASQ, opt_true
from tether.engine.firewall import Firewall, NetRule, PortRule
from tether.engine.networks import NetworkController
from tether.errors import Internal

log = logging.getLogger("tether.engine")


class PortRuleSource(Protocol):
    """Where the published ports come from (``tether.engine.table.ContainerTable``)."""

    @property
    def containers(self) -> Mapping[str, object]: ...
    def port_rules(self) -> list[PortRule]: ...
    def container_port_rules(self, cid: str) -> list[PortRule]: ...


class FirewallSync:
    def __init__(
        self,
        cfg: DaemonConfig,
        networks: NetworkController,
        firewall: Firewall,
        ports: PortRuleSource | None = None,
    ) -> None:
        self.cfg = cfg
        self.networks = networks
        self.firewall = firewall
        self.ports = ports
        self._lock = asyncio.Lock()
        # each container's port rules as the firewall holds them (None: unknown, apply whole)
        self._fw_ports: dict[str, tuple[PortRule, ...]] | None = None

    def state(self) -> tuple[list[NetRule], list[PortRule]]:
        nets = []
        for net in self.networks.list():
            if net.driver != "bridge" or not net.pools:
                continue
            pool = net.pools[0]
            # (getattr: unit tests hand in plain namespaces with the IPv4 fields only)
            pool6 = net.pools6[0] if getattr(net, "dual_stack", False) else None
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
                    subnet6=str(pool6.subnet) if pool6 else "",
                    gateway6=str(pool6.gateway) if pool6 else "",
                )
            )
        ports = self.ports.port_rules() if self.ports is not None else []
        return nets, ports

    async def sync(self, container_id: str | None = None) -> None:
        """Make the firewall match the store.

        With ``container_id`` (its ports were published or unpublished), only that
        container's port map elements change, in one small batch whose cost does not
        grow with the number of published ports; otherwise (networks changed, start-up)
        or when the small update does not fit, tether's tables are replaced whole.
        """
        if not self.cfg.iptables:
            return
        async with self._lock:
            if container_id is not None and self._fw_ports is not None:
                try:
                    self._update_ports(container_id, self._fw_ports)
                    return
                except Internal as exc:
                    log.warning("firewall: %s; replacing tether's tables whole", exc.message)
            self._fw_ports = None
            nets, ports = self.state()
            by_container = self._ports_by_container()
            self.firewall.apply(nets, ports)
            self._fw_ports = by_container

    def _ports_by_container(self) -> dict[str, tuple[PortRule, ...]]:
        if self.ports is None:
            return {}
        rules = {cid: tuple(self.ports.container_port_rules(cid)) for cid in self.ports.containers}
        return {cid: r for cid, r in rules.items() if r}

    def _update_ports(self, cid: str, held: dict[str, tuple[PortRule, ...]]) -> None:
        if self.ports is None or not hasattr(self.firewall, "update_ports"):
            raise Internal("firewall: no port updates here")
        new = tuple(self.ports.container_port_rules(cid))
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

    async def check(self) -> bool:
        """Re-apply tether's tables when someone changed them; True when it did."""
        if not self.cfg.iptables:
            return False
        async with self._lock:
            nets, ports = self.state()
            by_container = self._ports_by_container()
            # listing a large table takes tens of ms: keep it off the event loop
            redone: bool = await asyncio.to_thread(self.firewall.ensure, nets, ports)
            if redone:
                self._fw_ports = by_container
        if redone:
            log.warning("firewall: tether's nftables tables were changed or removed; re-applied")
        return redone
