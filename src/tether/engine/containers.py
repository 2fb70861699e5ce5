"""The container controller: the one door to the container engine's parts.

State: ``containers/<id>`` (``tether.engine.record.Container``) and ``cnames/<name>`` in the
store, written with the address holdings (``ipam/<net>/<ip>``) in one transaction, so a
container either exists whole or not at all.

Resources and when they exist:

* addresses are held from create to remove (so a ``--ip`` clash fails at create, before
  anything is made, and a restarted container keeps its addresses);
* published host ports are held from start to stop, as Docker's (a stopped container's port
  is free; a clash fails the start); a sandbox kept across a policy restart keeps them;
* the sandbox (network namespace, veths, DNS listener) exists while the container runs; it is
  made before ``runc start`` and removed at exit (kept across a policy restart);
* the root filesystem's folders exist from create to remove; it is mounted at each start,
  inside the mount namespace of the container's monitor only
  (``tether.linux.nsthread.PrivateMounts``), and unmounted by the kernel when the monitor
  exits.

Container processes are children of their monitor (conmon), never of the daemon; exits
arrive from the runtime's exit watcher.

Where each job lives: the record (``record``), the table of records (``table``), the checked
create request (``request``), create (``create``), the sandbox files (``sandboxfiles``), the
OCI bundle (``bundle``), host ports (``hostports``), the network sandbox (``netsandbox``), a
start (``run``), exits, restarts, stop, kill and remove (``supervise``), connect and
disconnect (``endpoints``), start-up (``reconcile``); what they share (``core``) and the
collaborators' Protocols (``seams``). This class builds them from the collaborators the
daemon gives it and delegates.
"""

from __future__ import annotations

import asyncio
import builtins
import logging
from collections.abc import Callable, Coroutine, Mapping
from pathlib import Path
from typing import Any

from tether.contracts.driver import Driver
from tether.contracts.model import check_name
from tether.contracts.runtime import Bundles
from tether.engine import ports as portlib
from tether.engine.bundle import BundleStep
from tether.engine.core import EngineCore
from tether.engine.create import Creator
from tether.engine.endpoints import Endpoints
from tether.engine.hostports import HostPorts
from tether.engine.netsandbox import Sandboxes
from tether.engine.networks import NetworkController
from tether.engine.operate import Operations
from tether.engine.reconcile import Reconciler
from tether.engine.record import ZERO_TIME, Container, State, command_text, parse_restart
from tether.engine.request import ContainerCreate
from tether.engine.run import Runner
from tether.engine.sandboxfiles import SandboxFiles
from tether.engine.seams import (
    Dns,
    EventSink,
    Images,
    Netns,
    PortsChanged,
    Runtime,
    VolumeMounts,
)
from tether.engine.supervise import Supervisor
from tether.engine.table import ContainerTable
from tether.engine.update import Updater
from tether.errors import BadRequest, Conflict, Internal, NotFound, TetherError
from tether.linux.netlink import Netlink
from tether.store.base import Op, Store

__all__ = ["ZERO_TIME", "Container", "ContainerController", "State", "command_text"]

log = logging.getLogger("tether.containers")


