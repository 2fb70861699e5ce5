"""``run``/``create`` flags: the click options (the body they make: :mod:`tether.cli.runbody`)."""

from __future__ import annotations

import shlex
from collections.abc import Callable, Sequence
from typing import Any, TypeVar

import click

from tether.cli.runbody import (
    BUILTIN_NETWORK_MODES,
    RUN_FIELDS,
    PortMapping,
    RunOptions,
    build_create_body,
    parse_env,
    parse_expose,
    parse_port_spec,
    parse_restart,
    read_env_files,
    validate_link,
)

__all__ = [
    "BUILTIN_NETWORK_MODES",
    "PortMapping",
    "RunOptions",
    "build_create_body",
    "options_from_kwargs",
    "parse_env",
    "parse_expose",
    "parse_port_spec",
    "parse_restart",
    "quote_command",
    "read_env_files",
    "run_options",
    "validate_link",
]

F = TypeVar("F", bound=Callable[..., Any])

# ---------------------------------------------------------------- click options


def _opt(*decls: str, **kw: Any) -> Callable[[F], F]:
    return click.option(*decls, **kw)


RUN_OPTIONS: list[Callable[[F], F]] = [
    _opt("--add-host", multiple=True, help="Add a custom host-to-IP mapping (host:ip)"),
    _opt("-a", "--attach", multiple=True, help="Attach to STDIN, STDOUT or STDERR"),
    _opt("--cap-add", multiple=True, help="Add Linux capabilities"),
    _opt("--cap-drop", multiple=True, help="Drop Linux capabilities"),
    _opt("--cidfile", default="", help="Write the container ID to the file"),
    _opt("--dns", multiple=True, help="Set custom DNS servers"),
    _opt("--dns-option", multiple=True, help="Set DNS options"),
    _opt("--dns-search", multiple=True, help="Set custom DNS search domains"),
    _opt("--domainname", default="", help="Container NIS domain name"),
    _opt("--entrypoint", default=None, help="Overwrite the default ENTRYPOINT of the image"),
    _opt("-e", "--env", multiple=True, help="Set environment variables"),
    _opt("--env-file", multiple=True, help="Read in a file of environment variables"),
    _opt("--expose", multiple=True, help="Expose a port or a range of ports"),
    _opt("-h", "--hostname", default="", help="Container host name"),
    _opt("--init", is_flag=True, help="Run an init inside the container"),
    _opt("-i", "--interactive", is_flag=True, help="Keep STDIN open even if not attached"),
    _opt("--ip", default="", help="IPv4 address (e.g., 172.30.100.104)"),
    _opt("--ip6", default="", help="IPv6 address (e.g., 2001:db8::33)"),
    _opt("-l", "--label", multiple=True, help="Set meta data on a container"),
    _opt("--link", multiple=True, help="Add link to another container"),
    _opt("--mac-address", default="", help="Container MAC address (e.g., 92:d0:c6:0a:29:33)"),
    _opt("--name", default="", help="Assign a name to the container"),
    _opt(
        "--network", "--net", "network", default="default", help="Connect a container to a network"
    ),
    _opt(
        "--network-alias",
        "--net-alias",
        "network_alias",
        multiple=True,
        help="Add network-scoped alias for the container",
    ),
    _opt("--platform", default="", help="Set platform if server is multi-platform capable"),
    _opt("--privileged", is_flag=True, help="Give extended privileges to this container"),
    _opt("-p", "--publish", multiple=True, help="Publish a container's port(s) to the host"),
    _opt("-P", "--publish-all", is_flag=True, help="Publish all exposed ports to random ports"),
    _opt("--read-only", is_flag=True, help="Mount the container's root filesystem as read only"),
    _opt("--restart", default="no", help="Restart policy to apply when a container exits"),
    _opt(
        "--rm",
        is_flag=True,
        help="Automatically remove the container and its associated "
        "anonymous volumes when it exits",
    ),
    _opt("--stop-signal", default="", help="Signal to stop the container"),
    _opt("--stop-timeout", type=int, default=None, help="Timeout (in seconds) to stop a container"),
    _opt("--sysctl", multiple=True, help="Sysctl options"),
    _opt("-t", "--tty", is_flag=True, help="Allocate a pseudo-TTY"),
    _opt("-u", "--user", default="", help="Username or UID (format: <name|uid>[:<group|gid>])"),
    _opt("-w", "--workdir", default="", help="Working directory inside the container"),
]


def run_options(fn: F) -> F:
    """Apply every ``run``/``create`` option plus IMAGE [COMMAND] [ARG...]."""
    fn = click.argument("command", nargs=-1, type=click.UNPROCESSED)(fn)
    fn = click.argument("image")(fn)
    for deco in reversed(RUN_OPTIONS):
        fn = deco(fn)
    return fn


def options_from_kwargs(image: str, command: Sequence[str], kw: dict[str, Any]) -> RunOptions:
    """Collect the click keyword arguments into :class:`RunOptions`."""
    o = RunOptions(image, command)
    for name in RUN_FIELDS:
        if name in kw:
            v = kw[name]
            setattr(o, name, list(v) if isinstance(v, tuple) else v)
    return o


def quote_command(args: Sequence[str]) -> str:
    return " ".join(shlex.quote(a) for a in args)
