"""Type checks for request bodies, as Docker's Go JSON decoder makes them.

Docker decodes a body into typed Go structs: a value of the wrong JSON type is a 400
(``json: cannot unmarshal string into Go struct field ... of type ...``) before anything
happens, ``null`` is always accepted (the zero value) and unknown keys are ignored. Tether
reads bodies as plain dicts, so the engine would meet a string where it wants a list (and
answer 500, or store it). ``check(body, SHAPE, root)`` gives the same early 400.

A shape is ``"string" | "int" | "bool" | "number" | "any"``, ``"strslice"`` (a string or a
list of strings, Docker's ``StrSlice``), ``("list", shape)``, ``("map", shape)`` (any keys)
or a dict of known keys to shapes (an object; other keys pass unchecked).
``check_endpoint_addresses`` refuses static addresses that do not parse, as Docker does
before it looks at any network.
"""

from __future__ import annotations

from typing import Any

from tether.errors import BadRequest

Shape = Any

_STRS: Shape = ("list", "string")
_STRMAP: Shape = ("map", "string")
_OBJ: Shape = ("map", "any")

ENDPOINT_SETTINGS: Shape = {
    "IPAMConfig": {"IPv4Address": "string", "IPv6Address": "string", "LinkLocalIPs": _STRS},
    "Links": _STRS,
    "Aliases": _STRS,
    "NetworkID": "string",
    "EndpointID": "string",
    "Gateway": "string",
    "IPAddress": "string",
    "IPPrefixLen": "int",
    "IPv6Gateway": "string",
    "GlobalIPv6Address": "string",
    "GlobalIPv6PrefixLen": "int",
    "MacAddress": "string",
    "DriverOpts": _STRMAP,
}

HOST_CONFIG: Shape = {
    "Binds": _STRS,
    "ContainerIDFile": "string",
    "LogConfig": {"Type": "string", "Config": _STRMAP},
    "NetworkMode": "string",
    "PortBindings": ("map", ("list", {"HostIp": "string", "HostPort": "string"})),
    "RestartPolicy": {"Name": "string", "MaximumRetryCount": "int"},
    "AutoRemove": "bool",
    "VolumeDriver": "string",
    "VolumesFrom": _STRS,
    "CapAdd": _STRS,
    "CapDrop": _STRS,
    "CgroupnsMode": "string",
    "Dns": _STRS,
    "DnsOptions": _STRS,
    "DnsSearch": _STRS,
    "ExtraHosts": _STRS,
    "GroupAdd": _STRS,
    "IpcMode": "string",
    "Links": _STRS,
    "OomScoreAdj": "int",
    "PidMode": "string",
    "Privileged": "bool",
    "PublishAllPorts": "bool",
    "ReadonlyRootfs": "bool",
    "SecurityOpt": _STRS,
    "Tmpfs": _STRMAP,
    "UTSMode": "string",
    "UsernsMode": "string",
    "ShmSize": "int",
    "Sysctls": _STRMAP,
    "Runtime": "string",
    "Init": "bool",
    "Memory": "int",
    "MemorySwap": "int",
    "CpuShares": "int",
    "NanoCpus": "int",
    "PidsLimit": "int",
    # P3 (issue 16)
    "MemoryReservation": "int",
    "MemorySwappiness": "int",
    "OomKillDisable": "bool",
    "CpuPeriod": "int",
    "CpuQuota": "int",
    "CpusetCpus": "string",
    "CpusetMems": "string",
    "BlkioWeight": "int",
    "Ulimits": ("list", {"Name": "string", "Soft": "int", "Hard": "int"}),
    # mounts and volumes (issue 16, P2)
    "Mounts": (
        "list",
        {
            "Type": "string",
            "Source": "string",
            "Target": "string",
            "ReadOnly": "bool",
            "Consistency": "string",
            "BindOptions": {"Propagation": "string", "NonRecursive": "bool"},
            "VolumeOptions": {
                "NoCopy": "bool",
                "Labels": _STRMAP,
                "DriverConfig": {"Name": "string", "Options": _STRMAP},
            },
            "TmpfsOptions": {"SizeBytes": "int", "Mode": "int"},
        },
    ),
}

