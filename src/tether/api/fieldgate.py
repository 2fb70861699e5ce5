"""The field gate: every create/update field is applied, or refused by name.

Docker's create body has ~25 ``Config`` and ~70 ``HostConfig`` fields. Tether
applies a subset; a field it does not apply, sent with a value other than its zero
value, is refused with a 400 that names it (``tether does not support
HostConfig.CapAdd``) instead of being accepted and silently ignored. A user who
asked for a confined container must never silently get root with every default
capability.

How a field counts as "not set": ``null``, ``false``, ``0``, ``""``, and lists and
objects made only of such values (the docker CLI sends ``"Devices": []``,
``"ConsoleSize": [0, 0]``, ``"LogConfig": {"Type": "", "Config": {}}``), plus the
few values that mean "Docker's default" (``MemorySwappiness: -1``,
``Isolation: "default"``, ``Runtime: "runc"``, ``LogConfig.Type: "json-file"``).

The tables are the list of what is applied; ``docs/operations.md`` lists what is
refused. A feature that starts applying a field moves it into ``APPLIED_*``.
Unknown keys pass, as Docker's JSON decoder ignores them (newer clients send
fields of later API versions).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

from tether.contracts.runtime import device_cgroup_rule
from tether.engine import logconfig
from tether.errors import BadRequest

# Config fields tether applies (or, for ArgsEscaped, that mean nothing on Linux).
APPLIED_CONFIG = frozenset(
    {
        "Hostname",
        "AttachStdin",
        "AttachStdout",
        "AttachStderr",
        "ExposedPorts",
        "Tty",
        "OpenStdin",
        "StdinOnce",
        "Env",
        "Cmd",
        "Image",
        "WorkingDir",
        "Entrypoint",
        "Labels",
        "StopSignal",
        "StopTimeout",
        "HostConfig",
        "NetworkingConfig",
        "Volumes",  # P2: mounts and volumes
        "Healthcheck",  # P4: health checks (tether.engine.health)
        # P1 (issue 16): identity and networking
        "User",
        "Domainname",
        "MacAddress",
    }
)

# HostConfig fields tether applies. ContainerIDFile is the client's own (the CLI writes
# the file); ConsoleSize is applied by the client's resize right after start.
APPLIED_HOST = frozenset(
    {
        "NetworkMode",
        "PortBindings",
        "PublishAllPorts",
        "RestartPolicy",
        "AutoRemove",
        "Links",
        "Dns",
        "DnsOptions",
        "DnsSearch",
        "ContainerIDFile",
        "ConsoleSize",
        # P3 (issue 16): resources, namespaces, process settings
        "Memory",
        "MemorySwap",
        "MemoryReservation",
        "MemorySwappiness",
        "OomKillDisable",
        "CpuShares",
        "CpuQuota",
        "CpuPeriod",
        "NanoCpus",
        "CpusetCpus",
        "CpusetMems",
        "PidsLimit",
        "BlkioWeight",
        "Ulimits",
        "ShmSize",
        "OomScoreAdj",
        "CgroupnsMode",
        "PidMode",
        "IpcMode",
        "UTSMode",
        "Init",
        "Binds",  # P2: mounts and volumes
        "Mounts",  # P2
        "Tmpfs",  # P2
        "VolumesFrom",  # P2
        "VolumeDriver",  # P2 (local; another driver is refused when a volume is made)
        "LogConfig",  # P4: json-file and its options (tether.engine.logconfig; checked above)
        # P1 (issue 16): identity, privileges, networking options
        "GroupAdd",
        "DeviceCgroupRules",  # issue 17: --device-cgroup-rule
        "ReadonlyRootfs",
        "CapAdd",
        "CapDrop",
        "Privileged",
        "SecurityOpt",
        "ExtraHosts",
        "Sysctls",
    }
)

# Per-endpoint settings (NetworkingConfig.EndpointsConfig.X, network connect's
# EndpointConfig). The address/ID keys are Docker's output fields: Docker ignores them in
# a request too.
APPLIED_ENDPOINT = frozenset(
    {
        "IPAMConfig",
        "Links",
        "Aliases",
        "DriverOpts",
        "NetworkID",
        "EndpointID",
        "Gateway",
        "IPAddress",
        "IPPrefixLen",
        "IPv6Gateway",
        "GlobalIPv6Address",
        "GlobalIPv6PrefixLen",
        # P1 (issue 16): --mac-address per endpoint (API 1.44 clients, network connect)
        "MacAddress",
    }
)
APPLIED_IPAM = frozenset({"IPv4Address", "IPv6Address", "LinkLocalIPs"})  # IPv6: issue 18

# Values that mean "Docker's default" for a field that is otherwise refused.
DEFAULT_VALUES: Mapping[str, tuple[Any, ...]] = {
    "MemorySwappiness": (-1,),
    "Isolation": ("default",),
    "Runtime": ("runc",),
    "PidsLimit": (-1,),
    "CgroupnsMode": ("host", "private"),
}

# Fields checked with Docker's own texts before the generic refusal.
RUNTIMES = ("", "runc")
LOG_DRIVERS = ("", "json-file", "none")
# Docker's other drivers: a real name tether has no implementation of
KNOWN_LOG_DRIVERS = (
    "local",
    "syslog",
    "journald",
    "gelf",
    "fluentd",
    "awslogs",
    "splunk",
    "etwlogs",
    "gcplogs",
    "logentries",
)


def unset(value: Any) -> bool:
    """A zero value: what the docker CLI sends for an option not given."""
    if value is None or value is False or value == 0 or value == "":
        return True
    if isinstance(value, list):
        return all(unset(v) for v in value)
    if isinstance(value, dict):
        return all(unset(v) for v in value.values())
    return False


def _refuse(section: str, body: Mapping[str, Any], applied: Iterable[str]) -> None:
    keep = frozenset(applied)
    for key, value in body.items():
        if key in keep or unset(value) or value in DEFAULT_VALUES.get(key, ()):
            continue
        raise BadRequest(f"tether does not support {section}.{key}")


def _check_known_values(hc: Mapping[str, Any]) -> None:
    """Docker's texts for values Docker itself refuses, before the generic refusal."""
    runtime = hc.get("Runtime")
    if isinstance(runtime, str) and runtime not in RUNTIMES:
        raise BadRequest(f"Unknown runtime specified {runtime}")
    isolation = hc.get("Isolation")
    if isinstance(isolation, str) and isolation not in ("", "default"):
        raise BadRequest(f"Invalid isolation: {isolation!r} - linux only supports 'default'")
    rules = hc.get("DeviceCgroupRules")
    for rule in rules if isinstance(rules, list) else []:
        device_cgroup_rule(str(rule))
    log = hc.get("LogConfig")
    if isinstance(log, dict):
        driver = log.get("Type") or ""
        if driver not in LOG_DRIVERS:
            if driver in KNOWN_LOG_DRIVERS:
                raise BadRequest(f"tether does not support HostConfig.LogConfig.Type {driver}")
            raise BadRequest(f"logger: no log driver named '{driver}' is registered")
        opts = log.get("Config")
        if driver == "none" and isinstance(opts, dict):
            for key in opts:
                raise BadRequest(f"unknown log opt '{key}' for none log driver")
        elif isinstance(opts, dict):
            logconfig.check(opts)  # P4: json-file options (tether.engine.logconfig)


