"""The composition root: reads config, builds store, drivers, engine and API.

``run_daemon`` is what ``tether daemon`` calls. It runs one asyncio loop
(plain asyncio: ``TETHER_LOOP=uvloop`` selects uvloop, for measurements), serves
the Docker Engine API (:mod:`tether.api.httpd`) on a unix socket (mode 0660, root
group), reconciles the kernel with the store at start, and closes every part
it made on SIGTERM/SIGINT.
"""

from __future__ import annotations

import asyncio
import logging
import os
import signal
import time
from collections.abc import Awaitable, Callable, Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from tether.config import DaemonConfig, load_config

if TYPE_CHECKING:
    from tether.api.metrics import Metrics
    from tether.contracts.driver import Driver
    from tether.drivers.overlay import OverlayDriver
    from tether.engine.cluster import ClusterView
    from tether.engine.dns import DnsServer
    from tether.engine.engine import Engine
    from tether.engine.hooks import AsyncHook, Hook
    from tether.engine.ipam import PoolPicker
    from tether.engine.nettable import NetworkTable
    from tether.engine.networks import NetworkController
    from tether.linux.netlink import Netlink, ThreadedNetlink
    from tether.runtime.monitor import Runtime
    from tether.store.base import Store
    from tether.store.etcd import EtcdStore

log = logging.getLogger("tether.daemon")


async def build_engine(cfg: DaemonConfig) -> tuple[Engine, list[Any], ClusterView | None]:
    """Build every part; returns the engine, the parts to close (in order) and the cluster
    view (None without ``--cluster-store``)."""
    from tether.engine.hooks import AsyncHook, Hook
    from tether.linux.netlink import ThreadedNetlink
    from tether.store.sqlite import SqliteStore

    make_data_root(cfg.data_root)
    cfg.exec_root.mkdir(parents=True, exist_ok=True)
    store = SqliteStore(cfg.data_root / "tether.db")
    netlink = ThreadedNetlink()
    records_changed = Hook()  # cluster records changed: the DNS answer cache (below)
    gateway_made = AsyncHook()  # the gateway bridge network was made: the firewall (below)
    networks, cluster = _build_networks(cfg, store, netlink, records_changed, gateway_made)
    engine, dns, runtime = _build_containers(cfg, store, netlink, networks, cluster)
    records_changed.connect(dns.invalidate)
    gateway_made.connect(engine.fw.sync)
    parts: list[Any] = ([cluster] if cluster is not None else []) + [
        dns,
        runtime,
        networks.drivers["bridge"],  # its bridge deletions under way, before netlink closes
        netlink,
        store,
        engine.events,
    ]
    return engine, parts, cluster


def make_data_root(root: Path) -> None:
    """The data root and its containers folder as Docker makes them: 0710 (other users may
    not list or read them; the store file is 0600, images 0710/0700, volumes 0701)."""
    for path in (root, root / "containers"):
        path.mkdir(parents=True, exist_ok=True)
        os.chmod(path, 0o710)


def _build_networks(
    cfg: DaemonConfig,
    store: Store,
    netlink: ThreadedNetlink,
    records_changed: Hook,
    gateway_made: AsyncHook,
) -> tuple[NetworkController, ClusterView | None]:
    """The drivers, the network table and controller, and the cluster view with
    ``--cluster-store`` (started by ``NetworkController.load``, adopted in ``serve``)."""
    from tether.drivers.bridge import BridgeDriver, HostDriver, NullDriver
    from tether.drivers.macvlan import IpvlanDriver, MacvlanDriver
    from tether.engine.ipam import PoolPicker
    from tether.engine.nettable import NetworkTable
    from tether.engine.networks import NetworkController
    from tether.linux.sysctl import ProcSysctl

    bridge = BridgeDriver(netlink, ProcSysctl())
    drivers: dict[str, Driver] = {
        "bridge": bridge,
        "host": HostDriver(),
        "null": NullDriver(),
        "macvlan": MacvlanDriver(netlink),
        "ipvlan": IpvlanDriver(netlink),
    }
    picker = PoolPicker(cfg.default_pools)
    table = NetworkTable(store)  # shared by the controller, the cluster view, the gateway
    cluster: ClusterView | None = None
    if cfg.cluster_store:
        cluster, drivers["overlay"] = _build_cluster(
            cfg, store, netlink, bridge, table, picker, records_changed, gateway_made
        )
    networks = NetworkController(
        store, drivers, picker, host_routes=netlink.host_routes, table=table, cluster=cluster
    )
    return networks, cluster


