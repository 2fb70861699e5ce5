"""The container controller: lifecycle, endpoints, links, ports and restarts.

State: ``containers/<id>`` (the record below) and ``cnames/<name>`` in the
store, written with the address holdings (``ipam/<net>/<ip>``) in one
transaction, so a container either exists whole or not at all.

Resources and when they exist:

* addresses and published host ports are held from create to remove (so a
  ``--ip`` or port clash fails at create, before anything is made, and a
  restarted container keeps its addresses);
* the sandbox (network namespace, veths, DNS listener) exists while the
  container runs; it is made before ``runc start`` and removed at exit;
* the root filesystem's folders exist from create to remove; it is mounted at
  each start, inside the mount namespace of the container's monitor only
  (``tether.linux.nsthread.PrivateMounts``), and unmounted by the kernel when
  the monitor exits.

Container processes are children of their monitor (conmon), never of the
daemon; exits arrive from the runtime's exit watcher.
"""

from __future__ import annotations

import asyncio
import builtins
import contextlib
import datetime as dt
import logging
import os
import shlex
import signal as _signal
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from tether.contracts.model import Endpoint, Network, check_name, mac_for, new_id
from tether.engine import ports as portlib
from tether.engine import sandbox as sbx
from tether.engine.networks import NetworkController
from tether.engine.phases import Phases
from tether.errors import (
    BadRequest,
    Conflict,
    Forbidden,
    Internal,
    NotFound,
    NotModified,
    TetherError,
)
from tether.linux.nsthread import PrivateMounts
from tether.store.base import Op, Store

log = logging.getLogger("tether.containers")

ZERO_TIME = "0001-01-01T00:00:00Z"
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


