"""What every section gets, and small helpers they share."""

from __future__ import annotations

import shlex
from collections.abc import Callable
from dataclasses import dataclass

from tether.demo.runner import Runner

HEX64 = r"^[0-9a-f]{64}$"
IPS_FMT = "{{range .NetworkSettings.Networks}}{{.IPAddress}} {{end}}"


@dataclass
class Ctx:
    r: Runner
    h1: str  # docker201
    h2: str  # docker202
    addresses: dict[str, str]  # host name -> its underlay address
    restart_daemon: Callable[[str], None]


def ip_of(ctx: Ctx, host: str, container: str, network: str | None = None) -> str:
    """A container's address (on ``network``, or its first one); '' when unknown."""
    if network is None:
        fmt = IPS_FMT
    else:
        fmt = '{{with index .NetworkSettings.Networks "' + network + '"}}{{.IPAddress}}{{end}}'
    out = ctx.r.quiet(host, ["inspect", "-f", fmt, container])
    found = out.stdout.split() if out.code == 0 else []
    return found[0] if found else ""


def remove_containers(ctx: Ctx, host: str, *names: str) -> None:
    if names:
        ctx.r.cleanup(host, ["rm", "-f", *names])


def remove_networks(ctx: Ctx, host: str, *names: str) -> None:
    for n in names:
        ctx.r.cleanup(host, ["network", "rm", n])


def q(word: str) -> str:
    """Shell-quote one word for a command line string."""
    return shlex.quote(word)
