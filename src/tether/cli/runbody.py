"""The body of ``run``/``create``, without click: the click commands and the fast path
(:mod:`tether.cli.fast`) both build it here, so both send the same bytes.

No ``dataclasses`` (~12 ms to import) and no ``shlex``: :class:`RunOptions` and
:class:`PortMapping` are plain classes. ``ipaddress`` is imported only for a ``-p`` with a
host address.
"""

from __future__ import annotations

from tether.cli.text import UsageFailure, kv_list

# typing is not imported at run time (~2.5 ms of start-up); mypy reads the names below.
TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Sequence
    from typing import Any

BUILTIN_NETWORK_MODES = ("default", "bridge", "host", "none")


class PortMapping:
    """One published port: ``80/tcp`` from ``host_ip``:``host_port`` (both may be empty)."""

    __slots__ = ("host_ip", "host_port", "port")

    def __init__(self, port: str, host_ip: str, host_port: str) -> None:
        self.port = port
        self.host_ip = host_ip
        self.host_port = host_port

    def _key(self) -> tuple[str, str, str]:
        return self.port, self.host_ip, self.host_port

    def __eq__(self, other: object) -> bool:
        return isinstance(other, PortMapping) and self._key() == other._key()

    def __hash__(self) -> int:
        return hash(self._key())

    def __repr__(self) -> str:
        return f"PortMapping({self.port!r}, {self.host_ip!r}, {self.host_port!r})"


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
    raw_ip, host_port, container = _split_parts(raw)
    container, _, proto = container.partition("/")
    proto = proto or "tcp"
    ip = ""
    if raw_ip:
        import ipaddress

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
        else:
            import os  # only here: the fast path's start-up does without os (~1 ms)

            if v in os.environ:
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


class RunOptions:
    """Everything ``run``/``create`` accept, before turning it into a body.

    Built with the defaults of the click options; the callers set what was given
    (attribute names are :data:`RUN_FIELDS`, the click parameter names).
    """

    def __init__(self, image: str, command: Sequence[str] = ()) -> None:
        self.image = image
        self.command: list[str] = list(command)
        self.detach: bool = False
        self.interactive: bool = False
        self.tty: bool = False
        self.attach: list[str] = []
        self.name: str = ""
        self.env: list[str] = []
        self.env_file: list[str] = []
        self.hostname: str = ""
        self.domainname: str = ""
        self.entrypoint: str | None = None
        self.workdir: str = ""
        self.user: str = ""
        self.network: str = "default"
        self.ip: str = ""
        self.ip6: str = ""
        self.network_alias: list[str] = []
        self.link: list[str] = []
        self.publish: list[str] = []
        self.publish_all: bool = False
        self.expose: list[str] = []
        self.restart: str = "no"
        self.rm: bool = False
        self.dns: list[str] = []
        self.dns_search: list[str] = []
        self.dns_option: list[str] = []
        self.add_host: list[str] = []
        self.label: list[str] = []
        self.mac_address: str = ""
        self.privileged: bool = False
        self.cap_add: list[str] = []
        self.cap_drop: list[str] = []
        self.sysctl: list[str] = []
        self.stop_signal: str = ""
        self.stop_timeout: int | None = None
        self.init: bool = False
        self.read_only: bool = False
        self.platform: str = ""


RUN_FIELDS = (
    "detach",
    "interactive",
    "tty",
    "attach",
    "name",
    "env",
    "env_file",
    "hostname",
    "domainname",
    "entrypoint",
    "workdir",
    "user",
    "network",
    "ip",
    "ip6",
    "network_alias",
    "link",
    "publish",
    "publish_all",
    "expose",
    "restart",
    "rm",
    "dns",
    "dns_search",
    "dns_option",
    "add_host",
    "label",
    "mac_address",
    "privileged",
    "cap_add",
    "cap_drop",
    "sysctl",
    "stop_signal",
    "stop_timeout",
    "init",
    "read_only",
    "platform",
)


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