def _build_containers(
    cfg: DaemonConfig,
    store: Store,
    netlink: Netlink,
    networks: NetworkController,
    cluster: ClusterView | None,
) -> tuple[Engine, DnsServer, Runtime]:
    """The container side and the facade. The container table is built first: the DNS
    resolver and the firewall sync read it, the controller writes it."""
    from tether.engine.containers import ContainerController
    from tether.engine.dns import DnsServer
    from tether.engine.engine import Engine
    from tether.engine.events import Events
    from tether.engine.firewall import NftFirewall
    from tether.engine.fwsync import FirewallSync
    from tether.engine.resolver import EngineResolver
    from tether.engine.table import ContainerTable
    from tether.linux.netns import NetnsDir
    from tether.linux.volmount import HostMounts
    from tether.runtime.bundle import OciBundles
    from tether.runtime.images import ImageStore
    from tether.runtime.monitor import Runtime

    images = ImageStore(cfg.data_root / "images")
    runtime = Runtime(cfg.exec_root / "runtime")
    ctable = ContainerTable(networks)
    fw = FirewallSync(cfg, networks, NftFirewall(), ctable)
    events = Events(journal=cfg.data_root / "events.jsonl")  # survives a restart
    dns = DnsServer(EngineResolver(ctable, networks, cfg.dns, remote=cluster))
    containers = ContainerController(
        store=store,
        networks=networks,
        table=ctable,
        drivers=networks.drivers,
        netns=NetnsDir(cfg.exec_root / "netns"),
        netlink=netlink,
        runtime=runtime,
        images=images,
        bundles=OciBundles(),
        data_root=cfg.data_root,
        dns=dns,
        dns_servers=cfg.dns,
        ports_changed=fw,
        events=events,
        volume_mounts=HostMounts(),
        host_gateway_ip=cfg.host_gateway_ip,
    )
    return Engine(cfg, networks, fw, containers, images, runtime, events), dns, runtime


def _build_cluster(
    cfg: DaemonConfig,
    store: Store,
    netlink: Netlink,
    bridge: Driver,
    table: NetworkTable,
    picker: PoolPicker,
    records_changed: Hook,
    gateway_made: AsyncHook,
) -> tuple[ClusterView, OverlayDriver]:
    """The cluster view and the overlay driver, each given what it uses (one way: the
    endpoint book and the gateway first, then the driver, then the view)."""
    from tether.drivers.overlay import NetnsSpaces, OverlayDriver
    from tether.engine.cluster import ClusterView
    from tether.engine.cluster_endpoints import EndpointBook, Lease
    from tether.engine.clusterstats import ClusterStats, MeteredStore
    from tether.engine.gateway import GatewayBridge
    from tether.linux.netns import NetnsDir
    from tether.store.lease import LeaseKeeper

    assert cfg.cluster_store
    vtep = advertise_address(cfg.cluster_advertise)
    etcd = open_cluster_store(cfg.cluster_store, cfg.cluster_store_opts)
    stats = ClusterStats()
    etcd.observer = stats.store_event  # requests, timeouts, queueing (docs/cluster-overload.md)
    metered = MeteredStore(etcd, stats)
    book = EndpointBook(metered, host=vtep, vtep=vtep)
    gateway = GatewayBridge(table, bridge, picker, netlink, store, on_change=gateway_made)
    overlay = OverlayDriver(
        netlink,
        vtep,
        peers=book.peers,
        publish=book.publish,
        gateway=gateway,
        spaces=NetnsSpaces(NetnsDir(cfg.exec_root / "overlay")),
    )

    def lease(ttl: int, on_regrant: Callable[[int], Awaitable[None]]) -> Lease:
        # the keep-alives are also the store's "etcd is back" probe (``wait_answered``)
        return LeaseKeeper(
            etcd, ttl, on_regrant=on_regrant, on_renewal=stats.lease_renewal,
            on_backoff=stats.backoff,
        )  # fmt: skip

    view = ClusterView(metered, book, overlay, table, lease, listeners=[records_changed])
    view.stats = stats
    return view, overlay


def open_cluster_store(url: str, opts: Mapping[str, str] | None = None) -> EtcdStore:
    """``etcd://HOST:PORT[,HOST:PORT]`` and the ``kv.*`` options -> an ``EtcdStore`` (it
    connects lazily; bad options or unreadable certificate files are a ``BadRequest`` now)."""
    from tether.errors import BadRequest
    from tether.store.etcd import EtcdStore, parse_endpoint
    from tether.store.etcdconn import EtcdSecurity

    if not url.startswith("etcd://") and "://" in url:
        raise BadRequest(f"unsupported cluster store {url}: only etcd:// is supported")
    text = url.split("://", 1)[1] if "://" in url else url
    if "@" in text:
        raise BadRequest(
            f"cluster store {url.split('@')[-1]}: credentials do not go in the URL "
            "(they would show in `ps` and `docker info`): use cluster-store-opts "
            "kv.username and kv.password"
        )
    endpoints = [e for e in text.split(",") if e]
    try:
        for e in endpoints or [""]:
            parse_endpoint(e)
    except ValueError as exc:
        raise BadRequest(f"cluster store {url}: {exc}") from None
    security = EtcdSecurity.from_options(opts or {})
    log.info("cluster store %s (%s)", url, security.describe())
    return EtcdStore(endpoints, security=security)


