"""The ``tether daemon`` verb: the click command that starts the daemon.

It lives outside :mod:`tether.cli` on purpose: the CLI is a client of the daemon's API
and imports nothing of the daemon (an import-linter contract in ``pyproject.toml`` holds
it to that). The verbs table in :mod:`tether.cli.commands` names this command by its
dotted path, as it names ``tether lab``, and the click group imports it only when the
verb is used; :mod:`tether.daemon` itself is imported only when the command runs.
"""

from __future__ import annotations

import sys

import click

CONTEXT = {"help_option_names": ["--help"]}


@click.command("daemon", context_settings=CONTEXT)
@click.option(
    "-H", "--host", default="unix:///run/tether/tether.sock", help="Daemon socket to listen on"
)
@click.option("--data-root", default="/var/lib/tether", help="Root directory of persistent state")
@click.option("--exec-root", default="/run/tether", help="Root directory for execution state files")
@click.option("--config-file", default="/etc/tether/daemon.json", help="Daemon configuration file")
@click.option("--cluster-store", default=None, help="URL of the distributed storage backend")
@click.option("--cluster-advertise", default=None, help="Address or interface name to advertise")
@click.option(
    "--cluster-store-opt", "cluster_store_opts", multiple=True, metavar="KEY=VALUE",
    help="Cluster store option: kv.cacertfile, kv.certfile, kv.keyfile, kv.username, kv.password",
)  # fmt: skip
@click.option("-D", "--debug", is_flag=True, help="Enable debug mode")
@click.option(
    "--web-addr", "--metrics-addr", "web_addr", default=None,
    help="HOST:PORT to serve Prometheus /metrics on (off by default)",
)  # fmt: skip
@click.option(
    "--host-gateway-ip", default=None,
    help="IP address that the special 'host-gateway' string in --add-host resolves to. "
    "Defaults to the IP address of the default bridge",
)  # fmt: skip
def daemon(
    host: str,
    data_root: str,
    exec_root: str,
    config_file: str | None,
    cluster_store: str | None,
    cluster_advertise: str | None,
    debug: bool,
    web_addr: str | None,
    cluster_store_opts: tuple[str, ...],
    host_gateway_ip: str | None,
) -> None:
    """Run the tether daemon"""
    from tether.daemon import run_daemon

    run_daemon(
        host, data_root, exec_root, config_file, cluster_store, cluster_advertise, debug,
        web_addr=web_addr, cluster_store_opts=cluster_store_opts,
        host_gateway_ip=host_gateway_ip,
    )  # fmt: skip
    sys.exit(0)
