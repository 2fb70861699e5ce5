"""The bridge driver: a Linux bridge per network, a veth pair per endpoint.

Published ports need two kernel settings besides tether's nftables table
(``tether.engine.firewall``): ``route_localnet`` on each bridge (so traffic to
127.0.0.1:PORT, DNAT'ed in the ``output`` hook, may leave through the bridge and
its replies come back), set here when the bridge is made or restored; and
hairpin mode on each veth bridge port (so a container reaches its own
published port through a host address), set by ``Netlink.add_veth``.
"""

from __future__ import annotations

import asyncio
import ipaddress
import logging

from tether.contracts.driver import veth_name
from tether.contracts.model import (
    OPT_BRIDGE_NAME,
    OPT_DEFAULT_BRIDGE,
    OPT_HOST_BINDING,
    OPT_ICC,
    OPT_MASQ,
    Endpoint,
    Network,
    check_mtu,
    parse_go_bool,
)
from tether.errors import BadRequest, TetherError
from tether.linux.netlink import LinkSpec, Netlink
from tether.linux.sysctl import Sysctl, enable_ipv6_forward, set_route_localnet

MAX_IFNAME = 15
RETIRED = "tbx-"  # a removed network's bridge, renamed while the kernel deletes it
log = logging.getLogger("tether.drivers")


def bridge_name(net: Network) -> str:
    custom = net.options.get(OPT_BRIDGE_NAME)
    if custom:
        return custom
    if net.name == "bridge":
        return "tether0"
    return "tbr-" + net.id[:11]


def check_host_binding(value: str) -> None:
    """``host_binding_ipv4`` must be an IPv4 address (the firewall writes it into rules)."""
    try:
        addr = ipaddress.ip_address(value)
    except ValueError:
        raise BadRequest(f"failed to parse {OPT_HOST_BINDING} value: {value} (nil ip)") from None
    if addr.version != 4:
        raise BadRequest(f"{OPT_HOST_BINDING} must be an IPv4 address, not {value}")


class BridgeDriver:
    name = "bridge"
    scope = "local"
    extra_interfaces = 0
    publishes_ports = True
    restores_endpoints = True
    sandbox_mode = ""

    def __init__(self, netlink: Netlink, sysctl: Sysctl | None = None) -> None:
        self.nl = netlink
        self.sysctl = sysctl
        self._reaping: set[asyncio.Task[None]] = set()  # retired bridges being deleted
        self._swept = False

    def validate(self, net: Network) -> None:
        name = bridge_name(net)
        # known before the kernel: the network's first store write holds it (no second
        # write after create)
        net.ifname = name
        # the kernel's dev_valid_name(): no "/", ":" or white space, not "." or ".."
        bad = any(c in "/:" or c.isspace() or not c.isprintable() for c in name)
        if not name or len(name) > MAX_IFNAME or bad or name in (".", ".."):
            raise BadRequest(f"invalid bridge name {name!r}")
        check_mtu(net)
        for key in (OPT_ICC, OPT_MASQ, OPT_DEFAULT_BRIDGE):
            if net.options.get(key):
                parse_go_bool(key, net.options[key])
        binding = net.options.get(OPT_HOST_BINDING)
        if binding:
            check_host_binding(binding)

    async def create(self, net: Network) -> None:
        name = bridge_name(net)
        # A name chosen by the user must not be an interface tether did not make: it would
        # be re-addressed now and deleted with the network (the lab's eth0 was).
        custom = bool(net.options.get(OPT_BRIDGE_NAME)) and not net.predefined
        if custom and await self.nl.link_exists(name):
            raise BadRequest(f"bridge name {name} is already used by an existing interface")
        await self._setup(net)

    async def _setup(self, net: Network) -> None:
        net.ifname = bridge_name(net)
        pools = net.pools
        address = f"{pools[0].gateway}/{pools[0].subnet.prefixlen}" if pools else None
        if net.dual_stack:  # the IPv6 gateway too, and IPv6 routed (issue 18)
            p6 = net.pools6[0]
            if self.sysctl is not None:
                enable_ipv6_forward(self.sysctl)
            address6 = f"{p6.gateway}/{p6.subnet.prefixlen}"
            await self.nl.ensure_bridge(net.ifname, address, net.mtu, address6=address6)
        else:
            await self.nl.ensure_bridge(net.ifname, address, net.mtu)
        if self.sysctl is not None:
            set_route_localnet(self.sysctl, net.ifname)

    async def restore(self, net: Network) -> None:
        await self._setup(net)
        if not self._swept:  # (at start-up) bridges retired by a daemon that died since
            self._swept = True
            for name in await self.nl.link_names():
                if name.startswith(RETIRED):
                    self._reap_later(name)

    async def delete(self, net: Network) -> None:
        """Retire the bridge now (down: its routes go; renamed ``tbx-<id>``: its name is
        free), delete it in the background. The kernel takes ~40 ms to unregister a bridge
        (RCU grace periods), the bulk of a ``network rm``; nothing waits for it but
        :meth:`close`. Where the rename fails, the bridge is deleted in line as before."""
        name = net.ifname or bridge_name(net)
        retired = RETIRED + net.id[:11]
        try:
            if not await self.nl.retire_link(name, retired):
                return
        except TetherError:
            await self.nl.delete_link(name)
            return
        self._reap_later(retired)

    def _reap_later(self, name: str) -> None:
        task = asyncio.get_running_loop().create_task(self._reap(name))
        self._reaping.add(task)
        task.add_done_callback(self._reaping.discard)

    async def _reap(self, name: str) -> None:
        try:
            await self.nl.reap_link(name)
        except TetherError as exc:
            log.warning("removing retired bridge %s: %s", name, exc.message)

    async def close(self) -> None:
        """Finish the deletions under way (the daemon's exit)."""
        if self._reaping:
            await asyncio.gather(*self._reaping, return_exceptions=True)

    async def join(self, net: Network, ep: Endpoint, ns_path: str) -> None:
        ep.host_ifname = veth_name(ep)
        spec = LinkSpec(
            ns_path=ns_path,
            ifname=ep.ifname,
            mac=ep.mac,
            address=f"{ep.ip}/{ep.prefixlen}",
            gateway=ep.gateway or None,
            mtu=net.mtu,
            address6=f"{ep.ip6}/{ep.prefixlen6}" if ep.ip6 else None,
            gateway6=ep.gateway6 or None,
            link_local=ep.link_local(),
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
    extra_interfaces = 0
    publishes_ports = False
    restores_endpoints = False
    sandbox_mode = "none"

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
    sandbox_mode = "host"
