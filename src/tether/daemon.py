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

from tether.config import DaemonConfig, load_config

log = logging.getLogger("tether.daemon")


async def build_engine(cfg: DaemonConfig):  # type: ignore[no-untyped-def]
    from tether.drivers.bridge import BridgeDriver, HostDriver, NullDriver
    from tether.engine.engine import Engine
    from tether.engine.ipam import PoolPicker
    from tether.engine.networks import NetworkController
    from tether.linux.netlink import ThreadedNetlink
    from tether.engine.firewall import NftFirewall
    from tether.store.sqlite import SqliteStore

    cfg.data_root.mkdir(parents=True, exist_ok=True)
    cfg.exec_root.mkdir(parents=True, exist_ok=True)
    store = SqliteStore(cfg.data_root / "tether.db")
    netlink = ThreadedNetlink()
    drivers = {
        "bridge": BridgeDriver(netlink),
        "host": HostDriver(),
        "null": NullDriver(),
    }
    networks = NetworkController(
        store, drivers, PoolPicker(cfg.default_pools), host_routes=netlink.host_routes  # type: ignore[arg-type]
    )
    firewall = NftFirewall()
    engine = Engine(cfg, networks, firewall)
    return engine, store, netlink


def _enable_ip_forward() -> None:
    with open("/proc/sys/net/ipv4/ip_forward", "w") as f:
        f.write("1")


async def serve(cfg: DaemonConfig) -> None:
    from aiohttp import web

    from tether.api.app import make_app
    _enable_ip_forward()
    engine, store, netlink = await build_engine(cfg)
    await engine.start()
    app = make_app(engine)
    runner = web.AppRunner(app, handle_signals=False, access_log=None)
    await runner.setup()
    path = cfg.socket_path
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    if os.path.exists(path):
        os.unlink(path)
    site = web.UnixSite(runner, path)
    await site.start()
    os.chmod(path, 0o660)
    log.info("API listening on %s", path)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    try:
        await stop.wait()
    finally:
        log.info("shutting down")
        await runner.cleanup()
        await engine.close()
        await netlink.close()
        await store.close()


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
    asyncio.run(serve(cfg))
