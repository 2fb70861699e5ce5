"""A container's published host ports: taken at start, given back at stop.

Docker's rules: a container holds its host ports while its sandbox exists (from start to
stop; a sandbox kept across a policy restart keeps them), so a stopped container's port is
free and a clash fails the start with Docker's text, leaving the container created. A
malformed binding is refused at create (``requests``), before anything is made. TCP ports on
``[::1]`` (and ``[::]``) are also listened on by the userland proxy (``loproxy``), bound with
the ports and closed with them.
"""

from __future__ import annotations

import logging
from dataclasses import asdict

from tether.engine import ports as portlib
from tether.engine.core import EngineCore
from tether.engine.loproxy import LOOPBACK6, LoopbackProxies
from tether.engine.record import Container, network_mode
from tether.errors import BadRequest, Conflict, TetherError

log = logging.getLogger("tether.ports")


class HostPorts:
    def __init__(self, core: EngineCore) -> None:
        self.core = core
        self.proxies = LoopbackProxies(self._target)

    @property
    def allocator(self) -> portlib.PortAllocator:
        return self.core.allocator

    def requests(self, c: Container) -> list[portlib.PortRequest]:
        reqs = portlib.parse_bindings(
            c.host_config.get("PortBindings"),
            c.config.get("ExposedPorts"),
            bool(c.host_config.get("PublishAllPorts")),
        )
        lo6 = [r for r in reqs if r.host_ip == LOOPBACK6 and r.proto != "tcp"]
        if lo6:
            raise BadRequest(
                f"cannot publish {lo6[0].proto} on the IPv6 loopback address ::1: tether's "
                "userland proxy for [::1] carries TCP only (publish on :: or another address)"
            )
        v6 = [r for r in reqs if portlib.is_v6(r.host_ip) and r.host_ip != LOOPBACK6]
        if v6 and c.endpoints and not self._dual_stack(c):
            # Docker would proxy IPv6 to the IPv4 address in userland; tether has no proxy
            raise BadRequest(
                f"cannot publish on IPv6 host address {v6[0].host_ip}: the container is on no "
                "dual-stack network to publish from (tether runs no userland proxy)"
            )
        return reqs

    def _dual_stack(self, c: Container) -> bool:
        found = self.core.table.publishing_endpoint(c)
        return found is not None and bool(found[0].ip6)

    def _target(self, cid: str) -> str | None:
        """Where the [::1] proxy of ``cid`` connects: its IPv6 address, else its IPv4 one."""
        c = self.core.containers.get(cid)
        found = self.core.table.publishing_endpoint(c) if c is not None else None
        return None if found is None else (found[0].ip6 or found[0].ip)

    def reserve(self, c: Container) -> None:
        """Hold again the ports of a record loaded at start-up (and its [::1] listeners)."""
        bindings = [portlib.PortBinding(**p) for p in c.ports]
        self.allocator.reserve_all(bindings)
        try:
            self.proxies.bind(c.id, bindings)
        except TetherError as exc:
            log.warning("%s: %s", c.name, exc.message)

    def close(self) -> None:
        """Close every [::1] listener (the daemon stops; the containers keep running)."""
        self.proxies.close_all()

    def take(self, c: Container) -> bool:
        """Allocate the container's host ports for a start (True when it took any); a sandbox
        kept across a policy restart keeps its own. Docker's text on a clash."""
        kind, _ = network_mode(c.host_config)
        if c.ports or kind != "network" or not c.endpoints:
            return False
        requests = self.requests(c)
        if not requests:
            return False
        try:
            bindings = self.allocator.allocate(requests, twin6=self._dual_stack(c))
            try:
                portlib.check_host_ips(bindings)
                self.proxies.bind(c.id, bindings)
            except BaseException:
                self.allocator.release(bindings)
                raise
        except (Conflict, BadRequest) as exc:
            epid = next(iter(c.endpoints.values()))["id"]
            raise type(exc)(
                "driver failed programming external connectivity on endpoint "
                f"{c.name} ({epid}): {exc.message}"
            ) from exc
        c.ports = [asdict(b) for b in bindings]
        return True

    def drop(self, c: Container) -> None:
        self.proxies.close(c.id)
        self.allocator.release(portlib.PortBinding(**p) for p in c.ports)
        c.ports = []