CONTAINER_CREATE: Shape = {
    "Hostname": "string",
    "Domainname": "string",
    "User": "string",
    "AttachStdin": "bool",
    "AttachStdout": "bool",
    "AttachStderr": "bool",
    "ExposedPorts": _OBJ,
    "Tty": "bool",
    "OpenStdin": "bool",
    "StdinOnce": "bool",
    "Env": _STRS,
    "Cmd": "strslice",
    "Entrypoint": "strslice",
    "Image": "string",
    "Volumes": _OBJ,
    "WorkingDir": "string",
    "NetworkDisabled": "bool",
    "MacAddress": "string",
    "OnBuild": _STRS,
    "Labels": _STRMAP,
    "StopSignal": "string",
    "StopTimeout": "int",
    "Shell": _STRS,
    "Healthcheck": {  # P4
        "Test": _STRS,
        "Interval": "int",
        "Timeout": "int",
        "StartPeriod": "int",
        "Retries": "int",
    },
    "HostConfig": HOST_CONFIG,
    "NetworkingConfig": {"EndpointsConfig": ("map", ENDPOINT_SETTINGS)},
}

VOLUME_CREATE: Shape = {
    "Name": "string",
    "Driver": "string",
    "DriverOpts": _STRMAP,
    "Labels": _STRMAP,
}
NETWORK_CONNECT: Shape = {"Container": "string", "EndpointConfig": ENDPOINT_SETTINGS}
NETWORK_DISCONNECT: Shape = {"Container": "string", "Force": "bool"}


def check_endpoint_addresses(settings: Any) -> None:
    """``IPAMConfig`` addresses must parse (Docker: ``invalid IPv4 address: ...``)."""
    import ipaddress

    ipam = (settings or {}).get("IPAMConfig") if isinstance(settings, dict) else None
    if not isinstance(ipam, dict):
        return
    for key, family in (("IPv4Address", 4), ("IPv6Address", 6)):
        value = ipam.get(key)
        if not value:
            continue
        try:
            ok = ipaddress.ip_address(value).version == family
        except ValueError:
            ok = False
        if not ok:
            raise BadRequest(f"invalid IPv{family} address: {value}")
    links = ipam.get("LinkLocalIPs") or []
    for value in links:
        if not value:
            continue  # as Docker: an empty one is skipped
        try:
            ipaddress.ip_address(value)
        except ValueError:
            # Docker's text (daemon/network.go), the list printed as Go does
            raise BadRequest(f"Invalid link-local IP address: [{' '.join(links)}]") from None


def _json_kind(value: Any) -> str:
    if isinstance(value, bool):
        return "bool"
    if isinstance(value, str):
        return "string"
    if isinstance(value, int | float):
        return "number"
    if isinstance(value, list):
        return "array"
    return "object"


def _go_type(shape: Shape) -> str:
    if isinstance(shape, dict):
        return "struct"
    if isinstance(shape, tuple):
        inner = _go_type(shape[1])
        return f"[]{inner}" if shape[0] == "list" else f"map[string]{inner}"
    names = {"strslice": "strslice.StrSlice", "any": "interface {}"}
    return str(names.get(shape, shape))


def _fits(shape: Shape, value: Any) -> bool:
    if shape == "any":
        return True
    if shape == "string":
        return isinstance(value, str)
    if shape == "bool":
        return isinstance(value, bool)
    if shape == "int":
        return isinstance(value, int) and not isinstance(value, bool)
    if shape == "number":
        return isinstance(value, int | float) and not isinstance(value, bool)
    if shape == "strslice":
        return isinstance(value, str | list)
    if isinstance(shape, tuple):
        return isinstance(value, list if shape[0] == "list" else dict)
    return isinstance(value, dict)


def check(value: Any, shape: Shape, path: str) -> None:
    """Raise BadRequest (Docker's decoder text) at the first value of the wrong JSON type."""
    if value is None:
        return
    if not _fits(shape, value):
        raise BadRequest(
            f"json: cannot unmarshal {_json_kind(value)} into Go struct field {path} "
            f"of type {_go_type(shape)}"
        )
    if shape == "strslice" and isinstance(value, list):
        for item in value:
            check(item, "string", path)
    elif isinstance(shape, tuple):
        items = enumerate(value) if shape[0] == "list" else value.items()
        for _, item in items:
            check(item, shape[1], path)
    elif isinstance(shape, dict):
        for key, sub in shape.items():
            if key in value:
                check(value[key], sub, f"{path}.{key}")
