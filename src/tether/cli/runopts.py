"""``run``/``create`` flags: the click options and the create body docker sends."""

from __future__ import annotations

import os
import shlex
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any, TypeVar

import click

from tether.cli.util import UsageFailure, kv_list

F = TypeVar("F", bound=Callable[..., Any])

BUILTIN_NETWORK_MODES = ("default", "bridge", "host", "none")


@dataclass
class PortMapping:
    port: str  # "80/tcp"
    host_ip: str
    host_port: str


def _port_range(value: str) -> tuple[int, int]:
    start_s, sep, end_s = value.partition("-")
    start = int(start_s)
    end = int(end_s) if sep else start
    if not (0 <= start <= 65535 and 0 <= end <= 65535) or end < start:
        raise ValueError(value)
    return start, end


def _split_parts(raw: str) -> tuple[str, str, str]:
    parts = raw.split(":")
    n = len(parts)
    if n == 1:
        return "", "", parts[0]
    if n == 2:
        return "", parts[0], parts[1]
    if n == 3:
        return parts[0], parts[1], parts[2]
    return ":".join(parts[: n - 2]), parts[n - 2], parts[n - 1]


def parse_port_spec(raw: str) -> list[PortMapping]:
    """Parse one ``-p`` value (``[ip:][hostPort:]containerPort[/proto]``, ranges allowed)."""
    import ipaddress

    raw_ip, host_port, container = _split_parts(raw)
    container, _, proto = container.partition("/")
    proto = proto or "tcp"
    ip = ""
    if raw_ip:
        ip = raw_ip.strip("[]")
        try:
            ipaddress.ip_address(ip)
        except ValueError:
            raise UsageFailure(f"invalid IP address: {raw_ip}") from None
    if not container:
        raise UsageFailure(f"no port specified: {raw}<empty>")
    try:
        start, end = _port_range(container)
    except ValueError:
        raise UsageFailure(f"invalid containerPort: {container}") from None
    hstart = hend = 0
    if host_port:
        try:
            hstart, hend = _port_range(host_port)
        except ValueError:
            raise UsageFailure(f"invalid hostPort: {host_port}") from None
        if (end - start) != (hend - hstart) and end != start:
            raise UsageFailure(
                "invalid ranges specified for container and host Ports: "
                f"{container} and {host_port}"
            )
    if proto.lower() not in ("tcp", "udp", "sctp"):
        raise UsageFailure(f"invalid proto: {proto}")
    out = []
    for i in range(end - start + 1):
        hp = str(hstart + i) if host_port else ""
        if start == end and hstart != hend:
            hp = f"{hstart}-{hend}"
        out.append(PortMapping(f"{start + i}/{proto.lower()}", ip, hp))
    return out


def parse_expose(raw: str) -> list[str]:
    """One ``--expose`` value (``80``, ``80/udp``, ``8000-8010``) as port keys."""
    port, _, proto = raw.partition("/")
    proto = proto or "tcp"
    try:
        start, end = _port_range(port)
    except ValueError:
        raise UsageFailure(f"invalid range format for --expose: {raw}") from None
    return [f"{p}/{proto}" for p in range(start, end + 1)]


def parse_restart(value: str) -> dict[str, Any]:
    """``--restart`` (``no``, ``always``, ``unless-stopped``, ``on-failure[:N]``)."""
    name, sep, count = value.partition(":")
    if name not in ("", "no", "always", "unless-stopped", "on-failure"):
        raise UsageFailure(f"invalid restart policy '{name}'")
    retries = 0
    if sep:  # a count with another policy is the daemon's to refuse, as with docker
        try:
            retries = int(count)
        except ValueError:
            raise UsageFailure("maximum retry count must be an integer") from None
    return {"Name": name or "no", "MaximumRetryCount": retries}


def parse_env(values: Sequence[str]) -> list[str]:
    """``-e`` values; a bare ``NAME`` takes its value from this environment (or is dropped)."""
    out = []
    for v in values:
        if "=" in v:
            if v.startswith("="):
                raise UsageFailure(f"invalid environment variable: {v}")
            out.append(v)
        elif v in os.environ:
            out.append(f"{v}={os.environ[v]}")
    return out


