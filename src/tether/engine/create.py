"""Creating a container from a checked request (``tether.engine.request.ContainerCreate``).

Under the create lock and the network lock (``network rm`` checks for endpoints under it,
and a container's are only visible once committed): the name (given, or generated as
Docker's ``adjective_scientist``), the networks and links the request names, the endpoints
and their addresses, all written in one transaction with the record. Then the root
filesystem's folders. A missing network or container is the request's fault here: a 404
from create would make the docker CLI try to pull the image (Docker answers 400 as well).
"""

from __future__ import annotations

import logging
import os
import random
from typing import Any

from tether.contracts.model import Network, new_id
from tether.engine import mounts as mountlib
from tether.engine.core import EngineCore
from tether.engine.endpoints import Endpoints
from tether.engine.hostports import HostPorts
from tether.engine.networks import NetworkController
from tether.engine.phases import Phases
from tether.engine.record import Container, now
from tether.engine.request import ContainerCreate
from tether.engine.supervise import Supervisor
from tether.errors import BadRequest, Conflict, Internal, NotFound, TetherError
from tether.store.base import Op

log = logging.getLogger("tether.containers")

NAMES_LEFT = [
    "admiring",
    "bold",
    "brave",
    "clever",
    "eager",
    "focused",
    "gallant",
    "happy",
    "jolly",
    "keen",
    "lucid",
    "nifty",
    "objective",
    "quirky",
    "sharp",
    "vibrant",
]
NAMES_RIGHT = [
    "lehmann",
    "turing",
    "hopper",
    "lovelace",
    "ritchie",
    "thompson",
    "torvalds",
    "knuth",
    "dijkstra",
    "hamilton",
    "shannon",
    "noether",
    "curie",
    "pike",
]

NetPlan = list[tuple[Network, dict[str, Any]]]


