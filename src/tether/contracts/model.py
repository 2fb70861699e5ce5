"""The object model (libnetwork's CNM): networks and endpoints, as stored.

These are plain records; their Docker JSON shapes are built in ``tether.api``.
"""

from __future__ import annotations

import os
import re
from dataclasses import asdict, dataclass, field
from typing import Any

from tether.contracts.pools import PoolConfig, PoolConfig6, is_v6_config
from tether.errors import BadRequest

OPT_BRIDGE_NAME = "com.docker.network.bridge.name"
OPT_MTU = "com.docker.network.driver.mtu"
OPT_ICC = "com.docker.network.bridge.enable_icc"
OPT_MASQ = "com.docker.network.bridge.enable_ip_masquerade"
OPT_HOST_BINDING = "com.docker.network.bridge.host_binding_ipv4"
OPT_DEFAULT_BRIDGE = "com.docker.network.bridge.default_bridge"
OPT_VXLANID = "com.docker.network.driver.overlay.vxlanid_list"


def new_id() -> str:
    return os.urandom(32).hex()


CONTAINER_NAME_RE = re.compile(r"^[a-zA-Z0-9][a-zA-Z0-9_.-]+$")


MAX_NETWORK_NAME = 4096


def check_name(name: str, kind: str = "network") -> None:
    """Reject names that cannot be valid. Containers: Docker's rule and text (two characters
    at least). Networks: Docker 20.10's, any name that is not empty after trimming (spaces and
    slashes included), with libnetwork's text; control characters and names over 4096
    characters are refused (Docker accepts them)."""
    if kind == "container":
        if not CONTAINER_NAME_RE.match(name):
            raise BadRequest(
                f"Invalid container name ({name}), only [a-zA-Z0-9][a-zA-Z0-9_.-] are allowed"
            )
        return
    if not name.strip():
        raise BadRequest(f"invalid name: {name}")
    # Stricter than Docker, on purpose: a name is printed by `network ls` and is a store key,
    # so control characters (terminal escapes, NUL, newlines) and megabyte names are refused.
    if any(ord(ch) < 0x20 or ord(ch) == 0x7F for ch in name):
        raise BadRequest(f"invalid network name {name!r}: control characters are not allowed")
    if len(name) > MAX_NETWORK_NAME:
        raise BadRequest(f"network name is longer than {MAX_NETWORK_NAME} characters")


GO_TRUE = ("1", "t", "T", "TRUE", "true", "True")
GO_FALSE = ("0", "f", "F", "FALSE", "false", "False")


def parse_go_bool(key: str, value: str) -> bool:
    """A driver option's boolean as Docker parses it (Go's ``strconv.ParseBool``), with
    libnetwork's error text for anything else."""
    if value in GO_TRUE:
        return True
    if value in GO_FALSE:
        return False
    raise BadRequest(
        f"failed to parse {key} value: {value} "
        f'(strconv.ParseBool: parsing "{value}": invalid syntax)'
    )


def check_mtu(net: Network) -> None:
    """The MTU option parsed as Docker does (strconv.Atoi, libnetwork's text), then in range."""
    raw = net.options.get(OPT_MTU)
    if raw and not raw.lstrip("-").isdigit():
        raise BadRequest(
            f"failed to parse {OPT_MTU} value: {raw} "
            f'(strconv.Atoi: parsing "{raw}": invalid syntax)'
        )
    if not 68 <= net.mtu <= 65535:
        raise BadRequest(f"invalid MTU {net.mtu}")


def opt_true(options: dict[str, str], key: str, default: bool = True) -> bool:
    """A boolean option already checked by ``parse_go_bool`` (at network create)."""
    value = options.get(key)
    if value is None or value == "":
        return default
    return value in GO_TRUE


