"""The bridge driver: a Linux bridge per network, a veth pair per endpoint."""

from __future__ import annotations

from tether.engine.model import OPT_BRIDGE_NAME, Endpoint, Network
from tether.errors import BadRequest
from tether.linux.netlink import LinkSpec, Netlink

MAX_IFNAME = 15


def bridge_name(net: Network) -> str:
    custom = net.options.get(OPT_BRIDGE_NAME)
    if custom:
        return custom
    if net.name == "bridge":
        return "tether0"
    return "tbr-" + net.id[:11]


def veth_name(ep: Endpoint) -> str:
    return "tv" + ep.id[:13]


class BridgeDriver:
    name = "bridge"
    scope = "local"

    def __init__(self, netlink: Netlink) -> None:
        self.nl = netlink

    def validate(self, net: Network) -> None:
        name = bridge_name(net)
        if len(name) > MAX_IFNAME or "/" in name or " " in name:
            raise BadRequest(f"invalid bridge name {name!r}")
        if not 68 <= net.mtu <= 65535:
            raise BadRequest(f"invalid MTU {net.mtu}")

    async def create(self, net: Network) -> None:
        net.ifname = bridge_name(net)
        pools = net.pools
        address = f"{pools[0].gateway}/{pools[0].subnet.prefixlen}" if pools else None
        await self.nl.ensure_bridge(net.ifname, address, net.mtu)

    async def restore(self, net: Network) -> None:
        await self.create(net)

    async def delete(self, net: Network) -> None:
        await self.nl.delete_link(net.ifname or bridge_name(net))

    async def join(self, net: Network, ep: Endpoint, ns_path: str) -> None:
        ep.host_ifname = veth_name(ep)
        spec = LinkSpec(
            ns_path=ns_path,
            ifname=ep.ifname,
            mac=ep.mac,
            address=f"{ep.ip}/{ep.prefixlen}",
            gateway=ep.gateway or None,
            mtu=net.mtu,
        )
        await self.nl.add_veth(ep.host_ifname, net.ifname or bridge_name(net), spec)

    async def leave(self, net: Network, ep: Endpoint, ns_path: str) -> None:
        if ep.host_ifname:
            await self.nl.delete_link(ep.host_ifname)

    def owned_links(self, net: Network) -> set[str]:
        return {net.ifname or bridge_name(net)}


class NullDriver:
    """``none``: the sandbox keeps only its loopback."""

    name = "null"
    scope = "local"

    def validate(self, net: Network) -> None:
        return None

    async def create(self, net: Network) -> None:
        return None

    async def restore(self, net: Network) -> None:
        return None

    async def delete(self, net: Network) -> None:
        return None

    async def join(self, net: Network, ep: Endpoint, ns_path: str) -> None:
        return None

    async def leave(self, net: Network, ep: Endpoint, ns_path: str) -> None:
        return None

    def owned_links(self, net: Network) -> set[str]:
        return set()


class HostDriver(NullDriver):
    """``host``: the container uses the host's own namespace; nothing to wire."""

    name = "host"
