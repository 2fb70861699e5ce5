"""Start-up reconcile: make the kernel and the store agree again after the daemon went away.

Order: finish interrupted removals and creates; adopt live containers (same PID); remove
runtime state, namespaces and veths no live container owns; re-wire endpoints of live
containers whose host side is missing (a connect cut short); drop address holdings no
endpoint names; then settle the exits that happened while the daemon was down (restart by
policy) and start ``always`` containers.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
from pathlib import Path

from tether.contracts.driver import veth_name
from tether.contracts.model import Endpoint
from tether.engine.core import EngineCore
from tether.engine.hostports import HostPorts
from tether.engine.record import ZERO_TIME, Container
from tether.engine.supervise import Supervisor
from tether.errors import TetherError

log = logging.getLogger("tether.containers")


class Reconciler:
    def __init__(self, core: EngineCore, supervisor: Supervisor, ports: HostPorts) -> None:
        self.core = core
        self.supervisor = supervisor
        self.ports = ports

    async def load(self) -> None:
        """Load records and re-hold the ports of running ones."""
        core = self.core
        core.root.mkdir(parents=True, exist_ok=True)
        for rec in await core.store.list("containers/"):
            c = Container.from_dict(rec.value)
            core.containers[c.id] = c
            if c.state.status not in ("running", "restarting"):
                c.ports = []  # a stopped container holds no host port (older records did)
            if c.ports:
                self.ports.reserve(c)

    async def reconcile(self) -> None:
        await self._finish_removals()
        live_ns, dead = await self._adopt()
        core = self.core
        # namespaces no running container owns
        for name in core.netns.list():
            if name not in live_ns:
                core.netns.delete(name)
        for c in core.containers.values():
            if core.ns_name(c) in live_ns:
                await self._rewire(c)
                continue
            for ep in c.eps():
                name = ep.host_ifname or self._veth_guess(ep)
                if name:
                    await core.netlink.delete_link(name)
        await self._sweep_addresses()
        await self._settle(dead)
        self._start_always()

    async def _finish_removals(self) -> None:
        for c in list(self.core.containers.values()):
            half_made = c.state.status == "created" and not c.rootfs
            if c.state.status == "removing" or half_made:
                try:
                    await self.supervisor.destroy(c)
                except Exception:
                    log.exception("finishing removal of %s", c.id[:12])

    async def _adopt(self) -> tuple[set[str], list[Container]]:
        """Namespaces of live containers (their DNS listener made again), and the containers
        recorded running that are not (their exit to settle)."""
        core = self.core
        live_ns: set[str] = set()
        dead: list[Container] = []
        for c in list(core.containers.values()):
            if c.state.status in ("running", "restarting") and await self.supervisor.alive(c):
                live_ns.add(core.ns_name(c))
                if c.running:
                    self.supervisor.runner.health.start(c)  # probes again, from "starting"
                if core.dns is not None and core.uses_embedded_dns(c):
                    try:
                        await core.dns_add(c)
                    except TetherError as exc:
                        log.error("DNS for %s: %s", c.id[:12], exc.message)
                continue
            if c.state.status in ("running", "restarting"):
                dead.append(c)
            elif await self._has_runtime_state(c):
                await core.runtime.delete(c.id)  # a start cut short: never reported running
        return live_ns, dead

    async def _settle(self, dead: list[Container]) -> None:
        core, sup = self.core, self.supervisor
        for c in dead:
            if c.state.status == "restarting":
                # Its exit was handled (code, restart count) before the daemon went away and
                # its sandbox was swept above: only the pending restart is left to do.
                await core.runtime.delete(c.id)
                now_t = asyncio.get_running_loop().time()
                sup.restart_timers[c.id] = core.spawn(sup.restart_later(c.id, 0.0, now_t))
                continue
            code = core.runtime.exit_code(c.id)
            async with core.lock(c.id):
                await sup.handle_exit(c, 255 if code is None else code, from_restart=True)

    def _start_always(self) -> None:
        """Start ``always`` containers (and ``unless-stopped`` ones not stopped by hand)."""
        for c in list(self.core.containers.values()):
            if c.state.status in ("exited", "created") and c.state.started_at != ZERO_TIME:
                pol = c.restart_policy["Name"]
                wanted = pol == "always" or (pol == "unless-stopped" and not c.manually_stopped)
                if wanted and c.id not in self.supervisor.restart_timers:
                    self.core.spawn(self.supervisor.safe_start(c.id))

    async def _has_runtime_state(self, c: Container) -> bool:
        root: object = getattr(self.core.runtime, "runc_root", None)
        if isinstance(root, str | os.PathLike):
            return Path(root, c.id).exists()
        return await self.core.runtime.state(c.id) is not None

    def _restores(self, ep: Endpoint) -> bool:
        net = self.core.networks.networks.get(ep.network_id)
        drv = self.core.drivers.get(net.driver) if net is not None else None
        return drv is not None and drv.restores_endpoints

    def _veth_guess(self, ep: Endpoint) -> str:
        """The host-side name a join gave ``ep`` (for a join whose save was lost)."""
        return veth_name(ep) if self._restores(ep) else ""

    async def _rewire(self, c: Container) -> None:
        """Join again the endpoints of a live container whose host side is missing."""
        core = self.core
        changed = False
        ns = core.netns.path(core.ns_name(c))
        for ep in c.eps():
            net = core.networks.networks.get(ep.network_id)
            if net is None or not self._restores(ep):
                continue
            name = ep.host_ifname or self._veth_guess(ep)
            if await core.netlink.link_exists(name):
                if not ep.host_ifname:
                    ep.host_ifname = name
                    c.endpoints[net.id] = ep.to_dict()
                    changed = True
                continue
            with contextlib.suppress(Exception):
                await core.netlink.delete_link(ep.ifname, ns)
            try:
                await core.driver(net).join(net, ep, ns)
            except TetherError as exc:
                log.error("re-wiring %s on %s: %s", c.id[:12], net.name, exc.message)
                continue
            c.endpoints[net.id] = ep.to_dict()
            changed = True
        if changed:
            await core.save(c)

    async def _sweep_addresses(self) -> None:
        """Drop ``ipam/`` holdings of local networks that no container endpoint names."""
        core = self.core
        held = {
            (nid, str(ep.get(key) or ""))
            for c in core.containers.values()
            for nid, ep in c.endpoints.items()
            for key in ("ip", "ip6")
        }
        for rec in await core.store.list("ipam/"):
            _, nid, ip = rec.key.split("/", 2)
            value = rec.value if isinstance(rec.value, dict) else {}
            if "container" not in value or (nid, ip) in held:
                continue
            net = core.networks.networks.get(nid)
            if net is not None and net.scope != "local":
                continue  # other hosts' containers hold addresses of global networks
            log.warning("releasing leaked address %s on %s", ip, nid[:12])
            await core.store.delete(rec.key)
            core.networks.release(nid, ip)