@dataclass
class Network:
    id: str
    name: str
    driver: str
    scope: str = "local"
    created: str = ""
    internal: bool = False
    attachable: bool = False
    ingress: bool = False
    ipv6: bool = False
    ipam_driver: str = "default"
    ipam_options: dict[str, str] | None = None  # None: the request sent no IPAM.Options
    configs: list[dict[str, Any]] = field(default_factory=list)
    user_subnet: bool = True
    options: dict[str, str] = field(default_factory=dict)
    labels: dict[str, str] = field(default_factory=dict)
    ifname: str = ""  # the kernel bridge (bridge/overlay) or parent (macvlan)
    vni: int = 0

    @property
    def predefined(self) -> bool:
        return self.name in ("bridge", "host", "none")

    @property
    def pools(self) -> list[PoolConfig]:
        """The IPv4 pools (every network has one at least)."""
        return [
            PoolConfig.from_json(c, self.user_subnet) for c in self.configs if not is_v6_config(c)
        ]

    @property
    def pools6(self) -> list[PoolConfig6]:
        """The IPv6 pools, always given by the user (``--ipv6 --subnet``): kept and shown
        without ``--ipv6`` as Docker does, used only with it (see ``dual_stack``)."""
        return [PoolConfig6.from_json(c) for c in self.configs if is_v6_config(c)]

    @property
    def dual_stack(self) -> bool:
        """Endpoints get an IPv6 address too (``EnableIPv6`` and an IPv6 subnet)."""
        return self.ipv6 and any(is_v6_config(c) for c in self.configs)

    @property
    def mtu(self) -> int:
        default = 1450 if self.driver == "overlay" else 1500
        raw = self.options.get(OPT_MTU)
        try:
            return int(raw) if raw else default
        except ValueError:
            return default

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> Network:
        return cls(**d)


V6_FIELDS = ("ip6", "prefixlen6", "gateway6", "static_ip6")


@dataclass
class Endpoint:
    """One container's attachment to one network."""

    id: str
    network_id: str
    network_name: str
    container_id: str
    container_name: str
    ip: str = ""
    prefixlen: int = 0
    gateway: str = ""
    mac: str = ""
    ifname: str = ""  # inside the sandbox: eth0, eth1, ...
    host_ifname: str = ""  # the host side (veth) when there is one
    aliases: list[str] = field(default_factory=list)
    links: list[str] = field(default_factory=list)
    static_ip: str = ""  # what the user asked for (--ip), kept for restarts
    host: str = ""  # the host that owns it (global networks)
    vtep: str = ""
    # the request's IPAMConfig and DriverOpts as sent (inspect shows them back, as Docker's:
    # `network connect` sends an empty IPAMConfig, `run` none)
    ipam_config: dict[str, Any] | None = None
    driver_opts: dict[str, str] | None = None
    # the MAC address the request asked for (--mac-address, EndpointsConfig.X.MacAddress;
    # issue 16): kept across address changes, shown by inspect before the start
    mac_config: str = ""
    # dual-stack networks (issue 18): the IPv6 address (``ip6``/``prefixlen6``, what the user
    # asked for in ``static_ip6``: --ip6) and the IPv6 gateway ("" on internal networks)
    ip6: str = ""
    prefixlen6: int = 0
    gateway6: str = ""
    static_ip6: str = ""

    def addresses(self) -> list[str]:
        """The addresses the endpoint holds (``ipam/<network>/<ip>`` keys)."""
        return [a for a in (self.ip, self.ip6) if a]

    def link_local(self) -> tuple[str, ...]:
        """``IPAMConfig.LinkLocalIPs`` as "IP/prefix", the extra addresses its interface gets
        (outside IPAM, as libnetwork's ``llAddrs``: IPv4 /16, IPv6 /64)."""
        ips = (self.ipam_config or {}).get("LinkLocalIPs") or []
        return tuple(f"{ip}/{64 if ':' in str(ip) else 16}" for ip in ips if ip)

    def to_dict(self) -> dict[str, Any]:
        out = asdict(self)
        for key in V6_FIELDS:  # IPv4-only endpoints' records stay as they were
            if not out[key]:
                del out[key]
        return out

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> Endpoint:
        return cls(**d)


def mac_for(ip: str) -> str:
    """Docker's MAC scheme: 02:42 followed by the four IPv4 bytes."""
    parts = [int(p) for p in ip.split(".")]
    return "02:42:" + ":".join(f"{p:02x}" for p in parts)


def mac_ipv6(net: Network, mac: str) -> str:
    """Docker's IPv6 address on the default bridge with ``fixed-cidr-v6`` of /80 or wider:
    the subnet's prefix with the MAC in its last 48 bits (``02:42:ac:11:00:02`` in
    ``fd00::/64`` is ``fd00::242:ac11:2``); "" elsewhere (IPAM's next address)."""
    pools = net.pools6
    if not (net.predefined and net.name == "bridge" and pools) or pools[0].subnet.prefixlen > 80:
        return ""
    base = int(pools[0].subnet.network_address)
    return str(type(pools[0].gateway)(base | int(mac.replace(":", ""), 16)))