class ContainerController:
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
        dns_servers: builtins.list[str],
        ports_changed: PortsChanged,
        events: EventSink | None = None,
        volume_mounts: VolumeMounts | None = None,
        host_gateway_ip: str | None = None,
    ) -> None:
        core = EngineCore(
            store=store,
            networks=networks,
            table=table,
            drivers=drivers,
            netns=netns,
            netlink=netlink,
            runtime=runtime,
            images=images,
            bundles=bundles,
            data_root=data_root,
            dns=dns,
            dns_servers=dns_servers,
            ports_changed=ports_changed,
            events=events,
            volume_mounts=volume_mounts,
        )
        self.core = core
        self.table = table
        self.containers = table.containers
        self.files = SandboxFiles(core, host_gateway_ip)
        self.ports = HostPorts(core)
        self.sandboxes = Sandboxes(core)
        runner = Runner(core, self.files, BundleStep(core, self.files), self.ports, self.sandboxes)
        self.supervisor = Supervisor(core, runner, self.sandboxes, self.ports)
        self.endpoints = Endpoints(core, self.files)
        self.creator = Creator(core, self.endpoints, self.ports, self.supervisor)
        self.reconciler = Reconciler(core, self.supervisor, self.ports)
        self.ops = Operations(core)
        self.updater = Updater(core)
        self.volumes = core.volumes  # issue 16, P2: the /volumes routes' service

    # ---- the table and the files: what the API reads ----------------------------------
    @property
    def allocator(self) -> portlib.PortAllocator:
        return self.core.allocator

    @property
    def attach_hooks(self) -> dict[str, builtins.list[Callable[[], Coroutine[Any, Any, None]]]]:
        """Run between ``runc create`` and ``runc start`` (``docker run`` attaches there)."""
        return self.core.attach_hooks

    def find(self, ref: str) -> Container | None:
        return self.table.find(ref)

    def named(self, name: str) -> Container | None:
        return self.table.named(name)

    def get(self, ref: str) -> Container:
        return self.table.get(ref)

    def list(self) -> builtins.list[Container]:
        return self.table.list()

    def files_dir(self, c: Container) -> Path:
        return self.core.files_dir(c)

    def sandbox_ns(self, c: Container) -> str | None:
        return self.core.sandbox_ns(c)

    def ns_name(self, c: Container) -> str:
        return self.core.ns_name(c)

    def has_sandbox(self, c: Container) -> bool:
        return self.core.has_sandbox(c)

    async def save(self, c: Container) -> None:
        await self.core.save(c)

    def _link_env(self, c: Container) -> builtins.list[str]:
        return self.files.link_env(c)

    def emit(self, action: str, c: Container, **attrs: str) -> None:
        """A container event (exec's, attach's: the API's own steps)."""
        self.core.emit(action, c, **attrs)

    def exit_future(self, c: Container) -> asyncio.Future[int]:
        return self.supervisor.exit_future(c)

    async def ensure_dns(self, c: Container) -> None:
        await self.sandboxes.ensure_dns(c)

    # ---- start-up and shutdown -------------------------------------------------------
    async def start(self) -> None:
        """Load records, re-hold addresses and ports, adopt live containers."""
        await self.core.volumes.load()
        await self.reconciler.load()
        self.core.spawn(self.supervisor.exit_loop())
        await self.reconciler.reconcile()

    async def close(self) -> None:
        self.ports.close()
        for t in builtins.list(self.supervisor.restart_timers.values()):
            t.cancel()
        tasks = self.core.tasks
        for task in builtins.list(tasks):
            task.cancel()
        if tasks:
            await asyncio.gather(*tasks, return_exceptions=True)

    # ---- lifecycle -------------------------------------------------------------------
    async def create(self, req: ContainerCreate) -> Container:
        return await self.creator.create(req)

    async def start_container(self, ref: str, from_policy: bool = False) -> Container:
        return await self.supervisor.start_container(ref, from_policy)

    async def stop(self, ref: str, timeout: int | None) -> Container:
        return await self.supervisor.stop(ref, timeout)

    async def kill(self, ref: str, sig: str | None) -> Container:
        return await self.supervisor.kill(ref, sig)

    async def restart(self, ref: str, timeout: int | None) -> Container:
        return await self.supervisor.restart(ref, timeout)

    async def remove(self, ref: str, force: bool, volumes: bool = False) -> None:
        """``volumes``: ``rm -v``, the container's anonymous volumes go too."""
        await self.supervisor.remove(ref, force, volumes)

    async def connect(self, net_ref: str, container_ref: str, epcfg: dict[str, Any]) -> None:
        await self.endpoints.connect(net_ref, container_ref, epcfg)

    async def disconnect(self, net_ref: str, container_ref: str, force: bool) -> None:
        await self.endpoints.disconnect(net_ref, container_ref, force)

    # ---- rename and update -------------------------------------------------------------
    async def rename(self, ref: str, new: str) -> None:
        c = self.get(ref)
        new = new.lstrip("/")
        check_name(new, "container")
        if new == c.name:
            raise BadRequest("Renaming a container with the same name as its current name")
        other = self.named(new)
        if other is not None:
            raise Conflict(
                "Error when allocating new name: "
                f'Conflict. The container name "/{new}" is already in use by container '
                f'"{other.id}". You have to remove (or rename) that container to be able to '
                "reuse that name."
            )
        res = await self.core.store.txn(
            [Op("create", f"cnames/{new}", {"id": c.id}), Op("delete", f"cnames/{c.name}")]
        )
        if not res.ok:
            raise Conflict(f"name {new} is in use")
        c.name = new
        for _nid, ep in c.endpoints.items():
            ep["container_name"] = new
        await self.save(c)
        self.core.invalidate_dns()
        if self.has_sandbox(c):
            await self._republish(c)
        self.core.emit("rename", c)

    async def _republish(self, c: Container) -> None:
        """Drivers that tell other hosts about endpoints (overlay) write them again (a
        rename: the other hosts' DNS answers the new name). Best effort: the rename is done."""
        for ep in c.eps():
            net = self.core.networks.networks.get(ep.network_id)
            drv = self.core.drivers.get(net.driver) if net is not None else None
            hook = getattr(drv, "endpoint_changed", None)
            if net is None or hook is None:
                continue
            try:
                await hook(net, ep)
            except TetherError as exc:
                log.warning("republishing %s on %s: %s", c.name, net.name, exc.message)

    async def remove_link(self, ref: str) -> None:
        """``docker rm --link /parent/alias``: the parent forgets the legacy link (Docker's
        rmLink: the link graph only; the parent's hosts file and env stay as they are)."""
        name = ref if ref.startswith("/") else "/" + ref
        parent_path, _, alias = name.rpartition("/")
        if not parent_path:
            raise Internal("Conflict, cannot remove the default link name of the container")
        parent = self.find(parent_path.strip("/"))
        entry = next((lk for lk in parent.links if lk[1] == alias), None) if parent else None
        if parent is None or entry is None:
            raise NotFound(f"No such container: {ref.lstrip('/')}")
        parent.links.remove(entry)
        await self.save(parent)

    def link_names(self) -> dict[str, builtins.list[str]]:
        """The names Docker's name registry gives link targets (``/web/db``), by target id."""
        out: dict[str, builtins.list[str]] = {}
        for p in self.containers.values():
            for tid, alias in p.links:
                out.setdefault(tid, []).append(f"/{p.name}/{alias}")
        return out

    async def update(self, ref: str, body: dict[str, Any]) -> builtins.list[str]:
        """``POST /containers/{id}/update``: resources and restart policy; the warnings."""
        return await self.updater.update(ref, body)

    async def update_restart(self, ref: str, rp: dict[str, Any]) -> None:
        c = self.get(ref)
        policy = parse_restart(rp)
        if c.host_config.get("AutoRemove") and policy["Name"] != "no":
            raise Conflict(
                f"Cannot update container {c.id}: Restart policy cannot be updated because "
                "AutoRemove is enabled for the container"
            )
        c.host_config["RestartPolicy"] = policy
        await self.save(c)