def read_env_files(paths: Sequence[str]) -> list[str]:
    lines: list[str] = []
    for p in paths:
        with open(p) as f:
            for line in f:
                line = line.strip()
                if line and not line.startswith("#"):
                    lines.append(line)
    return parse_env(lines)


def validate_link(value: str) -> str:
    name, _, alias = value.partition(":")
    if not name or (":" in value and not alias):
        raise UsageFailure(f"invalid link format: {value}")
    return value


@dataclass
class RunOptions:
    """Everything ``run``/``create`` accept, before turning it into a body."""

    image: str
    command: list[str] = field(default_factory=list)
    detach: bool = False
    interactive: bool = False
    tty: bool = False
    attach: list[str] = field(default_factory=list)
    name: str = ""
    env: list[str] = field(default_factory=list)
    env_file: list[str] = field(default_factory=list)
    hostname: str = ""
    domainname: str = ""
    entrypoint: str | None = None
    workdir: str = ""
    user: str = ""
    network: str = "default"
    ip: str = ""
    ip6: str = ""
    network_alias: list[str] = field(default_factory=list)
    link: list[str] = field(default_factory=list)
    publish: list[str] = field(default_factory=list)
    publish_all: bool = False
    expose: list[str] = field(default_factory=list)
    restart: str = "no"
    rm: bool = False
    dns: list[str] = field(default_factory=list)
    dns_search: list[str] = field(default_factory=list)
    dns_option: list[str] = field(default_factory=list)
    add_host: list[str] = field(default_factory=list)
    label: list[str] = field(default_factory=list)
    mac_address: str = ""
    privileged: bool = False
    cap_add: list[str] = field(default_factory=list)
    cap_drop: list[str] = field(default_factory=list)
    sysctl: list[str] = field(default_factory=list)
    stop_signal: str = ""
    stop_timeout: int | None = None
    init: bool = False
    read_only: bool = False
    platform: str = ""


def build_create_body(o: RunOptions, run_detached: bool = False) -> dict[str, Any]:
    """The POST /containers/create body docker builds for these options."""
    for link in o.link:
        validate_link(link)
    streams = _attach_streams(o, run_detached)
    exposed, bindings = _ports(o)
    network = o.network or "default"
    config = _config(o, streams, exposed)
    host_config = _host_config(o, network, bindings)
    endpoints = _endpoints(o, network)
    return {
        **config,
        "HostConfig": host_config,
        "NetworkingConfig": {"EndpointsConfig": endpoints},
    }


def _attach_streams(o: RunOptions, run_detached: bool) -> tuple[bool, bool, bool]:
    """Whether stdin, stdout and stderr are attached (``-a``, ``-i``, ``-d``)."""
    attach = {a.lower() for a in o.attach}
    for a in attach:
        if a not in ("stdin", "stdout", "stderr"):
            raise UsageFailure(f"valid streams are STDIN, STDOUT and STDERR: {a}")
    attach_stdin = "stdin" in attach or o.interactive
    attach_stdout = "stdout" in attach or not attach
    attach_stderr = "stderr" in attach or not attach
    if run_detached:
        if o.attach:
            raise UsageFailure("Conflicting options: -a and -d")
        attach_stdin = attach_stdout = attach_stderr = False
    return attach_stdin, attach_stdout, attach_stderr


def _ports(
    o: RunOptions,
) -> tuple[dict[str, dict[str, Any]], dict[str, list[dict[str, str]]]]:
    """``ExposedPorts`` and ``PortBindings`` of ``-p`` and ``--expose``."""
    exposed: dict[str, dict[str, Any]] = {}
    bindings: dict[str, list[dict[str, str]]] = {}
    for spec in o.publish:
        for m in parse_port_spec(spec):
            exposed[m.port] = {}
            bindings.setdefault(m.port, []).append({"HostIp": m.host_ip, "HostPort": m.host_port})
    for e in o.expose:
        for p in parse_expose(e):
            exposed.setdefault(p, {})
    return exposed, bindings


