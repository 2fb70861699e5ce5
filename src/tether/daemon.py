"""The composition root: reads config, builds store, drivers, engine and API.

``run_daemon`` is what ``tether daemon`` calls. It runs one asyncio loop
(uvloop), serves the Docker Engine API on a unix socket (mode 0660, root
group), reconciles the kernel with the store at start, and closes every part
it made on SIGTERM/SIGINT.
"""

from __future__ import annotations

import asyncio
import logging
import os
import signal
from pathlib import Path
from typing import Any

from tether.config import DaemonConfig, load_config

log = logging.getLogger("tether.daemon")


async def build_engine(cfg: DaemonConfig) -> tuple[Any, list[Any]]:
    """Build every part; returns the engine and the parts to close, in order."""
    from tether.drivers.bridge import BridgeDriver, HostDriver, NullDriver
    from tether.drivers.macvlan import IpvlanDriver, MacvlanDriver
    from tether.engine.containers import ContainerController
    from tether.engine.dns import DnsServer
    from tether.engine.engine import Engine
    from tether.engine.firewall import NftFirewall
    from tether.engine.ipam import PoolPicker
    from tether.engine.networks import NetworkController
    from tether.engine.resolver import EngineResolver
    from tether.linux.netlink import ThreadedNetlink
    from tether.linux.netns import NetnsDir
    from tether.linux.sysctl import ProcSysctl
    from tether.runtime.images import ImageStore
    from tether.runtime.monitor import Runtime
    from tether.store.sqlite import SqliteStore

    cfg.data_root.mkdir(parents=True, exist_ok=True)
    cfg.exec_root.mkdir(parents=True, exist_ok=True)
    store = SqliteStore(cfg.data_root / "tether.db")
    netlink = ThreadedNetlink()
    drivers: dict[str, Any] = {
        "bridge": BridgeDriver(netlink, ProcSysctl()),
        "host": HostDriver(),
        "null": NullDriver(),
        "macvlan": MacvlanDriver(netlink),
        "ipvlan": IpvlanDriver(netlink),
    }
    overlay = None
    if cfg.cluster_store:
        from tether.drivers.overlay import NetnsSpaces, OverlayDriver
        from tether.engine.cluster import advertise_address
        from tether.linux.netns import NetnsDir

        overlay = OverlayDriver(netlink, advertise_address(cfg.cluster_advertise))
        overlay.spaces = NetnsSpaces(NetnsDir(cfg.exec_root / "overlay"))
        drivers["overlay"] = overlay
    networks = NetworkController(
        store, drivers, PoolPicker(cfg.default_pools), host_routes=netlink.host_routes
    )
    images = ImageStore(cfg.data_root / "images")
    runtime = Runtime(cfg.exec_root / "runtime")
    engine = Engine(cfg, networks, NftFirewall(), images=images)
    engine.runtime = runtime
    containers = ContainerController(
        store=store,
        networks=networks,
        drivers=drivers,
        netns=NetnsDir(cfg.exec_root / "netns"),
        netlink=netlink,
        runtime=runtime,
        images=images,
        data_root=cfg.data_root,
        dns=None,
        dns_servers=cfg.dns,
        on_ports_changed=engine.sync_firewall,
        events=engine.events,
    )
    dns = DnsServer(EngineResolver(containers, networks, cfg.dns))
    containers.dns = dns
    engine.containers = containers
    parts: list[Any] = [dns, runtime, netlink, store]
    if overlay is not None and cfg.cluster_store:
        from tether.engine.cluster import GatewayBridge, build_cluster

        gateway = GatewayBridge(networks, netlink, store, on_change=engine.sync_firewall)
        cluster = build_cluster(cfg.cluster_store, overlay, networks, gateway, dns.invalidate)
        # started by NetworkController.load, adopted in serve()
        engine.cluster = cluster  # type: ignore[attr-defined]
        parts.insert(0, cluster)
    return engine, parts


def _enable_ip_forward() -> None:
    from tether.linux.sysctl import ProcSysctl, enable_ip_forward

    enable_ip_forward(ProcSysctl())


async def serve(cfg: DaemonConfig) -> None:
    from aiohttp import web

    from tether.api.app import make_app

    _enable_ip_forward()
    engine, parts = await build_engine(cfg)
    await engine.start()
    if getattr(engine, "cluster", None) is not None:
        await engine.cluster.adopt_local(engine.containers)
    app = make_app(engine)
    runner = web.AppRunner(app, handle_signals=False, access_log=None)
    await runner.setup()
    path = cfg.socket_path
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    if os.path.exists(path):
        os.unlink(path)
    # Docker listens with a backlog of 4096: 300 parallel `docker ps` all connect (128 refused ~130)
    site = web.UnixSite(runner, path, backlog=4096)
    await site.start()
    # Only root may drive the daemon: owner root, group root, 0660 (Docker uses a "docker"
    # group). Born 0755 under the usual umask, the socket was never writable (connectable)
    # by others, so there is no window before the chmod.
    os.chown(path, 0, 0)
    os.chmod(path, 0o660)
    log.info("API listening on %s", path)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    import threading

    def wait_signal() -> None:
        info = signal.sigwaitinfo({signal.SIGTERM, signal.SIGINT})
        log.info("received %s from pid %d", signal.Signals(info.si_signo).name, info.si_pid)
        loop.call_soon_threadsafe(stop.set)

    threading.Thread(target=wait_signal, name="signals", daemon=True).start()
    try:
        await stop.wait()
    finally:
        log.info("shutting down")
        await runner.cleanup()
        await engine.close()
        for part in parts:
            result = part.close()
            if asyncio.iscoroutine(result):
                await result
        from tether.linux import nsthread

        nsthread.shutdown()


def run_daemon(
    host: str | None,
    data_root: str | None,
    exec_root: str | None,
    config_file: str | None,
    cluster_store: str | None,
    cluster_advertise: str | None,
    debug: bool,
) -> None:
    os.environ.setdefault("GRPC_ENABLE_FORK_SUPPORT", "false")
    cfg = load_config(
        host, data_root, exec_root, config_file, cluster_store, cluster_advertise, debug
    )
    logging.basicConfig(
        level=logging.DEBUG if cfg.debug else logging.INFO,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )
    try:
        import uvloop

        uvloop.install()
    except ImportError:  # pragma: no cover
        pass
    # Signals are taken by one thread with sigwaitinfo (it logs who sent them);
    # block them before any thread starts so none of them receives one.
    signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGTERM, signal.SIGINT})
    asyncio.run(serve(cfg))