def advertise_address(value: str | None) -> str:
    """``--cluster-advertise IP|IFACE[:PORT]`` -> the IPv4 address used as VTEP and host id."""
    import ipaddress
    import subprocess

    from tether.errors import BadRequest

    if not value:
        raise BadRequest("--cluster-store needs --cluster-advertise IP|IFACE")
    head = value.rsplit(":", 1)[0] if value.count(":") == 1 else value
    try:
        return str(ipaddress.IPv4Address(head))
    except ValueError:
        pass
    out = subprocess.run(
        ["ip", "-4", "-o", "addr", "show", "dev", head], capture_output=True, text=True
    ).stdout.split()
    if "inet" in out:
        return out[out.index("inet") + 1].split("/")[0]
    raise BadRequest(f"--cluster-advertise {value}: no IPv4 address on interface {head}")


def _enable_ip_forward() -> None:
    from tether.linux.sysctl import ProcSysctl, enable_ip_forward

    enable_ip_forward(ProcSysctl())


async def _serve_web(cfg: DaemonConfig, engine: Engine) -> tuple[Metrics | None, Any]:
    """``--web-addr``: the read-only web page and ``/metrics`` on HOST:PORT (else nothing)."""
    where = cfg.web_endpoint
    if where is None:  # prometheus_client and the page's code stay unloaded
        return None, None
    from tether.api.httpd import Server
    from tether.api.metrics import Metrics
    from tether.api.web import make_web_app

    metrics = Metrics(engine)
    server = Server(make_web_app(engine, metrics))
    await server.start_tcp(where[0], where[1])
    log.info("web page and metrics on http://%s:%d/", *where)
    return metrics, server


# SIGTERM stops the daemon within SHUTDOWN_DEADLINE seconds in every state (containers keep
# running: they live in conmon's sessions). In-flight API requests get HTTP_GRACE seconds to
# finish before they are cancelled (a `docker wait` left by `docker run -d` never finishes on
# its own: a 60 s grace, aiohttp's default, made every such daemon take 60 s to stop); each
# closing step is bounded by STEP_BOUND; the backstop exits the process if anything is stuck.
SHUTDOWN_DEADLINE = 9.0
HTTP_GRACE = 1.5
STEP_BOUND = 2.0


async def serve(cfg: DaemonConfig) -> None:
    _enable_ip_forward()
    stop = asyncio.Event()
    _watch_signals(stop, asyncio.get_running_loop())
    engine, parts, cluster = await build_engine(cfg)
    rss_mark("engine built")
    servers: list[Any] = []
    # Start-up may wait on a store that does not answer: a signal stops it too.
    startup = asyncio.create_task(_start_serving(cfg, engine, cluster, servers), name="startup")
    stopping = asyncio.create_task(stop.wait(), name="stop-wait")
    try:
        await asyncio.wait({startup, stopping}, return_when=asyncio.FIRST_COMPLETED)
        if startup.done():
            startup.result()  # a start-up failure ends the daemon
            await stopping
    finally:
        log.info("shutting down")
        for task in (startup, stopping):
            task.cancel()
        await asyncio.gather(startup, stopping, return_exceptions=True)
        await _shut_down(engine, parts, servers)


async def _start_serving(
    cfg: DaemonConfig, engine: Engine, cluster: ClusterView | None, servers: list[Any]
) -> None:
    from tether.api.app import make_app
    from tether.api.httpd import Server

    await engine.start()
    rss_mark("engine started")
    if cluster is not None:
        await cluster.adopt_local(engine.ctl())
    metrics, web_server = await _serve_web(cfg, engine)
    if web_server is not None:
        servers.append(web_server)
    server = Server(make_app(engine, metrics=metrics))
    servers.append(server)
    path = cfg.socket_path
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    if os.path.exists(path):
        os.unlink(path)
    # Docker listens with a backlog of 4096: 300 parallel `docker ps` all connect (128 refused ~130)
    await server.start_unix(path, backlog=4096)
    # Only root may drive the daemon: owner root, group root, 0660 (Docker uses a "docker"
    # group). Born 0755 under the usual umask, the socket was never writable (connectable)
    # by others, so there is no window before the chmod.
    os.chown(path, 0, 0)
    os.chmod(path, 0o660)
    log.info("API listening on %s", path)
    rss_mark("serving")