class Creator:
    def __init__(
        self, core: EngineCore, endpoints: Endpoints, ports: HostPorts, supervisor: Supervisor
    ) -> None:
        self.core = core
        self.endpoints = endpoints
        self.ports = ports
        self.supervisor = supervisor

    def _gen_name(self) -> str:
        for _ in range(100):
            name = f"{random.choice(NAMES_LEFT)}_{random.choice(NAMES_RIGHT)}"
            if self.core.table.named(name) is None:
                return name
        return "c_" + os.urandom(4).hex()

    async def create(self, req: ContainerCreate) -> Container:
        core = self.core
        clock = Phases()
        async with core.create_lock, core.networks.lock:
            c = self._new_record(req)
            try:
                networks = self._plan(c, req)
                c.links = self._check_links(c, req.host_config.get("Links") or [], networks)
            except NotFound as exc:
                raise BadRequest(exc.message) from exc
            made = await self._volumes(c, req)
            clock.mark("plan")
            try:
                # the root's folders before the record: its one store write holds the path
                c.rootfs = str(await core.images.prepare_rootfs(req.image, c.id))
                clock.mark("rootfs")
                await self._commit(c, networks)
            except BaseException:
                await core.images.remove_rootfs(c.id)
                await core.volumes.release(made, c.id)
                raise
            core.containers[c.id] = c
            clock.mark("commit")
        try:
            await self._copy_up(c)
        except BaseException:
            await self.supervisor.destroy(c, volumes=True)
            raise
        core.emit("create", c)
        log.debug("create %s phases: %s", c.id[:12], clock)
        return c

    def _new_record(self, req: ContainerCreate) -> Container:
        name = self._gen_name() if req.name is None else req.name
        clash = self.core.table.named(name) if name else None
        if clash is not None:
            raise Conflict(
                f'Conflict. The container name "/{name}" is already in use by container '
                f'"{clash.id}". You have to remove (or rename) that container to be able to '
                "reuse that name."
            )
        cid = new_id()
        while any(k.startswith(cid[:12]) for k in self.core.containers):
            cid = new_id()  # short ids (and sandbox names) stay unique
        cfg = req.config
        c = Container(
            id=cid,
            name=name,
            created=now(),
            image=req.image_ref,
            image_id=req.image.id,
            config=cfg,
            host_config=req.host_config,
            network_mode=req.host_config.get("NetworkMode") or "default",
        )
        c.path, c.args = (cfg["_argv"][0], cfg["_argv"][1:]) if cfg["_argv"] else ("", [])
        return c

    # ---- mounts and volumes (issue 16, P2) ------------------------------------------------
    def _mounts_of(self, ref: str) -> list[dict[str, Any]]:
        return [dict(m) for m in self.core.table.get(ref).mounts]

    async def _volumes(self, c: Container, req: ContainerCreate) -> list[str]:
        """The mount points (checked), their volumes made: the names made here."""
        points = mountlib.plan(req.host_config, req.config.get("Volumes"), self._mounts_of)
        driver = str(req.host_config.get("VolumeDriver") or "")
        try:
            made = await self.core.volumes.attach(points, driver)
        except NotFound as exc:  # a 404 from create makes the docker CLI pull the image
            raise BadRequest(exc.message) from None
        c.mounts = points
        return made

    async def _copy_up(self, c: Container) -> None:
        """Docker's copy-up: a volume still empty gets the image's files at its destination
        (owner and mode of the folder too). Volumes with driver options are not copied."""
        core = self.core
        wanted = [m for m in c.mounts if m["Type"] == "volume" and m.get("CopyData")]
        overlay = core.images.overlay_for(c.id) if wanted else None
        for m in wanted if overlay is not None else []:
            vol = core.volumes.volumes.get(m["Name"])
            path = core.volumes.path(m["Name"])
            if vol is None or vol.options or not os.path.isdir(path) or os.listdir(path):
                continue
            data = core.runtime.archive(None, overlay, m["Destination"].rstrip("/") + "/.")
            try:
                await core.runtime.fill_dir(path, data)
            except NotFound:
                continue  # nothing at that path in the image
            except TetherError as exc:
                raise Internal(f"copying image data to {m['Name']}: {exc.message}") from None

    def _plan(self, c: Container, req: ContainerCreate) -> NetPlan:
        """The networks the container joins, primary first, with their endpoint settings."""
        nets = self.core.networks
        if req.kind == "container":
            other = self.core.table.get(req.target)
            if not other.running:
                raise Conflict(f"cannot join network of a non running container: {other.id}")
            c.network_mode = f"container:{other.id}"
        networks: NetPlan = []
        if req.kind != "network":
            return networks
        primary = nets.get(req.target)
        if self.core.sandbox_mode(primary):
            return networks  # the host or none network: nothing to join
        netcfg = req.endpoints
        mode_key = req.host_config.get("NetworkMode") or "default"
        first = netcfg.get(mode_key) or netcfg.get(req.target) or netcfg.get(primary.name)
        first = dict(first or {})
        if req.config.get("MacAddress") and not first.get("MacAddress"):
            first["MacAddress"] = req.config["MacAddress"]  # --mac-address: the first network
        networks.append((primary, first))
        for ref, epcfg in netcfg.items():
            if ref in (mode_key, req.target):
                continue
            other_net = nets.get(ref)
            if other_net.id != primary.id:
                networks.append((other_net, epcfg or {}))
        return networks

    async def _commit(self, c: Container, networks: NetPlan) -> None:
        """Endpoints with their addresses, the name and the record: one transaction."""
        core = self.core
        held: list[tuple[str, str]] = []
        try:
            ifno = 0
            for net, epcfg in networks:
                ep = self.endpoints.new_endpoint(c, net, epcfg, f"eth{ifno}")
                await core.hold_global(net, ep, c.id)
                held += [(net.id, ip) for ip in ep.addresses()]
                c.endpoints[net.id] = ep.to_dict()
                ifno += 1 + self.endpoints.extra_ifs(net)
            if networks:
                self.ports.requests(c)  # a malformed binding is refused now; ports at start
            ops = [
                Op("create", f"cnames/{c.name}", {"id": c.id}),
                Op("create", f"containers/{c.id}", c.to_dict()),
            ] + [
                Op("create", NetworkController.ipam_key(nid, ip), {"container": c.id})
                for nid, ip in held
                if ip
            ]
            res = await core.store.txn(ops)
            if not res.ok:
                if res.failed_key and res.failed_key.startswith("ipam/"):
                    raise Conflict("Address already in use")
                raise Conflict(f'Conflict. The container name "/{c.name}" is already in use')
        except BaseException:
            for nid, ip in held:
                core.networks.release(nid, ip)
                await core.release_global(nid, ip)
            raise

    def _check_links(self, c: Container, links: list[Any], networks: NetPlan) -> list[list[str]]:
        out: list[list[str]] = []
        default = any(n.name == "bridge" for n, _ in networks)
        for link in links:
            if not isinstance(link, str) or not link:
                raise BadRequest(f"invalid link: {link!r}")
            target, _, alias = link.partition(":")
            target = target.lstrip("/")
            alias = (alias or target).lstrip("/").split("/")[-1]
            other = self.core.table.find(target)
            if not default:
                # User-defined network (Docker): a link is only a DNS alias of the target's
                # name for the linking container; not checked, resolved at query time.
                out.append([other.id if other is not None else target, alias])
                continue
            if other is None:
                raise NotFound(f"could not get container for {target}: No such container: {target}")
            bridge = self.core.networks.find("bridge")
            if bridge is None or bridge.id not in other.endpoints:
                raise BadRequest(
                    f"Cannot link to /{other.name}, as it does not belong to the default network"
                )
            if not other.running:
                raise Conflict(
                    f"Cannot link to a non running container: /{other.name} AS /{c.name}/{alias}"
                )
            out.append([other.id, alias])
        return out
