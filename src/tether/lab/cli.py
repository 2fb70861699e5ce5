"""``tether lab``: build, list, enter and remove labs of simulated hosts.

Heavy modules are imported inside the commands so that ``tether --help`` stays fast.
"""

from __future__ import annotations

import os
from typing import TYPE_CHECKING

import click

if TYPE_CHECKING:
    from tether.lab.lab import Lab


def _load(name: str) -> Lab:
    from tether.lab.errors import LabError
    from tether.lab.lab import Lab

    try:
        return Lab.load(name)
    except LabError as exc:
        raise click.ClickException(str(exc)) from exc


def _print_hosts(lab: Lab) -> None:
    rows = [("HOST", "ADDRESS", "NETNS", "DAEMON", "DOCKER_HOST")]
    for h in lab.hosts.values():
        pid = h.daemon_pid
        rows.append((h.name, h.address, h.netns, str(pid) if pid else "-", h.docker_host))
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
    for r in rows:
        click.echo("   ".join(c.ljust(w) for c, w in zip(r, widths, strict=True)).rstrip())
    if lab.etcd_endpoint:
        click.echo(f"etcd: {lab.etcd_endpoint} (underlay netns {lab.underlay_netns})")
    cluster = lab.etcd_cluster
    if cluster is not None and cluster.pki is not None:
        click.echo(f"etcd TLS: CA {cluster.pki.ca}, client certificate {cluster.pki.client_cert}")


@click.group("lab")
def lab() -> None:
    """Simulated hosts (network namespaces) on an underlay, each with its own daemon."""


@lab.command("up")
@click.argument("name")
@click.option("--hosts", "count", type=click.IntRange(1, 200), help="Create host1..hostN.")
@click.option("--host", "names", multiple=True, help="Create a host with this name (repeatable).")
@click.option(
    "--etcd",
    type=click.IntRange(0, 7),
    is_flag=False,
    flag_value=1,
    default=0,
    metavar="[N]",
    help="Run etcd on the underlay: one (198.18.0.2:2379) or a cluster of N members (.2, .3, ...).",
)
@click.option(
    "--etcd-tls",
    is_flag=True,
    help="The etcd members speak TLS only, with a CA of the lab's own (needs --etcd N).",
)
@click.option("--no-daemons", is_flag=True, help="Do not start a tether daemon per host.")
@click.option("--daemon-timeout", type=float, default=15.0, show_default=True)
def up(
    name: str,
    count: int | None,
    names: tuple[str, ...],
    etcd: int,
    etcd_tls: bool,
    no_daemons: bool,
    daemon_timeout: float,
) -> None:
    """Build lab NAME (default: 2 hosts, host1 and host2)."""
    from tether.lab.errors import LabError
    from tether.lab.lab import Lab

    hosts = list(names)
    if count is not None:
        hosts += [f"host{i}" for i in range(1, count + 1) if f"host{i}" not in hosts]
    if not hosts:
        hosts = ["host1", "host2"]
    try:
        built = Lab.up(
            name,
            hosts,
            etcd=etcd,
            daemons=not no_daemons,
            daemon_timeout=daemon_timeout,
            etcd_tls=etcd_tls,
        )
    except LabError as exc:
        raise click.ClickException(str(exc)) from exc
    _print_hosts(built)


@lab.command("down")
@click.argument("names", nargs=-1, required=True)
def down(names: tuple[str, ...]) -> None:
    """Remove labs: daemons, mounts, namespaces, folders and state. Idempotent."""
    from tether.lab.errors import LabError
    from tether.lab.lab import Lab

    failed = False
    for name in names:
        try:
            if not Lab.destroy(name):
                click.echo(f"lab {name}: not found (nothing to do)", err=True)
        except LabError as exc:
            click.echo(f"Error: {exc}", err=True)
            failed = True
    if failed:
        raise SystemExit(1)


@lab.command("ls")
@click.option("-q", "--quiet", is_flag=True, help="Only print lab names.")
def ls(quiet: bool) -> None:
    """List labs."""
    from tether.lab.errors import LabError
    from tether.lab.lab import Lab

    for name in Lab.list():
        if quiet:
            click.echo(name)
            continue
        try:
            one = Lab.load(name)
        except LabError as exc:
            click.echo(f"{name}: {exc}")
            continue
        hosts = ", ".join(f"{h.name}={h.address}" for h in one.hosts.values())
        etcd = f"  etcd={one.etcd_endpoint}" if one.etcd_endpoint else ""
        click.echo(f"{name}  {hosts}{etcd}")


@lab.command("hosts")
@click.argument("name")
def hosts_cmd(name: str) -> None:
    """Show the hosts of lab NAME."""
    _print_hosts(_load(name))


@lab.command(
    "exec", context_settings={"ignore_unknown_options": True, "allow_interspersed_args": False}
)
@click.argument("name")
@click.argument("host")
@click.argument("cmd", nargs=-1, type=click.UNPROCESSED)
def exec_cmd(name: str, host: str, cmd: tuple[str, ...]) -> None:
    """Run CMD in HOST's network namespace, with DOCKER_HOST set to its daemon.

    Example: tether lab exec l1 host1 -- docker ps
    """
    from tether.lab.errors import LabError

    one = _load(name)
    try:
        h = one.host(host)
    except LabError as exc:
        raise click.ClickException(str(exc)) from exc
    argv = list(cmd) or [os.environ.get("SHELL", "/bin/sh")]
    full = h.argv(argv)
    try:
        os.execvpe(full[0], full, h.docker_env())
    except OSError as exc:
        raise click.ClickException(f"cannot run {argv[0]}: {exc}") from exc


if __name__ == "__main__":
    lab()
