"""``FakeFirewall``: records what the engine asked the firewall for."""

from __future__ import annotations

from collections.abc import Sequence

from tether.engine.firewall import NetRule, PortRule, render
from tether.errors import Internal
from tether.linux.nft import JSON


class FakeFirewall:
    """Records what the engine asked for; ``fail_with`` makes the next apply or update fail."""

    def __init__(self) -> None:
        self.nets: tuple[NetRule, ...] = ()
        self.ports: tuple[PortRule, ...] = ()
        self.applied = 0
        self.updated = 0
        self.present = False
        self.fail_with: str | None = None

    def _fail(self) -> None:
        if self.fail_with is not None:
            msg, self.fail_with = self.fail_with, None
            raise Internal(f"firewall: nftables rejected the update: {msg}")

    def apply(self, nets: Sequence[NetRule], ports: Sequence[PortRule]) -> None:
        render(nets, ports)  # same validation as the real one
        self._fail()
        self.nets, self.ports = tuple(nets), tuple(ports)
        self.applied += 1
        self.present = True

    def update_ports(self, remove: Sequence[PortRule], add: Sequence[PortRule]) -> None:
        if not self.present:
            raise Internal("firewall: no table applied yet")
        ports = list(self.ports)
        for p in remove:
            if p not in ports:
                raise Internal(f"firewall: {p} is not published as the update expects")
            ports.remove(p)
        ports.extend(add)
        render(self.nets, ports)
        self._fail()
        self.ports = tuple(ports)
        self.updated += 1

    def remove(self) -> None:
        self.nets, self.ports, self.present = (), (), False

    def current(self) -> JSON | None:
        return render(self.nets, self.ports) if self.present else None

    def ensure(self, nets: Sequence[NetRule], ports: Sequence[PortRule]) -> bool:
        """Re-apply when ``present`` was cleared (a test's stand-in for a flushed ruleset)."""
        if self.present:
            return False
        self.apply(nets, ports)
        return True
