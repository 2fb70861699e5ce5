"""The types of :mod:`tether.linux.netlink`: the ``Netlink`` protocol the drivers use and the
values it takes and gives (split from that module; it re-exports them)."""

from __future__ import annotations

import ipaddress
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Protocol

from tether.linux.neighbatch import VxlanEntry


@dataclass(frozen=True)
class LinkSpec:
    """A container-side interface: where it lives and how it is addressed."""

    ns_path: str
    ifname: str
    mac: str
    address: str  # "IP/prefix"
    gateway: str | None  # default route via this, or None
    mtu: int = 1500
    # dual-stack networks (issue 18): "IP6/prefix" and the IPv6 default route's gateway
    address6: str | None = None
    gateway6: str | None = None
    # ``IPAMConfig.LinkLocalIPs``: more "IP/prefix" addresses on the interface
    link_local: tuple[str, ...] = ()


@dataclass(frozen=True)
class LinkInfo:
    """One link as the kernel lists it (``Netlink.link_table``: the topology's kernel check)."""

    name: str
    kind: str  # "bridge", "veth", "vxlan", "macvlan", ... ("" for a plain device)
    state: str  # "down" (not up administratively), else the operstate: "up", "unknown", ...
    mac: str = ""
    mtu: int = 0
    master: str = ""  # the bridge it is a port of
    parent: str = ""  # the link it sits on (macvlan/vlan), or a veth's peer index as "#N"
    addresses: tuple[str, ...] = ()  # IPv4 "ip/prefix"
    vni: int = 0  # vxlan
    local: str = ""  # vxlan: the local VTEP address


class Netlink(Protocol):
    async def ensure_bridge(
        self,
        name: str,
        address: str | None,
        mtu: int,
        ns_path: str | None = None,
        address6: str | None = None,
    ) -> None: ...

    async def delete_link(self, name: str, ns_path: str | None = None) -> None: ...
    async def retire_link(self, name: str, new_name: str) -> bool:
        """Set ``name`` down and rename it ``new_name`` (False: there is no ``name``)."""
        ...

    async def reap_link(self, name: str) -> None:
        """Delete the link ``name`` of the daemon's namespace, off the netlink thread (the
        kernel's wait for a bridge to unregister holds no lock others need)."""
        ...

    async def link_names(self) -> set[str]: ...

    async def add_veth(
        self, host_ifname: str, bridge: str, spec: LinkSpec, bridge_ns: str | None = None
    ) -> None: ...

    async def add_macvlan(self, parent: str, mode: str, spec: LinkSpec) -> None: ...

    async def ensure_vxlan(
        self,
        name: str,
        vni: int,
        local: str,
        bridge: str,
        mtu: int,
        port: int = 4789,
        ns_path: str | None = None,
    ) -> None: ...

    async def ensure_vlan(self, name: str, parent: str, vid: int) -> None: ...

    async def ensure_shim(self, name: str, parent: str, address: str, route: str) -> None: ...

    async def set_entries(
        self, vxlan: str, entries: Sequence[VxlanEntry], ns_path: str | None = None
    ) -> None: ...

    async def vxlan_entries(
        self, vxlan: str, ns_path: str | None = None
    ) -> tuple[dict[str, str], dict[str, str]]: ...

    async def loopback_up(self, ns_path: str, keep_socket: bool = False) -> None:
        """Set ``lo`` up in the new sandbox at ``ns_path``; ``keep_socket``: endpoints are
        joined there next, so a netlink socket is made there at once for the first (the
        namespace thread may be busy starting the container's runtime by then)."""
        ...

    async def default_route(self, ns_path: str, gateway: str, ifname: str) -> None: ...

    async def host_routes(self) -> list[ipaddress.IPv4Network]: ...

    async def link_exists(self, name: str, ns_path: str | None = None) -> bool: ...

    async def link_table(self, ns_path: str | None = None) -> list[LinkInfo]: ...

    async def close(self) -> None: ...
