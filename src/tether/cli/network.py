"""``tether network ...``: create, ls, inspect, rm, connect, disconnect, prune."""

from __future__ import annotations

import sys
from typing import Any

import click

from tether.cli import actions
from tether.cli.netbody import (
    body_from_flags,
    consolidate_ipam,
    create_body,
    split_strings,
    subnet_contains,
)
from tether.cli.util import (
    api_errors,
    client,
    fail,
    filters_query,
    kv_list,
)
from tether.cli.views import (
    NETWORK_HEADERS,
    format_networks,
    inspect_networks,
    inspect_text,
    list_networks,
    network_row,
)

__all__ = [
    "NETWORK_HEADERS",
    "consolidate_ipam",
    "create_body",
    "format_networks",
    "network_row",
    "print_inspect",
    "split_strings",
    "subnet_contains",
]

CONTEXT = {"help_option_names": ["--help"]}


@click.group("network", context_settings=CONTEXT)
def network() -> None:
    """Manage networks"""


@network.command("create", context_settings=CONTEXT)
@click.option("--attachable", is_flag=True, help="Enable manual container attachment")
@click.option("--aux-address", multiple=True, help="Auxiliary IPv4 or IPv6 addresses")
@click.option("--config-from", default="", help="The network from which to copy the configuration")
@click.option("--config-only", is_flag=True, help="Create a configuration only network")
@click.option("-d", "--driver", default="bridge", help="Driver to manage the Network")
@click.option("--gateway", multiple=True, help="IPv4 or IPv6 Gateway for the master subnet")
@click.option("--ingress", is_flag=True, help="Create swarm routing-mesh network")
@click.option("--internal", is_flag=True, help="Restrict external access to the network")
@click.option("--ip-range", multiple=True, help="Allocate container ip from a sub-range")
@click.option("--ipam-driver", default="default", help="IP Address Management Driver")
@click.option("--ipam-opt", multiple=True, help="Set IPAM driver specific options")
@click.option("--ipv6", is_flag=True, help="Enable or disable IPv6 address assignment")
@click.option("--label", multiple=True, help="Set metadata on a network")
@click.option("-o", "--opt", multiple=True, help="Set driver specific options")
@click.option("--scope", default="", help="Control the network's scope")
@click.option("--subnet", multiple=True, help="Subnet in CIDR format")
@click.argument("name")
@api_errors
def create(
    attachable: bool,
    aux_address: tuple[str, ...],
    config_from: str,
    config_only: bool,
    driver: str,
    gateway: tuple[str, ...],
    ingress: bool,
    internal: bool,
    ip_range: tuple[str, ...],
    ipam_driver: str,
    ipam_opt: tuple[str, ...],
    ipv6: bool,
    label: tuple[str, ...],
    opt: tuple[str, ...],
    scope: str,
    subnet: tuple[str, ...],
    name: str,
) -> None:
    """Create a network"""
    body = body_from_flags(
        name,
        attachable=attachable,
        aux_address=aux_address,
        config_from=config_from,
        config_only=config_only,
        driver=driver,
        gateway=gateway,
        ingress=ingress,
        internal=internal,
        ip_range=ip_range,
        ipam_driver=ipam_driver,
        ipam_opt=ipam_opt,
        ipv6=ipv6,
        label=label,
        opt=opt,
        scope=scope,
        subnet=subnet,
    )
    actions.create_network(client(), body)


@network.command("ls", context_settings=CONTEXT)
@click.option("-f", "--filter", "filters", multiple=True, help="Provide filter values")
@click.option("--format", "fmt", default="", help="Format output using a custom template")
@click.option("--no-trunc", is_flag=True, help="Do not truncate the output")
@click.option("-q", "--quiet", is_flag=True, help="Only display network IDs")
@api_errors
def ls(filters: tuple[str, ...], fmt: str, no_trunc: bool, quiet: bool) -> None:
    """List networks"""
    text = list_networks(client(), filters_query(filters), fmt, quiet, no_trunc)
    click.echo(text, nl=False)


network.add_command(ls, "list")