def _config(
    o: RunOptions, streams: tuple[bool, bool, bool], exposed: dict[str, dict[str, Any]]
) -> dict[str, Any]:
    """The container's ``Config`` (the top level of the create body)."""
    attach_stdin, attach_stdout, attach_stderr = streams
    entrypoint: list[str] | None = None
    if o.entrypoint is not None:
        entrypoint = [o.entrypoint] if o.entrypoint else [""]

    env = read_env_files(o.env_file) + parse_env(o.env)
    config: dict[str, Any] = {
        "Hostname": o.hostname,
        "Domainname": o.domainname,
        "User": o.user,
        "AttachStdin": attach_stdin,
        "AttachStdout": attach_stdout,
        "AttachStderr": attach_stderr,
        "ExposedPorts": exposed or None,
        "Tty": o.tty,
        "OpenStdin": o.interactive,
        "StdinOnce": o.interactive and attach_stdin,
        "Env": env,
        "Cmd": list(o.command) or None,
        "Image": o.image,
        "Volumes": None,
        "WorkingDir": o.workdir,
        "Entrypoint": entrypoint,
        "OnBuild": None,
        "Labels": kv_list(o.label),
    }
    if o.mac_address:
        config["MacAddress"] = o.mac_address
    if o.stop_signal:
        config["StopSignal"] = o.stop_signal
    if o.stop_timeout is not None:
        config["StopTimeout"] = o.stop_timeout
    return config


def _host_config(
    o: RunOptions, network: str, bindings: dict[str, list[dict[str, str]]]
) -> dict[str, Any]:
    host_config: dict[str, Any] = {
        "NetworkMode": network,
        "PortBindings": bindings,
        "RestartPolicy": parse_restart(o.restart),
        "AutoRemove": o.rm,
        "Links": list(o.link) or None,
        "Dns": list(o.dns),
        "DnsOptions": list(o.dns_option),
        "DnsSearch": list(o.dns_search),
        "ExtraHosts": list(o.add_host) or None,
        "PublishAllPorts": o.publish_all,
        "Privileged": o.privileged,
        "CapAdd": list(o.cap_add) or None,
        "CapDrop": list(o.cap_drop) or None,
        "ReadonlyRootfs": o.read_only,
        "Sysctls": kv_list(o.sysctl) or None,
    }
    if o.init:
        host_config["Init"] = True
    if o.rm and o.restart not in ("", "no"):
        raise UsageFailure("Conflicting options: --restart and --rm")
    return host_config


def _endpoints(o: RunOptions, network: str) -> dict[str, Any]:
    """``NetworkingConfig.EndpointsConfig``: the endpoint on ``network``, when it has settings."""
    endpoints: dict[str, Any] = {}
    if not network.startswith("container:"):
        ep: dict[str, Any] = {}
        if o.ip or o.ip6:
            ipam: dict[str, str] = {}
            if o.ip:
                ipam["IPv4Address"] = o.ip
            if o.ip6:
                ipam["IPv6Address"] = o.ip6
            ep["IPAMConfig"] = ipam
        if o.link and network not in BUILTIN_NETWORK_MODES:
            ep["Links"] = list(o.link)
        if o.network_alias:
            ep["Aliases"] = list(o.network_alias)
        if o.mac_address and network != "default":
            ep["MacAddress"] = o.mac_address
        if ep or network != "default":
            endpoints[network] = ep
    elif o.ip or o.network_alias:
        raise UsageFailure("conflicting options: cannot specify IP or alias with container network")
    return endpoints


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
    o = RunOptions(image=image, command=list(command))
    for name in RunOptions.__dataclass_fields__:
        if name in kw and name not in ("image", "command"):
            v = kw[name]
            setattr(o, name, list(v) if isinstance(v, tuple) else v)
    return o


def quote_command(args: Sequence[str]) -> str:
    return " ".join(shlex.quote(a) for a in args)
