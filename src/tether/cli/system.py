"""``tether version`` and ``tether info`` (``tether daemon`` is :mod:`tether.daemon_cli`)."""

from __future__ import annotations

import click

from tether.cli.util import client, fail
from tether.cli.views import version_text
from tether.client import APIError, ConnectionFailed

CONTEXT = {"help_option_names": ["--help"]}


@click.command("version", context_settings=CONTEXT)
@click.option("-f", "--format", "fmt", default="", help="Format output using a custom template")
def version(fmt: str) -> None:
    """Show the tether version information"""
    out, err = version_text(client(), fmt)
    click.echo(out, nl=False)
    if err is not None:
        fail(err)


@click.command("info", context_settings=CONTEXT)
@click.option("-f", "--format", "fmt", default="", help="Format output using a custom template")
def info(fmt: str) -> None:
    """Display system-wide information"""
    from tether import __version__

    try:
        i = client().get("/info")
    except (APIError, ConnectionFailed) as e:
        fail(str(e))
    if fmt:
        from tether.cli.gotemplate import TemplateError, render

        try:
            click.echo(render(fmt, i))
        except TemplateError as e:
            fail(f"template parsing error: {e}")
        return
    lines = [
        "Client:",
        f" Version:    {__version__}",
        " Context:    default",
        " Debug Mode: false",
        "",
        "Server:",
        f" Containers: {i.get('Containers', 0)}",
        f"  Running: {i.get('ContainersRunning', 0)}",
        f"  Paused: {i.get('ContainersPaused', 0)}",
        f"  Stopped: {i.get('ContainersStopped', 0)}",
        f" Images: {i.get('Images', 0)}",
        f" Server Version: {i.get('ServerVersion', '')}",
        f" Storage Driver: {i.get('Driver', '')}",
        f" Logging Driver: {i.get('LoggingDriver', '')}",
        f" Cgroup Driver: {i.get('CgroupDriver', '')}",
        f" Cgroup Version: {i.get('CgroupVersion', '')}",
    ]
    plugins = i.get("Plugins") or {}
    if plugins:
        lines.append(" Plugins:")
        for k in ("Volume", "Network", "Log"):
            if plugins.get(k):
                lines.append(f"  {k}: {' '.join(plugins[k])}")
    lines += [
        f" Kernel Version: {i.get('KernelVersion', '')}",
        f" Operating System: {i.get('OperatingSystem', '')}",
        f" OSType: {i.get('OSType', '')}",
        f" Architecture: {i.get('Architecture', '')}",
        f" CPUs: {i.get('NCPU', 0)}",
        f" Total Memory: {_gib(i.get('MemTotal', 0))}",
        f" Name: {i.get('Name', '')}",
        f" ID: {i.get('ID', '')}",
        f" Docker Root Dir: {i.get('DockerRootDir', '')}",
        f" Debug Mode: {str(bool(i.get('Debug'))).lower()}",
    ]
    if i.get("ClusterStore"):
        lines.append(f" Cluster Store: {i['ClusterStore']}")
    if i.get("ClusterAdvertise"):
        lines.append(f" Cluster Advertise: {i['ClusterAdvertise']}")
    click.echo("\n".join(lines))
    for w in i.get("Warnings") or []:
        click.echo(w, err=True)


def _gib(n: float) -> str:
    units = ["B", "KiB", "MiB", "GiB", "TiB"]
    v = float(n)
    u = 0
    while v >= 1024 and u < len(units) - 1:
        v /= 1024
        u += 1
    return f"{v:.4g}{units[u]}"