def now() -> str:
    return dt.datetime.now(dt.UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


@dataclass
class State:
    status: str = "created"  # created | running | restarting | exited | removing | dead
    pid: int = 0
    exit_code: int = 0
    started_at: str = ZERO_TIME
    finished_at: str = ZERO_TIME
    error: str = ""


@dataclass
class Container:
    id: str
    name: str
    created: str
    image: str
    image_id: str
    config: dict[str, Any]
    host_config: dict[str, Any]
    network_mode: str
    endpoints: dict[str, dict[str, Any]] = field(default_factory=dict)  # by network id
    ports: builtins.list[dict[str, Any]] = field(default_factory=list)  # PortBinding dicts
    state: State = field(default_factory=State)
    restart_count: int = 0
    manually_stopped: bool = False
    links: builtins.list[list[str]] = field(default_factory=list)  # [target id, alias]
    path: str = ""
    args: builtins.list[str] = field(default_factory=list)
    rootfs: str = ""

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> Container:
        d = dict(d)
        d["state"] = State(**d.get("state", {}))
        return cls(**d)

    @property
    def running(self) -> bool:
        return self.state.status in ("running",)

    @property
    def tty(self) -> bool:
        return bool(self.config.get("Tty"))

    def eps(self) -> builtins.list[Endpoint]:
        return [Endpoint.from_dict(e) for e in self.endpoints.values()]

    @property
    def restart_policy(self) -> dict[str, Any]:
        rp = self.host_config.get("RestartPolicy") or {}
        return {
            "Name": rp.get("Name") or "no",
            "MaximumRetryCount": int(rp.get("MaximumRetryCount") or 0),
        }


def parse_restart(rp: Any) -> dict[str, Any]:
    if rp is None:
        return {"Name": "no", "MaximumRetryCount": 0}
    if not isinstance(rp, dict):
        raise BadRequest("RestartPolicy must be an object")
    name = rp.get("Name") or "no"
    if name not in ("no", "always", "unless-stopped", "on-failure"):
        raise BadRequest(f"invalid restart policy '{name}'")
    count = rp.get("MaximumRetryCount") or 0
    if not isinstance(count, int):
        raise BadRequest("maximum retry count must be an integer")
    # Docker 20.10's validateRestartPolicy, in its order and words
    if count and name != "on-failure":
        raise BadRequest(f"maximum retry count cannot be used with restart policy '{name}'")
    if count < 0:
        raise BadRequest("maximum retry count cannot be negative")
    return {"Name": name, "MaximumRetryCount": count}


IPAM_KEYS = ("IPv4Address", "IPv6Address", "LinkLocalIPs")


def sent_ipam(raw: Any) -> dict[str, Any] | None:
    """An endpoint's IPAMConfig as inspect shows it: None when not sent, else its non-empty
    fields (Docker's omitempty)."""
    if not isinstance(raw, dict):
        return None
    return {k: v for k, v in raw.items() if k in IPAM_KEYS and v}


def sent_driver_opts(raw: Any) -> dict[str, str] | None:
    if not isinstance(raw, dict):
        return None
    return {str(k): str(v) for k, v in raw.items()}


def check_net_mode(body: dict[str, Any], hc: dict[str, Any]) -> None:
    """Options that make no sense with the network mode, refused at create with Docker's texts
    (runconfig's validateNetMode: the request's own settings, before the image's merge)."""
    mode = hc.get("NetworkMode") or ""
    if mode == "container:":
        raise BadRequest("Invalid network mode: invalid container format container:<name|id>")
    shared = mode.startswith("container:")
    conflicts = (
        (shared and bool(body.get("Hostname")), "hostname and the network mode"),
        (
            shared and bool(hc.get("Links")),
            "container type network can't be used with links. "
            "This would result in undefined behavior",
        ),
        (shared and bool(hc.get("Dns")), "dns and the network mode"),
        (shared and bool(hc.get("ExtraHosts")), "custom host-to-IP mapping and the network mode"),
        (
            (shared or mode == "host") and bool(body.get("MacAddress")),
            "mac-address and the network mode",
        ),
        (
            shared and bool(hc.get("PortBindings") or hc.get("PublishAllPorts")),
            "port publishing and the container type network mode",
        ),
        (
            shared and bool(body.get("ExposedPorts")),
            "port exposing and the container type network mode",
        ),
        (
            mode == "host" and bool(hc.get("Links")),
            "host type networking can't be used with links. "
            "This would result in undefined behavior",
        ),
    )
    for bad, text in conflicts:
        if bad:
            raise BadRequest(f"conflicting options: {text}")


class ContainerController:
    def __init__(
        self,
        store: Store,
        networks: NetworkController,
        drivers: dict[str, Any],
        netns: Any,
        netlink: Any,
        runtime: Any,
        images: Any,
        data_root: Path,
        dns: Any | None,
        dns_servers: builtins.list[str],
        on_ports_changed: Callable[[str], Any],
        events: Any | None = None,
    ) -> None:
        self.store = store
        self.networks = networks
        self.drivers = drivers
        self.netns = netns
        self.netlink = netlink
        self.runtime = runtime
        self.images = images
        self.root = data_root / "containers"
        self.dns = dns
        self.dns_servers = dns_servers
        self._ports_changed = on_ports_changed
        self.events = events
        self.containers: dict[str, Container] = {}
        self.allocator = portlib.PortAllocator()
        self._locks: dict[str, asyncio.Lock] = {}
        self._exit_waiters: dict[str, list[asyncio.Future[int]]] = {}
        self._tasks: set[asyncio.Task[Any]] = set()
        self._restart_timers: dict[str, asyncio.Task[Any]] = {}
        self._backoff: dict[str, float] = {}
        self._kept: set[str] = set()  # restarting containers whose sandbox is kept
        self.create_lock = asyncio.Lock()
        self.attach_hooks: dict[str, list[Callable[[], Any]]] = {}

    # ---- bookkeeping -------------------------------------------------------------
    def lock(self, cid: str) -> asyncio.Lock:
        lk = self._locks.get(cid)
        if lk is None:
            lk = self._locks[cid] = asyncio.Lock()
        return lk

    def spawn(self, coro: Any) -> asyncio.Task[Any]:
        task: asyncio.Task[Any] = asyncio.ensure_future(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
        return task

    def emit(self, action: str, c: Container, **attrs: str) -> None:
        if self.events is not None:
            labels = {str(k): str(v) for k, v in (c.config.get("Labels") or {}).items()}
            base = {**labels, "image": c.image, "name": c.name}
            self.events.emit("container", action, c.id, {**base, **attrs})

    async def save(self, c: Container) -> None:
        await self.store.put(f"containers/{c.id}", c.to_dict())

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
                "IPv6Address": "",
            }
        return out

    def port_rules(self) -> builtins.list[Any]:
        return [r for cid in self.containers for r in self.container_port_rules(cid)]

    def container_port_rules(self, cid: str) -> builtins.list[Any]:
        """The firewall's ``PortRule``s of one container (none unless it runs)."""
        c = self.containers.get(cid)
        if c is None or not c.running or not c.ports:
            return []
        bindings = [portlib.PortBinding(**p) for p in c.ports]
        for ep in c.eps():
            net = self.networks.networks.get(ep.network_id)
            if net is None or net.driver != "bridge" or net.internal or not ep.ip:
                continue
            return list(portlib.port_rules(bindings, ep.ip, net.ifname))
        return []

    # ---- start-up ------------------------------------------------------------------
    async def start(self) -> None:
        """Load records, re-hold addresses and ports, adopt live containers."""
        self.root.mkdir(parents=True, exist_ok=True)
        for rec in await self.store.list("containers/"):
            c = Container.from_dict(rec.value)
            self.containers[c.id] = c
            if c.state.status not in ("running", "restarting"):
                c.ports = []  # a stopped container holds no host port (older records did)
            if c.ports:
                self.allocator.reserve_all(portlib.PortBinding(**p) for p in c.ports)
        self.spawn(self._exit_loop())
        await self._reconcile()

    async def close(self) -> None:
        for t in list(self._restart_timers.values()):
            t.cancel()
        for task in list(self._tasks):
            task.cancel()
        if self._tasks:
            await asyncio.gather(*self._tasks, return_exceptions=True)

    async def _reconcile(self) -> None:
        """Make the kernel and the store agree again after the daemon went away.

        Order: finish interrupted removals and creates; adopt live containers (same PID);
        remove runtime state, namespaces and veths no live container owns; re-wire
        endpoints of live containers whose host side is missing (a connect cut short);
        drop address holdings no endpoint names; then settle the exits that happened
        while the daemon was down (restart by policy) and start ``always`` containers.
        """
        for c in list(self.containers.values()):
            half_made = c.state.status == "created" and not c.rootfs
            if c.state.status == "removing" or half_made:
                try:
                    await self._destroy(c)
                except Exception:
                    log.exception("finishing removal of %s", c.id[:12])
        live_ns: set[str] = set()
        dead: builtins.list[Container] = []
        for c in list(self.containers.values()):
            if c.state.status in ("running", "restarting") and await self._alive(c):
                live_ns.add(self.ns_name(c))
                if self.dns is not None and self._uses_embedded_dns(c):
                    try:
                        await self._dns_add(c)
                    except TetherError as exc:
                        log.error("DNS for %s: %s", c.id[:12], exc.message)
                continue
            if c.state.status in ("running", "restarting"):
                dead.append(c)
            elif await self._has_runtime_state(c):
                await self.runtime.delete(c.id)  # a start cut short: never reported running
        # namespaces no running container owns
        for name in self.netns.list():
            if name not in live_ns:
                self.netns.delete(name)
        for c in self.containers.values():
            if self.ns_name(c) in live_ns:
                await self._rewire(c)
                continue
            for ep in c.eps():
                name = ep.host_ifname or self._veth_guess(ep)
                if name:
                    await self.netlink.delete_link(name)
        await self._sweep_addresses()
        for c in dead:
            if c.state.status == "restarting":
                # Its exit was handled (code, restart count) before the daemon went away and
                # its sandbox was swept above: only the pending restart is left to do.
                await self.runtime.delete(c.id)
                now_t = asyncio.get_running_loop().time()
                self._restart_timers[c.id] = self.spawn(self._restart_later(c.id, 0.0, now_t))
                continue
            code = self.runtime.exit_code(c.id)
            async with self.lock(c.id):
                await self._handle_exit(c, 255 if code is None else code, from_restart=True)
        # start "always" containers (and unless-stopped not stopped by hand)
        for c in list(self.containers.values()):
            if c.state.status in ("exited", "created") and c.state.started_at != ZERO_TIME:
                pol = c.restart_policy["Name"]
                wanted = pol == "always" or (pol == "unless-stopped" and not c.manually_stopped)
                if wanted and c.id not in self._restart_timers:
                    self.spawn(self._safe_start(c.id))

    async def _has_runtime_state(self, c: Container) -> bool:
        root = getattr(self.runtime, "runc_root", None)
        if root is not None:
            return Path(root, c.id).exists()
        return await self.runtime.state(c.id) is not None

    def _veth_guess(self, ep: Endpoint) -> str:
        """The host-side name a bridge join gives ``ep`` (for a join whose save was lost)."""
        net = self.networks.networks.get(ep.network_id)
        if net is None or net.driver != "bridge":
            return ""
        from tether.drivers.bridge import veth_name

        return veth_name(ep)

    async def _rewire(self, c: Container) -> None:
        """Join again the endpoints of a live container whose host side is missing."""
        changed = False
        ns = self.netns.path(self.ns_name(c))
        for ep in c.eps():
            net = self.networks.networks.get(ep.network_id)
            if net is None or net.driver != "bridge":
                continue
            name = ep.host_ifname or self._veth_guess(ep)
            if await self.netlink.link_exists(name):
                if not ep.host_ifname:
                    ep.host_ifname = name
                    c.endpoints[net.id] = ep.to_dict()
                    changed = True
                continue
            with contextlib.suppress(Exception):
                await self.netlink.delete_link(ep.ifname, ns)
            try:
                await self.drivers[net.driver].join(net, ep, ns)
            except TetherError as exc:
                log.error("re-wiring %s on %s: %s", c.id[:12], net.name, exc.message)
                continue
            c.endpoints[net.id] = ep.to_dict()
            changed = True
        if changed:
            await self.save(c)

    async def _sweep_addresses(self) -> None:
        """Drop ``ipam/`` holdings of local networks that no container endpoint names."""
        held = {
            (nid, str(ep.get("ip") or ""))
            for c in self.containers.values()
            for nid, ep in c.endpoints.items()
        }
        for rec in await self.store.list("ipam/"):
            _, nid, ip = rec.key.split("/", 2)
            value = rec.value if isinstance(rec.value, dict) else {}
            if "container" not in value or (nid, ip) in held:
                continue
            net = self.networks.networks.get(nid)
            if net is not None and net.scope != "local":
                continue  # other hosts' containers hold addresses of global networks
            log.warning("releasing leaked address %s on %s", ip, nid[:12])
            await self.store.delete(rec.key)
            self.networks.release(nid, ip)

    async def _safe_start(self, cid: str) -> None:
        try:
            await self.start_container(cid, from_policy=True)
        except TetherError as exc:
            log.warning("restart of %s failed: %s", cid[:12], exc.message)

    async def _alive(self, c: Container) -> bool:
        if c.state.pid <= 0:
            return False
        try:
            os.kill(c.state.pid, 0)
        except OSError:
            return False
        return self.runtime.exit_code(c.id) is None

    # ---- create ---------------------------------------------------------------------
    def _gen_name(self) -> str:
        import random

        for _ in range(100):
            name = f"{random.choice(NAMES_LEFT)}_{random.choice(NAMES_RIGHT)}"
            if self.named(name) is None:
                return name
        return "c_" + os.urandom(4).hex()

    def _mode(self, host_config: dict[str, Any]) -> tuple[str, str]:
        mode = host_config.get("NetworkMode") or "default"
        if not isinstance(mode, str):
            raise BadRequest("NetworkMode must be a string")
        if mode == "default":
            return "network", "bridge"
        if mode in ("host", "none"):
            return mode, mode
        if mode.startswith("container:"):
            return "container", mode.split(":", 1)[1]
        return "network", mode

    async def create(self, body: dict[str, Any], name: str | None) -> Container:
        image_ref = body.get("Image")
        if not isinstance(image_ref, str) or not image_ref:
            raise BadRequest("No image was specified")
        host_config = body.get("HostConfig") or {}
        if not isinstance(host_config, dict):
            raise BadRequest("HostConfig must be an object")
        if name:
            name = name.lstrip("/")
            check_name(name, "container")
        image = self.images.get(image_ref)
        cfg = self._merge_config(body, image)
        host_config["RestartPolicy"] = parse_restart(host_config.get("RestartPolicy"))
        if host_config.get("AutoRemove") and host_config["RestartPolicy"]["Name"] != "no":
            raise BadRequest("can't create 'AutoRemove' container with restart policy")
        kind, target = self._mode(host_config)
        check_net_mode(body, host_config)
        if kind == "host" and (
            host_config.get("PortBindings") or host_config.get("PublishAllPorts")
        ):
            host_config["PortBindings"] = {}
            host_config["PublishAllPorts"] = False
        netcfg = (body.get("NetworkingConfig") or {}).get("EndpointsConfig") or {}
        if not isinstance(netcfg, dict):
            raise BadRequest("NetworkingConfig.EndpointsConfig must be an object")
        # The network lock too: `network rm` checks for endpoints under it, and this
        # container's are only visible once committed (a concurrent rm removed the network
        # under a create).
        async with self.create_lock, self.networks.lock:
            if name is None:
                name = self._gen_name()
            clash = self.named(name) if name else None
            if clash is not None:
                raise Conflict(
                    f'Conflict. The container name "/{name}" is already in use by container '
                    f'"{clash.id}". You have to remove (or rename) that container to be able to '
                    "reuse that name."
                )
            cid = new_id()
            while any(k.startswith(cid[:12]) for k in self.containers):
                cid = new_id()  # short ids (and sandbox names) stay unique
            c = Container(
                id=cid,
                name=name,
                created=now(),
                image=image_ref,
                image_id=image.id,
                config=cfg,
                host_config=host_config,
                network_mode=host_config.get("NetworkMode") or "default",
            )
            c.path, c.args = (cfg["_argv"][0], cfg["_argv"][1:]) if cfg["_argv"] else ("", [])
            # A missing network or container is the request's fault here: a 404 from create
            # would make the docker CLI try to pull the image (Docker answers 400 as well).
            try:
                if kind == "container":
                    other = self.get(target)
                    if not other.running:
                        raise Conflict(
                            f"cannot join network of a non running container: {other.id}"
                        )
                    c.network_mode = f"container:{other.id}"
                networks: builtins.list[tuple[Network, dict[str, Any]]] = []
                if kind == "network":
                    primary = self.networks.get(target)
                    if primary.driver in ("host", "null"):
                        kind = "host" if primary.driver == "host" else "none"
                    else:
                        mode_key = host_config.get("NetworkMode") or "default"
                        first = (
                            netcfg.get(mode_key) or netcfg.get(target) or netcfg.get(primary.name)
                        )
                        networks.append((primary, first or {}))
                        for ref, epcfg in netcfg.items():
                            if ref in (mode_key, target):
                                continue
                            other_net = self.networks.get(ref)
                            if other_net.id != primary.id:
                                networks.append((other_net, epcfg or {}))
                c.links = self._check_links(c, host_config.get("Links") or [], networks)
            except NotFound as exc:
                raise BadRequest(exc.message) from exc
            held: builtins.list[tuple[str, str]] = []
            try:
                ifno = 0
                for net, epcfg in networks:
                    ep = self._new_endpoint(c, net, epcfg, f"eth{ifno}")
                    await self._hold_global(net, ep, c.id)
                    held.append((net.id, ep.ip))
                    c.endpoints[net.id] = ep.to_dict()
                    ifno += 1 + self._extra_ifs(net)
                if networks:
                    self._port_requests(c)  # a malformed binding is refused now; ports at start
                ops = [
                    Op("create", f"cnames/{c.name}", {"id": c.id}),
                    Op("create", f"containers/{c.id}", c.to_dict()),
                ] + [
                    Op("create", NetworkController.ipam_key(nid, ip), {"container": c.id})
                    for nid, ip in held
                    if ip
                ]
                res = await self.store.txn(ops)
                if not res.ok:
                    if res.failed_key and res.failed_key.startswith("ipam/"):
                        raise Conflict("Address already in use")
                    raise Conflict(f'Conflict. The container name "/{name}" is already in use')
            except BaseException:
                for nid, ip in held:
                    self.networks.release(nid, ip)
                    await self._release_global(nid, ip)
                raise
            self.containers[c.id] = c
        try:
            c.rootfs = str(await self.images.prepare_rootfs(image, c.id))
            await self.save(c)
        except BaseException:
            await self._destroy(c)
            raise
        self.emit("create", c)
        return c

    def _merge_config(self, body: dict[str, Any], image: Any) -> dict[str, Any]:
        cfg: dict[str, Any] = {}
        for key in (
            "Hostname",
            "Domainname",
            "User",
            "AttachStdin",
            "AttachStdout",
            "AttachStderr",
            "Tty",
            "OpenStdin",
            "StdinOnce",
            "Env",
            "Cmd",
            "Entrypoint",
            "WorkingDir",
            "Labels",
            "ExposedPorts",
            "StopSignal",
            "StopTimeout",
        ):
            if key in body:
                cfg[key] = body[key]
        for key in ("Env", "Cmd", "Entrypoint"):
            v = cfg.get(key)
            if v is not None and not (isinstance(v, list) and all(isinstance(x, str) for x in v)):
                if key == "Entrypoint" and isinstance(v, str):
                    cfg[key] = [v] if v else []
                    continue
                raise BadRequest(f"{key} must be a list of strings")
        env = list(image.env or [])
        keys = {e.split("=", 1)[0]: i for i, e in enumerate(env)}
        for e in cfg.get("Env") or []:
            k = e.split("=", 1)[0]
            if k in keys:
                env[keys[k]] = e
            else:
                keys[k] = len(env)
                env.append(e)
        if not any(e.startswith("PATH=") for e in env):
            env.insert(0, "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin")
        cfg["Env"] = env
        entry = cfg.get("Entrypoint")
        if entry is None:
            entry = image.entrypoint or []
        cmd = cfg.get("Cmd")
        if not cmd:
            cmd = image.cmd or [] if cfg.get("Entrypoint") is None else cmd or []
        cfg["Entrypoint"] = entry or None
        cfg["Cmd"] = cmd or None
        argv = list(entry or []) + list(cmd or [])
        if not argv:
            raise BadRequest("No command specified")
        cfg["_argv"] = argv
        cfg["WorkingDir"] = cfg.get("WorkingDir") or image.working_dir or ""
        cfg["Image"] = body.get("Image")
        exposed = dict(image.exposed_ports or {})
        exposed.update(cfg.get("ExposedPorts") or {})
        cfg["ExposedPorts"] = exposed
        labels = dict(image.labels or {})
        labels.update(cfg.get("Labels") or {})
        cfg["Labels"] = labels
        return cfg

    def _new_endpoint(
        self, c: Container, net: Network, epcfg: dict[str, Any], ifname: str
    ) -> Endpoint:
        ipam = epcfg.get("IPAMConfig") or {}
        static = ipam.get("IPv4Address") or ""
        if net.predefined and net.name == "bridge" and static:
            raise BadRequest("user specified IP address is supported on user defined networks only")
        aliases = [a for a in (epcfg.get("Aliases") or []) if isinstance(a, str)]
        ip, prefix, gw = self.networks.allocate(net, static or None)
        ep = Endpoint(
            id=new_id(),
            network_id=net.id,
            network_name=net.name,
            container_id=c.id,
            container_name=c.name,
            ip=ip,
            prefixlen=prefix,
            gateway="" if net.internal else gw,
            mac=mac_for(ip),
            ifname=ifname,
            aliases=aliases,
            links=[x for x in (epcfg.get("Links") or []) if isinstance(x, str)],
            static_ip=static,
            ipam_config=sent_ipam(epcfg.get("IPAMConfig")),
            driver_opts=sent_driver_opts(epcfg.get("DriverOpts")),
        )
        return ep

    def _check_links(
        self,
        c: Container,
        links: builtins.list[Any],
        networks: builtins.list[tuple[Network, dict[str, Any]]],
    ) -> builtins.list[builtins.list[str]]:
        out: builtins.list[list[str]] = []
        default = any(n.name == "bridge" for n, _ in networks)
        for link in links:
            if not isinstance(link, str) or not link:
                raise BadRequest(f"invalid link: {link!r}")
            target, _, alias = link.partition(":")
            target = target.lstrip("/")
            alias = (alias or target).lstrip("/").split("/")[-1]
            other = self.find(target)
            if not default:
                # User-defined network (Docker): a link is only a DNS alias of the target's
                # name for the linking container; not checked, resolved at query time.
                out.append([other.id if other is not None else target, alias])
                continue
            if other is None:
                raise NotFound(f"could not get container for {target}: No such container: {target}")
            if default:
                bridge = self.networks.find("bridge")
                if bridge is None or bridge.id not in other.endpoints:
                    raise BadRequest(
                        f"Cannot link to /{other.name}, as it does not belong to the default "
                        "network"
                    )
            if not other.running:
                raise Conflict(
                    f"Cannot link to a non running container: /{other.name} AS /{c.name}/{alias}"
                )
            out.append([other.id, alias])
        return out

    # ---- start ---------------------------------------------------------------------
    def _on_default_bridge(self, c: Container) -> bool:
        """Legacy links (hosts lines, env vars, start checks) exist only on ``bridge``."""
        bridge = self.networks.find("bridge")
        return bridge is not None and bridge.id in c.endpoints

    async def ensure_dns(self, c: Container) -> None:
        """Give a running container its DNS listener if it has none yet (a daemon started
        before the cluster store answered knew none of its overlay networks)."""
        if self.dns is None or not c.running or not self._uses_embedded_dns(c):
            return
        if c.id not in self.dns.sandboxes():
            await self._dns_add(c)

    def _uses_embedded_dns(self, c: Container) -> bool:
        for ep in c.eps():
            net = self.networks.networks.get(ep.network_id)
            if net is not None and not net.predefined:
                return True
        return False

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
        kind, _target = self._mode(c.host_config)
        if kind == "host":
            return None
        if kind == "container":
            other = self.get(c.network_mode.split(":", 1)[1])
            return str(self.netns.path(self.ns_name(other)))
        return str(self.netns.path(self.ns_name(c)))

    def files_dir(self, c: Container) -> Path:
        return self.root / c.id

    async def start_container(self, ref: str, from_policy: bool = False) -> Container:
        c = self.get(ref)
        async with self.lock(c.id):
            if c.running:
                raise NotModified("container already started")
            if not from_policy:
                await self._cancel_restart(c)
                c.restart_count = 0  # a user's start (or restart) resets it, as Docker's does
            failure: Exception | None = None
            try:
                await self._start(c)
            except Exception as exc:
                failure = exc
        if failure is not None:
            # Docker removes an AutoRemove container whose start failed (`run --rm` waits
            # for the removal); it has no restart policy, so nothing else will.
            if c.host_config.get("AutoRemove"):
                with contextlib.suppress(TetherError):
                    await self.remove(c.id, force=True)
            raise failure
        self.emit("start", c)
        return c

    async def _start(self, c: Container, reuse_sandbox: bool = False) -> None:
        """Make the sandbox (or reuse the one kept across a policy restart) and run."""
        kind, _target = self._mode(c.host_config)
        if kind == "container":
            other = self.get(c.network_mode.split(":", 1)[1])
            if not other.running:
                raise Conflict(f"cannot join network of a non running container: {other.id}")
        for tid, alias in c.links if self._on_default_bridge(c) else []:
            target = self.containers.get(tid)
            if target is None or not target.running:
                name = target.name if target else tid
                raise Conflict(
                    f"Cannot link to a non running container: /{name} AS /{c.name}/{alias}"
                )
        took_ports = self._take_ports(c)
        made_ns = False
        clock = Phases()
        try:
            ns_path: str | None = None
            if kind in ("network", "none") and reuse_sandbox:
                ns_path = self.netns.path(self.ns_name(c))
                made_ns = True
            elif kind in ("network", "none"):
                ns_path = await self.netns.create(self.ns_name(c))
                made_ns = True
                clock.mark("netns")
                await self.netlink.loopback_up(ns_path)
                clock.mark("lo")
                for ep in c.eps():
                    net = self.networks.get(ep.network_id)
                    await self.drivers[net.driver].join(net, ep, ns_path)
                    c.endpoints[net.id] = ep.to_dict()
                clock.mark("join")
            elif kind == "container":
                ns_path = self.sandbox_ns(c)
            self._write_files(c, kind)
            clock.mark("files")
            if (
                self.dns is not None
                and kind == "network"
                and not reuse_sandbox
                and self._uses_embedded_dns(c)
            ):
                await self._dns_add(c)
                clock.mark("dns")
            bundle = self._bundle(c, ns_path, kind)
            log_path = self.files_dir(c) / "container.log"
            c.state.error = ""
            overlay = self.images.overlay_for(c.id)
            # None: a root mounted on the host by an older version; runc needs the host's view
            mounts = (
                PrivateMounts(netns_dir=str(self.netns.root), netns_path=ns_path, overlay=overlay)
                if overlay is not None
                else None
            )
            pid = await self.runtime.create(
                c.id,
                bundle,
                log_path,
                stdin=bool(c.config.get("OpenStdin")),
                tty=c.tty,
                mounts=mounts,
            )
            clock.mark("create")
            for hook in self.attach_hooks.pop(c.id, []):
                try:
                    await hook()
                except Exception as exc:
                    log.warning("attach to %s: %s", c.id[:12], exc)
            await self.runtime.start(c.id)
            clock.mark("start")
        except BaseException as exc:
            await self.runtime.delete(c.id)
            await self._teardown(c, made_ns)
            if took_ports:
                self._drop_ports(c)
            c.state.error = exc.message if isinstance(exc, TetherError) else str(exc)
            if c.state.started_at != ZERO_TIME:
                c.state.status = "exited"
                c.state.exit_code = 128
            await self.save(c)
            raise
        c.state.status = "running"
        c.state.pid = pid
        c.state.started_at = now()
        c.state.finished_at = ZERO_TIME
        c.state.exit_code = 0
        c.manually_stopped = False
        await self.save(c)
        clock.mark("save")
        self._invalidate_dns()
        if c.ports:
            await self._ports_changed(c.id)
            clock.mark("ports")
        log.debug("start %s phases: %s", c.id[:12], clock)

    async def _dns_add(self, c: Container) -> None:
        assert self.dns is not None
        ns = self.netns.path(self.ns_name(c))
        await self.dns.add_sandbox(c.id, ns)

    def _invalidate_dns(self) -> None:
        if self.dns is not None:
            self.dns.invalidate()

    def _write_files(self, c: Container, kind: str) -> None:
        d = self.files_dir(c)
        d.mkdir(parents=True, exist_ok=True)
        hostname = c.config.get("Hostname") or c.id[:12]
        if kind == "host":
            hostname = os.uname().nodename
        if kind == "container":
            other = self.get(c.network_mode.split(":", 1)[1])
            od = self.files_dir(other)
            for fn in ("hosts", "resolv.conf"):
                src = od / fn
                sbx.write_atomic(d / fn, src.read_text() if src.exists() else "")
            sbx.write_atomic(d / "hostname", (other.config.get("Hostname") or other.id[:12]) + "\n")
            return
        sbx.write_atomic(d / "hostname", hostname + "\n")
        link_lines: builtins.list[tuple[str, str]] = []
        eps = c.eps()
        own_ip = eps[0].ip if eps else None
        first_net = eps[0].network_id if eps else None
        for tid, alias in c.links:
            linked = self.containers.get(tid)
            if linked is None:
                continue
            ip = ""
            if first_net and first_net in linked.endpoints:
                ip = linked.endpoints[first_net]["ip"]
            elif linked.endpoints:
                ip = next(iter(linked.endpoints.values()))["ip"]
            if (
                ip
                and self.networks.networks.get(first_net or "") is not None
                and self.networks.networks[first_net or ""].name == "bridge"
            ):
                link_lines.append((ip, f"{alias} {linked.id[:12]} {linked.name}"))
        if kind == "host":
            text = (
                Path("/etc/hosts").read_text() if Path("/etc/hosts").exists() else sbx.HOSTS_HEADER
            )
        else:
            text = sbx.hosts_text(link_lines, own_ip, hostname)
        sbx.write_atomic(d / "hosts", text)
        embedded = kind == "network" and self._uses_embedded_dns(c)
        sbx.write_atomic(d / "resolv.conf", self._resolv_text(c, embedded, kind == "host"))

    def _bundle(self, c: Container, ns_path: str | None, kind: str) -> Path:
        from tether.runtime import oci

        d = self.files_dir(c)
        bundle = d / "bundle"
        bundle.mkdir(parents=True, exist_ok=True)
        env = list(c.config.get("Env") or [])
        hostname = (d / "hostname").read_text().strip()
        if not any(e.startswith("HOSTNAME=") for e in env):
            env.append(f"HOSTNAME={hostname}")
        env.extend(self._link_env(c))
        spec = oci.build_spec(
            rootfs=c.rootfs,
            args=c.config["_argv"],
            env=env,
            cwd=c.config.get("WorkingDir") or "/",
            hostname=hostname,
            terminal=c.tty,
            netns_path=ns_path,
            hosts_path=str(d / "hosts"),
            resolv_conf_path=str(d / "resolv.conf"),
            hostname_path=str(d / "hostname"),
            cgroups_path=f"/tether/{c.id}",
        )
        oci.write_bundle(bundle, spec)
        return bundle

    def _link_env(self, c: Container) -> builtins.list[str]:
        out: builtins.list[str] = []
        if not self._on_default_bridge(c):
            return out  # Docker sets link variables only on the default bridge
        bridge = self.networks.find("bridge")
        for tid, alias in c.links:
            other = self.containers.get(tid)
            if other is None:
                continue
            prefix = alias.upper().replace("-", "_").replace(".", "_")
            out.append(f"{prefix}_NAME=/{c.name}/{alias}")
            bep = other.endpoints.get(bridge.id) if bridge is not None else None
            ip = bep["ip"] if bep else ""
            exposed = portlib.exposed_keys(other.config.get("ExposedPorts"))
            for i, key in enumerate(exposed):
                port, proto = portlib.parse_port_key(key)
                base = f"{prefix}_PORT_{port}_{proto.upper()}"
                if i == 0:
                    out.append(f"{prefix}_PORT={proto}://{ip}:{port}")
                out += [
                    f"{base}={proto}://{ip}:{port}",
                    f"{base}_ADDR={ip}",
                    f"{base}_PORT={port}",
                    f"{base}_PROTO={proto}",
                ]
            for e in other.config.get("Env") or []:
                k, _, v = e.partition("=")
                if k in ("PATH", "HOME", "HOSTNAME") or not k:
                    continue
                out.append(f"{prefix}_ENV_{k}={v}")
        return out

    # ---- host ports: held while the sandbox exists (Docker: from start to stop) ----------
    def _port_requests(self, c: Container) -> builtins.list[portlib.PortRequest]:
        return portlib.parse_bindings(
            c.host_config.get("PortBindings"),
            c.config.get("ExposedPorts"),
            bool(c.host_config.get("PublishAllPorts")),
        )

    def _take_ports(self, c: Container) -> bool:
        """Allocate the container's host ports for a start (True when it took any); a sandbox
        kept across a policy restart keeps its own. Docker's text on a clash."""
        kind, _ = self._mode(c.host_config)
        if c.ports or kind != "network" or not c.endpoints:
            return False
        requests = self._port_requests(c)
        if not requests:
            return False
        try:
            bindings = self.allocator.allocate(requests)
            try:
                portlib.check_host_ips(bindings)
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

    def _drop_ports(self, c: Container) -> None:
        self.allocator.release(portlib.PortBinding(**p) for p in c.ports)
        c.ports = []

    async def _teardown(self, c: Container, made_ns: bool = True) -> None:
        """Remove the sandbox's kernel objects (addresses stay held)."""
        if self.dns is not None:
            try:
                await self.dns.remove_sandbox(c.id)
            except Exception as exc:  # never let cleanup hide the first error
                log.warning("dns cleanup for %s: %s", c.id[:12], exc)
        kind, _ = self._mode(c.host_config)
        for ep in c.eps():
            net = self.networks.networks.get(ep.network_id)
            if net is not None and ep.host_ifname:
                try:
                    await self.drivers[net.driver].leave(net, ep, "")
                except TetherError as exc:
                    log.warning("leave %s: %s", ep.host_ifname, exc.message)
        if kind in ("network", "none") and made_ns:
            self.netns.delete(self.ns_name(c))

    # ---- exits and restarts ------------------------------------------------------------
    async def _exit_loop(self) -> None:
        async for cid, code in self.runtime.watch_exits():
            c = self.containers.get(cid)
            if c is None:
                continue
            try:
                async with self.lock(cid):
                    if c.state.status == "running":
                        await self._handle_exit(c, code)
            except Exception:
                log.exception("handling exit of %s", cid[:12])

    async def _handle_exit(self, c: Container, code: int, from_restart: bool = False) -> None:
        """Record an exit; schedule a restart by policy (Docker's restart manager rules).

        When a restart will follow, the sandbox (namespace, veths, DNS listener) is kept
        for it, and the backoff delay counts from the exit: the runtime clean-up below
        runs inside that delay, not before it.
        """
        exited_at = asyncio.get_running_loop().time()
        ran = 0.0
        try:
            started = dt.datetime.strptime(
                c.state.started_at[:26].rstrip("Z"), "%Y-%m-%dT%H:%M:%S.%f"
            )
            ran = time.time() - started.replace(tzinfo=dt.UTC).timestamp()
        except ValueError:
            pass
        restart = not c.host_config.get("AutoRemove") and self._should_restart(c, code)
        c.state.pid = 0
        c.state.exit_code = code
        c.state.finished_at = now()
        c.state.status = "restarting" if restart else "exited"
        delay = 0.0
        if restart:
            # 100 ms, doubling up to 1 min; back to 100 ms once a run lasted 10 s.
            prev = self._backoff.get(c.id, 0.0)
            delay = 0.1 if ran >= 10 or prev <= 0 else min(prev * 2, 60.0)
            self._backoff[c.id] = delay
            c.restart_count += 1
        # Announce the exit as soon as the state says so: a client that sees
        # "exited" in inspect must also find the die event.
        self.emit("die", c, exitCode=str(code))
        await self.runtime.delete(c.id)
        had_ports = bool(c.ports)
        if restart and not from_restart:
            self._kept.add(c.id)
        else:
            self._kept.discard(c.id)
            await self._teardown(c)
            self._drop_ports(c)
        self._invalidate_dns()
        await self.save(c)
        if had_ports:
            await self._ports_changed(c.id)
        for fut in self._exit_waiters.pop(c.id, []):
            if not fut.done():
                fut.set_result(code)
        if c.host_config.get("AutoRemove"):
            self.spawn(self._auto_remove(c.id))
            return
        if restart:
            self._restart_timers[c.id] = self.spawn(self._restart_later(c.id, delay, exited_at))

    def _should_restart(self, c: Container, code: int) -> bool:
        if c.manually_stopped:
            return False
        pol = c.restart_policy
        if pol["Name"] in ("always", "unless-stopped"):
            return True
        if pol["Name"] == "on-failure" and code != 0:
            limit = int(pol["MaximumRetryCount"])
            return limit == 0 or c.restart_count < limit
        return False

    async def _restart_later(self, cid: str, delay: float, exited_at: float) -> None:
        loop = asyncio.get_running_loop()
        await asyncio.sleep(max(0.0, exited_at + delay - loop.time()))
        c = self.containers.get(cid)
        if self._restart_timers.get(cid) is asyncio.current_task():
            self._restart_timers.pop(cid, None)
        if c is None or c.state.status != "restarting":
            return
        async with self.lock(cid):
            if c.state.status != "restarting":
                return
            try:
                await self._start(c, reuse_sandbox=cid in self._kept)
            except TetherError as exc:
                log.warning("restart of %s failed: %s", cid[:12], exc.message)
                c.state.status = "exited"
                await self.save(c)
                return
            finally:
                self._kept.discard(cid)
        self.emit("start", c)

    async def _cancel_restart(self, c: Container) -> None:
        """Stop a pending policy restart; the kept sandbox goes with it."""
        t = self._restart_timers.pop(c.id, None)
        if t is not None and t is not asyncio.current_task():
            t.cancel()
        if c.state.status == "restarting":
            c.state.status = "exited"
        if c.id in self._kept:
            self._kept.discard(c.id)
            await self._teardown(c)
            self._drop_ports(c)
            self._invalidate_dns()

    def has_sandbox(self, c: Container) -> bool:
        """True while the container's network kernel objects exist."""
        return c.running or c.id in self._kept

    async def _stop_restarting(self, c: Container) -> bool:
        """Cancel a pending policy restart as a user's stop/kill does; True when there was one."""
        async with self.lock(c.id):
            if c.state.status != "restarting":
                return False
            await self._cancel_restart(c)
            c.manually_stopped = True
            await self.save(c)
            return True

    async def _auto_remove(self, cid: str) -> None:
        with contextlib.suppress(NotFound):
            await self.remove(cid, force=True)

    def exit_future(self, c: Container) -> asyncio.Future[int]:
        fut: asyncio.Future[int] = asyncio.get_running_loop().create_future()
        self._exit_waiters.setdefault(c.id, []).append(fut)
        return fut

    # ---- stop / kill / remove -------------------------------------------------------------
    async def stop(self, ref: str, timeout: int | None) -> Container:
        c = self.get(ref)
        if await self._stop_restarting(c):
            self.emit("stop", c)
            return c
        if not c.running:
            raise NotModified("container already stopped")
        c.manually_stopped = True
        fut = self.exit_future(c)
        if timeout is None:
            timeout = int(c.config.get("StopTimeout") or 10)
        sig = self._stop_signal(c)
        # The process may exit (and its exit be handled) at any await below: a kill that
        # finds it stopped or deleted is that exit, and ``fut`` reports it.
        with contextlib.suppress(Conflict, NotFound):
            await self.runtime.kill(c.id, sig)
        try:
            await asyncio.wait_for(asyncio.shield(fut), timeout=max(timeout, 0))
        except TimeoutError:
            with contextlib.suppress(Conflict, NotFound):
                await self.runtime.kill(c.id, _signal.SIGKILL)
            try:
                await asyncio.wait_for(fut, timeout=10)
            except TimeoutError:
                raise Internal(f"container {c.id} did not stop") from None
        self.emit("stop", c)
        return c

    def _stop_signal(self, c: Container) -> int:
        name = c.config.get("StopSignal") or "SIGTERM"
        return parse_signal(name)

    async def kill(self, ref: str, sig: str | None) -> Container:
        c = self.get(ref)
        signum = parse_signal(sig or "SIGKILL")
        if await self._stop_restarting(c):
            self.emit("kill", c, signal=str(signum))
            return c
        if not c.running:
            raise Conflict(f"Container {c.id} is not running")
        c.manually_stopped = True
        await self.save(c)
        fut = self.exit_future(c)
        await self.runtime.kill(c.id, signum)
        if signum == _signal.SIGKILL:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(fut, timeout=10)
        self.emit("kill", c, signal=str(signum))
        return c

    async def restart(self, ref: str, timeout: int | None) -> Container:
        c = self.get(ref)
        if c.running or c.state.status == "restarting":
            await self.stop(c.id, timeout)
        await self.start_container(c.id)
        self.emit("restart", c)
        return c

    async def remove(self, ref: str, force: bool) -> None:
        c = self.get(ref)
        if c.running or c.state.status == "restarting":
            if not force:
                raise Conflict(
                    f"You cannot remove a running container {c.id}. Stop the container before "
                    "attempting removal or force remove"
                )
            await self._stop_restarting(c)
            if c.running:
                c.manually_stopped = True
                fut = self.exit_future(c)
                with contextlib.suppress(Conflict, NotFound):  # exited meanwhile: fut says so
                    await self.runtime.kill(c.id, _signal.SIGKILL)
                try:
                    await asyncio.wait_for(fut, timeout=10)
                except TimeoutError:
                    async with self.lock(c.id):
                        await self._handle_exit(c, 137)
        async with self.lock(c.id):
            if self.containers.get(c.id) is not c:
                return  # removed meanwhile (``--rm`` after the kill above): once only
            await self._destroy(c)
        self.emit("destroy", c)

    async def _destroy(self, c: Container) -> None:
        """Remove a container. Marked ``removing`` first, so reconcile finishes a crashed rm."""
        t = self._restart_timers.pop(c.id, None)
        if t is not None and t is not asyncio.current_task():
            t.cancel()
        self._kept.discard(c.id)
        if c.state.status != "removing":
            c.state.status = "removing"
            await self.save(c)
        await self.runtime.delete(c.id)
        await self._teardown(c)
        try:
            await self.images.unmount_rootfs(c.id)
            await self.images.remove_rootfs(c.id)
        except Exception as exc:
            log.warning("rootfs of %s: %s", c.id[:12], exc)
        ops = [Op("delete", f"containers/{c.id}"), Op("delete", f"cnames/{c.name}")]
        for ep in c.eps():
            if ep.ip:
                ops.append(Op("delete", NetworkController.ipam_key(ep.network_id, ep.ip)))
        await self.store.txn(ops)
        for ep in c.eps():
            self.networks.release(ep.network_id, ep.ip)
            await self._release_global(ep.network_id, ep.ip)
        self._drop_ports(c)
        self.containers.pop(c.id, None)
        self._locks.pop(c.id, None)
        self._backoff.pop(c.id, None)
        import shutil

        shutil.rmtree(self.files_dir(c), ignore_errors=True)
        self._invalidate_dns()
        for fut in self._exit_waiters.pop(c.id, []):
            if not fut.done():
                fut.set_result(c.state.exit_code)

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
        res = await self.store.txn(
            [Op("create", f"cnames/{new}", {"id": c.id}), Op("delete", f"cnames/{c.name}")]
        )
        if not res.ok:
            raise Conflict(f"name {new} is in use")
        c.name = new
        for _nid, ep in c.endpoints.items():
            ep["container_name"] = new
        await self.save(c)
        self._invalidate_dns()
        if self.has_sandbox(c):
            await self._republish(c)
        self.emit("rename", c)

    async def _republish(self, c: Container) -> None:
        """Drivers that tell other hosts about endpoints (overlay) write them again (a
        rename: the other hosts' DNS answers the new name). Best effort: the rename is done."""
        for ep in c.eps():
            net = self.networks.networks.get(ep.network_id)
            hook = getattr(self.drivers.get(net.driver), "endpoint_changed", None) if net else None
            if net is None or hook is None:
                continue
            try:
                await hook(net, ep)
            except TetherError as exc:
                log.warning("republishing %s on %s: %s", c.name, net.name, exc.message)

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

    # ---- connect / disconnect ------------------------------------------------------------
    async def connect(self, net_ref: str, container_ref: str, epcfg: dict[str, Any]) -> None:
        net = self.networks.get(net_ref)
        c = self.get(container_ref)
        kind, _ = self._mode(c.host_config)
        # Docker's checks, in its order (updateNetworkSettings)
        if kind == "container" or (kind == "host" and net.driver != "host"):
            raise Forbidden(
                "container sharing network namespace with another container or host cannot "
                "be connected to any other network"
            )
        if net.driver == "host":
            raise Forbidden(
                "container cannot be disconnected from host network or connected to host network"
            )
        if kind == "none" or net.driver == "null":
            raise Forbidden(
                "container cannot be connected to multiple networks with one of the networks in "
                "private (none) mode"
            )
        async with self.lock(c.id):
            if net.id in c.endpoints:
                raise Forbidden(f"endpoint with name {c.name} already exists in network {net.name}")
            # Under the network lock until the endpoint is committed (see create): a
            # concurrent `network rm` either went first (the network is gone: 404) or sees it.
            async with self.networks.lock:
                net = self.networks.get(net.id)
                ifname = f"eth{self._next_if(c)}"
                ep = self._new_endpoint(c, net, epcfg, ifname)
                await self._hold_global(net, ep, c.id)
                # The address and the endpoint are written together, before any kernel
                # object: a crash leaves either nothing or an endpoint reconcile can wire again.
                c.endpoints[net.id] = ep.to_dict()
                res = await self.store.txn(
                    [
                        Op(
                            "create", NetworkController.ipam_key(net.id, ep.ip), {"container": c.id}
                        ),
                        Op("put", f"containers/{c.id}", c.to_dict()),
                    ]
                )
                if not res.ok:
                    c.endpoints.pop(net.id, None)
                    self.networks.release(net.id, ep.ip)
                    await self._release_global(net.id, ep.ip)
                    raise Conflict("Address already in use")
            try:
                if self.has_sandbox(c):
                    ns = self.netns.path(self.ns_name(c))
                    await self.drivers[net.driver].join(net, ep, ns)
                    c.endpoints[net.id] = ep.to_dict()
                    if self.dns is not None and not net.predefined:
                        # one listener per sandbox, whatever the number of networks
                        if c.id not in self.dns.sandboxes():
                            await self.dns.add_sandbox(c.id, ns)
                        self._rewrite_resolv(c)
                await self.save(c)
            except BaseException:
                c.endpoints.pop(net.id, None)
                live_ns = self.netns.path(self.ns_name(c)) if self.has_sandbox(c) else ""
                await self.drivers[net.driver].leave(net, ep, live_ns)
                await self.store.txn(
                    [
                        Op("put", f"containers/{c.id}", c.to_dict()),
                        Op("delete", NetworkController.ipam_key(net.id, ep.ip)),
                    ]
                )
                self.networks.release(net.id, ep.ip)
                await self._release_global(net.id, ep.ip)
                raise
        self._invalidate_dns()
        if self.events is not None:
            self.events.emit(
                "network",
                "connect",
                net.id,
                {"container": c.id, "name": net.name, "type": net.driver},
            )

    async def _move_default_route(self, c: Container, ns: str) -> None:
        """After an endpoint with a gateway left a live sandbox, the default route goes through
        the first remaining endpoint that has one (the kernel dropped it with the interface;
        Docker's updateGateway). Best effort: the disconnect itself has happened."""
        remaining = sorted(
            (e for e in c.eps() if e.gateway and e.ifname[3:].isdigit()),
            key=lambda e: int(e.ifname[3:]),
        )
        if not remaining:
            return
        try:
            await self.netlink.default_route(ns, remaining[0].gateway, remaining[0].ifname)
        except TetherError as exc:
            log.warning("default route of %s: %s", c.id[:12], exc.message)

    def _rewrite_resolv(self, c: Container) -> None:
        d = self.files_dir(c)
        sbx.write_atomic(d / "resolv.conf", self._resolv_text(c, True, False))

    def _resolv_text(self, c: Container, embedded: bool, host_mode: bool) -> str:
        hc = c.host_config
        return sbx.resolv_text(
            embedded,
            hc.get("Dns") or self.dns_servers,
            sbx.host_resolv(),
            host_mode,
            dns_search=hc.get("DnsSearch") or (),
            dns_options=hc.get("DnsOptions") or (),
        )

    # ---- global networks (cluster store): small hooks, no-ops on one host -------------
    def _extra_ifs(self, net: Network) -> int:
        """Interfaces a driver adds after an endpoint's own (overlay: the gateway eth<n+1>)."""
        return 1 if net.driver == "overlay" and not net.internal else 0

    async def _hold_global(self, net: Network, ep: Endpoint, owner: str) -> None:
        ip = await self.networks.hold_global(net, ep.ip, ep.static_ip, owner)
        if ip != ep.ip:
            ep.ip, ep.mac = ip, mac_for(ip)

    async def _release_global(self, net_id: str, ip: str) -> None:
        try:
            await self.networks.release_global(net_id, ip)
        except TetherError as exc:
            log.warning("global address %s: %s", ip, exc.message)

    def _next_if(self, c: Container) -> int:
        used = {Endpoint.from_dict(e).ifname for e in c.endpoints.values()}
        for e in c.endpoints.values():
            net = self.networks.networks.get(e.get("network_id", ""))
            name = str(e.get("ifname", ""))
            if net is not None and self._extra_ifs(net) and name[3:].isdigit():
                used.add(f"eth{int(name[3:]) + 1}")
        i = 0
        while f"eth{i}" in used:
            i += 1
        return i

    async def disconnect(self, net_ref: str, container_ref: str, force: bool) -> None:
        net = self.networks.get(net_ref)
        c = self.find(container_ref)
        if c is None:
            if force:
                return
            raise NotFound(f"No such container: {container_ref}")
        if net.driver == "host":
            raise Forbidden(
                "container cannot be disconnected from host network or connected to host network"
            )
        async with self.lock(c.id):
            raw = c.endpoints.get(net.id)
            if raw is None:
                raise Forbidden(f"container {c.id} is not connected to network {net.name}")
            ep = Endpoint.from_dict(raw)
            live = self.has_sandbox(c)
            ns = self.netns.path(self.ns_name(c)) if live else ""
            if live:
                await self.drivers[net.driver].leave(net, ep, ns)
            c.endpoints.pop(net.id)
            if live and ep.gateway:
                await self._move_default_route(c, ns)
            await self.store.txn(
                [
                    Op("put", f"containers/{c.id}", c.to_dict()),
                    Op("delete", NetworkController.ipam_key(net.id, ep.ip)),
                ]
            )
            self.networks.release(net.id, ep.ip)
            await self._release_global(net.id, ep.ip)
        self._invalidate_dns()
        if c.ports:
            await self._ports_changed(c.id)
        if self.events is not None:
            self.events.emit(
                "network",
                "disconnect",
                net.id,
                {"container": c.id, "name": net.name, "type": net.driver},
            )


def parse_signal(name: str | int) -> int:
    if isinstance(name, int):
        return name
    s = str(name).strip().upper()
    if s.isdigit():
        return int(s)
    if not s.startswith("SIG"):
        s = "SIG" + s
    try:
        return int(getattr(_signal, s))
    except AttributeError:
        raise BadRequest(f"Invalid signal: {name}") from None


def command_text(c: Container) -> str:
    return shlex.join(c.config.get("_argv") or [])
