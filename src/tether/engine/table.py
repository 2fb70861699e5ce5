"""The container table: every container record the daemon knows, and the questions on it.

Built before anything that reads it: the container controller writes it (create, remove,
start-up load), the embedded DNS resolver (``tether.engine.resolver``) and the firewall sync
(``tether.engine.fwsync``) read it. So neither of those needs the controller, and the
controller needs neither of them back.
"""

from __future__ import annotations

import builtins
from typing import Any

from tether.contracts.model import Endpoint, Network
from tether.engine import ports as portlib
from tether.engine.firewall import PortRule
from tether.engine.networks import NetworkController
from tether.engine.record import Container
from tether.errors import BadRequest, NotFound


class ContainerTable:
    def __init__(self, networks: NetworkController) -> None:
        self.networks = networks
        self.containers: dict[str, Container] = {}

    def find(self, ref: str) -> Container | None:
        ref = ref.lstrip("/") if ref.startswith("/") else ref
        if ref in self.containers:
            return self.containers[ref]
        for c in self.containers.values():
            if c.name == ref:
                return c
        if ref:
            matches = [c for c in self.containers.values() if c.id.startswith(ref)]
            if len(matches) == 1:
                return matches[0]
            if len(matches) > 1:
                raise BadRequest(f"multiple IDs found with provided prefix: {ref}")
        return None

    def named(self, name: str) -> Container | None:
        """The container called ``name`` (no id lookup: a name may look like an id prefix)."""
        return next((c for c in self.containers.values() if c.name == name), None)

    def get(self, ref: str) -> Container:
        c = self.find(ref)
        if c is None:
            raise NotFound(f"No such container: {ref}")
        return c

    def list(self) -> builtins.list[Container]:
        return sorted(self.containers.values(), key=lambda c: c.created, reverse=True)

    def counts(self) -> dict[str, int]:
        running = sum(1 for c in self.containers.values() if c.running)
        return {
            "containers": len(self.containers),
            "running": running,
            "stopped": len(self.containers) - running,
        }

    def endpoints_on(self, net_id: str) -> builtins.list[tuple[Container, Endpoint]]:
        out = []
        for c in self.containers.values():
            ep = c.endpoints.get(net_id)
            if ep is not None:
                out.append((c, Endpoint.from_dict(ep)))
        return out

    def network_containers_json(self, net: Network) -> dict[str, Any]:
        out: dict[str, Any] = {}
        for c, ep in self.endpoints_on(net.id):
            if not c.running:
                continue
            out[c.id] = {
                "Name": c.name,
                "EndpointID": ep.id,
                "MacAddress": ep.mac,
                "IPv4Address": f"{ep.ip}/{ep.prefixlen}" if ep.ip else "",
                "IPv6Address": f"{ep.ip6}/{ep.prefixlen6}" if ep.ip6 else "",
            }
        return out

    def port_rules(self) -> builtins.list[PortRule]:
        return [r for cid in self.containers for r in self.container_port_rules(cid)]

    def container_port_rules(self, cid: str) -> builtins.list[PortRule]:
        """The firewall's ``PortRule``s of one container (none unless it runs): on the first
        endpoint whose driver publishes ports (bridge) of a network that is not internal."""
        c = self.containers.get(cid)
        if c is None or not c.running or not c.ports:
            return []
        bindings = [portlib.PortBinding(**p) for p in c.ports]
        found = self.publishing_endpoint(c)
        if found is None:
            return []
        ep, net = found
        return list(portlib.port_rules(bindings, ep.ip, net.ifname, ep.ip6))

    def publishing_endpoint(self, c: Container) -> tuple[Endpoint, Network] | None:
        """The endpoint a container's ports are published to: the first whose driver
        publishes ports (bridge), on a network that is not internal."""
        for ep in c.eps():
            net = self.networks.networks.get(ep.network_id)
            if net is None or net.internal or not ep.ip:
                continue
            drv = self.networks.drivers.get(net.driver)
            if drv is None or not drv.publishes_ports:
                continue
            return ep, net
        return None
