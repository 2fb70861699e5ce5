"""What every part of the container engine shares: its collaborators and its bookkeeping.

One ``EngineCore`` per daemon, made by ``ContainerController`` from the collaborators the
daemon gives it, and handed to each part (create, start, supervision, endpoints, reconcile).
It holds the per-container locks, the background tasks, the host port allocator, the set of
sandboxes kept across a policy restart, and the small questions every part asks (a
container's network mode, namespace name, files folder; a network's driver).
"""

from __future__ import annotations

import asyncio
import logging
import os
from collections.abc import Callable, Coroutine, Mapping
from pathlib import Path
from typing import Any

from tether.contracts.driver import Driver
from tether.contracts.model import Endpoint, Network, mac_for
from tether.engine import ports as portlib
from tether.engine.networks import NetworkController
from tether.engine.record import Container, network_mode
from tether.engine.seams import (
    Bundles,
    Dns,
    EventSink,
    Images,
    Netns,
    PortsChanged,
    Runtime,
    VolumeMounts,
)
from tether.engine.table import ContainerTable
from tether.engine.volumes import VolumeService
from tether.errors import TetherError
from tether.linux.netlink import Netlink
from tether.store.base import Store

log = logging.getLogger("tether.containers")


class EngineCore:
    def __init__(
        self,
        *,
        store: Store,
        networks: NetworkController,
        table: ContainerTable,
        drivers: Mapping[str, Driver],
        netns: Netns,
        netlink: Netlink,
        runtime: Runtime,
        images: Images[Any],
        bundles: Bundles,
        data_root: Path,
        dns: Dns | None,
        dns_servers: list[str],
        ports_changed: PortsChanged,
        events: EventSink | None,
        volume_mounts: VolumeMounts | None = None,
    ) -> None:
        self.store = store
        self.networks = networks
        self.table = table
        self.containers = table.containers
        self.drivers = drivers
        self.netns = netns
        self.netlink = netlink
        self.runtime = runtime
        self.images = images
        self.bundles = bundles
        self.root = data_root / "containers"
        self.dns = dns
        self.dns_servers = dns_servers
        self.ports_changed = ports_changed
        self.events = events
        self.allocator = portlib.PortAllocator()
        self.locks: dict[str, asyncio.Lock] = {}
        self.tasks: set[asyncio.Task[Any]] = set()
        self.kept: set[str] = set()  # restarting containers whose sandbox is kept
        self.create_lock = asyncio.Lock()
        self.attach_hooks: dict[str, list[Callable[[], Coroutine[Any, Any, None]]]] = {}
        # volumes (issue 16, P2): <data-root>/volumes and the volumes/ records
        self.volumes = VolumeService(store, data_root, table, volume_mounts)

    # ---- bookkeeping -------------------------------------------------------------
    def lock(self, cid: str) -> asyncio.Lock:
        lk = self.locks.get(cid)
        if lk is None:
            lk = self.locks[cid] = asyncio.Lock()
        return lk

    def spawn(self, coro: Coroutine[Any, Any, Any]) -> asyncio.Task[Any]:
        task: asyncio.Task[Any] = asyncio.ensure_future(coro)
        self.tasks.add(task)
        task.add_done_callback(self.tasks.discard)
        return task

    def emit(self, action: str, c: Container, **attrs: str) -> None:
        if self.events is not None:
            labels = {str(k): str(v) for k, v in (c.config.get("Labels") or {}).items()}
            base = {**labels, "image": c.image, "name": c.name}
            self.events.emit("container", action, c.id, {**base, **attrs})

    def emit_network(self, action: str, net: Network, c: Container) -> None:
        if self.events is not None:
            attrs = {"container": c.id, "name": net.name, "type": net.driver}
            self.events.emit("network", action, net.id, attrs)

    def emit_sandbox(self, action: str, c: Container) -> None:
        """``connect``/``disconnect`` of each of ``c``'s networks, as Docker emits them when a
        container's sandbox joins (start) or leaves (exit) them."""
        kind, _ = network_mode(c.host_config)
        nets = [self.networks.find(kind)] if kind in ("host", "none") else [
            self.networks.networks.get(ep.network_id) for ep in c.eps()
        ]  # fmt: skip
        for net in nets:
            if net is not None:
                self.emit_network(action, net, c)

    async def save(self, c: Container) -> None:
        await self.store.put(f"containers/{c.id}", c.to_dict())

    # ---- questions every part asks ---------------------------------------------------
    def driver(self, net: Network) -> Driver:
        return self.drivers[net.driver]

    def sandbox_mode(self, net: Network) -> str:
        """The driver's ``sandbox_mode`` ("" when the driver is not loaded here)."""
        drv = self.drivers.get(net.driver)
        return drv.sandbox_mode if drv is not None else ""

    def ns_name(self, c: Container) -> str:
        """The sandbox's namespace file name: the short id, as Docker's SandboxKey.

        Short ids are unique (``create`` draws again on a clash). The short name also keeps
        the mount table small: runc reads ``/proc/self/mountinfo`` many times per start, and
        every sandbox adds a line. Sandboxes made by older versions keep their full-id name.
        """
        if os.path.lexists(self.netns.path(c.id)):
            return c.id
        return c.id[:12]

    def sandbox_ns(self, c: Container) -> str | None:
        kind, _target = network_mode(c.host_config)
        if kind == "host":
            return None
        if kind == "container":
            other = self.table.get(c.network_mode.split(":", 1)[1])
            return str(self.netns.path(self.ns_name(other)))
        return str(self.netns.path(self.ns_name(c)))

    def files_dir(self, c: Container) -> Path:
        return self.root / c.id

    def has_sandbox(self, c: Container) -> bool:
        """True while the container's network kernel objects exist."""
        return c.running or c.id in self.kept

    def on_default_bridge(self, c: Container) -> bool:
        """Legacy links (hosts lines, env vars, start checks) exist only on ``bridge``."""
        bridge = self.networks.find("bridge")
        return bridge is not None and bridge.id in c.endpoints

    # ---- DNS -----------------------------------------------------------------------
    def uses_embedded_dns(self, c: Container) -> bool:
        for ep in c.eps():
            net = self.networks.networks.get(ep.network_id)
            if net is not None and not net.predefined:
                return True
        return False

    async def dns_add(self, c: Container) -> None:
        assert self.dns is not None
        ns = self.netns.path(self.ns_name(c))
        await self.dns.add_sandbox(c.id, ns)

    def invalidate_dns(self) -> None:
        if self.dns is not None:
            self.dns.invalidate()

    # ---- global networks (cluster store): small hooks, no-ops on one host -------------
    async def hold_global(self, net: Network, ep: Endpoint, owner: str) -> None:
        ip = await self.networks.hold_global(net, ep.ip, ep.static_ip, owner)
        if ip != ep.ip:
            ep.ip, ep.mac = ip, ep.mac_config or mac_for(ip)
        if ep.ip6:  # a dual-stack global network: the IPv6 address is the cluster's too
            try:
                ep.ip6 = await self.networks.hold_global(net, ep.ip6, ep.static_ip6, owner, 6)
            except BaseException:
                self.networks.release(net.id, ep.ip)
                await self.release_global(net.id, ep.ip)
                raise

    async def release_global(self, net_id: str, ip: str) -> None:
        try:
            await self.networks.release_global(net_id, ip)
        except TetherError as exc:
            log.warning("global address %s: %s", ip, exc.message)
