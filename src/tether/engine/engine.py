"""The engine: networks, containers, images and the firewall behind one facade.

The API layer talks only to this class (and the parts it exposes: ``networks``,
``containers``, ``images``, ``runtime``, ``events``). It is given every part at construction
(``tether.daemon`` builds them), starts them in order and closes what it owns on shutdown.

Firewall: ``tether.engine.fwsync.FirewallSync`` keeps the host firewall equal to the store
(``sync_firewall()`` after a network change, ``sync_firewall(container_id)`` when one
container's ports change). A background task owned by the engine checks every
``firewall_check_s`` seconds that tether's nftables tables are still exactly what it
installed and re-applies them otherwise (``nft flush ruleset``, a firewall reload, a table
deleted by hand); ``close`` cancels it.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator, Coroutine, Sequence
from pathlib import Path
from typing import Any

from tether.config import DaemonConfig, default_bridge_v6
from tether.contracts.model import Network
from tether.engine.containers import ContainerController
from tether.engine.dnsstats import DnsStats
from tether.engine.events import Events
from tether.engine.firewall import Firewall
from tether.engine.fwsync import FirewallSync
from tether.engine.networks import CreateRequest, NetworkController
from tether.engine.pathtrace import PathTracer
from tether.engine.phases import Phases
from tether.engine.seams import (
    Attachment,
    ExecProcess,
    ImageCatalog,
    ImageConfig,
    Runtime,
)
from tether.engine.topology import Topology
from tether.errors import BadRequest

log = logging.getLogger("tether.engine")


class Engine:
    def __init__(
        self,
        cfg: DaemonConfig,
        networks: NetworkController,
        fw: FirewallSync,
        containers: ContainerController | None = None,
        images: ImageCatalog[Any] | None = None,
        runtime: Runtime | None = None,
        events: Events | None = None,
    ) -> None:
        self.cfg = cfg
        self.networks = networks
        self.fw = fw
        self.containers = containers
        self.images = images
        self.runtime = runtime
        self.events = events if events is not None else Events()
        self._tasks: set[asyncio.Task[Any]] = set()
        self.firewall_check_s = 5.0
        self.firewall_repairs = 0  # drift repairs of tether's nftables tables (the metrics)

    @property
    def firewall(self) -> Firewall:
        return self.fw.firewall

    # ---- lifecycle -------------------------------------------------------------
    async def start(self) -> None:
        await self.networks.load()
        await self.networks.ensure_predefined(self.cfg.bip, default_bridge_v6(self.cfg))
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

    def spawn(self, coro: Coroutine[Any, Any, Any]) -> asyncio.Task[Any]:
        """Start a background task the engine owns (cancelled by ``close``)."""
        task: asyncio.Task[Any] = asyncio.ensure_future(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
        return task

    # ---- firewall --------------------------------------------------------------
    async def sync_firewall(self, container_id: str | None = None) -> None:
        """Make the firewall match the store (see ``FirewallSync.sync``)."""
        await self.fw.sync(container_id)

    async def check_firewall(self) -> bool:
        """Re-apply tether's tables when someone changed them; True when it did."""
        redone = await self.fw.check()
        self.firewall_repairs += int(redone)
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
        return bool(self.containers.table.endpoints_on(net.id))

    def network_containers(self, net: Network) -> dict[str, Any]:
        if self.containers is None:
            return {}
        return dict(self.containers.table.network_containers_json(net))

    async def create_network(self, req: CreateRequest) -> Network:
        clock = Phases()
        net = await self.networks.create(req, clock)
        try:
            await self.sync_firewall()
        except Exception:
            await self.networks.remove(net.id, lambda _n: False)
            raise
        clock.mark("firewall")
        self._network_event("create", net)
        log.debug("network create %s phases: %s", net.name, clock)
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

    # ---- the runtime's streams, for the API (it never reaches the runtime itself) ------
    def rt(self) -> Runtime:
        """The container runtime (a 400 on a daemon built without one)."""
        if self.runtime is None:
            raise BadRequest("the container runtime is not available")
        return self.runtime

    async def attach(self, cid: str) -> Attachment:
        """The running container's stdio (``docker attach``, ``docker run``)."""
        return await self.rt().attach(cid)

    def read_logs(self, log_path: Path, **options: Any) -> AsyncIterator[tuple[str, bytes]]:
        """A container's log records (``Runtime.read_logs``'s options)."""
        return self.rt().read_logs(log_path, **options)

    def resize(self, cid: str, height: int, width: int) -> None:
        self.rt().resize(cid, height, width)

    async def exec(self, cid: str, args: Sequence[str], **options: Any) -> ExecProcess:
        """A process in the container (``docker exec``; ``Runtime.exec``'s options)."""
        return await self.rt().exec(cid, args, **options)

    # ---- containers ----------------------------------------------------------------
    def ctl(self) -> ContainerController:
        """The container controller (a 400 on a daemon built without containers)."""
        if self.containers is None:
            raise BadRequest("containers are not available")
        return self.containers

    def image(self, ref: str) -> ImageConfig:
        """An image by reference, for a create request (``No such image`` otherwise)."""
        if self.images is None:
            raise BadRequest("images are not available")
        image: ImageConfig = self.images.get(ref)
        return image

    def image_in_use(self, image_id: str) -> tuple[str, bool] | None:
        """A container made from the image: ``(id, running)``, or None."""
        for c in self.containers.containers.values() if self.containers is not None else ():
            if c.image_id == image_id:
                return c.id, c.running
        return None

    async def connect(self, net_ref: str, container_ref: str, cfg: dict[str, Any]) -> None:
        if self.containers is None:
            raise BadRequest("containers are not available")
        await self.containers.connect(net_ref, container_ref, cfg)

    async def disconnect(self, net_ref: str, container_ref: str, force: bool) -> None:
        if self.containers is None:
            raise BadRequest("containers are not available")
        await self.containers.disconnect(net_ref, container_ref, force)

    # ---- topology (issue 19) -------------------------------------------------------
    def topology_model(self) -> Topology:
        ctl = self.containers
        kernel = ctl.core.netlink if ctl is not None else None
        return Topology(self.networks, ctl, kernel, self.networks.cluster)

    async def topology(self, kernel: bool = True) -> dict[str, Any]:
        """The topology model (``GET /tether/topology``, tether.engine.topology)."""
        return await self.topology_model().build(kernel)

    async def path(self, src: str, dst: str) -> dict[str, Any]:
        """The hops from ``src`` to ``dst`` (``GET /tether/path``, tether.engine.pathtrace)."""
        tracer = PathTracer(self.topology_model(), self.fw.state(), self.cfg.iptables)
        return await tracer.trace(src, dst)

    def dns_stats(self) -> DnsStats | None:
        """The embedded DNS server's counters (the metrics), None without one."""
        dns = self.containers.core.dns if self.containers is not None else None
        stats = getattr(dns, "stats", None)
        return stats if isinstance(stats, DnsStats) else None

    # ---- system ------------------------------------------------------------------
    def info(self) -> dict[str, Any]:
        from tether.engine.hostinfo import host_info

        counts: dict[str, int] = {}
        if self.containers is not None:
            counts.update(self.containers.table.counts())
        if self.images is not None:
            counts["images"] = len(self.images.list())
        return host_info(counts, str(self.cfg.data_root), "tether")