def check_endpoint(settings: Mapping[str, Any], where: str) -> None:
    """One endpoint's settings (``where`` names it in the refusal)."""
    _refuse(where, settings, APPLIED_ENDPOINT)
    ipam = settings.get("IPAMConfig")
    if isinstance(ipam, dict):
        _refuse(f"{where}.IPAMConfig", ipam, APPLIED_IPAM)


def check_create(body: Mapping[str, Any]) -> None:
    """A container create body: refuse every field tether would not apply."""
    _refuse("Config", body, APPLIED_CONFIG)
    hc = body.get("HostConfig")
    if isinstance(hc, dict):
        _check_known_values(hc)
        _refuse("HostConfig", {k: v for k, v in hc.items() if k != "LogConfig"}, APPLIED_HOST)
    netcfg = body.get("NetworkingConfig")
    eps = netcfg.get("EndpointsConfig") if isinstance(netcfg, dict) else None
    if isinstance(eps, dict):
        for settings in eps.values():
            if isinstance(settings, dict):
                check_endpoint(settings, "NetworkingConfig.EndpointsConfig")


# Update body fields (POST /containers/{id}/update) tether applies.
APPLIED_UPDATE = frozenset(
    {
        "RestartPolicy",
        # P3 (issue 16): applied to a running container's cgroup (runc update) and the record
        "Memory",
        "MemorySwap",
        "MemoryReservation",
        "CpuShares",
        "CpuQuota",
        "CpuPeriod",
        "NanoCpus",
        "CpusetCpus",
        "CpusetMems",
        "PidsLimit",
        "BlkioWeight",
    }
)


def check_update(body: Mapping[str, Any]) -> None:
    _refuse("HostConfig", body, APPLIED_UPDATE)