async def _shut_down(engine: Engine, parts: list[Any], servers: list[Any]) -> None:
    """Close the API, the engine and every part, each step bounded (containers keep running)."""
    closing = asyncio.gather(*(s.close(HTTP_GRACE) for s in servers))
    await _bounded(closing, 2 * HTTP_GRACE + 0.5, "the API")
    await _bounded(engine.close(), STEP_BOUND, "the engine")
    for part in parts:
        result = part.close()
        if asyncio.iscoroutine(result):
            await _bounded(result, STEP_BOUND, type(part).__name__)
    from tether.linux import nsthread

    nsthread.shutdown()


async def _bounded(aw: Awaitable[Any], seconds: float, what: str) -> None:
    try:
        await asyncio.wait_for(aw, seconds)
    except TimeoutError:
        log.warning("closing %s took over %.1fs: left behind", what, seconds)
    except Exception:
        log.exception("closing %s failed", what)


def _watch_signals(stop: asyncio.Event, loop: asyncio.AbstractEventLoop) -> None:
    """One thread takes SIGTERM/SIGINT with sigwaitinfo (it logs who sent them), sets
    ``stop``, and exits the process if the shutdown is not over ``SHUTDOWN_DEADLINE``
    seconds later (a step stuck in a thread or in C code cannot hold the daemon)."""
    import threading

    def wait_signal() -> None:
        info = signal.sigwaitinfo({signal.SIGTERM, signal.SIGINT})
        log.info("received %s from pid %d", signal.Signals(info.si_signo).name, info.si_pid)
        loop.call_soon_threadsafe(stop.set)
        time.sleep(SHUTDOWN_DEADLINE)
        log.error("shutdown not finished after %.0fs: exiting now", SHUTDOWN_DEADLINE)
        logging.shutdown()
        os._exit(1)

    threading.Thread(target=wait_signal, name="signals", daemon=True).start()


M_ARENA_MAX = -8  # glibc's mallopt parameter
MALLOC_ARENAS = 2


def _fewer_malloc_arenas() -> None:
    """At most ``MALLOC_ARENAS`` glibc malloc arenas (``MALLOC_ARENA_MAX`` unless the
    environment sets it). glibc gives each thread that allocates an arena of its own; the
    daemon's threads (netlink, namespaces, subprocess pool, executor) run Python under the
    GIL, so they gain nothing from them, and each arena keeps pages: 2 arenas took the idle
    daemon from 38.5 to 36.9 MiB (issue 20, bench/FINDINGS.md). Before any thread starts."""
    if os.environ.get("MALLOC_ARENA_MAX"):
        return
    import contextlib
    import ctypes

    with contextlib.suppress(OSError, AttributeError):  # AttributeError: not glibc
        ctypes.CDLL(None).mallopt(M_ARENA_MAX, MALLOC_ARENAS)


def rss_mark(phase: str) -> None:
    """``TETHER_RSS_PHASES=1``: log the daemon's resident memory after a phase of start-up."""
    if not os.environ.get("TETHER_RSS_PHASES"):
        return
    with open("/proc/self/status", encoding="ascii") as f:
        rss = next((line.split()[1] for line in f if line.startswith("VmRSS:")), "?")
    log.info("rss after %s: %s kB", phase, rss)


def run_daemon(
    host: str | None,
    data_root: str | None,
    exec_root: str | None,
    config_file: str | None,
    cluster_store: str | None,
    cluster_advertise: str | None,
    debug: bool,
    web_addr: str | None = None,
    cluster_store_opts: Sequence[str] = (),
    host_gateway_ip: str | None = None,
) -> None:
    os.environ.setdefault("GRPC_ENABLE_FORK_SUPPORT", "false")
    cfg = load_config(
        host, data_root, exec_root, config_file, cluster_store, cluster_advertise, debug,
        web_addr=web_addr, cluster_store_opts=cluster_store_opts,
        host_gateway_ip=host_gateway_ip,
    )  # fmt: skip
    logging.basicConfig(
        level=logging.DEBUG if cfg.debug else logging.INFO,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )
    rss_mark("config read")
    # Plain asyncio (issue 20): uvloop and the ssl it needs were ~5.5 MB of resident memory
    # for ~7 µs less per API request; the DNS server reads in batches (engine/dns_udp.py).
    if os.environ.get("TETHER_LOOP") == "uvloop":  # measurement only (a dev dependency)
        import uvloop

        uvloop.install()
    _fewer_malloc_arenas()
    # Signals are taken by one thread with sigwaitinfo (it logs who sent them);
    # block them before any thread starts so none of them receives one.
    signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGTERM, signal.SIGINT})
    rss_mark("loop installed")
    from tether import memdebug

    memdebug.install()  # debug only: TETHER_TRACEMALLOC=FILE
    asyncio.run(serve(cfg))