def print_inspect(items: list[Any], errors: list[str], fmt: str) -> None:
    """Print inspect results (JSON array or a template per item), then errors (exit 1)."""
    click.echo(inspect_text(items, fmt), nl=False)
    if errors:
        fail("\n".join(errors))


@network.command("inspect", context_settings=CONTEXT)
@click.option("-f", "--format", "fmt", default="", help="Format output using a custom template")
@click.option("-v", "--verbose", is_flag=True, help="Verbose output for diagnostics")
@click.argument("networks", nargs=-1, required=True)
@api_errors
def inspect(fmt: str, verbose: bool, networks: tuple[str, ...]) -> None:
    """Display detailed information on one or more networks"""
    items, errors = inspect_networks(client(), list(networks), fmt, verbose)
    print_inspect(items, errors, fmt)


@network.command("rm", context_settings=CONTEXT)
@click.option("-f", "--force", is_flag=True, help="Do not error if the network does not exist")
@click.argument("networks", nargs=-1, required=True)
@api_errors
def rm(force: bool, networks: tuple[str, ...]) -> None:
    """Remove one or more networks"""
    actions.remove_networks(client(), networks, force)


network.add_command(rm, "remove")


@network.command("connect", context_settings=CONTEXT)
@click.option("--alias", multiple=True, help="Add network-scoped alias for the container")
@click.option("--driver-opt", multiple=True, help="driver options for the network")
@click.option("--ip", default="", help="IPv4 address (e.g., 172.30.100.104)")
@click.option("--ip6", default="", help="IPv6 address (e.g., 2001:db8::33)")
@click.option("--link", multiple=True, help="Add link to another container")
@click.option("--link-local-ip", multiple=True, help="Add a link-local address")
@click.argument("net")
@click.argument("container")
@api_errors
def connect(
    alias: tuple[str, ...],
    driver_opt: tuple[str, ...],
    ip: str,
    ip6: str,
    link: tuple[str, ...],
    link_local_ip: tuple[str, ...],
    net: str,
    container: str,
) -> None:
    """Connect a container to a network"""
    ipam: dict[str, Any] = {}
    if ip:
        ipam["IPv4Address"] = ip
    if ip6:
        ipam["IPv6Address"] = ip6
    if link_local_ip:
        ipam["LinkLocalIPs"] = split_strings(link_local_ip)
    endpoint = {
        "IPAMConfig": ipam,
        "Links": list(link) or None,
        "Aliases": split_strings(alias) or None,
        "DriverOpts": kv_list(split_strings(driver_opt)) or None,
    }
    client().request(
        "POST",
        f"/networks/{net}/connect",
        body={"Container": container, "EndpointConfig": endpoint},
    )


@network.command("disconnect", context_settings=CONTEXT)
@click.option("-f", "--force", is_flag=True, help="Force the container to disconnect")
@click.argument("net")
@click.argument("container")
@api_errors
def disconnect(force: bool, net: str, container: str) -> None:
    """Disconnect a container from a network"""
    client().request(
        "POST", f"/networks/{net}/disconnect", body={"Container": container, "Force": force}
    )


PRUNE_WARNING = (
    "WARNING! This will remove all custom networks not used by at least one container.\n"
    "Are you sure you want to continue? [y/N] "
)


def confirm(warning: str) -> bool:
    click.echo(warning, nl=False)
    answer = sys.stdin.readline().strip().lower()
    return answer in ("y", "yes")


@network.command("prune", context_settings=CONTEXT)
@click.option("--filter", "filters", multiple=True, help="Provide filter values")
@click.option("-f", "--force", is_flag=True, help="Do not prompt for confirmation")
@api_errors
def prune(filters: tuple[str, ...], force: bool) -> None:
    """Remove all unused networks"""
    if not force and not confirm(PRUNE_WARNING):
        return
    report = client().post("/networks/prune", {"filters": filters_query(filters)}) or {}
    deleted = report.get("NetworksDeleted") or []
    out = ""
    if deleted:
        out = "Deleted Networks:\n" + "".join(f"{n}\n" for n in deleted)
    click.echo(out)
