"""A container's network sandbox: its namespace, its endpoints wired in, its DNS listener.

Made before ``runc start`` (``make``) and removed at exit (``teardown``), or kept across a
policy restart (``EngineCore.kept``). Addresses are not this module's: they are held from
create to remove.
"""

from __future__ import annotations

import logging

from tether.engine.core import EngineCore
from tether.engine.phases import Phases
from tether.engine.record import Container, network_mode
from tether.errors import TetherError

log = logging.getLogger("tether.containers")


class Sandboxes:
    def __init__(self, core: EngineCore) -> None:
        self.core = core

    async def wire(self, c: Container, ns_path: str, clock: Phases) -> None:
        """Bring up a new namespace's loopback and join every endpoint of ``c`` into it,
        marking each on ``clock`` (this runs alongside the files, the bundle and ``runc
        create``: the start waits for it only before ``runc start``)."""
        core = self.core
        eps = c.eps()
        await core.netlink.loopback_up(ns_path, keep_socket=bool(eps))
        clock.mark("wire_lo")
        for ep in eps:
            net = core.networks.get(ep.network_id)
            await core.driver(net).join(net, ep, ns_path)
            c.endpoints[net.id] = ep.to_dict()
        clock.mark("wire_join")

    async def teardown(self, c: Container, made_ns: bool = True) -> None:
        """Remove the sandbox's kernel objects (addresses stay held)."""
        core = self.core
        if core.dns is not None:
            try:
                await core.dns.remove_sandbox(c.id)
            except Exception as exc:  # never let cleanup hide the first error
                log.warning("dns cleanup for %s: %s", c.id[:12], exc)
        kind, _ = network_mode(c.host_config)
        for ep in c.eps():
            net = core.networks.networks.get(ep.network_id)
            if net is not None and ep.host_ifname:
                try:
                    await core.driver(net).leave(net, ep, "")
                except TetherError as exc:
                    log.warning("leave %s: %s", ep.host_ifname, exc.message)
        if kind in ("network", "none") and made_ns:
            core.netns.delete(core.ns_name(c))

    async def ensure_dns(self, c: Container) -> None:
        """Give a running container its DNS listener if it has none yet (a daemon started
        before the cluster store answered knew none of its overlay networks)."""
        core = self.core
        if core.dns is None or not c.running or not core.uses_embedded_dns(c):
            return
        if c.id not in core.dns.sandboxes():
            await core.dns_add(c)
